/* lm.write_file / lm.mkdir: files and folders from Lua without a shell, with
 * the core's atomic writer and directory creation. */
#include <stdlib.h>
#include <string.h>

#include "l_common.h"
#include "lm_atomic_file.h"
#include "lm_fs.h"

/* A path argument: a string (a number is refused, not turned into a file
 * name) without NUL bytes (a C string would end there); fname names the
 * function in the error, as Lua cannot name one reached through a table. */
const char *l_check_path(lua_State *L, int arg, const char *fname) {
    size_t n;
    const char *path = lua_type(L, arg) == LUA_TSTRING ? lua_tolstring(L, arg, &n) : NULL;
    if (!path) {
        int t = lua_type(L, arg);
        luaL_error(L, "%s: the path must be a string, got %s%s", fname,
                   t == LUA_TNONE || t == LUA_TNIL ? "" : "a ",
                   t == LUA_TNONE ? "nothing" : luaL_typename(L, arg));
    }
    if (strlen(path) != n) luaL_error(L, "%s: the path contains a NUL byte", fname);
    return path;
}

/* lm.write_file(path, contents): temporary file beside path, fsync, rename;
 * contents is a string or a list of strings written one after another */
static int l_write_file(lua_State *L) {
    const char *path = l_check_path(L, 1, "lm.write_file");
    if (!lua_istable(L, 2)) {
        size_t len;
        const char *contents = luaL_checklstring(L, 2, &len);
        if (lm_atomic_write(path, contents, len) != LM_OK)
            return luaL_error(L, "write_file: %s", lm_last_error());
        return 0;
    }
    /* every piece is checked before anything is allocated or written; the
     * table (argument 2) keeps the strings alive while they are written */
    size_t n = (size_t)luaL_len(L, 2);
    for (size_t i = 1; i <= n; i++) {
        if (lua_rawgeti(L, 2, (lua_Integer)i) != LUA_TSTRING)
            return luaL_error(L, "write_file: contents[%d] is a %s, not a string", (int)i,
                              luaL_typename(L, -1));
        lua_pop(L, 1);
    }
    const void **parts = malloc((n ? n : 1) * sizeof *parts);
    size_t *lens = malloc((n ? n : 1) * sizeof *lens);
    if (!parts || !lens) {
        free(parts);
        free(lens);
        return luaL_error(L, "write_file: out of memory");
    }
    for (size_t i = 1; i <= n; i++) {
        lua_rawgeti(L, 2, (lua_Integer)i);
        parts[i - 1] = lua_tolstring(L, -1, &lens[i - 1]);
        lua_pop(L, 1);
    }
    lm_status s = lm_atomic_write_parts(path, parts, lens, n);
    free(parts);
    free(lens);
    if (s != LM_OK) return luaL_error(L, "write_file: %s", lm_last_error());
    return 0;
}

/* lm.mkdir(path): the folder and its parents; an existing folder is fine */
static int l_mkdir(lua_State *L) {
    const char *path = l_check_path(L, 1, "lm.mkdir");
    if (lm_fs_mkdir(path) != LM_OK) return luaL_error(L, "%s", lm_last_error());
    return 0;
}

/* lm.list_dir(path) -> {{name = ..., dir = true | false}, ...} sorted by name */
static int l_list_dir(lua_State *L) {
    const char *path = l_check_path(L, 1, "lm.list_dir");
    lm_dir_entry *entries = NULL;
    int n = 0;
    if (lm_fs_list(path, &entries, &n) != LM_OK) return luaL_error(L, "%s", lm_last_error());
    /* the list is copied into Lua before anything can raise an error */
    if (!lua_checkstack(L, 4)) {
        lm_fs_list_free(entries, n);
        return luaL_error(L, "list_dir: Lua stack overflow");
    }
    lua_createtable(L, n, 0);
    for (int i = 0; i < n; i++) {
        lua_createtable(L, 0, 2);
        lua_pushstring(L, entries[i].name);
        lua_setfield(L, -2, "name");
        lua_pushboolean(L, entries[i].is_dir);
        lua_setfield(L, -2, "dir");
        lua_rawseti(L, -2, i + 1);
    }
    lm_fs_list_free(entries, n);
    return 1;
}

/* lm.real_path(path) -> the absolute path with links, "." and ".." resolved,
 * or nil and the reason where it does not exist (so that two spellings of
 * one folder compare equal) */
static int l_real_path(lua_State *L) {
    const char *path = l_check_path(L, 1, "lm.real_path");
    char *real = NULL;
    if (lm_fs_real_path(path, &real) != LM_OK) {
        lua_pushnil(L);
        lua_pushstring(L, lm_last_error());
        return 2;
    }
    lua_pushstring(L, real);
    free(real);
    return 1;
}

static const luaL_Reg file_functions[] = {{"write_file", l_write_file},
                                          {"mkdir", l_mkdir},
                                          {"list_dir", l_list_dir},
                                          {"real_path", l_real_path},
                                          {NULL, NULL}};

void l_register_files(lua_State *L) {
    luaL_setfuncs(L, file_functions, 0);
}
