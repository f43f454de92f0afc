/* Tensor helpers shared by the C tests (on top of test.h). */
#ifndef LM_TEST_TENSOR_H
#define LM_TEST_TENSOR_H

#include <math.h>

#include "lm_ops.h"
#include "lm_rng.h"

/* A float32 CPU tensor holding a copy of v. */
static inline lm_tensor *from(int ndim, const int64_t *shape, const float *v) {
    lm_tensor *t;
    lm_from_host(&t, LM_FLOAT32, ndim, shape, v);
    return t;
}

/* A float32 CPU tensor of standard normal draws from the global generator. */
static inline lm_tensor *randn(int ndim, const int64_t *shape) {
    lm_tensor *t;
    lm_tensor_new(&t, LM_FLOAT32, LM_CPU, ndim, shape);
    lm_rand_normal_(t, 0, 1);
    return t;
}

/* Element i in row-major order (any layout); NaN if it cannot be read. */
static inline double at(const lm_tensor *t, int64_t i) {
    double v = NAN;
    lm_get_element(t, i, &v);
    return v;
}

#endif
