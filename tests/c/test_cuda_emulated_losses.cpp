/* The CUDA fused losses (kernels/cuda_losses.cu), run on the CPU by
 * tests/c/cuda_emulator.h, against the CPU backend: the multi-scale MMD's
 * value and both gradients (sets of different sizes, one and several
 * bandwidths, either gradient alone), and the squared error by row. The
 * CPU's MMD takes its exponentials from a fast polynomial, the GPU's from
 * expf, so the two agree to float rounding, not bit for bit. */
#define LM_CUDA_EMULATED 1
#include "../../kernels/cuda_losses.cu"
#include "emulated_tensors.h"

extern "C" {
#include "lm_backend.h"
#include "lm_tensor.h"
#include "test.h"
}

namespace {

lm_tensor *matrix(int64_t rows, int64_t cols, uint32_t seed, float scale, float shift) {
    int64_t shape[2] = {rows, cols};
    return filled(2, shape, seed, scale, shift);
}

lm_tensor *like(const lm_tensor *t) {
    lm_tensor *o = NULL;
    lm_tensor_new(&o, LM_FLOAT32, LM_CPU, t->ndim, t->shape);
    return o;
}

void check_mmd(int64_t n, int64_t m, int64_t d, int nscales, bool want_z, bool want_p) {
    lm_tensor *z = matrix(n, d, 3, 1.5f, 0.3f), *p = matrix(m, d, 5, 1.0f, 0.0f);
    float scales[LM_MMD_MAX_BANDWIDTHS];
    for (int b = 0; b < nscales; b++) scales[b] = (float)(-1.0 / (0.1 * pow(10.0, b) * d));
    lm_tensor *gz_cpu = want_z ? like(z) : NULL, *gz_gpu = want_z ? like(z) : NULL;
    lm_tensor *gp_cpu = want_p ? like(p) : NULL, *gp_gpu = want_p ? like(p) : NULL;
    lm_tensor *value_cpu = NULL, *value_gpu = NULL;
    lm_tensor_new(&value_cpu, LM_FLOAT32, LM_CPU, 0, NULL);
    lm_tensor_new(&value_gpu, LM_FLOAT32, LM_CPU, 0, NULL);
    CHECK_OK(cpu()->mmd(value_cpu, gz_cpu, gp_cpu, z, p, scales, nscales));
    CHECK_OK(lm_cuda_mmd(value_gpu, gz_gpu, gp_gpu, z, p, scales, nscales));
    double v_cpu = lm_tensor_f32(value_cpu)[0], v_gpu = lm_tensor_f32(value_gpu)[0];
    CHECK(v_cpu > 1e-4); /* sets apart: a value worth comparing */
    CHECK_NEAR(v_gpu, v_cpu, 1e-5 * fabs(v_cpu));
    if (want_z) CHECK(rel_err(gz_gpu, gz_cpu) <= 1e-5);
    if (want_p) CHECK(rel_err(gp_gpu, gp_cpu) <= 1e-5);
    lm_tensor *all[] = {z, p, gz_cpu, gz_gpu, gp_cpu, gp_gpu, value_cpu, value_gpu};
    for (lm_tensor *t : all) lm_tensor_release(t);
}

void test_mmd(void) {
    check_mmd(37, 50, 2, 5, true, true); /* sets of different sizes, five bandwidths */
    check_mmd(128, 128, 8, 1, true, false);
    check_mmd(20, 9, 3, 3, false, true);
    check_mmd(5, 300, 2, 2, false, false); /* the value alone; more rows than a block's threads */
}

void test_sq_diff_rows(void) {
    for (int64_t cols : {100, 5, 1}) {
        lm_tensor *a = matrix(37, cols, 7, 2.0f, 0.0f), *b = matrix(37, cols, 11, 1.0f, 0.5f);
        int64_t rshape[1] = {37};
        lm_tensor *d_cpu = like(a), *d_gpu = like(a), *r_cpu = NULL, *r_gpu = NULL;
        lm_tensor_new(&r_cpu, LM_FLOAT32, LM_CPU, 1, rshape);
        lm_tensor_new(&r_gpu, LM_FLOAT32, LM_CPU, 1, rshape);
        CHECK_OK(cpu()->sq_diff_rows(d_cpu, r_cpu, a, b));
        CHECK_OK(lm_cuda_sq_diff_rows(d_gpu, r_gpu, a, b));
        CHECK(rel_err(d_gpu, d_cpu) == 0);
        CHECK(rel_err(r_gpu, r_cpu) <= 1e-6);
        lm_tensor *all[] = {a, b, d_cpu, d_gpu, r_cpu, r_gpu};
        for (lm_tensor *t : all) lm_tensor_release(t);
    }
}

} // namespace

TEST_MAIN(test_mmd, test_sq_diff_rows)
