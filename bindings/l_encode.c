/* lm.encode / lm.deflate / lm.base64: byte strings for self-contained reports. */
#include <stdlib.h>
#include <string.h>

#include "l_common.h"
#include "lm_encode.h"

/* Pushes a malloc'ed buffer as a Lua string and frees it. */
static int push_owned(lua_State *L, void *buf, size_t len) {
    lua_pushlstring(L, buf, len);
    free(buf);
    return 1;
}

/* lm.encode(t, 'uint8' | 'float32' | 'int32') -> string of little-endian values */
static int l_encode(lua_State *L) {
    lm_tensor *t = l_check_tensor(L, 1);
    static const char *const names[] = {"uint8", "float32", "int32", NULL};
    lm_byte_format fmt = (lm_byte_format)luaL_checkoption(L, 2, NULL, names);
    uint8_t *out;
    size_t len;
    l_check(L, lm_encode_values(t, fmt, &out, &len));
    return push_owned(L, out, len);
}

/* lm.deflate(s [, level]) -> zlib stream */
static int l_deflate(lua_State *L) {
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    int level = (int)luaL_optinteger(L, 2, 6);
    uint8_t *out;
    size_t len;
    l_check(L, lm_deflate((const uint8_t *)s, n, level, &out, &len));
    return push_owned(L, out, len);
}

/* lm.base64(s) -> base64 text */
static int l_base64(lua_State *L) {
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    char *out;
    size_t len;
    l_check(L, lm_base64_encode((const uint8_t *)s, n, &out, &len));
    return push_owned(L, out, len);
}

static const luaL_Reg encode_functions[] = {
    {"encode", l_encode}, {"deflate", l_deflate}, {"base64", l_base64}, {NULL, NULL}};

void l_register_encode(lua_State *L) {
    luaL_setfuncs(L, encode_functions, 0);
}
