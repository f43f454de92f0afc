/* CPU kernels of the layers: softmax, im2col/col2im, pooling, one-hot, and
 * the fused optimiser updates. Readable loops with shape comments; the
 * heavy part of convolution is the GEMM that follows im2col. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_backend.h"
#include "lm_fastmath.h"
#include "lm_scalar_ops.h"
#include "lm_threads.h"

/* ---- softmax ----------------------------------------------------------------------------------
 */

typedef struct {
    float *out;
    const float *x, *g, *y;
    int64_t cols;
    bool log;
} softmax_job;

/* Row sums and maxima in SOFTMAX_LANES partial lanes, combined in a fixed
 * order: each loop vectorises (a single running sum or maximum is a chain the
 * compiler may not reorder), and the result does not depend on threads. */
#define SOFTMAX_LANES 16

static float row_max(const float *x, int64_t n) {
    float lane[SOFTMAX_LANES];
    for (int l = 0; l < SOFTMAX_LANES; l++) lane[l] = -INFINITY;
    int64_t c = 0;
    for (; c + SOFTMAX_LANES <= n; c += SOFTMAX_LANES)
        for (int l = 0; l < SOFTMAX_LANES; l++) lane[l] = x[c + l] > lane[l] ? x[c + l] : lane[l];
    float m = -INFINITY;
    for (int l = 0; l < SOFTMAX_LANES; l++) m = lane[l] > m ? lane[l] : m;
    for (; c < n; c++) m = x[c] > m ? x[c] : m;
    return m;
}

/* sum of a[c] (b == NULL) or of a[c] * b[c], in double */
static double row_sum(const float *a, const float *b, int64_t n) {
    double lane[SOFTMAX_LANES] = {0};
    int64_t c = 0;
    for (; c + SOFTMAX_LANES <= n; c += SOFTMAX_LANES) {
        if (b)
            for (int l = 0; l < SOFTMAX_LANES; l++) lane[l] += (double)a[c + l] * b[c + l];
        else
            for (int l = 0; l < SOFTMAX_LANES; l++) lane[l] += a[c + l];
    }
    double sum = 0;
    for (int l = 0; l < SOFTMAX_LANES; l++) sum += lane[l];
    for (; c < n; c++) sum += b ? (double)a[c] * b[c] : a[c];
    return sum;
}

static void softmax_rows(void *ctx, int64_t r0, int64_t r1) {
    softmax_job *j = ctx;
    int64_t n = j->cols;
    for (int64_t r = r0; r < r1; r++) {
        const float *x = j->x + r * n; /* x, out: [rows, cols] */
        float *o = j->out + r * n;
        float m = row_max(x, n);
        /* a row of NaN keeps m = -inf: x - m is then NaN (or inf - inf), as before */
        for (int64_t c = 0; c < n; c++) o[c] = lm_fast_expf(x[c] - m);
        double sum = row_sum(o, NULL, n);
        if (j->log) {
            /* (x - m) - log(sum): m + log(sum) rounded to float would lose
             * log(sum) next to a large m */
            float ls = (float)log(sum);
            for (int64_t c = 0; c < n; c++) o[c] = (x[c] - m) - ls;
        } else {
            float inv = (float)(1.0 / sum);
            for (int64_t c = 0; c < n; c++) o[c] *= inv;
        }
    }
}

void lm_cpu_softmax_rows_span(float *out, const float *x, int64_t rows, int64_t cols) {
    softmax_job j = {out, x, NULL, NULL, cols, false};
    softmax_rows(&j, 0, rows);
}

lm_status lm_cpu_softmax(lm_tensor *out, const lm_tensor *x, bool log) {
    int64_t cols = x->ndim ? x->shape[x->ndim - 1] : 1;
    int64_t rows = cols ? lm_tensor_numel(x) / cols : 0;
    softmax_job j = {lm_tensor_f32(out), lm_tensor_f32(x), NULL, NULL, cols, log};
    lm_parallel_for(rows, LM_GRAIN_ELEMENTWISE / (cols + 1) + 1, softmax_rows, &j);
    return LM_OK;
}

static void softmax_backward_rows(void *ctx, int64_t r0, int64_t r1) {
    softmax_job *j = ctx;
    int64_t n = j->cols;
    for (int64_t r = r0; r < r1; r++) {
        const float *g = j->g + r * n, *y = j->y + r * n;
        float *gx = j->out + r * n;
        if (j->log) { /* gx = g - softmax * sum(g) */
            float dot = (float)row_sum(g, NULL, n);
            for (int64_t c = 0; c < n; c++) gx[c] = g[c] - lm_fast_expf(y[c]) * dot;
        } else { /* gx = y * (g - sum(g * y)) */
            float dot = (float)row_sum(g, y, n);
            for (int64_t c = 0; c < n; c++) gx[c] = y[c] * (g[c] - dot);
        }
    }
}

void lm_cpu_softmax_rows_backward_span(float *gx, const float *g, const float *y, int64_t rows,
                                       int64_t cols) {
    softmax_job j = {gx, NULL, g, y, cols, false};
    softmax_backward_rows(&j, 0, rows);
}

lm_status lm_cpu_softmax_backward(lm_tensor *gx, const lm_tensor *g, const lm_tensor *y, bool log) {
    int64_t cols = y->ndim ? y->shape[y->ndim - 1] : 1;
    int64_t rows = cols ? lm_tensor_numel(y) / cols : 0;
    softmax_job j = {lm_tensor_f32(gx), NULL, lm_tensor_f32(g), lm_tensor_f32(y), cols, log};
    lm_parallel_for(rows, LM_GRAIN_ELEMENTWISE / (cols + 1) + 1, softmax_backward_rows, &j);
    return LM_OK;
}

/* ---- im2col / col2im
 * ------------------------------------------------------------------------------ */

/* cols row (c, ki, kj) holds, for every output pixel, the input pixel the
 * kernel tap (ki, kj) of channel c sees there (0 in the padding); the tap
 * sits ki * dilation_h rows and kj * dilation_w columns into the window. */
lm_status lm_cpu_im2col(lm_tensor *cols_t, const lm_tensor *x_t, const lm_conv_geometry *g) {
    const float *x = lm_tensor_f32(x_t); /* [C, H, W] */
    float *cols = lm_tensor_f32(cols_t); /* [C*kh*kw, oh*ow] */
    int64_t plane = g->out_h * g->out_w, dh = lm_conv_dilation_h(g), dw = lm_conv_dilation_w(g);
    for (int64_t c = 0; c < g->channels; c++)
        for (int64_t ki = 0; ki < g->kernel_h; ki++)
            for (int64_t kj = 0; kj < g->kernel_w; kj++) {
                float *row = cols + ((c * g->kernel_h + ki) * g->kernel_w + kj) * plane;
                for (int64_t oi = 0; oi < g->out_h; oi++) {
                    int64_t i = oi * g->stride_h - g->pad_h + ki * dh;
                    float *dst = row + oi * g->out_w;
                    if (i < 0 || i >= g->height) {
                        memset(dst, 0, sizeof(float) * g->out_w);
                        continue;
                    }
                    const float *src = x + (c * g->height + i) * g->width;
                    for (int64_t oj = 0; oj < g->out_w; oj++) {
                        int64_t jj = oj * g->stride_w - g->pad_w + kj * dw;
                        dst[oj] = jj >= 0 && jj < g->width ? src[jj] : 0.0f;
                    }
                }
            }
    return LM_OK;
}

lm_status lm_cpu_col2im(lm_tensor *gx_t, const lm_tensor *cols_t, const lm_conv_geometry *g) {
    float *gx = lm_tensor_f32(gx_t); /* [C, H, W], accumulated into */
    const float *cols = lm_tensor_f32(cols_t);
    int64_t plane = g->out_h * g->out_w, dh = lm_conv_dilation_h(g), dw = lm_conv_dilation_w(g);
    for (int64_t c = 0; c < g->channels; c++)
        for (int64_t ki = 0; ki < g->kernel_h; ki++)
            for (int64_t kj = 0; kj < g->kernel_w; kj++) {
                const float *row = cols + ((c * g->kernel_h + ki) * g->kernel_w + kj) * plane;
                for (int64_t oi = 0; oi < g->out_h; oi++) {
                    int64_t i = oi * g->stride_h - g->pad_h + ki * dh;
                    if (i < 0 || i >= g->height) continue;
                    float *dst = gx + (c * g->height + i) * g->width;
                    const float *src = row + oi * g->out_w;
                    for (int64_t oj = 0; oj < g->out_w; oj++) {
                        int64_t jj = oj * g->stride_w - g->pad_w + kj * dw;
                        if (jj >= 0 && jj < g->width) dst[jj] += src[oj];
                    }
                }
            }
    return LM_OK;
}

/* ---- pooling
 * --------------------------------------------------------------------------------------- */

typedef struct {
    float *out;
    int32_t *argmax;
    const float *x, *g;
    const lm_conv_geometry *geo;
} pool_job;

/* The outputs [*lo, *hi) along one dimension whose windows lie wholly
 * inside the input: no bounds checks there. */
static void pool_interior(int64_t out, int64_t stride, int64_t pad, int64_t k, int64_t size,
                          int64_t *lo, int64_t *hi) {
    *lo = (pad + stride - 1) / stride;
    *hi = size - k + pad < 0 ? 0 : (size - k + pad) / stride + 1;
    if (*hi > out) *hi = out;
    if (*lo > *hi) *lo = *hi;
}

/* The input rows [*i0, *i1) under output row oi's windows. */
static void pool_window_rows(const lm_conv_geometry *g, int64_t oi, int64_t *i0, int64_t *i1) {
    *i0 = oi * g->stride_h - g->pad_h;
    *i1 = *i0 + g->kernel_h;
    if (*i0 < 0) *i0 = 0;
    if (*i1 > g->height) *i1 = g->height;
}

/* The first output column from oj on that lies at an edge, outside the
 * interior [lo, hi) (out_w and beyond: none is left). */
static int64_t pool_next_edge(int64_t oj, int64_t lo, int64_t hi) {
    return oj == lo && hi > lo ? hi : oj;
}

/* One output at an edge, its window over rows [i0, i1) and the columns
 * from j0 that lie in the row. Max keeps the first largest value, and the
 * last NaN wins over any number, as torch; average divides by the whole
 * window (torch's count_include_pad). */
static void pool_edge(const float *x, const lm_conv_geometry *g, int64_t i0, int64_t i1, int64_t j0,
                      bool max, float *out, int32_t *argmax) {
    float best = -INFINITY, sum = 0;
    int32_t best_at = -1;
    for (int64_t i = i0; i < i1; i++)
        for (int64_t jj = j0 < 0 ? 0 : j0; jj < j0 + g->kernel_w && jj < g->width; jj++) {
            float v = x[i * g->width + jj];
            sum += v;
            if (v > best || best_at < 0 || v != v) {
                best = v;
                best_at = (int32_t)(i * g->width + jj);
            }
        }
    if (max) {
        *out = best;
        *argmax = best_at;
    } else {
        *out = sum / (float)(g->kernel_h * g->kernel_w);
    }
}

/* The outputs [lo, hi) of one output row whose windows lie inside the
 * row, the same rules as pool_edge: each window visits its rows, then its
 * columns, in the same order, but the loop runs across the outputs, which
 * vectorises (a comparison per element was a coin toss the branch predictor
 * lost: 25 ns an output for a 3x3 max). */
static void pool_row_max(const float *x, const lm_conv_geometry *g, int64_t i0, int64_t i1,
                         int64_t lo, int64_t hi, float *o, int32_t *am) {
    int64_t sw = g->stride_w, w = g->width, base = -g->pad_w;
    for (int64_t oj = lo; oj < hi; oj++) {
        o[oj] = -INFINITY;
        am[oj] = (int32_t)(i0 * w + base + oj * sw); /* the first element, if none is larger */
    }
    for (int64_t i = i0; i < i1; i++)
        for (int64_t kj = 0; kj < g->kernel_w; kj++) {
            int64_t at = i * w + base + kj; /* of output 0, which may lie in the padding */
            for (int64_t oj = lo; oj < hi; oj++) {
                float v = x[at + oj * sw];
                bool take = (v > o[oj]) | (v != v);
                o[oj] = take ? v : o[oj];
                am[oj] = take ? (int32_t)(at + oj * sw) : am[oj];
            }
        }
}

static void pool_row_avg(const float *x, const lm_conv_geometry *g, int64_t i0, int64_t i1,
                         int64_t lo, int64_t hi, float *o) {
    int64_t sw = g->stride_w, w = g->width, base = -g->pad_w;
    for (int64_t oj = lo; oj < hi; oj++) o[oj] = 0;
    for (int64_t i = i0; i < i1; i++)
        for (int64_t kj = 0; kj < g->kernel_w; kj++) {
            int64_t at = i * w + base + kj; /* of output 0, which may lie in the padding */
            for (int64_t oj = lo; oj < hi; oj++) o[oj] += x[at + oj * sw];
        }
    float window = (float)(g->kernel_h * g->kernel_w);
    for (int64_t oj = lo; oj < hi; oj++) o[oj] /= window;
}

static void pool_planes(void *ctx, int64_t p0, int64_t p1) {
    pool_job *j = ctx;
    const lm_conv_geometry *g = j->geo;
    bool max = j->argmax != NULL;
    int64_t in_plane = g->height * g->width, out_plane = g->out_h * g->out_w, lo, hi;
    pool_interior(g->out_w, g->stride_w, g->pad_w, g->kernel_w, g->width, &lo, &hi);
    for (int64_t p = p0; p < p1; p++) {
        const float *x = j->x + p * in_plane;
        for (int64_t oi = 0; oi < g->out_h; oi++) {
            int64_t i0, i1;
            pool_window_rows(g, oi, &i0, &i1);
            float *o = j->out + p * out_plane + oi * g->out_w;
            int32_t *am = max ? j->argmax + p * out_plane + oi * g->out_w : NULL;
            for (int64_t oj = pool_next_edge(0, lo, hi); oj < g->out_w; /* the interior below */
                 oj = pool_next_edge(oj + 1, lo, hi))
                pool_edge(x, g, i0, i1, oj * g->stride_w - g->pad_w, max, o + oj,
                          max ? am + oj : NULL);
            if (max)
                pool_row_max(x, g, i0, i1, lo, hi, o, am);
            else
                pool_row_avg(x, g, i0, i1, lo, hi, o);
        }
    }
}

lm_status lm_cpu_pool2d(lm_tensor *out, lm_tensor *argmax, const lm_tensor *x,
                        const lm_conv_geometry *geo) {
    pool_job j = {lm_tensor_f32(out), argmax ? lm_tensor_i32(argmax) : NULL, lm_tensor_f32(x), NULL,
                  geo};
    lm_parallel_for(x->shape[0], 1, pool_planes, &j);
    return LM_OK;
}

static void pool_backward_planes(void *ctx, int64_t p0, int64_t p1) {
    pool_job *j = ctx;
    const lm_conv_geometry *g = j->geo;
    int64_t in_plane = g->height * g->width, out_plane = g->out_h * g->out_w, lo, hi;
    pool_interior(g->out_w, g->stride_w, g->pad_w, g->kernel_w, g->width, &lo, &hi);
    float scale = 1.0f / (float)(g->kernel_h * g->kernel_w);
    for (int64_t p = p0; p < p1; p++) {
        float *gx = j->out + p * in_plane;
        memset(gx, 0, sizeof(float) * in_plane);
        const float *gp = j->g + p * out_plane;
        if (j->argmax) {
            const int32_t *am = j->argmax + p * out_plane;
            for (int64_t o = 0; o < out_plane; o++)
                if (am[o] >= 0) gx[am[o]] += gp[o];
            continue;
        }
        for (int64_t oi = 0; oi < g->out_h; oi++) {
            int64_t i0, i1;
            pool_window_rows(g, oi, &i0, &i1);
            const float *go = gp + oi * g->out_w;
            /* the edges' windows, bounds-checked; then the interior's (as
             * the forward pass), each row of a window across the outputs */
            for (int64_t oj = pool_next_edge(0, lo, hi); oj < g->out_w;
                 oj = pool_next_edge(oj + 1, lo, hi)) {
                int64_t j0 = oj * g->stride_w - g->pad_w;
                float v = go[oj] * scale;
                for (int64_t i = i0; i < i1; i++)
                    for (int64_t jj = j0 < 0 ? 0 : j0; jj < j0 + g->kernel_w && jj < g->width; jj++)
                        gx[i * g->width + jj] += v;
            }
            for (int64_t i = i0; i < i1; i++)
                for (int64_t kj = 0; kj < g->kernel_w; kj++) {
                    int64_t at = i * g->width - g->pad_w + kj; /* of output 0 */
                    for (int64_t oj = lo; oj < hi; oj++)
                        gx[at + oj * g->stride_w] += go[oj] * scale;
                }
        }
    }
}

lm_status lm_cpu_pool2d_backward(lm_tensor *gx, const lm_tensor *g, const lm_tensor *argmax,
                                 const lm_conv_geometry *geo) {
    pool_job j = {lm_tensor_f32(gx), argmax ? (int32_t *)lm_tensor_i32(argmax) : NULL, NULL,
                  lm_tensor_f32(g), geo};
    lm_parallel_for(gx->shape[0], 1, pool_backward_planes, &j);
    return LM_OK;
}

/* ---- one-hot
 * ---------------------------------------------------------------------------------------- */

lm_status lm_cpu_one_hot(lm_tensor *out, const lm_tensor *labels) {
    int64_t n = out->shape[0], classes = out->shape[1];
    float *o = lm_tensor_f32(out);
    memset(o, 0, sizeof(float) * n * classes);
    for (int64_t i = 0; i < n; i++) {
        int32_t c = lm_tensor_i32(labels)[i * labels->strides[0]];
        if (c >= 0 && c < classes) o[i * classes + c] = 1.0f;
    }
    return LM_OK;
}

/* ---- optimisers: one fused loop over the parameters, no temporaries
 * -------------------------------------- */

/* Elements [i0, i1) of one parameter. */
static void optim_update(const lm_optim_params *p, float *restrict w, float *restrict s1,
                         float *restrict s2, const float *restrict g, int64_t i0, int64_t i1) {
    float lr = (float)p->lr, wd = (float)p->weight_decay, eps = (float)p->eps;
    switch (p->kind) {
    case LM_OPT_SGD: {
        float mu = (float)p->momentum;
        for (int64_t i = i0; i < i1; i++) {
            float d = g[i] + wd * w[i];
            if (s1) {
                float v = mu * s1[i] + d;
                s1[i] = v;
                d = p->nesterov ? d + mu * v : v;
            }
            w[i] -= lr * d;
        }
        break;
    }
    case LM_OPT_ADAM:
    case LM_OPT_ADAMW: {
        float b1 = (float)p->beta1, b2 = (float)p->beta2;
        /* 1 - beta from the double (as PyTorch): 1 - (float)0.999 is off by 1.3e-5 */
        float ob1 = (float)(1 - p->beta1), ob2 = (float)(1 - p->beta2);
        /* bias corrections folded into the step size and epsilon */
        double c1 = 1 - pow(p->beta1, (double)p->step), c2 = 1 - pow(p->beta2, (double)p->step);
        /* sqrt(v) / sqrt(c2) as a product: one division a parameter, not two
         * (the step is divide-bound; the result moves by at most an ulp) */
        float step = (float)(p->lr / c1), inv_root_c2 = (float)(1 / sqrt(c2));
        bool decoupled = p->kind == LM_OPT_ADAMW;
        for (int64_t i = i0; i < i1; i++) {
            float gi = decoupled ? g[i] : g[i] + wd * w[i];
            if (decoupled) w[i] -= lr * wd * w[i];
            float m = b1 * s1[i] + ob1 * gi;
            float v = b2 * s2[i] + ob2 * gi * gi;
            s1[i] = m;
            s2[i] = v;
            w[i] -= step * m / (sqrtf(v) * inv_root_c2 + eps);
        }
        break;
    }
    case LM_OPT_RMSPROP: {
        float a = (float)p->alpha, oa = (float)(1 - p->alpha);
        for (int64_t i = i0; i < i1; i++) {
            float gi = g[i] + wd * w[i];
            float v = a * s1[i] + oa * gi * gi;
            s1[i] = v;
            w[i] -= lr * gi / (sqrtf(v) + eps);
        }
        break;
    }
    }
}

/* Many parameters as one range of elements, parameter after parameter:
 * one hand-over to the threads for the whole model instead of one per
 * parameter (a Net1 step has 13 weights large enough to split), and each
 * thread updates the same elements every step. */
#define OPTIM_MANY_MAX 256

typedef struct {
    const lm_optim_params *p;
    int n;
    lm_tensor *const *params, *const *s1, *const *s2;
    const lm_tensor *const *grads;
    int64_t start[OPTIM_MANY_MAX + 1]; /* parameter k holds elements start[k] .. start[k+1]-1 */
} optim_many_job;

static void optim_many_range(void *ctx, int64_t i0, int64_t i1) {
    const optim_many_job *j = ctx;
    int k = 0;
    while (j->start[k + 1] <= i0) k++;
    for (; k < j->n && j->start[k] < i1; k++) {
        int64_t lo = i0 > j->start[k] ? i0 - j->start[k] : 0;
        int64_t hi = (i1 < j->start[k + 1] ? i1 : j->start[k + 1]) - j->start[k];
        optim_update(j->p, lm_tensor_f32(j->params[k]), lm_tensor_f32_or_null(j->s1[k]),
                     lm_tensor_f32_or_null(j->s2[k]), lm_tensor_f32(j->grads[k]), lo, hi);
    }
}

lm_status lm_cpu_optim_step_many(const lm_optim_params *p, int n, lm_tensor *const *params,
                                 const lm_tensor *const *grads, lm_tensor *const *s1,
                                 lm_tensor *const *s2) {
    for (int first = 0; first < n; first += OPTIM_MANY_MAX) {
        optim_many_job j = {.p = p, .n = n - first < OPTIM_MANY_MAX ? n - first : OPTIM_MANY_MAX};
        j.params = params + first, j.grads = grads + first, j.s1 = s1 + first, j.s2 = s2 + first;
        for (int k = 0; k < j.n; k++) j.start[k + 1] = j.start[k] + lm_tensor_numel(j.params[k]);
        lm_parallel_for_balanced(j.start[j.n], LM_GRAIN_ELEMENTWISE, optim_many_range, &j);
    }
    return LM_OK;
}

lm_status lm_cpu_optim_step(const lm_optim_params *p, lm_tensor *param, const lm_tensor *grad,
                            lm_tensor *s1, lm_tensor *s2) {
    return lm_cpu_optim_step_many(p, 1, &param, &grad, &s1, &s2);
}

/* ---- squared differences by row (the MSE's forward pass)
 * ------------------------------------------------------------------------------------- */

typedef struct {
    float *diff, *rows;
    const float *a, *b;
    int64_t cols;
} sq_diff_job;

/* Each row's sum over eight interleaved partial sums in double, combined in
 * a fixed order (as cpu_reduce.c sums): vectorised, independent of threads. */
static void sq_diff_range(void *ctx, int64_t r0, int64_t r1) {
    sq_diff_job *j = ctx;
    for (int64_t r = r0; r < r1; r++) {
        const float *restrict a = j->a + r * j->cols, *restrict b = j->b + r * j->cols;
        float *restrict d = j->diff + r * j->cols;
        double acc[8] = {0};
        int64_t i = 0;
        for (; i + 8 <= j->cols; i += 8)
            for (int k = 0; k < 8; k++) {
                float v = a[i + k] - b[i + k];
                d[i + k] = v;
                acc[k] += (double)v * v;
            }
        for (int k = 0; i < j->cols; i++, k++) {
            float v = a[i] - b[i];
            d[i] = v;
            acc[k] += (double)v * v;
        }
        j->rows[r] = (float)(((acc[0] + acc[4]) + (acc[2] + acc[6])) +
                             ((acc[1] + acc[5]) + (acc[3] + acc[7])));
    }
}

lm_status lm_cpu_sq_diff_rows(lm_tensor *diff, lm_tensor *rows, const lm_tensor *a,
                              const lm_tensor *b) {
    int64_t n = rows->shape[0], cols = n ? lm_tensor_numel(a) / n : 0;
    sq_diff_job j = {lm_tensor_f32(diff), lm_tensor_f32(rows), lm_tensor_f32(a), lm_tensor_f32(b),
                     cols};
    lm_parallel_for(n, LM_GRAIN_ELEMENTWISE / (cols + 1) + 1, sq_diff_range, &j);
    return LM_OK;
}

/* ---- row gathering
 * ------------------------------------------------------------------------------------ */

typedef struct {
    char *out;
    const char *x;
    const lm_tensor *idx;
    size_t row_bytes;
} gather_job;

static void gather_rows(void *ctx, int64_t i0, int64_t i1) {
    gather_job *j = ctx;
    const int32_t *idx = lm_tensor_i32(j->idx);
    int64_t stride = j->idx->strides[0];
    for (int64_t i = i0; i < i1; i++) {
        /* the rows are scattered (a shuffled batch): ask for the next one while
         * copying this one, so that the copy does not wait on each row's misses */
        if (i + 1 < i1) {
            const char *next = j->x + (size_t)idx[(i + 1) * stride] * j->row_bytes;
            for (size_t b = 0; b < j->row_bytes; b += 64) __builtin_prefetch(next + b);
        }
        memcpy(j->out + i * j->row_bytes, j->x + (size_t)idx[i * stride] * j->row_bytes,
               j->row_bytes);
    }
}

lm_status lm_cpu_index_select(lm_tensor *out, const lm_tensor *x, const lm_tensor *idx) {
    int64_t n = idx->shape[0];
    size_t row =
        x->shape[0] ? (size_t)(lm_tensor_numel(x) / x->shape[0]) * lm_dtype_size(x->dtype) : 0;
    gather_job j = {(char *)lm_tensor_data(out), (const char *)lm_tensor_data(x), idx, row};
    lm_parallel_for_balanced(n, row ? (int64_t)(LM_GRAIN_ELEMENTWISE * 4 / row) + 1 : n,
                             gather_rows, &j);
    return LM_OK;
}

/* ---- top-k per row
 * ------------------------------------------------------------------------------------- */

typedef struct {
    float *values;
    int32_t *indices;
    const float *x;
    int64_t cols, k;
    bool largest;
} topk_job;

/* Above this k a row is merge sorted (cols log cols) instead of inserted into
 * the k best (cols k at worst): x:sort asks for every column. */
#define TOPK_SORT_FROM_K 64

/* One merge pass of a stable bottom-up merge sort: runs of `width` from
 * (key, idx) into (key2, idx2), the left run first among equal keys. */
static void merge_runs(const float *key, const int32_t *idx, float *key2, int32_t *idx2, int64_t n,
                       int64_t width) {
    for (int64_t lo = 0; lo < n; lo += 2 * width) {
        int64_t mid = lo + width < n ? lo + width : n, hi = lo + 2 * width < n ? lo + 2 * width : n;
        int64_t a = lo, b = mid, out = lo;
        while (a < mid && b < hi) {
            bool right = key[b] < key[a];
            key2[out] = right ? key[b] : key[a];
            idx2[out++] = right ? idx[b++] : idx[a++];
        }
        while (a < mid) key2[out] = key[a], idx2[out++] = idx[a++];
        while (b < hi) key2[out] = key[b], idx2[out++] = idx[b++];
    }
}

/* lm_topk_row's result (the same values, indices and order: ties in column
 * order, NaN after every number in column order) by a stable merge sort of
 * the row; `scratch` holds 4 cols floats. */
static void topk_row_sorted(const float *row, int64_t cols, int64_t k, bool largest, float *bv,
                            int32_t *bi, float *scratch) {
    float *key = scratch, *key2 = scratch + cols;
    int32_t *idx = (int32_t *)(scratch + 2 * cols), *idx2 = (int32_t *)(scratch + 3 * cols);
    int64_t n = 0;
    for (int64_t c = 0; c < cols; c++)
        if (row[c] == row[c]) key[n] = largest ? -row[c] : row[c], idx[n++] = (int32_t)c;
    for (int64_t width = 1; width < n; width *= 2) {
        merge_runs(key, idx, key2, idx2, n, width);
        float *tk = key;
        key = key2, key2 = tk;
        int32_t *ti = idx;
        idx = idx2, idx2 = ti;
    }
    int64_t have = n < k ? n : k;
    for (int64_t t = 0; t < have; t++) bv[t] = largest ? -key[t] : key[t], bi[t] = idx[t];
    for (int64_t c = 0; c < cols && have < k; c++)
        if (row[c] != row[c]) bv[have] = row[c], bi[have++] = (int32_t)c;
}

static void topk_rows(void *ctx, int64_t r0, int64_t r1) {
    topk_job *j = ctx;
    /* a large k sorts; without its scratch (out of memory) the insertion gives the same */
    float *scratch = j->k > TOPK_SORT_FROM_K ? malloc((size_t)j->cols * 4 * sizeof(float)) : NULL;
    for (int64_t r = r0; r < r1; r++) {
        const float *row = j->x + r * j->cols;
        if (scratch)
            topk_row_sorted(row, j->cols, j->k, j->largest, j->values + r * j->k,
                            j->indices + r * j->k, scratch);
        else
            lm_topk_row(row, j->cols, j->k, j->largest, j->values + r * j->k,
                        j->indices + r * j->k);
    }
    free(scratch);
}

lm_status lm_cpu_topk(lm_tensor *values, lm_tensor *indices, const lm_tensor *x, int64_t k,
                      bool largest) {
    topk_job j = {
        lm_tensor_f32(values), lm_tensor_i32(indices), lm_tensor_f32(x), x->shape[1], k, largest};
    lm_parallel_for(x->shape[0], 1 + LM_GRAIN_ELEMENTWISE / (x->shape[1] + 1), topk_rows, &j);
    return LM_OK;
}
