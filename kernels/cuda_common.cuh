// Shared by the CUDA backend's translation units: status checks, launch
// geometry and strided offsets. Every CUDA status becomes an lm_status with a
// message naming the call; nothing here exits or prints.
#pragma once

#ifdef LM_CUDA_EMULATED /* the kernels as C++ on the CPU, for tests (tests/c/cuda_emulator.h) */
#include "cuda_emulator.h"
#else
#include <cuda_runtime.h>
#endif
#include <stdint.h>

extern "C" {
#include "lm_backend.h"
#include "lm_error.h"
#include "lm_iter.h" /* the host-side dimension merging is device independent */
#include "lm_philox.h"
}

lm_status lm_cuda_fail(cudaError_t err, const char *what);

#define CU_TRY(call, what)                                                                         \
    do {                                                                                           \
        cudaError_t cu_err_ = (call);                                                              \
        if (cu_err_ != cudaSuccess) return lm_cuda_fail(cu_err_, what);                            \
    } while (0)

// After every launch: a bad configuration shows here, a fault at the next sync.
#define CU_LAUNCHED(what) CU_TRY(cudaGetLastError(), what)

static const int CU_THREADS = 256;

// Blocks for a grid-stride loop over n items (capped: the loop does the rest).
static inline unsigned cu_blocks(int64_t n, int threads = CU_THREADS) {
    int64_t b = (n + threads - 1) / threads;
    if (b < 1) b = 1;
    if (b > 65535LL * 8) b = 65535LL * 8;
    return (unsigned)b;
}

#define CU_GRID_LOOP(i, n)                                                                         \
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n);                      \
         i += (int64_t)gridDim.x * blockDim.x)

// The same a warp at a time: each warp takes items r, r + warps, ... (its
// lanes share the item; launch cu_blocks(n * 32) blocks).
#define CU_WARP_LOOP(r, n)                                                                         \
    for (int64_t r = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) >> 5; r < (n);               \
         r += ((int64_t)gridDim.x * blockDim.x) >> 5)

// The sum over a warp's 32 lanes, in every lane (a fixed butterfly order).
__device__ __forceinline__ double cu_warp_sum(double v) {
    for (int d = 16; d > 0; d >>= 1) v += __shfl_xor_sync(0xffffffffu, v, d);
    return v;
}

// The sums of a and of b over the block, in thread 0 (blockDim.x a multiple
// of 32, at most 1024; once a kernel: the shared slots are not reused).
__device__ __forceinline__ void cu_block_sums(double &a, double &b) {
    __shared__ double sa[32], sb[32];
    a = cu_warp_sum(a);
    b = cu_warp_sum(b);
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) sa[warp] = a, sb[warp] = b;
    __syncthreads();
    if (warp == 0) {
        int warps = blockDim.x >> 5;
        a = cu_warp_sum(lane < warps ? sa[lane] : 0.0);
        b = cu_warp_sum(lane < warps ? sb[lane] : 0.0);
    }
}

// Element offsets of flat index i for every operand of a merged iterator.
template <int NOPS>
__device__ __forceinline__ void cu_offsets(const lm_iter &it, int64_t i, int64_t *off) {
#pragma unroll
    for (int k = 0; k < NOPS; k++) off[k] = 0;
    for (int d = it.ndim - 1; d >= 0 && i; d--) {
        int64_t idx = i % it.shape[d];
        i /= it.shape[d];
#pragma unroll
        for (int k = 0; k < NOPS; k++) off[k] += idx * it.strides[k][d];
    }
}

// The same in 32-bit arithmetic, for iterations under 2^31 elements: 64-bit
// division is emulated on the GPU and costs several times more.
template <int NOPS>
__device__ __forceinline__ void cu_offsets32(const lm_iter &it, uint32_t i, int64_t *off) {
#pragma unroll
    for (int k = 0; k < NOPS; k++) off[k] = 0;
    for (int d = it.ndim - 1; d >= 0 && i; d--) {
        uint32_t size = (uint32_t)it.shape[d], idx = i % size;
        i /= size;
#pragma unroll
        for (int k = 0; k < NOPS; k++) off[k] += (int64_t)idx * it.strides[k][d];
    }
}

// True when every operand walks memory in the same order as the flat index.
static inline bool cu_iter_flat(const lm_iter &it) {
    if (it.ndim != 1) return false;
    for (int k = 0; k < it.nops; k++)
        if (it.strides[k][0] != 1) return false;
    return true;
}

static inline float *cu_f32(const lm_tensor *t) {
    return (float *)t->storage->data + t->offset;
}
static inline int32_t *cu_i32(const lm_tensor *t) {
    return (int32_t *)t->storage->data + t->offset;
}

// Typed element access for the mixed-dtype (slow, exact) paths.
struct cu_ref {
    void *base;
    int is_int;
};
static inline cu_ref cu_ref_of(const lm_tensor *t) {
    return cu_ref{(void *)((char *)t->storage->data + t->offset * 4), t->dtype == LM_INT32};
}
__device__ __forceinline__ double cu_load(cu_ref r, int64_t off) {
    return r.is_int ? (double)((const int32_t *)r.base)[off] : (double)((const float *)r.base)[off];
}
__device__ __forceinline__ void cu_store(cu_ref r, int64_t off, double v) {
    if (r.is_int) {
        v = v != v ? 0 : v > 2147483647.0 ? 2147483647.0 : v < -2147483648.0 ? -2147483648.0 : v;
        ((int32_t *)r.base)[off] = (int32_t)v;
    } else {
        ((float *)r.base)[off] = (float)v;
    }
}

// The stream all work goes to: the legacy default stream (0), or while a
// CUDA graph is captured (cuda_graph.cu) the stream being captured.
inline cudaStream_t cu_stream = 0;

// A place in the random stream as a kernel reads it: Philox blocks from
// `offset` under `seed`, or inside a captured graph from `offset` past the
// {seed, base} that each replay writes to device memory first
// (cuda_graph.cu), so that every replay draws on as an uncaptured step would.
struct cu_rng {
    uint64_t seed, offset;
    const uint64_t *live; /* {seed, base} on the device while captured, else NULL */
};
__device__ __forceinline__ lm_philox_block cu_philox(const cu_rng &r, uint64_t block) {
    if (r.live) return lm_philox4x32(r.live[1] + r.offset + block, r.live[0]);
    return lm_philox4x32(r.offset + block, r.seed);
}
// The random state at the start of the capture under way (live NULL: none).
struct cu_capture_rng {
    const uint64_t *live;
    uint64_t seed, offset;
};
inline cu_capture_rng cu_capture = {NULL, 0, 0};
static inline lm_status cu_rng_at(uint64_t seed, uint64_t offset, cu_rng *r) {
    *r = cu_rng{seed, offset, NULL};
    if (!cu_capture.live) return LM_OK;
    if (seed != cu_capture.seed || offset < cu_capture.offset)
        return lm_fail(LM_ERR_STATE, "random numbers inside a CUDA graph capture from a stream "
                                     "reseeded during it (lm.manual_seed): seed before capturing");
    *r = cu_rng{seed, offset - cu_capture.offset, cu_capture.live};
    return LM_OK;
}

// kernel<<<grid, block, 0, cu_stream>>>(args...), or in the tests' CPU emulation each
// block of the grid in turn, its threads as fibers (cuda_emulator.h). The
// arguments convert to the kernel's parameter types, as in a launch (a
// NULL becomes the parameter's pointer type).
template <typename T> struct cu_as { typedef T type; };
template <typename... P>
static inline void cu_launch(dim3 grid, dim3 block, void (*kernel)(P...),
                             typename cu_as<P>::type... args) {
#ifdef LM_CUDA_EMULATED
    cu_emulate(grid, block, cu_stream, [=] { kernel(args...); });
#else
    kernel<<<grid, block, 0, cu_stream>>>(args...);
#endif
}

// The cuBLAS handle and the functions loaded from it live in cuda_backend.cu
// (in the tests' emulation, cuda_emulator_blas.h: OpenBLAS stands in).
#ifdef LM_CUDA_EMULATED
#include "cuda_emulator_blas.h"
#else
#include <cublas_v2.h>
#endif
struct cu_blas_api {
    cublasStatus_t (*create)(cublasHandle_t *);
    cublasStatus_t (*set_math_mode)(cublasHandle_t, cublasMath_t);
    cublasStatus_t (*set_stream)(cublasHandle_t, cudaStream_t);
    cublasStatus_t (*sgemm)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int,
                            const float *, const float *, int, const float *, int, const float *,
                            float *, int);
    cublasStatus_t (*sgemm_strided_batched)(cublasHandle_t, cublasOperation_t, cublasOperation_t,
                                            int, int, int, const float *, const float *, int,
                                            long long, const float *, int, long long, const float *,
                                            float *, int, long long, int);
    const char *(*status_string)(cublasStatus_t);
    /* products under autocast: float32 storage, bfloat16 tensor-core math */
    cublasStatus_t (*gemm_ex)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int,
                              const void *, const void *, cudaDataType, int, const void *,
                              cudaDataType, int, const void *, void *, cudaDataType, int,
                              cublasComputeType_t, cublasGemmAlgo_t);
    cublasStatus_t (*gemm_strided_batched_ex)(cublasHandle_t, cublasOperation_t, cublasOperation_t,
                                              int, int, int, const void *, const void *,
                                              cudaDataType, int, long long, const void *,
                                              cudaDataType, int, long long, const void *, void *,
                                              cudaDataType, int, long long, int,
                                              cublasComputeType_t, cublasGemmAlgo_t);
};
#if !defined(LM_CUDA_EMULATED) || defined(LM_CUDA_EMULATED_BACKEND)
cublasContext *lm_cuda_blas(void);
const cu_blas_api *lm_cuda_blas_fns(void);
#endif
#ifdef LM_CUDA_EMULATED /* cuBLAS's functions as the emulator has them */
inline const cu_blas_api *cu_emu_blas_fns(void) {
    static const cu_blas_api api = {
        cu_emu_blas_create, cu_emu_blas_set_math_mode,     cu_emu_blas_set_stream,
        cu_emu_sgemm,       cu_emu_sgemm_strided_batched,  cu_emu_blas_status,
        cu_emu_gemm_ex,     cu_emu_gemm_strided_batched_ex};
    return &api;
}
#endif
#if defined(LM_CUDA_EMULATED) && !defined(LM_CUDA_EMULATED_BACKEND) /* a kernel file's test */
inline cublasContext *lm_cuda_blas(void) {
    return cu_emu_blas_handle();
}
inline const cu_blas_api *lm_cuda_blas_fns(void) {
    return cu_emu_blas_fns();
}
#endif
