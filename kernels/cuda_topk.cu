// CUDA top-k of each row of a 2-D tensor, with the CPU's result bit for bit
// (core/cpu_nn.c: ranked by value, ties in column order, NaN after every
// number in column order). A small k over many rows keeps one thread per row
// inserting into its k best (lm_topk_row); a large k, or rows too few to fill
// the device, sorts every row's column numbers by merge passes instead, where
// each element finds its place in the merged run by a binary search in the
// other run: O(cols log^2 cols) spread over all elements, stable, with no
// shared memory and no atomics.
#include "cuda_backend.h"

extern "C" {
#include "lm_scalar_ops.h"
}

namespace {

__global__ void topk_insertion_kernel(float *values, int32_t *indices, const float *x, int64_t rows,
                                      int64_t cols, int64_t k, bool largest) {
    CU_GRID_LOOP(r, rows)
    lm_topk_row(x + r * cols, cols, k, largest, values + r * k, indices + r * k);
}

// Whether a ranks strictly before b: by value (largest or smallest first),
// NaN after every number; equal values do not, so the merge keeps them in
// column order.
__device__ __forceinline__ bool ranks_before(float a, float b, bool largest) {
    if (a != a) return false;
    if (b != b) return true;
    return largest ? a > b : a < b;
}

__global__ void column_numbers_kernel(int32_t *order, int64_t rows, int64_t cols) {
    CU_GRID_LOOP(e, rows * cols) order[e] = (int32_t)(e % cols);
}

// One merge pass: runs of `width` sorted column numbers, merged in pairs.
__global__ void merge_pass_kernel(int32_t *dst, const int32_t *src, const float *x, int64_t rows,
                                  int64_t cols, int64_t width, bool largest) {
    CU_GRID_LOOP(e, rows * cols) {
        int64_t r = e / cols, c = e % cols;
        const float *row = x + r * cols;
        const int32_t *from = src + r * cols;
        int64_t left = c / (2 * width) * (2 * width);
        int64_t right = left + width < cols ? left + width : cols;
        int64_t end = right + width < cols ? right + width : cols;
        float v = row[from[c]];
        bool in_left = c < right;
        // the other run's elements that go before this one: for the left run
        // those ranking strictly before it, for the right run those not after
        int64_t lo = in_left ? right : left, hi = in_left ? end : right;
        while (lo < hi) {
            int64_t mid = lo + (hi - lo) / 2;
            float w = row[from[mid]];
            bool before = in_left ? ranks_before(w, v, largest) : !ranks_before(v, w, largest);
            if (before)
                lo = mid + 1;
            else
                hi = mid;
        }
        int64_t place = in_left ? c + (lo - right) : left + (c - right) + (lo - left);
        dst[r * cols + place] = from[c];
    }
}

__global__ void take_first_kernel(float *values, int32_t *indices, const float *x,
                                  const int32_t *order, int64_t rows, int64_t cols, int64_t k) {
    CU_GRID_LOOP(e, rows * k) {
        int64_t r = e / k, t = e % k;
        int32_t c = order[r * cols + t];
        indices[e] = c;
        values[e] = x[r * cols + c];
    }
}

lm_status topk_by_sorting(float *values, int32_t *indices, const float *x, int64_t rows,
                          int64_t cols, int64_t k, bool largest) {
    size_t bytes = (size_t)(rows * cols) * sizeof(int32_t);
    int32_t *a = (int32_t *)lm_cuda_alloc(bytes);
    if (!a) return LM_ERR_MEMORY;
    int32_t *b = (int32_t *)lm_cuda_alloc(bytes);
    if (!b) {
        lm_cuda_free(a, bytes);
        return LM_ERR_MEMORY;
    }
    cu_launch(cu_blocks(rows * cols), CU_THREADS, column_numbers_kernel, a, rows, cols);
    for (int64_t width = 1; width < cols; width *= 2) {
        cu_launch(cu_blocks(rows * cols), CU_THREADS, merge_pass_kernel, b, (const int32_t *)a, x,
                  rows, cols, width, largest);
        int32_t *t = a;
        a = b, b = t;
    }
    cu_launch(cu_blocks(rows * k), CU_THREADS, take_first_kernel, values, indices, x,
              (const int32_t *)a, rows, cols, k);
    cudaError_t err = cudaGetLastError();
    lm_cuda_free(a, bytes); /* stream-ordered: the cache hands them out after these kernels */
    lm_cuda_free(b, bytes);
    return err == cudaSuccess ? LM_OK : lm_cuda_fail(err, "topk");
}

} // namespace

lm_status lm_cuda_topk(lm_tensor *values, lm_tensor *indices, const lm_tensor *x, int64_t k,
                       bool largest) {
    int64_t rows = x->shape[0], cols = x->shape[1];
    if (!rows || !k) return LM_OK;
    // the CPU's threshold for k; and a few long rows would leave the device idle
    if (k > 64 || (rows < 1024 && cols > 4096))
        return topk_by_sorting(cu_f32(values), cu_i32(indices), cu_f32(x), rows, cols, k, largest);
    cu_launch(cu_blocks(rows, 64), 64, topk_insertion_kernel, cu_f32(values), cu_i32(indices),
              cu_f32(x), rows, cols, k, largest);
    CU_LAUNCHED("topk");
    return LM_OK;
}
