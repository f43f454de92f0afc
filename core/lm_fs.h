/* File-system helpers for the library's own output folders, so that Lua code
 * never builds shell commands out of paths (a quote in a folder name broke
 * `os.execute("mkdir -p '...'")`). */
#ifndef LM_FS_H
#define LM_FS_H

#include "lm_error.h"

/* Creates directory `path` and any missing parents, like `mkdir -p`. An
 * existing directory is success; a file in the way, a permission or any other
 * failure is LM_ERR_IO with a message naming the path (and the part of it
 * that could not be created) and the system's reason. */
lm_status lm_fs_mkdir(const char *path);

#endif
