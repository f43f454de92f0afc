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

/* stb's functions serve lm_raster.c and lm_image*.c only: hidden, so liblumen.so does not
 * export them (a host that links its own stb would otherwise clash). */
#pragma GCC visibility push(hidden)

#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STBI_WRITE_NO_STDIO
#include <stb_image_write.h>

#define STB_TRUETYPE_IMPLEMENTATION
#include <stb_truetype.h>

/* Image decoding: the formats stb reads well and people train on. JPEG
 * is not among them: its decoder crashes on some damaged files, so
 * lm_image_jpeg.c reads JPEG through libjpeg-turbo. stb's failure reason is
 * thread-local (C11), so the folder loader's workers can report why a file
 * failed. */
#define STB_IMAGE_IMPLEMENTATION
#define STBI_FAILURE_USERMSG /* "Corrupt PNG" rather than a chunk name cut short */
#define STBI_ONLY_PNG
#define STBI_ONLY_BMP
#define STBI_ONLY_TGA
#define STBI_ONLY_GIF
#include <stb_image.h>

#define STB_IMAGE_RESIZE_IMPLEMENTATION
#include <stb_image_resize.h>

#pragma GCC visibility pop
