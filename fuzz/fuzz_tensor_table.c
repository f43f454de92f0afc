/* libFuzzer harness: lm.tensor from nested Lua tables. The input bytes
 * describe a table (1 byte: kind; numbers, nested tables, strings, ragged
 * rows, deep nesting) that is built in a Lua state and given to
 * lm.tensor(t [, dtype]); any outcome but a crash is fine. */
#include <lauxlib.h>
#include <lualib.h>
#include <stdint.h>
#include <string.h>

#include "l_common.h"

static lua_State *L;

/* Pushes a value described by data[*pos..]; depth-limited. */
static void push_value(const uint8_t *data, size_t size, size_t *pos, int depth) {
    if (*pos >= size) {
        lua_pushinteger(L, 0);
        return;
    }
    uint8_t kind = data[(*pos)++];
    switch (kind % 8) {
    case 0:
    case 1:
    case 2: /* a number */
        lua_pushnumber(L, (double)(int8_t)kind * 0.37);
        break;
    case 3: /* an integer */
        lua_pushinteger(L, (lua_Integer)(int8_t)kind * 1000003);
        break;
    case 4: /* a string */
        lua_pushstring(L, "x");
        break;
    case 5: /* a huge or odd number */
        lua_pushnumber(L, kind & 16 ? 1e300 : (kind & 32 ? -0.0 : 0.0 / 0.0));
        break;
    default: { /* a nested table of n items */
        int n = *pos < size ? data[(*pos)++] % 9 : 0;
        lua_createtable(L, n, 0);
        for (int i = 1; i <= n; i++) {
            if (depth < 10)
                push_value(data, size, pos, depth + 1);
            else
                lua_pushinteger(L, i);
            lua_rawseti(L, -2, i);
        }
    }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!L) {
        L = luaL_newstate();
        luaL_openlibs(L);
        luaL_requiref(L, "lumen", lm_lua_open, 0);
        lua_setglobal(L, "lm");
    }
    int top = lua_gettop(L);
    lua_getglobal(L, "lm");
    lua_getfield(L, -1, "tensor");
    size_t pos = 1;
    push_value(data, size, &pos, 0);
    int nargs = 1;
    if (size && (data[0] & 1)) {
        lua_pushstring(L, data[0] & 2 ? "int32" : "float32");
        nargs = 2;
    }
    lua_pcall(L, nargs, 1, 0); /* an error is a fine outcome */
    lua_settop(L, top);
    lua_gc(L, LUA_GCCOLLECT);
    return 0;
}
