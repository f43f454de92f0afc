/* Lumen's matmul against cblas_sgemm called directly on the same shapes.
 *   bench_matmul [threads]
 * Prints one line per case: shape, layout, Lumen and direct BLAS GFLOP/s and
 * their ratio. The "nt" layout is x @ W^T with W stored [out, in], as a
 * Linear layer does it (a transposed view handed to BLAS without a copy). */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "lm_ops.h"
#include "lm_rng.h"
#include "lm_threads.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static lm_tensor *randn2(int64_t r, int64_t c) {
    lm_tensor *t;
    int64_t s[2] = {r, c};
    lm_tensor_new(&t, LM_FLOAT32, LM_CPU, 2, s);
    lm_rand_normal_(t, 0, 1);
    return t;
}

/* Best of 5 runs of `reps` calls, in seconds per call. */
#define TIME_BEST(reps, stmt)                                                                      \
    ({                                                                                             \
        double best_ = 1e30;                                                                       \
        for (int run_ = 0; run_ < 5; run_++) {                                                     \
            double t0_ = now();                                                                    \
            for (int rep_ = 0; rep_ < (reps); rep_++) {                                            \
                stmt;                                                                              \
            }                                                                                      \
            double dt_ = (now() - t0_) / (reps);                                                   \
            if (dt_ < best_) best_ = dt_;                                                          \
        }                                                                                          \
        best_;                                                                                     \
    })

static void bench(int64_t M, int64_t K, int64_t N, bool transposed_b) {
    lm_tensor *a = randn2(M, K), *b_store = transposed_b ? randn2(N, K) : randn2(K, N), *b;
    if (transposed_b)
        lm_tensor_transpose(&b, b_store, 0, 1);
    else
        b = lm_tensor_retain(b_store);
    lm_tensor *out = NULL;
    float *c = aligned_alloc(64, (size_t)(M * N * 4 + 64) / 64 * 64);
    double flops = 2.0 * M * K * N;
    int reps = flops > 1e9 ? 3 : flops > 1e7 ? 100 : 500;
    /* warm-up: thread pools, first touch */
    lm_matmul(&out, a, b);
    lm_tensor_release(out);
    double t_lumen = TIME_BEST(reps, {
        lm_matmul(&out, a, b);
        lm_tensor_release(out);
    });
    /* the direct call with OpenBLAS's own threads, as many as Lumen's pool has
     * (Lumen keeps OpenBLAS single-threaded and splits products itself) */
    openblas_set_num_threads(lm_get_num_threads());
    cblas_sgemm(CblasRowMajor, CblasNoTrans, transposed_b ? CblasTrans : CblasNoTrans, (int)M,
                (int)N, (int)K, 1.0f, lm_tensor_f32(a), (int)K, lm_tensor_f32(b_store),
                transposed_b ? (int)K : (int)N, 0.0f, c, (int)N); /* warm-up of its threads */
    double t_blas = TIME_BEST(reps, {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, transposed_b ? CblasTrans : CblasNoTrans, (int)M,
                    (int)N, (int)K, 1.0f, lm_tensor_f32(a), (int)K, lm_tensor_f32(b_store),
                    transposed_b ? (int)K : (int)N, 0.0f, c, (int)N);
    });
    openblas_set_num_threads(1);
    printf("| %4lldx%4lldx%4lld | %s | %8.1f | %8.1f | %5.1f %% |\n", (long long)M, (long long)K,
           (long long)N, transposed_b ? "nt" : "nn", flops / t_lumen / 1e9, flops / t_blas / 1e9,
           100 * t_blas / t_lumen);
    free(c);
    lm_tensor_release(a);
    lm_tensor_release(b);
    lm_tensor_release(b_store);
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 0;
    lm_set_num_threads(threads);
    lm_manual_seed(1);
    printf("threads: %d, OpenBLAS core: %s\n\n", lm_get_num_threads(), openblas_get_corename());
    printf("| M x K x N | layout | Lumen GFLOP/s | cblas_sgemm GFLOP/s | Lumen / BLAS |\n");
    printf("|---|---|---|---|---|\n");
    int64_t shapes[3][3] = {{128, 784, 200}, {128, 200, 200}, {1024, 1024, 1024}};
    for (int i = 0; i < 3; i++) {
        bench(shapes[i][0], shapes[i][1], shapes[i][2], false);
        bench(shapes[i][0], shapes[i][1], shapes[i][2], true);
    }
    return 0;
}
