/* The thread pool's two schedules on the same work, alternated in one
 * process: lm_parallel_for (one contiguous chunk a thread) against
 * lm_parallel_for_balanced (chunks in pieces, an idle thread taking a slower
 * one's), best of 10 rounds of 200 calls each.
 *   bench_pool_balance [threads]
 * On a machine whose cores run at one speed both take the same time; where
 * one core is slower (a busy sibling, a VM's neighbours, an efficiency core)
 * the balanced one waits less. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "lm_threads.h"

static float data[1 << 22];

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* `passes` multiply-adds over each element: compute-bound with many passes,
 * memory-bound with one pass over a large array */
static void work(void *ctx, int64_t begin, int64_t end) {
    int passes = *(const int *)ctx;
    for (int p = 0; p < passes; p++)
        for (int64_t i = begin; i < end; i++) data[i] = data[i] * 0.999f + 1.0f;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 2;
    lm_set_num_threads(threads);
    const struct {
        int64_t n;
        int passes;
    } cases[] = {{25600, 1}, {25600, 20}, {600000, 1}, {1 << 22, 1}};
    printf("pool schedules, %d thread(s), best of 10 x 200 calls\n", threads);
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        double best[2] = {1e30, 1e30};
        for (int round = 0; round < 10; round++) {
            for (int balanced = 0; balanced < 2; balanced++) {
                double t0 = now();
                for (int k = 0; k < 200; k++) {
                    if (balanced)
                        lm_parallel_for_balanced(cases[c].n, 8192, work, (void *)&cases[c].passes);
                    else
                        lm_parallel_for(cases[c].n, 8192, work, (void *)&cases[c].passes);
                }
                double us = (now() - t0) / 200 * 1e6;
                if (us < best[balanced]) best[balanced] = us;
            }
        }
        printf("%8lld elements x %2d passes: one chunk a thread %8.2f us, balanced %8.2f us\n",
               (long long)cases[c].n, cases[c].passes, best[0], best[1]);
    }
    return 0;
}
