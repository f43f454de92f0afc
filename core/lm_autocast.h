/* Mixed precision: the products of float32 tensors with bfloat16 operands.
 *
 * Under LM_AUTOCAST_BF16 every matrix product (matmul, Linear, the fused
 * Linear + activation) and every convolution rounds its two operands to the
 * nearest bfloat16 and accumulates in float32; results, parameters and
 * gradients stay float32 tensors (the "master weights"). A node recorded
 * under the mode runs its backward rule under it too, so the backward
 * products round their operands as the forward ones did.
 *
 * Why rounding instead of bfloat16 storage: the values are exactly those of
 * a bfloat16 product with float32 accumulation on every device, so the CPU
 * is the GPU's reference; the CUDA backend runs such products on tensor
 * cores (cuBLAS's bfloat16 compute type, cuDNN's tensor-op math), which are
 * exact for operands already rounded.
 *
 * One setting for the process, like the grad mode. */
#ifndef LM_AUTOCAST_H
#define LM_AUTOCAST_H

#include "lm_tensor.h"

typedef enum lm_autocast_mode {
    LM_AUTOCAST_OFF = 0,
    LM_AUTOCAST_BF16 = 1,
} lm_autocast_mode;

lm_autocast_mode lm_autocast(void);
/* Returns the previous mode. */
lm_autocast_mode lm_set_autocast(lm_autocast_mode mode);

/* A product's operand: under LM_AUTOCAST_BF16 a new contiguous float32
 * tensor holding t rounded to bfloat16; otherwise (or for a tensor that is
 * not float32) lm_contiguous(t). (lm_matmul rounds a transposed matrix as
 * its contiguous leaf and keeps it transposed: ops_matmul.c, cast_operand.) */
lm_status lm_autocast_operand(lm_tensor **out, lm_tensor *t);

#endif
