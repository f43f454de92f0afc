// Device discovery for the CUDA backend. Every CUDA status is checked and
// turned into a message; nothing here exits or prints.
#include <stdio.h>

#include "cuda_common.cuh"

extern "C" int lm_cuda_probe(char *message, int size) {
    int count = 0;
    cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess) {
        snprintf(message, size, "no usable CUDA device (%s: %s)", cudaGetErrorName(err),
                 cudaGetErrorString(err));
        return 0;
    }
    if (count == 0) {
        snprintf(message, size, "no CUDA device found");
        return 0;
    }
    cudaDeviceProp prop;
    err = cudaGetDeviceProperties(&prop, 0);
    if (err != cudaSuccess) {
        snprintf(message, size, "CUDA device 0 did not answer (%s)", cudaGetErrorString(err));
        return 0;
    }
    snprintf(message, size, "%s", prop.name);
    return count;
}
