/* Multi-head self-attention as one differentiable op: checks, the forward
 * pass through the backend's self_attention, and the derivative rule. The
 * composed form (products, softmax, transposes: lua/lumen/nn's
 * MultiheadAttention) stays the definition on backends without the slot;
 * the two give the same values to rounding (tests/lua/attention_spec.lua). */
#include <limits.h>
#include <math.h>

#include "autograd_scope.h"
#include "lm_nn.h"
#include "lm_ops.h"
#include "lm_rng.h"

static lm_status check_attention(const lm_tensor *qkv, int heads, const lm_tensor *mask,
                                 double scale, double keep) {
    char s[LM_SHAPE_STR_MAX];
    if (qkv->dtype != LM_FLOAT32)
        return lm_fail(LM_ERR_ARG, "self_attention: qkv must be float32, got %s",
                       lm_dtype_name(qkv->dtype));
    if (qkv->ndim != 3 || qkv->shape[2] % 3 != 0)
        return lm_fail(LM_ERR_SHAPE,
                       "self_attention: qkv must be [N, L, 3E] (queries, keys and values side by "
                       "side), got %s",
                       lm_shape_str(qkv, s, sizeof s));
    int64_t E = qkv->shape[2] / 3;
    if (heads < 1 || E % heads != 0)
        return lm_fail(LM_ERR_ARG, "self_attention: %lld features do not split into %d heads",
                       (long long)E, heads);
    if (qkv->shape[2] > INT_MAX || qkv->shape[1] > INT_MAX) /* BLAS takes int sizes */
        return lm_fail(LM_ERR_SHAPE, "self_attention: qkv %s has a size past BLAS's limit of %d",
                       lm_shape_str(qkv, s, sizeof s), INT_MAX);
    if (!isfinite(scale))
        return lm_fail(LM_ERR_ARG, "self_attention: scale must be finite, got %g", scale);
    if (!(keep > 0 && keep <= 1))
        return lm_fail(LM_ERR_ARG,
                       "self_attention: the dropout's keep probability must be in (0, 1], got %g",
                       keep);
    if (!mask) return LM_OK;
    if (mask->dtype != LM_FLOAT32)
        return lm_fail(LM_ERR_ARG, "self_attention: the mask must be float32 (additive), got %s",
                       lm_dtype_name(mask->dtype));
    if (mask->storage->device != qkv->storage->device)
        return lm_fail(LM_ERR_DEVICE, "self_attention: mask on %s, qkv on %s",
                       lm_device_name(mask->storage->device), lm_device_name(qkv->storage->device));
    int64_t want[4] = {qkv->shape[0], heads, qkv->shape[1], qkv->shape[1]};
    bool fits = mask->ndim <= 4;
    for (int d = 0; fits && d < mask->ndim; d++) {
        int64_t size = mask->shape[mask->ndim - 1 - d];
        fits = size == 1 || size == want[3 - d];
    }
    if (!fits)
        return lm_fail(LM_ERR_SHAPE,
                       "self_attention: the mask must broadcast to [N, heads, L, L] = [%lld, %d, "
                       "%lld, %lld], got %s",
                       (long long)want[0], heads, (long long)want[2], (long long)want[3],
                       lm_shape_str(mask, s, sizeof s));
    return LM_OK;
}

/* inputs qkv; saved qkv (contiguous), probs, the dropout's mask (or none);
 * iparams[0] = heads, p[0] = scale, p[1] = keep */
static lm_status rule_self_attention(lm_node *n, lm_tensor *g, lm_tensor **gi) {
    scope sc = {0};
    lm_tensor *qkv = sc_saved(&sc, n, 0), *probs = sc_saved(&sc, n, 1);
    lm_tensor *drop = n->saved[2] ? sc_saved(&sc, n, 2) : NULL;
    lm_tensor *gc = sc_contiguous(&sc, g);
    const lm_backend *be = sc_backend(&sc, qkv);
    lm_tensor *gqkv = qkv ? sc_empty(&sc, qkv->storage->device, 3, qkv->shape) : NULL;
    lm_attention_params p = {
        .heads = (int)n->iparams[0], .scale = n->p[0], .keep = n->p[1], .dropout_mask = drop};
    if (sc.status == LM_OK && lm_tensor_numel(qkv) > 0)
        sc.status = be->self_attention_backward(gqkv, gc, qkv, probs, &p);
    gi[0] = sc_give(&sc, gqkv);
    return sc_end(&sc);
}

bool lm_self_attention_available(const lm_tensor *qkv) {
    const lm_backend *be = lm_backend_get(qkv->storage->device);
    return be && be->self_attention && be->self_attention_backward;
}

lm_status lm_ag_self_attention(lm_tensor **out, lm_tensor *qkv, int heads, lm_tensor *mask,
                               double scale, double keep, lm_tensor **probs_out) {
    *out = NULL;
    if (probs_out) *probs_out = NULL;
    LM_TRY(check_attention(qkv, heads, mask, scale, keep));
    const lm_backend *be = lm_backend_of(qkv);
    if (!be) return LM_ERR_DEVICE;
    if (!be->self_attention || !be->self_attention_backward)
        return lm_fail(LM_ERR_DEVICE, "self_attention: no fused kernel on %s (compose it instead)",
                       lm_device_name(qkv->storage->device));
    if (mask && lm_any_requires_grad(1, &mask))
        return lm_fail(LM_ERR_ARG, "self_attention: the mask is a constant here (it requires "
                                   "gradients: compose the attention instead)");
    int64_t N = qkv->shape[0], L = qkv->shape[1], E = qkv->shape[2] / 3;
    int64_t out_shape[3] = {N, L, E}, probs_shape[4] = {N, heads, L, L};
    lm_device device = qkv->storage->device;
    lm_tensor *qc = NULL, *probs = NULL, *mview = NULL, *drop = NULL, *y = NULL;
    lm_attention_params p = {.heads = heads, .scale = scale, .keep = keep};
    lm_status s = lm_contiguous(&qc, qkv);
    if (s == LM_OK) s = lm_tensor_new(&y, LM_FLOAT32, device, 3, out_shape);
    if (s == LM_OK) s = lm_tensor_new(&probs, LM_FLOAT32, device, 4, probs_shape);
    if (s == LM_OK && mask) s = lm_tensor_expand(&mview, mask, 4, probs_shape);
    if (s == LM_OK && keep < 1) {
        s = lm_tensor_new(&drop, LM_FLOAT32, device, 4, probs_shape);
        /* the stream position F.dropout of the probabilities would take */
        p.seed = lm_rng_seed();
        p.offset = lm_rng_reserve(((uint64_t)lm_tensor_numel(probs) + 3) / 4);
        p.dropout_mask = drop;
    }
    if (s == LM_OK && N * L * E > 0) s = be->self_attention(y, probs, qc, mview, &p);
    if (s == LM_OK && lm_any_requires_grad(1, &qkv)) {
        lm_node *node;
        s = lm_node_record(&node, &y, "self_attention", rule_self_attention, 1, &qkv);
        if (s == LM_OK) {
            node->iparams[0] = heads;
            node->p[0] = scale;
            node->p[1] = keep;
            lm_node_save(node, 0, qc);
            lm_node_save(node, 1, probs);
            if (drop) lm_node_save(node, 2, drop);
        }
    }
    lm_tensor_release(qc);
    lm_tensor_release(mview);
    lm_tensor_release(drop);
    if (s != LM_OK) {
        lm_tensor_release(probs);
        lm_tensor_release(y);
        return s;
    }
    *out = y;
    if (probs_out)
        *probs_out = probs; /* the caller's reference; the node holds its own */
    else
        lm_tensor_release(probs);
    return LM_OK;
}
