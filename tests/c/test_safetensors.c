/* safetensors round trips and rejection of malformed files. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "lm_alloc.h"
#include "lm_ops.h"
#include "lm_safetensors.h"
#include "test.h"

static char dir[256];

static const char *path_of(const char *name) {
    static char buf[512];
    snprintf(buf, sizeof buf, "%s/%s", dir, name);
    return buf;
}

/* Writes a file of an 8-byte length, the header and `data_len` zero bytes. */
static void write_raw(const char *name, const char *header, uint64_t claimed_len, size_t data_len) {
    FILE *f = fopen(path_of(name), "wb");
    unsigned char len8[8];
    for (int k = 0; k < 8; k++) len8[k] = (unsigned char)(claimed_len >> (8 * k));
    fwrite(len8, 1, 8, f);
    fwrite(header, 1, strlen(header), f);
    for (size_t i = 0; i < data_len; i++) fputc(0, f);
    fclose(f);
}

static void expect_format_error(const char *name, const char *header, size_t data_len,
                                const char *needle) {
    write_raw(name, header, strlen(header), data_len);
    lm_safetensors st;
    CHECK_FAILS(lm_safetensors_load(path_of(name), &st), LM_ERR_FORMAT, needle);
}

static void test_round_trip(void) {
    int64_t s23[2] = {2, 3}, s4[1] = {4};
    float fv[6] = {1, -2, 3.5f, 4, 5, 6e-8f};
    int32_t iv[4] = {1, 2, -3, 2147483647};
    lm_tensor *f, *i, *ft;
    lm_from_host(&f, LM_FLOAT32, 2, s23, fv);
    lm_from_host(&i, LM_INT32, 1, s4, iv);
    lm_tensor_transpose(&ft, f, 0, 1); /* written in row-major order of the view */
    lm_named_tensor items[3] = {{"weight", f}, {"labels", i}, {"weight_t", ft}};
    lm_string_pair meta[1] = {{"format", "lumen \"test\"\n"}};
    CHECK_OK(lm_safetensors_save(path_of("a.safetensors"), items, 3, meta, 1));
    lm_safetensors st;
    CHECK_OK(lm_safetensors_load(path_of("a.safetensors"), &st));
    CHECK(st.count == 3 && st.metadata_count == 1);
    CHECK(!strcmp(st.metadata[0].value, "lumen \"test\"\n"));
    for (int k = 0; k < st.count; k++) {
        lm_tensor *t = st.tensors[k].tensor;
        if (!strcmp(st.tensors[k].name, "weight")) {
            CHECK(t->ndim == 2 && t->shape[1] == 3 && !memcmp(lm_tensor_f32(t), fv, 24));
        } else if (!strcmp(st.tensors[k].name, "labels")) {
            CHECK(t->dtype == LM_INT32 && !memcmp(lm_tensor_i32(t), iv, 16));
        } else {
            CHECK(t->shape[0] == 3 && lm_tensor_f32(t)[1] == 4); /* [[1,4],[-2,5],...] */
        }
    }
    lm_safetensors_free(&st);
    /* no temporary file is left beside it */
    char cmd[600];
    snprintf(cmd, sizeof cmd, "ls %s | grep -q tmp", dir);
    CHECK(system(cmd) != 0);
    lm_named_tensor dup[2] = {{"w", f}, {"w", i}};
    CHECK_FAILS(lm_safetensors_save(path_of("b.safetensors"), dup, 2, NULL, 0), LM_ERR_ARG,
                "used twice");
    CHECK_FAILS(lm_safetensors_save("/nonexistent-dir/x.safetensors", items, 1, NULL, 0), LM_ERR_IO,
                "cannot create");
    lm_tensor_release(ft);
    lm_tensor_release(f);
    lm_tensor_release(i);
}

static void test_conversions(void) {
    /* F64 and I64 written by other tools load as float32 / int32 */
    FILE *fp = fopen(path_of("c.safetensors"), "wb");
    const char *h = "{\"d\":{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[0,16]},"
                    "\"l\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[16,24]}}";
    uint64_t n = strlen(h);
    fwrite(&n, 8, 1, fp);
    fwrite(h, 1, n, fp);
    double d[2] = {0.25, -3};
    int64_t l = 7;
    fwrite(d, 8, 2, fp);
    fwrite(&l, 8, 1, fp);
    fclose(fp);
    lm_safetensors st;
    CHECK_OK(lm_safetensors_load(path_of("c.safetensors"), &st));
    CHECK(st.count == 2);
    for (int k = 0; k < st.count; k++) {
        lm_tensor *t = st.tensors[k].tensor;
        if (t->dtype == LM_FLOAT32)
            CHECK(lm_tensor_f32(t)[0] == 0.25f && lm_tensor_f32(t)[1] == -3);
        else
            CHECK(lm_tensor_i32(t)[0] == 7);
    }
    lm_safetensors_free(&st);
}

static void test_malformed(void) {
    lm_safetensors st;
    FILE *f = fopen(path_of("short"), "wb");
    fputs("abc", f);
    fclose(f);
    CHECK_FAILS(lm_safetensors_load(path_of("short"), &st), LM_ERR_FORMAT, "too short");
    write_raw("huge", "{}", (uint64_t)1 << 60, 0);
    CHECK_FAILS(lm_safetensors_load(path_of("huge"), &st), LM_ERR_FORMAT, "header length");
    expect_format_error("notjson", "{\"a\": [1, 2}", 0, "invalid JSON");
    expect_format_error("array", "[1, 2]", 0, "not a JSON object");
    expect_format_error("dtype", "{\"a\":{\"dtype\":\"C64\",\"shape\":[1],\"data_offsets\":[0,8]}}",
                        8, "'C64'");
    expect_format_error("past", "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}",
                        8, "past its end");
    expect_format_error("mismatch",
                        "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,16]}}", 16,
                        "shape needs 12");
    expect_format_error("overlap",
                        "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                        "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
                        12, "overlap");
    expect_format_error("negative",
                        "{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4,
                        "invalid size");
    expect_format_error("keys", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, "data_offsets");
    expect_format_error("bigshape",
                        "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],"
                        "\"data_offsets\":[0,4]}}",
                        4, "invalid size");
    CHECK_FAILS(lm_safetensors_load(path_of("missing"), &st), LM_ERR_IO, "cannot open");
    /* an empty tensor whose other sizes multiply past any tensor, and a folder: each named */
    expect_format_error(
        "emptyhuge",
        "{\"e\":{\"dtype\":\"F32\",\"shape\":[1099511627776,1099511627776,0],"
        "\"data_offsets\":[0,0]}}",
        0, "emptyhuge': tensor 'e' has a shape whose non-zero sizes multiply past 2^40");
    CHECK_FAILS(lm_safetensors_load(dir, &st), LM_ERR_IO,
                "' is a directory, not a safetensors file");
}

/* Numbers as JSON writes them, and one value for each key: a leading zero,
 * a bare '.' or exponent, or a second "dtype" in an entry was accepted. */
static void test_strict_json(void) {
    expect_format_error("zero4",
                        "{\"a\":{\"dtype\":\"F32\",\"shape\":[04],\"data_offsets\":[0,16]}}", 16,
                        "invalid JSON at byte 30: expected no digit after a leading 0");
    expect_format_error("zero16", "{\"__metadata__\":{},\"n\":016}", 0,
                        "expected no digit after a leading 0");
    expect_format_error("point",
                        "{\"a\":{\"dtype\":\"F32\",\"shape\":[1.],\"data_offsets\":[0,4]}}", 4,
                        "invalid JSON at byte 31: expected a digit after '.'");
    expect_format_error("exp", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1e],\"data_offsets\":[0,4]}}",
                        4, "expected a digit in the exponent");
    expect_format_error("minus", "{\"a\":{\"dtype\":\"F32\",\"shape\":[-],\"data_offsets\":[0,4]}}",
                        4, "expected a number");
    expect_format_error(
        "twodtype",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"dtype\":\"I32\",\"data_offsets\":[0,4]}}", 4,
        "invalid JSON: the key 'dtype' appears twice in the object at byte 5");
    /* 0, -0, 0.5 and 10 are numbers */
    const char *ok =
        "{\"__metadata__\":{},\"a\":{\"dtype\":\"F32\",\"shape\":[0,10],"
        "\"data_offsets\":[0,0]},\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-0,4]}}";
    write_raw("okzero", ok, strlen(ok), 4);
    lm_safetensors st;
    CHECK_OK(lm_safetensors_load(path_of("okzero"), &st));
    CHECK(st.count == 2);
    lm_safetensors_free(&st);
}

/* The tensors must fill the data exactly, as the format's reference reader
 * requires; the header is UTF-8 JSON with one __metadata__. */
static void test_layout_and_text(void) {
    lm_safetensors st;
    const char *two = "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                      "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}";
    expect_format_error("hole", two, 12,
                        "bytes 4 to 8 of the data belong to no tensor (a hole "
                        "before 'b')");
    const char *one = "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}";
    expect_format_error("trailing", one, 6, "2 bytes follow the last tensor's data");
    expect_format_error("nothing", "{}", 3, "3 bytes follow the last tensor's data");
    /* empty tensors hold no bytes wherever their offsets point */
    const char *eh = "{\"e\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[2,2]},"
                     "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}";
    write_raw("empty", eh, strlen(eh), 4);
    CHECK_OK(lm_safetensors_load(path_of("empty"), &st));
    CHECK(st.count == 2);
    lm_safetensors_free(&st);
    expect_format_error("twometa", "{\"__metadata__\":{\"a\":\"1\"},\"__metadata__\":{}}", 0,
                        "the key '__metadata__' appears twice in the object at byte 0");
    /* raw bytes that are not UTF-8: a lone continuation byte, an overlong
     * '/', a surrogate, a code point past U+10FFFF, a cut-off character */
    const char *bad[] = {"{\"__metadata__\":{\"a\":\"\x80\"}}",
                         "{\"__metadata__\":{\"a\":\"\xC0\xAF\"}}",
                         "{\"__metadata__\":{\"a\":\"\xED\xA0\x80\"}}",
                         "{\"__metadata__\":{\"a\":\"\xF4\x90\x80\x80\"}}",
                         "{\"__metadata__\":{\"a\":\"\xE2\x82\"}}"};
    for (int i = 0; i < 5; i++) expect_format_error("utf8", bad[i], 0, "well-formed UTF-8");
    /* well-formed characters of 2, 3 and 4 bytes pass through unchanged */
    const char *ok = "{\"__metadata__\":{\"\xC3\xA9\":\"\xE2\x82\xAC\xF0\x9F\x98\x80\"}}";
    write_raw("utf8ok", ok, strlen(ok), 0);
    CHECK_OK(lm_safetensors_load(path_of("utf8ok"), &st));
    CHECK(st.metadata_count == 1 && !strcmp(st.metadata[0].key, "\xC3\xA9") &&
          !strcmp(st.metadata[0].value, "\xE2\x82\xAC\xF0\x9F\x98\x80"));
    lm_safetensors_free(&st);
    /* the writer refuses names and metadata that are not UTF-8 */
    int64_t s1[1] = {1};
    float v = 1;
    lm_tensor *t;
    CHECK_OK(lm_from_host(&t, LM_FLOAT32, 1, s1, &v));
    lm_named_tensor named[1] = {{"w\xFF", t}};
    CHECK_FAILS(lm_safetensors_save(path_of("w.safetensors"), named, 1, NULL, 0), LM_ERR_ARG,
                "save: the name of tensor 1 is not UTF-8 text");
    named[0].name = "w";
    lm_string_pair meta[1] = {{"k", "\xC0\x80"}};
    CHECK_FAILS(lm_safetensors_save(path_of("w.safetensors"), named, 1, meta, 1), LM_ERR_ARG,
                "save: metadata 1 is not UTF-8 text");
    CHECK(access(path_of("w.safetensors"), F_OK) != 0);
    lm_tensor_release(t);
}

static void test_allocator_reuses_blocks(void) {
    lm_memory_stats before = lm_cpu_memory_stats();
    for (int k = 0; k < 100; k++) {
        int64_t n = 250000; /* 1 MB */
        lm_tensor *t;
        lm_tensor_new(&t, LM_FLOAT32, LM_CPU, 1, &n);
        lm_tensor_release(t);
    }
    lm_memory_stats after = lm_cpu_memory_stats();
    CHECK(after.live_bytes == before.live_bytes);
#ifndef LUMEN_NO_ALLOC_CACHE
    CHECK(after.cache_hits - before.cache_hits >= 99);
#endif
}

/* A size no longer used leaves the cache after a few thousand allocations
 * of other sizes; a size used all along stays; a block over 64 MiB is never
 * cached. */
static void test_allocator_trims_idle_sizes(void) {
#ifndef LUMEN_NO_ALLOC_CACHE
    lm_cpu_empty_cache();
    void *idle = lm_cpu_alloc(3000000), *busy = lm_cpu_alloc(5000000);
    lm_cpu_free(idle, 3000000);
    lm_cpu_free(busy, 5000000);
    size_t both = lm_cpu_memory_stats().cached_bytes;
    CHECK(both >= 8000000);
    for (int k = 0; k < 20000; k++) { /* five periods of allocations */
        lm_cpu_free(lm_cpu_alloc(64), 64);
        if (k % 1000 == 0) lm_cpu_free(lm_cpu_alloc(5000000), 5000000);
    }
    size_t cached = lm_cpu_memory_stats().cached_bytes;
    CHECK(cached >= 5000000 && cached < 5000000 + 3000000); /* busy kept, idle gone */
    size_t big = (size_t)80 << 20;
    lm_cpu_free(lm_cpu_alloc(big), big);
    CHECK(lm_cpu_memory_stats().cached_bytes == cached);
    lm_cpu_empty_cache();
    CHECK(lm_cpu_memory_stats().cached_bytes == 0);
#endif
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/lumen-test-st-XXXXXX");
    if (!mkdtemp(dir)) return 1;
    test_round_trip();
    test_conversions();
    test_malformed();
    test_strict_json();
    test_layout_and_text();
    test_allocator_reuses_blocks();
    test_allocator_trims_idle_sizes();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    printf("%d checks, %d failed\n", test_checks, test_failures);
    return test_failures ? 1 : 0;
}
