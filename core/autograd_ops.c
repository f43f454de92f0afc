/* Recording entry points: run the plain op, then attach a node when an input
 * requires gradients (lm_node_record). The layer ops' entry points are in
 * nn_ops.c, beside their forward passes. */
#include <string.h>

#include "autograd_rules.h"
#include "lm_ops.h"
#include "lm_scalar_ops.h"

static void save_shape(lm_node *n, const lm_tensor *t) {
    n->ndim = t->ndim;
    memcpy(n->shape, t->shape, sizeof(int64_t) * t->ndim);
}

lm_status lm_sum_to_shape(lm_tensor **out, lm_tensor *grad, int ndim, const int64_t *shape) {
    lm_tensor *cur = lm_tensor_retain(grad);
    /* leading dimensions that the target lacks */
    while (cur->ndim > ndim) {
        lm_tensor *r;
        lm_status s = lm_reduce(&r, NULL, LM_SUM, cur, 0, false);
        lm_tensor_release(cur);
        LM_TRY(s);
        cur = r;
    }
    for (int d = 0; d < ndim; d++) {
        if (shape[d] == 1 && cur->shape[d] != 1) {
            lm_tensor *r;
            lm_status s = lm_reduce(&r, NULL, LM_SUM, cur, d, true);
            lm_tensor_release(cur);
            LM_TRY(s);
            cur = r;
        }
    }
    *out = cur;
    return LM_OK;
}

/* ---- elementwise
 * --------------------------------------------------------------------------------- */

lm_status lm_ag_unary(lm_tensor **out, lm_unary_op op, lm_tensor *x, double p0, double p1) {
    LM_TRY(lm_unary(out, op, x, p0, p1));
    if (lm_unary_is_predicate(op) || !lm_any_requires_grad(1, &x)) return LM_OK;
    lm_node *node;
    LM_TRY(lm_node_record(&node, out, lm_unary_name(op), lm_rule_unary, 1, &x));
    node->iparams[0] = op;
    node->p[0] = p0, node->p[1] = p1;
    int saves = lm_unary_grad_saves(op, p0);
    if (saves & LM_UNARY_SAVES_X) lm_node_save(node, 0, x);
    return (saves & LM_UNARY_SAVES_Y) ? lm_node_save_output(node, 1, *out) : LM_OK;
}

static bool is_comparison(lm_binary_op op) {
    return op >= LM_EQ;
}

lm_status lm_ag_binary(lm_tensor **out, lm_binary_op op, lm_tensor *a, lm_tensor *b) {
    LM_TRY(lm_binary(out, op, a, b));
    lm_tensor *in[2] = {a, b};
    if (is_comparison(op) || !lm_any_requires_grad(2, in)) return LM_OK;
    lm_node *node;
    LM_TRY(lm_node_record(&node, out, lm_binary_name(op), lm_rule_binary, 2, in));
    node->iparams[0] = op;
    /* only what lm_rule_binary reads for the inputs that need a gradient:
     * less memory held, and no refusal of an in-place change nothing reads */
    bool need_a = node->inputs[0] != NULL, need_b = node->inputs[1] != NULL;
    bool save_a = false, save_b = false, save_y = false;
    switch (op) {
    case LM_MUL: /* a' = g b, b' = g a */
        save_a = need_b, save_b = need_a;
        break;
    case LM_DIV: /* a' = g / b, b' = -g y / b */
        save_b = true, save_y = need_b;
        break;
    case LM_POW: /* a' = g b a^(b-1), b' = g y ln a (and where a = 0) */
        save_a = save_b = true, save_y = need_b;
        break;
    case LM_MAXIMUM:
    case LM_MINIMUM: /* which side was chosen */
        save_a = save_b = true;
        break;
    default: /* add, sub: the gradient alone */
        break;
    }
    if (save_a) lm_node_save(node, 0, a);
    if (save_b) lm_node_save(node, 1, b);
    return save_y ? lm_node_save_output(node, 2, *out) : LM_OK;
}

lm_status lm_ag_binary_scalar(lm_tensor **out, lm_binary_op op, lm_tensor *a, double s,
                              bool scalar_first) {
    LM_TRY(lm_binary_scalar(out, op, a, s, scalar_first));
    if (is_comparison(op) || !lm_any_requires_grad(1, &a)) return LM_OK;
    lm_node *node;
    LM_TRY(lm_node_record(&node, out, lm_binary_name(op), lm_rule_binary_scalar, 1, &a));
    node->iparams[0] = op;
    node->iparams[1] = scalar_first;
    node->p[0] = s;
    /* only what lm_rule_binary_scalar reads: nothing for add, sub, mul and a / s */
    bool save_a = false, save_y = false;
    switch (op) {
    case LM_DIV: /* s / a: -g y / a */
        save_a = save_y = scalar_first;
        break;
    case LM_POW: /* s^a: g y ln s (and where a >= 0 for s = 0); a^s: g s a^(s-1) */
        save_y = scalar_first;
        save_a = scalar_first ? s == 0 : s != 0;
        break;
    case LM_MAXIMUM:
    case LM_MINIMUM:
        save_a = true;
        break;
    default:
        break;
    }
    if (save_a) lm_node_save(node, 0, a);
    return save_y ? lm_node_save_output(node, 1, *out) : LM_OK;
}

lm_status lm_ag_where(lm_tensor **out, lm_tensor *cond, lm_tensor *a, lm_tensor *b) {
    LM_TRY(lm_where(out, cond, a, b));
    lm_tensor *in[2] = {a, b};
    if (!lm_any_requires_grad(2, in)) return LM_OK;
    lm_node *node;
    LM_TRY(lm_node_record(&node, out, "where", lm_rule_where, 2, in));
    lm_node_save(node, 0, cond);
    return LM_OK;
}

/* ---- reductions and products
 * ------------------------------------------------------------------------ */

lm_status lm_ag_reduce(lm_tensor **out, lm_tensor **indices, lm_reduce_op op, lm_tensor *x, int dim,
                       bool keepdim) {
    if (x->ndim == 0 && dim == 0) { /* a 0-D tensor's one dimension, as torch: its one value */
        lm_tensor *one = NULL;
        LM_TRY(lm_ag_unsqueeze(&one, x, 0)); /* on the tape: the gradient flows back through it */
        lm_status s = lm_ag_reduce(out, indices, op, one, 0, false);
        lm_tensor_release(one);
        return s;
    }
    bool grad = (op != LM_ARGMAX && op != LM_ARGMIN) && lm_any_requires_grad(1, &x);
    bool need_idx = grad && (op == LM_MAX || op == LM_MIN);
    lm_tensor *idx = NULL;
    LM_TRY(lm_reduce(out, need_idx || indices ? &idx : NULL, op, x, dim, false));
    lm_status s = LM_OK;
    if (grad) {
        lm_node *node;
        s = lm_node_record(&node, out, lm_reduce_name(op), lm_rule_reduce, 1, &x);
        if (s == LM_OK) {
            node->iparams[0] = op;
            node->iparams[1] = dim;
            save_shape(node, x);
            if (op == LM_VAR || need_idx) lm_node_save(node, 0, x);
            if (need_idx) lm_node_save(node, 1, idx);
        }
    }
    if (s == LM_OK && keepdim) { /* a recorded view, so the gradient flows */
        int64_t shape[LM_MAX_DIMS];
        for (int d = 0; d < x->ndim; d++) shape[d] = dim < 0 || d == dim ? 1 : x->shape[d];
        lm_tensor *v;
        s = lm_ag_view(&v, *out, x->ndim, shape);
        if (s == LM_OK) {
            lm_tensor_release(*out);
            *out = v;
            if (idx) {
                s = lm_tensor_view(&v, idx, x->ndim, shape);
                if (s == LM_OK) lm_tensor_release(idx), idx = v;
            }
        }
    }
    if (s != LM_OK) {
        lm_tensor_release(*out);
        lm_tensor_release(idx);
        *out = NULL;
        return s;
    }
    if (indices)
        *indices = idx;
    else
        lm_tensor_release(idx);
    return LM_OK;
}

lm_status lm_ag_matmul(lm_tensor **out, lm_tensor *a, lm_tensor *b) {
    LM_TRY(lm_matmul(out, a, b));
    lm_tensor *in[2] = {a, b};
    if (!lm_any_requires_grad(2, in)) return LM_OK;
    lm_node *node;
    LM_TRY(lm_node_record(&node, out, "matmul", lm_rule_matmul, 2, in));
    lm_node_save(node, 0, a);
    lm_node_save(node, 1, b);
    return LM_OK;
}

/* ---- views
 * ------------------------------------------------------------------------------------------- */

#define VIEW_ENTRY(fn_name, name, rule, call, extra)                                               \
    lm_status fn_name {                                                                            \
        LM_TRY(call);                                                                              \
        if (!lm_any_requires_grad(1, &t)) return LM_OK;                                            \
        lm_node *node;                                                                             \
        LM_TRY(lm_node_record(&node, out, name, rule, 1, &t));                                     \
        save_shape(node, t);                                                                       \
        extra;                                                                                     \
        return LM_OK;                                                                              \
    }

VIEW_ENTRY(lm_ag_view(lm_tensor **out, lm_tensor *t, int ndim, const int64_t *shape), "view",
           lm_rule_reshape, lm_tensor_view(out, t, ndim, shape), (void)0)
VIEW_ENTRY(lm_ag_reshape(lm_tensor **out, lm_tensor *t, int ndim, const int64_t *shape), "reshape",
           lm_rule_reshape, lm_tensor_reshape(out, t, ndim, shape), (void)0)
VIEW_ENTRY(lm_ag_unsqueeze(lm_tensor **out, lm_tensor *t, int dim), "unsqueeze", lm_rule_reshape,
           lm_tensor_unsqueeze(out, t, dim), (void)0)
VIEW_ENTRY(lm_ag_squeeze(lm_tensor **out, lm_tensor *t, int dim), "squeeze", lm_rule_reshape,
           lm_tensor_squeeze(out, t, dim), (void)0)
VIEW_ENTRY(lm_ag_expand(lm_tensor **out, lm_tensor *t, int ndim, const int64_t *shape), "expand",
           lm_rule_expand, lm_tensor_expand(out, t, ndim, shape), (void)0)
VIEW_ENTRY(lm_ag_narrow(lm_tensor **out, lm_tensor *t, int dim, int64_t start, int64_t len),
           "narrow", lm_rule_narrow, lm_tensor_narrow(out, t, dim, start, len),
           (node->iparams[0] = dim, node->iparams[1] = start, node->iparams[2] = len))
VIEW_ENTRY(lm_ag_select(lm_tensor **out, lm_tensor *t, int dim, int64_t index), "select",
           lm_rule_select, lm_tensor_select(out, t, dim, index),
           (node->iparams[0] = dim, node->iparams[1] = index))
/* lm_contiguous hands back t itself when it is contiguous; recorded, that
 * would make t its own child (a cycle): a new view of it carries the node */
static lm_status contiguous_own(lm_tensor **out, lm_tensor *t) {
    LM_TRY(lm_contiguous(out, t));
    if (*out != t) return LM_OK;
    lm_tensor_release(*out);
    return lm_detach(out, t);
}

VIEW_ENTRY(lm_ag_contiguous(lm_tensor **out, lm_tensor *t), "contiguous", lm_rule_identity,
           contiguous_own(out, t), (void)0)
VIEW_ENTRY(lm_ag_clone(lm_tensor **out, lm_tensor *t), "clone", lm_rule_identity, lm_clone(out, t),
           (void)0)

lm_status lm_ag_transpose(lm_tensor **out, lm_tensor *t, int d0, int d1) {
    int perm[LM_MAX_DIMS];
    for (int d = 0; d < t->ndim; d++) perm[d] = d;
    if (d0 >= 0 && d0 < t->ndim && d1 >= 0 && d1 < t->ndim) perm[d0] = d1, perm[d1] = d0;
    LM_TRY(lm_tensor_transpose(out, t, d0, d1));
    if (!lm_any_requires_grad(1, &t)) return LM_OK;
    lm_node *node;
    LM_TRY(lm_node_record(&node, out, "transpose", lm_rule_permute, 1, &t));
    for (int d = 0; d < t->ndim; d++) node->iparams[d] = perm[d];
    return LM_OK;
}

lm_status lm_ag_permute(lm_tensor **out, lm_tensor *t, int ndim, const int *perm) {
    LM_TRY(lm_tensor_permute(out, t, ndim, perm));
    if (!lm_any_requires_grad(1, &t)) return LM_OK;
    lm_node *node;
    LM_TRY(lm_node_record(&node, out, "permute", lm_rule_permute, 1, &t));
    for (int d = 0; d < ndim; d++) node->iparams[d] = perm[d];
    return LM_OK;
}

lm_status lm_ag_cat(lm_tensor **out, int n, lm_tensor *const *ts, int dim) {
    LM_TRY(lm_cat(out, n, ts, dim));
    if (!lm_any_requires_grad(n, ts)) return LM_OK;
    if (n > LM_NODE_MAX_INPUTS) {
        lm_tensor_release(*out);
        *out = NULL;
        return lm_fail(LM_ERR_ARG, "cat: at most %d tensors when gradients are needed, got %d",
                       LM_NODE_MAX_INPUTS, n);
    }
    lm_node *node;
    LM_TRY(lm_node_record(&node, out, "cat", lm_rule_cat, n, ts));
    node->iparams[0] = dim;
    for (int k = 0; k < n; k++) node->iparams[1 + k] = ts[k]->shape[dim];
    return LM_OK;
}
