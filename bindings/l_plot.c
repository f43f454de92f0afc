/* Canvas and font userdata for lua/lumen/plot.lua. Colours are integers
 * 0xRRGGBBAA; coordinates are pixels. */
#include <string.h>

#include "l_common.h"
#include "lm_ops.h"
#include "lm_raster.h"

#define CANVAS_MT "lumen.Canvas"
#define FONT_MT "lumen.Font"

typedef struct {
    lm_canvas *c;
} canvas_ud;
typedef struct {
    lm_font *f;
} font_ud;

static lm_canvas *check_canvas(lua_State *L, int i) {
    canvas_ud *u = luaL_checkudata(L, i, CANVAS_MT);
    if (!u->c) luaL_error(L, "canvas has been freed");
    return u->c;
}

static lm_font *check_font(lua_State *L, int i) {
    font_ud *u = luaL_checkudata(L, i, FONT_MT);
    if (!u->f) luaL_error(L, "font has been freed");
    return u->f;
}

static uint32_t check_color(lua_State *L, int i) {
    return (uint32_t)luaL_checkinteger(L, i);
}

static int l_canvas(lua_State *L) {
    int w = (int)luaL_checkinteger(L, 1), h = (int)luaL_checkinteger(L, 2);
    uint32_t bg = (uint32_t)luaL_optinteger(L, 3, 0xFFFFFFFF);
    canvas_ud *u = lua_newuserdatauv(L, sizeof *u, 0);
    u->c = NULL;
    luaL_setmetatable(L, CANVAS_MT);
    l_check(L, lm_canvas_new(&u->c, w, h, bg));
    return 1;
}

static int c_gc(lua_State *L) {
    canvas_ud *u = luaL_checkudata(L, 1, CANVAS_MT);
    lm_canvas_free(u->c);
    u->c = NULL;
    return 0;
}

static int c_size(lua_State *L) {
    lm_canvas *c = check_canvas(L, 1);
    lua_pushinteger(L, c->width);
    lua_pushinteger(L, c->height);
    return 2;
}

static int c_fill_rect(lua_State *L) {
    lm_canvas_fill_rect(check_canvas(L, 1), luaL_checknumber(L, 2), luaL_checknumber(L, 3),
                        luaL_checknumber(L, 4), luaL_checknumber(L, 5), check_color(L, 6));
    return 0;
}

static int c_disc(lua_State *L) {
    lm_canvas_disc(check_canvas(L, 1), luaL_checknumber(L, 2), luaL_checknumber(L, 3),
                   luaL_checknumber(L, 4), check_color(L, 5));
    return 0;
}

static int c_line(lua_State *L) {
    lm_canvas_line(check_canvas(L, 1), luaL_checknumber(L, 2), luaL_checknumber(L, 3),
                   luaL_checknumber(L, 4), luaL_checknumber(L, 5), luaL_checknumber(L, 6),
                   check_color(L, 7));
    return 0;
}

/* canvas:polygon({x1, y1, x2, y2, ...}, color) */
static int c_polygon(lua_State *L) {
    lm_canvas *c = check_canvas(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    uint32_t color = check_color(L, 3);
    int n = (int)luaL_len(L, 2) / 2;
    if (n < 3) return 0;
    double *xy = lua_newuserdatauv(L, sizeof(double) * 2 * n, 0);
    for (int i = 0; i < 2 * n; i++) {
        lua_geti(L, 2, i + 1);
        double v = luaL_checknumber(L, -1);
        lua_pop(L, 1);
        if (i % 2 == 0)
            xy[i / 2] = v;
        else
            xy[n + i / 2] = v;
    }
    lm_canvas_polygon(c, xy, xy + n, n, color);
    return 0;
}

/* canvas:image(x, y, tensor [H, W] or [3, H, W], scale) */
static int c_image(lua_State *L) {
    lm_canvas *c = check_canvas(L, 1);
    int x = (int)luaL_checkinteger(L, 2), y = (int)luaL_checkinteger(L, 3);
    lm_tensor *t = l_check_tensor(L, 4);
    int scale = (int)luaL_optinteger(L, 5, 1);
    if (t->dtype != LM_FLOAT32 || (t->ndim != 2 && !(t->ndim == 3 && t->shape[0] == 3)))
        return luaL_error(L, "image: needs a float32 [H, W] or [3, H, W] tensor");
    if (scale < 1 || scale > 64) return luaL_error(L, "image: scale must be in 1..64");
    lm_tensor **host = l_push_slot(L), **cont = l_push_slot(L); /* the canvas reads host memory */
    l_check(L, lm_to_device(host, t, LM_CPU));
    l_check(L, lm_contiguous(cont, *host));
    int channels = t->ndim == 3 ? 3 : 1;
    lm_canvas_image(c, x, y, lm_tensor_f32(*cont), (int)t->shape[t->ndim - 1],
                    (int)t->shape[t->ndim - 2], channels, scale);
    return 0;
}

#define TEXT_MAX_SIZE 200

static int c_text(lua_State *L) {
    lm_canvas *c = check_canvas(L, 1);
    lm_font *f = check_font(L, 2);
    double size = luaL_checknumber(L, 5);
    lua_Integer angle = luaL_optinteger(L, 8, 0);
    /* a glyph is drawn through a 256 x 256 buffer: a size past TEXT_MAX_SIZE would not fit */
    if (!(size > 0 && size <= TEXT_MAX_SIZE))
        return luaL_error(L, "text: size must be in (0, %d], got %f", TEXT_MAX_SIZE, size);
    if (angle != 0 && angle != 90)
        return luaL_error(L, "text: angle must be 0 or 90 (degrees), got %I", angle);
    lm_canvas_text(c, f, luaL_checknumber(L, 3), luaL_checknumber(L, 4), size, check_color(L, 6),
                   luaL_checkstring(L, 7), (int)angle);
    return 0;
}

static int c_write_png(lua_State *L) {
    lm_canvas *c = check_canvas(L, 1);
    l_check(L, lm_canvas_write_png(c, l_check_path(L, 2, "canvas:write_png")));
    return 0;
}

/* canvas:pixel(x, y) -> r, g, b, a (0-based pixel coordinates), for tests */
static int c_pixel(lua_State *L) {
    lm_canvas *c = check_canvas(L, 1);
    int x = (int)luaL_checkinteger(L, 2), y = (int)luaL_checkinteger(L, 3);
    if (x < 0 || y < 0 || x >= c->width || y >= c->height)
        return luaL_error(L, "pixel (%d, %d) outside the %dx%d canvas", x, y, c->width, c->height);
    const unsigned char *p = c->rgba + 4 * ((size_t)y * c->width + x);
    for (int k = 0; k < 4; k++) lua_pushinteger(L, p[k]);
    return 4;
}

static int l_font(lua_State *L) {
    const char *path = l_check_path(L, 1, "lm.plot.font");
    font_ud *u = lua_newuserdatauv(L, sizeof *u, 0);
    u->f = NULL;
    luaL_setmetatable(L, FONT_MT);
    l_check(L, lm_font_load(&u->f, path));
    return 1;
}

static int f_gc(lua_State *L) {
    font_ud *u = luaL_checkudata(L, 1, FONT_MT);
    lm_font_free(u->f);
    u->f = NULL;
    return 0;
}

static int f_width(lua_State *L) {
    lua_pushnumber(L,
                   lm_text_width(check_font(L, 1), luaL_checknumber(L, 2), luaL_checkstring(L, 3)));
    return 1;
}

static const luaL_Reg canvas_methods[] = {{"size", c_size},
                                          {"fill_rect", c_fill_rect},
                                          {"disc", c_disc},
                                          {"line", c_line},
                                          {"polygon", c_polygon},
                                          {"image", c_image},
                                          {"text", c_text},
                                          {"write_png", c_write_png},
                                          {"pixel", c_pixel},
                                          {"free", c_gc},
                                          {NULL, NULL}};

void l_register_plot(lua_State *L) {
    luaL_newmetatable(L, CANVAS_MT);
    lua_pushcfunction(L, c_gc);
    lua_setfield(L, -2, "__gc");
    luaL_newlib(L, canvas_methods);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
    luaL_newmetatable(L, FONT_MT);
    lua_pushcfunction(L, f_gc);
    lua_setfield(L, -2, "__gc");
    lua_newtable(L);
    lua_pushcfunction(L, f_width);
    lua_setfield(L, -2, "width");
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
    lua_pushcfunction(L, l_canvas);
    lua_setfield(L, -2, "_canvas");
    lua_pushcfunction(L, l_font);
    lua_setfield(L, -2, "_font");
}
