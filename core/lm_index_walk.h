/* Where an element of an index tensor points, for gather and scatter_add:
 * shared by the CPU backend and the CUDA kernels. */
#ifndef LM_INDEX_WALK_H
#define LM_INDEX_WALK_H

#include "lm_host_device.h"
#include "lm_tensor.h"

/* idx's shape (contiguous, as gather's out and scatter_add's src) and the
 * strides of the tensor it indexes along `dim` (gather's x, scatter_add's out). */
typedef struct lm_index_geometry {
    int ndim, dim;
    int64_t shape[LM_MAX_DIMS];
    int64_t strides[LM_MAX_DIMS];
} lm_index_geometry;

static inline lm_index_geometry lm_index_geometry_of(const lm_tensor *idx, const lm_tensor *t,
                                                     int dim) {
    lm_index_geometry g = {idx->ndim, dim, {0}, {0}};
    for (int d = 0; d < idx->ndim; d++) g.shape[d] = idx->shape[d], g.strides[d] = t->strides[d];
    return g;
}

/* The offset in the indexed tensor of idx's element i (row-major), whose
 * value v (0-based) stands for the coordinate along g->dim. */
LM_HOST_DEVICE static inline int64_t lm_index_offset(const lm_index_geometry *g, int64_t i,
                                                     int32_t v) {
    int64_t off = 0;
    for (int d = g->ndim - 1; d >= 0; d--) {
        int64_t c = i % g->shape[d];
        i /= g->shape[d];
        off += (d == g->dim ? (int64_t)v : c) * g->strides[d];
    }
    return off;
}

#endif
