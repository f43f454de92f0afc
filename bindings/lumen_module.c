/* lumen.so: `require 'lumen'` from a stock lua5.4. */
#include "l_common.h"

LUA_API int luaopen_lumen(lua_State *L);

int luaopen_lumen(lua_State *L) { return lm_lua_open(L); }
