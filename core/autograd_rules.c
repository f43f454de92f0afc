/* Every derivative rule of Lumen, written with ordinary ops so it runs on
 * any backend. g is the gradient of the node's output; gi[k] receives the
 * gradient of input k (left NULL when input k needs none). */
#include <math.h>

#include "autograd_rules.h"
#include "autograd_scope.h"
#include "lm_scalar_ops.h"

/* Input k wants a gradient (lm_node_attach keeps only inputs that require one). */
static bool needs_grad(const lm_node *n, int k) {
    return n->inputs[k] != NULL;
}

/* g summed over the dimensions input k was broadcast along. */
static lm_tensor *sum_to_input(scope *sc, lm_tensor *g, const lm_node *n, int k) {
    return sc_sum_to_dims(sc, g, n->inputs[k]->ndim, n->inputs[k]->shape);
}

/* ---- elementwise ------------------------------------------------------------------------------
 */

int lm_unary_grad_saves(lm_unary_op op, double p0) {
    switch (op) {
    case LM_NEG:
    case LM_SIGN:
    case LM_ROUND_BF16:
    case LM_FLOOR:
    case LM_CEIL:
    case LM_ROUND:
    case LM_TRUNC:
    case LM_ISNAN:
    case LM_ISINF:
    case LM_ISFINITE:
        return 0;
    case LM_POW_SCALAR: /* x^0 has gradient 0: nothing to keep */
        return p0 == 0 ? 0 : LM_UNARY_SAVES_X;
    case LM_EXP:
    case LM_SQRT:
    case LM_TANH:
    case LM_SIGMOID:
    case LM_RECIPROCAL:
    case LM_EXPM1:
    case LM_RSQRT:
        return LM_UNARY_SAVES_Y;
    case LM_LOG:
    case LM_ABS:
    case LM_RELU:
    case LM_CLAMP:
    case LM_SQUARE:
    case LM_GELU:
    case LM_GELU_TANH:
    case LM_LEAKY_RELU:
    case LM_LOG1P:
    case LM_LOG2:
    case LM_LOG10:
    case LM_ERF:
    case LM_SOFTPLUS:
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
        return LM_UNARY_SAVES_X;
    case LM_RPOW_SCALAR: /* x only for the zero gradient of 0^x at x >= 0 */
        return p0 == 0 ? LM_UNARY_SAVES_X | LM_UNARY_SAVES_Y : LM_UNARY_SAVES_Y;
    case LM_ELU:
    case LM_UNARY_COUNT:
        break;
    }
    return LM_UNARY_SAVES_X | LM_UNARY_SAVES_Y;
}

/* iparams[0] = op, p[0..1] = op parameters, saved[0] = x, saved[1] = y
 * (each only when lm_unary_grad_saves asks for it, else NULL). Ops whose gradient has a fused
 * backend kernel (lm_unary_has_fused_grad; the derivative itself is lm_unary_grad_f32 in
 * lm_scalar_ops.h, shared by the CPU and CUDA kernels) take one pass instead of a chain of
 * elementwise ops; the composite formulas below are their reference and are checked against them in
 * tests/c/test_ops.c. */
lm_status lm_rule_unary_composite(lm_node *n, lm_tensor *g, lm_tensor **gi);

lm_status lm_rule_unary(lm_node *n, lm_tensor *g, lm_tensor **gi) {
    lm_unary_op op = (lm_unary_op)n->iparams[0];
    if (!lm_unary_has_fused_grad(op)) return lm_rule_unary_composite(n, g, gi);
    lm_tensor *x, *y;
    LM_TRY(lm_node_saved(n, 0, &x));
    LM_TRY(lm_node_saved(n, 1, &y));
    /* the kernel reads only what was saved; the other operand stands in
     * for the one it ignores (same shape) */
    if (!x) x = y;
    if (!y) y = x;
    if (!x) return lm_fail(LM_ERR_STATE, "autograd: %s saved nothing for its gradient", n->name);
    const lm_backend *be = lm_backend_of(x);
    if (!be) return LM_ERR_DEVICE;
    LM_TRY(lm_tensor_new_like(&gi[0], x));
    lm_status s = be->unary_backward(op, gi[0], g, x, y, n->p[0]);
    if (s != LM_OK) {
        lm_tensor_release(gi[0]);
        gi[0] = NULL;
    }
    return s;
}

lm_status lm_rule_unary_composite(lm_node *n, lm_tensor *g, lm_tensor **gi) {
    scope sc = {0};
    lm_tensor *x = sc_saved(&sc, n, 0), *y = sc_saved(&sc, n, 1), *d = NULL;
    double p0 = n->p[0], p1 = n->p[1];
    switch ((lm_unary_op)n->iparams[0]) {
    case LM_NEG:
        d = sc_unary(&sc, LM_NEG, g, 0, 0);
        break;
    case LM_EXP:
        d = sc_binary(&sc, LM_MUL, g, y);
        break;
    case LM_LOG:
        d = sc_binary(&sc, LM_DIV, g, x);
        break;
    case LM_SQRT:
        d = sc_binary(&sc, LM_DIV, sc_binary_scalar(&sc, LM_MUL, g, 0.5), y);
        /* p0 = 1: the sqrt of a variance (x:std()), no gradient where it is
         * 0, as torch's std (else a constant input's is NaN: inf times 0) */
        if (p0 != 0)
            d = sc_where(&sc, sc_binary_scalar(&sc, LM_EQ, y, 0), sc_zeros_like(&sc, y), d);
        break;
    case LM_ABS:
        d = sc_binary(&sc, LM_MUL, g, sc_unary(&sc, LM_SIGN, x, 0, 0));
        break;
    case LM_SIGN:
        d = sc_zeros_like(&sc, g);
        break;
    case LM_TANH: /* 1 - y^2 */
        d = sc_scalar_binary(&sc, LM_SUB, 1, sc_unary(&sc, LM_SQUARE, y, 0, 0));
        d = sc_binary(&sc, LM_MUL, g, d);
        break;
    case LM_SIGMOID: /* y (1 - y) */
        d = sc_binary(&sc, LM_MUL, y, sc_scalar_binary(&sc, LM_SUB, 1, y));
        d = sc_binary(&sc, LM_MUL, g, d);
        break;
    case LM_RELU:
        d = sc_binary(&sc, LM_MUL, g, sc_binary_scalar(&sc, LM_GT, x, 0));
        break;
    case LM_ELU: { /* 1 where x > 0, else y + alpha */
        lm_tensor *pos = sc_binary_scalar(&sc, LM_GT, x, 0);
        lm_tensor *neg = sc_scalar_binary(&sc, LM_SUB, 1, pos);
        lm_tensor *y_alpha = sc_binary_scalar(&sc, LM_ADD, y, p0);
        lm_tensor *slope = sc_binary(&sc, LM_ADD, pos, sc_binary(&sc, LM_MUL, neg, y_alpha));
        d = sc_binary(&sc, LM_MUL, g, slope);
        break;
    }
    case LM_CLAMP: /* 1 inside [min, max] */
        d = sc_binary(&sc, LM_MUL, sc_binary_scalar(&sc, LM_GE, x, p0),
                      sc_binary_scalar(&sc, LM_LE, x, p1));
        d = sc_binary(&sc, LM_MUL, g, d);
        break;
    case LM_POW_SCALAR: /* p x^(p-1); 0 for p = 0 (x^0 is constant, also at x = 0) */
        if (p0 == 0) {
            d = sc_zeros_like(&sc, g);
            break;
        }
        d = sc_binary_scalar(&sc, LM_MUL, sc_unary(&sc, LM_POW_SCALAR, x, p0 - 1, 0), p0);
        d = sc_binary(&sc, LM_MUL, g, d);
        break;
    case LM_RPOW_SCALAR: /* p^x ln p; 0 where p = 0 and x >= 0, as torch */
        d = sc_binary(&sc, LM_MUL, g, sc_binary_scalar(&sc, LM_MUL, y, log(p0)));
        if (p0 == 0)
            d = sc_where(&sc, sc_binary_scalar(&sc, LM_GE, x, 0), sc_zeros_like(&sc, x), d);
        break;
    case LM_SQUARE:
        d = sc_binary(&sc, LM_MUL, g, sc_binary_scalar(&sc, LM_MUL, x, 2));
        break;
    case LM_RECIPROCAL: /* -y^2 */
        d = sc_binary(&sc, LM_MUL, g, sc_unary(&sc, LM_SQUARE, y, 0, 0));
        d = sc_unary(&sc, LM_NEG, d, 0, 0);
        break;
    case LM_GELU: { /* Phi(x) + x phi(x), with Phi(x) = y / x (1/2 at x = 0, where y = 0) */
        if (!y) y = sc_unary(&sc, LM_GELU, x, 0, 0); /* the tape keeps x only */
        lm_tensor *at0 = sc_binary_scalar(&sc, LM_EQ, x, 0);
        lm_tensor *cdf = sc_binary(&sc, LM_DIV, y, sc_binary(&sc, LM_ADD, x, at0));
        cdf = sc_binary(&sc, LM_ADD, cdf, sc_binary_scalar(&sc, LM_MUL, at0, 0.5));
        lm_tensor *x2 = sc_unary(&sc, LM_SQUARE, x, 0, 0);
        lm_tensor *pdf = sc_unary(&sc, LM_EXP, sc_binary_scalar(&sc, LM_MUL, x2, -0.5), 0, 0);
        pdf = sc_binary_scalar(&sc, LM_MUL, pdf, LM_GELU_RSQRT2PI);
        d = sc_binary(&sc, LM_MUL, g, sc_binary(&sc, LM_ADD, cdf, sc_binary(&sc, LM_MUL, x, pdf)));
        break;
    }
    case LM_GELU_TANH: { /* 0.5 (1 + t) + 0.5 x (1 - t^2) beta (1 + 3 kappa x^2), t = tanh(u) */
        lm_tensor *x2 = sc_unary(&sc, LM_SQUARE, x, 0, 0);
        lm_tensor *u = sc_binary_scalar(&sc, LM_MUL, x2, LM_GELU_TANH_KAPPA);
        u = sc_binary(&sc, LM_MUL, x, sc_binary_scalar(&sc, LM_ADD, u, 1)); /* x + kappa x^3 */
        u = sc_binary_scalar(&sc, LM_MUL, u, LM_GELU_TANH_BETA);
        lm_tensor *t = sc_unary(&sc, LM_TANH, u, 0, 0);
        lm_tensor *du = sc_binary_scalar(&sc, LM_MUL, x2, 3 * LM_GELU_TANH_KAPPA);
        du = sc_binary_scalar(&sc, LM_MUL, sc_binary_scalar(&sc, LM_ADD, du, 1), LM_GELU_TANH_BETA);
        lm_tensor *sech2 = sc_scalar_binary(&sc, LM_SUB, 1, sc_unary(&sc, LM_SQUARE, t, 0, 0));
        lm_tensor *slope = sc_binary(&sc, LM_ADD, sc_binary_scalar(&sc, LM_ADD, t, 1),
                                     sc_binary(&sc, LM_MUL, sc_binary(&sc, LM_MUL, x, sech2), du));
        d = sc_binary(&sc, LM_MUL, g, sc_binary_scalar(&sc, LM_MUL, slope, 0.5));
        break;
    }
    case LM_ROUND_BF16: /* passes the gradient through, as torch's casts do */
        d = sc_binary_scalar(&sc, LM_MUL, g, 1);
        break;
    case LM_LEAKY_RELU: { /* 1 where x > 0, else negative_slope (also at 0, as torch) */
        lm_tensor *pos = sc_binary_scalar(&sc, LM_GT, x, 0);
        lm_tensor *neg = sc_scalar_binary(&sc, LM_SUB, 1, pos);
        lm_tensor *slope = sc_binary(&sc, LM_ADD, pos, sc_binary_scalar(&sc, LM_MUL, neg, p0));
        d = sc_binary(&sc, LM_MUL, g, slope);
        break;
    }
    case LM_FLOOR: /* piecewise constant: zero, as torch */
    case LM_CEIL:
    case LM_ROUND:
    case LM_TRUNC:
    case LM_ISNAN: /* never recorded (lm_unary_is_predicate) */
    case LM_ISINF:
    case LM_ISFINITE:
        d = sc_zeros_like(&sc, g);
        break;
    case LM_LOG1P: /* 1 / (1 + x) */
        d = sc_binary(&sc, LM_DIV, g, sc_binary_scalar(&sc, LM_ADD, x, 1));
        break;
    case LM_EXPM1: /* e^x = y + 1 */
        d = sc_binary(&sc, LM_MUL, g, sc_binary_scalar(&sc, LM_ADD, y, 1));
        break;
    case LM_LOG2: /* 1 / (x ln 2) */
        d = sc_binary(&sc, LM_DIV, g, sc_binary_scalar(&sc, LM_MUL, x, log(2.0)));
        break;
    case LM_LOG10: /* 1 / (x ln 10) */
        d = sc_binary(&sc, LM_DIV, g, sc_binary_scalar(&sc, LM_MUL, x, log(10.0)));
        break;
    case LM_RSQRT: /* -1/2 x^(-3/2) = -y^3 / 2 */
        d = sc_binary(&sc, LM_MUL, y, sc_unary(&sc, LM_SQUARE, y, 0, 0));
        d = sc_binary(&sc, LM_MUL, g, sc_binary_scalar(&sc, LM_MUL, d, -0.5));
        break;
    case LM_ERF: /* 2 / sqrt(pi) e^(-x^2) */
        d = sc_unary(&sc, LM_EXP, sc_unary(&sc, LM_NEG, sc_unary(&sc, LM_SQUARE, x, 0, 0), 0, 0), 0,
                     0);
        d = sc_binary(&sc, LM_MUL, g, sc_binary_scalar(&sc, LM_MUL, d, LM_ERF_SLOPE0));
        break;
    case LM_SOFTPLUS: { /* sigmoid(beta x), 1 past the threshold, as torch */
        lm_tensor *bx = sc_binary_scalar(&sc, LM_MUL, x, p0);
        d = sc_binary(&sc, LM_MUL, g, sc_unary(&sc, LM_SIGMOID, bx, 0, 0));
        d = sc_where(&sc, sc_binary_scalar(&sc, LM_GT, bx, p1), g, d);
        break;
    }
    case LM_HARDSWISH: /* 0 below -3, x / 3 + 1/2 on [-3, 3), 1 from 3, NaN for NaN, as torch */
        d = sc_binary(&sc, LM_MUL, g,
                      sc_binary_scalar(&sc, LM_ADD, sc_binary_scalar(&sc, LM_DIV, x, 3), 0.5));
        d = sc_where(&sc, sc_binary_scalar(&sc, LM_GE, x, 3), g, d);
        d = sc_where(&sc, sc_binary_scalar(&sc, LM_LT, x, -3), sc_zeros_like(&sc, g), d);
        break;
    case LM_HARDSIGMOID: { /* 1/6 strictly inside (-3, 3) */
        lm_tensor *inside = sc_binary(&sc, LM_MUL, sc_binary_scalar(&sc, LM_GT, x, -3),
                                      sc_binary_scalar(&sc, LM_LT, x, 3));
        d = sc_binary(&sc, LM_MUL, g, sc_binary_scalar(&sc, LM_MUL, inside, 1.0 / 6));
        break;
    }
    case LM_MISH: { /* t + x sigmoid(x) (1 - t^2), t = tanh(softplus(x)) */
        lm_tensor *t = sc_unary(&sc, LM_TANH, sc_unary(&sc, LM_SOFTPLUS, x, 1, 20), 0, 0);
        lm_tensor *sech2 = sc_scalar_binary(&sc, LM_SUB, 1, sc_unary(&sc, LM_SQUARE, t, 0, 0));
        lm_tensor *xs = sc_binary(&sc, LM_MUL, x, sc_unary(&sc, LM_SIGMOID, x, 0, 0));
        d = sc_binary(&sc, LM_MUL, g, sc_binary(&sc, LM_ADD, t, sc_binary(&sc, LM_MUL, xs, sech2)));
        break;
    }
    case LM_SELU: { /* scale alpha e^x where x <= 0, else scale */
        lm_tensor *e = sc_unary(&sc, LM_EXP, x, 0, 0);
        lm_tensor *neg = sc_binary(&sc, LM_MUL, g,
                                   sc_binary_scalar(&sc, LM_MUL, e, LM_SELU_SCALE * LM_SELU_ALPHA));
        d = sc_where(&sc, sc_binary_scalar(&sc, LM_GT, x, 0),
                     sc_binary_scalar(&sc, LM_MUL, g, LM_SELU_SCALE), neg);
        break;
    }
    case LM_CELU: { /* e^(x / alpha) where x <= 0, else 1 */
        lm_tensor *e = sc_unary(&sc, LM_EXP, sc_binary_scalar(&sc, LM_DIV, x, p0), 0, 0);
        d = sc_where(&sc, sc_binary_scalar(&sc, LM_GT, x, 0), g, sc_binary(&sc, LM_MUL, g, e));
        break;
    }
    case LM_LOGSIGMOID: /* 1 - sigmoid(x) = sigmoid(-x) */
        d = sc_binary(&sc, LM_MUL, g,
                      sc_unary(&sc, LM_SIGMOID, sc_unary(&sc, LM_NEG, x, 0, 0), 0, 0));
        break;
    case LM_SOFTSIGN: /* 1 / (1 + |x|)^2 */
        d = sc_binary_scalar(&sc, LM_ADD, sc_unary(&sc, LM_ABS, x, 0, 0), 1);
        d = sc_binary(&sc, LM_DIV, g, sc_unary(&sc, LM_SQUARE, d, 0, 0));
        break;
    case LM_TANHSHRINK: /* tanh(x)^2 */
        d = sc_binary(&sc, LM_MUL, g,
                      sc_unary(&sc, LM_SQUARE, sc_unary(&sc, LM_TANH, x, 0, 0), 0, 0));
        break;
    case LM_HARDSHRINK: /* 1 outside [-lambd, lambd] only: 0 at its ends and for NaN */
    case LM_SOFTSHRINK: {
        lm_tensor *outside = sc_binary(&sc, LM_MAXIMUM, sc_binary_scalar(&sc, LM_LT, x, -p0),
                                       sc_binary_scalar(&sc, LM_GT, x, p0));
        d = sc_binary(&sc, LM_MUL, g, outside);
        break;
    }
    case LM_THRESHOLD: /* 0 up to the threshold, included */
        d = sc_where(&sc, sc_binary_scalar(&sc, LM_LE, x, p0), sc_zeros_like(&sc, g), g);
        break;
    case LM_SILU: { /* s (1 + x (1 - s)), s = sigmoid(x) */
        lm_tensor *s = sc_unary(&sc, LM_SIGMOID, x, 0, 0);
        lm_tensor *inner = sc_binary_scalar(
            &sc, LM_ADD, sc_binary(&sc, LM_MUL, x, sc_scalar_binary(&sc, LM_SUB, 1, s)), 1);
        d = sc_binary(&sc, LM_MUL, sc_binary(&sc, LM_MUL, g, s), inner);
        break;
    }
    case LM_UNARY_COUNT:
        break; /* no default: -Wswitch lists an op added without its rule */
    }
    if (!d && sc.status == LM_OK)
        sc.status = lm_fail(LM_ERR_STATE, "autograd: no rule for unary op %d", (int)n->iparams[0]);
    gi[0] = sc_give(&sc, d);
    return sc_end(&sc);
}

/* iparams[0] = op; saved[0] = a, saved[1] = b, saved[2] = y */
lm_status lm_rule_binary(lm_node *n, lm_tensor *g, lm_tensor **gi) {
    scope sc = {0};
    lm_tensor *a = sc_saved(&sc, n, 0), *b = sc_saved(&sc, n, 1), *y = sc_saved(&sc, n, 2);
    lm_tensor *da = NULL, *db = NULL;
    switch ((lm_binary_op)n->iparams[0]) {
    case LM_ADD:
        da = g, db = g;
        break;
    case LM_SUB:
        da = g, db = needs_grad(n, 1) ? sc_unary(&sc, LM_NEG, g, 0, 0) : NULL;
        break;
    case LM_MUL:
        if (needs_grad(n, 0)) da = sc_binary(&sc, LM_MUL, g, b);
        if (needs_grad(n, 1)) db = sc_binary(&sc, LM_MUL, g, a);
        break;
    case LM_DIV: /* d/da = 1/b, d/db = -a/b^2 = -y/b */
        if (needs_grad(n, 0)) da = sc_binary(&sc, LM_DIV, g, b);
        if (needs_grad(n, 1)) {
            lm_tensor *gy_b = sc_binary(&sc, LM_DIV, sc_binary(&sc, LM_MUL, g, y), b);
            db = sc_unary(&sc, LM_NEG, gy_b, 0, 0);
        }
        break;
    case LM_POW: /* d/da = b a^(b-1), d/db = y ln a; as torch, 0 where b = 0 (d/da)
                    and where a = 0 and b >= 0 (d/db), not NaN or -inf */
        if (needs_grad(n, 0)) {
            lm_tensor *pow_b1 = sc_binary(&sc, LM_POW, a, sc_binary_scalar(&sc, LM_SUB, b, 1));
            da = sc_binary(&sc, LM_MUL, g, sc_binary(&sc, LM_MUL, b, pow_b1));
            da = sc_where(&sc, sc_binary_scalar(&sc, LM_EQ, b, 0), sc_zeros_like(&sc, da), da);
        }
        if (needs_grad(n, 1)) {
            lm_tensor *y_ln_a = sc_binary(&sc, LM_MUL, y, sc_unary(&sc, LM_LOG, a, 0, 0));
            db = sc_binary(&sc, LM_MUL, g, y_ln_a);
            lm_tensor *flat = sc_binary(&sc, LM_MUL, sc_binary_scalar(&sc, LM_EQ, a, 0),
                                        sc_binary_scalar(&sc, LM_GE, b, 0));
            db = sc_where(&sc, flat, sc_zeros_like(&sc, db), db);
        }
        break;
    case LM_MAXIMUM:
    case LM_MINIMUM: { /* the chosen side gets the gradient; ties go to a */
        lm_tensor *pick_a = sc_binary(&sc, n->iparams[0] == LM_MAXIMUM ? LM_GE : LM_LE, a, b);
        if (needs_grad(n, 0)) da = sc_binary(&sc, LM_MUL, g, pick_a);
        if (needs_grad(n, 1))
            db = sc_binary(&sc, LM_MUL, g, sc_scalar_binary(&sc, LM_SUB, 1, pick_a));
        break;
    }
    default:
        sc.status = lm_fail(LM_ERR_STATE, "autograd: no rule for this binary op");
    }
    if (needs_grad(n, 0)) gi[0] = sc_give(&sc, sum_to_input(&sc, da, n, 0));
    if (needs_grad(n, 1)) gi[1] = sc_give(&sc, sum_to_input(&sc, db, n, 1));
    return sc_end(&sc);
}

/* iparams[0] = op, iparams[1] = scalar_first, p[0] = scalar; saved[0] = a, saved[1] = y
 * where the op's gradient reads them (lm_ag_binary_scalar) */
lm_status lm_rule_binary_scalar(lm_node *n, lm_tensor *g, lm_tensor **gi) {
    scope sc = {0};
    lm_tensor *a = sc_saved(&sc, n, 0), *y = sc_saved(&sc, n, 1), *d = NULL;
    double s = n->p[0];
    bool first = n->iparams[1];
    switch ((lm_binary_op)n->iparams[0]) {
    case LM_ADD:
        d = g;
        break;
    case LM_SUB:
        d = first ? sc_unary(&sc, LM_NEG, g, 0, 0) : g;
        break;
    case LM_MUL:
        d = sc_binary_scalar(&sc, LM_MUL, g, s);
        break;
    case LM_DIV: /* a / s, or s / a whose derivative is -y / a */
        if (first)
            d = sc_unary(&sc, LM_NEG, sc_binary(&sc, LM_DIV, sc_binary(&sc, LM_MUL, g, y), a), 0,
                         0);
        else
            d = sc_binary_scalar(&sc, LM_DIV, g, s);
        break;
    case LM_POW: /* s^a: y ln s (0 where s = 0 and a >= 0); a^s: s a^(s-1) (0 for s = 0), as torch
                  */
        if (first) {
            d = sc_binary_scalar(&sc, LM_MUL, y, log(s));
            if (s == 0)
                d = sc_where(&sc, sc_binary_scalar(&sc, LM_GE, a, 0), sc_zeros_like(&sc, a), d);
        } else if (s == 0) {
            d = sc_zeros_like(&sc, g); /* a's shape: a is not saved for a^0 */
        } else {
            d = sc_binary_scalar(&sc, LM_MUL, sc_unary(&sc, LM_POW_SCALAR, a, s - 1, 0), s);
        }
        d = sc_binary(&sc, LM_MUL, g, d);
        break;
    case LM_MAXIMUM:
        d = sc_binary(&sc, LM_MUL, g, sc_binary_scalar(&sc, LM_GE, a, s));
        break;
    case LM_MINIMUM:
        d = sc_binary(&sc, LM_MUL, g, sc_binary_scalar(&sc, LM_LE, a, s));
        break;
    default:
        sc.status = lm_fail(LM_ERR_STATE, "autograd: no rule for this scalar op");
    }
    gi[0] = sc_give(&sc, d);
    return sc_end(&sc);
}

/* saved[0] = cond; inputs a, b */
lm_status lm_rule_where(lm_node *n, lm_tensor *g, lm_tensor **gi) {
    scope sc = {0};
    lm_tensor *cond = sc_saved(&sc, n, 0), *zero = sc_zeros_like(&sc, g);
    for (int k = 0; k < 2; k++) {
        if (!needs_grad(n, k)) continue;
        lm_tensor *d = sc_where(&sc, cond, k == 0 ? g : zero, k == 0 ? zero : g);
        gi[k] = sc_give(&sc, sum_to_input(&sc, d, n, k));
    }
    return sc_end(&sc);
}

/* ---- reductions --------------------------------------------------------------------------------
 */

/* g reshaped so it broadcasts against x: the reduced dimension(s) as size 1. */
static lm_tensor *unreduce(scope *sc, lm_node *n, lm_tensor *g) {
    int dim = (int)n->iparams[1];
    int64_t shape[LM_MAX_DIMS];
    for (int d = 0; d < n->ndim; d++) shape[d] = dim < 0 || d == dim ? 1 : n->shape[d];
    return sc_reshape(sc, g, n->ndim, shape);
}

/* 1 at the positions `indices` chose along the reduced dimension (or, for a
 * reduction over everything, at the flat position), 0 elsewhere. */
static lm_tensor *index_mask(scope *sc, lm_node *n, lm_tensor *x, lm_tensor *indices) {
    int dim = (int)n->iparams[1];
    int64_t len = dim < 0 ? lm_tensor_numel(x) : x->shape[dim];
    lm_tensor *r = NULL;
    lm_tensor *host = sc_keep(sc, sc->status ? sc->status : lm_arange(&r, LM_INT32, 0, 1, len), &r);
    lm_tensor *pos =
        sc_keep(sc, sc->status ? sc->status : lm_to_device(&r, host, x->storage->device), &r);
    if (sc->status) return NULL;
    int64_t shape[LM_MAX_DIMS];
    for (int d = 0; d < x->ndim; d++) shape[d] = dim < 0 ? x->shape[d] : d == dim ? len : 1;
    lm_tensor *pos_shaped = sc_reshape(sc, pos, dim < 0 ? x->ndim : x->ndim, shape);
    lm_tensor *idx = unreduce(sc, n, indices);
    return sc_binary(sc, LM_EQ, pos_shaped, idx);
}

/* iparams[0] = op, [1] = dim (-1: all), [2] = keepdim; shape = x's shape;
 * saved[0] = x (VAR, MAX, MIN), saved[1] = indices (MAX, MIN) */
lm_status lm_rule_reduce(lm_node *n, lm_tensor *g, lm_tensor **gi) {
    scope sc = {0};
    int dim = (int)n->iparams[1];
    int64_t count = 1;
    for (int d = 0; d < n->ndim; d++)
        if (dim < 0 || d == dim) count *= n->shape[d];
    lm_tensor *gu = unreduce(&sc, n, g), *d = NULL;
    lm_tensor *x = sc_saved(&sc, n, 0);
    switch ((lm_reduce_op)n->iparams[0]) {
    case LM_SUM:
        d = gu;
        break;
    case LM_MEAN:
        d = sc_binary_scalar(&sc, LM_DIV, gu, (double)count);
        break;
    case LM_VAR: { /* 2 (x - mean) / (n - 1) */
        lm_tensor *centred = sc_binary(&sc, LM_SUB, x, sc_reduce(&sc, LM_MEAN, x, dim, true));
        d = sc_binary(&sc, LM_MUL, gu,
                      sc_binary_scalar(&sc, LM_MUL, centred, 2.0 / (double)(count - 1)));
        break;
    }
    case LM_MAX:
    case LM_MIN:
        d = sc_binary(&sc, LM_MUL, gu, index_mask(&sc, n, x, sc_saved(&sc, n, 1)));
        break;
    default:
        sc.status = lm_fail(LM_ERR_STATE, "autograd: %s has no gradient", "argmax/argmin");
    }
    /* broadcast back to the input's shape */
    gi[0] = sc_give(&sc, sc_expand(&sc, d, n->ndim, n->shape));
    return sc_end(&sc);
}

/* ---- linear algebra
 * ------------------------------------------------------------------------------ */

/* saved[0] = a, saved[1] = b (as given: 1-D operands allowed) */
lm_status lm_rule_matmul(lm_node *n, lm_tensor *g, lm_tensor **gi) {
    scope sc = {0};
    lm_tensor *a = sc_saved(&sc, n, 0), *b = sc_saved(&sc, n, 1);
    if (sc.status) return sc_end(&sc);
    /* lift 1-D operands to matrices and g to match, as matmul did */
    int64_t shape[LM_MAX_DIMS];
    lm_tensor *a2 = a, *b2 = b, *g2 = g;
    if (a->ndim == 1) {
        shape[0] = 1, shape[1] = a->shape[0];
        a2 = sc_reshape(&sc, a, 2, shape);
    }
    if (b->ndim == 1) {
        shape[0] = b->shape[0], shape[1] = 1;
        b2 = sc_reshape(&sc, b, 2, shape);
    }
    if (a->ndim == 1 || b->ndim == 1) {
        /* batch dims of g, then rows (1 if a was 1-D), then cols (1 if b was 1-D) */
        int gnd = 0, gd = 0;
        int batch = g->ndim - (a->ndim == 1 ? 0 : 1) - (b->ndim == 1 ? 0 : 1);
        for (; gd < batch; gd++) shape[gnd++] = g->shape[gd];
        shape[gnd++] = a->ndim == 1 ? 1 : g->shape[gd++];
        shape[gnd++] = b->ndim == 1 ? 1 : g->shape[gd++];
        g2 = sc_reshape(&sc, g, gnd, shape);
    }
    if (sc.status) return sc_end(&sc);
    if (needs_grad(n, 0)) { /* ga = g @ b^T */
        lm_tensor *ga = sc_matmul(&sc, g2, sc_transpose(&sc, b2, b2->ndim - 2, b2->ndim - 1));
        gi[0] = sc_give(&sc, sc_reshape(&sc, sc_sum_to(&sc, ga, a2), a->ndim, a->shape));
    }
    if (needs_grad(n, 1)) { /* gb = a^T @ g */
        lm_tensor *gb = sc_matmul(&sc, sc_transpose(&sc, a2, a2->ndim - 2, a2->ndim - 1), g2);
        gi[1] = sc_give(&sc, sc_reshape(&sc, sc_sum_to(&sc, gb, b2), b->ndim, b->shape));
    }
    return sc_end(&sc);
}

/* ---- views -------------------------------------------------------------------------------------
 */

/* shape = the input's shape (view, reshape, squeeze, unsqueeze) */
lm_status lm_rule_reshape(lm_node *n, lm_tensor *g, lm_tensor **gi) {
    scope sc = {0};
    gi[0] = sc_give(&sc, sc_reshape(&sc, g, n->ndim, n->shape));
    return sc_end(&sc);
}

/* iparams = the permutation that made the output */
lm_status lm_rule_permute(lm_node *n, lm_tensor *g, lm_tensor **gi) {
    int inverse[LM_MAX_DIMS];
    for (int d = 0; d < g->ndim; d++) inverse[n->iparams[d]] = d;
    return lm_tensor_permute(&gi[0], g, g->ndim, inverse);
}

/* Zeros of the input's shape with g written into the part the view took. */
static lm_status scatter_into_zeros(lm_node *n, lm_tensor *g, lm_tensor **out, bool select) {
    lm_tensor *z, *part;
    LM_TRY(lm_full(&z, LM_FLOAT32, g->storage->device, n->ndim, n->shape, 0));
    lm_status s =
        select ? lm_tensor_select(&part, z, (int)n->iparams[0], n->iparams[1])
               : lm_tensor_narrow(&part, z, (int)n->iparams[0], n->iparams[1], n->iparams[2]);
    if (s == LM_OK) s = lm_copy_(part, g);
    if (s == LM_OK) lm_tensor_release(part);
    if (s != LM_OK) {
        lm_tensor_release(z);
        return s;
    }
    *out = z;
    return LM_OK;
}

/* iparams[0] = dim, [1] = start, [2] = length; shape = input's */
lm_status lm_rule_narrow(lm_node *n, lm_tensor *g, lm_tensor **gi) {
    return scatter_into_zeros(n, g, &gi[0], false);
}

/* iparams[0] = dim, [1] = index; shape = input's */
lm_status lm_rule_select(lm_node *n, lm_tensor *g, lm_tensor **gi) {
    return scatter_into_zeros(n, g, &gi[0], true);
}

/* shape = input's */
lm_status lm_rule_expand(lm_node *n, lm_tensor *g, lm_tensor **gi) {
    return lm_sum_to_shape(&gi[0], g, n->ndim, n->shape);
}

lm_status lm_rule_identity(lm_node *n, lm_tensor *g, lm_tensor **gi) {
    gi[0] = lm_tensor_retain(g);
    return LM_OK;
}

/* iparams[0] = dim; iparams[1 + k] = size of input k along dim */
lm_status lm_rule_cat(lm_node *n, lm_tensor *g, lm_tensor **gi) {
    int dim = (int)n->iparams[0];
    int64_t start = 0;
    for (int k = 0; k < n->ninputs; k++) {
        int64_t len = n->iparams[1 + k];
        if (needs_grad(n, k)) LM_TRY(lm_tensor_narrow(&gi[k], g, dim, start, len));
        start += len;
    }
    return LM_OK;
}

/* iparams[0] = dim; saved[0] = the 0-based index; shape = the input's. The
 * gradient is g scatter-added into zeros of the input's shape: positions that
 * the index names twice get both gradients. The index was checked forward. */
lm_status lm_rule_gather(lm_node *n, lm_tensor *g, lm_tensor **gi) {
    scope sc = {0};
    lm_tensor *idx = sc_contiguous(&sc, sc_saved(&sc, n, 0));
    lm_tensor *gc = sc_contiguous(&sc, g);
    lm_tensor *gx = sc_zeros(&sc, g->storage->device, n->ndim, n->shape);
    const lm_backend *be = sc_backend(&sc, g);
    if (be) sc.status = be->scatter_add(gx, idx, gc, (int)n->iparams[0]);
    gi[0] = sc_give(&sc, gx);
    return sc_end(&sc);
}

/* inputs x, src; iparams[0] = dim; saved[0] = the 0-based index: x's
 * gradient is g, src's the gather of g at the index */
lm_status lm_rule_scatter_add(lm_node *n, lm_tensor *g, lm_tensor **gi) {
    scope sc = {0};
    if (needs_grad(n, 0)) gi[0] = lm_tensor_retain(g);
    if (needs_grad(n, 1)) {
        lm_tensor *idx = sc_contiguous(&sc, sc_saved(&sc, n, 0));
        lm_tensor *gs = idx ? sc_empty(&sc, g->storage->device, idx->ndim, idx->shape) : NULL;
        const lm_backend *be = sc_backend(&sc, g);
        if (be) sc.status = be->gather(gs, g, idx, (int)n->iparams[0]);
        gi[1] = sc_give(&sc, gs);
    }
    return sc_end(&sc);
}

/* iparams[0] = dim: the gradient is g's cumulative sum from the end back */
lm_status lm_rule_cumsum(lm_node *n, lm_tensor *g, lm_tensor **gi) {
    return lm_cumsum(&gi[0], g, (int)n->iparams[0], true);
}

/* saved: the index and weights of the second-last dimension, then the last's;
 * shape = the input's (lm_resample2d) */
lm_status lm_rule_resample2d(lm_node *n, lm_tensor *g, lm_tensor **gi) {
    scope sc = {0};
    lm_tensor *ih = sc_saved(&sc, n, 0), *wh = sc_saved(&sc, n, 1);
    lm_tensor *iw = sc_saved(&sc, n, 2), *ww = sc_saved(&sc, n, 3);
    lm_tensor *gc = sc_contiguous(&sc, g);
    lm_tensor *gx = sc_empty(&sc, g->storage->device, n->ndim, n->shape);
    const lm_backend *be = sc_backend(&sc, g);
    if (be && lm_tensor_numel(gx) > 0) sc.status = be->resample2d_backward(gx, gc, ih, wh, iw, ww);
    gi[0] = sc_give(&sc, gx);
    return sc_end(&sc);
}

/* iparams[0] = dim; saved[0] = the 0-based index [m, taps], saved[1] the
 * weights; shape = the input's. Each tap's weighted gradient goes back to the
 * position it read, so positions read twice (padding, upsampling) add up. */
lm_status lm_rule_resample(lm_node *n, lm_tensor *g, lm_tensor **gi) {
    scope sc = {0};
    lm_tensor *idx = sc_saved(&sc, n, 0), *w = sc_saved(&sc, n, 1);
    lm_tensor *gc = sc_contiguous(&sc, g);
    lm_tensor *gx = sc_empty(&sc, g->storage->device, n->ndim, n->shape);
    const lm_backend *be = sc_backend(&sc, g);
    if (be && lm_tensor_numel(gx) > 0)
        sc.status = be->resample_backward(gx, gc, idx, w, (int)n->iparams[0]);
    gi[0] = sc_give(&sc, gx);
    return sc_end(&sc);
}

/* ---- layers and losses
 * ------------------------------------------------------------------------------ */

/* inputs x, w, b; saved[0] = x, saved[1] = w */
/* The gradients of y = x w^T + b from g = dL/dy: saved[0] = x, saved[1] = w. */
static lm_status linear_gradients(lm_node *n, lm_tensor *g, lm_tensor **gi) {
    scope sc = {0};
    lm_tensor *x = sc_saved(&sc, n, 0), *w = sc_saved(&sc, n, 1);
    if (sc.status) return sc_end(&sc);
    int64_t out_f = w->shape[0], in_f = w->shape[1];
    int64_t g2s[2] = {-1, out_f}, x2s[2] = {-1, in_f};
    lm_tensor *g2 = sc_reshape(&sc, g, 2, g2s); /* [rows, out] */
    if (needs_grad(n, 0) && needs_grad(n, 1)) {
        /* the two products side by side (lm_matmul_pair): [..., in], [out, in] */
        lm_tensor *gt = sc_transpose(&sc, g2, 0, 1), *x2 = sc_reshape(&sc, x, 2, x2s);
        lm_tensor *gx = NULL, *gw = NULL;
        lm_status s = sc.status ? sc.status : lm_matmul_pair(&gx, g, w, &gw, gt, x2);
        sc_keep(&sc, s, &gx);
        if (sc.status != LM_OK) lm_tensor_release(gw);
        sc_keep(&sc, s, &gw);
        gi[0] = sc_give(&sc, gx);
        gi[1] = sc_give(&sc, gw);
    } else if (needs_grad(n, 0)) {
        gi[0] = sc_give(&sc, sc_matmul(&sc, g, w)); /* [..., in] */
    } else if (needs_grad(n, 1)) {                  /* [out, in] */
        gi[1] =
            sc_give(&sc, sc_matmul(&sc, sc_transpose(&sc, g2, 0, 1), sc_reshape(&sc, x, 2, x2s)));
    }
    if (needs_grad(n, 2)) gi[2] = sc_give(&sc, sc_reduce(&sc, LM_SUM, g2, 0, false));
    return sc_end(&sc);
}

lm_status lm_rule_linear(lm_node *n, lm_tensor *g, lm_tensor **gi) {
    return linear_gradients(n, g, gi);
}

/* inputs x, w, b; saved x, w, a (the activation's output), mask (or NULL);
 * iparams[0] = the activation, p[0] = its alpha. The gradient at the
 * product, then the linear layer's. */
lm_status lm_rule_linear_act(lm_node *n, lm_tensor *g, lm_tensor **gi) {
    scope sc = {0};
    lm_tensor *a = sc_saved(&sc, n, 2), *mask = n->saved[3] ? sc_saved(&sc, n, 3) : NULL;
    if (sc.status) return sc_end(&sc);
    lm_unary_op op = (lm_unary_op)n->iparams[0];
    const lm_backend *be = sc_backend(&sc, a);
    lm_tensor *gc = sc_contiguous(&sc, g), *gz = NULL;
    if (be && be->linear_act_backward) {
        gz = sc_empty(&sc, a->storage->device, a->ndim, a->shape);
        if (sc.status == LM_OK) sc.status = be->linear_act_backward(gz, gc, a, mask, op, n->p[0]);
    } else { /* dropout's gradient, then the activation's (a stands in for its input) */
        lm_tensor *t = mask ? sc_binary(&sc, LM_MUL, gc, mask) : gc;
        gz = t;
        if (op != LM_UNARY_COUNT) {
            gz = sc_empty(&sc, a->storage->device, a->ndim, a->shape);
            if (sc.status == LM_OK) sc.status = be->unary_backward(op, gz, t, a, a, n->p[0]);
        }
    }
    if (sc.status == LM_OK) sc.status = linear_gradients(n, gz, gi);
    return sc_end(&sc);
}

/* saved[0] = y with the softmax dimension moved last (contiguous); iparams[0] = dim */
static lm_status softmax_rule(lm_node *n, lm_tensor *g, lm_tensor **gi, bool log) {
    scope sc = {0};
    lm_tensor *y = sc_saved(&sc, n, 0);
    int dim = (int)n->iparams[0], last = g->ndim - 1;
    lm_tensor *gc = sc_contiguous(&sc, g->ndim ? sc_transpose(&sc, g, dim, last) : g);
    lm_tensor *gx = y ? sc_empty(&sc, y->storage->device, y->ndim, y->shape) : NULL;
    const lm_backend *be = sc_backend(&sc, gc);
    if (sc.status == LM_OK) sc.status = be->softmax_backward(gx, gc, y, log);
    gi[0] = sc_give(&sc, g->ndim ? sc_transpose(&sc, gx, dim, last) : gx);
    return sc_end(&sc);
}

lm_status lm_rule_softmax(lm_node *n, lm_tensor *g, lm_tensor **gi) {
    return softmax_rule(n, g, gi, false);
}

lm_status lm_rule_log_softmax(lm_node *n, lm_tensor *g, lm_tensor **gi) {
    return softmax_rule(n, g, gi, true);
}

/* saved[0] = log_softmax(logits), saved[1] = one-hot labels:
 * d/dlogits = (softmax - onehot) / N */
lm_status lm_rule_cross_entropy(lm_node *n, lm_tensor *g, lm_tensor **gi) {
    scope sc = {0};
    lm_tensor *lsm = sc_saved(&sc, n, 0), *onehot = sc_saved(&sc, n, 1);
    if (sc.status) return sc_end(&sc);
    double batch = (double)lsm->shape[0];
    lm_tensor *d = sc_binary(&sc, LM_SUB, sc_unary(&sc, LM_EXP, lsm, 0, 0), onehot);
    gi[0] = sc_give(&sc, sc_binary(&sc, LM_MUL, d, sc_binary_scalar(&sc, LM_DIV, g, batch)));
    return sc_end(&sc);
}

/* saved[0] = the mask (0 or 1 / keep): the gradient passes where x did. */
lm_status lm_rule_dropout(lm_node *n, lm_tensor *g, lm_tensor **gi) {
    scope sc = {0};
    lm_tensor *mask = sc_saved(&sc, n, 0);
    gi[0] = sc_give(&sc, sc_binary(&sc, LM_MUL, g, mask));
    return sc_end(&sc);
}

/* saved[0] = y_hat - y; iparams[0] = per_sample. d/dy_hat = diff * g / N
 * (or diff * g_i per sample), d/dy its negative. */
lm_status lm_rule_mse(lm_node *n, lm_tensor *g, lm_tensor **gi) {
    scope sc = {0};
    lm_tensor *diff = sc_saved(&sc, n, 0);
    if (sc.status) return sc_end(&sc);
    lm_tensor *scale;
    if (n->iparams[0]) { /* g is [N]: broadcast over the features */
        int64_t shape[LM_MAX_DIMS];
        shape[0] = diff->shape[0];
        for (int d = 1; d < diff->ndim; d++) shape[d] = 1;
        scale = sc_reshape(&sc, g, diff->ndim, shape);
    } else {
        scale = sc_binary_scalar(&sc, LM_DIV, g, (double)diff->shape[0]);
    }
    lm_tensor *d = sc_binary(&sc, LM_MUL, diff, scale);
    if (needs_grad(n, 0)) gi[0] = sc_give(&sc, d);
    if (needs_grad(n, 1)) gi[1] = sc_give(&sc, sc_unary(&sc, LM_NEG, d, 0, 0));
    return sc_end(&sc);
}

/* saved[0] = d mmd / dz, saved[1] = d mmd / dp (each only when wanted),
 * computed with the value; g is the scalar's gradient. */
lm_status lm_rule_mmd(lm_node *n, lm_tensor *g, lm_tensor **gi) {
    scope sc = {0};
    for (int k = 0; k < 2; k++)
        if (needs_grad(n, k)) gi[k] = sc_give(&sc, sc_binary(&sc, LM_MUL, sc_saved(&sc, n, k), g));
    return sc_end(&sc);
}

/* inputs x, weight, bias, residual; saved x [N, C, S], the statistics [2,
 * C] (mean, var), weight and, after a ReLU, the output; p[0] = eps. The
 * ReLU's mask (y > 0 where its input was) comes first, as LM_RELU's own
 * gradient, a pass of its own (folded into the batch norm's sums it made
 * them 1.5x slower); the residual's gradient is g after that mask. */
lm_status lm_rule_batch_norm(lm_node *n, lm_tensor *g, lm_tensor **gi) {
    scope sc = {0};
    lm_tensor *x = sc_saved(&sc, n, 0), *stats = sc_saved(&sc, n, 1);
    lm_tensor *w = n->saved[2] ? sc_saved(&sc, n, 2) : NULL;
    lm_tensor *relu_y = n->saved[3] ? sc_reshape(&sc, sc_saved(&sc, n, 3), 3, x->shape) : NULL;
    lm_tensor *mean = NULL, *var = NULL;
    if (sc.status == LM_OK) sc_keep(&sc, lm_tensor_select(&mean, stats, 0, 0), &mean);
    if (sc.status == LM_OK) sc_keep(&sc, lm_tensor_select(&var, stats, 0, 1), &var);
    if (sc.status) return sc_end(&sc);
    const lm_backend *be = sc_backend(&sc, x);
    lm_tensor *g3 = sc_reshape(&sc, sc_contiguous(&sc, g), 3, x->shape);
    lm_device device = x->storage->device;
    lm_tensor *gx = needs_grad(n, 0) ? sc_empty(&sc, device, 3, x->shape) : NULL;
    lm_tensor *gw = needs_grad(n, 1) ? sc_empty(&sc, device, 1, &x->shape[1]) : NULL;
    lm_tensor *gb = needs_grad(n, 2) ? sc_empty(&sc, device, 1, &x->shape[1]) : NULL;
    lm_tensor *g_after = relu_y ? sc_empty(&sc, device, 3, x->shape) : g3;
    if (sc.status == LM_OK && relu_y) /* the ReLU's input is above 0 where its output is */
        sc.status = be->unary_backward(LM_RELU, g_after, g3, relu_y, relu_y, 0);
    if (sc.status == LM_OK && (gx || gw || gb))
        sc.status = be->batch_norm_backward(gx, gw, gb, g_after, x, mean, var, w, n->p[0]);
    if (gx) gi[0] = sc_give(&sc, sc_reshape(&sc, gx, g->ndim, g->shape));
    if (gw) gi[1] = sc_give(&sc, gw);
    if (gb) gi[2] = sc_give(&sc, gb);
    if (needs_grad(n, 3)) gi[3] = sc_give(&sc, sc_reshape(&sc, g_after, g->ndim, g->shape));
    return sc_end(&sc);
}

/* A backend without a whole-batch convolution's backward: per image and
 * group, gw[group's rows] += g[n, group's rows] @ im2col(x[n, group's
 * channels])^T and gx[n, group's channels] += col2im(W_group^T @ g[n,
 * group's rows]). g3 [N, O, P], w2 [O, K] with K = C / groups * kh * kw;
 * gx and gw (either may be NULL) start at zero. */
lm_status lm_conv2d_backward_by_images(lm_tensor *gx, lm_tensor *gw, const lm_backend *be,
                                       lm_tensor *g3, lm_tensor *xc, lm_tensor *w2,
                                       const lm_conv_geometry *geo) {
    int64_t N = xc->shape[0], groups = lm_conv_groups(geo), O = w2->shape[0], og = O / groups;
    lm_conv_geometry cg = *geo;
    cg.channels = geo->channels / groups;
    cg.groups = 1;
    int64_t cs[2] = {w2->shape[1], geo->out_h * geo->out_w};
    lm_tensor *cols = NULL;
    lm_status s = lm_tensor_new(&cols, LM_FLOAT32, xc->storage->device, 2, cs);
    for (int64_t i = 0; i < N && s == LM_OK; i++)
        for (int64_t k = 0; k < groups && s == LM_OK; k++) {
            lm_tensor *gi_ = NULL, *gg = NULL, *xi = NULL, *xg = NULL, *colst = NULL, *prod = NULL;
            lm_tensor *gwg = NULL, *wg = NULL, *wgt = NULL, *gcols = NULL, *gxi = NULL, *gxg = NULL;
            s = lm_tensor_select(&gi_, g3, 0, i); /* [O, P] */
            if (s == LM_OK) s = lm_tensor_narrow(&gg, gi_, 0, k * og, og);
            if (s == LM_OK && gw) {
                s = lm_tensor_select(&xi, xc, 0, i);
                if (s == LM_OK) s = lm_tensor_narrow(&xg, xi, 0, k * cg.channels, cg.channels);
                if (s == LM_OK) s = be->im2col(cols, xg, &cg);
                if (s == LM_OK) s = lm_tensor_transpose(&colst, cols, 0, 1);
                if (s == LM_OK) s = lm_matmul(&prod, gg, colst); /* [O / groups, K] */
                if (s == LM_OK) s = lm_tensor_narrow(&gwg, gw, 0, k * og, og);
                if (s == LM_OK) s = lm_binary_into(gwg, LM_ADD, gwg, prod);
            }
            if (s == LM_OK && gx) {
                s = lm_tensor_narrow(&wg, w2, 0, k * og, og);
                if (s == LM_OK) s = lm_tensor_transpose(&wgt, wg, 0, 1);
                if (s == LM_OK) s = lm_matmul(&gcols, wgt, gg); /* [K, P] */
                if (s == LM_OK) s = lm_tensor_select(&gxi, gx, 0, i);
                if (s == LM_OK) s = lm_tensor_narrow(&gxg, gxi, 0, k * cg.channels, cg.channels);
                if (s == LM_OK) s = be->col2im(gxg, gcols, &cg);
            }
            lm_tensor_release(gi_), lm_tensor_release(gg), lm_tensor_release(xi);
            lm_tensor_release(xg), lm_tensor_release(colst), lm_tensor_release(prod);
            lm_tensor_release(gwg), lm_tensor_release(wg), lm_tensor_release(wgt);
            lm_tensor_release(gcols), lm_tensor_release(gxi), lm_tensor_release(gxg);
        }
    lm_tensor_release(cols);
    return s;
}

/* inputs x, w, b; saved[0] = x, saved[1] = w; geometry in iparams/shape */
lm_status lm_rule_conv2d(lm_node *n, lm_tensor *g, lm_tensor **gi) {
    scope sc = {0};
    lm_tensor *x = sc_saved(&sc, n, 0), *w = sc_saved(&sc, n, 1);
    if (sc.status) return sc_end(&sc);
    const lm_backend *be = sc_backend(&sc, x);
    if (sc.status) return sc_end(&sc);
    lm_conv_geometry geo = lm_node_geometry(n);
    int64_t N = x->shape[0], O = w->shape[0], K = w->shape[1] * geo.kernel_h * geo.kernel_w,
            P = geo.out_h * geo.out_w;
    int64_t w2s[2] = {O, K}, g3s[3] = {N, O, P};
    lm_device device = x->storage->device;
    lm_tensor *gx = NULL, *gw = NULL;
    /* under autocast (the forward's mode) the products' three operands
     * rounded; the bias's sum takes the gradient as it is */
    lm_tensor *xc = sc_cast(&sc, x), *wc = sc_cast(&sc, w), *gc = sc_cast(&sc, g);
    lm_tensor *w2 = sc_reshape(&sc, wc, 2, w2s), *g3 = sc_reshape(&sc, gc, 3, g3s);
    lm_tensor *gb3 =
        lm_autocast() == LM_AUTOCAST_OFF ? g3 : sc_reshape(&sc, sc_contiguous(&sc, g), 3, g3s);
    if (be->conv2d_backward) { /* whole batch in the backend */
        /* an empty batch or no output channels: nothing to compute (the
         * kernels would leave the gradients unwritten; cuDNN refuses them) */
        bool work = N > 0 && O > 0;
        if (needs_grad(n, 0))
            gx = work ? sc_empty(&sc, device, 4, x->shape) : sc_zeros_like(&sc, x);
        if (needs_grad(n, 1))
            gw = work ? sc_empty(&sc, device, 2, w2s) : sc_zeros(&sc, device, 2, w2s);
        if (sc.status == LM_OK && work) sc.status = be->conv2d_backward(gx, gw, gc, xc, wc, &geo);
    } else {
        if (needs_grad(n, 0)) gx = sc_zeros_like(&sc, x);
        if (needs_grad(n, 1)) gw = sc_zeros(&sc, device, 2, w2s);
        if (sc.status == LM_OK && (gx || gw))
            sc.status = lm_conv2d_backward_by_images(gx, gw, be, g3, xc, w2, &geo);
    }
    if (needs_grad(n, 0)) gi[0] = sc_give(&sc, gx);
    if (needs_grad(n, 1)) gi[1] = sc_give(&sc, sc_reshape(&sc, gw, w->ndim, w->shape));
    if (needs_grad(n, 2)) /* sum over N and the pixels */
        gi[2] =
            sc_give(&sc, sc_reduce(&sc, LM_SUM, sc_reduce(&sc, LM_SUM, gb3, 2, false), 0, false));
    return sc_end(&sc);
}

/* saved[0] = argmax (max pooling) or NULL; shape = x's; geometry in iparams */
static lm_status pool_rule(lm_node *n, lm_tensor *g, lm_tensor **gi) {
    scope sc = {0};
    lm_tensor *argmax = sc_saved(&sc, n, 0);
    lm_conv_geometry geo = lm_node_geometry(n);
    int64_t planes = n->shape[0] * n->shape[1];
    int64_t g3s[3] = {planes, geo.out_h, geo.out_w}, x3s[3] = {planes, geo.height, geo.width};
    lm_tensor *g3 = sc_reshape(&sc, sc_contiguous(&sc, g), 3, g3s);
    lm_tensor *gx = sc_empty(&sc, g->storage->device, 3, x3s);
    const lm_backend *be = sc_backend(&sc, g);
    if (sc.status == LM_OK) sc.status = be->pool2d_backward(gx, g3, argmax, &geo);
    gi[0] = sc_give(&sc, sc_reshape(&sc, gx, 4, n->shape));
    return sc_end(&sc);
}

lm_status lm_rule_max_pool2d(lm_node *n, lm_tensor *g, lm_tensor **gi) {
    return pool_rule(n, g, gi);
}
lm_status lm_rule_avg_pool2d(lm_node *n, lm_tensor *g, lm_tensor **gi) {
    return pool_rule(n, g, gi);
}
