/* Matrix products through cblas_sgemm (OpenBLAS).
 * The front (ops_matmul.c) hands over 3-D operands whose matrices have a unit
 * stride in one of their two dimensions, so every slice maps onto BLAS as a
 * plain or transposed matrix without a copy. */
#include <cblas.h>

#include "cpu_backend.h"

/* BLAS view of a (rows x cols) matrix with the given strides. */
static void blas_layout(int64_t rows, int64_t cols, int64_t s_row, int64_t s_col,
                        enum CBLAS_TRANSPOSE *trans, int64_t *ld) {
    if (s_col == 1 && s_row >= (cols > 1 ? cols : 1)) {
        *trans = CblasNoTrans;
        *ld = s_row;
    } else {
        *trans = CblasTrans; /* s_row == 1: column-major storage */
        *ld = s_col;
    }
    (void)rows;
}

lm_status cpu_matmul(lm_tensor *out, const lm_tensor *a, const lm_tensor *b, float alpha,
                     float beta) {
    /* out (B, M, N) = a (B|1, M, K) @ b (B|1, K, N) */
    int64_t batch = out->shape[0], M = out->shape[1], N = out->shape[2], K = a->shape[2];
    enum CBLAS_TRANSPOSE ta, tb;
    int64_t lda, ldb;
    blas_layout(M, K, a->strides[1], a->strides[2], &ta, &lda);
    blas_layout(K, N, b->strides[1], b->strides[2], &tb, &ldb);
    const float *ap = lm_tensor_f32(a), *bp = lm_tensor_f32(b);
    float *op = lm_tensor_f32(out);
    for (int64_t i = 0; i < batch; i++) {
        const float *ai = ap + (a->shape[0] > 1 ? i * a->strides[0] : 0);
        const float *bi = bp + (b->shape[0] > 1 ? i * b->strides[0] : 0);
        float *oi = op + i * out->strides[0];
        cblas_sgemm(CblasRowMajor, ta, tb, (int)M, (int)N, (int)K, alpha, ai, (int)lda, bi,
                    (int)ldb, beta, oi, (int)out->strides[1]);
    }
    return LM_OK;
}
