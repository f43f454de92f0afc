/* A small persistent thread pool for elementwise work and reductions.
 *
 * Why not OpenMP: libgomp's idle threads spin after each parallel region and
 * steal the cores OpenBLAS's own threads need for the GEMM that follows.
 * These workers spin a while (about 0.2 ms) and then sleep. Work is split into at most
 * one contiguous chunk per thread, decided only by n, grain and the thread
 * count, so results (including reductions) are reproducible for a given
 * thread count. Calls from inside a running chunk run inline. */
#ifndef LM_THREADS_H
#define LM_THREADS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Sets the threads of both this pool and OpenBLAS. n < 1 means "all cores". */
void lm_set_num_threads(int n);
int lm_get_num_threads(void);

typedef void (*lm_range_fn)(void *ctx, int64_t begin, int64_t end);

/* Runs fn over [0, n) in chunks of at least `grain` items, one call a chunk,
 * each thread its own chunk (for work with a cost per call: a GEMM packs
 * its operands again for every call). */
void lm_parallel_for(int64_t n, int64_t grain, lm_range_fn fn, void *ctx);

/* The same chunks, each run in about 8 pieces (of grain / 4 items at least), and
 * a thread done with its own chunk takes the pieces not yet started from
 * the back of the others': when one core runs slower (a busy sibling on a
 * virtual machine, an efficiency core of a laptop) the others take over
 * its rest instead of waiting. For work whose items are independent (fn
 * gets any sub-range): elementwise ops, random draws, optimiser updates. */
void lm_parallel_for_balanced(int64_t n, int64_t grain, lm_range_fn fn, void *ctx);

/* How many chunks lm_parallel_for(n, grain, ...) would use, and the bounds of
 * chunk k of them: for reductions that keep one partial result per chunk. */
int lm_parallel_chunks(int64_t n, int64_t grain);
void lm_parallel_chunk_bounds(int64_t n, int chunks, int k, int64_t *begin, int64_t *end);

/* For work whose calls each need a buffer of their own: runs fn over
 * [0, n) as lm_parallel_for(n, 1, ...) does, each call with its own slot
 * below `slots`, which the caller counted as lm_parallel_chunks(n, 1) and
 * gave a buffer each. Should the thread count have grown since (a
 * finaliser run by an out-of-memory collection), one call does it all in
 * slot 0. */
typedef void (*lm_slot_range_fn)(void *ctx, int64_t begin, int64_t end, int slot);
void lm_parallel_for_slots(int64_t n, int slots, lm_slot_range_fn fn, void *ctx);

#define LM_GRAIN_ELEMENTWISE 8192

#ifdef __cplusplus
}
#endif

#endif
