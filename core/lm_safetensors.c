/* Writing safetensors files (lm_safetensors.h): whole, or streamed a batch
 * of rows at a time; atomically either way. Reading is in
 * lm_safetensors_read.c. */
#include "lm_safetensors.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lm_atomic_file.h"
#include "lm_half.h"
#include "lm_names.h"
#include "lm_ops.h"
#include "lm_utf8.h"

/* ---- writing ------------------------------------------------------------------------- */

typedef struct {
    char *s;
    size_t len, cap;
    bool failed;
} strbuf;

static void sb_put(strbuf *b, const char *s, size_t n) {
    if (b->failed) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = (b->cap + n + 1) * 2;
        char *p = realloc(b->s, cap);
        if (!p) {
            b->failed = true;
            return;
        }
        b->s = p;
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = 0;
}

static void sb_str(strbuf *b, const char *s) {
    sb_put(b, s, strlen(s));
}

static void sb_json_string(strbuf *b, const char *s) {
    sb_str(b, "\"");
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            sb_put(b, esc, 2);
        } else if (c < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            sb_str(b, esc);
        } else {
            sb_put(b, (const char *)&c, 1);
        }
    }
    sb_str(b, "\"");
}

static lm_status check_names(const char *what, const char *const *names, int count) {
    for (int i = 0; i < count; i++) {
        if (!names[i] || !names[i][0] || strcmp(names[i], "__metadata__") == 0)
            return lm_fail(LM_ERR_ARG, "%s: tensor %d has an invalid name", what, i + 1);
        if (!lm_utf8_valid(names[i]))
            return lm_fail(LM_ERR_ARG, "%s: the name of tensor %d is not UTF-8 text", what, i + 1);
    }
    const char *dup;
    LM_TRY(lm_names_duplicate(names, (size_t)count, &dup));
    if (dup) return lm_fail(LM_ERR_ARG, "%s: the name '%s' is used twice", what, dup);
    return LM_OK;
}

static lm_status check_metadata(const lm_string_pair *metadata, int count) {
    for (int i = 0; i < count; i++)
        if (!lm_utf8_valid(metadata[i].key) || !lm_utf8_valid(metadata[i].value))
            return lm_fail(LM_ERR_ARG, "save: metadata %d is not UTF-8 text", i + 1);
    return LM_OK;
}

/* The JSON header for `specs`, padded so the data start 8-byte aligned;
 * offsets[i] receives where tensor i's data begin (relative to the data). */
/* How a tensor of `dtype` is stored under `format`: its dtype name in the
 * header and its bytes per element. int32 and uint8 tensors are always stored
 * as I32 and U8. */
static const char *stored_dtype(lm_dtype dtype, lm_float_format format, int *size) {
    if (dtype == LM_INT32) return *size = 4, "I32";
    if (dtype == LM_UINT8) return *size = 1, "U8";
    switch (format) {
    case LM_STORE_FLOAT16:
        return *size = 2, "F16";
    case LM_STORE_BFLOAT16:
        return *size = 2, "BF16";
    case LM_STORE_FLOAT32:
        break;
    }
    return *size = 4, "F32";
}

static lm_status build_header(const char *what, strbuf *h, const lm_tensor_spec *specs, int count,
                              const lm_string_pair *metadata, int metadata_count,
                              lm_float_format format, uint64_t *offsets) {
    char num[64];
    sb_str(h, "{");
    if (metadata_count > 0) {
        sb_str(h, "\"__metadata__\":{");
        for (int i = 0; i < metadata_count; i++) {
            if (i) sb_str(h, ",");
            sb_json_string(h, metadata[i].key);
            sb_str(h, ":");
            sb_json_string(h, metadata[i].value);
        }
        sb_str(h, "}");
    }
    uint64_t offset = 0;
    for (int i = 0; i < count; i++) {
        const lm_tensor_spec *t = &specs[i];
        if (i || metadata_count > 0) sb_str(h, ",");
        sb_json_string(h, t->name);
        int elem = 4;
        const char *dtype = stored_dtype(t->dtype, format, &elem);
        snprintf(num, sizeof num, ":{\"dtype\":\"%s\",\"shape\":[", dtype);
        sb_str(h, num);
        uint64_t numel = 1;
        for (int d = 0; d < t->ndim; d++) {
            snprintf(num, sizeof num, d ? ",%lld" : "%lld", (long long)t->shape[d]);
            sb_str(h, num);
            numel *= (uint64_t)t->shape[d];
        }
        uint64_t bytes = numel * (uint64_t)elem;
        snprintf(num, sizeof num, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)offset,
                 (unsigned long long)(offset + bytes));
        sb_str(h, num);
        if (offsets) offsets[i] = offset;
        offset += bytes;
    }
    sb_str(h, "}");
    while (!h->failed && h->len % 8) sb_str(h, " "); /* data starts 8-byte aligned */
    lm_status s = LM_OK;
    if (h->failed)
        s = lm_fail(LM_ERR_MEMORY, "%s: out of memory building the header", what);
    else if (h->len > LM_SAFETENSORS_MAX_HEADER) /* readers would refuse the file */
        s = lm_fail(LM_ERR_ARG,
                    "%s: the header (names, shapes and metadata) would take %zu bytes, over the "
                    "format's limit of %u; nothing was written",
                    what, h->len, LM_SAFETENSORS_MAX_HEADER);
    if (s != LM_OK) {
        free(h->s);
        h->s = NULL;
    }
    return s;
}

static bool write_header(FILE *fp, const strbuf *h) {
    unsigned char len8[8];
    for (int k = 0; k < 8; k++) len8[k] = (unsigned char)((uint64_t)h->len >> (8 * k));
    return fwrite(len8, 1, 8, fp) == 8 && fwrite(h->s, 1, h->len, fp) == h->len;
}

/* A copy of t's elements in row-major order in *copy (free it after use). */
static lm_status host_copy(lm_tensor *t, const char *name, void **copy) {
    size_t n = (size_t)lm_tensor_numel(t) * lm_dtype_size(t->dtype);
    *copy = malloc(n ? n : 1);
    if (!*copy) return lm_fail(LM_ERR_MEMORY, "safetensors: out of memory copying '%s'", name);
    lm_status s = lm_to_host(t, *copy);
    if (s != LM_OK) {
        free(*copy);
        *copy = NULL;
    }
    return s;
}

/* The bytes of `t` in row-major order: its own memory when it is a
 * contiguous CPU tensor, else a copy in *scratch (free it after use). */
static lm_status host_bytes(lm_tensor *t, const char *name, const void **bytes, void **scratch) {
    *scratch = NULL;
    if (t->storage->device == LM_CPU && lm_tensor_is_contiguous(t)) {
        *bytes = lm_tensor_data(t);
        return LM_OK;
    }
    LM_TRY(host_copy(t, name, scratch));
    *bytes = *scratch;
    return LM_OK;
}

/* Narrows n float32 values to 16-bit little-endian halves in place (the
 * 2-byte results overwrite the front of the same buffer, read ahead of it). */
static void narrow_floats(void *data, size_t n, lm_float_format format) {
    const float *f = data;
    unsigned char *out = data;
    for (size_t i = 0; i < n; i++) {
        uint16_t h = format == LM_STORE_BFLOAT16 ? lm_f32_to_bf16(f[i]) : lm_f32_to_f16(f[i]);
        out[2 * i] = (unsigned char)h, out[2 * i + 1] = (unsigned char)(h >> 8);
    }
}

lm_status lm_safetensors_save(const char *path, const lm_named_tensor *tensors, int count,
                              const lm_string_pair *metadata, int metadata_count) {
    return lm_safetensors_save_as(path, tensors, count, metadata, metadata_count, LM_STORE_FLOAT32);
}

lm_status lm_safetensors_save_as(const char *path, const lm_named_tensor *tensors, int count,
                                 const lm_string_pair *metadata, int metadata_count,
                                 lm_float_format format) {
    lm_tensor_spec *specs = calloc(count ? count : 1, sizeof *specs);
    const char **names = calloc(count ? count : 1, sizeof *names);
    if (!specs || !names) {
        free(specs);
        free(names);
        return lm_fail(LM_ERR_MEMORY, "save: out of memory");
    }
    for (int i = 0; i < count; i++) {
        const lm_tensor *t = tensors[i].tensor;
        names[i] = tensors[i].name;
        specs[i].name = tensors[i].name;
        specs[i].dtype = t->dtype;
        specs[i].ndim = t->ndim;
        memcpy(specs[i].shape, t->shape, sizeof t->shape);
    }
    strbuf h = {0};
    lm_status s = check_names("save", names, count);
    if (s == LM_OK) s = check_metadata(metadata, metadata_count);
    if (s == LM_OK)
        s = build_header("save", &h, specs, count, metadata, metadata_count, format, NULL);
    free(specs);
    free(names);
    if (s != LM_OK) return s;

    lm_atomic_file f;
    s = lm_atomic_open(&f, path);
    if (s != LM_OK) {
        free(h.s);
        return s;
    }
    FILE *fp = f.fp;
    bool ok = write_header(fp, &h);
    free(h.s);
    for (int i = 0; ok && i < count; i++) {
        lm_tensor *t = tensors[i].tensor;
        size_t bytes = (size_t)lm_tensor_numel(t) * lm_dtype_size(t->dtype);
        if (!bytes) continue;
        const void *data = NULL;
        void *scratch = NULL;
        int elem = 4;
        stored_dtype(t->dtype, format, &elem);
        bool narrow = elem != (int)lm_dtype_size(t->dtype); /* float32 as 16-bit halves */
        s = narrow ? host_copy(t, tensors[i].name, &scratch)
                   : host_bytes(t, tensors[i].name, &data, &scratch);
        if (s != LM_OK) break;
        if (narrow) {
            narrow_floats(scratch, bytes / 4, format);
            data = scratch;
            bytes /= 2;
        }
        ok = fwrite(data, 1, bytes, fp) == bytes;
        free(scratch);
    }
    if (s == LM_OK && !ok)
        s = lm_fail(LM_ERR_IO, "save: writing '%s' failed: %s", path, strerror(errno));
    if (s != LM_OK) {
        lm_atomic_abort(&f);
        return s;
    }
    return lm_atomic_commit(&f);
}

/* ---- streaming writer ------------------------------------------------------------------ */

struct lm_safetensors_writer {
    lm_atomic_file file;
    int count;
    lm_tensor_spec *specs;
    char **names;
    uint64_t data_start, *offsets, *row_bytes;
    int64_t *rows_written;
};

static void writer_free(lm_safetensors_writer *w) {
    for (int i = 0; i < w->count; i++) free(w->names[i]);
    free(w->names);
    free(w->specs);
    free(w->offsets);
    free(w->row_bytes);
    free(w->rows_written);
    free(w);
}

lm_status lm_safetensors_writer_open(lm_safetensors_writer **out, const char *path,
                                     const lm_tensor_spec *specs, int count) {
    *out = NULL;
    lm_safetensors_writer *w = calloc(1, sizeof *w);
    if (!w) return lm_fail(LM_ERR_MEMORY, "safetensors writer: out of memory");
    size_t n = count ? (size_t)count : 1;
    w->specs = calloc(n, sizeof *w->specs);
    w->names = calloc(n, sizeof *w->names);
    w->offsets = calloc(n, sizeof *w->offsets);
    w->row_bytes = calloc(n, sizeof *w->row_bytes);
    w->rows_written = calloc(n, sizeof *w->rows_written);
    lm_status s = LM_OK;
    if (!w->specs || !w->names || !w->offsets || !w->row_bytes || !w->rows_written)
        s = lm_fail(LM_ERR_MEMORY, "safetensors writer: out of memory");
    for (int i = 0; s == LM_OK && i < count; i++) {
        w->specs[i] = specs[i];
        if (specs[i].name) {
            size_t len = strlen(specs[i].name) + 1;
            w->names[i] = malloc(len);
            if (!w->names[i]) {
                s = lm_fail(LM_ERR_MEMORY, "safetensors writer: out of memory");
                break;
            }
            memcpy(w->names[i], specs[i].name, len);
        }
        w->specs[i].name = w->names[i];
        w->count = i + 1;
        if (specs[i].ndim < 1 || specs[i].ndim > LM_MAX_DIMS)
            s = lm_fail(LM_ERR_ARG, "safetensors writer: '%s' needs 1 to %d dimensions, got %d",
                        specs[i].name ? specs[i].name : "?", LM_MAX_DIMS, specs[i].ndim);
        uint64_t row = lm_dtype_size(specs[i].dtype);
        for (int d = 0; s == LM_OK && d < specs[i].ndim; d++) {
            if (specs[i].shape[d] < 0)
                s = lm_fail(LM_ERR_ARG, "safetensors writer: '%s' has a negative size",
                            specs[i].name);
            if (d > 0) row *= (uint64_t)specs[i].shape[d];
        }
        w->row_bytes[i] = row;
    }
    if (s == LM_OK) s = check_names("safetensors writer", (const char *const *)w->names, count);
    strbuf h = {0};
    if (s == LM_OK)
        s = build_header("safetensors writer", &h, w->specs, count, NULL, 0, LM_STORE_FLOAT32,
                         w->offsets);
    if (s == LM_OK) {
        s = lm_atomic_open(&w->file, path);
        if (s == LM_OK && !write_header(w->file.fp, &h)) {
            s = lm_fail(LM_ERR_IO, "safetensors writer: writing '%s' failed: %s", path,
                        strerror(errno));
            lm_atomic_abort(&w->file);
        }
    }
    w->data_start = 8 + h.len;
    free(h.s);
    if (s != LM_OK) {
        writer_free(w);
        return s;
    }
    *out = w;
    return LM_OK;
}

static void shape_text(char *buf, size_t size, int ndim, const int64_t *shape) {
    size_t at = (size_t)snprintf(buf, size, "[");
    for (int d = 0; d < ndim && at < size; d++)
        at += (size_t)snprintf(buf + at, size - at, d ? ", %lld" : "%lld", (long long)shape[d]);
    if (at < size) snprintf(buf + at, size - at, "]");
}

lm_status lm_safetensors_writer_append(lm_safetensors_writer *w, int index, const lm_tensor *rows) {
    if (index < 0 || index >= w->count)
        return lm_fail(LM_ERR_ARG, "safetensors writer: no tensor number %d", index + 1);
    const lm_tensor_spec *sp = &w->specs[index];
    bool fits = rows->dtype == sp->dtype && rows->ndim == sp->ndim;
    for (int d = 1; fits && d < sp->ndim; d++) fits = rows->shape[d] == sp->shape[d];
    if (!fits) {
        char want[160], got[160];
        shape_text(want, sizeof want, sp->ndim - 1, sp->shape + 1);
        shape_text(got, sizeof got, rows->ndim, rows->shape);
        return lm_fail(
            LM_ERR_SHAPE,
            "safetensors writer: '%s' takes %s rows of shape %s, got a %s tensor of shape %s",
            sp->name, lm_dtype_name(sp->dtype), want, lm_dtype_name(rows->dtype), got);
    }
    int64_t n = rows->shape[0];
    if (w->rows_written[index] + n > sp->shape[0])
        return lm_fail(LM_ERR_SHAPE,
                       "safetensors writer: '%s' has %lld rows, %lld more would make %lld",
                       sp->name, (long long)sp->shape[0], (long long)n,
                       (long long)(w->rows_written[index] + n));
    size_t bytes = (size_t)n * w->row_bytes[index];
    if (!bytes) return LM_OK;
    const void *data = NULL;
    void *scratch = NULL;
    LM_TRY(host_bytes((lm_tensor *)rows, sp->name, &data, &scratch));
    FILE *fp = w->file.fp;
    off_t at = (off_t)(w->data_start + w->offsets[index] +
                       (uint64_t)w->rows_written[index] * w->row_bytes[index]);
    bool ok = fseeko(fp, at, SEEK_SET) == 0 && fwrite(data, 1, bytes, fp) == bytes;
    free(scratch);
    if (!ok)
        return lm_fail(LM_ERR_IO, "safetensors writer: writing '%s' failed: %s", w->file.final_path,
                       strerror(errno));
    w->rows_written[index] += n;
    return LM_OK;
}

lm_status lm_safetensors_writer_close(lm_safetensors_writer **wp) {
    lm_safetensors_writer *w = *wp;
    for (int i = 0; i < w->count; i++)
        if (w->rows_written[i] != w->specs[i].shape[0])
            return lm_fail(
                LM_ERR_STATE,
                "safetensors writer: '%s' has %lld of its %lld rows; nothing was written",
                w->specs[i].name, (long long)w->rows_written[i], (long long)w->specs[i].shape[0]);
    /* regions follow each other, so the data end where the last one ends:
     * make the file that long even when trailing tensors are empty */
    uint64_t end = w->data_start;
    if (w->count > 0)
        end += w->offsets[w->count - 1] +
               (uint64_t)w->specs[w->count - 1].shape[0] * w->row_bytes[w->count - 1];
    FILE *fp = w->file.fp;
    lm_status s = LM_OK;
    if (fflush(fp) != 0 || ftruncate(fileno(fp), (off_t)end) != 0) {
        s = lm_fail(LM_ERR_IO, "safetensors writer: finishing '%s' failed: %s", w->file.final_path,
                    strerror(errno));
        lm_atomic_abort(&w->file);
    } else {
        s = lm_atomic_commit(&w->file); /* removes the temporary file when it fails */
    }
    /* an I/O failure leaves no file to finish: the writer ends either way */
    writer_free(w);
    *wp = NULL;
    return s;
}

void lm_safetensors_writer_abort(lm_safetensors_writer *w) {
    if (!w) return;
    lm_atomic_abort(&w->file);
    writer_free(w);
}
