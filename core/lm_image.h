/* Images as tensors: decoding (PNG, JPEG, BMP, TGA, GIF's first frame,
 * through stb_image), encoding (PNG, JPEG, BMP, TGA through stb_image_write)
 * and antialiased resizing (stb_image_resize's triangle filter, whose
 * support widens with the scale factor when shrinking, as PIL's bilinear
 * does). An image is a float32 tensor [C, H, W] with values in [0, 1]:
 * C = 1 (grey), 2 (grey, alpha), 3 (RGB) or 4 (RGBA). */
#ifndef LM_IMAGE_H
#define LM_IMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "lm_tensor.h"

/* Decodes the file at `path`; `channels` 0 keeps the file's channels, 1-4
 * converts (grey <-> RGB, alpha dropped or added as opaque). An unreadable
 * or corrupt file is an error naming it and saying why. */
lm_status lm_image_load(lm_tensor **out, const char *path, int channels);
/* The same from bytes in memory; `name` names them in errors. */
lm_status lm_image_decode(lm_tensor **out, const void *bytes, size_t len, int channels,
                          const char *name);
/* The width, height and channels the file's header declares, without
 * decoding the pixels: a cheap check that a file is an image. */
lm_status lm_image_info(const char *path, int *width, int *height, int *channels);

/* Writes t ([C, H, W] with C in 1-4, or [H, W]; any device, any strides) to
 * `path`, the format chosen by the extension (.png, .jpg/.jpeg with quality
 * 95, .bmp, .tga). Values are clamped to [0, 1] and rounded to 8 bits. The
 * file appears atomically. */
lm_status lm_image_save(const char *path, const lm_tensor *t);

/* Resizes images [C, H, W] or batches [N, C, H, W] (CPU, float32) to
 * height h and width w, antialiased. */
lm_status lm_image_resize(lm_tensor **out, const lm_tensor *t, int64_t h, int64_t w);

/* The augmentation kernel of random crops and flips, in one pass: out [N,
 * C, oh, ow] from x [N, C, H, W] (CPU, float32), sample i read from the
 * window whose top-left corner is (top[i], left[i]) in x padded by `pad`
 * zeros on every side, mirrored left-right when flip[i]. Windows must lie
 * within the padded image. */
lm_status lm_image_crop_flip(lm_tensor **out, const lm_tensor *x, int64_t oh, int64_t ow,
                             const int64_t *top, const int64_t *left, const bool *flip,
                             int64_t pad);

/* The pixels of an image, from an open file (fp) or from memory (bytes,
 * len), interleaved [h, w, c]: 16 bits a value where the file has 16
 * (*wide; stb's 8-bit path would keep only the high byte), 8 otherwise.
 * JPEG decodes through libjpeg-turbo, the other formats through stb_image.
 * NULL when it cannot be decoded (lm_image_decode_reason says why). Free
 * with free(). */
void *lm_image_read_pixels(FILE *fp, const void *bytes, size_t len, int *w, int *h, int *stored,
                           int channels, bool *wide);
/* Why the last lm_image_read_pixels of this thread failed, in words. */
const char *lm_image_decode_reason(void);
/* The largest image the readers decode, in pixels (width x height, as the
 * header declares them; default 178,956,970, PIL's decompression-bomb
 * limit): a larger one is refused before anything is allocated. The setter
 * returns the previous limit. */
int64_t lm_image_max_pixels(void);
int64_t lm_image_set_max_pixels(int64_t pixels);
/* Those pixels as planes of floats in [0, 1], [c, h, w] at dst. */
void lm_image_planes(float *dst, const void *px, bool wide, int w, int h, int c);

/* The resize of `planes` channel planes stored one after another
 * (float32, row-major, no checks): the kernel that lm_image_resize and the
 * folder loader's workers share. Returns 0 when stb_image_resize fails
 * (out of memory). */
int lm_image_resize_planes(const float *in, int64_t planes, int in_h, int in_w, float *out,
                           int out_h, int out_w);

#endif
