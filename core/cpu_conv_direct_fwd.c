/* A convolution's forward pass computed directly, for the strided layers
 * im2col served badly (a stride-2 layer's columns are gathered a short row
 * at a time, and its product has few output channels), the stride-1
 * layers with few output channels Winograd serves badly and grouped layers
 * (im2col's products a group are small). Here the output
 * channels are the vector lanes: for a block of output positions and 32
 * output channels (16 where there are no more), each (input channel, kernel
 * row, kernel column) loads two vectors of weights (one) and broadcasts the
 * input under each position, 24 multiply-adds held in registers. The input
 * of one image is first copied with its padding, so that every position's
 * input is a fixed offset and no test is needed for the border. Each output
 * is one thread's, summed in a fixed order, so the values are the same at
 * any thread count. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_backend.h"
#include "cpu_conv_direct.h"
#include "lm_alloc.h"
#include "lm_error.h"
#include "lm_threads.h"

#ifdef __AVX512F__
#include <immintrin.h>

typedef struct {
    const lm_conv_geometry *g;
    const float *x, *bias;
    const float *wt;     /* [C * kh * kw][o_pad]: each tap's weights along the outputs */
    const int32_t *taps; /* [C * kh * kw]: each tap's offset in the padded image */
    const int32_t
        *offsets; /* [positions rounded up to a block]: each output's input in the padded plane */
    const lm_conv_epilogue *ep;
    float *out;
    int64_t o, o_pad, p, hp, wp, taps_count;
    int64_t lanes, positions; /* a block: 32 output channels x 12 positions, or 16 x 24 */
    int64_t groups, group_outputs, group_channels; /* o_pad: a group's outputs, padded */
    float *xp; /* slots of a padded image, one a pool call (lm_cpu_alloc) */
} direct_fwd_job;

/* Units [b, e): unit = (image * groups + group) * blocks + block of lanes
 * output channels of the group (so that a small batch still gives every
 * thread work), each image's padded copy made once per run of its units in
 * this pool call's slot. A group reads its own input channels, and its
 * weights are [taps][o_pad] of their own. */
static void units_range(void *ctx, int64_t b, int64_t e, int slot) {
    direct_fwd_job *j = ctx;
    const lm_conv_geometry *g = j->g;
    int64_t plane = g->height * g->width, padded = j->hp * j->wp, blocks = j->o_pad / j->lanes;
    int64_t lanes = j->lanes, positions = j->positions, per_image = j->groups * blocks;
    size_t floats = (size_t)(g->channels * padded);
    float *xp = j->xp + (size_t)slot * floats;
    memset(xp, 0, floats * sizeof *xp); /* the border stays 0 */
    /* a block's sums: LM_DIRECT_POSITIONS_32 * 32 = LM_DIRECT_POSITIONS_16 * 16 */
    float tile[LM_DIRECT_POSITIONS_32 * 32];
    int64_t copied = -1; /* the image in xp */
    for (int64_t u = b; u < e; u++) {
        int64_t n = u / per_image, group = u % per_image / blocks, b0 = (u % blocks) * lanes;
        int64_t o0 = group * j->group_outputs + b0; /* the block's first output channel */
        const float *group_plane = xp + group * j->group_channels * padded;
        const float *weights = j->wt + group * j->taps_count * j->o_pad + b0;
        if (n != copied) {
            const float *x = j->x + n * g->channels * plane;
            for (int64_t c = 0; c < g->channels; c++)
                for (int64_t r = 0; r < g->height; r++)
                    memcpy(xp + c * padded + (r + g->pad_h) * j->wp + g->pad_w,
                           x + c * plane + r * g->width, sizeof(float) * (size_t)g->width);
            copied = n;
        }
        float *y = j->out + n * j->o * j->p;
        int64_t outs = j->group_outputs - b0 < lanes ? j->group_outputs - b0 : lanes;
        for (int64_t p0 = 0; p0 < j->p; p0 += positions) {
            if (lanes == 32)
                lm_direct_sums32(group_plane, j->taps, j->taps_count, j->offsets + p0, weights,
                                 j->o_pad, tile);
            else
                lm_direct_sums16(group_plane, j->taps, j->taps_count, j->offsets + p0, weights,
                                 j->o_pad, tile);
            int64_t count = j->p - p0 < positions ? j->p - p0 : positions;
            for (int64_t k = 0; k < outs; k++) {
                float *dst = y + (o0 + k) * j->p + p0;
                float bo = j->bias ? j->bias[o0 + k] : -0.0f; /* x + -0 is x, bit for bit */
                for (int64_t q = 0; q < count; q++) dst[q] = tile[q * lanes + k] + bo;
            }
        }
        if (j->ep) lm_cpu_conv_epilogue(j->ep, j->out, n * j->o + o0, n * j->o + o0 + outs, j->p);
    }
}

/* Where it beats im2col (bench/conv_strided.lua): strided layers with a
 * kernel wider than 1x1, output planes of at least 64 positions (a block of
 * 12 wastes less than a tenth) and few channels (im2col's product is small). */
#define MIN_POSITIONS 64
/* A batch of a few images of a wider layer (64 -> 128 channels) is faster
 * as one product cut between the threads. */
#define NARROW_CHANNEL_PRODUCT (32 * 64)
#define MIN_IMAGES_WIDE 8
#define MAX_CHANNEL_PRODUCT (64 * 128)
/* Stride-1 layers with one block of output channels or fewer beat Winograd
 * here (its products per tile are too thin for its transforms: DenseNet's
 * 128 -> 32 layers 1.3-2.5x, bench/conv_narrow.lua); there a unit is an
 * image, so a small batch would leave threads idle. */
#define STRIDE1_MAX_OUTPUTS 32
/* ... and sums of at least 64 x 9 terms or planes of at most 16x16: over
 * fewer input channels on larger planes Winograd is the faster on Intel's
 * AVX-512 cores (a Sapphire Rapids-class VM, 1 thread: 16 -> 16 at 32x32
 * 1.3x its time, 8 -> 8 1.6x, 32 -> 32 at 56x56 1.2x; 64 -> 32 at 28x28
 * still 0.8-1.0x; on 16x16 and smaller planes 0.7-0.95x, 32 -> 32 at 24x24
 * 0.97x), though the kernel gained 6-20 % on all of them on an AMD EPYC
 * VM's. Kernels Winograd does not take go on to im2col, which loses on
 * them everywhere (5x5 and 7x7 of 3-32 channels: 0.3-0.6 of its time). */
#define STRIDE1_MIN_TERMS (64 * 9)
#define STRIDE1_SMALL_PLANE (16 * 16)
/* Grouped layers of at most 32 outputs a group (RegNet's 16-channel groups,
 * ResNeXt's): im2col makes a small product a group, the kernel a block a
 * group (bench/conv_grouped.lua). */
#define GROUP_MAX_OUTPUTS 32
/* ... on planes of 16 positions and more: im2col's products a group are
 * small even on 7x7 planes (RegNet's last stage, ResNeXt's: the kernel
 * 0.5-0.75 of their time at 1 thread, 0.35-0.6 at 2) */
#define GROUP_MIN_POSITIONS 16

bool lm_cpu_conv_direct_forward_applies(int64_t images, int64_t out_channels,
                                        const lm_conv_geometry *g) {
    int64_t padded = (g->height + 2 * g->pad_h) * (g->width + 2 * g->pad_w);
    int64_t groups = lm_conv_groups(g);
    if (lm_conv_dilation_h(g) > 1 || lm_conv_dilation_w(g) > 1 || out_channels <= 0) return false;
    if (groups > 1) /* (depthwise layers have their own kernel) */
        return out_channels / groups <= GROUP_MAX_OUTPUTS && g->kernel_h * g->kernel_w > 1 &&
               g->out_h * g->out_w >= GROUP_MIN_POSITIONS && g->channels * padded <= INT32_MAX;
    bool strided = g->stride_h > 1 || g->stride_w > 1;
    if (!strided && (out_channels > STRIDE1_MAX_OUTPUTS || images < MIN_IMAGES_WIDE ||
                     (g->channels * g->kernel_h * g->kernel_w < STRIDE1_MIN_TERMS &&
                      g->out_h * g->out_w > STRIDE1_SMALL_PLANE && lm_cpu_winograd_applies(g))))
        return false;
    return g->kernel_h * g->kernel_w > 1 && g->out_h * g->out_w >= MIN_POSITIONS &&
           out_channels > 0 && g->channels * out_channels <= MAX_CHANNEL_PRODUCT &&
           (images >= MIN_IMAGES_WIDE || g->channels * out_channels <= NARROW_CHANNEL_PRODUCT) &&
           g->channels * padded <= INT32_MAX; /* the taps' offsets are int32 */
}

lm_status lm_cpu_conv2d_direct(lm_tensor *out, const lm_tensor *x, const lm_tensor *w,
                               const lm_tensor *bias, const lm_conv_epilogue *ep,
                               const lm_conv_geometry *g) {
    /* 16 lanes for 16 outputs a group or fewer: 32 would compute half of them
     * for nothing */
    int64_t o = w->shape[0], groups = lm_conv_groups(g), og = o / groups, cg = g->channels / groups;
    int64_t lanes = og <= 16 ? 16 : 32, o_pad = (og + lanes - 1) / lanes * lanes;
    int64_t positions = lanes == 32 ? LM_DIRECT_POSITIONS_32 : LM_DIRECT_POSITIONS_16;
    int64_t p = g->out_h * g->out_w, taps = cg * g->kernel_h * g->kernel_w;
    int64_t p_pad = (p + positions - 1) / positions * positions;
    float *wt = calloc((size_t)(groups * taps * o_pad), sizeof *wt);
    int32_t *offsets = calloc((size_t)p_pad, sizeof *offsets); /* past the end: position 0 */
    int32_t *tap_offsets = malloc(sizeof *tap_offsets * (size_t)taps);
    if (!wt || !offsets || !tap_offsets) {
        free(wt), free(offsets), free(tap_offsets);
        return LM_ERR_MEMORY;
    }
    const float *wf = lm_tensor_f32(w);
    for (int64_t k = 0; k < o; k++) /* output k: group k / og, its (k % og)-th */
        for (int64_t t = 0; t < taps; t++)
            wt[((k / og) * taps + t) * o_pad + k % og] = wf[k * taps + t];
    int64_t wp = g->width + 2 * g->pad_w, hp = g->height + 2 * g->pad_h;
    for (int64_t c = 0, t = 0; c < cg; c++) /* from the group's first channel */
        for (int64_t i = 0; i < g->kernel_h; i++)
            for (int64_t k = 0; k < g->kernel_w; k++)
                tap_offsets[t++] = (int32_t)((c * hp + i) * wp + k);
    for (int64_t y = 0; y < g->out_h; y++)
        for (int64_t xx = 0; xx < g->out_w; xx++)
            offsets[y * g->out_w + xx] = (int32_t)(y * g->stride_h * wp + xx * g->stride_w);
    direct_fwd_job j = {.g = g,
                        .x = lm_tensor_f32(x),
                        .bias = lm_tensor_f32_or_null(bias),
                        .wt = wt,
                        .taps = tap_offsets,
                        .offsets = offsets,
                        .ep = ep,
                        .out = lm_tensor_f32(out),
                        .o = o,
                        .o_pad = o_pad,
                        .p = p,
                        .hp = hp,
                        .wp = wp,
                        .taps_count = taps,
                        .lanes = lanes,
                        .positions = positions,
                        .groups = groups,
                        .group_outputs = og,
                        .group_channels = cg};
    int64_t units = x->shape[0] * groups * (o_pad / lanes);
    int slots = lm_parallel_chunks(units, 1);
    size_t bytes = (size_t)(g->channels * j.hp * j.wp) * sizeof(float) * (size_t)slots;
    j.xp = lm_cpu_alloc(bytes);
    if (!j.xp) {
        free(wt), free(offsets), free(tap_offsets);
        return LM_ERR_MEMORY;
    }
    lm_parallel_for_slots(units, slots, units_range, &j);
    lm_cpu_free(j.xp, bytes);
    free(wt), free(offsets), free(tap_offsets);
    return LM_OK;
}

#else /* without AVX-512 the layers above go to im2col (or Winograd) */

bool lm_cpu_conv_direct_forward_applies(int64_t images, int64_t out_channels,
                                        const lm_conv_geometry *g) {
    (void)images, (void)out_channels, (void)g;
    return false;
}

lm_status lm_cpu_conv2d_direct(lm_tensor *out, const lm_tensor *x, const lm_tensor *w,
                               const lm_tensor *bias, const lm_conv_epilogue *ep,
                               const lm_conv_geometry *g) {
    (void)out, (void)x, (void)w, (void)bias, (void)ep, (void)g;
    return lm_fail(LM_ERR_STATE, "conv2d: the direct forward pass needs AVX-512");
}
#endif
