/* 3x3 stride-1 convolution by Winograd's minimal filtering F(2x2, 3x3)
 * (Lavin and Gray, 2015): each 2x2 block of outputs comes from a 4x4 input
 * tile with 16 products per input channel instead of 36, so the layer's
 * multiply-adds become 16 matrix products [O, C] x [C, tiles] that do 2.25
 * times less arithmetic than the im2col product. Transforms, per tile:
 *   V = B^T d B (input), U = G g G^T (weights), Y = A^T (U . V) A (output).
 * The images of a batch go in chunks whose transformed tiles stay within
 * a budget of memory; every step runs on the thread pool. */
#include <cblas.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_backend.h"
#include "cpu_winograd.h"
#include "lm_alloc.h"
#include "lm_threads.h"

#define POINTS WINOGRAD_POINTS
#define SMALL_PLANE_TILES WINOGRAD_SMALL_PLANE_TILES
#define CHUNK_BYTES ((int64_t)32 << 20)
#define PRIVATE_CHUNK_TILES WINOGRAD_PRIVATE_CHUNK_TILES
/* The most that the threads' chunk buffers may take together; past it, and
 * where there are fewer chunks than threads (ResNet's 4x4 planes), a chunk
 * at a time runs each step on every thread. */
#define PRIVATE_BYTES ((int64_t)64 << 20)

bool lm_cpu_winograd_applies(const lm_conv_geometry *g) {
    return g->kernel_h == 3 && g->kernel_w == 3 && g->stride_h == 1 && g->stride_w == 1 &&
           g->out_h >= 1 && g->out_w >= 1 && lm_conv_is_plain(g);
}

/* Images a chunk of n images of layer g takes for about chunk_tiles tiles. */
static int64_t chunk_images(int64_t n, int64_t o, const lm_conv_geometry *g, int64_t per_image,
                            int64_t chunk_tiles) {
    int64_t nb = (chunk_tiles + per_image - 1) / per_image;
    int64_t cap = CHUNK_BYTES / (POINTS * (g->channels + o) * per_image * (int64_t)sizeof(float));
    if (nb > cap) nb = cap;
    if (nb > n) nb = n;
    if (nb < 1) return 1;
    int64_t chunks = (n + nb - 1) / nb; /* as many chunks, but even (cpu_conv.c's reason) */
    return (n + chunks - 1) / chunks;
}

bool lm_winograd_side_by_side(int64_t n, int64_t o, const lm_conv_geometry *g, int64_t *slots,
                              int64_t *chunks) {
    int64_t per_image = ((g->out_h + 1) / 2) * ((g->out_w + 1) / 2);
    int64_t nb = chunk_images(n, o, g, per_image, PRIVATE_CHUNK_TILES);
    *chunks = (n + nb - 1) / nb;
    int64_t calls = lm_parallel_chunks(*chunks, 1);
    int64_t chunk_bytes = POINTS * (g->channels + o) * nb * per_image * (int64_t)sizeof(float);
    bool yes = *chunks >= lm_get_num_threads() && calls * chunk_bytes <= PRIVATE_BYTES;
    *slots = yes ? calls : 1;
    return yes;
}

lm_status lm_winograd_buffers(winograd_buffers *b, int64_t n, int64_t o, const lm_conv_geometry *g,
                              int64_t chunk_tiles, int64_t slots) {
    int64_t c = g->channels;
    b->tiles_h = (g->out_h + 1) / 2;
    b->tiles_w = (g->out_w + 1) / 2;
    b->per_image = b->tiles_h * b->tiles_w;
    b->chunk = chunk_images(n, o, g, b->per_image, chunk_tiles);
    b->slots = slots;
    b->u_bytes = (size_t)(POINTS * o * c) * sizeof(float);
    b->v_bytes = (size_t)(POINTS * c * b->chunk * b->per_image) * sizeof(float);
    b->m_bytes = (size_t)(POINTS * o * b->chunk * b->per_image) * sizeof(float);
    b->u = lm_cpu_alloc(b->u_bytes);
    b->v = lm_cpu_alloc(b->v_bytes * (size_t)slots);
    b->m = lm_cpu_alloc(b->m_bytes * (size_t)slots);
    if (b->u && b->v && b->m) return LM_OK;
    lm_winograd_buffers_free(b);
    return LM_ERR_MEMORY;
}

void lm_winograd_buffers_free(winograd_buffers *b) {
    lm_cpu_free(b->u, b->u_bytes);
    lm_cpu_free(b->v, b->v_bytes * (size_t)b->slots);
    lm_cpu_free(b->m, b->m_bytes * (size_t)b->slots);
    b->u = b->v = b->m = NULL;
}

#define WEIGHT_BLOCK 256

/* U[point][o][c] = G g G^T for each (o, c) 3x3 kernel g, a block of kernels
 * at a time: the block's nine taps are gathered into rows first, so every
 * step is a loop along the kernels that vectorises. */
static void weights_range(void *ctx, int64_t b, int64_t e) {
    const winograd_job *j = ctx;
    int64_t oc = j->out_channels * j->g->channels;
    float taps[9][WEIGHT_BLOCK], gg[4][3][WEIGHT_BLOCK];
    for (int64_t first = b; first < e; first += WEIGHT_BLOCK) {
        int64_t n = e - first < WEIGHT_BLOCK ? e - first : WEIGHT_BLOCK;
        const float *k = j->w + first * 9;
        for (int64_t t = 0; t < n; t++)
            for (int q = 0; q < 9; q++) taps[q][t] = k[t * 9 + q];
        for (int col = 0; col < 3; col++) { /* G g: rows g0, (g0+g1+g2)/2, (g0-g1+g2)/2, g2 */
            const float *g0 = taps[col], *g1 = taps[3 + col], *g2 = taps[6 + col];
            for (int64_t t = 0; t < n; t++) {
                gg[0][col][t] = g0[t];
                gg[1][col][t] = 0.5f * (g0[t] + g1[t] + g2[t]);
                gg[2][col][t] = 0.5f * (g0[t] - g1[t] + g2[t]);
                gg[3][col][t] = g2[t];
            }
        }
        for (int r = 0; r < 4; r++) { /* (G g) G^T, the same along each row */
            const float *a = gg[r][0], *m = gg[r][1], *z = gg[r][2];
            float *u0 = j->u + (int64_t)(r * 4) * oc + first, *u1 = u0 + oc, *u2 = u1 + oc,
                  *u3 = u2 + oc;
            for (int64_t t = 0; t < n; t++) {
                u0[t] = a[t];
                u1[t] = 0.5f * (a[t] + m[t] + z[t]);
                u2[t] = 0.5f * (a[t] - m[t] + z[t]);
                u3[t] = z[t];
            }
        }
    }
}

/* Tiles a row is transformed by at a time: the scratch rows live on the
 * stack of the pool's threads (the allocator is the Lua thread's). */
#define SEGMENT 128

/* d B along input row yy of a row of tiles, for tiles t0 .. t0 + len:
 * tile t reads columns 2t .. 2t+3 of the padded row (a, b, c, d) and gives
 * h0 = a - c, h1 = b + c, h2 = c - b, h3 = b - d. The tiles clear of the
 * padding read the input directly (stride-2 loads the compiler vectorises);
 * the few at the edges test each column. Nothing is staged through a buffer
 * first: a row written with scalar stores and read back as vectors stalls
 * on store forwarding (three quarters of this transform's time before). */
static void row_transform(const float *x, int64_t yy, const lm_conv_geometry *g, int64_t t0,
                          int64_t len, float *restrict h0, float *restrict h1, float *restrict h2,
                          float *restrict h3) {
    int64_t w = g->width, pad = g->pad_w;
    if (yy < 0 || yy >= g->height) {
        size_t bytes = sizeof(float) * (size_t)len;
        memset(h0, 0, bytes), memset(h1, 0, bytes), memset(h2, 0, bytes), memset(h3, 0, bytes);
        return;
    }
    const float *row = x + yy * w;
    /* tiles whose four columns 2 (t0 + t) - pad .. + 3 all lie in the row */
    int64_t lo = (pad - 2 * t0 + 1) / 2, hi = (w + pad - 4 - 2 * t0) / 2 + 1;
    if (lo < 0) lo = 0;
    if (w + pad - 4 - 2 * t0 < 0) hi = 0;
    if (hi > len) hi = len;
    if (hi < lo) hi = lo;
    for (int64_t t = 0; t < len; t++) {
        if (t == lo) t = hi; /* the interior below */
        if (t >= len) break;
        int64_t xe = 2 * (t0 + t) - pad;
        float a = xe >= 0 && xe < w ? row[xe] : 0.0f;
        float b = xe + 1 >= 0 && xe + 1 < w ? row[xe + 1] : 0.0f;
        float c = xe + 2 >= 0 && xe + 2 < w ? row[xe + 2] : 0.0f;
        float d = xe + 3 >= 0 && xe + 3 < w ? row[xe + 3] : 0.0f;
        h0[t] = a - c, h1[t] = b + c, h2[t] = c - b, h3[t] = b - d;
    }
    for (int64_t t = lo; t < hi; t++) {
        int64_t xe = 2 * (t0 + t) - pad;
        float a = row[xe], b = row[xe + 1], c = row[xe + 2], d = row[xe + 3];
        h0[t] = a - c, h1[t] = b + c, h2[t] = c - b, h3[t] = b - d;
    }
}

/* out[t] = a[t] + sign * b[t]: one column step of B^T, for every tile. */
static void combine(float *restrict out, const float *restrict a, const float *restrict b,
                    float sign, int64_t tw) {
    for (int64_t t = 0; t < tw; t++) out[t] = a[t] + sign * b[t];
}

#ifdef __AVX512F__
#include "cpu_lanes.h"

/* Lanes k of 16 whose column first + k lies in [0, w). */
static __mmask16 columns_in(int64_t first, int64_t w) {
    return (__mmask16)(first_lanes(w - first) & ~first_lanes(-first));
}

/* row_transform for 16 tiles from t0, in registers (h[s] lane t is hs[t]).
 * The row's columns come in three masked loads: masked-off lanes (the
 * padding, and columns past the row) read as zero and touch no memory, so
 * the address may lie before the row. */
static void row_transform16(const float *x, int64_t yy, const lm_conv_geometry *g, int64_t t0,
                            __m512 h[4]) {
    if (yy < 0 || yy >= g->height) {
        for (int s = 0; s < 4; s++) h[s] = _mm512_setzero_ps();
        return;
    }
    int64_t w = g->width, first = 2 * t0 - g->pad_w;
    uintptr_t at = (uintptr_t)(x + yy * w) + (uintptr_t)(first * (int64_t)sizeof(float));
    __m512 lo = _mm512_maskz_loadu_ps(columns_in(first, w), (const void *)at);
    __m512 mid = _mm512_maskz_loadu_ps(columns_in(first + 16, w), (const void *)(at + 64));
    __m512 hi = _mm512_maskz_loadu_ps(columns_in(first + 32, w) & 3, (const void *)(at + 128));
    const __m512i even_idx =
        _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odd_idx =
        _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    __m512 a = _mm512_permutex2var_ps(lo, even_idx, mid); /* column first + 2t */
    __m512 b = _mm512_permutex2var_ps(lo, odd_idx, mid);  /* first + 2t + 1 */
    __m512i hi_i = _mm512_castps_si512(hi);
    __m512 c = _mm512_castsi512_ps(_mm512_alignr_epi32(hi_i, _mm512_castps_si512(a), 1));
    __m512 d = _mm512_castsi512_ps(
        _mm512_alignr_epi32(_mm512_alignr_epi32(hi_i, hi_i, 1), _mm512_castps_si512(b), 1));
    h[0] = _mm512_sub_ps(a, c);
    h[1] = _mm512_add_ps(b, c);
    h[2] = _mm512_sub_ps(c, b);
    h[3] = _mm512_sub_ps(b, d);
}

/* inputs_range's plane for segments of 16 tiles, the tile rows' transforms
 * kept in registers: the same sums, without the per-tile loops over rows of
 * a few tiles that do not vectorise (a 32-wide image has 16 tiles a row). */
static void plane_inputs16(const winograd_job *j, const float *x, float *v_image) {
    const lm_conv_geometry *g = j->g;
    int64_t plane = g->channels * j->tiles, tw = j->tiles_w;
    for (int64_t t0 = 0; t0 < tw; t0 += 16) {
        __mmask16 keep = first_lanes(tw - t0);
        __m512 h[4][4]; /* h[input row of the tile row][s] */
        for (int64_t ty = 0; ty < j->tiles_h; ty++) {
            int first = 0;
            if (ty > 0) { /* rows 2 and 3 of the last tile row are rows 0 and 1 now */
                for (int s = 0; s < 4; s++) h[0][s] = h[2][s], h[1][s] = h[3][s];
                first = 2;
            }
            for (int r = first; r < 4; r++) row_transform16(x, 2 * ty - g->pad_h + r, g, t0, h[r]);
            float *v = v_image + ty * tw + t0;
            for (int s = 0; s < 4;
                 s++) { /* B^T down the columns: rows 0 - 2, 1 + 2, 2 - 1, 1 - 3 */
                _mm512_mask_storeu_ps(v + (int64_t)s * plane, keep,
                                      _mm512_sub_ps(h[0][s], h[2][s]));
                _mm512_mask_storeu_ps(v + (int64_t)(4 + s) * plane, keep,
                                      _mm512_add_ps(h[1][s], h[2][s]));
                _mm512_mask_storeu_ps(v + (int64_t)(8 + s) * plane, keep,
                                      _mm512_sub_ps(h[2][s], h[1][s]));
                _mm512_mask_storeu_ps(v + (int64_t)(12 + s) * plane, keep,
                                      _mm512_sub_ps(h[1][s], h[3][s]));
            }
        }
    }
}
#endif

/* V[point][c][tile] = B^T d B for every tile of the chunk's (image, channel)
 * planes, a segment of a row of tiles at a time: the four input rows are
 * split into even and odd columns, transformed along the rows, then down
 * the columns, each step a loop along the tiles that vectorises. Rows of
 * tiles overlap by two input rows: the last two rows' transforms are kept
 * for the next row of tiles instead of computed again. */
static void inputs_range(void *ctx, int64_t b, int64_t e) {
    const winograd_job *j = ctx;
    const lm_conv_geometry *g = j->g;
    int64_t c_n = g->channels, plane = c_n * j->tiles, tw = j->tiles_w;
    float rows[16][SEGMENT];
    for (int64_t t = b; t < e; t++) { /* t = image in chunk * C + c */
        int64_t i = t / c_n, c = t % c_n;
        const float *x = j->x + ((j->first + i) * c_n + c) * g->height * g->width;
        float *v_image = j->v + c * j->tiles + i * j->tiles_h * tw;
#ifdef __AVX512F__
        plane_inputs16(j, x, v_image);
        continue;
#endif
        for (int64_t t0 = 0; t0 < tw; t0 += SEGMENT) {
            int64_t len = tw - t0 < SEGMENT ? tw - t0 : SEGMENT;
            float *h[16]; /* h[row * 4 + s]: d B of each input row of the tile row */
            for (int k = 0; k < 16; k++) h[k] = rows[k];
            for (int64_t ty = 0; ty < j->tiles_h; ty++) {
                float *v = v_image + ty * tw + t0;
                int first = 0;
                if (ty > 0) { /* rows 2 and 3 of the last tile row are rows 0 and 1 now */
                    for (int k = 0; k < 8; k++) {
                        float *kept = h[8 + k];
                        h[8 + k] = h[k];
                        h[k] = kept;
                    }
                    first = 2;
                }
                for (int r = first; r < 4; r++)
                    row_transform(x, 2 * ty - g->pad_h + r, g, t0, len, h[4 * r], h[4 * r + 1],
                                  h[4 * r + 2], h[4 * r + 3]);
                /* B^T down the columns: rows 0 - 2, 1 + 2, 2 - 1, 1 - 3 */
                for (int s = 0; s < 4; s++) {
                    combine(v + (int64_t)s * plane, h[s], h[8 + s], -1.0f, len);
                    combine(v + (int64_t)(4 + s) * plane, h[4 + s], h[8 + s], 1.0f, len);
                    combine(v + (int64_t)(8 + s) * plane, h[8 + s], h[4 + s], -1.0f, len);
                    combine(v + (int64_t)(12 + s) * plane, h[4 + s], h[12 + s], -1.0f, len);
                }
            }
        }
    }
}

/* The input transform of small planes, one channel at a time: the
 * chunk's planes of the channel are copied, zero-padded, into `pad`
 * [padded rows][padded columns][image], so every tap of a tile is a
 * contiguous vector along the images. */
static void inputs_small_range(void *ctx, int64_t b, int64_t e) {
    winograd_job *j = ctx;
    const lm_conv_geometry *g = j->g;
    int64_t n = j->count, c_n = g->channels, h = g->height, w = g->width;
    int64_t tw = j->tiles_w, hp = 2 * j->tiles_h + 2, wp = 2 * tw + 2, plane = c_n * j->tiles;
    /* malloc, not lm_cpu_alloc: this runs on the pool's threads */
    float *pad = malloc(sizeof(float) * (size_t)(hp * wp * n));
    if (!pad) {
        atomic_store(&j->failed, 1);
        return;
    }
    /* zero once: every channel writes the same interior, the padding stays zero */
    memset(pad, 0, sizeof(float) * (size_t)(hp * wp * n));
    for (int64_t c = b; c < e; c++) {
        for (int64_t i = 0; i < n; i++) {
            const float *xp = j->x + ((j->first + i) * c_n + c) * h * w;
            for (int64_t y = 0; y < h && y + g->pad_h < hp; y++)
                for (int64_t x = 0; x < w && x + g->pad_w < wp; x++)
                    pad[((y + g->pad_h) * wp + x + g->pad_w) * n + i] = xp[y * w + x];
        }
        for (int64_t ty = 0; ty < j->tiles_h; ty++)
            for (int64_t tx = 0; tx < tw; tx++) {
                const float *d = pad + (2 * ty * wp + 2 * tx) * n;
                float *v = j->v + c * j->tiles + (ty * tw + tx) * n;
                const int64_t row = wp * n;
#pragma GCC ivdep
                for (int64_t i = 0; i < n; i++) {
                    float t[4][4]; /* d B along each of the tile's four rows */
                    for (int r = 0; r < 4; r++) {
                        const float *dr = d + r * row + i;
                        float a = dr[0], bb = dr[n], cc = dr[2 * n], dd = dr[3 * n];
                        t[r][0] = a - cc;
                        t[r][1] = bb + cc;
                        t[r][2] = cc - bb;
                        t[r][3] = bb - dd;
                    }
                    for (int s = 0; s < 4; s++) { /* B^T down the columns */
                        v[(int64_t)s * plane + i] = t[0][s] - t[2][s];
                        v[(int64_t)(4 + s) * plane + i] = t[1][s] + t[2][s];
                        v[(int64_t)(8 + s) * plane + i] = t[2][s] - t[1][s];
                        v[(int64_t)(12 + s) * plane + i] = t[1][s] - t[3][s];
                    }
                }
            }
    }
    free(pad);
}

void lm_winograd_transform_inputs(winograd_job *j) {
    int64_t per_image = j->tiles / j->count, c = j->g->channels;
    if (per_image <= SMALL_PLANE_TILES)
        lm_parallel_for(c, LM_GRAIN_ELEMENTWISE / (POINTS * j->tiles) + 1, inputs_small_range, j);
    else
        lm_parallel_for(j->count * c, LM_GRAIN_ELEMENTWISE / (POINTS * per_image) + 1, inputs_range,
                        j);
}

/* M[point] [O, tiles] = U[point] [O, C] x V[point] [C, tiles], one point a call. */
static void products_range(void *ctx, int64_t b, int64_t e) {
    const winograd_job *j = ctx;
    int64_t o = j->out_channels, c = j->g->channels, t = j->tiles;
    for (int64_t p = b; p < e; p++)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)o, (int)t, (int)c, 1.0f,
                    j->u + p * o * c, (int)c, j->v + p * c * t, (int)t, 0.0f, j->m + p * o * t,
                    (int)t);
}

#ifdef __AVX512F__
/* outputs_range's plane for segments of 16 tiles in registers: the same
 * sums in the same order, the tiles' two columns interleaved by permutes
 * and written with masked stores (no staging row, no scalar loop). */
static void plane_outputs16(const winograd_job *j, const float *m_image, float *y, float bo) {
    const lm_conv_geometry *g = j->g;
    int64_t oh = g->out_h, ow = g->out_w, plane = j->out_channels * j->tiles, tw = j->tiles_w;
    const __m512i first_half =
        _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const __m512i second_half =
        _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    __m512 bias = _mm512_set1_ps(bo);
    for (int64_t ty = 0; ty < j->tiles_h; ty++)
        for (int64_t t0 = 0; t0 < tw; t0 += 16) {
            int64_t len = tw - t0 < 16 ? tw - t0 : 16;
            __mmask16 keep = first_lanes(len);
            const float *m = m_image + ty * tw + t0;
            __m512 p[16];
            for (int k = 0; k < 16; k++) p[k] = _mm512_maskz_loadu_ps(keep, m + k * plane);
            __m512 s0[4], s1[4]; /* A^T M down the columns */
            for (int c = 0; c < 4; c++) {
                s0[c] = _mm512_add_ps(_mm512_add_ps(p[c], p[4 + c]), p[8 + c]);
                s1[c] = _mm512_sub_ps(_mm512_sub_ps(p[4 + c], p[8 + c]), p[12 + c]);
            }
            int64_t y0 = 2 * ty, x0 = 2 * t0, n = ow - x0 < 2 * len ? ow - x0 : 2 * len;
            __mmask16 lo = first_lanes(n), hi = first_lanes(n - 16);
            for (int r = 0; r < 2 && y0 + r < oh; r++) { /* then along the rows */
                const __m512 *sr = r ? s1 : s0;
                __m512 even =
                    _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(sr[0], sr[1]), sr[2]), bias);
                __m512 odd = _mm512_add_ps(_mm512_sub_ps(_mm512_sub_ps(sr[1], sr[2]), sr[3]), bias);
                float *row = y + (y0 + r) * ow + x0;
                _mm512_mask_storeu_ps(row, lo, _mm512_permutex2var_ps(even, first_half, odd));
                _mm512_mask_storeu_ps(row + 16, hi, _mm512_permutex2var_ps(even, second_half, odd));
            }
        }
}
#endif

/* The index of image i's (of the chunk) plane of output channel o. */
static inline int64_t y_plane(const winograd_job *j, int64_t i, int64_t o) {
    return (j->first + i) * j->out_channels + o;
}

/* out = A^T M A for every tile of the chunk's (image, output channel)
 * planes, a segment of a row of tiles at a time into two rows of outputs,
 * copied to the output cut to its width (an odd width drops a column). */
static void outputs_range(void *ctx, int64_t b, int64_t e) {
    const winograd_job *j = ctx;
    const lm_conv_geometry *g = j->g;
    int64_t o_n = j->out_channels, oh = g->out_h, ow = g->out_w, plane = o_n * j->tiles;
    int64_t tw = j->tiles_w;
    float top[2 * SEGMENT], bottom[2 * SEGMENT];
    for (int64_t t = b; t < e; t++) { /* t = image in chunk * O + o */
        int64_t i = t / o_n, o = t % o_n;
        float *y = j->out + ((j->first + i) * o_n + o) * oh * ow;
        const float *m_image = j->m + o * j->tiles + i * j->tiles_h * tw;
        float bo = j->bias ? j->bias[o] : -0.0f; /* x + -0 is x, bit for bit (-0 too) */
#ifdef __AVX512F__
        plane_outputs16(j, m_image, y, bo);
        if (j->epilogue)
            lm_cpu_conv_epilogue(j->epilogue, j->out, y_plane(j, i, o), y_plane(j, i, o) + 1,
                                 oh * ow);
        continue;
#endif
        for (int64_t ty = 0; ty < j->tiles_h; ty++)
            for (int64_t t0 = 0; t0 < tw; t0 += SEGMENT) {
                int64_t len = tw - t0 < SEGMENT ? tw - t0 : SEGMENT;
                const float *m = m_image + ty * tw + t0;
                for (int64_t tx = 0; tx < len; tx++) {
                    const float *p = m + tx;
                    /* A^T M down the columns, then along the rows */
                    float s00 = p[0] + p[4 * plane] + p[8 * plane],
                          s01 = p[plane] + p[5 * plane] + p[9 * plane],
                          s02 = p[2 * plane] + p[6 * plane] + p[10 * plane],
                          s03 = p[3 * plane] + p[7 * plane] + p[11 * plane];
                    float s10 = p[4 * plane] - p[8 * plane] - p[12 * plane],
                          s11 = p[5 * plane] - p[9 * plane] - p[13 * plane],
                          s12 = p[6 * plane] - p[10 * plane] - p[14 * plane],
                          s13 = p[7 * plane] - p[11 * plane] - p[15 * plane];
                    top[2 * tx] = s00 + s01 + s02 + bo;
                    top[2 * tx + 1] = s01 - s02 - s03 + bo;
                    bottom[2 * tx] = s10 + s11 + s12 + bo;
                    bottom[2 * tx + 1] = s11 - s12 - s13 + bo;
                }
                int64_t y0 = 2 * ty, x0 = 2 * t0, n = ow - x0 < 2 * len ? ow - x0 : 2 * len;
                memcpy(y + y0 * ow + x0, top, sizeof(float) * (size_t)n);
                if (y0 + 1 < oh) memcpy(y + (y0 + 1) * ow + x0, bottom, sizeof(float) * (size_t)n);
            }
        if (j->epilogue)
            lm_cpu_conv_epilogue(j->epilogue, j->out, y_plane(j, i, o), y_plane(j, i, o) + 1,
                                 oh * ow);
    }
}

/* The output transform of small planes, one output channel at a time:
 * each tile's outputs are vectors along the images, gathered in `q`
 * [rows][columns][image] and then copied to each image's plane. */
static void outputs_small_range(void *ctx, int64_t b, int64_t e) {
    winograd_job *j = ctx;
    const lm_conv_geometry *g = j->g;
    int64_t n = j->count, o_n = j->out_channels, oh = g->out_h, ow = g->out_w;
    int64_t tw = j->tiles_w, qw = 2 * tw, plane = o_n * j->tiles;
    float *q =
        malloc(sizeof(float) * (size_t)(2 * j->tiles_h * qw * n)); /* on the pool's threads */
    if (!q) {
        atomic_store(&j->failed, 1);
        return;
    }
    for (int64_t o = b; o < e; o++) {
        float bo = j->bias ? j->bias[o] : -0.0f;
        for (int64_t ty = 0; ty < j->tiles_h; ty++)
            for (int64_t tx = 0; tx < tw; tx++) {
                const float *m = j->m + o * j->tiles + (ty * tw + tx) * n;
                float *q0 = q + (2 * ty * qw + 2 * tx) * n, *q1 = q0 + qw * n;
#pragma GCC ivdep
                for (int64_t i = 0; i < n; i++) {
                    const float *p = m + i;
                    float s0[4], s1[4]; /* A^T M down the columns */
                    for (int col = 0; col < 4; col++) {
                        float m0 = p[col * plane], m1 = p[(4 + col) * plane],
                              m2 = p[(8 + col) * plane], m3 = p[(12 + col) * plane];
                        s0[col] = m0 + m1 + m2;
                        s1[col] = m1 - m2 - m3;
                    }
                    q0[i] = s0[0] + s0[1] + s0[2] + bo;
                    q0[n + i] = s0[1] - s0[2] - s0[3] + bo;
                    q1[i] = s1[0] + s1[1] + s1[2] + bo;
                    q1[n + i] = s1[1] - s1[2] - s1[3] + bo;
                }
            }
        for (int64_t i = 0; i < n; i++) {
            float *y = j->out + ((j->first + i) * o_n + o) * oh * ow;
            for (int64_t yy = 0; yy < oh; yy++)
                for (int64_t xx = 0; xx < ow; xx++) y[yy * ow + xx] = q[(yy * qw + xx) * n + i];
            if (j->epilogue)
                lm_cpu_conv_epilogue(j->epilogue, j->out, y_plane(j, i, o), y_plane(j, i, o) + 1,
                                     oh * ow);
        }
    }
    free(q);
}

/* One chunk of j's images, [first, first + count): the input transform, the
 * products and the output transform, each on the pool (inline when called
 * from one of its threads). */
static void run_chunk(winograd_job *j, int64_t first, int64_t count, int64_t per_image) {
    bool small = per_image <= SMALL_PLANE_TILES;
    j->first = first;
    j->count = count;
    j->tiles = count * per_image;
    int64_t grain = LM_GRAIN_ELEMENTWISE / (POINTS * j->tiles / (small ? 1 : count)) + 1;
    lm_winograd_transform_inputs(j);
    lm_parallel_for(POINTS, 1, products_range, j);
    if (small)
        lm_parallel_for(j->out_channels, grain, outputs_small_range, j);
    else
        lm_parallel_for(count * j->out_channels, grain, outputs_range, j);
}

/* The chunks of one call side by side: each call's own slot of v and m. */
typedef struct {
    winograd_job *layer;
    const winograd_buffers *b;
    int64_t n;
    winograd_chunk_fn fn;
    void *ctx;
    atomic_int next_slot;
} chunks_job;

/* Chunks [k0, k1) in j, until one fails. */
static void chunks_in(winograd_job *j, const winograd_buffers *b, int64_t n, int64_t k0, int64_t k1,
                      winograd_chunk_fn fn, void *ctx) {
    for (int64_t k = k0; k < k1 && !atomic_load(&j->failed); k++) {
        int64_t first = k * b->chunk;
        fn(j, k, first, n - first < b->chunk ? n - first : b->chunk, ctx);
    }
}

static void chunks_range(void *ctx, int64_t b, int64_t e) {
    chunks_job *cj = ctx;
    const winograd_job *layer = cj->layer;
    size_t slot = (size_t)atomic_fetch_add(&cj->next_slot, 1);
    winograd_job j = {.g = layer->g,
                      .out_channels = layer->out_channels,
                      .tiles_h = layer->tiles_h,
                      .tiles_w = layer->tiles_w,
                      .x = layer->x,
                      .w = layer->w,
                      .gy = layer->gy,
                      .u = layer->u,
                      .v = cj->b->v + slot * (cj->b->v_bytes / sizeof(float)),
                      .m = cj->b->m + slot * (cj->b->m_bytes / sizeof(float)),
                      .out = layer->out,
                      .bias = layer->bias,
                      .epilogue = layer->epilogue};
    chunks_in(&j, cj->b, cj->n, b, e, cj->fn, cj->ctx);
    if (atomic_load(&j.failed)) atomic_store(&cj->layer->failed, 1);
}

void lm_winograd_run_chunks(winograd_job *layer, const winograd_buffers *b, int64_t n,
                            int64_t chunks, bool side_by_side, winograd_chunk_fn fn, void *ctx) {
    /* each pool call needs a slot of its own: the thread count may have grown
     * since planning (a finaliser run by an out-of-memory collection) */
    if (side_by_side && lm_parallel_chunks(chunks, 1) <= b->slots) {
        chunks_job cj = {layer, b, n, fn, ctx, 0};
        lm_parallel_for(chunks, 1, chunks_range, &cj);
    } else {
        chunks_in(layer, b, n, 0, chunks, fn, ctx); /* each step of a chunk on every thread */
    }
}

static void forward_chunk(winograd_job *j, int64_t k, int64_t first, int64_t count, void *ctx) {
    (void)k;
    run_chunk(j, first, count, *(const int64_t *)ctx);
}

/* out [n, o, oh, ow] = the correlation of x [n, C, H, W] with w [o, C, 3, 3]
 * (+ bias [o], when not NULL). The chunks are the same whatever the thread
 * count, so are the values. */
static lm_status winograd(float *out, const float *x, const float *w, const float *bias,
                          const lm_conv_epilogue *ep, int64_t n, int64_t o,
                          const lm_conv_geometry *g) {
    int64_t c = g->channels, slots, chunks;
    bool side_by_side = lm_winograd_side_by_side(n, o, g, &slots, &chunks);
    winograd_buffers b;
    if (lm_winograd_buffers(&b, n, o, g, PRIVATE_CHUNK_TILES, slots) != LM_OK) return LM_ERR_MEMORY;
    winograd_job j = {g,    o,   0,   0,   b.tiles_h, b.tiles_w, 0,  x, w,
                      NULL, b.u, b.v, b.m, out,       bias,      ep, 0};
    lm_parallel_for(o * c, WEIGHT_BLOCK, weights_range, &j);
    lm_winograd_run_chunks(&j, &b, n, chunks, side_by_side, forward_chunk, &b.per_image);
    lm_winograd_buffers_free(&b);
    return atomic_load(&j.failed) ? LM_ERR_MEMORY : LM_OK;
}

lm_status lm_cpu_conv2d_winograd(lm_tensor *out, const lm_tensor *x, const lm_tensor *w,
                                 const lm_tensor *bias, const lm_conv_epilogue *ep,
                                 const lm_conv_geometry *g) {
    return winograd(lm_tensor_f32(out), lm_tensor_f32(x), lm_tensor_f32(w),
                    lm_tensor_f32_or_null(bias), ep, x->shape[0], w->shape[0], g);
}

bool lm_cpu_winograd_grad_input_applies(const lm_conv_geometry *g) {
    return lm_cpu_winograd_applies(g) && g->pad_h <= 2 && g->pad_w <= 2;
}

/* The input's gradient of a 3x3 stride-1 layer is itself such a layer: the
 * output gradient g [n, O, oh, ow], padded by 2 - pad, with the weights
 * turned (lm_cpu_conv_gradient_geometry, lm_cpu_conv_turn_weights). */
lm_status lm_cpu_conv2d_winograd_grad_input(lm_tensor *gx, const lm_tensor *g_out,
                                            const lm_tensor *w, const lm_conv_geometry *g) {
    int64_t o = w->shape[0], c = g->channels;
    size_t bytes = (size_t)(c * o * 9) * sizeof(float);
    float *turned = lm_cpu_alloc(bytes);
    if (!turned) return LM_ERR_MEMORY;
    lm_cpu_conv_turn_weights(turned, lm_tensor_f32(w), o, g);
    lm_conv_geometry back = lm_cpu_conv_gradient_geometry(o, g);
    lm_status st = winograd(lm_tensor_f32(gx), lm_tensor_f32(g_out), turned, NULL, NULL,
                            gx->shape[0], c, &back);
    lm_cpu_free(turned, bytes);
    return st;
}
