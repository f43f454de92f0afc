/* libFuzzer harness: the safetensors reader (header validation, ranges,
 * dtypes), the memory-mapped reader against it, and a round trip of whatever
 * they accept. */
#include "fuzz_file.h"
#include "lm_safetensors.h"

#include <string.h>

/* The mapped reader accepts exactly what the reader accepts, with the same bytes. */
static void check_mapped(const char *path, const lm_safetensors *st, bool accepted) {
    lm_safetensors m;
    bool ok = lm_safetensors_load_mapped(path, &m) == LM_OK;
    if (ok != accepted) __builtin_trap();
    if (!ok) return;
    if (m.count != st->count) __builtin_trap();
    for (int i = 0; i < m.count; i++) {
        const lm_tensor *a = st->tensors[i].tensor, *b = m.tensors[i].tensor;
        size_t bytes = (size_t)lm_tensor_numel(a) * 4;
        if (strcmp(st->tensors[i].name, m.tensors[i].name) ||
            (size_t)lm_tensor_numel(b) * 4 != bytes ||
            (bytes && memcmp(lm_tensor_f32(a), lm_tensor_f32(b), bytes)))
            __builtin_trap();
    }
    lm_safetensors_free(&m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_file(data, size, "safetensors");
    if (!path) return 0;
    lm_safetensors st;
    bool accepted = lm_safetensors_load(path, &st) == LM_OK;
    check_mapped(path, &st, accepted);
    if (accepted) {
        /* what was accepted must write back and read again */
        if (lm_safetensors_save(path, st.tensors, st.count, st.metadata, st.metadata_count) ==
            LM_OK) {
            lm_safetensors again;
            if (lm_safetensors_load(path, &again) != LM_OK) __builtin_trap();
            if (again.count != st.count) __builtin_trap();
            lm_safetensors_free(&again);
        }
        lm_safetensors_free(&st);
    }
    return 0;
}
