// Device memory through a caching allocator, and host/device copies.
//
// Why: cudaMalloc and cudaFree synchronise the device and cost tens of
// microseconds; a training step allocates the same temporaries every time.
// Freed blocks are kept per rounded size and handed out again. All work runs
// on one stream at a time (the legacy default stream, or a graph's while it
// is captured, which the legacy stream waits for), so a block freed by the
// host can be reused by the next launch without an event: the stream orders
// them.
//
// A captured CUDA graph (cuda_graph.cu) writes at replay into the blocks it
// was captured with, long after the host freed them: those blocks belong to
// the graph's pool, which hands them out only within its captures and gives
// them back to the cache when the graph is destroyed.
#include <stdio.h>
#include <string.h>

#include <unordered_map>
#include <vector>

#include "cuda_common.cuh"

extern "C" {
#include "lm_alloc.h"
#include "lm_cuda.h"
}

namespace {

typedef std::unordered_map<size_t, std::vector<void *>> FreeLists;
FreeLists cached_blocks;
lm_memory_stats stats;

// Graph pools: the free blocks of each live pool, the pool of every block
// allocated or freed during a capture, and the pool being captured into.
std::unordered_map<int, FreeLists> pools;
std::unordered_map<void *, int> pool_of;
int capture_pool, last_pool;

void *take(FreeLists &lists, size_t size) {
    auto found = lists.find(size);
    if (found == lists.end() || found->second.empty()) return NULL;
    void *p = found->second.back();
    found->second.pop_back();
    return p;
}

// 512-byte granules below 1 MiB, whole MiB above: small waste, many hits.
size_t round_size(size_t bytes) {
    const size_t small = 512, large = 1 << 20;
    if (bytes < large) return (bytes + small - 1) / small * small;
    return (bytes + large - 1) / large * large;
}

void release_cache(void) {
    for (auto &entry : cached_blocks)
        for (void *p : entry.second) {
            cudaFree(p);
            stats.cached_bytes -= entry.first; /* (a graph's free blocks stay counted) */
        }
    cached_blocks.clear();
}

} // namespace

lm_status lm_cuda_fail(cudaError_t err, const char *what) {
    return lm_fail(LM_ERR_DEVICE, "CUDA error in %s: %s (%s)", what, cudaGetErrorString(err),
                   cudaGetErrorName(err));
}

extern "C" void *lm_cuda_alloc(size_t bytes) {
    size_t size = round_size(bytes);
    stats.allocations++;
    stats.allocated_total += size;
    /* while a graph is captured, only its pool's blocks (or new ones) */
    void *p = take(capture_pool ? pools[capture_pool] : cached_blocks, size);
    if (p) {
        stats.cached_bytes -= size;
        stats.cache_hits++;
    } else {
        cudaError_t err = cudaMalloc(&p, size);
        if (err != cudaSuccess && !capture_pool) { /* (no waiting or freeing inside a capture) */
            cudaGetLastError();                    /* clear it: out of memory is not sticky */
            lm_run_oom_handler(); /* Lua's collector may free tensors into the cache */
            cudaDeviceSynchronize();
            release_cache();
            err = cudaMalloc(&p, size);
        }
        if (err != cudaSuccess) {
            cudaGetLastError();
            size_t free_bytes = 0, total = 0;
            cudaMemGetInfo(&free_bytes, &total);
            lm_fail(LM_ERR_MEMORY,
                    "CUDA out of memory allocating %.1f MiB (Lumen holds %.1f MiB; the device has "
                    "%.1f of %.1f MiB free)",
                    size / 1048576.0, stats.live_bytes / 1048576.0, free_bytes / 1048576.0,
                    total / 1048576.0);
            return NULL;
        }
    }
    stats.live_bytes += size;
    if (stats.live_bytes > stats.peak_bytes) stats.peak_bytes = stats.live_bytes;
    if (capture_pool) pool_of[p] = capture_pool;
    return p;
}

extern "C" void lm_cuda_free(void *ptr, size_t bytes) {
    if (!ptr) return;
    size_t size = round_size(bytes);
    stats.live_bytes -= size;
    stats.cached_bytes += size;
    /* a live graph's block goes back to its pool; a block freed during a
     * capture joins the capture's pool, wherever it came from (the graph
     * may read it at replay) */
    auto owner = pool_of.find(ptr);
    if (owner != pool_of.end()) {
        auto pool = pools.find(owner->second);
        if (pool != pools.end()) {
            pool->second[size].push_back(ptr);
            return;
        }
        pool_of.erase(owner); /* its graph is gone */
    }
    if (capture_pool) {
        pool_of[ptr] = capture_pool;
        pools[capture_pool][size].push_back(ptr);
        return;
    }
    cached_blocks[size].push_back(ptr);
}

extern "C" int lm_cuda_pool_begin(void) {
    capture_pool = ++last_pool;
    pools[capture_pool];
    return capture_pool;
}

extern "C" void lm_cuda_pool_end(void) {
    capture_pool = 0;
}

// The graph is gone: its free blocks go to the cache, and its blocks still
// held go there when freed.
extern "C" void lm_cuda_pool_release(int pool) {
    auto found = pools.find(pool);
    if (found == pools.end()) return;
    for (auto &list : found->second)
        for (void *p : list.second) {
            pool_of.erase(p);
            cached_blocks[list.first].push_back(p);
        }
    pools.erase(found);
}

extern "C" void lm_cuda_empty_cache(void) {
    if (capture_pool) return; /* it would wait for the device: not inside a capture */
    cudaDeviceSynchronize();
    release_cache();
}

extern "C" lm_memory_stats lm_cuda_memory_stats(void) {
    return stats;
}

// ---- host <-> device copies (contiguous tensors) ---------------------------------------------

// Uploads go through two pinned staging buffers: the host copies into one
// and queues an asynchronous transfer, so it can go on queueing kernels
// instead of waiting for the device to drain (what a pageable cudaMemcpy
// does). A buffer is reused only after its last transfer's event.
namespace {
struct Staging {
    void *host;
    size_t bytes;
    cudaEvent_t done;
    bool pending;
};
Staging staging[2];
int next_staging;
} // namespace

// Pinned buffers stay at most this large: a bigger upload streams through both
// in turn (the copy into one overlapping the other's transfer), so moving a
// large data set pins 64 MiB, not its size.
static const size_t STAGING_CHUNK = (size_t)32 << 20;

// The next staging buffer, free and at least `bytes` large; NULL when pinned
// memory cannot be had (a sandbox's limit), which the caller survives.
static Staging *free_staging(size_t bytes, lm_status *status) {
    Staging &st = staging[next_staging];
    next_staging ^= 1;
    *status = LM_OK;
    cudaError_t err =
        st.done ? cudaSuccess : cudaEventCreateWithFlags(&st.done, cudaEventDisableTiming);
    if (err != cudaSuccess) {
        *status = lm_cuda_fail(err, "upload event");
        return NULL;
    }
    if (st.pending && (err = cudaEventSynchronize(st.done)) != cudaSuccess) {
        *status = lm_cuda_fail(err, "upload (waiting for staging)");
        return NULL;
    }
    st.pending = false;
    if (st.bytes < bytes) {
        if (st.host) cudaFreeHost(st.host);
        st.host = NULL;
        st.bytes = 0;
        if (cudaHostAlloc(&st.host, bytes, cudaHostAllocDefault) != cudaSuccess) {
            cudaGetLastError(); /* not sticky: the pageable copy below stands in */
            st.host = NULL;
            return NULL;
        }
        st.bytes = bytes;
    }
    return &st;
}

lm_status lm_cuda_upload(lm_tensor *dst, const void *host) {
    size_t bytes = (size_t)lm_tensor_numel(dst) * 4;
    if (!bytes) return LM_OK;
    if (cu_stream)
        return lm_fail(LM_ERR_STATE,
                       "host data sent to the GPU inside a CUDA graph capture (a replay would "
                       "send the same bytes again): make the tensor on the device before "
                       "capturing, and copy_ new values into it before each replay");
    char *to = (char *)cu_f32(dst);
    const char *from = (const char *)host;
    for (size_t done = 0; done < bytes;) {
        size_t part = bytes - done < STAGING_CHUNK ? bytes - done : STAGING_CHUNK;
        lm_status status;
        Staging *st = free_staging(part, &status);
        LM_TRY(status);
        if (!st) { /* no pinned memory: a synchronous copy from the caller's memory */
            CU_TRY(cudaMemcpy(to + done, from + done, bytes - done, cudaMemcpyHostToDevice),
                   "upload to the GPU");
            return LM_OK;
        }
        memcpy(st->host, from + done, part);
        CU_TRY(cudaMemcpyAsync(to + done, st->host, part, cudaMemcpyHostToDevice, cu_stream),
               "upload to the GPU");
        CU_TRY(cudaEventRecord(st->done, cu_stream), "upload event");
        st->pending = true;
        done += part;
    }
    return LM_OK;
}

lm_status lm_cuda_download(void *host, const lm_tensor *src) {
    size_t bytes = (size_t)lm_tensor_numel(src) * 4;
    if (cu_stream)
        return lm_fail(LM_ERR_STATE,
                       "a GPU tensor read by the host inside a CUDA graph capture (item, "
                       "totable, to('cpu'), printing): nothing has run yet while capturing; "
                       "read it after a replay");
    CU_TRY(cudaMemcpy(host, cu_f32(src), bytes, cudaMemcpyDeviceToHost), "download from the GPU");
    return LM_OK;
}
