/* The reference loops (lm_reference.h) against hand-computed values, then
 * the CPU backend's matmul (BLAS) and conv2d (im2col + GEMM) against the
 * references on random, strided and batched inputs. */
#include <stdlib.h>

#include "lm_ops.h"
#include "lm_reference.h"
#include "lm_rng.h"
#include "test.h"
#include "test_tensor.h"

/* Largest |got - want| over all elements (any layout); inf if shapes differ. */
static double max_diff(const lm_tensor *got, const lm_tensor *want) {
    if (!lm_tensor_same_shape(got, want)) return INFINITY;
    double worst = 0;
    for (int64_t i = 0; i < lm_tensor_numel(want); i++)
        worst = fmax(worst, fabs(at(got, i) - at(want, i)));
    return worst;
}

static void test_matmul_by_hand(void) {
    int64_t s23[2] = {2, 3}, s32[2] = {3, 2};
    float av[6] = {1, 2, 3, 4, 5, 6}, bv[6] = {7, 8, 9, 10, 11, 12};
    float btv[6] = {7, 9, 11, 8, 10, 12}; /* b's transpose, stored [2, 3] */
    lm_tensor *a = from(2, s23, av), *b = from(2, s32, bv), *bt_store = from(2, s23, btv), *bt, *r;
    /* [[1 2 3] [4 5 6]] @ [[7 8] [9 10] [11 12]] = [[58 64] [139 154]] */
    CHECK_OK(lm_reference_matmul(&r, a, b));
    CHECK(r->ndim == 2 && r->shape[0] == 2 && r->shape[1] == 2);
    CHECK(at(r, 0) == 58 && at(r, 1) == 64 && at(r, 2) == 139 && at(r, 3) == 154);
    lm_tensor_release(r);
    lm_tensor_transpose(&bt, bt_store, 0, 1); /* the same b, read through strides (1, 3) */
    CHECK_OK(lm_reference_matmul(&r, a, bt));
    CHECK(at(r, 0) == 58 && at(r, 1) == 64 && at(r, 2) == 139 && at(r, 3) == 154);
    lm_tensor_release(r);
    /* batched, the 2-D right operand shared: [[1 2]] and [[3 4]] @ [[5] [6]] = 17 and 39 */
    int64_t s212[3] = {2, 1, 2}, s21[2] = {2, 1}, s221[3] = {2, 2, 1};
    float a3v[4] = {1, 2, 3, 4}, b2v[2] = {5, 6}, b3v[4] = {5, 6, -1, 1};
    lm_tensor *a3 = from(3, s212, a3v), *b2 = from(2, s21, b2v), *b3 = from(3, s221, b3v);
    CHECK_OK(lm_reference_matmul(&r, a3, b2));
    CHECK(r->ndim == 3 && r->shape[0] == 2 && r->shape[1] == 1 && r->shape[2] == 1);
    CHECK(at(r, 0) == 17 && at(r, 1) == 39);
    lm_tensor_release(r);
    /* batch against batch: [[1 2]] @ [[5] [6]] = 17, [[3 4]] @ [[-1] [1]] = 1 */
    CHECK_OK(lm_reference_matmul(&r, a3, b3));
    CHECK(at(r, 0) == 17 && at(r, 1) == 1);
    lm_tensor_release(r);
    CHECK_FAILS(lm_reference_matmul(&r, a, a), LM_ERR_SHAPE, "cannot multiply [2, 3] by [2, 3]");
    CHECK(r == NULL);
    lm_tensor_release(a), lm_tensor_release(b), lm_tensor_release(bt), lm_tensor_release(bt_store);
    lm_tensor_release(a3), lm_tensor_release(b2), lm_tensor_release(b3);
}

static void test_conv2d_by_hand(void) {
    int64_t sx[4] = {1, 1, 3, 3}, sw[4] = {1, 1, 2, 2}, s1[1] = {1};
    float xv[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9}, wv[4] = {1, 2, 3, 4}, bv[1] = {0.5f};
    lm_tensor *x = from(4, sx, xv), *w = from(4, sw, wv), *b = from(1, s1, bv), *r;
    /* no padding, stride 1: out[i][j] = x[i][j] + 2 x[i][j+1] + 3 x[i+1][j] + 4 x[i+1][j+1] */
    lm_conv_options plain = {1, 1, 0, 0, 1, 1, 1};
    CHECK_OK(lm_reference_conv2d(&r, x, w, NULL, &plain));
    CHECK(r->ndim == 4 && r->shape[2] == 2 && r->shape[3] == 2);
    CHECK(at(r, 0) == 37 && at(r, 1) == 47 && at(r, 2) == 67 && at(r, 3) == 77);
    lm_tensor_release(r);
    /* padding 1, stride 2, bias 0.5: the padded input is 5x5, the output 2x2;
     * out[0][0] sees only x[0][0] (under w[1][1]): 4; out[0][1] = 3*2 + 4*3 = 18;
     * out[1][0] = 2*4 + 4*7 = 36; out[1][1] = 1*5 + 2*6 + 3*8 + 4*9 = 77 */
    lm_conv_options padded = {2, 2, 1, 1, 1, 1, 1};
    CHECK_OK(lm_reference_conv2d(&r, x, w, b, &padded));
    CHECK(r->shape[2] == 2 && r->shape[3] == 2);
    CHECK(at(r, 0) == 4.5 && at(r, 1) == 18.5 && at(r, 2) == 36.5 && at(r, 3) == 77.5);
    lm_tensor_release(r);
    int64_t sw3[4] = {1, 2, 2, 2};
    lm_tensor *w3 = randn(4, sw3);
    CHECK_FAILS(lm_reference_conv2d(&r, x, w3, NULL, &plain), LM_ERR_SHAPE, "[1, 2, 2, 2]");
    lm_conv_options bad = {0, 0, 0, 0, 1, 1, 1};
    CHECK_FAILS(lm_reference_conv2d(&r, x, w, NULL, &bad), LM_ERR_ARG, "stride");
    lm_tensor_release(x), lm_tensor_release(w), lm_tensor_release(b), lm_tensor_release(w3);
}

/* lm_matmul (BLAS, batch folding, transposed views) against the reference. */
static void test_backend_matmul(void) {
    lm_manual_seed(11);
    int64_t sa[2] = {33, 47}, sb[2] = {47, 21}, sbt[2] = {21, 47}, sa3[3] = {3, 33, 47},
            sb3[3] = {3, 47, 21};
    lm_tensor *a = randn(2, sa), *b = randn(2, sb), *bt_store = randn(2, sbt), *a3 = randn(3, sa3),
              *b3 = randn(3, sb3), *bt, *got, *want;
    lm_tensor_transpose(&bt, bt_store, 0, 1);
    const lm_tensor *cases[4][2] = {{a, b}, {a, bt}, {a3, b}, {a3, b3}};
    for (int c = 0; c < 4; c++) {
        CHECK_OK(lm_matmul(&got, (lm_tensor *)cases[c][0], (lm_tensor *)cases[c][1]));
        CHECK_OK(lm_reference_matmul(&want, cases[c][0], cases[c][1]));
        CHECK(max_diff(got, want) < 1e-4);
        lm_tensor_release(got), lm_tensor_release(want);
    }
    lm_tensor_release(a), lm_tensor_release(b), lm_tensor_release(bt), lm_tensor_release(bt_store);
    lm_tensor_release(a3), lm_tensor_release(b3);
}

/* lm_ag_conv2d (im2col + GEMM) against the reference: stride, padding, bias,
 * several channels and a non-contiguous input. */
static void test_backend_conv2d(void) {
    lm_manual_seed(12);
    int64_t sx[4] = {2, 3, 9, 8}, sw[4] = {4, 3, 3, 3}, sb[1] = {4};
    lm_tensor *x = randn(4, sx), *w = randn(4, sw), *b = randn(1, sb), *xt, *got, *want;
    lm_tensor_transpose(&xt, x, 2, 3); /* [2, 3, 8, 9], strided */
    lm_conv_options opts[3] = {{1, 1, 0, 0, 1, 1, 1}, {2, 2, 1, 1, 1, 1, 1}, {1, 1, 2, 2, 1, 1, 1}};
    for (int k = 0; k < 3; k++)
        for (int t = 0; t < 2; t++) {
            lm_tensor *in = t ? xt : x, *bias = k == 1 ? NULL : b;
            CHECK_OK(lm_ag_conv2d(&got, in, w, bias, &opts[k]));
            CHECK_OK(lm_reference_conv2d(&want, in, w, bias, &opts[k]));
            CHECK(max_diff(got, want) < 1e-4);
            lm_tensor_release(got), lm_tensor_release(want);
        }
    lm_tensor_release(x), lm_tensor_release(xt), lm_tensor_release(w), lm_tensor_release(b);
}

TEST_MAIN(test_matmul_by_hand, test_conv2d_by_hand, test_backend_matmul, test_backend_conv2d)
