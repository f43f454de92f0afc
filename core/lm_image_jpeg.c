#include "lm_image_jpeg.h"

#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
/* jpeglib.h before jerror.h: the message codes need its types */
#include <jerror.h>

/* A progressive file may hold any number of scans, each a pass over every
 * coefficient: a few hundred bytes can ask for hours of work. Encoders
 * write about ten; libjpeg-turbo's own tools stop at 500. */
enum { MAX_SCANS = 500 };

/* What one decode gives libjpeg besides its own struct: an error manager
 * (its default error_exit calls exit()) extended with where to jump on
 * failure and where to say why; the progress monitor; the byte source. */
typedef struct {
    struct jpeg_error_mgr base;
    struct jpeg_progress_mgr progress;
    struct jpeg_source_mgr source;
    jmp_buf escape;
    char *why;
    size_t why_len;
    bool ran_out; /* the bytes ended before the decoder was done reading */
} context;

static const char cut_short[] =
    "the file is cut short (it ends before the image its header declares)";

static void fail_with(j_common_ptr c, const char *prefix) {
    context *f = (context *)c->err;
    if (f->ran_out) {
        snprintf(f->why, f->why_len, "%s", cut_short);
    } else {
        char message[JMSG_LENGTH_MAX];
        c->err->format_message(c, message);
        snprintf(f->why, f->why_len, "%s (libjpeg: %s)", prefix, message);
    }
    longjmp(f->escape, 1);
}

static void on_error(j_common_ptr c) {
    fail_with(c, "Corrupt or unsupported JPEG");
}

/* Warnings (level -1) that mean the pixels would be wrong end the decode:
 * libjpeg would go on and fill the damage with grey (where the bytes ran
 * out first, the file is cut short). Those about metadata only (an unknown
 * JFIF revision, padding before a marker, a bad ICC profile), a baseline
 * scan header of zeros and a progressive scan out of the usual order let
 * it continue, as PIL and torchvision do. Trace messages (level >= 0) are
 * ignored. (A flipped bit in the Huffman data is no warning: libjpeg-turbo,
 * like every decoder, cannot tell it from an image.) */
static void on_message(j_common_ptr c, int level) {
    if (level >= 0) return;
    switch (c->err->msg_code) {
    case JWRN_EXTRANEOUS_DATA:
    case JWRN_JFIF_MAJOR:
    case JWRN_ADOBE_XFORM:
    case JWRN_BOGUS_ICC:
    case JWRN_NOT_SEQUENTIAL:    /* baseline files with zeros in a scan's header decode fine */
    case JWRN_BOGUS_PROGRESSION: /* a scan out of the usual order: the data are all there */
        return;
    case JWRN_JPEG_EOF: /* from jpeg_stdio_src (lm_jpeg_info_file) */
        ((context *)c->err)->ran_out = true;
        fail_with(c, "");
        break;
    default:
        fail_with(c, "Corrupt JPEG (damaged)");
    }
}

static void on_progress(j_common_ptr c) {
    j_decompress_ptr d = (j_decompress_ptr)c;
    if (d->is_decompressor && d->input_scan_number > MAX_SCANS) {
        context *f = (context *)c->err;
        snprintf(f->why, f->why_len, "Corrupt JPEG (it holds more than %d progressive scans)",
                 MAX_SCANS);
        longjmp(f->escape, 1);
    }
}

/* A source of bytes in memory, like jpeg_mem_src, which notes where they
 * run out rather than warn: a file that lacks only its end-of-image marker,
 * or that the bit reader reads a little past, has every pixel. */
static void source_init(j_decompress_ptr d) {
    (void)d;
}

static boolean source_fill(j_decompress_ptr d) {
    static const JOCTET end_of_image[2] = {0xFF, JPEG_EOI};
    ((context *)d->err)->ran_out = true;
    d->src->next_input_byte = end_of_image;
    d->src->bytes_in_buffer = 2;
    return TRUE;
}

static void source_skip(j_decompress_ptr d, long n) {
    while (n > (long)d->src->bytes_in_buffer) {
        n -= (long)d->src->bytes_in_buffer;
        source_fill(d);
    }
    if (n > 0) {
        d->src->next_input_byte += n;
        d->src->bytes_in_buffer -= (size_t)n;
    }
}

static void source_term(j_decompress_ptr d) {
    (void)d;
}

static void memory_source(j_decompress_ptr d, context *f, const unsigned char *bytes, size_t len) {
    f->source.init_source = source_init;
    f->source.fill_input_buffer = source_fill;
    f->source.skip_input_data = source_skip;
    f->source.resync_to_restart = jpeg_resync_to_restart;
    f->source.term_source = source_term;
    f->source.next_input_byte = bytes;
    f->source.bytes_in_buffer = len;
    d->src = &f->source;
}

/* Where the bytes ran out, a file of several scans may lack whole scans
 * (the decoder reads all before it gives a row): complete when every
 * coefficient of every component is refined to its last bit. A sequential
 * file of several scans keeps no such record and counts as incomplete. */
static bool scans_complete(j_decompress_ptr d) {
    if (!d->progressive_mode || !d->coef_bits) return false;
    for (int c = 0; c < d->num_components; c++)
        for (int k = 0; k < DCTSIZE2; k++)
            if (d->coef_bits[c][k] != 0) return false;
    return true;
}

/* The error manager, before setjmp: jpeg_create_decompress may fail too
 * (out of memory), so it runs after (create(), below). */
static void prepare(j_decompress_ptr d, context *f, char *why, size_t why_len) {
    d->err = jpeg_std_error(&f->base);
    f->base.error_exit = on_error;
    f->base.emit_message = on_message;
    f->why = why;
    f->why_len = why_len;
    f->ran_out = false;
}

static void create(j_decompress_ptr d, context *f) {
    jpeg_create_decompress(d);
    f->progress.progress_monitor = on_progress;
    d->progress = &f->progress;
}

bool lm_jpeg_is(const unsigned char *bytes, size_t len) {
    return len >= 2 && bytes[0] == 0xFF && bytes[1] == 0xD8;
}

static bool is_cmyk(j_decompress_ptr d) {
    return d->jpeg_color_space == JCS_CMYK || d->jpeg_color_space == JCS_YCCK;
}

/* One channel for greyscale; anything else decodes to RGB. */
static int stored_channels(j_decompress_ptr d) {
    return d->num_components == 1 ? 1 : 3;
}

static bool header(FILE *fp, const unsigned char *bytes, size_t len, int *w, int *h, int *stored,
                   char *why, size_t why_len) {
    struct jpeg_decompress_struct d = {0}; /* zero: destroying it is safe at any point */
    context f;
    prepare(&d, &f, why, why_len);
    if (setjmp(f.escape)) {
        jpeg_destroy_decompress(&d);
        return false;
    }
    create(&d, &f);
    if (fp)
        jpeg_stdio_src(&d, fp);
    else
        memory_source(&d, &f, bytes, len);
    jpeg_read_header(&d, TRUE);
    if (!(d.num_components == 1 || d.num_components == 3 || is_cmyk(&d))) {
        /* what the decoder would refuse ("Bogus color conversion"), said here */
        snprintf(why, why_len, "Corrupt or unsupported JPEG (%d colour components)",
                 d.num_components);
        longjmp(f.escape, 1);
    }
    *w = (int)d.image_width;
    *h = (int)d.image_height;
    *stored = stored_channels(&d);
    jpeg_destroy_decompress(&d);
    return true;
}

bool lm_jpeg_info_file(FILE *fp, int *w, int *h, int *stored, char *why, size_t why_len) {
    return header(fp, NULL, 0, w, h, stored, why, why_len);
}

bool lm_jpeg_info(const unsigned char *bytes, size_t len, int *w, int *h, int *stored, char *why,
                  size_t why_len) {
    return header(NULL, bytes, len, w, h, stored, why, why_len);
}

/* stb's rounding of a * b / 255 */
static unsigned char scale255(unsigned a, unsigned b) {
    unsigned t = a * b + 128;
    return (unsigned char)((t + (t >> 8)) >> 8);
}

/* stb's luma, so a colour JPEG turns grey as a colour PNG does */
static unsigned char luma(const unsigned char *rgb) {
    return (unsigned char)((rgb[0] * 77 + rgb[1] * 150 + rgb[2] * 29) >> 8);
}

/* Pixels of `from` channels (1, 3, or 4 for CMYK as Adobe stores it,
 * inverted) to `to` channels (1-4), into a new buffer. */
static unsigned char *convert(const unsigned char *src, size_t pixels, int from, int to) {
    unsigned char *dst = malloc(pixels * (size_t)to);
    if (!dst) return NULL;
    for (size_t i = 0; i < pixels; i++) {
        const unsigned char *s = src + i * (size_t)from;
        unsigned char rgb[3];
        if (from == 4) {
            for (int k = 0; k < 3; k++) rgb[k] = scale255(s[k], s[3]);
        } else {
            for (int k = 0; k < 3; k++) rgb[k] = s[from == 1 ? 0 : k];
        }
        unsigned char *o = dst + i * (size_t)to;
        if (to <= 2) {
            o[0] = from == 1 ? s[0] : luma(rgb);
        } else {
            memcpy(o, rgb, 3);
        }
        if (to == 2 || to == 4) o[to - 1] = 255;
    }
    return dst;
}

/* The colour space libjpeg delivers for a wanted channel count; *got is its
 * channels. What libjpeg cannot deliver directly (CMYK to RGB, colour to
 * stb's grey, an alpha beside grey), convert() makes. */
static J_COLOR_SPACE output_space(j_decompress_ptr d, int want, int *got) {
    if (is_cmyk(d)) {
        *got = 4;
        return JCS_CMYK;
    }
    bool grey = d->num_components == 1;
    if (want == 4) {
        *got = 4;
        return JCS_EXT_RGBA;
    }
    if (grey && want != 3) {
        *got = 1;
        return JCS_GRAYSCALE;
    }
    *got = 3;
    return JCS_RGB;
}

unsigned char *lm_jpeg_decode(const unsigned char *bytes, size_t len, int *w, int *h, int *stored,
                              int channels, char *why, size_t why_len) {
    struct jpeg_decompress_struct d = {0}; /* zero: destroying it is safe at any point */
    context f;
    /* set between setjmp and a possible longjmp: volatile keeps it exact */
    unsigned char *volatile raw = NULL;
    prepare(&d, &f, why, why_len);
    if (setjmp(f.escape)) {
        jpeg_destroy_decompress(&d);
        free(raw);
        return NULL;
    }
    create(&d, &f);
    memory_source(&d, &f, bytes, len);
    jpeg_read_header(&d, TRUE);
    *stored = stored_channels(&d);
    int want = channels ? channels : *stored, got = 0;
    d.out_color_space = output_space(&d, want, &got);
    jpeg_start_decompress(&d);
    if (f.ran_out && jpeg_has_multiple_scans(&d) && !scans_complete(&d)) {
        snprintf(why, why_len, "%s", cut_short);
        longjmp(f.escape, 1);
    }
    size_t row = (size_t)d.output_width * (size_t)got;
    raw = malloc(row * d.output_height);
    if (!raw) {
        snprintf(why, why_len, "out of memory for its %u x %u pixels", d.output_width,
                 d.output_height);
        longjmp(f.escape, 1);
    }
    while (d.output_scanline < d.output_height) {
        JSAMPROW rows[16];
        JDIMENSION n = d.output_height - d.output_scanline;
        if (n > 16) n = 16;
        for (JDIMENSION i = 0; i < n; i++) rows[i] = raw + (d.output_scanline + i) * row;
        jpeg_read_scanlines(&d, rows, n);
    }
    /* every pixel is read: a missing end-of-image marker or trailing bytes
     * after it change nothing, so the decoder stops here */
    *w = (int)d.output_width;
    *h = (int)d.output_height;
    bool as_delivered = got == want && !is_cmyk(&d);
    jpeg_destroy_decompress(&d);
    if (as_delivered) return raw;
    unsigned char *px = convert(raw, (size_t)*w * (size_t)*h, got, want);
    free(raw);
    if (!px) snprintf(why, why_len, "out of memory for its %d x %d pixels", *w, *h);
    return px;
}
