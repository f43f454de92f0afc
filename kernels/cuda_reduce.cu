// CUDA reductions over one dimension or over everything, with the CPU's
// semantics (core/cpu_reduce.c): sums in double, NaN wins max/min, ties keep
// the first index, VAR is unbiased and computed from deviations.
#include <math.h>

#include "cuda_backend.h"

namespace {

struct Partial {
    double sum, best;
    long long index; /* -1: empty */
};

__device__ __forceinline__ bool is_extreme(int op) {
    return op == LM_MAX || op == LM_MIN || op == LM_ARGMAX || op == LM_ARGMIN;
}
__device__ __forceinline__ bool is_max(int op) {
    return op == LM_MAX || op == LM_ARGMAX;
}

__device__ __forceinline__ void fold(int op, Partial &p, double v, long long pos, double center) {
    if (!is_extreme(op)) {
        p.sum += op == LM_VAR ? (v - center) * (v - center) : v;
        return;
    }
    if (p.index >= 0 && p.best != p.best) return; /* NaN already wins */
    if (p.index < 0 || v != v || (is_max(op) ? v > p.best : v < p.best)) {
        p.best = v;
        p.index = pos;
    }
}

// Order-independent merge: NaN first, then the better value, ties to the lower index.
__device__ __forceinline__ Partial merge(int op, Partial a, Partial b) {
    if (!is_extreme(op)) {
        a.sum += b.sum;
        return a;
    }
    if (b.index < 0) return a;
    if (a.index < 0) return b;
    bool an = a.best != a.best, bn = b.best != b.best;
    if (an != bn) return an ? a : b;
    if (!an && a.best != b.best) return (is_max(op) ? a.best > b.best : a.best < b.best) ? a : b;
    return a.index <= b.index ? a : b;
}

__device__ __forceinline__ Partial shfl_down(Partial p, int delta) {
    Partial q;
    q.sum = __shfl_down_sync(0xffffffffu, p.sum, delta);
    q.best = __shfl_down_sync(0xffffffffu, p.best, delta);
    q.index = __shfl_down_sync(0xffffffffu, p.index, delta);
    return q;
}

__device__ __forceinline__ Partial warp_merge(int op, Partial p) {
    for (int d = 16; d > 0; d >>= 1) p = merge(op, p, shfl_down(p, d));
    return p;
}

__device__ __forceinline__ void write_result(int op, cu_ref out, int64_t oo, int32_t *indices,
                                             int64_t io, Partial p, int64_t n) {
    switch (op) {
    case LM_SUM:
        cu_store(out, oo, p.sum);
        break;
    case LM_MEAN:
        cu_store(out, oo, n ? p.sum / n : NAN);
        break;
    case LM_VAR:
        cu_store(out, oo, n > 1 ? p.sum / (n - 1) : NAN);
        break;
    case LM_ARGMAX:
    case LM_ARGMIN:
        cu_store(out, oo, (double)p.index);
        break;
    default:
        cu_store(out, oo, p.best);
        if (indices) indices[io] = (int32_t)p.index;
    }
}

// ---- over one dimension: each output folds a line of `len` elements at `stride` ----

struct Lines {
    lm_iter it; /* over (out, x without dim, indices or out) */
    cu_ref out, x;
    int32_t *indices;
    int64_t len, stride;
    int op;
};

__device__ Partial fold_line(const Lines &L, int64_t base, int first, int step, double center,
                             int op) {
    Partial p = {0, 0, -1};
    for (int64_t i = first; i < L.len; i += step)
        fold(op, p, cu_load(L.x, base + i * L.stride), i, center);
    return p;
}

__global__ void lines_by_thread(Lines L, int64_t n_out) {
    CU_GRID_LOOP(j, n_out) {
        int64_t off[3];
        cu_offsets<3>(L.it, j, off);
        double center = 0;
        if (L.op == LM_VAR) center = L.len ? fold_line(L, off[1], 0, 1, 0, LM_SUM).sum / L.len : 0;
        Partial p = fold_line(L, off[1], 0, 1, center, L.op);
        write_result(L.op, L.out, off[0], L.indices, off[2], p, L.len);
    }
}

__global__ void lines_by_warp(Lines L, int64_t n_out) {
    int lane = threadIdx.x & 31;
    CU_WARP_LOOP(j, n_out) {
        int64_t off[3];
        cu_offsets<3>(L.it, j, off);
        double center = 0;
        if (L.op == LM_VAR) {
            Partial s = warp_merge(LM_SUM, fold_line(L, off[1], lane, 32, 0, LM_SUM));
            center = __shfl_sync(0xffffffffu, s.sum, 0) / (double)(L.len ? L.len : 1);
        }
        Partial p = warp_merge(L.op, fold_line(L, off[1], lane, 32, center, L.op));
        if (lane == 0) write_result(L.op, L.out, off[0], L.indices, off[2], p, L.len);
    }
}

// ---- over everything: partials per block, then one block merges them ----

const int ALL_BLOCKS = 512;

__global__ void all_partials(lm_iter it, cu_ref x, int op, const Partial *mean_of, int64_t n,
                             Partial *parts) {
    __shared__ Partial warp_parts[CU_THREADS / 32];
    double center = mean_of ? mean_of->sum / (double)(n ? n : 1) : 0;
    Partial p = {0, 0, -1};
    CU_GRID_LOOP(i, n) {
        int64_t off[1];
        cu_offsets<1>(it, i, off);
        fold(op, p, cu_load(x, off[0]), i, center);
    }
    p = warp_merge(op, p);
    if ((threadIdx.x & 31) == 0) warp_parts[threadIdx.x >> 5] = p;
    __syncthreads();
    if (threadIdx.x < 32) {
        Partial q = threadIdx.x < blockDim.x / 32 ? warp_parts[threadIdx.x] : Partial{0, 0, -1};
        q = warp_merge(op, q);
        if (threadIdx.x == 0) parts[blockIdx.x] = q;
    }
}

// One warp merges the block partials into parts[0], and writes the result if asked.
__global__ void all_finish(Partial *parts, int count, int op, cu_ref out, int32_t *indices,
                           int64_t n, bool write) {
    Partial p = {0, 0, -1};
    for (int k = threadIdx.x; k < count; k += 32) p = merge(op, p, parts[k]);
    p = warp_merge(op, p);
    if (threadIdx.x == 0) {
        parts[0] = p;
        if (write) write_result(op, out, 0, indices, 0, p, n);
    }
}

lm_status reduce_all(lm_reduce_op op, lm_tensor *out, lm_tensor *indices, const lm_tensor *x) {
    const lm_tensor *ops[1] = {x};
    lm_iter it;
    lm_iter_init(&it, 1, ops);
    int64_t n = it.numel;
    int blocks = (int)cu_blocks(n);
    if (blocks > ALL_BLOCKS) blocks = ALL_BLOCKS;
    size_t bytes = sizeof(Partial) * (ALL_BLOCKS + 1);
    Partial *parts = (Partial *)lm_cuda_alloc(bytes);
    if (!parts) return LM_ERR_MEMORY;
    Partial *mean = parts + ALL_BLOCKS; /* VAR: the sum, kept apart from the partials */
    int32_t *idx = indices ? cu_i32(indices) : NULL;
    lm_status s = LM_OK;
    if (op == LM_VAR) {
        cu_launch(blocks, CU_THREADS, all_partials, it, cu_ref_of(x), LM_SUM, NULL, n, parts);
        cu_launch(1, 32, all_finish, parts, blocks, LM_SUM, cu_ref_of(out), NULL, n, false);
        cudaMemcpyAsync(mean, parts, sizeof(Partial), cudaMemcpyDeviceToDevice, cu_stream);
    }
    cu_launch(blocks, CU_THREADS, all_partials, it, cu_ref_of(x), op, op == LM_VAR ? mean : NULL, n,
              parts);
    cu_launch(1, 32, all_finish, parts, blocks, op, cu_ref_of(out), idx, n, true);
    cudaError_t err = cudaGetLastError();
    if (err != cudaSuccess) s = lm_cuda_fail(err, "reduction");
    lm_cuda_free(parts, bytes);
    return s;
}

} // namespace

lm_status lm_cuda_reduce(lm_reduce_op op, lm_tensor *out, lm_tensor *indices, const lm_tensor *x,
                         int dim) {
    if (dim < 0) return reduce_all(op, out, indices, x);
    lm_tensor xs = *x; /* x without the reduced dimension: out's shape */
    for (int d = dim; d < x->ndim - 1; d++) {
        xs.shape[d] = x->shape[d + 1];
        xs.strides[d] = x->strides[d + 1];
    }
    xs.ndim = x->ndim - 1;
    Lines L;
    const lm_tensor *ops[3] = {out, &xs, indices ? indices : out};
    lm_iter_init(&L.it, 3, ops);
    L.out = cu_ref_of(out);
    L.x = cu_ref_of(x);
    L.indices = indices ? cu_i32(indices) : NULL;
    L.len = x->shape[dim];
    L.stride = x->strides[dim];
    L.op = op;
    int64_t n_out = L.it.numel;
    if (n_out == 0) return LM_OK;
    // Unit-stride lines: a warp reads each one coalesced. Strided lines with
    // many outputs: neighbouring threads read neighbouring outputs.
    if (L.stride != 1 && (n_out >= 256 || L.len < 32))
        cu_launch(cu_blocks(n_out), CU_THREADS, lines_by_thread, L, n_out);
    else
        cu_launch(cu_blocks(n_out * 32), CU_THREADS, lines_by_warp, L, n_out);
    CU_LAUNCHED("reduction");
    return LM_OK;
}
