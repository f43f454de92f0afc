/* Status codes and the last-error message of the Lumen core.
 *
 * A core function that can fail returns an lm_status and, on failure, leaves
 * a message (what failed, with shapes and argument names) that
 * lm_last_error() returns until the next failure on the same thread. The core
 * never exits, aborts, prints or longjmps: callers (the Lua bindings) decide
 * how to report. */
#ifndef LM_ERROR_H
#define LM_ERROR_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum lm_status {
    LM_OK = 0,
    LM_ERR_ARG,    /* bad argument: type, range, dimension */
    LM_ERR_SHAPE,  /* shapes that do not fit together */
    LM_ERR_MEMORY, /* allocation failed */
    LM_ERR_IO,     /* file system */
    LM_ERR_FORMAT, /* malformed file */
    LM_ERR_DEVICE, /* device unavailable or device error */
    LM_ERR_STATE   /* operation not valid in the current state */
} lm_status;

/* Records a formatted message and returns `code`, so a failure site reads
 * `return lm_fail(LM_ERR_SHAPE, "matmul: ...", ...);`. */
lm_status lm_fail(lm_status code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The message of the last failure on this thread ("" if none). */
const char *lm_last_error(void);

/* Formats a shape as "[2, 3]" into buf (always terminated); returns buf. */
struct lm_tensor;
const char *lm_dims_str(int ndim, const int64_t *shape, char *buf, int size);
const char *lm_shape_str(const struct lm_tensor *t, char *buf, int size);

#define LM_SHAPE_STR_MAX 96

/* Propagate a failing status. */
#define LM_TRY(expr)                                                                               \
    do {                                                                                           \
        lm_status lm_try_status_ = (expr);                                                         \
        if (lm_try_status_ != LM_OK) return lm_try_status_;                                        \
    } while (0)

#ifdef __cplusplus
}
#endif

#endif
