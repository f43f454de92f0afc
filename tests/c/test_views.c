/* Shapes, strides and views: hand-computed expectations. */
#include "lm_autograd.h"
#include "lm_ops.h"
#include "test.h"
#include "test_tensor.h"

static lm_tensor *arange_2d(int64_t r, int64_t c) {
    lm_tensor *a, *v;
    lm_arange(&a, LM_FLOAT32, 0, 1, r * c);
    int64_t shape[2] = {r, c};
    lm_tensor_view(&v, a, 2, shape);
    lm_tensor_release(a);
    return v;
}

static void test_new_and_strides(void) {
    lm_tensor *t;
    int64_t shape[3] = {2, 3, 4};
    CHECK_OK(lm_tensor_new(&t, LM_FLOAT32, LM_CPU, 3, shape));
    CHECK(t->strides[0] == 12 && t->strides[1] == 4 && t->strides[2] == 1);
    CHECK(lm_tensor_numel(t) == 24);
    CHECK(lm_tensor_is_contiguous(t));
    lm_tensor_release(t);
    int64_t bad[2] = {2, -1};
    CHECK_FAILS(lm_tensor_new(&t, LM_FLOAT32, LM_CPU, 2, bad), LM_ERR_ARG, "negative");
    int64_t many[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    CHECK_FAILS(lm_tensor_new(&t, LM_FLOAT32, LM_CPU, 9, many), LM_ERR_ARG, "at most 8");
}

static void test_transpose_and_contiguous(void) {
    lm_tensor *a = arange_2d(2, 3), *t, *c;
    CHECK_OK(lm_tensor_transpose(&t, a, 0, 1));
    CHECK(t->shape[0] == 3 && t->shape[1] == 2);
    CHECK(!lm_tensor_is_contiguous(t));
    CHECK(t->storage == a->storage);
    /* t = [[0,3],[1,4],[2,5]] */
    CHECK(at(t, 1) == 3 && at(t, 2) == 1 && at(t, 5) == 5);
    CHECK_OK(lm_contiguous(&c, t));
    CHECK(lm_tensor_is_contiguous(c) && c->storage != a->storage);
    float *p = lm_tensor_f32(c);
    CHECK(p[0] == 0 && p[1] == 3 && p[2] == 1 && p[3] == 4 && p[4] == 2 && p[5] == 5);
    /* view of a transposed tensor needs a copy; reshape makes it */
    int64_t flat = 6;
    lm_tensor *v;
    CHECK_FAILS(lm_tensor_view(&v, t, 1, &flat), LM_ERR_SHAPE, "reshape");
    CHECK_OK(lm_tensor_reshape(&v, t, 1, &flat));
    CHECK(at(v, 1) == 3);
    lm_tensor_release(v);
    lm_tensor_release(c);
    lm_tensor_release(t);
    lm_tensor_release(a);
}

static void test_view_of_noncontiguous(void) {
    /* a [4, 6] narrowed to columns 2..5 is [4, 4] with row stride 6; viewing
     * it as [4, 2, 2] splits the contiguous inner run: allowed */
    lm_tensor *a = arange_2d(4, 6), *n, *v;
    CHECK_OK(lm_tensor_narrow(&n, a, 1, 1, 4));
    int64_t s3[3] = {4, 2, 2};
    CHECK_OK(lm_tensor_view(&v, n, 3, s3));
    CHECK(v->strides[0] == 6 && v->strides[1] == 2 && v->strides[2] == 1);
    CHECK(at(v, 4) == 7); /* row 1, first kept column */
    lm_tensor_release(v);
    /* merging rows of the narrowed tensor is not possible without a copy */
    int64_t s1[1] = {16};
    CHECK_FAILS(lm_tensor_view(&v, n, 1, s1), LM_ERR_SHAPE, "strides");
    int64_t inferred[2] = {-1, 8};
    CHECK_OK(lm_tensor_view(&v, a, 2, inferred));
    CHECK(v->shape[0] == 3);
    lm_tensor_release(v);
    int64_t wrong[2] = {5, 5};
    CHECK_FAILS(lm_tensor_view(&v, a, 2, wrong), LM_ERR_SHAPE, "25 elements");
    lm_tensor_release(n);
    lm_tensor_release(a);
}

static void test_select_narrow_expand(void) {
    lm_tensor *a = arange_2d(3, 4), *s, *n, *e, *u, *q;
    CHECK_OK(lm_tensor_select(&s, a, 0, 2)); /* row 3 */
    CHECK(s->ndim == 1 && s->shape[0] == 4 && at(s, 0) == 8);
    CHECK_FAILS(lm_tensor_select(&q, a, 0, 3), LM_ERR_ARG, "out of range");
    CHECK_FAILS(lm_tensor_narrow(&q, a, 1, 2, 3), LM_ERR_ARG, "out of range");
    CHECK_OK(lm_tensor_narrow(&n, a, 1, 1, 2)); /* columns 2..3 */
    CHECK(at(n, 0) == 1 && at(n, 2) == 5);
    int64_t shape[3] = {2, 3, 4};
    CHECK_OK(lm_tensor_expand(&e, a, 3, shape));
    CHECK(e->strides[0] == 0 && at(e, 12) == 0 && at(e, 23) == 11);
    int64_t bad[2] = {3, 5};
    CHECK_FAILS(lm_tensor_expand(&q, a, 2, bad), LM_ERR_SHAPE, "cannot become");
    CHECK_OK(lm_tensor_unsqueeze(&u, s, 0));
    CHECK(u->ndim == 2 && u->shape[0] == 1 && u->shape[1] == 4);
    CHECK_OK(lm_tensor_squeeze(&q, u, -1));
    CHECK(q->ndim == 1 && q->shape[0] == 4);
    lm_tensor_release(q);
    int perm[2] = {1, 0}, dup[2] = {0, 0};
    CHECK_OK(lm_tensor_permute(&q, a, 2, perm));
    CHECK(q->shape[0] == 4 && q->strides[0] == 1);
    lm_tensor_release(q);
    CHECK_FAILS(lm_tensor_permute(&q, a, 2, dup), LM_ERR_ARG, "repeated");
    lm_tensor_release(u);
    lm_tensor_release(e);
    lm_tensor_release(n);
    lm_tensor_release(s);
    /* views keep the storage alive after the base is released */
    lm_tensor *keep;
    lm_tensor_select(&keep, a, 0, 1);
    lm_tensor_release(a);
    CHECK(at(keep, 3) == 7);
    lm_tensor_release(keep);
}

static void test_copy_broadcast_and_dtype(void) {
    lm_tensor *dst, *row, *i32, *f;
    int64_t shape[2] = {3, 2};
    lm_full(&dst, LM_FLOAT32, LM_CPU, 2, shape, 0);
    float vals[2] = {1.5f, -2};
    int64_t two = 2;
    lm_from_host(&row, LM_FLOAT32, 1, &two, vals);
    CHECK_OK(lm_copy_(dst, row));
    CHECK(at(dst, 4) == 1.5 && at(dst, 5) == -2);
    CHECK_OK(lm_to_dtype(&i32, dst, LM_INT32));
    CHECK(i32->dtype == LM_INT32 && at(i32, 4) == 1 && at(i32, 5) == -2);
    CHECK_OK(lm_to_dtype(&f, i32, LM_FLOAT32));
    CHECK(at(f, 5) == -2);
    lm_tensor_release(f);
    lm_tensor_release(i32);
    lm_tensor_release(row);
    lm_tensor_release(dst);
}

/* The recorded contiguous of a contiguous leaf is a new view carrying the
 * node: the leaf stays a leaf and gets its gradient (no cycle). */
static void test_recorded_contiguous_of_a_leaf(void) {
    lm_tensor *x = arange_2d(2, 3), *y, *s;
    CHECK_OK(lm_set_requires_grad(x, true));
    CHECK_OK(lm_ag_contiguous(&y, x));
    CHECK(y != x && y->storage == x->storage);
    CHECK(lm_grad_fn(x) == NULL && lm_grad_fn(y) != NULL);
    CHECK_OK(lm_ag_reduce(&s, NULL, LM_SUM, y, -1, false));
    CHECK_OK(lm_backward(s, NULL, false));
    lm_tensor *g = lm_grad(x);
    CHECK(g && at(g, 0) == 1 && at(g, 5) == 1);
    lm_tensor_release(s);
    lm_tensor_release(y);
    lm_tensor_release(x);
}

TEST_MAIN(test_new_and_strides, test_transpose_and_contiguous, test_view_of_noncontiguous,
          test_select_narrow_expand, test_copy_broadcast_and_dtype,
          test_recorded_contiguous_of_a_leaf)
