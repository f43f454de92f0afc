/* matmul front: NumPy semantics reduced to the backend's 3-D product. */
#include <limits.h>
#include <string.h>

#include "lm_autocast.h"
#include "lm_ops.h"

/* True when the last two dims of t (rows x cols) map onto BLAS directly. */
static bool blas_compatible(lm_tensor *t) {
    int r = t->ndim - 2, c = t->ndim - 1;
    int64_t rows = t->shape[r], cols = t->shape[c];
    /* a size-1 dimension's stride is arbitrary: give it a canonical value */
    if (cols == 1) t->strides[c] = 1;
    if (rows == 1) t->strides[r] = cols > 1 ? cols : 1;
    if (t->strides[c] == 1 && t->strides[r] >= (cols > 1 ? cols : 1)) return true;
    return t->strides[r] == 1 && t->strides[c] >= (rows > 1 ? rows : 1);
}

/* A (B|1, rows, cols) view of t, whose leading dims are broadcast to `batch`. */
static lm_status as_3d(lm_tensor **out, lm_tensor *t, int nbatch, const int64_t *batch,
                       int64_t numbatch) {
    int64_t rows = t->shape[t->ndim - 2], cols = t->shape[t->ndim - 1];
    bool has_batch = false;
    for (int d = 0; d < t->ndim - 2; d++) has_batch |= t->shape[d] != 1;
    lm_tensor *v = NULL;
    if (!has_batch) {
        lm_tensor *tmp;
        int64_t shape3[3] = {1, rows, cols};
        lm_status s = lm_tensor_squeeze(&tmp, t, -1); /* drop leading 1s, keeps strides */
        if (s != LM_OK) return s;
        /* rebuild a 3-D view keeping the matrix strides */
        v = tmp;
        v->ndim = 3;
        v->shape[0] = shape3[0];
        v->shape[1] = rows;
        v->shape[2] = cols;
        v->strides[1] = t->strides[t->ndim - 2];
        v->strides[2] = t->strides[t->ndim - 1];
        v->strides[0] = 0;
    } else {
        int64_t full[LM_MAX_DIMS];
        memcpy(full, batch, sizeof(int64_t) * nbatch);
        full[nbatch] = rows;
        full[nbatch + 1] = cols;
        lm_tensor *e;
        LM_TRY(lm_tensor_expand(&e, t, nbatch + 2, full));
        int64_t shape3[3] = {numbatch, rows, cols};
        lm_status s = lm_tensor_reshape(&v, e, 3, shape3);
        lm_tensor_release(e);
        LM_TRY(s);
    }
    if (!blas_compatible(v)) {
        lm_tensor *c;
        lm_status s = lm_clone(&c, v);
        lm_tensor_release(v);
        LM_TRY(s);
        v = c;
    }
    *out = v;
    return LM_OK;
}

/* A product made ready to run: its operands and result as the backend's
 * 3-D views (o3 is a view of *out), so that two products can run together. */
typedef struct {
    const lm_backend *be;
    lm_tensor *a, *b, *a3, *b3, *o3;
    lm_tensor *bias; /* contiguous, or NULL; the backend adds it as it writes */
    int64_t K;
} matmul_plan;

static void plan_release(matmul_plan *p) {
    lm_tensor_release(p->a);
    lm_tensor_release(p->b);
    lm_tensor_release(p->a3);
    lm_tensor_release(p->b3);
    lm_tensor_release(p->o3);
    lm_tensor_release(p->bias);
    memset(p, 0, sizeof *p);
}

/* Checks the operands and allocates *out (filled when there is no product
 * to run: K == 0); on failure *out is NULL and the plan holds nothing. */
static lm_status plan_matmul(matmul_plan *p, lm_tensor **out, lm_tensor *a_in, lm_tensor *b_in,
                             const lm_tensor *bias) {
    memset(p, 0, sizeof *p);
    *out = NULL;
    char sa[LM_SHAPE_STR_MAX], sb[LM_SHAPE_STR_MAX];
    if (a_in->storage->device != b_in->storage->device)
        return lm_fail(LM_ERR_DEVICE, "matmul: operands are on different devices (%s and %s)",
                       lm_device_name(a_in->storage->device),
                       lm_device_name(b_in->storage->device));
    if (a_in->dtype != LM_FLOAT32 || b_in->dtype != LM_FLOAT32)
        return lm_fail(LM_ERR_ARG, "matmul: needs float32 tensors, got %s and %s (use :float())",
                       lm_dtype_name(a_in->dtype), lm_dtype_name(b_in->dtype));
    if (a_in->ndim == 0 || b_in->ndim == 0)
        return lm_fail(LM_ERR_ARG, "matmul: operands must have at least 1 dimension");
    const lm_backend *be = lm_backend_of(a_in);
    if (!be) return LM_ERR_DEVICE;
    p->be = be;

    /* 1-D operands become a row (left) or a column (right), removed at the end */
    lm_tensor *a = NULL, *b = NULL, *a3 = NULL, *b3 = NULL, *o3 = NULL;
    bool squeeze_row = a_in->ndim == 1, squeeze_col = b_in->ndim == 1;
    lm_status s = squeeze_row ? lm_tensor_unsqueeze(&a, a_in, 0) : LM_OK;
    if (!squeeze_row) a = lm_tensor_retain(a_in);
    if (s == LM_OK) s = squeeze_col ? lm_tensor_unsqueeze(&b, b_in, 1) : LM_OK;
    if (s == LM_OK && !squeeze_col) b = lm_tensor_retain(b_in);
    if (s != LM_OK) goto done;

    int64_t M = a->shape[a->ndim - 2], K = a->shape[a->ndim - 1];
    int64_t K2 = b->shape[b->ndim - 2], N = b->shape[b->ndim - 1];
    p->K = K;
    if (bias && (bias->ndim != 1 || bias->shape[0] != N || bias->dtype != LM_FLOAT32 ||
                 bias->storage->device != a_in->storage->device)) {
        s = lm_fail(LM_ERR_SHAPE,
                    "matmul: the bias must be a float32 [%lld] on the operands' device",
                    (long long)N);
        goto done;
    }
    if (M > INT_MAX || N > INT_MAX || K > INT_MAX) { /* BLAS and cuBLAS take int sizes */
        s = lm_fail(LM_ERR_SHAPE, "matmul: %s @ %s has a size past BLAS's limit of %d",
                    lm_shape_str(a_in, sa, sizeof sa), lm_shape_str(b_in, sb, sizeof sb), INT_MAX);
        goto done;
    }
    if (K != K2) {
        s = lm_fail(LM_ERR_SHAPE,
                    "matmul: inner dimensions differ: %s @ %s (%lld columns vs %lld rows)",
                    lm_shape_str(a_in, sa, sizeof sa), lm_shape_str(b_in, sb, sizeof sb),
                    (long long)K, (long long)K2);
        goto done;
    }
    /* broadcast the batch dimensions */
    lm_tensor ab = *a, bb = *b;
    ab.ndim = a->ndim - 2;
    bb.ndim = b->ndim - 2;
    int nbatch;
    int64_t batch[LM_MAX_DIMS], numbatch = 1;
    s = lm_broadcast_shape("matmul (batch dimensions)", &ab, &bb, &nbatch, batch);
    if (s != LM_OK) goto done;
    if (nbatch + 2 > LM_MAX_DIMS) {
        s = lm_fail(LM_ERR_ARG, "matmul: too many dimensions");
        goto done;
    }
    for (int d = 0; d < nbatch; d++) numbatch *= batch[d];

    s = as_3d(&a3, a, nbatch, batch, numbatch);
    if (s == LM_OK) s = as_3d(&b3, b, nbatch, batch, numbatch);
    if (s != LM_OK) goto done;

    /* result shape: batch + [M, N] without the squeezed 1-D dimensions */
    int64_t oshape[LM_MAX_DIMS];
    int ond = 0;
    for (int d = 0; d < nbatch; d++) oshape[ond++] = batch[d];
    if (!squeeze_row) oshape[ond++] = M;
    if (!squeeze_col) oshape[ond++] = N;
    s = lm_tensor_new(out, LM_FLOAT32, a->storage->device, ond, oshape);
    if (s != LM_OK) goto done;
    /* the batch count, not the larger operand's: an operand without a batch
     * counts 1 there, and an empty batch (0) must stay empty */
    int64_t shape3[3] = {numbatch, M, N};
    /* one GEMM for a batch against a shared right matrix: fold batch into rows */
    if (shape3[0] > 1 && b3->shape[0] == 1 && a3->strides[2] == 1 &&
        a3->strides[0] == M * a3->strides[1]) {
        a3->shape[1] = shape3[0] * M;
        a3->shape[0] = 1;
        shape3[1] = shape3[0] * M;
        shape3[0] = 1;
    }
    s = lm_tensor_view(&o3, *out, 3, shape3);
    if (s == LM_OK && K == 0) /* an empty sum: the bias alone, or zeros */
        s = bias ? lm_copy_(*out, bias) : lm_fill_(*out, 0);
    else if (s == LM_OK && bias)
        s = lm_contiguous(&p->bias, (lm_tensor *)bias);
    if (s != LM_OK) {
        lm_tensor_release(*out);
        *out = NULL;
    }
done:
    p->a = a, p->b = b, p->a3 = a3, p->b3 = b3, p->o3 = o3;
    if (s != LM_OK) plan_release(p);
    return s;
}

/* Runs a planned product. */
static lm_status run_plan(const matmul_plan *p) {
    /* nothing to compute (BLAS would also reject a zero leading dimension) */
    if (p->K == 0 || lm_tensor_numel(p->o3) == 0) return LM_OK;
    return p->be->matmul(p->o3, p->a3, p->b3, 1.0f, 0.0f, p->bias);
}

lm_status lm_matmul(lm_tensor **out, lm_tensor *a_in, lm_tensor *b_in) {
    return lm_matmul_bias(out, a_in, b_in, NULL);
}

/* An operand's bfloat16 rounding in its own layout: a transposed matrix
 * (a Linear layer's weight) stays transposed, so that the product runs as
 * it would on the rounded float32 operands (a copy would turn NT into NN,
 * which some OpenBLAS kernel sets, SkylakeX's, round differently). */
static lm_status cast_operand(lm_tensor **out, lm_tensor *t) {
    lm_tensor *base = NULL, *rounded = NULL;
    if (t->ndim < 2) return lm_autocast_operand(out, t);
    lm_status s = lm_tensor_transpose(&base, t, t->ndim - 2, t->ndim - 1);
    if (s != LM_OK) return s;
    if (lm_tensor_is_contiguous(t) || !lm_tensor_is_contiguous(base)) {
        lm_tensor_release(base);
        return lm_autocast_operand(out, t);
    }
    s = lm_autocast_operand(&rounded, base);
    if (s == LM_OK) s = lm_tensor_transpose(out, rounded, t->ndim - 2, t->ndim - 1);
    lm_tensor_release(base);
    lm_tensor_release(rounded);
    return s;
}

/* Under autocast the operands' bfloat16 roundings (lm_autocast.h); else
 * the operands themselves, retained. */
static lm_status cast_operands(lm_tensor **a, lm_tensor **b, lm_tensor *a_in, lm_tensor *b_in) {
    *a = *b = NULL;
    if (lm_autocast() == LM_AUTOCAST_OFF || a_in->storage->device != b_in->storage->device) {
        *a = lm_tensor_retain(a_in), *b = lm_tensor_retain(b_in);
        return LM_OK;
    }
    lm_status s = cast_operand(a, a_in);
    if (s == LM_OK) s = cast_operand(b, b_in);
    if (s != LM_OK) lm_tensor_release(*a), lm_tensor_release(*b), *a = *b = NULL;
    return s;
}

lm_status lm_matmul_bias(lm_tensor **out, lm_tensor *a_in, lm_tensor *b_in, const lm_tensor *bias) {
    matmul_plan p;
    lm_tensor *a = NULL, *b = NULL;
    *out = NULL;
    LM_TRY(cast_operands(&a, &b, a_in, b_in));
    lm_status s = plan_matmul(&p, out, a, b, bias);
    lm_tensor_release(a), lm_tensor_release(b);
    if (s == LM_OK) s = run_plan(&p);
    if (s != LM_OK) {
        lm_tensor_release(*out);
        *out = NULL;
    }
    plan_release(&p);
    return s;
}

lm_status lm_matmul_pair(lm_tensor **out1, lm_tensor *a1, lm_tensor *b1, lm_tensor **out2,
                         lm_tensor *a2, lm_tensor *b2) {
    matmul_plan p1, p2;
    *out1 = *out2 = NULL;
    lm_tensor *c1 = NULL, *d1 = NULL, *c2 = NULL, *d2 = NULL;
    lm_status s = cast_operands(&c1, &d1, a1, b1);
    if (s == LM_OK) s = cast_operands(&c2, &d2, a2, b2);
    if (s == LM_OK) s = plan_matmul(&p1, out1, c1, d1, NULL);
    if (s != LM_OK) {
        lm_tensor_release(c1), lm_tensor_release(d1), lm_tensor_release(c2), lm_tensor_release(d2);
        return s;
    }
    s = plan_matmul(&p2, out2, c2, d2, NULL);
    lm_tensor_release(c1), lm_tensor_release(d1), lm_tensor_release(c2), lm_tensor_release(d2);
    if (s == LM_OK) {
        /* side by side where the backend can (single matrices, both non-empty) */
        if (p1.be == p2.be && p1.be->matmul_pair && p1.K > 0 && p2.K > 0 && p1.o3->shape[0] == 1 &&
            p2.o3->shape[0] == 1)
            s = p1.be->matmul_pair(p1.o3, p1.a3, p1.b3, p2.o3, p2.a3, p2.b3);
        else {
            s = run_plan(&p1);
            if (s == LM_OK) s = run_plan(&p2);
        }
    }
    if (s != LM_OK) {
        lm_tensor_release(*out1);
        lm_tensor_release(*out2);
        *out1 = *out2 = NULL;
    }
    plan_release(&p1);
    plan_release(&p2);
    return s;
}
