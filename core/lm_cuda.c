#include "lm_cuda.h"

#include <stdio.h>

#include "lm_rng.h"

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

#ifdef LUMEN_HAVE_CUDA
/* The random stream is the core's: a capture draws nothing (nothing runs),
 * so it goes back to where capture began, and each replay reserves what
 * the capture would have drawn. */
static uint64_t capture_offset;

lm_status lm_cuda_graph_begin(void) {
    if (!lm_cuda_available())
        return lm_fail(LM_ERR_DEVICE, "CUDA graphs need CUDA, which is not available: %s",
                       lm_cuda_status());
    /* (before the offset is taken: the capture under way owns it) */
    if (lm_cuda_capturing()) return lm_fail(LM_ERR_STATE, "a CUDA graph is already being captured");
    capture_offset = lm_rng_offset();
    return lm_cuda_capture_begin(lm_rng_seed(), capture_offset);
}

lm_status lm_cuda_graph_end(lm_cuda_graph **out, bool abandon) {
    uint64_t draws = lm_rng_offset() - capture_offset;
    lm_status s = lm_cuda_capture_end(out, abandon);
    lm_rng_set_state(lm_rng_seed(), capture_offset);
    if (*out) lm_cuda_graph_set_draws(*out, draws);
    return s;
}

lm_status lm_cuda_graph_replay(lm_cuda_graph *g) {
    uint64_t draws = lm_cuda_graph_draws(g);
    return lm_cuda_graph_launch(g, lm_rng_seed(), lm_rng_reserve(draws));
}
#else
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
lm_status lm_cuda_graph_begin(void) {
    return lm_fail(LM_ERR_DEVICE, "CUDA graphs need CUDA, which is not available: %s",
                   lm_cuda_status());
}
lm_status lm_cuda_graph_end(lm_cuda_graph **out, bool abandon) {
    (void)abandon;
    *out = NULL;
    return lm_fail(LM_ERR_STATE, "no CUDA graph is being captured");
}
lm_status lm_cuda_graph_replay(lm_cuda_graph *g) {
    (void)g;
    return lm_fail(LM_ERR_DEVICE, "CUDA is not available: %s", lm_cuda_status());
}
lm_status lm_cuda_graph_refresh_begin(lm_cuda_graph *g) {
    return lm_cuda_graph_replay(g);
}
lm_status lm_cuda_graph_refresh_end(void) {
    return LM_OK;
}
void lm_cuda_graph_free(lm_cuda_graph *g) {
    (void)g;
}
bool lm_cuda_capturing(void) {
    return false;
}
#endif
