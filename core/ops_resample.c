/* Resampling along one dimension (interpolation and the index maps of
 * padding): the device-independent front (checks, result) and its recording
 * entry point. The index and weights come from lua/lumen/nn/resample.lua. */
#include <stdio.h>

#include "autograd_rules.h"
#include "lm_ops.h"

/* What lm_resample asks of idx and w: [m, taps] int32 and float32 on x's
 * device, taps in 1..LM_RESAMPLE_MAX_TAPS, every index inside x along dim. */
static lm_status check_taps(const lm_tensor *x, int dim, const lm_tensor *idx, const lm_tensor *w) {
    char a[LM_SHAPE_STR_MAX], b[LM_SHAPE_STR_MAX];
    if (x->dtype != LM_FLOAT32)
        return lm_fail(LM_ERR_ARG, "resample: needs a float32 input, got %s",
                       lm_dtype_name(x->dtype));
    if (dim < 0 || dim >= x->ndim)
        return lm_fail(LM_ERR_ARG, "resample: dimension %d out of range for a %d-D tensor", dim + 1,
                       x->ndim);
    if (idx->dtype != LM_INT32 || w->dtype != LM_FLOAT32)
        return lm_fail(LM_ERR_ARG,
                       "resample: index must be int32 and weights float32, got %s and %s",
                       lm_dtype_name(idx->dtype), lm_dtype_name(w->dtype));
    if (idx->storage->device != x->storage->device || w->storage->device != x->storage->device)
        return lm_fail(LM_ERR_DEVICE,
                       "resample: index and weights must be on the input's device (%s)",
                       lm_device_name(x->storage->device));
    if (idx->ndim != 2 || w->ndim != 2 || idx->shape[0] != w->shape[0] ||
        idx->shape[1] != w->shape[1] || idx->shape[1] < 1 || idx->shape[1] > LM_RESAMPLE_MAX_TAPS)
        return lm_fail(LM_ERR_SHAPE,
                       "resample: index %s and weights %s must both be [m, taps] with 1 to %d taps",
                       lm_shape_str(idx, a, sizeof a), lm_shape_str(w, b, sizeof b),
                       LM_RESAMPLE_MAX_TAPS);
    if (lm_tensor_numel(idx) == 0) return LM_OK;
    char unit[48];
    snprintf(unit, sizeof unit, "elements along dimension %d", dim + 1);
    return lm_check_index_range("resample", "index", unit, idx, x->shape[dim]);
}

lm_status lm_resample(lm_tensor **out, lm_tensor *x, int dim, lm_tensor *idx, lm_tensor *w) {
    *out = NULL;
    LM_TRY(check_taps(x, dim, idx, w));
    const lm_backend *be = lm_backend_of(x);
    if (!be) return LM_ERR_DEVICE;
    int64_t shape[LM_MAX_DIMS];
    for (int d = 0; d < x->ndim; d++) shape[d] = x->shape[d];
    shape[dim] = idx->shape[0];
    lm_tensor *xc = NULL, *ic = NULL, *wc = NULL;
    lm_status s = lm_contiguous(&xc, x);
    if (s == LM_OK) s = lm_contiguous(&ic, idx);
    if (s == LM_OK) s = lm_contiguous(&wc, w);
    if (s == LM_OK) s = lm_tensor_new(out, LM_FLOAT32, x->storage->device, x->ndim, shape);
    if (s == LM_OK && lm_tensor_numel(*out) > 0) s = be->resample(*out, xc, ic, wc, dim);
    lm_tensor_release(xc);
    lm_tensor_release(ic);
    lm_tensor_release(wc);
    if (s != LM_OK) {
        lm_tensor_release(*out);
        *out = NULL;
    }
    return s;
}

/* torch's channels of planes: x [outer, H, W] around its last two dimensions */
lm_status lm_resample2d(lm_tensor **out, lm_tensor *x, lm_tensor *idx_h, lm_tensor *w_h,
                        lm_tensor *idx_w, lm_tensor *w_w) {
    *out = NULL;
    if (x->ndim < 2)
        return lm_fail(LM_ERR_ARG, "resample2d: needs at least 2 dimensions, got %d", x->ndim);
    LM_TRY(check_taps(x, x->ndim - 2, idx_h, w_h));
    LM_TRY(check_taps(x, x->ndim - 1, idx_w, w_w));
    const lm_backend *be = lm_backend_of(x);
    if (!be) return LM_ERR_DEVICE;
    int64_t shape[LM_MAX_DIMS];
    for (int d = 0; d < x->ndim; d++) shape[d] = x->shape[d];
    shape[x->ndim - 2] = idx_h->shape[0];
    shape[x->ndim - 1] = idx_w->shape[0];
    lm_tensor *t[5] = {x, idx_h, w_h, idx_w, w_w}, *c[5] = {NULL};
    lm_status s = LM_OK;
    for (int k = 0; k < 5 && s == LM_OK; k++) s = lm_contiguous(&c[k], t[k]);
    if (s == LM_OK) s = lm_tensor_new(out, LM_FLOAT32, x->storage->device, x->ndim, shape);
    if (s == LM_OK && lm_tensor_numel(*out) > 0)
        s = be->resample2d(*out, c[0], c[1], c[2], c[3], c[4]);
    for (int k = 0; k < 5; k++) lm_tensor_release(c[k]);
    if (s != LM_OK) {
        lm_tensor_release(*out);
        *out = NULL;
    }
    return s;
}

lm_status lm_ag_resample(lm_tensor **out, lm_tensor *x, int dim, lm_tensor *idx, lm_tensor *w) {
    LM_TRY(lm_resample(out, x, dim, idx, w));
    if (!lm_any_requires_grad(1, &x)) return LM_OK;
    lm_node *node;
    LM_TRY(lm_node_record(&node, out, "resample", lm_rule_resample, 1, &x));
    node->iparams[0] = dim;
    node->ndim = x->ndim;
    for (int d = 0; d < x->ndim; d++) node->shape[d] = x->shape[d];
    lm_node_save(node, 0, idx);
    lm_node_save(node, 1, w);
    return LM_OK;
}

lm_status lm_ag_resample2d(lm_tensor **out, lm_tensor *x, lm_tensor *idx_h, lm_tensor *w_h,
                           lm_tensor *idx_w, lm_tensor *w_w) {
    LM_TRY(lm_resample2d(out, x, idx_h, w_h, idx_w, w_w));
    if (!lm_any_requires_grad(1, &x)) return LM_OK;
    lm_node *node;
    LM_TRY(lm_node_record(&node, out, "resample2d", lm_rule_resample2d, 1, &x));
    node->ndim = x->ndim;
    for (int d = 0; d < x->ndim; d++) node->shape[d] = x->shape[d];
    lm_node_save(node, 0, idx_h);
    lm_node_save(node, 1, w_h);
    lm_node_save(node, 2, idx_w);
    lm_node_save(node, 3, w_w);
    return LM_OK;
}
