#include "lm_fpenv.h"

#include <stdatomic.h>

#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#define LM_FPENV_SUPPORTED 1
/* MXCSR: flush-to-zero (bit 15) and denormals-are-zero (bit 6) */
#define MXCSR_FTZ_DAZ 0x8040u
static void set_thread_mode(bool on) {
    unsigned csr = _mm_getcsr();
    _mm_setcsr(on ? (csr | MXCSR_FTZ_DAZ) : (csr & ~MXCSR_FTZ_DAZ));
}
#elif defined(__aarch64__)
#define LM_FPENV_SUPPORTED 1
/* FPCR.FZ (bit 24) flushes subnormal inputs and results of float arithmetic */
static void set_thread_mode(bool on) {
    unsigned long fpcr;
    __asm__ volatile("mrs %0, fpcr" : "=r"(fpcr));
    fpcr = on ? (fpcr | (1ul << 24)) : (fpcr & ~(1ul << 24));
    __asm__ volatile("msr fpcr, %0" : : "r"(fpcr));
}
#else
#define LM_FPENV_SUPPORTED 0
static void set_thread_mode(bool on) {
    (void)on;
}
#endif

static atomic_int wanted = LM_FPENV_SUPPORTED; /* on by default where supported */
static _Thread_local int applied = -1;         /* this thread's mode, -1: never set */

void lm_fpenv_sync(void) {
    int w = atomic_load_explicit(&wanted, memory_order_relaxed);
    if (w != applied) {
        set_thread_mode(w != 0);
        applied = w;
    }
}

bool lm_set_flush_denormal(bool on) {
    if (!LM_FPENV_SUPPORTED) return false;
    atomic_store(&wanted, on ? 1 : 0);
    lm_fpenv_sync();
    return true;
}

bool lm_get_flush_denormal(void) {
    return atomic_load(&wanted) != 0;
}
