/* The autocast mode and the rounding of a product's operands. */
#include "lm_autocast.h"

#include "lm_ops.h"

static lm_autocast_mode mode = LM_AUTOCAST_OFF;

lm_autocast_mode lm_autocast(void) {
    return mode;
}

lm_autocast_mode lm_set_autocast(lm_autocast_mode m) {
    lm_autocast_mode old = mode;
    mode = m;
    return old;
}

lm_status lm_autocast_operand(lm_tensor **out, lm_tensor *t) {
    if (mode != LM_AUTOCAST_BF16 || t->dtype != LM_FLOAT32) return lm_contiguous(out, t);
    /* lm_unary records nothing: the product that reads it records its own node */
    return lm_unary(out, LM_ROUND_BF16, t, 0, 0);
}
