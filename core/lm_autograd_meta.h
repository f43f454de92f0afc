/* Per-tensor autograd state, owned by the tensor (freed with it). */
#ifndef LM_AUTOGRAD_META_H
#define LM_AUTOGRAD_META_H

#include <stdbool.h>
#include <stdint.h>

struct lm_tensor;
struct lm_node;

typedef struct lm_autograd_meta {
    bool requires_grad;
    bool retain_grad;        /* keep .grad on a non-leaf too */
    struct lm_tensor *grad;  /* owned; NULL until a backward pass writes it */
    struct lm_node *grad_fn; /* owned; NULL for leaves */
    /* scratch of one backward pass */
    struct lm_tensor *pending; /* gradient summed so far */
    uint64_t visit_mark;
} lm_autograd_meta;

void lm_autograd_meta_free(lm_autograd_meta *meta);

#endif
