/* Per-element and per-row definitions shared by the CPU backend and the
 * CUDA kernels (compiled as host and device code there), so both devices
 * compute the same function. Each elementwise op is written here once per
 * precision:
 *   - float32 (lm_unary_f32, lm_binary_f32, lm_unary_grad_f32): the float32
 *     kernels of both devices. The CPU calls them with a constant op inside
 *     each row loop, so after inlining every loop is specialised and
 *     vectorised as if the expression were written there;
 *   - double (lm_scalar_unary, lm_scalar_binary): the exact path for int32
 *     and mixed dtypes.
 * Every switch names every op and has no default, so the compiler (-Wswitch)
 * reports an op added to lm_backend.h but not here. An op number outside
 * the enums gives NaN; the backends refuse it with an error before any
 * kernel runs (lm_unary_op_valid, lm_binary_op_valid). */
#ifndef LM_SCALAR_OPS_H
#define LM_SCALAR_OPS_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "lm_backend.h"

#include "lm_host_device.h"

#ifndef __CUDACC__
#include "lm_fastmath.h"
#endif

LM_HOST_DEVICE LM_FOLDED static inline bool lm_unary_op_valid(lm_unary_op op) {
    return (int)op >= 0 && op < LM_UNARY_COUNT;
}

LM_HOST_DEVICE LM_FOLDED static inline bool lm_binary_op_valid(lm_binary_op op) {
    return (int)op >= 0 && op < LM_BINARY_COUNT;
}

/* ---- float32 ------------------------------------------------------------------------------ */

/* exp and expm1 in float32: on the CPU the branch-free polynomials of
 * lm_fastmath.h, which vectorise (glibc's are scalar calls); on the GPU the
 * CUDA math library's. Both are within a few ulp of the true value. */
LM_HOST_DEVICE LM_FOLDED static inline float lm_expf(float x) {
#ifdef __CUDACC__
    return expf(x);
#else
    return lm_fast_expf(x);
#endif
}

LM_HOST_DEVICE LM_FOLDED static inline float lm_expm1f(float x) {
#ifdef __CUDACC__
    return expm1f(x);
#else
    return lm_fast_expm1f(x);
#endif
}

/* erf likewise (glibc's erff is a scalar call; on the CPU, within 1.6 ulp) */
LM_HOST_DEVICE LM_FOLDED static inline float lm_erff(float x) {
#ifdef __CUDACC__
    return erff(x);
#else
    return lm_fast_erff(x);
#endif
}

/* and tanh (glibc's tanhf is a scalar call; on the CPU within 3.5 ulp) */
LM_HOST_DEVICE LM_FOLDED static inline float lm_tanhf(float x) {
#ifdef __CUDACC__
    return tanhf(x);
#else
    return lm_fast_tanhf(x);
#endif
}

/* GELU's constants: 1/sqrt(2), 1/sqrt(2 pi), and the tanh form's sqrt(2/pi)
 * and cubic coefficient (Hendrycks and Gimpel 2016; PyTorch's values). */
#define LM_GELU_RSQRT2 0.70710678118654752440
#define LM_GELU_RSQRT2PI 0.39894228040143267794
#define LM_GELU_TANH_BETA 0.79788456080286535588
#define LM_GELU_TANH_KAPPA 0.044715

/* erf's derivative at 0, 2 / sqrt(pi) */
#define LM_ERF_SLOPE0 1.12837916709551257390

/* GELU's two forms and their derivatives, written from x alone:
 *   exact: y = x Phi(x),  dy/dx = Phi(x) + x phi(x)
 *   tanh:  y = 0.5 x (1 + t), t = tanh(u), u = beta (x + kappa x^3),
 *          dy/dx = 0.5 (1 + t) + 0.5 x (1 - t^2) beta (1 + 3 kappa x^2) */
LM_HOST_DEVICE LM_FOLDED static inline float lm_gelu_f32(float x) {
    return 0.5f * x * (1.0f + lm_erff(x * (float)LM_GELU_RSQRT2));
}

LM_HOST_DEVICE LM_FOLDED static inline float lm_gelu_grad_f32(float x) {
    float cdf = 0.5f * (1.0f + lm_erff(x * (float)LM_GELU_RSQRT2));
    return cdf + x * (float)LM_GELU_RSQRT2PI * lm_expf(-0.5f * x * x);
}

LM_HOST_DEVICE LM_FOLDED static inline float lm_gelu_tanh_f32(float x) {
    float u = (float)LM_GELU_TANH_BETA * (x + (float)LM_GELU_TANH_KAPPA * x * x * x);
    return 0.5f * x * (1.0f + lm_tanhf(u));
}

LM_HOST_DEVICE LM_FOLDED static inline float lm_gelu_tanh_grad_f32(float x) {
    float x2 = x * x;
    float t = lm_tanhf((float)LM_GELU_TANH_BETA * x * (1.0f + (float)LM_GELU_TANH_KAPPA * x2));
    float du = (float)LM_GELU_TANH_BETA * (1.0f + 3.0f * (float)LM_GELU_TANH_KAPPA * x2);
    return 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * du;
}

/* SELU's constants (Klambauer et al. 2017; torch's values) */
#define LM_SELU_ALPHA 1.6732632423543772848170429916717
#define LM_SELU_SCALE 1.0507009873554804934193349852946

/* Past this input, mish and its gradient are x and 1 in float32 (tanh of
 * softplus rounds to 1); e^x is taken of at most it, so no inf / inf. */
#define LM_MISH_LINEAR 20.0f

/* relu6(x + 3), NaN passing: the shared part of hardsigmoid and hardswish */
LM_HOST_DEVICE LM_FOLDED static inline float lm_relu6_shift3_f32(float x) {
    float c = x + 3.0f;
    c = c < 0.0f ? 0.0f : c;
    return c > 6.0f ? 6.0f : c;
}

/* mish from n = e^x (x held at LM_MISH_LINEAR): tanh(log(1 + n)) is
 * m / (m + 2) with m = n (n + 2), and 1 - tanh^2 is 4 (m + 1) / (m + 2)^2:
 * one exp, no cancellation for negative x. */
LM_HOST_DEVICE LM_FOLDED static inline float lm_mish_f32(float x) {
    float n = lm_expf(x > LM_MISH_LINEAR ? LM_MISH_LINEAR : x), m = n * (n + 2.0f);
    return x * (m / (m + 2.0f));
}

LM_HOST_DEVICE LM_FOLDED static inline float lm_mish_grad_f32(float x) {
    float n = lm_expf(x > LM_MISH_LINEAR ? LM_MISH_LINEAR : x), m = n * (n + 2.0f);
    float t = m / (m + 2.0f), sech2 = 4.0f * (m + 1.0f) / ((m + 2.0f) * (m + 2.0f));
    float sig = n / (1.0f + n);
    return x > LM_MISH_LINEAR ? 1.0f : t + x * sig * sech2;
}

/* log(sigmoid(x)) = min(x, 0) - log(1 + e^-|x|): no overflow either way;
 * its derivative 1 - sigmoid(x) from the same z = e^-|x| */
LM_HOST_DEVICE LM_FOLDED static inline float lm_logsigmoid_f32(float x) {
    float z = lm_expf(-fabsf(x));
    return (x < 0.0f ? x : 0.0f) - log1pf(z);
}

LM_HOST_DEVICE LM_FOLDED static inline float lm_logsigmoid_grad_f32(float x) {
    float z = lm_expf(-fabsf(x));
    return (x < 0.0f ? 1.0f : z) / (1.0f + z);
}

/* A batch norm's 1 / sqrt(var + eps) from the batch's own variance. A
 * channel with one value throughout and eps = 0 gets 0, as torch's batch
 * statistics give it (its output is the bias and its gradients 0), not
 * 0 * inf = NaN. */
LM_HOST_DEVICE LM_FOLDED static inline double lm_batch_invstd(double var, double eps) {
    return var == 0 && eps == 0 ? 0 : 1 / sqrt(var + eps);
}

/* x rounded to the nearest bfloat16, ties to even, and kept in float32 (the
 * low 16 bits cleared): the operands of products under lm.autocast. Past
 * bfloat16's largest value it gives an infinity, a NaN stays a (quiet) NaN,
 * as torch's x.bfloat16().float() does. Integer arithmetic on the bits, so
 * flush-to-zero does not touch it. */
LM_HOST_DEVICE LM_FOLDED static inline float lm_round_bf16_f32(float x) {
    uint32_t u; /* memcpy: a register move on either compiler */
    memcpy(&u, &x, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        u |= 0x00400000u; /* NaN: set the quiet bit, which the truncation keeps */
    else
        u += 0x7fffu + ((u >> 16) & 1u);
    u &= 0xffff0000u;
    memcpy(&x, &u, sizeof x);
    return x;
}

/* y = op(x); p0, p1 are the op's parameters (lm_backend.h). */
LM_HOST_DEVICE LM_FOLDED static inline float lm_unary_f32(lm_unary_op op, float x, float p0,
                                                          float p1) {
    switch (op) {
    case LM_NEG:
        return -x;
    case LM_EXP:
        return lm_expf(x);
    case LM_LOG:
        return logf(x);
    case LM_SQRT:
        return sqrtf(x);
    case LM_ABS:
        return fabsf(x);
    case LM_SIGN:
        return (float)((x > 0) - (x < 0));
    case LM_TANH:
        return lm_tanhf(x);
    case LM_SIGMOID:
        return 1.0f / (1.0f + lm_expf(-x));
    case LM_RELU: /* NaN passes, as torch (one unordered compare: still vectorised) */
        return !(x <= 0) ? x : 0.0f;
    case LM_ELU: { /* expm1 in every lane (of 0 where x > 0; NaN stays NaN): the
                    * compiler selects afterwards instead of masking the polynomial */
        float e = p0 * lm_expm1f(x > 0 ? 0.0f : x);
        return x > 0 ? x : e;
    }
    case LM_CLAMP:
        return x < p0 ? p0 : x > p1 ? p1 : x;
    case LM_POW_SCALAR:
        return p0 == 2.0f ? x * x : powf(x, p0);
    case LM_RPOW_SCALAR:
        return powf(p0, x);
    case LM_SQUARE:
        return x * x;
    case LM_RECIPROCAL:
        return 1.0f / x;
    case LM_GELU:
        return lm_gelu_f32(x);
    case LM_GELU_TANH:
        return lm_gelu_tanh_f32(x);
    case LM_ROUND_BF16:
        return lm_round_bf16_f32(x);
    case LM_LEAKY_RELU: /* NaN * slope stays NaN, -0 stays -0, as torch */
        return x > 0 ? x : x * p0;
    case LM_FLOOR:
        return floorf(x);
    case LM_CEIL:
        return ceilf(x);
    case LM_ROUND: /* to nearest, ties to even (the default rounding mode) */
        return rintf(x);
    case LM_TRUNC:
        return truncf(x);
    case LM_LOG1P:
        return log1pf(x);
    case LM_EXPM1:
        return lm_expm1f(x);
    case LM_LOG2:
        return log2f(x);
    case LM_LOG10:
        return log10f(x);
    case LM_RSQRT: /* correctly rounded sqrt, then the division: not CUDA's approximate rsqrtf */
        return 1.0f / sqrtf(x);
    case LM_ERF:
        return lm_erff(x);
    case LM_ISNAN:
        return (float)(x != x);
    case LM_ISINF:
        return (float)(fabsf(x) == INFINITY);
    case LM_ISFINITE:
        return (float)(fabsf(x) < INFINITY);
    case LM_SOFTPLUS: { /* linear past the threshold, as torch */
        float bx = x * p0;
        return bx > p1 ? x : log1pf(lm_expf(bx)) / p0;
    }
    case LM_HARDSWISH: /* in torch's order: x times the clamp, then / 6 */
        return x * lm_relu6_shift3_f32(x) / 6.0f;
    case LM_HARDSIGMOID:
        return lm_relu6_shift3_f32(x) / 6.0f;
    case LM_MISH:
        return lm_mish_f32(x);
    case LM_SELU: { /* expm1 in every lane, as LM_ELU */
        float e = (float)(LM_SELU_SCALE * LM_SELU_ALPHA) * lm_expm1f(x > 0 ? 0.0f : x);
        return x > 0 ? (float)LM_SELU_SCALE * x : e;
    }
    case LM_CELU: {
        float e = p0 * lm_expm1f(x > 0 ? 0.0f : x / p0);
        return x > 0 ? x : e;
    }
    case LM_LOGSIGMOID:
        return lm_logsigmoid_f32(x);
    case LM_SOFTSIGN:
        return x / (1.0f + fabsf(x));
    case LM_TANHSHRINK:
        return x - lm_tanhf(x);
    case LM_HARDSHRINK: /* torch's comparisons: NaN passes */
        return x >= -p0 && x <= p0 ? 0.0f : x;
    case LM_SOFTSHRINK: /* NaN gives 0, as torch 1.13 */
        return x > p0 ? x - p0 : x < -p0 ? x + p0 : 0.0f;
    case LM_THRESHOLD:
        return x <= p0 ? p1 : x;
    case LM_SILU: /* torch's x / (1 + e^-x): -0 far below 0, NaN at -inf, as torch */
        return x / (1.0f + lm_expf(-x));
    case LM_UNARY_COUNT:
        break;
    }
    return NAN;
}

/* Ops whose result is a predicate (1 or 0, as the comparisons): not
 * differentiable, so recorded on no tape. */
LM_HOST_DEVICE LM_FOLDED static inline bool lm_unary_is_predicate(lm_unary_op op) {
    return op == LM_ISNAN || op == LM_ISINF || op == LM_ISFINITE;
}

/* Ops whose gradient has a fused kernel on every backend (one pass over g,
 * x and y instead of a chain of elementwise ops). The others are composed
 * from ordinary ops in core/autograd_rules.c, which also keeps these as
 * composite formulas; tests/c/test_ops.c checks that the two agree. */
LM_HOST_DEVICE LM_FOLDED static inline bool lm_unary_has_fused_grad(lm_unary_op op) {
    switch (op) {
    case LM_EXP:
    case LM_TANH:
    case LM_SIGMOID:
    case LM_RELU:
    case LM_ELU:
    case LM_GELU:
    case LM_GELU_TANH:
    case LM_LEAKY_RELU:
    case LM_HARDSWISH:
    case LM_HARDSIGMOID:
    case LM_MISH:
    case LM_SELU:
    case LM_CELU:
    case LM_LOGSIGMOID:
    case LM_SOFTSIGN:
    case LM_TANHSHRINK:
    case LM_HARDSHRINK:
    case LM_SOFTSHRINK:
    case LM_THRESHOLD:
    case LM_SILU:
        return true;
    case LM_NEG:
    case LM_LOG:
    case LM_SQRT:
    case LM_ABS:
    case LM_SIGN:
    case LM_CLAMP:
    case LM_POW_SCALAR:
    case LM_RPOW_SCALAR:
    case LM_SQUARE:
    case LM_RECIPROCAL:
    case LM_ROUND_BF16:
    case LM_FLOOR:
    case LM_CEIL:
    case LM_ROUND:
    case LM_TRUNC:
    case LM_LOG1P:
    case LM_EXPM1:
    case LM_LOG2:
    case LM_LOG10:
    case LM_RSQRT:
    case LM_ERF:
    case LM_ISNAN:
    case LM_ISINF:
    case LM_ISFINITE:
    case LM_SOFTPLUS:
    case LM_UNARY_COUNT:
        return false;
    }
    return false;
}

/* The gradient g * dy/dx of a fused op, from the output gradient g, the
 * input x and the output y = op(x) (what the tape saved); p0 as in the
 * forward op. NaN for the ops lm_unary_has_fused_grad refuses. */
LM_HOST_DEVICE LM_FOLDED static inline float lm_unary_grad_f32(lm_unary_op op, float g, float x,
                                                               float y, float p0) {
    switch (op) {
    case LM_EXP:
        return g * y;
    case LM_TANH:
        return g * (1.0f - y * y);
    case LM_SIGMOID:
        return g * y * (1.0f - y);
    case LM_RELU:
        return x > 0 ? g : 0.0f;
    case LM_ELU:
        return x > 0 ? g : g * (y + p0); /* alpha e^x = y + alpha */
    case LM_GELU:
        return g * lm_gelu_grad_f32(x);
    case LM_GELU_TANH:
        return g * lm_gelu_tanh_grad_f32(x);
    case LM_LEAKY_RELU: /* the slope at 0, as torch */
        return x > 0 ? g : g * p0;
    case LM_HARDSWISH: /* torch's values at the kinks: -1/2 at -3, 1 at 3, and NaN for NaN
                        * (its vectorised loop's) */
        return x < -3.0f ? 0.0f : x < 3.0f ? g * (x / 3.0f + 0.5f) : x == x ? g : x;
    case LM_HARDSIGMOID: /* 0 at -3 and 3, and for NaN, as torch */
        return x > -3.0f && x < 3.0f ? g * (1.0f / 6.0f) : 0.0f;
    case LM_MISH:
        return g * lm_mish_grad_f32(x);
    case LM_SELU: /* scale alpha e^x up to 0 included (as torch), scale above; NaN for NaN */
        return x > 0 ? g * (float)LM_SELU_SCALE
                     : g * (float)(LM_SELU_SCALE * LM_SELU_ALPHA) * lm_expf(x > 0 ? 0.0f : x);
    case LM_CELU: /* e^(x / alpha) up to 0 included (as torch), 1 above; NaN for NaN */
        return x > 0 ? g : g * lm_expf(x > 0 ? 0.0f : x / p0);
    case LM_LOGSIGMOID:
        return g * lm_logsigmoid_grad_f32(x);
    case LM_SOFTSIGN: {
        float d = 1.0f + fabsf(x);
        return g / (d * d);
    }
    case LM_TANHSHRINK: { /* tanh^2, from x: 1 - (1 - tanh^2) would cancel */
        float t = lm_tanhf(x);
        return g * t * t;
    }
    case LM_HARDSHRINK: /* g outside [-lambd, lambd] only: 0 at its ends and for NaN, as torch's
                         * vectorised loop */
    case LM_SOFTSHRINK:
        return x < -p0 || x > p0 ? g : 0.0f;
    case LM_THRESHOLD: /* 0 at the threshold, as torch */
        return x <= p0 ? 0.0f : g;
    case LM_SILU: { /* s (1 + x (1 - s)), s = sigmoid(x), in torch's order: NaN at +-inf */
        float s = 1.0f / (1.0f + lm_expf(-x));
        return g * s * (1.0f + x * (1.0f - s));
    }
    case LM_NEG:
    case LM_LOG:
    case LM_SQRT:
    case LM_ABS:
    case LM_SIGN:
    case LM_CLAMP:
    case LM_POW_SCALAR:
    case LM_RPOW_SCALAR:
    case LM_SQUARE:
    case LM_RECIPROCAL:
    case LM_ROUND_BF16:
    case LM_FLOOR:
    case LM_CEIL:
    case LM_ROUND:
    case LM_TRUNC:
    case LM_LOG1P:
    case LM_EXPM1:
    case LM_LOG2:
    case LM_LOG10:
    case LM_RSQRT:
    case LM_ERF:
    case LM_ISNAN:
    case LM_ISINF:
    case LM_ISFINITE:
    case LM_SOFTPLUS:
    case LM_UNARY_COUNT:
        break;
    }
    return NAN;
}

/* NaN wins maximum and minimum, as IEEE's maximum does. */
LM_HOST_DEVICE LM_FOLDED static inline float lm_binary_f32(lm_binary_op op, float a, float b) {
    switch (op) {
    case LM_ADD:
        return a + b;
    case LM_SUB:
        return a - b;
    case LM_MUL:
        return a * b;
    case LM_DIV:
        return a / b;
    case LM_POW:
        return powf(a, b);
    case LM_MAXIMUM:
        return a > b || a != a ? a : b;
    case LM_MINIMUM:
        return a < b || a != a ? a : b;
    case LM_EQ:
        return (float)(a == b);
    case LM_NE:
        return (float)(a != b);
    case LM_LT:
        return (float)(a < b);
    case LM_LE:
        return (float)(a <= b);
    case LM_GT:
        return (float)(a > b);
    case LM_GE:
        return (float)(a >= b);
    case LM_BINARY_COUNT:
        break;
    }
    return NAN;
}

/* ---- double ------------------------------------------------------------------------------- */

LM_HOST_DEVICE LM_FOLDED static inline double lm_scalar_unary(lm_unary_op op, double x, double p0,
                                                              double p1) {
    switch (op) {
    case LM_NEG:
        return -x;
    case LM_EXP:
        return exp(x);
    case LM_LOG:
        return log(x);
    case LM_SQRT:
        return sqrt(x);
    case LM_ABS:
        return fabs(x);
    case LM_SIGN:
        return (x > 0) - (x < 0);
    case LM_TANH:
        return tanh(x);
    case LM_SIGMOID:
        return 1.0 / (1.0 + exp(-x));
    case LM_RELU:
        return !(x <= 0) ? x : 0;
    case LM_ELU:
        return x > 0 ? x : p0 * expm1(x);
    case LM_CLAMP:
        return x < p0 ? p0 : x > p1 ? p1 : x;
    case LM_POW_SCALAR:
        return pow(x, p0);
    case LM_RPOW_SCALAR:
        return pow(p0, x);
    case LM_SQUARE:
        return x * x;
    case LM_RECIPROCAL:
        return 1.0 / x;
    case LM_GELU:
        return 0.5 * x * (1.0 + erf(x * LM_GELU_RSQRT2));
    case LM_GELU_TANH:
        return 0.5 * x * (1.0 + tanh(LM_GELU_TANH_BETA * (x + LM_GELU_TANH_KAPPA * x * x * x)));
    case LM_ROUND_BF16:
        return lm_round_bf16_f32((float)x);
    case LM_LEAKY_RELU:
        return x > 0 ? x : x * p0;
    case LM_FLOOR:
        return floor(x);
    case LM_CEIL:
        return ceil(x);
    case LM_ROUND:
        return rint(x);
    case LM_TRUNC:
        return trunc(x);
    case LM_LOG1P:
        return log1p(x);
    case LM_EXPM1:
        return expm1(x);
    case LM_LOG2:
        return log2(x);
    case LM_LOG10:
        return log10(x);
    case LM_RSQRT:
        return 1.0 / sqrt(x);
    case LM_ERF:
        return erf(x);
    case LM_ISNAN:
        return x != x;
    case LM_ISINF:
        return fabs(x) == INFINITY;
    case LM_ISFINITE:
        return fabs(x) < INFINITY;
    case LM_SOFTPLUS:
        return x * p0 > p1 ? x : log1p(exp(x * p0)) / p0;
    case LM_HARDSWISH: {
        double c = x + 3 < 0 ? 0 : x + 3;
        return x * (c > 6 ? 6 : c) / 6;
    }
    case LM_HARDSIGMOID: {
        double c = x + 3 < 0 ? 0 : x + 3;
        return (c > 6 ? 6 : c) / 6;
    }
    case LM_MISH:
        return x * tanh(x > 40 ? x : log1p(exp(x)));
    case LM_SELU:
        return x > 0 ? LM_SELU_SCALE * x : LM_SELU_SCALE * LM_SELU_ALPHA * expm1(x);
    case LM_CELU:
        return x > 0 ? x : p0 * expm1(x / p0);
    case LM_LOGSIGMOID:
        return (x < 0 ? x : 0) - log1p(exp(-fabs(x)));
    case LM_SOFTSIGN:
        return x / (1 + fabs(x));
    case LM_TANHSHRINK:
        return x - tanh(x);
    case LM_HARDSHRINK:
        return x >= -p0 && x <= p0 ? 0 : x;
    case LM_SOFTSHRINK:
        return x > p0 ? x - p0 : x < -p0 ? x + p0 : 0;
    case LM_THRESHOLD:
        return x <= p0 ? p1 : x;
    case LM_SILU:
        return x / (1 + exp(-x));
    case LM_UNARY_COUNT:
        break;
    }
    return NAN;
}

/* NaN wins maximum and minimum, as IEEE's maximum does. */
LM_HOST_DEVICE LM_FOLDED static inline double lm_scalar_binary(lm_binary_op op, double a,
                                                               double b) {
    switch (op) {
    case LM_ADD:
        return a + b;
    case LM_SUB:
        return a - b;
    case LM_MUL:
        return a * b;
    case LM_DIV:
        return a / b;
    case LM_POW:
        return pow(a, b);
    case LM_MAXIMUM:
        return a > b || a != a ? a : b;
    case LM_MINIMUM:
        return a < b || a != a ? a : b;
    case LM_EQ:
        return a == b;
    case LM_NE:
        return a != b;
    case LM_LT:
        return a < b;
    case LM_LE:
        return a <= b;
    case LM_GT:
        return a > b;
    case LM_GE:
        return a >= b;
    case LM_BINARY_COUNT:
        break;
    }
    return NAN;
}

/* Top-k of one row by insertion into a sorted list of the k best: O(cols *
 * k) at worst, fast for the small k of nearest-neighbour queries. NaN ranks
 * after every number: slots the numbers do not fill take the row's NaN in
 * column order. */
LM_HOST_DEVICE LM_FOLDED static inline void lm_topk_row(const float *row, int64_t cols, int64_t k,
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
    if (largest)
        for (int64_t t = 0; t < have; t++) bv[t] = -bv[t];
    for (int64_t c = 0; c < cols && have < k; c++)
        if (row[c] != row[c]) bv[have] = row[c], bi[have++] = (int32_t)c;
}

#endif
