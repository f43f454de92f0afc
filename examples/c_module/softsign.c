/* A Lua C module that adds an operation to Lumen, with its own C kernels:
 * softsign(x) = x / (1 + |x|), whose derivative is 1 / (1 + |x|)^2. The
 * module returns an lm.autograd.Function made of two C functions, so the op
 * works from Lua and gradients flow through it.
 *
 *   local softsign = require 'softsign'
 *   local y = softsign(x)          -- x: a float32 tensor on the CPU
 */
#include <math.h>

#include <lauxlib.h>
#include <lumen/lumen_lua.h>

/* The argument at idx as a contiguous float32 CPU tensor, pushed on the
 * stack: Lua owns it, so an error raised later leaks nothing. */
static lm_tensor *contiguous_arg(lua_State *L, int idx) {
    lm_tensor *t = lumen_checktensor(L, idx);
    if (t->dtype != LM_FLOAT32 || t->storage->device != LM_CPU)
        luaL_error(L, "softsign: needs a float32 tensor on the CPU, got %s on %s",
                   lm_dtype_name(t->dtype), lm_device_name(t->storage->device));
    lm_tensor *c = NULL;
    lumen_checkstatus(L, lm_contiguous(&c, t));
    lumen_pushtensor(L, c);
    return c;
}

/* A new float32 CPU tensor shaped like t, pushed on the stack (Lua owns it,
 * so nothing leaks if a later step raises an error). */
static float *push_like(lua_State *L, const lm_tensor *t) {
    lm_tensor *y = NULL;
    lumen_checkstatus(L, lm_tensor_new(&y, LM_FLOAT32, LM_CPU, t->ndim, t->shape));
    lumen_pushtensor(L, y);
    return lm_tensor_f32(y);
}

/* forward(ctx, x): keeps x for backward, returns softsign(x). */
static int forward(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    lm_tensor *x = contiguous_arg(L, 2);
    lua_pushvalue(L, 2);
    lua_setfield(L, 1, "x");
    float *y = push_like(L, x);
    const float *in = lm_tensor_f32(x);
    for (int64_t i = 0, n = lm_tensor_numel(x); i < n; i++) y[i] = in[i] / (1.0f + fabsf(in[i]));
    return 1;
}

/* backward(ctx, grad): the gradient of x, grad / (1 + |x|)^2. */
static int backward(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_getfield(L, 1, "x"); /* index 3 */
    lm_tensor *x = contiguous_arg(L, 3);
    lm_tensor *g = contiguous_arg(L, 2);
    if (!lm_tensor_same_shape(x, g))
        return luaL_error(L, "softsign: the gradient's shape differs from the input's");
    float *dx = push_like(L, x);
    const float *in = lm_tensor_f32(x), *dy = lm_tensor_f32(g);
    for (int64_t i = 0, n = lm_tensor_numel(x); i < n; i++) {
        float d = 1.0f + fabsf(in[i]);
        dx[i] = dy[i] / (d * d);
    }
    return 1;
}

int luaopen_softsign(lua_State *L) {
    lua_getglobal(L, "require");
    lua_pushliteral(L, "lumen");
    lua_call(L, 1, 1); /* lm */
    lua_getfield(L, -1, "autograd");
    lua_getfield(L, -1, "Function"); /* lm.autograd.Function */
    lua_createtable(L, 0, 3);
    lua_pushliteral(L, "softsign");
    lua_setfield(L, -2, "name");
    lua_pushcfunction(L, forward);
    lua_setfield(L, -2, "forward");
    lua_pushcfunction(L, backward);
    lua_setfield(L, -2, "backward");
    lua_call(L, 1, 1); /* the op: callable, with .apply */
    return 1;
}
