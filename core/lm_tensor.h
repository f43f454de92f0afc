/* Tensors: a shape, strides and an offset over a reference-counted storage.
 *
 * Ownership: lm_tensor_new and every view constructor hand the caller one
 * counted reference, given back with lm_tensor_release. A view holds a
 * reference to its storage, so the storage lives while any view does.
 * Strides and offsets count elements, not bytes. Dimensions are 0-based here;
 * the Lua bindings translate from Lua's 1-based convention. */
#ifndef LM_TENSOR_H
#define LM_TENSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lm_error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LM_MAX_DIMS 8

/* uint8 holds data only (images as bytes, masks): it is created, viewed,
 * copied, gathered, converted, saved and loaded, and every op that computes
 * refuses it (lm_check_computable), so a kernel never sees one. CPU only. */
typedef enum lm_dtype { LM_FLOAT32 = 0, LM_INT32 = 1, LM_UINT8 = 2 } lm_dtype;
typedef enum lm_device { LM_CPU = 0, LM_CUDA = 1 } lm_device;

typedef struct lm_storage {
    void *data;
    size_t bytes;
    int refcount;
    lm_device device;
    uint32_t version; /* bumped by every in-place write (autograd checks it) */
    void *map_base;   /* non-NULL: the data lie in a file mapping, unmapped on release */
    size_t map_len;
} lm_storage;

struct lm_autograd_meta; /* autograd state, owned by the tensor (lm_autograd.h) */

typedef struct lm_tensor {
    int refcount;
    lm_dtype dtype;
    int ndim; /* 0 for a scalar (one element) */
    int64_t shape[LM_MAX_DIMS];
    int64_t strides[LM_MAX_DIMS];
    int64_t offset;
    lm_storage *storage;
    struct lm_autograd_meta *autograd; /* NULL unless gradients are involved */
} lm_tensor;

const char *lm_dtype_name(lm_dtype dtype);
const char *lm_device_name(lm_device device);
static inline size_t lm_dtype_size(lm_dtype dtype) {
    return dtype == LM_UINT8 ? 1 : 4;
}

/* A new contiguous tensor with uninitialised contents. */
lm_status lm_tensor_new(lm_tensor **out, lm_dtype dtype, lm_device device, int ndim,
                        const int64_t *shape);
/* A contiguous CPU tensor over `data`, which lies inside the mmap'ed region
 * [map_base, map_base + map_len); the tensor owns the mapping (munmap when
 * its storage is released; on failure the mapping is unmapped here). */
lm_status lm_tensor_new_mapped(lm_tensor **out, lm_dtype dtype, int ndim, const int64_t *shape,
                               void *data, void *map_base, size_t map_len);
/* A new contiguous tensor with the same shape, dtype and device as `like`. */
lm_status lm_tensor_new_like(lm_tensor **out, const lm_tensor *like);
lm_tensor *lm_tensor_retain(lm_tensor *t);
void lm_tensor_release(lm_tensor *t);

int64_t lm_tensor_numel(const lm_tensor *t);
bool lm_tensor_is_contiguous(const lm_tensor *t);
bool lm_tensor_same_shape(const lm_tensor *a, const lm_tensor *b);
/* Pointer to element 0 (storage data + offset); CPU tensors only. */
static inline float *lm_tensor_f32(const lm_tensor *t) {
    return (float *)t->storage->data + t->offset;
}
/* The same for an optional tensor: NULL for NULL. */
static inline float *lm_tensor_f32_or_null(const lm_tensor *t) {
    return t ? lm_tensor_f32(t) : NULL;
}
static inline int32_t *lm_tensor_i32(const lm_tensor *t) {
    return (int32_t *)t->storage->data + t->offset;
}
static inline uint8_t *lm_tensor_u8(const lm_tensor *t) {
    return (uint8_t *)t->storage->data + t->offset;
}
/* Element 0 whatever the dtype, for code that moves bytes (copies, files). */
static inline void *lm_tensor_data(const lm_tensor *t) {
    return (char *)t->storage->data + (size_t)t->offset * lm_dtype_size(t->dtype);
}
/* Element i of an array of `dtype` at `data` as a double (exact for every dtype). */
static inline double lm_load_value(const void *data, lm_dtype dtype, int64_t i) {
    switch (dtype) {
    case LM_INT32:
        return ((const int32_t *)data)[i];
    case LM_UINT8:
        return ((const uint8_t *)data)[i];
    default:
        return ((const float *)data)[i];
    }
}
/* Element `off` (counted from the tensor's offset) of a CPU tensor. */
static inline double lm_tensor_load(const lm_tensor *t, int64_t off) {
    return lm_load_value(lm_tensor_data(t), t->dtype, off);
}
/* Stores v there as copies convert: rounded to float32, or for integers
 * truncated toward zero and saturated to the dtype's range, NaN giving 0
 * (a cast out of range would be undefined behaviour). */
static inline void lm_tensor_store(lm_tensor *t, int64_t off, double v) {
    switch (t->dtype) {
    case LM_INT32:
        v = v != v ? 0 : v > INT32_MAX ? INT32_MAX : v < INT32_MIN ? INT32_MIN : v;
        lm_tensor_i32(t)[off] = (int32_t)v;
        break;
    case LM_UINT8:
        v = v != v ? 0 : v > 255 ? 255 : v < 0 ? 0 : v;
        lm_tensor_u8(t)[off] = (uint8_t)v;
        break;
    default:
        lm_tensor_f32(t)[off] = (float)v;
    }
}
/* LM_OK, or an error naming `op` when `t` is uint8, which takes no arithmetic. */
lm_status lm_check_computable(const char *op, const lm_tensor *t);

/* ---- views: share storage, never copy ---------------------------------------- */

/* New shape with the same number of elements; one entry may be -1 (inferred).
 * Fails when the strides do not allow it (use lm_tensor_reshape). */
lm_status lm_tensor_view(lm_tensor **out, lm_tensor *t, int ndim, const int64_t *shape);
/* A view when the strides allow it, otherwise a contiguous copy. */
lm_status lm_tensor_reshape(lm_tensor **out, lm_tensor *t, int ndim, const int64_t *shape);
lm_status lm_tensor_transpose(lm_tensor **out, lm_tensor *t, int dim0, int dim1);
lm_status lm_tensor_permute(lm_tensor **out, lm_tensor *t, int ndim, const int *perm);
lm_status lm_tensor_narrow(lm_tensor **out, lm_tensor *t, int dim, int64_t start, int64_t length);
/* Removes dimension `dim`, keeping slice `index`. */
lm_status lm_tensor_select(lm_tensor **out, lm_tensor *t, int dim, int64_t index);
/* Broadcasts size-1 dimensions (stride 0) and prepends new leading ones. */
lm_status lm_tensor_expand(lm_tensor **out, lm_tensor *t, int ndim, const int64_t *shape);
lm_status lm_tensor_unsqueeze(lm_tensor **out, lm_tensor *t, int dim);
/* dim < 0: every size-1 dimension. */
lm_status lm_tensor_squeeze(lm_tensor **out, lm_tensor *t, int dim);

/* The shape `a` and `b` broadcast to (NumPy rules), or LM_ERR_SHAPE naming `op`. */
lm_status lm_broadcast_shape(const char *op, const lm_tensor *a, const lm_tensor *b, int *ndim,
                             int64_t *shape);

#ifdef __cplusplus
}
#endif

#endif
