/* lm_font_check: the reads stb_truetype v1.26 makes for Lumen, each checked
 * against the bounds of its table before stb_truetype makes it. Every check
 * names the stbtt function whose reads it mirrors; where stbtt's reads depend
 * on the glyph or code point asked for, the check covers every one that can
 * be asked for. Offsets are uint64_t, so no sum of values from the file can
 * wrap. */
#include "lm_font_check.h"

#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* Limits on the work stbtt does for one glyph or one kerning pair, far above
 * what real fonts need (DejaVu Sans: composites nest 2 deep, the largest
 * expansion takes under 1000 steps, its GPOS has 2 pair-adjustment subtables
 * covering about 100 glyphs). */
enum {
    MAX_NESTING = 16, /* composite glyphs inside composite glyphs */
    /* vertices of one expanded glyph: rasterising costs about 16 us and
     * 1.2 KB a vertex at the largest box Lumen draws (a composite of 245k
     * took 4 s and 300 MB), and the largest CJK glyphs have a few thousand */
    MAX_VERTICES = 1 << 14,
    MAX_EXPAND_WORK = 1 << 22,    /* recursive calls and vertex copies for one glyph */
    MAX_PAIR_SUBTABLES = 1 << 14, /* pair-adjustment subtables stbtt walks per kerning pair */
    MAX_GPOS_WORK = 1 << 22,      /* coverage entries and pair sets checked */
    MAX_CODE_POINT = 0x10FFFF,    /* the last code point text can hold */
    MAX_POINTS = 65536,           /* points of a simple glyph (16-bit end points) */
    MAX_COORDINATE = 32767,       /* what stbtt stores a moved vertex in: a short */
    BOX_SLACK = 16,               /* units past its box, beyond the box's size (check_extent) */
};

/* ---- bounds-checked reads */

/* The bytes [0, size) of a table (or of the file); every read says whether
 * it stayed inside (a read outside gives 0). Values are big-endian, as in
 * every TrueType table. */
typedef struct reader {
    const unsigned char *data;
    uint64_t size;
} reader;

static bool has(reader r, uint64_t off, uint64_t len) {
    return off <= r.size && len <= r.size - off;
}

/* The part of r from `off` to its end. */
static bool sub_from(reader r, uint64_t off, reader *out) {
    if (off > r.size) return false;
    *out = (reader){r.data + off, r.size - off};
    return true;
}

/* The `len` bytes of r at `off`. */
static bool sub_range(reader r, uint64_t off, uint64_t len, reader *out) {
    if (!has(r, off, len)) return false;
    *out = (reader){r.data + off, len};
    return true;
}

static bool u8_at(reader r, uint64_t off, uint32_t *v) {
    *v = 0;
    if (!has(r, off, 1)) return false;
    *v = r.data[off];
    return true;
}

static bool u16_at(reader r, uint64_t off, uint32_t *v) {
    *v = 0;
    if (!has(r, off, 2)) return false;
    *v = (uint32_t)r.data[off] << 8 | r.data[off + 1];
    return true;
}

static bool s16_at(reader r, uint64_t off, int32_t *v) {
    uint32_t u;
    bool in = u16_at(r, off, &u);
    *v = u >= 0x8000 ? (int32_t)u - 0x10000 : (int32_t)u;
    return in;
}

static bool u32_at(reader r, uint64_t off, uint32_t *v) {
    *v = 0;
    if (!has(r, off, 4)) return false;
    const unsigned char *p = r.data + off;
    *v = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
    return true;
}

/* ---- the checker */

/* Where the vertices stbtt makes for a glyph can lie: lo and hi bound the x
 * and y of the points it draws (lo > hi: it has none); abs bounds |x| and
 * |y| of every vertex field, the unused control point (0, 0) of a line
 * included. */
typedef struct extent {
    double lo[2], hi[2], abs[2];
} extent;

static const extent no_vertices = {{INFINITY, INFINITY}, {-INFINITY, -INFINITY}, {0, 0}};

typedef struct checker {
    reader file;
    reader cmap, head, hhea, hmtx, maxp, loca, glyf, kern, gpos;
    bool has_kern, has_gpos;
    uint32_t num_glyphs, num_hmetrics, loca_long;
    /* per glyph: where its composite expansion stands, its vertices and work */
    unsigned char *state;
    uint32_t *vertices;
    uint64_t *work;
    extent *extents;
    unsigned char *flags; /* the point flags of one simple glyph */
    uint64_t gpos_work, pair_subtables;
    char why[256];
} checker;

/* Records why the font is refused; returns false, so that a check reads
 * `return bad(c, ...)`. */
__attribute__((format(printf, 2, 3))) static bool bad(checker *c, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->why, sizeof c->why, fmt, ap);
    va_end(ap);
    return false;
}

static unsigned long long ull(uint64_t v) {
    return (unsigned long long)v;
}

static uint32_t tag_of(const char *s) {
    return (uint32_t)(unsigned char)s[0] << 24 | (uint32_t)(unsigned char)s[1] << 16 |
           (uint32_t)(unsigned char)s[2] << 8 | (unsigned char)s[3];
}

/* A tag for messages, its unprintable bytes as '?'. */
static void tag_text(uint32_t tag, char out[5]) {
    for (int k = 0; k < 4; k++) {
        unsigned char ch = (unsigned char)(tag >> (24 - 8 * k));
        out[k] = ch >= 0x20 && ch < 0x7F ? (char)ch : '?';
    }
    out[4] = 0;
}

/* ---- the table directory */

/* The header and the table directory, which stbtt__find_table scans (12 +
 * 16 * numTables bytes), and every table inside the file. */
static bool check_directory(checker *c) {
    uint32_t version, count;
    if (c->file.size < 12)
        return bad(c, "%llu bytes is too short for a font header", ull(c->file.size));
    u32_at(c->file, 0, &version);
    if (version == tag_of("ttcf"))
        return bad(c, "it is a font collection (.ttc); Lumen reads a single font (.ttf)");
    if (version == tag_of("OTTO"))
        return bad(c, "it has CFF (PostScript) outlines; Lumen reads TrueType (glyf) outlines");
    if (version != 0x00010000 && version != tag_of("true"))
        return bad(c, "it does not start with a TrueType version (found 0x%08x)",
                   (unsigned)version);
    u16_at(c->file, 4, &count);
    if (!has(c->file, 12, 16 * (uint64_t)count))
        return bad(c, "its table directory (%u tables) runs past the end of the file", count);
    for (uint32_t i = 0; i < count; i++) {
        uint32_t tag, offset, length;
        u32_at(c->file, 12 + 16 * i, &tag);
        u32_at(c->file, 12 + 16 * i + 8, &offset);
        u32_at(c->file, 12 + 16 * i + 12, &length);
        if (!has(c->file, offset, length)) {
            char name[5];
            tag_text(tag, name);
            return bad(c, "its '%s' table (%u bytes at offset %u) runs past the end of the file",
                       name, length, offset);
        }
    }
    return true;
}

/* The table stbtt__find_table finds: the first directory entry with the tag
 * (one at offset 0 reads as absent). Its length is checked above. */
static bool find_table(const checker *c, const char *name, reader *out) {
    uint32_t count, tag, offset, length;
    u16_at(c->file, 4, &count);
    for (uint32_t i = 0; i < count; i++) {
        u32_at(c->file, 12 + 16 * i, &tag);
        if (tag != tag_of(name)) continue;
        u32_at(c->file, 12 + 16 * i + 8, &offset);
        u32_at(c->file, 12 + 16 * i + 12, &length);
        return offset != 0 && sub_range(c->file, offset, length, out);
    }
    return false;
}

static bool require_table(checker *c, const char *name, uint64_t min_size, reader *out) {
    if (!find_table(c, name, out)) return bad(c, "it has no '%s' table", name);
    if (out->size < min_size)
        return bad(c, "its '%s' table has %llu bytes, fewer than the %llu it needs", name,
                   ull(out->size), ull(min_size));
    return true;
}

/* The tables stbtt_InitFont looks up, with the fixed fields read from them:
 * head to indexToLocFormat (50), hhea to numberOfHMetrics (34), maxp's
 * numGlyphs (4), cmap's count of encoding records (2). maxp is optional to
 * stbtt (it then assumes 65535 glyphs); here it is required. */
static bool check_tables(checker *c) {
    if (!check_directory(c)) return false;
    if (!require_table(c, "cmap", 4, &c->cmap) || !require_table(c, "head", 54, &c->head) ||
        !require_table(c, "hhea", 36, &c->hhea) || !require_table(c, "hmtx", 0, &c->hmtx) ||
        !require_table(c, "loca", 0, &c->loca) || !require_table(c, "glyf", 0, &c->glyf) ||
        !require_table(c, "maxp", 6, &c->maxp))
        return false;
    c->has_kern = find_table(c, "kern", &c->kern);
    c->has_gpos = find_table(c, "GPOS", &c->gpos);
    return true;
}

/* ---- metrics and glyph locations */

/* numGlyphs, the scale (stbtt_ScaleForPixelHeight divides by ascent minus
 * descent) and hmtx as stbtt_GetGlyphHMetrics reads it: the long metric of a
 * glyph below numberOfHMetrics, else the last long metric's advance and a
 * left side bearing from the array after the long metrics. */
static bool check_metrics(checker *c) {
    uint32_t format;
    int32_t ascent, descent;
    u16_at(c->head, 50, &format);
    if (format > 1) return bad(c, "its indexToLocFormat is %u (0 or 1 expected)", format);
    c->loca_long = format;
    u16_at(c->maxp, 4, &c->num_glyphs);
    if (c->num_glyphs == 0) return bad(c, "it has no glyphs");
    s16_at(c->hhea, 4, &ascent);
    s16_at(c->hhea, 6, &descent);
    if (ascent <= descent)
        return bad(c, "its ascent (%d) is not above its descent (%d)", (int)ascent, (int)descent);
    u16_at(c->hhea, 34, &c->num_hmetrics);
    if (c->num_hmetrics == 0) return bad(c, "its hhea table declares no horizontal metrics");
    uint32_t ng = c->num_glyphs, nh = c->num_hmetrics;
    uint64_t need = 4 * (uint64_t)nh + (ng > nh ? 2 * (uint64_t)(ng - nh) : 0);
    if (c->hmtx.size < need)
        return bad(c, "its hmtx table has %llu bytes; %u long metrics and %u glyphs need %llu",
                   ull(c->hmtx.size), nh, ng, ull(need));
    return true;
}

/* Entry i of loca, as a byte offset into glyf (format 0 stores half of it). */
static uint64_t loca_entry(const checker *c, uint32_t i) {
    uint32_t v = 0;
    if (c->loca_long) {
        u32_at(c->loca, 4 * (uint64_t)i, &v);
        return v;
    }
    u16_at(c->loca, 2 * (uint64_t)i, &v);
    return 2 * (uint64_t)v;
}

/* stbtt__GetGlyfOffset reads entries g and g + 1 for any glyph g below
 * numGlyphs; the glyph's data lies between them. */
static bool check_loca(checker *c) {
    uint64_t entry = c->loca_long ? 4 : 2, prev = 0;
    if (c->loca.size < entry * ((uint64_t)c->num_glyphs + 1))
        return bad(c, "its loca table has %llu bytes, too few for %u glyphs", ull(c->loca.size),
                   c->num_glyphs);
    for (uint32_t g = 0; g <= c->num_glyphs; g++) {
        uint64_t off = loca_entry(c, g);
        if (off < prev) return bad(c, "its loca table goes backwards at glyph %u", g);
        if (off > c->glyf.size)
            return bad(c, "loca puts glyph %u at offset %llu, past the %llu-byte glyf table", g,
                       ull(off), ull(c->glyf.size));
        prev = off;
    }
    return true;
}

/* The data of glyph g (after check_loca). */
static reader glyph_data(const checker *c, uint32_t g) {
    uint64_t start = loca_entry(c, g), end = loca_entry(c, g + 1);
    return (reader){c->glyf.data + start, end - start};
}

/* ---- cmap */

static bool check_glyph_index(checker *c, uint32_t cp, uint64_t glyph) {
    if (glyph >= c->num_glyphs)
        return bad(c, "its cmap maps U+%04X to glyph %llu, but it has %u glyphs", (unsigned)cp,
                   ull(glyph), c->num_glyphs);
    return true;
}

/* The subtable stbtt_InitFont picks: that of the last encoding record for
 * Unicode (platform 0) or Windows Unicode (platform 3, encoding 1 or 10). */
static bool pick_cmap_subtable(checker *c, reader *out) {
    uint32_t count, offset = 0;
    bool found = false;
    u16_at(c->cmap, 2, &count);
    if (!has(c->cmap, 4, 8 * (uint64_t)count))
        return bad(c, "its %u cmap encoding records run past the cmap table", count);
    for (uint32_t i = 0; i < count; i++) {
        uint32_t platform, encoding;
        u16_at(c->cmap, 4 + 8 * i, &platform);
        u16_at(c->cmap, 4 + 8 * i + 2, &encoding);
        if (platform == 0 || (platform == 3 && (encoding == 1 || encoding == 10))) {
            u32_at(c->cmap, 4 + 8 * i + 4, &offset);
            found = true;
        }
    }
    if (!found) return bad(c, "its cmap has no Unicode subtable");
    if (!sub_from(c->cmap, offset, out) || out->size < 4)
        return bad(c, "its Unicode cmap subtable (offset %u) is outside the cmap table", offset);
    return true;
}

/* Narrows t to the subtable's declared length (16 bits at 2; 32 bits at 4
 * for formats 12 and 13), which must hold the format's header. */
static bool cmap_declared_length(checker *c, reader *t, uint32_t format, uint32_t header) {
    uint32_t length = 0;
    bool read = format >= 12 ? u32_at(*t, 4, &length) : u16_at(*t, 2, &length);
    if (!read || !sub_range(*t, 0, length, t))
        return bad(c, "its cmap subtable (format %u, %u bytes) runs past the cmap table", format,
                   length);
    if (length < header)
        return bad(c, "its cmap subtable (format %u) has %u bytes, too few for its header", format,
                   length);
    return true;
}

/* Format 0: a glyph byte for each code point below length - 6. */
static bool check_cmap_bytes(checker *c, reader t) {
    if (!cmap_declared_length(c, &t, 0, 6)) return false;
    for (uint64_t i = 6; i < t.size; i++)
        if (!check_glyph_index(c, (uint32_t)(i - 6), t.data[i])) return false;
    return true;
}

/* Format 6: `count` glyphs from code point `first`. */
static bool check_cmap_trimmed(checker *c, reader t) {
    uint32_t first, count, glyph;
    if (!cmap_declared_length(c, &t, 6, 10)) return false;
    u16_at(t, 6, &first);
    u16_at(t, 8, &count);
    if (!has(t, 10, 2 * (uint64_t)count))
        return bad(c, "its cmap subtable (format 6) lists %u glyphs past its length", count);
    for (uint32_t i = 0; i < count; i++) {
        u16_at(t, 10 + 2 * (uint64_t)i, &glyph);
        if (!check_glyph_index(c, first + i, glyph)) return false;
    }
    return true;
}

/* Format 4, stbtt_FindGlyphIndex's lookup of one code point, with each read
 * checked: false when one leaves the subtable. Its binary search trusts
 * searchRange, entrySelector and rangeShift from the file, so rather than
 * proving them consistent, the checker runs this for every code point. */
static bool cmap4_lookup(reader t, uint32_t cp, uint32_t *glyph) {
    uint32_t seg_x2, range, selector, shift, end, start, id_offset;
    int32_t delta;
    u16_at(t, 6, &seg_x2);
    u16_at(t, 8, &range);
    u16_at(t, 10, &selector);
    u16_at(t, 12, &shift);
    uint64_t segs = seg_x2 >> 1, end_codes = 14, search = end_codes;
    range >>= 1, shift >>= 1;
    if (!u16_at(t, search + 2 * (uint64_t)shift, &end)) return false;
    if (cp >= end) search += 2 * (uint64_t)shift;
    search -= 2;
    for (; selector; selector--) {
        range >>= 1;
        if (!u16_at(t, search + 2 * (uint64_t)range, &end)) return false;
        if (cp > end) search += 2 * (uint64_t)range;
        if (range == 0) break; /* every later step repeats this read and moves nowhere */
    }
    search += 2;
    uint64_t item = (uint16_t)((search - end_codes) >> 1); /* stbtt keeps it in 16 bits */
    if (!u16_at(t, 14 + 2 * segs + 2 + 2 * item, &start) || !u16_at(t, end_codes + 2 * item, &end))
        return false;
    *glyph = 0;
    if (cp < start || cp > end) return true;
    if (!u16_at(t, 14 + 6 * segs + 2 + 2 * item, &id_offset)) return false;
    if (id_offset == 0) {
        if (!s16_at(t, 14 + 4 * segs + 2 + 2 * item, &delta)) return false;
        *glyph = (uint16_t)((int32_t)cp + delta);
        return true;
    }
    return u16_at(t, id_offset + 2 * (uint64_t)(cp - start) + 14 + 6 * segs + 2 + 2 * item, glyph);
}

/* Format 4 answers 0 above U+FFFF without reading. */
static bool check_cmap_segments(checker *c, reader t) {
    if (!cmap_declared_length(c, &t, 4, 14)) return false;
    for (uint32_t cp = 0; cp <= 0xFFFF; cp++) {
        uint32_t glyph;
        if (!cmap4_lookup(t, cp, &glyph))
            return bad(c, "its cmap subtable (format 4) reads past its length for U+%04X",
                       (unsigned)cp);
        if (!check_glyph_index(c, cp, glyph)) return false;
    }
    return true;
}

/* Formats 12 and 13: groups of 12 bytes (first and last code point, glyph),
 * binary-searched among the declared count. Format 12 maps a code point to
 * its group's glyph plus its distance from the first; 13 to the glyph. */
static bool check_cmap_groups(checker *c, reader t, uint32_t format) {
    uint32_t count, first, last, glyph;
    if (!cmap_declared_length(c, &t, format, 16)) return false;
    u32_at(t, 12, &count);
    if (!has(t, 16, 12 * (uint64_t)count))
        return bad(c, "its cmap subtable (format %u) has %u groups past its length", format, count);
    for (uint64_t i = 0; i < count; i++) {
        u32_at(t, 16 + 12 * i, &first);
        u32_at(t, 16 + 12 * i + 4, &last);
        u32_at(t, 16 + 12 * i + 8, &glyph);
        if (first > last || first > MAX_CODE_POINT) continue; /* no code point reaches it */
        uint64_t top = last < MAX_CODE_POINT ? last : MAX_CODE_POINT;
        if (!check_glyph_index(c, (uint32_t)top, format == 12 ? glyph + (top - first) : glyph))
            return false;
    }
    return true;
}

/* Every read stbtt_FindGlyphIndex makes for a code point up to U+10FFFF,
 * and every glyph it answers below numGlyphs (stbtt_GetGlyphHMetrics
 * trusts the glyph index). Other formats stbtt asserts on. */
static bool check_cmap(checker *c) {
    reader t;
    uint32_t format;
    if (!pick_cmap_subtable(c, &t)) return false;
    u16_at(t, 0, &format);
    switch (format) {
    case 0:
        return check_cmap_bytes(c, t);
    case 4:
        return check_cmap_segments(c, t);
    case 6:
        return check_cmap_trimmed(c, t);
    case 12:
    case 13:
        return check_cmap_groups(c, t, format);
    default:
        return bad(c, "its Unicode cmap subtable has format %u, which stb_truetype cannot read",
                   format);
    }
}

/* ---- kerning */

/* kern as stbtt__GetGlyphKernInfoAdvance reads it: the table count (2), the
 * first subtable's coverage (8) and pair count (10), and 6-byte pairs from
 * 18, binary-searched. */
static bool check_kern(checker *c) {
    uint32_t tables, coverage, pairs;
    if (!u16_at(c->kern, 2, &tables)) return bad(c, "its kern table is too short for a header");
    if (tables == 0) return true;
    if (!u16_at(c->kern, 8, &coverage))
        return bad(c, "its kern table is too short for a subtable header");
    if (coverage != 1) return true; /* stbtt reads no further */
    if (!u16_at(c->kern, 10, &pairs) || (pairs > 0 && !has(c->kern, 18, 6 * (uint64_t)pairs)))
        return bad(c, "its kern table's pairs run past the table");
    return true;
}

/* A coverage table as stbtt__GetCoverageIndex searches it (formats 1 and 2;
 * stbtt finds nothing in others). *max_index: the largest index it answers
 * for a glyph of the font, -1 if none. */
static bool check_coverage(checker *c, reader cov, uint32_t lookup, int64_t *max_index) {
    uint32_t format, count;
    *max_index = -1;
    if (!u16_at(cov, 0, &format))
        return bad(c, "GPOS lookup %u: a coverage table is past the GPOS table", lookup);
    if (format != 1 && format != 2) return true;
    if (!u16_at(cov, 2, &count) || !has(cov, 4, (format == 1 ? 2 : 6) * (uint64_t)count))
        return bad(c, "GPOS lookup %u: a coverage table (format %u) runs past the GPOS table",
                   lookup, format);
    c->gpos_work += count;
    if (format == 1) {
        *max_index = (int64_t)count - 1; /* the position of a glyph in the array */
        return true;
    }
    for (uint32_t r = 0; r < count; r++) { /* ranges: first index + glyph - first glyph */
        uint32_t first, last, index;
        u16_at(cov, 4 + 6 * (uint64_t)r, &first);
        u16_at(cov, 4 + 6 * (uint64_t)r + 2, &last);
        u16_at(cov, 4 + 6 * (uint64_t)r + 4, &index);
        if (first > last || first >= c->num_glyphs) continue;
        uint32_t top = last < c->num_glyphs ? last : c->num_glyphs - 1;
        int64_t i = (int64_t)index + (top - first);
        if (i > *max_index) *max_index = i;
    }
    return true;
}

/* A class definition as stbtt__GetGlyphClass reads it: format 1, a class
 * for each of `count` glyphs from a first glyph; format 2, 6-byte ranges. */
static bool check_class_def(checker *c, reader t, uint32_t offset, uint32_t lookup) {
    reader d;
    uint32_t format, count;
    if (!sub_from(t, offset, &d) || !u16_at(d, 0, &format))
        return bad(c, "GPOS lookup %u: a class definition is past the GPOS table", lookup);
    bool fits = format == 1   ? u16_at(d, 4, &count) && has(d, 6, 2 * (uint64_t)count)
                : format == 2 ? u16_at(d, 2, &count) && has(d, 4, 6 * (uint64_t)count)
                              : true;
    if (!fits)
        return bad(c, "GPOS lookup %u: a class definition (format %u) runs past the GPOS table",
                   lookup, format);
    return true;
}

/* Pair adjustment format 1 (with value formats 4 and 0, the only ones stbtt
 * reads further): stbtt reads the pair-set offset at 10 + 2 * index and the
 * set's pair count for every coverage index before comparing the index with
 * pairSetCount; below it, it binary-searches the set's 4-byte pairs. */
static bool check_pair_sets(checker *c, reader t, int64_t max_index, uint32_t lookup) {
    uint32_t sets, offset, pairs;
    if (!u16_at(t, 8, &sets) || !has(t, 10, 2 * (uint64_t)(max_index + 1)))
        return bad(c, "GPOS lookup %u: the pair-set offsets run past the GPOS table", lookup);
    c->gpos_work += (uint64_t)max_index + 1;
    for (int64_t i = 0; i <= max_index; i++) {
        reader set;
        u16_at(t, 10 + 2 * (uint64_t)i, &offset);
        if (!sub_from(t, offset, &set) || !u16_at(set, 0, &pairs) ||
            (i < sets && !has(set, 2, 4 * (uint64_t)pairs)))
            return bad(c, "GPOS lookup %u: pair set %lld runs past the GPOS table", lookup,
                       (long long)i);
    }
    return true;
}

/* Pair adjustment format 2 (value formats 4 and 0): two class definitions,
 * the class counts (12, 14), and a 2-byte record per pair of classes from
 * 16, read for classes below the counts. */
static bool check_class_pairs(checker *c, reader t, uint32_t lookup) {
    uint32_t def1, def2, count1, count2;
    if (!u16_at(t, 8, &def1) || !u16_at(t, 10, &def2) || !u16_at(t, 12, &count1) ||
        !u16_at(t, 14, &count2))
        return bad(c, "GPOS lookup %u: a class pair subtable runs past the GPOS table", lookup);
    if (!check_class_def(c, t, def1, lookup) || !check_class_def(c, t, def2, lookup)) return false;
    if (count1 && count2 && !has(t, 16, 2 * (uint64_t)count1 * count2))
        return bad(c, "GPOS lookup %u: %u x %u class records run past the GPOS table", lookup,
                   count1, count2);
    return true;
}

/* One subtable of a pair-adjustment lookup: its format and coverage (read
 * before anything else), then what its format reads. */
static bool check_pair_subtable(checker *c, reader t, uint32_t lookup) {
    uint32_t format, cov_offset, value1, value2;
    reader cov;
    int64_t max_index;
    if (!u16_at(t, 0, &format) || !u16_at(t, 2, &cov_offset))
        return bad(c, "GPOS lookup %u: a subtable runs past the GPOS table", lookup);
    if (!sub_from(t, cov_offset, &cov))
        return bad(c, "GPOS lookup %u: a coverage table is past the GPOS table", lookup);
    if (!check_coverage(c, cov, lookup, &max_index)) return false;
    if (max_index < 0 || (format != 1 && format != 2)) return true; /* stbtt goes on */
    if (!u16_at(t, 4, &value1) || !u16_at(t, 6, &value2))
        return bad(c, "GPOS lookup %u: a subtable runs past the GPOS table", lookup);
    if (value1 != 4 || value2 != 0) return true; /* stbtt reads no further */
    return format == 1 ? check_pair_sets(c, t, max_index, lookup) : check_class_pairs(c, t, lookup);
}

/* GPOS as stbtt__GetGlyphGPOSInfoAdvance reads it: version 1.0, the lookup
 * list, every lookup's type and subtable count, and every subtable of the
 * pair-adjustment lookups (type 2). It walks all of them for each pair of
 * glyphs, so their number is bounded. */
static bool check_gpos(checker *c) {
    uint32_t major, minor, list_offset, lookups;
    reader list;
    if (!u16_at(c->gpos, 0, &major) || !u16_at(c->gpos, 2, &minor))
        return bad(c, "its GPOS table is too short for a version");
    if (major != 1 || minor != 0) return true; /* stbtt reads no further */
    if (!u16_at(c->gpos, 8, &list_offset) || !sub_from(c->gpos, list_offset, &list) ||
        !u16_at(list, 0, &lookups) || !has(list, 2, 2 * (uint64_t)lookups))
        return bad(c, "its GPOS lookup list runs past the GPOS table");
    for (uint32_t i = 0; i < lookups; i++) {
        uint32_t offset, type, subtables;
        reader lookup;
        u16_at(list, 2 + 2 * (uint64_t)i, &offset);
        if (!sub_from(list, offset, &lookup) || !u16_at(lookup, 0, &type) ||
            !u16_at(lookup, 4, &subtables))
            return bad(c, "GPOS lookup %u is past the GPOS table", i);
        if (type != 2) continue;
        if (!has(lookup, 6, 2 * (uint64_t)subtables))
            return bad(c, "GPOS lookup %u: its %u subtable offsets run past the GPOS table", i,
                       subtables);
        c->pair_subtables += subtables;
        if (c->pair_subtables > MAX_PAIR_SUBTABLES)
            return bad(c, "its GPOS has more than %d pair-adjustment subtables",
                       MAX_PAIR_SUBTABLES);
        for (uint32_t s = 0; s < subtables; s++) {
            reader t;
            u16_at(lookup, 6 + 2 * (uint64_t)s, &offset);
            if (!sub_from(lookup, offset, &t))
                return bad(c, "GPOS lookup %u: subtable %u is past the GPOS table", i, s);
            if (!check_pair_subtable(c, t, i)) return false;
            if (c->gpos_work > MAX_GPOS_WORK)
                return bad(c, "its GPOS pair adjustments are too large to check");
        }
    }
    return true;
}

/* stbtt_GetCodepointKernAdvance reads GPOS when the font has one, else kern. */
static bool check_kerning(checker *c) {
    if (c->has_gpos) return check_gpos(c);
    if (c->has_kern) return check_kern(c);
    return true;
}

/* ---- glyphs */

/* Whether stbtt's walk over the points can start a contour at point p:
 * point 0, and the point after an end point. */
static bool starts_contour(reader d, uint32_t contours, uint32_t p) {
    if (p == 0) return true;
    for (uint32_t k = 0; k < contours; k++) {
        uint32_t end;
        u16_at(d, 10 + 2 * (uint64_t)k, &end);
        if (end + 1 == p) return true;
    }
    return false;
}

/* The value stbtt stores when it converts an int to stbtt_int16. */
static int32_t as_short(int64_t v) {
    uint32_t u = (uint32_t)((uint64_t)v & 0xFFFF);
    return u >= 0x8000 ? (int32_t)u - 0x10000 : (int32_t)u;
}

/* One axis of a simple glyph's coordinates from *pos (x: short_bit 2,
 * same_bit 16; y: 4 and 32), decoded as stbtt__GetGlyphShapeTT does: deltas
 * summed in an int, each point stored as a short. Every vertex it makes is a
 * point or the midpoint of two, so their smallest and largest bound it. */
static void decode_axis(checker *c, reader d, uint64_t *pos, uint32_t n, unsigned short_bit,
                        unsigned same_bit, int axis, extent *e) {
    int64_t v = 0;
    for (uint32_t i = 0; i < n; i++) {
        unsigned f = c->flags[i];
        uint32_t byte;
        int32_t word;
        if (f & short_bit) {
            u8_at(d, (*pos)++, &byte);
            v += (f & same_bit) ? (int64_t)byte : -(int64_t)byte;
        } else if (!(f & same_bit)) {
            s16_at(d, *pos, &word);
            *pos += 2;
            v += word;
        }
        double p = as_short(v);
        e->lo[axis] = fmin(e->lo[axis], p);
        e->hi[axis] = fmax(e->hi[axis], p);
    }
    e->abs[axis] = fmax(fabs(e->lo[axis]), fabs(e->hi[axis]));
}

/* A simple glyph as stbtt__GetGlyphShapeTT reads it: the contours' end
 * points, the instructions' length and the instructions, then a flag per
 * point (a flag with bit 3 is followed by a repeat count), x and y
 * coordinates (one byte, two or none each, by flag). The number of points is
 * the last end point plus one. */
static bool check_simple_glyph(checker *c, uint32_t g, reader d, uint32_t contours) {
    uint64_t pos = 10 + 2 * (uint64_t)contours, coords = 0;
    uint32_t last, instructions;
    if (!u16_at(d, pos - 2, &last) || !u16_at(d, pos, &instructions))
        return bad(c, "glyph %u: the end points of its %u contours run past its %llu bytes", g,
                   contours, ull(d.size));
    uint32_t n = last + 1;
    pos += 2 + (uint64_t)instructions;
    for (uint32_t i = 0; i < n;) {
        uint32_t flag, repeat = 0;
        if (!u8_at(d, pos++, &flag) || ((flag & 8) && !u8_at(d, pos++, &repeat)))
            return bad(c, "glyph %u: the flags of its %u points run past its %llu bytes", g, n,
                       ull(d.size));
        for (uint32_t k = 0; k <= repeat && i < n; k++) c->flags[i++] = (unsigned char)flag;
    }
    for (uint32_t i = 0; i < n; i++) {
        unsigned f = c->flags[i];
        coords += (f & 2) ? 1 : (f & 16) ? 0 : 2;
        coords += (f & 4) ? 1 : (f & 32) ? 0 : 2;
    }
    if (!has(d, pos, coords))
        return bad(c, "glyph %u: the coordinates of its %u points run past its %llu bytes", g, n,
                   ull(d.size));
    /* a contour starting on an off-curve point makes stbtt look at the next
     * point; at the last point, that is one past its array */
    if (!(c->flags[n - 1] & 1) && starts_contour(d, contours, n - 1))
        return bad(c, "glyph %u: its last contour is a single off-curve point", g);
    c->vertices[g] = n + 2 * contours; /* the vertices stbtt allocates for it */
    extent *e = &c->extents[g];
    decode_axis(c, d, &pos, n, 2, 16, 0, e);
    decode_axis(c, d, &pos, n, 4, 32, 1, e);
    return true;
}

/* A component of a composite glyph: its flags, its glyph, and the matrix
 * stbtt moves it by, {a, b, c, d, e, f} as stbtt's mtx: x' = a x + c y + e,
 * y' = b x + d y + f. */
typedef struct component {
    uint32_t flags, glyph;
    float mtx[6];
} component;

/* A 2.14 number from the file, as stbtt converts it. */
static float f2dot14_at(reader d, uint64_t off) {
    int32_t v;
    s16_at(d, off, &v);
    return (float)v / 16384.0f;
}

/* One component record of a composite glyph, advancing *pos past it: flags,
 * glyph index, the offsets (words when bit 0 is set, else bytes; stbtt reads
 * none unless bit 1 says they are offsets), then a scale, x and y scales or
 * a 2 by 2 matrix (bits 3, 6, 7). */
static bool read_component(reader d, uint64_t *pos, component *k) {
    uint32_t flags;
    if (!u16_at(d, *pos, &flags) || !u16_at(d, *pos + 2, &k->glyph)) return false;
    uint64_t len = 4, at = *pos + 4;
    if (flags & 2) len += (flags & 1) ? 4 : 2;
    if (flags & 8)
        len += 2;
    else if (flags & 0x40)
        len += 4;
    else if (flags & 0x80)
        len += 8;
    if (!has(d, *pos, len)) return false;
    *pos += len;
    k->flags = flags;
    float *t = k->mtx;
    t[0] = t[3] = 1, t[1] = t[2] = t[4] = t[5] = 0;
    if (flags & 2) {
        int32_t e, f;
        uint32_t ue, uf;
        if (flags & 1) {
            s16_at(d, at, &e), s16_at(d, at + 2, &f);
            at += 4;
        } else { /* signed bytes */
            u8_at(d, at, &ue), u8_at(d, at + 1, &uf);
            e = ue >= 0x80 ? (int32_t)ue - 0x100 : (int32_t)ue;
            f = uf >= 0x80 ? (int32_t)uf - 0x100 : (int32_t)uf;
            at += 2;
        }
        t[4] = (float)e, t[5] = (float)f;
    }
    if (flags & 8) {
        t[0] = t[3] = f2dot14_at(d, at);
    } else if (flags & 0x40) {
        t[0] = f2dot14_at(d, at), t[3] = f2dot14_at(d, at + 2);
    } else if (flags & 0x80) {
        for (int i = 0; i < 4; i++) t[i] = f2dot14_at(d, at + 2 * (uint64_t)i);
    }
    return true;
}

/* The component records of a composite glyph, up to the one without bit 5
 * (more components). */
static bool check_composite_glyph(checker *c, uint32_t g, reader d) {
    uint64_t pos = 10;
    component k;
    do {
        if (!read_component(d, &pos, &k))
            return bad(c, "glyph %u: its component records run past its %llu bytes", g,
                       ull(d.size));
        if (!(k.flags & 2)) /* stbtt asserts on this */
            return bad(c, "glyph %u: a component is placed by matching points", g);
        if (k.glyph >= c->num_glyphs)
            return bad(c, "glyph %u: its component glyph %u is out of range (%u glyphs)", g,
                       k.glyph, c->num_glyphs);
    } while (k.flags & 0x20);
    return true;
}

enum { UNSEEN, EXPANDING, EXPANDED };

/* The range of s * (p x + q y + r) over x in [xlo, xhi] and y in [ylo, yhi]
 * (s >= 0), widened by 1 for stbtt's rounding to a short. */
static void moved_range(const extent *from, double s, double p, double q, double r, double *lo,
                        double *hi) {
    double px0 = p * from->lo[0], px1 = p * from->hi[0];
    double qy0 = q * from->lo[1], qy1 = q * from->hi[1];
    *lo = floor(s * (fmin(px0, px1) + fmin(qy0, qy1) + r)) - 1;
    *hi = ceil(s * (fmax(px0, px1) + fmax(qy0, qy1) + r)) + 1;
}

/* stbtt__GetGlyphShapeTT moves each vertex field of a component by its
 * matrix, in float, x' = m (a x + c y + e) and y' = n (b x + d y + f) with
 * m = |(a, b)| and n = |(c, d)|, and converts the result to a short: a value
 * a short cannot hold is undefined behaviour. So |x'| and |y'| are bounded
 * from the component's extent, and refused above MAX_COORDINATE (float's
 * rounding, far under 1, cannot carry them to 32768). Adds the moved
 * component to *into. */
static bool place_component(checker *c, uint32_t g, const component *k, extent *into) {
    const extent *from = &c->extents[k->glyph];
    if (from->lo[0] > from->hi[0]) return true; /* no vertices */
    const float *t = k->mtx;
    float m = (float)sqrt(t[0] * t[0] + t[1] * t[1]), n = (float)sqrt(t[2] * t[2] + t[3] * t[3]);
    double ax = m * (fabs(t[0]) * from->abs[0] + fabs(t[2]) * from->abs[1] + fabs(t[4]));
    double ay = n * (fabs(t[1]) * from->abs[0] + fabs(t[3]) * from->abs[1] + fabs(t[5]));
    if (ax > MAX_COORDINATE || ay > MAX_COORDINATE)
        return bad(c,
                   "glyph %u: its component glyph %u, scaled and moved, reaches %.0f, past the "
                   "16-bit coordinates stb_truetype stores",
                   g, k->glyph, fmax(ax, ay));
    double lo[2], hi[2];
    moved_range(from, m, t[0], t[2], t[4], &lo[0], &hi[0]);
    moved_range(from, n, t[1], t[3], t[5], &lo[1], &hi[1]);
    for (int axis = 0; axis < 2; axis++) {
        into->lo[axis] = fmin(into->lo[axis], lo[axis]);
        into->hi[axis] = fmax(into->hi[axis], hi[axis]);
    }
    into->abs[0] = fmax(into->abs[0], ax);
    into->abs[1] = fmax(into->abs[1], ay);
    return true;
}

/* stbtt sizes a glyph's bitmap by the box in its header (which lm_raster
 * limits to 256 by 256 pixels), but flattens every curve of its vertices,
 * wherever they lie, in steps of a fraction of a pixel: vertices far outside
 * the box make a small font take minutes and gigabytes to draw one glyph.
 * Real fonts' vertices pass the box by little (the 22 DejaVu fonts: by at
 * most 34 units, 2.6% of the box's size, where stbtt scales a component
 * twice); the vertices must lie within the box widened by its own
 * size and BOX_SLACK units on each side, so what stbtt flattens spans at most
 * three times the bitmap. */
static bool check_extent(checker *c, uint32_t g) {
    const extent *e = &c->extents[g];
    if (e->lo[0] > e->hi[0]) return true;
    reader d = glyph_data(c, g);
    int32_t box[4];
    for (int i = 0; i < 4; i++) s16_at(d, 2 + 2 * (uint64_t)i, &box[i]);
    for (int axis = 0; axis < 2; axis++) {
        int32_t lo = box[axis], hi = box[axis + 2];
        double slack = (hi > lo ? hi - lo : 0) + BOX_SLACK;
        if (e->lo[axis] < lo - slack || e->hi[axis] > hi + slack)
            return bad(c,
                       "glyph %u: its outline reaches %s %.0f to %.0f, far outside its bounding "
                       "box (%d to %d)",
                       g, axis ? "y" : "x", e->lo[axis], e->hi[axis], lo, hi);
    }
    return true;
}

/* stbtt__GetGlyphShapeTT expands a composite glyph by recursion into each
 * component, without a limit, and copies the vertices gathered so far into
 * a new array for each one. Refused: a glyph among its own components (the
 * recursion would not end), nesting deeper than MAX_NESTING, and expansions
 * larger than MAX_VERTICES vertices or MAX_EXPAND_WORK steps. */
static bool expand_glyph(checker *c, uint32_t g, int depth) {
    if (c->state[g] == EXPANDED) return true;
    if (c->state[g] == EXPANDING) return bad(c, "glyph %u is among its own components", g);
    if (depth > MAX_NESTING)
        return bad(c, "glyph %u: composite glyphs nest more than %d deep", g, MAX_NESTING);
    reader d = glyph_data(c, g);
    int32_t contours = 0;
    if (d.size) s16_at(d, 0, &contours);
    uint64_t vertices = c->vertices[g], work = 1 + vertices, pos = 10;
    c->state[g] = EXPANDING;
    if (contours < 0) {
        component k;
        extent e = no_vertices;
        do {
            read_component(d, &pos, &k);
            if (!expand_glyph(c, k.glyph, depth + 1)) return false;
            vertices += c->vertices[k.glyph];
            work += c->work[k.glyph] + vertices;
            if (vertices > MAX_VERTICES || work > MAX_EXPAND_WORK)
                return bad(c, "glyph %u: its components expand to too many vertices", g);
            if (!place_component(c, g, &k, &e)) return false;
        } while (k.flags & 0x20);
        c->extents[g] = e;
    }
    if (!check_extent(c, g)) return false;
    c->vertices[g] = (uint32_t)vertices;
    c->work[g] = work;
    c->state[g] = EXPANDED;
    return true;
}

/* Every glyph below numGlyphs, as stbtt_GetGlyphBox (the bounding box, 2 to
 * 10) and stbtt__GetGlyphShapeTT read it; an empty one (two equal loca
 * entries) is not read. */
static bool check_glyphs(checker *c) {
    for (uint32_t g = 0; g < c->num_glyphs; g++) {
        reader d = glyph_data(c, g);
        int32_t contours;
        c->extents[g] = no_vertices;
        if (d.size == 0) continue;
        if (d.size < 10)
            return bad(c, "glyph %u has %llu bytes, too few for its header", g, ull(d.size));
        s16_at(d, 0, &contours);
        if (contours > 0 && !check_simple_glyph(c, g, d, (uint32_t)contours)) return false;
        if (contours < 0 && !check_composite_glyph(c, g, d)) return false;
    }
    for (uint32_t g = 0; g < c->num_glyphs; g++)
        if (!expand_glyph(c, g, 0)) return false;
    return true;
}

static bool check_glyphs_with_memory(checker *c, bool *out_of_memory) {
    size_t n = c->num_glyphs;
    c->state = calloc(n, 1);
    c->vertices = calloc(n, sizeof *c->vertices);
    c->work = calloc(n, sizeof *c->work);
    c->flags = malloc(MAX_POINTS);
    c->extents = malloc(n * sizeof *c->extents);
    bool ok = c->state && c->vertices && c->work && c->flags && c->extents;
    *out_of_memory = !ok;
    if (ok) ok = check_glyphs(c);
    free(c->state);
    free(c->vertices);
    free(c->work);
    free(c->flags);
    free(c->extents);
    return ok;
}

lm_status lm_font_check(const unsigned char *data, size_t size, const char *path) {
    if (size > LM_FONT_MAX_BYTES)
        return lm_fail(LM_ERR_FORMAT, "'%s' has %zu bytes, more than a font may have (%zu)", path,
                       size, LM_FONT_MAX_BYTES);
    checker c = {.file = {data, size}};
    bool out_of_memory = false;
    bool ok = check_tables(&c) && check_metrics(&c) && check_loca(&c) && check_cmap(&c) &&
              check_kerning(&c) && check_glyphs_with_memory(&c, &out_of_memory);
    if (out_of_memory) return lm_fail(LM_ERR_MEMORY, "out of memory checking the font '%s'", path);
    if (!ok) return lm_fail(LM_ERR_FORMAT, "'%s' is not a usable TrueType font: %s", path, c.why);
    return LM_OK;
}
