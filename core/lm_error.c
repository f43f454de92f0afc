#include "lm_error.h"

#include <stdarg.h>
#include <stdio.h>

#include "lm_tensor.h"

static _Thread_local char last_error[1024];

lm_status lm_fail(lm_status code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return code;
}

const char *lm_last_error(void) {
    return last_error;
}

const char *lm_dims_str(int ndim, const int64_t *shape, char *buf, int size) {
    int n = snprintf(buf, size, "[");
    for (int d = 0; d < ndim && n < size; d++)
        n += snprintf(buf + n, size - n, d ? ", %lld" : "%lld", (long long)shape[d]);
    if (n < size) snprintf(buf + n, size - n, "]");
    return buf;
}

const char *lm_shape_str(const lm_tensor *t, char *buf, int size) {
    return lm_dims_str(t->ndim, t->shape, buf, size);
}
