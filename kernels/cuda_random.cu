// Counter-based random fills with the CPU's numbering (core/cpu_random.c):
// uniform and Bernoulli element i uses word i % 4 of Philox block
// offset + i / 4, normal element i the pair i % 2 of block offset + i / 2,
// so a seed gives the same numbers (dropout masks included) on both devices.
#include <math.h>

#include "cuda_backend.h"

extern "C" {
#include "lm_philox.h"
}

namespace {

struct RandomJob {
    lm_iter it; /* over out, in its own row-major order */
    float *out;
    int kind;
    cu_rng rng;
    double p0, p1;
    uint32_t threshold;
    bool flat;
    const float *x; /* dropout: prod = x * mask in the same pass (contiguous) */
    float *prod;
};

__device__ __forceinline__ float normal_from(uint32_t w1, uint32_t w2, double mean, double std) {
    double u1 = ((w1 >> 8) + 1.0) * (1.0 / 16777216.0); /* (0, 1] */
    double u2 = (w2 >> 8) * (1.0 / 16777216.0);
    /* each product and the sum rounded as the CPU's (no fused multiply-add);
     * log and cos are CUDA's, within an ulp of glibc's in double, so the
     * float rounds to the CPU's but for rare ties */
    double r = __dmul_rn(std, sqrt(__dmul_rn(-2.0, log(u1))));
    return (float)__dadd_rn(mean, __dmul_rn(r, cos(__dmul_rn(6.283185307179586, u2))));
}

// One thread per Philox block: 4 uniform/Bernoulli or 2 normal elements.
__global__ void random_kernel(RandomJob j, int64_t n) {
    int per_block = j.kind == LM_RANDOM_NORMAL ? 2 : 4;
    int64_t blocks = (n + per_block - 1) / per_block;
    float value = (float)j.p1, lo = (float)j.p0, span = (float)(j.p1 - j.p0);
    CU_GRID_LOOP(b, blocks) {
        lm_philox_block w = cu_philox(j.rng, (uint64_t)b);
        for (int k = 0; k < per_block; k++) {
            int64_t e = b * per_block + k;
            if (e >= n) break;
            float v;
            if (j.kind == LM_RANDOM_UNIFORM)
                /* no fused multiply-add (nvcc contracts by default): the
                 * CPU rounds the product, then the sum */
                v = __fadd_rn(lo, __fmul_rn(span, (float)(w.v[k] >> 8) * (1.0f / 16777216.0f)));
            else if (j.kind == LM_RANDOM_NORMAL)
                v = normal_from(w.v[2 * k], w.v[2 * k + 1], j.p0, j.p1);
            else
                v = (w.v[k] >> 8) < j.threshold ? value : 0.0f;
            int64_t off[1];
            if (j.flat)
                off[0] = e;
            else
                cu_offsets<1>(j.it, e, off);
            j.out[off[0]] = v;
            if (j.prod) j.prod[e] = j.x[e] * v;
        }
    }
}

} // namespace

static lm_status random_launch(lm_random_kind kind, lm_tensor *out, uint64_t seed, uint64_t offset,
                               double p0, double p1, const float *x, float *prod) {
    RandomJob j;
    j.x = x;
    j.prod = prod;
    lm_iter_init_ordered(&j.it, out); /* element i is always counter i */
    j.out = cu_f32(out);
    j.kind = kind;
    LM_TRY(cu_rng_at(seed, offset, &j.rng));
    j.p0 = p0;
    j.p1 = p1;
    /* (only a Bernoulli draw has one: p0 is a mean or a bound otherwise, and
     * a negative one does not convert to unsigned) */
    j.threshold = kind == LM_RANDOM_BERNOULLI ? lm_bernoulli_threshold(p0) : 0;
    j.flat = lm_tensor_is_contiguous(out);
    int64_t n = j.it.numel;
    if (n == 0) return LM_OK;
    cu_launch(cu_blocks((n + 1) / 2), CU_THREADS, random_kernel, j, n);
    CU_LAUNCHED(prod ? "dropout" : "random fill");
    return LM_OK;
}

lm_status lm_cuda_random(lm_random_kind kind, lm_tensor *out, uint64_t seed, uint64_t offset,
                         double p0, double p1) {
    return random_launch(kind, out, seed, offset, p0, p1, NULL, NULL);
}

lm_status lm_cuda_dropout(lm_tensor *out, lm_tensor *mask, const lm_tensor *x, uint64_t seed,
                          uint64_t offset, double keep) {
    return random_launch(LM_RANDOM_BERNOULLI, mask, seed, offset, keep, 1.0 / keep, cu_f32(x),
                         cu_f32(out));
}
