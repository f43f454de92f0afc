/* Finding a name given twice in a list (tensor names in a file header or a
 * writer's specs, the keys of a JSON object) in O(n log n): a header may
 * hold tens of thousands of names, where comparing every pair takes minutes. */
#ifndef LM_NAMES_H
#define LM_NAMES_H

#include <stddef.h>

#include "lm_error.h"

/* *dup receives a name that appears more than once among the `count` names
 * (NUL-terminated; NULL entries are skipped), or NULL when all differ. Fails
 * only when out of memory. */
lm_status lm_names_duplicate(const char *const *names, size_t count, const char **dup);

#endif
