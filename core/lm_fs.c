#define _DEFAULT_SOURCE /* realpath */
#include "lm_fs.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Makes one directory whose parent exists: 0, or an errno value (ENOTDIR
 * when something other than a directory already has the name). */
static int make_one(const char *p) {
    struct stat st;
    if (stat(p, &st) == 0) return S_ISDIR(st.st_mode) ? 0 : ENOTDIR;
    if (mkdir(p, 0777) == 0) return 0;
    int err = errno;
    /* EEXIST: made meanwhile by someone else, which is as good */
    if (err == EEXIST) return is_dir(p) ? 0 : ENOTDIR;
    return err;
}

static lm_status fail(const char *path, const char *part, int err) {
    if (err == ENOTDIR)
        return lm_fail(LM_ERR_IO, "mkdir: cannot create '%s': '%s' exists and is not a directory",
                       path, part);
    if (strcmp(path, part) != 0)
        return lm_fail(LM_ERR_IO, "mkdir: cannot create '%s': %s (at '%s')", path, strerror(err),
                       part);
    return lm_fail(LM_ERR_IO, "mkdir: cannot create '%s': %s", path, strerror(err));
}

lm_status lm_fs_mkdir(const char *path) {
    size_t n = strlen(path);
    if (n == 0) return lm_fail(LM_ERR_ARG, "mkdir: the path is empty");
    char *p = malloc(n + 1);
    if (!p) return lm_fail(LM_ERR_MEMORY, "out of memory");
    memcpy(p, path, n + 1);
    /* each prefix ending before a '/' (leading slashes skipped: "/" exists),
     * then the whole path */
    lm_status s = LM_OK;
    for (size_t i = 1; i <= n && s == LM_OK; i++) {
        if (i < n && (p[i] != '/' || p[i - 1] == '/')) continue;
        char saved = p[i];
        p[i] = '\0';
        int err = make_one(p);
        if (err) s = fail(path, p, err);
        p[i] = saved;
    }
    free(p);
    return s;
}

static int compare_entries(const void *a, const void *b) {
    return strcmp(((const lm_dir_entry *)a)->name, ((const lm_dir_entry *)b)->name);
}

lm_status lm_fs_list(const char *path, lm_dir_entry **entries, int *count) {
    *entries = NULL;
    *count = 0;
    DIR *d = opendir(path);
    if (!d) return lm_fail(LM_ERR_IO, "cannot list the folder '%s': %s", path, strerror(errno));
    lm_dir_entry *list = NULL;
    int n = 0, cap = 0;
    size_t plen = strlen(path);
    lm_status s = LM_OK;
    struct dirent *e;
    while (s == LM_OK && (e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            lm_dir_entry *grown = realloc(list, (size_t)cap * sizeof *grown);
            if (!grown) {
                s = lm_fail(LM_ERR_MEMORY, "out of memory listing '%s'", path);
                break;
            }
            list = grown;
        }
        size_t nlen = strlen(e->d_name);
        char *full = malloc(plen + nlen + 2);
        list[n].name = malloc(nlen + 1);
        if (!full || !list[n].name) {
            free(full);
            free(list[n].name);
            s = lm_fail(LM_ERR_MEMORY, "out of memory listing '%s'", path);
            break;
        }
        memcpy(list[n].name, e->d_name, nlen + 1);
        snprintf(full, plen + nlen + 2, "%s/%s", path, e->d_name);
        list[n].is_dir = is_dir(full);
        free(full);
        n++;
    }
    closedir(d);
    if (s != LM_OK) {
        lm_fs_list_free(list, n);
        return s;
    }
    if (n > 1) qsort(list, (size_t)n, sizeof *list, compare_entries);
    *entries = list;
    *count = n;
    return LM_OK;
}

void lm_fs_list_free(lm_dir_entry *entries, int count) {
    for (int i = 0; i < count; i++) free(entries[i].name);
    free(entries);
}

lm_status lm_fs_real_path(const char *path, char **out) {
    *out = realpath(path, NULL);
    if (!*out)
        return lm_fail(LM_ERR_IO, "real_path: cannot resolve '%s': %s", path, strerror(errno));
    return LM_OK;
}
