/* The Lua-facing half of the public C API (include/lumen/lumen_lua.h), the
 * version queries of include/lumen/lumen.h, and where an installed Lumen
 * keeps its shared files (lm.share_dir). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* dladdr */
#endif
#include <dlfcn.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "l_common.h"
#include "lumen/lumen_lua.h"

const char *lumen_version(void) {
    return LUMEN_VERSION;
}
const char *lumen_build_kind(void) {
    return LUMEN_BUILD_KIND;
}

lm_tensor *lumen_totensor(lua_State *L, int idx) {
    l_tensor_ud *ud = luaL_testudata(L, idx, L_TENSOR_MT);
    return ud ? ud->t : NULL;
}

lm_tensor *lumen_checktensor(lua_State *L, int idx) {
    return l_check_tensor(L, idx);
}

void lumen_pushtensor(lua_State *L, lm_tensor *t) {
    if (!t) luaL_error(L, "lumen_pushtensor: NULL tensor");
    l_push_tensor(L, t);
    l_gc_account(L);
}

void lumen_checkstatus(lua_State *L, lm_status s) {
    if (s != LM_OK) luaL_error(L, "%s", lm_last_error());
}

/* An installed Lumen: the program is PREFIX/bin/lumen, the module
 * PREFIX/lib/lua/5.4/lumen.so (or its LuaRocks twin), the library
 * PREFIX/lib/liblumen.so.*; the shared files are in PREFIX/share/lumen. Walks
 * up from the file holding this code until a share/lumen folder appears (at
 * most four levels); pushes its path, or nil in a build tree. */
static void push_share_dir(lua_State *L) {
    Dl_info info;
    char real[PATH_MAX], path[PATH_MAX + 32];
    if (!dladdr((void *)push_share_dir, &info) || !info.dli_fname ||
        !realpath(info.dli_fname, real)) { /* a path with "..": $ORIGIN/../lib */
        lua_pushnil(L);
        return;
    }
    strcpy(path, real);
    for (int level = 0; level < 4; level++) {
        char *slash = strrchr(path, '/');
        if (!slash) break;
        *slash = 0;
        size_t n = strlen(path);
        strcpy(path + n, "/share/lumen/experiments");
        struct stat st;
        bool found = stat(path, &st) == 0 && S_ISDIR(st.st_mode);
        path[n + strlen("/share/lumen")] = 0;
        if (found) {
            lua_pushstring(L, path);
            return;
        }
        path[n] = 0;
    }
    lua_pushnil(L);
}

void l_register_install(lua_State *L) {
    push_share_dir(L);
    lua_setfield(L, -2, "_share_dir");
    lua_createtable(L, 0, 4);
    lua_pushliteral(L, LUMEN_VERSION);
    lua_setfield(L, -2, "version");
    lua_pushliteral(L, LUMEN_BUILD_KIND);
    lua_setfield(L, -2, "kind");
#ifdef LUMEN_HAVE_CUDA
    lua_pushboolean(L, 1);
#else
    lua_pushboolean(L, 0);
#endif
    lua_setfield(L, -2, "cuda");
    lua_setfield(L, -2, "_build");
}
