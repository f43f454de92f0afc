/* The global random stream behind lm.manual_seed.
 *
 * State is (seed, offset): a draw uses the Philox blocks offset .. offset+k-1
 * (k = n/4 rounded up for uniform and Bernoulli numbers, n/2 for normals,
 * n for a permutation) and advances the offset by k. The same seed
 * therefore gives the same numbers on every machine, thread count and
 * device. */
#ifndef LM_RNG_H
#define LM_RNG_H

#include <stdint.h>

#include "lm_tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LM_DEFAULT_SEED 0x4C756D656EULL /* "Lumen": runs are reproducible by default */

void lm_manual_seed(uint64_t seed);
uint64_t lm_rng_seed(void);
uint64_t lm_rng_offset(void);
void lm_rng_set_state(uint64_t seed, uint64_t offset);
/* Reserves n counters and returns the first. */
uint64_t lm_rng_reserve(uint64_t n);

/* Uniform in [low, high), normal(mean, std), bernoulli(p): in place. */
lm_status lm_rand_uniform_(lm_tensor *t, double low, double high);
lm_status lm_rand_normal_(lm_tensor *t, double mean, double std);
lm_status lm_rand_bernoulli_(lm_tensor *t, double p);
/* Dropout mask: 1/keep with probability keep, else 0. */
lm_status lm_rand_dropout_mask_(lm_tensor *t, double keep);
/* A random permutation of 0..n-1 as a CPU int32 tensor. */
lm_status lm_randperm(lm_tensor **out, int64_t n);

#ifdef __cplusplus
}
#endif

#endif
