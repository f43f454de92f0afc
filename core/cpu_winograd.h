/* Winograd F(2x2, 3x3) on the CPU, shared by the forward pass and the input's
 * gradient (cpu_winograd.c) and the weights' gradient (cpu_winograd_weights.c):
 * a chunk of images, the layouts of its transformed tiles, and the input
 * transform both directions need. */
#ifndef LM_CPU_WINOGRAD_H
#define LM_CPU_WINOGRAD_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "lm_backend.h"

#define WINOGRAD_POINTS 16 /* 4x4 transformed values a tile */

/* Planes of at most this many tiles (8x8 outputs) order their tiles
 * image-minor, tile = (ty * tiles_w + tx) * count + image, so that each
 * transform step is a loop along the chunk's images: a row of such a plane
 * holds too few tiles for the vector loops. Larger planes order them
 * image-major, tile = image * tiles_h * tiles_w + ty * tiles_w + tx. */
#define WINOGRAD_SMALL_PLANE_TILES 16

/* One chunk of images of a layer. The transformed tiles are matrices per
 * point: v [point][C][tiles] (inputs), m [point][O][tiles] (outputs or
 * their gradient), u [point][O][C] (weights or their gradient). */
typedef struct {
    const lm_conv_geometry *g;
    int64_t out_channels, first, count; /* the chunk's images */
    int64_t tiles_h, tiles_w, tiles;    /* per image, and in the chunk */
    const float *x, *w, *gy;            /* input, weights, output gradient */
    float *u, *v, *m, *out;
    const float *bias;                /* NULL, or [O] added to each output as it is written */
    const lm_conv_epilogue *epilogue; /* NULL, or applied to each plane written */
    atomic_int failed;                /* a transform could not get its scratch memory */
} winograd_job;

/* A layer's tiling and the buffers of its pass: u for all kernels, v and m
 * for a chunk of `chunk` images (as many as cover chunk_tiles tiles within
 * a budget of memory), `slots` of each side by side. */
typedef struct {
    int64_t tiles_h, tiles_w, per_image, chunk, slots;
    float *u, *v, *m;
    size_t u_bytes, v_bytes, m_bytes; /* v and m: one slot's */
} winograd_buffers;

/* Chunks of about this many tiles run side by side, each chunk's steps on one
 * thread: the chunk's transformed tiles (16 C + 16 O floats a tile, 1 MiB
 * for 16 channels each way) stay in that core's cache between its steps, and
 * the threads meet once a layer instead of at every step of every chunk. */
#define WINOGRAD_PRIVATE_CHUNK_TILES 512

/* Fills b for n images of layer g with o output channels; LM_ERR_MEMORY
 * (nothing held) when the buffers cannot be had. */
lm_status lm_winograd_buffers(winograd_buffers *b, int64_t n, int64_t o, const lm_conv_geometry *g,
                              int64_t chunk_tiles, int64_t slots);
void lm_winograd_buffers_free(winograd_buffers *b);

/* One chunk's work: chunk k, images [first, first + count), in j (whose v
 * and m are the chunk's slot); its steps call the pool, which runs them
 * inline when the chunks run side by side. */
typedef void (*winograd_chunk_fn)(winograd_job *j, int64_t k, int64_t first, int64_t count,
                                  void *ctx);

/* Runs fn on every chunk of b.chunk images of n: side by side when
 * side_by_side (lm_winograd_side_by_side) and each pool call can have a slot
 * of its own, else one after another in layer itself. A chunk that failed
 * sets layer->failed, and the chunks after it in its call are skipped. */
void lm_winograd_run_chunks(winograd_job *layer, const winograd_buffers *b, int64_t n,
                            int64_t chunks, bool side_by_side, winograd_chunk_fn fn, void *ctx);

/* Whether n images of layer g (o output channels) run in chunks side by side:
 * not where there are fewer chunks than threads or the threads' buffers
 * would pass a budget. *slots: the buffer slots lm_winograd_buffers should
 * make (1 when not side by side), *chunks: how many chunks of
 * WINOGRAD_PRIVATE_CHUNK_TILES images there are (the same at any thread
 * count, so the values are too). */
bool lm_winograd_side_by_side(int64_t n, int64_t o, const lm_conv_geometry *g, int64_t *slots,
                              int64_t *chunks);

/* The input transform of the chunk's images into j->v, on the thread pool. */
void lm_winograd_transform_inputs(winograd_job *j);

#endif
