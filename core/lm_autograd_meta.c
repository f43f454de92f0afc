#include "lm_autograd_meta.h"

#include <stdlib.h>

#include "lm_autograd.h"
#include "lm_tensor.h"

void lm_node_release(lm_node *node); /* lm_autograd.c */

void lm_autograd_meta_free(lm_autograd_meta *meta) {
    if (!meta) return;
    lm_tensor_release(meta->grad);
    lm_tensor_release(meta->pending);
    lm_node_release(meta->grad_fn);
    free(meta);
}
