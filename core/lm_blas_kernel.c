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

bool lm_blas_verify(void) {
    enum { M = 67, N = 53, K = 71 };
    static float a[M * K], b[K * N], c[M * N];
    uint32_t s = 12345;
    for (int i = 0; i < M * K; i++)
        a[i] = (float)((s = s * 1664525u + 1013904223u) >> 8) / 16777216.0f - 0.5f;
    for (int i = 0; i < K * N; i++)
        b[i] = (float)((s = s * 1664525u + 1013904223u) >> 8) / 16777216.0f - 0.5f;
    if (getenv("LUMEN_BLAS_FAKE_WRONG")) b[0] += 1.0f; /* tests: a kernel that gets it wrong */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.0f, a, K, b, N, 0.0f, c, N);
    if (getenv("LUMEN_BLAS_FAKE_WRONG")) b[0] -= 1.0f;
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double ref = 0, mag = 0;
            for (int k = 0; k < K; k++) {
                ref += (double)a[i * K + k] * b[k * N + j];
                mag += fabs((double)a[i * K + k] * b[k * N + j]);
            }
            if (fabs(c[i * N + j] - ref) > 1e-5 * mag + 1e-6) return false;
        }
    return true;
}

static char choice[160] = "detected by OpenBLAS";

const char *lm_blas_reexec_plan(void) {
    const char *user = getenv("OPENBLAS_CORETYPE"), *ours = getenv("LUMEN_BLAS_KERNEL");
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

const char *lm_blas_choice(void) {
    return strncmp(choice, "fallback:", 9) ? choice : "fell back";
}
