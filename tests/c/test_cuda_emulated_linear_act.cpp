/* The CUDA Linear-activation-dropout kernels (kernels/cuda_linear_act.cu),
 * run on the CPU by tests/c/cuda_emulator.h, against the CPU backend's
 * linear_act: the activation (none, ELU, ReLU), the dropout mask drawn at
 * the same stream position (bit for bit), the output, and the gradient at
 * the product. cuBLAS does not run here: the product goes to the CPU
 * backend's matmul, which the CUDA file calls under its own name. */
#define LM_CUDA_EMULATED 1
#define lm_cuda_matmul emulated_matmul
#include "../../kernels/cuda_linear_act.cu"
#include "emulated_tensors.h"

extern "C" {
#include "lm_backend.h"
#include "lm_tensor.h"
#include "test.h"
}

lm_status emulated_matmul(lm_tensor *out, const lm_tensor *a, const lm_tensor *b, float alpha,
                          float beta, const lm_tensor *bias) {
    return lm_backend_get(LM_CPU)->matmul(out, a, b, alpha, beta, bias);
}

namespace {

void check(lm_unary_op op, double alpha, double keep, int64_t M, int64_t K, int64_t N) {
    int64_t xs[2] = {M, K}, ws[2] = {N, K}, bs[1] = {N}, os[2] = {M, N};
    lm_tensor *x = filled(2, xs, 3, 1.0f), *w = filled(2, ws, 5, 0.5f), *b = filled(1, bs, 7, 0.5f);
    bool drop = keep < 1;
    lm_act_params p = {op, alpha, keep, 1234, 17};
    lm_tensor *a_cpu = tensor(2, os), *a_gpu = tensor(2, os);
    lm_tensor *m_cpu = drop ? tensor(2, os) : NULL, *m_gpu = drop ? tensor(2, os) : NULL;
    lm_tensor *y_cpu = drop ? tensor(2, os) : a_cpu, *y_gpu = drop ? tensor(2, os) : a_gpu;
    CHECK_OK(cpu()->linear_act(y_cpu, a_cpu, m_cpu, x, w, b, &p));
    CHECK_OK(lm_cuda_linear_act(y_gpu, a_gpu, m_gpu, x, w, b, &p));
    CHECK(rel_err(a_gpu, a_cpu) <= 1e-6);
    if (drop) {
        CHECK(same_bits(m_gpu, m_cpu)); /* the same draws, bit for bit */
        CHECK(rel_err(y_gpu, y_cpu) <= 1e-6);
        int64_t dropped = 0;
        for (int64_t i = 0; i < M * N; i++) dropped += lm_tensor_f32(m_gpu)[i] == 0;
        CHECK(dropped > 0 && dropped < M * N); /* a mask that keeps some and drops some */
    }
    /* the gradient at the product, from the CPU's activation and mask on both sides */
    lm_tensor *g = filled(2, os, 11, 1.0f), *gz_cpu = tensor(2, os), *gz_gpu = tensor(2, os);
    CHECK_OK(cpu()->linear_act_backward(gz_cpu, g, a_cpu, m_cpu, op, alpha));
    CHECK_OK(lm_cuda_linear_act_backward(gz_gpu, g, a_cpu, m_cpu, op, alpha));
    CHECK(same_bits(gz_gpu, gz_cpu));
    lm_tensor *all[] = {x, w, b, a_cpu, a_gpu, m_cpu, m_gpu, g, gz_cpu, gz_gpu};
    for (lm_tensor *t : all) lm_tensor_release(t);
    if (drop) lm_tensor_release(y_cpu), lm_tensor_release(y_gpu);
}

void test_linear_act(void) {
    for (lm_unary_op op : {LM_UNARY_COUNT, LM_ELU, LM_RELU})
        for (double keep : {1.0, 0.6}) {
            if (op == LM_UNARY_COUNT && keep == 1.0) continue; /* a plain product: not this op */
            check(op, 0.7, keep, 37, 29, 23); /* 851 values: a partial last Philox block */
        }
    check(LM_ELU, 1.0, 0.5, 128, 64, 200);
}

} // namespace

TEST_MAIN(test_linear_act)
