/* Batch normalisation on the CPU. In training mode (the backend's batch_norm
 * and batch_norm_backward): one pass for the statistics and one for the
 * output, one for the two gradient sums and one for the input's gradient,
 * where the composition of elementwise ops takes a dozen. Channels run in
 * parallel; each channel's sums are in double over 32 interleaved lanes
 * combined in a fixed order, so the result does not depend on threads (with
 * 8 lanes each sum was one vector's chain of dependent additions, which set
 * the pace: 32 are four independent chains, 2-3x faster). In
 * evaluation (channel_affine): x * scale + shift per channel in one pass. */
#include <math.h>
#include <stdbool.h>

#include "cpu_backend.h"
#include "lm_scalar_ops.h"
#include "lm_threads.h"

typedef struct {
    float *y, *mean, *var, *gx, *gw, *gb;
    const float *x, *w, *b, *g;
    const float *residual; /* added to y before the ReLU (NULL: none) */
    int64_t n, c, s;
    double eps;
    bool relu;
} norm_job;

#define LANES 32

/* The lanes summed pairwise, always in the same order. */
static double lanes_total(const double *acc) {
    double t[LANES];
    for (int k = 0; k < LANES; k++) t[k] = acc[k];
    for (int width = LANES / 2; width > 0; width /= 2)
        for (int k = 0; k < width; k++) t[k] += t[k + width];
    return t[0];
}

/* Sums of x - shift and its square over one channel (shifted by its first
 * value: no cancellation when the mean is large against the spread). */
static void channel_sums(const norm_job *j, int64_t ch, double shift, double *sum, double *sumsq) {
    double a1[LANES] = {0}, a2[LANES] = {0};
    for (int64_t n = 0; n < j->n; n++) {
        const float *x = j->x + (n * j->c + ch) * j->s;
        int64_t i = 0;
        for (; i + LANES <= j->s; i += LANES)
            for (int k = 0; k < LANES; k++) {
                double d = (double)x[i + k] - shift;
                a1[k] += d;
                a2[k] += d * d;
            }
        for (int k = 0; i < j->s; i++, k++) {
            double d = (double)x[i] - shift;
            a1[k] += d;
            a2[k] += d * d;
        }
    }
    *sum = lanes_total(a1);
    *sumsq = lanes_total(a2);
}

/* One plane of the output, x * scale + offset, then + the residual's plane
 * and the ReLU, each rounded as its own op would (the sum and the ReLU are
 * the ops a residual block runs after its batch norm); `residual` and
 * `relu` are constants in each inlined copy, so every variant is a loop of
 * its own. */
static inline void normalize_plane(float *restrict y, const float *restrict x,
                                   const float *restrict r, int64_t s, float scale, float offset,
                                   bool residual, bool relu) {
    for (int64_t i = 0; i < s; i++) {
        float v = x[i] * scale + offset;
        if (residual) v += r[i];
        if (relu) v = !(v <= 0) ? v : 0.0f; /* NaN passes, as LM_RELU */
        y[i] = v;
    }
}

static void forward_channels(void *ctx, int64_t c0, int64_t c1) {
    const norm_job *j = ctx;
    double count = (double)(j->n * j->s);
    for (int64_t ch = c0; ch < c1; ch++) {
        double shift = j->x[ch * j->s], sum, sumsq;
        channel_sums(j, ch, shift, &sum, &sumsq);
        double mean = shift + sum / count, var = sumsq / count - (sum / count) * (sum / count);
        if (var < 0) var = 0;
        j->mean[ch] = (float)mean;
        j->var[ch] = (float)var;
        double invstd = lm_batch_invstd(var, j->eps), w = j->w ? j->w[ch] : 1,
               b = j->b ? j->b[ch] : 0;
        float scale = (float)(invstd * w), offset = (float)(b - mean * invstd * w);
        for (int64_t n = 0; n < j->n; n++) {
            int64_t at = (n * j->c + ch) * j->s;
            const float *r = j->residual ? j->residual + at : NULL;
            if (r && j->relu)
                normalize_plane(j->y + at, j->x + at, r, j->s, scale, offset, true, true);
            else if (r)
                normalize_plane(j->y + at, j->x + at, r, j->s, scale, offset, true, false);
            else if (j->relu)
                normalize_plane(j->y + at, j->x + at, NULL, j->s, scale, offset, false, true);
            else
                normalize_plane(j->y + at, j->x + at, NULL, j->s, scale, offset, false, false);
        }
    }
}

static void backward_channels(void *ctx, int64_t c0, int64_t c1) {
    const norm_job *j = ctx;
    double count = (double)(j->n * j->s);
    for (int64_t ch = c0; ch < c1; ch++) {
        double mean = j->mean[ch], invstd = lm_batch_invstd(j->var[ch], j->eps);
        double ag[LANES] = {0}, agx[LANES] = {0}; /* sum g, sum g (x - mean) */
        for (int64_t n = 0; n < j->n; n++) {
            int64_t at = (n * j->c + ch) * j->s;
            const float *x = j->x + at, *g = j->g + at;
            int64_t i = 0;
            for (; i + LANES <= j->s; i += LANES)
                for (int k = 0; k < LANES; k++) {
                    ag[k] += g[i + k];
                    agx[k] += (double)g[i + k] * ((double)x[i + k] - mean);
                }
            for (int k = 0; i < j->s; i++, k++) {
                ag[k] += g[i];
                agx[k] += (double)g[i] * ((double)x[i] - mean);
            }
        }
        double sum_g = lanes_total(ag), sum_gx = lanes_total(agx);
        if (j->gw) j->gw[ch] = (float)(sum_gx * invstd);
        if (j->gb) j->gb[ch] = (float)sum_g;
        if (!j->gx) continue;
        /* gx = w invstd (g - sum_g / count - (x - mean) invstd^2 sum_gx / count) = k1 g + k2 x + k3
         */
        double w = j->w ? j->w[ch] : 1, k1 = w * invstd,
               k2 = -k1 * invstd * invstd * sum_gx / count;
        float f1 = (float)k1, f2 = (float)k2, f3 = (float)(-k1 * sum_g / count - k2 * mean);
        for (int64_t n = 0; n < j->n; n++) {
            int64_t at = (n * j->c + ch) * j->s;
            const float *restrict x = j->x + at;
            const float *restrict g = j->g + at;
            float *restrict gx = j->gx + at;
            for (int64_t i = 0; i < j->s; i++) gx[i] = f1 * g[i] + f2 * x[i] + f3;
        }
    }
}

static int64_t channel_grain(int64_t per_channel) {
    return LM_GRAIN_ELEMENTWISE / (per_channel + 1) + 1;
}

lm_status lm_cpu_batch_norm(lm_tensor *y, lm_tensor *mean, lm_tensor *var, const lm_tensor *x,
                            const lm_tensor *w, const lm_tensor *b, double eps,
                            const lm_tensor *residual, bool relu) {
    norm_job j = {.y = lm_tensor_f32(y),
                  .mean = lm_tensor_f32(mean),
                  .var = lm_tensor_f32(var),
                  .x = lm_tensor_f32(x),
                  .w = lm_tensor_f32_or_null(w),
                  .b = lm_tensor_f32_or_null(b),
                  .residual = lm_tensor_f32_or_null(residual),
                  .n = x->shape[0],
                  .c = x->shape[1],
                  .s = x->shape[2],
                  .eps = eps,
                  .relu = relu};
    lm_parallel_for(j.c, channel_grain(j.n * j.s), forward_channels, &j);
    return LM_OK;
}

lm_status lm_cpu_batch_norm_backward(lm_tensor *gx, lm_tensor *gw, lm_tensor *gb,
                                     const lm_tensor *g, const lm_tensor *x, const lm_tensor *mean,
                                     const lm_tensor *var, const lm_tensor *w, double eps) {
    norm_job j = {.gx = lm_tensor_f32_or_null(gx),
                  .gw = lm_tensor_f32_or_null(gw),
                  .gb = lm_tensor_f32_or_null(gb),
                  .mean = lm_tensor_f32(mean),
                  .var = lm_tensor_f32(var),
                  .x = lm_tensor_f32(x),
                  .g = lm_tensor_f32(g),
                  .w = lm_tensor_f32_or_null(w),
                  .n = x->shape[0],
                  .c = x->shape[1],
                  .s = x->shape[2],
                  .eps = eps};
    lm_parallel_for(j.c, channel_grain(j.n * j.s), backward_channels, &j);
    return LM_OK;
}

/* ---- evaluation: y = x * scale[c] + shift[c] ---------------------------------------------- */

typedef struct {
    float *y;
    const float *x, *scale, *shift, *residual; /* residual NULL: none */
    int64_t c, s;
    bool relu;
} affine_job;

/* GCC contracts a product and a sum into one fused multiply-add, rounded
 * once; the two ops this pass stands for round twice. */
#if defined(__GNUC__) && !defined(__clang__)
#define NO_FMA_CONTRACTION __attribute__((optimize("fp-contract=off")))
#else
#define NO_FMA_CONTRACTION /* clang contracts only within one expression */
#endif

/* One plane; `residual` and `relu` are constants in each inlined copy, so
 * every variant is a loop of its own without branches. */
NO_FMA_CONTRACTION static inline void affine_plane(float *y, const float *x, const float *r,
                                                   int64_t s, float scale, float shift,
                                                   bool residual, bool relu) {
    for (int64_t i = 0; i < s; i++) {
        float scaled = x[i] * scale;
        float v = scaled + shift;
        if (residual) v += r[i];
        if (relu) v = !(v <= 0) ? v : 0.0f; /* NaN passes, as LM_RELU */
        y[i] = v;
    }
}

NO_FMA_CONTRACTION static void affine_planes(void *ctx, int64_t p0, int64_t p1) {
    const affine_job *j = ctx;
    for (int64_t p = p0; p < p1; p++) { /* p = image * C + channel */
        float scale = j->scale[p % j->c], shift = j->shift[p % j->c];
        const float *x = j->x + p * j->s, *r = j->residual ? j->residual + p * j->s : NULL;
        float *y = j->y + p * j->s;
        if (r && j->relu)
            affine_plane(y, x, r, j->s, scale, shift, true, true);
        else if (r)
            affine_plane(y, x, r, j->s, scale, shift, true, false);
        else if (j->relu)
            affine_plane(y, x, NULL, j->s, scale, shift, false, true);
        else
            affine_plane(y, x, NULL, j->s, scale, shift, false, false);
    }
}

void lm_cpu_conv_epilogue(const lm_conv_epilogue *ep, float *out, int64_t p0, int64_t p1,
                          int64_t s) {
    affine_job j = {out, out, ep->scale, ep->shift, ep->residual, ep->channels, s, ep->relu};
    affine_planes(&j, p0, p1); /* in place: each value is read before it is written */
}

lm_status lm_cpu_channel_affine(lm_tensor *y, const lm_tensor *x, const lm_tensor *scale,
                                const lm_tensor *shift, const lm_tensor *residual, bool relu) {
    affine_job j = {lm_tensor_f32(y),
                    lm_tensor_f32(x),
                    lm_tensor_f32(scale),
                    lm_tensor_f32(shift),
                    residual ? lm_tensor_f32(residual) : NULL,
                    x->shape[1],
                    x->shape[2],
                    relu};
    lm_parallel_for(x->shape[0] * j.c, channel_grain(j.s), affine_planes, &j);
    return LM_OK;
}
