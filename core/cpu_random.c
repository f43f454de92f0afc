/* Counter-based random fills. One Philox block gives four 32-bit words:
 * uniform and Bernoulli element i uses word i % 4 of block offset + i / 4;
 * normal element i uses words (2 (i % 2), 2 (i % 2) + 1) of block
 * offset + i / 2 (Box-Muller, cosine branch). */
#include <math.h>

#include "cpu_backend.h"
#include "cpu_iter.h"
#include "lm_philox.h"
#include "lm_threads.h"

typedef struct {
    cpu_iter it;
    lm_tensor *out;
    lm_random_kind kind;
    uint64_t seed, offset;
    double p0, p1;
} random_job;

/* Box-Muller in double from two 24-bit uniforms, so that every machine (and
 * the CUDA backend) rounds to the same float. */
static inline float normal_from(uint32_t w1, uint32_t w2, double mean, double std) {
    double u1 = ((w1 >> 8) + 1.0) * (1.0 / 16777216.0); /* (0, 1] */
    double u2 = (w2 >> 8) * (1.0 / 16777216.0);
    return (float)(mean + std * sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

static void random_range(void *ctx, int64_t begin, int64_t end) {
    random_job *j = ctx;
    const cpu_iter *it = &j->it;
    int64_t so = it->strides[0][it->ndim - 1], pos = begin;
    CPU_ITER_FOR(it, begin, end, off, n) {
        float *o = lm_tensor_f32(j->out) + off[0];
        int per_block = j->kind == LM_RANDOM_NORMAL ? 2 : 4;
        lm_philox_block b = {{0, 0, 0, 0}};
        uint64_t have = UINT64_MAX; /* the block now in b */
        float threshold = (float)j->p0, value = (float)j->p1;
        for (int64_t i = 0; i < n; i++) {
            uint64_t e = (uint64_t)(pos + i), block = e / per_block;
            int lane = (int)(e % per_block);
            if (block != have) {
                b = lm_philox4x32(j->offset + block, j->seed);
                have = block;
            }
            float v;
            switch (j->kind) {
            case LM_RANDOM_UNIFORM:
                v = (float)(j->p0 + (j->p1 - j->p0) * lm_philox_uniform(b.v[lane]));
                break;
            case LM_RANDOM_NORMAL: v = normal_from(b.v[2 * lane], b.v[2 * lane + 1], j->p0, j->p1); break;
            default: v = lm_philox_uniform(b.v[lane]) < threshold ? value : 0.0f; break;
            }
            o[i * so] = v;
        }
        pos += n;
    }
}

lm_status cpu_random(lm_random_kind kind, lm_tensor *out, uint64_t seed, uint64_t offset,
                     double p0, double p1) {
    random_job j = {.out = out, .kind = kind, .seed = seed, .offset = offset, .p0 = p0, .p1 = p1};
    /* iterate in out's own row-major order, so element i is always counter i */
    j.it.nops = 1;
    j.it.numel = lm_tensor_numel(out);
    j.it.ndim = out->ndim ? out->ndim : 1;
    for (int d = 0; d < out->ndim; d++) {
        j.it.shape[d] = out->shape[d];
        j.it.strides[0][d] = out->strides[d];
    }
    if (!out->ndim) {
        j.it.shape[0] = 1;
        j.it.strides[0][0] = 1;
    }
    lm_parallel_for(j.it.numel, LM_GRAIN_ELEMENTWISE / 8, random_range, &j);
    return LM_OK;
}
