/* Per-element and per-row definitions shared by the CPU backend and the
 * CUDA kernels (compiled as host and device code there), so both devices
 * compute the same function: the elementwise ops on one value in double
 * (the exact path for int32 and mixed dtypes), and top-k of one row. */
#ifndef LM_SCALAR_OPS_H
#define LM_SCALAR_OPS_H

#include <math.h>
#include <stdint.h>

#include "lm_backend.h"

#include "lm_host_device.h"

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

/* Top-k of one row by insertion into a sorted list of the k best: O(cols *
 * k) at worst, fast for the small k of nearest-neighbour queries. NaN never
 * ranks; slots no value filled get +inf (values) and -1 (indices). */
LM_HOST_DEVICE static inline void lm_topk_row(const float *row, int64_t cols, int64_t k,
                                              int largest, float *bv, int32_t *bi) {
    int64_t have = 0;
    for (int64_t c = 0; c < cols; c++) {
        float v = largest ? -row[c] : row[c];
        if (v != v) continue; /* NaN never ranks */
        if (have == k && v >= bv[have - 1]) continue;
        int64_t pos = have < k ? have++ : k - 1;
        while (pos > 0 && bv[pos - 1] > v) {
            bv[pos] = bv[pos - 1];
            bi[pos] = bi[pos - 1];
            pos--;
        }
        bv[pos] = v;
        bi[pos] = (int32_t)c;
    }
    for (int64_t t = have; t < k; t++) bv[t] = INFINITY, bi[t] = -1;
    if (largest)
        for (int64_t t = 0; t < k; t++) bv[t] = -bv[t];
}

#endif
