/* The forward pass of 1x1 stride-1 convolutions, y[n] = w [O, C] @ x[n]
 * [C, P] for each image, in AVX-512 registers. OpenBLAS runs these products
 * with the kernel set it was given, and where that set is AVX2's (Haswell:
 * what OPENBLAS_CORETYPE selects where its own detection goes wrong) half
 * of each AVX-512 core stays idle; im2col's unfolding copy and the relayout
 * of its side-by-side chunks cost a further 5-10 %.
 *
 * The positions are the vector lanes: the input under a block of 32
 * positions is copied to a [C][32] panel (zeros past the plane), then for
 * each block of 8 output channels 16 sums stay in registers while, channel
 * after channel, two vectors of the panel are loaded and the 8 weights
 * (packed to be contiguous) are broadcast against them. The panel is read
 * again from the cache for every block of outputs, not from memory. Each
 * output is one thread's, summed over the input channels in order, so the
 * values are the same at any thread count. */
#include <stdint.h>
#include <stdlib.h>

#include "cpu_backend.h"
#include "cpu_lanes.h"
#include "lm_alloc.h"
#include "lm_blas_kernel.h"
#include "lm_error.h"
#include "lm_threads.h"

#ifdef __AVX512F__
#include <immintrin.h>

#define ROWS 8  /* output channels a block */
#define COLS 32 /* positions a block: two vectors */

typedef struct {
    const float *x, *packed, *bias;
    float *panels; /* a slot's [C][32] copy of the input under a block of positions */
    const lm_conv_epilogue *ep;
    float *out;
    int64_t c, o, p, row_blocks, groups;
} pointwise_job;

/* y[r][0, count) = sum over c of packed[c][r] * panel[c][0, count) (+
 * bias[r]), for r < rows, count <= 32; panel: [C][32], rows of y p apart. */
static void block_sums(const float *panel, const float *packed, int64_t channels, int64_t p,
                       int64_t count, int rows, const float *bias, float *y) {
    __mmask16 m0 = first_lanes(count), m1 = first_lanes(count - 16);
    __m512 acc[ROWS][2];
#pragma GCC unroll 8
    for (int r = 0; r < ROWS; r++) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
    for (int64_t c = 0; c < channels; c++, panel += COLS, packed += ROWS) {
        __m512 x0 = _mm512_load_ps(panel), x1 = _mm512_load_ps(panel + 16);
#pragma GCC unroll 8
        for (int r = 0; r < ROWS; r++) {
            __m512 w = _mm512_set1_ps(packed[r]);
            acc[r][0] = _mm512_fmadd_ps(w, x0, acc[r][0]);
            acc[r][1] = _mm512_fmadd_ps(w, x1, acc[r][1]);
        }
    }
    /* through a tile, as the direct kernels do: stores of acc at variable
     * rows would keep it in memory, written back at every step of the sum */
    float tile[ROWS * COLS];
#pragma GCC unroll 8
    for (int r = 0; r < ROWS; r++) {
        _mm512_storeu_ps(tile + r * COLS, acc[r][0]);
        _mm512_storeu_ps(tile + r * COLS + 16, acc[r][1]);
    }
    for (int r = 0; r < rows; r++) {
        __m512 lo = _mm512_loadu_ps(tile + r * COLS), hi = _mm512_loadu_ps(tile + r * COLS + 16);
        if (bias) { /* after the sum, as a separate add gives it */
            __m512 b = _mm512_set1_ps(bias[r]);
            lo = _mm512_add_ps(lo, b);
            hi = _mm512_add_ps(hi, b);
        }
        _mm512_mask_storeu_ps(y + r * p, m0, lo);
        _mm512_mask_storeu_ps(y + r * p + 16, m1, hi);
    }
}

/* Units [b, e): unit = image * groups + group of blocks of 8 output
 * channels. A unit runs along the positions, a block of 32 at a time
 * through all of its blocks of outputs, so that the input under those
 * positions is read from the cache again, not from memory (an image of
 * DenseNet's first block is 2.8 MB); its planes are whole at the end, and
 * the epilogue follows at once. */
static void units_range(void *ctx, int64_t b, int64_t e, int slot) {
    const pointwise_job *j = ctx;
    float *panel = j->panels + (size_t)slot * (size_t)(j->c * COLS);
    for (int64_t u = b; u < e; u++) {
        int64_t n = u / j->groups, group = u % j->groups;
        int64_t first = group * j->row_blocks / j->groups,
                last = (group + 1) * j->row_blocks / j->groups;
        int64_t o0 = first * ROWS, o1 = last * ROWS < j->o ? last * ROWS : j->o;
        const float *x = j->x + n * j->c * j->p;
        float *y = j->out + n * j->o * j->p;
        for (int64_t p0 = 0; p0 < j->p; p0 += COLS) {
            int64_t count = j->p - p0 < COLS ? j->p - p0 : COLS;
            __mmask16 m0 = first_lanes(count), m1 = first_lanes(count - 16);
            for (int64_t c = 0; c < j->c; c++) { /* lanes past the plane: 0 */
                _mm512_store_ps(panel + c * COLS, _mm512_maskz_loadu_ps(m0, x + c * j->p + p0));
                _mm512_store_ps(panel + c * COLS + 16,
                                _mm512_maskz_loadu_ps(m1, x + c * j->p + p0 + 16));
            }
            for (int64_t r0 = o0; r0 < o1; r0 += ROWS)
                block_sums(panel, j->packed + r0 * j->c, j->c, j->p, count,
                           (int)(o1 - r0 < ROWS ? o1 - r0 : ROWS), j->bias ? j->bias + r0 : NULL,
                           y + r0 * j->p + p0);
        }
        if (j->ep) lm_cpu_conv_epilogue(j->ep, j->out, n * j->o + o0, n * j->o + o1, j->p);
    }
}

/* Where it beats im2col + GEMM (bench/conv_pointwise.lua): every shape
 * measured against OpenBLAS's AVX2 kernels (0.5-0.9 of their time); against
 * its AVX-512 kernels, planes of 64 positions and more (0.6-1.0, one layer
 * 1.06-1.16), not 7x7 ones (a block of 32 positions computes 64 lanes for
 * 49 there: 1.0-1.3). */
#define MIN_POSITIONS_AGAINST_AVX512_BLAS 64

bool lm_cpu_conv_pointwise_applies(const lm_conv_geometry *g) {
    return lm_conv_is_plain(g) && g->kernel_h == 1 && g->kernel_w == 1 && g->stride_h == 1 &&
           g->stride_w == 1 && g->pad_h == 0 && g->pad_w == 0 && g->channels > 0 &&
           (g->out_h * g->out_w >= MIN_POSITIONS_AGAINST_AVX512_BLAS || !lm_blas_runs_avx512());
}

lm_status lm_cpu_conv2d_pointwise(lm_tensor *out, const lm_tensor *x, const lm_tensor *w,
                                  const lm_tensor *bias, const lm_conv_epilogue *ep,
                                  const lm_conv_geometry *g) {
    int64_t o = w->shape[0], c = g->channels, blocks = (o + ROWS - 1) / ROWS;
    if (x->shape[0] == 0 || o == 0) return LM_OK; /* nothing to write */
    /* the weights of each block of 8 outputs as [C][8], rows past O zero */
    float *packed = malloc(sizeof *packed * (size_t)(blocks * ROWS * c));
    if (!packed) return LM_ERR_MEMORY;
    const float *wf = lm_tensor_f32(w);
    float *dst = packed; /* written in order, read from 8 rows of w at once */
    for (int64_t b = 0; b < blocks; b++)
        for (int64_t ci = 0; ci < c; ci++)
            for (int64_t k = b * ROWS; k < (b + 1) * ROWS; k++)
                *dst++ = k < o ? wf[k * c + ci] : 0.0f;
    pointwise_job j = {.x = lm_tensor_f32(x),
                       .packed = packed,
                       .bias = lm_tensor_f32_or_null(bias),
                       .ep = ep,
                       .out = lm_tensor_f32(out),
                       .c = c,
                       .o = o,
                       .p = g->out_h * g->out_w,
                       .row_blocks = blocks};
    /* a unit an image where the batch gives every thread two, else the
     * outputs split too */
    int64_t n = x->shape[0], threads = lm_get_num_threads();
    j.groups = n >= 2 * threads ? 1 : (2 * threads + n - 1) / n;
    if (j.groups > blocks) j.groups = blocks;
    int slots = lm_parallel_chunks(n * j.groups, 1);
    size_t bytes = (size_t)(c * COLS) * sizeof(float) * (size_t)slots;
    j.panels = lm_cpu_alloc(bytes);
    if (!j.panels) {
        free(packed);
        return LM_ERR_MEMORY;
    }
    lm_parallel_for_slots(n * j.groups, slots, units_range, &j);
    lm_cpu_free(j.panels, bytes);
    free(packed);
    return LM_OK;
}

#else /* without AVX-512 im2col + GEMM computes every 1x1 layer */

bool lm_cpu_conv_pointwise_applies(const lm_conv_geometry *g) {
    (void)g;
    return false;
}

lm_status lm_cpu_conv2d_pointwise(lm_tensor *out, const lm_tensor *x, const lm_tensor *w,
                                  const lm_tensor *bias, const lm_conv_epilogue *ep,
                                  const lm_conv_geometry *g) {
    (void)out, (void)x, (void)w, (void)bias, (void)ep, (void)g;
    return lm_fail(LM_ERR_STATE, "conv2d: the pointwise forward pass needs AVX-512");
}
#endif
