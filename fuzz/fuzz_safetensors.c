/* libFuzzer harness: the safetensors reader (header validation, ranges,
 * dtypes), and a round trip of whatever it accepts. */
#include "fuzz_file.h"
#include "lm_safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_file(data, size, "safetensors");
    if (!path) return 0;
    lm_safetensors st;
    if (lm_safetensors_load(path, &st) == LM_OK) {
        /* what was accepted must write back and read again */
        if (lm_safetensors_save(path, st.tensors, st.count, st.metadata, st.metadata_count) == LM_OK) {
            lm_safetensors again;
            if (lm_safetensors_load(path, &again) != LM_OK) __builtin_trap();
            if (again.count != st.count) __builtin_trap();
            lm_safetensors_free(&again);
        }
        lm_safetensors_free(&st);
    }
    return 0;
}
