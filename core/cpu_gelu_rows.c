/* GELU (exact form) and its gradient over unit-stride rows in AVX-512
 * registers: lm_gelu_f32 and g * lm_gelu_grad_f32 (lm_scalar_ops.h) with
 * lm_fastmath_avx512.h's exp and erf, operation for operation, so every
 * element gets the scalar loop's bits. GCC's vectorisation of the scalar
 * form ran about 100 instructions a vector (bench/unary_ops.lua). */
#include "cpu_backend.h"
#include "cpu_lanes.h"
#include "lm_fastmath_avx512.h"
#include "lm_scalar_ops.h"

#ifdef LM_HAVE_FASTMATH_AVX512

/* x Phi(x) = 0.5 x (1 + erf(x / sqrt 2)), in the scalar form's order */
static inline __m512 gelu16(__m512 x) {
    __m512 e = lm_fast_erff16(_mm512_mul_ps(x, _mm512_set1_ps((float)LM_GELU_RSQRT2)));
    return _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(0.5f), x),
                         _mm512_add_ps(_mm512_set1_ps(1.0f), e));
}

/* g (Phi(x) + x phi(x)), in the scalar form's order */
static inline __m512 gelu_grad16(__m512 g, __m512 x) {
    __m512 e = lm_fast_erff16(_mm512_mul_ps(x, _mm512_set1_ps((float)LM_GELU_RSQRT2)));
    __m512 cdf = _mm512_mul_ps(_mm512_set1_ps(0.5f), _mm512_add_ps(_mm512_set1_ps(1.0f), e));
    __m512 pdf = lm_fast_expf16(_mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(-0.5f), x), x));
    __m512 d = _mm512_add_ps(
        cdf, _mm512_mul_ps(_mm512_mul_ps(x, _mm512_set1_ps((float)LM_GELU_RSQRT2PI)), pdf));
    return _mm512_mul_ps(g, d);
}

/* Four vectors an iteration: each one's chain of dependent operations is
 * about 150 cycles long, and four side by side keep both vector ports busy
 * where one at a time left the out-of-order window short of independent
 * work. */
bool lm_cpu_gelu_row(float *out, const float *x, int64_t n) {
    int64_t i = 0;
    for (; i + 64 <= n; i += 64) {
        __m512 y0 = gelu16(_mm512_loadu_ps(x + i)), y1 = gelu16(_mm512_loadu_ps(x + i + 16));
        __m512 y2 = gelu16(_mm512_loadu_ps(x + i + 32)), y3 = gelu16(_mm512_loadu_ps(x + i + 48));
        _mm512_storeu_ps(out + i, y0);
        _mm512_storeu_ps(out + i + 16, y1);
        _mm512_storeu_ps(out + i + 32, y2);
        _mm512_storeu_ps(out + i + 48, y3);
    }
    for (; i < n; i += 16) {
        __mmask16 m = first_lanes(n - i);
        _mm512_mask_storeu_ps(out + i, m, gelu16(_mm512_maskz_loadu_ps(m, x + i)));
    }
    return true;
}

bool lm_cpu_gelu_grad_row(float *out, const float *g, const float *x, int64_t n) {
    int64_t i = 0;
    for (; i + 64 <= n; i += 64) {
        __m512 d0 = gelu_grad16(_mm512_loadu_ps(g + i), _mm512_loadu_ps(x + i));
        __m512 d1 = gelu_grad16(_mm512_loadu_ps(g + i + 16), _mm512_loadu_ps(x + i + 16));
        __m512 d2 = gelu_grad16(_mm512_loadu_ps(g + i + 32), _mm512_loadu_ps(x + i + 32));
        __m512 d3 = gelu_grad16(_mm512_loadu_ps(g + i + 48), _mm512_loadu_ps(x + i + 48));
        _mm512_storeu_ps(out + i, d0);
        _mm512_storeu_ps(out + i + 16, d1);
        _mm512_storeu_ps(out + i + 32, d2);
        _mm512_storeu_ps(out + i + 48, d3);
    }
    for (; i < n; i += 16) {
        __mmask16 m = first_lanes(n - i);
        _mm512_mask_storeu_ps(
            out + i, m,
            gelu_grad16(_mm512_maskz_loadu_ps(m, g + i), _mm512_maskz_loadu_ps(m, x + i)));
    }
    return true;
}

#else /* elsewhere (no AVX-512, or no FMA) the scalar loops run */

bool lm_cpu_gelu_row(float *out, const float *x, int64_t n) {
    (void)out, (void)x, (void)n;
    return false;
}

bool lm_cpu_gelu_grad_row(float *out, const float *g, const float *x, int64_t n) {
    (void)out, (void)g, (void)x, (void)n;
    return false;
}
#endif
