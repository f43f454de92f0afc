/* Tensor methods that compute (bindings/l_tensor.c has the rest): elementwise
 * arithmetic and functions, reductions and matmul, and the arithmetic
 * metamethods. Arguments are checked and translated here; the maths is the
 * core's. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "l_common.h"
#include "lm_autograd.h"
#include "lm_ops.h"

/* ---- elementwise
 * ---------------------------------------------------------------------------------- */

/* a op b where either side may be a number. */
static int binary(lua_State *L, lm_binary_op op) {
    lm_tensor *a = l_test_tensor(L, 1), *b = l_test_tensor(L, 2);
    const char *name = lm_binary_name(op);
    if (a && b) {
        l_check(L, lm_ag_binary(l_push_slot(L), op, a, b));
    } else if (a && lua_type(L, 2) == LUA_TNUMBER) {
        l_check(L, lm_ag_binary_scalar(l_push_slot(L), op, a, lua_tonumber(L, 2), false));
    } else if (b && lua_type(L, 1) == LUA_TNUMBER) {
        l_check(L, lm_ag_binary_scalar(l_push_slot(L), op, b, lua_tonumber(L, 1), true));
    } else {
        return luaL_error(L, "%s: expected tensors or numbers, got %s and %s", name,
                          luaL_typename(L, 1), luaL_typename(L, 2));
    }
    return 1;
}

#define BINARY_METHOD(fn, op)                                                                      \
    static int fn(lua_State *L) {                                                                  \
        return binary(L, op);                                                                      \
    }
BINARY_METHOD(t_add, LM_ADD)
BINARY_METHOD(t_sub, LM_SUB)
BINARY_METHOD(t_mul, LM_MUL)
BINARY_METHOD(t_div, LM_DIV)
BINARY_METHOD(t_pow, LM_POW)
BINARY_METHOD(t_maximum, LM_MAXIMUM)
BINARY_METHOD(t_minimum, LM_MINIMUM)
BINARY_METHOD(t_eq, LM_EQ)
BINARY_METHOD(t_ne, LM_NE)
BINARY_METHOD(t_lt, LM_LT)
BINARY_METHOD(t_le, LM_LE)
BINARY_METHOD(t_gt, LM_GT)
BINARY_METHOD(t_ge, LM_GE)

static int unary(lua_State *L, lm_unary_op op, double p0, double p1) {
    if (!l_test_tensor(L, 1)) /* the method's name, then l_check_tensor's words */
        return luaL_error(L, "%s: bad argument #1: expected a tensor, got %s", lm_unary_name(op),
                          luaL_typename(L, 1));
    lm_tensor *t = l_check_tensor(L, 1);
    l_check(L, lm_ag_unary(l_push_slot(L), op, t, p0, p1));
    return 1;
}

/* An optional number argument of a method, named in the error. */
static double opt_number(lua_State *L, int arg, const char *fn, const char *what, double def) {
    if (lua_isnoneornil(L, arg)) return def;
    if (lua_type(L, arg) != LUA_TNUMBER)
        luaL_error(L, "%s: %s must be a number, got %s", fn, what, luaL_typename(L, arg));
    return lua_tonumber(L, arg);
}

/* x:exp() and its siblings take no options: one given (torch's x.round(decimals=2)) would
 * otherwise be ignored without a word */
#define UNARY_METHOD(fn, op)                                                                       \
    static int fn(lua_State *L) {                                                                  \
        if (!lua_isnone(L, 2))                                                                     \
            return luaL_error(L, "%s: takes no arguments, got a %s after the tensor",              \
                              lm_unary_name(op), luaL_typename(L, 2));                             \
        return unary(L, op, 0, 0);                                                                 \
    }
UNARY_METHOD(t_neg, LM_NEG)
UNARY_METHOD(t_exp, LM_EXP)
UNARY_METHOD(t_log, LM_LOG)
UNARY_METHOD(t_sqrt, LM_SQRT)
UNARY_METHOD(t_abs, LM_ABS)
UNARY_METHOD(t_sign, LM_SIGN)
UNARY_METHOD(t_tanh, LM_TANH)
UNARY_METHOD(t_sigmoid, LM_SIGMOID)
UNARY_METHOD(t_relu, LM_RELU)
UNARY_METHOD(t_round_bfloat16, LM_ROUND_BF16)
UNARY_METHOD(t_floor, LM_FLOOR)
UNARY_METHOD(t_ceil, LM_CEIL)
UNARY_METHOD(t_round, LM_ROUND)
UNARY_METHOD(t_trunc, LM_TRUNC)
UNARY_METHOD(t_log1p, LM_LOG1P)
UNARY_METHOD(t_expm1, LM_EXPM1)
UNARY_METHOD(t_log2, LM_LOG2)
UNARY_METHOD(t_log10, LM_LOG10)
UNARY_METHOD(t_reciprocal, LM_RECIPROCAL)
UNARY_METHOD(t_rsqrt, LM_RSQRT)
UNARY_METHOD(t_square, LM_SQUARE)
UNARY_METHOD(t_erf, LM_ERF)
UNARY_METHOD(t_isnan, LM_ISNAN)
UNARY_METHOD(t_isinf, LM_ISINF)
UNARY_METHOD(t_isfinite, LM_ISFINITE)

static int t_elu(lua_State *L) {
    return unary(L, LM_ELU, luaL_optnumber(L, 2, 1.0), 0);
}

/* x:leaky_relu([negative_slope]): torch's default slope 0.01. */
static int t_leaky_relu(lua_State *L) {
    return unary(L, LM_LEAKY_RELU, opt_number(L, 2, "leaky_relu", "negative_slope", 0.01), 0);
}

/* x:gelu([approximate]): 'none' (exact, erf) or 'tanh', PyTorch's names. */
static int t_gelu(lua_State *L) {
    const char *form = luaL_optstring(L, 2, "none");
    bool tanh_form = strcmp(form, "tanh") == 0;
    if (!tanh_form && strcmp(form, "none") != 0)
        return luaL_error(L, "gelu: approximate must be 'none' or 'tanh', got '%s'", form);
    return unary(L, tanh_form ? LM_GELU_TANH : LM_GELU, 0, 0);
}

void l_check_clamp_bounds(lua_State *L, const char *name, double lo, double hi) {
    if (lo != lo || hi != hi) /* every comparison with it is false: the bound would do nothing */
        luaL_error(L, "%s: %s is NaN", name, lo != lo ? "min" : "max");
    if (lo > hi) {
        char msg[128]; /* lua_pushfstring has no %g */
        snprintf(msg, sizeof msg, "%s: min (%g) is greater than max (%g)", name, lo, hi);
        luaL_error(L, "%s", msg);
    }
}

static int t_clamp(lua_State *L) {
    double lo = luaL_optnumber(L, 2, -HUGE_VAL), hi = luaL_optnumber(L, 3, HUGE_VAL);
    l_check_clamp_bounds(L, "clamp", lo, hi);
    return unary(L, LM_CLAMP, lo, hi);
}

static int t_unm(lua_State *L) {
    return unary(L, LM_NEG, 0, 0);
}

/* ---- reductions
 * ----------------------------------------------------------------------------------- */

/* x:op() over everything, x:op(dim [, keepdim]) over one dimension; sum,
 * mean, var and std also over a list of dimensions, which
 * lua/lumen/conveniences.lua composes (a permute, a reshape, one
 * reduction). `name`: the method's (std reduces with LM_VAR). */
static int reduce_named(lua_State *L, lm_reduce_op op, const char *name) {
    lm_tensor *t = l_check_tensor(L, 1);
    if (lua_istable(L, 2)) {
        if (op == LM_MAX || op == LM_MIN)
            return luaL_error(L,
                              "%s: takes one dimension, got a list (as torch's %s; reduce one "
                              "at a time)",
                              name, name);
        int keepdim = lua_toboolean(L, 3); /* read before the pushes below take index 3 */
        if (lua_getfield(L, LUA_REGISTRYINDEX, "lumen.reduce_dims") != LUA_TFUNCTION)
            return luaL_error(L, "%s: a list of dimensions needs the lumen Lua module", name);
        lua_pushstring(L, name);
        lua_pushvalue(L, 1);
        lua_pushvalue(L, 2);
        lua_pushboolean(L, keepdim);
        lua_call(L, 4, 1);
        return 1;
    }
    int dim = lua_isnoneornil(L, 2) ? -1 : l_check_dim(L, 2, t->ndim, name);
    bool keepdim = lua_toboolean(L, 3);
    bool with_indices = (op == LM_MAX || op == LM_MIN) && dim >= 0;
    lm_tensor **values = l_push_slot(L);
    lm_tensor **indices = with_indices ? l_push_slot(L) : NULL;
    lm_tensor *idx = NULL;
    l_check(L, lm_ag_reduce(values, with_indices ? &idx : NULL, op, t, dim, keepdim));
    if (!with_indices) return 1;
    *indices = idx;
    /* indices come back 0-based from the core: make them Lua's 1-based */
    lm_tensor **one_based = l_push_slot(L);
    l_check(L, lm_binary_scalar(one_based, LM_ADD, idx, 1, false));
    lua_remove(L, -2);
    return 2;
}

static int reduce(lua_State *L, lm_reduce_op op) {
    return reduce_named(L, op, lm_reduce_name(op));
}

static int t_argreduce(lua_State *L, lm_reduce_op op) {
    lm_tensor *t = l_check_tensor(L, 1);
    int dim = lua_isnoneornil(L, 2) ? -1 : l_check_dim(L, 2, t->ndim, lm_reduce_name(op));
    bool keepdim = lua_toboolean(L, 3);
    lm_tensor **raw = l_push_slot(L);
    l_check(L, lm_reduce(raw, NULL, op, t, dim, keepdim));
    l_check(L, lm_binary_scalar(l_push_slot(L), LM_ADD, *raw, 1, false));
    return 1;
}

static int t_sum(lua_State *L) {
    return reduce(L, LM_SUM);
}
static int t_mean(lua_State *L) {
    return reduce(L, LM_MEAN);
}
static int t_max(lua_State *L) {
    return reduce(L, LM_MAX);
}
static int t_min(lua_State *L) {
    return reduce(L, LM_MIN);
}
static int t_var(lua_State *L) {
    return reduce(L, LM_VAR);
}
static int t_argmax(lua_State *L) {
    return t_argreduce(L, LM_ARGMAX);
}
static int t_argmin(lua_State *L) {
    return t_argreduce(L, LM_ARGMIN);
}

static int t_std(lua_State *L) {
    reduce_named(L, LM_VAR, "std");
    lm_tensor *var = l_check_tensor(L, -1);
    /* p0 = 1: the rule gives no gradient where the spread is 0 (as torch's std) */
    l_check(L, lm_ag_unary(l_push_slot(L), LM_SQRT, var, 1, 0));
    return 1;
}

/* x:cumsum(dim): prefix sums along dim (1-based, negative from the end) */
static int t_cumsum(lua_State *L) {
    lm_tensor *t = l_check_tensor(L, 1);
    int dim = l_check_dim(L, 2, t->ndim, "cumsum");
    l_check(L, lm_ag_cumsum(l_push_slot(L), t, dim));
    return 1;
}

static int t_matmul(lua_State *L) {
    lm_tensor *a = l_check_tensor(L, 1), *b = l_check_tensor(L, 2);
    l_check(L, lm_ag_matmul(l_push_slot(L), a, b));
    return 1;
}

/* ---- registration ------------------------------------------------------------------------ */

static const luaL_Reg math_methods[] = {{"add", t_add},
                                        {"sub", t_sub},
                                        {"mul", t_mul},
                                        {"div", t_div},
                                        {"pow", t_pow},
                                        {"maximum", t_maximum},
                                        {"minimum", t_minimum},
                                        {"eq", t_eq},
                                        {"ne", t_ne},
                                        {"lt", t_lt},
                                        {"le", t_le},
                                        {"gt", t_gt},
                                        {"ge", t_ge},
                                        {"neg", t_neg},
                                        {"exp", t_exp},
                                        {"log", t_log},
                                        {"sqrt", t_sqrt},
                                        {"abs", t_abs},
                                        {"round_bfloat16", t_round_bfloat16},
                                        {"sign", t_sign},
                                        {"tanh", t_tanh},
                                        {"sigmoid", t_sigmoid},
                                        {"relu", t_relu},
                                        {"elu", t_elu},
                                        {"leaky_relu", t_leaky_relu},
                                        {"gelu", t_gelu},
                                        {"clamp", t_clamp},
                                        {"floor", t_floor},
                                        {"ceil", t_ceil},
                                        {"round", t_round},
                                        {"trunc", t_trunc},
                                        {"log1p", t_log1p},
                                        {"expm1", t_expm1},
                                        {"log2", t_log2},
                                        {"log10", t_log10},
                                        {"reciprocal", t_reciprocal},
                                        {"rsqrt", t_rsqrt},
                                        {"square", t_square},
                                        {"erf", t_erf},
                                        {"isnan", t_isnan},
                                        {"isinf", t_isinf},
                                        {"isfinite", t_isfinite},
                                        {"sum", t_sum},
                                        {"mean", t_mean},
                                        {"max", t_max},
                                        {"min", t_min},
                                        {"argmax", t_argmax},
                                        {"argmin", t_argmin},
                                        {"var", t_var},
                                        {"std", t_std},
                                        {"cumsum", t_cumsum},
                                        {"matmul", t_matmul},
                                        {NULL, NULL}};

static const luaL_Reg math_metamethods[] = {{"__add", t_add}, {"__sub", t_sub}, {"__mul", t_mul},
                                            {"__div", t_div}, {"__pow", t_pow}, {"__unm", t_unm},
                                            {NULL, NULL}};

void l_tensor_math_open(lua_State *L, int metatable) {
    metatable = lua_absindex(L, metatable);
    luaL_setfuncs(L, math_methods, 0); /* into the methods table on top */
    lua_pushvalue(L, metatable);
    luaL_setfuncs(L, math_metamethods, 0);
    lua_pop(L, 1);
}
