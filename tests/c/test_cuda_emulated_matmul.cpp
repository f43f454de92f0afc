/* The CUDA backend's matrix product (kernels/cuda_matmul.cu) with cuBLAS
 * emulated by OpenBLAS (tests/c/cuda_emulator_blas.h), against the CPU
 * backend's matmul: which operand cuBLAS reads transposed and with which
 * leading dimension for contiguous and transposed operands, batches with a
 * broadcast operand, alpha and beta, the bias path and an empty inner
 * dimension, and the bfloat16 autocast path's calls. Both sides multiply
 * with OpenBLAS here, so they agree to float rounding (the summation order
 * of two sgemm calls may differ). */
#define LM_CUDA_EMULATED 1
#include "../../kernels/cuda_elementwise.cu" /* the bias's copy, K = 0 */
#include "../../kernels/cuda_matmul.cu"
#include "emulated_tensors.h"

extern "C" {
#include "lm_autocast.h"
#include "lm_backend.h"
#include "lm_tensor.h"
#include "test.h"
}

namespace {

/* [batch, rows, cols], or its transpose's view when transposed (the same
 * values, stored [batch, cols, rows]) */
lm_tensor *operand(int64_t batch, int64_t rows, int64_t cols, bool transposed, uint32_t seed) {
    if (!transposed) {
        int64_t shape[3] = {batch, rows, cols};
        return filled(3, shape, seed, 1.0f);
    }
    int64_t shape[3] = {batch, cols, rows};
    lm_tensor *stored = filled(3, shape, seed, 1.0f), *view = NULL;
    lm_tensor_transpose(&view, stored, 1, 2);
    lm_tensor_release(stored);
    return view;
}

struct Case {
    int64_t ba, bb, M, K, N;
    bool ta, tb, bias;
    float alpha, beta;
};

void check(const Case &c) {
    lm_tensor *a = operand(c.ba, c.M, c.K, c.ta, 3), *b = operand(c.bb, c.K, c.N, c.tb, 5);
    int64_t batch = c.ba > c.bb ? c.ba : c.bb, oshape[3] = {batch, c.M, c.N}, bshape[1] = {c.N};
    lm_tensor *bias = c.bias ? filled(1, bshape, 7, 1.0f) : NULL;
    lm_tensor *out_cpu = filled(3, oshape, 11, 1.0f),
              *out_gpu = filled(3, oshape, 11, 1.0f); /* beta reads them */
    CHECK_OK(lm_backend_get(LM_CPU)->matmul(out_cpu, a, b, c.alpha, c.beta, bias));
    CHECK_OK(lm_cuda_matmul(out_gpu, a, b, c.alpha, c.beta, bias));
    double e = rel_err(out_gpu, out_cpu);
    CHECK(e <= 1e-5);
    if (e > 1e-5)
        fprintf(stderr, "  matmul %lldx[%lld,%lld] @ %lldx[%lld,%lld]%s%s%s: %.3g\n",
                (long long)c.ba, (long long)c.M, (long long)c.K, (long long)c.bb, (long long)c.K,
                (long long)c.N, c.ta ? " a^T" : "", c.tb ? " b^T" : "", c.bias ? " bias" : "", e);
    lm_tensor *all[] = {a, b, bias, out_cpu, out_gpu};
    for (lm_tensor *t : all) lm_tensor_release(t);
}

void test_layouts(void) {
    for (bool ta : {false, true})
        for (bool tb : {false, true}) {
            check({1, 1, 7, 5, 9, ta, tb, false, 1.0f, 0.0f});
            check({1, 1, 1, 5, 9, ta, tb, false, 1.0f, 0.0f}); /* one row: a row vector */
            check({1, 1, 7, 1, 9, ta, tb, false, 1.0f, 0.0f}); /* one inner column */
            check({1, 1, 7, 5, 1, ta, tb, false, 1.0f, 0.0f}); /* one output column */
        }
}

void test_batches_and_scalars(void) {
    check({3, 3, 4, 6, 5, false, false, false, 1.0f, 0.0f});
    check({1, 3, 4, 6, 5, false, true, false, 1.0f, 0.0f}); /* a broadcast over the batch */
    check({3, 1, 4, 6, 5, true, false, false, 1.0f, 0.0f}); /* b broadcast */
    check({2, 2, 4, 6, 5, true, true, false, 0.5f, 1.0f});  /* out = 0.5 a b + out */
}

void test_bias_and_empty(void) {
    check({1, 1, 8, 6, 5, false, true, true, 1.0f, 0.0f}); /* a Linear layer: x w^T + b */
    check({2, 2, 3, 4, 5, false, false, true, 1.0f, 0.0f});
    check({1, 1, 4, 0, 5, false, false, false, 1.0f, 0.0f}); /* K = 0: zeros */
    check({1, 1, 4, 0, 5, false, false, false, 1.0f, 2.0f}); /* K = 0: beta * out */
}

void test_autocast(void) {
    lm_autocast_mode before = lm_set_autocast(LM_AUTOCAST_BF16);
    check({1, 1, 7, 5, 9, false, true, false, 1.0f, 0.0f});
    check({3, 3, 4, 6, 5, true, false, false, 1.0f, 0.0f});
    lm_set_autocast(before);
}

} // namespace

TEST_MAIN(test_layouts, test_batches_and_scalars, test_bias_and_empty, test_autocast)
