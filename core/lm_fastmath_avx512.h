/* lm_fastmath.h's exp and erf on 16 lanes, written out in AVX-512
 * intrinsics operation for operation: the same roundings in the same order
 * (the core is built as ISO C, so GCC fuses no multiply-add of its own), so
 * every lane gives the scalar function's bits (tests/c/test_gelu_rows.c
 * compares them over a sweep of inputs and the special values). GCC's own
 * vectorisation of erf spent half its instructions on mask bookkeeping and
 * spills: on the two vector ports an AVX-512 core has, the instruction
 * count is the time. Builds with AVX-512 and FMA only: the scalar
 * lm_madd fuses only where __FMA__ is defined, and these always fuse. */
#ifndef LM_FASTMATH_AVX512_H
#define LM_FASTMATH_AVX512_H

#if defined(__AVX512F__) && defined(__FMA__)
#define LM_HAVE_FASTMATH_AVX512 1
#include <immintrin.h>

#include "lm_fastmath.h"

#define LM_SET1(v) _mm512_set1_ps(v)

static inline __m512 lm_expm1_reduced16(__m512 r) {
    __m512 p = LM_SET1(1.0f / 5040);
    p = _mm512_fmadd_ps(p, r, LM_SET1(1.0f / 720));
    p = _mm512_fmadd_ps(p, r, LM_SET1(1.0f / 120));
    p = _mm512_fmadd_ps(p, r, LM_SET1(1.0f / 24));
    p = _mm512_fmadd_ps(p, r, LM_SET1(1.0f / 6));
    p = _mm512_fmadd_ps(p, r, LM_SET1(0.5f));
    p = _mm512_fmadd_ps(p, r, LM_SET1(1.0f));
    return _mm512_mul_ps(p, r);
}

/* lm_fast_expf: the reduction, 2^n in its two halves (NaN lanes: 1 and 1) */
static inline __m512 lm_fast_expf16(__m512 x) {
    x = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, LM_SET1(-104.0f), _CMP_LT_OQ), x,
                             LM_SET1(-104.0f));
    x = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, LM_SET1(89.0f), _CMP_GT_OQ), x, LM_SET1(89.0f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, LM_SET1(1.442695041f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 t = _mm512_sub_ps(x, _mm512_mul_ps(n, LM_SET1(0.693145751953125f)));
    __m512 r = _mm512_sub_ps(t, _mm512_mul_ps(n, LM_SET1(1.428606765330187e-06f)));
    __m512i k = _mm512_maskz_cvttps_epi32(_mm512_cmp_ps_mask(n, n, _CMP_ORD_Q), n);
    __m512i half = _mm512_srai_epi32(k, 1), bias = _mm512_set1_epi32(127);
    __m512 first = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(half, bias), 23));
    __m512 second = _mm512_castsi512_ps(
        _mm512_slli_epi32(_mm512_add_epi32(_mm512_sub_epi32(k, half), bias), 23));
    __m512 q = lm_expm1_reduced16(r);
    return _mm512_mul_ps(_mm512_add_ps(first, _mm512_mul_ps(first, q)), second);
}

/* lm_fast_erff: both branches, the small one's lanes where |x| < 1 */
static inline __m512 lm_fast_erff16(__m512 x) {
    const __m512i sign = _mm512_set1_epi32((int)0x80000000u);
    __m512 a = _mm512_castsi512_ps(_mm512_andnot_si512(sign, _mm512_castps_si512(x)));
    __m512 y = _mm512_mul_ps(x, x);
    __m512 p = LM_SET1(7.889092261e-05f);
    p = _mm512_fmadd_ps(p, y, LM_SET1(-8.020833118e-04f));
    p = _mm512_fmadd_ps(p, y, LM_SET1(5.189534424e-03f));
    p = _mm512_fmadd_ps(p, y, LM_SET1(-2.685444412e-02f));
    p = _mm512_fmadd_ps(p, y, LM_SET1(1.128360017e-01f));
    p = _mm512_fmadd_ps(p, y, LM_SET1(-3.761262714e-01f));
    p = _mm512_fmadd_ps(p, y, LM_SET1(1.283791660e-01f));
    __m512 small = _mm512_fmadd_ps(x, p, x);
    __mmask16 below1 = _mm512_cmp_ps_mask(a, LM_SET1(1.0f), _CMP_LT_OQ);
    __m512 b = _mm512_mask_blend_ps(below1, a, LM_SET1(1.0f));
    b = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(b, LM_SET1(4.0f), _CMP_GT_OQ) & ~below1, b,
                             LM_SET1(4.0f));
    __m512 u = _mm512_mul_ps(_mm512_sub_ps(b, LM_SET1(2.5f)), LM_SET1(1.0f / 1.5f));
    __m512 r = LM_SET1(4.100232198e-05f);
    r = _mm512_fmadd_ps(r, u, LM_SET1(-2.272724933e-04f));
    r = _mm512_fmadd_ps(r, u, LM_SET1(8.822586415e-04f));
    r = _mm512_fmadd_ps(r, u, LM_SET1(-3.190689127e-03f));
    r = _mm512_fmadd_ps(r, u, LM_SET1(1.096072593e-02f));
    r = _mm512_fmadd_ps(r, u, LM_SET1(-3.664739505e-02f));
    r = _mm512_fmadd_ps(r, u, LM_SET1(1.262393811e-01f));
    r = _mm512_fmadd_ps(r, u, LM_SET1(-5.290210327e-01f));
    r = _mm512_fmadd_ps(r, u, LM_SET1(-1.556815279e+00f));
    __m512 tail = _mm512_sub_ps(LM_SET1(1.0f), lm_fast_expf16(_mm512_fnmadd_ps(b, b, r)));
    __m512 large = _mm512_castsi512_ps(_mm512_ternarylogic_epi32(
        sign, _mm512_castps_si512(x), _mm512_castps_si512(tail), 0xca)); /* sign ? x : tail */
    return _mm512_mask_blend_ps(below1, large, small);
}

#undef LM_SET1
#endif

#endif
