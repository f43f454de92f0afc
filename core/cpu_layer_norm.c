/* Layer normalisation over the last `cols` values of each row, in one pass
 * a row forward and one backward (lm_ag_layer_norm), instead of the nine
 * elementwise ops and reductions of its composed form, each with its own
 * pass and its own gradient. The arithmetic is the composed form's: the
 * mean and the (biased) variance of the centred values as float32 from
 * double sums, then centred / sqrt(var + eps). The weight and bias
 * gradients are column sums over rows, taken in fixed blocks of rows whose
 * partial sums are added in order, in double: the same bits at any thread
 * count. */
#include <math.h>

#include "cpu_backend.h"
#include "lm_alloc.h"
#include "lm_threads.h"

#define LANES 16
/* rows a block of the weight gradient's partial sums */
#define GRAD_BLOCK_ROWS 64

/* sum of a[c] or of a[c] * a[c] (the float product), in double, in LANES
 * partial sums: the loops vectorise, and the order is fixed */
static double lane_sum(const float *a, int64_t n, bool squares) {
    double lane[LANES] = {0};
    int64_t c = 0;
    for (; c + LANES <= n; c += LANES) {
        if (squares)
            for (int l = 0; l < LANES; l++) lane[l] += (double)(a[c + l] * a[c + l]);
        else
            for (int l = 0; l < LANES; l++) lane[l] += a[c + l];
    }
    double sum = 0;
    for (int l = 0; l < LANES; l++) sum += lane[l];
    for (; c < n; c++) sum += squares ? (double)(a[c] * a[c]) : a[c];
    return sum;
}

typedef struct {
    int64_t rows, cols, blocks;
    float eps;
    const float *x, *w, *b, *g;
    float *y, *stats; /* stats: [rows, 2] = mean, sqrt(var + eps) */
    float *gx;        /* backward: */
    float *partials;  /* [2, blocks, cols]: g xhat and g summed over each block */
    float *scratch;   /* cols floats a slot */
} ln_job;

static void forward_rows(void *ctx, int64_t r0, int64_t r1) {
    const ln_job *j = ctx;
    int64_t n = j->cols;
    for (int64_t r = r0; r < r1; r++) {
        const float *x = j->x + r * n;
        float *y = j->y + r * n;
        float mean = (float)(lane_sum(x, n, false) / (double)n);
        for (int64_t c = 0; c < n; c++) y[c] = x[c] - mean; /* centred, in y */
        float var = (float)(lane_sum(y, n, true) / (double)n);
        float sd = sqrtf(var + j->eps);
        for (int64_t c = 0; c < n; c++) y[c] = y[c] / sd;
        if (j->w)
            for (int64_t c = 0; c < n; c++) y[c] = y[c] * j->w[c];
        if (j->b)
            for (int64_t c = 0; c < n; c++) y[c] = y[c] + j->b[c];
        j->stats[2 * r] = mean;
        j->stats[2 * r + 1] = sd;
    }
}

lm_status lm_cpu_layer_norm(lm_tensor *y, lm_tensor *stats, const lm_tensor *x, const lm_tensor *w,
                            const lm_tensor *b, double eps) {
    int64_t cols = stats->shape[0] ? lm_tensor_numel(x) / stats->shape[0] : 0;
    ln_job j = {.rows = stats->shape[0],
                .cols = cols,
                .eps = (float)eps,
                .x = lm_tensor_f32(x),
                .w = lm_tensor_f32_or_null(w),
                .b = lm_tensor_f32_or_null(b),
                .y = lm_tensor_f32(y),
                .stats = lm_tensor_f32(stats)};
    if (cols > 0)
        lm_parallel_for(stats->shape[0], LM_GRAIN_ELEMENTWISE / cols + 1, forward_rows, &j);
    return LM_OK;
}

/* Row r's gx: with xhat = (x - mean) / sd and h = g w,
 * gx = (h - mean(h) - xhat mean(h xhat)) / sd; adds g xhat and g to the
 * block's partial sums pw and pb (when the weight's or the bias's gradient
 * is wanted). */
static void backward_row(const ln_job *j, int64_t r, float *h, float *pw, float *pb) {
    int64_t n = j->cols;
    const float *x = j->x + r * n, *g = j->g + r * n;
    float *gx = j->gx + r * n;
    float mean = j->stats[2 * r], sd = j->stats[2 * r + 1];
    for (int64_t c = 0; c < n; c++) h[c] = j->w ? g[c] * j->w[c] : g[c];
    for (int64_t c = 0; c < n; c++) gx[c] = (x[c] - mean) / sd; /* xhat, in gx */
    if (pw) {
        for (int64_t c = 0; c < n; c++) pw[c] += g[c] * gx[c];
        for (int64_t c = 0; c < n; c++) pb[c] += g[c];
    }
    double lane_h[LANES] = {0}, lane_hx[LANES] = {0}, h_sum = 0, hx_sum = 0;
    int64_t c = 0;
    for (; c + LANES <= n; c += LANES)
        for (int l = 0; l < LANES; l++) {
            lane_h[l] += h[c + l];
            lane_hx[l] += (double)(h[c + l] * gx[c + l]);
        }
    for (int l = 0; l < LANES; l++) h_sum += lane_h[l], hx_sum += lane_hx[l];
    for (; c < n; c++) h_sum += h[c], hx_sum += (double)(h[c] * gx[c]);
    float a = (float)(h_sum / (double)n), b = (float)(hx_sum / (double)n);
    for (c = 0; c < n; c++) gx[c] = (h[c] - a - gx[c] * b) / sd;
}

/* blocks [k0, k1) of GRAD_BLOCK_ROWS rows, each with its own partial sums */
static void backward_blocks(void *ctx, int64_t k0, int64_t k1, int slot) {
    const ln_job *j = ctx;
    int64_t n = j->cols;
    float *h = j->scratch + (int64_t)slot * n;
    for (int64_t k = k0; k < k1; k++) {
        float *pw = j->partials ? j->partials + k * n : NULL;
        float *pb = j->partials ? j->partials + (j->blocks + k) * n : NULL;
        if (pw)
            for (int64_t c = 0; c < n; c++) pw[c] = pb[c] = 0.0f;
        int64_t r1 = (k + 1) * GRAD_BLOCK_ROWS < j->rows ? (k + 1) * GRAD_BLOCK_ROWS : j->rows;
        for (int64_t r = k * GRAD_BLOCK_ROWS; r < r1; r++) backward_row(j, r, h, pw, pb);
    }
}

typedef struct {
    float *dst;
    const float *partials;
    int64_t blocks, cols;
} block_sum_job;

/* dst[c] = the sum over blocks of partials[k][c], in double and in block
 * order (float would lose digits over a million rows' blocks), 64 columns
 * at a time */
static void block_sum_range(void *ctx, int64_t c0, int64_t c1) {
    const block_sum_job *j = ctx;
    for (int64_t lo = c0; lo < c1; lo += 64) {
        int64_t hi = lo + 64 < c1 ? lo + 64 : c1;
        double acc[64] = {0};
        for (int64_t k = 0; k < j->blocks; k++) {
            const float *p = j->partials + k * j->cols;
            for (int64_t c = lo; c < hi; c++) acc[c - lo] += p[c];
        }
        for (int64_t c = lo; c < hi; c++) j->dst[c] = (float)acc[c - lo];
    }
}

static void sum_blocks(float *dst, const float *partials, int64_t blocks, int64_t cols) {
    block_sum_job j = {dst, partials, blocks, cols};
    lm_parallel_for(cols, LM_GRAIN_ELEMENTWISE / (blocks + 1) + 1, block_sum_range, &j);
}

lm_status lm_cpu_layer_norm_backward(lm_tensor *gx, lm_tensor *gw, lm_tensor *gb,
                                     const lm_tensor *g, const lm_tensor *x, const lm_tensor *stats,
                                     const lm_tensor *w) {
    int64_t rows = stats->shape[0], cols = rows ? lm_tensor_numel(x) / rows : 0;
    ln_job j = {.rows = rows,
                .cols = cols,
                .x = lm_tensor_f32(x),
                .w = lm_tensor_f32_or_null(w),
                .g = lm_tensor_f32(g),
                .stats = lm_tensor_f32(stats),
                .gx = lm_tensor_f32(gx)};
    if (rows == 0 || cols == 0) return LM_OK; /* the caller zeroed gw and gb */
    j.blocks = (rows + GRAD_BLOCK_ROWS - 1) / GRAD_BLOCK_ROWS;
    int slots = lm_parallel_chunks(j.blocks, 1);
    size_t scratch_bytes = (size_t)(slots * cols) * sizeof(float);
    size_t partial_bytes = gw || gb ? (size_t)(2 * j.blocks * cols) * sizeof(float) : 0;
    j.scratch = lm_cpu_alloc(scratch_bytes);
    j.partials = partial_bytes ? lm_cpu_alloc(partial_bytes) : NULL;
    if (!j.scratch || (partial_bytes && !j.partials)) {
        lm_cpu_free(j.scratch, scratch_bytes);
        lm_cpu_free(j.partials, partial_bytes);
        return LM_ERR_MEMORY;
    }
    lm_parallel_for_slots(j.blocks, slots, backward_blocks, &j);
    if (gw) sum_blocks(lm_tensor_f32(gw), j.partials, j.blocks, cols);
    if (gb) sum_blocks(lm_tensor_f32(gb), j.partials + j.blocks * cols, j.blocks, cols);
    lm_cpu_free(j.scratch, scratch_bytes);
    lm_cpu_free(j.partials, partial_bytes);
    return LM_OK;
}
