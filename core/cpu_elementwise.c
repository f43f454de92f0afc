/* CPU elementwise kernels: copy, fill, unary, binary, where.
 * float32 gets vectorisable inner loops; int32 (labels, indices) goes through
 * a generic path in double precision, which is exact for int32. The maths of
 * every op, in both precisions, is in lm_scalar_ops.h (shared with the CUDA
 * kernels); this file only walks memory. */
#include <math.h>

#include "cpu_backend.h"
#include "lm_iter.h"
#include "lm_scalar_ops.h"
#include "lm_threads.h"

/* ---- copy and fill ------------------------------------------------------------------ */

typedef struct {
    lm_iter it;
    lm_tensor *dst;
    const lm_tensor *src;
    double value;
} copy_job;

static void copy_range(void *ctx, int64_t begin, int64_t end) {
    copy_job *j = ctx;
    const lm_iter *it = &j->it;
    int64_t sd = it->strides[0][it->ndim - 1], ss = it->strides[1][it->ndim - 1];
    lm_dtype dt = j->dst->dtype, st = j->src->dtype;
/* a typed row copy, with a unit-stride loop the compiler vectorises */
#define COPY_ROW(DST_T, DST, SRC_T, SRC)                                                           \
    {                                                                                              \
        DST_T *d = DST(j->dst) + off[0];                                                           \
        const SRC_T *s = SRC(j->src) + off[1];                                                     \
        if (sd == 1 && ss == 1)                                                                    \
            for (int64_t i = 0; i < n; i++) d[i] = (DST_T)s[i];                                    \
        else                                                                                       \
            for (int64_t i = 0; i < n; i++) d[i * sd] = (DST_T)s[i * ss];                          \
    }
    LM_ITER_FOR(it, begin, end, off, n) {
        if (dt == LM_FLOAT32 && st == LM_FLOAT32) {
            COPY_ROW(float, lm_tensor_f32, float, lm_tensor_f32)
        } else if (dt == LM_FLOAT32 && st == LM_UINT8) { /* images as bytes, batch by batch */
            COPY_ROW(float, lm_tensor_f32, uint8_t, lm_tensor_u8)
        } else if (dt == LM_UINT8 && st == LM_UINT8) {
            COPY_ROW(uint8_t, lm_tensor_u8, uint8_t, lm_tensor_u8)
        } else {
            for (int64_t i = 0; i < n; i++)
                lm_tensor_store(j->dst, off[0] + i * sd, lm_tensor_load(j->src, off[1] + i * ss));
        }
    }
#undef COPY_ROW
}

lm_status lm_cpu_copy(lm_tensor *dst, const lm_tensor *src) {
    copy_job j = {.dst = dst, .src = src};
    const lm_tensor *ops[2] = {dst, src};
    lm_iter_init(&j.it, 2, ops);
    lm_parallel_for_balanced(j.it.numel, LM_GRAIN_ELEMENTWISE, copy_range, &j);
    return LM_OK;
}

static void fill_range(void *ctx, int64_t begin, int64_t end) {
    copy_job *j = ctx;
    const lm_iter *it = &j->it;
    int64_t sd = it->strides[0][it->ndim - 1];
    LM_ITER_FOR(it, begin, end, off, n) {
        if (j->dst->dtype == LM_FLOAT32) {
            float *d = lm_tensor_f32(j->dst) + off[0], v = (float)j->value;
            for (int64_t i = 0; i < n; i++) d[i * sd] = v;
        } else {
            for (int64_t i = 0; i < n; i++) lm_tensor_store(j->dst, off[0] + i * sd, j->value);
        }
    }
}

lm_status lm_cpu_fill(lm_tensor *dst, double value) {
    copy_job j = {.dst = dst, .value = value};
    const lm_tensor *ops[1] = {dst};
    lm_iter_init(&j.it, 1, ops);
    lm_parallel_for_balanced(j.it.numel, LM_GRAIN_ELEMENTWISE, fill_range, &j);
    return LM_OK;
}

/* ---- unary -------------------------------------------------------------------------- */

typedef struct {
    lm_iter it;
    lm_tensor *out;
    const lm_tensor *a, *b, *c;
    int op;
    double p0, p1;
    bool scalar_first;
} ew_job;

/* Runs EXPR (of float x) over a row, with a unit-stride fast path. */
#define UNARY_LOOP(EXPR)                                                                           \
    if (so == 1 && sx == 1) {                                                                      \
        for (int64_t i = 0; i < n; i++) {                                                          \
            float x = xp[i];                                                                       \
            o[i] = (EXPR);                                                                         \
        }                                                                                          \
    } else {                                                                                       \
        for (int64_t i = 0; i < n; i++) {                                                          \
            float x = xp[i * sx];                                                                  \
            o[i * so] = (EXPR);                                                                    \
        }                                                                                          \
    }                                                                                              \
    break

/* One loop per op, each with the op a constant, so that lm_unary_f32's
 * switch folds away and the loop vectorises. */
#define UNARY_CASE(OP)                                                                             \
    case OP:                                                                                       \
        UNARY_LOOP(lm_unary_f32(OP, x, p0, p1))

static void unary_row_f32(lm_unary_op op, int64_t n, float *o, int64_t so, const float *xp,
                          int64_t sx, float p0, float p1) {
    switch (op) {
        UNARY_CASE(LM_NEG);
        UNARY_CASE(LM_EXP);
        UNARY_CASE(LM_LOG);
        UNARY_CASE(LM_SQRT);
        UNARY_CASE(LM_ABS);
        UNARY_CASE(LM_SIGN);
        UNARY_CASE(LM_TANH);
        UNARY_CASE(LM_SIGMOID);
        UNARY_CASE(LM_RELU);
        UNARY_CASE(LM_ELU);
        UNARY_CASE(LM_CLAMP);
    case LM_POW_SCALAR: /* the common x^2 as its own (vectorised) loop: same values */
        if (p0 == 2.0f) {
            UNARY_LOOP(lm_unary_f32(LM_SQUARE, x, p0, p1));
        }
        UNARY_LOOP(lm_unary_f32(LM_POW_SCALAR, x, p0, p1));
        UNARY_CASE(LM_RPOW_SCALAR);
        UNARY_CASE(LM_SQUARE);
        UNARY_CASE(LM_RECIPROCAL);
    case LM_GELU: /* AVX-512 rows where it has them: the same bits, half the instructions */
        if (so == 1 && sx == 1 && lm_cpu_gelu_row(o, xp, n)) break;
        UNARY_LOOP(lm_unary_f32(LM_GELU, x, p0, p1));
        UNARY_CASE(LM_GELU_TANH);
        UNARY_CASE(LM_ROUND_BF16);
        UNARY_CASE(LM_LEAKY_RELU);
        UNARY_CASE(LM_FLOOR);
        UNARY_CASE(LM_CEIL);
        UNARY_CASE(LM_ROUND);
        UNARY_CASE(LM_TRUNC);
        UNARY_CASE(LM_LOG1P);
        UNARY_CASE(LM_EXPM1);
        UNARY_CASE(LM_LOG2);
        UNARY_CASE(LM_LOG10);
        UNARY_CASE(LM_RSQRT);
        UNARY_CASE(LM_ERF);
        UNARY_CASE(LM_ISNAN);
        UNARY_CASE(LM_ISINF);
        UNARY_CASE(LM_ISFINITE);
        UNARY_CASE(LM_SOFTPLUS);
        UNARY_CASE(LM_HARDSWISH);
        UNARY_CASE(LM_HARDSIGMOID);
        UNARY_CASE(LM_MISH);
        UNARY_CASE(LM_SELU);
        UNARY_CASE(LM_CELU);
        UNARY_CASE(LM_LOGSIGMOID);
        UNARY_CASE(LM_SOFTSIGN);
        UNARY_CASE(LM_TANHSHRINK);
        UNARY_CASE(LM_HARDSHRINK);
        UNARY_CASE(LM_SOFTSHRINK);
        UNARY_CASE(LM_THRESHOLD);
        UNARY_CASE(LM_SILU);
    case LM_UNARY_COUNT:
        break; /* refused by lm_cpu_unary */
    }
}

void lm_cpu_unary_span(lm_unary_op op, int64_t n, float *out, const float *x, float p0, float p1) {
    unary_row_f32(op, n, out, 1, x, 1, p0, p1);
}

static void unary_range(void *ctx, int64_t begin, int64_t end) {
    ew_job *j = ctx;
    const lm_iter *it = &j->it;
    int64_t so = it->strides[0][it->ndim - 1], sx = it->strides[1][it->ndim - 1];
    LM_ITER_FOR(it, begin, end, off, n) {
        if (j->out->dtype == LM_FLOAT32 && j->a->dtype == LM_FLOAT32) {
            unary_row_f32(j->op, n, lm_tensor_f32(j->out) + off[0], so,
                          lm_tensor_f32(j->a) + off[1], sx, (float)j->p0, (float)j->p1);
        } else {
            for (int64_t i = 0; i < n; i++)
                lm_tensor_store(
                    j->out, off[0] + i * so,
                    lm_scalar_unary(j->op, lm_tensor_load(j->a, off[1] + i * sx), j->p0, j->p1));
        }
    }
}

lm_status lm_cpu_unary(lm_unary_op op, lm_tensor *out, const lm_tensor *x, double p0, double p1) {
    if (!lm_unary_op_valid(op)) return lm_fail(LM_ERR_ARG, "unary: unknown op %d", (int)op);
    ew_job j = {.out = out, .a = x, .op = op, .p0 = p0, .p1 = p1};
    const lm_tensor *ops[2] = {out, x};
    lm_iter_init(&j.it, 2, ops);
    lm_parallel_for_balanced(j.it.numel, LM_GRAIN_ELEMENTWISE, unary_range, &j);
    return LM_OK;
}

/* ---- binary ------------------------------------------------------------------------- */

/* Runs EXPR (of floats x and y) over a row with fast paths for unit strides
 * and for a broadcast (stride 0) right or left operand. */
#define BINARY_LOOP(EXPR)                                                                          \
    if (so == 1 && sa == 1 && sb == 1) {                                                           \
        for (int64_t i = 0; i < n; i++) {                                                          \
            float x = ap[i], y = bp[i];                                                            \
            o[i] = (EXPR);                                                                         \
        }                                                                                          \
    } else if (so == 1 && sa == 1 && sb == 0) {                                                    \
        float y = bp[0];                                                                           \
        for (int64_t i = 0; i < n; i++) {                                                          \
            float x = ap[i];                                                                       \
            o[i] = (EXPR);                                                                         \
        }                                                                                          \
    } else if (so == 1 && sa == 0 && sb == 1) {                                                    \
        float x = ap[0];                                                                           \
        for (int64_t i = 0; i < n; i++) {                                                          \
            float y = bp[i];                                                                       \
            o[i] = (EXPR);                                                                         \
        }                                                                                          \
    } else {                                                                                       \
        for (int64_t i = 0; i < n; i++) {                                                          \
            float x = ap[i * sa], y = bp[i * sb];                                                  \
            o[i * so] = (EXPR);                                                                    \
        }                                                                                          \
    }                                                                                              \
    break

#define BINARY_CASE(OP)                                                                            \
    case OP:                                                                                       \
        BINARY_LOOP(lm_binary_f32(OP, x, y))

static void binary_row_f32(lm_binary_op op, int64_t n, float *o, int64_t so, const float *ap,
                           int64_t sa, const float *bp, int64_t sb) {
    switch (op) {
        BINARY_CASE(LM_ADD);
        BINARY_CASE(LM_SUB);
        BINARY_CASE(LM_MUL);
        BINARY_CASE(LM_DIV);
        BINARY_CASE(LM_POW);
        BINARY_CASE(LM_MAXIMUM);
        BINARY_CASE(LM_MINIMUM);
        BINARY_CASE(LM_EQ);
        BINARY_CASE(LM_NE);
        BINARY_CASE(LM_LT);
        BINARY_CASE(LM_LE);
        BINARY_CASE(LM_GT);
        BINARY_CASE(LM_GE);
    case LM_BINARY_COUNT:
        break; /* refused by lm_cpu_binary and lm_cpu_binary_scalar */
    }
}

static void binary_range(void *ctx, int64_t begin, int64_t end) {
    ew_job *j = ctx;
    const lm_iter *it = &j->it;
    int last = it->ndim - 1;
    int64_t so = it->strides[0][last], sa = it->strides[1][last], sb = it->strides[2][last];
    bool f32 =
        j->out->dtype == LM_FLOAT32 && j->a->dtype == LM_FLOAT32 && j->b->dtype == LM_FLOAT32;
    LM_ITER_FOR(it, begin, end, off, n) {
        if (f32) {
            binary_row_f32(j->op, n, lm_tensor_f32(j->out) + off[0], so,
                           lm_tensor_f32(j->a) + off[1], sa, lm_tensor_f32(j->b) + off[2], sb);
        } else {
            for (int64_t i = 0; i < n; i++)
                lm_tensor_store(j->out, off[0] + i * so,
                                lm_scalar_binary(j->op, lm_tensor_load(j->a, off[1] + i * sa),
                                                 lm_tensor_load(j->b, off[2] + i * sb)));
        }
    }
}

lm_status lm_cpu_binary(lm_binary_op op, lm_tensor *out, const lm_tensor *a, const lm_tensor *b) {
    if (!lm_binary_op_valid(op)) return lm_fail(LM_ERR_ARG, "binary: unknown op %d", (int)op);
    ew_job j = {.out = out, .a = a, .b = b, .op = op};
    const lm_tensor *ops[3] = {out, a, b};
    lm_iter_init(&j.it, 3, ops);
    lm_parallel_for_balanced(j.it.numel, LM_GRAIN_ELEMENTWISE, binary_range, &j);
    return LM_OK;
}

static void binary_scalar_range(void *ctx, int64_t begin, int64_t end) {
    ew_job *j = ctx;
    const lm_iter *it = &j->it;
    int last = it->ndim - 1;
    int64_t so = it->strides[0][last], st = it->strides[1][last];
    float s = (float)j->p0;
    bool f32 = j->out->dtype == LM_FLOAT32 && j->a->dtype == LM_FLOAT32;
    LM_ITER_FOR(it, begin, end, off, n) {
        if (f32) {
            const float *tp = lm_tensor_f32(j->a) + off[1];
            float *o = lm_tensor_f32(j->out) + off[0];
            if (j->scalar_first)
                binary_row_f32(j->op, n, o, so, &s, 0, tp, st);
            else
                binary_row_f32(j->op, n, o, so, tp, st, &s, 0);
        } else {
            for (int64_t i = 0; i < n; i++) {
                double t = lm_tensor_load(j->a, off[1] + i * st);
                double v = j->scalar_first ? lm_scalar_binary(j->op, j->p0, t)
                                           : lm_scalar_binary(j->op, t, j->p0);
                lm_tensor_store(j->out, off[0] + i * so, v);
            }
        }
    }
}

lm_status lm_cpu_binary_scalar(lm_binary_op op, lm_tensor *out, const lm_tensor *a, double s,
                               bool scalar_first) {
    if (!lm_binary_op_valid(op)) return lm_fail(LM_ERR_ARG, "binary: unknown op %d", (int)op);
    ew_job j = {.out = out, .a = a, .op = op, .p0 = s, .scalar_first = scalar_first};
    const lm_tensor *ops[2] = {out, a};
    lm_iter_init(&j.it, 2, ops);
    lm_parallel_for_balanced(j.it.numel, LM_GRAIN_ELEMENTWISE, binary_scalar_range, &j);
    return LM_OK;
}

/* ---- fused unary gradients ---------------------------------------------------------------- */

/* Runs EXPR (of floats gv, x, y) over a row, with a unit-stride fast path
 * (GCC vectorises it with plain loads, the strided loop it does not: SiLU's
 * gradient 1.14 -> 0.53 ns an element, GELU's 2.20 -> 1.41); the
 * derivatives are lm_unary_grad_f32's (lm_scalar_ops.h), one loop per op
 * as for the forward. */
#define GRAD_LOOP(EXPR)                                                                            \
    if (so == 1 && sg == 1 && sx == 1 && sy == 1) {                                                \
        for (int64_t i = 0; i < n; i++) {                                                          \
            float gv = gp[i], x = xp[i], y = yp[i];                                                \
            (void)x, (void)y;                                                                      \
            o[i] = (EXPR);                                                                         \
        }                                                                                          \
    } else {                                                                                       \
        for (int64_t i = 0; i < n; i++) {                                                          \
            float gv = gp[i * sg], x = xp[i * sx], y = yp[i * sy];                                 \
            (void)x, (void)y;                                                                      \
            o[i * so] = (EXPR);                                                                    \
        }                                                                                          \
    }                                                                                              \
    break

#define GRAD_CASE(OP)                                                                              \
    case OP:                                                                                       \
        GRAD_LOOP(lm_unary_grad_f32(OP, gv, x, y, alpha))

static void unary_backward_range(void *ctx, int64_t begin, int64_t end) {
    ew_job *j = ctx;
    const lm_iter *it = &j->it;
    int last = it->ndim - 1;
    int64_t so = it->strides[0][last], sg = it->strides[1][last], sx = it->strides[2][last],
            sy = it->strides[3][last];
    float alpha = (float)j->p0;
    LM_ITER_FOR(it, begin, end, off, n) {
        float *o = lm_tensor_f32(j->out) + off[0];
        const float *gp = lm_tensor_f32(j->a) + off[1], *xp = lm_tensor_f32(j->b) + off[2],
                    *yp = lm_tensor_f32(j->c) + off[3];
        switch ((lm_unary_op)j->op) {
            GRAD_CASE(LM_ELU);
            GRAD_CASE(LM_SIGMOID);
            GRAD_CASE(LM_TANH);
            GRAD_CASE(LM_RELU);
            GRAD_CASE(LM_EXP);
        case LM_GELU: /* as the forward */
            if (so == 1 && sg == 1 && sx == 1 && lm_cpu_gelu_grad_row(o, gp, xp, n)) break;
            GRAD_LOOP(lm_unary_grad_f32(LM_GELU, gv, x, y, alpha));
            GRAD_CASE(LM_GELU_TANH);
            GRAD_CASE(LM_LEAKY_RELU);
            GRAD_CASE(LM_HARDSWISH);
            GRAD_CASE(LM_HARDSIGMOID);
            GRAD_CASE(LM_MISH);
            GRAD_CASE(LM_SELU);
            GRAD_CASE(LM_CELU);
            GRAD_CASE(LM_LOGSIGMOID);
            GRAD_CASE(LM_SOFTSIGN);
            GRAD_CASE(LM_TANHSHRINK);
            GRAD_CASE(LM_HARDSHRINK);
            GRAD_CASE(LM_SOFTSHRINK);
            GRAD_CASE(LM_THRESHOLD);
            GRAD_CASE(LM_SILU);
        /* no fused gradient: refused by lm_cpu_unary_backward. Named one by
         * one, so -Wswitch reports a fused op added without its loop here */
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
    }
}

lm_status lm_cpu_unary_backward(lm_unary_op op, lm_tensor *gx, const lm_tensor *g,
                                const lm_tensor *x, const lm_tensor *y, double p0) {
    if (!lm_unary_has_fused_grad(op))
        return lm_fail(LM_ERR_ARG, "unary gradient: op %d has no fused gradient", (int)op);
    ew_job j = {.out = gx, .a = g, .b = x, .c = y, .op = op, .p0 = p0};
    const lm_tensor *ops[4] = {gx, g, x, y};
    lm_iter_init(&j.it, 4, ops);
    lm_parallel_for_balanced(j.it.numel, LM_GRAIN_ELEMENTWISE, unary_backward_range, &j);
    return LM_OK;
}

/* ---- where -------------------------------------------------------------------------- */

static void where_range(void *ctx, int64_t begin, int64_t end) {
    ew_job *j = ctx;
    const lm_iter *it = &j->it;
    int last = it->ndim - 1;
    int64_t so = it->strides[0][last], sc = it->strides[1][last], sa = it->strides[2][last],
            sb = it->strides[3][last];
    LM_ITER_FOR(it, begin, end, off, n) {
        for (int64_t i = 0; i < n; i++) {
            bool take_a = lm_tensor_load(j->c, off[1] + i * sc) != 0;
            double v = take_a ? lm_tensor_load(j->a, off[2] + i * sa)
                              : lm_tensor_load(j->b, off[3] + i * sb);
            lm_tensor_store(j->out, off[0] + i * so, v);
        }
    }
}

lm_status lm_cpu_where(lm_tensor *out, const lm_tensor *cond, const lm_tensor *a,
                       const lm_tensor *b) {
    ew_job j = {.out = out, .c = cond, .a = a, .b = b};
    const lm_tensor *ops[4] = {out, cond, a, b};
    lm_iter_init(&j.it, 4, ops);
    lm_parallel_for_balanced(j.it.numel, LM_GRAIN_ELEMENTWISE, where_range, &j);
    return LM_OK;
}
