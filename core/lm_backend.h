/* The backend interface: one table of function pointers per device.
 *
 * Ops (lm_ops.h) check arguments and shapes, allocate results and then reach
 * the device only through this table, so a new device is a new table, never
 * an `if (cuda)` inside an op. Every entry receives tensors that already live
 * on the backend's device and whose shapes were checked by the caller:
 *   - elementwise entries get operands with exactly the output's shape
 *     (broadcast operands arrive as expanded views with stride 0);
 *   - strided (non-contiguous) operands are legal everywhere unless noted. */
#ifndef LM_BACKEND_H
#define LM_BACKEND_H

#include "lm_tensor.h"

typedef enum lm_unary_op {
    LM_NEG, LM_EXP, LM_LOG, LM_SQRT, LM_ABS, LM_SIGN, LM_TANH, LM_SIGMOID, LM_RELU,
    LM_ELU,   /* p0 = alpha */
    LM_CLAMP, /* p0 = min, p1 = max */
    LM_POW_SCALAR, /* x ^ p0 */
    LM_RPOW_SCALAR, /* p0 ^ x */
    LM_SQUARE, LM_RECIPROCAL,
    LM_UNARY_COUNT
} lm_unary_op;

typedef enum lm_binary_op {
    LM_ADD, LM_SUB, LM_MUL, LM_DIV, LM_POW, LM_MAXIMUM, LM_MINIMUM,
    LM_EQ, LM_NE, LM_LT, LM_LE, LM_GT, LM_GE, /* 1 where true, 0 where false */
    LM_BINARY_COUNT
} lm_binary_op;

typedef enum lm_reduce_op {
    LM_SUM, LM_MEAN, LM_MAX, LM_MIN, LM_ARGMAX, LM_ARGMIN,
    LM_VAR, /* unbiased (n - 1) */
    LM_REDUCE_COUNT
} lm_reduce_op;

typedef enum lm_random_kind {
    LM_RANDOM_UNIFORM,   /* in [p0, p1) */
    LM_RANDOM_NORMAL,    /* mean p0, std p1 */
    LM_RANDOM_BERNOULLI  /* 1 with probability p0 */
} lm_random_kind;

typedef struct lm_backend {
    const char *name;
    lm_device device;
    void *(*alloc)(size_t bytes);
    void (*free)(void *ptr, size_t bytes);

    /* dst[i] = src[i] for tensors of the same shape, converting dtype. */
    lm_status (*copy)(lm_tensor *dst, const lm_tensor *src);
    lm_status (*fill)(lm_tensor *dst, double value);
    /* Copies n elements of dtype between host memory and a contiguous tensor. */
    lm_status (*upload)(lm_tensor *dst, const void *host);
    lm_status (*download)(void *host, const lm_tensor *src);

    lm_status (*unary)(lm_unary_op op, lm_tensor *out, const lm_tensor *x, double p0, double p1);
    lm_status (*binary)(lm_binary_op op, lm_tensor *out, const lm_tensor *a, const lm_tensor *b);
    /* out = a op s, or s op a when `scalar_first`. */
    lm_status (*binary_scalar)(lm_binary_op op, lm_tensor *out, const lm_tensor *a, double s,
                               bool scalar_first);
    /* out = cond != 0 ? a : b */
    lm_status (*where)(lm_tensor *out, const lm_tensor *cond, const lm_tensor *a,
                       const lm_tensor *b);

    /* Reduces x over dimension `dim` into out, whose shape is x's with that
     * dimension removed (keepdim is a view question for the caller). With
     * dim < 0 reduces everything into a one-element out. ARGMAX/ARGMIN write
     * 0-based int32 indices; MAX/MIN also write them to `indices` if given. */
    lm_status (*reduce)(lm_reduce_op op, lm_tensor *out, lm_tensor *indices, const lm_tensor *x,
                        int dim);

    /* out = alpha * a @ b + beta * out for 3-D tensors (batch, rows, cols);
     * a and b may have batch size 1 (broadcast). */
    lm_status (*matmul)(lm_tensor *out, const lm_tensor *a, const lm_tensor *b, float alpha,
                        float beta);

    /* Fills `out` with counter-based random numbers: element i (in row-major
     * order of out) uses Philox counter `offset + i` under key `seed`, so the
     * numbers depend neither on threads nor on device. */
    lm_status (*random)(lm_random_kind kind, lm_tensor *out, uint64_t seed, uint64_t offset,
                        double p0, double p1);
} lm_backend;

/* The backend of a device, or NULL with lm_last_error saying why. */
const lm_backend *lm_backend_get(lm_device device);
const lm_backend *lm_cpu_backend(void);

#endif
