/* Transposed 2-D convolution (torch.nn.functional.conv_transpose2d) as one
 * differentiable op: checks, forward, derivative rule.
 *
 * It is the input gradient of the convolution it transposes. That
 * convolution maps the transposed one's output y [N, O, Ho, Wo] to its input
 * x [N, C, H, W] with the same weight w [C, O / groups, kh, kw] (a conv
 * weight [out = C, in / groups = O / groups, kh, kw]), so the backend's two
 * convolution slots give all three products:
 *   y      = that conv's input gradient for output gradient x,
 *   dL/dx  = that conv of gy (its forward),
 *   dL/dw  = that conv's weight gradient for input gy, output gradient x.
 * With output_padding >= stride (allowed where it is below the dilation)
 * that conv of [Ho, Wo] is taller or wider than x: x is read as if extended
 * by zeros at the bottom and right, and its gradient cut back to [H, W]. */
#include "autograd_rules.h"
#include "autograd_scope.h"
#include "lm_autocast.h"
#include "lm_nn.h"
#include "lm_ops.h"
#include <stdint.h>

#define OP "conv_transpose2d"

/* The output size along one dimension: (in - 1) stride - 2 pad + dilation (k - 1) + output_pad + 1.
 */
static int64_t transposed_size(int64_t in, int64_t k, int64_t stride, int64_t pad, int64_t dilation,
                               int64_t output_pad) {
    return (in - 1) * stride - 2 * pad + dilation * (k - 1) + output_pad + 1;
}

/* The size the transposed convolution's conv gives from `in` (>= x's). */
static int64_t conv_size(int64_t in, int64_t k, int64_t stride, int64_t pad, int64_t dilation) {
    return (in + 2 * pad - dilation * (k - 1) - 1) / stride + 1;
}

static lm_status check_operands(const lm_tensor *x, const lm_tensor *w, const lm_tensor *b) {
    char sx[LM_SHAPE_STR_MAX], sw[LM_SHAPE_STR_MAX];
    const lm_tensor *t[3] = {x, w, b};
    const char *const what[3] = {"input", "weight", "bias"};
    for (int i = 0; i < 3; i++) {
        if (t[i] && t[i]->dtype != LM_FLOAT32)
            return lm_fail(LM_ERR_ARG, OP ": %s must be float32, got %s", what[i],
                           lm_dtype_name(t[i]->dtype));
        if (t[i] && t[i]->storage->device != x->storage->device)
            return lm_fail(LM_ERR_DEVICE, OP ": %s on %s, input on %s", what[i],
                           lm_device_name(t[i]->storage->device),
                           lm_device_name(x->storage->device));
    }
    if (x->ndim != 4)
        return lm_fail(LM_ERR_SHAPE, OP ": input must be [N, C, H, W], got %s",
                       lm_shape_str(x, sx, sizeof sx));
    if (w->ndim != 4)
        return lm_fail(LM_ERR_SHAPE, OP ": weight must be [in, out / groups, kh, kw], got %s",
                       lm_shape_str(w, sw, sizeof sw));
    if (x->shape[1] < 1 || x->shape[2] < 1 || x->shape[3] < 1)
        return lm_fail(LM_ERR_SHAPE, OP ": input %s has no channels, height or width",
                       lm_shape_str(x, sx, sizeof sx));
    if (w->shape[1] < 1 || w->shape[2] < 1 || w->shape[3] < 1)
        return lm_fail(LM_ERR_SHAPE, OP ": weight %s has no output channels or kernel",
                       lm_shape_str(w, sw, sizeof sw));
    return LM_OK;
}

static lm_status check_options(const lm_conv_transpose_options *o) {
    const lm_conv_options *c = &o->conv;
    if (c->stride_h < 1 || c->stride_w < 1)
        return lm_fail(LM_ERR_ARG, OP ": stride must be >= 1, got %lldx%lld",
                       (long long)c->stride_h, (long long)c->stride_w);
    if (c->pad_h < 0 || c->pad_w < 0 || o->output_pad_h < 0 || o->output_pad_w < 0)
        return lm_fail(LM_ERR_ARG,
                       OP ": padding and output_padding must be >= 0, got %lldx%lld and %lldx%lld",
                       (long long)c->pad_h, (long long)c->pad_w, (long long)o->output_pad_h,
                       (long long)o->output_pad_w);
    if (c->dilation_h < 1 || c->dilation_w < 1 || c->groups < 1)
        return lm_fail(LM_ERR_ARG, OP ": dilation and groups must be >= 1, got %lldx%lld and %lld",
                       (long long)c->dilation_h, (long long)c->dilation_w, (long long)c->groups);
    /* torch's rule, per dimension: an extra output row must be one the
     * stride or the dilation leaves between taps */
    if ((o->output_pad_h >= c->stride_h && o->output_pad_h >= c->dilation_h) ||
        (o->output_pad_w >= c->stride_w && o->output_pad_w >= c->dilation_w))
        return lm_fail(LM_ERR_ARG,
                       OP ": output_padding %lldx%lld must be smaller than either the stride "
                          "%lldx%lld or the dilation %lldx%lld",
                       (long long)o->output_pad_h, (long long)o->output_pad_w,
                       (long long)c->stride_h, (long long)c->stride_w, (long long)c->dilation_h,
                       (long long)c->dilation_w);
    return LM_OK;
}

/* All checks; *g gets the geometry of the convolution this op transposes
 * (its input is this op's output). */
static lm_status check(lm_conv_geometry *g, const lm_tensor *x, const lm_tensor *w,
                       const lm_tensor *b, const lm_conv_transpose_options *o) {
    char sx[LM_SHAPE_STR_MAX], sw[LM_SHAPE_STR_MAX];
    LM_TRY(check_operands(x, w, b));
    LM_TRY(check_options(o));
    const lm_conv_options *c = &o->conv;
    int64_t C = x->shape[1], groups = c->groups, O = w->shape[1] * groups;
    if (w->shape[0] != C)
        return lm_fail(LM_ERR_SHAPE,
                       OP ": input has %lld channels, weight expects %lld (input %s, weight %s; "
                          "weights are [in, out / groups, kh, kw])",
                       (long long)C, (long long)w->shape[0], lm_shape_str(x, sx, sizeof sx),
                       lm_shape_str(w, sw, sizeof sw));
    if (C % groups)
        return lm_fail(LM_ERR_SHAPE,
                       OP ": input has %lld channels, which groups = %lld does not divide "
                          "(input %s)",
                       (long long)C, (long long)groups, lm_shape_str(x, sx, sizeof sx));
    if (b && (b->ndim != 1 || b->shape[0] != O))
        return lm_fail(LM_ERR_SHAPE,
                       OP ": bias must be [%lld] (out = %lld x groups = %lld), got %s",
                       (long long)O, (long long)w->shape[1], (long long)groups,
                       lm_shape_str(b, sw, sizeof sw));
    int64_t kh = w->shape[2], kw = w->shape[3];
    int64_t oh = transposed_size(x->shape[2], kh, c->stride_h, c->pad_h, c->dilation_h,
                                 o->output_pad_h),
            ow = transposed_size(x->shape[3], kw, c->stride_w, c->pad_w, c->dilation_w,
                                 o->output_pad_w);
    if (oh < 1 || ow < 1)
        return lm_fail(LM_ERR_SHAPE,
                       OP ": the output would be %lldx%lld from input %s (padding %lldx%lld is too "
                          "large for kernel %lldx%lld)",
                       (long long)oh, (long long)ow, lm_shape_str(x, sx, sizeof sx),
                       (long long)c->pad_h, (long long)c->pad_w, (long long)kh, (long long)kw);
    /* cuDNN and the index arithmetic of the kernels take int sides */
    if (oh > INT32_MAX || ow > INT32_MAX)
        return lm_fail(LM_ERR_SHAPE,
                       OP
                       ": the output would be %lldx%lld from input %s (stride %lldx%lld), larger "
                       "than %d a side",
                       (long long)oh, (long long)ow, lm_shape_str(x, sx, sizeof sx),
                       (long long)c->stride_h, (long long)c->stride_w, INT32_MAX);
    *g = (lm_conv_geometry){.channels = O,
                            .height = oh,
                            .width = ow,
                            .kernel_h = kh,
                            .kernel_w = kw,
                            .stride_h = c->stride_h,
                            .stride_w = c->stride_w,
                            .pad_h = c->pad_h,
                            .pad_w = c->pad_w,
                            .dilation_h = c->dilation_h,
                            .dilation_w = c->dilation_w,
                            .groups = groups};
    g->out_h = conv_size(oh, kh, c->stride_h, c->pad_h, c->dilation_h);
    g->out_w = conv_size(ow, kw, c->stride_w, c->pad_w, c->dilation_w);
    return LM_OK;
}

/* x [N, C, H, W] as the conv's output [N, C, out_h, out_w]: itself, or a
 * copy extended by zeros where output_padding made the conv's larger. */
static lm_tensor *conv_output_of(scope *sc, lm_tensor *x, const lm_conv_geometry *g) {
    if (sc->status || (g->out_h == x->shape[2] && g->out_w == x->shape[3])) return x;
    int64_t shape[4] = {x->shape[0], x->shape[1], g->out_h, g->out_w};
    lm_tensor *big = sc_zeros(sc, x->storage->device, 4, shape), *rows = NULL, *part = NULL;
    if (sc->status == LM_OK) sc_keep(sc, lm_tensor_narrow(&rows, big, 2, 0, x->shape[2]), &rows);
    if (sc->status == LM_OK) sc_keep(sc, lm_tensor_narrow(&part, rows, 3, 0, x->shape[3]), &part);
    if (sc->status == LM_OK) sc->status = lm_copy_(part, x);
    return big;
}

/* inputs x, w, b; saved x and w; node->shape the output's, iparams the
 * geometry (lm_node_geometry reads both back) */
static lm_status rule_conv_transpose2d(lm_node *n, lm_tensor *g, lm_tensor **gi) {
    scope sc = {0};
    lm_tensor *x = sc_saved(&sc, n, 0), *w = sc_saved(&sc, n, 1);
    if (sc.status) return sc_end(&sc);
    const lm_backend *be = sc_backend(&sc, x);
    if (sc.status) return sc_end(&sc);
    lm_conv_geometry geo = lm_node_geometry(n);
    int64_t N = x->shape[0], C = x->shape[1], O = geo.channels, P = geo.height * geo.width;
    int64_t g3s[3] = {N, O, P}, full[4] = {N, C, geo.out_h, geo.out_w};
    int64_t x3s[3] = {N, C, geo.out_h * geo.out_w},
            w2s[2] = {C, w->shape[1] * geo.kernel_h * geo.kernel_w};
    lm_device device = x->storage->device;
    /* under autocast (the forward's mode) the products' operands round as
     * the forward's did; the bias's sum takes the gradient as it is */
    lm_tensor *xc = sc_cast(&sc, x), *wc = sc_cast(&sc, w), *gc = sc_cast(&sc, g);
    lm_tensor *w2 = sc_reshape(&sc, wc, 2, w2s);
    if (n->inputs[0]) { /* the conv of gy, cut back to x's size */
        lm_tensor *gx = N > 0 ? sc_empty(&sc, device, 4, full) : sc_zeros(&sc, device, 4, full);
        if (sc.status == LM_OK && N > 0)
            sc.status = be->conv2d ? be->conv2d(gx, gc, wc, NULL, &geo)
                                   : lm_conv2d_by_images(gx, be, gc, w2, &geo);
        if (geo.out_h != x->shape[2] || geo.out_w != x->shape[3]) {
            lm_tensor *rows = NULL, *part = NULL;
            if (sc.status == LM_OK)
                sc_keep(&sc, lm_tensor_narrow(&rows, gx, 2, 0, x->shape[2]), &rows);
            if (sc.status == LM_OK)
                sc_keep(&sc, lm_tensor_narrow(&part, rows, 3, 0, x->shape[3]), &part);
            gx = sc_contiguous(&sc, part);
        }
        gi[0] = sc_give(&sc, gx);
    }
    if (n->inputs[1]) { /* the conv's weight gradient: input gy, output gradient x */
        lm_tensor *xe = conv_output_of(&sc, xc, &geo), *gw;
        if (be->conv2d_backward) {
            gw = N > 0 ? sc_empty(&sc, device, 4, w->shape) : sc_zeros_like(&sc, w);
            if (sc.status == LM_OK && N > 0)
                sc.status = be->conv2d_backward(NULL, gw, xe, gc, wc, &geo);
        } else { /* added to image by image, from zero */
            lm_tensor *gw2 = sc_zeros(&sc, device, 2, w2s), *xe3 = sc_reshape(&sc, xe, 3, x3s);
            if (sc.status == LM_OK)
                sc.status = lm_conv2d_backward_by_images(NULL, gw2, be, xe3, gc, w2, &geo);
            gw = sc_reshape(&sc, gw2, 4, w->shape);
        }
        gi[1] = sc_give(&sc, gw);
    }
    if (n->inputs[2]) { /* sum over N and the pixels */
        lm_tensor *g3 = sc_reshape(&sc, sc_contiguous(&sc, g), 3, g3s);
        gi[2] =
            sc_give(&sc, sc_reduce(&sc, LM_SUM, sc_reduce(&sc, LM_SUM, g3, 2, false), 0, false));
    }
    return sc_end(&sc);
}

/* y = the conv's input gradient for output gradient x (+ bias per channel) */
static lm_status forward(lm_tensor **out, const lm_conv_geometry *geo, lm_tensor *x, lm_tensor *w,
                         lm_tensor *b) {
    scope sc = {0};
    const lm_backend *be = sc_backend(&sc, x);
    if (sc.status) return sc_end(&sc);
    int64_t N = x->shape[0], O = geo->channels, C = x->shape[1];
    int64_t oshape[4] = {N, O, geo->height, geo->width}, bshape[3] = {O, 1, 1};
    int64_t x3s[3] = {N, C, geo->out_h * geo->out_w},
            w2s[2] = {C, w->shape[1] * geo->kernel_h * geo->kernel_w};
    lm_tensor *xc = sc_cast(&sc, x), *wc = sc_cast(&sc, w);
    lm_tensor *xe = conv_output_of(&sc, xc, geo);
    /* With no weight gradient asked for, the backend reads the conv's input
     * only for its shape (and, on the CPU, its largest exponent, to choose a
     * safe algorithm): the zeroed output serves, and is then overwritten
     * (added to, image by image, without the whole-batch slot). */
    lm_tensor *y = sc_zeros(&sc, x->storage->device, 4, oshape);
    if (sc.status == LM_OK && N > 0 && be->conv2d_backward)
        sc.status = be->conv2d_backward(y, NULL, xe, y, wc, geo);
    else if (N > 0) {
        lm_tensor *xe3 = sc_reshape(&sc, xe, 3, x3s), *w2 = sc_reshape(&sc, wc, 2, w2s);
        if (sc.status == LM_OK)
            sc.status = lm_conv2d_backward_by_images(y, NULL, be, xe3, y, w2, geo);
    }
    if (b) {
        lm_tensor *bv = sc_reshape(&sc, b, 3, bshape);
        if (sc.status == LM_OK) sc.status = lm_binary_into(y, LM_ADD, y, bv);
    }
    if (sc.status == LM_OK) *out = lm_tensor_retain(y);
    return sc_end(&sc);
}

lm_status lm_ag_conv_transpose2d(lm_tensor **out, lm_tensor *x, lm_tensor *w, lm_tensor *b,
                                 const lm_conv_transpose_options *opt) {
    *out = NULL;
    lm_conv_geometry geo;
    LM_TRY(check(&geo, x, w, b, opt));
    LM_TRY(forward(out, &geo, x, w, b));
    lm_tensor *in[3] = {x, w, b};
    if (!lm_any_requires_grad(3, in)) return LM_OK;
    lm_node *node;
    LM_TRY(lm_node_record(&node, out, OP, rule_conv_transpose2d, 3, in));
    lm_node_save(node, 0, x);
    lm_node_save(node, 1, w);
    /* as a conv node keeps its input's shape and geometry (lm_node_geometry) */
    node->ndim = 4;
    for (int d = 0; d < 4; d++) node->shape[d] = (*out)->shape[d];
    node->iparams[0] = geo.kernel_h, node->iparams[1] = geo.kernel_w;
    node->iparams[2] = geo.stride_h, node->iparams[3] = geo.stride_w;
    node->iparams[4] = geo.pad_h, node->iparams[5] = geo.pad_w;
    node->iparams[6] = geo.dilation_h, node->iparams[7] = geo.dilation_w;
    node->iparams[8] = geo.groups;
    return LM_OK;
}
