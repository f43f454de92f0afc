/* Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2,
 * 3", SC'11): a counter-based generator, so the n-th number of a stream is a
 * pure function of (key, n). Header-only, and calling nothing the GPU lacks,
 * so the CUDA backend compiles the very same code (LM_HOST_DEVICE). */
#ifndef LM_PHILOX_H
#define LM_PHILOX_H

#include <math.h>
#include <stdint.h>

#include "lm_host_device.h"

typedef struct lm_philox_block {
    uint32_t v[4];
} lm_philox_block;

LM_HOST_DEVICE static inline lm_philox_block lm_philox4x32(uint64_t counter, uint64_t key64) {
    uint32_t c0 = (uint32_t)counter, c1 = (uint32_t)(counter >> 32), c2 = 0, c3 = 0;
    uint32_t k0 = (uint32_t)key64, k1 = (uint32_t)(key64 >> 32);
    for (int round = 0; round < 10; round++) {
        uint64_t p0 = (uint64_t)0xD2511F53u * c0, p1 = (uint64_t)0xCD9E8D57u * c2;
        uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0;
        uint32_t hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
        c0 = hi1 ^ c1 ^ k0;
        c1 = lo1;
        c2 = hi0 ^ c3 ^ k1;
        c3 = lo0;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    lm_philox_block b = {{c0, c1, c2, c3}};
    return b;
}

/* The Bernoulli draw's rule on every device (random fills, dropout): a word
 * gives 1 with probability p when its top 24 bits are below this. */
LM_HOST_DEVICE static inline uint32_t lm_bernoulli_threshold(double p) {
    return (uint32_t)ceil(p * 16777216.0);
}

/* Sixteen consecutive blocks (counters first .. first+15) at once: the same
 * arithmetic as lm_philox4x32, laid out lane by lane so that compilers
 * vectorise it (32x32->64-bit multiplies). out[w][l] is word w of block l. */
#define LM_PHILOX_LANES 16
#if defined(__AVX512F__) && !defined(__CUDACC__)
#include <immintrin.h>
/* AVX-512: 16 blocks as two vectors of eight 64-bit lanes, each holding a
 * 32-bit word, so vpmuludq does the 32x32->64 products (compilers pick the
 * slower 64-bit vpmullq for the portable loop below). Same results. */
static inline void lm_philox4x32_lanes(uint64_t first, uint64_t key64,
                                       uint32_t out[4][LM_PHILOX_LANES]) {
    const __m512i m0 = _mm512_set1_epi64(0xD2511F53), m1 = _mm512_set1_epi64(0xCD9E8D57);
    const __m512i low = _mm512_set1_epi64(0xffffffff);
    __m512i c0[2], c1[2], c2[2], c3[2];
    for (int h = 0; h < 2; h++) {
        __m512i ctr = _mm512_add_epi64(_mm512_set1_epi64((long long)(first + 8 * (uint64_t)h)),
                                       _mm512_setr_epi64(0, 1, 2, 3, 4, 5, 6, 7));
        c0[h] = _mm512_and_si512(ctr, low);
        c1[h] = _mm512_srli_epi64(ctr, 32);
        c2[h] = c3[h] = _mm512_setzero_si512();
    }
    uint32_t k0 = (uint32_t)key64, k1 = (uint32_t)(key64 >> 32);
    for (int round = 0; round < 10; round++) {
        __m512i kk0 = _mm512_set1_epi64(k0), kk1 = _mm512_set1_epi64(k1);
        for (int h = 0; h < 2; h++) {
            __m512i p0 = _mm512_mul_epu32(c0[h], m0), p1 = _mm512_mul_epu32(c2[h], m1);
            __m512i n0 = _mm512_xor_si512(_mm512_xor_si512(_mm512_srli_epi64(p1, 32), c1[h]), kk0);
            __m512i n2 = _mm512_xor_si512(_mm512_xor_si512(_mm512_srli_epi64(p0, 32), c3[h]), kk1);
            c1[h] = _mm512_and_si512(p1, low);
            c3[h] = _mm512_and_si512(p0, low);
            c0[h] = n0;
            c2[h] = n2;
        }
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    for (int h = 0; h < 2; h++) {
        _mm256_storeu_si256((__m256i *)(out[0] + 8 * h), _mm512_cvtepi64_epi32(c0[h]));
        _mm256_storeu_si256((__m256i *)(out[1] + 8 * h), _mm512_cvtepi64_epi32(c1[h]));
        _mm256_storeu_si256((__m256i *)(out[2] + 8 * h), _mm512_cvtepi64_epi32(c2[h]));
        _mm256_storeu_si256((__m256i *)(out[3] + 8 * h), _mm512_cvtepi64_epi32(c3[h]));
    }
}
#else
static inline void lm_philox4x32_lanes(uint64_t first, uint64_t key64,
                                       uint32_t out[4][LM_PHILOX_LANES]) {
    uint32_t c0[LM_PHILOX_LANES], c1[LM_PHILOX_LANES], c2[LM_PHILOX_LANES], c3[LM_PHILOX_LANES];
    for (int l = 0; l < LM_PHILOX_LANES; l++) {
        uint64_t ctr = first + (uint64_t)l;
        c0[l] = (uint32_t)ctr, c1[l] = (uint32_t)(ctr >> 32), c2[l] = 0, c3[l] = 0;
    }
    uint32_t k0 = (uint32_t)key64, k1 = (uint32_t)(key64 >> 32);
    for (int round = 0; round < 10; round++) {
        for (int l = 0; l < LM_PHILOX_LANES; l++) {
            uint64_t p0 = (uint64_t)0xD2511F53u * c0[l], p1 = (uint64_t)0xCD9E8D57u * c2[l];
            uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1[l] ^ k0, n2 = (uint32_t)(p0 >> 32) ^ c3[l] ^ k1;
            c1[l] = (uint32_t)p1;
            c3[l] = (uint32_t)p0;
            c0[l] = n0;
            c2[l] = n2;
        }
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    for (int l = 0; l < LM_PHILOX_LANES; l++)
        out[0][l] = c0[l], out[1][l] = c1[l], out[2][l] = c2[l], out[3][l] = c3[l];
}
#endif

/* Uniform in [0, 1) with 24 random bits: exactly representable in float32. */
LM_HOST_DEVICE static inline float lm_philox_uniform(uint32_t bits) {
    return (float)(bits >> 8) * (1.0f / 16777216.0f);
}

#endif
