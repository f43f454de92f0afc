/* The block kernel the direct convolutions share (cpu_conv_direct_sums.c,
 * AVX-512 builds): a block of output positions by a block of channel lanes,
 * each a sum over sources, a source being one input value under each
 * position (a fixed offset from the position's own) times one weight per
 * lane. The forward pass's sources are its (input channel, kernel row,
 * kernel column) taps; the input gradient's are an (output channel, tap)
 * of one phase of a strided layer. */
#ifndef LM_CPU_CONV_DIRECT_H
#define LM_CPU_CONV_DIRECT_H

#include <stdint.h>

#ifdef __AVX512F__
/* Positions a block keeps in registers, for 32 lanes (two vectors) and 16. */
#define LM_DIRECT_POSITIONS_32 12
#define LM_DIRECT_POSITIONS_16 24

/* tile[q * lanes + l] = sum over sources s < count, in order, of
 * weights[s * stride + l] * plane[source[s] + position[q]], for the block's
 * positions q and lanes l (lanes = 32 or 16 by the function's name). */
void lm_direct_sums32(const float *plane, const int32_t *source, int64_t count,
                      const int32_t *position, const float *weights, int64_t stride, float *tile);
void lm_direct_sums16(const float *plane, const int32_t *source, int64_t count,
                      const int32_t *position, const float *weights, int64_t stride, float *tile);
#endif

#endif
