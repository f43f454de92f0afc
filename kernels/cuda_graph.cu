// CUDA graphs: the device work of a function captured once, then replayed
// with one launch instead of one launch per kernel (what small layers need:
// a Net1 step is a few dozen kernels of microseconds each).
//
// Capture runs nothing: kernels, products and device copies queued on the
// capture stream are recorded with their arguments. A replay runs them
// again on the same memory, so that memory stays the graph's (its pool,
// cuda_memory.cu); host reads and uploads are refused while capturing
// (cuda_memory.cu). Random kernels read their seed and the base of their
// offsets from device memory that each replay writes first, and the replay
// advances the host's random stream by what the capture drew, so replays
// draw as uncaptured runs of the function would.
#include "cuda_backend.h"

extern "C" {
#include "lm_cuda.h"
}

#include <vector>

struct lm_cuda_graph {
    cudaGraphExec_t exec;
    int pool;
    std::vector<std::pair<void *, size_t>> slots; /* settings read from the device, in order */
    uint64_t *rng;  /* {seed, offset base} on the device, written before each replay */
    uint64_t seed;  /* the random stream's seed at capture (reseeding during it is refused) */
    uint64_t draws; /* Philox blocks a replay draws */
};

namespace {

cudaStream_t capture_stream;
lm_cuda_graph *capturing, *refreshing;
size_t next_slot; /* while refreshing */

__global__ void set_rng_kernel(uint64_t *rng, uint64_t seed, uint64_t base) {
    rng[0] = seed;
    rng[1] = base;
}

// Back to eager work on the legacy stream, after a capture ended or failed.
void leave_capture(void) {
    cu_stream = 0;
    cu_capture = cu_capture_rng{NULL, 0, 0};
    lm_cuda_pool_end();
    lm_cuda_blas_fns()->set_stream(lm_cuda_blas(), 0);
    capturing = NULL;
}

// Graphs freed during a capture (the collector runs at any time), destroyed
// after it: cudaFree and cudaGraphExecDestroy would wait for the device.
std::vector<lm_cuda_graph *> doomed;

void destroy_now(lm_cuda_graph *g);

void destroy(lm_cuda_graph *g) {
    if (!g) return;
    if (capturing && g != capturing) {
        doomed.push_back(g);
        return;
    }
    destroy_now(g);
}

void destroy_now(lm_cuda_graph *g) {
    if (g->exec) cudaGraphExecDestroy(g->exec);
    if (g->rng) cudaFree(g->rng);
    for (auto &slot : g->slots) cudaFree(slot.first);
    lm_cuda_pool_release(g->pool);
    delete g;
}

} // namespace

extern "C" bool lm_cuda_capturing(void) {
    return capturing != NULL;
}

lm_status lm_cuda_graph_slot(size_t bytes, void **slot, bool *refreshed) {
    *slot = NULL;
    *refreshed = false;
    if (refreshing) {
        if (next_slot >= refreshing->slots.size())
            return lm_fail(LM_ERR_STATE,
                           "this CUDA graph was captured with %zu optimiser launches, and its "
                           "replay asks for more: the parameters with gradients changed since",
                           refreshing->slots.size());
        *slot = refreshing->slots[next_slot++].first;
        *refreshed = true;
        return LM_OK;
    }
    if (!capturing) return LM_OK;
    /* its own memory, not the pool's: a pool block may have held a
     * temporary earlier in the capture, which each replay writes again
     * after the host wrote this replay's settings here */
    CU_TRY(cudaMalloc(slot, bytes), "a CUDA graph's settings");
    capturing->slots.push_back({*slot, bytes});
    return LM_OK;
}

// Between begin and end, the optimiser steps that the host runs write the
// settings of this replay into the graph's slots instead of launching.
extern "C" lm_status lm_cuda_graph_refresh_begin(lm_cuda_graph *g) {
    if (capturing || refreshing)
        return lm_fail(LM_ERR_STATE, "a CUDA graph's replay prepared inside a capture or another");
    refreshing = g;
    next_slot = 0;
    return LM_OK;
}

extern "C" lm_status lm_cuda_graph_refresh_end(void) {
    lm_cuda_graph *g = refreshing;
    refreshing = NULL;
    if (g && next_slot != g->slots.size())
        return lm_fail(LM_ERR_STATE,
                       "this CUDA graph was captured with %zu optimiser launches and its replay "
                       "gave %zu: step the same optimisers, with gradients for the same "
                       "parameters, before each replay",
                       g->slots.size(), next_slot);
    return LM_OK;
}

extern "C" const lm_backend *lm_cuda_make_backend(void); /* cuda_backend.cu */

extern "C" lm_status lm_cuda_capture_begin(uint64_t seed, uint64_t offset) {
    if (capturing) return lm_fail(LM_ERR_STATE, "a CUDA graph is already being captured");
    if (!lm_cuda_make_backend()) return LM_ERR_DEVICE; /* the context and cuBLAS, not mid-capture */
    if (!capture_stream) CU_TRY(cudaStreamCreate(&capture_stream), "creating the capture stream");
    /* all queued eager work finished first, so that what is captured
     * depends on nothing outside the capture (the capture stream is a
     * blocking one: a stray legacy-stream call inside breaks the capture
     * with an error instead of running uncaptured) */
    CU_TRY(cudaDeviceSynchronize(), "synchronize before capture");
    lm_cuda_graph *g = new lm_cuda_graph();
    g->pool = lm_cuda_pool_begin();
    /* (its own memory, written between replays: as the settings' slots) */
    cudaError_t err = cudaMalloc((void **)&g->rng, 2 * sizeof(uint64_t));
    if (err != cudaSuccess) {
        lm_cuda_pool_end();
        destroy(g);
        return lm_cuda_fail(err, "a CUDA graph's random state");
    }
    g->seed = seed;
    int blas = lm_cuda_blas_fns()->set_stream(lm_cuda_blas(), capture_stream);
    if (blas != CUBLAS_STATUS_SUCCESS) {
        lm_cuda_pool_end();
        destroy(g);
        return lm_cuda_blas_fail(blas, "cublasSetStream");
    }
    /* relaxed: cudaMalloc stays allowed (a pool's first blocks); the calls
     * that would wait for the capture are refused before they reach CUDA */
    err = cudaStreamBeginCapture(capture_stream, cudaStreamCaptureModeRelaxed);
    if (err != cudaSuccess) {
        lm_cuda_blas_fns()->set_stream(lm_cuda_blas(), 0);
        lm_cuda_pool_end();
        destroy(g);
        return lm_cuda_fail(err, "cudaStreamBeginCapture");
    }
    capturing = g;
    cu_stream = capture_stream;
    cu_capture = cu_capture_rng{g->rng, seed, offset};
    return LM_OK;
}

// Ends the capture; *out is the graph, or NULL (with the error) when the
// capture failed or `abandon` is set (the captured function raised).
extern "C" lm_status lm_cuda_capture_end(lm_cuda_graph **out, bool abandon) {
    *out = NULL;
    lm_cuda_graph *g = capturing;
    if (!g) return lm_fail(LM_ERR_STATE, "no CUDA graph is being captured");
    cudaGraph_t graph = NULL;
    cudaError_t err = cudaStreamEndCapture(capture_stream, &graph);
    leave_capture();
    for (lm_cuda_graph *d : doomed) destroy_now(d);
    doomed.clear();
    if (err == cudaSuccess && !abandon) err = cudaGraphInstantiate(&g->exec, graph, 0);
    if (graph) cudaGraphDestroy(graph);
    if (abandon || err != cudaSuccess) {
        destroy(g);
        cudaGetLastError(); /* a failed capture is not sticky */
        return abandon ? LM_OK : lm_cuda_fail(err, "capturing a CUDA graph");
    }
    *out = g;
    return LM_OK;
}

// Runs the graph with its random numbers from (seed, base) (a kernel's
// arguments are taken at its launch: the next replay cannot overwrite them).
extern "C" lm_status lm_cuda_graph_launch(lm_cuda_graph *g, uint64_t seed, uint64_t base) {
    if (capturing) return lm_fail(LM_ERR_STATE, "a CUDA graph replayed inside a capture");
    cu_launch(1, 1, set_rng_kernel, g->rng, seed, base);
    CU_LAUNCHED("CUDA graph (random state)");
    CU_TRY(cudaGraphLaunch(g->exec, 0), "cudaGraphLaunch");
    return LM_OK;
}

extern "C" void lm_cuda_graph_set_draws(lm_cuda_graph *g, uint64_t draws) {
    g->draws = draws;
}

extern "C" uint64_t lm_cuda_graph_draws(const lm_cuda_graph *g) {
    return g->draws;
}

extern "C" void lm_cuda_graph_free(lm_cuda_graph *g) {
    destroy(g);
}
