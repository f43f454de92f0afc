/* What the core knows about CUDA: whether a device is usable, its name and
 * the backend table. No CUDA headers here: kernels/ implements the probe
 * when the build has CUDA (LUMEN_HAVE_CUDA). */
#ifndef LM_CUDA_H
#define LM_CUDA_H

#include <stdbool.h>

#include "lm_backend.h"

/* True when this build has the CUDA backend and a device answers. */
bool lm_cuda_available(void);
/* Why lm_cuda_available() is false, or the device name when it is true. */
const char *lm_cuda_status(void);
/* The CUDA backend table, or NULL with lm_last_error saying why. */
const lm_backend *lm_cuda_backend(void);

#ifdef LUMEN_HAVE_CUDA
/* kernels/cuda_device.cu: number of devices (0 on failure) and a line that
 * names device 0 or says what failed. */
int lm_cuda_probe(char *message, int size);
#endif

#endif
