/* lm._reference: the core's reference loops (core/lm_reference.h), so that
 * the GPU specs can check a backend against a definition independent of
 * every backend. Internal (underscore-prefixed) and slow on purpose: CPU
 * float32 tensors only. Argument checking only; the maths is the core's. */
#include "l_common.h"
#include "lm_reference.h"

/* lm._reference.matmul(a, b): a (M, K) or (B, M, K), b (K, N) or (B, K, N) */
static int l_reference_matmul(lua_State *L) {
    lm_tensor *a = l_check_tensor(L, 1), *b = l_check_tensor(L, 2);
    l_check(L, lm_reference_matmul(l_push_slot(L), a, b));
    return 1;
}

/* The integer option `key` of the table at t (absent: def). */
static int64_t l_option(lua_State *L, int t, const char *key, int64_t def) {
    if (lua_isnoneornil(L, t)) return def;
    luaL_checktype(L, t, LUA_TTABLE);
    lua_getfield(L, t, key);
    int64_t v = luaL_optinteger(L, -1, def);
    lua_pop(L, 1);
    return v;
}

/* The option `key` of the table at t as a pair {h, w} or one value for both
 * (absent: def for both). */
static void l_option_pair(lua_State *L, int t, const char *key, int64_t def, int64_t *h,
                          int64_t *w) {
    *h = *w = def;
    if (lua_isnoneornil(L, t)) return;
    lua_getfield(L, t, key);
    if (lua_istable(L, -1)) {
        lua_geti(L, -1, 1), lua_geti(L, -2, 2);
        *h = luaL_checkinteger(L, -2), *w = luaL_checkinteger(L, -1);
        lua_pop(L, 2);
    } else {
        *h = *w = luaL_optinteger(L, -1, def);
    }
    lua_pop(L, 1);
}

/* lm._reference.conv2d(x, w [, b] [, {stride = 1, padding = 0, dilation = 1,
 * groups = 1}]): b may be nil; stride, padding and dilation one value or {h, w} */
static int l_reference_conv2d(lua_State *L) {
    lm_tensor *x = l_check_tensor(L, 1), *w = l_check_tensor(L, 2);
    lm_tensor *b = lua_isnoneornil(L, 3) ? NULL : l_check_tensor(L, 3);
    lm_conv_options o;
    l_option_pair(L, 4, "stride", 1, &o.stride_h, &o.stride_w);
    l_option_pair(L, 4, "padding", 0, &o.pad_h, &o.pad_w);
    l_option_pair(L, 4, "dilation", 1, &o.dilation_h, &o.dilation_w);
    o.groups = l_option(L, 4, "groups", 1);
    l_check(L, lm_reference_conv2d(l_push_slot(L), x, w, b, &o));
    return 1;
}

static const luaL_Reg reference_functions[] = {
    {"matmul", l_reference_matmul}, {"conv2d", l_reference_conv2d}, {NULL, NULL}};

/* Adds lm._reference to the module table on top of the stack. */
void l_register_reference(lua_State *L) {
    luaL_newlib(L, reference_functions);
    lua_setfield(L, -2, "_reference");
}
