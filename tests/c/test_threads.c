/* The thread pool: lm_parallel_for runs each item once, one call per chunk;
 * lm_parallel_for_balanced runs each item once too, and a thread that ends
 * its own chunk early takes pieces of a slower thread's. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#include "lm_autograd.h"
#include "lm_ops.h"
#include "lm_threads.h"
#include "test.h"

#define MAX_ITEMS 100000

typedef struct {
    atomic_int runs[MAX_ITEMS];
    atomic_int calls;
    pthread_t caller;
    atomic_int by_others; /* items of the caller's chunk (the first) run by another thread */
    int64_t first_chunk_end;
    long slow_ns; /* extra time for each item of the first chunk */
} count_job;

static count_job job;

static void spin_ns(long ns) {
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    do clock_gettime(CLOCK_MONOTONIC, &b);
    while ((b.tv_sec - a.tv_sec) * 1000000000L + (b.tv_nsec - a.tv_nsec) < ns);
}

static void count_items(void *ctx, int64_t begin, int64_t end) {
    count_job *j = ctx;
    atomic_fetch_add(&j->calls, 1);
    for (int64_t i = begin; i < end; i++) {
        atomic_fetch_add(&j->runs[i], 1);
        if (i < j->first_chunk_end) {
            if (!pthread_equal(pthread_self(), j->caller)) atomic_fetch_add(&j->by_others, 1);
            if (j->slow_ns) spin_ns(j->slow_ns);
        }
    }
}

static void reset(int64_t n, int chunks, long slow_ns) {
    for (int64_t i = 0; i < n; i++) atomic_store(&job.runs[i], 0);
    atomic_store(&job.calls, 0);
    atomic_store(&job.by_others, 0);
    job.caller = pthread_self();
    int64_t begin;
    lm_parallel_chunk_bounds(n, chunks, 0, &begin, &job.first_chunk_end);
    job.slow_ns = slow_ns;
}

static int items_not_run_once(int64_t n) {
    int bad = 0;
    for (int64_t i = 0; i < n; i++) bad += atomic_load(&job.runs[i]) != 1;
    return bad;
}

static void test_every_item_once(void) {
    const int thread_counts[] = {1, 2, 3, 5, 8};
    const int64_t sizes[] = {1, 7, 100, 1023, 8192, 25600, MAX_ITEMS};
    const int64_t grains[] = {1, 8, 1000, 8192};
    for (size_t t = 0; t < sizeof thread_counts / sizeof *thread_counts; t++) {
        lm_set_num_threads(thread_counts[t]);
        for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
            for (size_t g = 0; g < sizeof grains / sizeof *grains; g++) {
                int64_t n = sizes[s], grain = grains[g];
                int chunks = lm_parallel_chunks(n, grain);
                reset(n, chunks, 0);
                lm_parallel_for(n, grain, count_items, &job);
                CHECK(items_not_run_once(n) == 0);
                CHECK(atomic_load(&job.calls) == chunks); /* one call a chunk */
                reset(n, chunks, 0);
                lm_parallel_for_balanced(n, grain, count_items, &job);
                CHECK(items_not_run_once(n) == 0);
                CHECK(atomic_load(&job.calls) >= chunks);
            }
        }
    }
}

/* The caller's chunk is slow (20 ms in all): the other thread, done with its
 * own in microseconds, takes some of the caller's pieces; the static split
 * leaves them all to the caller. */
static void test_idle_thread_takes_over(void) {
    lm_set_num_threads(2);
    int64_t n = 4096, grain = 64; /* two chunks of 2048 items, 8 pieces of 256 each */
    reset(n, 2, 20000000L / 2048);
    lm_parallel_for_balanced(n, grain, count_items, &job);
    CHECK(items_not_run_once(n) == 0);
    CHECK(atomic_load(&job.by_others) > 0);
    reset(n, 2, 0);
    lm_parallel_for(n, grain, count_items, &job);
    CHECK(atomic_load(&job.by_others) == 0);
}

/* lm_parallel_for_slots: each call has a slot of its own, below the count
 * the caller made; when there are fewer slots than calls, one call does it
 * all in slot 0. */
typedef struct {
    atomic_int runs[64], slot_used[8], calls;
    int bad_slot;
} slots_check;

static void count_slot(void *ctx, int64_t b, int64_t e, int slot) {
    slots_check *c = ctx;
    if (slot < 0 || slot >= 8) {
        c->bad_slot = 1;
        return;
    }
    atomic_fetch_add(&c->slot_used[slot], 1);
    atomic_fetch_add(&c->calls, 1);
    for (int64_t i = b; i < e; i++) atomic_fetch_add(&c->runs[i], 1);
}

static void test_slots(void) {
    static slots_check c;
    for (int threads = 1; threads <= 4; threads++) {
        lm_set_num_threads(threads);
        for (int counted = 1; counted <= 4; counted++) {
            int64_t n = 64;
            for (int i = 0; i < 64; i++) atomic_store(&c.runs[i], 0);
            for (int i = 0; i < 8; i++) atomic_store(&c.slot_used[i], 0);
            atomic_store(&c.calls, 0);
            c.bad_slot = 0;
            /* the caller counted `counted` slots: as many as the calls, or fewer */
            int slots = counted < lm_parallel_chunks(n, 1) ? counted : lm_parallel_chunks(n, 1);
            lm_parallel_for_slots(n, slots, count_slot, &c);
            CHECK(c.bad_slot == 0);
            for (int i = 0; i < 64; i++) CHECK(atomic_load(&c.runs[i]) == 1);
            int calls = atomic_load(&c.calls);
            CHECK(calls == (lm_parallel_chunks(n, 1) <= slots ? lm_parallel_chunks(n, 1) : 1));
            for (int k = 0; k < 8; k++) /* each slot at most once, and only below `slots` */
                CHECK(atomic_load(&c.slot_used[k]) == (k < calls ? 1 : 0));
        }
    }
}

/* A thread that drops a chain of recorded ops frees its graph through a
 * thread-local list of waiting states (lm_autograd_meta.c); the list must
 * go with the thread (LeakSanitizer, in the sanitizer build, reports it
 * otherwise). */
static void *drop_chain(void *arg) {
    int *done = arg;
    int64_t shape[1] = {4};
    lm_tensor *x = NULL;
    if (lm_tensor_new(&x, LM_FLOAT32, LM_CPU, 1, shape) != LM_OK) return NULL;
    lm_fill_(x, 1.0);
    lm_set_requires_grad(x, true);
    lm_tensor *y = lm_tensor_retain(x);
    int steps = 0;
    for (; steps < 300; steps++) {
        lm_tensor *z = NULL;
        if (lm_ag_binary_scalar(&z, LM_MUL, y, 1.0, false) != LM_OK) break;
        lm_tensor_release(y);
        y = z;
    }
    lm_tensor_release(x);
    lm_tensor_release(y);
    *done = steps;
    return NULL;
}

static void test_thread_drops_a_graph(void) {
    for (int i = 0; i < 3; i++) {
        int done = 0;
        pthread_t t;
        CHECK(pthread_create(&t, NULL, drop_chain, &done) == 0);
        CHECK(pthread_join(t, NULL) == 0);
        CHECK(done == 300);
    }
}

TEST_MAIN(test_every_item_once, test_idle_thread_takes_over, test_slots, test_thread_drops_a_graph)
