/* The CUDA reductions (kernels/cuda_reduce.cu), compiled as C++ and run on
 * the CPU by tests/c/cuda_emulator.h, against the CPU backend on the same
 * inputs: every lm_reduce_op over each dimension of 3-D tensors (contiguous,
 * transposed and narrowed views, so that lm_cuda_reduce takes each of its
 * three ways: a warp a line at unit stride, a warp a strided line, a thread
 * a strided line) and over everything (one block, many, and more than the
 * ALL_BLOCKS the host code caps them at), float32 and int32 inputs, with the
 * optional indices of MAX and MIN, ties, NaN and a length-1 dimension.
 *
 * Maxima, minima and their indices must match bit for bit (the first of
 * equal values wins, the first NaN wins over everything). Sums, means and
 * variances are taken in double on both sides in different orders, then
 * rounded to float: they may land on neighbouring floats, at most 1 ulp
 * apart; on int32 inputs they are exact. */
#define LM_CUDA_EMULATED 1
#include "../../kernels/cuda_reduce.cu"
#include "emulated_tensors.h"

#include <initializer_list>

extern "C" {
#include "lm_backend.h"
#include "lm_tensor.h"
#include "test.h"
}

namespace {

const char *const NAMES[LM_REDUCE_COUNT] = {"sum", "mean", "max", "min", "argmax", "argmin", "var"};

bool extreme(int op) {
    return op == LM_MAX || op == LM_MIN || op == LM_ARGMAX || op == LM_ARGMIN;
}

/* Contents: fine values in [-1, 1) for sums, where every rounding shows; or
 * coarse ones, -2 .. 1.5 in halves with zeros of both signs, full of ties
 * for the extremes (and -0 against +0: which of equal values won shows in
 * the bits); int32 inputs get -3 .. 3. */
void fill(lm_tensor *t, uint32_t seed, bool coarse) {
    for (int64_t i = 0; i < lm_tensor_numel(t); i++) {
        uint32_t r = next(seed);
        if (t->dtype == LM_INT32)
            lm_tensor_i32(t)[i] = (int32_t)(r % 7) - 3;
        else if (coarse)
            lm_tensor_f32(t)[i] = r % 8 == 4 ? (r & 8 ? -0.0f : 0.0f) : (float)(r % 8) / 2 - 2;
        else
            lm_tensor_f32(t)[i] = (float)r / 8388608.0f - 1.0f;
    }
}

enum Layout { CONTIGUOUS, TRANSPOSED, NARROWED };
const char *const LAYOUTS[3] = {"contiguous", "transposed", "narrowed"};

/* x [a, b, c] laid out three ways: contiguous; a transposed [c, b, a] (dim 0
 * at unit stride); the middle of a wider [a, b, c + 3] (an offset, and
 * rows that do not merge). */
lm_tensor *input(const int64_t *shape, Layout layout, lm_dtype dtype, uint32_t seed, bool coarse) {
    int64_t a = shape[0], b = shape[1], c = shape[2];
    lm_tensor *x = NULL;
    if (layout == CONTIGUOUS) {
        x = tensor(3, shape, dtype);
        fill(x, seed, coarse);
        return x;
    }
    int64_t base_shape[3] = {c, b, a};
    if (layout == NARROWED) base_shape[0] = a, base_shape[2] = c + 3;
    lm_tensor *base = tensor(3, base_shape, dtype);
    fill(base, seed, coarse);
    if (layout == TRANSPOSED)
        lm_tensor_transpose(&x, base, 0, 2);
    else
        lm_tensor_narrow(&x, base, 2, 1, c);
    lm_tensor_release(base);
    return x;
}

/* the offset of x's element at row-major position i */
int64_t offset_at(const lm_tensor *x, int64_t i) {
    int64_t off = 0;
    for (int d = x->ndim - 1; d >= 0; d--) {
        off += (i % x->shape[d]) * x->strides[d];
        i /= x->shape[d];
    }
    return off;
}

void set(lm_tensor *x, int64_t i, double v) {
    lm_tensor_store(x, offset_at(x, i), v);
}

lm_dtype out_dtype(int op, lm_dtype in) {
    return op == LM_ARGMAX || op == LM_ARGMIN ? LM_INT32
           : op == LM_MEAN || op == LM_VAR    ? LM_FLOAT32
                                              : in;
}

/* Reduces x with op over dim (< 0: everything) on both sides, with indices
 * for MAX and MIN when asked, and checks that they agree; the kernel's
 * result is left in *gpu_out and its indices in *gpu_indices (if given)
 * for the caller's own checks. */
void check_reduce(int op, const lm_tensor *x, int dim, bool with_indices, const char *what,
                  lm_tensor **gpu_out = NULL, lm_tensor **gpu_indices = NULL) {
    int64_t shape[LM_MAX_DIMS] = {0};
    int ndim = 0;
    for (int d = 0; dim >= 0 && d < x->ndim; d++)
        if (d != dim) shape[ndim++] = x->shape[d];
    lm_dtype dt = out_dtype(op, x->dtype);
    bool indices = with_indices && (op == LM_MAX || op == LM_MIN);
    lm_tensor *o_cpu = tensor(ndim, shape, dt), *o_gpu = tensor(ndim, shape, dt);
    lm_tensor *i_cpu = indices ? tensor(ndim, shape, LM_INT32) : NULL;
    lm_tensor *i_gpu = indices ? tensor(ndim, shape, LM_INT32) : NULL;
    CHECK_OK(cpu()->reduce((lm_reduce_op)op, o_cpu, i_cpu, x, dim));
    CHECK_OK(lm_cuda_reduce((lm_reduce_op)op, o_gpu, i_gpu, x, dim));
    bool ok;
    if (dt == LM_INT32 || extreme(op) || x->dtype == LM_INT32)
        ok = same_bits(o_gpu, o_cpu); /* exact: picked values, indices, integer sums */
    else
        ok = max_ulps(o_gpu, o_cpu) <= 1; /* double sums in another order, rounded */
    CHECK(ok);
    if (indices) CHECK(same_bits(i_gpu, i_cpu));
    if (!ok || (indices && !same_bits(i_gpu, i_cpu)))
        fprintf(stderr, "  %s over dim %d of %s [%lld, %lld, %lld] (%s) differs\n", NAMES[op], dim,
                what, (long long)x->shape[0], (long long)(x->ndim > 1 ? x->shape[1] : 1),
                (long long)(x->ndim > 2 ? x->shape[2] : 1), lm_dtype_name(x->dtype));
    if (gpu_out)
        *gpu_out = o_gpu;
    else
        lm_tensor_release(o_gpu);
    lm_tensor_release(o_cpu);
    if (gpu_indices)
        *gpu_indices = i_gpu;
    else
        lm_tensor_release(i_gpu);
    lm_tensor_release(i_cpu);
}

/* ---- over one dimension ---- */

/* How lm_cuda_reduce will walk x's lines over dim (its choice, restated
 * here to count that every way was taken). */
enum Way { WARP_UNIT, WARP_STRIDED, THREAD_STRIDED };
int ways[3];

Way way(const lm_tensor *x, int dim) {
    int64_t n_out = lm_tensor_numel(x) / x->shape[dim];
    if (x->strides[dim] != 1 && (n_out >= 256 || x->shape[dim] < 32)) return THREAD_STRIDED;
    return x->strides[dim] == 1 ? WARP_UNIT : WARP_STRIDED;
}

void check_dims(const int64_t *shape, lm_dtype dtype, uint32_t seed) {
    for (int layout = CONTIGUOUS; layout <= NARROWED; layout++) {
        for (int coarse = 0; coarse < 2; coarse++) {
            lm_tensor *x = input(shape, (Layout)layout, dtype, seed, coarse);
            if (dtype == LM_FLOAT32) {
                /* NaN at (1, 1, 1) and at a neighbour along each dimension,
                 * so that lines over each hold two (the first must win) */
                const int64_t at[4][3] = {{1, 1, 1}, {1, 1, 2}, {1, 2, 1}, {2, 1, 1}};
                for (const int64_t *p : at)
                    set(x,
                        ((p[0] % shape[0]) * shape[1] + p[1] % shape[1]) * shape[2] +
                            p[2] % shape[2],
                        NAN);
            }
            for (int dim = 0; dim < 3; dim++) {
                ways[way(x, dim)]++;
                for (int op = 0; op < LM_REDUCE_COUNT; op++) {
                    if (extreme(op) != (bool)coarse && dtype == LM_FLOAT32) continue;
                    check_reduce(op, x, dim, false, LAYOUTS[layout]);
                    if (op == LM_MAX || op == LM_MIN)
                        check_reduce(op, x, dim, true, LAYOUTS[layout]);
                }
            }
            lm_tensor_release(x);
            if (dtype == LM_INT32) break; /* one kind of int32 contents */
        }
    }
}

void test_dims(void) {
    /* a: per layout, lines a warp each at unit stride and at a stride (over
     * dims 0 and 2), and many strided outputs a thread each (over dim 1) */
    const int64_t a[3] = {37, 2, 45};
    const int64_t b[3] = {40, 2, 3}; /* lines of 40 at a stride, and of 2 or 3 */
    const int64_t c[3] = {4, 1, 5};  /* a length-1 dimension */
    const int64_t d[3] = {9, 2, 40}; /* short strided lines (a thread each), and long ones */
    check_dims(a, LM_FLOAT32, 11);
    check_dims(b, LM_FLOAT32, 13);
    check_dims(c, LM_FLOAT32, 17);
    check_dims(d, LM_INT32, 23);
    check_dims(b, LM_INT32, 29);
    for (int w = 0; w < 3; w++) CHECK(ways[w] > 0); /* each launch choice taken */

    /* one long line: a 1-D tensor, and a column of a matrix (stride 3),
     * each lane of the warp folding many elements */
    const int64_t n[1] = {1000}, m[2] = {1000, 3};
    lm_tensor *v = tensor(1, n, LM_FLOAT32), *mat = tensor(2, m, LM_FLOAT32), *col = NULL;
    fill(v, 67, true);
    fill(mat, 71, true);
    lm_tensor_select(&col, mat, 1, 1);
    for (int op = 0; op < LM_REDUCE_COUNT; op++) {
        check_reduce(op, v, 0, true, "a vector");
        check_reduce(op, col, 0, true, "a column");
    }
    lm_tensor_release(v);
    lm_tensor_release(mat);
    lm_tensor_release(col);

    /* a length-0 dimension (the op refuses it to the extremes): a sum of
     * nothing is 0, its mean and variance NaN */
    const int64_t e[3] = {3, 0, 4};
    lm_tensor *empty = tensor(3, e, LM_FLOAT32);
    for (int op : {LM_SUM, LM_MEAN, LM_VAR}) check_reduce(op, empty, 1, false, "empty");
    lm_tensor_release(empty);

    /* the length-1 dimension's answers, spelled out: the value itself, index 0, no variance */
    int64_t shape[3] = {4, 1, 5};
    lm_tensor *x = input(shape, CONTIGUOUS, LM_FLOAT32, 31, false), *r = NULL;
    check_reduce(LM_MAX, x, 1, true, "length 1", &r);
    CHECK(!memcmp(lm_tensor_f32(r), lm_tensor_f32(x), 20 * sizeof(float)));
    lm_tensor_release(r);
    check_reduce(LM_ARGMIN, x, 1, false, "length 1", &r);
    bool zeros = true;
    for (int i = 0; i < 20; i++) zeros &= lm_tensor_i32(r)[i] == 0;
    CHECK(zeros);
    lm_tensor_release(r);
    check_reduce(LM_VAR, x, 1, false, "length 1", &r);
    CHECK(isnan(lm_tensor_f32(r)[0]) && isnan(lm_tensor_f32(r)[19]));
    lm_tensor_release(r);
    lm_tensor_release(x);
}

/* A view of out's shape at a stride of `every` (the backend contract allows
 * strided operands): one element of each group of `every` in a wider tensor. */
lm_tensor *spread(int ndim, const int64_t *shape, lm_dtype dtype, int every) {
    int64_t wide[LM_MAX_DIMS];
    memcpy(wide, shape, sizeof(int64_t) * ndim);
    wide[ndim] = every;
    lm_tensor *base = tensor(ndim + 1, wide, dtype), *v = NULL;
    memset(lm_tensor_data(base), 0, 4 * (size_t)lm_tensor_numel(base));
    lm_tensor_select(&v, base, ndim, every - 1);
    lm_tensor_release(base);
    return v;
}

lm_tensor *contiguous(const lm_tensor *t) {
    lm_tensor *c = tensor(t->ndim, t->shape, t->dtype);
    CHECK_OK(cpu()->copy(c, t));
    return c;
}

/* Results and indices written through strided views, each at its own
 * stride: the kernel must place each by its own offsets. */
void test_strided_outputs(void) {
    const int64_t shape[3] = {37, 2, 45};
    for (int layout = CONTIGUOUS; layout <= TRANSPOSED; layout++) {
        lm_tensor *x = input(shape, (Layout)layout, LM_FLOAT32, 73, true);
        for (int dim = 0; dim < 3; dim++) {
            int64_t os[2];
            for (int d = 0, k = 0; d < 3; d++)
                if (d != dim) os[k++] = shape[d];
            for (int op : {LM_SUM, LM_MAX, LM_ARGMIN}) {
                lm_tensor *o[2], *i[2];
                for (int side = 0; side < 2; side++) {
                    o[side] = spread(2, os, op == LM_ARGMIN ? LM_INT32 : LM_FLOAT32, 2);
                    i[side] = op == LM_MAX ? spread(2, os, LM_INT32, 3) : NULL;
                }
                CHECK_OK(cpu()->reduce((lm_reduce_op)op, o[0], i[0], x, dim));
                CHECK_OK(lm_cuda_reduce((lm_reduce_op)op, o[1], i[1], x, dim));
                lm_tensor *a = contiguous(o[0]), *b = contiguous(o[1]);
                CHECK(op == LM_SUM ? max_ulps(b, a) <= 1 : same_bits(b, a));
                lm_tensor_release(a), lm_tensor_release(b);
                if (op == LM_MAX) {
                    a = contiguous(i[0]), b = contiguous(i[1]);
                    CHECK(same_bits(b, a));
                    lm_tensor_release(a), lm_tensor_release(b);
                }
                for (int side = 0; side < 2; side++) {
                    lm_tensor_release(o[side]);
                    lm_tensor_release(i[side]);
                }
            }
        }
        lm_tensor_release(x);
    }
}

/* ---- over everything ---- */

void check_all(const lm_tensor *x, const char *what) {
    for (int op = 0; op < LM_REDUCE_COUNT; op++) {
        check_reduce(op, x, -1, false, what);
        if (op == LM_MAX || op == LM_MIN) check_reduce(op, x, -1, true, what);
    }
}

void test_all(void) {
    /* one block, laid out three ways; fourteen blocks; fine values for the
     * sums, coarse ones (ties) for the extremes */
    const int64_t small[3] = {10, 10, 10}, mid[3] = {37, 2, 45};
    for (int coarse = 0; coarse < 2; coarse++) {
        for (int layout = CONTIGUOUS; layout <= NARROWED; layout++) {
            lm_tensor *x = input(small, (Layout)layout, LM_FLOAT32, 41, coarse);
            check_all(x, LAYOUTS[layout]);
            lm_tensor_release(x);
        }
        lm_tensor *x = input(mid, TRANSPOSED, LM_FLOAT32, 43, coarse);
        check_all(x, "transposed");
        lm_tensor_release(x);
    }
    for (const int64_t *shape : {small, mid}) { /* int32: exact sums, ties */
        lm_tensor *x = input(shape, CONTIGUOUS, LM_INT32, 47, true);
        check_all(x, "int32");
        lm_tensor_release(x);
    }

    /* 150,000 elements: 586 blocks' worth, capped at 512, so that some
     * threads fold two elements 131,072 apart. Each launch of the capped
     * grid takes a quarter of a second here: three of them. */
    const int64_t big[3] = {50, 30, 100};
    lm_tensor *x = input(big, TRANSPOSED, LM_FLOAT32, 53, false), *r = NULL;
    check_reduce(LM_SUM, x, -1, false, "big");
    lm_tensor_release(x);
    /* ties: the maximum at 100,000 (block 390) must beat the one at 140,000
     * (block 34, in the second turn of its grid-stride loop) */
    x = input(big, TRANSPOSED, LM_FLOAT32, 59, true);
    set(x, 100000, 7.0), set(x, 140000, 7.0);
    check_reduce(LM_ARGMAX, x, -1, false, "big, ties", &r);
    CHECK(lm_tensor_i32(r)[0] == 100000);
    lm_tensor_release(r);
    /* NaN: the first, at 120,000 (block 468), beats the one at 135,000 (block
     * 15, second turn) and everything else */
    set(x, 120000, NAN), set(x, 135000, NAN);
    lm_tensor *at = NULL;
    check_reduce(LM_MIN, x, -1, true, "big, NaN", &r, &at);
    CHECK(isnan(lm_tensor_f32(r)[0]) && lm_tensor_i32(at)[0] == 120000);
    lm_tensor_release(r);
    lm_tensor_release(at);
    lm_tensor_release(x);

    /* nothing at all */
    const int64_t none[3] = {2, 0, 3};
    lm_tensor *empty = tensor(3, none, LM_FLOAT32);
    for (int op : {LM_SUM, LM_MEAN, LM_VAR}) check_reduce(op, empty, -1, false, "empty");
    lm_tensor_release(empty);

    /* one element: itself, index 0, no variance */
    const int64_t one[3] = {1, 1, 1};
    lm_tensor *x1 = input(one, CONTIGUOUS, LM_FLOAT32, 61, false);
    check_all(x1, "one element");
    check_reduce(LM_VAR, x1, -1, false, "one element", &r);
    CHECK(isnan(lm_tensor_f32(r)[0]));
    lm_tensor_release(r);
    lm_tensor_release(x1);
}

} // namespace

TEST_MAIN(test_dims, test_strided_outputs, test_all)
