/* Elementwise ops, broadcasting, reductions and matmul against hand-computed
 * values and the core's reference loops (lm_reference.h, themselves checked
 * in test_reference.c), on contiguous and non-contiguous inputs. */
#include <stdlib.h>
#include <string.h>

#include "autograd_rules.h"
#include "lm_cuda.h"
#include "lm_nn.h"
#include "lm_ops.h"
#include "lm_reference.h"
#include "lm_rng.h"
#include "lm_scalar_ops.h" /* lm_topk_row: the insertion, as reference */
#include "lm_threads.h"
#include "test.h"
#include "test_tensor.h"

static void test_binary_broadcast(void) {
    int64_t s23[2] = {2, 3}, s3[1] = {3}, s21[2] = {2, 1};
    float a_v[6] = {1, 2, 3, 4, 5, 6}, b_v[3] = {10, 20, 30}, c_v[2] = {100, 200};
    lm_tensor *a = from(2, s23, a_v), *b = from(1, s3, b_v), *c = from(2, s21, c_v), *r;
    CHECK_OK(lm_binary(&r, LM_ADD, a, b)); /* row broadcast */
    CHECK(at(r, 0) == 11 && at(r, 5) == 36);
    lm_tensor_release(r);
    CHECK_OK(lm_binary(&r, LM_SUB, a, c)); /* column broadcast */
    CHECK(at(r, 0) == -99 && at(r, 3) == -196);
    lm_tensor_release(r);
    CHECK_OK(lm_binary(&r, LM_MUL, c, b)); /* [2,1] x [3] -> [2,3] outer */
    CHECK(r->ndim == 2 && r->shape[0] == 2 && r->shape[1] == 3);
    CHECK(at(r, 2) == 3000 && at(r, 3) == 2000);
    lm_tensor_release(r);
    int64_t s2[1] = {2};
    lm_tensor *bad = from(1, s2, c_v);
    CHECK_FAILS(lm_binary(&r, LM_ADD, a, bad), LM_ERR_SHAPE, "[2, 3] and [2]");
    lm_tensor_release(bad);
    /* transposed (non-contiguous) operand */
    lm_tensor *at_, *sq;
    lm_tensor_transpose(&at_, a, 0, 1); /* [[1,4],[2,5],[3,6]] */
    CHECK_OK(lm_binary(&sq, LM_MUL, at_, at_));
    CHECK(at(sq, 1) == 16 && at(sq, 4) == 9);
    lm_tensor_release(sq);
    CHECK_OK(lm_binary_scalar(&r, LM_DIV, a, 2, true)); /* 2 / a */
    CHECK_NEAR(at(r, 3), 0.5, 1e-7);
    lm_tensor_release(r);
    CHECK_OK(lm_binary_scalar(&r, LM_GT, a, 3, false));
    CHECK(at(r, 2) == 0 && at(r, 3) == 1 && r->dtype == LM_FLOAT32);
    lm_tensor_release(r);
    lm_tensor_release(at_);
    lm_tensor_release(a);
    lm_tensor_release(b);
    lm_tensor_release(c);
}

static void test_unary(void) {
    int64_t s4[1] = {4};
    float v[4] = {-2, -0.5f, 0, 1.5f};
    lm_tensor *x = from(1, s4, v), *r;
    CHECK_OK(lm_unary(&r, LM_ELU, x, 1.0, 0));
    CHECK_NEAR(at(r, 0), expm1(-2.0), 1e-6);
    CHECK_NEAR(at(r, 3), 1.5, 0);
    lm_tensor_release(r);
    CHECK_OK(lm_unary(&r, LM_SIGMOID, x, 0, 0));
    CHECK_NEAR(at(r, 1), 1 / (1 + exp(0.5)), 1e-6);
    lm_tensor_release(r);
    CHECK_OK(lm_unary(&r, LM_CLAMP, x, -1, 1));
    CHECK(at(r, 0) == -1 && at(r, 3) == 1 && at(r, 1) == -0.5);
    lm_tensor_release(r);
    CHECK_OK(lm_unary(&r, LM_SIGN, x, 0, 0));
    CHECK(at(r, 0) == -1 && at(r, 2) == 0 && at(r, 3) == 1);
    lm_tensor_release(r);
    CHECK_OK(lm_unary(&r, LM_POW_SCALAR, x, 2, 0));
    CHECK(at(r, 0) == 4);
    lm_tensor_release(r);
    /* GELU at -2, -0.5, 0, 1.5, computed in double outside Lumen: 0.5 x erfc(-x / sqrt 2),
     * and the tanh form 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) */
    CHECK_OK(lm_unary(&r, LM_GELU, x, 0, 0));
    CHECK_NEAR(at(r, 0), -0.045500263896358, 1e-6);
    CHECK_NEAR(at(r, 1), -0.154268769362993, 1e-6);
    CHECK(at(r, 2) == 0);
    CHECK_NEAR(at(r, 3), 1.399789198096713, 1e-6);
    lm_tensor_release(r);
    CHECK_OK(lm_unary(&r, LM_GELU_TANH, x, 0, 0));
    CHECK_NEAR(at(r, 0), -0.045402305912225, 1e-6);
    CHECK_NEAR(at(r, 1), -0.154285990174856, 1e-6);
    CHECK_NEAR(at(r, 3), 1.399571576980233, 1e-6);
    lm_tensor_release(r);
    CHECK_OK(lm_unary_into(x, LM_ABS, x, 0, 0)); /* in place */
    CHECK(at(x, 0) == 2 && at(x, 1) == 0.5);
    lm_tensor_release(x);
}

/* leaky_relu and the rounding ops, values by hand: the slope below 0 (and
 * at 0, where -0 stays -0), NaN passing; round half to even (torch.round),
 * int32 values unchanged and still int32. */
static void test_leaky_relu_and_round(void) {
    int64_t s8[1] = {8};
    float v[8] = {-2, -0.5f, -0.0f, 0, 1.5f, 0.5f, -2.5f, NAN};
    lm_tensor *x = from(1, s8, v), *r;
    CHECK_OK(lm_unary(&r, LM_LEAKY_RELU, x, 0.01, 0));
    CHECK(at(r, 0) == -2 * 0.01f && at(r, 1) == -0.5f * 0.01f && at(r, 4) == 1.5f &&
          at(r, 5) == 0.5f);
    CHECK(at(r, 2) == 0 && signbit(at(r, 2)) && at(r, 3) == 0 && !signbit(at(r, 3)));
    CHECK(isnan(at(r, 7)));
    lm_tensor_release(r);
    CHECK_OK(lm_unary(&r, LM_LEAKY_RELU, x, -3, 0)); /* any slope, as torch */
    CHECK(at(r, 0) == 6 && at(r, 1) == 1.5f && at(r, 4) == 1.5f);
    lm_tensor_release(r);
    CHECK_OK(lm_unary(&r, LM_ROUND, x, 0, 0));
    CHECK(at(r, 0) == -2 && at(r, 1) == 0 && signbit(at(r, 1)) && at(r, 4) == 2);
    CHECK(at(r, 5) == 0 && !signbit(at(r, 5)) && at(r, 6) == -2 && isnan(at(r, 7)));
    lm_tensor_release(r);
    float halves[6] = {0.5f, 1.5f, 2.5f, -2.5f, 3.5f, 2.4999998f};
    int64_t s6[1] = {6};
    lm_tensor *h = from(1, s6, halves);
    CHECK_OK(lm_unary(&r, LM_ROUND, h, 0, 0));
    CHECK(at(r, 0) == 0 && at(r, 1) == 2 && at(r, 2) == 2 && at(r, 3) == -2 && at(r, 4) == 4 &&
          at(r, 5) == 2);
    lm_tensor_release(r);
    CHECK_OK(lm_unary(&r, LM_FLOOR, h, 0, 0));
    CHECK(at(r, 3) == -3 && at(r, 5) == 2);
    lm_tensor_release(r);
    CHECK_OK(lm_unary(&r, LM_CEIL, h, 0, 0));
    CHECK(at(r, 3) == -2 && at(r, 5) == 3);
    lm_tensor_release(r);
    CHECK_OK(lm_unary(&r, LM_TRUNC, h, 0, 0));
    CHECK(at(r, 3) == -2 && at(r, 4) == 3);
    lm_tensor_release(r);
    int32_t iv[3] = {7, -3, 2};
    int64_t s3[1] = {3};
    lm_tensor *n;
    lm_from_host(&n, LM_INT32, 1, s3, iv);
    lm_unary_op rounding[4] = {LM_FLOOR, LM_CEIL, LM_ROUND, LM_TRUNC};
    for (int k = 0; k < 4; k++) {
        CHECK_OK(lm_unary(&r, rounding[k], n, 0, 0));
        CHECK(r->dtype == LM_INT32 && at(r, 0) == 7 && at(r, 1) == -3 && at(r, 2) == 2);
        lm_tensor_release(r);
    }
    CHECK_OK(lm_unary(&r, LM_LEAKY_RELU, n, 0.5, 0)); /* a slope makes fractions: float32 */
    CHECK(r->dtype == LM_FLOAT32 && at(r, 1) == -1.5f);
    lm_tensor_release(r);
    lm_tensor_release(n);
    lm_tensor_release(h);
    lm_tensor_release(x);
}

/* torch's activations at their kinks, values by hand (SiLU's from torch
 * 1.13): the forward and the fused gradient (g = 1) at hardswish's -3 and 3,
 * the shrinks' +-lambd, the threshold, and the infinities. */
static void test_activation_kinks(void) {
    /* the kinks, either side of 0, the infinities and NaN (torch 1.13's
     * vectorised loop's values at each) */
    int64_t s7[1] = {7};
    float v[7] = {-3, 3, -0.5f, 0.5f, -INFINITY, INFINITY, NAN};
    lm_tensor *x = from(1, s7, v), *ones = from(1, s7, (float[]){1, 1, 1, 1, 1, 1, 1}), *r, *d;
    const lm_backend *be = lm_backend_of(x);
    struct {
        lm_unary_op op;
        double p0, p1;
        float y[7], dy[7];
    } want[] = {
        {LM_HARDSWISH,
         0,
         0,
         {0, 3, -0.5f * 2.5f / 6, 0.5f * 3.5f / 6, NAN, INFINITY, NAN},
         {-0.5f, 1, -0.5f / 3 + 0.5f, 0.5f / 3 + 0.5f, 0, 1, NAN}},
        {LM_HARDSIGMOID,
         0,
         0,
         {0, 1, 2.5f / 6, 3.5f / 6, 0, 1, NAN},
         {0, 0, 1 / 6.f, 1 / 6.f, 0, 0, 0}},
        {LM_HARDSHRINK, 0.5, 0, {-3, 3, 0, 0, -INFINITY, INFINITY, NAN}, {1, 1, 0, 0, 1, 1, 0}},
        {LM_SOFTSHRINK, 0.5, 0, {-2.5f, 2.5f, 0, 0, -INFINITY, INFINITY, 0}, {1, 1, 0, 0, 1, 1, 0}},
        {LM_THRESHOLD, 0.5, -2, {-2, 3, -2, -2, -2, INFINITY, NAN}, {0, 1, 0, 0, 0, 1, 1}},
        {LM_LOGSIGMOID,
         0,
         0,
         {-3.0485873f, -0.0485873f, -0.9740770f, -0.4740770f, -INFINITY, 0, NAN},
         {0.9525741f, 0.0474259f, 0.6224593f, 0.3775407f, 1, 0, NAN}},
        {LM_SILU, /* torch 1.13: NaN at -inf, and NaN gradients at both infinities */
         0,
         0,
         {-0.142277613f, 2.85772252f, -0.188770339f, 0.311229676f, NAN, INFINITY, NAN},
         {-0.0881041065f, 1.08810413f, 0.260038823f, 0.739961207f, NAN, NAN, NAN}},
    };
    for (size_t k = 0; k < sizeof want / sizeof *want; k++) {
        CHECK_OK(lm_unary(&r, want[k].op, x, want[k].p0, want[k].p1));
        CHECK_OK(lm_tensor_new_like(&d, x));
        CHECK_OK(be->unary_backward(want[k].op, d, ones, x, r, want[k].p0));
        for (int i = 0; i < 7; i++) {
            float y = want[k].y[i];
            CHECK(isnan(y) ? isnan(at(r, i))
                           : fabs(at(r, i) - y) <= 1e-6 * fmax(1, fabs(y)) || at(r, i) == y);
            float dy = want[k].dy[i];
            CHECK(isnan(dy) ? isnan(at(d, i)) : fabs(at(d, i) - dy) <= 1e-6);
        }
        lm_tensor_release(r);
        lm_tensor_release(d);
    }
    lm_tensor_release(ones);
    lm_tensor_release(x);
}

static void test_int32(void) {
    int64_t s3[1] = {3};
    int32_t v[3] = {7, -3, 2};
    lm_tensor *a, *r;
    lm_from_host(&a, LM_INT32, 1, s3, v);
    CHECK_OK(lm_binary(&r, LM_ADD, a, a));
    CHECK(r->dtype == LM_INT32 && at(r, 1) == -6);
    lm_tensor_release(r);
    CHECK_OK(lm_binary(&r, LM_DIV, a, a)); /* true division gives float */
    CHECK(r->dtype == LM_FLOAT32 && at(r, 0) == 1);
    lm_tensor_release(r);
    CHECK_OK(lm_binary_scalar(&r, LM_MUL, a, 0.5, false));
    CHECK(r->dtype == LM_FLOAT32 && at(r, 0) == 3.5);
    lm_tensor_release(r);
    CHECK_OK(lm_reduce(&r, NULL, LM_SUM, a, -1, false));
    CHECK(r->dtype == LM_INT32 && at(r, 0) == 6);
    lm_tensor_release(r);
    CHECK_OK(lm_reduce(&r, NULL, LM_ARGMIN, a, -1, false));
    CHECK(at(r, 0) == 1);
    lm_tensor_release(r);
    lm_tensor_release(a);
}

static void test_where(void) {
    int64_t s3[1] = {3}, s1[1] = {1};
    float c[3] = {1, 0, 1}, a[3] = {1, 2, 3}, b[1] = {-1};
    lm_tensor *tc = from(1, s3, c), *ta = from(1, s3, a), *tb = from(1, s1, b), *r;
    CHECK_OK(lm_where(&r, tc, ta, tb));
    CHECK(at(r, 0) == 1 && at(r, 1) == -1 && at(r, 2) == 3);
    lm_tensor_release(r);
    lm_tensor_release(tc);
    lm_tensor_release(ta);
    lm_tensor_release(tb);
}

static void test_reductions(void) {
    int64_t s23[2] = {2, 3};
    float v[6] = {1, 5, 3, 4, 2, 6};
    lm_tensor *a = from(2, s23, v), *r, *idx;
    CHECK_OK(lm_reduce(&r, NULL, LM_SUM, a, -1, false));
    CHECK(r->ndim == 0 && at(r, 0) == 21);
    lm_tensor_release(r);
    CHECK_OK(lm_reduce(&r, NULL, LM_SUM, a, 0, false)); /* column sums */
    CHECK(r->ndim == 1 && r->shape[0] == 3 && at(r, 0) == 5 && at(r, 2) == 9);
    lm_tensor_release(r);
    CHECK_OK(lm_reduce(&r, NULL, LM_MEAN, a, 1, true));
    CHECK(r->ndim == 2 && r->shape[1] == 1 && at(r, 0) == 3 && at(r, 1) == 4);
    lm_tensor_release(r);
    CHECK_OK(lm_reduce(&r, &idx, LM_MAX, a, 1, false));
    CHECK(at(r, 0) == 5 && at(r, 1) == 6 && at(idx, 0) == 1 && at(idx, 1) == 2);
    lm_tensor_release(r);
    lm_tensor_release(idx);
    CHECK_OK(lm_reduce(&r, NULL, LM_ARGMIN, a, 0, false));
    CHECK(at(r, 0) == 0 && at(r, 1) == 1 && at(r, 2) == 0);
    lm_tensor_release(r);
    CHECK_OK(lm_reduce(&r, NULL, LM_VAR, a, -1, false));
    CHECK_NEAR(at(r, 0), 3.5, 1e-6); /* unbiased variance of 1..6 */
    lm_tensor_release(r);
    /* over a transposed view: sums of the rows of a^T are a's column sums */
    lm_tensor *t;
    lm_tensor_transpose(&t, a, 0, 1);
    CHECK_OK(lm_reduce(&r, NULL, LM_SUM, t, 1, false));
    CHECK(at(r, 0) == 5 && at(r, 1) == 7 && at(r, 2) == 9);
    lm_tensor_release(r);
    lm_tensor_release(t);
    CHECK_FAILS(lm_reduce(&r, NULL, LM_SUM, a, 2, false), LM_ERR_ARG, "dimension 3");
    /* NaN propagates through max */
    v[4] = NAN;
    lm_tensor *n = from(2, s23, v);
    CHECK_OK(lm_reduce(&r, NULL, LM_MAX, n, -1, false));
    CHECK(isnan(at(r, 0)));
    lm_tensor_release(r);
    lm_tensor_release(n);
    lm_tensor_release(a);
}

/* Large tensors cross the threading threshold: results must not depend on
 * the thread count, and must match a double-precision loop. */
static void test_threads_large(void) {
    int64_t shape[2] = {300, 1000};
    lm_tensor *x, *col1, *col2, *all1, *all2, *sq;
    lm_tensor_new(&x, LM_FLOAT32, LM_CPU, 2, shape);
    lm_manual_seed(7);
    lm_rand_normal_(x, 0, 1);
    lm_set_num_threads(1);
    CHECK_OK(lm_reduce(&col1, NULL, LM_SUM, x, 0, false));
    CHECK_OK(lm_reduce(&all1, NULL, LM_SUM, x, -1, false));
    lm_set_num_threads(2);
    CHECK_OK(lm_reduce(&col2, NULL, LM_SUM, x, 0, false));
    CHECK_OK(lm_reduce(&all2, NULL, LM_SUM, x, -1, false));
    CHECK_OK(lm_binary(&sq, LM_MUL, x, x));
    const float *p = lm_tensor_f32(x);
    double total = 0, c7 = 0;
    int bad = 0;
    for (int64_t i = 0; i < 300 * 1000; i++) {
        total += p[i];
        if (i % 1000 == 7) c7 += p[i];
        if (lm_tensor_f32(sq)[i] != p[i] * p[i]) bad++;
    }
    CHECK(bad == 0);
    CHECK_NEAR(at(all1, 0), total, 1e-3);
    CHECK(at(all1, 0) == at(all2, 0));
    CHECK_NEAR(at(col1, 7), c7, 1e-3);
    CHECK(memcmp(lm_tensor_f32(col1), lm_tensor_f32(col2), 1000 * sizeof(float)) == 0);
    lm_tensor_release(x);
    lm_tensor_release(col1);
    lm_tensor_release(col2);
    lm_tensor_release(all1);
    lm_tensor_release(all2);
    lm_tensor_release(sq);
}

static void test_matmul(void) {
    int64_t sa[2] = {5, 7}, sb[2] = {7, 3}, sbt[2] = {3, 7};
    lm_tensor *a, *b, *bt_base, *bt, *r;
    lm_tensor_new(&a, LM_FLOAT32, LM_CPU, 2, sa);
    lm_tensor_new(&b, LM_FLOAT32, LM_CPU, 2, sb);
    lm_tensor_new(&bt_base, LM_FLOAT32, LM_CPU, 2, sbt);
    lm_rand_normal_(a, 0, 1);
    lm_rand_normal_(b, 0, 1);
    double want[15];
    lm_tensor *ref;
    CHECK_OK(lm_reference_matmul(&ref, a, b));
    for (int i = 0; i < 15; i++) want[i] = at(ref, i);
    lm_tensor_release(ref);
    CHECK_OK(lm_matmul(&r, a, b));
    CHECK(r->shape[0] == 5 && r->shape[1] == 3);
    double err = 0;
    for (int i = 0; i < 15; i++) err = fmax(err, fabs(at(r, i) - want[i]));
    CHECK(err < 1e-5);
    lm_tensor_release(r);
    /* b given as the transpose of a [3, 7] tensor: goes to BLAS as Trans */
    CHECK_FAILS(lm_copy_(bt_base, b), LM_ERR_SHAPE, "cannot become"); /* [7,3] into [3,7] */
    lm_tensor *b_t;
    lm_tensor_transpose(&b_t, b, 0, 1);
    lm_copy_(bt_base, b_t);
    lm_tensor_transpose(&bt, bt_base, 0, 1); /* [7, 3] view with strides (1, 7) */
    CHECK(!lm_tensor_is_contiguous(bt));
    CHECK_OK(lm_matmul(&r, a, bt));
    err = 0;
    for (int i = 0; i < 15; i++) err = fmax(err, fabs(at(r, i) - want[i]));
    CHECK(err < 1e-5);
    lm_tensor_release(r);
    /* batched: [2, 5, 7] @ [7, 3] folds into one GEMM; each batch must match */
    int64_t s3[3] = {2, 5, 7};
    lm_tensor *a3;
    lm_tensor_expand(&a3, a, 3, s3);
    lm_tensor *a3c;
    lm_clone(&a3c, a3);
    CHECK_OK(lm_matmul(&r, a3c, b));
    CHECK(r->ndim == 3 && r->shape[0] == 2 && r->shape[1] == 5 && r->shape[2] == 3);
    CHECK_NEAR(at(r, 15 + 4), want[4], 1e-5);
    lm_tensor_release(r);
    /* vector @ matrix and matrix @ vector */
    lm_tensor *row, *col;
    lm_tensor_select(&row, a, 0, 0);  /* [7] */
    lm_tensor_select(&col, bt, 1, 0); /* [7], strided */
    CHECK_OK(lm_matmul(&r, row, b));
    CHECK(r->ndim == 1 && r->shape[0] == 3);
    CHECK_NEAR(at(r, 1), want[1], 1e-5);
    lm_tensor_release(r);
    CHECK_OK(lm_matmul(&r, a, col));
    CHECK(r->ndim == 1 && r->shape[0] == 5);
    CHECK_NEAR(at(r, 2), want[2 * 3], 1e-5);
    lm_tensor_release(r);
    CHECK_FAILS(lm_matmul(&r, a, a), LM_ERR_SHAPE, "inner dimensions differ");
    lm_tensor_release(row);
    lm_tensor_release(col);
    lm_tensor_release(a3);
    lm_tensor_release(a3c);
    lm_tensor_release(b_t);
    lm_tensor_release(bt);
    lm_tensor_release(bt_base);
    lm_tensor_release(a);
    lm_tensor_release(b);
}

/* The fused unary gradients agree with their composite reference formulas. */
static void test_fused_unary_gradients(void) {
    int64_t shape[2] = {37, 41};
    lm_tensor *x, *g;
    lm_tensor_new(&x, LM_FLOAT32, LM_CPU, 2, shape);
    lm_tensor_new(&g, LM_FLOAT32, LM_CPU, 2, shape);
    lm_manual_seed(5);
    lm_rand_normal_(x, 0, 2);
    lm_rand_normal_(g, 0, 1);
    /* every op with a fused gradient, each with a parameter that matters
     * (the shrinks' lambd and the threshold within the values drawn) */
    for (int k = 0; k < LM_UNARY_COUNT; k++) {
        lm_unary_op op = (lm_unary_op)k;
        if (!lm_unary_has_fused_grad(op)) continue;
        double alpha = op == LM_ELU          ? 0.7
                       : op == LM_LEAKY_RELU ? 0.2
                       : op == LM_CELU       ? 1.3
                       : op == LM_HARDSHRINK ? 0.8
                       : op == LM_SOFTSHRINK ? 0.4
                       : op == LM_THRESHOLD  ? -0.3
                                             : 0;
        lm_tensor *y;
        lm_unary(&y, op, x, alpha, 0);
        lm_node node = {0};
        node.refcount = 1;
        node.iparams[0] = op;
        node.p[0] = alpha;
        /* what the tape keeps of this op (the fused path then lets the one
         * it kept stand in for the other); the composite reference reads both */
        int saves = lm_unary_grad_saves(op, alpha);
        lm_node_save(&node, 0, (saves & LM_UNARY_SAVES_X) ? x : NULL);
        lm_node_save(&node, 1, (saves & LM_UNARY_SAVES_Y) ? y : NULL);
        lm_tensor *fused[LM_NODE_MAX_INPUTS] = {0}, *ref[LM_NODE_MAX_INPUTS] = {0};
        CHECK_OK(lm_rule_unary(&node, g, fused));
        lm_node_save(&node, 0, x);
        lm_node_save(&node, 1, y);
        CHECK_OK(lm_rule_unary_composite(&node, g, ref));
        double worst = 0;
        for (int64_t i = 0; i < 37 * 41; i++)
            worst = fmax(worst, fabs(at(fused[0], i) - at(ref[0], i)));
        CHECK(worst < 1e-5);
        lm_tensor_release(fused[0]);
        lm_tensor_release(ref[0]);
        lm_node_save(&node, 0, NULL);
        lm_node_save(&node, 1, NULL);
        lm_tensor_release(y);
    }
    lm_tensor_release(x);
    lm_tensor_release(g);
}

/* Every op family on a tensor whose device has no backend fails with
 * LM_ERR_DEVICE and the registry's message (never a NULL table): device 7,
 * which nobody registers, and CUDA where this build or machine has none. */
/* gather, scatter_add and cumsum on hand-computed values */
static void test_gather_scatter_cumsum(void) {
    int64_t s23[2] = {2, 3}, s22[2] = {2, 2};
    lm_tensor *x = from(2, s23, (float[]){1, 2, 3, 4, 5, 6}), *idx, *xt, *r;
    lm_from_host(&idx, LM_INT32, 2, s22, (int32_t[]){2, 0, 1, 1}); /* 0-based */
    CHECK_OK(lm_gather(&r, x, 1, idx)); /* [[x00 x02] ...]: [[3, 1], [5, 5]] */
    CHECK(at(r, 0) == 3 && at(r, 1) == 1 && at(r, 2) == 5 && at(r, 3) == 5);
    lm_tensor_release(r);
    /* x^T [3, 2] = [[1, 4], [2, 5], [3, 6]], a strided view: rows idx along dim 0 */
    CHECK_OK(lm_tensor_transpose(&xt, x, 0, 1));
    CHECK_OK(lm_gather(&r, xt, 0, idx)); /* [[xt20 xt01] [xt10 xt11]] = [[3, 4], [2, 5]] */
    CHECK(at(r, 0) == 3 && at(r, 1) == 4 && at(r, 2) == 2 && at(r, 3) == 5);
    lm_tensor_release(r);
    CHECK_FAILS(lm_gather(&r, xt, 0, x), LM_ERR_ARG, "gather: index must be int32, got float32");
    lm_tensor_release(idx);
    lm_from_host(&idx, LM_INT32, 2, s22, (int32_t[]){0, 3, 1, 1});
    CHECK_FAILS(lm_gather(&r, x, 1, idx), LM_ERR_ARG,
                "gather: index 4 out of range for 3 elements along dimension 2");
    CHECK(r == NULL);

    /* duplicates accumulate: along dim 0, x[dup[i][j]][j] += src[i][j]; dup names row 0 twice in
     * column 0 (1 + 10 + 30) and row 1 twice in column 1 (5 + 20 + 40) */
    lm_tensor *src = from(2, s22, (float[]){10, 20, 30, 40}), *dup;
    lm_from_host(&dup, LM_INT32, 2, s22, (int32_t[]){0, 1, 0, 1});
    CHECK_OK(lm_scatter_add(&r, x, 0, dup, src));
    CHECK(at(r, 0) == 41 && at(r, 1) == 2 && at(r, 2) == 3 && at(r, 3) == 4 && at(r, 4) == 65 &&
          at(r, 5) == 6);
    lm_tensor_release(r);
    /* gather's gradient: g = 1 scattered back, twice where read twice */
    lm_tensor *leaf = from(2, s23, (float[]){1, 2, 3, 4, 5, 6}), *g;
    lm_from_host(&g, LM_INT32, 2, s22, (int32_t[]){2, 2, 0, 0});
    CHECK_OK(lm_set_requires_grad(leaf, true));
    CHECK_OK(lm_ag_gather(&r, leaf, 1, g));
    lm_tensor *ones;
    CHECK_OK(lm_full(&ones, LM_FLOAT32, LM_CPU, 2, s22, 1));
    CHECK_OK(lm_backward(r, ones, false));
    lm_tensor *gx = lm_grad(leaf);
    CHECK(gx && at(gx, 0) == 0 && at(gx, 2) == 2 && at(gx, 3) == 2 && at(gx, 5) == 0);
    lm_tensor_release(ones);
    lm_tensor_release(r);
    lm_tensor_release(g);
    lm_tensor_release(leaf);

    CHECK_OK(lm_cumsum(&r, x, 1, false)); /* [[1, 3, 6], [4, 9, 15]] */
    CHECK(at(r, 2) == 6 && at(r, 4) == 9 && at(r, 5) == 15);
    lm_tensor_release(r);
    CHECK_OK(lm_cumsum(&r, xt, 1, true)); /* x^T summed from the end: [[5, 4], [7, 5], [9, 6]] */
    CHECK(at(r, 0) == 5 && at(r, 1) == 4 && at(r, 4) == 9 && at(r, 5) == 6);
    lm_tensor_release(r);
    lm_tensor *xi;
    lm_from_host(&xi, LM_INT32, 2, s22, (int32_t[]){7, -3, 2, 1});
    CHECK_OK(lm_cumsum(&r, xi, 0, false)); /* int32 stays int32: [[7, -3], [9, -2]] */
    CHECK(r->dtype == LM_INT32 && at(r, 2) == 9 && at(r, 3) == -2);
    lm_tensor_release(r);
    lm_tensor_release(xi);
    lm_tensor_release(dup);
    lm_tensor_release(src);
    lm_tensor_release(idx);
    lm_tensor_release(xt);
    lm_tensor_release(x);
}

static void check_no_backend(lm_device device, const char *needle) {
    int64_t shape[2] = {2, 2};
    lm_tensor *x, *r = NULL, *idx = NULL;
    CHECK_OK(lm_full(&x, LM_FLOAT32, LM_CPU, 2, shape, 1));
    CHECK_OK(lm_full(&idx, LM_INT32, LM_CPU, 1, shape, 0));
    /* x's bytes claimed by `device`; never released (huge counts) */
    lm_storage storage = *x->storage;
    storage.device = device;
    storage.refcount = 1 << 20;
    lm_tensor ghost = *x;
    ghost.storage = &storage;
    ghost.refcount = 1 << 20;
    ghost.autograd = NULL;
    CHECK(lm_backend_of(&ghost) == NULL && strstr(lm_last_error(), needle));
    double v;
    float host[4];
    lm_optim_params sgd = {.kind = LM_OPT_SGD, .lr = 0.1};
    lm_conv_options conv = {1, 1, 0, 0, 1, 1, 1};
    CHECK_FAILS(lm_unary_into(&ghost, LM_EXP, &ghost, 0, 0), LM_ERR_DEVICE, needle);
    CHECK_FAILS(lm_binary_into(&ghost, LM_ADD, &ghost, &ghost), LM_ERR_DEVICE, needle);
    CHECK_FAILS(lm_binary_scalar_into(&ghost, LM_MUL, &ghost, 3, false), LM_ERR_DEVICE, needle);
    CHECK_FAILS(lm_where(&r, &ghost, &ghost, &ghost), LM_ERR_DEVICE, needle);
    CHECK_FAILS(lm_reduce(&r, NULL, LM_SUM, &ghost, -1, false), LM_ERR_DEVICE, needle);
    CHECK_FAILS(lm_matmul(&r, &ghost, &ghost), LM_ERR_DEVICE, needle);
    CHECK_FAILS(lm_fill_(&ghost, 0), LM_ERR_DEVICE, needle);
    CHECK_FAILS(lm_copy_(&ghost, &ghost), LM_ERR_DEVICE, needle);
    CHECK_FAILS(lm_clone(&r, &ghost), LM_ERR_DEVICE, needle);
    CHECK_FAILS(lm_to_dtype(&r, &ghost, LM_INT32), LM_ERR_DEVICE, needle);
    CHECK_FAILS(lm_to_device(&r, &ghost, LM_CPU), LM_ERR_DEVICE, needle);
    CHECK_FAILS(lm_to_host(&ghost, host), LM_ERR_DEVICE, needle);
    CHECK_FAILS(lm_get_element(&ghost, 0, &v), LM_ERR_DEVICE, needle);
    CHECK_FAILS(lm_cat(&r, 1, (lm_tensor *const[]){&ghost}, 0), LM_ERR_DEVICE, needle);
    lm_tensor *top_idx = NULL;
    CHECK_FAILS(lm_topk(&r, &top_idx, &ghost, 1, true), LM_ERR_DEVICE, needle);
    CHECK_FAILS(lm_rand_uniform_(&ghost, 0, 1), LM_ERR_DEVICE, needle);
    CHECK_FAILS(lm_ag_softmax(&r, &ghost, 1, false), LM_ERR_DEVICE, needle);
    CHECK_FAILS(lm_ag_dropout(&r, &ghost, 0.5), LM_ERR_DEVICE, needle);
    lm_tensor *images;
    CHECK_OK(lm_tensor_view(&images, &ghost, 4, (int64_t[]){1, 1, 2, 2}));
    CHECK_FAILS(lm_ag_pool2d(&r, images, 1, 1, &conv, true), LM_ERR_DEVICE, needle);
    lm_tensor_release(images);
    CHECK_FAILS(lm_optim_step(&sgd, &ghost, &ghost, NULL, NULL), LM_ERR_DEVICE, needle);
    CHECK(r == NULL && top_idx == NULL);
    CHECK_FAILS(lm_index_select(&r, &ghost, idx), LM_ERR_DEVICE, needle);
    lm_tensor_release(x);
    lm_tensor_release(idx);
}

/* A large k merge sorts each row on the CPU (x:sort asks for every column);
 * it must give the insertion's result bit for bit: ties in column order,
 * -0 and +0 as equals, NaN after the numbers in column order, both
 * directions, k below and at the row's length. */
static void test_topk_sorted_as_inserted(void) {
    enum { ROWS = 7, COLS = 300 };
    static float x[ROWS * COLS], want_v[COLS], got_v[ROWS * COLS];
    static int32_t want_i[COLS], got_i[ROWS * COLS];
    uint32_t state = 12345;
    for (int i = 0; i < ROWS * COLS; i++) {
        state = state * 1664525u + 1013904223u;
        int r = (int)(state >> 24) % 16; /* 13 values, many ties, two zeros and a NaN */
        x[i] = r == 13 ? NAN : r == 14 ? -0.0f : r == 15 ? 0.0f : (float)(r - 6) * 0.5f;
    }
    int64_t shape[2] = {ROWS, COLS};
    lm_tensor *t = from(2, shape, x);
    int64_t ks[3] = {65, 200, COLS};
    for (int largest = 0; largest < 2; largest++)
        for (int q = 0; q < 3; q++) {
            int64_t k = ks[q];
            lm_tensor *v, *ix;
            CHECK_OK(lm_topk(&v, &ix, t, k, largest));
            CHECK_OK(lm_to_host(v, got_v));
            CHECK_OK(lm_to_host(ix, got_i));
            bool same = true;
            for (int r = 0; r < ROWS; r++) {
                lm_topk_row(x + r * COLS, COLS, k, largest, want_v, want_i);
                same = same && !memcmp(want_v, got_v + r * k, (size_t)k * sizeof(float)) &&
                       !memcmp(want_i, got_i + r * k, (size_t)k * sizeof(int32_t));
            }
            CHECK(same);
            lm_tensor_release(v);
            lm_tensor_release(ix);
        }
    lm_tensor_release(t);
}

static void test_no_backend(void) {
    check_no_backend((lm_device)7, "no backend is registered for device 7");
    if (!lm_cuda_available()) check_no_backend(LM_CUDA, "CUDA is not available");
}

TEST_MAIN(test_fused_unary_gradients, test_binary_broadcast, test_unary, test_leaky_relu_and_round,
          test_activation_kinks, test_int32, test_where, test_reductions, test_threads_large,
          test_matmul, test_no_backend, test_gather_scatter_cumsum, test_topk_sorted_as_inserted)
