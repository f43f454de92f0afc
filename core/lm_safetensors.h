/* safetensors files: named tensors behind a JSON header.
 *
 * Layout: 8-byte little-endian header length N, N bytes of JSON
 * ({"name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}, ...,
 * "__metadata__": {"key": "value"}}), then the raw little-endian data.
 * Reading validates everything before allocating anything of a size the file
 * claims: the header length is bounded by the file size and by
 * LM_SAFETENSORS_MAX_HEADER, every shape must match its byte range, ranges
 * must lie inside the file and must not overlap. F32 and I32 load as they
 * are; F64, F16 and BF16 are converted to float32 (F64 rounded to nearest,
 * the halves exactly), I64, I16, U16, I8, U8 and BOOL to int32 (BOOL as 0/1;
 * an I64 value outside int32's range is an error naming the tensor).
 * Writing is atomic (lm_atomic_file.h): a temporary file in the same folder,
 * fsync, rename; a header over LM_SAFETENSORS_MAX_HEADER (long metadata) is
 * refused before anything is written. */
#ifndef LM_SAFETENSORS_H
#define LM_SAFETENSORS_H

#include "lm_tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The largest header readers accept, in bytes (the reference reader's
 * MAX_HEADER_SIZE): the writers refuse to write a longer one. */
#define LM_SAFETENSORS_MAX_HEADER 100000000u

typedef struct lm_named_tensor {
    char *name;
    lm_tensor *tensor; /* one counted reference */
} lm_named_tensor;

typedef struct lm_string_pair {
    char *key, *value;
} lm_string_pair;

typedef struct lm_safetensors {
    lm_named_tensor *tensors;
    int count;
    lm_string_pair *metadata;
    int metadata_count;
} lm_safetensors;

/* The name, dtype and shape of a tensor to be written. */
typedef struct lm_tensor_spec {
    const char *name;
    lm_dtype dtype;
    int ndim;
    int64_t shape[LM_MAX_DIMS];
} lm_tensor_spec;

/* How float32 tensors are stored in a written file (int32 stays I32). The
 * halves round to nearest, ties to even; a value past float16's range
 * (65504) becomes an infinity. */
typedef enum lm_float_format {
    LM_STORE_FLOAT32,
    LM_STORE_FLOAT16,
    LM_STORE_BFLOAT16
} lm_float_format;

/* Writes `count` tensors (any device, any strides) and optional metadata. */
lm_status lm_safetensors_save(const char *path, const lm_named_tensor *tensors, int count,
                              const lm_string_pair *metadata, int metadata_count);
/* The same, with float32 tensors stored as `format`. */
lm_status lm_safetensors_save_as(const char *path, const lm_named_tensor *tensors, int count,
                                 const lm_string_pair *metadata, int metadata_count,
                                 lm_float_format format);
/* Reads a whole file into CPU tensors; free with lm_safetensors_free. */
lm_status lm_safetensors_load(const char *path, lm_safetensors *out);
/* The same, but F32 and I32 tensors are memory-mapped from the file instead
 * of read (copy-on-write: writing to them never changes the file), so a file
 * larger than memory can be used; the operating system pages the data in
 * as it is touched. Other dtypes, and data the format leaves unaligned,
 * are read as by lm_safetensors_load. */
lm_status lm_safetensors_load_mapped(const char *path, lm_safetensors *out);

/* Streaming writer: the shapes are declared up front, the rows of each
 * tensor (slices along dimension 1) are appended in order, a batch at a time,
 * so a tensor larger than memory can be written. The file appears (atomically)
 * only when close finds every tensor complete. */
typedef struct lm_safetensors_writer lm_safetensors_writer;
lm_status lm_safetensors_writer_open(lm_safetensors_writer **out, const char *path,
                                     const lm_tensor_spec *specs, int count);
/* Appends rows to tensor `index` (0-based): `rows` (any device, any strides)
 * has the declared dtype and shape except for its first dimension. */
lm_status lm_safetensors_writer_append(lm_safetensors_writer *w, int index, const lm_tensor *rows);
/* Commits the file if every tensor has all its rows. A missing row is an
 * error that leaves the writer open (rows may still be appended); otherwise
 * the writer is freed and *w set to NULL, whether the commit worked or failed
 * (an I/O error removes the temporary file: nothing is left to finish). */
lm_status lm_safetensors_writer_close(lm_safetensors_writer **w);
/* Removes the temporary file and frees the writer (NULL is ignored). */
void lm_safetensors_writer_abort(lm_safetensors_writer *w);
void lm_safetensors_free(lm_safetensors *st);

#ifdef __cplusplus
}
#endif

#endif
