/* The input gradient of a strided convolution computed directly, without
 * im2col's columns and their fold. The input positions of a stride-s layer
 * fall into s x s phases by (row + padding) mod s and (column + padding)
 * mod s; the positions of one phase receive from the kernel taps of the
 * same phase only (kernel row = phase row + s t), and tap t's output row
 * is the position's own phase row minus t. So within a phase every
 * source, an (output channel, tap), is a fixed offset in the output
 * gradient, once that is copied with a zero border: the forward pass's
 * block kernel (cpu_conv_direct.h) then sums it with the input channels as
 * the lanes, 32 a block (16 for narrower layers). Each value is summed by
 * one thread in a fixed order: the same bits at any thread count. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_backend.h"
#include "cpu_conv_direct.h"
#include "lm_alloc.h"
#include "lm_error.h"
#include "lm_threads.h"

#ifdef __AVX512F__

#define MAX_STRIDE 4 /* phases per side this kernel plans for */

/* One phase of the input: its positions and its sources. */
typedef struct {
    int64_t positions, sources;
    int32_t *offset;      /* [positions rounded up to a block]: each one's place in the padded gy */
    int32_t *destination; /* [positions]: its index in the input plane */
    int32_t *source;      /* [sources]: (output channel, tap)'s offset from a position's */
    float *weights;       /* [sources][lanes_pad]: the tap's weights along the input channels */
} phase_plan;

typedef struct {
    const lm_conv_geometry *g;
    const float *gy;
    float *gx;
    int64_t o, lanes, lanes_pad, blocks, hp, wp, phases;
    phase_plan phase[MAX_STRIDE * MAX_STRIDE];
    float *gp; /* slots of a padded output gradient [O][hp][wp], one a pool call */
} direct_gx_job;

/* Units [b, e): unit = image * blocks + block of `lanes` input channels,
 * each image's padded output gradient copied once per run of its units. */
static void units_range(void *ctx, int64_t b, int64_t e, int slot) {
    direct_gx_job *j = ctx;
    const lm_conv_geometry *g = j->g;
    int64_t oplane = g->out_h * g->out_w, padded = j->hp * j->wp, plane = g->height * g->width;
    int64_t top = (g->kernel_h - 1) / g->stride_h, left = (g->kernel_w - 1) / g->stride_w;
    size_t floats = (size_t)(j->o * padded);
    float *gp = j->gp + (size_t)slot * floats;
    memset(gp, 0, floats * sizeof *gp); /* the border stays 0 */
    int per_block = j->lanes == 32 ? LM_DIRECT_POSITIONS_32 : LM_DIRECT_POSITIONS_16;
    float tile[LM_DIRECT_POSITIONS_16 * 16]; /* = LM_DIRECT_POSITIONS_32 * 32 */
    int64_t copied = -1;
    for (int64_t u = b; u < e; u++) {
        int64_t n = u / j->blocks, c0 = (u % j->blocks) * j->lanes;
        if (n != copied) {
            const float *src = j->gy + n * j->o * oplane;
            for (int64_t o = 0; o < j->o; o++)
                for (int64_t r = 0; r < g->out_h; r++)
                    memcpy(gp + o * padded + (r + top) * j->wp + left,
                           src + o * oplane + r * g->out_w, sizeof(float) * (size_t)g->out_w);
            copied = n;
        }
        int64_t chans = g->channels - c0 < j->lanes ? g->channels - c0 : j->lanes;
        float *gx = j->gx + (n * g->channels + c0) * plane;
        for (int64_t f = 0; f < j->phases; f++) {
            const phase_plan *ph = &j->phase[f];
            for (int64_t p0 = 0; p0 < ph->positions; p0 += per_block) {
                int64_t count = ph->positions - p0 < per_block ? ph->positions - p0 : per_block;
                const int32_t *dst = ph->destination + p0;
                if (j->lanes == 32)
                    lm_direct_sums32(gp, ph->source, ph->sources, ph->offset + p0, ph->weights + c0,
                                     j->lanes_pad, tile);
                else
                    lm_direct_sums16(gp, ph->source, ph->sources, ph->offset + p0, ph->weights + c0,
                                     j->lanes_pad, tile);
                for (int64_t k = 0; k < chans; k++)
                    for (int64_t q = 0; q < count; q++)
                        gx[k * plane + dst[q]] = tile[q * j->lanes + k];
            }
        }
    }
}

static void free_plans(direct_gx_job *j) {
    for (int64_t f = 0; f < j->phases; f++) {
        free(j->phase[f].offset);
        free(j->phase[f].destination);
        free(j->phase[f].source);
        free(j->phase[f].weights);
    }
}

/* Phase (a, b)'s positions and sources; false when memory runs out. */
static bool plan_phase(direct_gx_job *j, phase_plan *ph, int64_t a, int64_t b, const float *w) {
    const lm_conv_geometry *g = j->g;
    int64_t sh = g->stride_h, sw = g->stride_w, kh = g->kernel_h, kw = g->kernel_w;
    int64_t top = (kh - 1) / sh, left = (kw - 1) / sw;
    int64_t rows = 0, cols = 0; /* input rows and columns of the phase */
    for (int64_t r = 0; r < g->height; r++) rows += (r + g->pad_h) % sh == a;
    for (int64_t c = 0; c < g->width; c++) cols += (c + g->pad_w) % sw == b;
    int per_block = j->lanes == 32 ? LM_DIRECT_POSITIONS_32 : LM_DIRECT_POSITIONS_16;
    /* a phase's taps: kernel rows a, a + s, ... (the rule takes kernels that
     * cover the stride, so every phase has at least one) */
    int64_t taps_h = (kh - a + sh - 1) / sh, taps_w = (kw - b + sw - 1) / sw;
    ph->positions = rows * cols;
    ph->sources = j->o * taps_h * taps_w;
    int64_t padded_positions = (ph->positions + per_block - 1) / per_block * per_block;
    ph->offset = calloc((size_t)(padded_positions > 0 ? padded_positions : 1), sizeof(int32_t));
    ph->destination = malloc(sizeof(int32_t) * (size_t)(ph->positions > 0 ? ph->positions : 1));
    ph->source = malloc(sizeof(int32_t) * (size_t)ph->sources);
    ph->weights = calloc((size_t)(ph->sources * j->lanes_pad), sizeof(float));
    if (!ph->offset || !ph->destination || !ph->source || !ph->weights) return false;
    int64_t q = 0;
    for (int64_t r = 0; r < g->height; r++) {
        if ((r + g->pad_h) % sh != a) continue;
        for (int64_t c = 0; c < g->width; c++) {
            if ((c + g->pad_w) % sw != b) continue;
            int64_t m = (r + g->pad_h) / sh,
                    k = (c + g->pad_w) / sw; /* tap 0's output row, column */
            ph->offset[q] = (int32_t)((m + top) * j->wp + k + left);
            ph->destination[q++] = (int32_t)(r * g->width + c);
        }
    }
    /* a last block's unused positions read inside the padded plane too (their
     * sums are dropped): the first interior one, from which every tap reads
     * at or after the plane's start */
    for (; q < padded_positions; q++) ph->offset[q] = (int32_t)(top * j->wp + left);
    int64_t s = 0, taps = kh * kw;
    for (int64_t o = 0; o < j->o; o++)
        for (int64_t t = 0; t < taps_h; t++)
            for (int64_t v = 0; v < taps_w; v++, s++) {
                ph->source[s] = (int32_t)(o * j->hp * j->wp - t * j->wp - v);
                int64_t tap = (a + sh * t) * kw + b + sw * v;
                for (int64_t c = 0; c < g->channels; c++)
                    ph->weights[s * j->lanes_pad + c] = w[(o * g->channels + c) * taps + tap];
            }
    return true;
}

/* Where it beats im2col's product and fold (bench/conv_grad_input.lua, 0.8-0.9
 * of its time): strided layers of more than 16 and at most 64 x 128
 * channels whose kernel covers the stride. With 16 lanes the scattered
 * writes of a block weigh more (16 -> 32 channels: a tie at 2 threads),
 * and a 1x1 stride-2 layer's product and fold are a light pass (im2col
 * takes half the time). */
#define MIN_CHANNELS 17
#define MAX_CHANNEL_PRODUCT (64 * 128)

bool lm_cpu_conv_direct_grad_input_applies(int64_t out_channels, const lm_conv_geometry *g) {
    int64_t hp = g->out_h + (g->kernel_h - 1) / g->stride_h + g->kernel_h;
    int64_t wp = g->out_w + (g->kernel_w - 1) / g->stride_w + g->kernel_w;
    return lm_conv_is_plain(g) && (g->stride_h > 1 || g->stride_w > 1) &&
           g->stride_h <= MAX_STRIDE && g->stride_w <= MAX_STRIDE && g->kernel_h >= g->stride_h &&
           g->kernel_w >= g->stride_w && out_channels > 0 && g->channels >= MIN_CHANNELS &&
           g->channels * out_channels <= MAX_CHANNEL_PRODUCT &&
           out_channels * hp * wp <= INT32_MAX && g->height * g->width <= INT32_MAX;
}

lm_status lm_cpu_conv2d_direct_grad_input(lm_tensor *gx, const lm_tensor *gy, const lm_tensor *w,
                                          const lm_conv_geometry *g) {
    int64_t o = w->shape[0];
    int64_t lanes = g->channels <= 16 ? 16 : 32;
    direct_gx_job j = {.g = g,
                       .gy = lm_tensor_f32(gy),
                       .gx = lm_tensor_f32(gx),
                       .o = o,
                       .lanes = lanes,
                       .lanes_pad = (g->channels + lanes - 1) / lanes * lanes,
                       .blocks = (g->channels + lanes - 1) / lanes};
    /* the output gradient's border: tap t of a phase reads t rows above the
     * position's tap-0 row, which may lie below the last output row */
    int64_t top = (g->kernel_h - 1) / g->stride_h, left = (g->kernel_w - 1) / g->stride_w;
    int64_t below = (g->height - 1 + g->pad_h) / g->stride_h - (g->out_h - 1);
    int64_t right = (g->width - 1 + g->pad_w) / g->stride_w - (g->out_w - 1);
    j.hp = top + g->out_h + (below > 0 ? below : 0);
    j.wp = left + g->out_w + (right > 0 ? right : 0);
    const float *wf = lm_tensor_f32(w);
    bool planned = true;
    for (int64_t a = 0; a < g->stride_h; a++)
        for (int64_t b = 0; b < g->stride_w; b++)
            planned = planned && plan_phase(&j, &j.phase[j.phases++], a, b, wf);
    int64_t units = gx->shape[0] * j.blocks;
    int slots = lm_parallel_chunks(units, 1);
    size_t bytes = (size_t)(o * j.hp * j.wp) * sizeof(float) * (size_t)slots;
    j.gp = planned ? lm_cpu_alloc(bytes) : NULL;
    if (!j.gp) {
        free_plans(&j);
        return LM_ERR_MEMORY;
    }
    lm_parallel_for_slots(units, slots, units_range, &j);
    lm_cpu_free(j.gp, bytes);
    free_plans(&j);
    return LM_OK;
}

#else /* without AVX-512 im2col computes every input gradient */

bool lm_cpu_conv_direct_grad_input_applies(int64_t out_channels, const lm_conv_geometry *g) {
    (void)out_channels, (void)g;
    return false;
}

lm_status lm_cpu_conv2d_direct_grad_input(lm_tensor *gx, const lm_tensor *gy, const lm_tensor *w,
                                          const lm_conv_geometry *g) {
    (void)gx, (void)gy, (void)w, (void)g;
    return lm_fail(LM_ERR_STATE, "conv2d: the direct input gradient needs AVX-512");
}
#endif
