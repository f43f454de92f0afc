/* Resampling along one dimension: the CPU reference of the backend's
 * resample and resample_backward. A tensor is viewed as [outer, n, inner]
 * around the dimension; output position k reads x at idx[k, t] with weight
 * w[k, t]. One task owns whole outer blocks, so the backward's additions
 * never race and run in the same order for any thread count. */
#include <string.h>

#include "cpu_backend.h"
#include "lm_alloc.h"
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

/* ---- both of the last two dimensions: planes x [outer, H, W] -> out [outer, mh, mw] */

typedef struct {
    float *out;
    const float *x;
    const int32_t *ih, *iw;
    const float *wh, *ww;
    int64_t h, w, mh, mw;
    int th, tw;  /* taps along each */
    float *rows; /* a row of w floats per slot (lm_parallel_for_slots) */
} resample2d_job;

/* Each output row: the input rows it reads mixed first (one row of w, in
 * `row`), then that row resampled along the last dimension, so a tap of
 * either dimension costs one multiply-add per element of a row. */
static void resample2d_range(void *ctx, int64_t o0, int64_t o1, int slot) {
    const resample2d_job *j = ctx;
    float *row = j->rows + slot * j->w;
    for (int64_t o = o0; o < o1; o++) {
        const float *plane = j->x + o * j->h * j->w;
        float *out = j->out + o * j->mh * j->mw;
        for (int64_t i = 0; i < j->mh; i++, out += j->mw) {
            const int32_t *ia = j->ih + i * j->th;
            const float *wa = j->wh + i * j->th;
            const float *r0 = plane + (int64_t)ia[0] * j->w;
            for (int64_t p = 0; p < j->w; p++) row[p] = wa[0] * r0[p];
            for (int a = 1; a < j->th; a++) {
                const float *ra = plane + (int64_t)ia[a] * j->w;
                for (int64_t p = 0; p < j->w; p++) row[p] += wa[a] * ra[p];
            }
            for (int64_t k = 0; k < j->mw; k++) {
                const int32_t *ik = j->iw + k * j->tw;
                const float *wk = j->ww + k * j->tw;
                float s = wk[0] * row[ik[0]];
                for (int b = 1; b < j->tw; b++) s += wk[b] * row[ik[b]];
                out[k] = s;
            }
        }
    }
}

static resample2d_job job2d(float *out, const float *x, const lm_tensor *shape_of,
                            const lm_tensor *ih, const lm_tensor *wh, const lm_tensor *iw,
                            const lm_tensor *ww) {
    int n = shape_of->ndim;
    resample2d_job j = {out,
                        x,
                        lm_tensor_i32(ih),
                        lm_tensor_i32(iw),
                        lm_tensor_f32(wh),
                        lm_tensor_f32(ww),
                        shape_of->shape[n - 2],
                        shape_of->shape[n - 1],
                        ih->shape[0],
                        iw->shape[0],
                        (int)ih->shape[1],
                        (int)iw->shape[1],
                        NULL};
    return j;
}

/* Runs fn over the planes, each chunk with a row of scratch. */
static lm_status run_planes(resample2d_job *j, int64_t planes, lm_slot_range_fn fn) {
    int slots = lm_parallel_chunks(planes, 1);
    size_t bytes = (size_t)slots * (size_t)j->w * sizeof(float);
    j->rows = lm_cpu_alloc(bytes);
    if (!j->rows)
        return lm_fail(LM_ERR_MEMORY, "resample2d: no memory for %zu bytes of scratch", bytes);
    lm_parallel_for_slots(planes, slots, fn, j);
    lm_cpu_free(j->rows, bytes);
    return LM_OK;
}

lm_status lm_cpu_resample2d(lm_tensor *out, const lm_tensor *x, const lm_tensor *idx_h,
                            const lm_tensor *w_h, const lm_tensor *idx_w, const lm_tensor *w_w) {
    resample2d_job j = job2d(lm_tensor_f32(out), lm_tensor_f32(x), x, idx_h, w_h, idx_w, w_w);
    return run_planes(&j, lm_tensor_numel(x) / (j.h * j.w), resample2d_range);
}

/* gx planes o0..o1 [H, W] from g [mh, mw], the forward's steps reversed:
 * each output row's gradient spread along the last dimension into `row`,
 * then added to the input rows it read. */
static void resample2d_backward_range(void *ctx, int64_t o0, int64_t o1, int slot) {
    const resample2d_job *j = ctx; /* out = gx, x = g */
    float *row = j->rows + slot * j->w;
    for (int64_t o = o0; o < o1; o++) {
        float *plane = j->out + o * j->h * j->w;
        const float *g = j->x + o * j->mh * j->mw;
        memset(plane, 0, (size_t)(j->h * j->w) * sizeof *plane);
        for (int64_t i = 0; i < j->mh; i++, g += j->mw) {
            memset(row, 0, (size_t)j->w * sizeof *row);
            for (int64_t k = 0; k < j->mw; k++)
                for (int b = 0; b < j->tw; b++)
                    row[j->iw[k * j->tw + b]] += j->ww[k * j->tw + b] * g[k];
            for (int a = 0; a < j->th; a++) {
                float *ra = plane + (int64_t)j->ih[i * j->th + a] * j->w;
                float wa = j->wh[i * j->th + a];
                for (int64_t p = 0; p < j->w; p++) ra[p] += wa * row[p];
            }
        }
    }
}

lm_status lm_cpu_resample2d_backward(lm_tensor *gx, const lm_tensor *g, const lm_tensor *idx_h,
                                     const lm_tensor *w_h, const lm_tensor *idx_w,
                                     const lm_tensor *w_w) {
    resample2d_job j = job2d(lm_tensor_f32(gx), lm_tensor_f32(g), gx, idx_h, w_h, idx_w, w_w);
    return run_planes(&j, lm_tensor_numel(gx) / (j.h * j.w), resample2d_backward_range);
}
