/* lm._dist: the C half of lm.dist (lua/lumen/dist.lua), over core/lm_dist.h. */
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "l_common.h"
#include "lm_dist.h"

/* Raises the core's message as "lm.dist.<fn>: ..." at the caller's line. */
static void dist_check(lua_State *L, lm_status s) {
    if (s == LM_OK) return;
    const char *msg = lm_last_error();
    if (strncmp(msg, "lm.dist", 7) == 0) luaL_error(L, "%s", msg);
    luaL_error(L, "lm.dist.%s", msg);
}

/* os.exit under MPI with several processes: a non-zero code would leave the
 * other ranks waiting in their next collective (and MPI_Finalize waits for
 * them), so it ends the whole job, naming the rank; a zero code exits as
 * usual (MPI is finalised at exit). */
static int dist_os_exit(lua_State *L) {
    bool failure;
    if (lua_isboolean(L, 1))
        failure = !lua_toboolean(L, 1);
    else
        failure = luaL_optinteger(L, 1, 0) != 0;
    if (failure && lm_dist_active() && lm_dist_size() > 1) {
        int c = lua_isboolean(L, 1) ? 1 : (int)lua_tointeger(L, 1);
        fprintf(stderr, "rank %d: os.exit(%d): ending the job\n", lm_dist_rank(), c);
        fflush(stderr);
        lm_dist_abort(c);
    }
    lua_pushvalue(L, lua_upvalueindex(1)); /* the original os.exit */
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 0);
    return 0;
}

/* Starts the world on first use; once MPI runs with several ranks, os.exit
 * ends the whole job on failure (dist_os_exit). */
static void start(lua_State *L) {
    static bool wrapped;
    dist_check(L, lm_dist_init());
    if (wrapped || !lm_dist_active() || lm_dist_size() < 2) return;
    wrapped = true;
    if (lua_getglobal(L, "os") == LUA_TTABLE && lua_getfield(L, -1, "exit") == LUA_TFUNCTION) {
        lua_pushcclosure(L, dist_os_exit, 1);
        lua_setfield(L, -2, "exit");
    } else {
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
}

static int l_rank(lua_State *L) {
    start(L);
    lua_pushinteger(L, lm_dist_rank());
    return 1;
}

static int l_size(lua_State *L) {
    start(L);
    lua_pushinteger(L, lm_dist_size());
    return 1;
}

static int l_available(lua_State *L) {
    lua_pushboolean(L, lm_dist_built_with_mpi());
    return 1;
}

static int l_backend(lua_State *L) {
    start(L);
    lua_pushstring(L, lm_dist_backend());
    return 1;
}

static int l_barrier(lua_State *L) {
    start(L);
    dist_check(L, lm_dist_barrier());
    return 0;
}

/* The tensor at arg; before raising for something else, the other ranks
 * are told (lm_dist_refuse), so that none waits in the collective. */
static lm_tensor *dist_tensor(lua_State *L, int arg, const char *fn) {
    if (!l_test_tensor(L, arg)) lm_dist_refuse(fn);
    return l_check_tensor(L, arg);
}

/* A rank number at arg (0 when absent): a whole number in int's range
 * (0.0 is 0, as everywhere in Lumen); anything else is refused on this rank
 * and the others are told, so the ranks stay in step. */
static int dist_integer(lua_State *L, int arg, const char *fn) {
    if (lua_isnoneornil(L, arg)) return 0;
    int exact = 0;
    lua_Integer v = lua_tointegerx(L, arg, &exact);
    if (!exact || v < INT_MIN || v > INT_MAX) {
        lm_dist_refuse(fn);
        luaL_error(L, "%s: root must be a rank number, got %s", fn, luaL_tolstring(L, arg, NULL));
    }
    return (int)v;
}

static int l_broadcast(lua_State *L) {
    lm_tensor *t = dist_tensor(L, 1, "broadcast_");
    int root = dist_integer(L, 2, "broadcast_");
    start(L);
    dist_check(L, lm_dist_broadcast_(t, root));
    lua_settop(L, 1);
    return 1;
}

static lm_dist_op check_op(lua_State *L, int arg, const char *fn) {
    static const char *const names[] = {"sum", "mean", "max", "min", NULL};
    const char *name = lua_type(L, arg) == LUA_TSTRING ? lua_tostring(L, arg) : NULL;
    bool known = lua_isnoneornil(L, arg);
    for (int i = 0; name && names[i]; i++) known = known || strcmp(name, names[i]) == 0;
    if (!known) lm_dist_refuse(fn);
    return (lm_dist_op)luaL_checkoption(L, arg, "sum", names);
}

static int l_allreduce(lua_State *L) {
    lm_tensor *t = dist_tensor(L, 1, "allreduce_");
    lm_dist_op op = check_op(L, 2, "allreduce_");
    start(L);
    dist_check(L, lm_dist_allreduce_(t, op));
    lua_settop(L, 1);
    return 1;
}

static int l_all_gather(lua_State *L) {
    lm_tensor *t = dist_tensor(L, 1, "all_gather");
    start(L);
    lm_tensor **slot = l_push_slot(L);
    dist_check(L, lm_dist_all_gather(slot, t));
    l_gc_account(L);
    return 1;
}

/* lm._dist.gather(t, root): the rows of every rank on root, 0 rows elsewhere */
static int l_gather(lua_State *L) {
    lm_tensor *t = dist_tensor(L, 1, "gather");
    int root = dist_integer(L, 2, "gather");
    start(L);
    lm_tensor **slot = l_push_slot(L);
    dist_check(L, lm_dist_gather(slot, t, root));
    l_gc_account(L);
    return 1;
}

/* The tensors of the list at arg (1..n), kept alive by the list itself. */
static int list_tensors(lua_State *L, int arg, lm_tensor ***out) {
    luaL_checktype(L, arg, LUA_TTABLE);
    int n = (int)lua_rawlen(L, arg); /* raw: a metamethod's value would not stay alive */
    lm_tensor **ts =
        lua_newuserdatauv(L, (size_t)(n ? n : 1) * sizeof *ts, 0); /* freed by the GC */
    for (int i = 0; i < n; i++) {
        lua_rawgeti(L, arg, i + 1);
        ts[i] = l_check_tensor(L, -1);
        lua_pop(L, 1);
    }
    *out = ts;
    return n;
}

/* lm._dist.allreduce_list_(tensors, op, bucket_bytes) */
static int l_allreduce_list(lua_State *L) {
    lm_dist_op op = check_op(L, 2, "allreduce list");
    lua_Integer bucket = luaL_optinteger(L, 3, 0);
    lm_tensor **ts;
    int n = list_tensors(L, 1, &ts); /* pushes the array: arguments first */
    start(L);
    dist_check(L, lm_dist_allreduce_many_(ts, n, op, (size_t)(bucket > 0 ? bucket : 0)));
    return 0;
}

/* lm._dist.broadcast_list_(tensors, root, bucket_bytes) */
static int l_broadcast_list(lua_State *L) {
    int root = dist_integer(L, 2, "broadcast list");
    lua_Integer bucket = luaL_optinteger(L, 3, 0);
    lm_tensor **ts;
    int n = list_tensors(L, 1, &ts); /* pushes the array: arguments first */
    start(L);
    dist_check(L, lm_dist_broadcast_many_(ts, n, root, (size_t)(bucket > 0 ? bucket : 0)));
    return 0;
}

/* lm._dist.refuse(fn): this rank refuses its arguments to the collective fn;
 * the others, in theirs, hear of it and fail too, so that none waits and the
 * ranks stay in step (the caller raises its own error next) */
static int l_refuse(lua_State *L) {
    lm_dist_refuse(luaL_checkstring(L, 1));
    return 0;
}

/* seconds and bytes spent in collectives so far */
static int l_comm_stats(lua_State *L) {
    lua_pushnumber(L, lm_dist_comm_seconds());
    lua_pushnumber(L, lm_dist_comm_bytes());
    return 2;
}

static const luaL_Reg dist_functions[] = {{"rank", l_rank},
                                          {"size", l_size},
                                          {"available", l_available},
                                          {"backend", l_backend},
                                          {"barrier", l_barrier},
                                          {"broadcast_", l_broadcast},
                                          {"allreduce_", l_allreduce},
                                          {"all_gather", l_all_gather},
                                          {"gather", l_gather},
                                          {"allreduce_list_", l_allreduce_list},
                                          {"broadcast_list_", l_broadcast_list},
                                          {"comm_stats", l_comm_stats},
                                          {"refuse", l_refuse},
                                          {NULL, NULL}};

void l_register_dist(lua_State *L) {
    luaL_newlib(L, dist_functions);
    lua_setfield(L, -2, "_dist");
}
