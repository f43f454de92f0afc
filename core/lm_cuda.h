/* What the core knows about CUDA: whether a device is usable, its name, the
 * backend table and the device-wide switches. No CUDA headers here:
 * kernels/ implements the rest when the build has CUDA (LUMEN_HAVE_CUDA);
 * without it every function answers "not available". */
#ifndef LM_CUDA_H
#define LM_CUDA_H

#include <stdbool.h>
#include <stdint.h>

#include "lm_alloc.h"
#include "lm_backend.h"

#ifdef __cplusplus
extern "C" {
#endif

/* True when this build has the CUDA backend and a device answers. */
bool lm_cuda_available(void);
/* Why lm_cuda_available() is false, or the device name when it is true. */
const char *lm_cuda_status(void);
/* The CUDA backend table, or NULL with lm_last_error saying why. */
const lm_backend *lm_cuda_backend(void);

/* Waits for all queued device work; reports a kernel fault if one happened. */
lm_status lm_cuda_synchronize(void);
/* Gives the cached device blocks back to the driver. */
void lm_cuda_empty_cache(void);
lm_memory_stats lm_cuda_memory_stats(void);
/* TF32 tensor cores for float32 GEMM and convolution (off by default). */
lm_status lm_cuda_set_tf32(bool allowed);
bool lm_cuda_tf32(void);

/* CUDA graphs (kernels/cuda_graph.cu): between lm_cuda_graph_begin and
 * lm_cuda_graph_end the device work queued is recorded, not run; a replay
 * runs it again on the same memory and draws the next random numbers.
 * Host reads and uploads are refused while capturing. end with abandon set
 * (the captured code failed) discards the capture. */
typedef struct lm_cuda_graph lm_cuda_graph;
lm_status lm_cuda_graph_begin(void);
lm_status lm_cuda_graph_end(lm_cuda_graph **out, bool abandon);
lm_status lm_cuda_graph_replay(lm_cuda_graph *g);
/* Before a replay: between these, the optimiser steps the host runs write
 * this replay's settings (rate, bias corrections) into the graph, in the
 * order they were captured, instead of launching. */
lm_status lm_cuda_graph_refresh_begin(lm_cuda_graph *g);
lm_status lm_cuda_graph_refresh_end(void);
void lm_cuda_graph_free(lm_cuda_graph *g);
bool lm_cuda_capturing(void);

#ifdef LUMEN_HAVE_CUDA
/* kernels/cuda_device.cu: number of devices (0 on failure) and a line that
 * names device 0 or says what failed. */
int lm_cuda_probe(char *message, int size);
/* kernels/cuda_backend.cu: the table, created once (NULL + lm_last_error). */
const lm_backend *lm_cuda_make_backend(void);
/* kernels/cuda_graph.cu: capture with the random stream at (seed, offset);
 * launch with a replay's random numbers from (seed, base). */
lm_status lm_cuda_capture_begin(uint64_t seed, uint64_t offset);
lm_status lm_cuda_capture_end(lm_cuda_graph **out, bool abandon);
lm_status lm_cuda_graph_launch(lm_cuda_graph *g, uint64_t seed, uint64_t base);
/* Philox blocks a replay draws (what the capture asked for). */
void lm_cuda_graph_set_draws(lm_cuda_graph *g, uint64_t draws);
uint64_t lm_cuda_graph_draws(const lm_cuda_graph *g);
#endif

#ifdef __cplusplus
}
#endif

#endif
