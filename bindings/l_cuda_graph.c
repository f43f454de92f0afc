/* lm.cuda._graph_begin / _graph_end and the graph's replay: the C half of
 * lm.cuda.graph (lua/lumen/cuda_graph.lua). */
#include "l_common.h"
#include "lm_cuda.h"

#define GRAPH_MT "lumen.cuda_graph"

typedef struct {
    lm_cuda_graph *g;
} graph_ud;

static int l_graph_begin(lua_State *L) {
    l_check(L, lm_cuda_graph_begin());
    return 0;
}

/* _graph_end(abandon): the graph, or nothing when abandoned */
static int l_graph_end(lua_State *L) {
    bool abandon = lua_toboolean(L, 1);
    graph_ud *u = abandon ? NULL : lua_newuserdatauv(L, sizeof *u, 0);
    lm_cuda_graph *g = NULL;
    l_check(L, lm_cuda_graph_end(&g, abandon));
    if (abandon) return 0;
    u->g = g;
    luaL_setmetatable(L, GRAPH_MT);
    return 1;
}

static int l_capturing(lua_State *L) {
    lua_pushboolean(L, lm_cuda_capturing());
    return 1;
}

static graph_ud *check_graph(lua_State *L) {
    graph_ud *u = luaL_checkudata(L, 1, GRAPH_MT);
    if (!u->g) luaL_error(L, "replay: this CUDA graph was freed");
    return u;
}

static int l_refresh_begin(lua_State *L) {
    l_check(L, lm_cuda_graph_refresh_begin(check_graph(L)->g));
    return 0;
}

static int l_refresh_end(lua_State *L) {
    l_check(L, lm_cuda_graph_refresh_end());
    return 0;
}

static int g_replay(lua_State *L) {
    l_check(L, lm_cuda_graph_replay(check_graph(L)->g));
    return 0;
}

/* g:free() gives its device memory back now; the collector does it too */
static int g_free(lua_State *L) {
    graph_ud *u = luaL_checkudata(L, 1, GRAPH_MT);
    lm_cuda_graph_free(u->g);
    u->g = NULL;
    return 0;
}

static int g_tostring(lua_State *L) {
    graph_ud *u = luaL_checkudata(L, 1, GRAPH_MT);
    lua_pushstring(L, u->g ? "[CUDA graph]" : "[CUDA graph, freed]");
    return 1;
}

static const luaL_Reg graph_methods[] = {{"replay", g_replay}, {"free", g_free}, {NULL, NULL}};

static const luaL_Reg cuda_graph_functions[] = {{"_graph_begin", l_graph_begin},
                                                {"_graph_end", l_graph_end},
                                                {"capturing", l_capturing},
                                                {"_graph_refresh_begin", l_refresh_begin},
                                                {"_graph_refresh_end", l_refresh_end},
                                                {NULL, NULL}};

void l_register_cuda_graph(lua_State *L) {
    lua_getfield(L, -1, "cuda");
    luaL_setfuncs(L, cuda_graph_functions, 0);
    lua_pop(L, 1);
    if (luaL_newmetatable(L, GRAPH_MT)) {
        luaL_newlib(L, graph_methods);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, g_free);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, g_tostring);
        lua_setfield(L, -2, "__tostring");
    }
    lua_pop(L, 1);
}
