#include "lm_tensor.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "lm_autograd_meta.h"
#include "lm_backend.h"
#include "lm_ops.h"

const char *lm_dtype_name(lm_dtype dtype) {
    return dtype == LM_INT32 ? "int32" : dtype == LM_UINT8 ? "uint8" : "float32";
}

lm_status lm_check_computable(const char *op, const lm_tensor *t) {
    if (t && t->dtype == LM_UINT8)
        return lm_fail(LM_ERR_ARG,
                       "%s: uint8 tensors hold data (images, masks) and take no arithmetic: "
                       "convert with x:float() or x:int() first",
                       op);
    return LM_OK;
}
const char *lm_device_name(lm_device device) {
    return device == LM_CUDA ? "cuda" : "cpu";
}

/* Row-major strides; a size of 0 counts as 1, as in torch, so that no
 * stride of an empty tensor is 0 (which would read as an expanded one). */
static void set_contiguous_strides(lm_tensor *t) {
    int64_t stride = 1;
    for (int d = t->ndim - 1; d >= 0; d--) {
        t->strides[d] = stride;
        stride *= t->shape[d] ? t->shape[d] : 1;
    }
}

static lm_status check_shape(const char *what, int ndim, const int64_t *shape) {
    if (ndim < 0 || ndim > LM_MAX_DIMS)
        return lm_fail(LM_ERR_ARG, "%s: %d dimensions given, at most %d supported", what, ndim,
                       LM_MAX_DIMS);
    /* the product of the non-zero sizes bounds every stride, even when a
     * zero-size dimension makes the tensor empty (found by fuzz/fuzz_idx.c) */
    int64_t span = 1;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] < 0)
            return lm_fail(LM_ERR_ARG, "%s: size %lld of dimension %d is negative", what,
                           (long long)shape[d], d + 1);
        if (shape[d] && span > INT64_MAX / 4 / shape[d])
            return lm_fail(LM_ERR_ARG, "%s: shape is too large", what);
        if (shape[d]) span *= shape[d];
    }
    return LM_OK;
}

/* A tensor header sharing `storage` (retained). */
static lm_tensor *header_new(lm_dtype dtype, lm_storage *storage) {
    lm_tensor *t = calloc(1, sizeof *t);
    if (!t) {
        lm_fail(LM_ERR_MEMORY, "out of memory allocating a tensor header");
        return NULL;
    }
    t->refcount = 1;
    t->dtype = dtype;
    t->storage = storage;
    storage->refcount++;
    return t;
}

lm_status lm_tensor_new(lm_tensor **out, lm_dtype dtype, lm_device device, int ndim,
                        const int64_t *shape) {
    *out = NULL;
    LM_TRY(check_shape("tensor", ndim, shape));
    if (dtype == LM_UINT8 && device != LM_CPU)
        return lm_fail(LM_ERR_DEVICE,
                       "uint8 tensors live on the CPU only: make bytes on the CPU, and convert "
                       "them with x:float() before moving them to '%s'",
                       lm_device_name(device));
    const lm_backend *be = lm_backend_get(device);
    if (!be) return LM_ERR_DEVICE;
    int64_t numel = 1;
    for (int d = 0; d < ndim; d++) numel *= shape[d];
    lm_storage *s = calloc(1, sizeof *s);
    if (!s) return lm_fail(LM_ERR_MEMORY, "out of memory allocating a storage header");
    s->bytes = (size_t)numel * lm_dtype_size(dtype);
    s->device = device;
    s->data = be->alloc(s->bytes ? s->bytes : 1);
    if (!s->data) {
        free(s);
        return LM_ERR_MEMORY;
    }
    lm_tensor *t = header_new(dtype, s);
    s->refcount = 1; /* the tensor's reference only */
    if (!t) {
        be->free(s->data, s->bytes ? s->bytes : 1);
        free(s);
        return LM_ERR_MEMORY;
    }
    t->ndim = ndim;
    if (ndim) memcpy(t->shape, shape, sizeof(int64_t) * ndim);
    set_contiguous_strides(t);
    *out = t;
    return LM_OK;
}

lm_status lm_tensor_new_mapped(lm_tensor **out, lm_dtype dtype, int ndim, const int64_t *shape,
                               void *data, void *map_base, size_t map_len) {
    *out = NULL;
    lm_status st = check_shape("tensor", ndim, shape);
    lm_storage *s = st == LM_OK ? calloc(1, sizeof *s) : NULL;
    lm_tensor *t = s ? header_new(dtype, s) : NULL;
    if (!t) {
        free(s);
        munmap(map_base, map_len);
        return st != LM_OK ? st : LM_ERR_MEMORY; /* header_new said why */
    }
    int64_t numel = 1;
    for (int d = 0; d < ndim; d++) numel *= shape[d];
    s->bytes = (size_t)numel * lm_dtype_size(dtype);
    s->device = LM_CPU;
    s->data = data;
    s->map_base = map_base;
    s->map_len = map_len;
    s->refcount = 1;
    t->ndim = ndim;
    for (int d = 0; d < ndim; d++) t->shape[d] = shape[d];
    set_contiguous_strides(t);
    *out = t;
    return LM_OK;
}

lm_status lm_tensor_new_like(lm_tensor **out, const lm_tensor *like) {
    return lm_tensor_new(out, like->dtype, like->storage->device, like->ndim, like->shape);
}

lm_tensor *lm_tensor_retain(lm_tensor *t) {
    if (t) t->refcount++;
    return t;
}

static void storage_release(lm_storage *s) {
    if (--s->refcount > 0) return;
    if (s->map_base) {
        munmap(s->map_base, s->map_len);
    } else {
        const lm_backend *be = lm_backend_get(s->device);
        if (be) be->free(s->data, s->bytes ? s->bytes : 1);
    }
    free(s);
}

void lm_tensor_release(lm_tensor *t) {
    if (!t || --t->refcount > 0) return;
    lm_autograd_meta_release(t->autograd);
    storage_release(t->storage);
    free(t);
}

int64_t lm_tensor_numel(const lm_tensor *t) {
    int64_t n = 1;
    for (int d = 0; d < t->ndim; d++) n *= t->shape[d];
    return n;
}

bool lm_tensor_is_contiguous(const lm_tensor *t) {
    if (lm_tensor_numel(t) == 0) return true; /* no element to be out of order */
    int64_t stride = 1;
    for (int d = t->ndim - 1; d >= 0; d--) {
        if (t->shape[d] != 1 && t->strides[d] != stride) return false;
        stride *= t->shape[d];
    }
    return true;
}

bool lm_tensor_same_shape(const lm_tensor *a, const lm_tensor *b) {
    if (a->ndim != b->ndim) return false;
    for (int d = 0; d < a->ndim; d++)
        if (a->shape[d] != b->shape[d]) return false;
    return true;
}

/* ---- views --------------------------------------------------------------------- */

static lm_status view_of(lm_tensor **out, lm_tensor *t) {
    *out = header_new(t->dtype, t->storage);
    if (!*out) return LM_ERR_MEMORY;
    (*out)->ndim = t->ndim;
    memcpy((*out)->shape, t->shape, sizeof t->shape);
    memcpy((*out)->strides, t->strides, sizeof t->strides);
    (*out)->offset = t->offset;
    return LM_OK;
}

static lm_status check_dim(const char *op, const lm_tensor *t, int dim) {
    if (dim < 0 || dim >= t->ndim)
        return lm_fail(LM_ERR_ARG, "%s: dimension %d out of range for a %d-D tensor", op, dim + 1,
                       t->ndim);
    return LM_OK;
}

/* Resolves a -1 entry and checks the element count. */
static lm_status infer_shape(const char *op, const lm_tensor *t, int ndim, const int64_t *shape,
                             int64_t *resolved) {
    LM_TRY(ndim >= 0 && ndim <= LM_MAX_DIMS
               ? LM_OK
               : lm_fail(LM_ERR_ARG, "%s: %d dimensions given, at most %d", op, ndim, LM_MAX_DIMS));
    int infer = -1;
    int64_t known = 1;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] == -1) {
            if (infer >= 0) return lm_fail(LM_ERR_ARG, "%s: only one size may be -1", op);
            infer = d;
        } else if (shape[d] < 0) {
            return lm_fail(LM_ERR_ARG, "%s: invalid size %lld", op, (long long)shape[d]);
        } else {
            /* a product that wraps could equal the element count */
            if (shape[d] && known > INT64_MAX / 4 / shape[d])
                return lm_fail(LM_ERR_ARG, "%s: shape is too large", op);
            known *= shape[d];
        }
        resolved[d] = shape[d];
    }
    int64_t numel = lm_tensor_numel(t);
    char buf[LM_SHAPE_STR_MAX];
    if (infer >= 0) {
        if (known == 0 || numel % known != 0)
            return lm_fail(LM_ERR_SHAPE, "%s: cannot infer size -1 for %lld elements (shape %s)",
                           op, (long long)numel, lm_shape_str(t, buf, sizeof buf));
        resolved[infer] = numel / known;
    } else if (known != numel) {
        return lm_fail(LM_ERR_SHAPE, "%s: shape of %lld elements asked for a tensor of %lld (%s)",
                       op, (long long)known, (long long)numel, lm_shape_str(t, buf, sizeof buf));
    }
    return LM_OK;
}

/* Strides for viewing t with `shape` without copying, when they exist: each
 * run of old dimensions that is contiguous within itself can be split or
 * merged freely. Returns false if the memory layout does not allow it. */
static bool view_strides(const lm_tensor *t, int ndim, const int64_t *shape, int64_t *strides) {
    int64_t numel = lm_tensor_numel(t);
    if (numel == 0 || t->ndim == 0) {
        int64_t s = 1;
        for (int d = ndim - 1; d >= 0; d--) {
            strides[d] = s;
            s *= shape[d] ? shape[d] : 1;
        }
        return true;
    }
    int view_d = ndim - 1;
    int64_t chunk_base_stride = t->strides[t->ndim - 1];
    int64_t tensor_numel = 1, view_numel = 1;
    for (int td = t->ndim - 1; td >= 0; td--) {
        tensor_numel *= t->shape[td];
        /* a run ends where the next-outer dimension is not laid out right above this one */
        if (td == 0 ||
            (t->shape[td - 1] != 1 && t->strides[td - 1] != tensor_numel * chunk_base_stride)) {
            while (view_d >= 0 && (view_numel < tensor_numel || shape[view_d] == 1)) {
                strides[view_d] = view_numel * chunk_base_stride;
                view_numel *= shape[view_d];
                view_d--;
            }
            if (view_numel != tensor_numel) return false;
            if (td > 0) {
                chunk_base_stride = t->strides[td - 1];
                tensor_numel = 1;
                view_numel = 1;
            }
        }
    }
    return view_d == -1;
}

lm_status lm_tensor_view(lm_tensor **out, lm_tensor *t, int ndim, const int64_t *shape) {
    *out = NULL;
    int64_t resolved[LM_MAX_DIMS], strides[LM_MAX_DIMS];
    LM_TRY(infer_shape("view", t, ndim, shape, resolved));
    if (!view_strides(t, ndim, resolved, strides)) {
        char buf[LM_SHAPE_STR_MAX];
        return lm_fail(LM_ERR_SHAPE,
                       "view: the strides of this %s tensor do not allow that shape without a "
                       "copy (use reshape or contiguous)",
                       lm_shape_str(t, buf, sizeof buf));
    }
    LM_TRY(view_of(out, t));
    (*out)->ndim = ndim;
    memcpy((*out)->shape, resolved, sizeof(int64_t) * ndim);
    memcpy((*out)->strides, strides, sizeof(int64_t) * ndim);
    return LM_OK;
}

lm_status lm_tensor_reshape(lm_tensor **out, lm_tensor *t, int ndim, const int64_t *shape) {
    *out = NULL;
    int64_t resolved[LM_MAX_DIMS], strides[LM_MAX_DIMS];
    LM_TRY(infer_shape("reshape", t, ndim, shape, resolved));
    if (view_strides(t, ndim, resolved, strides)) return lm_tensor_view(out, t, ndim, resolved);
    lm_tensor *c;
    LM_TRY(lm_contiguous(&c, t));
    lm_status s = lm_tensor_view(out, c, ndim, resolved);
    lm_tensor_release(c);
    return s;
}

lm_status lm_tensor_transpose(lm_tensor **out, lm_tensor *t, int dim0, int dim1) {
    *out = NULL;
    LM_TRY(check_dim("transpose", t, dim0));
    LM_TRY(check_dim("transpose", t, dim1));
    LM_TRY(view_of(out, t));
    lm_tensor *v = *out;
    int64_t s = v->shape[dim0], st = v->strides[dim0];
    v->shape[dim0] = v->shape[dim1];
    v->strides[dim0] = v->strides[dim1];
    v->shape[dim1] = s;
    v->strides[dim1] = st;
    return LM_OK;
}

lm_status lm_tensor_permute(lm_tensor **out, lm_tensor *t, int ndim, const int *perm) {
    *out = NULL;
    if (ndim != t->ndim)
        return lm_fail(LM_ERR_ARG, "permute: %d dimensions given for a %d-D tensor", ndim, t->ndim);
    bool seen[LM_MAX_DIMS] = {false};
    for (int d = 0; d < ndim; d++) {
        LM_TRY(check_dim("permute", t, perm[d]));
        if (seen[perm[d]])
            return lm_fail(LM_ERR_ARG, "permute: dimension %d repeated", perm[d] + 1);
        seen[perm[d]] = true;
    }
    LM_TRY(view_of(out, t));
    for (int d = 0; d < ndim; d++) {
        (*out)->shape[d] = t->shape[perm[d]];
        (*out)->strides[d] = t->strides[perm[d]];
    }
    return LM_OK;
}

lm_status lm_tensor_narrow(lm_tensor **out, lm_tensor *t, int dim, int64_t start, int64_t length) {
    *out = NULL;
    LM_TRY(check_dim("narrow", t, dim));
    if (start < 0 || length < 0 || start > t->shape[dim] || length > t->shape[dim] - start) {
        int64_t last;
        if (__builtin_add_overflow(start, length, &last))
            return lm_fail(LM_ERR_ARG,
                           "narrow: %lld elements from element %lld out of range for dimension "
                           "%d of size %lld",
                           (long long)length, (long long)start + 1, dim + 1,
                           (long long)t->shape[dim]);
        return lm_fail(LM_ERR_ARG,
                       "narrow: elements %lld to %lld out of range for dimension %d of size %lld",
                       (long long)start + 1, (long long)last, dim + 1, (long long)t->shape[dim]);
    }
    LM_TRY(view_of(out, t));
    (*out)->offset += start * t->strides[dim];
    (*out)->shape[dim] = length;
    return LM_OK;
}

lm_status lm_tensor_select(lm_tensor **out, lm_tensor *t, int dim, int64_t index) {
    *out = NULL;
    LM_TRY(check_dim("select", t, dim));
    if (index < 0 || index >= t->shape[dim])
        return lm_fail(LM_ERR_ARG, "index %lld out of range for dimension %d of size %lld",
                       (long long)index + 1, dim + 1, (long long)t->shape[dim]);
    LM_TRY(view_of(out, t));
    lm_tensor *v = *out;
    v->offset += index * t->strides[dim];
    for (int d = dim; d < t->ndim - 1; d++) {
        v->shape[d] = t->shape[d + 1];
        v->strides[d] = t->strides[d + 1];
    }
    v->ndim--;
    return LM_OK;
}

lm_status lm_tensor_expand(lm_tensor **out, lm_tensor *t, int ndim, const int64_t *shape) {
    *out = NULL;
    char buf[LM_SHAPE_STR_MAX];
    if (ndim < t->ndim || ndim > LM_MAX_DIMS)
        return lm_fail(LM_ERR_SHAPE, "expand: cannot expand a %s tensor to %d dimensions",
                       lm_shape_str(t, buf, sizeof buf), ndim);
    LM_TRY(check_shape("expand", ndim, shape));
    LM_TRY(view_of(out, t));
    lm_tensor *v = *out;
    int lead = ndim - t->ndim;
    for (int d = ndim - 1; d >= 0; d--) {
        int td = d - lead;
        if (td >= 0 && t->shape[td] == shape[d]) {
            v->shape[d] = t->shape[td];
            v->strides[d] = t->strides[td];
        } else if (td < 0 || t->shape[td] == 1) {
            v->shape[d] = shape[d];
            v->strides[d] = 0;
        } else {
            lm_tensor_release(v);
            *out = NULL;
            return lm_fail(LM_ERR_SHAPE,
                           "expand: size %lld of dimension %d cannot become %lld (shape %s)",
                           (long long)t->shape[td], td + 1, (long long)shape[d],
                           lm_shape_str(t, buf, sizeof buf));
        }
    }
    v->ndim = ndim;
    return LM_OK;
}

lm_status lm_tensor_unsqueeze(lm_tensor **out, lm_tensor *t, int dim) {
    *out = NULL;
    if (dim < 0 || dim > t->ndim || t->ndim == LM_MAX_DIMS)
        return lm_fail(LM_ERR_ARG, "unsqueeze: dimension %d out of range for a %d-D tensor",
                       dim + 1, t->ndim);
    LM_TRY(view_of(out, t));
    lm_tensor *v = *out;
    for (int d = t->ndim; d > dim; d--) {
        v->shape[d] = t->shape[d - 1];
        v->strides[d] = t->strides[d - 1];
    }
    v->shape[dim] = 1;
    v->strides[dim] = dim < t->ndim ? t->strides[dim] * t->shape[dim] : 1;
    v->ndim++;
    return LM_OK;
}

lm_status lm_tensor_squeeze(lm_tensor **out, lm_tensor *t, int dim) {
    *out = NULL;
    if (dim >= 0) LM_TRY(check_dim("squeeze", t, dim));
    LM_TRY(view_of(out, t));
    lm_tensor *v = *out;
    int n = 0;
    for (int d = 0; d < t->ndim; d++) {
        bool drop = t->shape[d] == 1 && (dim < 0 || d == dim);
        if (drop) continue;
        v->shape[n] = t->shape[d];
        v->strides[n] = t->strides[d];
        n++;
    }
    v->ndim = n;
    return LM_OK;
}

lm_status lm_broadcast_shape(const char *op, const lm_tensor *a, const lm_tensor *b, int *ndim,
                             int64_t *shape) {
    int n = a->ndim > b->ndim ? a->ndim : b->ndim;
    for (int d = 0; d < n; d++) {
        int da = d - (n - a->ndim), db = d - (n - b->ndim);
        int64_t sa = da >= 0 ? a->shape[da] : 1, sb = db >= 0 ? b->shape[db] : 1;
        if (sa != sb && sa != 1 && sb != 1) {
            char ba[LM_SHAPE_STR_MAX], bb[LM_SHAPE_STR_MAX];
            return lm_fail(LM_ERR_SHAPE,
                           "%s: shapes %s and %s cannot be broadcast (dimension %d: %lld vs %lld)",
                           op, lm_shape_str(a, ba, sizeof ba), lm_shape_str(b, bb, sizeof bb),
                           d + 1, (long long)sa, (long long)sb);
        }
        shape[d] = sa == 1 ? sb : sa;
    }
    *ndim = n;
    return LM_OK;
}
