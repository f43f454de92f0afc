/* Which OpenBLAS kernel set runs, and a better one where OpenBLAS's
 * run-time detection settled for a generic set.
 *
 * Why: on cloud VMs whose processor reports a masked model name, OpenBLAS
 * 0.3.21 can fall back to its Prescott kernels on a machine with AVX-512,
 * about five times slower than the machine allows. OpenBLAS reads
 * OPENBLAS_CORETYPE only when it loads, so the choice has to be made before
 * that: the lumen host re-executes itself once with the variable set
 * (lm_blas_reexec_plan), then checks the chosen kernels against a reference
 * product (lm_blas_verify) and falls back if they disagree. A variable the
 * user set is always respected. */
#ifndef LM_BLAS_KERNEL_H
#define LM_BLAS_KERNEL_H

#include <stdbool.h>

/* The kernel set OpenBLAS runs ("Haswell", "SkylakeX", "Prescott", ...). */
const char *lm_blas_corename(void);

/* Whether the running kernel set uses AVX-512 (SkylakeX, Cooperlake,
 * SapphireRapids): the CPU's own AVX-512 kernels choose by it where
 * OpenBLAS's products then win (cpu_conv_pointwise.c). */
bool lm_blas_runs_avx512(void);

/* The instruction sets that decide the kernel choice (cpuid, with the
 * operating system's support for the wider registers). */
typedef struct lm_cpu_features {
    bool avx2, fma, avx512f, avx512bw, avx512vl, avx512dq;
} lm_cpu_features;
lm_cpu_features lm_cpu_detect(void);

/* A better kernel set for this processor when OpenBLAS runs a set without
 * AVX2 (`corename`) on a processor that has AVX2/FMA ("Haswell") or AVX-512
 * ("SkylakeX"); NULL when the running set is as good. */
const char *lm_blas_better_core(const char *corename, lm_cpu_features f);

/* Products against a plain loop, true when they agree to float32 rounding:
 * one of odd small shapes (the kernels' edges, or a set's small-matrix
 * code) and three past the small-matrix limit in the layouts Lumen's
 * layers use (NN, NT, TN; alpha and beta not 1 and 0), so that the main
 * kernel every real product runs is the one checked. */
bool lm_blas_verify(void);

/* What the host should do at start-up, from the environment: NULL to go on,
 * or the kernel set to re-execute with. Reads OPENBLAS_CORETYPE (set by the
 * user: always respected) and LUMEN_BLAS_KERNEL (set by a previous
 * re-execution); LUMEN_BLAS_FAKE_CORE pretends OpenBLAS detected that set
 * (for tests). */
const char *lm_blas_reexec_plan(void);

/* How the running kernel set was chosen, for lumen -v and lm.blas_info():
 * "detected by OpenBLAS", "set by OPENBLAS_CORETYPE", "chosen by Lumen
 * (OpenBLAS detected Prescott)" or "... failed its check: fell back". */
const char *lm_blas_choice(void);
/* For the host, when the restart that lm_blas_reexec_plan asked for could
 * not happen: the label says so (the kernels that run are not the plan's). */
void lm_blas_restart_failed(const char *plan);

#endif
