/* Creation, copies and conversions between dtypes and devices. */
#include <string.h>

#include "lm_ops.h"

/* A byte holds 0..255 and an int32 -2^31..2^31-1: a fill outside (or NaN)
 * is an error, as in PyTorch; fractions are truncated toward zero. */
static lm_status check_fill(const char *op, lm_dtype dtype, double value) {
    if (dtype == LM_UINT8 && !(value >= 0 && value < 256))
        return lm_fail(LM_ERR_ARG, "%s: %g does not fit in uint8 (0 to 255)", op, value);
    if (dtype == LM_INT32 && !(value > -2147483649.0 && value < 2147483648.0))
        return lm_fail(LM_ERR_ARG, "%s: %g does not fit in int32 (-2147483648 to 2147483647)", op,
                       value);
    return LM_OK;
}

lm_status lm_full(lm_tensor **out, lm_dtype dtype, lm_device device, int ndim, const int64_t *shape,
                  double value) {
    *out = NULL;
    const lm_backend *be = lm_backend_get(device);
    if (!be) return LM_ERR_DEVICE;
    LM_TRY(check_fill("full", dtype, value));
    LM_TRY(lm_tensor_new(out, dtype, device, ndim, shape));
    lm_status s = be->fill(*out, value);
    if (s != LM_OK) {
        lm_tensor_release(*out);
        *out = NULL;
    }
    return s;
}

lm_status lm_arange(lm_tensor **out, lm_dtype dtype, double start, double step, int64_t count) {
    *out = NULL;
    if (count < 0) return lm_fail(LM_ERR_ARG, "arange: negative number of elements");
    if (dtype == LM_UINT8) return lm_fail(LM_ERR_ARG, "arange: makes float32 or int32 tensors");
    if (count > 0 && dtype == LM_INT32) { /* the values run from the first to the last */
        LM_TRY(check_fill("arange", dtype, start));
        LM_TRY(check_fill("arange", dtype, start + step * (double)(count - 1)));
    }
    LM_TRY(lm_tensor_new(out, dtype, LM_CPU, 1, &count));
    for (int64_t i = 0; i < count; i++) {
        double v = start + step * (double)i;
        if (dtype == LM_INT32)
            lm_tensor_i32(*out)[i] = (int32_t)v;
        else
            lm_tensor_f32(*out)[i] = (float)v;
    }
    return LM_OK;
}

lm_status lm_from_host(lm_tensor **out, lm_dtype dtype, int ndim, const int64_t *shape,
                       const void *data) {
    LM_TRY(lm_tensor_new(out, dtype, LM_CPU, ndim, shape));
    memcpy(lm_tensor_data(*out), data, (size_t)lm_tensor_numel(*out) * lm_dtype_size(dtype));
    return LM_OK;
}

lm_status lm_copy_(lm_tensor *dst, const lm_tensor *src) {
    if (dst->storage->device != src->storage->device) { /* through a copy on dst's device */
        lm_tensor *moved;
        LM_TRY(lm_to_device(&moved, (lm_tensor *)src, dst->storage->device));
        lm_status s = lm_copy_(dst, moved);
        lm_tensor_release(moved);
        return s;
    }
    const lm_backend *be = lm_backend_of(dst);
    if (!be) return LM_ERR_DEVICE;
    lm_tensor *expanded;
    LM_TRY(lm_tensor_expand(&expanded, (lm_tensor *)src, dst->ndim, dst->shape));
    lm_status s = be->copy(dst, expanded);
    lm_tensor_release(expanded);
    return s;
}

lm_status lm_fill_(lm_tensor *dst, double value) {
    const lm_backend *be = lm_backend_of(dst);
    if (!be) return LM_ERR_DEVICE;
    LM_TRY(check_fill("fill_", dst->dtype, value));
    return be->fill(dst, value);
}

lm_status lm_clone(lm_tensor **out, const lm_tensor *t) {
    *out = NULL;
    const lm_backend *be = lm_backend_of(t);
    if (!be) return LM_ERR_DEVICE;
    LM_TRY(lm_tensor_new_like(out, t));
    lm_status s = be->copy(*out, t);
    if (s != LM_OK) {
        lm_tensor_release(*out);
        *out = NULL;
    }
    return s;
}

lm_status lm_contiguous(lm_tensor **out, lm_tensor *t) {
    if (lm_tensor_is_contiguous(t)) {
        *out = lm_tensor_retain(t);
        return LM_OK;
    }
    return lm_clone(out, t);
}

lm_status lm_to_dtype(lm_tensor **out, lm_tensor *t, lm_dtype dtype) {
    if (t->dtype == dtype) {
        *out = lm_tensor_retain(t);
        return LM_OK;
    }
    const lm_backend *be = lm_backend_of(t);
    if (!be) return LM_ERR_DEVICE;
    LM_TRY(lm_tensor_new(out, dtype, t->storage->device, t->ndim, t->shape));
    lm_status s = be->copy(*out, t);
    if (s != LM_OK) {
        lm_tensor_release(*out);
        *out = NULL;
    }
    return s;
}

lm_status lm_to_device(lm_tensor **out, lm_tensor *t, lm_device device) {
    *out = NULL;
    if (t->storage->device == device) {
        *out = lm_tensor_retain(t);
        return LM_OK;
    }
    const lm_backend *source = lm_backend_of(t), *target = lm_backend_get(device);
    if (!source || !target) return LM_ERR_DEVICE;
    lm_tensor *src;
    LM_TRY(lm_contiguous(&src, t));
    lm_status s = lm_tensor_new(out, t->dtype, device, t->ndim, t->shape);
    if (s == LM_OK) {
        /* exactly one side is the CPU, whose memory is the host's */
        if (device == LM_CPU)
            s = source->download(lm_tensor_data(*out), src);
        else
            s = target->upload(*out, lm_tensor_data(src));
    }
    lm_tensor_release(src);
    if (s != LM_OK && *out) {
        lm_tensor_release(*out);
        *out = NULL;
    }
    return s;
}

lm_status lm_to_host(const lm_tensor *t, void *host) {
    const lm_backend *be = lm_backend_of(t);
    if (!be) return LM_ERR_DEVICE;
    lm_tensor *c;
    LM_TRY(lm_contiguous(&c, (lm_tensor *)t));
    lm_status s = be->download(host, c);
    lm_tensor_release(c);
    return s;
}

lm_status lm_get_element(const lm_tensor *t, int64_t index, double *value) {
    int64_t numel = lm_tensor_numel(t);
    if (index < 0 || index >= numel)
        return lm_fail(LM_ERR_ARG, "element %lld out of range for %lld elements",
                       (long long)index + 1, (long long)numel);
    int64_t off = 0;
    for (int d = t->ndim - 1; d >= 0; d--) {
        off += (index % t->shape[d]) * t->strides[d];
        index /= t->shape[d];
    }
    if (t->storage->device == LM_CPU) {
        *value = lm_tensor_load(t, off);
        return LM_OK;
    }
    const lm_backend *be = lm_backend_of(t);
    if (!be) return LM_ERR_DEVICE;
    lm_tensor one = *t; /* a 0-D view of that element */
    one.ndim = 0;
    one.offset += off;
    int32_t bits;
    LM_TRY(be->download(&bits, &one));
    float f;
    memcpy(&f, &bits, sizeof f);
    *value = t->dtype == LM_INT32 ? bits : f;
    return LM_OK;
}

lm_status lm_cat(lm_tensor **out, int n, lm_tensor *const *ts, int dim) {
    *out = NULL;
    if (n < 1) return lm_fail(LM_ERR_ARG, "cat: needs at least one tensor");
    const lm_tensor *first = ts[0];
    if (dim < 0 || dim >= first->ndim)
        return lm_fail(LM_ERR_ARG, "cat: dimension %d out of range for %d-D tensors", dim + 1,
                       first->ndim);
    int64_t shape[LM_MAX_DIMS];
    for (int d = 0; d < first->ndim; d++) shape[d] = first->shape[d];
    shape[dim] = 0;
    for (int k = 0; k < n; k++) {
        const lm_tensor *t = ts[k];
        char a[LM_SHAPE_STR_MAX], b[LM_SHAPE_STR_MAX];
        bool ok = t->ndim == first->ndim;
        for (int d = 0; ok && d < t->ndim; d++) ok = d == dim || t->shape[d] == first->shape[d];
        if (!ok)
            return lm_fail(LM_ERR_SHAPE, "cat: tensor %d has shape %s, tensor 1 has %s", k + 1,
                           lm_shape_str(t, a, sizeof a), lm_shape_str(first, b, sizeof b));
        if (t->storage->device != first->storage->device)
            return lm_fail(LM_ERR_DEVICE, "cat: tensor %d is on %s, tensor 1 on %s", k + 1,
                           lm_device_name(t->storage->device),
                           lm_device_name(first->storage->device));
        if (t->dtype != first->dtype)
            return lm_fail(LM_ERR_ARG, "cat: tensor %d is %s, tensor 1 %s", k + 1,
                           lm_dtype_name(t->dtype), lm_dtype_name(first->dtype));
        shape[dim] += t->shape[dim];
    }
    const lm_backend *be = lm_backend_of(first);
    if (!be) return LM_ERR_DEVICE;
    LM_TRY(lm_tensor_new(out, first->dtype, first->storage->device, first->ndim, shape));
    int64_t start = 0;
    lm_status s = LM_OK;
    for (int k = 0; k < n && s == LM_OK; k++) {
        lm_tensor *part;
        s = lm_tensor_narrow(&part, *out, dim, start, ts[k]->shape[dim]);
        if (s == LM_OK) s = be->copy(part, ts[k]);
        lm_tensor_release(part);
        start += ts[k]->shape[dim];
    }
    if (s != LM_OK) {
        lm_tensor_release(*out);
        *out = NULL;
    }
    return s;
}

lm_status lm_check_index_range(const char *op, const char *what, const char *unit,
                               const lm_tensor *idx, int64_t limit) {
    lm_tensor *lo, *hi;
    LM_TRY(lm_reduce(&lo, NULL, LM_MIN, (lm_tensor *)idx, -1, false));
    lm_status s = lm_reduce(&hi, NULL, LM_MAX, (lm_tensor *)idx, -1, false);
    double vlo = 0, vhi = 0;
    if (s == LM_OK) {
        lm_get_element(lo, 0, &vlo);
        lm_get_element(hi, 0, &vhi);
        lm_tensor_release(hi);
    }
    lm_tensor_release(lo);
    LM_TRY(s);
    /* the values are shown as the user gave them, 1-based; a 0 is most likely a 0-based index */
    if (vlo < 0 || vhi >= limit) {
        int shown = (int)(vlo < 0 ? vlo : vhi) + 1;
        return lm_fail(LM_ERR_ARG, "%s: %s %d out of range for %lld %s%s", op, what, shown,
                       (long long)limit, unit,
                       shown == 0 ? " (Lumen's indices are 1-based: add 1 to 0-based ones)" : "");
    }
    return LM_OK;
}

lm_status lm_index_select_into(lm_tensor *out, lm_tensor *x, lm_tensor *idx) {
    char a[LM_SHAPE_STR_MAX], b[LM_SHAPE_STR_MAX];
    if (idx->dtype != LM_INT32 || idx->ndim != 1)
        return lm_fail(LM_ERR_ARG, "index_select: indices must be a 1-D int32 tensor");
    if (x->ndim < 1) return lm_fail(LM_ERR_ARG, "index_select: cannot index a 0-D tensor");
    bool ok = out->ndim == x->ndim && out->shape[0] == idx->shape[0] && out->dtype == x->dtype &&
              lm_tensor_is_contiguous(out);
    for (int d = 1; ok && d < x->ndim; d++) ok = out->shape[d] == x->shape[d];
    if (!ok)
        return lm_fail(LM_ERR_SHAPE, "index_select: output %s does not fit %lld rows of %s",
                       lm_shape_str(out, a, sizeof a), (long long)idx->shape[0],
                       lm_shape_str(x, b, sizeof b));
    if (out->storage->device != x->storage->device)
        return lm_fail(LM_ERR_DEVICE, "index_select: output is on %s, input on %s",
                       lm_device_name(out->storage->device), lm_device_name(x->storage->device));
    const lm_backend *be = lm_backend_of(x);
    if (!be) return LM_ERR_DEVICE;
    /* rows are often chosen on the host: an index elsewhere is copied to x's device */
    lm_tensor *ix;
    LM_TRY(lm_to_device(&ix, idx, x->storage->device));
    lm_status s = LM_OK;
    if (ix->shape[0] > 0)
        s = lm_check_index_range("index_select", "index", "rows", ix, x->shape[0]);
    lm_tensor *xc = NULL;
    if (s == LM_OK) s = lm_contiguous(&xc, x);
    if (s == LM_OK) {
        out->storage->version++;
        s = be->index_select(out, xc, ix);
    }
    lm_tensor_release(xc);
    lm_tensor_release(ix);
    return s;
}

lm_status lm_index_select(lm_tensor **out, lm_tensor *x, lm_tensor *idx) {
    *out = NULL;
    if (x->ndim < 1) return lm_fail(LM_ERR_ARG, "index_select: cannot index a 0-D tensor");
    int64_t shape[LM_MAX_DIMS];
    for (int d = 0; d < x->ndim; d++) shape[d] = x->shape[d];
    shape[0] = idx->ndim == 1 ? idx->shape[0] : 0;
    LM_TRY(lm_tensor_new(out, x->dtype, x->storage->device, x->ndim, shape));
    lm_status s = lm_index_select_into(*out, x, idx);
    if (s != LM_OK) {
        lm_tensor_release(*out);
        *out = NULL;
    }
    return s;
}

lm_status lm_topk(lm_tensor **values, lm_tensor **indices, lm_tensor *x, int64_t k, bool largest) {
    *values = *indices = NULL;
    char b[LM_SHAPE_STR_MAX];
    if (x->dtype != LM_FLOAT32 || x->ndim != 2)
        return lm_fail(LM_ERR_ARG, "topk: needs a 2-D float32 tensor, got %s %s",
                       lm_dtype_name(x->dtype), lm_shape_str(x, b, sizeof b));
    if (k < 1 || k > x->shape[1])
        return lm_fail(LM_ERR_ARG, "topk: k = %lld out of range for rows of %lld", (long long)k,
                       (long long)x->shape[1]);
    int64_t shape[2] = {x->shape[0], k};
    const lm_backend *be = lm_backend_of(x);
    if (!be) return LM_ERR_DEVICE;
    lm_tensor *xc;
    LM_TRY(lm_contiguous(&xc, x));
    lm_status s = lm_tensor_new(values, LM_FLOAT32, x->storage->device, 2, shape);
    if (s == LM_OK) s = lm_tensor_new(indices, LM_INT32, x->storage->device, 2, shape);
    if (s == LM_OK) s = be->topk(*values, *indices, xc, k, largest);
    lm_tensor_release(xc);
    if (s != LM_OK) {
        lm_tensor_release(*values);
        lm_tensor_release(*indices);
        *values = *indices = NULL;
    }
    return s;
}
