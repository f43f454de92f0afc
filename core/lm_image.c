#include "lm_image.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <stb_image.h>
#include <stb_image_resize.h>
#include <stb_image_write.h>
#include <zlib.h>

#include "lm_atomic_file.h"
#include "lm_image_jpeg.h"
#include "lm_ops.h"

/* The largest image decoded, in pixels. A header is a few bytes and can
 * claim any size: stb_image allocates what it claims before it reads the
 * pixels (a 64-byte GIF asked for 2 GB), and a float tensor takes 4 bytes a
 * channel more. The default is PIL's decompression-bomb limit (twice its
 * warning threshold, 89,478,485 pixels). */
static _Atomic int64_t max_pixels = 178956970;

int64_t lm_image_max_pixels(void) {
    return atomic_load(&max_pixels);
}

int64_t lm_image_set_max_pixels(int64_t pixels) {
    return atomic_exchange(&max_pixels, pixels);
}

/* Why the last read of this thread refused an image before stb saw it
 * (empty when it did not). */
static _Thread_local char refusal[160];

/* stb_image's failure reason is a static string, but set per thread only
 * when built thread-safe; the loader's workers read it right after the
 * failing call, which is as good as stb offers. */
const char *lm_image_decode_reason(void) {
    if (refusal[0]) return refusal;
    const char *r = stbi_failure_reason();
    if (!r) return "unknown reason";
    /* a file cut short reads as a critical chunk of unknown type */
    if (strstr(r, "unknown PNG chunk")) return "Corrupt PNG (damaged or cut short)";
    if (strncmp(r, "Corrupt ", 8) == 0) {
        static _Thread_local char text[96];
        snprintf(text, sizeof text, "%s (damaged or cut short)", r);
        return text;
    }
    return r;
}

void lm_image_planes(float *dst, const void *px, bool wide, int w, int h, int c) {
    int64_t plane = (int64_t)w * h;
    const unsigned char *p8 = px;
    const unsigned short *p16 = px;
    for (int64_t i = 0; i < plane; i++)
        for (int k = 0; k < c; k++)
            dst[k * plane + i] =
                wide ? p16[i * c + k] * (1.0f / 65535.0f) : p8[i * c + k] * (1.0f / 255.0f);
}

/* True when the header declares more pixels than the limit; the reason
 * is kept for lm_image_decode_reason. A header that cannot be read is left
 * to the decoder, whose error says why. */
static bool too_large(const void *bytes, size_t len) {
    int w = 0, h = 0, c = 0;
    char ignored[8];
    int ok = lm_jpeg_is(bytes, len) ? lm_jpeg_info(bytes, len, &w, &h, &c, ignored, sizeof ignored)
                                    : stbi_info_from_memory(bytes, (int)len, &w, &h, &c);
    int64_t limit = lm_image_max_pixels();
    /* a top-down BMP stores its height negative (stb's info reports it so,
     * and its loader takes the magnitude) */
    int64_t aw = llabs((long long)w), ah = llabs((long long)h);
    if (!ok || aw * ah <= limit) return false;
    snprintf(refusal, sizeof refusal,
             "its header declares %lld x %lld pixels, more than the limit of %lld "
             "(lm.image.set_max_pixels raises it)",
             (long long)aw, (long long)ah, (long long)limit);
    return true;
}

/* stb_image reads through these callbacks. Where a file ends before its
 * image does, stb decodes the bytes it lacks as zeros (a BMP, TGA or GIF
 * cut in half loads, half black): a read the bytes cannot fill marks the
 * file cut short. (stb's format probes look at the first 92 bytes at most,
 * which every image it can decode has.) */
typedef struct {
    const unsigned char *p;
    size_t len, at;
    bool short_read;
} byte_reader;

static int reader_read(void *user, char *data, int size) {
    byte_reader *r = user;
    size_t n = r->len - r->at;
    if (n > (size_t)size) n = (size_t)size;
    if (n == 0) r->short_read = true;
    memcpy(data, r->p + r->at, n);
    r->at += n;
    return (int)n;
}

static void reader_skip(void *user, int n) {
    byte_reader *r = user;
    if (n < 0) { /* stb's "unget" */
        r->at = (size_t)-n > r->at ? 0 : r->at - (size_t)-n;
    } else if ((size_t)n > r->len - r->at) {
        r->short_read = true;
        r->at = r->len;
    } else {
        r->at += (size_t)n;
    }
}

static int reader_eof(void *user) {
    const byte_reader *r = user;
    return r->at >= r->len;
}

static uint32_t be32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* stb does not check a PNG's chunk checksums, so a flipped bit in the pixel
 * data decodes into wrong pixels without a word (PIL refuses the file). */
static bool png_checksums_fail(const unsigned char *p, size_t len) {
    static const unsigned char signature[8] = {137, 80, 78, 71, 13, 10, 26, 10};
    if (len < 8 || memcmp(p, signature, 8) != 0) return false;
    for (size_t at = 8; len - at >= 12;) {
        uint32_t size = be32(p + at);
        if (size > len - at - 12) return false; /* cut short: stb's own error says so */
        const unsigned char *type = p + at + 4;
        if (be32(type + 4 + size) != (uint32_t)crc32(0, type, 4 + size)) {
            snprintf(refusal, sizeof refusal,
                     "Corrupt PNG (damaged: the checksum of its '%.4s' chunk does not match)",
                     (const char *)type);
            return true;
        }
        if (memcmp(type, "IEND", 4) == 0) break;
        at += 12 + (size_t)size;
    }
    return false;
}

/* A file's bytes, read whole (NULL with errno set when it cannot be). */
static unsigned char *read_whole(FILE *fp, size_t *len) {
    unsigned char *buf = NULL;
    size_t cap = 0, n = 0;
    for (;;) {
        if (n == cap) {
            size_t grown = cap ? cap * 2 : 1 << 16;
            unsigned char *b = realloc(buf, grown);
            if (!b) {
                free(buf);
                errno = ENOMEM;
                return NULL;
            }
            buf = b, cap = grown;
        }
        size_t got = fread(buf + n, 1, cap - n, fp);
        n += got;
        if (got == 0) break;
    }
    if (ferror(fp)) {
        free(buf);
        return NULL;
    }
    *len = n;
    return buf;
}

static void *decode_bytes(const unsigned char *bytes, size_t len, int *w, int *h, int *stored,
                          int channels, bool *wide) {
    if (len > (size_t)INT32_MAX) {
        snprintf(refusal, sizeof refusal, "the file is larger than 2 GiB");
        return NULL;
    }
    if (too_large(bytes, len) || png_checksums_fail(bytes, len)) return NULL;
    if (lm_jpeg_is(bytes, len)) {
        *wide = false;
        return lm_jpeg_decode(bytes, len, w, h, stored, channels, refusal, sizeof refusal);
    }
    *wide = stbi_is_16_bit_from_memory(bytes, (int)len);
    byte_reader r = {bytes, len, 0, false};
    const stbi_io_callbacks io = {reader_read, reader_skip, reader_eof};
    void *px = *wide ? (void *)stbi_load_16_from_callbacks(&io, &r, w, h, stored, channels)
                     : (void *)stbi_load_from_callbacks(&io, &r, w, h, stored, channels);
    if (px && r.short_read) {
        free(px);
        snprintf(refusal, sizeof refusal,
                 "the file is cut short (it ends before the image its header declares)");
        return NULL;
    }
    return px;
}

void *lm_image_read_pixels(FILE *fp, const void *bytes, size_t len, int *w, int *h, int *stored,
                           int channels, bool *wide) {
    refusal[0] = '\0';
    if (!fp) return decode_bytes(bytes, len, w, h, stored, channels, wide);
    unsigned char *whole = read_whole(fp, &len);
    if (!whole) {
        snprintf(refusal, sizeof refusal, "cannot read it: %s", strerror(errno));
        return NULL;
    }
    void *px = decode_bytes(whole, len, w, h, stored, channels, wide);
    free(whole);
    return px;
}

/* Interleaved pixels [h, w, c] -> a new planar float tensor [c, h, w]. */
static lm_status planar_from_pixels(lm_tensor **out, const void *px, bool wide, int w, int h,
                                    int c) {
    int64_t shape[3] = {c, h, w};
    LM_TRY(lm_tensor_new(out, LM_FLOAT32, LM_CPU, 3, shape));
    lm_image_planes(lm_tensor_f32(*out), px, wide, w, h, c);
    return LM_OK;
}

static lm_status check_channels(int channels, const char *what) {
    if (channels < 0 || channels > 4)
        return lm_fail(LM_ERR_ARG, "%s: channels must be 0 (as stored) or 1-4, got %d", what,
                       channels);
    return LM_OK;
}

lm_status lm_image_decode(lm_tensor **out, const void *bytes, size_t len, int channels,
                          const char *name) {
    *out = NULL;
    LM_TRY(check_channels(channels, "image"));
    if (len > (size_t)INT32_MAX)
        return lm_fail(LM_ERR_FORMAT, "image '%s' is larger than 2 GiB", name);
    int w = 0, h = 0, stored = 0;
    bool wide;
    void *px = lm_image_read_pixels(NULL, bytes, len, &w, &h, &stored, channels, &wide);
    if (!px)
        return lm_fail(LM_ERR_FORMAT, "cannot decode the image '%s': %s", name,
                       lm_image_decode_reason());
    lm_status s = planar_from_pixels(out, px, wide, w, h, channels ? channels : stored);
    free(px);
    return s;
}

lm_status lm_image_load(lm_tensor **out, const char *path, int channels) {
    *out = NULL;
    LM_TRY(check_channels(channels, "image"));
    FILE *fp = fopen(path, "rb");
    if (!fp) return lm_fail(LM_ERR_IO, "cannot open the image '%s': %s", path, strerror(errno));
    int w = 0, h = 0, stored = 0;
    bool wide;
    void *px = lm_image_read_pixels(fp, NULL, 0, &w, &h, &stored, channels, &wide);
    fclose(fp);
    if (!px)
        return lm_fail(LM_ERR_FORMAT, "cannot decode the image '%s': %s", path,
                       lm_image_decode_reason());
    lm_status s = planar_from_pixels(out, px, wide, w, h, channels ? channels : stored);
    free(px);
    return s;
}

lm_status lm_image_info(const char *path, int *width, int *height, int *channels) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return lm_fail(LM_ERR_IO, "cannot open the image '%s': %s", path, strerror(errno));
    refusal[0] = '\0'; /* the reason below is this call's, not an earlier refusal's */
    unsigned char start[2] = {0};
    size_t got = fread(start, 1, sizeof start, fp);
    rewind(fp);
    int ok = lm_jpeg_is(start, got)
                 ? lm_jpeg_info_file(fp, width, height, channels, refusal, sizeof refusal)
                 : stbi_info_from_file(fp, width, height, channels);
    fclose(fp);
    if (!ok)
        return lm_fail(LM_ERR_FORMAT, "'%s' is not an image Lumen can read: %s", path,
                       lm_image_decode_reason());
    /* a top-down BMP's height is stored negative; the image is as tall */
    *height = abs(*height);
    *width = abs(*width);
    return LM_OK;
}

/* ---- writing -------------------------------------------------------------------------------- */

typedef enum { FORMAT_PNG, FORMAT_JPEG, FORMAT_BMP, FORMAT_TGA, FORMAT_UNKNOWN } image_format;

static image_format format_of(const char *path) {
    const char *dot = strrchr(path, '.');
    if (!dot || strchr(dot, '/')) return FORMAT_UNKNOWN;
    if (!strcasecmp(dot, ".png")) return FORMAT_PNG;
    if (!strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg")) return FORMAT_JPEG;
    if (!strcasecmp(dot, ".bmp")) return FORMAT_BMP;
    if (!strcasecmp(dot, ".tga")) return FORMAT_TGA;
    return FORMAT_UNKNOWN;
}

lm_status lm_image_save(const char *path, const lm_tensor *t) {
    image_format format = format_of(path);
    if (format == FORMAT_UNKNOWN)
        return lm_fail(LM_ERR_ARG,
                       "image save: '%s' has no image extension (.png, .jpg, .jpeg, .bmp, .tga)",
                       path);
    char shape[LM_SHAPE_STR_MAX];
    if (t->dtype != LM_FLOAT32 || t->ndim < 2 || t->ndim > 3 ||
        (t->ndim == 3 && (t->shape[0] < 1 || t->shape[0] > 4)))
        return lm_fail(
            LM_ERR_SHAPE,
            "image save: expected a float32 image [C, H, W] with C in 1-4 or [H, W], got %s %s",
            lm_dtype_name(t->dtype), lm_shape_str(t, shape, sizeof shape));
    int64_t c = t->ndim == 3 ? t->shape[0] : 1, h = t->shape[t->ndim - 2],
            w = t->shape[t->ndim - 1];
    if (h < 1 || w < 1 || h > 65535 || w > 65535)
        return lm_fail(LM_ERR_SHAPE, "image save: %s is not a size an image can have",
                       lm_shape_str(t, shape, sizeof shape));
    int64_t plane = h * w;
    float *host = malloc((size_t)(c * plane) * sizeof *host);
    unsigned char *px = malloc((size_t)(c * plane));
    lm_status s =
        host && px ? lm_to_host(t, host) : lm_fail(LM_ERR_MEMORY, "image save: out of memory");
    if (s == LM_OK) {
        for (int64_t i = 0; i < plane; i++)
            for (int64_t k = 0; k < c; k++) {
                float v = host[k * plane + i];
                v = v > 0 ? (v < 1 ? v : 1) : 0; /* NaN -> 0 */
                px[i * c + k] = (unsigned char)(v * 255.0f + 0.5f);
            }
        lm_atomic_file f;
        s = lm_atomic_open(&f, path);
        if (s == LM_OK) {
            int ok = 0, iw = (int)w, ih = (int)h, ic = (int)c;
            switch (format) {
            case FORMAT_PNG:
                ok = stbi_write_png_to_func(lm_atomic_write_chunk, &f, iw, ih, ic, px, iw * ic);
                break;
            case FORMAT_JPEG:
                ok = stbi_write_jpg_to_func(lm_atomic_write_chunk, &f, iw, ih, ic, px, 95);
                break;
            case FORMAT_BMP:
                ok = stbi_write_bmp_to_func(lm_atomic_write_chunk, &f, iw, ih, ic, px);
                break;
            case FORMAT_TGA:
                ok = stbi_write_tga_to_func(lm_atomic_write_chunk, &f, iw, ih, ic, px);
                break;
            case FORMAT_UNKNOWN:
                break;
            }
            if (!ok || !f.fp) {
                lm_atomic_abort(&f);
                s = lm_fail(LM_ERR_IO, "writing the image '%s' failed", path);
            } else {
                s = lm_atomic_commit(&f);
            }
        }
    }
    free(host);
    free(px);
    return s;
}

/* ---- resizing ------------------------------------------------------------------------------- */

static int resize_zero_edges(const float *in, int in_h, int in_w, float *out, int out_h,
                             int out_w) {
    return stbir_resize_float_generic(in, in_w, in_h, 0, out, out_w, out_h, 0, 1,
                                      STBIR_ALPHA_CHANNEL_NONE, 0, STBIR_EDGE_ZERO,
                                      STBIR_FILTER_TRIANGLE, STBIR_COLORSPACE_LINEAR, NULL);
}

/* PIL's (and torchvision's antialiased) resize drops the filter's taps that
 * fall outside the image and renormalises the rest; stb's clamped edges
 * would repeat the border pixel instead (0.5 where PIL gives 0.43 for
 * 1 0 0 0 to two pixels). The same: each plane resized with zero edges,
 * divided by a plane of ones resized alike (the weights inside, per pixel),
 * which all planes of one size share. */
int lm_image_resize_planes(const float *in, int64_t planes, int in_h, int in_w, float *out,
                           int out_h, int out_w) {
    size_t n_in = (size_t)in_h * (size_t)in_w, n_out = (size_t)out_h * (size_t)out_w;
    float *ones = malloc(sizeof(float) * (n_in + n_out));
    if (!ones) return 0;
    float *weight = ones + n_in;
    for (size_t i = 0; i < n_in; i++) ones[i] = 1.0f;
    int ok = resize_zero_edges(ones, in_h, in_w, weight, out_h, out_w);
    for (int64_t p = 0; ok && p < planes; p++) {
        float *o = out + (size_t)p * n_out;
        ok = resize_zero_edges(in + (size_t)p * n_in, in_h, in_w, o, out_h, out_w);
        for (size_t i = 0; ok && i < n_out; i++) o[i] /= weight[i];
    }
    free(ones);
    return ok;
}

lm_status lm_image_resize(lm_tensor **out, const lm_tensor *t, int64_t h, int64_t w) {
    *out = NULL;
    char shape[LM_SHAPE_STR_MAX];
    if (t->dtype != LM_FLOAT32 || t->storage->device != LM_CPU || (t->ndim != 3 && t->ndim != 4))
        return lm_fail(
            LM_ERR_SHAPE,
            "resize: expected a float32 CPU image [C, H, W] or batch [N, C, H, W], got %s %s",
            lm_dtype_name(t->dtype), lm_shape_str(t, shape, sizeof shape));
    int64_t in_h = t->shape[t->ndim - 2], in_w = t->shape[t->ndim - 1];
    if (h < 1 || w < 1 || h > INT32_MAX / 4 || w > INT32_MAX / 4 || in_h < 1 || in_w < 1 ||
        in_h > INT32_MAX / 4 || in_w > INT32_MAX / 4)
        return lm_fail(LM_ERR_ARG, "resize: cannot resize %s to %lld x %lld",
                       lm_shape_str(t, shape, sizeof shape), (long long)h, (long long)w);
    lm_tensor *src = NULL;
    LM_TRY(lm_contiguous(&src, (lm_tensor *)t));
    int64_t planes = lm_tensor_numel(src) / (in_h * in_w);
    int64_t oshape[4];
    memcpy(oshape, t->shape, sizeof oshape);
    oshape[t->ndim - 2] = h;
    oshape[t->ndim - 1] = w;
    lm_status s = lm_tensor_new(out, LM_FLOAT32, LM_CPU, t->ndim, oshape);
    if (s == LM_OK && !lm_image_resize_planes(lm_tensor_f32(src), planes, (int)in_h, (int)in_w,
                                              lm_tensor_f32(*out), (int)h, (int)w))
        s = lm_fail(LM_ERR_MEMORY, "resize: out of memory");
    lm_tensor_release(src);
    if (s != LM_OK) {
        lm_tensor_release(*out);
        *out = NULL;
    }
    return s;
}

/* ---- augmentation --------------------------------------------------------------------------- */

lm_status lm_image_crop_flip(lm_tensor **out, const lm_tensor *x, int64_t oh, int64_t ow,
                             const int64_t *top, const int64_t *left, const bool *flip,
                             int64_t pad) {
    *out = NULL;
    char shape[LM_SHAPE_STR_MAX];
    if (x->dtype != LM_FLOAT32 || x->storage->device != LM_CPU || x->ndim != 4)
        return lm_fail(LM_ERR_SHAPE, "crop: expected a float32 CPU batch [N, C, H, W], got %s %s",
                       lm_dtype_name(x->dtype), lm_shape_str(x, shape, sizeof shape));
    int64_t n = x->shape[0], c = x->shape[1], h = x->shape[2], w = x->shape[3];
    if (pad < 0 || oh < 1 || ow < 1 || oh > h + 2 * pad || ow > w + 2 * pad)
        return lm_fail(LM_ERR_ARG, "crop: a %lld x %lld window does not fit %s padded by %lld",
                       (long long)oh, (long long)ow, lm_shape_str(x, shape, sizeof shape),
                       (long long)pad);
    for (int64_t i = 0; i < n; i++)
        if (top[i] < 0 || left[i] < 0 || top[i] + oh > h + 2 * pad || left[i] + ow > w + 2 * pad)
            return lm_fail(
                LM_ERR_ARG,
                "crop: the window of sample %lld at (%lld, %lld) leaves the padded image",
                (long long)i + 1, (long long)top[i] + 1, (long long)left[i] + 1);
    lm_tensor *src = NULL;
    LM_TRY(lm_contiguous(&src, (lm_tensor *)x));
    int64_t oshape[4] = {n, c, oh, ow};
    lm_status s = lm_tensor_new(out, LM_FLOAT32, LM_CPU, 4, oshape);
    if (s == LM_OK) {
        const float *in = lm_tensor_f32(src);
        float *o = lm_tensor_f32(*out);
        for (int64_t i = 0; i < n; i++)
            for (int64_t k = 0; k < c; k++) {
                const float *plane = in + (i * c + k) * h * w;
                float *dst = o + (i * c + k) * oh * ow;
                for (int64_t r = 0; r < oh; r++) {
                    int64_t y = top[i] + r - pad; /* row in the unpadded image */
                    for (int64_t q = 0; q < ow; q++) {
                        int64_t col = flip[i] ? ow - 1 - q : q;
                        int64_t xx = left[i] + col - pad;
                        dst[r * ow + q] =
                            y >= 0 && y < h && xx >= 0 && xx < w ? plane[y * w + xx] : 0.0f;
                    }
                }
            }
    }
    lm_tensor_release(src);
    return s;
}
