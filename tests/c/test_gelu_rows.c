/* The AVX-512 forms of exp, erf and GELU (lm_fastmath_avx512.h,
 * cpu_gelu_rows.c) against the scalar functions, bit for bit: over a
 * sweep of inputs, the special values, and rows of every length around
 * the 16-lane vectors and the 64-element iterations, with what lies past a
 * row left alone. */
#include <float.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_backend.h"
#include "lm_fastmath_avx512.h"
#include "lm_scalar_ops.h"
#include "test.h"

static uint32_t bits_of(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* the same bits, or both NaN */
static int same(float a, float b) {
    return bits_of(a) == bits_of(b) || (isnan(a) && isnan(b));
}

/* inputs: a dense sweep of [-14, 14] and [-120, 100] (exp's whole range
 * and past it), the branch edges of erf (1, 4) and their neighbours, and
 * the special values */
static float *inputs(int64_t *count) {
    static const float special[] = {
        0.0f,    -0.0f,  INFINITY, -INFINITY,   NAN,        -NAN,       1e-30f,
        -1e-30f, 1e-40f, -1e-40f,  FLT_MAX,     -FLT_MAX,   FLT_MIN,    1.0f,
        -1.0f,   4.0f,   -4.0f,    0.99999994f, 1.0000001f, 3.9999998f, 4.0000005f,
        88.72f,  89.0f,  89.5f,    -103.9f,     -104.0f,    -110.0f,    5.656854f};
    int64_t sweep = 28 * 2048 + 220 * 64, n = sweep + (int64_t)(sizeof special / sizeof *special);
    float *x = malloc(sizeof *x * (size_t)n);
    int64_t k = 0;
    for (int64_t i = 0; i < 28 * 2048; i++) x[k++] = -14.0f + (float)i / 2048.0f + 1.37e-4f;
    for (int64_t i = 0; i < 220 * 64; i++) x[k++] = -120.0f + (float)i / 64.0f + 3.1e-3f;
    for (size_t i = 0; i < sizeof special / sizeof *special; i++) x[k++] = special[i];
    *count = n;
    return x;
}

static void test_lanes_match_scalar(void) {
#ifdef LM_HAVE_FASTMATH_AVX512
    int64_t n;
    float *x = inputs(&n);
    int bad_exp = 0, bad_erf = 0;
    for (int64_t i = 0; i < n; i += 16) { /* the last vector partly: the specials are there */
        float v[16] = {0}, e[16], f[16];
        int lanes = n - i < 16 ? (int)(n - i) : 16;
        memcpy(v, x + i, sizeof(float) * (size_t)lanes);
        _mm512_storeu_ps(e, lm_fast_expf16(_mm512_loadu_ps(v)));
        _mm512_storeu_ps(f, lm_fast_erff16(_mm512_loadu_ps(v)));
        for (int l = 0; l < lanes; l++) {
            bad_exp += !same(e[l], lm_fast_expf(x[i + l]));
            bad_erf += !same(f[l], lm_fast_erff(x[i + l]));
        }
    }
    CHECK(bad_exp == 0);
    CHECK(bad_erf == 0);
    free(x);
#endif
}

static void test_rows_match_scalar(void) {
    int64_t n;
    float *x = inputs(&n);
    float *g = malloc(sizeof *g * (size_t)n), *out = malloc(sizeof *out * (size_t)(n + 16));
    for (int64_t i = 0; i < n; i++) g[i] = (float)((i * 37) % 101 - 50) / 7.0f;
    if (!lm_cpu_gelu_row(out, x, n)) { /* a build without AVX-512: the scalar loops run */
        CHECK(!lm_cpu_gelu_grad_row(out, g, x, n));
        free(x), free(g), free(out);
        return;
    }
    int bad = 0, bad_grad = 0;
    for (int64_t i = 0; i < n; i++) bad += !same(out[i], lm_gelu_f32(x[i]));
    CHECK(lm_cpu_gelu_grad_row(out, g, x, n));
    for (int64_t i = 0; i < n; i++) bad_grad += !same(out[i], g[i] * lm_gelu_grad_f32(x[i]));
    CHECK(bad == 0);
    CHECK(bad_grad == 0);
    /* every row length from 0 to 130: its elements, and nothing past them */
    int bad_len = 0;
    for (int64_t len = 0; len <= 130; len++) {
        for (int64_t i = 0; i < len + 16; i++) out[i] = -7.0f;
        lm_cpu_gelu_row(out, x + 5000, len);
        for (int64_t i = 0; i < len; i++) bad_len += !same(out[i], lm_gelu_f32(x[5000 + i]));
        for (int64_t i = len; i < len + 16; i++) bad_len += out[i] != -7.0f;
        for (int64_t i = 0; i < len + 16; i++) out[i] = -7.0f;
        lm_cpu_gelu_grad_row(out, g + 9, x + 5000, len);
        for (int64_t i = 0; i < len; i++)
            bad_len += !same(out[i], g[9 + i] * lm_gelu_grad_f32(x[5000 + i]));
        for (int64_t i = len; i < len + 16; i++) bad_len += out[i] != -7.0f;
    }
    CHECK(bad_len == 0);
    free(x), free(g), free(out);
}

TEST_MAIN(test_lanes_match_scalar, test_rows_match_scalar)
