/* lm.image (load, decode, save, resize, info) and the folder loader's
 * userdata behind lm.data.image_folder. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "l_common.h"
#include "lm_image.h"
#include "lm_image_loader.h"

#define LOADER_MT "lumen.ImageLoader"

/* The functions' own names in their errors: Lua cannot name a function
 * reached through a table field ("bad argument #2 to '?'"). */

/* A whole number in [lo, hi] at stack index idx; `what` says so in the error. */
static lua_Integer whole_in(lua_State *L, int idx, lua_Integer lo, lua_Integer hi,
                            const char *fname, const char *what) {
    int exact = 0;
    lua_Integer v = lua_tointegerx(L, idx, &exact);
    if (!exact || v < lo || v > hi)
        luaL_error(L, "%s: %s, got %s", fname, what, luaL_tolstring(L, idx, NULL));
    return v;
}

static int check_channels_opt(lua_State *L, int arg, const char *fname) {
    if (lua_isnoneornil(L, arg)) return 0;
    if (!lua_istable(L, arg))
        luaL_error(L, "%s: options must be a table, got a %s", fname, luaL_typename(L, arg));
    int c = 0;
    if (lua_getfield(L, arg, "channels") != LUA_TNIL)
        c = (int)whole_in(L, -1, 0, 4, fname, "channels must be 0 (as stored) or 1-4");
    lua_pop(L, 1);
    return c;
}

/* lm.image.load(path [, {channels = 0 | 1 | 2 | 3 | 4}]) -> [C, H, W] in [0, 1] */
static int l_image_load(lua_State *L) {
    const char *path = l_check_path(L, 1, "lm.image.load");
    int channels = check_channels_opt(L, 2, "lm.image.load");
    lm_tensor **slot = l_push_slot(L);
    l_check(L, lm_image_load(slot, path, channels));
    return 1;
}

/* lm.image.decode(bytes [, {channels, name}]) */
static int l_image_decode(lua_State *L) {
    size_t len;
    if (lua_type(L, 1) != LUA_TSTRING)
        return luaL_error(L, "lm.image.decode: the bytes must be a string, got a %s",
                          luaL_typename(L, 1));
    const char *bytes = lua_tolstring(L, 1, &len);
    int channels = check_channels_opt(L, 2, "lm.image.decode");
    const char *name = "bytes";
    if (lua_istable(L, 2) && lua_getfield(L, 2, "name") == LUA_TSTRING) name = lua_tostring(L, -1);
    lm_tensor **slot = l_push_slot(L);
    l_check(L, lm_image_decode(slot, bytes, len, channels, name));
    return 1;
}

/* lm.image.info(path) -> width, height, channels */
static int l_image_info(lua_State *L) {
    int w = 0, h = 0, c = 0;
    l_check(L, lm_image_info(l_check_path(L, 1, "lm.image.info"), &w, &h, &c));
    lua_pushinteger(L, w);
    lua_pushinteger(L, h);
    lua_pushinteger(L, c);
    return 3;
}

/* lm.image.max_pixels() -> the decoders' limit, in pixels */
static int l_image_max_pixels(lua_State *L) {
    lua_pushinteger(L, (lua_Integer)lm_image_max_pixels());
    return 1;
}

/* lm.image.set_max_pixels(n) -> the previous limit */
static int l_image_set_max_pixels(lua_State *L) {
    lua_Integer n = luaL_checkinteger(L, 1);
    luaL_argcheck(L, n >= 1, 1, "the limit must be a positive number of pixels");
    lua_pushinteger(L, (lua_Integer)lm_image_set_max_pixels((int64_t)n));
    return 1;
}

/* lm.image.save(path, t) */
static int l_image_save(lua_State *L) {
    const char *path = l_check_path(L, 1, "lm.image.save");
    l_check(L, lm_image_save(path, l_check_tensor(L, 2)));
    return 0;
}

/* lm.image.resize(t, h, w) */
static int l_image_resize(lua_State *L) {
    lm_tensor *t = l_check_tensor(L, 1);
    int64_t h = whole_in(L, 2, 1, 65535, "lm.image.resize", "h must be a whole number in 1..65535");
    int64_t w = whole_in(L, 3, 1, 65535, "lm.image.resize", "w must be a whole number in 1..65535");
    lm_tensor **slot = l_push_slot(L);
    l_check(L, lm_image_resize(slot, t, h, w));
    return 1;
}

/* lm.image._crop_flip(x, oh, ow, tops, lefts, flips, pad): tables of n
 * 0-based corners (in the padded image) and booleans */
static int l_image_crop_flip(lua_State *L) {
    lm_tensor *x = l_check_tensor(L, 1);
    int64_t oh = luaL_checkinteger(L, 2), ow = luaL_checkinteger(L, 3);
    luaL_checktype(L, 4, LUA_TTABLE);
    luaL_checktype(L, 5, LUA_TTABLE);
    luaL_checktype(L, 6, LUA_TTABLE);
    int64_t pad = luaL_checkinteger(L, 7);
    int64_t n = x->ndim == 4 ? x->shape[0] : 0;
    if (luaL_len(L, 4) != n || luaL_len(L, 5) != n || luaL_len(L, 6) != n)
        return luaL_error(L, "crop: one corner and one flip per sample are needed (%d samples)",
                          (int)n);
    int64_t *corners = lua_newuserdatauv(L, (size_t)(2 * n + 1) * sizeof *corners, 0);
    bool *flips = lua_newuserdatauv(L, (size_t)(n + 1) * sizeof *flips, 0);
    for (int64_t i = 0; i < n; i++) {
        lua_geti(L, 4, i + 1);
        lua_geti(L, 5, i + 1);
        lua_geti(L, 6, i + 1);
        corners[i] = luaL_checkinteger(L, -3);
        corners[n + i] = luaL_checkinteger(L, -2);
        flips[i] = lua_toboolean(L, -1);
        lua_pop(L, 3);
    }
    lm_tensor **slot = l_push_slot(L);
    l_check(L, lm_image_crop_flip(slot, x, oh, ow, corners, corners + n, flips, pad));
    return 1;
}

/* ---- the folder loader ------------------------------------------------------------------ */

typedef struct {
    lm_image_loader *l;
    int64_t n; /* samples of the batch in flight */
} loader_ud;

static loader_ud *check_loader(lua_State *L) {
    loader_ud *u = luaL_checkudata(L, 1, LOADER_MT);
    if (!u->l) luaL_error(L, "image loader: already closed");
    return u;
}

/* lm._image_loader(paths, channels, h, w, workers) */
static int l_image_loader(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    int channels = (int)luaL_checkinteger(L, 2);
    int64_t h = luaL_checkinteger(L, 3), w = luaL_checkinteger(L, 4);
    int workers = (int)luaL_checkinteger(L, 5);
    lua_Integer n = (lua_Integer)lua_rawlen(L, 1); /* raw: the table keeps its strings alive */
    if (n < 1) return luaL_error(L, "image loader: no files");
    const char **paths = lua_newuserdatauv(L, (size_t)n * sizeof *paths, 0); /* freed by Lua */
    for (lua_Integer i = 1; i <= n; i++) {
        if (lua_rawgeti(L, 1, i) != LUA_TSTRING)
            return luaL_error(L, "image loader: path %d is a %s, expected a string", (int)i,
                              luaL_typename(L, -1));
        paths[i - 1] = lua_tostring(L, -1); /* kept alive by the table */
        lua_pop(L, 1);
    }
    loader_ud *u = lua_newuserdatauv(L, sizeof *u, 0);
    u->l = NULL;
    u->n = 0;
    luaL_setmetatable(L, LOADER_MT);
    l_check(L, lm_image_loader_new(&u->l, paths, n, channels, h, w, workers));
    return 1;
}

/* loader:start(indices): a 1-based int32 tensor or a table of sample numbers */
static int l_loader_start(lua_State *L) {
    loader_ud *u = check_loader(L);
    lm_tensor *t = l_test_tensor(L, 2);
    lua_Integer n;
    if (t) {
        if (t->dtype != LM_INT32 || t->ndim != 1 || t->storage->device != LM_CPU)
            return luaL_error(L, "image loader: indices must be a 1-D int32 CPU tensor");
        n = t->shape[0];
    } else {
        luaL_checktype(L, 2, LUA_TTABLE);
        n = luaL_len(L, 2);
    }
    if (n < 1) return luaL_error(L, "image loader: a batch needs at least one sample");
    int64_t *idx = lua_newuserdatauv(L, (size_t)n * sizeof *idx, 0);
    for (lua_Integer i = 0; i < n; i++) {
        if (t) {
            idx[i] = ((const int32_t *)t->storage->data)[t->offset + i * t->strides[0]] - 1;
        } else {
            lua_geti(L, 2, i + 1);
            idx[i] = luaL_checkinteger(L, -1) - 1;
            lua_pop(L, 1);
        }
    }
    l_check(L, lm_image_loader_start(u->l, idx, n));
    u->n = n;
    return 0;
}

/* loader:finish([tolerate]) -> batch [, {{position, reason}, ...}]: with
 * `tolerate` a file that fails leaves a zero row and is listed (1-based
 * positions in the batch); without, it is the error. */
static int l_loader_finish(lua_State *L) {
    loader_ud *u = check_loader(L);
    bool tolerate = lua_toboolean(L, 2);
    bool *failed = NULL;
    if (tolerate) failed = lua_newuserdatauv(L, (size_t)(u->n > 0 ? u->n : 1) * sizeof *failed, 0);
    lm_tensor **slot = l_push_slot(L);
    l_check(L, lm_image_loader_finish(u->l, slot, failed));
    if (!tolerate) return 1;
    lua_newtable(L);
    int k = 0;
    for (int64_t i = 0; i < u->n; i++)
        if (failed[i]) {
            lua_createtable(L, 2, 0);
            lua_pushinteger(L, i + 1);
            lua_rawseti(L, -2, 1);
            lua_pushstring(L, lm_image_loader_reason(u->l, i));
            lua_rawseti(L, -2, 2);
            lua_rawseti(L, -2, ++k);
        }
    return 2;
}

static int l_loader_close(lua_State *L) {
    loader_ud *u = luaL_checkudata(L, 1, LOADER_MT);
    lm_image_loader_free(u->l);
    u->l = NULL;
    return 0;
}

static const luaL_Reg loader_methods[] = {{"start", l_loader_start},
                                          {"finish", l_loader_finish},
                                          {"close", l_loader_close},
                                          {NULL, NULL}};

static const luaL_Reg image_functions[] = {{"load", l_image_load},
                                           {"decode", l_image_decode},
                                           {"info", l_image_info},
                                           {"max_pixels", l_image_max_pixels},
                                           {"set_max_pixels", l_image_set_max_pixels},
                                           {"save", l_image_save},
                                           {"resize", l_image_resize},
                                           {"_crop_flip", l_image_crop_flip},
                                           {NULL, NULL}};

void l_register_image(lua_State *L) {
    if (luaL_newmetatable(L, LOADER_MT)) {
        luaL_newlib(L, loader_methods);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, l_loader_close);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, l_loader_close);
        lua_setfield(L, -2, "__close");
    }
    lua_pop(L, 1);
    luaL_newlib(L, image_functions);
    lua_setfield(L, -2, "image");
    lua_pushcfunction(L, l_image_loader);
    lua_setfield(L, -2, "_image_loader");
}
