/* cuBLAS for the CUDA emulator (cuda_emulator.h): the types and the
 * functions the CUDA backend calls, with OpenBLAS's column-major sgemm doing
 * the products, so that the backend's own layout logic (which operand is
 * transposed, the leading dimensions, batch strides) runs on the CPU and is
 * compared with the CPU backend. The bfloat16 compute types multiply in
 * float32 here: autocast's operands are already rounded, so the products
 * agree to float rounding. kernels/cuda_common.cuh builds the backend's
 * cuBLAS table from these. */
#ifndef LM_CUDA_EMULATOR_BLAS_H
#define LM_CUDA_EMULATOR_BLAS_H

#include <cblas.h>

typedef enum { CUBLAS_STATUS_SUCCESS = 0, CUBLAS_STATUS_INVALID_VALUE = 7 } cublasStatus_t;
typedef enum { CUBLAS_OP_N = 0, CUBLAS_OP_T = 1 } cublasOperation_t;
typedef enum { CUBLAS_DEFAULT_MATH = 0, CUBLAS_TF32_TENSOR_OP_MATH = 3 } cublasMath_t;
typedef enum { CUDA_R_32F = 0 } cudaDataType;
typedef enum { CUBLAS_COMPUTE_32F = 68, CUBLAS_COMPUTE_32F_FAST_16BF = 75 } cublasComputeType_t;
typedef enum { CUBLAS_GEMM_DEFAULT = -1 } cublasGemmAlgo_t;
struct cublasContext {
    int unused;
};
typedef cublasContext *cublasHandle_t;

#ifndef LM_CUDA_EMULATED_BACKEND /* (the whole backend has its own) */
#define lm_cuda_blas_fail cu_emu_blas_fail
#endif

inline cublasContext *cu_emu_blas_handle(void) {
    static cublasContext handle;
    return &handle;
}
inline cublasStatus_t cu_emu_blas_create(cublasHandle_t *h) {
    *h = cu_emu_blas_handle();
    return CUBLAS_STATUS_SUCCESS;
}
inline cublasStatus_t cu_emu_blas_set_math_mode(cublasHandle_t, cublasMath_t) {
    return CUBLAS_STATUS_SUCCESS;
}
inline cublasStatus_t cu_emu_blas_set_stream(cublasHandle_t, cudaStream_t stream) {
    cu_emu::blas_stream = stream;
    return CUBLAS_STATUS_SUCCESS;
}
inline const char *cu_emu_blas_status(cublasStatus_t s) {
    return s == CUBLAS_STATUS_SUCCESS ? "success (emulated)" : "invalid value (emulated)";
}
inline lm_status cu_emu_blas_fail(int status, const char *what) {
    return lm_fail(LM_ERR_DEVICE, "cuBLAS error in %s: %s", what,
                   cu_emu_blas_status((cublasStatus_t)status));
}

/* cuBLAS's argument checks that a wrong layout would trip: a leading
 * dimension shorter than the rows it holds */
inline bool cu_emu_gemm_args_ok(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                                int lda, int ldb, int ldc) {
    int a_rows = ta == CUBLAS_OP_N ? m : k, b_rows = tb == CUBLAS_OP_N ? k : n;
    auto at_least = [](int ld, int rows) { return ld >= (rows > 1 ? rows : 1); };
    return m >= 0 && n >= 0 && k >= 0 && at_least(lda, a_rows) && at_least(ldb, b_rows) &&
           at_least(ldc, m);
}

inline cublasStatus_t cu_emu_sgemm(cublasHandle_t, cublasOperation_t ta, cublasOperation_t tb,
                                   int m, int n, int k, const float *alpha, const float *a, int lda,
                                   const float *b, int ldb, const float *beta, float *c, int ldc) {
    if (!cu_emu_gemm_args_ok(ta, tb, m, n, k, lda, ldb, ldc)) return CUBLAS_STATUS_INVALID_VALUE;
    if (m == 0 || n == 0) return CUBLAS_STATUS_SUCCESS;
    /* under capture, recorded with alpha and beta as they are now (cuBLAS
     * reads host scalars when called) */
    float al = *alpha, be = *beta;
    if (cu_emu::deferred(cu_emu::blas_stream, [=] {
            cblas_sgemm(CblasColMajor, ta == CUBLAS_OP_N ? CblasNoTrans : CblasTrans,
                        tb == CUBLAS_OP_N ? CblasNoTrans : CblasTrans, m, n, k, al, a, lda, b, ldb,
                        be, c, ldc);
        }))
        return CUBLAS_STATUS_SUCCESS;
    cblas_sgemm(CblasColMajor, ta == CUBLAS_OP_N ? CblasNoTrans : CblasTrans,
                tb == CUBLAS_OP_N ? CblasNoTrans : CblasTrans, m, n, k, *alpha, a, lda, b, ldb,
                *beta, c, ldc);
    return CUBLAS_STATUS_SUCCESS;
}

inline cublasStatus_t cu_emu_sgemm_strided_batched(cublasHandle_t h, cublasOperation_t ta,
                                                   cublasOperation_t tb, int m, int n, int k,
                                                   const float *alpha, const float *a, int lda,
                                                   long long sa, const float *b, int ldb,
                                                   long long sb, const float *beta, float *c,
                                                   int ldc, long long sc, int batch) {
    for (int i = 0; i < batch; i++) {
        cublasStatus_t s = cu_emu_sgemm(h, ta, tb, m, n, k, alpha, a + i * sa, lda, b + i * sb, ldb,
                                        beta, c + i * sc, ldc);
        if (s != CUBLAS_STATUS_SUCCESS) return s;
    }
    return CUBLAS_STATUS_SUCCESS;
}

inline cublasStatus_t cu_emu_gemm_ex(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb,
                                     int m, int n, int k, const void *alpha, const void *a,
                                     cudaDataType, int lda, const void *b, cudaDataType, int ldb,
                                     const void *beta, void *c, cudaDataType, int ldc,
                                     cublasComputeType_t, cublasGemmAlgo_t) {
    return cu_emu_sgemm(h, ta, tb, m, n, k, (const float *)alpha, (const float *)a, lda,
                        (const float *)b, ldb, (const float *)beta, (float *)c, ldc);
}

inline cublasStatus_t
cu_emu_gemm_strided_batched_ex(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m,
                               int n, int k, const void *alpha, const void *a, cudaDataType,
                               int lda, long long sa, const void *b, cudaDataType, int ldb,
                               long long sb, const void *beta, void *c, cudaDataType, int ldc,
                               long long sc, int batch, cublasComputeType_t, cublasGemmAlgo_t) {
    return cu_emu_sgemm_strided_batched(h, ta, tb, m, n, k, (const float *)alpha, (const float *)a,
                                        lda, sa, (const float *)b, ldb, sb, (const float *)beta,
                                        (float *)c, ldc, sc, batch);
}

#endif
