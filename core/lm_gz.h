/* Reading a file that may be gzip-compressed (one member or several, as
 * `cat a.gz b.gz` makes) or stored plainly. Unlike zlib's gzread, which
 * ignores what follows the last member and can miss a cut trailer, anything
 * after the last member that is not another member is an error (as Python's
 * gzip reader makes it), and so is a stream cut anywhere, trailer included.
 * Messages name the file. */
#ifndef LM_GZ_H
#define LM_GZ_H

#include <stdbool.h>
#include <stddef.h>

#include "lm_error.h"

typedef struct lm_gz lm_gz;

lm_status lm_gz_open(lm_gz **out, const char *path);
/* Up to n bytes of the (decompressed) data into buf; *got is 0 only at the
 * end of the data. */
lm_status lm_gz_read(lm_gz *g, void *buf, size_t n, size_t *got);
/* Whether the file is gzip-compressed (else it is read as it is). */
bool lm_gz_compressed(const lm_gz *g);
void lm_gz_close(lm_gz *g); /* NULL is ignored */

#endif
