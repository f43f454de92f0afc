/* A small arena for derivative rules: every intermediate tensor is kept in
 * the scope and released at its end, and the first failure turns every later
 * step into a no-op, so a rule reads as a straight line of maths.
 *
 * sc_<op>(&sc, ...) is the plain op <op> (lm_ops.h) run inside the scope: it
 * returns a borrowed result (NULL once the scope has failed). */
#ifndef LM_AUTOGRAD_SCOPE_H
#define LM_AUTOGRAD_SCOPE_H

#include "lm_autocast.h"
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

/* The backend of t's device; NULL (and the scope failed) when there is none
 * or the scope has failed already. */
static inline const lm_backend *sc_backend(scope *sc, const lm_tensor *t) {
    if (sc->status != LM_OK) return NULL;
    const lm_backend *be = lm_backend_of(t);
    if (!be) sc->status = LM_ERR_DEVICE;
    return be;
}

static inline lm_tensor *sc_binary(scope *sc, lm_binary_op op, lm_tensor *a, lm_tensor *b) {
    lm_tensor *r = NULL;
    return sc_keep(sc, sc->status ? sc->status : lm_binary(&r, op, a, b), &r);
}
static inline lm_tensor *sc_binary_scalar(scope *sc, lm_binary_op op, lm_tensor *a, double s) {
    lm_tensor *r = NULL;
    return sc_keep(sc, sc->status ? sc->status : lm_binary_scalar(&r, op, a, s, false), &r);
}
static inline lm_tensor *sc_scalar_binary(scope *sc, lm_binary_op op, double s, lm_tensor *a) {
    lm_tensor *r = NULL;
    return sc_keep(sc, sc->status ? sc->status : lm_binary_scalar(&r, op, a, s, true), &r);
}
static inline lm_tensor *sc_unary(scope *sc, lm_unary_op op, lm_tensor *x, double p0, double p1) {
    lm_tensor *r = NULL;
    return sc_keep(sc, sc->status ? sc->status : lm_unary(&r, op, x, p0, p1), &r);
}
static inline lm_tensor *sc_matmul(scope *sc, lm_tensor *a, lm_tensor *b) {
    lm_tensor *r = NULL;
    return sc_keep(sc, sc->status ? sc->status : lm_matmul(&r, a, b), &r);
}
static inline lm_tensor *sc_transpose(scope *sc, lm_tensor *a, int d0, int d1) {
    lm_tensor *r = NULL;
    return sc_keep(sc, sc->status ? sc->status : lm_tensor_transpose(&r, a, d0, d1), &r);
}
static inline lm_tensor *sc_reshape(scope *sc, lm_tensor *a, int ndim, const int64_t *shape) {
    lm_tensor *r = NULL;
    return sc_keep(sc, sc->status ? sc->status : lm_tensor_reshape(&r, a, ndim, shape), &r);
}
static inline lm_tensor *sc_sum_to_dims(scope *sc, lm_tensor *g, int ndim, const int64_t *shape) {
    lm_tensor *r = NULL;
    return sc_keep(sc, sc->status ? sc->status : lm_sum_to_shape(&r, g, ndim, shape), &r);
}
static inline lm_tensor *sc_sum_to(scope *sc, lm_tensor *g, const lm_tensor *like) {
    return sc_sum_to_dims(sc, g, like->ndim, like->shape);
}
static inline lm_tensor *sc_reduce(scope *sc, lm_reduce_op op, lm_tensor *x, int dim,
                                   bool keepdim) {
    lm_tensor *r = NULL;
    return sc_keep(sc, sc->status ? sc->status : lm_reduce(&r, NULL, op, x, dim, keepdim), &r);
}
static inline lm_tensor *sc_expand(scope *sc, lm_tensor *a, int ndim, const int64_t *shape) {
    lm_tensor *r = NULL;
    return sc_keep(sc, sc->status ? sc->status : lm_tensor_expand(&r, a, ndim, shape), &r);
}
static inline lm_tensor *sc_contiguous(scope *sc, lm_tensor *a) {
    lm_tensor *r = NULL;
    return sc_keep(sc, sc->status ? sc->status : lm_contiguous(&r, a), &r);
}
/* A product's operand: rounded to bfloat16 under autocast (lm_autocast.h), else contiguous. */
static inline lm_tensor *sc_cast(scope *sc, lm_tensor *a) {
    lm_tensor *r = NULL;
    return sc_keep(sc, sc->status ? sc->status : lm_autocast_operand(&r, a), &r);
}
static inline lm_tensor *sc_where(scope *sc, lm_tensor *cond, lm_tensor *a, lm_tensor *b) {
    lm_tensor *r = NULL;
    return sc_keep(sc, sc->status ? sc->status : lm_where(&r, cond, a, b), &r);
}
/* A float32 tensor of that shape on that device: uninitialised, or zeros. */
static inline lm_tensor *sc_empty(scope *sc, lm_device device, int ndim, const int64_t *shape) {
    lm_tensor *r = NULL;
    return sc_keep(sc, sc->status ? sc->status : lm_tensor_new(&r, LM_FLOAT32, device, ndim, shape),
                   &r);
}
static inline lm_tensor *sc_zeros(scope *sc, lm_device device, int ndim, const int64_t *shape) {
    lm_tensor *r = NULL;
    return sc_keep(sc, sc->status ? sc->status : lm_full(&r, LM_FLOAT32, device, ndim, shape, 0),
                   &r);
}
static inline lm_tensor *sc_zeros_like(scope *sc, const lm_tensor *like) {
    return sc_zeros(sc, like->storage->device, like->ndim, like->shape);
}

#endif
