// CUDA kernels of gather, scatter_add and cumsum along one dimension, with
// the CPU's semantics (core/cpu_index.c): one thread per index element for
// gather and scatter_add (atomic adds: duplicates accumulate in any order),
// cumsum in double as the CPU: one thread per line summing in order for short
// lines, one block per line scanning its chunks' totals for long ones.
#include "cuda_backend.h"

extern "C" {
#include "lm_index_walk.h"
}

namespace {

// float32 and int32 alike: a gather copies 4-byte words
__global__ void gather_kernel(uint32_t *out, const uint32_t *x, const int32_t *idx,
                              lm_index_geometry geo, int64_t n) {
    CU_GRID_LOOP(i, n) out[i] = x[lm_index_offset(&geo, i, idx[i])];
}

__global__ void scatter_add_kernel(float *out, const int32_t *idx, const float *src,
                                   lm_index_geometry geo, int64_t n) {
    CU_GRID_LOOP(i, n) atomicAdd(out + lm_index_offset(&geo, i, idx[i]), src[i]);
}

// line l of [outer, n, inner] starts at (l / inner) n inner + l % inner
template <typename T, typename Acc>
__global__ void cumsum_kernel(T *out, const T *x, int64_t lines, int64_t n, int64_t inner,
                              bool reverse) {
    CU_GRID_LOOP(l, lines) {
        int64_t i = (l / inner) * n * inner + l % inner, step = reverse ? -inner : inner;
        if (reverse) i += (n - 1) * inner;
        Acc acc = 0;
        for (int64_t k = 0; k < n; k++, i += step) out[i] = (T)(acc += (Acc)x[i]);
    }
}

// A long line by one block: each thread sums a chunk in order, the block
// scans the chunks' totals, then each thread writes its chunk's prefixes.
// Every thread reaches every barrier (lines loop per block, not per thread).
static const int SCAN_THREADS = 256;

template <typename T, typename Acc>
__global__ void cumsum_block_kernel(T *out, const T *x, int64_t lines, int64_t n, int64_t inner,
                                    bool reverse) {
    __shared__ Acc totals[SCAN_THREADS];
    int tid = threadIdx.x;
    int64_t chunk = (n + SCAN_THREADS - 1) / SCAN_THREADS;
    int64_t k0 = tid * chunk < n ? tid * chunk : n, k1 = k0 + chunk < n ? k0 + chunk : n;
    for (int64_t l = blockIdx.x; l < lines; l += gridDim.x) {
        int64_t first = (l / inner) * n * inner + l % inner, step = reverse ? -inner : inner;
        if (reverse) first += (n - 1) * inner;
        Acc acc = 0;
        for (int64_t k = k0; k < k1; k++) acc += (Acc)x[first + k * step];
        totals[tid] = acc;
        __syncthreads();
        for (int d = 1; d < SCAN_THREADS; d *= 2) { // inclusive scan of the totals
            Acc before = tid >= d ? totals[tid - d] : (Acc)0;
            __syncthreads();
            totals[tid] += before;
            __syncthreads();
        }
        acc = tid ? totals[tid - 1] : (Acc)0;
        for (int64_t k = k0; k < k1; k++)
            out[first + k * step] = (T)(acc += (Acc)x[first + k * step]);
        __syncthreads(); // totals are rewritten by the next line
    }
}

template <typename T, typename Acc>
void launch_cumsum(T *out, const T *x, int64_t lines, int64_t n, int64_t inner, bool reverse) {
    if (n >= SCAN_THREADS)
        cu_launch(cu_blocks(lines * SCAN_THREADS, SCAN_THREADS), SCAN_THREADS,
                  cumsum_block_kernel<T, Acc>, out, x, lines, n, inner, reverse);
    else
        cu_launch(cu_blocks(lines), CU_THREADS, cumsum_kernel<T, Acc>, out, x, lines, n, inner,
                  reverse);
}

} // namespace

lm_status lm_cuda_gather(lm_tensor *out, const lm_tensor *x, const lm_tensor *idx, int dim) {
    int64_t n = lm_tensor_numel(out);
    if (!n) return LM_OK;
    cu_launch(cu_blocks(n), CU_THREADS, gather_kernel, (uint32_t *)cu_f32(out),
              (const uint32_t *)cu_f32(x), cu_i32(idx), lm_index_geometry_of(idx, x, dim), n);
    CU_LAUNCHED("gather");
    return LM_OK;
}

lm_status lm_cuda_scatter_add(lm_tensor *out, const lm_tensor *idx, const lm_tensor *src, int dim) {
    int64_t n = lm_tensor_numel(idx);
    if (!n) return LM_OK;
    cu_launch(cu_blocks(n), CU_THREADS, scatter_add_kernel, cu_f32(out), cu_i32(idx), cu_f32(src),
              lm_index_geometry_of(idx, out, dim), n);
    CU_LAUNCHED("scatter_add");
    return LM_OK;
}

lm_status lm_cuda_cumsum(lm_tensor *out, const lm_tensor *x, int dim, bool reverse) {
    int64_t numel = lm_tensor_numel(x), n = x->shape[dim], inner = 1;
    if (!numel) return LM_OK;
    for (int d = dim + 1; d < x->ndim; d++) inner *= x->shape[d];
    int64_t lines = numel / n;
    if (x->dtype == LM_INT32) // wraps, as the CPU's int32 cumsum (torch returns int64)
        launch_cumsum<uint32_t, uint32_t>((uint32_t *)cu_i32(out), (const uint32_t *)cu_i32(x),
                                          lines, n, inner, reverse);
    else
        launch_cumsum<float, double>(cu_f32(out), cu_f32(x), lines, n, inner, reverse);
    CU_LAUNCHED("cumsum");
    return LM_OK;
}
