/* The weights' gradient of a 3x3 stride-1 layer by Winograd F(2x2, 3x3):
 * the adjoint of the forward pass Y = A^T ((G W G^T) . (B^T D B)) A. Per
 * tile, the output gradient dY (2x2) becomes dM = A dY A^T (4x4); per
 * point, dU [O, C] = dM [O, tiles] x V^T [tiles, C], summed over the chunks
 * of images, with V the inputs' transform of the forward pass; and
 * dW = G^T dU G (3x3) per kernel. The products do 2.25 times less
 * arithmetic than im2col's gw = dY x columns^T. */
#include <cblas.h>

#include <stdlib.h>
#include <string.h>

#include "cpu_backend.h"
#include "cpu_winograd.h"
#include "lm_alloc.h"
#include "lm_threads.h"

#define POINTS WINOGRAD_POINTS
#define SEGMENT 128 /* tiles of a row transformed at a time, on the stack */

/* dM = A dY A^T for one tile, from the two rows of its 2x2 block (a0 b0 /
 * a1 b1), into the 16 points `plane` floats apart. */
static inline void tile_gradient(float a0, float b0, float a1, float b1, float *m, int64_t plane) {
    /* A dY: rows (a0, b0), (a0 + a1, b0 + b1), (a0 - a1, b0 - b1), (-a1, -b1) */
    float rows[4][2] = {{a0, b0}, {a0 + a1, b0 + b1}, {a0 - a1, b0 - b1}, {-a1, -b1}};
    for (int r = 0; r < 4; r++) { /* then A^T along the row */
        float x = rows[r][0], y = rows[r][1];
        m[(r * 4) * plane] = x;
        m[(r * 4 + 1) * plane] = x + y;
        m[(r * 4 + 2) * plane] = x - y;
        m[(r * 4 + 3) * plane] = -y;
    }
}

/* dM of every tile of the chunk's (image, output channel) planes, image-major
 * tiles, a segment of a row of tiles at a time: the block's two rows, split
 * into even and odd columns (zero beyond the plane), then one vector loop. */
static void gradients_range(void *ctx, int64_t b, int64_t e) {
    const winograd_job *j = ctx;
    const lm_conv_geometry *g = j->g;
    int64_t o_n = j->out_channels, oh = g->out_h, ow = g->out_w, plane = o_n * j->tiles;
    int64_t tw = j->tiles_w;
    float split[4][SEGMENT];          /* even and odd columns of the block's two rows */
    for (int64_t t = b; t < e; t++) { /* t = image in chunk * O + o */
        int64_t i = t / o_n, o = t % o_n;
        const float *gy = j->gy + ((j->first + i) * o_n + o) * oh * ow;
        float *m_image = j->m + o * j->tiles + i * j->tiles_h * tw;
        for (int64_t ty = 0; ty < j->tiles_h; ty++)
            for (int64_t t0 = 0; t0 < tw; t0 += SEGMENT) {
                int64_t len = tw - t0 < SEGMENT ? tw - t0 : SEGMENT;
                for (int r = 0; r < 2; r++) {
                    int64_t y = 2 * ty + r;
                    for (int64_t tx = 0; tx < len; tx++) {
                        int64_t x = 2 * (t0 + tx);
                        split[2 * r][tx] = y < oh ? gy[y * ow + x] : 0.0f;
                        split[2 * r + 1][tx] = y < oh && x + 1 < ow ? gy[y * ow + x + 1] : 0.0f;
                    }
                }
                float *m = m_image + ty * tw + t0;
                for (int64_t tx = 0; tx < len; tx++)
                    tile_gradient(split[0][tx], split[1][tx], split[2][tx], split[3][tx], m + tx,
                                  plane);
            }
    }
}

/* dM of small planes (image-minor tiles), one output channel at a time: its
 * planes in the chunk are gathered into q [rows][columns][image], zero-padded
 * to whole tiles, so each tile is a vector loop along the images. */
static void gradients_small_range(void *ctx, int64_t b, int64_t e) {
    winograd_job *j = ctx;
    const lm_conv_geometry *g = j->g;
    int64_t n = j->count, o_n = j->out_channels, oh = g->out_h, ow = g->out_w;
    int64_t tw = j->tiles_w, qw = 2 * tw, plane = o_n * j->tiles;
    size_t q_floats = (size_t)(2 * j->tiles_h * qw * n);
    float *q = malloc(sizeof(float) * q_floats); /* on the pool's threads: not lm_cpu_alloc */
    if (!q) {
        atomic_store(&j->failed, 1);
        return;
    }
    /* zero once: every channel writes the same plane, the rest of the tiles stays zero */
    memset(q, 0, sizeof(float) * q_floats);
    for (int64_t o = b; o < e; o++) {
        for (int64_t i = 0; i < n; i++) {
            const float *gy = j->gy + ((j->first + i) * o_n + o) * oh * ow;
            for (int64_t y = 0; y < oh; y++)
                for (int64_t x = 0; x < ow; x++) q[(y * qw + x) * n + i] = gy[y * ow + x];
        }
        for (int64_t ty = 0; ty < j->tiles_h; ty++)
            for (int64_t tx = 0; tx < tw; tx++) {
                const float *q0 = q + (2 * ty * qw + 2 * tx) * n, *q1 = q0 + qw * n;
                float *m = j->m + o * j->tiles + (ty * tw + tx) * n;
#pragma GCC ivdep
                for (int64_t i = 0; i < n; i++)
                    tile_gradient(q0[i], q0[n + i], q1[i], q1[n + i], m + i, plane);
            }
    }
    free(q);
}

typedef struct {
    const winograd_job *j;
    float beta; /* 0 for the first chunk, 1 after: dU sums over the chunks */
} products_job;

/* dU[point] [O, C] (+)= dM[point] [O, tiles] x V[point]^T, one point a call. */
static void products_range(void *ctx, int64_t b, int64_t e) {
    const products_job *pj = ctx;
    const winograd_job *j = pj->j;
    int64_t o = j->out_channels, c = j->g->channels, t = j->tiles;
    for (int64_t p = b; p < e; p++)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)o, (int)c, (int)t, 1.0f,
                    j->m + p * o * t, (int)t, j->v + p * c * t, (int)t, pj->beta, j->u + p * o * c,
                    (int)c);
}

/* dW = G^T dU G for every (o, c) kernel: G^T's rows combine the points
 * (1, 1/2, 1/2, 0), (0, 1/2, -1/2, 0), (0, 1/2, 1/2, 1). */
static void kernels_range(void *ctx, int64_t b, int64_t e) {
    const winograd_job *j = ctx;
    int64_t oc = j->out_channels * j->g->channels;
    for (int64_t t = b; t < e; t++) { /* t = o * C + c */
        float d[4][4], h[3][4];
        for (int p = 0; p < POINTS; p++) d[p / 4][p % 4] = j->u[p * oc + t];
        for (int s = 0; s < 4; s++) {
            h[0][s] = d[0][s] + 0.5f * (d[1][s] + d[2][s]);
            h[1][s] = 0.5f * (d[1][s] - d[2][s]);
            h[2][s] = 0.5f * (d[1][s] + d[2][s]) + d[3][s];
        }
        float *gw = j->out + t * 9;
        for (int r = 0; r < 3; r++) {
            gw[r * 3] = h[r][0] + 0.5f * (h[r][1] + h[r][2]);
            gw[r * 3 + 1] = 0.5f * (h[r][1] - h[r][2]);
            gw[r * 3 + 2] = 0.5f * (h[r][1] + h[r][2]) + h[r][3];
        }
    }
}

/* Its products are [O, tiles] x [tiles, C]: long and thin, slower per
 * multiply-add than im2col's [O, tiles] x [tiles, 9 C], which outweighs the
 * 2.25 times fewer of them on planes of 16x16 and more (measured on
 * ResNet's and Net2's layers: 1.14x im2col's time at 64 channels on 32x32,
 * 0.44-0.63x on 8x8 and 4x4 planes; with chunks side by side, 1.6-1.8x
 * im2col's at 16 and 64 channels on 32x32, 2 threads). */
bool lm_cpu_winograd_grad_weight_gains(const lm_conv_geometry *g) {
    return ((g->out_h + 1) / 2) * ((g->out_w + 1) / 2) <= WINOGRAD_SMALL_PLANE_TILES;
}

/* One chunk of j's images, [first, first + count): their input transform,
 * dM and dU = beta dU + dM V^T into j->u, each step on the pool (inline
 * when called from one of its threads). */
static void weight_chunk(winograd_job *j, int64_t first, int64_t count, int64_t per_image,
                         float beta) {
    int64_t o = j->out_channels;
    j->first = first;
    j->count = count;
    j->tiles = count * per_image;
    lm_winograd_transform_inputs(j);
    if (per_image <= WINOGRAD_SMALL_PLANE_TILES)
        lm_parallel_for(o, LM_GRAIN_ELEMENTWISE / (POINTS * j->tiles) + 1, gradients_small_range,
                        j);
    else
        lm_parallel_for(count * o, LM_GRAIN_ELEMENTWISE / (POINTS * per_image) + 1, gradients_range,
                        j);
    products_job pj = {j, beta};
    lm_parallel_for(POINTS, 1, products_range, &pj);
}

/* Chunk k's dU: a partial of its own (summed in chunk order afterwards), or
 * accumulated into the layer's dU after the first chunk. */
typedef struct {
    float *u, *partials; /* partials [chunks][POINTS * O * C], or NULL */
    int64_t per_image;
} weight_chunks;

static void weight_chunk_of(winograd_job *j, int64_t k, int64_t first, int64_t count, void *ctx) {
    const weight_chunks *w = ctx;
    int64_t size = POINTS * j->out_channels * j->g->channels;
    j->u = w->partials ? w->partials + k * size : w->u;
    weight_chunk(j, first, count, w->per_image, w->partials || k == 0 ? 0.0f : 1.0f);
}

/* The most the chunks' partial dU may take; past it (layers of hundreds of
 * channels in many chunks) dU accumulates chunk after chunk in the products,
 * which gives other roundings but again the same at any thread count. */
#define PARTIALS_BYTES ((int64_t)64 << 20)

lm_status lm_cpu_conv2d_winograd_grad_weight(lm_tensor *gw, const lm_tensor *g_out,
                                             const lm_tensor *x, const lm_conv_geometry *g) {
    int64_t n = x->shape[0], o = gw->shape[0], c = g->channels, slots, chunks;
    bool side_by_side = lm_winograd_side_by_side(n, o, g, &slots, &chunks);
    int64_t partial_floats = POINTS * o * c;
    bool with_partials =
        chunks > 1 && chunks * partial_floats * (int64_t)sizeof(float) <= PARTIALS_BYTES;
    if (!with_partials) side_by_side = false, slots = 1;
    winograd_buffers b;
    if (lm_winograd_buffers(&b, n, o, g, WINOGRAD_PRIVATE_CHUNK_TILES, slots) != LM_OK)
        return LM_ERR_MEMORY;
    size_t partial_bytes = with_partials ? (size_t)(chunks * partial_floats) * sizeof(float) : 0;
    float *partials = with_partials ? lm_cpu_alloc(partial_bytes) : NULL;
    if (with_partials && !partials) {
        lm_winograd_buffers_free(&b);
        return LM_ERR_MEMORY;
    }
    winograd_job j = {.g = g,
                      .out_channels = o,
                      .tiles_h = b.tiles_h,
                      .tiles_w = b.tiles_w,
                      .x = lm_tensor_f32(x),
                      .gy = lm_tensor_f32(g_out),
                      .u = b.u,
                      .v = b.v,
                      .m = b.m,
                      .out = lm_tensor_f32(gw)};
    weight_chunks wc = {b.u, partials, b.per_image};
    lm_winograd_run_chunks(&j, &b, n, chunks, side_by_side, weight_chunk_of, &wc);
    j.u = b.u; /* the chunks pointed it at their partials */
    if (with_partials) {
        if (!atomic_load(&j.failed)) lm_cpu_sum_chunks(b.u, partials, chunks, partial_floats);
        lm_cpu_free(partials, partial_bytes);
    }
    if (!atomic_load(&j.failed))
        lm_parallel_for(o * c, LM_GRAIN_ELEMENTWISE / 64 + 1, kernels_range, &j);
    lm_winograd_buffers_free(&b);
    return atomic_load(&j.failed) ? LM_ERR_MEMORY : LM_OK;
}
