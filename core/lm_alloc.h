/* Caching CPU allocator.
 *
 * Why: first touch of a fresh page costs 10-18 us on our virtual machines, and
 * glibc returns large blocks to the kernel on free, so a training loop that
 * allocates the same temporaries every step would pay page faults forever.
 * Freed blocks are kept in size classes (powers of two split in four, so at
 * most 25 % waste) and handed out again; nothing is returned to the kernel
 * unless the cache grows past its limit or lm_cpu_empty_cache() is called.
 * All blocks are 64-byte aligned. Single-threaded use (the Lua thread). */
#ifndef LM_ALLOC_H
#define LM_ALLOC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lm_memory_stats {
    size_t live_bytes;        /* handed out and not yet freed (rounded to class) */
    size_t cached_bytes;      /* freed, kept for reuse */
    size_t peak_bytes;        /* largest live_bytes seen */
    uint64_t allocations;     /* lm_cpu_alloc calls */
    uint64_t allocated_total; /* bytes handed out since the start (rounded to class) */
    uint64_t cache_hits;      /* of which served from the cache */
} lm_memory_stats;

/* Returns NULL (and sets lm_last_error) when memory runs out, after emptying
 * the cache and calling the out-of-memory handler once. */
void *lm_cpu_alloc(size_t bytes);
/* Asks for transparent huge pages on a block of lm_cpu_alloc not yet
 * written (4 MiB and more; smaller ones are left alone): for a data set
 * read a few scattered rows at a time. */
void lm_cpu_advise_huge_pages(void *block, size_t bytes);
/* `bytes` must be the size given to lm_cpu_alloc. NULL is ignored. */
void lm_cpu_free(void *ptr, size_t bytes);
void lm_cpu_empty_cache(void);
lm_memory_stats lm_cpu_memory_stats(void);
/* Starts a new peak: peak_bytes becomes live_bytes (to measure one stage). */
void lm_cpu_reset_peak(void);
/* Upper bound on cached bytes (default 2 GiB); blocks over 64 MiB are
 * never cached. */
void lm_cpu_set_cache_limit(size_t bytes);

/* Called once when an allocation fails, before the retry: the bindings use it
 * to run Lua's collector, which may release tensors. */
typedef void (*lm_oom_handler)(void *ud);
void lm_set_oom_handler(lm_oom_handler fn, void *ud);
/* Runs the handler (the CUDA allocator calls it before its own retry). */
void lm_run_oom_handler(void);

#ifdef __cplusplus
}
#endif

#endif
