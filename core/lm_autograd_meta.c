#include "lm_autograd_meta.h"

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

void lm_autograd_meta_release(lm_autograd_meta *meta) {
    if (!meta || --meta->refcount > 0) return;
    lm_tensor_release(meta->grad);
    lm_tensor_release(meta->pending);
    lm_node_release(meta->grad_fn);
    free(meta);
}

bool lm_autograd_meta_same_shape(const lm_autograd_meta *meta, const lm_tensor *t) {
    if (t->ndim != meta->ndim) return false;
    for (int d = 0; d < t->ndim; d++)
        if (t->shape[d] != meta->shape[d]) return false;
    return true;
}
