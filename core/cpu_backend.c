/* The CPU backend table (the registry is lm_backend.c). */
#include <string.h>

#include "cpu_backend.h"
#include "lm_alloc.h"

static lm_status cpu_upload(lm_tensor *dst, const void *host) {
    memcpy(lm_tensor_data(dst), host, (size_t)lm_tensor_numel(dst) * lm_dtype_size(dst->dtype));
    return LM_OK;
}

static lm_status cpu_download(void *host, const lm_tensor *src) {
    memcpy(host, lm_tensor_data(src), (size_t)lm_tensor_numel(src) * lm_dtype_size(src->dtype));
    return LM_OK;
}

static const lm_backend cpu = {
    .name = "cpu",
    .device = LM_CPU,
    .alloc = lm_cpu_alloc,
    .free = lm_cpu_free,
    .copy = lm_cpu_copy,
    .fill = lm_cpu_fill,
    .upload = cpu_upload,
    .download = cpu_download,
    .unary = lm_cpu_unary,
    .binary = lm_cpu_binary,
    .binary_scalar = lm_cpu_binary_scalar,
    .unary_backward = lm_cpu_unary_backward,
    .where = lm_cpu_where,
    .reduce = lm_cpu_reduce,
    .matmul = lm_cpu_matmul,
    .matmul_pair = lm_cpu_matmul_pair,
    .linear_act = lm_cpu_linear_act,
    .linear_act_backward = lm_cpu_linear_act_backward,
    .self_attention = lm_cpu_self_attention,
    .self_attention_backward = lm_cpu_self_attention_backward,
    .layer_norm = lm_cpu_layer_norm,
    .layer_norm_backward = lm_cpu_layer_norm_backward,
    .random = lm_cpu_random,
    .dropout = lm_cpu_dropout,
    .softmax = lm_cpu_softmax,
    .softmax_backward = lm_cpu_softmax_backward,
    .im2col = lm_cpu_im2col,
    .col2im = lm_cpu_col2im,
    .pool2d = lm_cpu_pool2d,
    .pool2d_backward = lm_cpu_pool2d_backward,
    .index_select = lm_cpu_index_select,
    .gather = lm_cpu_gather,
    .scatter_add = lm_cpu_scatter_add,
    .cumsum = lm_cpu_cumsum,
    .resample = lm_cpu_resample,
    .resample_backward = lm_cpu_resample_backward,
    .resample2d = lm_cpu_resample2d,
    .resample2d_backward = lm_cpu_resample2d_backward,
    .sq_diff_rows = lm_cpu_sq_diff_rows,
    .mmd = lm_cpu_mmd,
    .topk = lm_cpu_topk,
    .one_hot = lm_cpu_one_hot,
    .optim_step = lm_cpu_optim_step,
    .optim_step_many = lm_cpu_optim_step_many,
    .batch_norm = lm_cpu_batch_norm,
    .batch_norm_backward = lm_cpu_batch_norm_backward,
    .channel_affine = lm_cpu_channel_affine,
    .conv2d = lm_cpu_conv2d,
    .conv2d_affine = lm_cpu_conv2d_affine,
    .conv2d_backward = lm_cpu_conv2d_backward,
};

const lm_backend *lm_cpu_backend(void) {
    return &cpu;
}
