/* CPU reductions over one dimension or over all elements.
 * Sums accumulate in double; max/min propagate NaN like IEEE maximum. */
#include <math.h>
#include <string.h>

#include "cpu_backend.h"
#include "lm_iter.h"
#include "lm_threads.h"

/* Partial result of a reduction over a set of elements. */
typedef struct {
    double sum;    /* SUM, MEAN, VAR (sum of squared deviations from `center`) */
    double best;   /* MAX, MIN */
    int64_t index; /* position of best */
} partial;

static bool is_max(lm_reduce_op op) {
    return op == LM_MAX || op == LM_ARGMAX;
}
static bool is_extreme(lm_reduce_op op) {
    return op == LM_MAX || op == LM_MIN || op == LM_ARGMAX || op == LM_ARGMIN;
}

/* Sum of n contiguous floats (or of their squared deviations from center)
 * in double, over eight interleaved partial sums combined in a fixed order:
 * the compiler vectorises it (one running sum would wait on every add's
 * latency), and the result depends only on n and the data. */
static double sum_contiguous(const float *x, int64_t n, bool squares, double center) {
    double acc[8] = {0};
    int64_t i = 0;
    if (squares) {
        for (; i + 8 <= n; i += 8)
            for (int k = 0; k < 8; k++) {
                double d = (double)x[i + k] - center;
                acc[k] += d * d;
            }
    } else {
        for (; i + 8 <= n; i += 8)
            for (int k = 0; k < 8; k++) acc[k] += x[i + k];
    }
    for (int k = 0; i < n; i++, k++) {
        double d = squares ? (double)x[i] - center : (double)x[i];
        acc[k] += squares ? d * d : d;
    }
    return ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]));
}

/* Folds `n` elements at x[base + i*stride] (positions first..first+n-1). */
static void fold_line(lm_reduce_op op, const lm_tensor *x, int64_t base, int64_t stride, int64_t n,
                      int64_t first, double center, partial *p) {
    if (is_extreme(op)) {
        bool want_max = is_max(op);
        for (int64_t i = 0; i < n; i++) {
            double v = lm_tensor_load(x, base + i * stride);
            if (p->best != p->best) return; /* NaN already wins */
            if (v != v || (want_max ? v > p->best : v < p->best) || p->index < 0) {
                p->best = v;
                p->index = first + i;
            }
        }
    } else if (x->dtype == LM_FLOAT32) {
        const float *xp = lm_tensor_f32(x) + base;
        double s = 0;
        if (stride == 1) {
            s = sum_contiguous(xp, n, op == LM_VAR, center);
        } else if (op == LM_VAR) {
            for (int64_t i = 0; i < n; i++) {
                double d = xp[i * stride] - center;
                s += d * d;
            }
        } else {
            for (int64_t i = 0; i < n; i++) s += xp[i * stride];
        }
        p->sum += s;
    } else {
        for (int64_t i = 0; i < n; i++) {
            double v = lm_tensor_load(x, base + i * stride);
            p->sum += op == LM_VAR ? (v - center) * (v - center) : v;
        }
    }
}

static void merge(lm_reduce_op op, partial *into, const partial *p) {
    if (!is_extreme(op)) {
        into->sum += p->sum;
        return;
    }
    if (p->index < 0 || into->best != into->best) return;
    bool better = p->best != p->best || into->index < 0 ||
                  (is_max(op) ? p->best > into->best : p->best < into->best);
    if (better) *into = *p;
}

static partial empty_partial(void) {
    return (partial){0, 0, -1};
}

static void write_result(lm_reduce_op op, lm_tensor *out, int64_t out_off, lm_tensor *indices,
                         int64_t idx_off, const partial *p, int64_t n) {
    switch (op) {
    case LM_SUM:
        lm_tensor_store(out, out_off, p->sum);
        break;
    case LM_MEAN:
        lm_tensor_store(out, out_off, n ? p->sum / n : NAN);
        break;
    case LM_VAR:
        lm_tensor_store(out, out_off, n > 1 ? p->sum / (n - 1) : NAN);
        break;
    case LM_ARGMAX:
    case LM_ARGMIN:
        lm_tensor_store(out, out_off, (double)p->index);
        break;
    default:
        lm_tensor_store(out, out_off, p->best);
        if (indices) lm_tensor_store(indices, idx_off, (double)p->index);
    }
}

/* ---- over all elements ------------------------------------------------------------- */

#define MAX_CHUNKS 64

typedef struct {
    lm_iter it;
    const lm_tensor *x;
    lm_reduce_op op;
    double center;
    int chunks;
    partial parts[MAX_CHUNKS];
} all_job;

static void all_chunk(void *ctx, int64_t k, int64_t k_end) {
    all_job *j = ctx;
    for (; k < k_end; k++) {
        int64_t begin, end;
        lm_parallel_chunk_bounds(j->it.numel, j->chunks, (int)k, &begin, &end);
        partial p = empty_partial();
        int64_t stride = j->it.strides[0][j->it.ndim - 1], pos = begin;
        LM_ITER_FOR(&j->it, begin, end, off, n) {
            fold_line(j->op, j->x, off[0], stride, n, pos, j->center, &p);
            pos += n;
        }
        j->parts[k] = p;
    }
}

static partial reduce_all_pass(lm_reduce_op op, const lm_tensor *x, double center) {
    all_job j = {.x = x, .op = op, .center = center};
    const lm_tensor *ops[1] = {x};
    lm_iter_init(&j.it, 1, ops);
    /* the chunking depends only on numel and the thread count: reproducible */
    j.chunks = lm_parallel_chunks(j.it.numel, LM_GRAIN_ELEMENTWISE);
    if (j.chunks > MAX_CHUNKS) j.chunks = MAX_CHUNKS;
    lm_parallel_for(j.chunks, 1, all_chunk, &j);
    partial total = empty_partial();
    for (int k = 0; k < j.chunks; k++) merge(op, &total, &j.parts[k]);
    return total;
}

static lm_status reduce_all(lm_reduce_op op, lm_tensor *out, lm_tensor *indices,
                            const lm_tensor *x) {
    int64_t n = lm_tensor_numel(x);
    double center = 0;
    if (op == LM_VAR) center = n ? reduce_all_pass(LM_SUM, x, 0).sum / n : 0;
    partial p = reduce_all_pass(op, x, center);
    write_result(op, out, 0, indices, 0, &p, n);
    return LM_OK;
}

/* ---- over one dimension --------------------------------------------------------------- */

typedef struct {
    lm_iter it; /* over (out, x without dim, indices) */
    const lm_tensor *x;
    lm_tensor *out, *indices;
    lm_reduce_op op;
    int64_t len, stride; /* the reduced dimension */
} dim_job;

static void dim_range(void *ctx, int64_t begin, int64_t end) {
    dim_job *j = ctx;
    const lm_iter *it = &j->it;
    int last = it->ndim - 1;
    int64_t so = it->strides[0][last], sx = it->strides[1][last];
    int64_t si = j->indices ? it->strides[2][last] : 0;
    LM_ITER_FOR(it, begin, end, off, n) {
        for (int64_t i = 0; i < n; i++) {
            int64_t base = off[1] + i * sx;
            double center = 0;
            if (j->op == LM_VAR) {
                partial s = empty_partial();
                fold_line(LM_SUM, j->x, base, j->stride, j->len, 0, 0, &s);
                center = j->len ? s.sum / j->len : 0;
            }
            partial p = empty_partial();
            fold_line(j->op, j->x, base, j->stride, j->len, 0, center, &p);
            write_result(j->op, j->out, off[0] + i * so, j->indices,
                         j->indices ? off[2] + i * si : 0, &p, j->len);
        }
    }
}

/* Sums of float32 rows where each output row is contiguous in x: accumulate
 * whole rows (vectorised) instead of walking a strided column per output. */
#define COLUMN_BLOCK 512

static void column_range(void *ctx, int64_t begin, int64_t end) {
    dim_job *j = ctx;
    const lm_iter *it = &j->it;
    double acc[COLUMN_BLOCK], mean[COLUMN_BLOCK];
    LM_ITER_FOR(it, begin, end, off, n) {
        for (int64_t c0 = 0; c0 < n; c0 += COLUMN_BLOCK) {
            int64_t m = n - c0 < COLUMN_BLOCK ? n - c0 : COLUMN_BLOCK;
            const float *xp = lm_tensor_f32(j->x) + off[1] + c0;
            memset(acc, 0, sizeof(double) * m);
            for (int64_t r = 0; r < j->len; r++) {
                const float *row = xp + r * j->stride;
                for (int64_t i = 0; i < m; i++) acc[i] += row[i];
            }
            float *o = lm_tensor_f32(j->out) + off[0] + c0;
            if (j->op == LM_VAR) { /* a second pass over the deviations, as dim_range does */
                for (int64_t i = 0; i < m; i++) mean[i] = acc[i] / (double)j->len;
                memset(acc, 0, sizeof(double) * m);
                for (int64_t r = 0; r < j->len; r++) {
                    const float *row = xp + r * j->stride;
                    for (int64_t i = 0; i < m; i++) {
                        double d = row[i] - mean[i];
                        acc[i] += d * d;
                    }
                }
                for (int64_t i = 0; i < m; i++)
                    o[i] = j->len > 1 ? (float)(acc[i] / (double)(j->len - 1)) : NAN;
                continue;
            }
            double scale = j->op == LM_MEAN ? 1.0 / (double)j->len : 1.0;
            for (int64_t i = 0; i < m; i++) o[i] = (float)(acc[i] * scale);
        }
    }
}

lm_status lm_cpu_reduce(lm_reduce_op op, lm_tensor *out, lm_tensor *indices, const lm_tensor *x,
                        int dim) {
    if (dim < 0) return reduce_all(op, out, indices, x);
    /* x with the reduced dimension removed: same shape as out */
    lm_tensor xs = *x;
    for (int d = dim; d < x->ndim - 1; d++) {
        xs.shape[d] = x->shape[d + 1];
        xs.strides[d] = x->strides[d + 1];
    }
    xs.ndim = x->ndim - 1;
    dim_job j = {.x = x,
                 .out = out,
                 .indices = indices,
                 .op = op,
                 .len = x->shape[dim],
                 .stride = x->strides[dim]};
    const lm_tensor *ops[3] = {out, &xs, indices};
    lm_iter_init(&j.it, indices ? 3 : 2, ops);
    int last = j.it.ndim - 1;
    bool rows = (op == LM_SUM || op == LM_MEAN || op == LM_VAR) && x->dtype == LM_FLOAT32 &&
                out->dtype == LM_FLOAT32 && j.it.strides[0][last] == 1 &&
                j.it.strides[1][last] == 1 && j.it.shape[last] > 1 && j.len > 0;
    int64_t grain = LM_GRAIN_ELEMENTWISE / (j.len ? j.len : 1) + 1;
    lm_parallel_for_balanced(j.it.numel, grain, rows ? column_range : dim_range, &j);
    return LM_OK;
}
