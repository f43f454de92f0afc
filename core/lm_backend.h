/* The backend interface: one table of function pointers per device.
 *
 * Ops (lm_ops.h) check arguments and shapes, allocate results and then reach
 * the device only through this table, so a new device is a new table, never
 * an `if (cuda)` inside an op. Every entry receives tensors that already live
 * on the backend's device and whose shapes were checked by the caller:
 *   - elementwise entries get operands with exactly the output's shape
 *     (broadcast operands arrive as expanded views with stride 0);
 *   - strided (non-contiguous) operands are legal everywhere unless noted. */
#ifndef LM_BACKEND_H
#define LM_BACKEND_H

#include <stdbool.h>

#include "lm_host_device.h"
#include "lm_tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum lm_unary_op {
    LM_NEG,
    LM_EXP,
    LM_LOG,
    LM_SQRT,
    LM_ABS,
    LM_SIGN,
    LM_TANH,
    LM_SIGMOID,
    LM_RELU,
    LM_ELU,         /* p0 = alpha */
    LM_CLAMP,       /* p0 = min, p1 = max */
    LM_POW_SCALAR,  /* x ^ p0 */
    LM_RPOW_SCALAR, /* p0 ^ x */
    LM_SQUARE,
    LM_RECIPROCAL,
    LM_GELU,       /* x Phi(x) = 0.5 x (1 + erf(x / sqrt 2)), exact */
    LM_GELU_TANH,  /* 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), PyTorch's 'tanh' form */
    LM_ROUND_BF16, /* the nearest bfloat16, kept in float32 (ties to even): autocast's operands */
    LM_LEAKY_RELU, /* p0 = negative_slope */
    LM_FLOOR,
    LM_CEIL,
    LM_ROUND, /* half to even, as torch.round */
    LM_TRUNC,
    LM_LOG1P,
    LM_EXPM1,
    LM_LOG2,
    LM_LOG10,
    LM_RSQRT,
    LM_ERF,
    LM_ISNAN,       /* 1 where true, 0 where false (float32), as the comparisons */
    LM_ISINF,       /* +-inf */
    LM_ISFINITE,    /* neither inf nor NaN */
    LM_SOFTPLUS,    /* log(1 + e^(p0 x)) / p0, x where p0 x > p1: p0 = beta, p1 = threshold */
    LM_HARDSWISH,   /* x relu6(x + 3) / 6 */
    LM_HARDSIGMOID, /* relu6(x + 3) / 6 */
    LM_MISH,        /* x tanh(softplus(x)) */
    LM_SELU,        /* scale elu(x, alpha), Klambauer et al.'s constants */
    LM_CELU,        /* x where x > 0, else p0 (e^(x / p0) - 1): p0 = alpha */
    LM_LOGSIGMOID,  /* log(sigmoid(x)) = -softplus(-x), without overflow */
    LM_SOFTSIGN,    /* x / (1 + |x|) */
    LM_TANHSHRINK,  /* x - tanh(x) */
    LM_HARDSHRINK,  /* 0 where -p0 <= x <= p0, else x: p0 = lambd */
    LM_SOFTSHRINK,  /* x - p0 above p0, x + p0 below -p0, else 0: p0 = lambd */
    LM_THRESHOLD,   /* p1 where x <= p0, else x: p0 = threshold, p1 = value */
    LM_SILU,        /* x sigmoid(x) (swish): one pass instead of a sigmoid and a product */
    LM_UNARY_COUNT
} lm_unary_op;

typedef enum lm_binary_op {
    LM_ADD,
    LM_SUB,
    LM_MUL,
    LM_DIV,
    LM_POW,
    LM_MAXIMUM,
    LM_MINIMUM,
    LM_EQ,
    LM_NE,
    LM_LT,
    LM_LE,
    LM_GT,
    LM_GE, /* 1 where true, 0 where false */
    LM_BINARY_COUNT
} lm_binary_op;

typedef enum lm_reduce_op {
    LM_SUM,
    LM_MEAN,
    LM_MAX,
    LM_MIN,
    LM_ARGMAX,
    LM_ARGMIN,
    LM_VAR, /* unbiased (n - 1) */
    LM_REDUCE_COUNT
} lm_reduce_op;

typedef enum lm_random_kind {
    LM_RANDOM_UNIFORM,  /* in [p0, p1) */
    LM_RANDOM_NORMAL,   /* mean p0, std p1 */
    LM_RANDOM_BERNOULLI /* p1 with probability p0, else 0 */
} lm_random_kind;

/* 2-D convolution / pooling geometry (one image: C x H x W). Kernel tap
 * (ki, kj) of output (oi, oj) reads input (oi * stride_h - pad_h + ki *
 * dilation_h, likewise across). The channels fall into `groups` groups of
 * channels / groups, each convolved with its own out_channels / groups
 * filters (torch's weight [O, C / groups, kh, kw]). Dilation and groups of
 * 0, from a caller that zero-initialises, read as 1 (lm_conv_dilation_h,
 * lm_conv_dilation_w, lm_conv_groups); pooling has neither. */
typedef struct lm_conv_geometry {
    int64_t channels, height, width; /* input */
    int64_t kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w;
    int64_t out_h, out_w;
    int64_t dilation_h, dilation_w, groups;
} lm_conv_geometry;

static inline LM_HOST_DEVICE int64_t lm_conv_dilation_h(const lm_conv_geometry *g) {
    return g->dilation_h > 1 ? g->dilation_h : 1;
}
static inline LM_HOST_DEVICE int64_t lm_conv_dilation_w(const lm_conv_geometry *g) {
    return g->dilation_w > 1 ? g->dilation_w : 1;
}
static inline LM_HOST_DEVICE int64_t lm_conv_groups(const lm_conv_geometry *g) {
    return g->groups > 1 ? g->groups : 1;
}
/* Whether the layer is a plain convolution: no dilation, one group (the
 * kernels written for those alone check this). */
static inline LM_HOST_DEVICE bool lm_conv_is_plain(const lm_conv_geometry *g) {
    return lm_conv_dilation_h(g) == 1 && lm_conv_dilation_w(g) == 1 && lm_conv_groups(g) == 1;
}

typedef enum lm_optimizer_kind {
    LM_OPT_SGD,
    LM_OPT_ADAM,
    LM_OPT_ADAMW,
    LM_OPT_RMSPROP
} lm_optimizer_kind;

typedef struct lm_optim_params {
    lm_optimizer_kind kind;
    double lr, weight_decay;
    double momentum;     /* SGD */
    bool nesterov;       /* SGD */
    double beta1, beta2; /* Adam(W) */
    double alpha;        /* RMSprop smoothing */
    double eps;
    int64_t step; /* 1-based step count, for Adam's bias correction */
} lm_optim_params;

/* The settings of a fused self-attention (self_attention below). */
typedef struct lm_attention_params {
    int heads;
    double scale;            /* of the scores q k^T */
    double keep;             /* 1 - the attention dropout's p; 1: no dropout */
    lm_tensor *dropout_mask; /* [N, heads, L, L] when keep < 1, else NULL */
    uint64_t seed, offset;   /* the mask's position in the random stream */
} lm_attention_params;

/* What follows a Linear layer's product in lm_ag_linear_act: an activation
 * (LM_ELU with alpha > 0, LM_RELU, or LM_UNARY_COUNT for none) and an
 * inverted dropout (keep < 1) drawn at Philox block `offset` under `seed`. */
typedef struct lm_act_params {
    lm_unary_op op;
    double alpha, keep;
    uint64_t seed, offset;
} lm_act_params;

typedef struct lm_backend {
    const char *name;
    lm_device device;
    void *(*alloc)(size_t bytes);
    void (*free)(void *ptr, size_t bytes);

    /* dst[i] = src[i] for tensors of the same shape, converting dtype. */
    lm_status (*copy)(lm_tensor *dst, const lm_tensor *src);
    lm_status (*fill)(lm_tensor *dst, double value);
    /* Copies n elements of dtype between host memory and a contiguous tensor. */
    lm_status (*upload)(lm_tensor *dst, const void *host);
    lm_status (*download)(void *host, const lm_tensor *src);

    lm_status (*unary)(lm_unary_op op, lm_tensor *out, const lm_tensor *x, double p0, double p1);
    lm_status (*binary)(lm_binary_op op, lm_tensor *out, const lm_tensor *a, const lm_tensor *b);
    /* out = a op s, or s op a when `scalar_first`. */
    lm_status (*binary_scalar)(lm_binary_op op, lm_tensor *out, const lm_tensor *a, double s,
                               bool scalar_first);
    /* The gradient of a unary op in one pass: gx = g * f'(x), with the
     * derivative written from x and y = f(x) (the ops lm_unary_has_fused_grad
     * names in lm_scalar_ops.h: ELU, SIGMOID, TANH, RELU, EXP, GELU, GELU_TANH,
     * LEAKY_RELU);
     * all four tensors have the same shape. */
    lm_status (*unary_backward)(lm_unary_op op, lm_tensor *gx, const lm_tensor *g,
                                const lm_tensor *x, const lm_tensor *y, double p0);
    /* out = cond != 0 ? a : b */
    lm_status (*where)(lm_tensor *out, const lm_tensor *cond, const lm_tensor *a,
                       const lm_tensor *b);

    /* Reduces x over dimension `dim` into out, whose shape is x's with that
     * dimension removed (keepdim is a view question for the caller). With
     * dim < 0 reduces everything into a one-element out. ARGMAX/ARGMIN write
     * 0-based int32 indices; MAX/MIN also write them to `indices` if given. */
    lm_status (*reduce)(lm_reduce_op op, lm_tensor *out, lm_tensor *indices, const lm_tensor *x,
                        int dim);

    /* out = alpha * a @ b + beta * out for 3-D tensors (batch, rows, cols);
     * a and b may have batch size 1 (broadcast). With a bias (a contiguous
     * [cols] tensor, or NULL) out = alpha * a @ b + bias on every row, and
     * beta is ignored: a layer's bias added where the product is written. */
    lm_status (*matmul)(lm_tensor *out, const lm_tensor *a, const lm_tensor *b, float alpha,
                        float beta, const lm_tensor *bias);

    /* Fills `out` with counter-based random numbers under key `seed`:
     * element i (row-major order of out) uses word i % 4 of Philox block
     * offset + i / 4 (normals: the pair i % 2 of block offset + i / 2), so
     * the numbers depend neither on threads nor on device. */
    lm_status (*random)(lm_random_kind kind, lm_tensor *out, uint64_t seed, uint64_t offset,
                        double p0, double p1);
    /* Dropout in one pass over contiguous tensors: mask drawn exactly as
     * random(LM_RANDOM_BERNOULLI, mask, seed, offset, keep, 1 / keep) draws
     * it, and out = x * mask. */
    lm_status (*dropout)(lm_tensor *out, lm_tensor *mask, const lm_tensor *x, uint64_t seed,
                         uint64_t offset, double keep);

    /* ---- layer kernels (contiguous operands) ---- */
    /* (log-)softmax over the last dimension of x viewed as [rows, cols]. */
    lm_status (*softmax)(lm_tensor *out, const lm_tensor *x, bool log);
    /* gx = dL/dx from g = dL/dy and y = (log-)softmax(x). */
    lm_status (*softmax_backward)(lm_tensor *gx, const lm_tensor *g, const lm_tensor *y, bool log);
    /* cols [C*kh*kw, oh*ow] from one image x [C, H, W]. */
    lm_status (*im2col)(lm_tensor *cols, const lm_tensor *x, const lm_conv_geometry *geo);
    /* gx [C, H, W] += the image that cols scatter back to. */
    lm_status (*col2im)(lm_tensor *gx, const lm_tensor *cols, const lm_conv_geometry *geo);
    /* Max (argmax != NULL, int32 index within each H*W plane) or average
     * pooling (padding counted) of x [N*C, H, W] into out [N*C, oh, ow]. */
    lm_status (*pool2d)(lm_tensor *out, lm_tensor *argmax, const lm_tensor *x,
                        const lm_conv_geometry *geo);
    lm_status (*pool2d_backward)(lm_tensor *gx, const lm_tensor *g, const lm_tensor *argmax,
                                 const lm_conv_geometry *geo);
    /* out[i] = x[idx[i]] along dimension 0; x and out contiguous, idx int32
     * 0-based and checked by the caller. */
    lm_status (*index_select)(lm_tensor *out, const lm_tensor *x, const lm_tensor *idx);
    /* Along dimension `dim`: out[.., i, ..] = x[.., idx[.., i, ..], ..] (torch.gather). out and
     * idx contiguous with the same shape, which is x's or smaller in the other dimensions; x
     * float32 or int32, any strides; idx int32 0-based, checked by the caller. */
    lm_status (*gather)(lm_tensor *out, const lm_tensor *x, const lm_tensor *idx, int dim);
    /* The reverse: out[.., idx[.., i, ..], ..] += src[.., i, ..], duplicates accumulating
     * (gather's gradient). out float32 contiguous; idx and src contiguous, the same shape
     * (out's or smaller in the other dimensions); idx 0-based, checked by the caller. */
    lm_status (*scatter_add)(lm_tensor *out, const lm_tensor *idx, const lm_tensor *src, int dim);
    /* Inclusive prefix sums of x along `dim` into out (contiguous, the same shape and dtype,
     * float32 summed in double or int32), from the last element back when `reverse`. */
    lm_status (*cumsum)(lm_tensor *out, const lm_tensor *x, int dim, bool reverse);
    /* out[.., k, ..] = sum_t w[k, t] x[.., idx[k, t], ..] along `dim` (lm_resample): x and
     * out float32 contiguous, idx int32 0-based [m, taps] and w float32 [m, taps] contiguous,
     * checked by the caller. */
    lm_status (*resample)(lm_tensor *out, const lm_tensor *x, const lm_tensor *idx,
                          const lm_tensor *w, int dim);
    /* Its gradient: gx (contiguous, the input's shape, written whole) gets w[k, t] g[.., k, ..]
     * at idx[k, t], the taps of each line added in order (the same sums on every device). */
    lm_status (*resample_backward)(lm_tensor *gx, const lm_tensor *g, const lm_tensor *idx,
                                   const lm_tensor *w, int dim);
    /* Both of the last two dimensions at once (lm_resample2d): x and out float32 contiguous,
     * the tables as in resample. The backward writes gx (the input's shape) whole. */
    lm_status (*resample2d)(lm_tensor *out, const lm_tensor *x, const lm_tensor *idx_h,
                            const lm_tensor *w_h, const lm_tensor *idx_w, const lm_tensor *w_w);
    lm_status (*resample2d_backward)(lm_tensor *gx, const lm_tensor *g, const lm_tensor *idx_h,
                                     const lm_tensor *w_h, const lm_tensor *idx_w,
                                     const lm_tensor *w_w);
    /* The k smallest (or largest) of each row of x [rows, cols] (contiguous),
     * sorted: values [rows, k] and 0-based int32 indices [rows, k]. */
    lm_status (*topk)(lm_tensor *values, lm_tensor *indices, const lm_tensor *x, int64_t k,
                      bool largest);
    /* out [N, C] float: 1 at (i, labels[i]); labels int32 in [0, C), checked by the caller. */
    lm_status (*one_hot)(lm_tensor *out, const lm_tensor *labels);
    /* One fused optimiser update of a parameter from its gradient and state
     * tensors (SGD: s1 = momentum buffer; Adam: s1 = m, s2 = v; RMSprop: s1 = v). */
    lm_status (*optim_step)(const lm_optim_params *p, lm_tensor *param, const lm_tensor *grad,
                            lm_tensor *s1, lm_tensor *s2);

    /* ---- optional: the update of many parameters in one launch (NULL: one
     * optim_step each); same contract as optim_step, s1/s2 entries may be NULL. */
    lm_status (*optim_step_many)(const lm_optim_params *p, int n, lm_tensor *const *params,
                                 const lm_tensor *const *grads, lm_tensor *const *s1,
                                 lm_tensor *const *s2);

    /* ---- optional: the squared error by row in one pass (NULL: subtract,
     * square and sum apart). diff = a - b and rows[i] = the sum of row i's
     * squared differences, for contiguous a, b, diff viewed as [rows, cols]. */
    lm_status (*sq_diff_rows)(lm_tensor *diff, lm_tensor *rows, const lm_tensor *a,
                              const lm_tensor *b);

    /* ---- optional: the multi-scale MMD of sample sets z [N, D] and p [M, D],
     * both contiguous, over all pairs (NULL: the caller composes it of
     * elementwise ops). *value = mean k(z, z') + mean k(p, p') - 2 mean
     * k(z, p) with k = sum_b exp(scales[b] * ||a - c||^2), summed in double,
     * written into the one-element float32 `value` on the device (no read
     * back: a GPU step need not wait for it); gz [N, D] and gp [M, D], each
     * may be NULL, get its gradients with respect to z and p. */
    lm_status (*mmd)(lm_tensor *value, lm_tensor *gz, lm_tensor *gp, const lm_tensor *z,
                     const lm_tensor *p, const float *scales, int nscales);

    /* ---- optional: batch normalisation in training mode (NULL: the caller
     * composes it of elementwise ops). x and y [N, C, S] contiguous; mean and
     * var [C] get the batch mean and biased variance; y = (x - mean) /
     * sqrt(var + eps) * w + b, w and b may be NULL; then y += residual
     * (contiguous [N, C, S], or NULL) and y = max(y, 0) when relu, each
     * rounded as its op would: what follows a batch norm in a residual
     * block. The backward pass gives gx, gw, gb (each may be NULL) from g
     * [N, C, S] (at the batch norm's own output) and the saved statistics. */
    lm_status (*batch_norm)(lm_tensor *y, lm_tensor *mean, lm_tensor *var, const lm_tensor *x,
                            const lm_tensor *w, const lm_tensor *b, double eps,
                            const lm_tensor *residual, bool relu);
    lm_status (*batch_norm_backward)(lm_tensor *gx, lm_tensor *gw, lm_tensor *gb,
                                     const lm_tensor *g, const lm_tensor *x, const lm_tensor *mean,
                                     const lm_tensor *var, const lm_tensor *w, double eps);

    /* ---- optional: a per-channel affine map in one pass (NULL: a product
     * and a sum apart). x and y [N, C, S] contiguous, scale and shift [C]:
     * y = x * scale[c] + shift[c], rounded after the product and after the
     * sum as the two ops would (no fused multiply-add): a batch norm in
     * evaluation; then y += residual (contiguous [N, C, S], or NULL) and
     * y = max(y, 0) when relu, each rounded as its op would. */
    lm_status (*channel_affine)(lm_tensor *y, const lm_tensor *x, const lm_tensor *scale,
                                const lm_tensor *shift, const lm_tensor *residual, bool relu);

    /* ---- optional: two independent products (NULL: one after the other) ---- */
    /* out1 = a1 @ b1 and out2 = a2 @ b2, each as matmul with batch 1, alpha 1
     * and beta 0: a layer's two gradients, which the CPU runs side by side
     * when each is too small to split well over the threads. */
    lm_status (*matmul_pair)(lm_tensor *out1, const lm_tensor *a1, const lm_tensor *b1,
                             lm_tensor *out2, const lm_tensor *a2, const lm_tensor *b2);

    /* ---- optional: a Linear layer, its activation and its dropout in one
     * pass (NULL: the caller composes matmul, unary and dropout) ---- */
    /* a [M, N] = act(x [M, K] @ w [N, K]^T + bias), each block activated as
     * it is written; with mask (NULL: no dropout) drawn as dropout draws it,
     * y = a * mask (y is a when there is no mask). x, w contiguous. */
    lm_status (*linear_act)(lm_tensor *y, lm_tensor *a, lm_tensor *mask, const lm_tensor *x,
                            const lm_tensor *w, const lm_tensor *bias, const lm_act_params *act);
    /* gz = g * mask * act'(a) in one pass (mask may be NULL): the gradient
     * at the product, from the activation's output a (a > 0 where its
     * input was, for ELU with alpha > 0 and ReLU). */
    lm_status (*linear_act_backward)(lm_tensor *gz, const lm_tensor *g, const lm_tensor *a,
                                     const lm_tensor *mask, lm_unary_op op, double alpha);

    /* ---- optional: whole-batch convolution (NULL: im2col + matmul per image) ---- */
    /* out [N, O, oh, ow] = x [N, C, H, W] convolved with w [O, C, kh, kw], plus
     * bias (NULL, or a contiguous [O]) on every output of its channel. */
    lm_status (*conv2d)(lm_tensor *out, const lm_tensor *x, const lm_tensor *w,
                        const lm_tensor *bias, const lm_conv_geometry *geo);
    /* (optional) conv2d without bias, then per output channel o: * scale[o]
     * + shift[o] (+ residual, [N, O, oh, ow]) (then ReLU), each plane as it
     * is written: the values of conv2d then channel_affine, in one pass. */
    lm_status (*conv2d_affine)(lm_tensor *out, const lm_tensor *x, const lm_tensor *w,
                               const lm_tensor *scale, const lm_tensor *shift,
                               const lm_tensor *residual, bool relu, const lm_conv_geometry *geo);
    /* gx = dL/dx and gw = dL/dw from g = dL/dout (either output may be NULL).
     * With gw NULL, x is read for its shape (and, on the CPU, its largest
     * exponent), never for its values, and may share gx's memory:
     * conv_transpose2d passes its own zeroed output as x. */
    lm_status (*conv2d_backward)(lm_tensor *gx, lm_tensor *gw, const lm_tensor *g,
                                 const lm_tensor *x, const lm_tensor *w,
                                 const lm_conv_geometry *geo);

    /* ---- optional: multi-head self-attention in one op (NULL: the caller
     * composes products, softmax, dropout and transposes) ---- */
    /* qkv [N, L, 3E] contiguous holds the queries, keys and values side by
     * side, each E = heads x D wide; probs [N, heads, L, L] = softmax(scale
     * q k^T + mask), out [N, L, E] = (probs * dropout mask) v with the heads
     * side by side. mask: NULL, or a 4-D view readable as [N, heads, L, L]
     * (strides 0 where it broadcasts). p->dropout_mask (NULL when keep is
     * 1): [N, heads, L, L], drawn as lm_ag_dropout draws a mask of probs'
     * shape at p->seed, p->offset. */
    lm_status (*self_attention)(lm_tensor *out, lm_tensor *probs, const lm_tensor *qkv,
                                const lm_tensor *mask, const lm_attention_params *p);
    /* gqkv [N, L, 3E] from g = dL/dout [N, L, E] (contiguous), qkv, probs
     * and p->dropout_mask */
    lm_status (*self_attention_backward)(lm_tensor *gqkv, const lm_tensor *g, const lm_tensor *qkv,
                                         const lm_tensor *probs, const lm_attention_params *p);

    /* ---- optional: layer normalisation in one op (NULL: composed) ---- */
    /* y = (x - mean) / sqrt(var + eps) * w + b over each of stats' rows of
     * x (the last numel(x) / rows values, contiguous), w and b NULL or one
     * value a column; stats [rows, 2] = mean, sqrt(var + eps). */
    lm_status (*layer_norm)(lm_tensor *y, lm_tensor *stats, const lm_tensor *x, const lm_tensor *w,
                            const lm_tensor *b, double eps);
    /* gx, and the column sums gw (NULL: not wanted) and gb (NULL: not
     * wanted), from g (contiguous), x, stats and w (NULL: none) */
    lm_status (*layer_norm_backward)(lm_tensor *gx, lm_tensor *gw, lm_tensor *gb,
                                     const lm_tensor *g, const lm_tensor *x, const lm_tensor *stats,
                                     const lm_tensor *w);
} lm_backend;

/* ---- the registry (lm_backend.c) ---- */
/* The backend of a device, or NULL with lm_last_error saying why (LM_ERR_DEVICE:
 * no backend registered, or the device is unavailable). Callers check:
 *     const lm_backend *be = lm_backend_of(x);
 *     if (!be) return LM_ERR_DEVICE; */
const lm_backend *lm_backend_get(lm_device device);
/* The backend of the device that holds t's storage (the same contract). */
const lm_backend *lm_backend_of(const lm_tensor *t);
/* The CPU table (cpu_backend.c): always present. */
const lm_backend *lm_cpu_backend(void);

#ifdef __cplusplus
}
#endif

#endif
