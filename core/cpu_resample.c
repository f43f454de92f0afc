/* Resampling along one dimension: the CPU reference of the backend's
 * resample and resample_backward. A tensor is viewed as [outer, n, inner]
 * around the dimension; output position k reads x at idx[k, t] with weight
 * w[k, t]. One task owns whole outer blocks, so the backward's additions
 * never race and run in the same order for any thread count. */
#include <string.h>

#include "cpu_backend.h"
#include "lm_threads.h"

typedef struct {
    float *out;
    const float *x;
    const int32_t *idx;
    const float *w;
    int64_t n, m, inner; /* x [outer, n, inner], out [outer, m, inner] */
    int taps;
} resample_job;

static void split_at(const lm_tensor *t, int dim, int64_t *outer, int64_t *inner) {
    *outer = *inner = 1;
    for (int d = 0; d < dim; d++) *outer *= t->shape[d];
    for (int d = dim + 1; d < t->ndim; d++) *inner *= t->shape[d];
}

static void resample_range(void *ctx, int64_t o0, int64_t o1) {
    const resample_job *j = ctx;
    int64_t inner = j->inner;
    for (int64_t o = o0; o < o1; o++) {
        const float *x = j->x + o * j->n * inner;
        float *out = j->out + o * j->m * inner;
        for (int64_t k = 0; k < j->m; k++, out += inner) {
            const int32_t *ik = j->idx + k * j->taps;
            const float *wk = j->w + k * j->taps;
            if (inner == 1) { /* the last dimension: one value per position */
                float s = wk[0] * x[ik[0]];
                for (int t = 1; t < j->taps; t++) s += wk[t] * x[ik[t]];
                out[0] = s;
                continue;
            }
            const float *a = x + (int64_t)ik[0] * inner;
            float w0 = wk[0];
            for (int64_t i = 0; i < inner; i++) out[i] = w0 * a[i];
            for (int t = 1; t < j->taps; t++) {
                const float *b = x + (int64_t)ik[t] * inner;
                float wt = wk[t];
                for (int64_t i = 0; i < inner; i++) out[i] += wt * b[i];
            }
        }
    }
}

lm_status lm_cpu_resample(lm_tensor *out, const lm_tensor *x, const lm_tensor *idx,
                          const lm_tensor *w, int dim) {
    int64_t outer, inner;
    split_at(x, dim, &outer, &inner);
    resample_job j = {lm_tensor_f32(out),
                      lm_tensor_f32(x),
                      lm_tensor_i32(idx),
                      lm_tensor_f32(w),
                      x->shape[dim],
                      idx->shape[0],
                      inner,
                      (int)idx->shape[1]};
    int64_t per_block = j.m * inner * j.taps + 1;
    lm_parallel_for(outer, LM_GRAIN_ELEMENTWISE / per_block + 1, resample_range, &j);
    return LM_OK;
}

/* gx blocks o0..o1 of [outer, n, inner] from g [outer, m, inner] */
static void resample_backward_range(void *ctx, int64_t o0, int64_t o1) {
    const resample_job *j = ctx; /* out = gx, x = g */
    int64_t inner = j->inner;
    for (int64_t o = o0; o < o1; o++) {
        float *gx = j->out + o * j->n * inner;
        const float *g = j->x + o * j->m * inner;
        memset(gx, 0, (size_t)(j->n * inner) * sizeof *gx);
        for (int64_t k = 0; k < j->m; k++, g += inner) {
            const int32_t *ik = j->idx + k * j->taps;
            const float *wk = j->w + k * j->taps;
            for (int t = 0; t < j->taps; t++) {
                float *a = gx + (int64_t)ik[t] * inner;
                float wt = wk[t];
                for (int64_t i = 0; i < inner; i++) a[i] += wt * g[i];
            }
        }
    }
}

lm_status lm_cpu_resample_backward(lm_tensor *gx, const lm_tensor *g, const lm_tensor *idx,
                                   const lm_tensor *w, int dim) {
    int64_t outer, inner;
    split_at(gx, dim, &outer, &inner);
    resample_job j = {lm_tensor_f32(gx),
                      lm_tensor_f32(g),
                      lm_tensor_i32(idx),
                      lm_tensor_f32(w),
                      gx->shape[dim],
                      idx->shape[0],
                      inner,
                      (int)idx->shape[1]};
    int64_t per_block = j.m * inner * j.taps + j.n * inner + 1;
    lm_parallel_for(outer, LM_GRAIN_ELEMENTWISE / per_block + 1, resample_backward_range, &j);
    return LM_OK;
}
