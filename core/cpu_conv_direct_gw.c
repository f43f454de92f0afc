/* The weights' gradient of a 3x3, stride-1, padding-1 convolution computed
 * directly from the input and the output gradient, without im2col's
 * columns: gw[o, c, kh, kw] = sum over images and output positions p of
 * gy[n, o, p] * x[n, c, p shifted by (kh - 1, kw - 1)]. With padding 1 the
 * output plane has the input's width, so a shift is a fixed offset in the
 * flattened plane, (kh - 1) * W + kw - 1, and the positions that fall
 * outside (the padding) are masked lanes. Narrow layers (16-64 channels)
 * spent most of their backward pass writing nine copies of the input into
 * columns and packing them for a product with a tiny output; here each
 * input vector is loaded from cache and feeds 8 outputs x 3 shifts.
 *
 * Each gw value is summed by one thread in a fixed order (images, then
 * positions, 16 lanes reduced by a tree at the end), so the values are the
 * same bits at any thread count. */
#include <stdlib.h>

#include "cpu_backend.h"
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
    int64_t n, c, o, w, plane, vectors, block_images;
    int64_t unit_outs, unit_channels, units_per_out_row; /* a unit: outputs x input channels */
    const __mmask16 *shift_masks; /* [vector][kh][kw]: lanes whose shifted input is inside */
    float *acc;        /* slots of acc_floats, one a pool call (lm_cpu_alloc: no fresh pages) */
    size_t acc_floats; /* [out block][channel][kh][ACC_FLOATS] */
} direct_gw_job;

/* acc[k][kw] += gy[o0 + k] (.) x shifted by (kh, kw), over images [n0, n1)
 * of input channel c, for the block's first ob outputs (the others' lanes
 * load as zeros and their sums are never read). */
static void accumulate(const direct_gw_job *j, int64_t c, int64_t o0, int ob, int kh, int64_t n0,
                       int64_t n1, float *acc) {
    __m512 a[OUT_BLOCK][3];
#pragma GCC unroll 8
    for (int k = 0; k < OUT_BLOCK; k++)
#pragma GCC unroll 3
        for (int s = 0; s < 3; s++) a[k][s] = _mm512_loadu_ps(acc + (k * 3 + s) * 16);
    int64_t p = j->plane, offset = (kh - 1) * j->w - 1;
    for (int64_t n = n0; n < n1; n++) {
        const float *xs = j->x + (n * j->c + c) * p + offset;
        const float *gs = j->gy + (n * j->o + o0) * p;
        for (int64_t v = 0; v < j->vectors; v++) {
            const __mmask16 *m = j->shift_masks + (v * 3 + kh) * 3;
            __m512 x0 = _mm512_maskz_loadu_ps(m[0], xs + v * 16);
            __m512 x1 = _mm512_maskz_loadu_ps(m[1], xs + v * 16 + 1);
            __m512 x2 = _mm512_maskz_loadu_ps(m[2], xs + v * 16 + 2);
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
 * to UNIT_BLOCK input channels over every image, a block of images at a
 * time, so that the block's inputs and output gradients are read from
 * memory once and then from cache; the lanes' partial sums wait in acc
 * between blocks. */
static void units_range(void *ctx, int64_t b, int64_t e, int slot) {
    direct_gw_job *j = ctx;
    size_t acc_floats = j->acc_floats;
    float *acc = j->acc + (size_t)slot * acc_floats;
    for (int64_t u = b; u < e; u++) {
        int64_t o0 = (u / j->units_per_out_row) * j->unit_outs;
        int64_t c0 = (u % j->units_per_out_row) * j->unit_channels;
        int64_t outs = j->o - o0 < j->unit_outs ? j->o - o0 : j->unit_outs;
        int64_t chans = j->c - c0 < j->unit_channels ? j->c - c0 : j->unit_channels;
        for (size_t i = 0; i < acc_floats; i++) acc[i] = 0.0f;
        for (int64_t n0 = 0; n0 < j->n; n0 += j->block_images) {
            int64_t n1 = n0 + j->block_images < j->n ? n0 + j->block_images : j->n;
            for (int64_t k = 0; k * OUT_BLOCK < outs; k++) { /* its gy stays in L1 */
                int ob = (int)(outs - k * OUT_BLOCK < OUT_BLOCK ? outs - k * OUT_BLOCK : OUT_BLOCK);
                for (int64_t ci = 0; ci < chans; ci++)
                    for (int kh = 0; kh < 3; kh++)
                        accumulate(j, c0 + ci, o0 + k * OUT_BLOCK, ob, kh, n0, n1,
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
                            j->gw[(((o0 + i) * j->c + c0 + ci) * 3 + kh) * 3 + s] =
                                _mm512_reduce_add_ps(_mm512_loadu_ps(lanes));
                        }
    }
}

/* The unit's sides: up to UNIT_BLOCK each, the longer halved (outputs in
 * whole passes, channels down to 4) while there are fewer than two units
 * a thread. */
static void plan_units(direct_gw_job *j) {
    int64_t outs = (j->o + OUT_BLOCK - 1) / OUT_BLOCK * OUT_BLOCK, chans = j->c;
    if (outs > UNIT_BLOCK) outs = UNIT_BLOCK;
    if (chans > UNIT_BLOCK) chans = UNIT_BLOCK;
    int64_t want = 2 * lm_get_num_threads();
    while (((j->o + outs - 1) / outs) * ((j->c + chans - 1) / chans) < want) {
        if (outs > OUT_BLOCK && (outs >= chans || chans <= 4))
            outs = (outs / 2 + OUT_BLOCK - 1) / OUT_BLOCK * OUT_BLOCK;
        else if (chans > 4)
            chans = (chans + 1) / 2;
        else
            break;
    }
    j->unit_outs = outs;
    j->unit_channels = chans;
    j->units_per_out_row = (j->c + chans - 1) / chans;
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
    return g->channels >= 1 && g->kernel_h == 3 && g->kernel_w == 3 && g->stride_h == 1 &&
           g->stride_w == 1 && g->pad_h == 1 && g->pad_w == 1 && g->out_h == g->height &&
           g->out_w == g->width && g->height >= 1 && g->width >= 1;
}

lm_status lm_cpu_conv2d_direct_grad_weight(lm_tensor *gw, const lm_tensor *gy, const lm_tensor *x,
                                           const lm_conv_geometry *g) {
    if (gw->shape[0] == 0) return LM_OK; /* no outputs: nothing to sum */
    int64_t plane = g->height * g->width, vectors = (plane + 15) / 16;
    __mmask16 *masks = malloc(sizeof *masks * (size_t)vectors * 9);
    if (!masks) return LM_ERR_MEMORY;
    for (int64_t v = 0; v < vectors; v++)
        for (int kh = 0; kh < 3; kh++)
            for (int kw = 0; kw < 3; kw++)
                masks[(v * 3 + kh) * 3 + kw] =
                    lanes_where(v * 16, plane, g->height, g->width, kh - 1, kw - 1);
    int64_t n = x->shape[0], o = gw->shape[0];
    int64_t block_images = BLOCK_POSITIONS / plane;
    direct_gw_job j = {.x = lm_tensor_f32(x),
                       .gy = lm_tensor_f32(gy),
                       .gw = lm_tensor_f32(gw),
                       .n = n,
                       .c = g->channels,
                       .o = o,
                       .w = g->width,
                       .plane = plane,
                       .vectors = vectors,
                       .block_images = block_images < 1 ? 1 : block_images,
                       .shift_masks = masks};
    plan_units(&j);
    int64_t units = ((o + j.unit_outs - 1) / j.unit_outs) * j.units_per_out_row;
    int slots = lm_parallel_chunks(units, 1);
    j.acc_floats =
        (size_t)(((j.unit_outs + OUT_BLOCK - 1) / OUT_BLOCK) * j.unit_channels * 3) * ACC_FLOATS;
    size_t bytes = j.acc_floats * sizeof(float) * (size_t)slots;
    j.acc = lm_cpu_alloc(bytes);
    if (!j.acc) {
        free(masks);
        return LM_ERR_MEMORY;
    }
    lm_parallel_for_slots(units, slots, units_range, &j);
    lm_cpu_free(j.acc, bytes);
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
