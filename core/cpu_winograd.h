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
    atomic_int failed; /* a transform could not get its scratch memory */
} winograd_job;

/* Images a chunk takes: enough tiles for full-speed products, within a
 * budget of memory for v and m. */
int64_t lm_winograd_chunk_images(int64_t n, int64_t channels, int64_t out_channels,
                                 int64_t tiles_per_image);

/* The input transform of the chunk's images into j->v, on the thread pool. */
void lm_winograd_transform_inputs(winograd_job *j);

#endif
