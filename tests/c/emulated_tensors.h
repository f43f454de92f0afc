/* Tensors and comparisons shared by the emulated CUDA tests
 * (test_cuda_emulated_*.cpp): CPU tensors filled from a fixed sequence, the
 * CPU backend they are compared with, and the measures of agreement. */
#ifndef LM_EMULATED_TENSORS_H
#define LM_EMULATED_TENSORS_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include <initializer_list>
#include <vector>

extern "C" {
#include "lm_backend.h"
#include "lm_tensor.h"
}

namespace { /* inline: each test uses some of them */

inline const lm_backend *cpu(void) {
    return lm_backend_get(LM_CPU);
}

inline lm_tensor *tensor(int ndim, const int64_t *shape, lm_dtype dtype = LM_FLOAT32) {
    lm_tensor *t = NULL;
    lm_tensor_new(&t, dtype, LM_CPU, ndim, shape);
    return t;
}

/* the next 24 bits of a fixed linear congruential sequence */
inline uint32_t next(uint32_t &seed) {
    seed = seed * 1664525u + 1013904223u;
    return seed >> 8;
}

/* values of that sequence, in [-1, 1) * scale + shift */
inline lm_tensor *filled(int ndim, const int64_t *shape, uint32_t seed, float scale,
                         float shift = 0) {
    lm_tensor *t = tensor(ndim, shape);
    float *p = lm_tensor_f32(t);
    for (int64_t i = 0; i < lm_tensor_numel(t); i++)
        p[i] = ((float)next(seed) / 8388608.0f - 1.0f) * scale + shift;
    return t;
}

inline lm_tensor *copy_of(const lm_tensor *t) {
    lm_tensor *c = tensor(t->ndim, t->shape, t->dtype);
    memcpy(lm_tensor_data(c), lm_tensor_data(t), 4 * (size_t)lm_tensor_numel(t));
    return c;
}

inline bool same_bits(const lm_tensor *a, const lm_tensor *b) {
    return a && b && lm_tensor_numel(a) == lm_tensor_numel(b) &&
           !memcmp(lm_tensor_data(a), lm_tensor_data(b), 4 * (size_t)lm_tensor_numel(a));
}

/* max |a - b| over max(|b|, 1e-3), as the GPU specs measure; NaN where the
 * other has none counts as infinitely far, NaN against NaN as equal */
inline double rel_err(const lm_tensor *a, const lm_tensor *b) {
    const float *pa = lm_tensor_f32(a), *pb = lm_tensor_f32(b);
    double worst = 0, scale = 1e-3;
    for (int64_t i = 0; i < lm_tensor_numel(a); i++) {
        if (isnan(pa[i]) || isnan(pb[i])) {
            if (isnan(pa[i]) != isnan(pb[i])) worst = INFINITY;
            continue;
        }
        double d = pa[i] == pb[i] ? 0 : fabs((double)pa[i] - pb[i]); /* inf == inf */
        if (!(d <= worst)) worst = d;
        if (fabs(pb[i]) > scale) scale = fabs(pb[i]);
    }
    return worst / scale;
}

/* the largest distance in units in the last place between two float
 * tensors (NaN against NaN: 0, NaN against a number: huge) */
inline int64_t max_ulps(const lm_tensor *a, const lm_tensor *b) {
    const float *pa = lm_tensor_f32(a), *pb = lm_tensor_f32(b);
    int64_t worst = 0;
    for (int64_t i = 0; i < lm_tensor_numel(a); i++) {
        if (isnan(pa[i]) || isnan(pb[i])) {
            if (isnan(pa[i]) != isnan(pb[i])) worst = INT64_MAX;
            continue;
        }
        int32_t ia, ib;
        memcpy(&ia, &pa[i], 4);
        memcpy(&ib, &pb[i], 4);
        int64_t oa = ia < 0 ? (int64_t)INT32_MIN - ia : ia; /* ordered like the floats */
        int64_t ob = ib < 0 ? (int64_t)INT32_MIN - ib : ib;
        int64_t d = oa > ob ? oa - ob : ob - oa;
        if (d > worst) worst = d;
    }
    return worst;
}

inline void release(std::initializer_list<lm_tensor *> ts) {
    for (lm_tensor *t : ts) lm_tensor_release(t);
}

/* Element offsets of t in row-major order of its (logical) shape: element
 * i's place in its storage. */
inline std::vector<int64_t> offsets(const lm_tensor *t) {
    std::vector<int64_t> out;
    int64_t n = lm_tensor_numel(t), idx[LM_MAX_DIMS] = {0};
    for (int64_t i = 0; i < n; i++) {
        int64_t off = 0;
        for (int d = 0; d < t->ndim; d++) off += idx[d] * t->strides[d];
        out.push_back(off);
        for (int d = t->ndim - 1; d >= 0 && ++idx[d] == t->shape[d]; d--) idx[d] = 0;
    }
    return out;
}

/* Every tensor a test makes, released when the test returns. */
struct Pool {
    std::vector<lm_tensor *> ts;
    ~Pool() {
        for (lm_tensor *t : ts) lm_tensor_release(t);
    }
    lm_tensor *operator()(lm_tensor *t) {
        ts.push_back(t);
        return t;
    }
};

} // namespace

#endif
