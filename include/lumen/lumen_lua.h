/* Lumen from Lua's C API: run Lumen in your own Lua state, and take and
 * return Lumen tensors in your own Lua C module.
 *
 *   luaL_requiref(L, "lumen", luaopen_lumen, 0);   // require 'lumen' in a host
 *
 *   static int my_op(lua_State *L) {               // in a C module
 *       lm_tensor *x = lumen_checktensor(L, 1);    // a live tensor, or a Lua error
 *       lm_tensor *y = NULL;
 *       lumen_checkstatus(L, lm_tensor_new(&y, LM_FLOAT32, LM_CPU, x->ndim, x->shape));
 *       ... fill lm_tensor_f32(y) ...
 *       lumen_pushtensor(L, y);                    // Lua now owns y's reference
 *       return 1;
 *   }
 *
 * A C module links liblumen.so (pkg-config --libs lumen) and is used with the
 * installed lumen.so or `lumen` program, which link the same library: one
 * core per process. Tensors are borrowed from the Lua stack: the pointer
 * lumen_checktensor returns stays valid while the value is on the stack (take
 * lm_tensor_retain() to keep it longer). */
#ifndef LUMEN_LUA_H
#define LUMEN_LUA_H

#include <lauxlib.h>
#include <lua.h>

#include "lumen.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Opens the lumen module and returns 1 (the module table), as require does.
 * The Lua library (lm.nn, lm.optim, ...) is inside: no files are needed. */
int luaopen_lumen(lua_State *L);

/* The tensor at index idx, or NULL when the value there is not a tensor (or
 * is a tensor already freed). Borrowed: no reference is taken. */
lm_tensor *lumen_totensor(lua_State *L, int idx);
/* The tensor argument at index idx; raises a Lua error ("bad argument #2:
 * expected a tensor, got table") when it is not a live tensor. Borrowed. */
lm_tensor *lumen_checktensor(lua_State *L, int idx);
/* Pushes t as a Lumen tensor (with the methods, operators and autograd of
 * any other), taking over one reference of t: do not release it afterwards. */
void lumen_pushtensor(lua_State *L, lm_tensor *t);
/* Raises lm_last_error() as a Lua error unless s is LM_OK. */
void lumen_checkstatus(lua_State *L, lm_status s);

#ifdef __cplusplus
}
#endif

#endif
