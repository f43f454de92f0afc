/* Flush-to-zero for subnormal floats.
 *
 * Why: as a network converges, saturated sigmoids and tiny gradients produce
 * subnormal floats, and every arithmetic instruction that touches one takes a
 * microcode slow path (measured: a late Net1 checkpoint trained 4x slower per
 * step than fresh weights). With flushing on, subnormal results become zero
 * (FTZ) and subnormal inputs read as zero (DAZ); values of 1.2e-38 and above
 * are untouched. On by default, as in most deep-learning runtimes' fast
 * paths; lm_set_flush_denormal(false) restores IEEE gradual underflow.
 *
 * The mode is per thread in hardware: every thread Lumen runs work on (the
 * caller and the pool's workers, which also run the BLAS kernels) calls
 * lm_fpenv_sync() before its work, which costs one thread-local compare when
 * nothing changed. */
#ifndef LM_FPENV_H
#define LM_FPENV_H

#include <stdbool.h>

/* Sets the mode for all of Lumen's threads (the caller at once, the pool's
 * workers at their next job). Returns false, changing nothing, where the
 * processor has no such mode (then subnormals are always kept). */
bool lm_set_flush_denormal(bool on);
bool lm_get_flush_denormal(void);

/* Brings the calling thread's floating-point mode in line with the setting. */
void lm_fpenv_sync(void);

#endif
