/* Per-tensor autograd state. The tape itself arrives with the autograd
 * module; the tensor only needs to know how to free what it owns. */
#ifndef LM_AUTOGRAD_META_H
#define LM_AUTOGRAD_META_H

#include <stdbool.h>

struct lm_tensor;

typedef struct lm_autograd_meta {
    bool requires_grad;
    struct lm_tensor *grad; /* owned reference, NULL until a backward pass writes it */
} lm_autograd_meta;

void lm_autograd_meta_free(lm_autograd_meta *meta);

#endif
