/* The single translation unit that compiles the stb libraries Lumen uses
 * (Debian's libstb-dev ships them as headers). Third-party code: built
 * without Lumen's warning flags (see CMakeLists.txt). */
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STBI_WRITE_NO_STDIO
#include <stb_image_write.h>

#define STB_TRUETYPE_IMPLEMENTATION
#include <stb_truetype.h>
