/* Gathers, scatter-adds and prefix sums along one dimension: the CPU
 * reference of the backend's gather, scatter_add and cumsum. */
#include "cpu_backend.h"
#include "lm_index_walk.h"
#include "lm_threads.h"

/* A tensor viewed as [outer, n, inner] around dimension `dim` (contiguous). */
static void split_at(const lm_tensor *t, int dim, int64_t *outer, int64_t *n, int64_t *inner) {
    *outer = *inner = 1;
    for (int d = 0; d < dim; d++) *outer *= t->shape[d];
    for (int d = dim + 1; d < t->ndim; d++) *inner *= t->shape[d];
    *n = t->shape[dim];
}

/* ---- gather: one output element after another
 * ------------------------------------------------------------------ */

typedef struct {
    uint32_t *out; /* float32 and int32 alike: a gather copies 4-byte words */
    const uint32_t *x;
    const int32_t *idx;
    lm_index_geometry geo;
} gather_job;

static void gather_range(void *ctx, int64_t i0, int64_t i1) {
    const gather_job *j = ctx;
    for (int64_t i = i0; i < i1; i++) j->out[i] = j->x[lm_index_offset(&j->geo, i, j->idx[i])];
}

lm_status lm_cpu_gather(lm_tensor *out, const lm_tensor *x, const lm_tensor *idx, int dim) {
    int64_t n = lm_tensor_numel(out);
    if (!n) return LM_OK;
    gather_job j = {lm_tensor_data(out), lm_tensor_data(x), lm_tensor_i32(idx),
                    lm_index_geometry_of(idx, x, dim)};
    lm_parallel_for(n, LM_GRAIN_ELEMENTWISE, gather_range, &j);
    return LM_OK;
}

/* ---- scatter_add: one line of idx along dim per task
 *
 * Two elements of idx that differ outside `dim` write to different lines of
 * out, so tasks that split the lines never write to the same element, and
 * each line adds its duplicates in index order: the same sums for any
 * thread count. */

typedef struct {
    float *out;
    const int32_t *idx;
    const float *src;
    lm_index_geometry geo;
    int64_t n, inner; /* idx viewed as [lines / inner, n, inner] */
} scatter_job;

static void scatter_range(void *ctx, int64_t l0, int64_t l1) {
    const scatter_job *j = ctx;
    for (int64_t l = l0; l < l1; l++) {
        int64_t first = (l / j->inner) * j->n * j->inner + l % j->inner;
        for (int64_t k = 0; k < j->n; k++) {
            int64_t i = first + k * j->inner;
            j->out[lm_index_offset(&j->geo, i, j->idx[i])] += j->src[i];
        }
    }
}

lm_status lm_cpu_scatter_add(lm_tensor *out, const lm_tensor *idx, const lm_tensor *src, int dim) {
    int64_t outer, n, inner;
    split_at(idx, dim, &outer, &n, &inner);
    if (!lm_tensor_numel(idx)) return LM_OK;
    scatter_job j = {lm_tensor_f32(out),
                     lm_tensor_i32(idx),
                     lm_tensor_f32(src),
                     lm_index_geometry_of(idx, out, dim),
                     n,
                     inner};
    lm_parallel_for(outer * inner, LM_GRAIN_ELEMENTWISE / (n + 1) + 1, scatter_range, &j);
    return LM_OK;
}

/* ---- cumsum: one line along dim per task, summed in order
 * ---------------------------------------------------------- */

typedef struct {
    void *out;
    const void *x;
    bool is_int, reverse;
    int64_t n, inner;
} cumsum_job;

static void cumsum_range(void *ctx, int64_t l0, int64_t l1) {
    const cumsum_job *j = ctx;
    for (int64_t l = l0; l < l1; l++) {
        int64_t first = (l / j->inner) * j->n * j->inner + l % j->inner;
        int64_t step = j->reverse ? -j->inner : j->inner;
        if (j->reverse) first += (j->n - 1) * j->inner;
        if (j->is_int) { /* int32 wraps (torch returns int64 here; Lumen has none) */
            const int32_t *x = j->x;
            int32_t *o = j->out;
            uint32_t acc = 0;
            for (int64_t k = 0, i = first; k < j->n; k++, i += step)
                o[i] = (int32_t)(acc += (uint32_t)x[i]);
        } else { /* in double, each prefix rounded once (as torch's CPU cumsum) */
            const float *x = j->x;
            float *o = j->out;
            double acc = 0;
            for (int64_t k = 0, i = first; k < j->n; k++, i += step) o[i] = (float)(acc += x[i]);
        }
    }
}

lm_status lm_cpu_cumsum(lm_tensor *out, const lm_tensor *x, int dim, bool reverse) {
    int64_t outer, n, inner;
    split_at(x, dim, &outer, &n, &inner);
    if (!lm_tensor_numel(x)) return LM_OK;
    cumsum_job j = {
        lm_tensor_data(out), lm_tensor_data(x), x->dtype == LM_INT32, reverse, n, inner};
    lm_parallel_for(outer * inner, LM_GRAIN_ELEMENTWISE / (n + 1) + 1, cumsum_range, &j);
    return LM_OK;
}
