/* libFuzzer harness: the IDX reader, as images (float) and as labels (int). */
#include "fuzz_file.h"
#include "lm_datasets.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_file(data, size, "idx");
    if (!path) return 0;
    lm_tensor *t = NULL;
    if (lm_idx_load(path, LM_FLOAT32, 1.0 / 255, -1, &t) == LM_OK) lm_tensor_release(t);
    t = NULL;
    if (lm_idx_load(path, LM_INT32, 1, 9, &t) == LM_OK) lm_tensor_release(t);
    return 0;
}
