/* The multi-scale MMD of two sample sets in one pass over all pairs, with its
 * gradients (F.mmd on the CPU; other devices compose it of elementwise ops).
 * A training step of the InfoVAE spent more time in the eighty-odd small ops
 * of that composition than in their arithmetic.
 *
 * Each row of z and of p is one job: it sums its row of every kernel matrix
 * and forms its own gradient, so results do not depend on the thread count.
 * The sets are copied transposed ([D][rows]) so the loops over pairs run
 * along contiguous coordinates and vectorise. */
#include <stdlib.h>

#include "cpu_backend.h"
#include "lm_fastmath.h"
#include "lm_threads.h"

/* pairs handled together by the inner loops (stack buffers) */
#define MMD_BLOCK 64

typedef struct {
    const float *zt, *pt; /* the sets transposed: zt[k * n + i] */
    int64_t n, m, d;
    const float *scales; /* -1 / (bw D) per bandwidth */
    int nscales;
    /* per row (z rows, then p rows): its kernel sums over its own set and the other */
    double *same, *cross;
    float *gz, *gp;  /* NULL: that gradient is not wanted */
    double *scratch; /* 2 d per row: its gradient sums over both sets */
} mmd_job;

/* Sums of k(x, s_c) over the columns of set st [d][count], x's coordinate q
 * at x[q * stride]; when g is not NULL, g[q] += sum_c k'(x, s_c) (x_q - s_cq)
 * with k' = dk/d(distance). */
static double kernel_row(const mmd_job *j, const float *x, int64_t stride, const float *st,
                         int64_t count, double *g) {
    double sum = 0;
    for (int64_t c0 = 0; c0 < count; c0 += MMD_BLOCK) {
        int len = (int)(count - c0 < MMD_BLOCK ? count - c0 : MMD_BLOCK);
        float dist[MMD_BLOCK], k[MMD_BLOCK], dk[MMD_BLOCK];
        for (int c = 0; c < len; c++) dist[c] = 0, k[c] = 0, dk[c] = 0;
        for (int64_t q = 0; q < j->d; q++) {
            const float *col = st + q * count + c0;
            float xq = x[q * stride];
            for (int c = 0; c < len; c++) {
                float diff = xq - col[c];
                dist[c] = lm_madd(diff, diff, dist[c]);
            }
        }
        for (int b = 0; b < j->nscales; b++) {
            float s = j->scales[b];
            for (int c = 0; c < len; c++) {
                float e = lm_fast_expf(s * dist[c]);
                k[c] += e;
                dk[c] = lm_madd(s, e, dk[c]);
            }
        }
        float block = 0;
        for (int c = 0; c < len; c++) block += k[c];
        sum += block;
        if (!g) continue;
        for (int64_t q = 0; q < j->d; q++) {
            const float *col = st + q * count + c0;
            float xq = x[q * stride], acc = 0;
            for (int c = 0; c < len; c++) acc = lm_madd(dk[c], xq - col[c], acc);
            g[q] += acc;
        }
    }
    return sum;
}

/* Job t's row (z rows 0 .. n-1, then p rows): z and p rows alternate, so
 * that each thread's contiguous share of jobs holds both kinds (a p row
 * costs half a z row when p needs no gradient). */
static int64_t job_row(const mmd_job *j, int64_t t) {
    int64_t both = j->n < j->m ? j->n : j->m;
    if (t < 2 * both) return t % 2 ? j->n + t / 2 : t / 2;
    t -= both; /* the rest of the larger set, in order */
    return j->n > j->m ? t : j->n + t;
}

static void mmd_rows(void *ctx, int64_t begin, int64_t end) {
    const mmd_job *j = ctx;
    double n = (double)j->n, m = (double)j->m;
    for (int64_t t = begin; t < end; t++) {
        int64_t r = job_row(j, t);
        bool in_z = r < j->n;
        int64_t i = in_z ? r : r - j->n, own = in_z ? j->n : j->m, other = in_z ? j->m : j->n;
        const float *own_t = in_z ? j->zt : j->pt, *other_t = in_z ? j->pt : j->zt;
        float *grad = in_z ? j->gz : j->gp;
        double *g_same = j->scratch + 2 * r * j->d, *g_cross = g_same + j->d;
        for (int64_t q = 0; q < 2 * j->d; q++) g_same[q] = 0;
        j->same[r] = kernel_row(j, own_t + i, own, own_t, own, grad ? g_same : NULL);
        /* the value takes k(z, p) from z's rows; a p row needs it only for its gradient */
        j->cross[r] =
            in_z || grad ? kernel_row(j, own_t + i, own, other_t, other, grad ? g_cross : NULL) : 0;
        if (!grad) continue;
        /* d/dx of mean k(own, own) counts x's row and column: 2 * 2 / own^2;
         * of -2 mean k(z, p): 2 * 2 / (n m) */
        double a = 4 / ((double)own * (double)own), b = 4 / (n * m);
        for (int64_t q = 0; q < j->d; q++)
            grad[i * j->d + q] = (float)(a * g_same[q] - b * g_cross[q]);
    }
}

static void transpose(float *dst, const float *src, int64_t rows, int64_t cols) {
    for (int64_t i = 0; i < rows; i++)
        for (int64_t q = 0; q < cols; q++) dst[q * rows + i] = src[i * cols + q];
}

lm_status lm_cpu_mmd(lm_tensor *value, lm_tensor *gz, lm_tensor *gp, const lm_tensor *z,
                     const lm_tensor *p, const float *scales, int nscales) {
    int64_t n = z->shape[0], m = p->shape[0], d = z->shape[1];
    float *zt = malloc(sizeof(float) * (size_t)((n + m) * d));
    double *sums = malloc(sizeof(double) * (size_t)(2 * (n + m) * (d + 1)));
    if (!zt || !sums) {
        free(zt);
        free(sums);
        return lm_fail(LM_ERR_MEMORY, "mmd: out of memory for %lld + %lld samples", (long long)n,
                       (long long)m);
    }
    float *pt = zt + n * d;
    transpose(zt, lm_tensor_f32(z), n, d);
    transpose(pt, lm_tensor_f32(p), m, d);
    mmd_job j = {.zt = zt,
                 .pt = pt,
                 .n = n,
                 .m = m,
                 .d = d,
                 .scales = scales,
                 .nscales = nscales,
                 .same = sums,
                 .cross = sums + n + m,
                 .gz = lm_tensor_f32_or_null(gz),
                 .gp = lm_tensor_f32_or_null(gp),
                 .scratch = sums + 2 * (n + m)};
    /* a row costs (n + m) * nscales kernel values */
    lm_parallel_for(n + m, LM_GRAIN_ELEMENTWISE / ((n + m) * nscales + 1) + 1, mmd_rows, &j);
    double zz = 0, pp = 0, zp = 0;
    for (int64_t r = 0; r < n; r++) zz += j.same[r], zp += j.cross[r];
    for (int64_t r = n; r < n + m; r++) pp += j.same[r];
    lm_tensor_f32(value)[0] =
        (float)(zz / ((double)n * n) + pp / ((double)m * m) - 2 * zp / ((double)n * m));
    free(zt);
    free(sums);
    return LM_OK;
}
