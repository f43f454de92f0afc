#include "lm_safetensors.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lm_atomic_file.h"
#include "lm_half.h"
#include "lm_json.h"
#include "lm_ops.h"

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
        for (int j = 0; j < i; j++)
            if (strcmp(names[i], names[j]) == 0)
                return lm_fail(LM_ERR_ARG, "%s: the name '%s' is used twice", what, names[i]);
    }
    return LM_OK;
}

/* The JSON header for `specs`, padded so the data start 8-byte aligned;
 * offsets[i] receives where tensor i's data begin (relative to the data). */
/* How a tensor of `dtype` is stored under `format`: its dtype name in the
 * header and its bytes per element. int32 tensors are always stored as I32. */
static const char *stored_dtype(lm_dtype dtype, lm_float_format format, int *size) {
    if (dtype == LM_INT32) return *size = 4, "I32";
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

static lm_status build_header(strbuf *h, const lm_tensor_spec *specs, int count,
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
    if (h->failed) {
        free(h->s);
        h->s = NULL;
        return lm_fail(LM_ERR_MEMORY, "safetensors: out of memory building the header");
    }
    return LM_OK;
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
        *bytes = lm_tensor_f32(t);
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
    if (s == LM_OK) s = build_header(&h, specs, count, metadata, metadata_count, format, NULL);
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
        s = elem == 4 ? host_bytes(t, tensors[i].name, &data, &scratch)
                      : host_copy(t, tensors[i].name, &scratch);
        if (s != LM_OK) break;
        if (elem != 4) {
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
    if (s == LM_OK) s = build_header(&h, w->specs, count, NULL, 0, LM_STORE_FLOAT32, w->offsets);
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

lm_status lm_safetensors_writer_close(lm_safetensors_writer *w) {
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
    if (fflush(fp) != 0 || ftruncate(fileno(fp), (off_t)end) != 0)
        return lm_fail(LM_ERR_IO, "safetensors writer: finishing '%s' failed: %s",
                       w->file.final_path, strerror(errno));
    lm_status s = lm_atomic_commit(&w->file);
    if (s != LM_OK) return s;
    writer_free(w);
    return LM_OK;
}

void lm_safetensors_writer_abort(lm_safetensors_writer *w) {
    if (!w) return;
    lm_atomic_abort(&w->file);
    writer_free(w);
}

/* ---- reading ---------------------------------------------------------------------------- */

/* The dtypes a file may hold, each read into float32 or int32. */
typedef enum {
    FILE_F32,
    FILE_I32,
    FILE_F64,
    FILE_I64,
    FILE_F16,
    FILE_BF16,
    FILE_I16,
    FILE_U16,
    FILE_I8,
    FILE_U8,
    FILE_BOOL
} file_dtype;

static const struct {
    const char *name;
    int size;
    lm_dtype dtype;
} file_dtypes[] = {
    [FILE_F32] = {"F32", 4, LM_FLOAT32}, [FILE_I32] = {"I32", 4, LM_INT32},
    [FILE_F64] = {"F64", 8, LM_FLOAT32}, [FILE_I64] = {"I64", 8, LM_INT32},
    [FILE_F16] = {"F16", 2, LM_FLOAT32}, [FILE_BF16] = {"BF16", 2, LM_FLOAT32},
    [FILE_I16] = {"I16", 2, LM_INT32},   [FILE_U16] = {"U16", 2, LM_INT32},
    [FILE_I8] = {"I8", 1, LM_INT32},     [FILE_U8] = {"U8", 1, LM_INT32},
    [FILE_BOOL] = {"BOOL", 1, LM_INT32},
};
#define FILE_DTYPE_COUNT ((int)(sizeof file_dtypes / sizeof file_dtypes[0]))

typedef struct {
    const char *name;
    lm_dtype dtype;
    file_dtype file;
    int file_dtype_size;
    int ndim;
    int64_t shape[LM_MAX_DIMS];
    uint64_t begin, end;
} entry;

static int compare_begin(const void *a, const void *b) {
    const entry *x = *(const entry *const *)a, *y = *(const entry *const *)b;
    return x->begin < y->begin ? -1 : x->begin > y->begin;
}

static lm_status parse_entry(const char *path, const char *name, const lm_json *v,
                             uint64_t data_len, entry *e) {
    e->name = name;
    if (v->type != LM_JSON_OBJECT)
        return lm_fail(LM_ERR_FORMAT, "'%s': entry '%s' is not an object", path, name);
    const lm_json *dt = lm_json_get(v, "dtype"), *sh = lm_json_get(v, "shape"),
                  *off = lm_json_get(v, "data_offsets");
    if (!dt || dt->type != LM_JSON_STRING || !sh || sh->type != LM_JSON_ARRAY || !off ||
        off->type != LM_JSON_ARRAY)
        return lm_fail(LM_ERR_FORMAT,
                       "'%s': tensor '%s' needs \"dtype\", \"shape\" and \"data_offsets\"", path,
                       name);
    const char *d = dt->string;
    int kind = 0;
    while (kind < FILE_DTYPE_COUNT && strcmp(d, file_dtypes[kind].name) != 0) kind++;
    if (kind == FILE_DTYPE_COUNT)
        return lm_fail(LM_ERR_FORMAT,
                       "'%s': tensor '%s' has dtype '%.16s', which Lumen cannot read "
                       "(F32, F64, F16, BF16, I64, I32, I16, U16, I8, U8, BOOL)",
                       path, name, d);
    e->file = (file_dtype)kind;
    e->dtype = file_dtypes[kind].dtype;
    e->file_dtype_size = file_dtypes[kind].size;
    if (sh->count > LM_MAX_DIMS)
        return lm_fail(LM_ERR_FORMAT, "'%s': tensor '%s' has %d dimensions, at most %d", path, name,
                       sh->count, LM_MAX_DIMS);
    e->ndim = sh->count;
    uint64_t numel = 1;
    for (int k = 0; k < sh->count; k++) {
        const lm_json *x = &sh->items[k];
        if (x->type != LM_JSON_NUMBER || !x->is_integer || x->integer < 0 ||
            x->integer > (int64_t)data_len)
            return lm_fail(LM_ERR_FORMAT, "'%s': tensor '%s' has an invalid size in its shape",
                           path, name);
        e->shape[k] = x->integer;
        numel *= (uint64_t)x->integer;
        if (numel > data_len) numel = data_len + 1; /* saturate: caught below */
    }
    if (off->count != 2 || off->items[0].type != LM_JSON_NUMBER || !off->items[0].is_integer ||
        off->items[1].type != LM_JSON_NUMBER || !off->items[1].is_integer ||
        off->items[0].integer < 0 || off->items[1].integer < off->items[0].integer)
        return lm_fail(LM_ERR_FORMAT, "'%s': tensor '%s' has invalid data_offsets", path, name);
    e->begin = (uint64_t)off->items[0].integer;
    e->end = (uint64_t)off->items[1].integer;
    if (e->end > data_len)
        return lm_fail(LM_ERR_FORMAT,
                       "'%s': tensor '%s' ends at byte %llu of the data, past its end (%llu bytes;"
                       " the file may be truncated)",
                       path, name, (unsigned long long)e->end, (unsigned long long)data_len);
    if (numel * (uint64_t)e->file_dtype_size != e->end - e->begin)
        return lm_fail(LM_ERR_FORMAT,
                       "'%s': tensor '%s' has %llu bytes of data but its shape needs %llu", path,
                       name, (unsigned long long)(e->end - e->begin),
                       (unsigned long long)(numel * (uint64_t)e->file_dtype_size));
    return LM_OK;
}

/* Maps the entry's bytes (page-aligned mapping around them); false when
 * it can't (the caller reads instead). */
static bool map_entry(FILE *fp, uint64_t data_start, const entry *e, lm_tensor **out) {
    uint64_t at = data_start + e->begin, bytes = e->end - e->begin;
    if (e->file_dtype_size != 4 || bytes == 0 || at % 4 != 0) return false;
    uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
    uint64_t base_at = at - at % page, len = bytes + (at - base_at);
    /* private and writable: changes stay in memory (copy on write) */
    void *base =
        mmap(NULL, (size_t)len, PROT_READ | PROT_WRITE, MAP_PRIVATE, fileno(fp), (off_t)base_at);
    if (base == MAP_FAILED) return false;
    return lm_tensor_new_mapped(out, e->dtype, e->ndim, e->shape, (char *)base + (at - base_at),
                                base, (size_t)len) == LM_OK;
}

/* Widens n values of the entry's file dtype from `src` (little-endian, as
 * read) into float32 or int32 `dst`. The one lossy case is refused: an I64
 * value outside int32's range is an error naming the tensor and the value. */
static lm_status convert_entry(const char *path, const entry *e, const void *src, void *dst,
                               size_t n) {
    float *f = dst;
    int32_t *i32 = dst;
    const unsigned char *b = src;
    for (size_t i = 0; i < n; i++) {
        switch (e->file) {
        case FILE_F64: {
            double v;
            memcpy(&v, b + 8 * i, 8);
            f[i] = (float)v;
            break;
        }
        case FILE_I64: {
            int64_t v;
            memcpy(&v, b + 8 * i, 8);
            if (v < INT32_MIN || v > INT32_MAX)
                return lm_fail(LM_ERR_FORMAT,
                               "'%s': tensor '%s' holds %lld, which does not fit in int32", path,
                               e->name, (long long)v);
            i32[i] = (int32_t)v;
            break;
        }
        case FILE_F16:
            f[i] = lm_f16_to_f32((uint16_t)(b[2 * i] | b[2 * i + 1] << 8));
            break;
        case FILE_BF16:
            f[i] = lm_bf16_to_f32((uint16_t)(b[2 * i] | b[2 * i + 1] << 8));
            break;
        case FILE_I16:
            i32[i] = (int16_t)(uint16_t)(b[2 * i] | b[2 * i + 1] << 8);
            break;
        case FILE_U16:
            i32[i] = (uint16_t)(b[2 * i] | b[2 * i + 1] << 8);
            break;
        case FILE_I8:
            i32[i] = (int8_t)b[i];
            break;
        case FILE_U8:
            i32[i] = b[i];
            break;
        case FILE_BOOL:
            i32[i] = b[i] != 0;
            break;
        case FILE_F32:
        case FILE_I32:
            memcpy((char *)dst + 4 * i, b + 4 * i, 4);
            break;
        }
    }
    return LM_OK;
}

static lm_status read_entry(const char *path, FILE *fp, uint64_t data_start, const entry *e,
                            bool map, lm_tensor **out) {
    if (map && map_entry(fp, data_start, e, out)) return LM_OK;
    LM_TRY(lm_tensor_new(out, e->dtype, LM_CPU, e->ndim, e->shape));
    size_t bytes = (size_t)(e->end - e->begin), n = (size_t)lm_tensor_numel(*out);
    void *dst = lm_tensor_f32(*out);
    /* F32 and I32 are read in place, the others through a buffer */
    void *buf = e->file_dtype_size == 4 ? dst : malloc(bytes ? bytes : 1);
    lm_status s = LM_OK;
    if (!buf) s = lm_fail(LM_ERR_MEMORY, "load: out of memory reading '%s'", e->name);
    if (s == LM_OK && bytes &&
        (fseeko(fp, (off_t)(data_start + e->begin), SEEK_SET) != 0 ||
         fread(buf, 1, bytes, fp) != bytes))
        s = lm_fail(LM_ERR_IO, "'%s': could not read the data of tensor '%s'", path, e->name);
    if (s == LM_OK && buf != dst) s = convert_entry(path, e, buf, dst, n);
    if (buf != dst) free(buf);
    if (s != LM_OK) {
        lm_tensor_release(*out);
        *out = NULL;
    }
    return s;
}

static char *dup_string(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p) memcpy(p, s, n);
    return p;
}

static lm_status load(const char *path, lm_safetensors *out, bool map);

lm_status lm_safetensors_load(const char *path, lm_safetensors *out) {
    return load(path, out, false);
}

lm_status lm_safetensors_load_mapped(const char *path, lm_safetensors *out) {
    return load(path, out, true);
}

static lm_status load(const char *path, lm_safetensors *out, bool map) {
    memset(out, 0, sizeof *out);
    FILE *fp = fopen(path, "rb");
    if (!fp) return lm_fail(LM_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    struct stat st;
    lm_status s = LM_OK;
    unsigned char len8[8];
    char *header = NULL;
    lm_json *json = NULL;
    entry *entries = NULL;
    entry **order = NULL;
    uint64_t hlen = 0, file_size = 0;
    if (fstat(fileno(fp), &st) != 0) {
        s = lm_fail(LM_ERR_IO, "cannot stat '%s'", path);
        goto done;
    }
    file_size = (uint64_t)st.st_size;
    if (file_size < 8 || fread(len8, 1, 8, fp) != 8) {
        s = lm_fail(LM_ERR_FORMAT, "'%s' is too short to be a safetensors file (%llu bytes)", path,
                    (unsigned long long)file_size);
        goto done;
    }
    for (int k = 7; k >= 0; k--) hlen = (hlen << 8) | len8[k];
    if (hlen < 2 || hlen > file_size - 8 || hlen > LM_SAFETENSORS_MAX_HEADER) {
        s = lm_fail(LM_ERR_FORMAT,
                    "'%s': header length %llu is impossible for a file of %llu bytes (limit %u);"
                    " not a safetensors file, or truncated",
                    path, (unsigned long long)hlen, (unsigned long long)file_size,
                    LM_SAFETENSORS_MAX_HEADER);
        goto done;
    }
    header = malloc((size_t)hlen);
    if (!header) {
        s = lm_fail(LM_ERR_MEMORY, "out of memory reading the header of '%s'", path);
        goto done;
    }
    if (fread(header, 1, (size_t)hlen, fp) != hlen) {
        s = lm_fail(LM_ERR_IO, "'%s': could not read the header", path);
        goto done;
    }
    char what[512];
    snprintf(what, sizeof what, "header of '%s'", path);
    s = lm_json_parse(header, (size_t)hlen, what, &json);
    if (s != LM_OK) goto done;
    if (json->type != LM_JSON_OBJECT) {
        s = lm_fail(LM_ERR_FORMAT, "'%s': the header is not a JSON object", path);
        goto done;
    }
    uint64_t data_start = 8 + hlen, data_len = file_size - data_start;
    entries = calloc(json->count ? json->count : 1, sizeof *entries);
    order = calloc(json->count ? json->count : 1, sizeof *order);
    if (!entries || !order) {
        s = lm_fail(LM_ERR_MEMORY, "out of memory");
        goto done;
    }
    int n = 0;
    const lm_json *meta = NULL;
    for (int i = 0; i < json->count; i++) {
        if (strcmp(json->keys[i], "__metadata__") == 0) {
            meta = &json->items[i];
            continue;
        }
        for (int j = 0; j < i; j++)
            if (strcmp(json->keys[i], json->keys[j]) == 0) {
                s = lm_fail(LM_ERR_FORMAT, "'%s': tensor '%s' appears twice", path, json->keys[i]);
                goto done;
            }
        s = parse_entry(path, json->keys[i], &json->items[i], data_len, &entries[n]);
        if (s != LM_OK) goto done;
        order[n] = &entries[n];
        n++;
    }
    qsort(order, n, sizeof *order, compare_begin);
    for (int i = 1; i < n; i++)
        if (order[i]->begin < order[i - 1]->end) {
            s = lm_fail(LM_ERR_FORMAT, "'%s': the data of tensors '%s' and '%s' overlap", path,
                        order[i - 1]->name, order[i]->name);
            goto done;
        }
    if (meta && meta->type != LM_JSON_OBJECT) {
        s = lm_fail(LM_ERR_FORMAT, "'%s': __metadata__ is not an object", path);
        goto done;
    }
    int nmeta = meta ? meta->count : 0;
    out->tensors = calloc(n ? n : 1, sizeof *out->tensors);
    out->metadata = calloc(nmeta ? nmeta : 1, sizeof *out->metadata);
    if (!out->tensors || !out->metadata) {
        s = lm_fail(LM_ERR_MEMORY, "out of memory");
        goto done;
    }
    for (int i = 0; i < nmeta; i++) {
        if (meta->items[i].type != LM_JSON_STRING) {
            s = lm_fail(LM_ERR_FORMAT, "'%s': metadata '%s' is not a string", path, meta->keys[i]);
            goto done;
        }
        out->metadata[i].key = dup_string(meta->keys[i]);
        out->metadata[i].value = dup_string(meta->items[i].string);
        out->metadata_count++;
        if (!out->metadata[i].key || !out->metadata[i].value) {
            s = lm_fail(LM_ERR_MEMORY, "out of memory");
            goto done;
        }
    }
    for (int i = 0; i < n; i++) {
        lm_named_tensor *nt = &out->tensors[i];
        nt->name = dup_string(entries[i].name);
        if (!nt->name) {
            s = lm_fail(LM_ERR_MEMORY, "out of memory");
            goto done;
        }
        out->count++;
        s = read_entry(path, fp, data_start, &entries[i], map, &nt->tensor);
        if (s != LM_OK) goto done;
    }
done:
    fclose(fp);
    free(header);
    lm_json_free(json);
    free(entries);
    free(order);
    if (s != LM_OK) lm_safetensors_free(out);
    return s;
}

void lm_safetensors_free(lm_safetensors *st) {
    for (int i = 0; i < st->count; i++) {
        free(st->tensors[i].name);
        lm_tensor_release(st->tensors[i].tensor);
    }
    for (int i = 0; i < st->metadata_count; i++) {
        free(st->metadata[i].key);
        free(st->metadata[i].value);
    }
    free(st->tensors);
    free(st->metadata);
    memset(st, 0, sizeof *st);
}
