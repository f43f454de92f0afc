/* Autograd from Lua: tensor methods (requires_grad, backward, detach, ...),
 * grad mode, cat/stack, and custom functions whose backward is a Lua function. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "l_common.h"
#include "lm_autocast.h"
#include "lm_autograd.h"
#include "lm_ops.h"

/* ---- tensor methods
 * ------------------------------------------------------------------------------ */

/* x:requires_grad() -> boolean; x:requires_grad(flag) -> x */
static int t_requires_grad(lua_State *L) {
    lm_tensor *t = l_check_tensor(L, 1);
    if (lua_isnone(L, 2)) {
        lua_pushboolean(L, lm_requires_grad(t));
        return 1;
    }
    /* a boolean: requires_grad(opts.flag) with the flag unset is a mistake, not "false" */
    luaL_checktype(L, 2, LUA_TBOOLEAN);
    l_check(L, lm_set_requires_grad(t, lua_toboolean(L, 2)));
    lua_settop(L, 1);
    return 1;
}

/* The Lua state running a backward pass: custom functions call back into it. */
static lua_State *backward_state;

/* x:backward([grad] [, retain_graph]) */
static void release_dead_refs(lua_State *L);

static int t_backward(lua_State *L) {
    lm_tensor *t = l_check_tensor(L, 1);
    lm_tensor *grad = lua_isnoneornil(L, 2) ? NULL : l_check_tensor(L, 2);
    bool retain = lua_toboolean(L, 3);
    lua_State *outer = backward_state;
    backward_state = L;
    lm_status s = lm_backward(t, grad, retain);
    backward_state = outer;
    /* the custom Functions' backward closures (and what they saved) of the
     * graph this pass freed go now, not at the next Function's forward */
    if (!outer) release_dead_refs(L);
    l_check(L, s);
    return 0;
}

static int t_detach(lua_State *L) {
    lm_tensor *t = l_check_tensor(L, 1);
    l_check(L, lm_detach(l_push_slot(L), t));
    return 1;
}

static int t_is_leaf(lua_State *L) {
    lua_pushboolean(L, lm_grad_fn(l_check_tensor(L, 1)) == NULL);
    return 1;
}

/* The name of the op that computed x, or nil for a leaf. */
static int t_grad_fn(lua_State *L) {
    lm_node *n = lm_grad_fn(l_check_tensor(L, 1));
    if (n)
        lua_pushstring(L, n->name);
    else
        lua_pushnil(L);
    return 1;
}

/* x:retains_grad(): whether x:retain_grad() was called (and not undone) */
static int t_retains_grad(lua_State *L) {
    lua_pushboolean(L, lm_retains_grad(l_check_tensor(L, 1)));
    return 1;
}

/* x:retain_grad([keep]): keep = false undoes it */
static int t_retain_grad(lua_State *L) {
    lm_tensor *t = l_check_tensor(L, 1);
    if (!lua_isnoneornil(L, 2) && !lua_toboolean(L, 2))
        lm_unset_retain_grad(t);
    else
        l_check(L, lm_set_retain_grad(t));
    lua_settop(L, 1);
    return 1;
}

/* ---- module functions --------------------------------------------------------------------------
 */

static int l_set_grad_enabled(lua_State *L) {
    lua_pushboolean(L, lm_set_grad_enabled(lua_toboolean(L, 1)));
    return 1;
}

/* lm._detect_anomaly([flag]): sets anomaly mode when given; returns the mode now */
static int l_detect_anomaly(lua_State *L) {
    if (!lua_isnoneornil(L, 1)) {
        luaL_checktype(L, 1, LUA_TBOOLEAN);
        lm_set_detect_anomaly(lua_toboolean(L, 1));
    }
    lua_pushboolean(L, lm_detect_anomaly());
    return 1;
}

static const char *autocast_name(lm_autocast_mode m) {
    return m == LM_AUTOCAST_BF16 ? "bfloat16" : NULL;
}

/* lm._set_autocast(dtype): 'bfloat16' on, 'float32', false or nil off;
 * returns the previous mode ('bfloat16' or nil) */
static int l_set_autocast(lua_State *L) {
    lm_autocast_mode m = LM_AUTOCAST_OFF;
    if (lua_type(L, 1) == LUA_TSTRING) {
        const char *name = lua_tostring(L, 1);
        if (!strcmp(name, "bfloat16") || !strcmp(name, "bf16"))
            m = LM_AUTOCAST_BF16;
        else if (strcmp(name, "float32") != 0) {
            lua_pushfstring(L,
                            "autocast: no products in '%s' (use 'bfloat16', or 'float32' or "
                            "false to turn autocast off)",
                            name);
            return lua_error(L); /* no position: lm.autocast blames its caller */
        }
    } else if (!lua_isnoneornil(L, 1) && !(lua_isboolean(L, 1) && !lua_toboolean(L, 1))) {
        lua_pushfstring(L, "autocast: the dtype must be 'bfloat16', 'float32' or false, got %s",
                        luaL_typename(L, 1));
        return lua_error(L);
    }
    const char *old = autocast_name(lm_set_autocast(m));
    old ? lua_pushstring(L, old) : lua_pushnil(L);
    return 1;
}

static int l_get_autocast(lua_State *L) {
    const char *name = autocast_name(lm_autocast());
    name ? lua_pushstring(L, name) : lua_pushnil(L);
    return 1;
}

static int l_is_grad_enabled(lua_State *L) {
    lua_pushboolean(L, lm_grad_enabled());
    return 1;
}

/* Tensors of the list at `arg` into `ts` (at most max). */
static int check_tensor_list(lua_State *L, int arg, lm_tensor **ts, int max, const char *fn) {
    luaL_checktype(L, arg, LUA_TTABLE);
    /* raw reads: a value a metamethod made would have nothing keeping it alive */
    int n = (int)lua_rawlen(L, arg);
    if (n < 1) return luaL_error(L, "%s: needs a non-empty list of tensors", fn);
    if (n > max) return luaL_error(L, "%s: at most %d tensors, got %d", fn, max, n);
    for (int i = 1; i <= n; i++) {
        lua_rawgeti(L, arg, i);
        ts[i - 1] = l_test_tensor(L, -1);
        if (!ts[i - 1])
            return luaL_error(L, "%s: element %d of the list is a %s, expected a tensor", fn, i,
                              luaL_typename(L, -1));
        lua_pop(L, 1); /* the list keeps it alive */
    }
    return n;
}

/* The tensors of the list at `arg`, any number of them, in a scratch array
 * pushed as a userdata (an error leaves it to the collector). */
static lm_tensor **tensor_list(lua_State *L, int arg, int *n, const char *fn) {
    luaL_checktype(L, arg, LUA_TTABLE);
    lua_Unsigned len = lua_rawlen(L, arg);
    if (len > (lua_Unsigned)INT_MAX / sizeof(lm_tensor *))
        luaL_error(L, "%s: too many tensors (%llu)", fn, (unsigned long long)len);
    lm_tensor **ts = lua_newuserdatauv(L, sizeof(lm_tensor *) * (len ? len : 1), 0);
    *n = check_tensor_list(L, arg, ts, (int)len, fn);
    return ts;
}

/* lm.cat({tensors}, dim) */
static int l_cat(lua_State *L) {
    lua_settop(L, 2); /* the scratch list goes above the arguments */
    int n;
    lm_tensor **ts = tensor_list(L, 1, &n, "cat");
    int dim = l_check_dim(L, 2, ts[0]->ndim, "cat");
    if (!lm_any_requires_grad(n, ts) || n <= LM_NODE_MAX_INPUTS) {
        l_check(L, lm_ag_cat(l_push_slot(L), n, ts, dim));
        return 1;
    }
    /* more inputs than a node holds: concatenate in groups, then the groups,
     * level by level (a tree of cat nodes) */
    while (n > LM_NODE_MAX_INPUTS) {
        int ng = (n + LM_NODE_MAX_INPUTS - 1) / LM_NODE_MAX_INPUTS;
        luaL_checkstack(L, ng + 2, "cat: too many tensors");
        lm_tensor **groups = lua_newuserdatauv(L, sizeof(lm_tensor *) * (size_t)ng, 0);
        for (int g = 0, i = 0; i < n; g++, i += LM_NODE_MAX_INPUTS) {
            int len = n - i < LM_NODE_MAX_INPUTS ? n - i : LM_NODE_MAX_INPUTS;
            lm_tensor **slot = l_push_slot(L); /* kept on the stack until the end */
            l_check(L, lm_ag_cat(slot, len, ts + i, dim));
            groups[g] = *slot;
        }
        ts = groups, n = ng;
    }
    l_check(L, lm_ag_cat(l_push_slot(L), n, ts, dim));
    return 1;
}

/* lm.stack({tensors}, dim): a new dimension */
static int l_stack(lua_State *L) {
    lua_settop(L, 2); /* the scratch list goes above the arguments */
    int n;
    lm_tensor **ts = tensor_list(L, 1, &n, "stack");
    for (int i = 1; i < n; i++) /* named here: the cat below would name itself */
        if (!lm_tensor_same_shape(ts[i], ts[0])) {
            char a[LM_SHAPE_STR_MAX], b[LM_SHAPE_STR_MAX];
            return luaL_error(L, "stack: tensor %d has shape %s, tensor 1 has %s", i + 1,
                              lm_shape_str(ts[i], a, sizeof a), lm_shape_str(ts[0], b, sizeof b));
        }
    int dim = lua_isnoneornil(L, 2) ? 0 : l_check_dim(L, 2, ts[0]->ndim + 1, "stack");
    lua_createtable(L, n, 0);
    for (int i = 0; i < n; i++) {
        l_check(L, lm_ag_unsqueeze(l_push_slot(L), ts[i], dim));
        lua_rawseti(L, -2, i + 1);
    }
    lua_replace(L, 1);
    lua_settop(L, 1);
    lua_pushinteger(L, dim + 1);
    return l_cat(L);
}

/* ---- custom functions: lm._attach_function(output, {inputs}, backward)
 * ------------------------------ */

/* Registry references whose node died: released at the next call from Lua,
 * because a node may die inside a finalizer where the registry must not be
 * touched from C. */
static int *dead_refs;
static int ndead, cap_dead;

typedef struct {
    int ref; /* registry: the backward function */
} lua_rule;

/* A custom Function's name, kept for the life of the process: a node names
 * its op after its graph is freed too (grad_fn()), and a program has few
 * distinct Functions. NULL when out of memory. */
static const char *interned_name(const char *name) {
    static char **names;
    static int count, cap;
    for (int i = 0; i < count; i++)
        if (strcmp(names[i], name) == 0) return names[i];
    if (count == cap) {
        int c = cap ? cap * 2 : 16;
        char **p = realloc(names, sizeof *p * c);
        if (!p) return NULL;
        names = p, cap = c;
    }
    char *copy = malloc(strlen(name) + 1);
    if (!copy) return NULL;
    strcpy(copy, name);
    return names[count++] = copy;
}

static void free_lua_rule(void *ctx) {
    lua_rule *r = ctx;
    if (ndead == cap_dead) {
        int cap = cap_dead ? cap_dead * 2 : 16;
        int *p = realloc(dead_refs, sizeof *p * cap);
        if (!p) {
            free(r);
            return; /* the reference leaks; nothing else is lost */
        }
        dead_refs = p;
        cap_dead = cap;
    }
    dead_refs[ndead++] = r->ref;
    free(r);
}

static void release_dead_refs(lua_State *L) {
    while (ndead) luaL_unref(L, LUA_REGISTRYINDEX, dead_refs[--ndead]);
}

/* The Lua side of a custom rule's call, run protected: a Lua error here
 * (out of memory pushing the gradient, too) must not unwind through
 * lm_backward, which still holds the pass's state. */
typedef struct {
    int ref, nresults;
    lm_tensor *grad;
} rule_call;

static int call_rule(lua_State *L) {
    rule_call *c = lua_touserdata(L, 1);
    lua_rawgeti(L, LUA_REGISTRYINDEX, c->ref);
    l_push_retained(L, c->grad);
    lua_call(L, 1, c->nresults);
    return c->nresults;
}

static lm_status lua_rule_backward(lm_node *n, lm_tensor *g, lm_tensor **gi) {
    lua_State *L = backward_state;
    lua_rule *r = n->ctx;
    if (!L) return lm_fail(LM_ERR_STATE, "backward of %s: no Lua state", n->name);
    int top = lua_gettop(L);
    if (!lua_checkstack(L, n->ninputs + 4)) return lm_fail(LM_ERR_MEMORY, "Lua stack overflow");
    rule_call call = {r->ref, n->ninputs, g};
    lua_pushcfunction(L, call_rule);
    lua_pushlightuserdata(L, &call);
    if (lua_pcall(L, 1, n->ninputs, 0) != LUA_OK) {
        lm_status s = lm_fail(LM_ERR_STATE, "backward of %s: %s", n->name,
                              lua_tostring(L, -1) ? lua_tostring(L, -1) : "(error object)");
        lua_settop(L, top);
        return s;
    }
    lm_status s = LM_OK;
    for (int k = 0; k < n->ninputs && s == LM_OK; k++) {
        int idx = top + 1 + k;
        if (lua_isnil(L, idx) || !n->inputs[k]) continue;
        l_tensor_ud *ud = luaL_testudata(L, idx, L_TENSOR_MT);
        if (!ud || !ud->t) {
            s = lm_fail(LM_ERR_ARG, "backward of %s: result %d is a %s, expected a tensor or nil",
                        n->name, k + 1, luaL_typename(L, idx));
        } else if (ud->t->dtype != LM_FLOAT32 || ud->t->storage->device != n->inputs[k]->device) {
            s = lm_fail(LM_ERR_ARG,
                        "backward of %s: gradient %d is a %s tensor on %s, its input's must be "
                        "float32 on %s",
                        n->name, k + 1, lm_dtype_name(ud->t->dtype),
                        lm_device_name(ud->t->storage->device),
                        lm_device_name(n->inputs[k]->device));
        } else if (!lm_autograd_meta_same_shape(n->inputs[k], ud->t)) {
            char a[LM_SHAPE_STR_MAX], b[LM_SHAPE_STR_MAX];
            s = lm_fail(LM_ERR_SHAPE, "backward of %s: gradient %d has shape %s, its input %s",
                        n->name, k + 1, lm_shape_str(ud->t, a, sizeof a),
                        lm_dims_str(n->inputs[k]->ndim, n->inputs[k]->shape, b, sizeof b));
        } else {
            gi[k] = lm_tensor_retain(ud->t);
        }
    }
    lua_settop(L, top);
    return s;
}

static int l_attach_function(lua_State *L) {
    release_dead_refs(L);
    lm_tensor *out = l_check_tensor(L, 1);
    lm_tensor *ins[LM_NODE_MAX_INPUTS];
    int n = check_tensor_list(L, 2, ins, LM_NODE_MAX_INPUTS, "autograd.Function");
    luaL_checktype(L, 3, LUA_TFUNCTION);
    const char *name = luaL_optstring(L, 4, "custom function");
    if (!lm_any_requires_grad(n, ins)) return 0;
    /* an integer result (indices, counts) has no gradient, as in torch */
    if (out->dtype != LM_FLOAT32) return 0;
    if (lm_grad_fn(out)) return luaL_error(L, "autograd.Function: forward must not record a graph");
    lua_rule *r = malloc(sizeof *r);
    if (!r) return luaL_error(L, "out of memory");
    const char *kept = interned_name(name);
    lm_node *node = lm_node_attach(out, kept ? kept : "custom function", lua_rule_backward, n, ins);
    if (!node) {
        free(r);
        return luaL_error(L, "out of memory recording the graph");
    }
    lua_pushvalue(L, 3);
    r->ref = luaL_ref(L, LUA_REGISTRYINDEX);
    node->ctx = r;
    node->free_ctx = free_lua_rule;
    /* anomaly mode checks its output as every recorded op's */
    if (lm_check_output(out) != LM_OK) return luaL_error(L, "%s", lm_last_error());
    return 0;
}

static const luaL_Reg tensor_methods[] = {{"requires_grad", t_requires_grad},
                                          {"backward", t_backward},
                                          {"detach", t_detach},
                                          {"is_leaf", t_is_leaf},
                                          {"grad_fn", t_grad_fn},
                                          {"retain_grad", t_retain_grad},
                                          {"retains_grad", t_retains_grad},
                                          {NULL, NULL}};

/* lm._storage_version(t): how many in-place writes t's storage has had (a
 * custom Function compares it for the tensors it saved, as nodes do) */
static int l_storage_version(lua_State *L) {
    lua_pushinteger(L, l_check_tensor(L, 1)->storage->version);
    return 1;
}

static const luaL_Reg module_functions[] = {{"set_grad_enabled", l_set_grad_enabled},
                                            {"_set_autocast", l_set_autocast},
                                            {"get_autocast", l_get_autocast},
                                            {"is_grad_enabled", l_is_grad_enabled},
                                            {"_detect_anomaly", l_detect_anomaly},
                                            {"cat", l_cat},
                                            {"stack", l_stack},
                                            {"_attach_function", l_attach_function},
                                            {"_storage_version", l_storage_version},
                                            {NULL, NULL}};

void l_register_autograd(lua_State *L) {
    luaL_setfuncs(L, module_functions, 0);
    luaL_getmetatable(L, L_TENSOR_MT);
    lua_getfield(L, -1, "methods");
    luaL_setfuncs(L, tensor_methods, 0);
    lua_pop(L, 2);
}
