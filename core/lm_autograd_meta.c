#include "lm_autograd_meta.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "lm_autograd.h"

void lm_node_release(lm_node *node); /* lm_autograd.c */

lm_autograd_meta *lm_autograd_meta_new(const lm_tensor *t) {
    lm_autograd_meta *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    m->refcount = 1;
    m->ndim = t->ndim;
    memcpy(m->shape, t->shape, sizeof m->shape);
    m->device = t->storage->device;
    return m;
}

lm_autograd_meta *lm_autograd_meta_retain(lm_autograd_meta *meta) {
    if (meta) meta->refcount++;
    return meta;
}

/* Freeing a state releases its node, whose inputs' states may go too, and
 * so on down the graph: done recursively, a chain of a few hundred thousand
 * ops dropped without a backward pass overflowed the C stack. States whose
 * count reaches zero while one is being freed wait in a list instead, which
 * the outermost release empties. */
static _Thread_local lm_autograd_meta **waiting;
static _Thread_local int nwaiting, capwaiting;
static _Thread_local bool freeing;

/* A thread's list is also kept under a key whose destructor frees it when
 * the thread exits (thread-local storage alone would leak it). */
static pthread_key_t waiting_key;
static pthread_once_t waiting_key_once = PTHREAD_ONCE_INIT;
static bool waiting_key_made;

static void make_waiting_key(void) {
    waiting_key_made = pthread_key_create(&waiting_key, free) == 0;
}

static void keep_list(lm_autograd_meta **list) {
    pthread_once(&waiting_key_once, make_waiting_key);
    if (waiting_key_made) pthread_setspecific(waiting_key, list);
}

static void free_state(lm_autograd_meta *meta) {
    lm_tensor_release(meta->grad);
    lm_tensor_release(meta->pending);
    lm_node_release(meta->grad_fn);
    free(meta);
}

static bool wait_to_free(lm_autograd_meta *meta) {
    if (nwaiting == capwaiting) {
        int cap = capwaiting ? capwaiting * 2 : 256;
        lm_autograd_meta **p = realloc(waiting, sizeof *p * cap);
        if (!p) return false;
        waiting = p;
        capwaiting = cap;
        keep_list(waiting);
    }
    waiting[nwaiting++] = meta;
    return true;
}

void lm_autograd_meta_release(lm_autograd_meta *meta) {
    if (!meta || --meta->refcount > 0) return;
    if (freeing) {
        if (!wait_to_free(meta)) free_state(meta); /* out of memory: recurse, as before */
        return;
    }
    freeing = true;
    free_state(meta);
    while (nwaiting) free_state(waiting[--nwaiting]);
    freeing = false;
    if (capwaiting > 4096) { /* a deep graph's list is not kept */
        free(waiting);
        waiting = NULL;
        capwaiting = 0;
        keep_list(NULL);
    }
}

bool lm_autograd_meta_same_shape(const lm_autograd_meta *meta, const lm_tensor *t) {
    if (t->ndim != meta->ndim) return false;
    for (int d = 0; d < t->ndim; d++)
        if (t->shape[d] != meta->shape[d]) return false;
    return true;
}
