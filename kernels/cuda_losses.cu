// The fused losses on the GPU, as the CPU's (core/cpu_mmd.c, core/cpu_nn.c):
// the multi-scale MMD of two sample sets over all pairs with its gradients,
// where its composition took some eighty small kernels a step (five
// bandwidths over three distance matrices, forward and backward), and the
// squared error by row in one pass instead of three.
#include "cuda_backend.h"

extern "C" {
#include "lm_nn.h" /* LM_MMD_MAX_BANDWIDTHS */
}

namespace {

// ---- MMD -----------------------------------------------------------------

// The rows of z [n, d] and then of p [m, d]: row r of the union, and the
// bounds of its own set in the union.
struct MmdSets {
    const float *z, *p;
    int64_t n, m, d;
    float scales[LM_MMD_MAX_BANDWIDTHS]; /* -1 / (bandwidth d) */
    int nscales;
};

__device__ __forceinline__ const float *union_row(const MmdSets &s, int64_t r) {
    return r < s.n ? s.z + r * s.d : s.p + (r - s.n) * s.d;
}

// Block r: row r against every row c of the union. The sum of the kernel
// k(r, c) = sum_b exp(scale_b |r - c|^2) over r's own set (same[r]) and
// over the other (cross[r]), and dk(r, c) = sum_b scale_b exp(...) into
// dk [R, R] for the gradients.
__global__ void mmd_pairs(MmdSets s, double *same, double *cross, float *dk) {
    int64_t R = s.n + s.m, r = blockIdx.x;
    const float *x = union_row(s, r);
    bool in_z = r < s.n;
    double own_sum = 0, other_sum = 0;
    for (int64_t c = threadIdx.x; c < R; c += blockDim.x) {
        const float *y = union_row(s, c);
        float dist = 0;
        for (int64_t q = 0; q < s.d; q++) {
            float diff = x[q] - y[q];
            dist += diff * diff;
        }
        float k = 0, dkv = 0;
        for (int b = 0; b < s.nscales; b++) {
            float e = expf(s.scales[b] * dist);
            k += e;
            dkv += s.scales[b] * e;
        }
        dk[r * R + c] = dkv;
        if ((c < s.n) == in_z)
            own_sum += k;
        else
            other_sum += k;
    }
    cu_block_sums(own_sum, other_sum);
    if (threadIdx.x == 0) same[r] = own_sum, cross[r] = other_sum;
}

// Thread (r, q): the gradient of the value with respect to coordinate q of
// row r, from sum_c dk(r, c) (x_q - c_q) over r's own set (counted twice:
// x is a row and a column of its kernel matrix, 2 * 2 / own^2) and over
// the other (-2 mean k(z, p): 2 * 2 / (n m)).
__global__ void mmd_grads(MmdSets s, const float *dk, float *gz, float *gp) {
    int64_t R = s.n + s.m;
    CU_GRID_LOOP(t, R * s.d) {
        int64_t r = t / s.d, q = t % s.d;
        bool in_z = r < s.n;
        float *grad = in_z ? gz : gp;
        if (!grad) continue;
        float xq = union_row(s, r)[q];
        double g_same = 0, g_cross = 0;
        for (int64_t c = 0; c < R; c++) {
            double term = (double)dk[r * R + c] * (double)(xq - union_row(s, c)[q]);
            if ((c < s.n) == in_z)
                g_same += term;
            else
                g_cross += term;
        }
        double own = in_z ? (double)s.n : (double)s.m;
        double a = 4 / (own * own), b = 4 / ((double)s.n * (double)s.m);
        int64_t i = in_z ? r : r - s.n;
        grad[i * s.d + q] = (float)(a * g_same - b * g_cross);
    }
}

// One warp: the value, mean k(z, z') + mean k(p, p') - 2 mean k(z, p), the
// cross sums taken from z's rows.
__global__ void mmd_value(const MmdSets s, const double *same, const double *cross, float *value) {
    double zz = 0, zp = 0, pp = 0;
    for (int64_t r = threadIdx.x; r < s.n + s.m; r += 32) {
        if (r < s.n)
            zz += same[r], zp += cross[r];
        else
            pp += same[r];
    }
    zz = cu_warp_sum(zz), zp = cu_warp_sum(zp), pp = cu_warp_sum(pp);
    double n = (double)s.n, m = (double)s.m;
    if (threadIdx.x == 0) *value = (float)(zz / (n * n) + pp / (m * m) - 2 * zp / (n * m));
}

// ---- the squared error by row -----------------------------------------------

// One warp a row: diff = a - b, rows[r] = the sum of its squares (in double).
__global__ void sq_diff_rows_kernel(float *diff, float *rows, const float *a, const float *b,
                                    int64_t nrows, int64_t cols) {
    int lane = threadIdx.x & 31;
    CU_WARP_LOOP(r, nrows) {
        double acc = 0;
        for (int64_t c = lane; c < cols; c += 32) {
            float v = a[r * cols + c] - b[r * cols + c];
            diff[r * cols + c] = v;
            acc += (double)v * v;
        }
        acc = cu_warp_sum(acc);
        if (lane == 0) rows[r] = (float)acc;
    }
}

} // namespace

lm_status lm_cuda_mmd(lm_tensor *value, lm_tensor *gz, lm_tensor *gp, const lm_tensor *z,
                      const lm_tensor *p, const float *scales, int nscales) {
    MmdSets s;
    s.z = cu_f32(z), s.p = cu_f32(p);
    s.n = z->shape[0], s.m = p->shape[0], s.d = z->shape[1];
    s.nscales = nscales;
    for (int b = 0; b < nscales; b++) s.scales[b] = scales[b];
    int64_t R = s.n + s.m;
    /* same [R], cross [R], then dk [R, R] */
    size_t sums = sizeof(double) * (size_t)(2 * R), bytes = sums + sizeof(float) * (size_t)(R * R);
    void *ws = lm_cuda_alloc(bytes);
    if (!ws) return LM_ERR_MEMORY;
    double *same = (double *)ws, *cross = same + R;
    float *dk = (float *)((char *)ws + sums);
    cu_launch((unsigned)R, 128, mmd_pairs, s, same, cross, dk);
    if (gz || gp)
        cu_launch(cu_blocks(R * s.d), CU_THREADS, mmd_grads, s, (const float *)dk,
                  gz ? cu_f32(gz) : NULL, gp ? cu_f32(gp) : NULL);
    cu_launch(1, 32, mmd_value, s, (const double *)same, (const double *)cross, cu_f32(value));
    cudaError_t err = cudaGetLastError();
    lm_cuda_free(ws, bytes); /* the stream orders its reuse after these kernels */
    return err == cudaSuccess ? LM_OK : lm_cuda_fail(err, "mmd");
}

lm_status lm_cuda_sq_diff_rows(lm_tensor *diff, lm_tensor *rows, const lm_tensor *a,
                               const lm_tensor *b) {
    int64_t n = rows->shape[0], cols = n ? lm_tensor_numel(a) / n : 0;
    if (n == 0) return LM_OK;
    cu_launch(cu_blocks(n * 32), CU_THREADS, sq_diff_rows_kernel, cu_f32(diff), cu_f32(rows),
              cu_f32(a), cu_f32(b), n, cols);
    CU_LAUNCHED("squared error by row");
    return LM_OK;
}
