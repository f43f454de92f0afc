/* What the core knows about CUDA: whether a device is usable, its name, the
 * backend table and the device-wide switches. No CUDA headers here:
 * kernels/ implements the rest when the build has CUDA (LUMEN_HAVE_CUDA);
 * without it every function answers "not available". */
#ifndef LM_CUDA_H
#define LM_CUDA_H

#include <stdbool.h>

#include "lm_alloc.h"
#include "lm_backend.h"

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

#ifdef LUMEN_HAVE_CUDA
/* kernels/cuda_device.cu: number of devices (0 on failure) and a line that
 * names device 0 or says what failed. */
int lm_cuda_probe(char *message, int size);
/* kernels/cuda_backend.cu: the table, created once (NULL + lm_last_error). */
const lm_backend *lm_cuda_make_backend(void);
#endif

#endif
