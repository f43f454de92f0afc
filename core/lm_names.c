/* lm_names_duplicate: sort a copy of the pointers, then compare neighbours. */
#include "lm_names.h"

#include <stdlib.h>
#include <string.h>

static int compare_strings(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

lm_status lm_names_duplicate(const char *const *names, size_t count, const char **dup) {
    *dup = NULL;
    if (count < 2) return LM_OK;
    const char **sorted = malloc(count * sizeof *sorted);
    if (!sorted) return lm_fail(LM_ERR_MEMORY, "out of memory comparing names");
    size_t n = 0;
    for (size_t i = 0; i < count; i++)
        if (names[i]) sorted[n++] = names[i];
    qsort(sorted, n, sizeof *sorted, compare_strings);
    for (size_t i = 1; i < n && !*dup; i++)
        if (strcmp(sorted[i - 1], sorted[i]) == 0) *dup = sorted[i];
    free(sorted);
    return LM_OK;
}
