// The CUDA backend table, the cuBLAS handle and the device-wide switches.
#include "cuda_backend.h" /* (cuda_common.cuh includes cuBLAS's header) */

extern "C" {
#include "lm_cuda.h"
}

#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

namespace {

cublasHandle_t blas;
cu_blas_api api;
bool tf32;

lm_backend table;

} // namespace

cublasContext *lm_cuda_blas(void) {
    return blas;
}
const cu_blas_api *lm_cuda_blas_fns(void) {
    return &api;
}

// cuBLAS is opened at the first CUDA use, not linked: loading it maps and
// relocates ~200 MB, which every CPU-only run would otherwise pay.
static lm_status load_cublas(void) {
#ifdef LM_CUDA_EMULATED /* the whole backend on the CPU: OpenBLAS stands in */
    api = *cu_emu_blas_fns();
    return LM_OK;
#endif
    // the major version the headers were (cuBLAS 12 and 13 can sit side by side)
#define LM_STR_(x) #x
#define LM_STR(x) LM_STR_(x)
    const char *names[] = {"libcublas.so." LM_STR(CUBLAS_VER_MAJOR), "libcublas.so"};
    void *lib = NULL;
    for (int i = 0; i < 2 && !lib; i++) lib = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
    if (!lib)
        return lm_fail(LM_ERR_DEVICE, "the CUDA backend needs cuBLAS, which did not load: %s",
                       dlerror());
    struct {
        void **slot;
        const char *name;
    } fns[] = {
        {(void **)&api.create, "cublasCreate_v2"},
        {(void **)&api.set_math_mode, "cublasSetMathMode"},
        {(void **)&api.set_stream, "cublasSetStream_v2"},
        {(void **)&api.sgemm, "cublasSgemm_v2"},
        {(void **)&api.sgemm_strided_batched, "cublasSgemmStridedBatched"},
        {(void **)&api.status_string, "cublasGetStatusString"},
        {(void **)&api.gemm_ex, "cublasGemmEx"},
        {(void **)&api.gemm_strided_batched_ex, "cublasGemmStridedBatchedEx"},
    };
    for (auto &f : fns)
        if (!(*f.slot = dlsym(lib, f.name)))
            return lm_fail(LM_ERR_DEVICE, "cuBLAS lacks %s", f.name);
    return LM_OK;
}

lm_status lm_cuda_blas_fail(int status, const char *what) {
    return lm_fail(LM_ERR_DEVICE, "cuBLAS error in %s: %s", what,
                   api.status_string ? api.status_string((cublasStatus_t)status) : "?");
}

extern "C" lm_status lm_cuda_set_tf32(bool allowed) {
    tf32 = allowed;
    if (!blas) return LM_OK;
    cublasStatus_t st =
        api.set_math_mode(blas, allowed ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH);
    return st == CUBLAS_STATUS_SUCCESS ? LM_OK : lm_cuda_blas_fail(st, "cublasSetMathMode");
}

extern "C" bool lm_cuda_tf32(void) {
    return tf32;
}

extern "C" lm_status lm_cuda_synchronize(void) {
    if (!lm_cuda_available())
        return lm_fail(LM_ERR_DEVICE, "CUDA is not available: %s", lm_cuda_status());
    CU_TRY(cudaDeviceSynchronize(), "synchronize");
    return LM_OK;
}

// Creates the context, the cuBLAS handle and the table once, after the
// probe found a device; NULL with lm_last_error saying what failed.
extern "C" const lm_backend *lm_cuda_make_backend(void) {
    if (blas) return &table;
    cudaError_t err = cudaSetDevice(0);
    if (err == cudaSuccess) err = cudaFree(0); /* creates the context now, not mid-op */
    if (err != cudaSuccess) {
        lm_cuda_fail(err, "creating the CUDA context");
        return NULL;
    }
    if (load_cublas() != LM_OK) return NULL;
    cublasStatus_t st = api.create(&blas);
    if (st != CUBLAS_STATUS_SUCCESS) {
        blas = NULL;
        lm_cuda_blas_fail(st, "cublasCreate");
        return NULL;
    }
    lm_cuda_set_tf32(tf32);
    table.name = "cuda";
    table.device = LM_CUDA;
    table.alloc = lm_cuda_alloc;
    table.free = lm_cuda_free;
    table.copy = lm_cuda_copy;
    table.fill = lm_cuda_fill;
    table.upload = lm_cuda_upload;
    table.download = lm_cuda_download;
    table.unary = lm_cuda_unary;
    table.binary = lm_cuda_binary;
    table.binary_scalar = lm_cuda_binary_scalar;
    table.unary_backward = lm_cuda_unary_backward;
    table.where = lm_cuda_where;
    table.reduce = lm_cuda_reduce;
    table.matmul = lm_cuda_matmul;
    table.random = lm_cuda_random;
    table.dropout = lm_cuda_dropout;
    table.softmax = lm_cuda_softmax;
    table.softmax_backward = lm_cuda_softmax_backward;
    table.im2col = lm_cuda_im2col;
    table.col2im = lm_cuda_col2im;
    table.pool2d = lm_cuda_pool2d;
    table.pool2d_backward = lm_cuda_pool2d_backward;
    table.index_select = lm_cuda_index_select;
    table.gather = lm_cuda_gather;
    table.scatter_add = lm_cuda_scatter_add;
    table.cumsum = lm_cuda_cumsum;
    table.resample = lm_cuda_resample;
    table.resample_backward = lm_cuda_resample_backward;
    table.resample2d = lm_cuda_resample2d;
    table.resample2d_backward = lm_cuda_resample2d_backward;
    table.topk = lm_cuda_topk;
    table.one_hot = lm_cuda_one_hot;
    table.optim_step = lm_cuda_optim_step;
    table.optim_step_many = lm_cuda_optim_step_many;
    // LUMEN_CUDA_UNFUSED=1 leaves the fused layers out (the core composes
    // them of the entries above): a way around a fused kernel that fails on
    // some device, without a rebuild
    const char *unfused = getenv("LUMEN_CUDA_UNFUSED");
    if (!unfused || strcmp(unfused, "1") != 0) {
        table.batch_norm = lm_cuda_batch_norm;
        table.batch_norm_backward = lm_cuda_batch_norm_backward;
        table.channel_affine = lm_cuda_channel_affine;
        table.layer_norm = lm_cuda_layer_norm;
        table.layer_norm_backward = lm_cuda_layer_norm_backward;
        table.linear_act = lm_cuda_linear_act;
        table.linear_act_backward = lm_cuda_linear_act_backward;
        table.mmd = lm_cuda_mmd;
        table.sq_diff_rows = lm_cuda_sq_diff_rows;
        table.self_attention = lm_cuda_self_attention;
        table.self_attention_backward = lm_cuda_self_attention_backward;
    }
#ifdef LUMEN_HAVE_CUDNN
    table.conv2d = lm_cuda_conv2d;
    table.conv2d_backward = lm_cuda_conv2d_backward;
#endif
    return &table;
}
