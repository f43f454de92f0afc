/* Byte encodings for reports: see lm_encode.h. */
#include "lm_encode.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "lm_ops.h"

lm_status lm_encode_values(const lm_tensor *t, lm_byte_format fmt, uint8_t **out, size_t *len) {
    *out = NULL;
    *len = 0;
    if (t->dtype == LM_UINT8) { /* bytes encode as the int32 values they are */
        lm_tensor *wide;
        LM_TRY(lm_to_dtype(&wide, (lm_tensor *)t, LM_INT32));
        lm_status s = lm_encode_values(wide, fmt, out, len);
        lm_tensor_release(wide);
        return s;
    }
    size_t n = (size_t)lm_tensor_numel(t);
    void *host = malloc(n ? n * 4 : 1);
    if (!host) return lm_fail(LM_ERR_MEMORY, "encode: cannot allocate %zu bytes", n * 4);
    lm_status s = lm_to_host(t, host);
    if (s != LM_OK) {
        free(host);
        return s;
    }
    const float *f = host;
    const int32_t *i32 = host;
    bool is_int = t->dtype == LM_INT32;
    if (fmt == LM_BYTES_UINT8) {
        uint8_t *b = malloc(n ? n : 1);
        if (!b) {
            free(host);
            return lm_fail(LM_ERR_MEMORY, "encode: cannot allocate %zu bytes", n);
        }
        for (size_t k = 0; k < n; k++) {
            double v = is_int ? (double)i32[k] : (double)f[k];
            b[k] = !(v > 0) ? 0 : v >= 255 ? 255 : (uint8_t)lrint(v);
        }
        free(host);
        *out = b;
        *len = n;
        return LM_OK;
    }
    /* 4-byte formats convert in place (the host buffer is already 4 bytes a value) */
    if (fmt == LM_BYTES_FLOAT32 && is_int) {
        float *dst = host;
        for (size_t k = 0; k < n; k++) dst[k] = (float)i32[k];
    } else if (fmt == LM_BYTES_INT32 && !is_int) {
        int32_t *dst = host;
        for (size_t k = 0; k < n; k++) {
            float v = f[k];
            if (!(v > -2147483648.0f && v < 2147483648.0f)) {
                free(host);
                return lm_fail(LM_ERR_ARG, "encode: %g does not fit in int32", (double)v);
            }
            dst[k] = (int32_t)v;
        }
    }
    *out = host; /* x86-64 and aarch64 are little-endian, as the formats are */
    *len = n * 4;
    return LM_OK;
}

lm_status lm_deflate(const uint8_t *in, size_t n, int level, uint8_t **out, size_t *len) {
    *out = NULL;
    *len = 0;
    if (level < -1 || level > 9)
        return lm_fail(LM_ERR_ARG, "deflate: level must be -1..9, got %d", level);
    uLongf bound = compressBound((uLong)n);
    uint8_t *b = malloc(bound);
    if (!b)
        return lm_fail(LM_ERR_MEMORY, "deflate: cannot allocate %lu bytes", (unsigned long)bound);
    int z = compress2(b, &bound, in, (uLong)n, level);
    if (z != Z_OK) {
        free(b);
        return lm_fail(LM_ERR_MEMORY, "deflate: zlib error %d", z);
    }
    *out = b;
    *len = bound;
    return LM_OK;
}

lm_status lm_base64_encode(const uint8_t *in, size_t n, char **out, size_t *len) {
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t m = (n + 2) / 3 * 4;
    char *s = malloc(m + 1);
    *out = NULL;
    *len = 0;
    if (!s) return lm_fail(LM_ERR_MEMORY, "base64: cannot allocate %zu bytes", m + 1);
    size_t o = 0, k = 0;
    for (; k + 3 <= n; k += 3) {
        uint32_t v = (uint32_t)in[k] << 16 | (uint32_t)in[k + 1] << 8 | in[k + 2];
        s[o++] = alphabet[v >> 18];
        s[o++] = alphabet[(v >> 12) & 63];
        s[o++] = alphabet[(v >> 6) & 63];
        s[o++] = alphabet[v & 63];
    }
    if (k < n) { /* one or two bytes left: pad to four characters */
        uint32_t v = (uint32_t)in[k] << 16 | (k + 1 < n ? (uint32_t)in[k + 1] << 8 : 0);
        s[o++] = alphabet[v >> 18];
        s[o++] = alphabet[(v >> 12) & 63];
        s[o++] = k + 1 < n ? alphabet[(v >> 6) & 63] : '=';
        s[o++] = '=';
    }
    s[o] = '\0';
    *out = s;
    *len = o;
    return LM_OK;
}
