#include "lm_alloc.h"

#include <stdlib.h>
#include <string.h>

#include "lm_error.h"
#include "lm_fpenv.h"

#define MIN_BLOCK 256
#define NUM_CLASSES 256
#define ALIGNMENT 64

/* A freed block stores the link to the next free block of its class. */
typedef struct free_block {
    struct free_block *next;
} free_block;

static free_block *free_lists[NUM_CLASSES];
static lm_memory_stats stats;
#ifdef LUMEN_NO_ALLOC_CACHE /* sanitizer builds: let ASan see every free */
static size_t cache_limit = 0;
#else
static size_t cache_limit = (size_t)2 << 30;
#endif
static lm_oom_handler oom_handler;
static void *oom_ud;

/* Size class of `bytes`: 4 classes per power of two above MIN_BLOCK. */
static int size_class(size_t bytes, size_t *rounded) {
    if (bytes <= MIN_BLOCK) {
        *rounded = MIN_BLOCK;
        return 0;
    }
    int log2 = 63 - __builtin_clzll((unsigned long long)(bytes - 1));
    size_t base = (size_t)1 << log2, quarter = base / 4;
    size_t steps = (bytes - base + quarter - 1) / quarter; /* 1..4 */
    *rounded = base + steps * quarter;
    int cls = (log2 - 8) * 4 + (int)steps;
    return cls < NUM_CLASSES ? cls : NUM_CLASSES - 1;
}

void lm_set_oom_handler(lm_oom_handler fn, void *ud) {
    oom_handler = fn;
    oom_ud = ud;
}

void lm_run_oom_handler(void) {
    if (oom_handler) oom_handler(oom_ud);
}

void lm_cpu_set_cache_limit(size_t bytes) {
    cache_limit = bytes;
}

void lm_cpu_empty_cache(void) {
    for (int c = 0; c < NUM_CLASSES; c++) {
        while (free_lists[c]) {
            free_block *b = free_lists[c];
            free_lists[c] = b->next;
            free(b);
        }
    }
    stats.cached_bytes = 0;
}

void *lm_cpu_alloc(size_t bytes) {
    /* every CPU op allocates its result first: the caller's thread gets its
     * flush-to-zero mode before any arithmetic, not only at the first parallel op */
    lm_fpenv_sync();
    size_t rounded;
    int cls = size_class(bytes, &rounded);
    stats.allocations++;
    stats.allocated_total += rounded;
    /* The last class holds blocks of differing sizes: never reuse from it. */
    if (cls < NUM_CLASSES - 1 && free_lists[cls]) {
        free_block *b = free_lists[cls];
        free_lists[cls] = b->next;
        stats.cached_bytes -= rounded;
        stats.cache_hits++;
        stats.live_bytes += rounded;
        if (stats.live_bytes > stats.peak_bytes) stats.peak_bytes = stats.live_bytes;
        return b;
    }
    void *p = aligned_alloc(ALIGNMENT, rounded);
    if (!p) {
        lm_cpu_empty_cache();
        if (oom_handler) oom_handler(oom_ud);
        p = aligned_alloc(ALIGNMENT, rounded);
    }
    if (!p) {
        lm_fail(LM_ERR_MEMORY, "out of memory allocating %zu bytes (%zu bytes live)", bytes,
                stats.live_bytes);
        return NULL;
    }
    stats.live_bytes += rounded;
    if (stats.live_bytes > stats.peak_bytes) stats.peak_bytes = stats.live_bytes;
    return p;
}

void lm_cpu_free(void *ptr, size_t bytes) {
    if (!ptr) return;
    size_t rounded;
    int cls = size_class(bytes, &rounded);
    stats.live_bytes -= rounded;
    if (cls == NUM_CLASSES - 1 || stats.cached_bytes + rounded > cache_limit) {
        free(ptr);
        return;
    }
    free_block *b = ptr;
    b->next = free_lists[cls];
    free_lists[cls] = b;
    stats.cached_bytes += rounded;
}

lm_memory_stats lm_cpu_memory_stats(void) {
    return stats;
}
