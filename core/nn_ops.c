/* Layer ops and losses: argument checks and the forward pass through the
 * backend (static *_forward, plain ops that record nothing), then the lm_ag_*
 * entry point that runs it and records the node, as autograd_ops.c does for
 * every other op. Their rules are in autograd_rules.c. */
#include <math.h>
#include <string.h>

#include "autograd_rules.h"
#include "lm_autocast.h"
#include "lm_nn.h"
#include "lm_ops.h"
#include "lm_rng.h"

static lm_status check_float(const char *op, const char *what, const lm_tensor *t) {
    if (t->dtype != LM_FLOAT32)
        return lm_fail(LM_ERR_ARG, "%s: %s must be float32, got %s", op, what,
                       lm_dtype_name(t->dtype));
    return LM_OK;
}

static lm_status same_device(const char *op, const lm_tensor *a, const lm_tensor *b) {
    if (b && a->storage->device != b->storage->device)
        return lm_fail(LM_ERR_DEVICE, "%s: tensors on different devices (%s and %s)", op,
                       lm_device_name(a->storage->device), lm_device_name(b->storage->device));
    return LM_OK;
}

/* Checks shared by the layers with weights: float32 input and weight on one
 * device (bias too), and a weight of `wdim` dimensions laid out as `layout`. */
static lm_status check_layer(const char *op, const lm_tensor *x, const lm_tensor *w,
                             const lm_tensor *b, int wdim, const char *layout) {
    char sw[LM_SHAPE_STR_MAX];
    LM_TRY(check_float(op, "input", x));
    LM_TRY(check_float(op, "weight", w));
    if (b) LM_TRY(check_float(op, "bias", b));
    LM_TRY(same_device(op, x, w));
    LM_TRY(same_device(op, x, b));
    if (w->ndim != wdim)
        return lm_fail(LM_ERR_SHAPE, "%s: weight must be %s, got %s", op, layout,
                       lm_shape_str(w, sw, sizeof sw));
    return LM_OK;
}

/* Records a layer with weights when an input requires gradients: inputs x,
 * w, b; saved[0] = x, saved[1] = w. *node stays NULL when nothing is recorded. */
static lm_status record_layer(lm_node **node, lm_tensor **out, const char *name,
                              lm_backward_fn rule, lm_tensor *x, lm_tensor *w, lm_tensor *b) {
    lm_tensor *in[3] = {x, w, b};
    *node = NULL;
    if (!lm_any_requires_grad(3, in)) return LM_OK;
    LM_TRY(lm_node_record(node, out, name, rule, 3, in));
    lm_node_save(*node, 0, x);
    lm_node_save(*node, 1, w);
    return LM_OK;
}

/* ---- linear -------------------------------------------------------------------------------------
 */

static lm_status linear_forward_checks(const lm_tensor *x, const lm_tensor *w, const lm_tensor *b) {
    char sx[LM_SHAPE_STR_MAX], sw[LM_SHAPE_STR_MAX];
    LM_TRY(check_layer("linear", x, w, b, 2, "[out, in]"));
    if (x->ndim < 1 || x->shape[x->ndim - 1] != w->shape[1])
        return lm_fail(LM_ERR_SHAPE,
                       "linear: input has %lld features, weight expects %lld (input shape %s, "
                       "weight shape %s)",
                       (long long)(x->ndim ? x->shape[x->ndim - 1] : 0), (long long)w->shape[1],
                       lm_shape_str(x, sx, sizeof sx), lm_shape_str(w, sw, sizeof sw));
    if (b && (b->ndim != 1 || b->shape[0] != w->shape[0]))
        return lm_fail(LM_ERR_SHAPE, "linear: bias must be [%lld], got %s", (long long)w->shape[0],
                       lm_shape_str(b, sx, sizeof sx));
    return LM_OK;
}

static lm_status linear_forward(lm_tensor **out, lm_tensor *x, lm_tensor *w, lm_tensor *b) {
    *out = NULL;
    LM_TRY(linear_forward_checks(x, w, b));
    lm_tensor *wt;
    LM_TRY(lm_tensor_transpose(&wt, w, 0, 1));
    lm_status s = lm_matmul_bias(out, x, wt, b);
    lm_tensor_release(wt);
    return s;
}

lm_status lm_ag_linear(lm_tensor **out, lm_tensor *x, lm_tensor *w, lm_tensor *b) {
    LM_TRY(linear_forward(out, x, w, b));
    lm_node *node;
    return record_layer(&node, out, "linear", lm_rule_linear, x, w, b);
}

/* ---- a Linear layer with its activation and dropout
 * ----------------------------------------------------------- */

static lm_status dropout_forward(lm_tensor **out, lm_tensor **mask_out, lm_tensor *x, double keep);

static lm_status check_linear_act(const lm_tensor *x, const lm_tensor *w, lm_unary_op act,
                                  double alpha, double keep) {
    char sx[LM_SHAPE_STR_MAX];
    if (act != LM_ELU && act != LM_RELU && act != LM_UNARY_COUNT)
        return lm_fail(LM_ERR_ARG, "linear_act: the activation must be ELU, ReLU or none, got %s",
                       lm_unary_name(act));
    /* the gradient reads the activation's output: a > 0 where its input is needs alpha > 0 */
    if (act == LM_ELU && !(alpha > 0))
        return lm_fail(LM_ERR_ARG, "linear_act: ELU's alpha must be positive, got %g", alpha);
    if (!(keep > 0 && keep <= 1))
        return lm_fail(LM_ERR_ARG, "linear_act: the keep probability must be in (0, 1], got %g",
                       keep);
    if (x->ndim != 2)
        return lm_fail(LM_ERR_SHAPE, "linear_act: input must be [rows, %lld], got %s",
                       (long long)w->shape[1], lm_shape_str(x, sx, sizeof sx));
    return LM_OK;
}

/* The three ops one after the other, for backends without linear_act. */
static lm_status linear_act_composed(lm_tensor **y, lm_tensor **a, lm_tensor **mask, lm_tensor *x,
                                     lm_tensor *w, lm_tensor *b, lm_unary_op act, double alpha,
                                     double keep) {
    lm_tensor *z;
    LM_TRY(linear_forward(&z, x, w, b));
    lm_status s = LM_OK;
    if (act == LM_UNARY_COUNT)
        *a = z;
    else {
        s = lm_unary(a, act, z, alpha, 0);
        lm_tensor_release(z);
        LM_TRY(s);
    }
    if (keep < 1) {
        s = dropout_forward(y, mask, *a, keep);
        if (s != LM_OK) lm_tensor_release(*a), *a = NULL;
        return s;
    }
    *y = lm_tensor_retain(*a);
    return LM_OK;
}

static lm_status linear_act_fused(const lm_backend *be, lm_tensor **y, lm_tensor **a,
                                  lm_tensor **mask, lm_tensor *x, lm_tensor *w, lm_tensor *b,
                                  lm_unary_op act, double alpha, double keep) {
    lm_tensor *xc = NULL, *wc = NULL, *bc = NULL;
    int64_t shape[2] = {x->shape[0], w->shape[0]};
    lm_device device = x->storage->device;
    lm_status s = lm_autocast_operand(&xc, x);
    if (s == LM_OK) s = lm_autocast_operand(&wc, w);
    if (s == LM_OK && b) s = lm_contiguous(&bc, b);
    if (s == LM_OK) s = lm_tensor_new(a, LM_FLOAT32, device, 2, shape);
    if (s == LM_OK && keep < 1) s = lm_tensor_new(mask, LM_FLOAT32, device, 2, shape);
    if (s == LM_OK && keep < 1) s = lm_tensor_new(y, LM_FLOAT32, device, 2, shape);
    if (s == LM_OK) {
        if (keep >= 1) *y = lm_tensor_retain(*a);
        lm_act_params p = {.op = act, .alpha = alpha, .keep = keep};
        if (keep < 1) { /* the same stream position as lm_ag_dropout after the product */
            p.seed = lm_rng_seed();
            p.offset = lm_rng_reserve(((uint64_t)lm_tensor_numel(*a) + 3) / 4);
        }
        s = be->linear_act(*y, *a, *mask, xc, wc, bc, &p);
    }
    lm_tensor_release(xc);
    lm_tensor_release(wc);
    lm_tensor_release(bc);
    return s;
}

lm_status lm_ag_linear_act(lm_tensor **out, lm_tensor *x, lm_tensor *w, lm_tensor *b,
                           lm_unary_op act, double alpha, double keep) {
    *out = NULL;
    LM_TRY(linear_forward_checks(x, w, b)); /* linear's checks and messages first */
    LM_TRY(check_linear_act(x, w, act, alpha, keep));
    lm_tensor *y = NULL, *a = NULL, *mask = NULL;
    const lm_backend *be = lm_backend_of(x);
    if (!be) return LM_ERR_DEVICE;
    lm_status s;
    if (be->linear_act && x->shape[1] > 0) { /* no inputs: the product's zeros come composed */
        s = linear_act_fused(be, &y, &a, &mask, x, w, b, act, alpha, keep);
    } else {
        s = linear_act_composed(&y, &a, &mask, x, w, b, act, alpha, keep);
    }
    lm_tensor *in[3] = {x, w, b};
    if (s == LM_OK && lm_any_requires_grad(3, in)) {
        lm_node *node;
        s = record_layer(&node, &y, "linear_act", lm_rule_linear_act, x, w, b);
        if (s == LM_OK) {
            node->iparams[0] = act;
            node->p[0] = alpha;
            if (mask) {
                lm_node_save(node, 2, a);
                lm_node_save(node, 3, mask);
            } else {
                s = lm_node_save_output(node, 2, y); /* a is the output itself */
            }
        }
    }
    lm_tensor_release(a);
    lm_tensor_release(mask);
    if (s != LM_OK) {
        lm_tensor_release(y);
        return s;
    }
    *out = y;
    return LM_OK;
}

/* ---- softmax
 * -------------------------------------------------------------------------------------- */

/* *y (optional) gets the result as computed: dim last, contiguous. */
static lm_status softmax_forward(lm_tensor **out, lm_tensor **y_out, lm_tensor *x, int dim,
                                 bool log) {
    *out = NULL;
    if (y_out) *y_out = NULL;
    const char *name = log ? "log_softmax" : "softmax";
    LM_TRY(check_float(name, "input", x));
    if (dim < 0 || dim >= (x->ndim ? x->ndim : 1))
        return lm_fail(LM_ERR_ARG, "%s: dimension %d out of range for a %d-D tensor", name, dim + 1,
                       x->ndim);
    const lm_backend *be = lm_backend_of(x);
    if (!be) return LM_ERR_DEVICE;
    /* move dim last and make it contiguous: rows of the softmax are then lines */
    lm_tensor *moved = NULL, *xc = NULL, *y = NULL;
    lm_status s = x->ndim ? lm_tensor_transpose(&moved, x, dim, x->ndim - 1)
                          : lm_tensor_view(&moved, x, 0, NULL);
    if (s == LM_OK) s = lm_contiguous(&xc, moved);
    if (s == LM_OK) s = lm_tensor_new_like(&y, xc);
    if (s == LM_OK) s = be->softmax(y, xc, log);
    if (s == LM_OK)
        s = x->ndim ? lm_tensor_transpose(out, y, dim, x->ndim - 1)
                    : lm_tensor_view(out, y, 0, NULL);
    lm_tensor_release(moved);
    lm_tensor_release(xc);
    if (s == LM_OK && y_out) *y_out = lm_tensor_retain(y);
    lm_tensor_release(y);
    return s;
}

lm_status lm_ag_softmax(lm_tensor **out, lm_tensor *x, int dim, bool log) {
    bool grad = lm_any_requires_grad(1, &x);
    lm_tensor *y;
    LM_TRY(softmax_forward(out, grad ? &y : NULL, x, dim, log));
    if (!grad) return LM_OK;
    lm_node *node;
    lm_status s = lm_node_record(&node, out, log ? "log_softmax" : "softmax",
                                 log ? lm_rule_log_softmax : lm_rule_softmax, 1, &x);
    if (s == LM_OK) {
        lm_node_save(node, 0, y);
        node->iparams[0] = dim;
    }
    lm_tensor_release(y);
    return s;
}

/* ---- dropout
 * ---------------------------------------------------------------------------------------- */

static lm_status dropout_forward(lm_tensor **out, lm_tensor **mask_out, lm_tensor *x, double keep) {
    *out = *mask_out = NULL;
    LM_TRY(check_float("dropout", "input", x));
    if (!(keep > 0 && keep <= 1))
        return lm_fail(LM_ERR_ARG, "dropout: the keep probability must be in (0, 1], got %g", keep);
    const lm_backend *be = lm_backend_of(x);
    if (!be) return LM_ERR_DEVICE;
    lm_tensor *xc = NULL, *mask = NULL;
    lm_status s = lm_contiguous(&xc, x);
    if (s == LM_OK) s = lm_tensor_new(&mask, LM_FLOAT32, x->storage->device, x->ndim, x->shape);
    if (s == LM_OK) s = lm_tensor_new(out, LM_FLOAT32, x->storage->device, x->ndim, x->shape);
    if (s == LM_OK) {
        uint64_t offset = lm_rng_reserve(((uint64_t)lm_tensor_numel(x) + 3) / 4);
        s = be->dropout(*out, mask, xc, lm_rng_seed(), offset, keep);
    }
    lm_tensor_release(xc);
    if (s != LM_OK) {
        lm_tensor_release(*out);
        lm_tensor_release(mask);
        *out = mask = NULL;
    }
    *mask_out = mask;
    return s;
}

lm_status lm_ag_dropout(lm_tensor **out, lm_tensor *x, double keep) {
    lm_tensor *mask;
    LM_TRY(dropout_forward(out, &mask, x, keep));
    lm_status s = LM_OK;
    if (lm_any_requires_grad(1, &x)) {
        lm_node *node;
        s = lm_node_record(&node, out, "dropout", lm_rule_dropout, 1, &x);
        if (s == LM_OK) lm_node_save(node, 0, mask);
    }
    lm_tensor_release(mask);
    return s;
}

/* ---- losses
 * ------------------------------------------------------------------------------------------ */

/* Also hands back what the rule needs: log_softmax(logits) and the one-hot labels. */
static lm_status cross_entropy_forward(lm_tensor **out, lm_tensor **lsm_out, lm_tensor **onehot_out,
                                       lm_tensor *logits, lm_tensor *labels) {
    *out = *lsm_out = *onehot_out = NULL;
    char s1[LM_SHAPE_STR_MAX], s2[LM_SHAPE_STR_MAX];
    LM_TRY(check_float("cross_entropy", "logits", logits));
    LM_TRY(same_device("cross_entropy", logits, labels));
    if (labels->dtype != LM_INT32)
        return lm_fail(LM_ERR_ARG, "cross_entropy: labels must be int32 class indices, got %s",
                       lm_dtype_name(labels->dtype));
    if (logits->ndim != 2 || labels->ndim != 1 || labels->shape[0] != logits->shape[0])
        return lm_fail(LM_ERR_SHAPE,
                       "cross_entropy: needs logits [N, C] and labels [N], got %s and %s",
                       lm_shape_str(logits, s1, sizeof s1), lm_shape_str(labels, s2, sizeof s2));
    int64_t n = logits->shape[0], classes = logits->shape[1];
    if (n == 0) return lm_fail(LM_ERR_ARG, "cross_entropy: empty batch");
    /* validate the labels before using them as indices */
    LM_TRY(lm_check_index_range("cross_entropy", "label", "classes", labels, classes));
    const lm_backend *be = lm_backend_of(logits);
    if (!be) return LM_ERR_DEVICE;
    lm_tensor *lsm = NULL, *onehot = NULL, *picked = NULL, *total = NULL, *zero = NULL;
    lm_status s = softmax_forward(&lsm, NULL, logits, 1, true);
    int64_t shape[2] = {n, classes};
    if (s == LM_OK) s = lm_tensor_new(&onehot, LM_FLOAT32, logits->storage->device, 2, shape);
    if (s == LM_OK) s = be->one_hot(onehot, labels);
    if (s == LM_OK) s = lm_full(&zero, LM_FLOAT32, logits->storage->device, 0, NULL, 0.0);
    /* picked, not multiplied: a masked class's -inf times 0 would be NaN */
    if (s == LM_OK) s = lm_where(&picked, onehot, lsm, zero);
    if (s == LM_OK) s = lm_reduce(&total, NULL, LM_SUM, picked, -1, false);
    if (s == LM_OK) s = lm_binary_scalar(out, LM_MUL, total, -1.0 / (double)n, false);
    lm_tensor_release(picked);
    lm_tensor_release(total);
    lm_tensor_release(zero);
    if (s != LM_OK) {
        lm_tensor_release(lsm);
        lm_tensor_release(onehot);
        return s;
    }
    *lsm_out = lsm;
    *onehot_out = onehot;
    return LM_OK;
}

lm_status lm_ag_cross_entropy(lm_tensor **out, lm_tensor *logits, lm_tensor *labels) {
    lm_tensor *lsm, *onehot;
    LM_TRY(cross_entropy_forward(out, &lsm, &onehot, logits, labels));
    lm_status s = LM_OK;
    if (lm_any_requires_grad(1, &logits)) {
        lm_node *node;
        s = lm_node_record(&node, out, "cross_entropy", lm_rule_cross_entropy, 1, &logits);
        if (s == LM_OK) {
            lm_node_save(node, 0, lsm);
            lm_node_save(node, 1, onehot);
        }
    }
    lm_tensor_release(lsm);
    lm_tensor_release(onehot);
    return s;
}

/* Also hands back y_hat - y, which the rule needs. */
static lm_status mse_forward(lm_tensor **out, lm_tensor **diff_out, lm_tensor *y_hat, lm_tensor *y,
                             bool per_sample) {
    *out = *diff_out = NULL;
    char s1[LM_SHAPE_STR_MAX], s2[LM_SHAPE_STR_MAX];
    LM_TRY(check_float("mse", "prediction", y_hat));
    LM_TRY(check_float("mse", "target", y));
    LM_TRY(same_device("mse", y_hat, y));
    if (!lm_tensor_same_shape(y_hat, y) || y_hat->ndim < 1)
        return lm_fail(LM_ERR_SHAPE, "mse: prediction %s and target %s must have the same shape",
                       lm_shape_str(y_hat, s1, sizeof s1), lm_shape_str(y, s2, sizeof s2));
    int64_t n = y_hat->shape[0];
    if (n == 0 && !per_sample) /* as cross_entropy: torch's mean of nothing is NaN */
        return lm_fail(LM_ERR_ARG,
                       "mse: empty batch (no samples to average; reduction 'none' gives [0])");
    lm_tensor *diff = NULL, *sq = NULL, *flat = NULL, *rows = NULL;
    const lm_backend *be = lm_backend_of(y_hat);
    if (!be) return LM_ERR_DEVICE;
    lm_status s = LM_OK;
    if (be->sq_diff_rows && lm_tensor_is_contiguous(y_hat) && lm_tensor_is_contiguous(y)) {
        /* one pass: the difference (kept for the backward pass) and the row sums */
        s = lm_tensor_new_like(&diff, y_hat);
        if (s == LM_OK) s = lm_tensor_new(&rows, LM_FLOAT32, y_hat->storage->device, 1, &n);
        if (s == LM_OK) s = be->sq_diff_rows(diff, rows, y_hat, y);
    } else {
        s = lm_binary(&diff, LM_SUB, y_hat, y);
        if (s == LM_OK) s = lm_unary(&sq, LM_SQUARE, diff, 0, 0);
        int64_t shape2[2] = {n, n ? lm_tensor_numel(y_hat) / n : 0};
        if (s == LM_OK) s = lm_tensor_reshape(&flat, sq, 2, shape2);
        if (s == LM_OK) s = lm_reduce(&rows, NULL, LM_SUM, flat, 1, false); /* [N] */
    }
    if (s == LM_OK) {
        if (per_sample) {
            s = lm_binary_scalar(out, LM_MUL, rows, 0.5, false);
        } else {
            lm_tensor *total = NULL;
            s = lm_reduce(&total, NULL, LM_SUM, rows, -1, false);
            if (s == LM_OK) s = lm_binary_scalar(out, LM_MUL, total, 0.5 / (double)n, false);
            lm_tensor_release(total);
        }
    }
    lm_tensor_release(sq);
    lm_tensor_release(flat);
    lm_tensor_release(rows);
    if (s != LM_OK) {
        lm_tensor_release(diff);
        return s;
    }
    *diff_out = diff;
    return LM_OK;
}

lm_status lm_ag_mse(lm_tensor **out, lm_tensor *y_hat, lm_tensor *y, bool per_sample) {
    lm_tensor *diff;
    LM_TRY(mse_forward(out, &diff, y_hat, y, per_sample));
    lm_tensor *in[2] = {y_hat, y};
    lm_status s = LM_OK;
    if (lm_any_requires_grad(2, in)) {
        lm_node *node;
        s = lm_node_record(&node, out, "mse", lm_rule_mse, 2, in);
        if (s == LM_OK) {
            lm_node_save(node, 0, diff);
            node->iparams[0] = per_sample;
        }
    }
    lm_tensor_release(diff);
    return s;
}

/* ---- MMD --------------------------------------------------------------------------------------
 */

bool lm_mmd_available(const lm_tensor *x) {
    const lm_backend *be = lm_backend_get(x->storage->device);
    return be && be->mmd;
}

/* saved[0] = d/dz, saved[1] = d/dp, each when that input requires gradients:
 * the kernel forms them with the value, from the same kernel matrices. */
lm_status lm_ag_mmd(lm_tensor **out, lm_tensor *z, lm_tensor *p, const double *bandwidths,
                    int nbandwidths) {
    *out = NULL;
    char sz[LM_SHAPE_STR_MAX], sp[LM_SHAPE_STR_MAX];
    LM_TRY(check_float("mmd", "z", z));
    LM_TRY(check_float("mmd", "prior samples", p));
    LM_TRY(same_device("mmd", z, p));
    if (z->ndim != 2 || p->ndim != 2 || z->shape[1] != p->shape[1] || z->shape[0] < 1 ||
        p->shape[0] < 1)
        return lm_fail(LM_ERR_SHAPE, "mmd: needs z [N, D] and prior samples [M, D], got %s and %s",
                       lm_shape_str(z, sz, sizeof sz), lm_shape_str(p, sp, sizeof sp));
    if (nbandwidths < 1 || nbandwidths > LM_MMD_MAX_BANDWIDTHS)
        return lm_fail(LM_ERR_ARG, "mmd: between 1 and %d bandwidths, got %d",
                       LM_MMD_MAX_BANDWIDTHS, nbandwidths);
    float scales[LM_MMD_MAX_BANDWIDTHS];
    for (int b = 0; b < nbandwidths; b++) {
        if (!(bandwidths[b] > 0) || bandwidths[b] == HUGE_VAL)
            return lm_fail(LM_ERR_ARG, "mmd: bandwidths must be positive and finite, got %g",
                           bandwidths[b]);
        scales[b] = (float)(-1 / (bandwidths[b] * (double)z->shape[1]));
    }
    const lm_backend *be = lm_backend_of(z);
    if (!be) return LM_ERR_DEVICE;
    if (!be->mmd)
        return lm_fail(LM_ERR_DEVICE, "mmd: no fused kernel on %s",
                       lm_device_name(z->storage->device));
    lm_tensor *zc = NULL, *pc = NULL, *gz = NULL, *gp = NULL;
    bool want_z = lm_any_requires_grad(1, &z), want_p = lm_any_requires_grad(1, &p);
    lm_device device = z->storage->device;
    lm_status s = lm_contiguous(&zc, z);
    if (s == LM_OK) s = lm_contiguous(&pc, p);
    if (s == LM_OK && want_z) s = lm_tensor_new(&gz, LM_FLOAT32, device, 2, z->shape);
    if (s == LM_OK && want_p) s = lm_tensor_new(&gp, LM_FLOAT32, device, 2, p->shape);
    if (s == LM_OK) s = lm_tensor_new(out, LM_FLOAT32, device, 0, NULL);
    if (s == LM_OK) s = be->mmd(*out, gz, gp, zc, pc, scales, nbandwidths);
    if (s == LM_OK && (want_z || want_p)) {
        lm_tensor *in[2] = {z, p};
        lm_node *node;
        s = lm_node_record(&node, out, "mmd", lm_rule_mmd, 2, in);
        if (s == LM_OK) {
            if (gz) lm_node_save(node, 0, gz);
            if (gp) lm_node_save(node, 1, gp);
        }
    }
    if (s != LM_OK && *out) {
        lm_tensor_release(*out);
        *out = NULL;
    }
    lm_tensor_release(zc);
    lm_tensor_release(pc);
    lm_tensor_release(gz);
    lm_tensor_release(gp);
    return s;
}

/* ---- batch normalisation
 * ------------------------------------------------------------------------------------- */

/* Checks shared by the per-channel ops: a float32 input [N, C, ...] and two
 * float32 [C] vectors (`names`; a NULL one is absent) on its device; s3
 * gets the input's shape as [N, C, S]. */
static lm_status check_per_channel(const char *op, const lm_tensor *x, const lm_tensor *const v[2],
                                   const char *const names[2], int64_t s3[3]) {
    char sx[LM_SHAPE_STR_MAX];
    LM_TRY(check_float(op, "input", x));
    for (int i = 0; i < 2; i++) LM_TRY(same_device(op, x, v[i]));
    if (x->ndim < 2)
        return lm_fail(LM_ERR_SHAPE, "%s: input must be [N, C, ...], got %s", op,
                       lm_shape_str(x, sx, sizeof sx));
    int64_t n = x->shape[0], c = x->shape[1];
    s3[0] = n, s3[1] = c, s3[2] = c && n ? lm_tensor_numel(x) / (n * c) : 0;
    for (int i = 0; i < 2; i++)
        if (v[i] && (v[i]->ndim != 1 || v[i]->shape[0] != c || v[i]->dtype != LM_FLOAT32))
            return lm_fail(LM_ERR_SHAPE, "%s: %s must be a float32 [%lld], got %s", op, names[i],
                           (long long)c, lm_shape_str(v[i], sx, sizeof sx));
    return LM_OK;
}

/* A residual (NULL: none) must be a float32 tensor of y's shape on y's device. */
static lm_status check_residual(const char *op, const char *y_name, const lm_tensor *y,
                                const lm_tensor *residual) {
    if (residual && (!lm_tensor_same_shape(residual, y) || residual->dtype != LM_FLOAT32)) {
        char sx[LM_SHAPE_STR_MAX], sr[LM_SHAPE_STR_MAX];
        return lm_fail(LM_ERR_SHAPE,
                       "%s: the residual must be a float32 tensor of the %s's "
                       "shape %s, got a %s %s",
                       op, y_name, lm_shape_str(y, sx, sizeof sx), lm_dtype_name(residual->dtype),
                       lm_shape_str(residual, sr, sizeof sr));
    }
    if (residual && residual->storage->device != y->storage->device)
        return lm_fail(LM_ERR_DEVICE, "%s: the residual is on %s, the %s on %s", op,
                       lm_device_name(residual->storage->device), y_name,
                       lm_device_name(y->storage->device));
    return LM_OK;
}

lm_status lm_channel_affine(lm_tensor **out, lm_tensor *x, lm_tensor *scale, lm_tensor *shift,
                            lm_tensor *residual, bool relu) {
    *out = NULL;
    int64_t s3[3];
    const lm_tensor *vectors[2] = {scale, shift};
    const char *const names[2] = {"scale", "shift"};
    LM_TRY(check_per_channel("channel_affine", x, vectors, names, s3));
    LM_TRY(check_residual("channel_affine", "input", x, residual));
    int64_t c = s3[1];
    lm_tensor *in[4] = {x, scale, shift, residual};
    if (lm_any_requires_grad(4, in))
        return lm_fail(LM_ERR_STATE, "channel_affine: records no gradient, and an input "
                                     "requires one (run it under no_grad)");
    const lm_backend *be = lm_backend_of(x);
    if (!be) return LM_ERR_DEVICE;
    int64_t cshape[LM_MAX_DIMS];
    cshape[0] = c;
    for (int d = 1; d < x->ndim - 1; d++) cshape[d] = 1;
    lm_tensor *xc = NULL, *x3 = NULL, *y = NULL, *sc = NULL, *sh = NULL, *sv = NULL, *hv = NULL;
    lm_tensor *rc = NULL, *r3 = NULL, *step = NULL;
    lm_status s = LM_OK;
    if (be->channel_affine) {
        s = lm_contiguous(&xc, x);
        if (s == LM_OK) s = lm_tensor_view(&x3, xc, 3, s3);
        if (s == LM_OK) s = lm_contiguous(&sc, scale);
        if (s == LM_OK) s = lm_contiguous(&sh, shift);
        if (s == LM_OK && residual) s = lm_contiguous(&rc, residual);
        if (s == LM_OK && residual) s = lm_tensor_view(&r3, rc, 3, s3);
        if (s == LM_OK) s = lm_tensor_new_like(&y, x3);
        if (s == LM_OK) s = be->channel_affine(y, x3, sc, sh, r3, relu);
        if (s == LM_OK) s = lm_tensor_view(out, y, x->ndim, x->shape);
    } else { /* [C, 1, ...] views broadcast over N and the positions; op by op */
        s = lm_tensor_view(&sv, scale, x->ndim - 1, cshape);
        if (s == LM_OK) s = lm_tensor_view(&hv, shift, x->ndim - 1, cshape);
        if (s == LM_OK) s = lm_binary(&y, LM_MUL, x, sv);
        if (s == LM_OK) s = lm_binary(out, LM_ADD, y, hv);
        if (s == LM_OK && residual) {
            step = *out, *out = NULL;
            s = lm_binary(out, LM_ADD, step, residual);
            lm_tensor_release(step), step = NULL;
        }
        if (s == LM_OK && relu) {
            step = *out, *out = NULL;
            s = lm_unary(out, LM_RELU, step, 0, 0);
            lm_tensor_release(step), step = NULL;
        }
    }
    lm_tensor_release(xc), lm_tensor_release(x3), lm_tensor_release(y);
    lm_tensor_release(sc), lm_tensor_release(sh), lm_tensor_release(sv), lm_tensor_release(hv);
    lm_tensor_release(rc), lm_tensor_release(r3);
    if (s != LM_OK) {
        lm_tensor_release(*out);
        *out = NULL;
    }
    return s;
}

bool lm_batch_norm_available(const lm_tensor *x) {
    const lm_backend *be = lm_backend_get(x->storage->device);
    return be && be->batch_norm && be->batch_norm_backward;
}

lm_status lm_ag_batch_norm(lm_tensor **out, lm_tensor **mean, lm_tensor **var, lm_tensor *x,
                           lm_tensor *weight, lm_tensor *bias, double eps) {
    return lm_ag_batch_norm_then(out, mean, var, x, weight, bias, eps, NULL, false);
}

/* inputs x, weight, bias, residual; saved[0] = x [N, C, S], [1] = the
 * statistics [2, C] (mean, var: *mean and *var are views of its rows),
 * [2] = weight, [3] = the output when relu; p[0] = eps */
lm_status lm_ag_batch_norm_then(lm_tensor **out, lm_tensor **mean, lm_tensor **var, lm_tensor *x,
                                lm_tensor *weight, lm_tensor *bias, double eps, lm_tensor *residual,
                                bool relu) {
    *out = *mean = *var = NULL;
    char sx[LM_SHAPE_STR_MAX];
    int64_t s3[3];
    const lm_tensor *affine[2] = {weight, bias};
    const char *const names[2] = {"weight", "bias"};
    LM_TRY(check_per_channel("batch_norm", x, affine, names, s3));
    LM_TRY(check_residual("batch_norm", "input", x, residual));
    int64_t n = s3[0], c = s3[1];
    if (n * s3[2] == 1)
        return lm_fail(LM_ERR_SHAPE,
                       "batch_norm: expected more than 1 value per channel when training, got "
                       "input %s",
                       lm_shape_str(x, sx, sizeof sx));
    if (n * s3[2] == 0) /* F.batch_norm returns an empty batch as it is */
        return lm_fail(LM_ERR_SHAPE, "batch_norm: input %s has no values to normalise",
                       lm_shape_str(x, sx, sizeof sx));
    const lm_backend *be = lm_backend_of(x);
    if (!be) return LM_ERR_DEVICE;
    if (!be->batch_norm)
        return lm_fail(LM_ERR_DEVICE, "batch_norm: no fused kernel on %s",
                       lm_device_name(x->storage->device));
    lm_tensor *xc = NULL, *x3 = NULL, *y = NULL, *wc = NULL, *bc = NULL, *rc = NULL, *r3 = NULL;
    lm_tensor *stats = NULL;
    int64_t stats_shape[2] = {2, c};
    lm_status s = lm_contiguous(&xc, x);
    /* the kernels read weight and bias as plain arrays */
    if (s == LM_OK && weight) s = lm_contiguous(&wc, weight);
    if (s == LM_OK && bias) s = lm_contiguous(&bc, bias);
    if (s == LM_OK && residual) s = lm_contiguous(&rc, residual);
    if (s == LM_OK && rc) s = lm_tensor_view(&r3, rc, 3, s3);
    if (s == LM_OK) s = lm_tensor_view(&x3, xc, 3, s3);
    if (s == LM_OK) s = lm_tensor_new_like(&y, x3);
    if (s == LM_OK) s = lm_tensor_new(&stats, LM_FLOAT32, x->storage->device, 2, stats_shape);
    if (s == LM_OK) s = lm_tensor_select(mean, stats, 0, 0);
    if (s == LM_OK) s = lm_tensor_select(var, stats, 0, 1);
    if (s == LM_OK) s = be->batch_norm(y, *mean, *var, x3, wc, bc, eps, r3, relu);
    if (s == LM_OK) s = lm_tensor_view(out, y, x->ndim, x->shape);
    lm_tensor *in[4] = {x, weight, bias, residual};
    if (s == LM_OK && lm_any_requires_grad(4, in)) {
        lm_node *node;
        s = lm_node_record(&node, out, "batch_norm", lm_rule_batch_norm, 4, in);
        if (s == LM_OK) {
            lm_node_save(node, 0, x3);
            lm_node_save(node, 1, stats);
            lm_node_save(node, 2, wc);
            node->p[0] = eps;
            if (relu) s = lm_node_save_output(node, 3, *out); /* its zeros mask the gradient */
        }
    }
    lm_tensor_release(xc), lm_tensor_release(x3), lm_tensor_release(y), lm_tensor_release(stats);
    lm_tensor_release(wc), lm_tensor_release(bc), lm_tensor_release(rc), lm_tensor_release(r3);
    if (s != LM_OK) {
        lm_tensor_release(*out), lm_tensor_release(*mean), lm_tensor_release(*var);
        *out = *mean = *var = NULL;
    }
    return s;
}

/* ---- convolution and pooling
 * ------------------------------------------------------------------------ */

/* The output size along one dimension: floor((in + 2 pad - dilation (k - 1) - 1) / stride) + 1. */
static int64_t conv_out_size(int64_t in, int64_t k, int64_t stride, int64_t pad, int64_t dilation) {
    return (in + 2 * pad - dilation * (k - 1) - 1) / stride + 1;
}

/* A conv's or a pool's geometry (pooling: no dilation, one group, whatever
 * opt holds). */
static lm_status geometry(const char *op, const lm_tensor *x, int64_t kh, int64_t kw,
                          const lm_conv_options *o, bool conv, lm_conv_geometry *g) {
    char sx[LM_SHAPE_STR_MAX];
    if (x->ndim != 4)
        return lm_fail(LM_ERR_SHAPE, "%s: input must be [N, C, H, W], got %s", op,
                       lm_shape_str(x, sx, sizeof sx));
    if (o->stride_h < 1 || o->stride_w < 1 || o->pad_h < 0 || o->pad_w < 0 || kh < 1 || kw < 1)
        return lm_fail(LM_ERR_ARG, "%s: kernel and stride must be >= 1 and padding >= 0", op);
    int64_t dh = conv && o->dilation_h ? o->dilation_h : 1,
            dw = conv && o->dilation_w ? o->dilation_w : 1;
    int64_t groups = conv && o->groups ? o->groups : 1;
    if (dh < 1 || dw < 1)
        return lm_fail(LM_ERR_ARG, "%s: dilation must be >= 1, got %lldx%lld", op, (long long)dh,
                       (long long)dw);
    if (groups < 1)
        return lm_fail(LM_ERR_ARG, "%s: groups must be >= 1, got %lld", op, (long long)groups);
    if (x->shape[1] < 1) /* the kernels divide by the channels' share of the work */
        return lm_fail(LM_ERR_SHAPE, "%s: input %s has no channels", op,
                       lm_shape_str(x, sx, sizeof sx));
    if (x->shape[2] < 1 || x->shape[3] < 1) /* padding would make windows of nothing but zeros */
        return lm_fail(LM_ERR_SHAPE, "%s: input %s has no height or width", op,
                       lm_shape_str(x, sx, sizeof sx));
    *g = (lm_conv_geometry){.channels = x->shape[1],
                            .height = x->shape[2],
                            .width = x->shape[3],
                            .kernel_h = kh,
                            .kernel_w = kw,
                            .stride_h = o->stride_h,
                            .stride_w = o->stride_w,
                            .pad_h = o->pad_h,
                            .pad_w = o->pad_w,
                            .dilation_h = dh,
                            .dilation_w = dw,
                            .groups = groups};
    /* the extent of the dilated kernel, (k - 1) d + 1 */
    int64_t span_h = (kh - 1) * dh + 1, span_w = (kw - 1) * dw + 1;
    if (g->height + 2 * g->pad_h < span_h || g->width + 2 * g->pad_w < span_w) {
        if (dh == 1 && dw == 1)
            return lm_fail(LM_ERR_SHAPE, "%s: kernel %lldx%lld is larger than the padded input %s",
                           op, (long long)kh, (long long)kw, lm_shape_str(x, sx, sizeof sx));
        return lm_fail(
            LM_ERR_SHAPE,
            "%s: kernel %lldx%lld with dilation %lldx%lld spans %lldx%lld, more than the "
            "padded input %s (padding %lldx%lld): the output would be empty",
            op, (long long)kh, (long long)kw, (long long)dh, (long long)dw, (long long)span_h,
            (long long)span_w, lm_shape_str(x, sx, sizeof sx), (long long)g->pad_h,
            (long long)g->pad_w);
    }
    g->out_h = conv_out_size(g->height, kh, g->stride_h, g->pad_h, dh);
    g->out_w = conv_out_size(g->width, kw, g->stride_w, g->pad_w, dw);
    return LM_OK;
}

/* A conv/pool node keeps x's shape in node->shape and the geometry in
 * iparams[0..8]; lm_node_geometry rebuilds it for the rule. */
static void save_geometry(lm_node *node, const lm_tensor *x, const lm_conv_geometry *g) {
    node->ndim = 4;
    memcpy(node->shape, x->shape, sizeof(int64_t) * 4);
    node->iparams[0] = g->kernel_h, node->iparams[1] = g->kernel_w;
    node->iparams[2] = g->stride_h, node->iparams[3] = g->stride_w;
    node->iparams[4] = g->pad_h, node->iparams[5] = g->pad_w;
    node->iparams[6] = g->dilation_h, node->iparams[7] = g->dilation_w;
    node->iparams[8] = g->groups;
}

lm_conv_geometry lm_node_geometry(const lm_node *n) {
    lm_conv_geometry g = {.channels = n->shape[1],
                          .height = n->shape[2],
                          .width = n->shape[3],
                          .kernel_h = n->iparams[0],
                          .kernel_w = n->iparams[1],
                          .stride_h = n->iparams[2],
                          .stride_w = n->iparams[3],
                          .pad_h = n->iparams[4],
                          .pad_w = n->iparams[5],
                          .dilation_h = n->iparams[6],
                          .dilation_w = n->iparams[7],
                          .groups = n->iparams[8]};
    g.out_h = conv_out_size(g.height, g.kernel_h, g.stride_h, g.pad_h, g.dilation_h);
    g.out_w = conv_out_size(g.width, g.kernel_w, g.stride_w, g.pad_w, g.dilation_w);
    return g;
}

/* conv2d's checks of its operands; g gets the layer's geometry. */
static lm_status conv2d_check(lm_conv_geometry *g, lm_tensor *x, lm_tensor *w, lm_tensor *b,
                              const lm_conv_options *opt) {
    char sx[LM_SHAPE_STR_MAX], sw[LM_SHAPE_STR_MAX];
    LM_TRY(check_layer("conv2d", x, w, b, 4, "[out, in / groups, kh, kw]"));
    LM_TRY(geometry("conv2d", x, w->shape[2], w->shape[3], opt, true, g));
    int64_t groups = g->groups;
    if (groups > 1 && g->channels % groups)
        return lm_fail(LM_ERR_SHAPE,
                       "conv2d: input has %lld channels, which groups = %lld does not divide "
                       "(input %s)",
                       (long long)g->channels, (long long)groups, lm_shape_str(x, sx, sizeof sx));
    if (groups > 1 && w->shape[0] % groups)
        return lm_fail(LM_ERR_SHAPE,
                       "conv2d: weight has %lld output channels, which groups = %lld does not "
                       "divide (weight %s)",
                       (long long)w->shape[0], (long long)groups, lm_shape_str(w, sw, sizeof sw));
    if (groups == 1 && w->shape[1] != g->channels)
        return lm_fail(LM_ERR_SHAPE,
                       "conv2d: input has %lld channels, weight expects %lld "
                       "(input %s, weight %s)",
                       (long long)g->channels, (long long)w->shape[1],
                       lm_shape_str(x, sx, sizeof sx), lm_shape_str(w, sw, sizeof sw));
    if (groups > 1 && w->shape[1] != g->channels / groups)
        return lm_fail(LM_ERR_SHAPE,
                       "conv2d: input has %lld channels, %lld a group with groups = %lld, but the "
                       "weight expects %lld a group (input %s, weight %s; weights are [out, in / "
                       "groups, kh, kw])",
                       (long long)g->channels, (long long)(g->channels / groups), (long long)groups,
                       (long long)w->shape[1], lm_shape_str(x, sx, sizeof sx),
                       lm_shape_str(w, sw, sizeof sw));
    if (b && (b->ndim != 1 || b->shape[0] != w->shape[0]))
        return lm_fail(LM_ERR_SHAPE, "conv2d: bias must be [%lld]", (long long)w->shape[0]);
    return LM_OK;
}

/* A backend without a whole-batch convolution: per image and group,
 * out[n, group's rows] = W_group [O / groups, K] @ im2col(x[n, group's
 * channels]) [K, oh*ow], K = C / groups * kh * kw (the geometry of one
 * group's channels in *cg). */
lm_status lm_conv2d_by_images(lm_tensor *out, const lm_backend *be, lm_tensor *xc, lm_tensor *w2,
                              const lm_conv_geometry *g) {
    int64_t N = xc->shape[0], groups = lm_conv_groups(g), O = w2->shape[0], og = O / groups;
    lm_conv_geometry cg = *g;
    cg.channels = g->channels / groups;
    cg.groups = 1;
    int64_t cshape[2] = {w2->shape[1], g->out_h * g->out_w}, o2[2] = {O, cshape[1]};
    lm_tensor *cols = NULL;
    lm_status s = lm_tensor_new(&cols, LM_FLOAT32, xc->storage->device, 2, cshape);
    for (int64_t n = 0; n < N && s == LM_OK; n++)
        for (int64_t k = 0; k < groups && s == LM_OK; k++) {
            lm_tensor *xi = NULL, *xg = NULL, *wg = NULL, *oi = NULL, *oi2 = NULL, *og2 = NULL,
                      *prod = NULL;
            s = lm_tensor_select(&xi, xc, 0, n);
            if (s == LM_OK) s = lm_tensor_narrow(&xg, xi, 0, k * cg.channels, cg.channels);
            if (s == LM_OK) s = be->im2col(cols, xg, &cg);
            if (s == LM_OK) s = lm_tensor_narrow(&wg, w2, 0, k * og, og);
            if (s == LM_OK) s = lm_matmul(&prod, wg, cols);
            if (s == LM_OK) s = lm_tensor_select(&oi, out, 0, n);
            if (s == LM_OK) s = lm_tensor_view(&oi2, oi, 2, o2);
            if (s == LM_OK) s = lm_tensor_narrow(&og2, oi2, 0, k * og, og);
            if (s == LM_OK) s = lm_copy_(og2, prod);
            lm_tensor_release(xi), lm_tensor_release(xg), lm_tensor_release(wg);
            lm_tensor_release(oi), lm_tensor_release(oi2), lm_tensor_release(og2);
            lm_tensor_release(prod);
        }
    lm_tensor_release(cols);
    return s;
}

static lm_status conv2d_forward(lm_tensor **out, lm_conv_geometry *g, lm_tensor *x, lm_tensor *w,
                                lm_tensor *b, const lm_conv_options *opt) {
    *out = NULL;
    LM_TRY(conv2d_check(g, x, w, b, opt));
    const lm_backend *be = lm_backend_of(x);
    if (!be) return LM_ERR_DEVICE;
    int64_t N = x->shape[0], O = w->shape[0], K = w->shape[1] * g->kernel_h * g->kernel_w;
    lm_tensor *xc = NULL, *wc = NULL, *w2 = NULL;
    int64_t oshape[4] = {N, O, g->out_h, g->out_w}, wshape[2] = {O, K};
    lm_status s = lm_autocast_operand(&xc, x);
    if (s == LM_OK) s = lm_autocast_operand(&wc, w);
    if (s == LM_OK) s = lm_tensor_view(&w2, wc, 2, wshape);
    if (s == LM_OK) s = lm_tensor_new(out, LM_FLOAT32, x->storage->device, 4, oshape);
    lm_tensor *bc = NULL; /* the backend adds a contiguous bias as it writes */
    if (s == LM_OK && be->conv2d && b) s = lm_contiguous(&bc, b);
    /* an empty batch or no output channels: nothing to compute (cuDNN refuses them) */
    if (s == LM_OK && be->conv2d && N > 0 && O > 0)
        s = be->conv2d(*out, xc, wc, bc, g); /* whole batch at once */
    else if (s == LM_OK && !be->conv2d)
        s = lm_conv2d_by_images(*out, be, xc, w2, g);
    if (s == LM_OK && b && !be->conv2d) {
        int64_t bshape[3] = {O, 1, 1};
        lm_tensor *bv;
        s = lm_tensor_view(&bv, b, 3, bshape);
        if (s == LM_OK) s = lm_binary_into(*out, LM_ADD, *out, bv), lm_tensor_release(bv);
    }
    lm_tensor_release(xc), lm_tensor_release(wc), lm_tensor_release(w2);
    lm_tensor_release(bc);
    if (s != LM_OK) {
        lm_tensor_release(*out);
        *out = NULL;
    }
    return s;
}

lm_status lm_ag_conv2d(lm_tensor **out, lm_tensor *x, lm_tensor *w, lm_tensor *b,
                       const lm_conv_options *opt) {
    lm_conv_geometry g;
    LM_TRY(conv2d_forward(out, &g, x, w, b, opt));
    lm_node *node;
    LM_TRY(record_layer(&node, out, "conv2d", lm_rule_conv2d, x, w, b));
    if (node) save_geometry(node, x, &g);
    return LM_OK;
}

lm_status lm_conv2d_affine(lm_tensor **out, lm_tensor *x, lm_tensor *w, lm_tensor *scale,
                           lm_tensor *shift, lm_tensor *residual, bool relu,
                           const lm_conv_options *opt) {
    *out = NULL;
    lm_conv_geometry g;
    LM_TRY(conv2d_check(&g, x, w, NULL, opt));
    lm_tensor *in[5] = {x, w, scale, shift, residual};
    if (lm_any_requires_grad(residual ? 5 : 4, in))
        return lm_fail(LM_ERR_STATE, "conv2d_affine: records no gradient, and an input "
                                     "requires one (run it under no_grad)");
    const lm_backend *be = lm_backend_of(x);
    if (!be) return LM_ERR_DEVICE;
    int64_t oshape[4] = {x->shape[0], w->shape[0], g.out_h, g.out_w};
    lm_tensor *y = NULL, *xc = NULL, *wc = NULL, *sc = NULL, *sh = NULL, *rc = NULL;
    lm_status s = lm_tensor_new(&y, LM_FLOAT32, x->storage->device, 4, oshape);
    int64_t s3[3];
    const lm_tensor *vectors[2] = {scale, shift};
    const char *const names[2] = {"scale", "shift"};
    if (s == LM_OK) s = check_per_channel("conv2d_affine", y, vectors, names, s3);
    if (s == LM_OK) s = check_residual("conv2d_affine", "output", y, residual);
    if (s == LM_OK && (!be->conv2d_affine || x->shape[0] == 0)) { /* conv2d, then the affine map */
        lm_tensor_release(y), y = NULL;
        s = lm_ag_conv2d(&y, x, w, NULL, opt);
        if (s == LM_OK) s = lm_channel_affine(out, y, scale, shift, residual, relu);
    } else if (s == LM_OK) { /* each plane mapped as the convolution writes it */
        s = lm_autocast_operand(&xc, x);
        if (s == LM_OK) s = lm_autocast_operand(&wc, w);
        if (s == LM_OK) s = lm_contiguous(&sc, scale);
        if (s == LM_OK) s = lm_contiguous(&sh, shift);
        if (s == LM_OK && residual) s = lm_contiguous(&rc, residual);
        if (s == LM_OK) s = be->conv2d_affine(y, xc, wc, sc, sh, rc, relu, &g);
        if (s == LM_OK) *out = lm_tensor_retain(y);
    }
    lm_tensor_release(y), lm_tensor_release(xc), lm_tensor_release(wc);
    lm_tensor_release(sc), lm_tensor_release(sh), lm_tensor_release(rc);
    return s;
}

/* *argmax_out gets the int32 argmax planes of max pooling (NULL for average). */
static lm_status pool2d_forward(lm_tensor **out, lm_tensor **argmax_out, lm_conv_geometry *g,
                                lm_tensor *x, int64_t kh, int64_t kw, const lm_conv_options *opt,
                                bool max) {
    *out = *argmax_out = NULL;
    const char *name = max ? "max_pool2d" : "avg_pool2d";
    LM_TRY(check_float(name, "input", x));
    LM_TRY(geometry(name, x, kh, kw, opt, false, g));
    /* as torch: a window over padding alone would have no value to take */
    if (g->pad_h > kh / 2 || g->pad_w > kw / 2)
        return lm_fail(LM_ERR_ARG, "%s: padding %lldx%lld is more than half the kernel %lldx%lld",
                       name, (long long)g->pad_h, (long long)g->pad_w, (long long)kh,
                       (long long)kw);
    const lm_backend *be = lm_backend_of(x);
    if (!be) return LM_ERR_DEVICE;
    int64_t N = x->shape[0], C = x->shape[1];
    int64_t planes3[3] = {N * C, g->height, g->width}, oshape[4] = {N, C, g->out_h, g->out_w},
            o3[3] = {N * C, g->out_h, g->out_w};
    lm_tensor *xc = NULL, *x3 = NULL, *o3v = NULL, *argmax = NULL;
    lm_status s = lm_contiguous(&xc, x);
    if (s == LM_OK) s = lm_tensor_view(&x3, xc, 3, planes3);
    if (s == LM_OK) s = lm_tensor_new(out, LM_FLOAT32, x->storage->device, 4, oshape);
    if (s == LM_OK) s = lm_tensor_view(&o3v, *out, 3, o3);
    if (s == LM_OK && max) s = lm_tensor_new(&argmax, LM_INT32, x->storage->device, 3, o3);
    if (s == LM_OK) s = be->pool2d(o3v, argmax, x3, g);
    lm_tensor_release(xc), lm_tensor_release(x3), lm_tensor_release(o3v);
    if (s != LM_OK) {
        lm_tensor_release(*out);
        lm_tensor_release(argmax);
        *out = argmax = NULL;
    }
    *argmax_out = argmax;
    return s;
}

lm_status lm_ag_pool2d(lm_tensor **out, lm_tensor *x, int64_t kh, int64_t kw,
                       const lm_conv_options *opt, bool max) {
    lm_conv_geometry g;
    lm_tensor *argmax;
    LM_TRY(pool2d_forward(out, &argmax, &g, x, kh, kw, opt, max));
    lm_status s = LM_OK;
    if (lm_any_requires_grad(1, &x)) {
        lm_node *node;
        s = lm_node_record(&node, out, max ? "max_pool2d" : "avg_pool2d",
                           max ? lm_rule_max_pool2d : lm_rule_avg_pool2d, 1, &x);
        if (s == LM_OK) {
            lm_node_save(node, 0, argmax);
            save_geometry(node, x, &g);
        }
    }
    lm_tensor_release(argmax);
    return s;
}

/* ---- optimisers
 * ------------------------------------------------------------------------------------- */

lm_status lm_optim_check(const lm_tensor *param, const lm_tensor *grad, const lm_tensor *s1,
                         const lm_tensor *s2) {
    char a[LM_SHAPE_STR_MAX], b[LM_SHAPE_STR_MAX];
    if (!lm_tensor_same_shape(param, grad))
        return lm_fail(LM_ERR_SHAPE, "optimizer: gradient %s for a parameter %s",
                       lm_shape_str(grad, b, sizeof b), lm_shape_str(param, a, sizeof a));
    /* every operand is read (the states written) as float32 */
    LM_TRY(check_float("optimizer", "the gradient", grad));
    const lm_tensor *states[2] = {s1, s2};
    for (int k = 0; k < 2; k++)
        if (states[k] && states[k]->dtype != LM_FLOAT32)
            return lm_fail(LM_ERR_ARG, "optimizer: state tensor %d must be float32, got %s", k + 1,
                           lm_dtype_name(states[k]->dtype));
    for (int k = 0; k < 2; k++)
        if (states[k] &&
            (!lm_tensor_same_shape(param, states[k]) || !lm_tensor_is_contiguous(states[k]) ||
             states[k]->storage->device != param->storage->device))
            return lm_fail(LM_ERR_SHAPE, "optimizer: state tensor %d does not match the parameter",
                           k + 1);
    if (!lm_tensor_is_contiguous(param) || param->dtype != LM_FLOAT32)
        return lm_fail(LM_ERR_ARG, "optimizer: parameters must be contiguous float32 tensors");
    return same_device("optimizer", param, grad);
}

/* The checks of one update; on success *gc is the contiguous gradient. */
static lm_status check_update(lm_tensor *param, lm_tensor *grad, lm_tensor *s1, lm_tensor *s2,
                              lm_tensor **gc) {
    *gc = NULL;
    LM_TRY(lm_optim_check(param, grad, s1, s2));
    return lm_contiguous(gc, grad);
}

lm_status lm_optim_step(const lm_optim_params *p, lm_tensor *param, lm_tensor *grad, lm_tensor *s1,
                        lm_tensor *s2) {
    const lm_backend *be = lm_backend_of(param);
    if (!be) return LM_ERR_DEVICE;
    lm_tensor *gc;
    LM_TRY(check_update(param, grad, s1, s2, &gc));
    param->storage->version++;
    lm_status s = be->optim_step(p, param, gc, s1, s2);
    lm_tensor_release(gc);
    return s;
}

#define MANY_MAX 256

lm_status lm_optim_step_many(const lm_optim_params *p, int n, lm_tensor **params, lm_tensor **grads,
                             lm_tensor **s1, lm_tensor **s2) {
    if (n <= 0) return LM_OK;
    const lm_backend *be = lm_backend_of(params[0]);
    if (!be) return LM_ERR_DEVICE;
    bool one_device = true;
    for (int i = 1; i < n; i++)
        one_device &= params[i]->storage->device == params[0]->storage->device;
    if (!be->optim_step_many || !one_device || n > MANY_MAX) {
        /* one by one, after checking all: a refused step updates nothing */
        for (int i = 0; i < n; i++)
            LM_TRY(lm_optim_check(params[i], grads[i], s1 ? s1[i] : NULL, s2 ? s2[i] : NULL));
        for (int i = 0; i < n; i++)
            LM_TRY(lm_optim_step(p, params[i], grads[i], s1 ? s1[i] : NULL, s2 ? s2[i] : NULL));
        return LM_OK;
    }
    lm_tensor *gcs[MANY_MAX], *st1[MANY_MAX], *st2[MANY_MAX];
    lm_status s = LM_OK;
    int made = 0;
    for (; made < n && s == LM_OK; made++) {
        st1[made] = s1 ? s1[made] : NULL;
        st2[made] = s2 ? s2[made] : NULL;
        s = check_update(params[made], grads[made], st1[made], st2[made], &gcs[made]);
        if (s != LM_OK) break;
    }
    if (s == LM_OK) {
        for (int i = 0; i < n; i++) params[i]->storage->version++;
        s = be->optim_step_many(p, n, params, (const lm_tensor *const *)gcs, st1, st2);
    }
    for (int i = 0; i < made; i++) lm_tensor_release(gcs[i]);
    return s;
}
