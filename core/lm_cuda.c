#include "lm_cuda.h"

#include <stdio.h>

static int probed = 0, device_count = 0;
static char status_line[256];

static void probe(void) {
    if (probed) return;
    probed = 1;
#ifdef LUMEN_HAVE_CUDA
    device_count = lm_cuda_probe(status_line, sizeof status_line);
#else
    snprintf(status_line, sizeof status_line,
             "this Lumen was built without CUDA (no nvcc found, or -DLUMEN_CUDA=OFF)");
#endif
}

bool lm_cuda_available(void) {
    probe();
    return device_count > 0;
}

const char *lm_cuda_status(void) {
    probe();
    return status_line;
}

const lm_backend *lm_cuda_backend(void) {
    probe();
    if (device_count <= 0) {
        lm_fail(LM_ERR_DEVICE, "CUDA is not available: %s", status_line);
        return NULL;
    }
#ifdef LUMEN_HAVE_CUDA
    return lm_cuda_make_backend();
#else
    return NULL;
#endif
}

#ifndef LUMEN_HAVE_CUDA
lm_status lm_cuda_synchronize(void) {
    return lm_fail(LM_ERR_DEVICE, "CUDA is not available: %s", lm_cuda_status());
}
void lm_cuda_empty_cache(void) {}
lm_memory_stats lm_cuda_memory_stats(void) {
    return (lm_memory_stats){0};
}
/* the setting is kept without CUDA too, so scripts read back what they set */
static bool tf32_setting;
lm_status lm_cuda_set_tf32(bool allowed) {
    tf32_setting = allowed;
    return LM_OK;
}
bool lm_cuda_tf32(void) {
    return tf32_setting;
}
#endif
