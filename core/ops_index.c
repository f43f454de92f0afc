/* gather, scatter_add and cumsum along one dimension: the device-independent
 * fronts (checks, results) and their recording entry points. */
#include <stdio.h>

#include "autograd_rules.h"
#include "lm_ops.h"

/* What gather and scatter_add ask of an index into x along dim (0-based):
 * int32 on x's device, x's dimensions, no larger than x outside dim, and
 * values in [0, x's size along dim). */
static lm_status check_index(const char *op, const lm_tensor *x, int dim, const lm_tensor *idx) {
    char a[LM_SHAPE_STR_MAX], b[LM_SHAPE_STR_MAX];
    if (x->ndim < 1) return lm_fail(LM_ERR_ARG, "%s: cannot index a 0-D tensor", op);
    if (dim < 0 || dim >= x->ndim)
        return lm_fail(LM_ERR_ARG, "%s: dimension %d out of range for a %d-D tensor", op, dim + 1,
                       x->ndim);
    if (idx->dtype != LM_INT32)
        return lm_fail(LM_ERR_ARG, "%s: index must be int32, got %s", op,
                       lm_dtype_name(idx->dtype));
    if (idx->storage->device != x->storage->device)
        return lm_fail(LM_ERR_DEVICE, "%s: index is on %s, input on %s", op,
                       lm_device_name(idx->storage->device), lm_device_name(x->storage->device));
    if (idx->ndim != x->ndim)
        return lm_fail(LM_ERR_SHAPE, "%s: index %s has %d dimensions, input %s has %d", op,
                       lm_shape_str(idx, a, sizeof a), idx->ndim, lm_shape_str(x, b, sizeof b),
                       x->ndim);
    for (int d = 0; d < x->ndim; d++)
        if (d != dim && idx->shape[d] > x->shape[d])
            return lm_fail(LM_ERR_SHAPE, "%s: index %s is larger than input %s in dimension %d", op,
                           lm_shape_str(idx, a, sizeof a), lm_shape_str(x, b, sizeof b), d + 1);
    if (lm_tensor_numel(idx) == 0) return LM_OK;
    char unit[48];
    snprintf(unit, sizeof unit, "elements along dimension %d", dim + 1);
    return lm_check_index_range(op, "index", unit, idx, x->shape[dim]);
}

lm_status lm_gather(lm_tensor **out, lm_tensor *x, int dim, lm_tensor *idx) {
    *out = NULL;
    LM_TRY(check_index("gather", x, dim, idx));
    if (x->dtype != LM_FLOAT32 && x->dtype != LM_INT32)
        return lm_fail(LM_ERR_ARG, "gather: needs a float32 or int32 input, got %s",
                       lm_dtype_name(x->dtype));
    const lm_backend *be = lm_backend_of(x);
    if (!be) return LM_ERR_DEVICE;
    lm_tensor *ic;
    LM_TRY(lm_contiguous(&ic, idx));
    lm_status s = lm_tensor_new(out, x->dtype, x->storage->device, idx->ndim, idx->shape);
    if (s == LM_OK) s = be->gather(*out, x, ic, dim); /* x strided as it is */
    lm_tensor_release(ic);
    if (s != LM_OK) {
        lm_tensor_release(*out);
        *out = NULL;
    }
    return s;
}

lm_status lm_scatter_add(lm_tensor **out, lm_tensor *x, int dim, lm_tensor *idx, lm_tensor *src) {
    char a[LM_SHAPE_STR_MAX], b[LM_SHAPE_STR_MAX];
    *out = NULL;
    LM_TRY(check_index("scatter_add", x, dim, idx));
    if (x->dtype != LM_FLOAT32 || src->dtype != LM_FLOAT32)
        return lm_fail(LM_ERR_ARG, "scatter_add: needs float32 input and src, got %s and %s",
                       lm_dtype_name(x->dtype), lm_dtype_name(src->dtype));
    if (src->storage->device != x->storage->device)
        return lm_fail(LM_ERR_DEVICE, "scatter_add: src is on %s, input on %s",
                       lm_device_name(src->storage->device), lm_device_name(x->storage->device));
    bool same = src->ndim == idx->ndim;
    for (int d = 0; same && d < idx->ndim; d++) same = src->shape[d] == idx->shape[d];
    if (!same)
        return lm_fail(LM_ERR_SHAPE, "scatter_add: src %s must have the index's shape %s",
                       lm_shape_str(src, a, sizeof a), lm_shape_str(idx, b, sizeof b));
    const lm_backend *be = lm_backend_of(x);
    if (!be) return LM_ERR_DEVICE;
    lm_tensor *ic = NULL, *sc = NULL;
    lm_status s = lm_clone(out, x); /* contiguous, as the backend wants it */
    if (s == LM_OK) s = lm_contiguous(&ic, idx);
    if (s == LM_OK) s = lm_contiguous(&sc, src);
    if (s == LM_OK) s = be->scatter_add(*out, ic, sc, dim);
    lm_tensor_release(ic);
    lm_tensor_release(sc);
    if (s != LM_OK) {
        lm_tensor_release(*out);
        *out = NULL;
    }
    return s;
}

lm_status lm_cumsum(lm_tensor **out, lm_tensor *x, int dim, bool reverse) {
    *out = NULL;
    if (x->dtype != LM_FLOAT32 && x->dtype != LM_INT32)
        return lm_fail(LM_ERR_ARG, "cumsum: needs a float32 or int32 tensor, got %s",
                       lm_dtype_name(x->dtype));
    if (x->ndim == 0 && dim == 0) return lm_clone(out, x); /* a 0-D tensor: its one value */
    if (dim < 0 || dim >= x->ndim)
        return lm_fail(LM_ERR_ARG, "cumsum: dimension %d out of range for a %d-D tensor", dim + 1,
                       x->ndim);
    const lm_backend *be = lm_backend_of(x);
    if (!be) return LM_ERR_DEVICE;
    lm_tensor *xc;
    LM_TRY(lm_contiguous(&xc, x));
    lm_status s = lm_tensor_new_like(out, xc);
    if (s == LM_OK) s = be->cumsum(*out, xc, dim, reverse);
    lm_tensor_release(xc);
    if (s != LM_OK) {
        lm_tensor_release(*out);
        *out = NULL;
    }
    return s;
}

/* ---- recording entry points
 * ------------------------------------------------------------------------ */

static void save_shape(lm_node *n, const lm_tensor *t) {
    n->ndim = t->ndim;
    for (int d = 0; d < t->ndim; d++) n->shape[d] = t->shape[d];
}

lm_status lm_ag_gather(lm_tensor **out, lm_tensor *x, int dim, lm_tensor *idx) {
    LM_TRY(lm_gather(out, x, dim, idx));
    if (!lm_any_requires_grad(1, &x)) return LM_OK;
    lm_node *node;
    LM_TRY(lm_node_record(&node, out, "gather", lm_rule_gather, 1, &x));
    node->iparams[0] = dim;
    save_shape(node, x);
    lm_node_save(node, 0, idx);
    return LM_OK;
}

/* torch's src may be larger than the index in any dimension: only its
 * leading part of the index's shape is added. That part is a recorded view,
 * so src's gradient is zero outside it (where torch 1.13's backward fails). */
static lm_status src_part(lm_tensor **part, lm_tensor *src, const lm_tensor *idx) {
    char a[LM_SHAPE_STR_MAX], b[LM_SHAPE_STR_MAX];
    *part = NULL;
    bool fits = src->ndim == idx->ndim;
    for (int d = 0; fits && d < idx->ndim; d++) fits = src->shape[d] >= idx->shape[d];
    if (!fits)
        return lm_fail(LM_ERR_SHAPE,
                       "scatter_add: src %s is smaller than the index %s (src needs the index's "
                       "dimensions, each at least as long)",
                       lm_shape_str(src, a, sizeof a), lm_shape_str(idx, b, sizeof b));
    lm_tensor *cur = lm_tensor_retain(src);
    for (int d = 0; d < idx->ndim; d++) {
        if (cur->shape[d] == idx->shape[d]) continue;
        lm_tensor *next;
        lm_status s = lm_ag_narrow(&next, cur, d, 0, idx->shape[d]);
        lm_tensor_release(cur);
        if (s != LM_OK) return s;
        cur = next;
    }
    *part = cur;
    return LM_OK;
}

lm_status lm_ag_scatter_add(lm_tensor **out, lm_tensor *x, int dim, lm_tensor *idx,
                            lm_tensor *src) {
    *out = NULL;
    lm_tensor *part;
    LM_TRY(src_part(&part, src, idx));
    lm_status s = lm_scatter_add(out, x, dim, idx, part);
    lm_tensor *in[2] = {x, part};
    if (s == LM_OK && lm_any_requires_grad(2, in)) {
        lm_node *node;
        s = lm_node_record(&node, out, "scatter_add", lm_rule_scatter_add, 2, in);
        if (s == LM_OK) {
            node->iparams[0] = dim;
            lm_node_save(node, 0, idx);
        }
    }
    lm_tensor_release(part);
    return s;
}

lm_status lm_ag_cumsum(lm_tensor **out, lm_tensor *x, int dim) {
    LM_TRY(lm_cumsum(out, x, dim, false));
    if (!lm_any_requires_grad(1, &x)) return LM_OK;
    lm_node *node;
    LM_TRY(lm_node_record(&node, out, "cumsum", lm_rule_cumsum, 1, &x));
    node->iparams[0] = dim;
    return LM_OK;
}
