/* The single translation unit that compiles the stb libraries Lumen uses
 * (Debian's libstb-dev ships them as headers). Third-party code: built
 * without Lumen's warning flags (see CMakeLists.txt). */
/* The C library first, outside the pragma: its functions must stay default. */
#include <assert.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* stb's functions serve lm_raster.c only: hidden, so liblumen.so does not
 * export them (a host that links its own stb would otherwise clash). */
#pragma GCC visibility push(hidden)

#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STBI_WRITE_NO_STDIO
#include <stb_image_write.h>

#define STB_TRUETYPE_IMPLEMENTATION
#include <stb_truetype.h>

#pragma GCC visibility pop
