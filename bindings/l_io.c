/* lm.save / lm.load: safetensors files of named tensors. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "l_common.h"
#include "lm_safetensors.h"

static int compare_names(const void *a, const void *b) {
    return strcmp(((const lm_named_tensor *)a)->name, ((const lm_named_tensor *)b)->name);
}

/* The stored float format named by options.dtype (nil: float32). */
static lm_float_format check_float_format(lua_State *L, int options) {
    static const char *const names[] = {"float32", "float16", "bfloat16", NULL};
    static const lm_float_format formats[] = {LM_STORE_FLOAT32, LM_STORE_FLOAT16,
                                              LM_STORE_BFLOAT16};
    lua_getfield(L, options, "dtype");
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return LM_STORE_FLOAT32;
    }
    const char *name = lua_tostring(L, -1);
    for (int i = 0; name && names[i]; i++)
        if (strcmp(name, names[i]) == 0) {
            lua_pop(L, 1);
            return formats[i];
        }
    return luaL_error(L, "save: dtype must be 'float32', 'float16' or 'bfloat16', got %s",
                      name ? name : luaL_typename(L, -1));
}

/* lm.save(path, {name = tensor, ...} [, {key = "value", ...}])
 * lm.save(path, tensors, {dtype = 'float16' | 'bfloat16', metadata = {...}}):
 * a third table with a `dtype` or `metadata` key holds options. */
static int l_save(lua_State *L) {
    const char *path = l_check_path(L, 1, "lm.save");
    luaL_checktype(L, 2, LUA_TTABLE);
    if (!lua_isnoneornil(L, 3)) luaL_checktype(L, 3, LUA_TTABLE);
    lm_float_format format = LM_STORE_FLOAT32;
    if (!lua_isnoneornil(L, 3)) {
        bool options = lua_getfield(L, 3, "dtype") != LUA_TNIL;
        options = lua_getfield(L, 3, "metadata") != LUA_TNIL || options;
        if (options) {
            lua_pop(L, 2);
            /* an options table holds only options: a misspelt one is an error */
            l_check_option_keys(L, 3, "save", (const char *const[]){"dtype", "metadata", NULL});
            lua_getfield(L, 3, "metadata");
            format = check_float_format(L, 3);
            if (!lua_isnil(L, -1) && !lua_istable(L, -1))
                return luaL_error(L, "save: options.metadata must be a table, got a %s",
                                  luaL_typename(L, -1));
            lua_replace(L, 3); /* from here on slot 3 holds the metadata (or nil) */
        } else {
            lua_pop(L, 2);
        }
    }
    /* count and check before allocating */
    int count = 0, nmeta = 0;
    lua_pushnil(L);
    while (lua_next(L, 2)) {
        if (lua_type(L, -2) != LUA_TSTRING)
            return luaL_error(L, "save: tensor names must be strings, got a %s key",
                              luaL_typename(L, -2));
        size_t len;
        const char *name = lua_tolstring(L, -2, &len);
        if (strlen(name) != len) return luaL_error(L, "save: a tensor name contains a NUL byte");
        if (!l_test_tensor(L, -1))
            return luaL_error(L, "save: '%s' is a %s, expected a tensor", lua_tostring(L, -2),
                              luaL_typename(L, -1));
        count++;
        lua_pop(L, 1);
    }
    if (!lua_isnoneornil(L, 3)) {
        lua_pushnil(L);
        while (lua_next(L, 3)) {
            if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
                return luaL_error(L, "save: metadata must map strings to strings");
            /* the format's strings end at a NUL: "k\0x" would be written as "k" */
            size_t klen, vlen;
            const char *key = lua_tolstring(L, -2, &klen), *value = lua_tolstring(L, -1, &vlen);
            if (strlen(key) != klen || strlen(value) != vlen)
                return luaL_error(L, "save: a metadata key or value contains a NUL byte");
            nmeta++;
            lua_pop(L, 1);
        }
    }
    /* scratch arrays owned by Lua, so an error cannot leak them */
    lm_named_tensor *items = lua_newuserdatauv(L, sizeof *items * (count ? count : 1), 0);
    lm_string_pair *meta = lua_newuserdatauv(L, sizeof *meta * (nmeta ? nmeta : 1), 0);
    int i = 0;
    lua_pushnil(L);
    while (lua_next(L, 2)) {
        items[i].name = (char *)lua_tostring(L, -2); /* kept alive by the table */
        items[i].tensor = l_check_tensor(L, -1);
        i++;
        lua_pop(L, 1);
    }
    qsort(items, count, sizeof *items, compare_names);
    i = 0;
    if (nmeta) {
        lua_pushnil(L);
        while (lua_next(L, 3)) {
            meta[i].key = (char *)lua_tostring(L, -2);
            meta[i].value = (char *)lua_tostring(L, -1);
            i++;
            lua_pop(L, 1);
        }
    }
    l_check(L, lm_safetensors_save_as(path, items, count, meta, nmeta, format));
    return 0;
}

/* Frees a half-built load result if pushing fails. */
static int st_gc(lua_State *L) {
    lm_safetensors *st = lua_touserdata(L, 1);
    lm_safetensors_free(st);
    return 0;
}

/* lm.load(path [, {map = true}]) -> {name = tensor, ...}, {key = "value", ...} */
static int l_load(lua_State *L) {
    const char *path = l_check_path(L, 1, "lm.load");
    bool map = false;
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        lua_getfield(L, 2, "map");
        map = lua_toboolean(L, -1);
        lua_pop(L, 1);
    }
    lm_safetensors *st = lua_newuserdatauv(L, sizeof *st, 0);
    memset(st, 0, sizeof *st);
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, st_gc);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    l_check(L, map ? lm_safetensors_load_mapped(path, st) : lm_safetensors_load(path, st));
    lua_createtable(L, 0, st->count);
    for (int i = 0; i < st->count; i++) {
        lm_tensor **slot = l_push_slot(L);
        *slot = st->tensors[i].tensor;
        st->tensors[i].tensor = NULL; /* moved into the userdata */
        lua_setfield(L, -2, st->tensors[i].name);
    }
    lua_createtable(L, 0, st->metadata_count);
    for (int i = 0; i < st->metadata_count; i++) {
        lua_pushstring(L, st->metadata[i].value);
        lua_setfield(L, -2, st->metadata[i].key);
    }
    return 2;
}

/* ---- lm.safetensors_writer: a file written a batch of rows at a time ------------------------ */

#define WRITER_MT "lumen.SafetensorsWriter"

typedef struct {
    lm_safetensors_writer *w; /* NULL once closed or aborted */
} writer_ud;

static writer_ud *check_writer(lua_State *L) {
    writer_ud *u = luaL_checkudata(L, 1, WRITER_MT);
    if (!u->w) luaL_error(L, "safetensors writer: already closed");
    return u;
}

/* lm.safetensors_writer(path, {{name = "h", shape = {N, D}, dtype = 'float32'}, ...}) */
static int l_safetensors_writer(lua_State *L) {
    const char *path = l_check_path(L, 1, "lm.safetensors_writer");
    luaL_checktype(L, 2, LUA_TTABLE);
    int count = (int)luaL_len(L, 2);
    lm_tensor_spec *specs =
        lua_newuserdatauv(L, sizeof *specs * (count ? count : 1), 0); /* scratch */
    lua_createtable(L, 0, count); /* name -> 0-based index, kept with the writer */
    int names = lua_gettop(L);
    for (int i = 0; i < count; i++) {
        lua_geti(L, 2, i + 1);
        if (!lua_istable(L, -1))
            return luaL_error(
                L, "safetensors_writer: entry %d must be a table {name, shape, dtype}", i + 1);
        lua_getfield(L, -1, "name");
        if (lua_type(L, -1) != LUA_TSTRING)
            return luaL_error(L, "safetensors_writer: entry %d needs a name (a string)", i + 1);
        specs[i].name = lua_tostring(L, -1);
        lua_pushvalue(L, -1);
        lua_pushinteger(L, i);
        lua_settable(L, names);
        lua_pop(L, 1); /* the name stays alive in the names table */
        lua_getfield(L, -1, "shape");
        if (!lua_istable(L, -1))
            return luaL_error(L, "safetensors_writer: '%s' needs a shape (a table of sizes)",
                              specs[i].name);
        specs[i].ndim = l_check_shape(L, lua_gettop(L), specs[i].shape, "safetensors_writer");
        lua_pop(L, 1);
        lua_getfield(L, -1, "dtype");
        specs[i].dtype = l_check_dtype(L, lua_gettop(L), LM_FLOAT32);
        lua_pop(L, 2);
    }
    writer_ud *u = lua_newuserdatauv(L, sizeof *u, 1);
    u->w = NULL;
    luaL_setmetatable(L, WRITER_MT);
    lua_pushvalue(L, names);
    lua_setiuservalue(L, -2, 1);
    l_check(L, lm_safetensors_writer_open(&u->w, path, specs, count));
    return 1;
}

/* w:append(name, rows) */
static int w_append(lua_State *L) {
    writer_ud *u = check_writer(L);
    const char *name = luaL_checkstring(L, 2);
    lm_tensor *rows = l_check_tensor(L, 3);
    lua_getiuservalue(L, 1, 1);
    lua_getfield(L, -1, name);
    if (!lua_isinteger(L, -1))
        return luaL_error(L, "safetensors writer: no tensor named '%s' in this file", name);
    l_check(L, lm_safetensors_writer_append(u->w, (int)lua_tointeger(L, -1), rows));
    lua_settop(L, 1);
    return 1;
}

/* w:close(): the file appears when every tensor is complete */
static int w_close(lua_State *L) {
    writer_ud *u = check_writer(L);
    l_check(L, lm_safetensors_writer_close(&u->w)); /* u->w is NULL unless rows are missing */
    return 0;
}

/* w:abort(), and what the collector does with a writer never closed */
static int w_abort(lua_State *L) {
    writer_ud *u = luaL_checkudata(L, 1, WRITER_MT);
    lm_safetensors_writer_abort(u->w);
    u->w = NULL;
    return 0;
}

static const luaL_Reg writer_methods[] = {
    {"append", w_append}, {"close", w_close}, {"abort", w_abort}, {NULL, NULL}};

static const luaL_Reg io_functions[] = {
    {"save", l_save}, {"load", l_load}, {"safetensors_writer", l_safetensors_writer}, {NULL, NULL}};

void l_register_io_functions(lua_State *L) {
    luaL_setfuncs(L, io_functions, 0);
    if (luaL_newmetatable(L, WRITER_MT)) {
        luaL_newlib(L, writer_methods);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, w_abort);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, w_abort);
        lua_setfield(L, -2, "__close");
    }
    lua_pop(L, 1);
}
