/* Tensor helpers shared by the C tests (on top of test.h). */
#ifndef LM_TEST_TENSOR_H
#define LM_TEST_TENSOR_H

#include <math.h>

#include "lm_ops.h"

/* A float32 CPU tensor holding a copy of v. */
static inline lm_tensor *from(int ndim, const int64_t *shape, const float *v) {
    lm_tensor *t;
    lm_from_host(&t, LM_FLOAT32, ndim, shape, v);
    return t;
}

/* Element i in row-major order (any layout); NaN if it cannot be read. */
static inline double at(const lm_tensor *t, int64_t i) {
    double v = NAN;
    lm_get_element(t, i, &v);
    return v;
}

#endif
