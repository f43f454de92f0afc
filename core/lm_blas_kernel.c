#include "lm_blas_kernel.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cblas.h>

char *openblas_get_corename(void); /* OpenBLAS's own, not in cblas.h */

const char *lm_blas_corename(void) {
    const char *fake = getenv("LUMEN_BLAS_FAKE_CORE");
    if (fake && *fake && !getenv("LUMEN_BLAS_KERNEL")) return fake;
    const char *name = openblas_get_corename();
    return name ? name : "unknown";
}

lm_cpu_features lm_cpu_detect(void) {
    lm_cpu_features f = {false, false, false, false, false, false};
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    f.avx2 = __builtin_cpu_supports("avx2");
    f.fma = __builtin_cpu_supports("fma");
    f.avx512f = __builtin_cpu_supports("avx512f");
    f.avx512bw = __builtin_cpu_supports("avx512bw");
    f.avx512vl = __builtin_cpu_supports("avx512vl");
    f.avx512dq = __builtin_cpu_supports("avx512dq");
#endif
    return f;
}

bool lm_blas_runs_avx512(void) {
    const char *core = lm_blas_corename();
    return !strcasecmp(core, "SkylakeX") || !strcasecmp(core, "Cooperlake") ||
           !strcasecmp(core, "SapphireRapids");
}

/* OpenBLAS's x86 kernel sets without AVX2: on a processor with AVX2 any of
 * them leaves most of its speed unused. */
static bool without_avx2(const char *core) {
    static const char *const generic[] = {
        "Prescott",     "Core2",      "Penryn",    "Dunnington",  "Nehalem",   "Atom",
        "Katmai",       "Coppermine", "Northwood", "Banias",      "Athlon",    "Opteron",
        "Opteron_SSE3", "Barcelona",  "Bobcat",    "Sandybridge", "Bulldozer", "Piledriver",
        "Steamroller",  "Excavator",  "Nano",      "generic",     NULL};
    for (int i = 0; generic[i]; i++)
        if (!strcasecmp(core, generic[i])) return true;
    return false;
}

const char *lm_blas_better_core(const char *corename, lm_cpu_features f) {
    if (!corename || !without_avx2(corename)) return NULL;
    if (f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq) return "SkylakeX";
    if (f.avx2 && f.fma) return "Haswell";
    return NULL;
}

/* One product c = alpha op(a) op(b) + beta c (row-major, op a transpose
 * where asked) against a double-precision loop; false where any element is
 * off by more than float rounding of its terms. */
static bool product_matches(int m, int n, int k, bool ta, bool tb, float alpha, float beta,
                            float *a, float *b, float *c, float *c0) {
    uint32_t s = 12345u + (uint32_t)(m * 7 + n * 3 + k + ta * 11 + tb * 13);
    for (int i = 0; i < m * k; i++)
        a[i] = (float)((s = s * 1664525u + 1013904223u) >> 8) / 16777216.0f - 0.5f;
    for (int i = 0; i < k * n; i++)
        b[i] = (float)((s = s * 1664525u + 1013904223u) >> 8) / 16777216.0f - 0.5f;
    for (int i = 0; i < m * n; i++)
        c[i] = c0[i] = (float)((s = s * 1664525u + 1013904223u) >> 8) / 16777216.0f - 0.5f;
    if (getenv("LUMEN_BLAS_FAKE_WRONG")) b[0] += 1.0f; /* tests: a kernel that gets it wrong */
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n,
                k, alpha, a, ta ? m : k, b, tb ? k : n, beta, c, n);
    if (getenv("LUMEN_BLAS_FAKE_WRONG")) b[0] -= 1.0f;
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double ref = 0, mag = 0;
            for (int p = 0; p < k; p++) {
                double t =
                    (double)(ta ? a[p * m + i] : a[i * k + p]) * (tb ? b[j * k + p] : b[p * n + j]);
                ref += t, mag += fabs(t);
            }
            ref = alpha * ref + beta * (double)c0[i * n + j];
            mag = fabs(alpha) * mag + fabs(beta * (double)c0[i * n + j]);
            if (fabs(c[i * n + j] - ref) > 1e-5 * mag + 1e-6) return false;
        }
    return true;
}

bool lm_blas_verify(void) {
    /* a small product (OpenBLAS's small-matrix code on some sets) and larger
     * ones in the layouts Lumen's layers use (NN forward, NT and TN for the
     * gradients), past the small-matrix limit so that they run the main
     * kernel every real product goes through */
    enum { M = 96, N = 80, K = 144 };
    static float a[M * K], b[K * N], c[M * N], c0[M * N];
    return product_matches(67, 53, 71, false, false, 1.0f, 0.0f, a, b, c, c0) &&
           product_matches(M, N, K, false, false, 0.5f, 0.25f, a, b, c, c0) &&
           product_matches(M, N, K, false, true, 1.0f, 1.0f, a, b, c, c0) &&
           product_matches(M, N, K, true, false, 1.0f, 0.0f, a, b, c, c0);
}

static char choice[160] = "detected by OpenBLAS";

const char *lm_blas_reexec_plan(void) {
    const char *user = getenv("OPENBLAS_CORETYPE"), *ours = getenv("LUMEN_BLAS_KERNEL");
    /* our marker counts only in the process Lumen restarted: one inherited
     * by a child (a script that starts lumen) with the user's own
     * OPENBLAS_CORETYPE beside it is not ours to act on */
    bool fallback = ours && !strncmp(ours, "fallback:", 9);
    if (ours && *ours && (fallback ? (user && *user) : !(user && !strcmp(user, ours)))) ours = NULL;
    if (ours && *ours) {
        /* a previous start chose the set (or fell back): check what runs now */
        if (!strncmp(ours, "fallback:", 9)) {
            snprintf(choice, sizeof choice, "%s failed its check: fell back to OpenBLAS's choice",
                     ours + 9);
            return NULL;
        }
        if (!lm_blas_verify()) {
            fprintf(stderr,
                    "lumen: OpenBLAS's %s kernels give wrong products on this processor; "
                    "falling back to the kernels OpenBLAS detects\n",
                    ours);
            snprintf(choice, sizeof choice, "fallback:%s", ours);
            return choice; /* the host re-executes without OPENBLAS_CORETYPE */
        }
        const char *detected = getenv("LUMEN_BLAS_DETECTED");
        const char *running = lm_blas_corename();
        if (running && strcasecmp(running, ours))
            snprintf(choice, sizeof choice, "Lumen asked for %s, OpenBLAS runs %s", ours, running);
        else
            snprintf(choice, sizeof choice, "chosen by Lumen (OpenBLAS detected %s)",
                     detected ? detected : "a generic set");
        return NULL;
    }
    if (user && *user) {
        snprintf(choice, sizeof choice, "set by OPENBLAS_CORETYPE");
        return NULL;
    }
    const char *better = lm_blas_better_core(lm_blas_corename(), lm_cpu_detect());
    return better;
}

void lm_blas_restart_failed(const char *plan) {
    if (!strncmp(plan, "fallback:", 9))
        snprintf(choice, sizeof choice,
                 "%s failed its check and Lumen could not restart without it: products may be "
                 "wrong",
                 plan + 9);
    else
        snprintf(choice, sizeof choice, "detected by OpenBLAS; Lumen could not restart with %s",
                 plan);
}

const char *lm_blas_choice(void) {
    /* no start-up plan ran (lumen.so in a stock interpreter): the user's
     * variable still decides what OpenBLAS runs */
    const char *user = getenv("OPENBLAS_CORETYPE");
    if (!strcmp(choice, "detected by OpenBLAS") && user && *user) return "set by OPENBLAS_CORETYPE";
    return strncmp(choice, "fallback:", 9) ? choice : "fell back";
}
