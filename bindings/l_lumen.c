/* luaopen_lumen: the module table, its functions and the embedded Lua library. */
#include <math.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cpu_backend.h"
#include "l_common.h"
#include "l_embedded.h"
#include "lm_alloc.h"
#include "lm_autograd.h"
#include "lm_cuda.h"
#include "lm_fpenv.h"
#include "lm_ops.h"
#include "lm_rng.h"
#include "lm_threads.h"

/* ---- lm.tensor{...} ------------------------------------------------------------------- */

/* Walks the first element at each depth to find the shape of a nested table. */
static int table_shape(lua_State *L, int idx, int64_t *shape) {
    int ndim = 0;
    lua_pushvalue(L, idx);
    while (lua_istable(L, -1)) {
        if (ndim == LM_MAX_DIMS) luaL_error(L, "tensor: nested deeper than %d levels", LM_MAX_DIMS);
        shape[ndim++] = (int64_t)luaL_len(L, -1);
        if (shape[ndim - 1] == 0) break;
        lua_geti(L, -1, 1);
        lua_remove(L, -2);
    }
    lua_pop(L, 1);
    return ndim;
}

/* Fills data from the nested table at `idx` (depth d), checking it is rectangular. */
static void fill_from_table(lua_State *L, int idx, const int64_t *shape, int ndim, int d,
                            lm_dtype dtype, void *data, int64_t *pos, int *path) {
    int64_t n = (int64_t)luaL_len(L, idx);
    if (n != shape[d]) {
        luaL_Buffer b;
        luaL_buffinit(L, &b);
        for (int k = 0; k < d; k++) lua_pushfstring(L, "[%d]", path[k]), luaL_addvalue(&b);
        luaL_pushresult(&b);
        luaL_error(L, "tensor: ragged nested table: row %s has %d elements, expected %d",
                   d ? lua_tostring(L, -1) : "(top)", (int)n, (int)shape[d]);
    }
    luaL_checkstack(L, 4, "tensor: table too deep");
    for (int64_t i = 1; i <= n; i++) {
        path[d] = (int)i;
        lua_geti(L, idx, i);
        if (d + 1 < ndim) {
            if (!lua_istable(L, -1))
                luaL_error(L, "tensor: element %d at depth %d is a %s, expected a table", (int)i,
                           d + 1, luaL_typename(L, -1));
            fill_from_table(L, lua_gettop(L), shape, ndim, d + 1, dtype, data, pos, path);
        } else {
            int isnum;
            lua_Number v = lua_tonumberx(L, -1, &isnum);
            if (!isnum || lua_type(L, -1) != LUA_TNUMBER)
                luaL_error(L, "tensor: element %d at depth %d is a %s, expected a number", (int)i,
                           d + 1, luaL_typename(L, -1));
            if (dtype == LM_INT32) {
                /* range first: converting an out-of-range double is undefined
                 * (found by fuzz/fuzz_tensor_table.c) */
                if (!(v >= INT32_MIN && v <= INT32_MAX) || v != (lua_Number)(int32_t)v) {
                    char msg[160]; /* lua_pushfstring has no %g */
                    snprintf(msg, sizeof msg, "tensor: element %d at depth %d (%g) is not an int32",
                             (int)i, d + 1, v);
                    luaL_error(L, "%s", msg);
                }
                ((int32_t *)data)[(*pos)++] = (int32_t)v;
            } else if (dtype == LM_UINT8) {
                if (!(v >= 0 && v <= 255) || v != (lua_Number)(int)v) {
                    char msg[160];
                    snprintf(msg, sizeof msg,
                             "tensor: element %d at depth %d (%g) is not a uint8 (0 to 255)",
                             (int)i, d + 1, v);
                    luaL_error(L, "%s", msg);
                }
                ((uint8_t *)data)[(*pos)++] = (uint8_t)v;
            } else {
                ((float *)data)[(*pos)++] = (float)v;
            }
        }
        lua_pop(L, 1);
    }
}

static int l_tensor(lua_State *L) {
    lm_dtype dtype = l_check_dtype(L, 2, LM_FLOAT32);
    if (lua_type(L, 1) == LUA_TNUMBER) { /* a 0-D scalar */
        lm_tensor **slot = l_push_slot(L);
        l_check(L, lm_full(slot, dtype, LM_CPU, 0, NULL, lua_tonumber(L, 1)));
        return 1;
    }
    if (l_test_tensor(L, 1)) { /* a copy */
        lm_tensor **slot = l_push_slot(L);
        lm_tensor *src = l_check_tensor(L, 1);
        bool same = lua_isnoneornil(L, 2) || src->dtype == dtype;
        l_check(L, same ? lm_clone(slot, src) : lm_to_dtype(slot, src, dtype));
        return 1;
    }
    luaL_checktype(L, 1, LUA_TTABLE);
    int64_t shape[LM_MAX_DIMS];
    int ndim = table_shape(L, 1, shape);
    lm_tensor **slot = l_push_slot(L);
    l_check(L, lm_tensor_new(slot, dtype, LM_CPU, ndim, shape));
    int64_t pos = 0;
    int path[LM_MAX_DIMS];
    fill_from_table(L, 1, shape, ndim, 0, dtype, lm_tensor_data(*slot), &pos, path);
    return 1;
}

/* ---- creation ------------------------------------------------------------------------------ */

/* Trailing creation options from arg on: a dtype ('float32', 'int32') and/or
 * a device ('cpu', 'cuda') string, in either order; fn names the function in
 * an error (a name that is neither, 'gpu' say, is no "unknown dtype"). */
static void creation_options(lua_State *L, int arg, lm_dtype *dtype, lm_device *device,
                             const char *fn) {
    for (int i = arg; i <= lua_gettop(L) && !lua_isnil(L, i); i++) {
        const char *s = luaL_checkstring(L, i);
        if (!strcmp(s, "cpu"))
            *device = LM_CPU;
        else if (!strcmp(s, "cuda"))
            *device = LM_CUDA;
        else if (!strcmp(s, "float32") || !strcmp(s, "float") || !strcmp(s, "int32") ||
                 !strcmp(s, "int") || !strcmp(s, "uint8") || !strcmp(s, "byte"))
            *dtype = l_check_dtype(L, i, *dtype);
        else
            luaL_error(L,
                       "%s: unknown dtype or device '%s' (dtypes 'float32', 'int32', 'uint8'; "
                       "devices 'cpu', 'cuda')",
                       fn, s);
    }
}

/* Shape from args 1..k, then optional dtype and device strings. */
static int create_full(lua_State *L, double value, const char *fn) {
    int64_t shape[LM_MAX_DIMS];
    int n = l_check_shape(L, 1, shape, fn);
    for (int i = 0; i < n; i++)
        if (shape[i] < 0) return luaL_error(L, "%s: sizes must be >= 0", fn);
    lm_dtype dtype = LM_FLOAT32;
    lm_device device = LM_CPU;
    creation_options(L, lua_istable(L, 1) ? 2 : n + 1, &dtype, &device, fn);
    l_check(L, lm_full(l_push_slot(L), dtype, device, n, shape, value));
    return 1;
}

static int l_zeros(lua_State *L) {
    return create_full(L, 0, "zeros");
}
static int l_ones(lua_State *L) {
    return create_full(L, 1, "ones");
}

/* Pushes an uninitialised float tensor of the shape in args 1.., on the
 * device a trailing 'cpu' / 'cuda' names. */
static lm_tensor **new_from_shape_args(lua_State *L, const char *fn) {
    int64_t shape[LM_MAX_DIMS];
    int n = l_check_shape(L, 1, shape, fn);
    for (int i = 0; i < n; i++)
        if (shape[i] < 0) luaL_error(L, "%s: sizes must be >= 0", fn);
    lm_dtype dtype = LM_FLOAT32;
    lm_device device = LM_CPU;
    creation_options(L, lua_istable(L, 1) ? 2 : n + 1, &dtype, &device, fn);
    if (dtype != LM_FLOAT32) luaL_error(L, "%s: makes float32 tensors only", fn);
    lm_tensor **slot = l_push_slot(L);
    l_check(L, lm_tensor_new(slot, LM_FLOAT32, device, n, shape));
    return slot;
}

static int l_rand(lua_State *L) {
    lm_tensor **slot = new_from_shape_args(L, "rand");
    l_check(L, lm_rand_uniform_(*slot, 0, 1));
    return 1;
}

static int l_randn(lua_State *L) {
    lm_tensor **slot = new_from_shape_args(L, "randn");
    l_check(L, lm_rand_normal_(*slot, 0, 1));
    return 1;
}

static int l_full(lua_State *L) {
    /* lm.full(shape_table, value [, dtype]) */
    luaL_checktype(L, 1, LUA_TTABLE);
    double v = luaL_checknumber(L, 2);
    int64_t shape[LM_MAX_DIMS];
    int n = l_check_shape(L, 1, shape, "full");
    lm_dtype dtype = LM_FLOAT32;
    lm_device device = LM_CPU;
    creation_options(L, 3, &dtype, &device, "full");
    l_check(L, lm_full(l_push_slot(L), dtype, device, n, shape, v));
    return 1;
}

/* Inclusive, like Lua's numeric for: arange(1, 5) is 1 2 3 4 5; arange(n) is 1..n. */
static int l_arange(lua_State *L) {
    double start, stop, step = 1;
    int dtype_arg;
    if (lua_type(L, 2) != LUA_TNUMBER) {
        start = 1, stop = luaL_checknumber(L, 1), dtype_arg = 2;
    } else {
        start = luaL_checknumber(L, 1), stop = luaL_checknumber(L, 2);
        dtype_arg = 3;
        if (lua_type(L, 3) == LUA_TNUMBER) step = lua_tonumber(L, 3), dtype_arg = 4;
    }
    if (step == 0) return luaL_error(L, "arange: step must not be 0");
    if (!isfinite(start) || !isfinite(stop) || !isfinite(step))
        return luaL_error(L, "arange: start, stop and step must be finite numbers");
    /* the number of steps from start that stay within stop, as a numeric
     * for loop counts them (with a 1e-9 step of slack for rounding, so that
     * arange(0, 0.3, 0.1) ends at 0.3 where Lua's loop stops at 0.2); an
     * empty range (stop before start in the step's direction) has none */
    double count = (stop - start) / step;
    if (count > 1e10) return luaL_error(L, "arange: too many elements");
    int64_t n = count + 1e-9 < 0 ? 0 : (int64_t)(count + 1e-9) + 1;
    lm_dtype dtype = l_check_dtype(L, dtype_arg, LM_FLOAT32);
    l_check(L, lm_arange(l_push_slot(L), dtype, start, step, n));
    return 1;
}

static int l_randperm(lua_State *L) {
    lua_Integer n = luaL_checkinteger(L, 1);
    lm_tensor **raw = l_push_slot(L);
    l_check(L, lm_randperm(raw, n));
    l_check(L, lm_binary_scalar(l_push_slot(L), LM_ADD, *raw, 1, false)); /* 1-based */
    return 1;
}

static int l_bernoulli(lua_State *L) {
    /* lm.bernoulli(p, shape...) */
    double p = luaL_checknumber(L, 1);
    int64_t shape[LM_MAX_DIMS];
    int n = l_check_shape(L, 2, shape, "bernoulli");
    lm_tensor **slot = l_push_slot(L);
    l_check(L, lm_tensor_new(slot, LM_FLOAT32, LM_CPU, n, shape));
    l_check(L, lm_rand_bernoulli_(*slot, p));
    return 1;
}

/* lm._dropout_mask(keep, shape_table): 1/keep with probability keep, else 0 */
static int l_dropout_mask(lua_State *L) {
    double keep = luaL_checknumber(L, 1);
    int64_t shape[LM_MAX_DIMS];
    luaL_checktype(L, 2, LUA_TTABLE);
    int n = l_check_shape(L, 2, shape, "dropout");
    lm_dtype dtype = LM_FLOAT32;
    lm_device device = LM_CPU;
    creation_options(L, 3, &dtype, &device, "dropout");
    lm_tensor **slot = l_push_slot(L);
    l_check(L, lm_tensor_new(slot, LM_FLOAT32, device, n, shape));
    l_check(L, lm_rand_dropout_mask_(*slot, keep));
    return 1;
}

static int l_manual_seed(lua_State *L) {
    lua_Integer seed = luaL_checkinteger(L, 1);
    lm_manual_seed((uint64_t)seed);
    return 0;
}

static int l_rng_state(lua_State *L) {
    lua_pushinteger(L, (lua_Integer)lm_rng_seed());
    lua_pushinteger(L, (lua_Integer)lm_rng_offset());
    return 2;
}

static int l_set_rng_state(lua_State *L) {
    lm_rng_set_state((uint64_t)luaL_checkinteger(L, 1), (uint64_t)luaL_checkinteger(L, 2));
    return 0;
}

/* ---- functions over tensors ------------------------------------------------------------------ */

static int l_matmul(lua_State *L) {
    lm_tensor *a = l_check_tensor(L, 1), *b = l_check_tensor(L, 2);
    l_check(L, lm_ag_matmul(l_push_slot(L), a, b));
    return 1;
}

static int l_where(lua_State *L) {
    lm_tensor *c = l_check_tensor(L, 1), *a = l_check_tensor(L, 2), *b = l_check_tensor(L, 3);
    l_check(L, lm_ag_where(l_push_slot(L), c, a, b));
    return 1;
}

static int l_is_tensor(lua_State *L) {
    lua_pushboolean(L, luaL_testudata(L, 1, L_TENSOR_MT) != NULL);
    return 1;
}

/* ---- runtime --------------------------------------------------------------------------------- */

static int l_set_num_threads(lua_State *L) {
    lua_Integer n = luaL_checkinteger(L, 1);
    if (n < 0 || n > 64)
        return luaL_error(L,
                          "set_num_threads: n must be in 1..64 (or 0 for every core the "
                          "process may run on), got %d",
                          (int)n);
    lm_set_num_threads((int)n);
    return 0;
}

/* lm.set_flush_denormal(on): returns whether the processor has the mode. */
static int l_set_flush_denormal(lua_State *L) {
    luaL_checktype(L, 1, LUA_TBOOLEAN);
    lua_pushboolean(L, lm_set_flush_denormal(lua_toboolean(L, 1)));
    return 1;
}

/* lm.set_conv_algorithm('auto' | 'gemm' | 'winograd' | 'direct'): the CPU's convolutions. */
static const char *const conv_algorithm_names[] = {"auto", "gemm", "winograd", "direct", NULL};

static int l_set_conv_algorithm(lua_State *L) {
    lm_conv_algorithm algorithm =
        (lm_conv_algorithm)luaL_checkoption(L, 1, NULL, conv_algorithm_names);
    if (algorithm == LM_CONV_DIRECT && !lm_cpu_conv_direct_available())
        return luaL_error(L, "lm.set_conv_algorithm: 'direct' needs a build with AVX-512 "
                             "(LUMEN_NATIVE on a processor that has it); this build has none");
    lm_set_conv_algorithm(algorithm);
    return 0;
}

static int l_get_conv_algorithm(lua_State *L) {
    lua_pushstring(L, conv_algorithm_names[lm_get_conv_algorithm()]);
    return 1;
}

static int l_get_flush_denormal(lua_State *L) {
    lua_pushboolean(L, lm_get_flush_denormal());
    return 1;
}

static int l_get_num_threads(lua_State *L) {
    lua_pushinteger(L, lm_get_num_threads());
    return 1;
}

static int push_memory_stats(lua_State *L, lm_memory_stats s) {
    lua_createtable(L, 0, 6);
    lua_pushinteger(L, (lua_Integer)s.live_bytes);
    lua_setfield(L, -2, "live_bytes");
    lua_pushinteger(L, (lua_Integer)s.cached_bytes);
    lua_setfield(L, -2, "cached_bytes");
    lua_pushinteger(L, (lua_Integer)s.peak_bytes);
    lua_setfield(L, -2, "peak_bytes");
    lua_pushinteger(L, (lua_Integer)s.allocations);
    lua_setfield(L, -2, "allocations");
    lua_pushinteger(L, (lua_Integer)s.cache_hits);
    lua_setfield(L, -2, "cache_hits");
    lua_pushinteger(L, (lua_Integer)s.allocated_total);
    lua_setfield(L, -2, "allocated_bytes");
    return 1;
}

static int l_memory_stats(lua_State *L) {
    return push_memory_stats(L, lm_cpu_memory_stats());
}

static int l_reset_peak_memory(lua_State *L) {
    (void)L;
    lm_cpu_reset_peak();
    return 0;
}

static int l_empty_cache(lua_State *L) {
    lm_cpu_empty_cache();
    return 0;
}

/* Monotonic wall-clock seconds, for timing (os.clock counts CPU time of all threads). */
static int l_clock(lua_State *L) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    lua_pushnumber(L, (lua_Number)ts.tv_sec + ts.tv_nsec * 1e-9);
    return 1;
}

static int l_isatty(lua_State *L) {
    lua_pushboolean(L, isatty((int)luaL_optinteger(L, 1, 1)));
    return 1;
}

/* Deferred Ctrl-C for training loops: while caught, SIGINT only sets a flag
 * that the loop polls between steps, so it stops after a whole step. */
static volatile sig_atomic_t interrupt_flag;
static void (*previous_handler)(int) = SIG_DFL;
static bool catching;

static void on_interrupt(int sig) {
    (void)sig;
    interrupt_flag = 1;
}

static int l_catch_interrupt(lua_State *L) {
    bool on = lua_toboolean(L, 1);
    if (on && !catching) {
        interrupt_flag = 0;
        previous_handler = signal(SIGINT, on_interrupt);
        catching = true;
    } else if (!on && catching) {
        signal(SIGINT, previous_handler);
        catching = false;
    }
    return 0;
}

static int l_interrupted(lua_State *L) {
    lua_pushboolean(L, interrupt_flag != 0);
    interrupt_flag = 0;
    return 1;
}

static int l_cuda_available(lua_State *L) {
    lua_pushboolean(L, lm_cuda_available());
    return 1;
}

static int l_cuda_status(lua_State *L) {
    lua_pushstring(L, lm_cuda_status());
    return 1;
}

static const luaL_Reg module_functions[] = {{"tensor", l_tensor},
                                            {"zeros", l_zeros},
                                            {"ones", l_ones},
                                            {"full", l_full},
                                            {"rand", l_rand},
                                            {"randn", l_randn},
                                            {"arange", l_arange},
                                            {"randperm", l_randperm},
                                            {"bernoulli", l_bernoulli},
                                            {"_dropout_mask", l_dropout_mask},
                                            {"manual_seed", l_manual_seed},
                                            {"rng_state", l_rng_state},
                                            {"set_rng_state", l_set_rng_state},
                                            {"matmul", l_matmul},
                                            {"where", l_where},
                                            {"is_tensor", l_is_tensor},
                                            {"_moves", l_moves},
                                            {"set_num_threads", l_set_num_threads},
                                            {"set_flush_denormal", l_set_flush_denormal},
                                            {"get_flush_denormal", l_get_flush_denormal},
                                            {"set_conv_algorithm", l_set_conv_algorithm},
                                            {"get_conv_algorithm", l_get_conv_algorithm},
                                            {"get_num_threads", l_get_num_threads},
                                            {"memory_stats", l_memory_stats},
                                            {"reset_peak_memory", l_reset_peak_memory},
                                            {"empty_cache", l_empty_cache},
                                            {"clock", l_clock},
                                            {"_isatty", l_isatty},
                                            {"_catch_interrupt", l_catch_interrupt},
                                            {"_interrupted", l_interrupted},
                                            {NULL, NULL}};

static int l_cuda_device_name(lua_State *L) {
    if (!lm_cuda_available()) return luaL_error(L, "CUDA is not available: %s", lm_cuda_status());
    lua_pushstring(L, lm_cuda_status());
    return 1;
}

static int l_cuda_synchronize(lua_State *L) {
    l_check(L, lm_cuda_synchronize());
    return 0;
}

static int l_cuda_empty_cache(lua_State *L) {
    (void)L;
    lm_cuda_empty_cache();
    return 0;
}

static int l_cuda_memory_stats(lua_State *L) {
    return push_memory_stats(L, lm_cuda_memory_stats());
}

/* allow_tf32(flag) sets, allow_tf32() reads: TF32 tensor cores for float32 GEMM/conv */
static int l_cuda_allow_tf32(lua_State *L) {
    if (!lua_isnoneornil(L, 1)) {
        luaL_checktype(L, 1, LUA_TBOOLEAN);
        l_check(L, lm_cuda_set_tf32(lua_toboolean(L, 1)));
    }
    lua_pushboolean(L, lm_cuda_tf32());
    return 1;
}

static const luaL_Reg cuda_functions[] = {
    {"available", l_cuda_available},     {"status", l_cuda_status},
    {"device_name", l_cuda_device_name}, {"synchronize", l_cuda_synchronize},
    {"empty_cache", l_cuda_empty_cache}, {"memory_stats", l_cuda_memory_stats},
    {"allow_tf32", l_cuda_allow_tf32},   {NULL, NULL}};

void l_register_module_functions(lua_State *L) {
    luaL_setfuncs(L, module_functions, 0);
    luaL_newlib(L, cuda_functions);
    lua_setfield(L, -2, "cuda");
}

/* ---- opening ------------------------------------------------------------------------------------
 */

/* the main thread of the state whose collector may free tensors on OOM
 * (the last one opened); cleared when that state closes, so that a host
 * that goes on after lua_close never collects a freed state. gc_watch is
 * the registry value whose finaliser clears it: the latest one, so that a
 * second load in one state (a require after a failed one) replacing the
 * first does not clear it when the first is collected. */
static lua_State *gc_state;
static void *gc_watch;

static void collect_on_oom(void *ud) {
    (void)ud;
    if (gc_state) lua_gc(gc_state, LUA_GCCOLLECT);
}

static int forget_gc_state(lua_State *L) {
    if (lua_touserdata(L, 1) == gc_watch) {
        gc_state = NULL;
        gc_watch = NULL;
    }
    return 0;
}

/* gc_state = this state's main thread, until the state closes: a registry
 * value's finaliser runs in lua_close */
static void watch_gc_state(lua_State *L) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
    lua_State *main = lua_tothread(L, -1);
    lua_pop(L, 1);
    void *watch = lua_newuserdatauv(L, 1, 0);
    lua_newtable(L);
    lua_pushcfunction(L, forget_gc_state);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    lua_setfield(L, LUA_REGISTRYINDEX, "lumen.gc_state_watch");
    gc_state = main;
    gc_watch = watch;
}

/* After a failed load: no half-built lumen (or lumen.x) stays in
 * package.loaded for the next require to return. */
static void forget_loaded_modules(lua_State *L) {
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    for (const lm_embedded_module *m = lm_embedded_modules; m->name; m++) {
        lua_pushnil(L);
        lua_setfield(L, -2, m->name);
    }
    lua_pop(L, 1);
}

/* package.preload["lumen.x"] for each embedded module except "lumen" itself. */
static int load_embedded(lua_State *L) {
    const lm_embedded_module *m = lua_touserdata(L, lua_upvalueindex(1));
    if (luaL_loadbuffer(L, m->source, m->size, m->chunkname) != LUA_OK) return lua_error(L);
    lua_pushvalue(L, 1);
    lua_call(L, 1, 1);
    return 1;
}

int lm_lua_open(lua_State *L) {
    lm_fpenv_sync(); /* the opening thread flushes subnormals from the start, not from its first
                        tensor */
    l_open_tensor(L);
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
    const lm_embedded_module *init = NULL;
    for (const lm_embedded_module *m = lm_embedded_modules; m->name; m++) {
        if (!strcmp(m->name, "lumen")) {
            init = m;
            continue;
        }
        lua_pushlightuserdata(L, (void *)m);
        lua_pushcclosure(L, load_embedded, 1);
        lua_setfield(L, -2, m->name);
    }
    lua_pop(L, 1);

    lua_newtable(L); /* the module table, handed to lua/lumen/init.lua */
    l_register_module_functions(L);
    l_register_io_functions(L);
    l_register_autograd(L);
    l_register_nn(L);
    l_register_data(L);
    l_register_plot(L);
    l_register_encode(L);
    l_register_reference(L);
    l_register_files(L);
    l_register_image(L);
    l_register_blas(L);
    l_register_install(L);
    l_register_dist(L);
    l_register_cuda_graph(L);
    lua_pushliteral(L, LUMEN_VERSION);
    lua_setfield(L, -2, "version");
    luaL_getmetatable(L, L_TENSOR_MT);
    lua_setfield(L, -2, "_tensor_metatable");

    watch_gc_state(L);
    lm_set_oom_handler(collect_on_oom, NULL);

    if (!init) return luaL_error(L, "lumen: the embedded Lua library is missing");
    if (luaL_loadbuffer(L, init->source, init->size, init->chunkname) != LUA_OK)
        return lua_error(L);
    lua_pushvalue(L, -2);
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) { /* init.lua returns the finished module */
        forget_loaded_modules(L);
        return lua_error(L);
    }
    return 1;
}
