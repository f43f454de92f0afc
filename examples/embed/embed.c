/* A C program with Lumen inside: it runs a Lumen script in its own Lua state,
 * then calls the core directly and hands a tensor it made to Lua.
 *
 *   cc embed.c $(pkg-config --cflags --libs lumen) -o embed && ./embed [script.lua]
 */
#include <stdio.h>

#include <lauxlib.h>
#include <lualib.h>
#include <lumen/lumen_lua.h>

static const char *script =
    "local lm = require 'lumen'\n"
    "lm.manual_seed(1)\n"
    "local nn = lm.nn\n"
    "local net = nn.Sequential(nn.Linear(3, 8), nn.ELU(), nn.Linear(8, 1))\n"
    "local y = net(lm.ones(4, 3))\n"
    "print('script: a ' .. y:shape_string() .. ' output from ' .. #net:parameters() .. ' "
    "parameters')\n"
    "return (lm.ones(2, 2) * 3):sum():item()\n";

/* Prints the core's message and returns 1 unless s is LM_OK. */
static int failed(lm_status s) {
    if (s == LM_OK) return 0;
    fprintf(stderr, "lumen: %s\n", lm_last_error());
    return 1;
}

int main(int argc, char **argv) {
    printf("Lumen %s (headers %s, %s build)\n", lumen_version(), LUMEN_VERSION_STRING,
           lumen_build_kind());

    /* 1. A Lua state with the standard libraries and lumen, then a script. */
    lua_State *L = luaL_newstate();
    if (!L) return 1;
    luaL_openlibs(L);
    luaL_requiref(L, "lumen", luaopen_lumen, 0); /* package.loaded.lumen, and the global */
    lua_setglobal(L, "lm");
    int status = argc > 1 ? luaL_dofile(L, argv[1]) : luaL_dostring(L, script);
    if (status != LUA_OK) {
        fprintf(stderr, "script failed: %s\n", lua_tostring(L, -1));
        lua_close(L);
        return 1;
    }
    if (lua_isnumber(L, -1)) printf("script returned %g\n", lua_tonumber(L, -1));
    lua_settop(L, 0);

    /* 2. The core directly: c = a b with a = 2 (2x3) and b = 1 (3x2). */
    lm_tensor *a = NULL, *b = NULL, *c = NULL, *bad = NULL;
    int64_t shape_a[2] = {2, 3}, shape_b[2] = {3, 2};
    int rc = failed(lm_full(&a, LM_FLOAT32, LM_CPU, 2, shape_a, 2.0)) ||
             failed(lm_full(&b, LM_FLOAT32, LM_CPU, 2, shape_b, 1.0)) ||
             failed(lm_matmul(&c, a, b));
    if (!rc) {
        float out[4];
        rc = failed(lm_to_host(c, out));
        if (!rc) printf("core: c = [[%g, %g], [%g, %g]]\n", out[0], out[1], out[2], out[3]);
    }
    /* A failing call returns a status and leaves a message. */
    if (!rc && lm_matmul(&bad, a, a) != LM_OK) printf("core: a a fails: %s\n", lm_last_error());

    /* 3. A tensor made in C, used from Lua: Lua takes over our reference. */
    if (!rc) {
        lumen_pushtensor(L, c);
        c = NULL;
        lua_setglobal(L, "c");
        if (luaL_dostring(L, "print('lua: c:sum() = ' .. c:sum():item())") != LUA_OK) {
            fprintf(stderr, "%s\n", lua_tostring(L, -1));
            rc = 1;
        }
    }
    lm_tensor_release(a);
    lm_tensor_release(b);
    lm_tensor_release(c); /* NULL is fine */
    lua_close(L);
    return rc;
}
