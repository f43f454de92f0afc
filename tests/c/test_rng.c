/* The counter-based RNG: known answers, reproducibility, distributions. */
#include "lm_ops.h"
#include "lm_philox.h"
#include "lm_rng.h"
#include "lm_threads.h"
#include "test.h"

static void test_philox_known_answer(void) {
    /* Random123's known-answer test for philox4x32-10, counter 0 and key 0 */
    lm_philox_block b = lm_philox4x32(0, 0);
    CHECK(b.v[0] == 0x6627e8d5u && b.v[1] == 0xe169c58du);
    CHECK(b.v[2] == 0xbc57ac4cu && b.v[3] == 0x9b00dbd8u);
}

static void test_lanes_match_single_blocks(void) {
    uint32_t words[4][LM_PHILOX_LANES];
    lm_philox4x32_lanes(123456789012ULL, 0xDEADBEEFCAFEULL, words);
    int bad = 0;
    for (int l = 0; l < LM_PHILOX_LANES; l++) {
        lm_philox_block b = lm_philox4x32(123456789012ULL + l, 0xDEADBEEFCAFEULL);
        for (int k = 0; k < 4; k++) bad += words[k][l] != b.v[k];
    }
    CHECK(bad == 0);
}

/* A contiguous fill (vectorised blocks) and a strided one (block by block)
 * must draw the same numbers for the same elements. */
static void test_contiguous_and_strided_agree(void) {
    int64_t n = 1001, shape_t[2] = {n, 2}, shape[2] = {2, n};
    lm_tensor *a, *base, *bt;
    lm_tensor_new(&a, LM_FLOAT32, LM_CPU, 2, shape);
    lm_tensor_new(&base, LM_FLOAT32, LM_CPU, 2, shape_t);
    lm_tensor_transpose(&bt, base, 0, 1); /* [2, n], not contiguous */
    lm_manual_seed(9);
    lm_rand_bernoulli_(a, 0.9);
    lm_manual_seed(9);
    lm_rand_bernoulli_(bt, 0.9);
    int bad = 0;
    for (int64_t i = 0; i < 2 * n; i++) {
        double x, y;
        lm_get_element(a, i, &x);
        lm_get_element(bt, i, &y);
        bad += x != y;
    }
    CHECK(bad == 0);
    lm_tensor_release(a);
    lm_tensor_release(bt);
    lm_tensor_release(base);
}

static void test_reproducible(void) {
    int64_t n = 100000;
    lm_tensor *a, *b;
    lm_tensor_new(&a, LM_FLOAT32, LM_CPU, 1, &n);
    lm_tensor_new(&b, LM_FLOAT32, LM_CPU, 1, &n);
    lm_set_num_threads(1);
    lm_manual_seed(42);
    lm_rand_normal_(a, 0, 1);
    lm_set_num_threads(2);
    lm_manual_seed(42);
    lm_rand_normal_(b, 0, 1);
    CHECK(memcmp(lm_tensor_f32(a), lm_tensor_f32(b), n * 4) == 0);
    /* a second draw continues the stream instead of repeating it */
    lm_rand_normal_(b, 0, 1);
    CHECK(lm_tensor_f32(a)[0] != lm_tensor_f32(b)[0]);
    CHECK(lm_rng_offset() == 2 * (uint64_t)n / 2); /* two normals per Philox block */
    lm_tensor_release(a);
    lm_tensor_release(b);
}

static void test_distributions(void) {
    int64_t n = 200000;
    lm_tensor *x;
    lm_tensor_new(&x, LM_FLOAT32, LM_CPU, 1, &n);
    lm_manual_seed(1);
    lm_rand_normal_(x, 2, 3);
    double s = 0, s2 = 0;
    const float *p = lm_tensor_f32(x);
    for (int64_t i = 0; i < n; i++) s += p[i], s2 += (double)p[i] * p[i];
    double mean = s / n, var = s2 / n - mean * mean;
    CHECK_NEAR(mean, 2, 0.03); /* 5 standard errors: 5 * 3 / sqrt(n) */
    CHECK_NEAR(sqrt(var), 3, 0.03);
    lm_rand_uniform_(x, -1, 1);
    double lo = 1, hi = -1;
    s = 0;
    for (int64_t i = 0; i < n; i++) {
        lo = fmin(lo, p[i]), hi = fmax(hi, p[i]);
        s += p[i];
    }
    CHECK(lo >= -1 && hi < 1 && lo < -0.999 && hi > 0.999);
    CHECK_NEAR(s / n, 0, 0.007);
    lm_rand_bernoulli_(x, 0.25);
    s = 0;
    for (int64_t i = 0; i < n; i++) s += p[i];
    CHECK_NEAR(s / n, 0.25, 0.005);
    CHECK_FAILS(lm_rand_bernoulli_(x, 1.5), LM_ERR_ARG, "[0, 1]");
    lm_tensor_release(x);
}

static void test_randperm(void) {
    lm_tensor *p;
    lm_manual_seed(3);
    CHECK_OK(lm_randperm(&p, 1000));
    int seen[1000] = {0}, moved = 0;
    for (int i = 0; i < 1000; i++) {
        int v = lm_tensor_i32(p)[i];
        if (v >= 0 && v < 1000) seen[v]++;
        moved += v != i;
    }
    int ok = 1;
    for (int i = 0; i < 1000; i++) ok &= seen[i] == 1;
    CHECK(ok);
    CHECK(moved > 900);
    lm_tensor_release(p);
}

TEST_MAIN(test_philox_known_answer, test_lanes_match_single_blocks,
          test_contiguous_and_strided_agree, test_reproducible, test_distributions, test_randperm)
