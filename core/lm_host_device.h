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

#endif
