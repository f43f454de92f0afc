/* The Lua library (lua/lumen/ and below) compiled into the binary. */
#ifndef L_EMBEDDED_H
#define L_EMBEDDED_H

#include <stddef.h>

typedef struct lm_embedded_module {
    const char *name;      /* "lumen.nn" */
    const char *chunkname; /* "@lua/lumen/nn/init.lua" */
    const char *source;
    size_t size;
} lm_embedded_module;

extern const lm_embedded_module lm_embedded_modules[];

#endif
