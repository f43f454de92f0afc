/* lumen.so: `require 'lumen'` from a stock lua5.4. */
#include "l_common.h"

#include "lumen/lumen_lua.h"

int luaopen_lumen(lua_State *L) {
    return lm_lua_open(L);
}
