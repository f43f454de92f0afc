// Matrix products through cublasSgemmStridedBatched. The front hands over
// 3-D operands whose matrices have a unit stride in one dimension (see
// core/cpu_matmul.c); cuBLAS is column-major, so the row-major product
// out = a @ b is computed as out^T = b^T a^T without copies.
#include "cuda_backend.h"

// cuBLAS operation and leading dimension for a (rows x cols) row-major
// matrix with the given strides, seen as a column-major one.
static void blas_layout(int64_t cols, int64_t s_row, int64_t s_col, cublasOperation_t *op,
                        int64_t *ld) {
    if (s_col == 1 && s_row >= (cols > 1 ? cols : 1)) {
        *op = CUBLAS_OP_N; /* row-major = column-major transposed: no flag needed */
        *ld = s_row;
    } else {
        *op = CUBLAS_OP_T;
        *ld = s_col;
    }
}

lm_status lm_cuda_matmul(lm_tensor *out, const lm_tensor *a, const lm_tensor *b, float alpha,
                         float beta, const lm_tensor *bias) {
    /* out (B, M, N) = a (B|1, M, K) @ b (B|1, K, N) */
    int64_t batch = out->shape[0], M = out->shape[1], N = out->shape[2], K = a->shape[2];
    if (batch == 0 || M == 0 || N == 0) return LM_OK;
    if (bias) { /* the bias broadcast over the rows first, then accumulated into */
        lm_tensor *rows;
        LM_TRY(lm_tensor_expand(&rows, (lm_tensor *)bias, 3, out->shape));
        lm_status s = lm_cuda_copy(out, rows);
        lm_tensor_release(rows);
        LM_TRY(s);
        beta = 1.0f;
    }
    cublasOperation_t opa, opb;
    int64_t lda, ldb;
    blas_layout(K, a->strides[1], a->strides[2], &opa, &lda);
    blas_layout(N, b->strides[1], b->strides[2], &opb, &ldb);
    long long sa = a->shape[0] > 1 ? a->strides[0] : 0, sb = b->shape[0] > 1 ? b->strides[0] : 0;
    cublasHandle_t h = (cublasHandle_t)lm_cuda_blas();
    const cu_blas_api *blas = lm_cuda_blas_fns();
    cublasStatus_t st;
    if (K == 0) /* cuBLAS rejects an empty inner dimension: out = beta * out */
        return beta == 0 ? lm_cuda_fill(out, 0)
                         : lm_cuda_binary_scalar(LM_MUL, out, out, beta, false);
    if (lm_autocast() == LM_AUTOCAST_BF16) {
        /* the core rounded both operands to bfloat16 (lm_autocast.h), so
         * the bfloat16 tensor cores compute them exactly, in float32 sums */
        const cublasComputeType_t ct = CUBLAS_COMPUTE_32F_FAST_16BF;
        if (batch == 1)
            st = blas->gemm_ex(h, opb, opa, (int)N, (int)M, (int)K, &alpha, cu_f32(b), CUDA_R_32F,
                               (int)ldb, cu_f32(a), CUDA_R_32F, (int)lda, &beta, cu_f32(out),
                               CUDA_R_32F, (int)out->strides[1], ct, CUBLAS_GEMM_DEFAULT);
        else
            st = blas->gemm_strided_batched_ex(
                h, opb, opa, (int)N, (int)M, (int)K, &alpha, cu_f32(b), CUDA_R_32F, (int)ldb, sb,
                cu_f32(a), CUDA_R_32F, (int)lda, sa, &beta, cu_f32(out), CUDA_R_32F,
                (int)out->strides[1], (long long)out->strides[0], (int)batch, ct,
                CUBLAS_GEMM_DEFAULT);
        if (st != CUBLAS_STATUS_SUCCESS)
            return lm_cuda_blas_fail(st, "matmul (cublasGemmEx, bf16)");
        return LM_OK;
    }
    if (batch == 1)
        st = blas->sgemm(h, opb, opa, (int)N, (int)M, (int)K, &alpha, cu_f32(b), (int)ldb,
                         cu_f32(a), (int)lda, &beta, cu_f32(out), (int)out->strides[1]);
    else
        st = blas->sgemm_strided_batched(h, opb, opa, (int)N, (int)M, (int)K, &alpha, cu_f32(b),
                                         (int)ldb, sb, cu_f32(a), (int)lda, sa, &beta, cu_f32(out),
                                         (int)out->strides[1], (long long)out->strides[0],
                                         (int)batch);
    if (st != CUBLAS_STATUS_SUCCESS) return lm_cuda_blas_fail(st, "matmul (cublasSgemm)");
    return LM_OK;
}
