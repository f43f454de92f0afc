/* The elementwise ops on one value, in double: the exact path for int32 and
 * mixed dtypes. Shared by the CPU backend and the CUDA kernels (compiled as
 * host and device code there), so both devices compute the same function. */
#ifndef LM_SCALAR_OPS_H
#define LM_SCALAR_OPS_H

#include <math.h>

#include "lm_backend.h"

#ifndef LM_HOST_DEVICE
#ifdef __CUDACC__
#define LM_HOST_DEVICE __host__ __device__
#else
#define LM_HOST_DEVICE
#endif
#endif

LM_HOST_DEVICE static inline double lm_scalar_unary(int op, double x, double p0, double p1) {
    switch (op) {
    case LM_NEG: return -x;
    case LM_EXP: return exp(x);
    case LM_LOG: return log(x);
    case LM_SQRT: return sqrt(x);
    case LM_ABS: return fabs(x);
    case LM_SIGN: return (x > 0) - (x < 0);
    case LM_TANH: return tanh(x);
    case LM_SIGMOID: return 1.0 / (1.0 + exp(-x));
    case LM_RELU: return x > 0 ? x : 0;
    case LM_ELU: return x > 0 ? x : p0 * expm1(x);
    case LM_CLAMP: return x < p0 ? p0 : x > p1 ? p1 : x;
    case LM_POW_SCALAR: return pow(x, p0);
    case LM_RPOW_SCALAR: return pow(p0, x);
    case LM_SQUARE: return x * x;
    case LM_RECIPROCAL: return 1.0 / x;
    default: return 0;
    }
}

/* NaN wins maximum and minimum, as IEEE's maximum does. */
LM_HOST_DEVICE static inline double lm_scalar_binary(int op, double a, double b) {
    switch (op) {
    case LM_ADD: return a + b;
    case LM_SUB: return a - b;
    case LM_MUL: return a * b;
    case LM_DIV: return a / b;
    case LM_POW: return pow(a, b);
    case LM_MAXIMUM: return a > b || a != a ? a : b;
    case LM_MINIMUM: return a < b || a != a ? a : b;
    case LM_EQ: return a == b;
    case LM_NE: return a != b;
    case LM_LT: return a < b;
    case LM_LE: return a <= b;
    case LM_GT: return a > b;
    case LM_GE: return a >= b;
    default: return 0;
    }
}

#endif
