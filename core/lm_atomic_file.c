/* Write-to-temporary-then-rename, so a crash mid-save never leaves a torn
 * file where a good one was. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lm_safetensors.h"

lm_status lm_atomic_open(lm_atomic_file *f, const char *path) {
    memset(f, 0, sizeof *f);
    size_t n = strlen(path);
    f->final_path = malloc(n + 1);
    f->temp_path = malloc(n + 16);
    if (!f->final_path || !f->temp_path) {
        lm_atomic_abort(f);
        return lm_fail(LM_ERR_MEMORY, "out of memory");
    }
    memcpy(f->final_path, path, n + 1);
    snprintf(f->temp_path, n + 16, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(f->temp_path);
    if (fd < 0) {
        lm_status s = lm_fail(LM_ERR_IO, "cannot create a file beside '%s': %s", path,
                              strerror(errno));
        free(f->temp_path);
        f->temp_path = NULL;
        lm_atomic_abort(f);
        return s;
    }
    /* mkstemp makes the file private (0600): give it the usual permissions */
    mode_t mask = umask(0);
    umask(mask);
    if (fchmod(fd, 0666 & ~mask) != 0) { /* not fatal: the file is still ours */
    }
    f->fp = fdopen(fd, "wb");
    if (!f->fp) {
        close(fd);
        lm_atomic_abort(f);
        return lm_fail(LM_ERR_IO, "cannot open a temporary file for '%s'", path);
    }
    return LM_OK;
}

lm_status lm_atomic_commit(lm_atomic_file *f) {
    FILE *fp = f->fp;
    bool ok = fflush(fp) == 0 && fsync(fileno(fp)) == 0;
    int err = errno;
    ok = (fclose(fp) == 0) && ok;
    f->fp = NULL;
    if (!ok) {
        lm_status s = lm_fail(LM_ERR_IO, "writing '%s' failed: %s", f->final_path, strerror(err));
        lm_atomic_abort(f);
        return s;
    }
    if (rename(f->temp_path, f->final_path) != 0) {
        lm_status s =
            lm_fail(LM_ERR_IO, "cannot move the new file into '%s': %s", f->final_path,
                    strerror(errno));
        lm_atomic_abort(f);
        return s;
    }
    free(f->temp_path);
    free(f->final_path);
    memset(f, 0, sizeof *f);
    return LM_OK;
}

void lm_atomic_abort(lm_atomic_file *f) {
    if (f->fp) fclose(f->fp);
    if (f->temp_path) unlink(f->temp_path);
    free(f->temp_path);
    free(f->final_path);
    memset(f, 0, sizeof *f);
}
