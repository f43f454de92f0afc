/* A small arena for derivative rules: every intermediate tensor is kept in
 * the scope and released at its end, and the first failure turns every later
 * step into a no-op, so a rule reads as a straight line of maths. */
#ifndef LM_AUTOGRAD_SCOPE_H
#define LM_AUTOGRAD_SCOPE_H

#include "lm_autograd.h"
#include "lm_ops.h"

#define SCOPE_MAX 24

typedef struct scope {
    lm_tensor *items[SCOPE_MAX];
    int n;
    lm_status status;
} scope;

/* Takes the result through a pointer: it is read only after `s` (the call
 * that writes it) has been evaluated. */
static inline lm_tensor *sc_keep(scope *sc, lm_status s, lm_tensor **result) {
    lm_tensor *t = *result;
    if (sc->status != LM_OK) return NULL;
    if (s != LM_OK) {
        sc->status = s;
        return NULL;
    }
    if (sc->n == SCOPE_MAX) {
        lm_tensor_release(t);
        sc->status = lm_fail(LM_ERR_STATE, "autograd: rule scope overflow");
        return NULL;
    }
    return sc->items[sc->n++] = t;
}

/* The result handed to the caller: one new reference. */
static inline lm_tensor *sc_give(scope *sc, lm_tensor *t) {
    return sc->status == LM_OK && t ? lm_tensor_retain(t) : NULL;
}

static inline lm_status sc_end(scope *sc) {
    for (int i = 0; i < sc->n; i++) lm_tensor_release(sc->items[i]);
    return sc->status;
}

static inline lm_tensor *sc_saved(scope *sc, lm_node *n, int slot) {
    if (sc->status != LM_OK) return NULL;
    lm_tensor *t;
    lm_status s = lm_node_saved(n, slot, &t);
    if (s != LM_OK) sc->status = s;
    return t;
}

static inline lm_tensor *B(scope *sc, lm_binary_op op, lm_tensor *a, lm_tensor *b) {
    lm_tensor *r = NULL;
    return sc_keep(sc, sc->status ? sc->status : lm_binary(&r, op, a, b), &r);
}
static inline lm_tensor *BS(scope *sc, lm_binary_op op, lm_tensor *a, double s) {
    lm_tensor *r = NULL;
    return sc_keep(sc, sc->status ? sc->status : lm_binary_scalar(&r, op, a, s, false), &r);
}
static inline lm_tensor *SB(scope *sc, lm_binary_op op, double s, lm_tensor *a) {
    lm_tensor *r = NULL;
    return sc_keep(sc, sc->status ? sc->status : lm_binary_scalar(&r, op, a, s, true), &r);
}
static inline lm_tensor *U(scope *sc, lm_unary_op op, lm_tensor *x, double p0, double p1) {
    lm_tensor *r = NULL;
    return sc_keep(sc, sc->status ? sc->status : lm_unary(&r, op, x, p0, p1), &r);
}
static inline lm_tensor *MM(scope *sc, lm_tensor *a, lm_tensor *b) {
    lm_tensor *r = NULL;
    return sc_keep(sc, sc->status ? sc->status : lm_matmul(&r, a, b), &r);
}
static inline lm_tensor *T(scope *sc, lm_tensor *a, int d0, int d1) {
    lm_tensor *r = NULL;
    return sc_keep(sc, sc->status ? sc->status : lm_tensor_transpose(&r, a, d0, d1), &r);
}
static inline lm_tensor *RESHAPE(scope *sc, lm_tensor *a, int ndim, const int64_t *shape) {
    lm_tensor *r = NULL;
    return sc_keep(sc, sc->status ? sc->status : lm_tensor_reshape(&r, a, ndim, shape), &r);
}
static inline lm_tensor *SUM_TO(scope *sc, lm_tensor *g, const lm_tensor *like) {
    lm_tensor *r = NULL;
    return sc_keep(sc, sc->status ? sc->status : lm_sum_to_shape(&r, g, like->ndim, like->shape),
                   &r);
}
static inline lm_tensor *ZEROS_LIKE(scope *sc, const lm_tensor *like) {
    lm_tensor *r = NULL;
    return sc_keep(sc,
                   sc->status ? sc->status
                              : lm_full(&r, LM_FLOAT32, like->storage->device, like->ndim,
                                        like->shape, 0),
                   &r);
}

#endif
