/* The CUDA kernels of gather, scatter_add and cumsum (kernels/cuda_index.cu),
 * compiled as C++ and run on the CPU by tests/c/cuda_emulator.h, against the
 * CPU backend on the same inputs: strided (transposed) inputs, an index
 * smaller than the input outside the gathered dimension, duplicates, several
 * blocks. Bit for bit: gather copies; cumsum sums each line in the same order
 * in double on both sides; the emulator runs scatter_add's atomic adds in
 * thread order, which for one line is the CPU's index order (on a GPU that
 * order is not fixed, and tests/gpu/gather_spec.lua allows for it). */
#define LM_CUDA_EMULATED 1
#include "../../kernels/cuda_index.cu"
#include "emulated_tensors.h"

extern "C" {
#include "lm_backend.h"
#include "lm_tensor.h"
#include "test.h"
}

namespace {

/* 0-based index values in [0, size), with repeats */
lm_tensor *index_of(int ndim, const int64_t *shape, int32_t size, uint32_t seed) {
    lm_tensor *t = tensor(ndim, shape, LM_INT32);
    for (int64_t i = 0; i < lm_tensor_numel(t); i++)
        lm_tensor_i32(t)[i] = (int32_t)(next(seed) % (uint32_t)size);
    return t;
}

void check_gather(int64_t rows, int64_t cols, int64_t irows, int64_t icols, int dim, bool t) {
    int64_t xs[2] = {t ? cols : rows, t ? rows : cols}, is[2] = {irows, icols};
    lm_tensor *base = filled(2, xs, (uint32_t)(rows * 31 + cols), 2.0f), *x = base;
    if (t) CHECK_OK(lm_tensor_transpose(&x, base, 0, 1)); /* [rows, cols], strided */
    lm_tensor *idx = index_of(2, is, (int32_t)(dim == 0 ? rows : cols), (uint32_t)irows);
    lm_tensor *o_cpu = tensor(2, is), *o_gpu = tensor(2, is);
    CHECK_OK(cpu()->gather(o_cpu, x, idx, dim));
    CHECK_OK(lm_cuda_gather(o_gpu, x, idx, dim));
    CHECK(same_bits(o_gpu, o_cpu));
    /* its reverse: the gathered values added back into a copy of x */
    lm_tensor *s_cpu = copy_of(base), *s_gpu = copy_of(base);
    lm_tensor *acc_cpu = s_cpu, *acc_gpu = s_gpu;
    if (!t) { /* scatter_add wants a contiguous out: only when x is one */
        CHECK_OK(cpu()->scatter_add(acc_cpu, idx, o_cpu, dim));
        CHECK_OK(lm_cuda_scatter_add(acc_gpu, idx, o_cpu, dim));
        CHECK(same_bits(acc_gpu, acc_cpu));
    }
    if (t) lm_tensor_release(x);
    release({base, idx, o_cpu, o_gpu, s_cpu, s_gpu});
}

void check_cumsum(int64_t a, int64_t b, int64_t c, int dim, bool reverse, lm_dtype dtype) {
    int64_t s[3] = {a, b, c};
    lm_tensor *x = filled(3, s, (uint32_t)(a * 7 + b * 3 + c), 5.0f);
    if (dtype == LM_INT32) {
        lm_tensor *xi = tensor(3, s, LM_INT32);
        for (int64_t i = 0; i < lm_tensor_numel(x); i++)
            lm_tensor_i32(xi)[i] = (int32_t)(lm_tensor_f32(x)[i] * 1000);
        lm_tensor_release(x);
        x = xi;
    }
    lm_tensor *o_cpu = tensor(3, s, dtype), *o_gpu = tensor(3, s, dtype);
    CHECK_OK(cpu()->cumsum(o_cpu, x, dim, reverse));
    CHECK_OK(lm_cuda_cumsum(o_gpu, x, dim, reverse));
    CHECK(same_bits(o_gpu, o_cpu));
    release({x, o_cpu, o_gpu});
}

} // namespace

void test_gather_scatter(void) {
    check_gather(5, 7, 5, 11, 1, false);      /* longer than x along dim */
    check_gather(9, 4, 3, 2, 0, false);       /* smaller than x outside dim */
    check_gather(6, 8, 6, 5, 1, true);        /* transposed x */
    check_gather(300, 40, 300, 40, 0, false); /* several blocks */
}

void test_cumsum(void) {
    for (int dim = 0; dim < 3; dim++)
        for (int reverse = 0; reverse < 2; reverse++) {
            check_cumsum(3, 50, 7, dim, reverse, LM_FLOAT32);
            check_cumsum(4, 5, 6, dim, reverse, LM_INT32);
        }
    check_cumsum(600, 3, 1, 1, false, LM_FLOAT32); /* several blocks */
}

TEST_MAIN(test_gather_scatter, test_cumsum)
