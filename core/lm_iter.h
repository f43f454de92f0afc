/* Strided iteration over up to four same-shaped operands, shared by both
 * backends: the CPU kernels walk it row by row (LM_ITER_FOR), the CUDA
 * kernels take the merged shape and strides to the device (cuda_common.cuh).
 *
 * Dimensions that are laid out one right after the other in every operand are
 * merged first, so a contiguous tensor of any shape becomes one long row and a
 * bias broadcast over a batch becomes two dimensions. Kernels then walk rows:
 * the innermost dimension is a plain strided loop the compiler vectorises
 * when the strides are 1 (or 0 for a broadcast operand). Nothing here is
 * CPU-specific: it only reads shapes and strides. */
#ifndef LM_ITER_H
#define LM_ITER_H

#include "lm_tensor.h"

#define LM_ITER_MAX_OPS 4

typedef struct lm_iter {
    int nops;
    int ndim; /* >= 1 after init */
    int64_t numel;
    int64_t shape[LM_MAX_DIMS];
    int64_t strides[LM_ITER_MAX_OPS][LM_MAX_DIMS];
} lm_iter;

/* ops[0]'s shape is the iteration shape; the others must have the same shape. */
static inline void lm_iter_init(lm_iter *it, int nops, const lm_tensor *const *ops) {
    const lm_tensor *t0 = ops[0];
    it->nops = nops;
    it->ndim = 0;
    it->numel = lm_tensor_numel(t0);
    for (int d = 0; d < t0->ndim; d++) {
        if (t0->shape[d] == 1) continue; /* size-1 dims carry no information */
        int n = it->ndim;
        bool merge = n > 0;
        for (int k = 0; k < nops && merge; k++)
            merge = it->strides[k][n - 1] == ops[k]->strides[d] * t0->shape[d];
        if (merge) {
            it->shape[n - 1] *= t0->shape[d];
            for (int k = 0; k < nops; k++) it->strides[k][n - 1] = ops[k]->strides[d];
        } else {
            it->shape[n] = t0->shape[d];
            for (int k = 0; k < nops; k++) it->strides[k][n] = ops[k]->strides[d];
            it->ndim++;
        }
    }
    if (it->ndim == 0) {
        it->ndim = 1;
        it->shape[0] = 1;
        for (int k = 0; k < nops; k++) it->strides[k][0] = 1;
    }
}

/* One operand walked in its own row-major order, dimensions unmerged, so
 * that flat index i is always its element i (random fills number elements
 * this way on every device). */
static inline void lm_iter_init_ordered(lm_iter *it, const lm_tensor *t) {
    it->nops = 1;
    it->numel = lm_tensor_numel(t);
    it->ndim = t->ndim ? t->ndim : 1;
    for (int d = 0; d < t->ndim; d++) {
        it->shape[d] = t->shape[d];
        it->strides[0][d] = t->strides[d];
    }
    if (!t->ndim) {
        it->shape[0] = 1;
        it->strides[0][0] = 1;
    }
}

/* Element offsets of flat (row-major) index i for every operand. */
static inline void lm_iter_offsets(const lm_iter *it, int64_t i, int64_t *off) {
    for (int k = 0; k < it->nops; k++) off[k] = 0;
    for (int d = it->ndim - 1; d >= 0 && i; d--) {
        int64_t idx = i % it->shape[d];
        i /= it->shape[d];
        for (int k = 0; k < it->nops; k++) off[k] += idx * it->strides[k][d];
    }
}

/* Walks flat indices [begin, end) row piece by row piece:
 *   LM_ITER_FOR(it, begin, end, off, n) { ...use off[k] and n (inner length)... }
 * inner strides are it->strides[k][it->ndim - 1]. */
#define LM_ITER_FOR(it, begin, end, off, n)                                                        \
    for (int64_t lm_i_ = (begin), n = 0, off[LM_ITER_MAX_OPS];                                     \
         lm_i_ < (end) && (lm_iter_offsets((it), lm_i_, off),                                      \
                           n = (it)->shape[(it)->ndim - 1] - lm_i_ % (it)->shape[(it)->ndim - 1],  \
                           n = n < (end)-lm_i_ ? n : (end)-lm_i_, 1);                              \
         lm_i_ += n)

#endif
