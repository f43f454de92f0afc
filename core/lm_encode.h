/* Byte encodings for self-contained reports (lua/lumen/introspect/atlas.lua
 * inlines data into one HTML page): a tensor's values as little-endian bytes,
 * zlib compression (the format a browser's DecompressionStream('deflate')
 * reads) and base64. Every result is malloc'ed; the caller frees it. */
#ifndef LM_ENCODE_H
#define LM_ENCODE_H

#include <stddef.h>
#include <stdint.h>

#include "lm_error.h"
#include "lm_tensor.h"

typedef enum lm_byte_format {
    LM_BYTES_UINT8 = 0, /* rounded and clamped to 0..255 (NaN -> 0) */
    LM_BYTES_FLOAT32,
    LM_BYTES_INT32 /* float values truncated towards zero */
} lm_byte_format;

/* The values of `t` (any device, any strides) in row-major order. */
lm_status lm_encode_values(const lm_tensor *t, lm_byte_format fmt, uint8_t **out, size_t *len);
/* zlib stream (RFC 1950) of `n` bytes at `level` (0-9, -1 for zlib's default). */
lm_status lm_deflate(const uint8_t *in, size_t n, int level, uint8_t **out, size_t *len);
/* Standard base64 with padding (RFC 4648), NUL-terminated. */
lm_status lm_base64_encode(const uint8_t *in, size_t n, char **out, size_t *len);

#endif
