/* Matrix products through cblas_sgemm (OpenBLAS).
 * The front (ops_matmul.c) hands over 3-D operands whose matrices have a unit
 * stride in one of their two dimensions, so every slice maps onto BLAS as a
 * plain or transposed matrix without a copy. */
#include <cblas.h>

#include <stdbool.h>
#include <string.h>

#include "cpu_backend.h"
#include "lm_threads.h"

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

/* One sgemm split over Lumen's threads: OpenBLAS itself runs single-threaded
 * (lm_threads.c), so its idle workers never spin against ours; each thread
 * multiplies a block of rows (or columns) of the output. A row-major C is
 * OpenBLAS's column-major C^T, so our columns run along its 16-wide register
 * tile and our rows along its 4-wide one: blocks are 16 columns or 4 rows. */
typedef struct {
    enum CBLAS_TRANSPOSE ta, tb;
    int M, N, K, lda, ldb, ldc;
    float alpha, beta;
    const float *a, *b;
    float *c;
    const float *bias;         /* NULL, or N values added to every row of C (beta is then 1) */
    lm_gemm_epilogue epilogue; /* NULL, or run on each block of C once it is written */
    void *epilogue_ctx;
    bool by_rows;
    int block; /* rows or columns a block, set by sgemm_parallel */
} gemm_job;

#define GEMM_ROW_BLOCK 4
#define GEMM_COLUMN_BLOCK 16

/* Writes the bias into the block of C that this thread then accumulates
 * into: the rows stay in this core's cache, and no separate pass over C
 * runs before the product (a Linear 200 -> 200 of a batch of 128 on 2
 * threads: 37.7 us with that pass, 35.1 without). */
static void fill_bias(const gemm_job *j, int row_lo, int row_hi, int col_lo, int col_hi) {
    size_t bytes = (size_t)(col_hi - col_lo) * sizeof(float);
    for (int r = row_lo; r < row_hi; r++)
        memcpy(j->c + (int64_t)r * j->ldc + col_lo, j->bias + col_lo, bytes);
}

static void gemm_blocks(void *ctx, int64_t begin, int64_t end) {
    const gemm_job *j = ctx;
    int lo = (int)begin * j->block, hi = (int)end * j->block;
    if (j->by_rows) {
        if (hi > j->M) hi = j->M;
        if (j->bias) fill_bias(j, lo, hi, 0, j->N);
        const float *a = j->ta == CblasNoTrans ? j->a + (int64_t)lo * j->lda : j->a + lo;
        cblas_sgemm(CblasRowMajor, j->ta, j->tb, hi - lo, j->N, j->K, j->alpha, a, j->lda, j->b,
                    j->ldb, j->beta, j->c + (int64_t)lo * j->ldc, j->ldc);
        if (j->epilogue) j->epilogue(j->epilogue_ctx, lo, hi, 0, j->N);
    } else {
        if (hi > j->N) hi = j->N;
        if (j->bias) fill_bias(j, 0, j->M, lo, hi);
        const float *b = j->tb == CblasNoTrans ? j->b + lo : j->b + (int64_t)lo * j->ldb;
        cblas_sgemm(CblasRowMajor, j->ta, j->tb, j->M, hi - lo, j->K, j->alpha, j->a, j->lda, b,
                    j->ldb, j->beta, j->c + lo, j->ldc);
        if (j->epilogue) j->epilogue(j->epilogue_ctx, 0, j->M, lo, hi);
    }
}

/* The most elements of an operand that every thread may repack for a
 * better balanced split (256 KB: a core's L2). */
#define GEMM_REPACK_MAX 65536

/* Below this many multiply-adds a split costs more than it saves. */
#define GEMM_SPLIT_MIN_MACS (1 << 18)

/* The share of a `len`-long dimension that its largest part gets when cut
 * into `block`-sized blocks over `threads` threads, against the even share:
 * 1 is balanced, 112 of 200 columns on 2 threads is 1.12. */
static double split_imbalance(int64_t len, int block, int threads) {
    int64_t blocks = (len + block - 1) / block;
    int chunks = blocks < threads ? (int)blocks : threads;
    int64_t largest = (blocks + chunks - 1) / chunks * block;
    if (largest > len) largest = len;
    return (double)largest * threads / (double)len;
}

static void sgemm_parallel(gemm_job *j) {
    int threads = lm_get_num_threads(); /* the first call also makes OpenBLAS single-threaded */
    int64_t macs = (int64_t)j->M * j->N * j->K;
    if (threads == 1 || macs < GEMM_SPLIT_MIN_MACS) { /* one call over all the rows */
        j->by_rows = true;
        j->block = j->M;
        gemm_blocks(j, 0, 1);
        return;
    }
    /* splitting the rows repacks all of B in every thread, splitting the
     * columns all of A: cut the dimension that repacks the smaller operand,
     * unless that leaves a thread 5 % over its share, the other cut is
     * better balanced and the operand it repacks is small enough to stay in
     * cache (a batch of 128 rows by 200 columns from 200 inputs: 64 / 64
     * rows, not 112 / 88 columns, 15 % faster on 2 threads; from 2400
     * inputs, repacking the 2400 x 200 operand twice costs more than the
     * imbalance) */
    double rows = split_imbalance(j->M, GEMM_ROW_BLOCK, threads);
    double columns = split_imbalance(j->N, GEMM_COLUMN_BLOCK, threads);
    int64_t a_size = (int64_t)j->M * j->K, b_size = (int64_t)j->K * j->N;
    j->by_rows = j->M >= j->N;
    if (j->by_rows && rows > 1.05 && columns < rows && a_size <= GEMM_REPACK_MAX)
        j->by_rows = false;
    if (!j->by_rows && columns > 1.05 && rows < columns && b_size <= GEMM_REPACK_MAX)
        j->by_rows = true;
    j->block = j->by_rows ? GEMM_ROW_BLOCK : GEMM_COLUMN_BLOCK;
    int64_t blocks = ((j->by_rows ? j->M : j->N) + j->block - 1) / j->block;
    lm_parallel_for(blocks, 1, gemm_blocks, j);
}

void lm_cpu_sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                  const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c,
                  int64_t ldc) {
    gemm_job j = {trans_a ? CblasTrans : CblasNoTrans,
                  trans_b ? CblasTrans : CblasNoTrans,
                  (int)M,
                  (int)N,
                  (int)K,
                  (int)lda,
                  (int)ldb,
                  (int)ldc,
                  alpha,
                  beta,
                  a,
                  b,
                  c,
                  NULL,
                  NULL,
                  NULL,
                  false,
                  0};
    sgemm_parallel(&j);
}

void lm_cpu_linear_gemm(float *c, const float *x, const float *w, const float *bias, int64_t M,
                        int64_t N, int64_t K, lm_gemm_epilogue epilogue, void *epilogue_ctx) {
    gemm_job j = {.ta = CblasNoTrans,
                  .tb = CblasTrans, /* w [N, K] is the product's [K, N] transposed */
                  .M = (int)M,
                  .N = (int)N,
                  .K = (int)K,
                  .lda = (int)K,
                  .ldb = (int)K,
                  .ldc = (int)N,
                  .alpha = 1.0f,
                  .beta = bias ? 1.0f : 0.0f,
                  .a = x,
                  .b = w,
                  .c = c,
                  .bias = bias,
                  .epilogue = epilogue,
                  .epilogue_ctx = epilogue_ctx};
    sgemm_parallel(&j);
}

/* The product of matrix i of a batch: out (B, M, N) = a (B|1, M, K) @ b (B|1, K, N)
 * (+ bias [N] on every row when given, in place of beta * out). */
static gemm_job batch_job(const lm_tensor *out, const lm_tensor *a, const lm_tensor *b, int64_t i,
                          float alpha, float beta, const lm_tensor *bias) {
    int64_t M = out->shape[1], N = out->shape[2], K = a->shape[2];
    enum CBLAS_TRANSPOSE ta, tb;
    int64_t lda, ldb;
    blas_layout(M, K, a->strides[1], a->strides[2], &ta, &lda);
    blas_layout(K, N, b->strides[1], b->strides[2], &tb, &ldb);
    gemm_job j = {ta,
                  tb,
                  (int)M,
                  (int)N,
                  (int)K,
                  (int)lda,
                  (int)ldb,
                  (int)out->strides[1],
                  alpha,
                  bias ? 1.0f : beta,
                  lm_tensor_f32(a) + (a->shape[0] > 1 ? i * a->strides[0] : 0),
                  lm_tensor_f32(b) + (b->shape[0] > 1 ? i * b->strides[0] : 0),
                  lm_tensor_f32(out) + i * out->strides[0],
                  lm_tensor_f32_or_null(bias),
                  NULL,
                  NULL,
                  true,
                  (int)M};
    return j;
}

lm_status lm_cpu_matmul(lm_tensor *out, const lm_tensor *a, const lm_tensor *b, float alpha,
                        float beta, const lm_tensor *bias) {
    for (int64_t i = 0; i < out->shape[0]; i++) {
        gemm_job j = batch_job(out, a, b, i, alpha, beta, bias);
        sgemm_parallel(&j);
    }
    return LM_OK;
}

/* Two products side by side, one whole product a thread: no operand is
 * repacked twice and both share one synchronisation. A layer's two
 * gradients (equal in size) are small enough that a split of each scales
 * poorly: 128 x 200 x 200 takes 62 us on one thread and 41 us split over
 * two, so two of them take 82 us one after the other and about 62 side by
 * side. With more than two threads only products below this size pair up;
 * larger ones split over all the threads. */
#define GEMM_PAIR_MAX_MACS (1 << 23)

static void whole_jobs(void *ctx, int64_t begin, int64_t end) {
    gemm_job *jobs = ctx;
    for (int64_t i = begin; i < end; i++) gemm_blocks(&jobs[i], 0, 1); /* block = M: all rows */
}

lm_status lm_cpu_matmul_pair(lm_tensor *out1, const lm_tensor *a1, const lm_tensor *b1,
                             lm_tensor *out2, const lm_tensor *a2, const lm_tensor *b2) {
    gemm_job jobs[2] = {batch_job(out1, a1, b1, 0, 1.0f, 0.0f, NULL),
                        batch_job(out2, a2, b2, 0, 1.0f, 0.0f, NULL)};
    int threads = lm_get_num_threads();
    int64_t macs[2];
    for (int i = 0; i < 2; i++) macs[i] = (int64_t)jobs[i].M * jobs[i].N * jobs[i].K;
    int64_t small = macs[0] < macs[1] ? macs[0] : macs[1], large = macs[0] + macs[1] - small;
    /* side by side when both are worth a thread and neither waits long for
     * the other (a layer's two gradients are equal) */
    if (threads >= 2 && small >= GEMM_SPLIT_MIN_MACS && large <= 2 * small &&
        (threads == 2 || large <= GEMM_PAIR_MAX_MACS)) {
        lm_parallel_for(2, 1, whole_jobs, jobs);
        return LM_OK;
    }
    for (int i = 0; i < 2; i++) sgemm_parallel(&jobs[i]);
    return LM_OK;
}
