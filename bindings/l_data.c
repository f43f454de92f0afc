/* Data set readers and row gathering from Lua. */
#include "l_common.h"
#include "lm_autograd.h"
#include "lm_datasets.h"
#include "lm_ops.h"

/* lm._idx_load(path, dtype, scale, max_value) */
static int l_idx_load(lua_State *L) {
    const char *path = l_check_path(L, 1, "lm.data");
    lm_dtype dtype = l_check_dtype(L, 2, LM_FLOAT32);
    double scale = luaL_optnumber(L, 3, 1.0);
    int max_value = (int)luaL_optinteger(L, 4, -1);
    lm_tensor **slot = l_push_slot(L);
    l_check(L, lm_idx_load(path, dtype, scale, max_value, slot));
    return 1;
}

/* lm._cifar_load(path [, dtype]) -> images [N, 3, 32, 32], labels [N] (1-based) */
static int l_cifar_load(lua_State *L) {
    const char *path = l_check_path(L, 1, "lm.data.cifar10");
    lm_dtype dtype = l_check_dtype(L, 2, LM_FLOAT32);
    lm_tensor **x = l_push_slot(L), **y0 = l_push_slot(L);
    lm_tensor *raw_y = NULL;
    l_check(L, lm_cifar_load(path, dtype, x, &raw_y));
    *y0 = raw_y;
    l_check(L, lm_binary_scalar(l_push_slot(L), LM_ADD, raw_y, 1, false));
    lua_remove(L, -2);
    return 2;
}

/* lm._data_set_empty(shape, dtype): an uninitialised CPU tensor for a data
 * set's rows, with huge pages asked for (lm_data_set_new) */
static int l_data_set_empty(lua_State *L) {
    int64_t shape[LM_MAX_DIMS];
    int ndim = l_check_shape(L, 1, shape, "_data_set_empty");
    lm_dtype dtype = l_check_dtype(L, 2, LM_FLOAT32);
    l_check(L, lm_data_set_new(l_push_slot(L), dtype, ndim, shape));
    return 1;
}

/* x:index_select(idx): rows idx (1-based int32) of x */
static int t_index_select(lua_State *L) {
    lm_tensor *x = l_check_tensor(L, 1), *idx = l_check_tensor(L, 2);
    if (idx->dtype != LM_INT32) return luaL_error(L, "index_select: indices must be int32");
    lm_tensor **zero_based = l_push_slot(L);
    l_check(L, lm_binary_scalar(zero_based, LM_SUB, idx, 1, false));
    l_check(L, lm_index_select(l_push_slot(L), x, *zero_based));
    return 1;
}

/* idx (1-based int32) as the core's 0-based index, kept on the stack; any
 * other dtype as it is, for the core's check to name */
static lm_tensor *zero_based(lua_State *L, lm_tensor *idx) {
    if (idx->dtype != LM_INT32) return idx;
    lm_tensor **slot = l_push_slot(L);
    l_check(L, lm_binary_scalar(slot, LM_SUB, idx, 1, false));
    return *slot;
}

/* x:gather(dim, idx): torch.gather with 1-based dims and index values */
static int t_gather(lua_State *L) {
    lm_tensor *x = l_check_tensor(L, 1);
    int dim = l_check_dim(L, 2, x->ndim, "gather");
    lm_tensor *idx = zero_based(L, l_check_tensor(L, 3));
    l_check(L, lm_ag_gather(l_push_slot(L), x, dim, idx));
    return 1;
}

/* x:scatter_add(dim, idx, src): a copy of x with src added where idx points */
static int t_scatter_add(lua_State *L) {
    lm_tensor *x = l_check_tensor(L, 1);
    int dim = l_check_dim(L, 2, x->ndim, "scatter_add");
    lm_tensor *raw = l_check_tensor(L, 3), *src = l_check_tensor(L, 4);
    lm_tensor *idx = zero_based(L, raw);
    l_check(L, lm_ag_scatter_add(l_push_slot(L), x, dim, idx, src));
    return 1;
}

/* lm._index_select_into(out, x, idx0): 0-based indices, for loaders' reused buffers */
static int l_index_select_into(lua_State *L) {
    lm_tensor *out = l_check_tensor(L, 1), *x = l_check_tensor(L, 2), *idx = l_check_tensor(L, 3);
    l_check(L, lm_index_select_into(out, x, idx));
    lua_settop(L, 1);
    return 1;
}

/* x:topk(k [, largest]) -> values, 1-based indices, per row of a 2-D tensor */
static int t_topk(lua_State *L) {
    lm_tensor *x = l_check_tensor(L, 1);
    lua_Integer k = luaL_checkinteger(L, 2);
    bool largest = lua_toboolean(L, 3);
    lm_tensor **values = l_push_slot(L), **raw = l_push_slot(L);
    lm_tensor *v = NULL, *i = NULL;
    l_check(L, lm_topk(&v, &i, x, k, largest));
    *values = v, *raw = i;
    l_check(L, lm_binary_scalar(l_push_slot(L), LM_ADD, i, 1, false));
    lua_remove(L, -2);
    return 2;
}

static const luaL_Reg functions[] = {{"_idx_load", l_idx_load},
                                     {"_cifar_load", l_cifar_load},
                                     {"_data_set_empty", l_data_set_empty},
                                     {"_index_select_into", l_index_select_into},
                                     {NULL, NULL}};

void l_register_data(lua_State *L) {
    luaL_setfuncs(L, functions, 0);
    luaL_getmetatable(L, L_TENSOR_MT);
    lua_getfield(L, -1, "methods");
    lua_pushcfunction(L, t_index_select);
    lua_setfield(L, -2, "index_select");
    lua_pushcfunction(L, t_gather);
    lua_setfield(L, -2, "gather");
    lua_pushcfunction(L, t_scatter_add);
    lua_setfield(L, -2, "scatter_add");
    lua_pushcfunction(L, t_topk);
    lua_setfield(L, -2, "topk");
    lua_pop(L, 2);
}
