/* A small strict JSON reader for file headers (safetensors). Depth and size
 * are bounded; numbers follow JSON's grammar (no 016, 1. or 1e), and a key
 * given twice in one object is an error. Errors say where (byte offset) and
 * what was expected. */
#ifndef LM_JSON_H
#define LM_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lm_error.h"

typedef enum lm_json_type {
    LM_JSON_NULL,
    LM_JSON_BOOL,
    LM_JSON_NUMBER,
    LM_JSON_STRING,
    LM_JSON_ARRAY,
    LM_JSON_OBJECT
} lm_json_type;

typedef struct lm_json {
    lm_json_type type;
    bool boolean;
    bool is_integer; /* NUMBER written without fraction or exponent, fits int64 */
    int64_t integer;
    double number;
    char *string;          /* STRING (NUL-terminated, may contain no NUL) */
    int count;             /* ARRAY / OBJECT members */
    struct lm_json *items; /* ARRAY / OBJECT values */
    char **keys;           /* OBJECT keys */
} lm_json;

#define LM_JSON_MAX_DEPTH 16

/* `what` names the source in messages ("header of 'm.safetensors'"). */
lm_status lm_json_parse(const char *text, size_t len, const char *what, lm_json **out);
void lm_json_free(lm_json *json);
/* The member `key` of an object, or NULL. */
const lm_json *lm_json_get(const lm_json *object, const char *key);

#endif
