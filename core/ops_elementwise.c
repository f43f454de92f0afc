/* Elementwise ops: dtype promotion, device and shape checks, broadcasting. */
#include "lm_ops.h"
#include <math.h>

/* Unsized, so that the assertions catch an op added to lm_backend.h without a name. */
static const char *const unary_names[] = {
    "neg",        "exp",       "log",        "sqrt",      "abs",         "sign",
    "tanh",       "sigmoid",   "relu",       "elu",       "clamp",       "pow",
    "pow",        "square",    "reciprocal", "gelu",      "gelu_tanh",   "round_bfloat16",
    "leaky_relu", "floor",     "ceil",       "round",     "trunc",       "log1p",
    "expm1",      "log2",      "log10",      "rsqrt",     "erf",         "isnan",
    "isinf",      "isfinite",  "softplus",   "hardswish", "hardsigmoid", "mish",
    "selu",       "celu",      "logsigmoid", "softsign",  "tanhshrink",  "hardshrink",
    "softshrink", "threshold", "silu"};
static const char *const binary_names[] = {"add", "sub", "mul", "div", "pow", "maximum", "minimum",
                                           "eq",  "ne",  "lt",  "le",  "gt",  "ge"};
_Static_assert(sizeof unary_names / sizeof *unary_names == LM_UNARY_COUNT, "a name per unary op");
_Static_assert(sizeof binary_names / sizeof *binary_names == LM_BINARY_COUNT,
               "a name per binary op");

const char *lm_unary_name(lm_unary_op op) {
    return op < LM_UNARY_COUNT ? unary_names[op] : "?";
}
const char *lm_binary_name(lm_binary_op op) {
    return op < LM_BINARY_COUNT ? binary_names[op] : "?";
}

static bool unary_needs_float(lm_unary_op op) {
    return !(op == LM_NEG || op == LM_ABS || op == LM_SIGN || op == LM_RELU || op == LM_CLAMP ||
             op == LM_SQUARE || op == LM_FLOOR || op == LM_CEIL || op == LM_ROUND ||
             op == LM_TRUNC);
}

/* int32 stays int32 where the op allows it (a rounding op returns an
 * int32 tensor's values unchanged, as torch), but a clamp to a bound that is
 * not a whole number gives float32 (as torch promotes): an int32 result
 * could not lie within such bounds. */
static lm_dtype unary_result_dtype(lm_unary_op op, lm_dtype x, double p0, double p1) {
    if (unary_needs_float(op)) return LM_FLOAT32;
    if (op == LM_CLAMP && x == LM_INT32 &&
        ((isfinite(p0) && p0 != floor(p0)) || (isfinite(p1) && p1 != floor(p1))))
        return LM_FLOAT32;
    return x;
}

static bool is_comparison(lm_binary_op op) {
    return op >= LM_EQ && op <= LM_GE;
}

static lm_dtype binary_result_dtype(lm_binary_op op, lm_dtype a, lm_dtype b) {
    if (is_comparison(op)) return LM_FLOAT32;
    if (op == LM_DIV || op == LM_POW) return LM_FLOAT32; /* true division, like PyTorch */
    return a == LM_INT32 && b == LM_INT32 ? LM_INT32 : LM_FLOAT32;
}

static lm_status same_device(const char *op, const lm_tensor *a, const lm_tensor *b) {
    if (a->storage->device != b->storage->device)
        return lm_fail(LM_ERR_DEVICE, "%s: operands are on different devices (%s and %s)", op,
                       lm_device_name(a->storage->device), lm_device_name(b->storage->device));
    return LM_OK;
}

static lm_status check_out(const char *op, const lm_tensor *out, int ndim, const int64_t *shape,
                           lm_dtype dtype, const lm_tensor *like) {
    LM_TRY(same_device(op, out, like));
    bool ok = out->ndim == ndim;
    for (int d = 0; ok && d < ndim; d++) ok = out->shape[d] == shape[d];
    if (!ok) {
        char b1[LM_SHAPE_STR_MAX], b2[LM_SHAPE_STR_MAX];
        return lm_fail(LM_ERR_SHAPE, "%s: output has shape %s, the result has shape %s", op,
                       lm_shape_str(out, b1, sizeof b1), lm_dims_str(ndim, shape, b2, sizeof b2));
    }
    if (out->dtype != dtype)
        return lm_fail(LM_ERR_ARG, "%s: output is %s, the result is %s", op,
                       lm_dtype_name(out->dtype), lm_dtype_name(dtype));
    return LM_OK;
}

/* ---- unary ---------------------------------------------------------------------------- */

lm_status lm_unary_into(lm_tensor *out, lm_unary_op op, lm_tensor *x, double p0, double p1) {
    const char *name = lm_unary_name(op);
    LM_TRY(lm_check_computable(name, x));
    lm_dtype dtype = unary_result_dtype(op, x->dtype, p0, p1);
    LM_TRY(check_out(name, out, x->ndim, x->shape, dtype, x));
    const lm_backend *be = lm_backend_of(x);
    if (!be) return LM_ERR_DEVICE;
    return be->unary(op, out, x, p0, p1);
}

lm_status lm_unary(lm_tensor **out, lm_unary_op op, lm_tensor *x, double p0, double p1) {
    *out = NULL;
    lm_dtype dtype = unary_result_dtype(op, x->dtype, p0, p1);
    LM_TRY(lm_tensor_new(out, dtype, x->storage->device, x->ndim, x->shape));
    lm_status s = lm_unary_into(*out, op, x, p0, p1);
    if (s != LM_OK) {
        lm_tensor_release(*out);
        *out = NULL;
    }
    return s;
}

/* ---- binary ------------------------------------------------------------------------------ */

lm_status lm_binary_into(lm_tensor *out, lm_binary_op op, lm_tensor *a, lm_tensor *b) {
    const char *name = lm_binary_name(op);
    LM_TRY(lm_check_computable(name, a));
    LM_TRY(lm_check_computable(name, b));
    LM_TRY(same_device(name, a, b));
    int ndim;
    int64_t shape[LM_MAX_DIMS];
    LM_TRY(lm_broadcast_shape(name, a, b, &ndim, shape));
    LM_TRY(check_out(name, out, ndim, shape, binary_result_dtype(op, a->dtype, b->dtype), a));
    const lm_backend *be = lm_backend_of(a);
    if (!be) return LM_ERR_DEVICE;
    lm_tensor *ea = NULL, *eb = NULL;
    lm_status s = lm_tensor_expand(&ea, a, ndim, shape);
    if (s == LM_OK) s = lm_tensor_expand(&eb, b, ndim, shape);
    if (s == LM_OK) s = be->binary(op, out, ea, eb);
    lm_tensor_release(ea);
    lm_tensor_release(eb);
    return s;
}

lm_status lm_binary(lm_tensor **out, lm_binary_op op, lm_tensor *a, lm_tensor *b) {
    *out = NULL;
    const char *name = lm_binary_name(op);
    LM_TRY(same_device(name, a, b));
    int ndim;
    int64_t shape[LM_MAX_DIMS];
    LM_TRY(lm_broadcast_shape(name, a, b, &ndim, shape));
    LM_TRY(lm_tensor_new(out, binary_result_dtype(op, a->dtype, b->dtype), a->storage->device, ndim,
                         shape));
    lm_status s = lm_binary_into(*out, op, a, b);
    if (s != LM_OK) {
        lm_tensor_release(*out);
        *out = NULL;
    }
    return s;
}

static lm_dtype scalar_result_dtype(lm_binary_op op, lm_dtype a, double s) {
    /* in range first: converting a double int32 cannot hold is undefined */
    bool integral = s >= INT32_MIN && s <= INT32_MAX && s == (double)(int32_t)s;
    return binary_result_dtype(op, a, integral ? LM_INT32 : LM_FLOAT32);
}

lm_status lm_binary_scalar_into(lm_tensor *out, lm_binary_op op, lm_tensor *a, double s,
                                bool scalar_first) {
    const char *name = lm_binary_name(op);
    LM_TRY(lm_check_computable(name, a));
    LM_TRY(check_out(name, out, a->ndim, a->shape, scalar_result_dtype(op, a->dtype, s), a));
    /* x ^ s is the unary power of every backend, whose x ^ 2 is x * x
     * (a powf per element is 50x slower on the CPU) */
    if (op == LM_POW && !scalar_first && a->dtype == LM_FLOAT32)
        return lm_unary_into(out, LM_POW_SCALAR, a, s, 0);
    const lm_backend *be = lm_backend_of(a);
    if (!be) return LM_ERR_DEVICE;
    return be->binary_scalar(op, out, a, s, scalar_first);
}

lm_status lm_binary_scalar(lm_tensor **out, lm_binary_op op, lm_tensor *a, double s,
                           bool scalar_first) {
    *out = NULL;
    LM_TRY(lm_tensor_new(out, scalar_result_dtype(op, a->dtype, s), a->storage->device, a->ndim,
                         a->shape));
    lm_status st = lm_binary_scalar_into(*out, op, a, s, scalar_first);
    if (st != LM_OK) {
        lm_tensor_release(*out);
        *out = NULL;
    }
    return st;
}

/* ---- where -------------------------------------------------------------------------------- */

lm_status lm_where(lm_tensor **out, lm_tensor *cond, lm_tensor *a, lm_tensor *b) {
    *out = NULL;
    LM_TRY(lm_check_computable("where", cond));
    LM_TRY(lm_check_computable("where", a));
    LM_TRY(lm_check_computable("where", b));
    LM_TRY(same_device("where", cond, a));
    LM_TRY(same_device("where", a, b));
    int nd1, ndim;
    int64_t s1[LM_MAX_DIMS], shape[LM_MAX_DIMS];
    LM_TRY(lm_broadcast_shape("where", a, b, &nd1, s1));
    lm_tensor ab = *a; /* a shape-only stand-in for the broadcast of a and b */
    ab.ndim = nd1;
    for (int d = 0; d < nd1; d++) ab.shape[d] = s1[d];
    LM_TRY(lm_broadcast_shape("where", cond, &ab, &ndim, shape));
    lm_dtype dtype = a->dtype == LM_INT32 && b->dtype == LM_INT32 ? LM_INT32 : LM_FLOAT32;
    const lm_backend *be = lm_backend_of(a);
    if (!be) return LM_ERR_DEVICE;
    lm_tensor *ec = NULL, *ea = NULL, *eb = NULL;
    lm_status s = lm_tensor_new(out, dtype, a->storage->device, ndim, shape);
    if (s == LM_OK) s = lm_tensor_expand(&ec, cond, ndim, shape);
    if (s == LM_OK) s = lm_tensor_expand(&ea, a, ndim, shape);
    if (s == LM_OK) s = lm_tensor_expand(&eb, b, ndim, shape);
    if (s == LM_OK) s = be->where(*out, ec, ea, eb);
    lm_tensor_release(ec);
    lm_tensor_release(ea);
    lm_tensor_release(eb);
    if (s != LM_OK) {
        lm_tensor_release(*out);
        *out = NULL;
    }
    return s;
}
