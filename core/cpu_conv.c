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
#include "cpu_lanes.h"
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
    if (nb < 1) return 1;
    /* as many chunks, but even: 8 images of 14x14 made chunks of 6 and 2,
     * and the thread with the 6 did three quarters of the layer */
    int64_t chunks = (n + nb - 1) / nb;
    return (n + chunks - 1) / chunks;
}

/* dst[2 k] += src[k], k < n: a stride-2 row added back (col2im). */
static void add_even(float *restrict dst, const float *restrict src, int64_t n) {
#ifdef __AVX512F__
    const __m512i low = _mm512_setr_epi32(0, 0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 0, 7, 0);
    const __m512i high = _mm512_setr_epi32(8, 0, 9, 0, 10, 0, 11, 0, 12, 0, 13, 0, 14, 0, 15, 0);
    for (int64_t k = 0; k < n; k += 16) {
        int64_t m = n - k < 16 ? n - k : 16; /* values of src in this step */
        __m512 s = _mm512_maskz_loadu_ps(first_lanes(m), src + k);
        /* dst's even lanes 2 k .. 2 k + 2 m - 2 in two vectors */
        int64_t left = 2 * m - 1;
        __mmask16 lo = first_lanes(left) & 0x5555, hi = first_lanes(left - 16) & 0x5555;
        float *d = dst + 2 * k;
        __m512 a = _mm512_maskz_loadu_ps(lo, d), b = _mm512_maskz_loadu_ps(hi, d + 16);
        _mm512_mask_storeu_ps(d, lo, _mm512_add_ps(a, _mm512_permutexvar_ps(low, s)));
        _mm512_mask_storeu_ps(d + 16, hi, _mm512_add_ps(b, _mm512_permutexvar_ps(high, s)));
    }
#else
    for (int64_t k = 0; k < n; k++) dst[2 * k] += src[k];
#endif
}

/* The kh*kw rows of channel plane x [H, W] in a column matrix with row stride ld. */
static void unfold_plane(const float *x, float *rows, int64_t ld, const lm_conv_geometry *g) {
    int64_t dh = lm_conv_dilation_h(g), dw = lm_conv_dilation_w(g);
    for (int64_t ki = 0; ki < g->kernel_h; ki++)
        for (int64_t kj = 0; kj < g->kernel_w; kj++) {
            float *row = rows + (ki * g->kernel_w + kj) * ld;
            int64_t at = kj * dw; /* the tap's column in the window */
            /* the output columns whose input column lies inside the image */
            int64_t lo = g->pad_w - at > 0 ? (g->pad_w - at + g->stride_w - 1) / g->stride_w : 0;
            int64_t hi = (g->width - 1 + g->pad_w - at) / g->stride_w + 1;
            if (g->width - 1 + g->pad_w - at < 0) hi = 0;
            if (hi > g->out_w) hi = g->out_w;
            if (lo > hi) lo = hi;
            for (int64_t oi = 0; oi < g->out_h; oi++) {
                int64_t i = oi * g->stride_h - g->pad_h + ki * dh;
                float *dst = row + oi * g->out_w;
                if (i < 0 || i >= g->height) {
                    memset(dst, 0, sizeof(float) * (size_t)g->out_w);
                    continue;
                }
                for (int64_t oj = 0; oj < lo; oj++) dst[oj] = 0.0f;
                if (hi > lo) {
                    const float *src = x + i * g->width + lo * g->stride_w - g->pad_w + at;
                    if (g->stride_w == 1)
                        memcpy(dst + lo, src, sizeof(float) * (size_t)(hi - lo));
                    else if (g->stride_w == 2)
                        copy_even(dst + lo, src, hi - lo);
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

static bool unfold_by_table(const lm_conv_geometry *g) {
    return g->out_w <= CONV_TABLE_MAX_WIDTH;
}

static int32_t *unfold_table(const lm_conv_geometry *g) {
    int64_t p = g->out_h * g->out_w, kk = g->kernel_h * g->kernel_w;
    int32_t *t = lm_cpu_alloc((size_t)(kk * p) * sizeof(int32_t));
    if (!t) return NULL;
    int64_t dh = lm_conv_dilation_h(g), dw = lm_conv_dilation_w(g);
    for (int64_t ki = 0; ki < g->kernel_h; ki++)
        for (int64_t kj = 0; kj < g->kernel_w; kj++)
            for (int64_t oi = 0; oi < g->out_h; oi++)
                for (int64_t oj = 0; oj < g->out_w; oj++) {
                    int64_t i = oi * g->stride_h - g->pad_h + ki * dh,
                            j = oj * g->stride_w - g->pad_w + kj * dw;
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
    int64_t dh = lm_conv_dilation_h(g), dw = lm_conv_dilation_w(g);
    for (int64_t ki = 0; ki < g->kernel_h; ki++)
        for (int64_t kj = 0; kj < g->kernel_w; kj++) {
            const float *row = rows + (ki * g->kernel_w + kj) * ld;
            int64_t at = kj * dw; /* the tap's column in the window */
            /* the output columns whose input column lies inside the image */
            int64_t lo = g->pad_w - at > 0 ? (g->pad_w - at + g->stride_w - 1) / g->stride_w : 0;
            int64_t hi = (g->width - 1 + g->pad_w - at) / g->stride_w + 1;
            if (g->width - 1 + g->pad_w - at < 0) hi = 0;
            if (hi > g->out_w) hi = g->out_w;
            for (int64_t oi = 0; oi < g->out_h && hi > lo; oi++) {
                int64_t i = oi * g->stride_h - g->pad_h + ki * dh;
                if (i < 0 || i >= g->height) continue;
                float *dst = gx + i * g->width + lo * g->stride_w - g->pad_w + at;
                const float *src = row + oi * g->out_w + lo;
                if (g->stride_w == 2) {
                    add_even(dst, src, hi - lo);
                } else {
                    for (int64_t oj = 0; oj < hi - lo; oj++) dst[oj * g->stride_w] += src[oj];
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

/* The largest exponent field of a contiguous float tensor (0..255; 255: an
 * infinity or a NaN), the threads side by side. */
typedef struct {
    const uint32_t *bits;
    atomic_uint top;
} exponent_job;

static void exponent_range(void *ctx, int64_t b, int64_t e) {
    exponent_job *j = ctx;
    uint32_t top = 0;
    for (int64_t i = b; i < e; i++) { /* no early exit: the loop vectorises */
        uint32_t x = j->bits[i] & 0x7f800000u;
        top = x > top ? x : top;
    }
    unsigned seen = atomic_load_explicit(&j->top, memory_order_relaxed);
    while (top > seen && !atomic_compare_exchange_weak_explicit(
                             &j->top, &seen, top, memory_order_relaxed, memory_order_relaxed)) {
    }
}

static int max_exponent(const lm_tensor *t) {
    exponent_job j = {(const uint32_t *)(const void *)lm_tensor_f32((lm_tensor *)t), 0};
    lm_parallel_for(lm_tensor_numel(t), LM_GRAIN_ELEMENTWISE, exponent_range, &j);
    return (int)(atomic_load(&j.top) >> 23);
}

/* Whether Winograd may multiply operands whose largest exponents are ea and
 * eb. Its transforms add and subtract neighbouring values, so one infinity
 * becomes +inf and -inf in a tile and the products then give inf - inf =
 * NaN where a direct sum gives inf; and the transformed values and their
 * products are up to about 100 times the direct products, so those near
 * FLT_MAX overflow where the direct sums do not. Finite operands whose
 * products stay below 2^100 leave a margin of 2^27 for that factor and the
 * channel sums; others go the im2col way. */
static bool winograd_safe(int ea, int eb) {
    return ea < 255 && eb < 255 && (ea - 127) + (eb - 127) < 100;
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

typedef struct {
    const lm_conv_epilogue *ep;
    float *out;             /* the whole output */
    int64_t first_plane, p; /* the range's planes count from first_plane */
} epilogue_job;

static void epilogue_range(void *ctx, int64_t b, int64_t e) {
    const epilogue_job *j = ctx;
    lm_cpu_conv_epilogue(j->ep, j->out, j->first_plane + b, j->first_plane + e, j->p);
}

/* One im2col convolution, forward or backward: its operands, its chunks of
 * nb images, and the buffers of `slots` chunks side by side. Per slot: the
 * columns [groups * K, nb * P], and the output (or its gradient) chunk in
 * [O, nb * P] order when nb > 1 images share a product. The unfold table is
 * shared. Group k's channels are rows [k K, (k + 1) K) of the columns, its
 * filters rows [k O / groups, (k + 1) O / groups) of w [O, K] and of the
 * output: one product a group, on pointer offsets. */
typedef struct {
    const lm_conv_geometry *g;
    const float *x, *w, *gy, *bias;
    const lm_conv_epilogue *epilogue; /* forward: NULL, or applied to each output plane */
    float *out, *gx, *gw;
    int64_t n, nb, chunks, o, k, p, slots, groups;
    float *cols, *side, *partials; /* partials: each chunk's gw [O, K], NULL: one chunk */
    int32_t *table;
    size_t cols_bytes, side_bytes, table_bytes, partial_bytes; /* cols, side: one slot's */
    atomic_int next_slot;
} im2col_conv;

/* Chunks run side by side, one thread's chunks in its own slot, when there
 * are as many as threads and their buffers fit this budget. Each chunk's
 * unfolding and products then stay in its core's cache, and the threads
 * meet once a layer instead of at every step of every chunk. */
#define SIDE_BY_SIDE_BYTES ((int64_t)64 << 20)
/* The most the chunks' weight gradients may take before they accumulate in
 * the products chunk after chunk instead (other roundings, again the same at
 * any thread count). */
#define PARTIALS_BYTES ((int64_t)64 << 20)

static void im2col_conv_free(im2col_conv *c) {
    lm_cpu_free(c->cols, c->cols_bytes * (size_t)c->slots);
    lm_cpu_free(c->side, c->side_bytes * (size_t)c->slots);
    lm_cpu_free(c->table, c->table_bytes);
    lm_cpu_free(c->partials, c->partial_bytes);
}

/* Plans and allocates c for n images (gw: partials for the weights' gradient);
 * false, with nothing held, when memory runs out. The chunks do not depend on
 * the thread count, but the values may by a rounding: lm_cpu_sgemm cuts a
 * product between the threads when the chunks run one at a time, and the
 * kernels round a cut product's blocks differently. */
static bool im2col_conv_init(im2col_conv *c, int64_t n, int64_t o, const lm_conv_geometry *g,
                             bool with_table, bool gw) {
    int64_t groups = lm_conv_groups(g), p = g->out_h * g->out_w;
    int64_t k = g->channels / groups * g->kernel_h * g->kernel_w; /* a group's taps */
    int64_t nb = chunk_images(g, n, groups * k), chunks = n ? (n + nb - 1) / nb : 0;
    size_t cols_bytes = (size_t)(groups * k * nb * p) * sizeof(float);
    size_t side_bytes = nb > 1 ? (size_t)(o * nb * p) * sizeof(float) : 0;
    int64_t calls = lm_parallel_chunks(chunks, 1);
    bool side_by_side = chunks >= lm_get_num_threads() && chunks > 1 &&
                        (int64_t)(cols_bytes + side_bytes) * calls <= SIDE_BY_SIDE_BYTES;
    int64_t partial_floats = o * k;
    bool partials =
        gw && chunks > 1 && chunks * partial_floats * (int64_t)sizeof(float) <= PARTIALS_BYTES;
    if (gw && !partials) side_by_side = false; /* accumulating: one chunk after another */
    *c = (im2col_conv){
        .g = g,
        .n = n,
        .nb = nb,
        .chunks = chunks,
        .o = o,
        .k = k,
        .p = p,
        .slots = side_by_side ? calls : 1,
        .groups = groups,
        .cols_bytes = cols_bytes,
        .side_bytes = side_bytes,
        .table_bytes = with_table ? (size_t)(g->kernel_h * g->kernel_w * p) * sizeof(int32_t) : 0,
        .partial_bytes = partials ? (size_t)(chunks * partial_floats) * sizeof(float) : 0};
    c->cols = lm_cpu_alloc(cols_bytes * (size_t)c->slots);
    c->side = side_bytes ? lm_cpu_alloc(side_bytes * (size_t)c->slots) : NULL;
    c->table = with_table ? unfold_table(g) : NULL;
    c->partials = partials ? lm_cpu_alloc(c->partial_bytes) : NULL;
    if (c->cols && (!side_bytes || c->side) && (!with_table || c->table) &&
        (!partials || c->partials))
        return true;
    im2col_conv_free(c);
    return false;
}

/* Forward: chunk [first, first + count) of the output, each step on the
 * pool (inline when called from one of its threads). */
static void forward_chunk(const im2col_conv *c, int64_t first, int64_t count, float *cols,
                          float *side) {
    int64_t o = c->o, p = c->p, ld = count * p;
    plane_job j = {c->g, c->x, NULL, cols, first, ld, c->table};
    lm_parallel_for(count * c->g->channels, plane_grain(c->g), unfold_range, &j);
    float *dst = count > 1 ? side : c->out + first * o * p;
    int64_t og = o / c->groups, k = c->k;
    for (int64_t q = 0; q < c->groups; q++)
        lm_cpu_sgemm(false, false, og, ld, k, 1.0f, c->w + q * og * k, k, cols + q * k * ld, ld,
                     0.0f, dst + q * og * ld, ld);
    if (count > 1) relayout(c->out + first * o * p, side, o, p, count, false);
    if (c->bias) {
        bias_job bj = {c->out + first * o * p, c->bias, o, p};
        lm_parallel_for(count * o, LM_GRAIN_ELEMENTWISE / (p + 1) + 1, bias_range, &bj);
    }
    if (c->epilogue) { /* the chunk's planes, still in cache */
        epilogue_job ej = {c->epilogue, c->out, first * o, p};
        lm_parallel_for(count * o, LM_GRAIN_ELEMENTWISE / (p + 1) + 1, epilogue_range, &ej);
    }
}

/* Backward: chunk k's part of gw (into its partial, or accumulated after the
 * first chunk) and its images' gx. */
static void backward_chunk(const im2col_conv *c, int64_t chunk, float *cols, float *side) {
    int64_t o = c->o, p = c->p, first = chunk * c->nb;
    int64_t count = c->n - first < c->nb ? c->n - first : c->nb, ld = count * p;
    const float *gc = c->gy + first * o * p; /* [O, count * P]: the chunk's output gradient */
    if (count > 1) {
        relayout((float *)gc, side, o, p, count, true);
        gc = side;
    }
    plane_job j = {c->g, c->x, c->gx, cols, first, ld, c->table};
    int64_t og = o / c->groups, k = c->k;
    if (c->gw) { /* gw (+)= gc @ cols^T, a group at a time */
        lm_parallel_for(count * c->g->channels, plane_grain(c->g), unfold_range, &j);
        float *dst = c->partials ? c->partials + chunk * o * k : c->gw;
        float beta = c->partials || chunk == 0 ? 0.0f : 1.0f;
        for (int64_t q = 0; q < c->groups; q++)
            lm_cpu_sgemm(false, true, og, k, ld, 1.0f, gc + q * og * ld, ld, cols + q * k * ld, ld,
                         beta, dst + q * og * k, k);
    }
    if (c->gx) { /* the columns' gradient w^T @ gc, folded back onto the images */
        for (int64_t q = 0; q < c->groups; q++)
            lm_cpu_sgemm(true, false, k, ld, og, 1.0f, c->w + q * og * k, k, gc + q * og * ld, ld,
                         0.0f, cols + q * k * ld, ld);
        lm_parallel_for(count * c->g->channels, plane_grain(c->g), fold_range, &j);
    }
}

/* Chunks [b, e) in slot `slot`. */
static void chunks_in_slot(im2col_conv *c, int64_t b, int64_t e, int slot) {
    float *cols = c->cols + (size_t)slot * (c->cols_bytes / sizeof(float));
    float *side = c->side ? c->side + (size_t)slot * (c->side_bytes / sizeof(float)) : NULL;
    for (int64_t k = b; k < e; k++) {
        if (c->gy) {
            backward_chunk(c, k, cols, side);
        } else {
            int64_t first = k * c->nb;
            forward_chunk(c, first, c->n - first < c->nb ? c->n - first : c->nb, cols, side);
        }
    }
}

static void chunks_range(void *ctx, int64_t b, int64_t e) {
    im2col_conv *c = ctx;
    chunks_in_slot(c, b, e, atomic_fetch_add(&c->next_slot, 1));
}

/* Every chunk: side by side when planned so, else one after another with
 * each step on the pool. */
static void run_chunks(im2col_conv *c) {
    /* each pool call needs a slot of its own: the thread count may have grown
     * since planning (a finaliser run by an out-of-memory collection) */
    if (c->slots > 1 && lm_parallel_chunks(c->chunks, 1) <= c->slots) {
        lm_parallel_for(c->chunks, 1, chunks_range, c);
    } else {
        chunks_in_slot(c, 0, c->chunks, 0); /* each step of a chunk on every thread */
    }
}

typedef struct {
    float *dst;
    const float *partials;
    int64_t chunks, size;
} sum_chunks_job;

static void sum_chunks_range(void *ctx, int64_t b, int64_t e) {
    const sum_chunks_job *s = ctx;
    for (int64_t i = b; i < e; i++) s->dst[i] = s->partials[i];
    for (int64_t k = 1; k < s->chunks; k++) {
        const float *part = s->partials + k * s->size;
        for (int64_t i = b; i < e; i++) s->dst[i] += part[i];
    }
}

void lm_cpu_sum_chunks(float *dst, const float *partials, int64_t chunks, int64_t size) {
    sum_chunks_job s = {dst, partials, chunks, size};
    lm_parallel_for(size, LM_GRAIN_ELEMENTWISE / (chunks + 1) + 1, sum_chunks_range, &s);
}

/* Whether conv2d below takes the direct kernel for n images into out_channels:
 * first on the stride-1 layers it shares with Winograd (narrow outputs),
 * unless Winograd is asked for */
static bool forward_takes_direct(int64_t n, int64_t out_channels, const lm_conv_geometry *g) {
    bool winograd_forced = conv_algorithm == LM_CONV_WINOGRAD && lm_cpu_winograd_applies(g);
    return conv_algorithm != LM_CONV_GEMM && !winograd_forced &&
           lm_cpu_conv_direct_forward_applies(n, out_channels, g);
}

static lm_status conv2d(lm_tensor *out, const lm_tensor *x, const lm_tensor *w,
                        const lm_tensor *bias, const lm_conv_epilogue *ep,
                        const lm_conv_geometry *g) {
    if (conv_algorithm != LM_CONV_GEMM && lm_cpu_conv_depthwise_applies(w->shape[0], g))
        return lm_cpu_conv2d_depthwise(out, x, w, bias, ep, g);
    if (conv_algorithm != LM_CONV_GEMM && lm_cpu_conv_pointwise_applies(g))
        return lm_cpu_conv2d_pointwise(out, x, w, bias, ep, g);
    if (forward_takes_direct(x->shape[0], w->shape[0], g))
        return lm_cpu_conv2d_direct(out, x, w, bias, ep, g);
    if (lm_cpu_conv_choice(w->shape[0], g) == LM_CONV_WINOGRAD &&
        winograd_safe(max_exponent(x), max_exponent(w)))
        return lm_cpu_conv2d_winograd(out, x, w, bias, ep, g);
    im2col_conv c;
    if (!im2col_conv_init(&c, x->shape[0], w->shape[0], g, unfold_by_table(g), false))
        return LM_ERR_MEMORY;
    c.x = lm_tensor_f32(x);
    c.w = lm_tensor_f32(w);
    c.bias = lm_tensor_f32_or_null(bias);
    c.epilogue = ep;
    c.out = lm_tensor_f32(out);
    run_chunks(&c);
    im2col_conv_free(&c);
    return LM_OK;
}

lm_status lm_cpu_conv2d(lm_tensor *out, const lm_tensor *x, const lm_tensor *w,
                        const lm_tensor *bias, const lm_conv_geometry *g) {
    return conv2d(out, x, w, bias, NULL, g);
}

lm_status lm_cpu_conv2d_affine(lm_tensor *out, const lm_tensor *x, const lm_tensor *w,
                               const lm_tensor *scale, const lm_tensor *shift,
                               const lm_tensor *residual, bool relu, const lm_conv_geometry *g) {
    lm_conv_epilogue ep = {lm_tensor_f32(scale), lm_tensor_f32(shift),
                           lm_tensor_f32_or_null(residual), w->shape[0], relu};
    return conv2d(out, x, w, NULL, &ep, g);
}

/* gx and gw by im2col: the images' columns, their products with the output
 * gradient, and (for gx) the columns' gradient folded back. */
static lm_status backward_im2col(lm_tensor *gx, lm_tensor *gw, const lm_tensor *g_t,
                                 const lm_tensor *x, const lm_tensor *w,
                                 const lm_conv_geometry *g) {
    im2col_conv c;
    if (!im2col_conv_init(&c, x->shape[0], w->shape[0], g, gw && unfold_by_table(g), gw != NULL))
        return LM_ERR_MEMORY;
    c.x = lm_tensor_f32(x);
    c.w = lm_tensor_f32(w);
    c.gy = lm_tensor_f32(g_t);
    c.gx = lm_tensor_f32_or_null(gx);
    c.gw = lm_tensor_f32_or_null(gw);
    run_chunks(&c);
    if (c.partials) lm_cpu_sum_chunks(c.gw, c.partials, c.chunks, c.o * c.k);
    im2col_conv_free(&c);
    return LM_OK;
}

/* Wider layers' im2col products are large enough for OpenBLAS, and the
 * direct weight gradient no longer gains there at 2 threads
 * (bench/conv_weight_grad.lua: 96 -> 192 channels on 16x16 planes). */
#define DIRECT_GRAD_WEIGHT_MAX_CHANNELS (128 * 128)

/* Stride-2 layers split their input into phase planes as they go, and their
 * output planes are a quarter of the input's: the direct way gains on output
 * planes of 16x16 and more up to 64 x 128 channels (16 -> 32 on 32x32:
 * 2.2-2.4x, 32 -> 64 on 32x32 1.4-1.7x, 64 -> 128 on 32x32 1.06-1.15x); on
 * 8x8 and smaller its units are too few and small (32 -> 64 on 16x16: 0.9x
 * at 1 thread, 1.4x at 2), and wider layers suit im2col's product. */
#define DIRECT_GRAD_WEIGHT_MAX_CHANNELS_STRIDED (64 * 128)
#define DIRECT_GRAD_WEIGHT_MIN_POSITIONS_STRIDED 256

/* Whether the weights' gradient goes the direct way (cpu_conv_direct_gw.c):
 * wherever it applies and the layer is narrow enough, except on the small
 * planes where Winograd computes it (faster there). Grouped layers always:
 * im2col's products a group are small (RegNet's and ResNeXt's layers
 * 0.3-0.65 of their time, 0.8-0.9 on ResNeXt's 7x7 planes;
 * bench/conv_grouped_grad_weight.lua). */
static bool direct_grad_weight(int64_t out_channels, const lm_conv_geometry *g) {
    if (conv_algorithm == LM_CONV_GEMM || !lm_cpu_conv_direct_grad_weight_applies(g)) return false;
    if (conv_algorithm == LM_CONV_DIRECT || lm_conv_groups(g) > 1) return true;
    if (g->stride_h > 1)
        return g->channels * out_channels <= DIRECT_GRAD_WEIGHT_MAX_CHANNELS_STRIDED &&
               g->out_h * g->out_w >= DIRECT_GRAD_WEIGHT_MIN_POSITIONS_STRIDED;
    if (g->channels * out_channels > DIRECT_GRAD_WEIGHT_MAX_CHANNELS) return false;
    return lm_cpu_conv_choice(out_channels, g) != LM_CONV_WINOGRAD ||
           !lm_cpu_winograd_grad_weight_gains(g);
}

/* The input gradient of a stride-1 layer is itself a stride-1 convolution:
 * of the output gradient, with each group's weights turned (see
 * cpu_backend.h). Where the 1x1 or the direct forward kernel takes that
 * convolution, it beats im2col's product and fold
 * (bench/conv_grad_input_stride1.lua: grouped 3x3 layers 0.3-0.9 of its
 * time, 1x1 layers 0.7-1.0), and grouped layers gain on small planes even
 * where the forward pass is im2col's (its product a group and no fold:
 * 0.4-0.6 on 7x7 planes). Elsewhere it may lose (a 3 -> 16 layer's 16 -> 3
 * forward pass: 3x im2col's time; a 1x7 kernel padded to 1x13: 1.4x). */
lm_conv_geometry lm_cpu_conv_gradient_geometry(int64_t out_channels, const lm_conv_geometry *g) {
    lm_conv_geometry t = *g;
    t.channels = out_channels;
    t.height = g->out_h;
    t.width = g->out_w;
    t.pad_h = g->kernel_h - 1 - g->pad_h;
    t.pad_w = g->kernel_w - 1 - g->pad_w;
    t.out_h = g->height;
    t.out_w = g->width;
    return t;
}

void lm_cpu_conv_turn_weights(float *turned, const float *w, int64_t out_channels,
                              const lm_conv_geometry *g) {
    int64_t groups = lm_conv_groups(g), og = out_channels / groups, cg = g->channels / groups,
            taps = g->kernel_h * g->kernel_w;
    for (int64_t grp = 0; grp < groups; grp++)
        for (int64_t c = 0; c < cg; c++)
            for (int64_t k = 0; k < og; k++) {
                const float *from = w + ((grp * og + k) * cg + c) * taps;
                float *to = turned + ((grp * cg + c) * og + k) * taps;
                for (int64_t t = 0; t < taps; t++) to[taps - 1 - t] = from[t];
            }
}

static bool grad_input_as_forward(int64_t images, int64_t out_channels, const lm_conv_geometry *g) {
    if (conv_algorithm == LM_CONV_GEMM || g->stride_h != 1 || g->stride_w != 1 ||
        lm_conv_dilation_h(g) != 1 || lm_conv_dilation_w(g) != 1 || g->pad_h >= g->kernel_h ||
        g->pad_w >= g->kernel_w || g->out_h != g->height + 2 * g->pad_h - g->kernel_h + 1 ||
        g->out_w != g->width + 2 * g->pad_w - g->kernel_w + 1)
        return false;
    lm_conv_geometry t = lm_cpu_conv_gradient_geometry(out_channels, g);
    return lm_cpu_conv_pointwise_applies(&t) || lm_conv_groups(g) > 1 ||
           forward_takes_direct(images, g->channels, &t);
}

static lm_status grad_input_by_forward(lm_tensor *gx, const lm_tensor *g_t, const lm_tensor *w,
                                       const lm_conv_geometry *g) {
    lm_tensor *turned;
    int64_t o = w->shape[0];
    int64_t shape[4] = {g->channels, o / lm_conv_groups(g), g->kernel_h, g->kernel_w};
    lm_status st = lm_tensor_new(&turned, LM_FLOAT32, LM_CPU, 4, shape);
    if (st != LM_OK) return st;
    lm_cpu_conv_turn_weights(lm_tensor_f32(turned), lm_tensor_f32(w), o, g);
    lm_conv_geometry t = lm_cpu_conv_gradient_geometry(o, g);
    st = conv2d(gx, g_t, turned, NULL, NULL, &t);
    lm_tensor_release(turned);
    return st;
}

lm_status lm_cpu_conv2d_backward(lm_tensor *gx, lm_tensor *gw, const lm_tensor *g_t,
                                 const lm_tensor *x, const lm_tensor *w,
                                 const lm_conv_geometry *g) {
    lm_status st = LM_OK;
    if (conv_algorithm != LM_CONV_GEMM && lm_cpu_conv_depthwise_applies(w->shape[0], g)) {
        if (!gx || max_exponent(w) < 255)
            return lm_cpu_conv2d_depthwise_backward(gx, gw, g_t, x, w, g);
        /* the kernel's input gradient sums taps under the border too (times
         * 0), NaN with an infinite weight where im2col adds no term */
        if (gw) st = lm_cpu_conv2d_depthwise_backward(NULL, gw, g_t, x, w, g);
        return st == LM_OK ? backward_im2col(gx, NULL, g_t, x, w, g) : st;
    }
    if (gw && direct_grad_weight(w->shape[0], g)) {
        st = lm_cpu_conv2d_direct_grad_weight(gw, g_t, x, g);
        gw = NULL;
        if (st != LM_OK || !gx) return st;
    }
    /* the two ways below sum every tap, those under the border too (times
     * 0): an infinite weight would give inf * 0 = NaN where im2col adds no
     * term, so such weights go the im2col way */
    if (gx && grad_input_as_forward(x->shape[0], w->shape[0], g) && max_exponent(w) < 255) {
        st = grad_input_by_forward(gx, g_t, w, g);
        gx = NULL;
        if (st != LM_OK || !gw) return st;
    }
    if (gx && conv_algorithm != LM_CONV_GEMM &&
        lm_cpu_conv_direct_grad_input_applies(w->shape[0], g) && max_exponent(w) < 255) {
        st = lm_cpu_conv2d_direct_grad_input(gx, g_t, w, g);
        gx = NULL;
        if (st != LM_OK || !gw) return st;
    }
    if (lm_cpu_conv_choice(w->shape[0], g) != LM_CONV_WINOGRAD)
        return backward_im2col(gx, gw, g_t, x, w, g);
    int ex = max_exponent(x), ew = max_exponent(w), eg = max_exponent(g_t);
    if (!winograd_safe(eg, ew) || !winograd_safe(eg, ex) || !winograd_safe(ex, ew))
        return backward_im2col(gx, gw, g_t, x, w, g);
    if (gw)
        st = lm_cpu_winograd_grad_weight_gains(g)
                 ? lm_cpu_conv2d_winograd_grad_weight(gw, g_t, x, g)
                 : backward_im2col(NULL, gw, g_t, x, w, g);
    if (st != LM_OK || !gx) return st;
    return lm_cpu_winograd_grad_input_applies(g) /* the input's gradient pads by 2 - pad */
               ? lm_cpu_conv2d_winograd_grad_input(gx, g_t, w, g)
               : backward_im2col(gx, NULL, g_t, x, w, g);
}
