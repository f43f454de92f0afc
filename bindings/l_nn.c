/* The C side of lm.nn.functional and lm.optim: argument checking and
 * translation (1-based labels and dims) only. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "l_common.h"
#include "lm_autograd.h"
#include "lm_nn.h"
#include "lm_ops.h"

/* F.linear(x, w [, b]) */
static int f_linear(lua_State *L) {
    lm_tensor *x = l_check_tensor(L, 1), *w = l_check_tensor(L, 2);
    lm_tensor *b = lua_isnoneornil(L, 3) ? NULL : l_check_tensor(L, 3);
    l_check(L, lm_ag_linear(l_push_slot(L), x, w, b));
    return 1;
}

/* F._linear_act(x, w, b|nil, act, alpha, keep): act 'elu', 'relu' or 'none';
 * the fused Linear, activation and dropout that nn.Sequential runs */
static int f_linear_act(lua_State *L) {
    static const char *const acts[] = {"elu", "relu", "none", NULL};
    static const lm_unary_op ops[] = {LM_ELU, LM_RELU, LM_UNARY_COUNT};
    lm_tensor *x = l_check_tensor(L, 1), *w = l_check_tensor(L, 2);
    lm_tensor *b = lua_isnoneornil(L, 3) ? NULL : l_check_tensor(L, 3);
    lm_unary_op act = ops[luaL_checkoption(L, 4, NULL, acts)];
    double alpha = luaL_optnumber(L, 5, 1.0), keep = luaL_optnumber(L, 6, 1.0);
    l_check(L, lm_ag_linear_act(l_push_slot(L), x, w, b, act, alpha, keep));
    return 1;
}

/* F._self_attention(qkv, heads, mask|nil, scale [, keep = 1 [, with_probs = false]]):
 * multi-head self-attention in one op, where lm_self_attention_available(qkv)
 * (nn.MultiheadAttention checks F._self_attention_available first); with
 * with_probs also the probabilities before dropout (no gradient) */
static int f_self_attention(lua_State *L) {
    lm_tensor *qkv = l_check_tensor(L, 1);
    lua_Integer heads = luaL_checkinteger(L, 2);
    luaL_argcheck(L, heads >= 1 && heads <= INT_MAX, 2, "heads must be a positive int");
    lm_tensor *mask = lua_isnoneornil(L, 3) ? NULL : l_check_tensor(L, 3);
    double scale = luaL_checknumber(L, 4), keep = luaL_optnumber(L, 5, 1.0);
    bool with_probs = lua_toboolean(L, 6);
    lm_tensor **out = l_push_slot(L), **probs = with_probs ? l_push_slot(L) : NULL;
    l_check(L, lm_ag_self_attention(out, qkv, (int)heads, mask, scale, keep, probs));
    return with_probs ? 2 : 1;
}

static int f_self_attention_available(lua_State *L) {
    lua_pushboolean(L, lm_self_attention_available(l_check_tensor(L, 1)));
    return 1;
}

/* F._layer_norm(x, normalized_dims, w|nil, b|nil, eps): one op where
 * lm_layer_norm_available(x) (F.layer_norm checks F._layer_norm_available) */
static int f_layer_norm(lua_State *L) {
    lm_tensor *x = l_check_tensor(L, 1);
    lua_Integer dims = luaL_checkinteger(L, 2);
    luaL_argcheck(L, dims >= 1 && dims <= LM_MAX_DIMS, 2, "normalised dimensions out of range");
    lm_tensor *w = lua_isnoneornil(L, 3) ? NULL : l_check_tensor(L, 3);
    lm_tensor *b = lua_isnoneornil(L, 4) ? NULL : l_check_tensor(L, 4);
    l_check(L, lm_ag_layer_norm(l_push_slot(L), x, (int)dims, w, b, luaL_checknumber(L, 5)));
    return 1;
}

static int f_layer_norm_available(lua_State *L) {
    lua_pushboolean(L, lm_layer_norm_available(l_check_tensor(L, 1)));
    return 1;
}

static int softmax(lua_State *L, bool log) {
    lm_tensor *x = l_check_tensor(L, 1);
    int dim = lua_isnoneornil(L, 2) ? (x->ndim ? x->ndim - 1 : 0)
                                    : l_check_dim(L, 2, x->ndim, log ? "log_softmax" : "softmax");
    l_check(L, lm_ag_softmax(l_push_slot(L), x, dim, log));
    return 1;
}
static int f_softmax(lua_State *L) {
    return softmax(L, false);
}

/* F._dropout(x, keep): mask and product in one pass (F.dropout checks p) */
static int f_dropout(lua_State *L) {
    lm_tensor *x = l_check_tensor(L, 1);
    l_check(L, lm_ag_dropout(l_push_slot(L), x, luaL_checknumber(L, 2)));
    return 1;
}
static int f_log_softmax(lua_State *L) {
    return softmax(L, true);
}

/* F.cross_entropy(logits, labels): labels are 1-based class indices */
static int f_cross_entropy(lua_State *L) {
    lm_tensor *logits = l_check_tensor(L, 1), *labels = l_check_tensor(L, 2);
    if (!lua_isnoneornil(L, 3)) /* torch's options would otherwise be ignored without a word */
        return luaL_error(
            L,
            "cross_entropy: takes (logits, labels) only, got a %s after them (the mean "
            "over the batch: reduction, weight, ignore_index and label_smoothing are "
            "not supported)",
            luaL_typename(L, 3));
    if (labels->dtype != LM_INT32)
        return luaL_error(L,
                          "cross_entropy: labels must be an int32 tensor of 1-based classes, "
                          "got %s (use lm.tensor(t, 'int32') or :int())",
                          lm_dtype_name(labels->dtype));
    lm_tensor **zero_based = l_push_slot(L);
    l_check(L, lm_binary_scalar(zero_based, LM_SUB, labels, 1, false));
    l_check(L, lm_ag_cross_entropy(l_push_slot(L), logits, *zero_based));
    return 1;
}

/* F._channel_affine(x, scale, shift [, residual|nil [, relu]]) -> x * scale
 * + shift per channel [+ residual] [then ReLU], without gradients (the
 * batch norm layers in evaluation decide) */
static int f_channel_affine(lua_State *L) {
    lm_tensor *x = l_check_tensor(L, 1), *scale = l_check_tensor(L, 2),
              *shift = l_check_tensor(L, 3);
    lm_tensor *residual = lua_isnoneornil(L, 4) ? NULL : l_check_tensor(L, 4);
    bool relu = false;
    if (!lua_isnoneornil(L, 5)) {
        luaL_checktype(L, 5, LUA_TBOOLEAN);
        relu = lua_toboolean(L, 5);
    }
    l_check(L, lm_channel_affine(l_push_slot(L), x, scale, shift, residual, relu));
    return 1;
}

/* F._resample(x, dim, idx, w): x resampled along dim (1-based) with the
 * 0-based int32 index and float32 weights [m, taps] that lua/lumen/nn/resample.lua
 * builds (interpolation, reflect / replicate / circular padding) */
static int f_resample(lua_State *L) {
    lm_tensor *x = l_check_tensor(L, 1);
    int dim = l_check_dim(L, 2, x->ndim, "resample");
    lm_tensor *idx = l_check_tensor(L, 3), *w = l_check_tensor(L, 4);
    l_check(L, lm_ag_resample(l_push_slot(L), x, dim, idx, w));
    return 1;
}

/* F._resample2d(x, idx_h, w_h, idx_w, w_w): both of x's last two dimensions at once */
static int f_resample2d(lua_State *L) {
    lm_tensor *x = l_check_tensor(L, 1);
    lm_tensor *ih = l_check_tensor(L, 2), *wh = l_check_tensor(L, 3);
    lm_tensor *iw = l_check_tensor(L, 4), *ww = l_check_tensor(L, 5);
    l_check(L, lm_ag_resample2d(l_push_slot(L), x, ih, wh, iw, ww));
    return 1;
}

/* F._batch_norm(x, weight|nil, bias|nil, eps [, residual|nil, relu]) -> y,
 * batch mean, batch variance (biased): the fused training-mode kernel, and
 * the residual sum and ReLU after it (F.batch_norm and the residual blocks
 * decide) */
static int f_batch_norm(lua_State *L) {
    lm_tensor *x = l_check_tensor(L, 1);
    lm_tensor *w = lua_isnoneornil(L, 2) ? NULL : l_check_tensor(L, 2);
    lm_tensor *b = lua_isnoneornil(L, 3) ? NULL : l_check_tensor(L, 3);
    double eps = luaL_checknumber(L, 4);
    lm_tensor *residual = lua_isnoneornil(L, 5) ? NULL : l_check_tensor(L, 5);
    bool relu = lua_toboolean(L, 6);
    lm_tensor **out = l_push_slot(L), **mean = l_push_slot(L), **var = l_push_slot(L);
    l_check(L, lm_ag_batch_norm_then(out, mean, var, x, w, b, eps, residual, relu));
    return 3;
}

static int f_batch_norm_available(lua_State *L) {
    lua_pushboolean(L, lm_batch_norm_available(l_check_tensor(L, 1)));
    return 1;
}

static int f_mmd_available(lua_State *L) {
    lua_pushboolean(L, lm_mmd_available(l_check_tensor(L, 1)));
    return 1;
}

/* F._mmd(z, p, {bandwidths}) -> the fused MMD (F.mmd decides where it runs) */
static int f_mmd(lua_State *L) {
    lm_tensor *z = l_check_tensor(L, 1), *p = l_check_tensor(L, 2);
    luaL_checktype(L, 3, LUA_TTABLE);
    double bws[LM_MMD_MAX_BANDWIDTHS];
    int n = (int)luaL_len(L, 3);
    /* more than fit: lm_ag_mmd refuses the count before it reads any */
    for (int i = 0; i < n && i < LM_MMD_MAX_BANDWIDTHS; i++) {
        lua_geti(L, 3, i + 1);
        int isnum;
        bws[i] = lua_tonumberx(L, -1, &isnum);
        if (!isnum) return luaL_error(L, "mmd: bandwidth %d is not a number", i + 1);
        lua_pop(L, 1);
    }
    l_check(L, lm_ag_mmd(l_push_slot(L), z, p, bws, n));
    return 1;
}

/* F._softplus(x, beta, threshold): F.softplus checks the numbers */
static int f_softplus(lua_State *L) {
    lm_tensor *x = l_check_tensor(L, 1);
    double beta = luaL_checknumber(L, 2), threshold = luaL_checknumber(L, 3);
    l_check(L, lm_ag_unary(l_push_slot(L), LM_SOFTPLUS, x, beta, threshold));
    return 1;
}

/* F._activation(x, name, p0, p1): the activations without a tensor method,
 * by their op's name; lua/lumen/nn/activations.lua checks the numbers */
static int f_activation(lua_State *L) {
    static const char *const names[] = {
        "hardswish",  "hardsigmoid", "mish",       "selu",      "celu", "logsigmoid", "softsign",
        "tanhshrink", "hardshrink",  "softshrink", "threshold", "silu", NULL};
    static const lm_unary_op ops[] = {LM_HARDSWISH,  LM_HARDSIGMOID, LM_MISH,      LM_SELU,
                                      LM_CELU,       LM_LOGSIGMOID,  LM_SOFTSIGN,  LM_TANHSHRINK,
                                      LM_HARDSHRINK, LM_SOFTSHRINK,  LM_THRESHOLD, LM_SILU};
    lm_tensor *x = l_check_tensor(L, 1);
    lm_unary_op op = ops[luaL_checkoption(L, 2, NULL, names)];
    double p0 = luaL_optnumber(L, 3, 0), p1 = luaL_optnumber(L, 4, 0);
    l_check(L, lm_ag_unary(l_push_slot(L), op, x, p0, p1));
    return 1;
}

/* F.mse(y_hat, y [, {reduction = 'mean' | 'none'}]) */
static int f_mse(lua_State *L) {
    lm_tensor *yh = l_check_tensor(L, 1), *y = l_check_tensor(L, 2);
    bool per_sample = false;
    if (!lua_isnoneornil(L, 3) && !lua_istable(L, 3))
        return luaL_error(L, "mse: options must be a table {reduction = 'mean' | 'none'}, got a %s",
                          luaL_typename(L, 3));
    l_check_option_keys(L, 3, "mse", (const char *const[]){"reduction", NULL});
    if (lua_istable(L, 3)) {
        lua_getfield(L, 3, "reduction");
        const char *r = luaL_optstring(L, -1, "mean");
        if (!strcmp(r, "none"))
            per_sample = true;
        else if (strcmp(r, "mean") != 0)
            return luaL_error(L, "mse: reduction must be 'mean' or 'none', got '%s'", r);
        lua_pop(L, 1);
    }
    l_check(L, lm_ag_mse(l_push_slot(L), yh, y, per_sample));
    return 1;
}

/* An integer option of fn (absent: def); only check_default_int reads one
 * this way, so any integer passes here. */
static int opt_int(lua_State *L, int t, const char *fn, const char *key, int def) {
    if (!lua_istable(L, t)) return def;
    lua_getfield(L, t, key);
    int isnum;
    lua_Integer v = lua_tointegerx(L, -1, &isnum);
    if (lua_type(L, -1) != LUA_TNUMBER) isnum = 0; /* not the string "2" */
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return def;
    }
    if (!isnum || v < INT_MIN || v > INT_MAX) {
        int kind = lua_type(L, -1);
        const char *given = kind == LUA_TNUMBER || kind == LUA_TSTRING ? luaL_tolstring(L, -1, NULL)
                                                                       : luaL_typename(L, -1);
        const char *quote = kind == LUA_TSTRING ? "'" : "";
        luaL_error(L, "%s: %s must be an integer, got %s%s%s", fn, key, quote, given, quote);
    }
    lua_pop(L, 1);
    return (int)v;
}

/* torch's options that Lumen computes at their default only: the default
 * passes, anything else is refused, never ignored. */
static void check_default_int(lua_State *L, int t, const char *fn, const char *key, int def) {
    int v = opt_int(L, t, fn, key, def);
    if (v != def) luaL_error(L, "%s: %s = %d is not supported (only %d)", fn, key, v, def);
}
static void check_default_bool(lua_State *L, int t, const char *fn, const char *key, bool def) {
    if (!lua_istable(L, t)) return;
    lua_getfield(L, t, key);
    bool absent = lua_isnil(L, -1), isbool = lua_isboolean(L, -1), v = lua_toboolean(L, -1);
    lua_pop(L, 1);
    if (absent) return;
    if (!isbool) luaL_error(L, "%s: option '%s' must be a boolean", fn, key);
    if (v != def)
        luaL_error(L, "%s: %s = %s is not supported (only %s)", fn, key, v ? "true" : "false",
                   def ? "true" : "false");
}

/* Whether the value at v is an integer from lo to INT_MAX (the string "2" is not). */
static bool size_at(lua_State *L, int v, int64_t lo, int64_t *got) {
    int isnum;
    lua_Integer n = lua_tointegerx(L, v, &isnum);
    *got = n;
    return isnum && lua_type(L, v) == LUA_TNUMBER && n >= lo && n <= INT_MAX;
}

/* The value at v as an error message shows it (pushed): a number as it is,
 * a string quoted, anything else by its kind. */
static const char *push_shown(lua_State *L, int v) {
    int kind = lua_type(L, v);
    if (kind == LUA_TNUMBER) return luaL_tolstring(L, v, NULL);
    if (kind == LUA_TSTRING) return lua_pushfstring(L, "'%s'", lua_tostring(L, v));
    return lua_pushfstring(L, "a %s", luaL_typename(L, v));
}

/* The value at v as fn's `what`: an integer from lo to INT_MAX for both
 * dimensions, or (pair) a table {h, w} of two such; h and w get them. The
 * error names fn and what, and shows what was given (`also`: the other
 * values the caller takes, for the message). */
static void check_sizes(lua_State *L, int v, const char *fn, const char *what, int64_t lo,
                        bool pair, const char *also, int64_t *h, int64_t *w) {
    int64_t got[2];
    if (pair && lua_istable(L, v)) {
        lua_Integer len = luaL_len(L, v);
        bool ok = len == 2;
        for (int k = 0; k < 2 && ok; k++) {
            lua_geti(L, v, k + 1);
            ok = size_at(L, -1, lo, &got[k]);
            lua_pop(L, 1);
        }
        if (ok) {
            *h = got[0], *w = got[1];
            return;
        }
        if (len == 0) /* (an options table where a size belongs, say) */
            luaL_error(
                L,
                "%s: %s must be an integer from %d to %d or a pair {h, w} of them%s, got a table",
                fn, what, (int)lo, INT_MAX, also);
        if (len != 2)
            luaL_error(L,
                       "%s: %s must be an integer from %d to %d or a pair {h, w} of them%s, got a "
                       "table of length %d",
                       fn, what, (int)lo, INT_MAX, also, (int)len);
        lua_geti(L, v, 1), lua_geti(L, v, 2);
        const char *a = push_shown(L, -2), *b = push_shown(L, -2);
        luaL_error(
            L, "%s: %s must be an integer from %d to %d or a pair {h, w} of them%s, got {%s, %s}",
            fn, what, (int)lo, INT_MAX, also, a, b);
    }
    if (size_at(L, v, lo, &got[0])) {
        *h = *w = got[0];
        return;
    }
    luaL_error(L, "%s: %s must be an integer from %d to %d%s%s, got %s", fn, what, (int)lo, INT_MAX,
               pair ? " or a pair {h, w} of them" : "", also, push_shown(L, v));
}

/* Option `key` of the table at t (absent, or no table: def for both) through check_sizes. */
static void opt_sizes(lua_State *L, int t, const char *fn, const char *key, int64_t lo, bool pair,
                      const char *also, int64_t def, int64_t *h, int64_t *w) {
    *h = *w = def;
    if (!lua_istable(L, t)) return;
    lua_getfield(L, t, key);
    if (!lua_isnil(L, -1)) check_sizes(L, lua_gettop(L), fn, key, lo, pair, also, h, w);
    lua_pop(L, 1);
}

/* conv2d's options: stride, padding and dilation a size or a pair {h, w}
 * (padding's strings 'same' and 'valid' F.conv2d turns into sizes first). */
static lm_conv_options conv_options(lua_State *L, int t) {
    l_check_option_keys(L, t, "conv2d",
                        (const char *const[]){"stride", "padding", "dilation", "groups", NULL});
    lm_conv_options o;
    int64_t unused;
    opt_sizes(L, t, "conv2d", "stride", 1, true, "", 1, &o.stride_h, &o.stride_w);
    opt_sizes(L, t, "conv2d", "padding", 0, true, ", 'same' or 'valid'", 0, &o.pad_h, &o.pad_w);
    opt_sizes(L, t, "conv2d", "dilation", 1, true, "", 1, &o.dilation_h, &o.dilation_w);
    opt_sizes(L, t, "conv2d", "groups", 1, false, "", 1, &o.groups, &unused);
    return o;
}

/* F.conv2d(x, w [, b] [, {stride = 1, padding = 0, dilation = 1, groups = 1}]): stride,
 * padding and dilation one value or a pair {h, w} */
static int f_conv2d(lua_State *L) {
    lm_tensor *x = l_check_tensor(L, 1), *w = l_check_tensor(L, 2);
    lm_tensor *b = l_test_tensor(L, 3);
    /* F.conv2d(x, w, opts) or F.conv2d(x, w, b_or_nil, opts): with a nil bias
     * the options are the 4th argument (nn.Conv2d{bias = false} passes it so) */
    int opt = (!b && lua_istable(L, 3)) ? 3 : 4;
    if (!b && !lua_isnoneornil(L, 3) && !lua_istable(L, 3))
        return luaL_error(L, "conv2d: bias must be a tensor or nil, got %s", luaL_typename(L, 3));
    lm_conv_options o = conv_options(L, opt);
    l_check(L, lm_ag_conv2d(l_push_slot(L), x, w, b, &o));
    return 1;
}

/* F._conv2d_affine(x, w, {stride, padding, dilation, groups}, scale, shift [, residual|nil [,
 * relu]])
 * -> conv2d without bias, then x * scale + shift per channel [+ residual]
 * [then ReLU], without gradients (a convolution and the batch norm after it
 * in evaluation decide) */
static int f_conv2d_affine(lua_State *L) {
    lm_tensor *x = l_check_tensor(L, 1), *w = l_check_tensor(L, 2);
    luaL_checktype(L, 3, LUA_TTABLE);
    lm_conv_options o = conv_options(L, 3);
    lm_tensor *scale = l_check_tensor(L, 4), *shift = l_check_tensor(L, 5);
    lm_tensor *residual = lua_isnoneornil(L, 6) ? NULL : l_check_tensor(L, 6);
    bool relu = false;
    if (!lua_isnoneornil(L, 7)) {
        luaL_checktype(L, 7, LUA_TBOOLEAN);
        relu = lua_toboolean(L, 7);
    }
    l_check(L, lm_conv2d_affine(l_push_slot(L), x, w, scale, shift, residual, relu, &o));
    return 1;
}

/* F.conv_transpose2d(x, w [, b] [, {stride = 1, padding = 0, output_padding = 0,
 * dilation = 1, groups = 1}]): w is [in, out / groups, kh, kw]; stride,
 * padding, output_padding and dilation one value or a pair {h, w} */
static int f_conv_transpose2d(lua_State *L) {
    const char *fn = "conv_transpose2d";
    lm_tensor *x = l_check_tensor(L, 1), *w = l_check_tensor(L, 2);
    lm_tensor *b = l_test_tensor(L, 3);
    int t = (!b && lua_istable(L, 3)) ? 3 : 4; /* as F.conv2d: the options after a nil bias too */
    if (!b && !lua_isnoneornil(L, 3) && !lua_istable(L, 3))
        return luaL_error(L, "%s: bias must be a tensor or nil, got %s", fn, luaL_typename(L, 3));
    if (!lua_isnoneornil(L, t) && !lua_istable(L, t))
        return luaL_error(L, "%s: options must be a table, got %s", fn, luaL_typename(L, t));
    l_check_option_keys(
        L, t, fn,
        (const char *const[]){"stride", "padding", "output_padding", "dilation", "groups", NULL});
    lm_conv_transpose_options o;
    lm_conv_options *c = &o.conv;
    int64_t unused;
    opt_sizes(L, t, fn, "stride", 1, true, "", 1, &c->stride_h, &c->stride_w);
    opt_sizes(L, t, fn, "padding", 0, true, "", 0, &c->pad_h, &c->pad_w);
    opt_sizes(L, t, fn, "output_padding", 0, true, "", 0, &o.output_pad_h, &o.output_pad_w);
    opt_sizes(L, t, fn, "dilation", 1, true, "", 1, &c->dilation_h, &c->dilation_w);
    opt_sizes(L, t, fn, "groups", 1, false, "", 1, &c->groups, &unused);
    l_check(L, lm_ag_conv_transpose2d(l_push_slot(L), x, w, b, &o));
    return 1;
}

/* F.max_pool2d(x, kernel [, {stride = kernel, padding = 0}]): kernel, stride
 * and padding one value or a pair {h, w} */
static int pool(lua_State *L, bool max) {
    lm_tensor *x = l_check_tensor(L, 1);
    const char *fn = max ? "max_pool2d" : "avg_pool2d";
    int64_t kh, kw;
    check_sizes(L, 2, fn, "kernel size", 1, true, "", &kh, &kw);
    if (max) {
        l_check_option_keys(
            L, 3, fn, (const char *const[]){"stride", "padding", "dilation", "ceil_mode", NULL});
        check_default_int(L, 3, fn, "dilation", 1);
    } else {
        l_check_option_keys(
            L, 3, fn,
            (const char *const[]){"stride", "padding", "ceil_mode", "count_include_pad", NULL});
        check_default_bool(L, 3, fn, "count_include_pad", true);
    }
    check_default_bool(L, 3, fn, "ceil_mode", false);
    lm_conv_options o = {.dilation_h = 1, .dilation_w = 1, .groups = 1};
    opt_sizes(L, 3, fn, "stride", 1, true, "", 0, &o.stride_h, &o.stride_w);
    if (o.stride_h == 0) o.stride_h = kh, o.stride_w = kw; /* absent: the kernel's, as torch */
    opt_sizes(L, 3, fn, "padding", 0, true, "", 0, &o.pad_h, &o.pad_w);
    l_check(L, lm_ag_pool2d(l_push_slot(L), x, kh, kw, &o, max));
    return 1;
}
static int f_max_pool2d(lua_State *L) {
    return pool(L, true);
}
static int f_avg_pool2d(lua_State *L) {
    return pool(L, false);
}

/* ---- optimisers: lm._optim_step(settings, param, grad, state1, state2)
 * ----------------------------- */

static double opt_number(lua_State *L, int t, const char *key, double def) {
    lua_getfield(L, t, key);
    double v = luaL_optnumber(L, -1, def);
    lua_pop(L, 1);
    return v;
}

/* The optimiser settings table (kind, lr, weight_decay, ...) at index t. */
static lm_optim_params optim_settings(lua_State *L, int t) {
    luaL_checktype(L, t, LUA_TTABLE);
    lua_getfield(L, t, "kind");
    const char *kind = luaL_checkstring(L, -1);
    lm_optim_params p = {0};
    if (!strcmp(kind, "sgd"))
        p.kind = LM_OPT_SGD;
    else if (!strcmp(kind, "adam"))
        p.kind = LM_OPT_ADAM;
    else if (!strcmp(kind, "adamw"))
        p.kind = LM_OPT_ADAMW;
    else if (!strcmp(kind, "rmsprop"))
        p.kind = LM_OPT_RMSPROP;
    else
        luaL_error(L, "optimizer: unknown kind '%s'", kind);
    lua_pop(L, 1);
    p.lr = opt_number(L, t, "lr", 1e-3);
    p.weight_decay = opt_number(L, t, "weight_decay", 0);
    p.momentum = opt_number(L, t, "momentum", 0);
    lua_getfield(L, t, "nesterov");
    p.nesterov = lua_toboolean(L, -1);
    lua_pop(L, 1);
    p.beta1 = opt_number(L, t, "beta1", 0.9);
    p.beta2 = opt_number(L, t, "beta2", 0.999);
    p.alpha = opt_number(L, t, "alpha", 0.99);
    p.eps = opt_number(L, t, "eps", 1e-8);
    p.step = (int64_t)opt_number(L, t, "step", 1);
    return p;
}

static void check_states(lua_State *L, const lm_optim_params *p, lm_tensor *s1, lm_tensor *s2) {
    if ((p->kind == LM_OPT_ADAM || p->kind == LM_OPT_ADAMW) && (!s1 || !s2))
        luaL_error(L, "optimizer: Adam needs two state tensors");
    if (p->kind == LM_OPT_RMSPROP && !s1) luaL_error(L, "optimizer: RMSprop needs a state");
}

/* lm._optim_step(settings, param [, grad] [, s1, s2]). Returns false (and
 * does nothing) when the parameter has no gradient. The gradient is read
 * here rather than through x.grad so that no Lua userdata keeps it alive
 * after zero_grad: its memory is reused at once. */
static int l_optim_step(lua_State *L) {
    lm_optim_params p = optim_settings(L, 1);
    lm_tensor *param = l_check_tensor(L, 2);
    lm_tensor *grad = lua_isnoneornil(L, 3) ? lm_grad(param) : l_check_tensor(L, 3);
    if (!grad) {
        lua_pushboolean(L, 0);
        return 1;
    }
    lm_tensor *s1 = lua_isnoneornil(L, 4) ? NULL : l_check_tensor(L, 4);
    lm_tensor *s2 = lua_isnoneornil(L, 5) ? NULL : l_check_tensor(L, 5);
    check_states(L, &p, s1, s2);
    l_check(L, lm_optim_step(&p, param, grad, s1, s2));
    lua_pushboolean(L, 1);
    return 1;
}

#define STEP_ALL_MAX 256 /* parameters in one backend call */

/* lm._optim_step_all(settings, params, states, steps): every parameter of
 * the list that has a gradient, at its own update count steps[i] + 1
 * (Adam's bias correction starts at a parameter's first gradient, as in
 * torch), which steps[i] then holds. states[i] is the list of parameter
 * i's state tensors. One backend call (one launch on a GPU) for each count
 * and each STEP_ALL_MAX parameters: one in all unless parameters missed
 * steps. Every argument is checked before anything is updated. Returns how
 * many parameters were updated. */
/* A parameter with a gradient, its update count and place in the list. */
typedef struct {
    lm_tensor *param, *grad, *s1, *s2;
    int64_t step;
    int index;
} step_item;

/* By count, then by place: each group of one count is a run in list order. */
static int compare_step_items(const void *a, const void *b) {
    const step_item *x = a, *y = b;
    if (x->step != y->step) return x->step < y->step ? -1 : 1;
    return (x->index > y->index) - (x->index < y->index);
}

static int l_optim_step_all(lua_State *L) {
    lm_optim_params p = optim_settings(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    luaL_checktype(L, 3, LUA_TTABLE);
    luaL_checktype(L, 4, LUA_TTABLE);
    /* raw reads: the tables keep what they hold alive, a metamethod's value nothing */
    int count = (int)lua_rawlen(L, 2), n = 0;
    /* one scratch userdata (an error leaves it to the collector): the items,
     * then the four argument arrays of one backend call */
    step_item *items = lua_newuserdatauv(
        L, sizeof(step_item) * (size_t)(count + 1) + sizeof(lm_tensor *) * 4 * STEP_ALL_MAX, 0);
    lm_tensor **call = (lm_tensor **)(items + count + 1);
    for (int i = 1; i <= count; i++) {
        lua_rawgeti(L, 2, i);
        l_tensor_ud *ud = luaL_testudata(L, -1, L_TENSOR_MT);
        if (!ud || !ud->t)
            return luaL_error(L, "step: parameter %d %s", i,
                              ud ? "has been freed" : "is not a tensor");
        lm_tensor *param = ud->t;
        lua_pop(L, 1);
        lm_tensor *grad = lm_grad(param);
        if (!grad) continue;
        lua_rawgeti(L, 4, i);
        int isnum;
        lua_Integer done = lua_tointegerx(L, -1, &isnum);
        lua_pop(L, 1);
        if (!isnum || done < 0) return luaL_error(L, "step: steps[%d] must be a count >= 0", i);
        lua_rawgeti(L, 3, i);
        luaL_checktype(L, -1, LUA_TTABLE);
        lua_rawgeti(L, -1, 1);
        lua_rawgeti(L, -2, 2);
        step_item *it = &items[n++];
        *it = (step_item){param,
                          grad,
                          lua_isnil(L, -2) ? NULL : l_check_tensor(L, -2),
                          lua_isnil(L, -1) ? NULL : l_check_tensor(L, -1),
                          done + 1,
                          i};
        lua_pop(L, 3); /* the states stay referenced by the table */
        check_states(L, &p, it->s1, it->s2);
    }
    /* every update checked before the first group runs: a refused step changes nothing */
    for (int k = 0; k < n; k++)
        l_check(L, lm_optim_check(items[k].param, items[k].grad, items[k].s1, items[k].s2));
    qsort(items, (size_t)n, sizeof *items, compare_step_items);
    for (int first = 0; first < n;) {
        int len = 0;
        while (first + len < n && len < STEP_ALL_MAX &&
               items[first + len].step == items[first].step)
            len++;
        for (int k = 0; k < len; k++) {
            const step_item *it = &items[first + k];
            call[k] = it->param, call[STEP_ALL_MAX + k] = it->grad;
            call[2 * STEP_ALL_MAX + k] = it->s1, call[3 * STEP_ALL_MAX + k] = it->s2;
        }
        p.step = items[first].step;
        l_check(L, lm_optim_step_many(&p, len, call, call + STEP_ALL_MAX, call + 2 * STEP_ALL_MAX,
                                      call + 3 * STEP_ALL_MAX));
        for (int k = 0; k < len; k++) {
            lua_pushinteger(L, items[first + k].step);
            lua_rawseti(L, 4, items[first + k].index);
        }
        first += len;
    }
    lua_pushinteger(L, n);
    return 1;
}

static const luaL_Reg functional[] = {{"linear", f_linear},
                                      {"_dropout", f_dropout},
                                      {"_linear_act", f_linear_act},
                                      {"_self_attention", f_self_attention},
                                      {"_self_attention_available", f_self_attention_available},
                                      {"_layer_norm", f_layer_norm},
                                      {"_layer_norm_available", f_layer_norm_available},
                                      {"softmax", f_softmax},
                                      {"log_softmax", f_log_softmax},
                                      {"cross_entropy", f_cross_entropy},
                                      {"mse", f_mse},
                                      {"_softplus", f_softplus},
                                      {"_activation", f_activation},
                                      {"_mmd", f_mmd},
                                      {"_mmd_available", f_mmd_available},
                                      {"_batch_norm", f_batch_norm},
                                      {"_batch_norm_available", f_batch_norm_available},
                                      {"_channel_affine", f_channel_affine},
                                      {"conv2d", f_conv2d},
                                      {"_conv2d_affine", f_conv2d_affine},
                                      {"conv_transpose2d", f_conv_transpose2d},
                                      {"max_pool2d", f_max_pool2d},
                                      {"avg_pool2d", f_avg_pool2d},
                                      {"_resample", f_resample},
                                      {"_resample2d", f_resample2d},
                                      {NULL, NULL}};

/* Adds lm._functional (completed by lua/lumen/nn/functional.lua) and lm._optim_step. */
void l_register_nn(lua_State *L) {
    luaL_newlib(L, functional);
    lua_pushinteger(L, LM_MMD_MAX_BANDWIDTHS); /* F.mmd checks the count on every device */
    lua_setfield(L, -2, "_mmd_max_bandwidths");
    lua_setfield(L, -2, "_functional");
    lua_pushcfunction(L, l_optim_step);
    lua_setfield(L, -2, "_optim_step");
    lua_pushcfunction(L, l_optim_step_all);
    lua_setfield(L, -2, "_optim_step_all");
}
