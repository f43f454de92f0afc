/* libFuzzer harness: image decoding (PNG, BMP, TGA, GIF through stb_image,
 * JPEG through libjpeg-turbo), from memory as lm.image.decode reads it and from a file as
 * lm.image.load and the image folders' loader read it, each as stored and
 * converted to 1 and 3 channels. */
#include "fuzz_file.h"
#include "lm_image.h"
#include "lm_tensor.h"

static void decode(const uint8_t *data, size_t size, int channels) {
    lm_tensor *t = NULL;
    if (lm_image_decode(&t, data, size, channels, "fuzz input") == LM_OK) lm_tensor_release(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* the decoders, not the limit, are under test: a lower limit keeps a
     * header's claimed size within the fuzzer's memory */
    lm_image_set_max_pixels((int64_t)1 << 22);
    decode(data, size, 0);
    decode(data, size, 1);
    decode(data, size, 3);
    const char *path = fuzz_file(data, size, "img");
    if (!path) return 0;
    lm_tensor *t = NULL;
    if (lm_image_load(&t, path, 0) == LM_OK) lm_tensor_release(t);
    int w, h, c;
    (void)lm_image_info(path, &w, &h, &c);
    return 0;
}
