#include "lm_raster.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <stb_image_write.h>
#include <stb_truetype.h>

#include "lm_atomic_file.h"
#include "lm_font_check.h"

lm_status lm_canvas_new(lm_canvas **out, int width, int height, uint32_t background) {
    *out = NULL;
    if (width < 1 || height < 1 || width > 16384 || height > 16384)
        return lm_fail(LM_ERR_ARG, "canvas: size %dx%d out of range (1..16384)", width, height);
    lm_canvas *c = malloc(sizeof *c);
    unsigned char *px = malloc((size_t)width * height * 4);
    if (!c || !px) {
        free(c);
        free(px);
        return lm_fail(LM_ERR_MEMORY, "canvas: out of memory for %dx%d pixels", width, height);
    }
    c->width = width, c->height = height, c->rgba = px;
    for (size_t i = 0; i < (size_t)width * height; i++) {
        px[4 * i] = background >> 24, px[4 * i + 1] = background >> 16 & 255;
        px[4 * i + 2] = background >> 8 & 255, px[4 * i + 3] = background & 255;
    }
    *out = c;
    return LM_OK;
}

void lm_canvas_free(lm_canvas *c) {
    if (!c) return;
    free(c->rgba);
    free(c);
}

/* Source-over blending of `color` with extra coverage in [0, 1]. */
static inline void blend(lm_canvas *c, int x, int y, uint32_t color, double coverage) {
    if (x < 0 || y < 0 || x >= c->width || y >= c->height || coverage <= 0) return;
    double a = (color & 255) / 255.0 * (coverage > 1 ? 1 : coverage);
    unsigned char *p = c->rgba + 4 * ((size_t)y * c->width + x);
    double src[3] = {color >> 24, color >> 16 & 255, color >> 8 & 255};
    double dst_a = p[3] / 255.0, out_a = a + dst_a * (1 - a);
    for (int k = 0; k < 3; k++) {
        double v = out_a > 0 ? (src[k] * a + p[k] * dst_a * (1 - a)) / out_a : 0;
        p[k] = (unsigned char)(v + 0.5);
    }
    p[3] = (unsigned char)(out_a * 255 + 0.5);
}

/* (NaN is 0: a NaN pixel cast to an integer would be undefined behaviour) */
static inline double clamp01(double v) {
    return v > 0 ? (v < 1 ? v : 1) : 0;
}

/* A pixel bound from a coordinate, clipped to [lo, hi] before it becomes an
 * int (a huge or NaN coordinate from data would otherwise overflow). */
static inline int pixel_bound(double v, int lo, int hi) {
    if (!(v >= lo)) return lo;
    if (v > hi) return hi;
    return (int)v;
}

void lm_canvas_fill_rect(lm_canvas *c, double x0, double y0, double x1, double y1, uint32_t color) {
    if (x1 < x0) {
        double t = x0;
        x0 = x1;
        x1 = t;
    }
    if (y1 < y0) {
        double t = y0;
        y0 = y1;
        y1 = t;
    }
    int ya = pixel_bound(floor(y0), 0, c->height), yb = pixel_bound(ceil(y1), 0, c->height);
    int xa = pixel_bound(floor(x0), 0, c->width), xb = pixel_bound(ceil(x1), 0, c->width);
    for (int y = ya; y < yb; y++) {
        double cy = clamp01(fmin(y + 1, y1) - fmax(y, y0));
        for (int x = xa; x < xb; x++) {
            double cx = clamp01(fmin(x + 1, x1) - fmax(x, x0));
            blend(c, x, y, color, cx * cy);
        }
    }
}

void lm_canvas_disc(lm_canvas *c, double cx, double cy, double r, uint32_t color) {
    int x0 = pixel_bound(floor(cx - r - 1), 0, c->width - 1);
    int x1 = pixel_bound(ceil(cx + r + 1), -1, c->width - 1);
    int y0 = pixel_bound(floor(cy - r - 1), 0, c->height - 1);
    int y1 = pixel_bound(ceil(cy + r + 1), -1, c->height - 1);
    for (int y = y0; y <= y1; y++)
        for (int x = x0; x <= x1; x++) {
            double d = hypot(x + 0.5 - cx, y + 0.5 - cy);
            blend(c, x, y, color, clamp01(r + 0.5 - d));
        }
}

void lm_canvas_line(lm_canvas *c, double x0, double y0, double x1, double y1, double width,
                    uint32_t color) {
    double h = width / 2, dx = x1 - x0, dy = y1 - y0, len2 = dx * dx + dy * dy;
    int bx0 = pixel_bound(floor(fmin(x0, x1) - h - 1), 0, c->width - 1);
    int bx1 = pixel_bound(ceil(fmax(x0, x1) + h + 1), -1, c->width - 1);
    int by0 = pixel_bound(floor(fmin(y0, y1) - h - 1), 0, c->height - 1);
    int by1 = pixel_bound(ceil(fmax(y0, y1) + h + 1), -1, c->height - 1);
    for (int y = by0; y <= by1; y++)
        for (int x = bx0; x <= bx1; x++) {
            double px = x + 0.5 - x0, py = y + 0.5 - y0;
            double t = len2 > 0 ? (px * dx + py * dy) / len2 : 0;
            t = clamp01(t);
            double d = hypot(px - t * dx, py - t * dy);
            blend(c, x, y, color, clamp01(h + 0.5 - d));
        }
}

static int compare_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

void lm_canvas_polygon(lm_canvas *c, const double *xs, const double *ys, int n, uint32_t color) {
    if (n < 3) return;
    double ymin = ys[0], ymax = ys[0];
    for (int i = 1; i < n; i++) ymin = fmin(ymin, ys[i]), ymax = fmax(ymax, ys[i]);
    int y0 = pixel_bound(floor(ymin), 0, c->height), y1 = pixel_bound(ceil(ymax), 0, c->height);
    double *cover = calloc((size_t)c->width + 2, sizeof *cover), *cross = malloc(sizeof *cross * n);
    if (!cover || !cross) {
        free(cover);
        free(cross);
        return;
    }
    for (int y = y0; y < y1; y++) {
        memset(cover, 0, sizeof *cover * (c->width + 2));
        for (int sub = 0; sub < 4; sub++) { /* four sample rows per pixel row */
            double sy = y + (sub + 0.5) / 4;
            int m = 0;
            for (int i = 0, j = n - 1; i < n; j = i++) {
                if ((ys[i] > sy) != (ys[j] > sy))
                    cross[m++] = xs[j] + (sy - ys[j]) * (xs[i] - xs[j]) / (ys[i] - ys[j]);
            }
            qsort(cross, m, sizeof *cross, compare_double);
            for (int k = 0; k + 1 < m; k += 2) { /* even-odd spans, exact horizontally */
                double a = fmax(cross[k], 0), b = fmin(cross[k + 1], c->width);
                if (!(a < b)) continue; /* a span off the canvas */
                for (int x = (int)floor(a); x < (int)ceil(b) && x < c->width; x++)
                    cover[x] += 0.25 * clamp01(fmin(x + 1, b) - fmax(x, a));
            }
        }
        for (int x = 0; x < c->width; x++)
            if (cover[x] > 0) blend(c, x, y, color, cover[x]);
    }
    free(cover);
    free(cross);
}

void lm_canvas_image(lm_canvas *c, int x, int y, const float *pixels, int w, int h, int channels,
                     int scale) {
    for (int iy = 0; iy < h; iy++)
        for (int ix = 0; ix < w; ix++) {
            double v[3];
            for (int k = 0; k < 3; k++) {
                /* planes (C, H, W) for colour, as CIFAR stores them */
                float p =
                    channels == 3 ? pixels[(size_t)k * w * h + iy * w + ix] : pixels[iy * w + ix];
                v[k] = clamp01(p) * 255;
            }
            uint32_t col = (uint32_t)(v[0] + 0.5) << 24 | (uint32_t)(v[1] + 0.5) << 16 |
                           (uint32_t)(v[2] + 0.5) << 8 | 255;
            for (int sy = 0; sy < scale; sy++)
                for (int sx = 0; sx < scale; sx++)
                    blend(c, x + ix * scale + sx, y + iy * scale + sy, col, 1);
        }
}

/* ---- text
 * ------------------------------------------------------------------------------------------- */

struct lm_font {
    stbtt_fontinfo info;
    unsigned char *data;
};

/* The whole file at `path` in memory. Only a regular file is read: a folder
 * or a FIFO has no size to trust (and opening a FIFO for reading would wait
 * for a writer, hence O_NONBLOCK, which regular files ignore). */
static lm_status read_font_file(const char *path, unsigned char **data, size_t *size) {
    *data = NULL;
    *size = 0;
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return lm_fail(LM_ERR_IO, "cannot open font '%s': %s", path, strerror(errno));
    struct stat st;
    lm_status s = LM_OK;
    if (fstat(fd, &st) != 0)
        s = lm_fail(LM_ERR_IO, "cannot read font '%s': %s", path, strerror(errno));
    else if (!S_ISREG(st.st_mode))
        s = lm_fail(LM_ERR_IO, "font '%s' is not a regular file", path);
    else if ((uint64_t)st.st_size > LM_FONT_MAX_BYTES)
        s = lm_fail(LM_ERR_FORMAT, "'%s' has %lld bytes, more than a font may have (%zu)", path,
                    (long long)st.st_size, LM_FONT_MAX_BYTES);
    else if (!(*data = malloc(st.st_size > 0 ? (size_t)st.st_size : 1)))
        s = lm_fail(LM_ERR_MEMORY, "out of memory reading font '%s'", path);
    while (s == LM_OK && *size < (size_t)st.st_size) { /* read may return less than asked */
        ssize_t got = read(fd, *data + *size, (size_t)st.st_size - *size);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0)
            s = lm_fail(LM_ERR_IO, "cannot read font '%s': %s", path,
                        got < 0 ? strerror(errno) : "the file shrank while it was read");
        else
            *size += (size_t)got;
    }
    close(fd);
    if (s != LM_OK) {
        free(*data);
        *data = NULL;
    }
    return s;
}

lm_status lm_font_load(lm_font **out, const char *path) {
    *out = NULL;
    lm_font *font = calloc(1, sizeof *font);
    if (!font) return lm_fail(LM_ERR_MEMORY, "out of memory loading font '%s'", path);
    size_t size;
    lm_status s = read_font_file(path, &font->data, &size);
    /* stb_truetype reads fonts without bounds checks: the whole file is
     * checked first (lm_font_check.h) */
    if (s == LM_OK) s = lm_font_check(font->data, size, path);
    if (s == LM_OK &&
        !stbtt_InitFont(&font->info, font->data, stbtt_GetFontOffsetForIndex(font->data, 0)))
        s = lm_fail(LM_ERR_FORMAT, "'%s' is not a TrueType font", path);
    if (s != LM_OK) {
        lm_font_free(font);
        return s;
    }
    *out = font;
    return LM_OK;
}

void lm_font_free(lm_font *f) {
    if (!f) return;
    free(f->data);
    free(f);
}

/* Next code point of UTF-8 text (invalid bytes read as U+FFFD). */
static int next_codepoint(const char **s) {
    const unsigned char *p = (const unsigned char *)*s;
    int cp, len;
    if (p[0] < 0x80)
        cp = p[0], len = 1;
    else if ((p[0] & 0xE0) == 0xC0 && (p[1] & 0xC0) == 0x80)
        cp = (p[0] & 31) << 6 | (p[1] & 63), len = 2;
    else if ((p[0] & 0xF0) == 0xE0 && (p[1] & 0xC0) == 0x80 && (p[2] & 0xC0) == 0x80)
        cp = (p[0] & 15) << 12 | (p[1] & 63) << 6 | (p[2] & 63), len = 3;
    else
        cp = 0xFFFD, len = 1;
    *s += len;
    return cp;
}

double lm_text_width(const lm_font *f, double size, const char *text) {
    float scale = stbtt_ScaleForPixelHeight(&f->info, (float)size);
    double w = 0;
    int prev = 0;
    while (*text) {
        int cp = next_codepoint(&text), adv, lsb;
        if (prev) w += scale * stbtt_GetCodepointKernAdvance(&f->info, prev, cp);
        stbtt_GetCodepointHMetrics(&f->info, cp, &adv, &lsb);
        w += scale * adv;
        prev = cp;
    }
    return w;
}

void lm_canvas_text(lm_canvas *c, const lm_font *f, double x, double y, double size, uint32_t color,
                    const char *text, int angle) {
    /* a position far outside any canvas (or NaN) draws nothing: the pixel
     * arithmetic below stays in int */
    if (!(fabs(x) < 1e7 && fabs(y) < 1e7)) return;
    /* nor does a size past any glyph box drawn below (256 pixels), or NaN:
     * stbtt's box arithmetic converts size-scaled coordinates to int */
    if (!(size > 0 && size <= 1024)) return;
    float scale = stbtt_ScaleForPixelHeight(&f->info, (float)size);
    double pen = 0;
    int prev = 0;
    unsigned char glyph[256 * 256];
    while (*text) {
        int cp = next_codepoint(&text), adv, lsb, x0, y0, x1, y1;
        if (prev) pen += scale * stbtt_GetCodepointKernAdvance(&f->info, prev, cp);
        stbtt_GetCodepointHMetrics(&f->info, cp, &adv, &lsb);
        float shift = (float)(pen - floor(pen));
        stbtt_GetCodepointBitmapBoxSubpixel(&f->info, cp, scale, scale, shift, 0, &x0, &y0, &x1,
                                            &y1);
        int gw = x1 - x0, gh = y1 - y0;
        if (gw > 0 && gh > 0 && gw <= 256 && gh <= 256) {
            stbtt_MakeCodepointBitmapSubpixel(&f->info, glyph, gw, gh, gw, scale, scale, shift, 0,
                                              cp);
            for (int gy = 0; gy < gh; gy++)
                for (int gx = 0; gx < gw; gx++) {
                    double cov = glyph[gy * gw + gx] / 255.0;
                    if (cov <= 0) continue;
                    /* glyph pixel offset from the pen position along and across the baseline */
                    int along = (int)floor(pen) + x0 + gx, across = y0 + gy;
                    if (angle == 90)
                        blend(c, (int)floor(x) + across, (int)floor(y) - along, color, cov);
                    else
                        blend(c, (int)floor(x) + along, (int)floor(y) + across, color, cov);
                }
        }
        pen += scale * adv;
        prev = cp;
    }
}

/* ---- PNG
 * ---------------------------------------------------------------------------------------------- */

lm_status lm_canvas_write_png(const lm_canvas *c, const char *path) {
    lm_atomic_file f;
    LM_TRY(lm_atomic_open(&f, path));
    int ok = stbi_write_png_to_func(lm_atomic_write_chunk, &f, c->width, c->height, 4, c->rgba,
                                    c->width * 4);
    if (!ok || !f.fp) {
        lm_atomic_abort(&f);
        return lm_fail(LM_ERR_IO, "writing the PNG '%s' failed", path);
    }
    return lm_atomic_commit(&f);
}
