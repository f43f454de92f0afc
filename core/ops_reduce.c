/* Reductions: result shapes, dtypes and argument checks. */
#include "lm_ops.h"

static const char *reduce_names[LM_REDUCE_COUNT] = {"sum",    "mean",   "max", "min",
                                                    "argmax", "argmin", "var"};

const char *lm_reduce_name(lm_reduce_op op) {
    return op < LM_REDUCE_COUNT ? reduce_names[op] : "?";
}

static lm_dtype reduce_dtype(lm_reduce_op op, lm_dtype in) {
    switch (op) {
    case LM_ARGMAX:
    case LM_ARGMIN:
        return LM_INT32;
    case LM_MEAN:
    case LM_VAR:
        return LM_FLOAT32;
    default:
        return in;
    }
}

/* Replaces *t by a view with the reduced dimension(s) kept as size 1. */
static lm_status keep_dims(lm_tensor **t, const lm_tensor *x, int dim) {
    int64_t shape[LM_MAX_DIMS];
    for (int d = 0; d < x->ndim; d++) shape[d] = dim < 0 || d == dim ? 1 : x->shape[d];
    lm_tensor *v;
    LM_TRY(lm_tensor_view(&v, *t, x->ndim, shape));
    lm_tensor_release(*t);
    *t = v;
    return LM_OK;
}

lm_status lm_reduce(lm_tensor **out, lm_tensor **indices, lm_reduce_op op, lm_tensor *x, int dim,
                    bool keepdim) {
    *out = NULL;
    if (indices) *indices = NULL;
    const char *name = lm_reduce_name(op);
    LM_TRY(lm_check_computable(name, x));
    if (x->ndim == 0 && dim == 0) { /* a 0-D tensor's one dimension, as torch: its one value */
        lm_tensor *one = NULL;
        LM_TRY(lm_tensor_unsqueeze(&one, x, 0));
        lm_status s = lm_reduce(out, indices, op, one, 0, false);
        lm_tensor_release(one);
        return s;
    }
    if (dim >= 0 && dim >= x->ndim)
        return lm_fail(LM_ERR_ARG, "%s: dimension %d out of range for a %d-D tensor", name, dim + 1,
                       x->ndim);
    int64_t len = dim < 0 ? lm_tensor_numel(x) : x->shape[dim];
    bool extreme = op == LM_MAX || op == LM_MIN || op == LM_ARGMAX || op == LM_ARGMIN;
    if (extreme && len == 0)
        return lm_fail(LM_ERR_ARG, "%s: cannot reduce an empty dimension (no identity)", name);

    int64_t shape[LM_MAX_DIMS];
    int ndim = 0;
    for (int d = 0; dim >= 0 && d < x->ndim; d++)
        if (d != dim) shape[ndim++] = x->shape[d];
    lm_device device = x->storage->device;
    const lm_backend *be = lm_backend_get(device);
    if (!be) return LM_ERR_DEVICE;
    lm_tensor *idx = NULL;
    lm_status s = lm_tensor_new(out, reduce_dtype(op, x->dtype), device, ndim, shape);
    if (s == LM_OK && indices && (op == LM_MAX || op == LM_MIN))
        s = lm_tensor_new(&idx, LM_INT32, device, ndim, shape);
    if (s == LM_OK) s = be->reduce(op, *out, idx, x, dim);
    if (s == LM_OK && keepdim) {
        s = keep_dims(out, x, dim);
        if (s == LM_OK && idx) s = keep_dims(&idx, x, dim);
    }
    if (s != LM_OK) {
        lm_tensor_release(*out);
        lm_tensor_release(idx);
        *out = NULL;
        return s;
    }
    if (indices) *indices = idx;
    return LM_OK;
}
