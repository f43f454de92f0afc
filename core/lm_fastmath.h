/* Branch-free exp, expm1, erf and tanh for float32 that compilers vectorise (glibc's
 * expf/expm1f are scalar calls). Range reduction x = n ln2 + r with |r| <=
 * ln2/2 and a degree-7 Taylor polynomial, whose truncation error is below
 * 6e-9 there; tests/c/test_fastmath.c bounds the error against double
 * precision (a few ulp). 2^n is formed in two factors, so exp overflows to
 * inf past ln(FLT_MAX) and underflows through the subnormals to 0 (or to 0
 * at FLT_MIN when they are flushed), as libm's does; inputs are clamped to
 * [-104, 89] only to keep n in range. */
#ifndef LM_FASTMATH_H
#define LM_FASTMATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "lm_host_device.h" /* LM_FOLDED: inlined into every vectorised loop */

/* a * b + c, fused where the target has FMA (one rounding, half the
 * instructions of the polynomial); plain otherwise, where fmaf would be a
 * library call */
static inline float lm_madd(float a, float b, float c) {
#ifdef __FMA__
    return fmaf(a, b, c);
#else
    return a * b + c;
#endif
}

/* expm1(r) for |r| <= ln2/2, without cancellation */
static inline float lm_expm1_reduced(float r) {
    float p = 1.0f / 5040;
    p = lm_madd(p, r, 1.0f / 720);
    p = lm_madd(p, r, 1.0f / 120);
    p = lm_madd(p, r, 1.0f / 24);
    p = lm_madd(p, r, 1.0f / 6);
    p = lm_madd(p, r, 0.5f);
    p = lm_madd(p, r, 1.0f);
    return p * r;
}

/* 2^k for integral k in [-126, 127] */
static inline float lm_pow2_bits(int32_t k) {
    uint32_t bits = (uint32_t)(k + 127) << 23;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* The two halves of 2^n (n integral, in [-252, 254]): 2^floor(n/2) and the
 * rest; NaN gives 1 and 1 (the caller's polynomial then carries the NaN),
 * since converting NaN to an integer is undefined */
static inline void lm_pow2_halves(float n, float *first, float *second) {
    int32_t k = n == n ? (int32_t)n : 0;
    int32_t half = k >> 1; /* floor(k / 2) */
    *first = lm_pow2_bits(half);
    *second = lm_pow2_bits(k - half);
}

static inline void lm_exp_reduce(float x, float *n, float *r) {
    x = x < -104.0f ? -104.0f : x > 89.0f ? 89.0f : x;
    *n = rintf(x * 1.442695041f);
    float t = x - *n * 0.693145751953125f; /* ln2 split in a high part exact in float */
    *r = t - *n * 1.428606765330187e-06f;
}

/* exp(x) = 2^n (1 + q): 2^n applied in its two halves, the second last, so
 * that neither an intermediate 2^128 (results just below FLT_MAX, where
 * q < 0: inf + inf q would be NaN) nor a subnormal 2^n breaks it; for
 * normal results the product is exact: the same bits as one scale */
LM_FOLDED static inline float lm_fast_expf(float x) {
    float n, r, first, second;
    lm_exp_reduce(x, &n, &r);
    lm_pow2_halves(n, &first, &second);
    return (first + first * lm_expm1_reduced(r)) * second;
}

/* expm1(x) = 2^n (1 + q) - 1 = (2^n - 1) + 2^n q, exact for n = 0; where 2^n
 * itself would overflow (n = 128), 2^n (1 + q) - 1 as exp forms it. The
 * result takes x's sign, which expm1's always has: -0 gives -0 (the sum
 * would give +0), as glibc and torch. */
LM_FOLDED static inline float lm_fast_expm1f(float x) {
    float n, r, first, second;
    lm_exp_reduce(x, &n, &r);
    lm_pow2_halves(n, &first, &second);
    float q = lm_expm1_reduced(r), scale = first * second;
    float near = (scale - 1.0f) + scale * q, far = (first + first * q) * second - 1.0f;
    return copysignf(n > 127.0f ? far : near, x);
}

/* erf(x), branch-free: for |x| < 1 the odd series x P(x^2), for 1 <= |x|
 * the complement 1 - exp(-x^2 + R(|x|)), where R(a) = ln erfc(a) + a^2 is
 * smooth and slowly varying on [1, 4] (a polynomial in (a - 2.5) / 1.5);
 * past 4, erf rounds to 1 in float. Both polynomials are least-squares fits
 * made for Lumen (errors below 1.2e-9 and 1.2e-8 of the functions they
 * approximate); within 1.2 ulp of the true value with FMA, 1.6 without
 * (tests/c/test_fastmath.c bounds it against double precision over [0, 4.5]). NaN stays NaN, +-inf
 * gives +-1. */
LM_FOLDED static inline float lm_fast_erff(float x) {
    float a = fabsf(x), y = x * x;
    float p = 7.889092261e-05f;
    p = lm_madd(p, y, -8.020833118e-04f);
    p = lm_madd(p, y, 5.189534424e-03f);
    p = lm_madd(p, y, -2.685444412e-02f);
    p = lm_madd(p, y, 1.128360017e-01f);
    p = lm_madd(p, y, -3.761262714e-01f);
    p = lm_madd(p, y, 1.283791660e-01f);             /* the series' first coefficient less 1: */
    float small = lm_madd(x, p, x);                  /* x + x p rounds once near the result */
    float b = a < 1.0f ? 1.0f : a > 4.0f ? 4.0f : a; /* NaN passes */
    float u = (b - 2.5f) * (1.0f / 1.5f);
    float r = 4.100232198e-05f;
    r = lm_madd(r, u, -2.272724933e-04f);
    r = lm_madd(r, u, 8.822586415e-04f);
    r = lm_madd(r, u, -3.190689127e-03f);
    r = lm_madd(r, u, 1.096072593e-02f);
    r = lm_madd(r, u, -3.664739505e-02f);
    r = lm_madd(r, u, 1.262393811e-01f);
    r = lm_madd(r, u, -5.290210327e-01f);
    r = lm_madd(r, u, -1.556815279e+00f);
    float large = copysignf(1.0f - lm_fast_expf(lm_madd(-b, b, r)), x);
    return a < 1.0f ? small : large;
}

/* tanh(x) = expm1(2|x|) / (expm1(2|x|) + 2) with x's sign: expm1 keeps small
 * arguments' relative precision (tanh x ~ x), and past |x| = 10, where
 * tanh rounds to 1 in float, the argument is held at 10 (no inf / inf).
 * tests/c/test_fastmath.c bounds it against double precision. NaN stays
 * NaN, +-inf gives +-1, -0 stays -0. */
LM_FOLDED static inline float lm_fast_tanhf(float x) {
    float a = fabsf(x);
    a = a > 10.0f ? 10.0f : a; /* NaN passes */
    float e = lm_fast_expm1f(2.0f * a);
    return copysignf(e / (e + 2.0f), x);
}

#endif
