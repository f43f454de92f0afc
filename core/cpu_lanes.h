/* Masks of the 16 float lanes of an AVX-512 vector, for loops whose last
 * vector is partial (masked-off lanes read as zero and touch no memory). */
#ifndef LM_CPU_LANES_H
#define LM_CPU_LANES_H

#ifdef __AVX512F__
#include <immintrin.h>
#include <stdint.h>

/* The first n lanes of 16 (none for n <= 0, all for n >= 16). */
static inline __mmask16 first_lanes(int64_t n) {
    return (__mmask16)(n <= 0 ? 0 : n >= 16 ? 0xffffu : (1u << n) - 1);
}
#endif

#endif
