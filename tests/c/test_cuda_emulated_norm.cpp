/* The CUDA normalisation kernels (kernels/cuda_norm.cu), compiled as C++
 * and run on the CPU by tests/c/cuda_emulator.h, against the CPU backend on
 * the same inputs: batch norm forward (channels split into several parts,
 * a large mean, the residual sum and ReLU) and backward, the per-channel
 * affine map, layer norm forward and backward. The same source runs on a
 * GPU (tests/gpu); this checks its indices and reductions where no GPU is
 * lent. The emulator itself is checked first: it must cover the grid
 * exactly once and report a barrier or shuffle that threads miss. */
#define LM_CUDA_EMULATED 1
#include "../../kernels/cuda_norm.cu"
#include "emulated_tensors.h"

extern "C" {
#include "lm_backend.h"
#include "lm_tensor.h"
#include "test.h"
}

namespace {

/* ---- the emulator ---- */

__global__ void write_index(int *seen, int n) {
    int64_t i = (int64_t)(blockIdx.y * gridDim.x + blockIdx.x) * blockDim.x + threadIdx.x;
    if (i < n) seen[i] += 1;
}

__global__ void block_sum_kernel(double *out, const double *v) {
    double a = v[blockIdx.x * blockDim.x + threadIdx.x], b = 0;
    cu_block_sums(a, b);
    if (threadIdx.x == 0) out[blockIdx.x] = a;
}

__global__ void divergent_shuffle(double *out) {
    if (threadIdx.x < 16) out[threadIdx.x] = cu_warp_sum(1.0);
}

__global__ void divergent_barrier(int *out) {
    if (threadIdx.x < 64) __syncthreads();
    out[threadIdx.x] = 1;
}

void test_emulator(void) {
    std::vector<int> seen(1000, 0);
    cu_launch(dim3(2, 2), dim3(256), write_index, seen.data(), 1000);
    bool once = true;
    for (int v : seen) once &= v == 1;
    CHECK(once);
    CHECK(cudaGetLastError() == cudaSuccess);

    std::vector<double> v(3 * 96), out(3, -1);
    for (size_t i = 0; i < v.size(); i++) v[i] = (double)i;
    cu_launch(dim3(3), dim3(96), block_sum_kernel, out.data(), (const double *)v.data());
    for (int b = 0; b < 3; b++) CHECK(out[b] == 96.0 * (96 * b) + 96.0 * 95 / 2);

    std::vector<double> o(32, 0);
    cu_launch(dim3(1), dim3(32), divergent_shuffle, o.data());
    CHECK(cudaGetLastError() != cudaSuccess);
    CHECK(strstr(cudaGetErrorString(cudaErrorLaunchFailure), "warp shuffle") != NULL);
    CHECK(cudaGetLastError() == cudaSuccess); /* read once, as CUDA's */
    std::vector<int> flags(128, 0);
    cu_launch(dim3(1), dim3(128), divergent_barrier, flags.data());
    CHECK(cudaGetLastError() != cudaSuccess);
    CHECK(strstr(cudaGetErrorString(cudaErrorLaunchFailure), "__syncthreads") != NULL);
}

/* ---- batch normalisation ---- */

struct BnCase {
    int64_t n, c, s;
    float scale, shift;
    bool affine, residual, relu;
};

void check_batch_norm(const BnCase &k) {
    int64_t shape[3] = {k.n, k.c, k.s}, cshape[1] = {k.c};
    lm_tensor *x = filled(3, shape, 7, k.scale, k.shift);
    lm_tensor *w = k.affine ? filled(1, cshape, 11, 1.0f, 1.0f) : NULL;
    lm_tensor *b = k.affine ? filled(1, cshape, 13, 0.5f, 0.0f) : NULL;
    lm_tensor *r = k.residual ? filled(3, shape, 17, 1.0f, 0.0f) : NULL;
    lm_tensor *y_cpu = tensor(3, shape), *y_gpu = tensor(3, shape);
    lm_tensor *m_cpu = tensor(1, cshape), *m_gpu = tensor(1, cshape);
    lm_tensor *v_cpu = tensor(1, cshape), *v_gpu = tensor(1, cshape);
    CHECK_OK(cpu()->batch_norm(y_cpu, m_cpu, v_cpu, x, w, b, 1e-5, r, k.relu));
    CHECK_OK(lm_cuda_batch_norm(y_gpu, m_gpu, v_gpu, x, w, b, 1e-5, r, k.relu));
    CHECK(rel_err(m_gpu, m_cpu) <= 1e-6);
    CHECK(rel_err(v_gpu, v_cpu) <= 1e-6);
    CHECK(rel_err(y_gpu, y_cpu) <= 1e-6);

    /* backward from the CPU's statistics, with and without the input's gradient */
    lm_tensor *g = filled(3, shape, 19, 1.0f, 0.1f);
    lm_tensor *gx_cpu = tensor(3, shape), *gx_gpu = tensor(3, shape);
    lm_tensor *gw_cpu = tensor(1, cshape), *gw_gpu = tensor(1, cshape);
    lm_tensor *gb_cpu = tensor(1, cshape), *gb_gpu = tensor(1, cshape);
    CHECK_OK(cpu()->batch_norm_backward(gx_cpu, gw_cpu, gb_cpu, g, x, m_cpu, v_cpu, w, 1e-5));
    CHECK_OK(lm_cuda_batch_norm_backward(gx_gpu, gw_gpu, gb_gpu, g, x, m_cpu, v_cpu, w, 1e-5));
    CHECK(rel_err(gx_gpu, gx_cpu) <= 1e-5);
    CHECK(rel_err(gw_gpu, gw_cpu) <= 1e-6);
    CHECK(rel_err(gb_gpu, gb_cpu) <= 1e-6);
    lm_tensor *gw_only = tensor(1, cshape);
    CHECK_OK(lm_cuda_batch_norm_backward(NULL, gw_only, NULL, g, x, m_cpu, v_cpu, w, 1e-5));
    CHECK(same_bits(gw_only, gw_gpu));
    if (rel_err(y_gpu, y_cpu) > 1e-6 || rel_err(gx_gpu, gx_cpu) > 1e-5)
        fprintf(stderr, "  batch norm [%lld, %lld, %lld]: y %.3g, gx %.3g\n", (long long)k.n,
                (long long)k.c, (long long)k.s, rel_err(y_gpu, y_cpu), rel_err(gx_gpu, gx_cpu));
    release({x, w, b, r, y_cpu, y_gpu, m_cpu, m_gpu, v_cpu, v_gpu, g, gx_cpu, gx_gpu, gw_cpu,
             gw_gpu, gb_cpu, gb_gpu, gw_only});
}

void test_batch_norm(void) {
    /* 5 parts of 1,844 values a channel, across images of 576 values */
    check_batch_norm({16, 3, 576, 0.5f, 20.0f, true, false, false});
    check_batch_norm({64, 300, 1, 1.0f, 0.0f, true, false, false}); /* BatchNorm1d: one part */
    check_batch_norm({5, 7, 33, 2.0f, -1.0f, true, true, true});    /* a residual block's tail */
    check_batch_norm({5, 7, 33, 2.0f, -1.0f, true, false, true});
    check_batch_norm({3, 2, 1000, 1.0f, 3.0f, false, true, false}); /* no affine */
}

void test_channel_affine(void) {
    int64_t shape[3] = {4, 5, 13}, cshape[1] = {5};
    lm_tensor *x = filled(3, shape, 23, 3.0f, 0.0f), *r = filled(3, shape, 29, 1.0f, 0.0f);
    lm_tensor_f32(x)[7] = NAN; /* passes the ReLU, as LM_RELU */
    lm_tensor *scale = filled(1, cshape, 31, 1.0f, 0.5f), *shift = filled(1, cshape, 37, 1.0f, 0);
    for (int variant = 0; variant < 4; variant++) {
        lm_tensor *res = variant & 1 ? r : NULL;
        bool relu = variant & 2;
        lm_tensor *a = tensor(3, shape), *b = tensor(3, shape);
        CHECK_OK(cpu()->channel_affine(a, x, scale, shift, res, relu));
        CHECK_OK(lm_cuda_channel_affine(b, x, scale, shift, res, relu));
        CHECK(same_bits(a, b)); /* no sums: the same operations, bit for bit */
        CHECK(isnan(lm_tensor_f32(b)[7]));
        release({a, b});
    }
    release({x, r, scale, shift});
}

/* ---- layer normalisation ---- */

void check_layer_norm(int64_t rows, int64_t cols, bool affine, float shift) {
    int64_t shape[2] = {rows, cols}, wshape[1] = {cols}, sshape[2] = {rows, 2};
    lm_tensor *x = filled(2, shape, 41, 1.5f, shift);
    lm_tensor *w = affine ? filled(1, wshape, 43, 0.5f, 1.0f) : NULL;
    lm_tensor *b = affine ? filled(1, wshape, 47, 0.5f, 0.0f) : NULL;
    lm_tensor *y_cpu = tensor(2, shape), *y_gpu = tensor(2, shape);
    lm_tensor *s_cpu = tensor(2, sshape), *s_gpu = tensor(2, sshape);
    CHECK_OK(cpu()->layer_norm(y_cpu, s_cpu, x, w, b, 1e-5));
    CHECK_OK(lm_cuda_layer_norm(y_gpu, s_gpu, x, w, b, 1e-5));
    CHECK(rel_err(s_gpu, s_cpu) <= 1e-6);
    CHECK(rel_err(y_gpu, y_cpu) <= 1e-6);

    lm_tensor *g = filled(2, shape, 53, 1.0f, 0.0f);
    lm_tensor *gx_cpu = tensor(2, shape), *gx_gpu = tensor(2, shape);
    lm_tensor *gw_cpu = affine ? tensor(1, wshape) : NULL,
              *gw_gpu = affine ? tensor(1, wshape) : NULL;
    lm_tensor *gb_cpu = affine ? tensor(1, wshape) : NULL,
              *gb_gpu = affine ? tensor(1, wshape) : NULL;
    CHECK_OK(cpu()->layer_norm_backward(gx_cpu, gw_cpu, gb_cpu, g, x, s_cpu, w));
    CHECK_OK(lm_cuda_layer_norm_backward(gx_gpu, gw_gpu, gb_gpu, g, x, s_cpu, w));
    CHECK(rel_err(gx_gpu, gx_cpu) <= 1e-5);
    if (affine) { /* the same blocks of rows summed in the same order: bit for bit */
        CHECK(same_bits(gw_gpu, gw_cpu));
        CHECK(same_bits(gb_gpu, gb_cpu));
    }
    release(
        {x, w, b, y_cpu, y_gpu, s_cpu, s_gpu, g, gx_cpu, gx_gpu, gw_cpu, gw_gpu, gb_cpu, gb_gpu});
}

void test_layer_norm(void) {
    check_layer_norm(150, 37, true, 0.0f); /* three blocks of rows, a partial warp's columns */
    check_layer_norm(4, 1000, true, 5.0f); /* wide rows */
    check_layer_norm(70, 33, false, 0.0f); /* no affine */
    check_layer_norm(1, 1, true, 0.0f);
}

} // namespace

TEST_MAIN(test_emulator, test_batch_norm, test_channel_affine, test_layer_norm)
