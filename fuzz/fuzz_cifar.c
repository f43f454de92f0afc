/* libFuzzer harness: the CIFAR-10 binary batch reader. */
#include "fuzz_file.h"
#include "lm_datasets.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_file(data, size, "bin");
    if (!path) return 0;
    lm_tensor *x = NULL, *y = NULL;
    if (lm_cifar_load(path, LM_FLOAT32, &x, &y) == LM_OK) {
        lm_tensor_release(x);
        lm_tensor_release(y);
    }
    return 0;
}
