#ifndef LM_UTF8_H
#define LM_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

/* The length of the well-formed UTF-8 character at s (RFC 3629: no overlong
 * forms, no surrogates, nothing past U+10FFFF), of at most `avail` bytes; 0
 * when the bytes there are not one. */
static inline size_t lm_utf8_char_length(const unsigned char *s, size_t avail) {
    if (avail == 0) return 0;
    unsigned c = s[0];
    if (c < 0x80) return 1;
    size_t len;
    unsigned lo = 0x80, hi = 0xBF; /* the range of the second byte */
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0) lo = 0xA0; /* overlong below U+0800 */
        if (c == 0xED) hi = 0x9F; /* surrogates U+D800..U+DFFF */
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0) lo = 0x90; /* overlong below U+10000 */
        if (c == 0xF4) hi = 0x8F; /* past U+10FFFF */
    } else {
        return 0;
    }
    if (avail < len || s[1] < lo || s[1] > hi) return 0;
    for (size_t k = 2; k < len; k++)
        if ((s[k] & 0xC0) != 0x80) return 0;
    return len;
}

/* Whether the NUL-terminated string is well-formed UTF-8. */
static inline bool lm_utf8_valid(const char *s) {
    const unsigned char *p = (const unsigned char *)s;
    size_t left = strlen(s);
    while (left > 0) {
        size_t len = lm_utf8_char_length(p, left);
        if (len == 0) return false;
        p += len;
        left -= len;
    }
    return true;
}

#endif
