/* Atomic file writing, shared by every writer of the core (safetensors,
 * PNG, lm.write_file): the bytes go to a temporary file beside the target
 * (same folder, so the same file system), which is flushed, fsynced and then
 * renamed over the target. A reader, or a crash mid-write, sees either the
 * old file or the whole new one, never a torn one. */
#ifndef LM_ATOMIC_FILE_H
#define LM_ATOMIC_FILE_H

#include <stddef.h>

#include "lm_error.h"

typedef struct lm_atomic_file {
    void *fp; /* FILE *, open for writing */
    char *final_path, *temp_path;
} lm_atomic_file;

/* Creates "<path>.tmp.XXXXXX" beside `path`; write to f->fp, then commit or
 * abort. On failure nothing is left behind and *f holds nothing to free. */
lm_status lm_atomic_open(lm_atomic_file *f, const char *path);
/* Flushes, fsyncs and renames the temporary file over the target; on failure
 * removes it. Either way *f holds nothing afterwards. */
lm_status lm_atomic_commit(lm_atomic_file *f);
/* Closes and removes the temporary file (safe on a zeroed or finished *f). */
void lm_atomic_abort(lm_atomic_file *f);

/* Writes `len` bytes to `path` atomically in one call. The messages name
 * the target: "cannot write '<path>': <reason>", "writing '<path>' failed:
 * <reason>", "cannot move '<temporary>' into place: <reason>". */
lm_status lm_atomic_write(const char *path, const void *data, size_t len);
/* The same for `n` pieces written one after another (a page assembled from
 * parts is never joined into one buffer first). */
lm_status lm_atomic_write_parts(const char *path, const void *const *parts, const size_t *lens,
                                size_t n);
/* A write callback in the form stb_image_write's *_to_func writers take
 * (`context` is the lm_atomic_file): appends `size` bytes; on failure closes
 * the file and leaves fp NULL, which lm_atomic_commit's caller checks. */
void lm_atomic_write_chunk(void *context, void *data, int size);

#endif
