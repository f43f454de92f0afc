/* libFuzzer harness: a font file through lm_font_load (lm_font_check, then
 * stb_truetype) and, when accepted, used as a figure uses it: text measured
 * and drawn across and upwards, non-ASCII and invalid UTF-8 included, with
 * code points taken from the input's last bytes so that the fuzzer can reach
 * every glyph. */
#include "fuzz_file.h"
#include "lm_raster.h"

static const char *samples[] = {
    "Hello, AV To fi 0.5",
    "\xc3\x9c\xc3\xa9 \xce\xa9 \xe2\x88\x91 \xe6\xbc\xa2",
    "\xff\xfe \xc3 \xef\xbf\xbd",
};

/* UTF-8 of up to 8 code points, 16 bits each, from the last bytes of data. */
static void codepoints_from(const uint8_t *data, size_t size, char *out) {
    size_t n = size / 2 < 8 ? size / 2 : 8;
    for (size_t k = 0; k < n; k++) {
        unsigned cp = (unsigned)data[size - 2 * k - 2] << 8 | data[size - 2 * k - 1];
        if (cp == 0) cp = ' ';
        if (cp < 0x80) {
            *out++ = (char)cp;
        } else if (cp < 0x800) {
            *out++ = (char)(0xC0 | cp >> 6), *out++ = (char)(0x80 | (cp & 63));
        } else {
            *out++ = (char)(0xE0 | cp >> 12), *out++ = (char)(0x80 | (cp >> 6 & 63));
            *out++ = (char)(0x80 | (cp & 63));
        }
    }
    *out = 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_file(data, size, "ttf");
    lm_font *font;
    lm_canvas *canvas;
    if (!path || lm_font_load(&font, path) != LM_OK) return 0;
    if (lm_canvas_new(&canvas, 96, 64, 0xFFFFFFFF) == LM_OK) {
        char text[8 * 3 + 1];
        codepoints_from(data, size, text);
        for (int i = 0; i < 4; i++) {
            const char *s = i < 3 ? samples[i] : text;
            lm_text_width(font, 11, s);
            lm_canvas_text(canvas, font, 2, 20, 11, 0x000000FF, s, 0);
            lm_canvas_text(canvas, font, 60, 60, 30, 0x204080C0, s, 90);
        }
        lm_canvas_free(canvas);
    }
    lm_font_free(font);
    return 0;
}
