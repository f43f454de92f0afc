/* Write-to-temporary-then-rename, so a crash mid-save never leaves a torn
 * file where a good one was. */
#include "lm_atomic_file.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The steps below return 0 or an errno value and record no message, so that
 * lm_atomic_open/commit and lm_atomic_write can each word their own. */

typedef enum { OPEN_MEMORY, OPEN_CREATE, OPEN_STREAM } open_step;

static int temp_open(lm_atomic_file *f, const char *path, open_step *failed) {
    memset(f, 0, sizeof *f);
    size_t n = strlen(path);
    f->final_path = malloc(n + 1);
    f->temp_path = malloc(n + 16);
    if (!f->final_path || !f->temp_path) {
        lm_atomic_abort(f);
        *failed = OPEN_MEMORY;
        return ENOMEM;
    }
    memcpy(f->final_path, path, n + 1);
    snprintf(f->temp_path, n + 16, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(f->temp_path);
    if (fd < 0) {
        int err = errno;
        free(f->temp_path); /* nothing was created: nothing to unlink */
        f->temp_path = NULL;
        lm_atomic_abort(f);
        *failed = OPEN_CREATE;
        return err;
    }
    /* mkstemp makes the file private (0600): give it the usual permissions */
    mode_t mask = umask(0);
    umask(mask);
    if (fchmod(fd, 0666 & ~mask) != 0) { /* not fatal: the file is still ours */
    }
    f->fp = fdopen(fd, "wb");
    if (!f->fp) {
        int err = errno;
        close(fd);
        lm_atomic_abort(f);
        *failed = OPEN_STREAM;
        return err;
    }
    return 0;
}

/* Closes the stream (flushed and fsynced), then renames; *renaming says which
 * step failed. The caller aborts on failure, after wording its message. */
static int temp_commit(lm_atomic_file *f, bool *renaming) {
    FILE *fp = f->fp;
    *renaming = false;
    bool ok = fflush(fp) == 0 && fsync(fileno(fp)) == 0;
    int err = ok ? 0 : errno;
    if (fclose(fp) != 0 && ok) {
        ok = false;
        err = errno;
    }
    f->fp = NULL;
    if (!ok) return err;
    *renaming = true;
    if (rename(f->temp_path, f->final_path) != 0) return errno;
    free(f->temp_path);
    free(f->final_path);
    memset(f, 0, sizeof *f);
    return 0;
}

lm_status lm_atomic_open(lm_atomic_file *f, const char *path) {
    open_step failed;
    int err = temp_open(f, path, &failed);
    if (!err) return LM_OK;
    switch (failed) {
    case OPEN_MEMORY:
        return lm_fail(LM_ERR_MEMORY, "out of memory");
    case OPEN_CREATE:
        return lm_fail(LM_ERR_IO, "cannot create a file beside '%s': %s", path, strerror(err));
    case OPEN_STREAM:
        break;
    }
    return lm_fail(LM_ERR_IO, "cannot open a temporary file for '%s'", path);
}

lm_status lm_atomic_commit(lm_atomic_file *f) {
    bool renaming;
    int err = temp_commit(f, &renaming);
    if (!err) return LM_OK;
    lm_status s = renaming
                      ? lm_fail(LM_ERR_IO, "cannot move the new file into '%s': %s", f->final_path,
                                strerror(err))
                      : lm_fail(LM_ERR_IO, "writing '%s' failed: %s", f->final_path, strerror(err));
    lm_atomic_abort(f);
    return s;
}

void lm_atomic_abort(lm_atomic_file *f) {
    if (f->fp) fclose(f->fp);
    if (f->temp_path) unlink(f->temp_path);
    free(f->temp_path);
    free(f->final_path);
    memset(f, 0, sizeof *f);
}

lm_status lm_atomic_write(const char *path, const void *data, size_t len) {
    return lm_atomic_write_parts(path, &data, &len, 1);
}

lm_status lm_atomic_write_parts(const char *path, const void *const *parts, const size_t *lens,
                                size_t n) {
    lm_atomic_file f;
    open_step failed;
    int err = temp_open(&f, path, &failed);
    if (err) {
        if (failed == OPEN_MEMORY) return lm_fail(LM_ERR_MEMORY, "out of memory");
        return lm_fail(LM_ERR_IO, "cannot write '%s': %s", path, strerror(err));
    }
    for (size_t i = 0; i < n; i++) {
        if (lens[i] > 0 && fwrite(parts[i], 1, lens[i], f.fp) != lens[i]) {
            lm_status s = lm_fail(LM_ERR_IO, "writing '%s' failed: %s", path, strerror(errno));
            lm_atomic_abort(&f);
            return s;
        }
    }
    bool renaming;
    err = temp_commit(&f, &renaming);
    if (!err) return LM_OK;
    lm_status s =
        renaming ? lm_fail(LM_ERR_IO, "cannot move '%s' into place: %s", f.temp_path, strerror(err))
                 : lm_fail(LM_ERR_IO, "writing '%s' failed: %s", path, strerror(err));
    lm_atomic_abort(&f);
    return s;
}

void lm_atomic_write_chunk(void *context, void *data, int size) {
    lm_atomic_file *f = context;
    if (f->fp && fwrite(data, 1, (size_t)size, f->fp) != (size_t)size) {
        fclose(f->fp);
        f->fp = NULL;
    }
}
