// The CUDA backend's entries (one file per family, like the CPU backend's).
#pragma once

#include "cuda_common.cuh"

extern "C" {
#include "lm_alloc.h"
void *lm_cuda_alloc(size_t bytes);
void lm_cuda_free(void *ptr, size_t bytes);
}

lm_status cu_upload(lm_tensor *dst, const void *host);
lm_status cu_download(void *host, const lm_tensor *src);
lm_status cu_copy(lm_tensor *dst, const lm_tensor *src);
lm_status cu_fill(lm_tensor *dst, double value);
lm_status cu_unary(lm_unary_op op, lm_tensor *out, const lm_tensor *x, double p0, double p1);
lm_status cu_binary(lm_binary_op op, lm_tensor *out, const lm_tensor *a, const lm_tensor *b);
lm_status cu_binary_scalar(lm_binary_op op, lm_tensor *out, const lm_tensor *a, double s,
                           bool scalar_first);
lm_status cu_unary_backward(lm_unary_op op, lm_tensor *gx, const lm_tensor *g, const lm_tensor *x,
                            const lm_tensor *y, double p0);
lm_status cu_where(lm_tensor *out, const lm_tensor *cond, const lm_tensor *a, const lm_tensor *b);
lm_status cu_reduce(lm_reduce_op op, lm_tensor *out, lm_tensor *indices, const lm_tensor *x,
                    int dim);
lm_status cu_matmul(lm_tensor *out, const lm_tensor *a, const lm_tensor *b, float alpha, float beta);
lm_status cu_random(lm_random_kind kind, lm_tensor *out, uint64_t seed, uint64_t offset, double p0,
                    double p1);
lm_status cu_dropout(lm_tensor *out, lm_tensor *mask, const lm_tensor *x, uint64_t seed,
                     uint64_t offset, double keep);
lm_status cu_softmax(lm_tensor *out, const lm_tensor *x, bool log);
lm_status cu_softmax_backward(lm_tensor *gx, const lm_tensor *g, const lm_tensor *y, bool log);
lm_status cu_im2col(lm_tensor *cols, const lm_tensor *x, const lm_conv_geometry *geo);
lm_status cu_col2im(lm_tensor *gx, const lm_tensor *cols, const lm_conv_geometry *geo);
lm_status cu_pool2d(lm_tensor *out, lm_tensor *argmax, const lm_tensor *x,
                    const lm_conv_geometry *geo);
lm_status cu_pool2d_backward(lm_tensor *gx, const lm_tensor *g, const lm_tensor *argmax,
                             const lm_conv_geometry *geo);
lm_status cu_index_select(lm_tensor *out, const lm_tensor *x, const lm_tensor *idx);
lm_status cu_topk(lm_tensor *values, lm_tensor *indices, const lm_tensor *x, int64_t k,
                  bool largest);
lm_status cu_one_hot(lm_tensor *out, const lm_tensor *labels);
lm_status cu_optim_step(const lm_optim_params *p, lm_tensor *param, const lm_tensor *grad,
                        lm_tensor *s1, lm_tensor *s2);
lm_status cu_optim_step_many(const lm_optim_params *p, int n, lm_tensor *const *params,
                             const lm_tensor *const *grads, lm_tensor *const *s1,
                             lm_tensor *const *s2);
lm_status cu_conv2d(lm_tensor *out, const lm_tensor *x, const lm_tensor *w,
                    const lm_conv_geometry *geo);
lm_status cu_conv2d_backward(lm_tensor *gx, lm_tensor *gw, const lm_tensor *g, const lm_tensor *x,
                             const lm_tensor *w, const lm_conv_geometry *geo);
