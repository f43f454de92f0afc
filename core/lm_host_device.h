/* LM_HOST_DEVICE marks the inline functions that the CPU backend and the
 * CUDA kernels share: plain C for the host compiler, __host__ __device__
 * under nvcc. */
#ifndef LM_HOST_DEVICE_H
#define LM_HOST_DEVICE_H

#ifdef __CUDACC__
#define LM_HOST_DEVICE __host__ __device__
#else
#define LM_HOST_DEVICE
#endif

/* LM_FOLDED marks the shared functions whose switch over an op a caller's
 * loop must fold away (one loop per op, vectorised): they are always
 * inlined. GCC's size limits stopped inlining lm_unary_f32 once its switch
 * grew past 40 ops, and every element then paid a call and a switch (a
 * ReLU ran at 2.5 ns an element instead of 0.3). The Release build's test
 * tests/build/check_inlined.sh keeps it so. */
#ifdef __CUDACC__
#define LM_FOLDED /* nvcc inlines device functions that small already */
#else
#define LM_FOLDED __attribute__((always_inline))
#endif

#endif
