/* Depthwise convolution on the CPU (groups == input channels: MobileNet's,
 * EfficientNet's and ConvNeXt's 3x3 to 7x7 layers), forward and both
 * gradients, any stride, padding and dilation. A group has one input
 * channel and m = O / C filters, so im2col's products would be [m, kh*kw]
 * by [kh*kw, P]: too thin for a GEMM. Here each input plane is copied once
 * with its padding and split by column phase (column j of the padded plane
 * goes to phase j % stride_w, place j / stride_w), so that every kernel tap
 * reads a contiguous run of a phase row for a row of outputs, whatever the
 * stride and dilation: the loops are multiply-adds along rows, which the
 * compiler vectorises, with no test for the border.
 *
 * Work is split by planes: forward and input gradient by (image, channel),
 * the weight gradient by channel (all images in order), so each value is
 * one thread's, summed in a fixed order: the same at any thread count. */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "cpu_backend.h"
#include "lm_alloc.h"
#include "lm_error.h"
#include "lm_threads.h"

/* Lanes of the weight gradient's partial sums (vectorisable, fixed order). */
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
            for (int64_t q = 0; q < s->wq; q++) {
                int64_t j = q * s->sw + r - g->pad_w;
                row[q] = j >= 0 && j < g->width ? src[j] : 0.0f;
            }
        }
}

/* x [H, W] = the interior of the padded, phase-split plane p. */
static void unpad_plane(float *restrict x, const float *restrict p, const lm_conv_geometry *g,
                        const padded_shape *s) {
    for (int64_t i = 0; i < g->height; i++) {
        float *dst = x + i * g->width;
        int64_t rr = i + g->pad_h;
        if (s->sw == 1) {
            memcpy(dst, p + rr * s->wq + g->pad_w, sizeof(float) * (size_t)g->width);
            continue;
        }
        for (int64_t j = 0; j < g->width; j++) {
            int64_t jp = j + g->pad_w;
            dst[j] = p[((jp % s->sw) * s->hp + rr) * s->wq + jp / s->sw];
        }
    }
}

/* Where tap (ki, kj) of output row oi reads in the padded plane. */
static inline int64_t tap_offset(const lm_conv_geometry *g, const padded_shape *s, int64_t oi,
                                 int64_t ki, int64_t kj) {
    int64_t j = kj * lm_conv_dilation_w(g);
    int64_t rr = oi * g->stride_h + ki * lm_conv_dilation_h(g);
    return ((j % s->sw) * s->hp + rr) * s->wq + j / s->sw;
}

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

typedef struct {
    const lm_conv_geometry *g;
    padded_shape s;
    const float *x, *w, *bias, *gy;
    const lm_conv_epilogue *ep;
    float *out, *gx, *gw;
    int64_t n, o, m, kk, p;
    float *buffers; /* per slot: the padded plane, then the padded gradient */
    double *sums;   /* per slot: m * kk weight-gradient sums */
} dw_job;

/* Units [b, e) = image * C + channel: all m outputs of one input plane. */
static void forward_units(void *ctx, int64_t b, int64_t e, int slot) {
    const dw_job *j = ctx;
    const lm_conv_geometry *g = j->g;
    float *pad = j->buffers + (size_t)slot * 2 * (size_t)j->s.floats;
    int64_t c_all = g->channels, plane = g->height * g->width, ow = g->out_w;
    for (int64_t u = b; u < e; u++) {
        int64_t n = u / c_all, c = u % c_all;
        pad_plane(pad, j->x + u * plane, g, &j->s);
        for (int64_t t = 0; t < j->m; t++) {
            int64_t o = c * j->m + t;
            const float *w = j->w + o * j->kk;
            float *y = j->out + (n * j->o + o) * j->p;
            float b0 = j->bias ? j->bias[o] : 0.0f;
            for (int64_t oi = 0; oi < g->out_h; oi++) {
                float *row = y + oi * ow;
                for (int64_t q = 0; q < ow; q++) row[q] = b0;
                for (int64_t ki = 0; ki < g->kernel_h; ki++)
                    for (int64_t kj = 0; kj < g->kernel_w; kj++)
                        axpy(row, pad + tap_offset(g, &j->s, oi, ki, kj), w[ki * g->kernel_w + kj],
                             ow);
            }
        }
        if (j->ep) {
            int64_t first = n * j->o + c * j->m;
            lm_cpu_conv_epilogue(j->ep, j->out, first, first + j->m, j->p);
        }
    }
}

/* gx of plane (n, c) from its m outputs' gradients: each output's gradient
 * scattered back through every tap into the padded plane, then cropped. */
static void grad_input_plane(const dw_job *j, float *gpad, int64_t n, int64_t c) {
    const lm_conv_geometry *g = j->g;
    int64_t ow = g->out_w;
    memset(gpad, 0, sizeof(float) * (size_t)j->s.floats);
    for (int64_t t = 0; t < j->m; t++) {
        int64_t o = c * j->m + t;
        const float *w = j->w + o * j->kk, *gy = j->gy + (n * j->o + o) * j->p;
        for (int64_t oi = 0; oi < g->out_h; oi++)
            for (int64_t ki = 0; ki < g->kernel_h; ki++)
                for (int64_t kj = 0; kj < g->kernel_w; kj++)
                    axpy(gpad + tap_offset(g, &j->s, oi, ki, kj), gy + oi * ow,
                         w[ki * g->kernel_w + kj], ow);
    }
    unpad_plane(j->gx + (n * g->channels + c) * g->height * g->width, gpad, g, &j->s);
}

/* gw of channel c's m filters: per image, each tap's products with the
 * output gradient in float lanes over the plane, added in double over the
 * images (in order). */
static void grad_weight_channel(const dw_job *j, float *pad, double *sums, int64_t c) {
    const lm_conv_geometry *g = j->g;
    int64_t ow = g->out_w, plane = g->height * g->width;
    memset(sums, 0, sizeof(double) * (size_t)(j->m * j->kk));
    for (int64_t n = 0; n < j->n; n++) {
        pad_plane(pad, j->x + (n * g->channels + c) * plane, g, &j->s);
        for (int64_t t = 0; t < j->m; t++) {
            int64_t o = c * j->m + t;
            const float *gy = j->gy + (n * j->o + o) * j->p;
            for (int64_t ki = 0; ki < g->kernel_h; ki++)
                for (int64_t kj = 0; kj < g->kernel_w; kj++) {
                    float lane[LANES] = {0};
                    for (int64_t oi = 0; oi < g->out_h; oi++)
                        dot_lanes(lane, gy + oi * ow, pad + tap_offset(g, &j->s, oi, ki, kj), ow);
                    double sum = 0;
                    for (int l = 0; l < LANES; l++) sum += lane[l];
                    sums[t * j->kk + ki * g->kernel_w + kj] += sum;
                }
        }
    }
    for (int64_t i = 0; i < j->m * j->kk; i++) j->gw[c * j->m * j->kk + i] = (float)sums[i];
}

/* Units [b, e): channels (gw wanted: all images of each) or image * C +
 * channel (gx alone). */
static void backward_units(void *ctx, int64_t b, int64_t e, int slot) {
    const dw_job *j = ctx;
    float *pad = j->buffers + (size_t)slot * 2 * (size_t)j->s.floats, *gpad = pad + j->s.floats;
    double *sums = j->sums ? j->sums + (size_t)slot * (size_t)(j->m * j->kk) : NULL;
    for (int64_t u = b; u < e; u++) {
        if (j->gw) {
            grad_weight_channel(j, pad, sums, u);
            for (int64_t n = 0; n < j->n && j->gx; n++) grad_input_plane(j, gpad, n, u);
        } else {
            grad_input_plane(j, gpad, u / j->g->channels, u % j->g->channels);
        }
    }
}

/* Plans the job and its slots' buffers for `units` units; false when
 * memory runs out (nothing held). */
static bool dw_init(dw_job *j, const lm_conv_geometry *g, int64_t n, int64_t o, int64_t units,
                    int *slots, bool sums) {
    *j = (dw_job){.g = g,
                  .s = padded_of(g),
                  .n = n,
                  .o = o,
                  .m = o / g->channels,
                  .kk = g->kernel_h * g->kernel_w,
                  .p = g->out_h * g->out_w};
    *slots = lm_parallel_chunks(units, 1);
    j->buffers = lm_cpu_alloc((size_t)(2 * j->s.floats) * sizeof(float) * (size_t)*slots);
    j->sums = sums ? lm_cpu_alloc((size_t)(j->m * j->kk) * sizeof(double) * (size_t)*slots) : NULL;
    if (j->buffers && (!sums || j->sums)) return true;
    lm_cpu_free(j->buffers, (size_t)(2 * j->s.floats) * sizeof(float) * (size_t)*slots);
    lm_cpu_free(j->sums, (size_t)(j->m * j->kk) * sizeof(double) * (size_t)*slots);
    return false;
}

static void dw_free(dw_job *j, int slots) {
    lm_cpu_free(j->buffers, (size_t)(2 * j->s.floats) * sizeof(float) * (size_t)slots);
    lm_cpu_free(j->sums, (size_t)(j->m * j->kk) * sizeof(double) * (size_t)slots);
}

lm_status lm_cpu_conv2d_depthwise(lm_tensor *out, const lm_tensor *x, const lm_tensor *w,
                                  const lm_tensor *bias, const lm_conv_epilogue *ep,
                                  const lm_conv_geometry *g) {
    dw_job j;
    int slots;
    int64_t units = x->shape[0] * g->channels;
    if (!dw_init(&j, g, x->shape[0], w->shape[0], units, &slots, false)) return LM_ERR_MEMORY;
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
    if (!dw_init(&j, g, x->shape[0], w->shape[0], units, &slots, gw != NULL)) return LM_ERR_MEMORY;
    j.x = lm_tensor_f32(x);
    j.w = lm_tensor_f32(w);
    j.gy = lm_tensor_f32(gy);
    j.gx = lm_tensor_f32_or_null(gx);
    j.gw = lm_tensor_f32_or_null(gw);
    lm_parallel_for_slots(units, slots, backward_units, &j);
    dw_free(&j, slots);
    return LM_OK;
}
