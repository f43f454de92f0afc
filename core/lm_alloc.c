/* MAP_ANONYMOUS is outside POSIX 2008 (the build's _POSIX_C_SOURCE) */
#define _DEFAULT_SOURCE
#include "lm_alloc.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <string.h>
#include <sys/mman.h>

#include "lm_error.h"
#include "lm_fpenv.h"

#define MIN_BLOCK 256
#define NUM_CLASSES 256
#define ALIGNMENT 64
#define LARGE_BLOCK ((size_t)64 << 20)

/* Blocks of 1 MiB and more are mapped from the kernel and unmapped when they
 * leave the cache, so their pages go back at once: from glibc's heap they
 * would often stay resident after free (its mmap threshold rises as large
 * blocks are freed, up to 32 MiB), 260 MB of them in the main experiment.
 * Sanitizer builds keep malloc so that ASan sees every block. */
#define MAPPED_BLOCK ((size_t)1 << 20)

/* The smallest block lm_cpu_advise_huge_pages asks huge pages for. */
#define HUGE_PAGE_BLOCK ((size_t)4 << 20)
#ifdef LUMEN_NO_ALLOC_CACHE
#define USE_MMAP 0
#else
#define USE_MMAP 1
#endif

static void *system_alloc(size_t rounded) {
    if (USE_MMAP && rounded >= MAPPED_BLOCK) {
        void *p = mmap(NULL, rounded, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        return p == MAP_FAILED ? NULL : p; /* page-aligned, so 64-byte aligned */
    }
    return aligned_alloc(ALIGNMENT, rounded);
}

static void system_free(void *p, size_t rounded) {
    if (USE_MMAP && rounded >= MAPPED_BLOCK)
        munmap(p, rounded);
    else
        free(p);
}

/* A freed block stores the link to the next free block of its class. */
typedef struct free_block {
    struct free_block *next;
} free_block;

static free_block *free_lists[NUM_CLASSES];
static lm_memory_stats stats;
/* Idle classes are trimmed: a period ends every TRIM_PERIOD allocations or
 * once TRIM_BYTES, or four times the peak of live bytes if more, have been
 * allocated, and the cached blocks of a class neither reused nor refilled
 * in the last three periods go back to the system. A training loop touches
 * its classes every step and keeps them; the sizes of a finished stage stop
 * being resident. (A step allocates about three times its peak: with 512
 * MiB periods alone, a DenseNet-121 step at batch 8 spanned seven, and the
 * classes it touched once a step were trimmed and faulted in again, 40
 * blocks a step, 10 % of its time clearing fresh pages.) */
#define TRIM_PERIOD 4096
#define TRIM_BYTES ((uint64_t)512 << 20)
#define TRIM_PEAKS 4
#define TRIM_IDLE_PERIODS 3
static uint64_t class_period[NUM_CLASSES]; /* the period a class was last touched in */
static uint64_t period, period_bytes;
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

/* The rounded size of the blocks of class `cls` (the inverse of size_class). */
static size_t class_bytes(int cls) {
    if (cls == 0) return MIN_BLOCK;
    int log2 = 8 + (cls - 1) / 4;
    size_t base = (size_t)1 << log2;
    return base + (size_t)((cls - 1) % 4 + 1) * (base / 4);
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

static void free_class(int c) {
    while (free_lists[c]) {
        free_block *b = free_lists[c];
        free_lists[c] = b->next;
        system_free(b, class_bytes(c));
        stats.cached_bytes -= class_bytes(c);
    }
}

void lm_cpu_empty_cache(void) {
    for (int c = 0; c < NUM_CLASSES; c++) free_class(c);
#ifdef __GLIBC__
    malloc_trim(0); /* glibc's heap: free pages of small blocks back too */
#endif
}

static void trim_idle_classes(void) {
    for (int c = 0; c < NUM_CLASSES; c++)
        if (free_lists[c] && class_period[c] + TRIM_IDLE_PERIODS <= period) free_class(c);
    period++;
    period_bytes = 0;
}

void *lm_cpu_alloc(size_t bytes) {
    /* every CPU op allocates its result first: the caller's thread gets its
     * flush-to-zero mode before any arithmetic, not only at the first parallel op */
    lm_fpenv_sync();
    size_t rounded;
    int cls = size_class(bytes, &rounded);
    period_bytes += rounded;
    uint64_t period_limit = (uint64_t)stats.peak_bytes * TRIM_PEAKS;
    if (period_limit < TRIM_BYTES) period_limit = TRIM_BYTES;
    if (++stats.allocations % TRIM_PERIOD == 0 || period_bytes >= period_limit) trim_idle_classes();
    class_period[cls] = period;
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
    void *p = system_alloc(rounded);
    if (!p) {
        lm_cpu_empty_cache();
        if (oom_handler) {
            oom_handler(oom_ud);
            lm_cpu_empty_cache(); /* what the handler's collection freed went to the cache */
        }
        p = system_alloc(rounded);
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

/* Data sets read a few scattered rows at a time (a shuffled batch) ask for
 * transparent huge pages (2 MiB): with 4 KiB pages nearly every row costs a
 * TLB miss, a two-level page walk on a virtual machine. 128 rows of MNIST
 * between Net1 training steps, alternated runs: bytes 241-250 -> 66-71 us,
 * floats 986-1019 -> 101-108 us. Only for data sets: the same hint on a
 * 518 MB recording made the InfoVAE's steps, which do not touch it, 10-15 %
 * slower on this VM (5,730-5,990 against 6,390-6,730 us, reason not found).
 * So an advised block is never handed to another tensor: lm_cpu_free gives
 * it back to the system. A hint the system's setting may ignore ("never"). */
#define MAX_ADVISED 64
static void *advised[MAX_ADVISED];

void lm_cpu_advise_huge_pages(void *block, size_t bytes) {
#ifdef MADV_HUGEPAGE
    if (!USE_MMAP || !block || bytes < HUGE_PAGE_BLOCK) return;
    for (int i = 0; i < MAX_ADVISED; i++) {
        if (!advised[i]) {
            advised[i] = block;
            madvise(block, bytes, MADV_HUGEPAGE);
            return;
        }
    }
#else
    (void)block, (void)bytes;
#endif
}

/* Whether `ptr` was advised; forgets it. */
static bool take_advised(void *ptr) {
    for (int i = 0; i < MAX_ADVISED; i++) {
        if (advised[i] == ptr) {
            advised[i] = NULL;
            return true;
        }
    }
    return false;
}

void lm_cpu_free(void *ptr, size_t bytes) {
    if (!ptr) return;
    size_t rounded;
    int cls = size_class(bytes, &rounded);
    stats.live_bytes -= rounded;
    /* Blocks past LARGE_BLOCK (whole-set temporaries, not a step's) go back
     * to the system: glibc maps them, so free returns their pages, where
     * cached they would stay resident for a size that rarely recurs. */
    bool was_advised = take_advised(ptr); /* (a data set's huge pages: not for others) */
    if (was_advised || cls == NUM_CLASSES - 1 || rounded > LARGE_BLOCK ||
        stats.cached_bytes + rounded > cache_limit) {
        system_free(ptr, rounded);
        return;
    }
    free_block *b = ptr;
    b->next = free_lists[cls];
    free_lists[cls] = b;
    class_period[cls] = period;
    stats.cached_bytes += rounded;
}

lm_memory_stats lm_cpu_memory_stats(void) {
    return stats;
}

void lm_cpu_reset_peak(void) {
    stats.peak_bytes = stats.live_bytes;
}
