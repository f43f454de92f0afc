/* Validation of a TrueType font before stb_truetype reads it.
 *
 * stb_truetype trusts the font: an offset or a count from the file is used
 * without a bounds check, and composite glyphs are expanded by recursion
 * without a limit, so a corrupt file (or a text file named by LUMEN_FONT)
 * makes it read outside its buffer or never return. lm_font_check proves,
 * table by table, that every read made by the functions Lumen calls
 * (lm_raster.c: stbtt_GetFontOffsetForIndex, stbtt_InitFont,
 * stbtt_ScaleForPixelHeight, stbtt_GetCodepointKernAdvance,
 * stbtt_GetCodepointHMetrics, stbtt_GetCodepointBitmapBoxSubpixel and
 * stbtt_MakeCodepointBitmapSubpixel, for every code point up to U+10FFFF)
 * stays inside the file, and that the work each does is bounded.
 *
 * Only a single TrueType font with glyf outlines is accepted (not a
 * collection, not CFF outlines). The checks follow the reads of
 * stb_truetype v1.26 (Debian's libstb-dev): a newer stb_truetype must be
 * read against them again. */
#ifndef LM_FONT_CHECK_H
#define LM_FONT_CHECK_H

#include <stddef.h>

#include "lm_error.h"

/* The largest font file Lumen reads (stb_truetype keeps offsets in int). */
#define LM_FONT_MAX_BYTES ((size_t)256 << 20)

/* LM_OK when stb_truetype can use the `size` bytes at `data` safely; else
 * LM_ERR_FORMAT with a message naming `path` and what is wrong (or
 * LM_ERR_MEMORY). */
lm_status lm_font_check(const unsigned char *data, size_t size, const char *path);

#endif
