/* A small raster canvas for figures: RGBA pixels, antialiased discs, lines
 * and polygons with alpha blending, TrueType text (stb_truetype) and PNG
 * output (stb_image_write, written atomically). Coordinates are pixels,
 * (0, 0) at the top left; colours are 0xRRGGBBAA. */
#ifndef LM_RASTER_H
#define LM_RASTER_H

#include <stdint.h>

#include "lm_error.h"

typedef struct lm_canvas {
    int width, height;
    unsigned char *rgba; /* width * height * 4 */
} lm_canvas;

typedef struct lm_font lm_font;

lm_status lm_canvas_new(lm_canvas **out, int width, int height, uint32_t background);
void lm_canvas_free(lm_canvas *c);

void lm_canvas_fill_rect(lm_canvas *c, double x0, double y0, double x1, double y1, uint32_t color);
/* A filled disc of radius r. */
void lm_canvas_disc(lm_canvas *c, double cx, double cy, double r, uint32_t color);
/* A segment of the given width with round caps. */
void lm_canvas_line(lm_canvas *c, double x0, double y0, double x1, double y1, double width,
                    uint32_t color);
/* A filled simple polygon (n points, xs/ys), 4x4 supersampled edges. */
void lm_canvas_polygon(lm_canvas *c, const double *xs, const double *ys, int n, uint32_t color);
/* Copies an image of w x h pixels (gray, or RGB when channels is 3, values
 * in [0, 1]) scaled by an integer factor with its top left at (x, y). */
void lm_canvas_image(lm_canvas *c, int x, int y, const float *pixels, int w, int h, int channels,
                     int scale);

lm_status lm_font_load(lm_font **out, const char *path);
void lm_font_free(lm_font *f);
/* Width of text in pixels at the given pixel height. */
double lm_text_width(const lm_font *f, double size, const char *text);
/* Draws UTF-8 text with its baseline starting at (x, y); angle 0 or 90
 * (vertical, reading upwards). */
void lm_canvas_text(lm_canvas *c, const lm_font *f, double x, double y, double size, uint32_t color,
                    const char *text, int angle);

lm_status lm_canvas_write_png(const lm_canvas *c, const char *path);

#endif
