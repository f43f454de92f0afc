/* Decoding image files into training batches on worker threads, ahead of
 * the training loop: the caller starts batch k + 1, trains on batch k, then
 * finishes k + 1 (which waits only if the workers are behind).
 *
 * Each sample is decoded with `channels` channels, resized (antialiased,
 * lm_image_resize_planes) to h x w unless it already has that size, and
 * written as rows of a float32 batch [n, channels, h, w] in [0, 1]. The
 * workers are plain threads of their own (not lm_threads' pool, which
 * belongs to the Lua thread); they never touch Lumen's allocator: the batch
 * is allocated by lm_image_loader_start on the caller's thread. */
#ifndef LM_IMAGE_LOADER_H
#define LM_IMAGE_LOADER_H

#include <stdbool.h>

#include "lm_tensor.h"

typedef struct lm_image_loader lm_image_loader;

/* `paths` are copied; workers >= 1. */
lm_status lm_image_loader_new(lm_image_loader **out, const char *const *paths, int64_t count,
                              int channels, int64_t h, int64_t w, int workers);
/* Starts decoding samples `indices` (0-based into paths, n >= 1) into a new
 * batch. One batch is in flight at a time: starting a second before
 * finishing the first is an error. */
lm_status lm_image_loader_start(lm_image_loader *l, const int64_t *indices, int64_t n);
/* Waits for the batch in flight and hands it over (*batch: one reference).
 * A sample that could not be decoded leaves its row zero and, when `failed`
 * is given (n entries), failed[i] = true; without `failed` the first such
 * sample is the error, naming the file and the reason. */
lm_status lm_image_loader_finish(lm_image_loader *l, lm_tensor **batch, bool *failed);
/* The reason sample i of the last finished batch failed ("" if it did not). */
const char *lm_image_loader_reason(const lm_image_loader *l, int64_t i);
/* Waits for a batch in flight, stops the workers and frees everything. */
void lm_image_loader_free(lm_image_loader *l);

#endif
