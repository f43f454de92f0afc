/* lm.write_file / lm.mkdir: files and folders from Lua without a shell, with
 * the core's atomic writer and directory creation. */
#include <string.h>

#include "l_common.h"
#include "lm_atomic_file.h"
#include "lm_fs.h"

/* A path argument: a string without NUL bytes (the system would cut it). */
static const char *check_path(lua_State *L, int arg) {
    size_t n;
    const char *path = luaL_checklstring(L, arg, &n);
    if (strlen(path) != n) luaL_argerror(L, arg, "path contains a NUL byte");
    return path;
}

/* lm.write_file(path, contents): temporary file beside path, fsync, rename */
static int l_write_file(lua_State *L) {
    const char *path = check_path(L, 1);
    size_t len;
    const char *contents = luaL_checklstring(L, 2, &len);
    if (lm_atomic_write(path, contents, len) != LM_OK)
        return luaL_error(L, "write_file: %s", lm_last_error());
    return 0;
}

/* lm.mkdir(path): the folder and its parents; an existing folder is fine */
static int l_mkdir(lua_State *L) {
    const char *path = check_path(L, 1);
    if (lm_fs_mkdir(path) != LM_OK) return luaL_error(L, "%s", lm_last_error());
    return 0;
}

static const luaL_Reg file_functions[] = {
    {"write_file", l_write_file}, {"mkdir", l_mkdir}, {NULL, NULL}};

void l_register_files(lua_State *L) { luaL_setfuncs(L, file_functions, 0); }
