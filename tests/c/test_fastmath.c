/* The vectorisable exp, expm1, erf and tanh against double precision. */
#include <stdint.h>
#include <string.h>

#include "lm_fastmath.h"
#include "test.h"

static void test_exp_accuracy(void) {
    double worst = 0;
    /* the whole range of normal results, up to ln(FLT_MAX) = 88.72 */
    int bad = 0;
    for (float x = -87.3f; x <= 88.72f; x += 0.0137f) {
        double want = exp((double)x), got = lm_fast_expf(x);
        double rel = fabs(got - want) / want;
        if (rel > worst) worst = rel;
        if (!(rel < 5e-7)) bad++; /* NaN too, which rel > worst lets through */
    }
    CHECK(worst < 5e-7); /* a few float ulp */
    CHECK(bad == 0);
    /* just below FLT_MAX, 2^n alone overflows (n = 128): no inf - inf */
    for (float x = 88.38f; x <= 88.72f; x += 0.001f) {
        double want = exp((double)x), got = lm_fast_expf(x);
        CHECK(isfinite(got) && fabs(got - want) / want < 5e-7);
        CHECK(isfinite(lm_fast_expm1f(x)) && fabs(lm_fast_expm1f(x) - want) / want < 5e-7);
    }
    CHECK(lm_fast_expf(0) == 1.0f);
    /* past the range: 0 and inf, as libm (it was clamped to 1.6e-38 and 1.65e38) */
    CHECK(lm_fast_expf(-200) == 0.0f);
    CHECK(lm_fast_expf(-INFINITY) == 0.0f);
    CHECK(isinf(lm_fast_expf(88.8f)) && isinf(lm_fast_expf(200)) && isinf(lm_fast_expf(INFINITY)));
    /* subnormal results where they are not flushed: 2^-140 */
    float tiny = lm_fast_expf(-140.0f * 0.69314718f);
    CHECK(tiny == 0.0f || fabs(tiny / ldexp(1.0, -140) - 1) < 1e-3);
}

static void test_expm1_accuracy(void) {
    double worst = 0;
    for (float x = -20.0f; x <= 10.0f; x += 0.00371f) {
        double want = expm1((double)x), got = lm_fast_expm1f(x);
        double err = fabs(got - want) / fmax(fabs(want), 1e-30);
        if (err > worst) worst = err;
    }
    CHECK(worst < 5e-7);
    /* tiny arguments keep their relative precision (no cancellation) */
    CHECK_NEAR(lm_fast_expm1f(1e-6f) / 1e-6, 1.0000005, 1e-6);
    CHECK(lm_fast_expm1f(0) == 0 && !signbit(lm_fast_expm1f(0)));
    CHECK(lm_fast_expm1f(-0.0f) == 0 && signbit(lm_fast_expm1f(-0.0f))); /* -0 stays -0, as glibc */
    CHECK(lm_fast_expm1f(-200) == -1.0f && lm_fast_expm1f(-INFINITY) == -1.0f);
    CHECK(isinf(lm_fast_expm1f(200)));
}

/* The error of an odd function f against its double reference over every
 * 61st float of [0, end_bits), in ulp of the rounded result; *bad counts
 * the points at `bound` ulp or past it, and where f(-x) is not -f(x). */
static double worst_ulp(float (*f)(float), double (*ref)(double), uint32_t end_bits, double bound,
                        int *bad) {
    double worst = 0;
    *bad = 0;
    for (uint32_t bits = 0; bits < end_bits; bits += 61) {
        float x;
        memcpy(&x, &bits, sizeof x);
        float want = (float)ref((double)x), got = f(x);
        double ulp = nextafterf(want, INFINITY) - want;
        double err = fabs((double)got - ref((double)x)) / ulp;
        if (err > worst) worst = err;
        if (!(err < bound) || f(-x) != -got) ++*bad;
    }
    return worst;
}

/* erf within 1.6 ulp of the double result (1.2 where FMA is used) over
 * [0, 4.5]: both polynomials, the seam at 1, and the flat end where erf
 * rounds to 1; odd; +-0, +-inf and NaN as libm */
static void test_erf_accuracy(void) {
    int bad;
    CHECK(worst_ulp(lm_fast_erff, erf, 0x40900000u, 1.6, &bad) < 1.6);
    CHECK(bad == 0);
    CHECK(lm_fast_erff(4.0f) == 1.0f && lm_fast_erff(30.0f) == 1.0f);
    CHECK(lm_fast_erff(INFINITY) == 1.0f && lm_fast_erff(-INFINITY) == -1.0f);
    CHECK(lm_fast_erff(0.0f) == 0.0f && signbit(lm_fast_erff(-0.0f)));
    CHECK(isnan(lm_fast_erff(NAN)));
    CHECK_NEAR(lm_fast_erff(1e-20f) / 1e-20, 1.1283791670955126, 1e-6); /* tiny x: 2x / sqrt(pi) */
}

/* tanh within 3.5 ulp of the double result over [0, 10.5]: the small
 * arguments where it is ~x, and the end where it rounds to 1; odd; +-0,
 * +-inf and NaN as libm */
static void test_tanh_accuracy(void) {
    int bad;
    CHECK(worst_ulp(lm_fast_tanhf, tanh, 0x41280000u, 3.5, &bad) < 3.5);
    CHECK(bad == 0);
    CHECK(lm_fast_tanhf(10.0f) == 1.0f && lm_fast_tanhf(1e30f) == 1.0f);
    CHECK(lm_fast_tanhf(INFINITY) == 1.0f && lm_fast_tanhf(-INFINITY) == -1.0f);
    CHECK(lm_fast_tanhf(0.0f) == 0.0f && signbit(lm_fast_tanhf(-0.0f)));
    CHECK(isnan(lm_fast_tanhf(NAN)));
    CHECK(lm_fast_tanhf(1e-30f) == 1e-30f); /* tiny x: x itself */
}

/* NaN propagates through both (ELU and softmax feed NaN in unmasked) */
static void test_nan_propagates(void) {
    CHECK(isnan(lm_fast_expf(NAN)));
    CHECK(isnan(lm_fast_expm1f(NAN)));
    CHECK(isnan(lm_fast_expm1f(-NAN)));
}

TEST_MAIN(test_exp_accuracy, test_expm1_accuracy, test_erf_accuracy, test_tanh_accuracy,
          test_nan_propagates)
