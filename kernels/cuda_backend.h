// The CUDA backend's entries (one file per family, like the CPU backend's).
#pragma once

#include "cuda_common.cuh"

extern "C" {
#include "lm_alloc.h"
#include "lm_autocast.h" /* lm_autocast: tensor-core math for rounded operands */
#include "lm_cuda.h"     /* lm_cuda_tf32 */
void *lm_cuda_alloc(size_t bytes);
void lm_cuda_free(void *ptr, size_t bytes);
/* a CUDA graph's pool (cuda_memory.cu): allocations and frees between begin
 * and end belong to it until it is released */
int lm_cuda_pool_begin(void);
void lm_cuda_pool_end(void);
void lm_cuda_pool_release(int pool);
}
lm_status lm_cuda_blas_fail(int status, const char *what); /* cuda_backend.cu */
/* Device memory for settings that change between a CUDA graph's replays
 * (cuda_graph.cu): while capturing, a new slot the graph keeps (its kernels
 * read it); while a replay is prepared, the slot of the next launch in
 * capture order, *refreshed set (write this step's settings there, launch
 * nothing); otherwise NULL. */
lm_status lm_cuda_graph_slot(size_t bytes, void **slot, bool *refreshed);

lm_status lm_cuda_upload(lm_tensor *dst, const void *host);
lm_status lm_cuda_download(void *host, const lm_tensor *src);
lm_status lm_cuda_copy(lm_tensor *dst, const lm_tensor *src);
lm_status lm_cuda_fill(lm_tensor *dst, double value);
lm_status lm_cuda_unary(lm_unary_op op, lm_tensor *out, const lm_tensor *x, double p0, double p1);
lm_status lm_cuda_binary(lm_binary_op op, lm_tensor *out, const lm_tensor *a, const lm_tensor *b);
lm_status lm_cuda_binary_scalar(lm_binary_op op, lm_tensor *out, const lm_tensor *a, double s,
                                bool scalar_first);
lm_status lm_cuda_unary_backward(lm_unary_op op, lm_tensor *gx, const lm_tensor *g,
                                 const lm_tensor *x, const lm_tensor *y, double p0);
lm_status lm_cuda_where(lm_tensor *out, const lm_tensor *cond, const lm_tensor *a,
                        const lm_tensor *b);
lm_status lm_cuda_reduce(lm_reduce_op op, lm_tensor *out, lm_tensor *indices, const lm_tensor *x,
                         int dim);
lm_status lm_cuda_matmul(lm_tensor *out, const lm_tensor *a, const lm_tensor *b, float alpha,
                         float beta, const lm_tensor *bias);
lm_status lm_cuda_random(lm_random_kind kind, lm_tensor *out, uint64_t seed, uint64_t offset,
                         double p0, double p1);
lm_status lm_cuda_dropout(lm_tensor *out, lm_tensor *mask, const lm_tensor *x, uint64_t seed,
                          uint64_t offset, double keep);
lm_status lm_cuda_softmax(lm_tensor *out, const lm_tensor *x, bool log);
lm_status lm_cuda_softmax_backward(lm_tensor *gx, const lm_tensor *g, const lm_tensor *y, bool log);
lm_status lm_cuda_im2col(lm_tensor *cols, const lm_tensor *x, const lm_conv_geometry *geo);
lm_status lm_cuda_col2im(lm_tensor *gx, const lm_tensor *cols, const lm_conv_geometry *geo);
lm_status lm_cuda_pool2d(lm_tensor *out, lm_tensor *argmax, const lm_tensor *x,
                         const lm_conv_geometry *geo);
lm_status lm_cuda_pool2d_backward(lm_tensor *gx, const lm_tensor *g, const lm_tensor *argmax,
                                  const lm_conv_geometry *geo);
lm_status lm_cuda_index_select(lm_tensor *out, const lm_tensor *x, const lm_tensor *idx);
lm_status lm_cuda_gather(lm_tensor *out, const lm_tensor *x, const lm_tensor *idx, int dim);
lm_status lm_cuda_scatter_add(lm_tensor *out, const lm_tensor *idx, const lm_tensor *src, int dim);
lm_status lm_cuda_cumsum(lm_tensor *out, const lm_tensor *x, int dim, bool reverse);
lm_status lm_cuda_resample(lm_tensor *out, const lm_tensor *x, const lm_tensor *idx,
                           const lm_tensor *w, int dim);
lm_status lm_cuda_resample_backward(lm_tensor *gx, const lm_tensor *g, const lm_tensor *idx,
                                    const lm_tensor *w, int dim);
lm_status lm_cuda_resample2d(lm_tensor *out, const lm_tensor *x, const lm_tensor *idx_h,
                             const lm_tensor *w_h, const lm_tensor *idx_w, const lm_tensor *w_w);
lm_status lm_cuda_resample2d_backward(lm_tensor *gx, const lm_tensor *g, const lm_tensor *idx_h,
                                      const lm_tensor *w_h, const lm_tensor *idx_w,
                                      const lm_tensor *w_w);
lm_status lm_cuda_topk(lm_tensor *values, lm_tensor *indices, const lm_tensor *x, int64_t k,
                       bool largest);
lm_status lm_cuda_one_hot(lm_tensor *out, const lm_tensor *labels);
lm_status lm_cuda_optim_step(const lm_optim_params *p, lm_tensor *param, const lm_tensor *grad,
                             lm_tensor *s1, lm_tensor *s2);
lm_status lm_cuda_optim_step_many(const lm_optim_params *p, int n, lm_tensor *const *params,
                                  const lm_tensor *const *grads, lm_tensor *const *s1,
                                  lm_tensor *const *s2);
lm_status lm_cuda_conv2d(lm_tensor *out, const lm_tensor *x, const lm_tensor *w,
                         const lm_tensor *bias, const lm_conv_geometry *geo);
lm_status lm_cuda_conv2d_backward(lm_tensor *gx, lm_tensor *gw, const lm_tensor *g,
                                  const lm_tensor *x, const lm_tensor *w,
                                  const lm_conv_geometry *geo);
lm_status lm_cuda_batch_norm(lm_tensor *y, lm_tensor *mean, lm_tensor *var, const lm_tensor *x,
                             const lm_tensor *w, const lm_tensor *b, double eps,
                             const lm_tensor *residual, bool relu);
lm_status lm_cuda_batch_norm_backward(lm_tensor *gx, lm_tensor *gw, lm_tensor *gb,
                                      const lm_tensor *g, const lm_tensor *x, const lm_tensor *mean,
                                      const lm_tensor *var, const lm_tensor *w, double eps);
lm_status lm_cuda_channel_affine(lm_tensor *y, const lm_tensor *x, const lm_tensor *scale,
                                 const lm_tensor *shift, const lm_tensor *residual, bool relu);
lm_status lm_cuda_layer_norm(lm_tensor *y, lm_tensor *stats, const lm_tensor *x, const lm_tensor *w,
                             const lm_tensor *b, double eps);
lm_status lm_cuda_layer_norm_backward(lm_tensor *gx, lm_tensor *gw, lm_tensor *gb,
                                      const lm_tensor *g, const lm_tensor *x,
                                      const lm_tensor *stats, const lm_tensor *w);
lm_status lm_cuda_linear_act(lm_tensor *y, lm_tensor *a, lm_tensor *mask, const lm_tensor *x,
                             const lm_tensor *w, const lm_tensor *bias, const lm_act_params *act);
lm_status lm_cuda_linear_act_backward(lm_tensor *gz, const lm_tensor *g, const lm_tensor *a,
                                      const lm_tensor *mask, lm_unary_op op, double alpha);
lm_status lm_cuda_mmd(lm_tensor *value, lm_tensor *gz, lm_tensor *gp, const lm_tensor *z,
                      const lm_tensor *p, const float *scales, int nscales);
lm_status lm_cuda_sq_diff_rows(lm_tensor *diff, lm_tensor *rows, const lm_tensor *a,
                               const lm_tensor *b);
lm_status lm_cuda_self_attention(lm_tensor *out, lm_tensor *probs, const lm_tensor *qkv,
                                 const lm_tensor *mask, const lm_attention_params *p);
lm_status lm_cuda_self_attention_backward(lm_tensor *gqkv, const lm_tensor *g, const lm_tensor *qkv,
                                          const lm_tensor *probs, const lm_attention_params *p);
