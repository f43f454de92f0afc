/* The weights' gradient of a 3x3, padding-1 convolution of stride 1 or 2
 * computed directly from the input and the output gradient, without
 * im2col's columns: gw[o, c, kh, kw] = sum over images and output positions
 * p of gy[n, o, p] * x[n, c, p's input under tap (kh, kw)]. With stride 1
 * and padding 1 the output plane has the input's width, so a tap is a fixed
 * offset in the flattened plane, (kh - 1) * W + kw - 1, and the positions
 * that fall outside (the padding) are masked lanes. With stride 2 the input
 * is first split into its four phase planes (even or odd rows by even or
 * odd columns), each the output plane's size: tap (kh, kw) then reads phase
 * (kh != 1, kw != 1) shifted by a row and a column up for kh, kw = 0, so
 * again a fixed offset and a mask. A unit splits each block of images it
 * reads into a buffer of its own, from cache (a separate pass over the
 * whole input first cost 1.3 ms of 3.9 for 16 -> 32 channels on 32x32). Narrow layers (16-64
 * channels) spent most of their backward pass writing nine copies of the input into columns and
 * packing them for a product with a tiny output; here each input vector is loaded from cache and
 * feeds 8 outputs x 3 taps. A grouped layer's units each lie in one group
 * (its channels and outputs), the same sums as a plain layer's.
 *
 * Each gw value is summed in a fixed order: within a chunk of images (fixed
 * by the batch and plane sizes) by one thread, images then positions, 16
 * lanes reduced by a tree at the end; then the chunks' partial sums are
 * added in order. So the values are the same bits at any thread count. */
#include <stdlib.h>
#include <string.h>

#include "cpu_backend.h"
#include "cpu_lanes.h"
#include "lm_alloc.h"
#include "lm_error.h"
#include "lm_threads.h"

#ifdef __AVX512F__
#include <immintrin.h>

#define OUT_BLOCK 8         /* outputs a pass keeps in registers, x 3 shifts */
#define UNIT_BLOCK 64       /* outputs and input channels a work unit owns, at most */
#define BLOCK_POSITIONS 512 /* a pass runs over about this many positions (images x plane) */
#define ACC_FLOATS (OUT_BLOCK * 3 * 16) /* one pass's lanes: [output][kw][lane] */

typedef struct {
    const float *x, *gy;
    float *gw;
    const lm_conv_geometry *g;
    int64_t n, c, o, plane, vectors, block_images; /* c, o: a group's channels and outputs */
    int64_t groups, c_all, o_all; /* the layer's groups, input channels and outputs */
    int64_t x_channel;            /* floats from one input channel's plane to the next (H W) */
    bool split;                   /* stride 2: each block's inputs split into phase planes first */
    float *phases; /* then: slots of phase_floats, the block's [image][channel][4][plane] */
    size_t phase_floats;
    int64_t tap_offset[3][3]; /* where tap (kh, kw) reads, from an output position */
    int64_t unit_outs, unit_channels, out_blocks, channel_blocks; /* a unit's outputs x channels */
    int64_t chunk_images, chunks;                                 /* ... over a chunk of images */
    float *partials;              /* [chunks][O][C / groups][3][3] when chunks > 1, else NULL */
    const __mmask16 *shift_masks; /* [vector][kh][kw]: lanes whose tap's input is inside */
    float *acc;        /* slots of acc_floats, one a pool call (lm_cpu_alloc: no fresh pages) */
    size_t acc_floats; /* [out block][channel][kh][ACC_FLOATS] */
} direct_gw_job;

/* A stride-2 tap's phase (0: even rows or columns, 1: odd) and its shift
 * in the phase plane: input row 2 oy + kh - 1 is odd row oy - 1 for kh = 0,
 * even row oy for kh = 1 and odd row oy for kh = 2. */
static const int tap_phase[3] = {1, 0, 1}, tap_shift[3] = {-1, 0, 0};

/* Input plane x [H, W] into its phase planes ph [4][out_h][out_w], phase
 * 2 * row parity + column parity; what lies past an odd-sized plane's edge
 * is 0. */
static void split_plane(const float *x, float *ph, const lm_conv_geometry *g) {
    int64_t p = g->out_h * g->out_w, ow = g->out_w;
    memset(ph, 0, sizeof(float) * (size_t)(4 * p));
    for (int64_t r = 0; r < g->height; r++) {
        float *row = ph + (r % 2) * 2 * p + (r / 2) * ow;
        copy_even(row, x + r * g->width, (g->width + 1) / 2);
        copy_even(row + p, x + r * g->width + 1, g->width / 2);
    }
}

/* acc[k][kw] += gy[o0 + k] (.) x under tap (kh, kw), over images [n0, n1)
 * of one input channel (first: image n0's plane or phase planes, x_image
 * floats apart), for the block's first ob outputs (o0 counts all the
 * layer's outputs; the others' lanes load as zeros and their sums are
 * never read). */
static void accumulate(const direct_gw_job *j, const float *first, int64_t x_image, int64_t o0,
                       int ob, int kh, int64_t n0, int64_t n1, float *acc) {
    __m512 a[OUT_BLOCK][3];
#pragma GCC unroll 8
    for (int k = 0; k < OUT_BLOCK; k++)
#pragma GCC unroll 3
        for (int s = 0; s < 3; s++) a[k][s] = _mm512_loadu_ps(acc + (k * 3 + s) * 16);
    int64_t p = j->plane;
    const int64_t *tap = j->tap_offset[kh];
    for (int64_t n = n0; n < n1; n++) {
        const float *xs = first + (n - n0) * x_image;
        const float *x0s = xs + tap[0], *x1s = xs + tap[1], *x2s = xs + tap[2];
        const float *gs = j->gy + (n * j->o_all + o0) * p;
        for (int64_t v = 0; v < j->vectors; v++) {
            const __mmask16 *m = j->shift_masks + (v * 3 + kh) * 3;
            __m512 x0 = _mm512_maskz_loadu_ps(m[0], x0s + v * 16);
            __m512 x1 = _mm512_maskz_loadu_ps(m[1], x1s + v * 16);
            __m512 x2 = _mm512_maskz_loadu_ps(m[2], x2s + v * 16);
            __mmask16 inside = j->shift_masks[(v * 3 + 1) * 3 + 1]; /* unshifted: in the plane */
#pragma GCC unroll 8
            for (int k = 0; k < OUT_BLOCK; k++) {
                __m512 g = _mm512_maskz_loadu_ps(k < ob ? inside : 0, gs + k * p + v * 16);
                a[k][0] = _mm512_fmadd_ps(g, x0, a[k][0]);
                a[k][1] = _mm512_fmadd_ps(g, x1, a[k][1]);
                a[k][2] = _mm512_fmadd_ps(g, x2, a[k][2]);
            }
        }
    }
#pragma GCC unroll 8
    for (int k = 0; k < OUT_BLOCK; k++)
#pragma GCC unroll 3
        for (int s = 0; s < 3; s++) _mm512_storeu_ps(acc + (k * 3 + s) * 16, a[k][s]);
}

/* Work units [b, e): a unit is a block of up to UNIT_BLOCK outputs by up
 * to UNIT_BLOCK input channels of one group over one chunk of images, a
 * block of images
 * at a time, so that the block's inputs and output gradients are read from
 * memory once and then from cache; the lanes' partial sums wait in acc
 * between blocks. A chunk's sums go to its own partial gradient (or to gw
 * when there is one chunk): the chunks are fixed by the batch alone, so
 * the threads can share the images without changing a value's order. */
static void units_range(void *ctx, int64_t b, int64_t e, int slot) {
    direct_gw_job *j = ctx;
    size_t acc_floats = j->acc_floats;
    float *acc = j->acc + (size_t)slot * acc_floats;
    float *phases = j->split ? j->phases + (size_t)slot * j->phase_floats : NULL;
    int64_t blocks = j->out_blocks * j->channel_blocks;
    for (int64_t u = b; u < e; u++) {
        int64_t chunk = u / (j->groups * blocks), group = u / blocks % j->groups,
                block = u % blocks;
        int64_t o0 = (block / j->channel_blocks) * j->unit_outs;
        int64_t c0 = (block % j->channel_blocks) * j->unit_channels;
        int64_t outs = j->o - o0 < j->unit_outs ? j->o - o0 : j->unit_outs;
        int64_t chans = j->c - c0 < j->unit_channels ? j->c - c0 : j->unit_channels;
        int64_t first = chunk * j->chunk_images;
        int64_t last = first + j->chunk_images < j->n ? first + j->chunk_images : j->n;
        float *gw = j->partials ? j->partials + chunk * j->o_all * j->c * 9 : j->gw;
        o0 += group * j->o;              /* from here on the layer's output index */
        int64_t xc0 = group * j->c + c0; /* and the image's input channel */
        for (size_t i = 0; i < acc_floats; i++) acc[i] = 0.0f;
        for (int64_t n0 = first; n0 < last; n0 += j->block_images) {
            int64_t n1 = n0 + j->block_images < last ? n0 + j->block_images : last;
            const float *x0 = j->x + (n0 * j->c_all + xc0) * j->x_channel;
            int64_t x_image = j->c_all * j->x_channel;
            if (phases) { /* the block's planes split while they are read anyway */
                for (int64_t n = n0; n < n1; n++)
                    for (int64_t ci = 0; ci < chans; ci++)
                        split_plane(j->x + (n * j->c_all + xc0 + ci) * j->x_channel,
                                    phases + ((n - n0) * chans + ci) * 4 * j->plane, j->g);
                x0 = phases, x_image = chans * 4 * j->plane;
            }
            for (int64_t k = 0; k * OUT_BLOCK < outs; k++) { /* its gy stays in L1 */
                int ob = (int)(outs - k * OUT_BLOCK < OUT_BLOCK ? outs - k * OUT_BLOCK : OUT_BLOCK);
                for (int64_t ci = 0; ci < chans; ci++)
                    for (int kh = 0; kh < 3; kh++)
                        accumulate(j, x0 + ci * (phases ? 4 * j->plane : j->x_channel), x_image,
                                   o0 + k * OUT_BLOCK, ob, kh, n0, n1,
                                   acc + ((k * j->unit_channels + ci) * 3 + kh) * ACC_FLOATS);
            }
        }
        for (int64_t k = 0; k * OUT_BLOCK < outs; k++)
            for (int64_t ci = 0; ci < chans; ci++)
                for (int kh = 0; kh < 3; kh++)
                    for (int64_t i = k * OUT_BLOCK; i < outs && i < (k + 1) * OUT_BLOCK; i++)
                        for (int s = 0; s < 3; s++) {
                            const float *lanes =
                                acc + ((k * j->unit_channels + ci) * 3 + kh) * ACC_FLOATS +
                                ((i - k * OUT_BLOCK) * 3 + s) * 16;
                            gw[(((o0 + i) * j->c + c0 + ci) * 3 + kh) * 3 + s] =
                                _mm512_reduce_add_ps(_mm512_loadu_ps(lanes));
                        }
    }
}

/* The chunks of images: at most MAX_CHUNKS, each of at least
 * MIN_CHUNK_POSITIONS output positions, from the batch and plane alone (not
 * the thread count). Without chunks two threads each read every image for
 * their outputs: 16 -> 16 channels on 32x32 took 3.0-3.6 ms at 2 threads,
 * 2.0-2.6 with them; more chunks cost more partial sums at 1 thread. */
#define MAX_CHUNKS 4
#define MIN_CHUNK_POSITIONS 4096

/* The unit's sides: up to UNIT_BLOCK each, the longer halved (outputs in
 * whole passes, channels down to 4) while there are fewer than two units
 * a thread. */
static void plan_units(direct_gw_job *j) {
    int64_t per_chunk = (j->n + MAX_CHUNKS - 1) / MAX_CHUNKS;
    int64_t least = (MIN_CHUNK_POSITIONS + j->plane - 1) / j->plane;
    if (per_chunk < least) per_chunk = least;
    if (per_chunk > j->n) per_chunk = j->n;
    j->chunk_images = per_chunk < 1 ? 1 : per_chunk;
    j->chunks = (j->n + j->chunk_images - 1) / j->chunk_images;
    int64_t outs = (j->o + OUT_BLOCK - 1) / OUT_BLOCK * OUT_BLOCK, chans = j->c;
    if (outs > UNIT_BLOCK) outs = UNIT_BLOCK;
    if (chans > UNIT_BLOCK) chans = UNIT_BLOCK;
    int64_t want = 2 * lm_get_num_threads();
    while (j->chunks * j->groups * ((j->o + outs - 1) / outs) * ((j->c + chans - 1) / chans) <
           want) {
        if (outs > OUT_BLOCK && (outs >= chans || chans <= 4))
            outs = (outs / 2 + OUT_BLOCK - 1) / OUT_BLOCK * OUT_BLOCK;
        else if (chans > 4)
            chans = (chans + 1) / 2;
        else
            break;
    }
    j->unit_outs = outs;
    j->unit_channels = chans;
    j->out_blocks = (j->o + outs - 1) / outs;
    j->channel_blocks = (j->c + chans - 1) / chans;
}

static __mmask16 lanes_where(int64_t first, int64_t plane, int64_t h, int64_t w, int dy, int dx) {
    unsigned m = 0;
    for (int l = 0; l < 16; l++) {
        int64_t p = first + l, y = p / w + dy, x = p % w + dx;
        if (p < plane && y >= 0 && y < h && x >= 0 && x < w) m |= 1u << l;
    }
    return (__mmask16)m;
}

bool lm_cpu_conv_direct_available(void) {
    return true;
}

bool lm_cpu_conv_direct_grad_weight_applies(const lm_conv_geometry *g) {
    bool stride_1 = g->stride_h == 1 && g->stride_w == 1;
    bool stride_2 = g->stride_h == 2 && g->stride_w == 2;
    return lm_conv_dilation_h(g) == 1 && lm_conv_dilation_w(g) == 1 && g->channels >= 1 &&
           g->kernel_h == 3 && g->kernel_w == 3 && (stride_1 || stride_2) && g->pad_h == 1 &&
           g->pad_w == 1 && g->height >= 1 && g->width >= 1 &&
           g->out_h == (g->height - 1) / g->stride_h + 1 &&
           g->out_w == (g->width - 1) / g->stride_w + 1;
}

lm_status lm_cpu_conv2d_direct_grad_weight(lm_tensor *gw, const lm_tensor *gy, const lm_tensor *x,
                                           const lm_conv_geometry *g) {
    if (gw->shape[0] == 0) return LM_OK; /* no outputs: nothing to sum */
    bool split = g->stride_h == 2;
    int64_t oh = g->out_h, ow = g->out_w, plane = oh * ow, vectors = (plane + 15) / 16;
    int64_t n = x->shape[0], o = gw->shape[0], groups = lm_conv_groups(g);
    __mmask16 *masks = malloc(sizeof *masks * (size_t)vectors * 9);
    if (!masks) return LM_ERR_MEMORY;
    direct_gw_job j = {.x = lm_tensor_f32(x),
                       .gy = lm_tensor_f32(gy),
                       .gw = lm_tensor_f32(gw),
                       .g = g,
                       .n = n,
                       .c = g->channels / groups,
                       .o = o / groups,
                       .groups = groups,
                       .c_all = g->channels,
                       .o_all = o,
                       .plane = plane,
                       .vectors = vectors,
                       .x_channel = g->height * g->width,
                       .split = split,
                       .shift_masks = masks};
    for (int kh = 0; kh < 3; kh++)
        for (int kw = 0; kw < 3; kw++) {
            int dy = split ? tap_shift[kh] : kh - 1, dx = split ? tap_shift[kw] : kw - 1;
            int64_t phase = split ? 2 * tap_phase[kh] + tap_phase[kw] : 0;
            j.tap_offset[kh][kw] = phase * plane + dy * ow + dx;
            for (int64_t v = 0; v < vectors; v++)
                masks[(v * 3 + kh) * 3 + kw] = lanes_where(v * 16, plane, oh, ow, dy, dx);
        }
    int64_t block_images = BLOCK_POSITIONS / plane;
    j.block_images = block_images < 1 ? 1 : block_images;
    plan_units(&j);
    int64_t units = j.chunks * groups * j.out_blocks * j.channel_blocks;
    int slots = lm_parallel_chunks(units, 1);
    size_t partial_bytes = j.chunks > 1 ? (size_t)(j.chunks * o * j.c * 9) * sizeof(float) : 0;
    j.acc_floats =
        (size_t)(((j.unit_outs + OUT_BLOCK - 1) / OUT_BLOCK) * j.unit_channels * 3) * ACC_FLOATS;
    size_t bytes = j.acc_floats * sizeof(float) * (size_t)slots;
    j.phase_floats = split ? (size_t)(j.block_images * j.unit_channels * 4 * plane) : 0;
    size_t split_bytes = j.phase_floats * sizeof(float) * (size_t)slots;
    float *phases = split ? lm_cpu_alloc(split_bytes) : NULL;
    j.phases = phases;
    j.acc = lm_cpu_alloc(bytes);
    j.partials = partial_bytes ? lm_cpu_alloc(partial_bytes) : NULL;
    if (!j.acc || (partial_bytes && !j.partials) || (split && !phases)) {
        lm_cpu_free(j.acc, bytes);
        lm_cpu_free(j.partials, partial_bytes);
        lm_cpu_free(phases, split_bytes);
        free(masks);
        return LM_ERR_MEMORY;
    }
    lm_parallel_for_slots(units, slots, units_range, &j);
    if (j.partials) lm_cpu_sum_chunks(j.gw, j.partials, j.chunks, o * j.c * 9);
    lm_cpu_free(j.partials, partial_bytes);
    lm_cpu_free(j.acc, bytes);
    lm_cpu_free(phases, split_bytes);
    free(masks);
    return LM_OK;
}

#else /* without AVX-512 the im2col path computes every weight gradient */

bool lm_cpu_conv_direct_available(void) {
    return false;
}

bool lm_cpu_conv_direct_grad_weight_applies(const lm_conv_geometry *g) {
    (void)g;
    return false;
}

lm_status lm_cpu_conv2d_direct_grad_weight(lm_tensor *gw, const lm_tensor *gy, const lm_tensor *x,
                                           const lm_conv_geometry *g) {
    (void)gw, (void)gy, (void)x, (void)g;
    return lm_fail(LM_ERR_STATE, "conv2d: the direct weight gradient needs AVX-512");
}
#endif
