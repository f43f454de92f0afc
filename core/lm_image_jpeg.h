/* JPEG decoding through libjpeg-turbo (internal to lm_image*.c).
 *
 * Why not stb_image: its JPEG decoder asserts on, or reads past, some
 * damaged Huffman streams (found by fuzz/fuzz_image.c), while libjpeg's
 * decoder is fuzzed upstream and reports every failure through its error
 * manager. It is also the decoder PIL and torchvision use, so an image
 * Lumen loads has the pixels a PyTorch pipeline sees. */
#ifndef LM_IMAGE_JPEG_H
#define LM_IMAGE_JPEG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* True when the bytes begin with a JPEG's start-of-image marker (what
 * libjpeg requires of a file's first two bytes). */
bool lm_jpeg_is(const unsigned char *bytes, size_t len);

/* The header's size and stored channels (1 or 3; CMYK counts as 3, as it
 * decodes to RGB). False with the reason written to why when the header
 * cannot be read. fp is read from its current position. */
bool lm_jpeg_info_file(FILE *fp, int *w, int *h, int *stored, char *why, size_t why_len);
bool lm_jpeg_info(const unsigned char *bytes, size_t len, int *w, int *h, int *stored, char *why,
                  size_t why_len);

/* Interleaved 8-bit pixels [h, w, c] (malloc'd; free() releases them), c =
 * channels or, when channels is 0, the stored count. Converted the way
 * stb_image converts the other formats: grey to colour repeats the value,
 * colour to grey is (77 r + 150 g + 29 b) >> 8, a missing alpha is 255.
 * NULL with the reason in why when the file is damaged, cut short or not
 * decodable. (The caller checks the header's size against its limit.) */
unsigned char *lm_jpeg_decode(const unsigned char *bytes, size_t len, int *w, int *h, int *stored,
                              int channels, char *why, size_t why_len);

#endif
