/* The CPU backend's entries (the reference implementation of every op). */
#ifndef LM_CPU_BACKEND_H
#define LM_CPU_BACKEND_H

#include "lm_backend.h"

/* GELU (exact) and g * GELU'(x) over a unit-stride row of n in AVX-512
 * registers, the scalar loop's bits (cpu_gelu_rows.c); false, and nothing
 * written, in builds without AVX-512. */
bool lm_cpu_gelu_row(float *out, const float *x, int64_t n);
bool lm_cpu_gelu_grad_row(float *out, const float *g, const float *x, int64_t n);

lm_status lm_cpu_copy(lm_tensor *dst, const lm_tensor *src);
lm_status lm_cpu_fill(lm_tensor *dst, double value);
lm_status lm_cpu_unary(lm_unary_op op, lm_tensor *out, const lm_tensor *x, double p0, double p1);
lm_status lm_cpu_binary(lm_binary_op op, lm_tensor *out, const lm_tensor *a, const lm_tensor *b);
lm_status lm_cpu_binary_scalar(lm_binary_op op, lm_tensor *out, const lm_tensor *a, double s,
                               bool scalar_first);
lm_status lm_cpu_unary_backward(lm_unary_op op, lm_tensor *gx, const lm_tensor *g,
                                const lm_tensor *x, const lm_tensor *y, double p0);
lm_status lm_cpu_where(lm_tensor *out, const lm_tensor *cond, const lm_tensor *a,
                       const lm_tensor *b);
lm_status lm_cpu_reduce(lm_reduce_op op, lm_tensor *out, lm_tensor *indices, const lm_tensor *x,
                        int dim);
lm_status lm_cpu_matmul(lm_tensor *out, const lm_tensor *a, const lm_tensor *b, float alpha,
                        float beta, const lm_tensor *bias);
lm_status lm_cpu_matmul_pair(lm_tensor *out1, const lm_tensor *a1, const lm_tensor *b1,
                             lm_tensor *out2, const lm_tensor *a2, const lm_tensor *b2);
/* c (M x N) = alpha * op(a) @ op(b) + beta * c on row-major float arrays,
 * split over Lumen's threads (for kernels that build their own operands). */
void lm_cpu_sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                  const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c,
                  int64_t ldc);
/* Runs on a block of a product's output once a thread has written it: rows
 * [r0, r1) by columns [c0, c1), while the block is in that core's cache. */
typedef void (*lm_gemm_epilogue)(void *ctx, int64_t r0, int64_t r1, int64_t c0, int64_t c1);
/* c [M, N] = x [M, K] @ w^T (+ bias [N] on every row) for a Linear layer's
 * contiguous x and w [N, K], split over the threads like lm_cpu_matmul,
 * with `epilogue` (or NULL) run on each thread's block. */
void lm_cpu_linear_gemm(float *c, const float *x, const float *w, const float *bias, int64_t M,
                        int64_t N, int64_t K, lm_gemm_epilogue epilogue, void *epilogue_ctx);
/* How the CPU computes a convolution: LM_CONV_AUTO picks per shape
 * (Winograd F(2x2, 3x3) for 3x3 stride-1 layers wide enough to gain, the
 * direct weight gradient for 3x3 stride-1 padding-1 layers of up to 128 x
 * 128 channels except on Winograd's small planes and for narrow 3x3
 * stride-2 padding-1 layers, the direct forward pass and input gradient
 * for narrow strided layers, the direct forward pass for stride-1 layers of
 * at most 32 output channels in batches of 8 images or more and for
 * grouped layers of at most 32 outputs a group, the pointwise kernel for
 * 1x1 stride-1 layers; bench/conv_algorithms.lua, bench/conv_weight_grad.lua,
 * bench/conv_strided.lua, bench/conv_grad_input.lua, bench/conv_narrow.lua,
 * bench/conv_grouped.lua, bench/conv_pointwise.lua), and the direct
 * depthwise kernel for depthwise layers (bench/conv_depthwise.lua).
 * Dilated layers, and the gradients of grouped ones, take only im2col (a
 * product a group) or the depthwise kernel. LM_CONV_GEMM takes
 * im2col + GEMM for everything; LM_CONV_WINOGRAD takes Winograd wherever it
 * applies and the rest as LM_CONV_AUTO; LM_CONV_DIRECT takes the direct
 * weight gradient wherever it applies and the rest as LM_CONV_AUTO. */
typedef enum { LM_CONV_AUTO, LM_CONV_GEMM, LM_CONV_WINOGRAD, LM_CONV_DIRECT } lm_conv_algorithm;
void lm_set_conv_algorithm(lm_conv_algorithm algorithm);
lm_conv_algorithm lm_get_conv_algorithm(void);
/* The algorithm lm_cpu_conv2d takes for a layer of this shape. */
lm_conv_algorithm lm_cpu_conv_choice(int64_t out_channels, const lm_conv_geometry *geo);
bool lm_cpu_winograd_applies(const lm_conv_geometry *geo);
/* What a convolution does to each output plane as it writes it (NULL:
 * nothing): y = y * scale[o] + shift[o] (+ the residual's plane) (then
 * ReLU), o the plane's channel; the arithmetic of lm_cpu_channel_affine. */
typedef struct {
    const float *scale, *shift, *residual; /* residual: NULL or [N, O, oh, ow] */
    int64_t channels;
    bool relu;
} lm_conv_epilogue;
/* The epilogue on planes [p0, p1) (p = image * channels + o) of size s at out. */
void lm_cpu_conv_epilogue(const lm_conv_epilogue *ep, float *out, int64_t p0, int64_t p1,
                          int64_t s);
lm_status lm_cpu_conv2d_winograd(lm_tensor *out, const lm_tensor *x, const lm_tensor *w,
                                 const lm_tensor *bias, const lm_conv_epilogue *ep,
                                 const lm_conv_geometry *geo);
/* A stride-1 layer's input gradient is the stride-1 convolution of its
 * output gradient with the weights turned: each group's input and output
 * channels swapped and each kernel rotated by 180 degrees, padding kernel -
 * 1 - padding. That convolution's geometry (channels: the layer's
 * out_channels; its output: the layer's input), and the turned weights
 * [C, O / groups, kh, kw] written to `turned` from w [O, C / groups, kh, kw]. */
lm_conv_geometry lm_cpu_conv_gradient_geometry(int64_t out_channels, const lm_conv_geometry *geo);
void lm_cpu_conv_turn_weights(float *turned, const float *w, int64_t out_channels,
                              const lm_conv_geometry *geo);
bool lm_cpu_winograd_grad_input_applies(const lm_conv_geometry *geo);
lm_status lm_cpu_conv2d_winograd_grad_input(lm_tensor *gx, const lm_tensor *g, const lm_tensor *w,
                                            const lm_conv_geometry *geo);
/* Whether Winograd computes this layer's weight gradient faster than im2col:
 * on small planes only (bench/conv_algorithms.lua). */
bool lm_cpu_winograd_grad_weight_gains(const lm_conv_geometry *geo);
lm_status lm_cpu_conv2d_winograd_grad_weight(lm_tensor *gw, const lm_tensor *g, const lm_tensor *x,
                                             const lm_conv_geometry *geo);
/* The weights' gradient of a 3x3 padding-1 layer of stride 1 or 2 without columns
 * (cpu_conv_direct_gw.c; AVX-512 builds only: elsewhere available and
 * applies are false). */
bool lm_cpu_conv_direct_available(void);
bool lm_cpu_conv_direct_grad_weight_applies(const lm_conv_geometry *geo);
lm_status lm_cpu_conv2d_direct_grad_weight(lm_tensor *gw, const lm_tensor *g, const lm_tensor *x,
                                           const lm_conv_geometry *geo);
/* The input gradient of strided layers without columns (cpu_conv_direct_gx.c;
 * AVX-512 builds only: elsewhere applies is false). */
bool lm_cpu_conv_direct_grad_input_applies(int64_t out_channels, const lm_conv_geometry *geo);
lm_status lm_cpu_conv2d_direct_grad_input(lm_tensor *gx, const lm_tensor *g, const lm_tensor *w,
                                          const lm_conv_geometry *geo);
/* The forward pass of strided layers, of stride-1 layers with at most 32
 * output channels and of grouped layers with at most 32 a group, without
 * columns (cpu_conv_direct_fwd.c; AVX-512 builds only, elsewhere applies is
 * false). */
bool lm_cpu_conv_direct_forward_applies(int64_t images, int64_t out_channels,
                                        const lm_conv_geometry *geo);
lm_status lm_cpu_conv2d_direct(lm_tensor *out, const lm_tensor *x, const lm_tensor *w,
                               const lm_tensor *bias, const lm_conv_epilogue *ep,
                               const lm_conv_geometry *geo);
/* The forward pass of 1x1 stride-1 unpadded layers as a product per image
 * in AVX-512 registers (cpu_conv_pointwise.c; AVX-512 builds only,
 * elsewhere applies is false). */
bool lm_cpu_conv_pointwise_applies(const lm_conv_geometry *geo);
lm_status lm_cpu_conv2d_pointwise(lm_tensor *out, const lm_tensor *x, const lm_tensor *w,
                                  const lm_tensor *bias, const lm_conv_epilogue *ep,
                                  const lm_conv_geometry *geo);
/* Depthwise layers (groups == input channels, each with out / in filters;
 * any stride, padding and dilation) without columns (cpu_conv_depthwise.c). */
bool lm_cpu_conv_depthwise_applies(int64_t out_channels, const lm_conv_geometry *geo);
lm_status lm_cpu_conv2d_depthwise(lm_tensor *out, const lm_tensor *x, const lm_tensor *w,
                                  const lm_tensor *bias, const lm_conv_epilogue *ep,
                                  const lm_conv_geometry *geo);
lm_status lm_cpu_conv2d_depthwise_backward(lm_tensor *gx, lm_tensor *gw, const lm_tensor *g,
                                           const lm_tensor *x, const lm_tensor *w,
                                           const lm_conv_geometry *geo);
lm_status lm_cpu_conv2d(lm_tensor *out, const lm_tensor *x, const lm_tensor *w,
                        const lm_tensor *bias, const lm_conv_geometry *geo);
lm_status lm_cpu_conv2d_affine(lm_tensor *out, const lm_tensor *x, const lm_tensor *w,
                               const lm_tensor *scale, const lm_tensor *shift,
                               const lm_tensor *residual, bool relu, const lm_conv_geometry *geo);
/* dst[i] = the sum over k of partials[k * size + i], k = 0 .. chunks - 1 in
 * order (a convolution's per-chunk weight gradients: the same sums whatever
 * thread computed each chunk), on the pool. */
void lm_cpu_sum_chunks(float *dst, const float *partials, int64_t chunks, int64_t size);
lm_status lm_cpu_conv2d_backward(lm_tensor *gx, lm_tensor *gw, const lm_tensor *g,
                                 const lm_tensor *x, const lm_tensor *w,
                                 const lm_conv_geometry *geo);
lm_status lm_cpu_batch_norm(lm_tensor *y, lm_tensor *mean, lm_tensor *var, const lm_tensor *x,
                            const lm_tensor *w, const lm_tensor *b, double eps,
                            const lm_tensor *residual, bool relu);
lm_status lm_cpu_batch_norm_backward(lm_tensor *gx, lm_tensor *gw, lm_tensor *gb,
                                     const lm_tensor *g, const lm_tensor *x, const lm_tensor *mean,
                                     const lm_tensor *var, const lm_tensor *w, double eps);
lm_status lm_cpu_channel_affine(lm_tensor *y, const lm_tensor *x, const lm_tensor *scale,
                                const lm_tensor *shift, const lm_tensor *residual, bool relu);
lm_status lm_cpu_dropout(lm_tensor *out, lm_tensor *mask, const lm_tensor *x, uint64_t seed,
                         uint64_t offset, double keep);
/* Elements [begin, end) of a dropout over contiguous arrays: the mask
 * values lm_cpu_dropout draws for them, and out = x * mask. */
void lm_cpu_dropout_span(float *out, float *mask, const float *x, uint64_t seed, uint64_t offset,
                         double keep, int64_t begin, int64_t end);
/* Elements [begin, end) of the mask alone (0 or 1 / keep), as above. */
void lm_cpu_dropout_mask_span(float *mask, uint64_t seed, uint64_t offset, double keep,
                              int64_t begin, int64_t end);
/* A unary op over n contiguous floats (out may be x): lm_cpu_unary's values. */
void lm_cpu_unary_span(lm_unary_op op, int64_t n, float *out, const float *x, float p0, float p1);
lm_status lm_cpu_linear_act(lm_tensor *y, lm_tensor *a, lm_tensor *mask, const lm_tensor *x,
                            const lm_tensor *w, const lm_tensor *bias, const lm_act_params *act);
lm_status lm_cpu_linear_act_backward(lm_tensor *gz, const lm_tensor *g, const lm_tensor *a,
                                     const lm_tensor *mask, lm_unary_op op, double alpha);
lm_status lm_cpu_random(lm_random_kind kind, lm_tensor *out, uint64_t seed, uint64_t offset,
                        double p0, double p1);

lm_status lm_cpu_softmax(lm_tensor *out, const lm_tensor *x, bool log);
lm_status lm_cpu_softmax_backward(lm_tensor *gx, const lm_tensor *g, const lm_tensor *y, bool log);
/* softmax (not log) of `rows` contiguous rows of `cols`, and its gradient,
 * on the calling thread (in place allowed): for kernels that already run
 * on the pool */
void lm_cpu_softmax_rows_span(float *out, const float *x, int64_t rows, int64_t cols);
void lm_cpu_softmax_rows_backward_span(float *gx, const float *g, const float *y, int64_t rows,
                                       int64_t cols);
lm_status lm_cpu_layer_norm(lm_tensor *y, lm_tensor *stats, const lm_tensor *x, const lm_tensor *w,
                            const lm_tensor *b, double eps);
lm_status lm_cpu_layer_norm_backward(lm_tensor *gx, lm_tensor *gw, lm_tensor *gb,
                                     const lm_tensor *g, const lm_tensor *x, const lm_tensor *stats,
                                     const lm_tensor *w);
lm_status lm_cpu_self_attention(lm_tensor *out, lm_tensor *probs, const lm_tensor *qkv,
                                const lm_tensor *mask, const lm_attention_params *p);
lm_status lm_cpu_self_attention_backward(lm_tensor *gqkv, const lm_tensor *g, const lm_tensor *qkv,
                                         const lm_tensor *probs, const lm_attention_params *p);
lm_status lm_cpu_im2col(lm_tensor *cols, const lm_tensor *x, const lm_conv_geometry *geo);
lm_status lm_cpu_col2im(lm_tensor *gx, const lm_tensor *cols, const lm_conv_geometry *geo);
lm_status lm_cpu_pool2d(lm_tensor *out, lm_tensor *argmax, const lm_tensor *x,
                        const lm_conv_geometry *geo);
lm_status lm_cpu_pool2d_backward(lm_tensor *gx, const lm_tensor *g, const lm_tensor *argmax,
                                 const lm_conv_geometry *geo);
lm_status lm_cpu_sq_diff_rows(lm_tensor *diff, lm_tensor *rows, const lm_tensor *a,
                              const lm_tensor *b);
lm_status lm_cpu_mmd(lm_tensor *value, lm_tensor *gz, lm_tensor *gp, const lm_tensor *z,
                     const lm_tensor *p, const float *scales, int nscales);
lm_status lm_cpu_index_select(lm_tensor *out, const lm_tensor *x, const lm_tensor *idx);
lm_status lm_cpu_gather(lm_tensor *out, const lm_tensor *x, const lm_tensor *idx, int dim);
lm_status lm_cpu_scatter_add(lm_tensor *out, const lm_tensor *idx, const lm_tensor *src, int dim);
lm_status lm_cpu_cumsum(lm_tensor *out, const lm_tensor *x, int dim, bool reverse);
lm_status lm_cpu_resample(lm_tensor *out, const lm_tensor *x, const lm_tensor *idx,
                          const lm_tensor *w, int dim);
lm_status lm_cpu_resample_backward(lm_tensor *gx, const lm_tensor *g, const lm_tensor *idx,
                                   const lm_tensor *w, int dim);
lm_status lm_cpu_resample2d(lm_tensor *out, const lm_tensor *x, const lm_tensor *idx_h,
                            const lm_tensor *w_h, const lm_tensor *idx_w, const lm_tensor *w_w);
lm_status lm_cpu_resample2d_backward(lm_tensor *gx, const lm_tensor *g, const lm_tensor *idx_h,
                                     const lm_tensor *w_h, const lm_tensor *idx_w,
                                     const lm_tensor *w_w);
lm_status lm_cpu_topk(lm_tensor *values, lm_tensor *indices, const lm_tensor *x, int64_t k,
                      bool largest);
lm_status lm_cpu_one_hot(lm_tensor *out, const lm_tensor *labels);
lm_status lm_cpu_optim_step(const lm_optim_params *p, lm_tensor *param, const lm_tensor *grad,
                            lm_tensor *s1, lm_tensor *s2);
lm_status lm_cpu_optim_step_many(const lm_optim_params *p, int n, lm_tensor *const *params,
                                 const lm_tensor *const *grads, lm_tensor *const *s1,
                                 lm_tensor *const *s2);

#endif
