/* The lumen.Tensor userdata: metatable, methods and metamethods. */
#include <math.h>
#include <string.h>

#include "l_common.h"
#include "lm_alloc.h"
#include "lm_autograd.h"
#include "lm_cuda.h"
#include "lm_ops.h"
#include "lm_rng.h"

/* ---- userdata lifecycle --------------------------------------------------------------- */

lm_tensor *l_test_tensor(lua_State *L, int arg) {
    l_tensor_ud *ud = luaL_testudata(L, arg, L_TENSOR_MT);
    if (ud && !ud->t) luaL_error(L, "bad argument #%d: this tensor has been freed", arg);
    return ud ? ud->t : NULL;
}

lm_tensor *l_check_tensor(lua_State *L, int arg) {
    l_tensor_ud *ud = luaL_testudata(L, arg, L_TENSOR_MT);
    if (!ud) {
        const char *got = luaL_typename(L, arg);
        if (luaL_getmetafield(L, arg, "__name") == LUA_TSTRING) got = lua_tostring(L, -1);
        luaL_error(L, "bad argument #%d: expected a tensor, got %s", arg, got);
    }
    if (!ud->t) luaL_error(L, "bad argument #%d: this tensor has been freed", arg);
    return ud->t;
}

lm_tensor **l_push_slot(lua_State *L) {
    l_tensor_ud *ud = lua_newuserdatauv(L, sizeof *ud, 1);
    ud->t = NULL; /* "closed" until the core fills it */
    luaL_setmetatable(L, L_TENSOR_MT);
    return &ud->t;
}

void l_push_retained(lua_State *L, lm_tensor *t) {
    lm_tensor **slot = l_push_slot(L);
    *slot = lm_tensor_retain(t);
}

static int push_empty_slot(lua_State *L) {
    l_push_slot(L);
    return 1;
}

void l_push_tensor(lua_State *L, lm_tensor *t) {
    /* the userdata is made under protection: a memory error there would
     * otherwise unwind past the reference this call owns */
    lua_pushcfunction(L, push_empty_slot);
    if (lua_pcall(L, 0, 1, 0) != LUA_OK) {
        lm_tensor_release(t);
        lua_error(L);
    }
    ((l_tensor_ud *)lua_touserdata(L, -1))->t = t;
}

/* Bytes held by tensors on every device: Lua's collector sees only the small
 * userdata, so a full collection runs whenever they grow past a threshold. */
static size_t live_tensor_bytes(void) {
    return lm_cpu_memory_stats().live_bytes + lm_cuda_memory_stats().live_bytes;
}

/* The fewest tensor bytes seen alive since the last forced collection (any
 * collection, a script's collectgarbage() included, shows up here as a
 * drop), and how much garbage may pile on top of it. */
static size_t live_floor, gc_slack = (size_t)64 << 20;

void l_gc_account(lua_State *L) {
    /* Tell the incremental collector about tensor memory as if Lua had
     * allocated it, so it keeps pace with a loop's garbage tensors (their
     * userdata are tiny; without this, garbage grows until the threshold). */
    static uint64_t reported;
    uint64_t total = lm_cpu_memory_stats().allocated_total + lm_cuda_memory_stats().allocated_total;
    if (total - reported >= ((uint64_t)1 << 20)) {
        lua_gc(L, LUA_GCSTEP, (int)((total - reported) >> 10));
        reported = total;
    }
    size_t live = live_tensor_bytes();
    if (live < live_floor) live_floor = live;
    if (live <= live_floor + gc_slack) return;
    lua_gc(L, LUA_GCCOLLECT);
    live_floor = live_tensor_bytes();
    /* garbage may grow by 64 MiB before the next full collection, or by four
     * times Lua's own heap when that is larger: a full collection costs time
     * in proportion to that heap, and this keeps its cost small against the
     * tensor bytes allocated in between. (A slack in proportion to what lives
     * let 140 MB of garbage pile up beside a 1 GB recording and then sit in
     * the block cache.) */
    size_t lua_heap = (size_t)lua_gc(L, LUA_GCCOUNT) << 10;
    gc_slack = 4 * lua_heap > ((size_t)64 << 20) ? 4 * lua_heap : ((size_t)64 << 20);
}

void l_check(lua_State *L, lm_status s) {
    if (s != LM_OK) luaL_error(L, "%s", lm_last_error());
    if (lm_detect_anomaly()) { /* an op's result is the slot on top of the stack */
        l_tensor_ud *ud = luaL_testudata(L, -1, L_TENSOR_MT);
        if (ud && ud->t && lm_check_output(ud->t) != LM_OK) luaL_error(L, "%s", lm_last_error());
    }
    l_gc_account(L);
}

static int t_free(lua_State *L) {
    l_tensor_ud *ud = luaL_checkudata(L, 1, L_TENSOR_MT);
    lm_tensor_release(ud->t);
    ud->t = NULL;
    return 0;
}

/* ---- argument helpers -------------------------------------------------------------------- */

int l_check_dim(lua_State *L, int arg, int ndim, const char *fn) {
    lua_Integer d = luaL_checkinteger(L, arg);
    lua_Integer n = ndim ? ndim : 1; /* a 0-D tensor takes 1 and -1, as torch's dim 0 and -1 */
    lua_Integer d0 = d < 0 ? n + d : d - 1;
    if (d == 0 || d0 < 0 || d0 >= n)
        luaL_error(L, "%s: dimension %d out of range for a %d-D tensor", fn, (int)d, ndim);
    return (int)d0;
}

void l_check_option_keys(lua_State *L, int arg, const char *fn, const char *const *known) {
    if (!lua_istable(L, arg)) return;
    arg = lua_absindex(L, arg);
    lua_pushnil(L);
    while (lua_next(L, arg)) {
        const char *key = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
        bool found = false;
        for (const char *const *k = known; key && *k && !found; k++) found = !strcmp(key, *k);
        if (!found) {
            luaL_Buffer b;
            luaL_buffinit(L, &b);
            for (const char *const *k = known; *k; k++) {
                if (k != known) luaL_addstring(&b, ", ");
                luaL_addstring(&b, *k);
            }
            luaL_pushresult(&b);
            luaL_error(L, "%s: unknown option '%s' (known: %s)", fn,
                       key ? key : luaL_typename(L, -3), lua_tostring(L, -1));
        }
        lua_pop(L, 1);
    }
}

int l_check_shape(lua_State *L, int first, int64_t *shape, const char *fn) {
    int n = 0;
    if (lua_istable(L, first)) {
        n = (int)luaL_len(L, first);
        if (n > LM_MAX_DIMS) luaL_error(L, "%s: %d dimensions, at most %d", fn, n, LM_MAX_DIMS);
        for (int i = 1; i <= n; i++) {
            lua_geti(L, first, i);
            int ok;
            lua_Integer v = lua_tointegerx(L, -1, &ok);
            if (!ok || v < -1)
                luaL_error(L, "%s: size %d of the shape must be a non-negative integer", fn, i);
            shape[i - 1] = v;
            lua_pop(L, 1);
        }
        return n;
    }
    int top = lua_gettop(L);
    for (int i = first; i <= top && lua_type(L, i) == LUA_TNUMBER; i++) {
        if (n == LM_MAX_DIMS) luaL_error(L, "%s: at most %d dimensions", fn, LM_MAX_DIMS);
        int ok;
        lua_Integer v = lua_tointegerx(L, i, &ok);
        if (!ok || v < -1)
            luaL_error(L, "%s: size %d of the shape must be a non-negative integer", fn, n + 1);
        shape[n++] = v;
    }
    return n;
}

lm_dtype l_check_dtype(lua_State *L, int arg, lm_dtype def) {
    if (lua_isnoneornil(L, arg)) return def;
    const char *s = luaL_checkstring(L, arg);
    if (!strcmp(s, "float32") || !strcmp(s, "float")) return LM_FLOAT32;
    if (!strcmp(s, "int32") || !strcmp(s, "int")) return LM_INT32;
    if (!strcmp(s, "uint8") || !strcmp(s, "byte")) return LM_UINT8;
    return (lm_dtype)luaL_error(L, "unknown dtype '%s' (expected 'float32', 'int32' or 'uint8')",
                                s);
}

/* ---- metadata ------------------------------------------------------------------------------ */

static void push_shape(lua_State *L, const lm_tensor *t) {
    lua_createtable(L, t->ndim, 0);
    for (int d = 0; d < t->ndim; d++) {
        lua_pushinteger(L, t->shape[d]);
        lua_rawseti(L, -2, d + 1);
    }
}

static int t_shape(lua_State *L) {
    push_shape(L, l_check_tensor(L, 1));
    return 1;
}

static int t_size(lua_State *L) {
    lm_tensor *t = l_check_tensor(L, 1);
    if (lua_isnoneornil(L, 2)) {
        push_shape(L, t);
        return 1;
    }
    /* l_check_dim lets reductions name dimension 1 of a 0-D tensor; sizes it has none */
    if (t->ndim == 0) return luaL_error(L, "size: a 0-D tensor has no dimensions");
    lua_pushinteger(L, t->shape[l_check_dim(L, 2, t->ndim, "size")]);
    return 1;
}

static int t_stride(lua_State *L) {
    lm_tensor *t = l_check_tensor(L, 1);
    if (!lua_isnoneornil(L, 2)) {
        if (t->ndim == 0) return luaL_error(L, "stride: a 0-D tensor has no dimensions");
        lua_pushinteger(L, t->strides[l_check_dim(L, 2, t->ndim, "stride")]);
        return 1;
    }
    lua_createtable(L, t->ndim, 0);
    for (int d = 0; d < t->ndim; d++) {
        lua_pushinteger(L, t->strides[d]);
        lua_rawseti(L, -2, d + 1);
    }
    return 1;
}

static int t_dim(lua_State *L) {
    lua_pushinteger(L, l_check_tensor(L, 1)->ndim);
    return 1;
}

static int t_numel(lua_State *L) {
    lua_pushinteger(L, lm_tensor_numel(l_check_tensor(L, 1)));
    return 1;
}

static int t_dtype(lua_State *L) {
    lua_pushstring(L, lm_dtype_name(l_check_tensor(L, 1)->dtype));
    return 1;
}

static int t_device(lua_State *L) {
    lua_pushstring(L, lm_device_name(l_check_tensor(L, 1)->storage->device));
    return 1;
}

static int t_is_contiguous(lua_State *L) {
    lua_pushboolean(L, lm_tensor_is_contiguous(l_check_tensor(L, 1)));
    return 1;
}

static int t_len(lua_State *L) {
    lm_tensor *t = l_check_tensor(L, 1);
    /* as torch's len(): a 0-d tensor has no first dimension, and x[1] fails on it too */
    if (!t->ndim)
        return luaL_error(L, "#x: a 0-d tensor has no dimension 1 (x:item() reads its value)");
    lua_pushinteger(L, t->shape[0]);
    return 1;
}

/* ---- element access ----------------------------------------------------------------------------
 */

static void push_element(lua_State *L, lm_tensor *t, double v) {
    if (t->dtype != LM_FLOAT32)
        lua_pushinteger(L, (lua_Integer)v);
    else
        lua_pushnumber(L, v);
}

static int t_item(lua_State *L) {
    lm_tensor *t = l_check_tensor(L, 1);
    if (lm_tensor_numel(t) != 1)
        return luaL_error(L, "item: the tensor has %d elements, item needs exactly 1",
                          (int)lm_tensor_numel(t));
    double v;
    l_check(L, lm_get_element(t, 0, &v));
    push_element(L, t, v);
    return 1;
}

/* Nested tables of the values, read through one host copy. */
static void push_nested(lua_State *L, const lm_tensor *t, const void *data, int d, int64_t *pos) {
    if (d == t->ndim) {
        double v = lm_load_value(data, t->dtype, (*pos)++);
        if (t->dtype != LM_FLOAT32)
            lua_pushinteger(L, (lua_Integer)v);
        else
            lua_pushnumber(L, v);
        return;
    }
    luaL_checkstack(L, 4, "tensor too deep");
    lua_createtable(L, (int)t->shape[d], 0);
    for (int64_t i = 0; i < t->shape[d]; i++) {
        push_nested(L, t, data, d + 1, pos);
        lua_rawseti(L, -2, i + 1);
    }
}

static int t_totable(lua_State *L) {
    lm_tensor *t = l_check_tensor(L, 1);
    size_t bytes = (size_t)lm_tensor_numel(t) * lm_dtype_size(t->dtype);
    void *buf = lua_newuserdatauv(L, bytes ? bytes : 1, 0); /* freed by the collector */
    l_check(L, lm_to_host(t, buf));
    int64_t pos = 0;
    push_nested(L, t, buf, 0, &pos);
    return 1;
}

/* x.grad: the same userdata on every access while the gradient tensor is the
 * same (kept in the tensor's user value), so `x.grad == x.grad` holds. */
static int l_push_grad(lua_State *L, int idx) {
    lm_tensor *t = l_check_tensor(L, idx);
    lm_tensor *g = lm_grad(t);
    if (!g) {
        lua_pushnil(L);
        return 1;
    }
    if (lua_getiuservalue(L, idx, 1) == LUA_TUSERDATA) {
        l_tensor_ud *cached = luaL_testudata(L, -1, L_TENSOR_MT);
        if (cached && cached->t == g) return 1;
    }
    lua_pop(L, 1);
    l_push_retained(L, g);
    lua_pushvalue(L, -1);
    lua_setiuservalue(L, idx, 1);
    return 1;
}

/* x[i]: a number for 1-D tensors, a view of slice i along dimension 1 otherwise. */
static int t_index(lua_State *L) {
    if (lua_type(L, 2) == LUA_TNUMBER) {
        lm_tensor *t = l_check_tensor(L, 1);
        if (t->ndim == 0) return luaL_error(L, "cannot index a 0-D tensor (use :item())");
        lua_Integer i = luaL_checkinteger(L, 2);
        lua_Integer i0 = i < 0 ? t->shape[0] + i : i - 1;
        if (i == 0 || i0 < 0 || i0 >= t->shape[0])
            return luaL_error(L, "index %d out of range for dimension 1 of size %d", (int)i,
                              (int)t->shape[0]);
        if (t->ndim == 1) {
            double v;
            l_check(L, lm_get_element(t, i0, &v));
            push_element(L, t, v);
            return 1;
        }
        l_check(L, lm_ag_select(l_push_slot(L), t, 0, i0));
        return 1;
    }
    if (lua_type(L, 2) == LUA_TSTRING && strcmp(lua_tostring(L, 2), "grad") == 0)
        return l_push_grad(L, 1);
    lua_pushvalue(L, 2);
    if (lua_gettable(L, lua_upvalueindex(1)) == LUA_TNIL && lua_type(L, 2) == LUA_TSTRING &&
        lua_tostring(L, 2)[0] != '_' &&
        lua_getfield(L, LUA_REGISTRYINDEX, "lumen.unknown_name") == LUA_TFUNCTION) {
        /* a misspelt method: lumen.help raises an error naming the closest ones */
        lua_pushliteral(L, "a tensor");
        lua_pushvalue(L, 2);
        lua_pushvalue(L, lua_upvalueindex(1));
        lua_call(L, 3, 0);
        lua_pushnil(L);
    }
    return 1;
}

static uint32_t inplace_begin(lua_State *L, const char *name, lm_tensor *t, bool same_value);
static lm_tensor *unaliased(lua_State *L, lm_tensor *t, lm_tensor *other);
static void check_copy_shape(lua_State *L, const char *name, lm_tensor *dst, lm_tensor *src);

/* x[i] = v: fills slice i with a number or copies a tensor into it. */
static int t_newindex(lua_State *L) {
    lm_tensor *t = l_check_tensor(L, 1);
    if (lua_type(L, 2) == LUA_TSTRING && strcmp(lua_tostring(L, 2), "grad") == 0) {
        lm_tensor *g = lua_isnil(L, 3) ? NULL : l_check_tensor(L, 3);
        l_check(L, lm_set_grad(t, g));
        lua_pushnil(L); /* drop the cached x.grad userdata with its reference */
        lua_setiuservalue(L, 1, 1);
        return 0;
    }
    if (lua_type(L, 2) != LUA_TNUMBER)
        return luaL_error(L, "tensors have no assignable fields ('%s')",
                          luaL_tolstring(L, 2, NULL));
    if (t->ndim == 0) return luaL_error(L, "cannot index a 0-D tensor");
    lua_Integer i = luaL_checkinteger(L, 2);
    lua_Integer i0 = i < 0 ? t->shape[0] + i : i - 1;
    if (i == 0 || i0 < 0 || i0 >= t->shape[0])
        return luaL_error(L, "index %d out of range for dimension 1 of size %d", (int)i,
                          (int)t->shape[0]);
    lm_tensor *src = l_test_tensor(L, 3);
    if (!src && lua_type(L, 3) != LUA_TNUMBER)
        return luaL_error(L, "can only assign a number or a tensor, got %s", luaL_typename(L, 3));
    lm_tensor **slot = l_push_slot(L);
    l_check(L, lm_tensor_select(slot, t, 0, i0));
    lm_tensor *dst = *slot;
    if (src) {
        check_copy_shape(L, "index assignment", dst, src);
        src = unaliased(L, dst, src);
    }
    uint32_t version = inplace_begin(L, "index assignment", t, !src);
    lm_status s = src ? lm_copy_(dst, src) : lm_fill_(dst, lua_tonumber(L, 3));
    if (s != LM_OK) t->storage->version = version;
    l_check(L, s);
    return 0;
}

/* ---- views ------------------------------------------------------------------------------------
 */

static int t_view(lua_State *L) {
    lm_tensor *t = l_check_tensor(L, 1);
    int64_t shape[LM_MAX_DIMS];
    int n = l_check_shape(L, 2, shape, "view");
    l_check(L, lm_ag_view(l_push_slot(L), t, n, shape));
    return 1;
}

static int t_reshape(lua_State *L) {
    lm_tensor *t = l_check_tensor(L, 1);
    int64_t shape[LM_MAX_DIMS];
    int n = l_check_shape(L, 2, shape, "reshape");
    l_check(L, lm_ag_reshape(l_push_slot(L), t, n, shape));
    return 1;
}

/* x:flatten([first [, last]]): dimensions first..last (1-based, negative from
 * the end; all by default) merged into one, as torch.flatten. The size is
 * the product, not reshape's inferred -1, so an empty batch stays [0, n]. */
static int t_flatten(lua_State *L) {
    lm_tensor *t = l_check_tensor(L, 1);
    int64_t shape[LM_MAX_DIMS];
    int n = 0;
    if (t->ndim == 0) { /* torch: a 0-d tensor flattens to one element */
        shape[n++] = 1;
    } else {
        int first = lua_isnoneornil(L, 2) ? 0 : l_check_dim(L, 2, t->ndim, "flatten");
        int last = lua_isnoneornil(L, 3) ? t->ndim - 1 : l_check_dim(L, 3, t->ndim, "flatten");
        if (first > last)
            return luaL_error(L, "flatten: the first dimension (%d) comes after the last (%d)",
                              first + 1, last + 1);
        for (int d = 0; d < first; d++) shape[n++] = t->shape[d];
        int64_t merged = 1;
        for (int d = first; d <= last; d++) {
            if (t->shape[d] && merged > INT64_MAX / t->shape[d])
                return luaL_error(L, "flatten: the merged size is too large");
            merged *= t->shape[d];
        }
        shape[n++] = merged;
        for (int d = last + 1; d < t->ndim; d++) shape[n++] = t->shape[d];
    }
    l_check(L, lm_ag_reshape(l_push_slot(L), t, n, shape));
    return 1;
}

static int t_transpose(lua_State *L) {
    lm_tensor *t = l_check_tensor(L, 1);
    int d0, d1;
    if (lua_isnoneornil(L, 2)) { /* x:transpose() / x:t() of a matrix */
        if (t->ndim != 2)
            return luaL_error(L, "transpose: without dimensions needs a 2-D tensor, got %d-D",
                              t->ndim);
        d0 = 0, d1 = 1;
    } else {
        d0 = l_check_dim(L, 2, t->ndim, "transpose");
        d1 = l_check_dim(L, 3, t->ndim, "transpose");
    }
    l_check(L, lm_ag_transpose(l_push_slot(L), t, d0, d1));
    return 1;
}

/* x:permute(d1, d2, ...) or x:permute({d1, d2, ...}); a negative d counts from the end */
static int t_permute(lua_State *L) {
    lm_tensor *t = l_check_tensor(L, 1);
    int perm[LM_MAX_DIMS], n = 0;
    bool listed = lua_istable(L, 2);
    int count = listed ? (int)luaL_len(L, 2) : lua_gettop(L) - 1;
    if (count > LM_MAX_DIMS)
        return luaL_error(L, "permute: %d dimensions, at most %d", count, LM_MAX_DIMS);
    for (int i = 1; i <= count; i++) {
        if (listed) lua_geti(L, 2, i);
        perm[n++] = l_check_dim(L, listed ? lua_gettop(L) : i + 1, t->ndim, "permute");
        if (listed) lua_pop(L, 1);
    }
    l_check(L, lm_ag_permute(l_push_slot(L), t, n, perm));
    return 1;
}

static int t_narrow(lua_State *L) {
    lm_tensor *t = l_check_tensor(L, 1);
    int d = l_check_dim(L, 2, t->ndim, "narrow");
    lua_Integer start = luaL_checkinteger(L, 3), len = luaL_checkinteger(L, 4);
    if (start == 0) return luaL_error(L, "narrow: start 0 (indices start at 1; -1 is the last)");
    lua_Integer start0 = start < 0 ? t->shape[d] + start : start - 1; /* negative: from the end */
    if (start0 < 0)
        return luaL_error(L, "narrow: start %I out of range for size %I", start,
                          (lua_Integer)t->shape[d]);
    l_check(L, lm_ag_narrow(l_push_slot(L), t, d, start0, len));
    return 1;
}

static int t_select(lua_State *L) {
    lm_tensor *t = l_check_tensor(L, 1);
    int d = l_check_dim(L, 2, t->ndim, "select");
    lua_Integer i = luaL_checkinteger(L, 3);
    lua_Integer i0 = i < 0 ? t->shape[d] + i : i - 1;
    if (i == 0) return luaL_error(L, "select: index 0 (indices start at 1)");
    if (i0 < 0) /* the core's message would name the 0-based index */
        return luaL_error(L, "index %I out of range for dimension %d of size %I", i, d + 1,
                          (lua_Integer)t->shape[d]);
    l_check(L, lm_ag_select(l_push_slot(L), t, d, i0));
    return 1;
}

static int t_expand(lua_State *L) {
    lm_tensor *t = l_check_tensor(L, 1);
    int64_t shape[LM_MAX_DIMS];
    int n = l_check_shape(L, 2, shape, "expand");
    for (int i = 0; i < n; i++) /* -1 keeps the size of a dimension the tensor has */
        if (shape[i] == -1) {
            if (i - (n - t->ndim) < 0)
                return luaL_error(L,
                                  "expand: size -1 for new dimension %d (only existing dimensions "
                                  "keep their size)",
                                  i + 1);
            shape[i] = t->shape[i - (n - t->ndim)];
        }
    l_check(L, lm_ag_expand(l_push_slot(L), t, n, shape));
    return 1;
}

static int t_unsqueeze(lua_State *L) {
    lm_tensor *t = l_check_tensor(L, 1);
    int d = l_check_dim(L, 2, t->ndim + 1, "unsqueeze");
    l_check(L, lm_ag_unsqueeze(l_push_slot(L), t, d));
    return 1;
}

static int t_squeeze(lua_State *L) {
    lm_tensor *t = l_check_tensor(L, 1);
    int d = lua_isnoneornil(L, 2) ? -1 : l_check_dim(L, 2, t->ndim, "squeeze");
    l_check(L, lm_ag_squeeze(l_push_slot(L), t, d));
    return 1;
}

/* ---- copies and conversions ---------------------------------------------------------------------
 */

static int t_contiguous(lua_State *L) {
    lm_tensor *t = l_check_tensor(L, 1);
    if (lm_tensor_is_contiguous(t)) {
        lua_settop(L, 1);
        return 1;
    }
    l_check(L, lm_ag_contiguous(l_push_slot(L), t));
    return 1;
}

static int t_clone(lua_State *L) {
    lm_tensor *t = l_check_tensor(L, 1);
    l_check(L, lm_ag_clone(l_push_slot(L), t));
    return 1;
}

/* In-place writes (x:op_(...) returns x). Refused on leaves that require
 * gradients (and on views of them) and, unless every element gets the same
 * value (fill_, zero_), on tensors whose elements share memory (an expanded
 * dimension, stride 0), where the result would depend on the order of the
 * writes. The storage version is bumped only when the write succeeds, so a
 * refused call leaves the tensor as it was in every respect. */
static uint32_t inplace_begin(lua_State *L, const char *name, lm_tensor *t, bool same_value) {
    uint32_t version = t->storage->version;
    for (int d = 0; !same_value && d < t->ndim; d++)
        if (t->shape[d] > 1 && t->strides[d] == 0)
            luaL_error(L,
                       "%s: dimension %d is expanded (its elements share one memory location); "
                       "clone the tensor before writing to it in place",
                       name, d + 1);
    l_check(L, lm_check_inplace(name, t));
    return version;
}

static int inplace_end(lua_State *L, lm_tensor *t, uint32_t version, lm_status s) {
    if (s != LM_OK) t->storage->version = version;
    lua_settop(L, 1);
    l_check(L, s);
    return 1;
}

/* An operand sharing memory with the tensor written, other than as the very
 * same view, is read from a copy: the write would change some of its
 * elements before they are read. */
static lm_tensor *unaliased(lua_State *L, lm_tensor *t, lm_tensor *other) {
    if (other->storage != t->storage) return other;
    bool same = other->offset == t->offset && other->ndim == t->ndim;
    for (int d = 0; same && d < t->ndim; d++)
        same = other->shape[d] == t->shape[d] && other->strides[d] == t->strides[d];
    if (same) return other;
    lm_tensor **slot = l_push_slot(L);
    if (lm_clone(slot, other) != LM_OK) luaL_error(L, "%s", lm_last_error());
    return *slot;
}

/* The source of a copy must broadcast to the destination's shape. */
static void check_copy_shape(lua_State *L, const char *name, lm_tensor *dst, lm_tensor *src) {
    bool ok = src->ndim <= dst->ndim;
    for (int i = 1; ok && i <= src->ndim; i++) {
        int64_t n = src->shape[src->ndim - i];
        ok = n == 1 || n == dst->shape[dst->ndim - i];
    }
    if (!ok) {
        char a[LM_SHAPE_STR_MAX], b[LM_SHAPE_STR_MAX];
        luaL_error(L, "%s: a source of shape %s cannot be broadcast to the destination's shape %s",
                   name, lm_shape_str(src, a, sizeof a), lm_shape_str(dst, b, sizeof b));
    }
}

static int t_copy_(lua_State *L) {
    lm_tensor *dst = l_check_tensor(L, 1), *src = l_check_tensor(L, 2);
    check_copy_shape(L, "copy_", dst, src);
    src = unaliased(L, dst, src);
    uint32_t version = inplace_begin(L, "copy_", dst, false);
    return inplace_end(L, dst, version, lm_copy_(dst, src));
}

static int t_fill_(lua_State *L) {
    lm_tensor *t = l_check_tensor(L, 1);
    double v = luaL_checknumber(L, 2);
    uint32_t version = inplace_begin(L, "fill_", t, true);
    return inplace_end(L, t, version, lm_fill_(t, v));
}

static int convert(lua_State *L, lm_dtype dtype) {
    lm_tensor *t = l_check_tensor(L, 1);
    if (t->dtype == dtype) {
        lua_settop(L, 1);
        return 1;
    }
    l_check(L, lm_to_dtype(l_push_slot(L), t, dtype));
    return 1;
}
static int t_float(lua_State *L) {
    return convert(L, LM_FLOAT32);
}
static int t_int(lua_State *L) {
    return convert(L, LM_INT32);
}
static int t_byte(lua_State *L) {
    return convert(L, LM_UINT8);
}

static int t_to(lua_State *L) {
    lm_tensor *t = l_check_tensor(L, 1);
    const char *what = luaL_checkstring(L, 2);
    lm_device device;
    if (!strcmp(what, "cpu"))
        device = LM_CPU;
    else if (!strcmp(what, "cuda"))
        device = LM_CUDA;
    else if (!strcmp(what, "float32") || !strcmp(what, "float") || !strcmp(what, "int32") ||
             !strcmp(what, "int") || !strcmp(what, "uint8") || !strcmp(what, "byte"))
        return convert(L, l_check_dtype(L, 2, LM_FLOAT32));
    else
        return luaL_error(L,
                          "to: unknown device or dtype '%s' (expected 'cpu', 'cuda', "
                          "'float32', 'int32' or 'uint8')",
                          what);
    if (t->storage->device == device) {
        lua_settop(L, 1);
        return 1;
    }
    l_check(L, lm_to_device(l_push_slot(L), t, device));
    return 1;
}

/* Counts x:_take_ calls: an optimiser compares it with the count it last
 * saw to notice that its parameters moved (lm._moves()). */
static lua_Integer moves;

/* x:_take_(y [, grad]): the Lua tensor x now holds y's values (y's tensor,
 * typically x's copy on another device), keeping x's requires_grad, with
 * gradient `grad` (or none). net:to moves parameters so, in two phases (all
 * copies first, then every take, which cannot fail), so that an optimiser
 * or a list made before the move holds the moved parameter, and a refused
 * move changes nothing. Only a leaf of the same shape and dtype. */
static int t_take_(lua_State *L) {
    l_tensor_ud *ud = luaL_checkudata(L, 1, L_TENSOR_MT);
    lm_tensor *t = l_check_tensor(L, 1), *y = l_check_tensor(L, 2);
    lm_tensor *g = lua_isnoneornil(L, 3) ? NULL : l_check_tensor(L, 3);
    if (lm_grad_fn(t) || lm_grad_fn(y))
        return luaL_error(L,
                          "_take_: only a leaf tensor (a parameter or a buffer) takes new values");
    if (!lm_tensor_same_shape(t, y) || t->dtype != y->dtype)
        return luaL_error(L, "_take_: the new values must have the tensor's shape and dtype");
    bool requires = lm_requires_grad(t);
    if (y != t) {
        l_check(L, lm_set_requires_grad(y, requires));
        lm_tensor *old = ud->t;
        ud->t = lm_tensor_retain(y);
        lm_tensor_release(old);
    }
    l_check(L, lm_set_grad(ud->t, g));
    lua_pushnil(L); /* the cached x.grad userdata belonged to the old tensor */
    lua_setiuservalue(L, 1, 1);
    moves++;
    lua_settop(L, 1);
    return 1;
}

int l_moves(lua_State *L) {
    lua_pushinteger(L, moves);
    return 1;
}

/* ---- in place (x:op_(...) returns x) -------------------------------------------------------- */

static int inplace_binary(lua_State *L, lm_binary_op op, const char *name) {
    lm_tensor *t = l_check_tensor(L, 1);
    lm_tensor *other = l_test_tensor(L, 2);
    if (!other && lua_type(L, 2) != LUA_TNUMBER)
        return luaL_error(L, "%s: expected tensors or numbers, got %s and %s", name,
                          luaL_typename(L, 1), luaL_typename(L, 2));
    if (other) other = unaliased(L, t, other);
    uint32_t version = inplace_begin(L, name, t, false);
    return inplace_end(L, t, version,
                       other ? lm_binary_into(t, op, t, other)
                             : lm_binary_scalar_into(t, op, t, lua_tonumber(L, 2), false));
}
static int t_add_(lua_State *L) {
    return inplace_binary(L, LM_ADD, "add_");
}
static int t_sub_(lua_State *L) {
    return inplace_binary(L, LM_SUB, "sub_");
}
static int t_mul_(lua_State *L) {
    return inplace_binary(L, LM_MUL, "mul_");
}
static int t_div_(lua_State *L) {
    return inplace_binary(L, LM_DIV, "div_");
}

static int t_clamp_(lua_State *L) {
    lm_tensor *t = l_check_tensor(L, 1);
    double lo = luaL_optnumber(L, 2, -HUGE_VAL), hi = luaL_optnumber(L, 3, HUGE_VAL);
    l_check_clamp_bounds(L, "clamp_", lo, hi);
    uint32_t version = inplace_begin(L, "clamp_", t, false);
    return inplace_end(L, t, version, lm_unary_into(t, LM_CLAMP, t, lo, hi));
}

static int t_zero_(lua_State *L) {
    lm_tensor *t = l_check_tensor(L, 1);
    uint32_t version = inplace_begin(L, "zero_", t, true);
    return inplace_end(L, t, version, lm_fill_(t, 0));
}

static int t_normal_(lua_State *L) {
    lm_tensor *t = l_check_tensor(L, 1);
    double mean = luaL_optnumber(L, 2, 0), std = luaL_optnumber(L, 3, 1);
    uint32_t version = inplace_begin(L, "normal_", t, false);
    return inplace_end(L, t, version, lm_rand_normal_(t, mean, std));
}

static int t_uniform_(lua_State *L) {
    lm_tensor *t = l_check_tensor(L, 1);
    double lo = luaL_optnumber(L, 2, 0), hi = luaL_optnumber(L, 3, 1);
    uint32_t version = inplace_begin(L, "uniform_", t, false);
    return inplace_end(L, t, version, lm_rand_uniform_(t, lo, hi));
}

/* ---- registration -------------------------------------------------------------------------------
 */

static const luaL_Reg methods[] = {{"shape", t_shape},
                                   {"size", t_size},
                                   {"stride", t_stride},
                                   {"dim", t_dim},
                                   {"numel", t_numel},
                                   {"dtype", t_dtype},
                                   {"device", t_device},
                                   {"is_contiguous", t_is_contiguous},
                                   {"item", t_item},
                                   {"totable", t_totable},
                                   {"view", t_view},
                                   {"reshape", t_reshape},
                                   {"_take_", t_take_},
                                   {"flatten", t_flatten},
                                   {"transpose", t_transpose},
                                   {"t", t_transpose},
                                   {"permute", t_permute},
                                   {"narrow", t_narrow},
                                   {"select", t_select},
                                   {"expand", t_expand},
                                   {"unsqueeze", t_unsqueeze},
                                   {"squeeze", t_squeeze},
                                   {"contiguous", t_contiguous},
                                   {"clone", t_clone},
                                   {"copy_", t_copy_},
                                   {"fill_", t_fill_},
                                   {"float", t_float},
                                   {"int", t_int},
                                   {"byte", t_byte},
                                   {"to", t_to},
                                   {"free", t_free},
                                   {"add_", t_add_},
                                   {"sub_", t_sub_},
                                   {"mul_", t_mul_},
                                   {"div_", t_div_},
                                   {"clamp_", t_clamp_},
                                   {"zero_", t_zero_},
                                   {"normal_", t_normal_},
                                   {"uniform_", t_uniform_},
                                   {NULL, NULL}};

static const luaL_Reg metamethods[] = {{"__len", t_len},
                                       {"__newindex", t_newindex},
                                       {"__gc", t_free},
                                       {"__close", t_free},
                                       {NULL, NULL}};

void l_open_tensor(lua_State *L) {
    luaL_newmetatable(L, L_TENSOR_MT); /* sets __name */
    luaL_setfuncs(L, metamethods, 0);
    luaL_newlib(L, methods);
    l_tensor_math_open(L, -2); /* arithmetic, reductions: l_tensor_math.c */
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, "methods"); /* the Lua library adds methods here */
    lua_pushcclosure(L, t_index, 1);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
}
