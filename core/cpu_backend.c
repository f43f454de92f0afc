/* The CPU backend table and the device registry. */
#include <string.h>

#include "cpu_backend.h"
#include "lm_alloc.h"
#include "lm_cuda.h"

static lm_status cpu_upload(lm_tensor *dst, const void *host) {
    memcpy(lm_tensor_f32(dst), host, (size_t)lm_tensor_numel(dst) * lm_dtype_size(dst->dtype));
    return LM_OK;
}

static lm_status cpu_download(void *host, const lm_tensor *src) {
    memcpy(host, lm_tensor_f32(src), (size_t)lm_tensor_numel(src) * lm_dtype_size(src->dtype));
    return LM_OK;
}

static const lm_backend cpu = {
    .name = "cpu",
    .device = LM_CPU,
    .alloc = lm_cpu_alloc,
    .free = lm_cpu_free,
    .copy = cpu_copy,
    .fill = cpu_fill,
    .upload = cpu_upload,
    .download = cpu_download,
    .unary = cpu_unary,
    .binary = cpu_binary,
    .binary_scalar = cpu_binary_scalar,
    .unary_backward = cpu_unary_backward,
    .where = cpu_where,
    .reduce = cpu_reduce,
    .matmul = cpu_matmul,
    .random = cpu_random,
    .dropout = cpu_dropout,
    .softmax = cpu_softmax,
    .softmax_backward = cpu_softmax_backward,
    .im2col = cpu_im2col,
    .col2im = cpu_col2im,
    .pool2d = cpu_pool2d,
    .pool2d_backward = cpu_pool2d_backward,
    .index_select = cpu_index_select,
    .topk = cpu_topk,
    .one_hot = cpu_one_hot,
    .optim_step = cpu_optim_step,
};

const lm_backend *lm_cpu_backend(void) { return &cpu; }

const lm_backend *lm_backend_get(lm_device device) {
    if (device == LM_CPU) return &cpu;
    const lm_backend *cuda = lm_cuda_backend();
    return cuda; /* NULL with the reason in lm_last_error */
}
