/* Layer normalisation as one differentiable op: checks, the forward pass
 * through the backend's layer_norm, and the derivative rule. The composed
 * form (F.layer_norm in lua/lumen/nn/functional.lua) stays the definition on
 * backends without the slot; the two agree to rounding
 * (tests/lua/layer_norm_spec.lua). */
#include <math.h>

#include "autograd_scope.h"
#include "lm_nn.h"
#include "lm_ops.h"

/* weight or bias: NULL, or float32 shaped as x's last k dimensions */
static lm_status check_affine(const char *what, const lm_tensor *t, const lm_tensor *x, int k) {
    if (!t) return LM_OK;
    char st[LM_SHAPE_STR_MAX], sx[LM_SHAPE_STR_MAX];
    if (t->dtype != LM_FLOAT32)
        return lm_fail(LM_ERR_ARG, "layer_norm: %s must be float32, got %s", what,
                       lm_dtype_name(t->dtype));
    if (t->storage->device != x->storage->device)
        return lm_fail(LM_ERR_DEVICE, "layer_norm: %s on %s, input on %s", what,
                       lm_device_name(t->storage->device), lm_device_name(x->storage->device));
    bool fits = t->ndim == k;
    for (int d = 0; fits && d < k; d++) fits = t->shape[d] == x->shape[x->ndim - k + d];
    if (!fits)
        return lm_fail(LM_ERR_SHAPE,
                       "layer_norm: %s must have the normalised shape (the last %d of input %s), "
                       "got %s",
                       what, k, lm_shape_str(x, sx, sizeof sx), lm_shape_str(t, st, sizeof st));
    return LM_OK;
}

static lm_status check_layer_norm(const lm_tensor *x, int k, const lm_tensor *w, const lm_tensor *b,
                                  double eps) {
    char sx[LM_SHAPE_STR_MAX];
    if (x->dtype != LM_FLOAT32)
        return lm_fail(LM_ERR_ARG, "layer_norm: input must be float32, got %s",
                       lm_dtype_name(x->dtype));
    if (k < 1 || k > x->ndim)
        return lm_fail(LM_ERR_SHAPE, "layer_norm: cannot normalise the last %d dimensions of %s", k,
                       lm_shape_str(x, sx, sizeof sx));
    if (!(eps >= 0) || !isfinite(eps))
        return lm_fail(LM_ERR_ARG, "layer_norm: eps must be finite and >= 0, got %g", eps);
    LM_TRY(check_affine("weight", w, x, k));
    return check_affine("bias", b, x, k);
}

/* inputs x, w, b; saved x (contiguous), stats [rows, 2], w (contiguous, or none) */
static lm_status rule_layer_norm(lm_node *n, lm_tensor *g, lm_tensor **gi) {
    scope sc = {0};
    lm_tensor *x = sc_saved(&sc, n, 0), *stats = sc_saved(&sc, n, 1);
    lm_tensor *w = n->saved[2] ? sc_saved(&sc, n, 2) : NULL;
    lm_tensor *gc = sc_contiguous(&sc, g);
    const lm_backend *be = sc_backend(&sc, x);
    lm_tensor *gx = x ? sc_empty(&sc, x->storage->device, x->ndim, x->shape) : NULL;
    lm_tensor *gw = n->inputs[1] && w ? sc_zeros_like(&sc, w) : NULL;
    lm_tensor *gb = NULL;
    if (n->inputs[2] && x) {
        int k = (int)n->iparams[0];
        gb = sc_zeros(&sc, x->storage->device, k, x->shape + x->ndim - k);
    }
    if (sc.status == LM_OK) sc.status = be->layer_norm_backward(gx, gw, gb, gc, x, stats, w);
    if (n->inputs[0]) gi[0] = sc_give(&sc, gx);
    gi[1] = sc_give(&sc, gw);
    gi[2] = sc_give(&sc, gb);
    return sc_end(&sc);
}

bool lm_layer_norm_available(const lm_tensor *x) {
    const lm_backend *be = lm_backend_get(x->storage->device);
    return be && be->layer_norm && be->layer_norm_backward;
}

lm_status lm_ag_layer_norm(lm_tensor **out, lm_tensor *x, int normalized_dims, lm_tensor *weight,
                           lm_tensor *bias, double eps) {
    *out = NULL;
    LM_TRY(check_layer_norm(x, normalized_dims, weight, bias, eps));
    const lm_backend *be = lm_backend_of(x);
    if (!be) return LM_ERR_DEVICE;
    if (!be->layer_norm || !be->layer_norm_backward)
        return lm_fail(LM_ERR_DEVICE, "layer_norm: no fused kernel on %s (compose it instead)",
                       lm_device_name(x->storage->device));
    int64_t cols = 1;
    for (int d = x->ndim - normalized_dims; d < x->ndim; d++) cols *= x->shape[d];
    int64_t stats_shape[2] = {cols ? lm_tensor_numel(x) / cols : 0, 2};
    lm_device device = x->storage->device;
    lm_tensor *xc = NULL, *wc = NULL, *bc = NULL, *stats = NULL, *y = NULL;
    lm_status s = lm_contiguous(&xc, x);
    if (s == LM_OK && weight) s = lm_contiguous(&wc, weight);
    if (s == LM_OK && bias) s = lm_contiguous(&bc, bias);
    if (s == LM_OK) s = lm_tensor_new(&y, LM_FLOAT32, device, x->ndim, x->shape);
    if (s == LM_OK) s = lm_tensor_new(&stats, LM_FLOAT32, device, 2, stats_shape);
    if (s == LM_OK) s = be->layer_norm(y, stats, xc, wc, bc, eps);
    lm_tensor *in[3] = {x, weight, bias};
    if (s == LM_OK && lm_any_requires_grad(3, in)) {
        lm_node *node;
        s = lm_node_record(&node, &y, "layer_norm", rule_layer_norm, 3, in);
        if (s == LM_OK) {
            node->iparams[0] = normalized_dims;
            lm_node_save(node, 0, xc);
            lm_node_save(node, 1, stats);
            if (wc) lm_node_save(node, 2, wc);
        }
    }
    lm_tensor_release(xc);
    lm_tensor_release(wc);
    lm_tensor_release(bc);
    lm_tensor_release(stats);
    if (s != LM_OK) {
        lm_tensor_release(y);
        return s;
    }
    *out = y;
    return LM_OK;
}
