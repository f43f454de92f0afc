/* IEEE half precision (binary16) and bfloat16 to and from float32, for
 * reading and writing half-precision safetensors files. Narrowing rounds to
 * nearest, ties to even; values past the half range become infinities, NaN
 * stays NaN (quiet). Widening is exact. */
#ifndef LM_HALF_H
#define LM_HALF_H

#include <stdint.h>
#include <string.h>

static inline uint32_t lm_f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static inline float lm_f32_from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static inline float lm_bf16_to_f32(uint16_t h) {
    return lm_f32_from_bits((uint32_t)h << 16);
}

static inline uint16_t lm_f32_to_bf16(float f) {
    uint32_t u = lm_f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1); /* round to nearest, ties to even */
    return (uint16_t)(u >> 16);
}

static inline float lm_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    if (exp == 0x1f) /* inf; a NaN quiet, as torch widens a signalling one */
        return lm_f32_from_bits(sign | 0x7f800000u | (man << 13) | (man ? 0x400000u : 0));
    if (exp == 0) {
        /* zero or subnormal: man * 2^-24, exact in float32 */
        float v = (float)man * (1.0f / 16777216.0f);
        return sign ? -v : v;
    }
    return lm_f32_from_bits(sign | ((exp + 112) << 23) | (man << 13));
}

static inline uint16_t lm_f32_to_f16(float f) {
    uint32_t u = lm_f32_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return sign | 0x7e00;  /* NaN */
    if (a >= 0x477ff000u) return sign | 0x7c00; /* rounds past 65504: infinity */
    if (a < 0x38800000u) {
        /* below the smallest normal half (2^-14): a subnormal step of 2^-24,
         * rounded to nearest even by the float addition of a magic constant */
        float v = lm_f32_from_bits(a) + 0.5f;
        return sign | (uint16_t)(lm_f32_bits(v) - lm_f32_bits(0.5f));
    }
    uint32_t r = a + 0xfffu + ((a >> 13) & 1); /* ties to even on the 13 dropped bits */
    return sign | (uint16_t)((r - 0x38000000u) >> 13);
}

#endif
