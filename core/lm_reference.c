/* Reference matmul and conv2d (lm_reference.h): the loops as the maths
 * writes them, each element read through its strides, sums in double. */
#include "lm_reference.h"

static lm_status check_input(const char *op, const char *name, const lm_tensor *t) {
    if (t->storage->device != LM_CPU)
        return lm_fail(LM_ERR_DEVICE, "%s: %s is on %s, the reference runs on the CPU", op, name,
                       lm_device_name(t->storage->device));
    if (t->dtype != LM_FLOAT32)
        return lm_fail(LM_ERR_ARG, "%s: %s must be float32, got %s", op, name,
                       lm_dtype_name(t->dtype));
    return LM_OK;
}

/* ---- matmul --------------------------------------------------------------------------- */

lm_status lm_reference_matmul(lm_tensor **out, const lm_tensor *a, const lm_tensor *b) {
    const char *op = "reference matmul";
    char sa[LM_SHAPE_STR_MAX], sb[LM_SHAPE_STR_MAX];
    *out = NULL;
    LM_TRY(check_input(op, "a", a));
    LM_TRY(check_input(op, "b", b));
    if (a->ndim < 2 || a->ndim > 3 || b->ndim < 2 || b->ndim > 3)
        return lm_fail(LM_ERR_SHAPE, "%s: operands must be 2-D or 3-D, got %s and %s", op,
                       lm_shape_str(a, sa, sizeof sa), lm_shape_str(b, sb, sizeof sb));
    int ra = a->ndim - 2, rb = b->ndim - 2; /* the dimension of the rows */
    int64_t M = a->shape[ra], K = a->shape[ra + 1], N = b->shape[rb + 1];
    int64_t Ba = a->ndim == 3 ? a->shape[0] : 1, Bb = b->ndim == 3 ? b->shape[0] : 1;
    if (b->shape[rb] != K || (Ba != Bb && Ba != 1 && Bb != 1))
        return lm_fail(LM_ERR_SHAPE, "%s: cannot multiply %s by %s", op,
                       lm_shape_str(a, sa, sizeof sa), lm_shape_str(b, sb, sizeof sb));
    int64_t B = Ba > Bb ? Ba : Bb;
    /* strides of a (B, M, K) and b (B, K, N); a shared operand steps 0 over the batch */
    int64_t a_b = Ba == 1 ? 0 : a->strides[0], a_m = a->strides[ra], a_k = a->strides[ra + 1];
    int64_t b_b = Bb == 1 ? 0 : b->strides[0], b_k = b->strides[rb], b_n = b->strides[rb + 1];
    bool batched = a->ndim == 3 || b->ndim == 3;
    int64_t shape3[3] = {B, M, N};
    LM_TRY(lm_tensor_new(out, LM_FLOAT32, LM_CPU, batched ? 3 : 2, batched ? shape3 : shape3 + 1));

    const float *pa = lm_tensor_f32(a), *pb = lm_tensor_f32(b);
    float *po = lm_tensor_f32(*out); /* out is (B, M, N), contiguous */
    for (int64_t bt = 0; bt < B; bt++)
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++) {
                double sum = 0; /* out[bt, i, j] = sum over k of a[bt, i, k] b[bt, k, j] */
                for (int64_t k = 0; k < K; k++)
                    sum += (double)pa[bt * a_b + i * a_m + k * a_k] *
                           (double)pb[bt * b_b + k * b_k + j * b_n];
                po[(bt * M + i) * N + j] = (float)sum;
            }
    return LM_OK;
}

/* ---- conv2d --------------------------------------------------------------------------- */

/* Element [i0, i1, i2, i3] of a 4-D tensor. */
static double at4(const lm_tensor *t, int64_t i0, int64_t i1, int64_t i2, int64_t i3) {
    const int64_t *s = t->strides;
    return lm_tensor_f32(t)[i0 * s[0] + i1 * s[1] + i2 * s[2] + i3 * s[3]];
}

lm_status lm_reference_conv2d(lm_tensor **out, const lm_tensor *x, const lm_tensor *weight,
                              const lm_tensor *bias, const lm_conv_options *opt) {
    const char *op = "reference conv2d";
    char sx[LM_SHAPE_STR_MAX], sw[LM_SHAPE_STR_MAX];
    *out = NULL;
    LM_TRY(check_input(op, "input", x));
    LM_TRY(check_input(op, "weight", weight));
    if (bias) LM_TRY(check_input(op, "bias", bias));
    int64_t G = opt->groups ? opt->groups : 1; /* (0 reads as 1, as in lm_conv_options) */
    int64_t DH = opt->dilation_h ? opt->dilation_h : 1, DW = opt->dilation_w ? opt->dilation_w : 1;
    if (G < 1 || DH < 1 || DW < 1)
        return lm_fail(LM_ERR_ARG, "%s: groups and dilation must be >= 1", op);
    if (x->ndim != 4 || weight->ndim != 4 || x->shape[1] % G || weight->shape[0] % G ||
        x->shape[1] / G != weight->shape[1])
        return lm_fail(LM_ERR_SHAPE,
                       "%s: needs input [N, C, H, W] and weight [O, C / groups, kh, kw] with C "
                       "and O divisible by groups = %lld, got %s and %s",
                       op, (long long)G, lm_shape_str(x, sx, sizeof sx),
                       lm_shape_str(weight, sw, sizeof sw));
    int64_t N = x->shape[0], H = x->shape[2], W = x->shape[3], CG = weight->shape[1];
    int64_t O = weight->shape[0], KH = weight->shape[2], KW = weight->shape[3], OG = O / G;
    int64_t SH = opt->stride_h, SW = opt->stride_w, PH = opt->pad_h, PW = opt->pad_w;
    if (bias && (bias->ndim != 1 || bias->shape[0] != O))
        return lm_fail(LM_ERR_SHAPE, "%s: bias must be [%lld], got %s", op, (long long)O,
                       lm_shape_str(bias, sx, sizeof sx));
    if (SH < 1 || SW < 1 || PH < 0 || PW < 0)
        return lm_fail(LM_ERR_ARG, "%s: stride must be >= 1 and padding >= 0", op);
    if (H + 2 * PH < DH * (KH - 1) + 1 || W + 2 * PW < DW * (KW - 1) + 1)
        return lm_fail(LM_ERR_SHAPE, "%s: kernel %lldx%lld is larger than the padded input %s", op,
                       (long long)KH, (long long)KW, lm_shape_str(x, sx, sizeof sx));
    int64_t OH = (H + 2 * PH - DH * (KH - 1) - 1) / SH + 1;
    int64_t OW = (W + 2 * PW - DW * (KW - 1) - 1) / SW + 1;
    int64_t oshape[4] = {N, O, OH, OW};
    LM_TRY(lm_tensor_new(out, LM_FLOAT32, LM_CPU, 4, oshape));

    float *po = lm_tensor_f32(*out); /* out is (N, O, OH, OW), contiguous */
    for (int64_t n = 0; n < N; n++)
        for (int64_t o = 0; o < O; o++)
            for (int64_t oy = 0; oy < OH; oy++)
                for (int64_t ox = 0; ox < OW; ox++) {
                    double sum = bias ? lm_tensor_f32(bias)[o * bias->strides[0]] : 0.0;
                    int64_t c0 = o / OG * CG; /* output o sees its group's channels */
                    for (int64_t c = 0; c < CG; c++)
                        for (int64_t ky = 0; ky < KH; ky++)
                            for (int64_t kx = 0; kx < KW; kx++) {
                                /* the input pixel under kernel tap (ky, kx) */
                                int64_t iy = oy * SH - PH + ky * DH, ix = ox * SW - PW + kx * DW;
                                if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue; /* pad: 0 */
                                sum += at4(x, n, c0 + c, iy, ix) * at4(weight, o, c, ky, kx);
                            }
                    po[((n * O + o) * OH + oy) * OW + ox] = (float)sum;
                }
    return LM_OK;
}
