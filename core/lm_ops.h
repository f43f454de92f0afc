/* Tensor operations: the device-independent front.
 *
 * Each op checks its arguments (dtype, device, shapes) here, so every
 * backend reports the same clear message, allocates its result and calls the
 * backend table. Functions named `_into` write into an existing tensor
 * (allocation-free in hot loops); the others return a new tensor in *out
 * (one counted reference for the caller). Mixed float32/int32 operands are
 * promoted to float32. */
#ifndef LM_OPS_H
#define LM_OPS_H

#include "lm_backend.h"
#include "lm_tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- creation and copies ------------------------------------------------------- */
lm_status lm_full(lm_tensor **out, lm_dtype dtype, lm_device device, int ndim, const int64_t *shape,
                  double value);
/* `count` values start, start + step, ... as a 1-D tensor. */
lm_status lm_arange(lm_tensor **out, lm_dtype dtype, double start, double step, int64_t count);
/* A CPU tensor holding a copy of `data` (numel elements of dtype). */
lm_status lm_from_host(lm_tensor **out, lm_dtype dtype, int ndim, const int64_t *shape,
                       const void *data);
/* Copies src into dst (same device); src is broadcast to dst's shape. */
lm_status lm_copy_(lm_tensor *dst, const lm_tensor *src);
lm_status lm_fill_(lm_tensor *dst, double value);
/* t itself (retained) when contiguous, otherwise a contiguous copy. */
lm_status lm_contiguous(lm_tensor **out, lm_tensor *t);
lm_status lm_clone(lm_tensor **out, const lm_tensor *t);
/* t itself (retained) when already of that dtype / on that device. */
lm_status lm_to_dtype(lm_tensor **out, lm_tensor *t, lm_dtype dtype);
lm_status lm_to_device(lm_tensor **out, lm_tensor *t, lm_device device);
/* Copies a tensor's elements in row-major order to host memory. */
lm_status lm_to_host(const lm_tensor *t, void *host);
/* Element `index` (row-major, 0-based) of t as a double. */
lm_status lm_get_element(const lm_tensor *t, int64_t index, double *value);

/* Concatenation of n tensors along dim (same shape elsewhere, same dtype and device). */
lm_status lm_cat(lm_tensor **out, int n, lm_tensor *const *ts, int dim);

/* Checks that every value of a non-empty int32 tensor of 0-based indices
 * lies in [0, limit); otherwise fails with "<op>: <what> <i> out of range for
 * <limit> <unit>", naming the offending value 1-based as Lua sees it. */
lm_status lm_check_index_range(const char *op, const char *what, const char *unit,
                               const lm_tensor *idx, int64_t limit);

/* Rows idx[0], idx[1], ... of x (dimension 0), idx int32 0-based (checked).
 * The _into form writes into out ([len(idx), rest of x's shape], contiguous):
 * how data loaders fill reused batch buffers. Not differentiable. */
lm_status lm_index_select(lm_tensor **out, lm_tensor *x, lm_tensor *idx);
lm_status lm_index_select_into(lm_tensor *out, lm_tensor *x, lm_tensor *idx);

/* Along dimension dim (0-based), as torch.gather: out has idx's shape and
 * out[.., i, ..] = x[.., idx[.., i, ..], ..]. idx is int32, 0-based (checked,
 * the message naming the value 1-based and the dimension's size), with x's
 * dimensions and no larger than x outside dim; x float32 or int32, any strides. */
lm_status lm_gather(lm_tensor **out, lm_tensor *x, int dim, lm_tensor *idx);
/* A copy of x (float32) with src (float32, idx's shape) added at the places
 * idx names along dim, as torch.scatter_add: out[.., idx[.., i, ..], ..] +=
 * src[.., i, ..]; duplicates accumulate. idx as in lm_gather. */
lm_status lm_scatter_add(lm_tensor **out, lm_tensor *x, int dim, lm_tensor *idx, lm_tensor *src);
/* Inclusive prefix sums along dim (float32, summed in double; int32 stays
 * int32), from the end back when `reverse` (cumsum's gradient). */
lm_status lm_cumsum(lm_tensor **out, lm_tensor *x, int dim, bool reverse);
/* Resampling along dimension dim (0-based) of x (float32, any strides) to m
 * positions: out[.., k, ..] = sum_t w[k, t] x[.., idx[k, t], ..] for t < taps
 * (at most LM_RESAMPLE_MAX_TAPS): nearest (1 tap), linear (2) and cubic (4)
 * interpolation, and the index maps of reflect, replicate and circular
 * padding. idx [m, taps] int32 0-based (checked against x's size along dim),
 * w [m, taps] float32, both on x's device. */
#define LM_RESAMPLE_MAX_TAPS 4
lm_status lm_resample(lm_tensor **out, lm_tensor *x, int dim, lm_tensor *idx, lm_tensor *w);
/* Both of x's last two dimensions at once (bilinear, nearest and bicubic
 * images): (idx_h, w_h) along the second-last, (idx_w, w_w) along the last,
 * each as in lm_resample; one pass instead of two and no intermediate. */
lm_status lm_resample2d(lm_tensor **out, lm_tensor *x, lm_tensor *idx_h, lm_tensor *w_h,
                        lm_tensor *idx_w, lm_tensor *w_w);

/* The k smallest (largest) values of each row of a 2-D float tensor,
 * sorted, with their 0-based int32 column indices. Not differentiable. */
lm_status lm_topk(lm_tensor **values, lm_tensor **indices, lm_tensor *x, int64_t k, bool largest);

/* ---- elementwise ----------------------------------------------------------------- */
lm_status lm_unary(lm_tensor **out, lm_unary_op op, lm_tensor *x, double p0, double p1);
lm_status lm_unary_into(lm_tensor *out, lm_unary_op op, lm_tensor *x, double p0, double p1);
lm_status lm_binary(lm_tensor **out, lm_binary_op op, lm_tensor *a, lm_tensor *b);
lm_status lm_binary_into(lm_tensor *out, lm_binary_op op, lm_tensor *a, lm_tensor *b);
lm_status lm_binary_scalar(lm_tensor **out, lm_binary_op op, lm_tensor *a, double s,
                           bool scalar_first);
lm_status lm_binary_scalar_into(lm_tensor *out, lm_binary_op op, lm_tensor *a, double s,
                                bool scalar_first);
/* cond != 0 ? a : b, all three broadcast together. */
lm_status lm_where(lm_tensor **out, lm_tensor *cond, lm_tensor *a, lm_tensor *b);
const char *lm_unary_name(lm_unary_op op);
const char *lm_binary_name(lm_binary_op op);

/* ---- reductions -------------------------------------------------------------------- */
/* Over dimension `dim` (0-based), or over everything when dim < 0 (result is
 * 0-D, or all-ones-shaped with keepdim). For LM_MAX/LM_MIN `indices`, when not
 * NULL, receives the int32 0-based positions. */
lm_status lm_reduce(lm_tensor **out, lm_tensor **indices, lm_reduce_op op, lm_tensor *x, int dim,
                    bool keepdim);
const char *lm_reduce_name(lm_reduce_op op);

/* ---- linear algebra ------------------------------------------------------------------ */
/* 1-D/2-D/batched matrix product with NumPy semantics for the leading
 * dimensions (batch dims broadcast). Transposed views go to BLAS as they are. */
lm_status lm_matmul(lm_tensor **out, lm_tensor *a, lm_tensor *b);
/* a @ b + bias, bias 1-D with b's column count: the result starts as the bias
 * rows and the product is accumulated onto it (GEMM with beta 1), one pass
 * less than adding afterwards. NULL bias: lm_matmul. */
lm_status lm_matmul_bias(lm_tensor **out, lm_tensor *a, lm_tensor *b, const lm_tensor *bias);
/* Two independent products, *out1 = a1 @ b1 and *out2 = a2 @ b2 (as
 * lm_matmul each), run side by side where the backend can (a layer's input
 * and weight gradients). On failure both outputs are NULL. */
lm_status lm_matmul_pair(lm_tensor **out1, lm_tensor *a1, lm_tensor *b1, lm_tensor **out2,
                         lm_tensor *a2, lm_tensor *b2);

#ifdef __cplusplus
}
#endif

#endif
