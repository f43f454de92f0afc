#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#include "lm_threads.h"

#include <sched.h>

#include "lm_fpenv.h"

#include <cblas.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <time.h>
#include <unistd.h>

#define MAX_THREADS 64
/* A balanced job's chunks are cut into about this many pieces, none smaller
 * than a quarter of the grain: each piece costs a compare-and-swap and a
 * call, and pieces of a few KB also cut a memory-bound loop's streams short
 * (4 M elements a pass: 153 us in one chunk a thread, 187 us in pieces of
 * 1,024 elements, bench/pool_balance.c) */
#define PIECES_PER_CHUNK 8
#define MIN_PIECES_PER_GRAIN 4
/* How long a waiting thread spins before it sleeps: the ops of a training
 * step arrive tens of microseconds apart, and a sleep and wake-up through
 * the kernel costs as much again on our virtual machines. */
#define SPIN_NS 200000

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Spins (politely) until done(arg) or SPIN_NS have passed; true if done. */
static bool spin_until(bool (*done)(const void *), const void *arg) {
    int64_t start = 0;
    for (unsigned spins = 1;; spins++) {
        if (done(arg)) return true;
        cpu_relax();
        if ((spins & 127) == 0) {
            int64_t t = now_ns();
            if (!start)
                start = t;
            else if (t - start > SPIN_NS)
                return false;
        }
    }
}

static struct {
    pthread_mutex_t mu;
    pthread_cond_t work_cv, done_cv;
    pthread_t workers[MAX_THREADS];
    int nworkers; /* started worker threads (threads - 1) */
    int nthreads; /* wanted threads, 0 = not decided yet */
    atomic_uint_fast64_t generation;
    atomic_int pending;
    /* workers asleep on work_cv, and whether the caller sleeps on done_cv:
     * the condition variables are touched only when someone sleeps, so a
     * job posted to spinning workers costs a few atomic operations */
    atomic_int sleepers;
    atomic_bool caller_sleeps;
    atomic_bool shutdown;
    lm_range_fn fn;
    void *ctx;
    int64_t n;
    int chunks;
    int64_t piece; /* items a piece of a balanced job; 0: each chunk is one call */
    uint_fast64_t start_generation;
} pool = {.mu = PTHREAD_MUTEX_INITIALIZER,
          .work_cv = PTHREAD_COND_INITIALIZER,
          .done_cv = PTHREAD_COND_INITIALIZER};

static _Thread_local bool in_parallel;

/* A balanced job's chunk k is cut into pieces; shares[k] holds the pieces
 * not yet taken, [next, end) packed into one word, so that its owner (taking
 * from the front) and an idle thread (stealing from the back) agree with one
 * compare-and-swap. One cache line each: owners do not contend. */
typedef struct {
    _Alignas(64) atomic_uint_fast64_t pieces;
} share;
static share shares[MAX_THREADS];

static uint_fast64_t pack(uint32_t next, uint32_t end) {
    return (uint_fast64_t)next << 32 | end;
}

/* The cores this process may run on (taskset, a container's cpuset, mpirun
 * binding each rank to its cores), not every core online: spinning workers
 * sharing fewer cores than there are threads run many times slower. */
static int default_threads(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
#ifdef __linux__
    cpu_set_t allowed;
    if (sched_getaffinity(0, sizeof allowed, &allowed) == 0 && CPU_COUNT(&allowed) > 0)
        n = CPU_COUNT(&allowed);
#endif
    return n < 1 ? 1 : n > MAX_THREADS ? MAX_THREADS : (int)n;
}

void lm_parallel_chunk_bounds(int64_t n, int chunks, int k, int64_t *begin, int64_t *end) {
    *begin = n * k / chunks;
    *end = n * (k + 1) / chunks;
}

int lm_parallel_chunks(int64_t n, int64_t grain) {
    int threads = lm_get_num_threads();
    if (grain < 1) grain = 1;
    int64_t by_grain = n / grain;
    if (by_grain < 1) by_grain = 1;
    return by_grain < threads ? (int)by_grain : threads;
}

typedef struct {
    lm_slot_range_fn fn;
    void *ctx;
    atomic_int next_slot;
} slots_job;

static void slot_range(void *ctx, int64_t b, int64_t e) {
    slots_job *j = ctx;
    j->fn(j->ctx, b, e, atomic_fetch_add(&j->next_slot, 1));
}

void lm_parallel_for_slots(int64_t n, int slots, lm_slot_range_fn fn, void *ctx) {
    if (lm_parallel_chunks(n, 1) > slots) {
        fn(ctx, 0, n, 0);
        return;
    }
    slots_job j = {fn, ctx, 0};
    lm_parallel_for(n, 1, slot_range, &j);
}

static void run_piece(int k, uint32_t p) {
    int64_t begin, end;
    lm_parallel_chunk_bounds(pool.n, pool.chunks, k, &begin, &end);
    int64_t lo = begin + (int64_t)p * pool.piece, hi = lo + pool.piece;
    pool.fn(pool.ctx, lo, hi < end ? hi : end);
}

/* Takes one piece of share k, from the front (its owner) or the back. */
static bool take_piece(int k, bool front) {
    uint_fast64_t word = atomic_load_explicit(&shares[k].pieces, memory_order_relaxed);
    for (;;) {
        uint32_t next = (uint32_t)(word >> 32), end = (uint32_t)word;
        if (next >= end) return false;
        uint_fast64_t want = front ? pack(next + 1, end) : pack(next, end - 1);
        if (atomic_compare_exchange_weak_explicit(&shares[k].pieces, &word, want,
                                                  memory_order_relaxed, memory_order_relaxed)) {
            run_piece(k, front ? next : end - 1);
            return true;
        }
    }
}

/* Runs chunk k: whole, or piece by piece and then whatever pieces the other
 * threads have not started (a slower core, or one the system took away for
 * a while, no longer holds the others up). */
static void run_chunk(int k) {
    if (!pool.piece) {
        int64_t begin, end;
        lm_parallel_chunk_bounds(pool.n, pool.chunks, k, &begin, &end);
        if (begin < end) pool.fn(pool.ctx, begin, end);
        return;
    }
    while (take_piece(k, true)) {
    }
    for (int step = 1; step < pool.chunks; step++) {
        int other = (k + step) % pool.chunks;
        while (take_piece(other, false)) {
        }
    }
}

static bool new_generation(const void *seen) {
    return atomic_load_explicit(&pool.generation, memory_order_acquire) !=
           *(const uint_fast64_t *)seen;
}

static bool all_done(const void *unused) {
    (void)unused;
    return atomic_load(&pool.pending) <= 0;
}

static bool new_generation_or_shutdown(const void *seen) {
    return new_generation(seen) || atomic_load(&pool.shutdown);
}

static void *worker_main(void *arg) {
    int index = (int)(intptr_t)arg; /* chunk index, 1.. (the caller runs chunk 0) */
    /* the generation when the pool started, not now: a job may already be posted */
    uint_fast64_t seen = pool.start_generation;
    in_parallel = true;
    for (;;) {
        /* spin a while: consecutive parallel ops arrive microseconds apart */
        if (!spin_until(new_generation_or_shutdown, &seen)) {
            pthread_mutex_lock(&pool.mu);
            atomic_fetch_add(&pool.sleepers, 1); /* before the check: see lm_parallel_for */
            while (atomic_load(&pool.generation) == seen && !atomic_load(&pool.shutdown))
                pthread_cond_wait(&pool.work_cv, &pool.mu);
            atomic_fetch_sub(&pool.sleepers, 1);
            pthread_mutex_unlock(&pool.mu);
        }
        if (atomic_load(&pool.shutdown)) return NULL;
        seen = atomic_load_explicit(&pool.generation, memory_order_acquire);
        lm_fpenv_sync(); /* the flush-to-zero mode is per thread */
        if (index < pool.chunks) run_chunk(index);
        /* the caller's flag is read after the count drops, as it sets the flag
         * before reading the count: one of the two sees the other */
        if (atomic_fetch_sub(&pool.pending, 1) == 1 && atomic_load(&pool.caller_sleeps)) {
            pthread_mutex_lock(&pool.mu);
            pthread_cond_signal(&pool.done_cv);
            pthread_mutex_unlock(&pool.mu);
        }
    }
}

static void stop_workers(void) {
    pthread_mutex_lock(&pool.mu);
    atomic_store(&pool.shutdown, true);
    pthread_cond_broadcast(&pool.work_cv);
    pthread_mutex_unlock(&pool.mu);
    for (int i = 0; i < pool.nworkers; i++) pthread_join(pool.workers[i], NULL);
    pool.nworkers = 0;
    atomic_store(&pool.shutdown, false);
}

static void start_workers(void) {
    int want = pool.nthreads - 1;
    pool.start_generation = atomic_load(&pool.generation);
    for (int i = 0; i < want; i++) {
        if (pthread_create(&pool.workers[i], NULL, worker_main, (void *)(intptr_t)(i + 1)) != 0)
            break; /* fewer workers: chunks beyond them run on the caller */
        pool.nworkers++;
    }
}

void lm_set_num_threads(int n) {
    if (n < 1) n = default_threads();
    if (n > MAX_THREADS) n = MAX_THREADS;
    if (pool.nworkers) stop_workers();
    pool.nthreads = n;
    openblas_set_num_threads(1); /* GEMMs are split over this pool (cpu_matmul.c) */
}

int lm_get_num_threads(void) {
    if (!pool.nthreads) lm_set_num_threads(0);
    return pool.nthreads;
}

static void parallel_run(int64_t n, int64_t grain, bool balanced, lm_range_fn fn, void *ctx) {
    if (n <= 0) return;
    lm_fpenv_sync(); /* the caller's thread too: CPU work starts here */
    int chunks = lm_parallel_chunks(n, grain);
    if (chunks <= 1 || in_parallel) {
        fn(ctx, 0, n);
        return;
    }
    if (pool.nworkers == 0) start_workers();
    pool.fn = fn;
    pool.ctx = ctx;
    pool.n = n;
    pool.chunks = chunks;
    pool.piece = 0;
    if (balanced) {
        int64_t longest = (n + chunks - 1) / chunks;
        int64_t piece = (longest + PIECES_PER_CHUNK - 1) / PIECES_PER_CHUNK;
        if (piece < grain / MIN_PIECES_PER_GRAIN) piece = grain / MIN_PIECES_PER_GRAIN;
        if (piece < 1) piece = 1;
        pool.piece = piece;
        for (int k = 0; k < chunks; k++) {
            int64_t begin, end;
            lm_parallel_chunk_bounds(n, chunks, k, &begin, &end);
            /* published to the workers by the generation's increment below */
            atomic_store_explicit(&shares[k].pieces,
                                  pack(0, (uint32_t)((end - begin + piece - 1) / piece)),
                                  memory_order_relaxed);
        }
    }
    atomic_store(&pool.pending, pool.nworkers);
    /* the job's fields above are published by this increment; a worker
     * counts itself asleep before it checks the generation, and this reads
     * the count after the increment, so no worker sleeps through a job */
    atomic_fetch_add(&pool.generation, 1);
    if (atomic_load(&pool.sleepers) > 0) {
        pthread_mutex_lock(&pool.mu);
        pthread_cond_broadcast(&pool.work_cv);
        pthread_mutex_unlock(&pool.mu);
    }

    in_parallel = true;
    run_chunk(0);
    for (int k = pool.nworkers + 1; k < chunks; k++)
        if (!pool.piece)
            run_chunk(k); /* workers that failed to start (a balanced job's are stolen) */
    in_parallel = false;

    if (spin_until(all_done, NULL)) return;
    pthread_mutex_lock(&pool.mu);
    atomic_store(&pool.caller_sleeps, true);
    while (atomic_load(&pool.pending) > 0) pthread_cond_wait(&pool.done_cv, &pool.mu);
    atomic_store(&pool.caller_sleeps, false);
    pthread_mutex_unlock(&pool.mu);
}

void lm_parallel_for(int64_t n, int64_t grain, lm_range_fn fn, void *ctx) {
    parallel_run(n, grain, false, fn, ctx);
}

void lm_parallel_for_balanced(int64_t n, int64_t grain, lm_range_fn fn, void *ctx) {
    parallel_run(n, grain, true, fn, ctx);
}
