/* lm.save / lm.load: safetensors files of named tensors. */
#include <stdlib.h>
#include <string.h>

#include "l_common.h"
#include "lm_safetensors.h"

static int compare_names(const void *a, const void *b) {
    return strcmp(((const lm_named_tensor *)a)->name, ((const lm_named_tensor *)b)->name);
}

/* lm.save(path, {name = tensor, ...} [, {key = "value", ...}]) */
static int l_save(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    if (!lua_isnoneornil(L, 3)) luaL_checktype(L, 3, LUA_TTABLE);
    /* count and check before allocating */
    int count = 0, nmeta = 0;
    lua_pushnil(L);
    while (lua_next(L, 2)) {
        if (lua_type(L, -2) != LUA_TSTRING)
            return luaL_error(L, "save: tensor names must be strings, got a %s key",
                              luaL_typename(L, -2));
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
    l_check(L, lm_safetensors_save(path, items, count, meta, nmeta));
    return 0;
}

/* Frees a half-built load result if pushing fails. */
static int st_gc(lua_State *L) {
    lm_safetensors *st = lua_touserdata(L, 1);
    lm_safetensors_free(st);
    return 0;
}

/* lm.load(path) -> {name = tensor, ...}, {key = "value", ...} */
static int l_load(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    lm_safetensors *st = lua_newuserdatauv(L, sizeof *st, 0);
    memset(st, 0, sizeof *st);
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, st_gc);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    l_check(L, lm_safetensors_load(path, st));
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

static const luaL_Reg io_functions[] = {{"save", l_save}, {"load", l_load}, {NULL, NULL}};

void l_register_io_functions(lua_State *L) { luaL_setfuncs(L, io_functions, 0); }
