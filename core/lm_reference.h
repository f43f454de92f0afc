/* Reference implementations: matmul and conv2d as plain loops with double
 * accumulators, written to be read. They are the definition the fast paths
 * (BLAS, im2col + GEMM, cuBLAS, cuDNN) are checked against, in the C tests
 * and, through lm._reference, in the GPU specs. Slow on purpose: for tests
 * and checks only, never on a training path.
 *
 * Inputs are float32 CPU tensors of any strides (views are read in place,
 * nothing is copied); *out receives a new contiguous float32 CPU tensor
 * (one reference, the caller's), or NULL on failure. */
#ifndef LM_REFERENCE_H
#define LM_REFERENCE_H

#include "lm_nn.h"

/* a is (M, K) and b is (K, N): out is (M, N).
 * Batched: a is (B, M, K) or (M, K), b is (B, K, N) or (K, N): out is
 * (B, M, N); an operand with a batch of 1, or a 2-D one, is shared by every
 * batch entry, as lm_matmul broadcasts it. (1-D operands: reshape first.) */
lm_status lm_reference_matmul(lm_tensor **out, const lm_tensor *a, const lm_tensor *b);

/* x is (N, C, H, W), weight is (O, C / groups, kh, kw), bias is (O) or
 * NULL: out is (N, O, oh, ow) with oh = (H + 2 pad_h - dilation_h (kh - 1)
 * - 1) / stride_h + 1 (likewise ow), the input zero-padded, output o
 * reading its group's channels, as lm_conv2d. */
lm_status lm_reference_conv2d(lm_tensor **out, const lm_tensor *x, const lm_tensor *weight,
                              const lm_tensor *bias, const lm_conv_options *opt);

#endif
