/* Fonts that stb_truetype would read outside of are refused with a message
 * (lm_font_check.c), never a crash; DejaVu Sans still loads and renders.
 * The corrupt fonts are DejaVu Sans with parts overwritten: each case names
 * the table it breaks and the message expected. Under the ASan build an
 * out-of-bounds read in stb_truetype fails the test. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lm_raster.h"
#include "test.h"

#define DEJAVU "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"

static char dir[256];
static unsigned char *dejavu;
static size_t dejavu_size;

static const char *path_of(const char *name) {
    static char buf[512];
    snprintf(buf, sizeof buf, "%s/%s", dir, name);
    return buf;
}

static void write_file(const char *name, const void *data, size_t size) {
    FILE *f = fopen(path_of(name), "wb");
    if (!f) return;
    if (size) fwrite(data, 1, size, f);
    fclose(f);
}

static unsigned char *read_file(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    unsigned char *data = n > 0 ? malloc((size_t)n) : NULL;
    if (data && fread(data, 1, (size_t)n, f) != (size_t)n) {
        free(data);
        data = NULL;
    }
    fclose(f);
    *size = data ? (size_t)n : 0;
    return data;
}

/* ---- big-endian fields of a font in memory */

static uint32_t get16(const unsigned char *f, size_t at) {
    return (uint32_t)f[at] << 8 | f[at + 1];
}
static uint32_t get32(const unsigned char *f, size_t at) {
    return get16(f, at) << 16 | get16(f, at + 2);
}
static void put16(unsigned char *f, size_t at, uint32_t v) {
    f[at] = (unsigned char)(v >> 8), f[at + 1] = (unsigned char)v;
}
static void put32(unsigned char *f, size_t at, uint32_t v) {
    put16(f, at, v >> 16), put16(f, at + 2, v & 0xFFFF);
}

/* The file offset of a table's directory entry, and of the table. */
static size_t entry_of(const unsigned char *f, const char *tag) {
    for (uint32_t i = 0; i < get16(f, 4); i++)
        if (!memcmp(f + 12 + 16 * i, tag, 4)) return 12 + 16 * i;
    return 0;
}
static size_t table_of(const unsigned char *f, const char *tag) {
    size_t e = entry_of(f, tag);
    return e ? get32(f, e + 8) : 0;
}
static uint32_t table_size(const unsigned char *f, const char *tag) {
    size_t e = entry_of(f, tag);
    return e ? get32(f, e + 12) : 0;
}

/* Glyph g's data in the file and its length (DejaVu's loca has 32-bit entries). */
static size_t glyph_of(const unsigned char *f, uint32_t g, size_t *len) {
    size_t loca = table_of(f, "loca"), glyf = table_of(f, "glyf");
    uint32_t a = get32(f, loca + 4 * g), b = get32(f, loca + 4 * g + 4);
    *len = b - a;
    return glyf + a;
}

static uint32_t glyph_count(const unsigned char *f) {
    return get16(f, table_of(f, "maxp") + 4);
}

/* The first glyph from `from` with at least min_len bytes whose contour
 * count has the sign asked for (1 simple, -1 composite). */
static uint32_t find_glyph(const unsigned char *f, uint32_t from, int sign, size_t min_len) {
    for (uint32_t g = from; g < glyph_count(f); g++) {
        size_t len, at = glyph_of(f, g, &len);
        if (len < 10 || len < min_len) continue;
        int16_t contours = (int16_t)get16(f, at);
        if ((sign > 0 && contours > 0) || (sign < 0 && contours < 0)) return g;
    }
    return 0;
}

/* The n-th subtable of the first GPOS pair-adjustment lookup, in the file. */
static size_t gpos_pair_subtable(const unsigned char *f, uint32_t n) {
    size_t gpos = table_of(f, "GPOS"), list = gpos + get16(f, gpos + 8);
    for (uint32_t i = 0; i < get16(f, list); i++) {
        size_t lookup = list + get16(f, list + 2 + 2 * i);
        if (get16(f, lookup) == 2 && n < get16(f, lookup + 4))
            return lookup + get16(f, lookup + 6 + 2 * n);
    }
    return 0;
}

/* ---- rendering */

static const char *samples[] = {
    "Hello, World! 0.125",
    "AV To Ta fi ffl W.",
    "\xc3\x9cn\xc3\xaf" /* "Ünïcödé Ωμ ∑∫ →" */
    "c\xc3\xb6"
    "d\xc3\xa9 \xce\xa9\xce\xbc \xe2\x88\x91\xe2\x88\xab \xe2\x86\x92",
    "\xe6\xbc\xa2\xe5\xad\x97 \xff\xfe bad \xc3 \xef\xbf\xbd end",
    "",
};

/* What lm_raster.c does with a font for a figure: widths, and text drawn
 * across and upwards at a few sizes. Returns the number of pixels inked. */
static long render(const lm_font *f) {
    lm_canvas *c;
    if (lm_canvas_new(&c, 160, 120, 0xFFFFFFFF) != LM_OK) return -1;
    for (size_t i = 0; i < sizeof samples / sizeof *samples; i++)
        for (double size = 7; size < 60; size *= 2.5) {
            double w = lm_text_width(f, size, samples[i]);
            CHECK(w == w); /* not NaN */
            lm_canvas_text(c, f, 4, 4 + size, size, 0x203040FF, samples[i], 0);
            lm_canvas_text(c, f, 30, 110, size, 0x802020C0, samples[i], 90);
        }
    long inked = 0;
    for (long p = 0; p < 160L * 120; p++) inked += c->rgba[4 * p] != 255;
    lm_canvas_free(c);
    return inked;
}

/* ---- tests */

static void test_dejavu_loads(void) {
    lm_font *f;
    CHECK_OK(lm_font_load(&f, DEJAVU));
    if (!f) return;
    CHECK(lm_text_width(f, 20, "Hello") > 40);
    CHECK(lm_text_width(f, 20, "AV") < lm_text_width(f, 20, "A") + lm_text_width(f, 20, "V"));
    CHECK(render(f) > 1000);
    /* sizes no glyph box fits (or NaN) draw nothing, and stbtt's int box
     * arithmetic never sees them (UBSan checks the conversions) */
    lm_canvas *c;
    if (lm_canvas_new(&c, 16, 16, 0xFFFFFFFF) == LM_OK) {
        const double sizes[] = {1e300, -5, 0.0 / 0.0, 2048};
        for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++)
            lm_canvas_text(c, f, 2, 8, sizes[i], 0x000000FF, "Hg", 0);
        long inked = 0;
        for (long p = 0; p < 16L * 16; p++) inked += c->rgba[4 * p] != 255;
        CHECK(inked == 0);
        lm_canvas_free(c);
    }
    lm_font_free(f);
}

/* Every DejaVu font (22 in Debian's fonts-dejavu-core and -extra) loads and
 * draws: the checks on outlines leave real fonts alone. */
static void test_all_dejavu(void) {
    DIR *dj = opendir("/usr/share/fonts/truetype/dejavu");
    if (!dj) return;
    int fonts = 0;
    for (struct dirent *e; (e = readdir(dj));) {
        size_t n = strlen(e->d_name);
        if (n < 4 || strcmp(e->d_name + n - 4, ".ttf")) continue;
        char path[512];
        snprintf(path, sizeof path, "/usr/share/fonts/truetype/dejavu/%s", e->d_name);
        lm_font *f;
        lm_status s = lm_font_load(&f, path);
        CHECK(s == LM_OK);
        if (s != LM_OK) {
            fprintf(stderr, "%s refused: %s\n", e->d_name, lm_last_error());
            continue;
        }
        fonts++;
        CHECK(render(f) > 0);
        lm_font_free(f);
    }
    closedir(dj);
    printf("DejaVu fonts: %d loaded and rendered\n", fonts);
}

static void test_not_fonts(void) {
    lm_font *f;
    write_file("empty", "", 0);
    CHECK_FAILS(lm_font_load(&f, path_of("empty")), LM_ERR_FORMAT, "too short");
    CHECK(f == NULL);
    write_file("short", "Hello you", 10); /* the fuzzer's first crash: 10 bytes of text */
    CHECK_FAILS(lm_font_load(&f, path_of("short")), LM_ERR_FORMAT, "too short");
    const char *text = "Lorem ipsum dolor sit amet, consectetur adipiscing elit.\n";
    write_file("text", text, strlen(text));
    CHECK_FAILS(lm_font_load(&f, path_of("text")), LM_ERR_FORMAT, "does not start with");
    write_file("ttc", "ttcf\0\1\0\0\0\0\0\1\0\0\0\20", 16);
    CHECK_FAILS(lm_font_load(&f, path_of("ttc")), LM_ERR_FORMAT, "font collection");
    write_file("otf", "OTTO\0\0\0\0\0\0\0\0", 12);
    CHECK_FAILS(lm_font_load(&f, path_of("otf")), LM_ERR_FORMAT, "CFF");
    CHECK_FAILS(lm_font_load(&f, path_of("absent")), LM_ERR_IO, "cannot open font");
    CHECK_FAILS(lm_font_load(&f, dir), LM_ERR_IO, "not a regular file");
    /* a FIFO with no writer: refused at once, not waited on */
    if (mkfifo(path_of("fifo"), 0600) == 0)
        CHECK_FAILS(lm_font_load(&f, path_of("fifo")), LM_ERR_IO, "not a regular file");
}

/* Cut inside the directory, inside each table stbtt reads (at DejaVu's
 * offsets), and near the end. */
static void test_truncated(void) {
    size_t cuts[16] = {1, 4, 11, 12, 100, 331, 1020, 5000, 48900, 56000, 300000, 614200, 680640};
    cuts[13] = dejavu_size / 2, cuts[14] = dejavu_size - 1400, cuts[15] = dejavu_size - 1;
    for (size_t k = 0; k < sizeof cuts / sizeof *cuts; k++) {
        lm_font *f;
        write_file("cut.ttf", dejavu, cuts[k]);
        CHECK_FAILS(lm_font_load(&f, path_of("cut.ttf")), LM_ERR_FORMAT,
                    "is not a usable TrueType font");
    }
}

/* Writes `font` and expects it refused with a message containing needle. */
static void expect_refused(const unsigned char *font, const char *needle, int line) {
    lm_font *f;
    write_file("bad.ttf", font, dejavu_size);
    lm_status s = lm_font_load(&f, path_of("bad.ttf"));
    CHECK(s == LM_ERR_FORMAT && strstr(lm_last_error(), needle));
    if (s != LM_ERR_FORMAT || !strstr(lm_last_error(), needle))
        fprintf(stderr, "line %d: expected a refusal with '%s', got %d: '%s'\n", line, needle, s,
                s ? lm_last_error() : "");
    if (s == LM_OK) lm_font_free(f);
}

/* Writes `font` and expects it to load and render. */
static void expect_loads(const unsigned char *font, int line) {
    lm_font *f;
    write_file("ok.ttf", font, dejavu_size);
    lm_status s = lm_font_load(&f, path_of("ok.ttf"));
    CHECK(s == LM_OK);
    if (s != LM_OK) {
        fprintf(stderr, "line %d: refused: %s\n", line, lm_last_error());
        return;
    }
    CHECK(render(f) > 0);
    lm_font_free(f);
}

/* In the tests below: m, a copy of d (DejaVu) to break. */
#define FRESH() memcpy(m, d, dejavu_size)
#define REFUSED(needle) expect_refused(m, needle, __LINE__)
#define LOADS() expect_loads(m, __LINE__)

static void test_broken_tables(void) {
    unsigned char *m = malloc(dejavu_size);
    const unsigned char *d = dejavu;
    size_t head = table_of(d, "head"), hhea = table_of(d, "hhea"), maxp = table_of(d, "maxp");
    size_t loca = table_of(d, "loca");

    FRESH(); /* the directory */
    put16(m, 4, 0xFFFF);
    REFUSED("table directory");
    FRESH();
    put32(m, entry_of(d, "glyf") + 8, (uint32_t)dejavu_size - 100);
    REFUSED("'glyf' table");
    FRESH();
    put32(m, entry_of(d, "post") + 12, 0xFFFFFFF0); /* a table stbtt never reads */
    REFUSED("'post' table");
    FRESH();
    memcpy(m + entry_of(d, "hmtx"), "hmtX", 4);
    REFUSED("no 'hmtx' table");
    FRESH();
    put32(m, entry_of(d, "head") + 12, 40);
    REFUSED("'head' table has 40 bytes");

    FRESH(); /* head, hhea, maxp, hmtx */
    put16(m, head + 50, 2);
    REFUSED("indexToLocFormat");
    FRESH();
    put16(m, maxp + 4, 0);
    REFUSED("no glyphs");
    FRESH();
    put16(m, hhea + 6, get16(d, hhea + 4));
    REFUSED("ascent");
    FRESH();
    put16(m, hhea + 34, 0);
    REFUSED("no horizontal metrics");
    FRESH();
    put16(m, hhea + 34, 0xFFFF);
    REFUSED("hmtx table");

    FRESH(); /* loca */
    put32(m, loca + 4 * 40, table_size(d, "glyf") + 2);
    REFUSED("past the");
    FRESH();
    put32(m, loca + 4 * 40, 0);
    REFUSED("goes backwards");
    FRESH();
    put32(m, entry_of(d, "loca") + 12, 100);
    REFUSED("loca table has 100 bytes");
    free(m);
}

static void test_broken_cmap(void) {
    unsigned char *m = malloc(dejavu_size);
    const unsigned char *d = dejavu;
    size_t cmap = table_of(d, "cmap");
    uint32_t records = get16(d, cmap + 2);
    /* stbtt takes the last Unicode record: DejaVu's (3, 10), format 12 */
    size_t last = cmap + 4 + 8 * (records - 1), sub12 = cmap + get32(d, last + 4);
    CHECK(get16(d, sub12) == 12);
    size_t sub4 = 0, sub6 = 0;
    for (uint32_t i = 0; i < records; i++) {
        size_t sub = cmap + get32(d, cmap + 4 + 8 * i + 4);
        if (get16(d, sub) == 4) sub4 = sub;
        if (get16(d, sub) == 6) sub6 = sub;
    }
    CHECK(sub4 && sub6);
    if (!sub4 || !sub6) {
        free(m);
        return;
    }
    FRESH();
    put32(m, sub12 + 4, 0x7FFFFFFF);
    REFUSED("runs past the cmap table");
    FRESH();
    put32(m, sub12 + 12, 0x10000000);
    REFUSED("groups past its length");
    FRESH();
    put32(m, sub12 + 16 + 8, 0xFFFFFF00); /* the first group's glyph */
    REFUSED("its cmap maps");
    FRESH();
    put16(m, cmap + 2, 0x4000);
    REFUSED("encoding records");
    FRESH();
    put32(m, last + 4, 0x7FFFFFF0);
    REFUSED("outside the cmap table");
    FRESH();
    put16(m, sub12, 2);
    REFUSED("format 2");
    FRESH();
    for (uint32_t i = 0; i < records; i++) put16(m, cmap + 4 + 8 * i, 1); /* all Macintosh */
    REFUSED("no Unicode subtable");

    /* format 4, taken when the last record points at it; then broken */
    FRESH();
    put32(m, last + 4, (uint32_t)(sub4 - cmap));
    LOADS();
    put16(m, sub4 + 2, 0xFFF0);
    REFUSED("runs past the cmap table");
    put16(m, sub4 + 2, get16(d, sub4 + 2));
    put16(m, sub4 + 12, 0xFFFE); /* rangeShift: stbtt's search reads where it says */
    REFUSED("reads past its length");
    put16(m, sub4 + 12, get16(d, sub4 + 12));
    put16(m, sub4 + 10, 0xFFFF); /* entrySelector: 65535 steps, the same reads after 16 */
    expect_loads(m, __LINE__);
    /* format 6 (Mac Roman here, read as Unicode) */
    FRESH();
    put32(m, last + 4, (uint32_t)(sub6 - cmap));
    LOADS();
    put16(m, sub6 + 8, 0x7FFF);
    REFUSED("format 6");
    free(m);
}

static void test_broken_glyphs(void) {
    unsigned char *m = malloc(dejavu_size);
    const unsigned char *d = dejavu;
    size_t len;
    uint32_t simple = find_glyph(d, 3, 1, 40), composite = find_glyph(d, 3, -1, 0);
    CHECK(simple && composite);
    size_t at = glyph_of(d, simple, &len), comp = glyph_of(d, composite, &len);

    FRESH();
    put16(m, at, 0x7FFF); /* contours */
    REFUSED("end points of its 32767 contours");
    FRESH();
    put16(m, at + 10 + 2 * get16(d, at), 0xF000); /* instructions */
    REFUSED("run past");
    FRESH();
    put16(m, at + 8 + 2 * get16(d, at), 0xFFFE); /* the last end point: 65535 points */
    REFUSED("run past");
    FRESH();
    /* one contour of one off-curve point: stbtt would read past its vertices */
    /* (its box kept and its point at the box's corner, so that the composites
     * taking it as a component stay inside theirs) */
    unsigned char lone[] = {0, 0, 0, 0, 0x36}; /* end point 0, no instructions, a flag */
    put16(m, at, 1);
    memcpy(m + at + 10, lone, sizeof lone);
    memcpy(m + at + 15, d + at + 2, 4); /* (xMin, yMin), as words */
    REFUSED("single off-curve point");
    m[at + 14] = 0x01; /* on the curve, x and y words: fine */
    LOADS();

    FRESH();
    put16(m, comp + 12, composite); /* its first component: itself */
    REFUSED("among its own components");
    FRESH();
    put16(m, comp + 12, 0xFFFF);
    REFUSED("out of range");
    FRESH();
    put16(m, comp + 10, get16(d, comp + 10) & ~2u); /* matched points, which stbtt asserts on */
    REFUSED("matching points");
    FRESH();
    /* "more components" to the end of the glyph: a record cut short */
    for (size_t k = comp + 10; k < comp + len; k++) m[k] = "\0\x22\0\3\0\0"[(k - comp - 10) % 6];
    REFUSED("component records run past");

    /* a chain of composites, each the first component of the one before */
    FRESH();
    uint32_t chain[24];
    chain[0] = composite;
    for (int k = 1; k < 24; k++) chain[k] = find_glyph(d, chain[k - 1] + 1, -1, 0);
    for (int k = 0; k + 1 < 24; k++) put16(m, glyph_of(d, chain[k], &len) + 12, chain[k + 1]);
    lm_font *f;
    write_file("bad.ttf", m, dejavu_size);
    CHECK(lm_font_load(&f, path_of("bad.ttf")) == LM_ERR_FORMAT);
    CHECK(strstr(lm_last_error(), "nest more than") || strstr(lm_last_error(), "own components"));
    free(m);
}

/* Writes a simple glyph at `at`: one contour of two points on the curve,
 * at (p, p) and (-p, -p), with the box [lo, hi] on both axes in its header. */
static void put_segment(unsigned char *f, size_t at, int p, int lo, int hi) {
    int16_t v[12] = {1, lo, lo, hi, hi, 1, 0, 0x0101, p, -2 * p, p, -2 * p};
    for (int k = 0; k < 12; k++) put16(f, at + 2 * k, (uint16_t)v[k]);
    f[at + 14] = f[at + 15] = 1; /* the flags of its 2 points: on the curve, word deltas */
}

/* Writes a composite glyph at `at` with the box [lo, hi]: one component,
 * glyph `of`, at (0, 0), scaled by scale / 16384. */
static void put_scaled(unsigned char *f, size_t at, uint32_t of, int scale, int lo, int hi) {
    int16_t v[10] = {-1, lo, lo, hi, hi, 0x000B, (int16_t)of, 0, 0, (int16_t)scale};
    for (int k = 0; k < 10; k++) put16(f, at + 2 * k, (uint16_t)v[k]);
}

/* Outlines stbtt would move past its 16-bit coordinates (undefined
 * behaviour in its float-to-short conversion), or that lie far outside the
 * glyph's box (which is all lm_raster limits), so that flattening them
 * takes minutes and gigabytes. */
static void test_outlines(void) {
    unsigned char *m = malloc(dejavu_size);
    const unsigned char *d = dejavu;
    size_t len;
    /* .notdef, which no composite takes as a component, becomes the outline */
    uint32_t simple = 0, composite = find_glyph(d, 3, -1, 20);
    size_t at = glyph_of(d, simple, &len), comp = glyph_of(d, composite, &len);
    CHECK(composite && (int16_t)get16(d, at) > 0 && len >= 24);

    FRESH(); /* points at +-16383 in a box that says so: fine */
    put_segment(m, at, 16383, -16383, 16383);
    LOADS();
    /* stbtt scales a component twice (by the matrix, then by the length of
     * its columns): sqrt(2) takes 16383 to 32764, just within a short */
    put_scaled(m, comp, simple, 0x5A82, -32767, 32767);
    LOADS();
    put_scaled(m, comp, simple, 0x7FFF, -32767, 32767); /* about 2: 65528 */
    REFUSED("16-bit coordinates");
    put_scaled(m, comp, simple, -0x8000, -32767, 32767); /* -2: 65532 */
    REFUSED("16-bit coordinates");
    put_scaled(m, comp, simple, 0x4000, 0, 10); /* scale 1, in a box of 10 units */
    REFUSED("far outside its bounding box");

    FRESH(); /* the reviewer's: a box of 10 units, points at +-16383 */
    put_segment(m, at, 16383, 0, 10);
    REFUSED("far outside its bounding box");
    put_segment(m, at, 30, -10, 10); /* outside by 20 units of 20: fine */
    LOADS();
    put_segment(m, at, 30, 0, 5);
    REFUSED("reaches x -30 to 30");
    free(m);
}

static void test_broken_kerning(void) {
    const unsigned char *d = dejavu;
    size_t gpos = table_of(d, "GPOS"), pair = gpos_pair_subtable(d, 0);
    CHECK(pair && get16(d, pair) == 2); /* DejaVu kerns by classes */
    if (!pair || get16(d, pair) != 2) return;
    unsigned char *m = malloc(dejavu_size);
    size_t def2 = pair + get16(d, pair + 10);
    FRESH();
    put16(m, pair + 2, 0xFFFF);
    REFUSED("coverage table is past");
    FRESH();
    put16(m, pair + get16(d, pair + 2) + 2, 0xFFFF); /* coverage count */
    REFUSED("coverage table (format 1) runs past");
    FRESH();
    put16(m, pair + 8, 0xFFFF);
    REFUSED("class definition is past");
    FRESH();
    put16(m, def2 + (get16(d, def2) == 1 ? 4 : 2), 0xFFFF); /* the second one's count */
    REFUSED("class definition (format");
    FRESH();
    put16(m, pair + 12, 0xFFFF); /* class 1 count */
    REFUSED("class records run past");
    FRESH();
    put16(m, gpos + 8, 0xFFF0);
    REFUSED("lookup list");
    FRESH();
    put16(m, pair, 1); /* read as pair sets */
    put16(m, pair + 10, 0xFFFF);
    REFUSED("pair set 0 runs past");
    FRESH();
    put16(m, gpos + 2, 1); /* GPOS 1.1: stbtt reads no kerning from it */
    LOADS();
    /* without GPOS, stbtt kerns with kern */
    FRESH();
    memcpy(m + entry_of(d, "GPOS"), "GPOZ", 4);
    LOADS();
    size_t kern = table_of(d, "kern");
    put16(m, kern + 10, 0xFFFF);
    REFUSED("kern table's pairs");
    free(m);
}

/* Where a mutant changes a byte, from random bits r: anywhere (1 in 4), in
 * the header and the directory (1 in 4), or in the first 4 kB of a table
 * stbtt reads. */
static size_t mutant_position(uint64_t r) {
    static const char *tables[] = {"cmap", "head", "hhea", "hmtx", "loca", "maxp", "GPOS", "glyf"};
    if (r % 4 == 0) return (size_t)(r >> 8) % dejavu_size;
    if (r % 4 == 1) return (size_t)(r >> 8) % (12 + 16 * 20);
    const char *t = tables[(r >> 8) % 8];
    uint32_t size = table_size(dejavu, t), span = size < 4096 ? size : 4096;
    return table_of(dejavu, t) + (size_t)(r >> 16) % (span ? span : 1);
}

/* Random corruption: each mutant is refused, or loads and renders. A mutant
 * changes up to 4 bytes (set, or one bit flipped), in place in one copy of
 * the file (writing 760 kB for each would take most of the test's time). */
static void test_mutants(void) {
    write_file("mutant.ttf", dejavu, dejavu_size);
    FILE *file = fopen(path_of("mutant.ttf"), "r+b");
    unsigned char *m = malloc(dejavu_size);
    CHECK(file && m);
    if (!file || !m) {
        if (file) fclose(file);
        free(m);
        return;
    }
    memcpy(m, dejavu, dejavu_size);
    uint64_t state = 0x9E3779B97F4A7C15u;
    int loaded = 0, refused = 0;
    for (int k = 0; k < 2000; k++) {
        size_t at[4];
        int flips = 1 + (int)(state % 4);
        for (int i = 0; i < flips; i++) {
            state ^= state << 13, state ^= state >> 7, state ^= state << 17; /* xorshift64 */
            at[i] = mutant_position(state);
            m[at[i]] = (state >> 40) & 1 ? (unsigned char)(state >> 48)
                                         : m[at[i]] ^ (1u << (state >> 56) % 8);
            fseek(file, (long)at[i], SEEK_SET);
            fputc(m[at[i]], file);
        }
        fflush(file);
        lm_font *f;
        if (lm_font_load(&f, path_of("mutant.ttf")) == LM_OK) {
            loaded++;
            render(f);
            lm_font_free(f);
        } else {
            refused++;
            CHECK(strstr(lm_last_error(), "mutant.ttf"));
        }
        for (int i = 0; i < flips; i++) { /* back to DejaVu */
            m[at[i]] = dejavu[at[i]];
            fseek(file, (long)at[i], SEEK_SET);
            fputc(m[at[i]], file);
        }
    }
    fclose(file);
    printf("mutants: %d loaded and rendered, %d refused\n", loaded, refused);
    CHECK(loaded > 100 && refused > 100);
    free(m);
}

int main(void) {
    dejavu = read_file(DEJAVU, &dejavu_size);
    if (!dejavu) {
        printf("skipped: %s is absent (Debian: fonts-dejavu-core)\n", DEJAVU);
        return 0;
    }
    snprintf(dir, sizeof dir, "/tmp/lumen-test-font-XXXXXX");
    if (!mkdtemp(dir)) return 1;
    test_dejavu_loads();
    test_all_dejavu();
    test_not_fonts();
    test_truncated();
    test_broken_tables();
    test_broken_cmap();
    test_broken_glyphs();
    test_outlines();
    test_broken_kerning();
    test_mutants();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    free(dejavu);
    printf("%d checks, %d failed\n", test_checks, test_failures);
    return test_failures ? 1 : 0;
}
