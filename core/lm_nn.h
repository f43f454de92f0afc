/* Layer operations and losses. Their entry points are lm_ag_* like every
 * differentiable op (lm_autograd.h): they run the forward pass and record a
 * node on the tape when an input requires gradients. Shapes follow PyTorch:
 * Linear weights are [out, in], images are [N, C, H, W], convolution weights
 * [out, in, kh, kw]. */
#ifndef LM_NN_H
#define LM_NN_H

#include "lm_autograd.h"

#ifdef __cplusplus
extern "C" {
#endif

/* y = x W^T + b over the last dimension of x; bias may be NULL. */
lm_status lm_ag_linear(lm_tensor **out, lm_tensor *x, lm_tensor *weight, lm_tensor *bias);
/* A Linear layer followed by its activation and dropout as one op, bit for
 * bit lm_ag_linear, lm_ag_unary and lm_ag_dropout in turn (the dropout
 * draws the same mask from the same stream position): act is LM_ELU (alpha
 * > 0), LM_RELU or LM_UNARY_COUNT (none); keep in (0, 1], 1 for no dropout.
 * x is [rows, in]. Backends with linear_act do it in one pass over the
 * output (the CPU: in each thread's block of the product as it is
 * written); the others compose the three ops. One node on the tape. */
lm_status lm_ag_linear_act(lm_tensor **out, lm_tensor *x, lm_tensor *weight, lm_tensor *bias,
                           lm_unary_op act, double alpha, double keep);
/* (log-)softmax along `dim` (0-based), numerically stable. */
lm_status lm_ag_softmax(lm_tensor **out, lm_tensor *x, int dim, bool log);
/* Mean over the batch of -log softmax(logits)[label]; logits [N, C], labels
 * int32 [N] with 0-based classes (checked: out of range is an error). */
lm_status lm_ag_cross_entropy(lm_tensor **out, lm_tensor *logits, lm_tensor *labels);
/* The paper's error: 1/2 sum over features of (y_hat - y)^2, then the mean
 * over the batch (dimension 1); per_sample gives the [N] errors instead. */
lm_status lm_ag_mse(lm_tensor **out, lm_tensor *y_hat, lm_tensor *y, bool per_sample);

/* The multi-scale MMD of samples z [N, D] and prior samples p [M, D], the
 * biased estimate over all pairs: mean k(z, z') + mean k(p, p') - 2 mean
 * k(z, p), k(a, c) = sum over the bandwidths of exp(-||a - c||^2 / (bw D)).
 * A scalar; fused on backends that have it (LM_ERR_DEVICE elsewhere), with
 * 1 to LM_MMD_MAX_BANDWIDTHS bandwidths. */
#define LM_MMD_MAX_BANDWIDTHS 32
/* Whether x's device has the fused MMD (the CPU and CUDA do). */
bool lm_mmd_available(const lm_tensor *x);
lm_status lm_ag_mmd(lm_tensor **out, lm_tensor *z, lm_tensor *p, const double *bandwidths,
                    int nbandwidths);

/* Inverted dropout in one pass: each element kept with probability `keep`
 * and scaled by 1 / keep, from the global random stream (the mask is the one
 * lm_rand_dropout_mask_ would draw at this stream position). */
lm_status lm_ag_dropout(lm_tensor **out, lm_tensor *x, double keep);

/* Batch normalisation in training mode, as torch.nn.functional.batch_norm:
 * x [N, C, ...] normalised per channel with the batch mean and biased
 * variance, then scaled by weight and shifted by bias [C] (either NULL).
 * *mean and *var get the batch statistics [C] (var biased) for the caller's
 * running averages; gradients do not flow through them. LM_ERR_DEVICE
 * where the device's backend has no fused kernel (compose it instead).
 * The _then form adds residual (x's shape, or NULL) and takes max(y, 0)
 * when relu, in the same pass: the values and gradients of the ops after a
 * batch norm in a residual block. */
/* y = x * scale[c] + shift[c] for x [N, C, ...] and scale, shift [C], then
 * + residual (x's shape, or NULL) and max(y, 0) when relu: a batch norm in
 * evaluation with what follows it in a residual block (the skip connection,
 * the ReLU), in one pass where the backend has it, otherwise op by op; the
 * same values either way. Records no gradient: refused while gradients are
 * on and an input requires them. */
lm_status lm_channel_affine(lm_tensor **out, lm_tensor *x, lm_tensor *scale, lm_tensor *shift,
                            lm_tensor *residual, bool relu);
/* Whether x's device has the fused batch norm (the CPU and CUDA do). */
bool lm_batch_norm_available(const lm_tensor *x);
lm_status lm_ag_batch_norm(lm_tensor **out, lm_tensor **mean, lm_tensor **var, lm_tensor *x,
                           lm_tensor *weight, lm_tensor *bias, double eps);
lm_status lm_ag_batch_norm_then(lm_tensor **out, lm_tensor **mean, lm_tensor **var, lm_tensor *x,
                                lm_tensor *weight, lm_tensor *bias, double eps, lm_tensor *residual,
                                bool relu);

/* Multi-head self-attention in one op: qkv [N, L, 3E] holds the queries,
 * keys and values side by side (a packed input projection's output), each
 * split into `heads` heads of E / heads; out [N, L, E] = softmax(scale q k^T
 * + mask) v per head, the heads side by side, with dropout on the
 * probabilities when keep < 1 (the mask F.dropout would draw, from the same
 * position of the random stream). mask: NULL, or a float32 additive mask
 * (no gradient) broadcasting to [N, heads, L, L]. Needs the
 * backend's self_attention (lm_self_attention_available; the CPU has it):
 * elsewhere compose it from products and softmax. probs: NULL, or it
 * receives the probabilities [N, heads, L, L] before dropout (no gradient
 * flows back through them). */
bool lm_self_attention_available(const lm_tensor *qkv);
lm_status lm_ag_self_attention(lm_tensor **out, lm_tensor *qkv, int heads, lm_tensor *mask,
                               double scale, double keep, lm_tensor **probs);

/* Layer normalisation over x's last normalized_dims dimensions: (x - mean)
 * / sqrt(var + eps) (biased variance) * weight + bias, weight and bias NULL
 * or shaped as those dimensions. Needs the backend's layer_norm
 * (lm_layer_norm_available; the CPU has it): elsewhere compose it. */
bool lm_layer_norm_available(const lm_tensor *x);
lm_status lm_ag_layer_norm(lm_tensor **out, lm_tensor *x, int normalized_dims, lm_tensor *weight,
                           lm_tensor *bias, double eps);

typedef struct lm_conv_options {
    int64_t stride_h, stride_w, pad_h, pad_w;
    /* conv2d only (pooling has neither): 0, from a caller that
     * zero-initialises, reads as 1 */
    int64_t dilation_h, dilation_w, groups;
} lm_conv_options;

/* x [N, C, H, W], weight [O, C / groups, kh, kw], bias [O] or NULL ->
 * [N, O, oh, ow], oh = (H + 2 pad_h - dilation_h (kh - 1) - 1) / stride_h + 1
 * (likewise ow), as torch.nn.functional.conv2d. */
lm_status lm_ag_conv2d(lm_tensor **out, lm_tensor *x, lm_tensor *weight, lm_tensor *bias,
                       const lm_conv_options *opt);
/* Transposed convolution's options: the convolution's (padding is that
 * conv's, removed from each side of the output) and output_padding, rows and
 * columns added at the bottom and right (below the stride or the dilation). */
typedef struct lm_conv_transpose_options {
    lm_conv_options conv;
    int64_t output_pad_h, output_pad_w;
} lm_conv_transpose_options;

/* x [N, C, H, W], weight [C, O / groups, kh, kw], bias [O] or NULL ->
 * [N, O, oh, ow], oh = (H - 1) stride_h - 2 pad_h + dilation_h (kh - 1) +
 * output_pad_h + 1 (likewise ow), as torch.nn.functional.conv_transpose2d:
 * the gradient of conv2d's input (core/conv_transpose.c). */
lm_status lm_ag_conv_transpose2d(lm_tensor **out, lm_tensor *x, lm_tensor *weight, lm_tensor *bias,
                                 const lm_conv_transpose_options *opt);
/* conv2d without bias, then per output channel * scale + shift [+ residual]
 * [then ReLU] (a convolution and the batch norm after it in evaluation),
 * each plane mapped as it is written where the backend can (else conv2d,
 * then lm_channel_affine: the same values). Records no gradient: an input
 * that requires one is an error. */
lm_status lm_conv2d_affine(lm_tensor **out, lm_tensor *x, lm_tensor *w, lm_tensor *scale,
                           lm_tensor *shift, lm_tensor *residual, bool relu,
                           const lm_conv_options *opt);
/* x [N, C, H, W]; max pooling or average pooling (padding counted). */
lm_status lm_ag_pool2d(lm_tensor **out, lm_tensor *x, int64_t kh, int64_t kw,
                       const lm_conv_options *opt, bool max);

/* The checks of one update (shapes, dtypes, devices, contiguity), without
 * updating anything: a caller with many parameters checks them all first. */
lm_status lm_optim_check(const lm_tensor *param, const lm_tensor *grad, const lm_tensor *s1,
                         const lm_tensor *s2);
/* One fused optimiser update (no gradient recorded). */
lm_status lm_optim_step(const lm_optim_params *p, lm_tensor *param, lm_tensor *grad, lm_tensor *s1,
                        lm_tensor *s2);
/* The same for n parameters at once (one launch on a GPU); s1/s2 arrays may
 * be NULL, or hold NULL entries, where the optimiser has no such state. */
lm_status lm_optim_step_many(const lm_optim_params *p, int n, lm_tensor **params, lm_tensor **grads,
                             lm_tensor **s1, lm_tensor **s2);

#ifdef __cplusplus
}
#endif

#endif
