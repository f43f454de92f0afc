/* Shared helpers of the Lua bindings. Bindings hold no maths: they check
 * arguments, translate Lua conventions (1-based dims and indices) and turn
 * core failures into Lua errors.
 *
 * Ownership rule at the boundary: a tensor userdata holds exactly one counted
 * reference to an lm_tensor (or NULL once freed); __gc, __close and :free()
 * share one idempotent release. */
#ifndef L_COMMON_H
#define L_COMMON_H

#include <lauxlib.h>
#include <lua.h>

#include "lm_tensor.h"

#define L_TENSOR_MT "lumen.Tensor"

typedef struct l_tensor_ud {
    lm_tensor *t;
} l_tensor_ud;

/* The tensor at stack index `arg`, raising a Lua error if it is not a live
 * tensor. */
lm_tensor *l_check_tensor(lua_State *L, int arg);
lm_tensor *l_test_tensor(lua_State *L, int arg); /* NULL if not a tensor; errors if freed */
/* Pushes a new, empty tensor userdata and returns its slot: allocate the
 * userdata first, then let the core fill the slot, so nothing can leak if
 * pushing fails. */
lm_tensor **l_push_slot(lua_State *L);
/* Pushes a tensor userdata holding a new reference to t, taken only once
 * the userdata exists (nothing leaks if pushing fails). */
void l_push_retained(lua_State *L, lm_tensor *t);
/* Pushes a tensor userdata that takes over one reference of t; if pushing
 * fails for want of memory, that reference is released before the error
 * propagates. */
void l_push_tensor(lua_State *L, lm_tensor *t);
/* Raises lm_last_error() as a Lua error unless s is LM_OK; on success lets
 * the collector know about tensor memory. */
void l_check(lua_State *L, lm_status s);
/* Lua's collector only sees userdata headers; this runs a full collection
 * when tensor bytes have grown enough since the last one. */
void l_gc_account(lua_State *L);

/* A 1-based dimension (negative counts from the end) as 0-based. */
int l_check_dim(lua_State *L, int arg, int ndim, const char *fn);
/* Raises "<fn>: unknown option '<key>' (known: ...)" for a key of the
 * options table at `arg` (nothing when it is not a table) that is not in
 * `known`, a NULL-terminated list: a misspelt option is an error, never
 * ignored. */
void l_check_option_keys(lua_State *L, int arg, const char *fn, const char *const *known);
/* A path argument: a string (not a number) without NUL bytes (the system
 * would cut it); errors begin with fname. */
const char *l_check_path(lua_State *L, int arg, const char *fname);
/* lm._moves(): how many times x:_take_ gave a tensor new values (l_tensor.c). */
int l_moves(lua_State *L);
/* A shape given as varargs of integers from `first`, or as one table. */
int l_check_shape(lua_State *L, int first, int64_t *shape, const char *fn);
/* "float32"/"float" or "int32"/"int"; `def` when absent. */
lm_dtype l_check_dtype(lua_State *L, int arg, lm_dtype def);

void l_open_tensor(lua_State *L);
/* Adds the computing methods to the methods table on top of the stack and the
 * arithmetic metamethods to the metatable at `metatable` (l_tensor_math.c). */
void l_tensor_math_open(lua_State *L, int metatable);
/* Raises "<name>: min (lo) is greater than max (hi)" when lo > hi. */
void l_check_clamp_bounds(lua_State *L, const char *name, double lo,
                          double hi);           /* creates the metatable, leaves nothing */
void l_register_module_functions(lua_State *L); /* adds to the table on top */
void l_register_io_functions(lua_State *L);
void l_register_autograd(lua_State *L);
void l_register_nn(lua_State *L);
void l_register_data(lua_State *L);
void l_register_plot(lua_State *L);
void l_register_encode(lua_State *L);
void l_register_reference(lua_State *L); /* lm._reference (l_reference.c) */
void l_register_files(lua_State *L);
void l_register_blas(lua_State *L);       /* lm.blas_info (l_blas.c) */
void l_register_image(lua_State *L);      /* lm.image, lm._image_loader (l_image.c) */
void l_register_install(lua_State *L);    /* lm._share_dir, lm._build (l_api.c) */
void l_register_dist(lua_State *L);       /* lm._dist, the C half of lm.dist (l_dist.c) */
void l_register_cuda_graph(lua_State *L); /* lm.cuda._graph_* (l_cuda_graph.c; after lm.cuda) */

int lm_lua_open(lua_State *L); /* the body of luaopen_lumen */

#endif
