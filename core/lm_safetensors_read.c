/* Reading safetensors files (lm_safetensors.h): the header validated before
 * anything of a size the file claims is allocated, then each tensor read,
 * or mapped, and widened to float32 / int32. Writing is in lm_safetensors.c. */
#include "lm_safetensors.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lm_half.h"
#include "lm_json.h"
#include "lm_ops.h"

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
    [FILE_I8] = {"I8", 1, LM_INT32},     [FILE_U8] = {"U8", 1, LM_UINT8},
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

/* The tensors' bytes must fill the data exactly, as the format's reference
 * reader requires: an overlap, a hole or bytes after the last tensor mean a
 * header that does not describe its file. Empty tensors hold no byte and
 * take no part. `order` is sorted by where the tensors begin. */
static lm_status check_layout(const char *path, entry *const *order, int n, uint64_t data_len) {
    uint64_t filled = 0;
    const entry *last = NULL;
    for (int i = 0; i < n; i++) {
        const entry *e = order[i];
        if (e->begin == e->end) continue;
        if (e->begin < filled)
            return lm_fail(LM_ERR_FORMAT, "'%s': the data of tensors '%s' and '%s' overlap", path,
                           last->name, e->name);
        if (e->begin > filled)
            return lm_fail(LM_ERR_FORMAT,
                           "'%s': bytes %llu to %llu of the data belong to no tensor (a hole "
                           "before '%s'); the header does not describe the file",
                           path, (unsigned long long)filled, (unsigned long long)e->begin, e->name);
        filled = e->end;
        last = e;
    }
    if (filled != data_len)
        return lm_fail(LM_ERR_FORMAT,
                       "'%s': %llu bytes follow the last tensor's data; the header does not "
                       "describe the file",
                       path, (unsigned long long)(data_len - filled));
    return LM_OK;
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
    /* a size past the data is impossible, but in an empty tensor (a size 0
     * elsewhere) any size up to 2^40 is a shape (tensor creation checks the
     * rest) */
    int64_t bound = (int64_t)data_len;
    for (int k = 0; k < sh->count; k++)
        if (sh->items[k].type == LM_JSON_NUMBER && sh->items[k].is_integer &&
            sh->items[k].integer == 0 && bound < ((int64_t)1 << 40))
            bound = (int64_t)1 << 40;
    uint64_t numel = 1, span = 1; /* span: the product of the non-zero sizes */
    for (int k = 0; k < sh->count; k++) {
        const lm_json *x = &sh->items[k];
        if (x->type != LM_JSON_NUMBER || !x->is_integer || x->integer < 0 || x->integer > bound)
            return lm_fail(LM_ERR_FORMAT, "'%s': tensor '%s' has an invalid size in its shape",
                           path, name);
        e->shape[k] = x->integer;
        numel *= (uint64_t)x->integer;
        if (numel > data_len) numel = data_len + 1; /* saturate: caught below */
        /* an empty tensor's other sizes still make its strides: bounded here, where the
         * message can name the file, not in tensor creation */
        if (x->integer && span > ((uint64_t)1 << 40) / (uint64_t)x->integer)
            return lm_fail(LM_ERR_FORMAT,
                           "'%s': tensor '%s' has a shape whose non-zero sizes multiply past 2^40",
                           path, name);
        if (x->integer) span *= (uint64_t)x->integer;
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
    uint64_t size = lm_dtype_size(e->dtype);
    if ((uint64_t)e->file_dtype_size != size || bytes == 0 || at % size != 0) return false;
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
        case FILE_BOOL:
            i32[i] = b[i] != 0;
            break;
        case FILE_F32:
        case FILE_I32:
        case FILE_U8:
            memcpy((char *)dst + e->file_dtype_size * i, b + e->file_dtype_size * i,
                   (size_t)e->file_dtype_size);
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
    void *dst = lm_tensor_data(*out);
    /* F32, I32 and U8 are read in place, the others through a buffer */
    bool in_place = (size_t)e->file_dtype_size == lm_dtype_size(e->dtype);
    void *buf = in_place ? dst : malloc(bytes ? bytes : 1);
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
    if (S_ISDIR(st.st_mode)) { /* fopen opens a folder for reading: its "size" would be read */
        s = lm_fail(LM_ERR_IO, "'%s' is a directory, not a safetensors file", path);
        goto done;
    }
    file_size = (uint64_t)st.st_size;
    if (file_size < 8 || fread(len8, 1, 8, fp) != 8) {
        s = lm_fail(LM_ERR_FORMAT, "'%s' is too short to be a safetensors file (%llu bytes)", path,
                    (unsigned long long)file_size);
        goto done;
    }
    for (int k = 7; k >= 0; k--) hlen = (hlen << 8) | len8[k];
    if (hlen < 2 || hlen > file_size - 8) {
        s = lm_fail(LM_ERR_FORMAT,
                    "'%s': header length %llu is impossible for a file of %llu bytes;"
                    " not a safetensors file, or truncated",
                    path, (unsigned long long)hlen, (unsigned long long)file_size);
        goto done;
    }
    if (hlen > LM_SAFETENSORS_MAX_HEADER) {
        s = lm_fail(LM_ERR_FORMAT,
                    "'%s': the header takes %llu bytes, over the format's limit of %u (safetensors"
                    " readers refuse it)",
                    path, (unsigned long long)hlen, LM_SAFETENSORS_MAX_HEADER);
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
    /* The parsed tree takes up to ~30 times the header's bytes (a node of
     * 56 bytes for a 2-byte number such as `0,`), about 3 GB for a header
     * at the limit: the length is bounded above, before any of it is read. */
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
    int n = 0; /* the parser refuses a name twice (a tensor, __metadata__) */
    const lm_json *meta = NULL;
    for (int i = 0; i < json->count; i++) {
        if (strcmp(json->keys[i], "__metadata__") == 0) {
            meta = &json->items[i];
            continue;
        }
        s = parse_entry(path, json->keys[i], &json->items[i], data_len, &entries[n]);
        if (s != LM_OK) goto done;
        order[n] = &entries[n];
        n++;
    }
    qsort(order, n, sizeof *order, compare_begin);
    s = check_layout(path, order, n, data_len);
    if (s != LM_OK) goto done;
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
