/* Depthwise convolution on the CPU (groups == input channels: MobileNet's,
 * EfficientNet's and ConvNeXt's 3x3 to 7x7 layers), forward and both
 * gradients, any stride, padding and dilation. A group has one input
 * channel and m = O / C filters, so im2col's products would be [m, kh*kw]
 * by [kh*kw, P]: too thin for a GEMM. Here each input plane is copied once
 * with its padding and split by column phase (column j of the padded plane
 * goes to phase j % stride_w, place j / stride_w), so that every kernel tap
 * reads a contiguous run of a phase row for a row of outputs, whatever the
 * stride and dilation, with no test for the border. The forward pass
 * correlates that plane with the taps (a block of outputs held in registers
 * over all taps), the weight gradient sums each tap's products with the
 * output gradient over the plane, and the input gradient is gathered, one
 * correlation of the padded output gradient per stride phase of the input.
 *
 * Work is split by planes: the forward pass by (image, channel), the
 * gradients by channel (all images in order; by (image, channel) when only
 * the input's is wanted), so each value is one thread's, summed in a fixed
 * order: the same at any thread count. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_backend.h"
#include "cpu_lanes.h"
#include "lm_alloc.h"
#include "lm_error.h"
#include "lm_threads.h"

/* Lanes of the portable weight gradient's partial sums (vectorisable, fixed
 * order). */
#define LANES 16

bool lm_cpu_conv_depthwise_applies(int64_t out_channels, const lm_conv_geometry *g) {
    return lm_conv_groups(g) > 1 && lm_conv_groups(g) == g->channels &&
           out_channels % g->channels == 0;
}

/* The padded, phase-split plane: sw phases of hp rows of wq floats. */
typedef struct {
    int64_t hp, wq, sw, floats;
} padded_shape;

static padded_shape padded_of(const lm_conv_geometry *g) {
    padded_shape s;
    s.sw = g->stride_w;
    s.hp = g->height + 2 * g->pad_h;
    s.wq = (g->width + 2 * g->pad_w + s.sw - 1) / s.sw;
    s.floats = s.sw * s.hp * s.wq;
    return s;
}

/* dst = plane x [H, W] padded and split by column phase. */
static void pad_plane(float *restrict dst, const float *restrict x, const lm_conv_geometry *g,
                      const padded_shape *s) {
    for (int64_t r = 0; r < s->sw; r++)
        for (int64_t rr = 0; rr < s->hp; rr++) {
            float *row = dst + (r * s->hp + rr) * s->wq;
            int64_t i = rr - g->pad_h;
            if (i < 0 || i >= g->height) {
                memset(row, 0, sizeof(float) * (size_t)s->wq);
                continue;
            }
            const float *src = x + i * g->width;
            if (s->sw == 1) {
                memset(row, 0, sizeof(float) * (size_t)g->pad_w);
                memcpy(row + g->pad_w, src, sizeof(float) * (size_t)g->width);
                memset(row + g->pad_w + g->width, 0,
                       sizeof(float) * (size_t)(s->wq - g->pad_w - g->width));
                continue;
            }
            /* the places q whose column q sw + r - pad_w is inside the plane */
            int64_t lo = g->pad_w > r ? (g->pad_w - r + s->sw - 1) / s->sw : 0;
            int64_t last = g->width - 1 + g->pad_w - r; /* (below 0: no place) */
            int64_t hi = last < 0 ? 0 : last / s->sw + 1;
            if (hi > s->wq) hi = s->wq;
            if (lo > hi) lo = hi;
            memset(row, 0, sizeof(float) * (size_t)lo);
            const float *from = src + lo * s->sw + r - g->pad_w;
            if (s->sw == 2)
                copy_even(row + lo, from, hi - lo);
            else
                for (int64_t q = lo; q < hi; q++) row[q] = from[(q - lo) * s->sw];
            memset(row + hi, 0, sizeof(float) * (size_t)(s->wq - hi));
        }
}

/* ---- the two sums every pass is made of ----
 * correlate: out [rows, cols] (+)= sum over taps t of w[t] * the run at
 * base + r * row_step + taps[t] (out's row r); tap_dots: sums[t] = the sum
 * over out's positions of gy [rows, cols] * that run. The AVX-512 versions
 * hold a block of 4 rows x 32 columns (correlate) or 8 taps (tap_dots) in
 * registers for the whole run over the taps or the plane; the portable ones
 * are row multiply-adds the compiler vectorises. */

#ifdef __AVX512F__
/* R rows (1..4) of one 32-column block; masks for its two vectors. */
static inline __attribute__((always_inline)) void
correlate_block(float *out, int64_t ld, int R, const float *base, int64_t row_step,
                const int64_t *taps, const float *w, int64_t ntaps, float init, bool accumulate,
                __mmask16 m0, __mmask16 m1) {
    __m512 acc[4][2];
    for (int r = 0; r < R; r++) {
        acc[r][0] = accumulate ? _mm512_maskz_loadu_ps(m0, out + r * ld) : _mm512_set1_ps(init);
        acc[r][1] =
            accumulate ? _mm512_maskz_loadu_ps(m1, out + r * ld + 16) : _mm512_set1_ps(init);
    }
    for (int64_t t = 0; t < ntaps; t++) {
        __m512 wv = _mm512_set1_ps(w[t]);
        const float *src = base + taps[t];
        for (int r = 0; r < R; r++) {
            acc[r][0] =
                _mm512_fmadd_ps(wv, _mm512_maskz_loadu_ps(m0, src + r * row_step), acc[r][0]);
            acc[r][1] =
                _mm512_fmadd_ps(wv, _mm512_maskz_loadu_ps(m1, src + r * row_step + 16), acc[r][1]);
        }
    }
    for (int r = 0; r < R; r++) {
        _mm512_mask_storeu_ps(out + r * ld, m0, acc[r][0]);
        _mm512_mask_storeu_ps(out + r * ld + 16, m1, acc[r][1]);
    }
}

static void correlate(float *out, int64_t rows, int64_t cols, const float *base, int64_t row_step,
                      const int64_t *taps, const float *w, int64_t ntaps, float init,
                      bool accumulate) {
    for (int64_t c0 = 0; c0 < cols; c0 += 32) {
        __mmask16 m0 = first_lanes(cols - c0), m1 = first_lanes(cols - c0 - 16);
        int64_t r = 0;
        for (; r + 4 <= rows; r += 4)
            correlate_block(out + r * cols + c0, cols, 4, base + r * row_step + c0, row_step, taps,
                            w, ntaps, init, accumulate, m0, m1);
        for (; r < rows; r++)
            correlate_block(out + r * cols + c0, cols, 1, base + r * row_step + c0, row_step, taps,
                            w, ntaps, init, accumulate, m0, m1);
    }
}

/* T taps (1..12) of the plane, in 16 lanes each, reduced in a fixed order:
 * each vector of gy is loaded once for all T. */
static inline __attribute__((always_inline)) void
tap_dots_block(float *sums, int T, const float *gy, int64_t rows, int64_t cols, const float *base,
               int64_t row_step, const int64_t *taps) {
    __m512 acc[12];
    for (int k = 0; k < T; k++) acc[k] = _mm512_setzero_ps();
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c0 = 0; c0 < cols; c0 += 16) {
            __mmask16 m = first_lanes(cols - c0);
            __m512 gv = _mm512_maskz_loadu_ps(m, gy + r * cols + c0);
            const float *src = base + r * row_step + c0;
            for (int k = 0; k < T; k++)
                acc[k] = _mm512_fmadd_ps(gv, _mm512_maskz_loadu_ps(m, src + taps[k]), acc[k]);
        }
    for (int k = 0; k < T; k++) sums[k] = _mm512_reduce_add_ps(acc[k]);
}

#define TAP_BLOCK_MAX 12

/* The taps in blocks of about equal size, at most TAP_BLOCK_MAX (3x3: one
 * block of 9; 7x7: 10, 10, 10, 10, 9). */
static void tap_dots(float *sums, const float *gy, int64_t rows, int64_t cols, const float *base,
                     int64_t row_step, const int64_t *taps, int64_t ntaps) {
    int64_t blocks = (ntaps + TAP_BLOCK_MAX - 1) / TAP_BLOCK_MAX;
    for (int64_t t = 0, k = 0; k < blocks; k++) {
        int T = (int)((ntaps - t) / (blocks - k)); /* (the rest shared evenly) */
        float *s = sums + t;
        const int64_t *tp = taps + t;
        switch (T) { /* a constant T for each, so the sums stay in registers */
        case 1:
            tap_dots_block(s, 1, gy, rows, cols, base, row_step, tp);
            break;
        case 2:
            tap_dots_block(s, 2, gy, rows, cols, base, row_step, tp);
            break;
        case 3:
            tap_dots_block(s, 3, gy, rows, cols, base, row_step, tp);
            break;
        case 4:
            tap_dots_block(s, 4, gy, rows, cols, base, row_step, tp);
            break;
        case 5:
            tap_dots_block(s, 5, gy, rows, cols, base, row_step, tp);
            break;
        case 6:
            tap_dots_block(s, 6, gy, rows, cols, base, row_step, tp);
            break;
        case 7:
            tap_dots_block(s, 7, gy, rows, cols, base, row_step, tp);
            break;
        case 8:
            tap_dots_block(s, 8, gy, rows, cols, base, row_step, tp);
            break;
        case 9:
            tap_dots_block(s, 9, gy, rows, cols, base, row_step, tp);
            break;
        case 10:
            tap_dots_block(s, 10, gy, rows, cols, base, row_step, tp);
            break;
        case 11:
            tap_dots_block(s, 11, gy, rows, cols, base, row_step, tp);
            break;
        default:
            tap_dots_block(s, 12, gy, rows, cols, base, row_step, tp);
            break;
        }
        t += T;
    }
}
#else
static inline void axpy(float *restrict y, const float *restrict x, float a, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] += a * x[i];
}

/* lane[l] += the products a[i] b[i] with i % LANES == l (vectorises: a
 * single running sum is a chain the compiler may not reorder). */
static inline void dot_lanes(float *restrict lane, const float *restrict a, const float *restrict b,
                             int64_t n) {
    int64_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int l = 0; l < LANES; l++) lane[l] += a[i + l] * b[i + l];
    for (int l = 0; i < n; i++, l++) lane[l] += a[i] * b[i];
}

static void correlate(float *out, int64_t rows, int64_t cols, const float *base, int64_t row_step,
                      const int64_t *taps, const float *w, int64_t ntaps, float init,
                      bool accumulate) {
    for (int64_t r = 0; r < rows; r++) {
        float *row = out + r * cols;
        if (!accumulate)
            for (int64_t q = 0; q < cols; q++) row[q] = init;
        for (int64_t t = 0; t < ntaps; t++) axpy(row, base + r * row_step + taps[t], w[t], cols);
    }
}

static void tap_dots(float *sums, const float *gy, int64_t rows, int64_t cols, const float *base,
                     int64_t row_step, const int64_t *taps, int64_t ntaps) {
    for (int64_t t = 0; t < ntaps; t++) {
        float lane[LANES] = {0};
        for (int64_t r = 0; r < rows; r++)
            dot_lanes(lane, gy + r * cols, base + r * row_step + taps[t], cols);
        float sum = 0;
        for (int l = 0; l < LANES; l++) sum += lane[l];
        sums[t] = sum;
    }
}
#endif

typedef struct {
    const lm_conv_geometry *g;
    padded_shape s;
    const float *x, *w, *bias, *gy;
    const lm_conv_epilogue *ep;
    float *out, *gx, *gw;
    int64_t n, o, m, kk, p;
    int64_t *taps; /* each tap's offset in the padded plane for output (0, 0) */
    /* The input gradient as stride_h x stride_w correlations, one a phase
     * (input pixels (a + stride_h I, b + stride_w J)): each of the output
     * gradient padded by back_top rows and back_left columns into [back_h,
     * back_w], with the taps that reach that phase (back_k: the tap,
     * back_off: its offset for I = J = 0; phase q's are entries
     * [phase_first[q], phase_first[q + 1])). Stride 1 is one phase: the
     * kernel turned by 180 degrees over the padded gradient. */
    int64_t *back_k, *back_off, *phase_first, back_top, back_left, back_h, back_w;
    int64_t slot_floats; /* per slot: padded plane, padded gradient, phases, weights */
    float *buffers;
    double *sums; /* per slot: m * kk weight-gradient sums, and kk floats */
} dw_job;

/* Units [b, e) = image * C + channel: all m outputs of one input plane. */
static void forward_units(void *ctx, int64_t b, int64_t e, int slot) {
    const dw_job *j = ctx;
    const lm_conv_geometry *g = j->g;
    float *pad = j->buffers + (size_t)slot * (size_t)j->s.floats;
    int64_t c_all = g->channels, plane = g->height * g->width;
    int64_t row_step = g->stride_h * j->s.wq;
    for (int64_t u = b; u < e; u++) {
        int64_t n = u / c_all, c = u % c_all;
        pad_plane(pad, j->x + u * plane, g, &j->s);
        for (int64_t t = 0; t < j->m; t++) {
            int64_t o = c * j->m + t;
            correlate(j->out + (n * j->o + o) * j->p, g->out_h, g->out_w, pad, row_step, j->taps,
                      j->w + o * j->kk, j->kk, j->bias ? j->bias[o] : 0.0f, false);
        }
        if (j->ep) {
            int64_t first = n * j->o + c * j->m;
            lm_cpu_conv_epilogue(j->ep, j->out, first, first + j->m, j->p);
        }
    }
}

/* The phase (a, b)'s rows and columns of the input. */
static int64_t phase_rows(const lm_conv_geometry *g, int64_t a) {
    return a < g->height ? (g->height - a + g->stride_h - 1) / g->stride_h : 0;
}
static int64_t phase_cols(const lm_conv_geometry *g, int64_t b) {
    return b < g->width ? (g->width - b + g->stride_w - 1) / g->stride_w : 0;
}

/* dst[2 k] = even[k], dst[2 k + 1] = odd[k] for 2 k (+ 1) < n. */
static void interleave_pair(float *restrict dst, const float *restrict even,
                            const float *restrict odd, int64_t n) {
#ifdef __AVX512F__
    const __m512i lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const __m512i hi =
        _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    for (int64_t k = 0; 2 * k < n; k += 16) {
        __m512 e = _mm512_maskz_loadu_ps(first_lanes((n + 1) / 2 - k), even + k);
        __m512 o = _mm512_maskz_loadu_ps(first_lanes(n / 2 - k), odd + k);
        _mm512_mask_storeu_ps(dst + 2 * k, first_lanes(n - 2 * k),
                              _mm512_permutex2var_ps(e, lo, o));
        _mm512_mask_storeu_ps(dst + 2 * k + 16, first_lanes(n - 2 * k - 16),
                              _mm512_permutex2var_ps(e, hi, o));
    }
#else
    for (int64_t k = 0; 2 * k < n; k++) {
        dst[2 * k] = even[k];
        if (2 * k + 1 < n) dst[2 * k + 1] = odd[k];
    }
#endif
}

/* gx of plane (n, c) from its m outputs' gradients, gathered phase by phase
 * (each output's gradient padded into gpad, the phases' values in `phases`
 * unless there is one, then interleaved into gx). */
static void grad_input_plane(const dw_job *j, float *gpad, float *phases, float *wsub, int64_t n,
                             int64_t c) {
    const lm_conv_geometry *g = j->g;
    int64_t ow = g->out_w, sh = g->stride_h, sw = g->stride_w, count = sh * sw;
    float *gx = j->gx + (n * g->channels + c) * g->height * g->width;
    float *into = count == 1 ? gx : phases;
    for (int64_t t = 0; t < j->m; t++) {
        int64_t o = c * j->m + t;
        const float *gy = j->gy + (n * j->o + o) * j->p, *w = j->w + o * j->kk;
        memset(gpad, 0, sizeof(float) * (size_t)(j->back_h * j->back_w));
        for (int64_t oi = 0; oi < g->out_h; oi++)
            memcpy(gpad + (oi + j->back_top) * j->back_w + j->back_left, gy + oi * ow,
                   sizeof(float) * (size_t)ow);
        float *dst = into;
        for (int64_t q = 0; q < count; q++) {
            int64_t rows = phase_rows(g, q / sw), cols = phase_cols(g, q % sw);
            int64_t first = j->phase_first[q], taps = j->phase_first[q + 1] - first;
            for (int64_t k = 0; k < taps; k++) wsub[k] = w[j->back_k[first + k]];
            if (taps == 0 && t == 0) /* no tap reaches these pixels */
                memset(dst, 0, sizeof(float) * (size_t)(rows * cols));
            else if (taps > 0)
                correlate(dst, rows, cols, gpad, j->back_w, j->back_off + first, wsub, taps, 0.0f,
                          t > 0);
            dst += rows * cols;
        }
    }
    if (count == 1) return;
    const float *src = phases;
    for (int64_t q = 0; q < count; q++) {
        int64_t a = q / sw, b = q % sw, rows = phase_rows(g, a), cols = phase_cols(g, b);
        if (sw == 2 && b == 1) { /* written with phase (a, 0) */
            src += rows * cols;
            continue;
        }
        const float *odd = src + rows * cols; /* sw == 2: phase (a, 1), next in order */
        for (int64_t r = 0; r < rows; r++) {
            float *row = gx + (a + r * sh) * g->width + b;
            if (sw == 2)
                interleave_pair(row, src, odd + r * phase_cols(g, 1), g->width);
            else
                for (int64_t k = 0; k < cols; k++) row[k * sw] = src[k];
            src += cols;
        }
    }
}

/* Units [b, e): channels (gw wanted: all images of each, in order, and gx
 * of each image's plane while its gradient is in cache) or image * C +
 * channel (gx alone). gw: each tap's products with the output gradient
 * summed over a plane in float (tap_dots), added in double over the images. */
static void backward_units(void *ctx, int64_t b, int64_t e, int slot) {
    const dw_job *j = ctx;
    const lm_conv_geometry *g = j->g;
    float *pad = j->buffers + (size_t)slot * (size_t)j->slot_floats;
    float *gpad = pad + j->s.floats, *phases = gpad + j->back_h * j->back_w;
    float *wsub = phases + g->height * g->width;
    int64_t plane = g->height * g->width, row_step = g->stride_h * j->s.wq, mk = j->m * j->kk;
    double *sums = j->sums ? j->sums + (size_t)slot * (size_t)(mk + j->kk) : NULL;
    float *dots = sums ? (float *)(sums + mk) : NULL;
    for (int64_t u = b; u < e; u++) {
        if (!j->gw) {
            grad_input_plane(j, gpad, phases, wsub, u / g->channels, u % g->channels);
            continue;
        }
        memset(sums, 0, sizeof(double) * (size_t)mk);
        for (int64_t n = 0; n < j->n; n++) {
            pad_plane(pad, j->x + (n * g->channels + u) * plane, g, &j->s);
            for (int64_t t = 0; t < j->m; t++) {
                tap_dots(dots, j->gy + (n * j->o + u * j->m + t) * j->p, g->out_h, g->out_w, pad,
                         row_step, j->taps, j->kk);
                for (int64_t k = 0; k < j->kk; k++) sums[t * j->kk + k] += dots[k];
            }
            if (j->gx) grad_input_plane(j, gpad, phases, wsub, n, u);
        }
        for (int64_t i = 0; i < mk; i++) j->gw[u * mk + i] = (float)sums[i];
    }
}

/* The sizes of a job's allocations. */
static size_t buffer_bytes(const dw_job *j, int slots) {
    return (size_t)j->slot_floats * sizeof(float) * (size_t)slots;
}
static size_t sums_bytes(const dw_job *j, int slots) {
    return (size_t)((j->m + 1) * j->kk) * sizeof(double) * (size_t)slots;
}

static void dw_free(dw_job *j, int slots) {
    lm_cpu_free(j->buffers, buffer_bytes(j, slots));
    lm_cpu_free(j->sums, j->sums ? sums_bytes(j, slots) : 0);
    free(j->taps);
}

/* The input gradient's phases: their taps, offsets and the padding of the
 * output gradient (back_*), in j->back_k, back_off (kk entries each) and
 * phase_first (phases + 1). */
static void plan_phases(dw_job *j) {
    const lm_conv_geometry *g = j->g;
    int64_t sh = g->stride_h, sw = g->stride_w, dh = lm_conv_dilation_h(g),
            dw = lm_conv_dilation_w(g);
    /* tap ki reaches row phase a when a + pad_h - ki dh is a multiple of sh:
     * input row a + sh I takes output gradient row (a + pad_h - ki dh) / sh + I */
    int64_t lo_r = 0, hi_r = g->out_h, lo_c = 0, hi_c = g->out_w, entries = 0;
    for (int pass = 0; pass < 2; pass++) { /* the bounds, then the offsets */
        entries = 0;
        for (int64_t q = 0; q < sh * sw; q++) {
            int64_t a = q / sw, b = q % sw;
            if (pass) j->phase_first[q] = entries;
            for (int64_t ki = 0; ki < g->kernel_h; ki++)
                for (int64_t kj = 0; kj < g->kernel_w; kj++) {
                    int64_t ur = a + g->pad_h - ki * dh, uc = b + g->pad_w - kj * dw;
                    if (((ur % sh) + sh) % sh || ((uc % sw) + sw) % sw) continue;
                    int64_t r0 = ur / sh, c0 = uc / sw;
                    if (!pass) {
                        lo_r = r0 < lo_r ? r0 : lo_r, lo_c = c0 < lo_c ? c0 : lo_c;
                        int64_t r1 = r0 + phase_rows(g, a), c1 = c0 + phase_cols(g, b);
                        hi_r = r1 > hi_r ? r1 : hi_r, hi_c = c1 > hi_c ? c1 : hi_c;
                        continue;
                    }
                    j->back_k[entries] = ki * g->kernel_w + kj;
                    j->back_off[entries++] = (r0 + j->back_top) * j->back_w + (c0 + j->back_left);
                }
        }
        j->back_top = -lo_r, j->back_left = -lo_c;
        j->back_h = hi_r - lo_r, j->back_w = hi_c - lo_c;
    }
    j->phase_first[sh * sw] = entries;
}

/* Plans the job, its tap offsets and its slots' buffers for `units`
 * units; false when memory runs out (nothing held). */
static bool dw_init(dw_job *j, const lm_conv_geometry *g, int64_t n, int64_t o, int64_t units,
                    int *slots, bool backward, bool sums) {
    *j = (dw_job){.g = g,
                  .s = padded_of(g),
                  .n = n,
                  .o = o,
                  .m = o / g->channels,
                  .kk = g->kernel_h * g->kernel_w,
                  .p = g->out_h * g->out_w};
    int64_t dh = lm_conv_dilation_h(g), dw = lm_conv_dilation_w(g), kk = j->kk;
    int64_t phases = g->stride_h * g->stride_w;
    j->taps = malloc(sizeof(int64_t) * (size_t)(3 * kk + phases + 1));
    if (j->taps && backward) {
        j->back_k = j->taps + kk, j->back_off = j->back_k + kk, j->phase_first = j->back_off + kk;
        plan_phases(j);
    }
    j->slot_floats = j->s.floats;
    if (backward) j->slot_floats += j->back_h * j->back_w + g->height * g->width + kk;
    *slots = lm_parallel_chunks(units, 1);
    j->buffers = lm_cpu_alloc(buffer_bytes(j, *slots));
    j->sums = sums ? lm_cpu_alloc(sums_bytes(j, *slots)) : NULL;
    if (!j->taps || !j->buffers || (sums && !j->sums)) {
        dw_free(j, *slots);
        return false;
    }
    for (int64_t ki = 0; ki < g->kernel_h; ki++)
        for (int64_t kj = 0; kj < g->kernel_w; kj++) {
            int64_t col = kj * dw;
            j->taps[ki * g->kernel_w + kj] =
                ((col % j->s.sw) * j->s.hp + ki * dh) * j->s.wq + col / j->s.sw;
        }
    return true;
}

lm_status lm_cpu_conv2d_depthwise(lm_tensor *out, const lm_tensor *x, const lm_tensor *w,
                                  const lm_tensor *bias, const lm_conv_epilogue *ep,
                                  const lm_conv_geometry *g) {
    dw_job j;
    int slots;
    int64_t units = x->shape[0] * g->channels;
    if (!dw_init(&j, g, x->shape[0], w->shape[0], units, &slots, false, false))
        return LM_ERR_MEMORY;
    j.x = lm_tensor_f32(x);
    j.w = lm_tensor_f32(w);
    j.bias = lm_tensor_f32_or_null(bias);
    j.ep = ep;
    j.out = lm_tensor_f32(out);
    lm_parallel_for_slots(units, slots, forward_units, &j);
    dw_free(&j, slots);
    return LM_OK;
}

lm_status lm_cpu_conv2d_depthwise_backward(lm_tensor *gx, lm_tensor *gw, const lm_tensor *gy,
                                           const lm_tensor *x, const lm_tensor *w,
                                           const lm_conv_geometry *g) {
    dw_job j;
    int slots;
    int64_t units = gw ? g->channels : x->shape[0] * g->channels;
    if (!dw_init(&j, g, x->shape[0], w->shape[0], units, &slots, true, gw != NULL))
        return LM_ERR_MEMORY;
    j.x = lm_tensor_f32(x);
    j.w = lm_tensor_f32(w);
    j.gy = lm_tensor_f32(gy);
    j.gx = lm_tensor_f32_or_null(gx);
    j.gw = lm_tensor_f32_or_null(gw);
    lm_parallel_for_slots(units, slots, backward_units, &j);
    dw_free(&j, slots);
    return LM_OK;
}
