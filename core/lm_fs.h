/* File-system helpers for the library's own output folders, so that Lua code
 * never builds shell commands out of paths (a quote in a folder name broke
 * `os.execute("mkdir -p '...'")`). */
#ifndef LM_FS_H
#define LM_FS_H

#include <stdbool.h>

#include "lm_error.h"

/* Creates directory `path` and any missing parents, like `mkdir -p`. An
 * existing directory is success; a file in the way, a permission or any other
 * failure is LM_ERR_IO with a message naming the path (and the part of it
 * that could not be created) and the system's reason. */
lm_status lm_fs_mkdir(const char *path);

/* One entry of a folder listing. */
typedef struct lm_dir_entry {
    char *name;  /* the name within the folder */
    bool is_dir; /* a folder (symbolic links followed) */
} lm_dir_entry;

/* The entries of folder `path` except "." and "..", sorted by name (byte
 * order, so the order is the same on every machine); free with
 * lm_fs_list_free. An unreadable folder is LM_ERR_IO naming it. */
lm_status lm_fs_list(const char *path, lm_dir_entry **entries, int *count);
void lm_fs_list_free(lm_dir_entry *entries, int count);

/* The absolute path of an existing file or folder, with "." and "..",
 * repeated slashes and symbolic links resolved (realpath(3)), in *out (free
 * it); one that does not exist or cannot be reached is LM_ERR_IO naming it. */
lm_status lm_fs_real_path(const char *path, char **out);

#endif
