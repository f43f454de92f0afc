/* The CPU allocator: a block given lm_cpu_advise_huge_pages (a data set's) is
 * eligible for transparent huge pages, the kernel's smaps says, and other
 * blocks are not (meaningful where the system's setting is "madvise",
 * Debian's default: under "always" every block is eligible); and a step
 * that allocates several 512 MiB periods keeps every size it uses once a
 * step. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lm_alloc.h"
#include "test.h"

#ifdef LUMEN_NO_ALLOC_CACHE
#define LUMEN_ALLOCATOR_MAPS 0
#else
#define LUMEN_ALLOCATOR_MAPS 1
#endif

/* The kernel's THPeligible flag of the mapping that holds p: 1, 0, or -1 when
 * smaps does not say (an old kernel). */
static int thp_eligible(const void *p) {
    FILE *f = fopen("/proc/self/smaps", "r");
    if (!f) return -1;
    char line[512];
    int inside = 0, flag = -1;
    uintptr_t addr = (uintptr_t)p;
    while (fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2) { /* a mapping's first line */
            inside = addr >= lo && addr < hi;
            continue;
        }
        if (inside && sscanf(line, "THPeligible: %d", &flag) == 1) break;
    }
    fclose(f);
    return flag;
}

/* Whether the system gives huge pages only to blocks that ask ("madvise"). */
static int thp_on_request(void) {
    FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
    if (!f) return 0;
    char setting[128] = "";
    if (!fgets(setting, sizeof setting, f)) setting[0] = 0;
    fclose(f);
    return strstr(setting, "[madvise]") != NULL;
}

static void test_huge_pages_on_request(void) {
    if (LUMEN_ALLOCATOR_MAPS == 0) {
        printf("skipped: sanitizer builds allocate through malloc, which maps nothing itself\n");
        return;
    }
    if (!thp_on_request()) {
        printf("skipped: transparent huge pages are not set to 'madvise' on this system\n");
        return;
    }
    size_t big = (size_t)8 << 20;
    char *data = lm_cpu_alloc(big), *other = lm_cpu_alloc(big);
    CHECK(data != NULL && other != NULL);
    lm_cpu_advise_huge_pages(data, big);
    memset(data, 1, big);
    memset(other, 1, big);
    int flag = thp_eligible(data);
    if (flag < 0) {
        printf("skipped: this kernel's smaps has no THPeligible\n");
    } else {
        CHECK(flag == 1);
        CHECK(thp_eligible(other) == 0);
    }
    /* freed, the advised block goes back to the system, not into the
     * cache: the next block of its size is not it with its huge pages */
    lm_memory_stats before = lm_cpu_memory_stats();
    lm_cpu_free(data, big);
    lm_memory_stats after = lm_cpu_memory_stats();
    CHECK(after.cached_bytes == before.cached_bytes);
    lm_cpu_free(other, big);
    CHECK(lm_cpu_memory_stats().cached_bytes > after.cached_bytes); /* an ordinary block is kept */
}

/* A step like a large network's training step: one small block used and
 * freed, then four rounds of 20 blocks of 48 MiB live together and freed
 * (3.8 GiB in all, seven 512 MiB trim periods, about three times the
 * step's peak of live bytes; mapped and never written, so nothing is
 * resident). From the third step on every block comes from the cache: the
 * small one too, used once a step. */
static void test_large_steps_keep_their_sizes(void) {
    if (LUMEN_ALLOCATOR_MAPS == 0) {
        printf("skipped: the caching allocator is off in this build\n");
        return;
    }
    lm_cpu_empty_cache();
    lm_cpu_reset_peak();
    enum { BIG = 20, ROUNDS = 4 };
    size_t small_bytes = (size_t)3 << 20, big_bytes = (size_t)48 << 20;
    uint64_t misses = 0;
    for (int step = 0; step < 5; step++) {
        lm_memory_stats before = lm_cpu_memory_stats();
        void *small = lm_cpu_alloc(small_bytes), *big[BIG];
        CHECK(small != NULL);
        lm_cpu_free(small, small_bytes); /* cached while the rounds run */
        for (int round = 0; round < ROUNDS; round++) {
            for (int i = 0; i < BIG; i++) big[i] = lm_cpu_alloc(big_bytes);
            for (int i = 0; i < BIG; i++) lm_cpu_free(big[i], big_bytes);
        }
        lm_memory_stats after = lm_cpu_memory_stats();
        if (step >= 2)
            misses +=
                (after.allocations - before.allocations) - (after.cache_hits - before.cache_hits);
    }
    CHECK(misses == 0);
    lm_cpu_empty_cache();
}

TEST_MAIN(test_huge_pages_on_request, test_large_steps_keep_their_sizes)
