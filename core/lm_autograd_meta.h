/* Per-tensor autograd state. The tensor holds one reference and every node
 * that takes the tensor as an input holds another, so a graph keeps what
 * backward needs of an intermediate result (its gradient's shape and
 * device, the node that computed it) without keeping its memory: the
 * tensor itself is freed as soon as neither the user nor a rule's saved
 * slot holds it. */
#ifndef LM_AUTOGRAD_META_H
#define LM_AUTOGRAD_META_H

#include <stdbool.h>
#include <stdint.h>

#include "lm_tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

struct lm_node;

typedef struct lm_autograd_meta {
    int refcount;
    bool requires_grad;
    bool retain_grad;        /* keep .grad on a non-leaf too */
    struct lm_tensor *grad;  /* owned; NULL until a backward pass writes it */
    struct lm_node *grad_fn; /* owned; NULL for leaves */
    /* the tensor's shape and device (fixed for its life), for the gradient */
    int ndim;
    int64_t shape[LM_MAX_DIMS];
    lm_device device;
    /* scratch of one backward pass */
    struct lm_tensor *pending; /* gradient summed so far */
    uint64_t visit_mark;
} lm_autograd_meta;

/* A new state describing t (refcount 1), NULL when out of memory. */
lm_autograd_meta *lm_autograd_meta_new(const lm_tensor *t);
lm_autograd_meta *lm_autograd_meta_retain(lm_autograd_meta *meta);
void lm_autograd_meta_release(lm_autograd_meta *meta);
/* True when t has the shape of the tensor meta describes. */
bool lm_autograd_meta_same_shape(const lm_autograd_meta *meta, const lm_tensor *t);

#ifdef __cplusplus
}
#endif

#endif
