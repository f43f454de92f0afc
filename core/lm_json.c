#include "lm_json.h"

#include "lm_names.h"
#include "lm_utf8.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *s;
    size_t len, pos;
    const char *what;
} reader;

static lm_status fail_at(reader *r, const char *expected) {
    return lm_fail(LM_ERR_FORMAT, "%s: invalid JSON at byte %zu: expected %s", r->what, r->pos,
                   expected);
}

static void skip_ws(reader *r) {
    while (r->pos < r->len && strchr(" \t\r\n", r->s[r->pos]) && r->s[r->pos]) r->pos++;
}

static bool peek(reader *r, char c) {
    skip_ws(r);
    return r->pos < r->len && r->s[r->pos] == c;
}

static void free_value(lm_json *v) {
    if (v->type == LM_JSON_STRING) free(v->string);
    for (int i = 0; i < v->count; i++) {
        free_value(&v->items[i]);
        if (v->keys) free(v->keys[i]);
    }
    free(v->items);
    free(v->keys);
}

static int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Four hex digits at r->pos into *cp; false when there are not four. */
static bool read_hex4(reader *r, unsigned *cp) {
    if (r->pos + 4 > r->len) return false;
    *cp = 0;
    for (int i = 0; i < 4; i++) {
        int h = hex_digit(r->s[r->pos++]);
        if (h < 0) return false;
        *cp = *cp * 16 + (unsigned)h;
    }
    return true;
}

static lm_status parse_string(reader *r, char **out) {
    *out = NULL;
    if (!peek(r, '"')) return fail_at(r, "a string");
    r->pos++;
    /* the decoded string is never longer than its escaped form: measure that */
    size_t end = r->pos;
    while (end < r->len && r->s[end] != '"') end += r->s[end] == '\\' ? 2 : 1;
    char *buf = malloc(end - r->pos + 4);
    if (!buf) return lm_fail(LM_ERR_MEMORY, "out of memory reading JSON");
    size_t n = 0;
    while (r->pos < r->len && r->s[r->pos] != '"') {
        unsigned char c = (unsigned char)r->s[r->pos++];
        if (c < 0x20) goto bad;
        if (c >= 0x80) { /* JSON text is UTF-8: copy a whole, well-formed character */
            size_t len =
                lm_utf8_char_length((const unsigned char *)r->s + r->pos - 1, r->len - r->pos + 1);
            if (len == 0) {
                r->pos--;
                free(buf);
                return fail_at(r, "well-formed UTF-8 in a string");
            }
            memcpy(buf + n, r->s + r->pos - 1, len);
            n += len;
            r->pos += len - 1;
            continue;
        }
        if (c != '\\') {
            buf[n++] = (char)c;
            continue;
        }
        if (r->pos >= r->len) goto bad;
        char e = r->s[r->pos++];
        switch (e) {
        case '"':
        case '\\':
        case '/':
            buf[n++] = e;
            break;
        case 'b':
            buf[n++] = '\b';
            break;
        case 'f':
            buf[n++] = '\f';
            break;
        case 'n':
            buf[n++] = '\n';
            break;
        case 'r':
            buf[n++] = '\r';
            break;
        case 't':
            buf[n++] = '\t';
            break;
        case 'u': {
            unsigned cp;
            if (!read_hex4(r, &cp) || cp == 0) goto bad; /* no NUL inside names */
            if (cp >= 0xDC00 && cp <= 0xDFFF) goto bad;  /* a lone low surrogate */
            if (cp >= 0xD800 && cp <= 0xDBFF) { /* a UTF-16 pair: one character of 4 bytes */
                unsigned low;
                if (r->pos + 2 > r->len || r->s[r->pos] != '\\' || r->s[r->pos + 1] != 'u')
                    goto bad;
                r->pos += 2;
                if (!read_hex4(r, &low) || low < 0xDC00 || low > 0xDFFF) goto bad;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
                buf[n++] = (char)(0xF0 | (cp >> 18));
                buf[n++] = (char)(0x80 | ((cp >> 12) & 0x3F));
                buf[n++] = (char)(0x80 | ((cp >> 6) & 0x3F));
                buf[n++] = (char)(0x80 | (cp & 0x3F));
                break;
            }
            /* UTF-8 of a code point of the basic plane (1 to 3 bytes) */
            if (cp < 0x80) {
                buf[n++] = (char)cp;
            } else if (cp < 0x800) {
                buf[n++] = (char)(0xC0 | (cp >> 6));
                buf[n++] = (char)(0x80 | (cp & 0x3F));
            } else {
                buf[n++] = (char)(0xE0 | (cp >> 12));
                buf[n++] = (char)(0x80 | ((cp >> 6) & 0x3F));
                buf[n++] = (char)(0x80 | (cp & 0x3F));
            }
            break;
        }
        default:
            goto bad;
        }
    }
    if (r->pos >= r->len) goto bad;
    r->pos++; /* closing quote */
    buf[n] = 0;
    *out = buf;
    return LM_OK;
bad:
    free(buf);
    return fail_at(r, "a valid string");
}

static lm_status parse_value(reader *r, lm_json *v, int depth);

static lm_status push(lm_json *v, int *cap) {
    if (v->count < *cap) return LM_OK;
    int ncap = *cap ? *cap * 2 : 4;
    lm_json *items = realloc(v->items, sizeof *items * ncap);
    if (!items) return lm_fail(LM_ERR_MEMORY, "out of memory reading JSON");
    v->items = items;
    if (v->type == LM_JSON_OBJECT) {
        char **keys = realloc(v->keys, sizeof *keys * ncap);
        if (!keys) return lm_fail(LM_ERR_MEMORY, "out of memory reading JSON");
        v->keys = keys;
    }
    *cap = ncap;
    return LM_OK;
}

/* A key twice in one object is an error (Python's reader would keep the last
 * value, others the first): a header read two ways is no header. */
static lm_status check_keys(reader *r, const lm_json *v, size_t at) {
    const char *dup;
    LM_TRY(lm_names_duplicate((const char *const *)v->keys, (size_t)v->count, &dup));
    if (dup)
        return lm_fail(LM_ERR_FORMAT,
                       "%s: invalid JSON: the key '%s' appears twice in the object at byte %zu",
                       r->what, dup, at);
    return LM_OK;
}

static lm_status parse_container(reader *r, lm_json *v, int depth, bool object) {
    v->type = object ? LM_JSON_OBJECT : LM_JSON_ARRAY;
    size_t at = r->pos;
    r->pos++;
    int cap = 0;
    if (peek(r, object ? '}' : ']')) {
        r->pos++;
        return LM_OK;
    }
    for (;;) {
        LM_TRY(push(v, &cap));
        if (object) {
            LM_TRY(parse_string(r, &v->keys[v->count]));
            if (!peek(r, ':')) {
                free(v->keys[v->count]);
                return fail_at(r, "':'");
            }
            r->pos++;
        }
        lm_status s = parse_value(r, &v->items[v->count], depth + 1);
        if (s != LM_OK) {
            if (object) free(v->keys[v->count]);
            return s;
        }
        v->count++;
        if (peek(r, ',')) {
            r->pos++;
            continue;
        }
        if (peek(r, object ? '}' : ']')) {
            r->pos++;
            return object ? check_keys(r, v, at) : LM_OK;
        }
        return fail_at(r, object ? "',' or '}'" : "',' or ']'");
    }
}

/* Skips the digits at r->pos; how many there were. */
static size_t digits(reader *r) {
    size_t start = r->pos;
    while (r->pos < r->len && r->s[r->pos] >= '0' && r->s[r->pos] <= '9') r->pos++;
    return r->pos - start;
}

static lm_status parse_number(reader *r, lm_json *v) {
    size_t start = r->pos;
    const char *s = r->s;
    if (r->pos < r->len && s[r->pos] == '-') r->pos++;
    /* JSON's grammar: no leading zero (016), a digit after '.' and after the
     * exponent's letter (1., 1e) */
    if (r->pos < r->len && s[r->pos] == '0') {
        r->pos++;
        if (r->pos < r->len && s[r->pos] >= '0' && s[r->pos] <= '9')
            return fail_at(r, "no digit after a leading 0");
    } else if (digits(r) == 0) {
        return fail_at(r, "a number");
    }
    bool integral = true;
    if (r->pos < r->len && s[r->pos] == '.') {
        integral = false;
        r->pos++;
        if (digits(r) == 0) return fail_at(r, "a digit after '.'");
    }
    if (r->pos < r->len && (s[r->pos] == 'e' || s[r->pos] == 'E')) {
        integral = false;
        r->pos++;
        if (r->pos < r->len && (s[r->pos] == '+' || s[r->pos] == '-')) r->pos++;
        if (digits(r) == 0) return fail_at(r, "a digit in the exponent");
    }
    char buf[64];
    size_t n = r->pos - start;
    if (n >= sizeof buf) return fail_at(r, "a shorter number");
    memcpy(buf, s + start, n);
    buf[n] = 0;
    v->type = LM_JSON_NUMBER;
    v->number = strtod(buf, NULL);
    if (integral) {
        errno = 0;
        long long ll = strtoll(buf, NULL, 10);
        v->is_integer = errno == 0;
        v->integer = ll;
    }
    return LM_OK;
}

static bool literal(reader *r, const char *word) {
    size_t n = strlen(word);
    if (r->pos + n <= r->len && memcmp(r->s + r->pos, word, n) == 0) {
        r->pos += n;
        return true;
    }
    return false;
}

static lm_status parse_value(reader *r, lm_json *v, int depth) {
    memset(v, 0, sizeof *v);
    if (depth > LM_JSON_MAX_DEPTH) return fail_at(r, "less nesting");
    skip_ws(r);
    if (r->pos >= r->len) return fail_at(r, "a value");
    char c = r->s[r->pos];
    lm_status s;
    if (c == '{' || c == '[') {
        s = parse_container(r, v, depth, c == '{');
    } else if (c == '"') {
        v->type = LM_JSON_STRING;
        s = parse_string(r, &v->string);
    } else if (c == '-' || (c >= '0' && c <= '9')) {
        s = parse_number(r, v);
    } else if (literal(r, "true") || literal(r, "false")) {
        v->type = LM_JSON_BOOL;
        v->boolean = c == 't';
        s = LM_OK;
    } else if (literal(r, "null")) {
        s = LM_OK;
    } else {
        s = fail_at(r, "a value");
    }
    if (s != LM_OK) {
        free_value(v);
        memset(v, 0, sizeof *v);
    }
    return s;
}

lm_status lm_json_parse(const char *text, size_t len, const char *what, lm_json **out) {
    *out = NULL;
    reader r = {text, len, 0, what};
    lm_json *v = calloc(1, sizeof *v);
    if (!v) return lm_fail(LM_ERR_MEMORY, "out of memory reading JSON");
    lm_status s = parse_value(&r, v, 0);
    if (s == LM_OK) {
        skip_ws(&r);
        if (r.pos != r.len) {
            s = fail_at(&r, "the end of the text");
            free_value(v);
        }
    }
    if (s != LM_OK) {
        free(v);
        return s;
    }
    *out = v;
    return LM_OK;
}

void lm_json_free(lm_json *json) {
    if (!json) return;
    free_value(json);
    free(json);
}

const lm_json *lm_json_get(const lm_json *object, const char *key) {
    if (!object || object->type != LM_JSON_OBJECT) return NULL;
    for (int i = 0; i < object->count; i++)
        if (strcmp(object->keys[i], key) == 0) return &object->items[i];
    return NULL;
}
