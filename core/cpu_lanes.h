/* Masks of the 16 float lanes of an AVX-512 vector, for loops whose last
 * vector is partial (masked-off lanes read as zero and touch no memory),
 * and the even elements of a stride-2 row gathered with them. */
#ifndef LM_CPU_LANES_H
#define LM_CPU_LANES_H

#include <stdint.h>

#ifdef __AVX512F__
#include <immintrin.h>

/* The first n lanes of 16 (none for n <= 0, all for n >= 16). */
static inline __mmask16 first_lanes(int64_t n) {
    return (__mmask16)(n <= 0 ? 0 : n >= 16 ? 0xffffu : (1u << n) - 1);
}
#endif

/* dst[k] = src[2 k], k < n: the even elements of 2 n - 1 (a stride-2 row). */
static inline void copy_even(float *restrict dst, const float *restrict src, int64_t n) {
#ifdef __AVX512F__
    const __m512i even =
        _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    for (int64_t k = 0; k < n; k += 16) {
        int64_t left = 2 * (n - k) - 1; /* elements of src still to read */
        __m512 a = _mm512_maskz_loadu_ps(first_lanes(left), src + 2 * k);
        __m512 b = _mm512_maskz_loadu_ps(first_lanes(left - 16), src + 2 * k + 16);
        _mm512_mask_storeu_ps(dst + k, first_lanes(n - k), _mm512_permutex2var_ps(a, even, b));
    }
#else
    for (int64_t k = 0; k < n; k++) dst[k] = src[2 * k];
#endif
}

#endif
