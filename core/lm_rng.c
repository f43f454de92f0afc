#include "lm_rng.h"

#include "lm_backend.h"
#include "lm_philox.h"

static uint64_t rng_seed = LM_DEFAULT_SEED, rng_offset;

void lm_manual_seed(uint64_t seed) {
    rng_seed = seed;
    rng_offset = 0;
}
uint64_t lm_rng_seed(void) {
    return rng_seed;
}
uint64_t lm_rng_offset(void) {
    return rng_offset;
}
void lm_rng_set_state(uint64_t seed, uint64_t offset) {
    rng_seed = seed;
    rng_offset = offset;
}
uint64_t lm_rng_reserve(uint64_t n) {
    uint64_t first = rng_offset;
    rng_offset += n;
    return first;
}

static lm_status fill_random(const char *op, lm_tensor *t, lm_random_kind kind, double p0,
                             double p1) {
    if (t->dtype != LM_FLOAT32)
        return lm_fail(LM_ERR_ARG, "%s: needs a float32 tensor, got %s", op,
                       lm_dtype_name(t->dtype));
    const lm_backend *be = lm_backend_of(t);
    if (!be) return LM_ERR_DEVICE;
    uint64_t n = (uint64_t)lm_tensor_numel(t), per_block = kind == LM_RANDOM_NORMAL ? 2 : 4;
    uint64_t offset = lm_rng_reserve((n + per_block - 1) / per_block);
    return be->random(kind, t, rng_seed, offset, p0, p1);
}

lm_status lm_rand_uniform_(lm_tensor *t, double low, double high) {
    if (!(low <= high))
        return lm_fail(LM_ERR_ARG, "rand: low (%g) must not exceed high (%g)", low, high);
    return fill_random("rand", t, LM_RANDOM_UNIFORM, low, high);
}

lm_status lm_rand_normal_(lm_tensor *t, double mean, double std) {
    if (!(std >= 0)) return lm_fail(LM_ERR_ARG, "randn: std must be >= 0, got %g", std);
    return fill_random("randn", t, LM_RANDOM_NORMAL, mean, std);
}

lm_status lm_rand_bernoulli_(lm_tensor *t, double p) {
    if (!(p >= 0 && p <= 1))
        return lm_fail(LM_ERR_ARG, "bernoulli: p must be in [0, 1], got %g", p);
    return fill_random("bernoulli", t, LM_RANDOM_BERNOULLI, p, 1);
}

lm_status lm_rand_dropout_mask_(lm_tensor *t, double keep) {
    if (!(keep > 0 && keep <= 1))
        return lm_fail(LM_ERR_ARG, "dropout: the keep probability must be in (0, 1], got %g", keep);
    return fill_random("dropout", t, LM_RANDOM_BERNOULLI, keep, 1.0 / keep);
}

lm_status lm_randperm(lm_tensor **out, int64_t n) {
    *out = NULL;
    if (n < 0 || n > INT32_MAX)
        return lm_fail(LM_ERR_ARG, "randperm: n must be in [0, 2^31), got %lld", (long long)n);
    LM_TRY(lm_tensor_new(out, LM_INT32, LM_CPU, 1, &n));
    int32_t *p = lm_tensor_i32(*out);
    for (int64_t i = 0; i < n; i++) p[i] = (int32_t)i;
    /* Fisher-Yates from the top; step i draws counter offset + i. The modulo
     * bias of a 64-bit draw over n < 2^31 is below 2^-33. */
    uint64_t offset = lm_rng_reserve((uint64_t)n);
    for (int64_t i = n - 1; i > 0; i--) {
        lm_philox_block b = lm_philox4x32(offset + (uint64_t)i, rng_seed);
        uint64_t r = ((uint64_t)b.v[0] << 32) | b.v[1];
        int64_t j = (int64_t)(r % (uint64_t)(i + 1));
        int32_t tmp = p[i];
        p[i] = p[j];
        p[j] = tmp;
    }
    return LM_OK;
}
