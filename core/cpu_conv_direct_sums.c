/* The direct convolutions' block kernel (cpu_conv_direct.h): for each
 * source, one or two vectors of weights are loaded and the input value
 * under each position of the block is broadcast against them, the block's
 * 24 sums held in registers for the whole run over the sources. */
#include "cpu_conv_direct.h"

#ifdef __AVX512F__
#include <immintrin.h>

void lm_direct_sums32(const float *plane, const int32_t *source, int64_t count,
                      const int32_t *position, const float *weights, int64_t stride, float *tile) {
    enum { P = LM_DIRECT_POSITIONS_32 };
    __m512 acc[P][2];
    for (int q = 0; q < P; q++) acc[q][0] = acc[q][1] = _mm512_setzero_ps();
    for (int64_t s = 0; s < count; s++, weights += stride) {
        const float *base = plane + source[s];
        __m512 w0 = _mm512_loadu_ps(weights), w1 = _mm512_loadu_ps(weights + 16);
#pragma GCC unroll 12
        for (int q = 0; q < P; q++) {
            __m512 v = _mm512_set1_ps(base[position[q]]);
            acc[q][0] = _mm512_fmadd_ps(v, w0, acc[q][0]);
            acc[q][1] = _mm512_fmadd_ps(v, w1, acc[q][1]);
        }
    }
    for (int q = 0; q < P; q++) {
        _mm512_storeu_ps(tile + q * 32, acc[q][0]);
        _mm512_storeu_ps(tile + q * 32 + 16, acc[q][1]);
    }
}

void lm_direct_sums16(const float *plane, const int32_t *source, int64_t count,
                      const int32_t *position, const float *weights, int64_t stride, float *tile) {
    enum { P = LM_DIRECT_POSITIONS_16 };
    __m512 acc[P];
    for (int q = 0; q < P; q++) acc[q] = _mm512_setzero_ps();
    for (int64_t s = 0; s < count; s++, weights += stride) {
        const float *base = plane + source[s];
        __m512 w0 = _mm512_loadu_ps(weights);
#pragma GCC unroll 24
        for (int q = 0; q < P; q++)
            acc[q] = _mm512_fmadd_ps(_mm512_set1_ps(base[position[q]]), w0, acc[q]);
    }
    for (int q = 0; q < P; q++) _mm512_storeu_ps(tile + q * 16, acc[q]);
}
#else
typedef int lm_direct_sums_unused; /* an empty translation unit is not ISO C */
#endif
