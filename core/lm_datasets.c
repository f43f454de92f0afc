#include "lm_datasets.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lm_alloc.h"
#include "lm_gz.h"
#include "lm_ops.h"

/* Reads exactly n bytes; a short read is a truncated file. */
static lm_status read_exact(lm_gz *f, const char *path, void *buf, size_t n, const char *what) {
    size_t done = 0;
    while (done < n) {
        size_t got;
        LM_TRY(lm_gz_read(f, (char *)buf + done, n - done, &got));
        if (got == 0)
            return lm_fail(LM_ERR_FORMAT,
                           "'%s' is truncated: the %s needs %zu bytes, the file has %zu", path,
                           what, n, done);
        done += got;
    }
    return LM_OK;
}

/* Nothing may follow the data; reading on also checks a gzip file's
 * trailer (its check sum and length) and what comes after it. */
static lm_status expect_end(lm_gz *f, const char *path) {
    char extra;
    size_t got;
    LM_TRY(lm_gz_read(f, &extra, 1, &got));
    if (got > 0)
        return lm_fail(LM_ERR_FORMAT, "'%s' has more data than its header describes", path);
    return LM_OK;
}

lm_status lm_data_set_new(lm_tensor **out, lm_dtype dtype, int ndim, const int64_t *shape) {
    LM_TRY(lm_tensor_new(out, dtype, LM_CPU, ndim, shape));
    lm_cpu_advise_huge_pages(lm_tensor_data(*out),
                             (size_t)lm_tensor_numel(*out) * lm_dtype_size(dtype));
    return LM_OK;
}

lm_status lm_idx_load(const char *path, lm_dtype dtype, double scale, int max_value,
                      lm_tensor **out) {
    *out = NULL;
    lm_gz *f;
    LM_TRY(lm_gz_open(&f, path));
    lm_status s = LM_OK;
    unsigned char magic[4];
    unsigned char *bytes = NULL;
    s = read_exact(f, path, magic, 4, "IDX header");
    if (s == LM_OK && (magic[0] != 0 || magic[1] != 0))
        s = lm_fail(LM_ERR_FORMAT, "'%s' is not an IDX file (magic number %02x%02x%02x%02x)", path,
                    magic[0], magic[1], magic[2], magic[3]);
    if (s == LM_OK && magic[2] != 0x08)
        s = lm_fail(LM_ERR_FORMAT,
                    "'%s': IDX element type 0x%02x is not supported (only unsigned "
                    "bytes, 0x08)",
                    path, magic[2]);
    int ndim = magic[3];
    if (s == LM_OK && (ndim < 1 || ndim > LM_MAX_DIMS))
        s = lm_fail(LM_ERR_FORMAT, "'%s': IDX header claims %d dimensions", path, ndim);
    int64_t shape[LM_MAX_DIMS];
    uint64_t total = 1;
    for (int d = 0; s == LM_OK && d < ndim; d++) {
        unsigned char b[4];
        s = read_exact(f, path, b, 4, "IDX header");
        if (s != LM_OK) break;
        uint32_t v = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
        shape[d] = v;
        /* checked before the product, which could wrap past 2^64 */
        if (v && total > ((uint64_t)1 << 34) / v)
            s = lm_fail(LM_ERR_FORMAT, "'%s': IDX dimensions describe over 16 GiB of data", path);
        total *= v;
        if (s == LM_OK && total > ((uint64_t)1 << 34))
            s = lm_fail(LM_ERR_FORMAT, "'%s': IDX dimensions describe over 16 GiB of data", path);
    }
    /* the data the file can hold, checked before allocating what the header
     * claims: its size when stored plainly, deflate's 1032:1 ratio when gzipped */
    if (s == LM_OK) {
        struct stat st;
        uint64_t header = 4 + 4 * (uint64_t)ndim, limit = UINT64_MAX;
        if (stat(path, &st) == 0) {
            uint64_t size = (uint64_t)st.st_size;
            limit = lm_gz_compressed(f) ? size * 1032 : (size > header ? size - header : 0);
        }
        if (total > limit)
            s = lm_fail(LM_ERR_FORMAT,
                        "'%s' is truncated: its header describes %llu bytes of data, "
                        "the file can hold at most %llu",
                        path, (unsigned long long)total, (unsigned long long)limit);
    }
    if (s == LM_OK) {
        bytes = malloc(total ? total : 1);
        if (!bytes) s = lm_fail(LM_ERR_MEMORY, "out of memory reading '%s'", path);
    }
    if (s == LM_OK) s = read_exact(f, path, bytes, total, "data");
    if (s == LM_OK) s = expect_end(f, path);
    if (s == LM_OK && max_value >= 0) {
        for (uint64_t i = 0; i < total; i++)
            if (bytes[i] > max_value) {
                s = lm_fail(LM_ERR_FORMAT,
                            "'%s': value %d at position %llu is out of range (at most %d)", path,
                            bytes[i], (unsigned long long)i + 1, max_value);
                break;
            }
    }
    if (s == LM_OK) s = lm_data_set_new(out, dtype, ndim, shape);
    if (s == LM_OK) {
        if (dtype == LM_UINT8) {
            memcpy(lm_tensor_u8(*out), bytes, (size_t)total);
        } else if (dtype == LM_INT32) {
            int32_t *o = lm_tensor_i32(*out);
            for (uint64_t i = 0; i < total; i++) o[i] = bytes[i];
        } else {
            float *o = lm_tensor_f32(*out), sc = (float)scale;
            for (uint64_t i = 0; i < total; i++) o[i] = bytes[i] * sc;
        }
    }
    free(bytes);
    lm_gz_close(f);
    return s;
}

#define CIFAR_RECORD 3073

lm_status lm_cifar_load(const char *path, lm_dtype image_dtype, lm_tensor **images,
                        lm_tensor **labels) {
    *images = *labels = NULL;
    if (image_dtype != LM_FLOAT32 && image_dtype != LM_UINT8)
        return lm_fail(LM_ERR_ARG, "CIFAR-10 images load as float32 or uint8, not %s",
                       lm_dtype_name(image_dtype));
    lm_gz *f;
    LM_TRY(lm_gz_open(&f, path));
    lm_status s = LM_OK;
    /* the record count is not in the file: read everything, then check */
    size_t cap = (size_t)10000 * CIFAR_RECORD + 1, len = 0;
    unsigned char *buf = malloc(cap);
    if (!buf) s = lm_fail(LM_ERR_MEMORY, "out of memory reading '%s'", path);
    while (s == LM_OK) {
        if (len == cap) {
            if (cap > ((size_t)1 << 32)) {
                s = lm_fail(LM_ERR_FORMAT, "'%s' is larger than 4 GiB: not a CIFAR-10 batch", path);
                break;
            }
            unsigned char *p = realloc(buf, cap * 2);
            if (!p) {
                s = lm_fail(LM_ERR_MEMORY, "out of memory reading '%s'", path);
                break;
            }
            buf = p, cap *= 2;
        }
        size_t got;
        s = lm_gz_read(f, buf + len, cap - len, &got); /* a cut or corrupt gzip stream fails */
        if (s != LM_OK || got == 0) break;
        len += got;
    }
    lm_gz_close(f);
    if (s == LM_OK && (len == 0 || len % CIFAR_RECORD != 0))
        s = lm_fail(LM_ERR_FORMAT,
                    "'%s' has %zu bytes, not a whole number of CIFAR-10 records (%d bytes each);"
                    " truncated, or not a CIFAR-10 binary batch",
                    path, len, CIFAR_RECORD);
    int64_t n = (int64_t)(len / CIFAR_RECORD);
    for (int64_t i = 0; s == LM_OK && i < n; i++)
        if (buf[i * CIFAR_RECORD] > 9)
            s = lm_fail(LM_ERR_FORMAT, "'%s': record %lld has label %d, CIFAR-10 labels are 0-9",
                        path, (long long)i + 1, buf[i * CIFAR_RECORD]);
    int64_t ishape[4] = {n, 3, 32, 32};
    if (s == LM_OK) s = lm_data_set_new(images, image_dtype, 4, ishape);
    if (s == LM_OK) s = lm_tensor_new(labels, LM_INT32, LM_CPU, 1, &n);
    if (s == LM_OK) {
        int32_t *y = lm_tensor_i32(*labels);
        for (int64_t i = 0; i < n; i++) {
            const unsigned char *r = buf + i * CIFAR_RECORD;
            y[i] = r[0];
            if (image_dtype == LM_UINT8) {
                memcpy(lm_tensor_u8(*images) + i * 3072, r + 1, 3072);
            } else {
                float *x = lm_tensor_f32(*images) + i * 3072;
                for (int k = 0; k < 3072; k++) x[k] = r[1 + k] * (1.0f / 255);
            }
        }
    } else {
        lm_tensor_release(*images);
        lm_tensor_release(*labels);
        *images = *labels = NULL;
    }
    free(buf);
    return s;
}
