/* Whole-batch 2-D convolution on the CPU (the backend's conv2d and
 * conv2d_backward). The images of a chunk are unfolded (im2col) side by side
 * into one column matrix [C*kh*kw, images * out pixels], so a layer with
 * small output planes (ResNet's 8x8 and 4x4) still makes one wide GEMM
 * instead of one thin product per image, and the unfolding runs on every
 * thread. A chunk of one image writes its product straight into the output. */
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "cpu_backend.h"
#include "lm_alloc.h"
#include "lm_error.h"
#include "lm_threads.h"

/* Output pixels a GEMM should cover to run at the kernels' full speed, and
 * the most column memory a chunk may take. */
#define CONV_COLUMNS 1024
#define CONV_COLS_BYTES ((int64_t)48 << 20)

static int64_t chunk_images(const lm_conv_geometry *g, int64_t n, int64_t k) {
    int64_t p = g->out_h * g->out_w, nb = (CONV_COLUMNS + p - 1) / p;
    int64_t cap = CONV_COLS_BYTES / (k * p * (int64_t)sizeof(float));
    if (nb > cap) nb = cap;
    if (nb > n) nb = n;
    return nb < 1 ? 1 : nb;
}

/* The kh*kw rows of channel plane x [H, W] in a column matrix with row stride ld. */
static void unfold_plane(const float *x, float *rows, int64_t ld, const lm_conv_geometry *g) {
    for (int64_t ki = 0; ki < g->kernel_h; ki++)
        for (int64_t kj = 0; kj < g->kernel_w; kj++) {
            float *row = rows + (ki * g->kernel_w + kj) * ld;
            /* the output columns whose input column lies inside the image */
            int64_t lo = g->pad_w - kj > 0 ? (g->pad_w - kj + g->stride_w - 1) / g->stride_w : 0;
            int64_t hi = (g->width - 1 + g->pad_w - kj) / g->stride_w + 1;
            if (g->width - 1 + g->pad_w - kj < 0) hi = 0;
            if (hi > g->out_w) hi = g->out_w;
            if (lo > hi) lo = hi;
            for (int64_t oi = 0; oi < g->out_h; oi++) {
                int64_t i = oi * g->stride_h - g->pad_h + ki;
                float *dst = row + oi * g->out_w;
                if (i < 0 || i >= g->height) {
                    memset(dst, 0, sizeof(float) * (size_t)g->out_w);
                    continue;
                }
                for (int64_t oj = 0; oj < lo; oj++) dst[oj] = 0.0f;
                if (hi > lo) {
                    const float *src = x + i * g->width + lo * g->stride_w - g->pad_w + kj;
                    if (g->stride_w == 1)
                        memcpy(dst + lo, src, sizeof(float) * (size_t)(hi - lo));
                    else
                        for (int64_t oj = lo; oj < hi; oj++) dst[oj] = src[(oj - lo) * g->stride_w];
                }
                for (int64_t oj = hi; oj < g->out_w; oj++) dst[oj] = 0.0f;
            }
        }
}

/* Narrow output rows (ResNet's 8x8 and 4x4 planes) are too short for a copy
 * call each: the source of every (kernel offset, output pixel) is looked up
 * in a table built once per call (-1: padding), a gather the compiler
 * vectorises. */
#define CONV_TABLE_MAX_WIDTH 24

static int32_t *unfold_table(const lm_conv_geometry *g) {
    int64_t p = g->out_h * g->out_w, kk = g->kernel_h * g->kernel_w;
    int32_t *t = lm_cpu_alloc((size_t)(kk * p) * sizeof(int32_t));
    if (!t) return NULL;
    for (int64_t ki = 0; ki < g->kernel_h; ki++)
        for (int64_t kj = 0; kj < g->kernel_w; kj++)
            for (int64_t oi = 0; oi < g->out_h; oi++)
                for (int64_t oj = 0; oj < g->out_w; oj++) {
                    int64_t i = oi * g->stride_h - g->pad_h + ki,
                            j = oj * g->stride_w - g->pad_w + kj;
                    bool inside = i >= 0 && i < g->height && j >= 0 && j < g->width;
                    t[((ki * g->kernel_w + kj) * g->out_h + oi) * g->out_w + oj] =
                        inside ? (int32_t)(i * g->width + j) : -1;
                }
    return t;
}

static void unfold_plane_table(const float *restrict x, float *rows, int64_t ld,
                               const int32_t *table, int64_t kk, int64_t p) {
    for (int64_t r = 0; r < kk; r++) {
        const int32_t *restrict t = table + r * p;
        float *restrict dst = rows + r * ld;
        for (int64_t q = 0; q < p; q++) {
            /* padding (-1) reads element 0 and clears its bits: an unconditional
             * load, so the loop becomes a vector gather, not a branch */
            int32_t at = t[q];
            uint32_t keep = ~(uint32_t)(at >> 31), bits;
            float v = x[at & (int32_t)keep];
            memcpy(&bits, &v, sizeof bits);
            bits &= keep;
            memcpy(&dst[q], &bits, sizeof bits);
        }
    }
}

/* Adds the kh*kw rows of one channel back onto its plane gx [H, W] (col2im). */
static void fold_plane(float *gx, const float *rows, int64_t ld, const lm_conv_geometry *g) {
    for (int64_t ki = 0; ki < g->kernel_h; ki++)
        for (int64_t kj = 0; kj < g->kernel_w; kj++) {
            const float *row = rows + (ki * g->kernel_w + kj) * ld;
            for (int64_t oi = 0; oi < g->out_h; oi++) {
                int64_t i = oi * g->stride_h - g->pad_h + ki;
                if (i < 0 || i >= g->height) continue;
                float *dst = gx + i * g->width;
                const float *src = row + oi * g->out_w;
                for (int64_t oj = 0; oj < g->out_w; oj++) {
                    int64_t jj = oj * g->stride_w - g->pad_w + kj;
                    if (jj >= 0 && jj < g->width) dst[jj] += src[oj];
                }
            }
        }
}

/* One chunk: images [first, first + count) of x or gx, columns [K, ld]. */
typedef struct {
    const lm_conv_geometry *g;
    const float *x;
    float *gx, *cols;
    int64_t first, ld;
    const int32_t *table; /* unfold_table's, or NULL for wide rows */
} plane_job;

static void unfold_range(void *ctx, int64_t b, int64_t e) {
    const plane_job *j = ctx;
    const lm_conv_geometry *g = j->g;
    int64_t plane = g->height * g->width, p = g->out_h * g->out_w, kk = g->kernel_h * g->kernel_w;
    for (int64_t t = b; t < e; t++) { /* t = image in chunk * C + channel */
        int64_t i = t / g->channels, c = t % g->channels;
        const float *x = j->x + ((j->first + i) * g->channels + c) * plane;
        float *rows = j->cols + c * kk * j->ld + i * p;
        if (j->table)
            unfold_plane_table(x, rows, j->ld, j->table, kk, p);
        else
            unfold_plane(x, rows, j->ld, g);
    }
}

static void fold_range(void *ctx, int64_t b, int64_t e) {
    const plane_job *j = ctx;
    const lm_conv_geometry *g = j->g;
    int64_t plane = g->height * g->width, p = g->out_h * g->out_w, kk = g->kernel_h * g->kernel_w;
    for (int64_t t = b; t < e; t++) {
        int64_t i = t / g->channels, c = t % g->channels;
        float *gx = j->gx + ((j->first + i) * g->channels + c) * plane;
        memset(gx, 0, sizeof(float) * (size_t)plane);
        fold_plane(gx, j->cols + c * kk * j->ld + i * p, j->ld, g);
    }
}

/* Moves planes between [count images, O, P] (the tensor) and [O, count * P]
 * (the GEMM's side-by-side layout), in either direction. */
typedef struct {
    float *batched, *side;
    int64_t out_channels, p, count;
    bool to_side;
} relayout_job;

static void relayout_range(void *ctx, int64_t b, int64_t e) {
    const relayout_job *j = ctx;
    for (int64_t t = b; t < e; t++) { /* t = image * O + channel */
        int64_t i = t / j->out_channels, o = t % j->out_channels;
        float *tensor = j->batched + t * j->p, *side = j->side + (o * j->count + i) * j->p;
        if (j->to_side)
            memcpy(side, tensor, sizeof(float) * (size_t)j->p);
        else
            memcpy(tensor, side, sizeof(float) * (size_t)j->p);
    }
}

static void relayout(float *batched, float *side, int64_t o, int64_t p, int64_t count,
                     bool to_side) {
    relayout_job j = {batched, side, o, p, count, to_side};
    lm_parallel_for(count * o, LM_GRAIN_ELEMENTWISE / (p + 1) + 1, relayout_range, &j);
}

static int64_t plane_grain(const lm_conv_geometry *g) {
    return LM_GRAIN_ELEMENTWISE / (g->kernel_h * g->kernel_w * g->out_h * g->out_w + 1) + 1;
}

static lm_conv_algorithm conv_algorithm = LM_CONV_AUTO;

void lm_set_conv_algorithm(lm_conv_algorithm algorithm) {
    conv_algorithm = algorithm;
}

lm_conv_algorithm lm_get_conv_algorithm(void) {
    return conv_algorithm;
}

/* Winograd's transforms cost memory traffic per tile and channel; with few
 * channels the products they save are too small to pay for them (measured:
 * bench/conv_algorithms.lua). */
#define WINOGRAD_MIN_CHANNELS 16

lm_conv_algorithm lm_cpu_conv_choice(int64_t out_channels, const lm_conv_geometry *g) {
    if (!lm_cpu_winograd_applies(g) || conv_algorithm == LM_CONV_GEMM) return LM_CONV_GEMM;
    if (conv_algorithm == LM_CONV_WINOGRAD) return LM_CONV_WINOGRAD;
    return g->channels >= WINOGRAD_MIN_CHANNELS && out_channels >= WINOGRAD_MIN_CHANNELS
               ? LM_CONV_WINOGRAD
               : LM_CONV_GEMM;
}

/* Whether every value of a contiguous float tensor is finite, checked by
 * the threads side by side (an exponent of all ones is an infinity or a
 * NaN). Winograd's transforms add and subtract neighbouring inputs, so one
 * infinity becomes +inf and -inf in a tile and the products then give
 * inf - inf = NaN where a direct sum gives inf: such operands go the im2col
 * way. */
typedef struct {
    const uint32_t *bits;
    atomic_bool found;
} finite_job;

static void finite_range(void *ctx, int64_t b, int64_t e) {
    finite_job *j = ctx;
    uint32_t all_ones = 0;
    for (int64_t i = b; i < e; i++) /* no early exit: the loop vectorises */
        all_ones |= (uint32_t)((j->bits[i] & 0x7f800000u) == 0x7f800000u);
    if (all_ones) atomic_store_explicit(&j->found, true, memory_order_relaxed);
}

static bool all_finite(const lm_tensor *t) {
    finite_job j = {(const uint32_t *)(const void *)lm_tensor_f32((lm_tensor *)t), false};
    lm_parallel_for(lm_tensor_numel(t), LM_GRAIN_ELEMENTWISE, finite_range, &j);
    return !atomic_load(&j.found);
}

/* Adds bias[o] to the planes of a chunk's output while they are in cache
 * (count images' [o, p] planes; the same sums as a pass over the whole
 * output afterwards, without that pass). */
typedef struct {
    float *out;
    const float *bias;
    int64_t o, p;
} bias_job;

static void bias_range(void *ctx, int64_t b, int64_t e) {
    const bias_job *j = ctx;
    for (int64_t t = b; t < e; t++) { /* t = image * O + channel */
        float *plane = j->out + t * j->p, v = j->bias[t % j->o];
        for (int64_t i = 0; i < j->p; i++) plane[i] += v;
    }
}

/* The buffers of one im2col pass: the columns [K, nb * P], the output
 * chunk in [O, nb * P] order when nb > 1 images share a product, and the
 * unfold table for narrow outputs. */
typedef struct {
    float *cols, *side;
    int32_t *table;
    size_t cols_bytes, side_bytes, table_bytes;
} im2col_buffers;

static void im2col_buffers_free(im2col_buffers *b) {
    lm_cpu_free(b->cols, b->cols_bytes);
    lm_cpu_free(b->side, b->side_bytes);
    lm_cpu_free(b->table, b->table_bytes);
}

/* side_count 0: no side buffer. False, with nothing held, when memory runs out. */
static bool im2col_buffers_alloc(im2col_buffers *b, const lm_conv_geometry *g, int64_t cols_count,
                                 int64_t side_count, bool with_table) {
    *b = (im2col_buffers){.cols_bytes = (size_t)cols_count * sizeof(float),
                          .side_bytes = (size_t)side_count * sizeof(float),
                          .table_bytes = (size_t)(g->kernel_h * g->kernel_w * g->out_h * g->out_w) *
                                         sizeof(int32_t)};
    b->cols = lm_cpu_alloc(b->cols_bytes);
    b->side = side_count > 0 ? lm_cpu_alloc(b->side_bytes) : NULL;
    b->table = with_table ? unfold_table(g) : NULL;
    if (b->cols && (side_count == 0 || b->side) && (!with_table || b->table)) return true;
    im2col_buffers_free(b);
    return false;
}

lm_status lm_cpu_conv2d(lm_tensor *out, const lm_tensor *x, const lm_tensor *w,
                        const lm_tensor *bias, const lm_conv_geometry *g) {
    if (lm_cpu_conv_choice(w->shape[0], g) == LM_CONV_WINOGRAD && all_finite(x) && all_finite(w))
        return lm_cpu_conv2d_winograd(out, x, w, bias, g);
    int64_t n = x->shape[0], o = w->shape[0], p = g->out_h * g->out_w;
    int64_t k = g->channels * g->kernel_h * g->kernel_w, nb = chunk_images(g, n, k);
    im2col_buffers b;
    if (!im2col_buffers_alloc(&b, g, k * nb * p, nb > 1 ? o * nb * p : 0,
                              g->out_w <= CONV_TABLE_MAX_WIDTH))
        return LM_ERR_MEMORY;
    float *cols = b.cols, *side = b.side;
    const int32_t *table = b.table;
    const float *wp = lm_tensor_f32(w);
    float *op = lm_tensor_f32(out);
    for (int64_t first = 0; first < n; first += nb) {
        int64_t count = n - first < nb ? n - first : nb, ld = count * p;
        plane_job j = {g, lm_tensor_f32(x), NULL, cols, first, ld, table};
        lm_parallel_for(count * g->channels, plane_grain(g), unfold_range, &j);
        float *dst = count > 1 ? side : op + first * o * p;
        lm_cpu_sgemm(false, false, o, ld, k, 1.0f, wp, k, cols, ld, 0.0f, dst, ld);
        if (count > 1) relayout(op + first * o * p, side, o, p, count, false);
        if (bias) {
            bias_job bj = {op + first * o * p, lm_tensor_f32(bias), o, p};
            lm_parallel_for(count * o, LM_GRAIN_ELEMENTWISE / (p + 1) + 1, bias_range, &bj);
        }
    }
    im2col_buffers_free(&b);
    return LM_OK;
}

/* gx and gw by im2col: the images' columns, their products with the output
 * gradient, and (for gx) the columns' gradient folded back. */
static lm_status backward_im2col(lm_tensor *gx, lm_tensor *gw, const lm_tensor *g_t,
                                 const lm_tensor *x, const lm_tensor *w,
                                 const lm_conv_geometry *g) {
    int64_t n = x->shape[0], o = w->shape[0], p = g->out_h * g->out_w;
    int64_t k = g->channels * g->kernel_h * g->kernel_w, nb = chunk_images(g, n, k);
    im2col_buffers b;
    if (!im2col_buffers_alloc(&b, g, k * nb * p, nb > 1 ? o * nb * p : 0,
                              gw && g->out_w <= CONV_TABLE_MAX_WIDTH))
        return LM_ERR_MEMORY;
    float *cols = b.cols, *side = b.side;
    const int32_t *table = b.table;
    const float *wp = lm_tensor_f32(w);
    float *gp = lm_tensor_f32(g_t);
    for (int64_t first = 0; first < n; first += nb) {
        int64_t count = n - first < nb ? n - first : nb, ld = count * p;
        float *gc = gp + first * o * p; /* [O, count * P]: the chunk's output gradient */
        if (count > 1) {
            relayout(gc, side, o, p, count, true);
            gc = side;
        }
        plane_job j = {g, lm_tensor_f32(x), lm_tensor_f32_or_null(gx), cols, first, ld, table};
        if (gw) { /* gw (+)= gc @ cols^T */
            lm_parallel_for(count * g->channels, plane_grain(g), unfold_range, &j);
            lm_cpu_sgemm(false, true, o, k, ld, 1.0f, gc, ld, cols, ld, first ? 1.0f : 0.0f,
                         lm_tensor_f32(gw), k);
        }
        if (gx) { /* the columns' gradient w^T @ gc, folded back onto the images */
            lm_cpu_sgemm(true, false, k, ld, o, 1.0f, wp, k, gc, ld, 0.0f, cols, ld);
            lm_parallel_for(count * g->channels, plane_grain(g), fold_range, &j);
        }
    }
    im2col_buffers_free(&b);
    return LM_OK;
}

lm_status lm_cpu_conv2d_backward(lm_tensor *gx, lm_tensor *gw, const lm_tensor *g_t,
                                 const lm_tensor *x, const lm_tensor *w,
                                 const lm_conv_geometry *g) {
    if (lm_cpu_conv_choice(w->shape[0], g) != LM_CONV_WINOGRAD || !all_finite(g_t) ||
        !all_finite(x) || !all_finite(w))
        return backward_im2col(gx, gw, g_t, x, w, g);
    lm_status st = LM_OK;
    if (gw)
        st = lm_cpu_winograd_grad_weight_gains(g)
                 ? lm_cpu_conv2d_winograd_grad_weight(gw, g_t, x, g)
                 : backward_im2col(NULL, gw, g_t, x, w, g);
    if (st != LM_OK || !gx) return st;
    return lm_cpu_winograd_grad_input_applies(g) /* the input's gradient pads by 2 - pad */
               ? lm_cpu_conv2d_winograd_grad_input(gx, g_t, w, g)
               : backward_im2col(gx, NULL, g_t, x, w, g);
}
