#include "lm_autograd_meta.h"

#include <stdlib.h>

#include "lm_tensor.h"

void lm_autograd_meta_free(lm_autograd_meta *meta) {
    if (!meta) return;
    lm_tensor_release(meta->grad);
    free(meta);
}
