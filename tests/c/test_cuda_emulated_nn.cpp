/* The CUDA layer kernels (kernels/cuda_nn.cu), compiled as C++ and run on
 * the CPU by tests/c/cuda_emulator.h, against the CPU backend on the same
 * inputs: softmax and its gradient, im2col/col2im, max and average pooling
 * and their gradients, row gathers, top-k, one-hot, and the fused optimiser
 * updates one parameter at a time and many in one launch.
 *
 * Bit for bit wherever both sides do the same float operations in the same
 * order; elsewhere at a stated tolerance, with the reason beside it:
 *   - softmax: the CPU's exp is lm_fast_expf (a few ulp), the kernel's expf;
 *   - col2im into a non-zero gx, pooling gradients: the same terms added in
 *     another order.
 * (This test found the kernel's Adam dividing sqrt(v) by sqrt(c2) where the
 * CPU multiplies by 1 / sqrt(c2): an ulp or two a step apart, compounding.) */
#define LM_CUDA_EMULATED 1
#include "../../kernels/cuda_nn.cu"
#include "../../kernels/cuda_topk.cu" /* lm_cuda_topk, moved out of cuda_nn.cu */
#include "emulated_tensors.h"

#include <initializer_list>

extern "C" {
#include "lm_backend.h"
#include "lm_tensor.h"
#include "test.h"
}

namespace {

/* multiples of 1/8 in [-2, 2): ties for max and top-k, and sums that are
 * exact in any order (so that the order of a gradient's terms cannot show) */
lm_tensor *coarse(int ndim, const int64_t *shape, uint32_t seed) {
    lm_tensor *t = tensor(ndim, shape);
    float *p = lm_tensor_f32(t);
    for (int64_t i = 0; i < lm_tensor_numel(t); i++) p[i] = (float)(next(seed) % 32) / 8 - 2;
    return t;
}

/* ---- softmax ---- */

void check_softmax(int64_t rows, int64_t cols, bool special) {
    int64_t shape[2] = {rows, cols};
    lm_tensor *x = filled(2, shape, (uint32_t)(rows * 31 + cols), 4.0f);
    float *p = lm_tensor_f32(x);
    if (special) { /* rows 0-5: -inf entries, huge values, all -inf, NaN, +inf, -0 and +0 */
        for (int64_t c = 0; c < cols; c += 3) p[c] = -INFINITY;
        for (int64_t c = 0; c < cols; c++) p[cols + c] = c % 2 ? 3e38f : -3e38f + (float)c * 1e32f;
        for (int64_t c = 0; c < cols; c++) p[2 * cols + c] = -INFINITY;
        p[3 * cols + cols / 2] = NAN;
        p[4 * cols + 1] = INFINITY;
        for (int64_t c = 0; c < cols; c++) p[5 * cols + c] = c % 2 ? -0.0f : 0.0f;
    }
    lm_tensor *g = filled(2, shape, 5, 1.0f, 0.25f);
    for (int log = 0; log < 2; log++) {
        lm_tensor *y_cpu = tensor(2, shape), *y_gpu = tensor(2, shape);
        CHECK_OK(cpu()->softmax(y_cpu, x, log));
        CHECK_OK(lm_cuda_softmax(y_gpu, x, log));
        /* the exps differ by a few ulp (lm_fast_expf against expf) */
        CHECK(max_ulps(y_gpu, y_cpu) <= 8);
        if (special) {
            CHECK(lm_tensor_f32(y_gpu)[0] == (log ? -INFINITY : 0.0f)); /* exp(-inf) */
            CHECK(isnan(lm_tensor_f32(y_gpu)[2 * cols]));               /* a row of -inf */
        }

        /* the gradient from the CPU's output, the same for both */
        lm_tensor *gx_cpu = tensor(2, shape), *gx_gpu = tensor(2, shape);
        CHECK_OK(cpu()->softmax_backward(gx_cpu, g, y_cpu, log));
        CHECK_OK(lm_cuda_softmax_backward(gx_gpu, g, y_cpu, log));
        /* log: the exps again; softmax: the dot product's double sum in another
         * order, which may round to another float and then cancels in g - dot */
        CHECK(rel_err(gx_gpu, gx_cpu) <= 1e-6);
        if (max_ulps(y_gpu, y_cpu) > 8 || rel_err(gx_gpu, gx_cpu) > 1e-6)
            fprintf(stderr, "  softmax [%lld, %lld] log %d: y %lld ulp, gx %.3g\n", (long long)rows,
                    (long long)cols, log, (long long)max_ulps(y_gpu, y_cpu),
                    rel_err(gx_gpu, gx_cpu));
        release({y_cpu, y_gpu, gx_cpu, gx_gpu});
    }
    release({x, g});
}

void test_softmax(void) {
    check_softmax(7, 45, true);   /* a partial second pass of each warp */
    check_softmax(70, 32, false); /* nine blocks of eight warps, one a row */
    check_softmax(9, 300, true);  /* wide rows */
    check_softmax(40, 5, false);  /* narrower than a warp */
    check_softmax(3, 1, false);   /* one column: 1, and 0 in log */
}

/* ---- im2col / col2im ---- */

/* a geometry with its output size; pooling reads only the plane's part */
lm_conv_geometry geometry(int64_t c, int64_t h, int64_t w, int64_t kh, int64_t kw, int64_t sh,
                          int64_t sw, int64_t ph, int64_t pw) {
    lm_conv_geometry g = {c, h, w, kh, kw, sh, sw, ph, pw, 0, 0, 1, 1, 1};
    g.out_h = (h + 2 * ph - kh) / sh + 1;
    g.out_w = (w + 2 * pw - kw) / sw + 1;
    return g;
}

/* the same with dilated taps (dh, dw) */
lm_conv_geometry dilated(lm_conv_geometry g, int64_t dh, int64_t dw) {
    g.dilation_h = dh, g.dilation_w = dw;
    g.out_h = (g.height + 2 * g.pad_h - dh * (g.kernel_h - 1) - 1) / g.stride_h + 1;
    g.out_w = (g.width + 2 * g.pad_w - dw * (g.kernel_w - 1) - 1) / g.stride_w + 1;
    return g;
}

void check_im2col(const lm_conv_geometry &g) {
    int64_t xs[3] = {g.channels, g.height, g.width};
    int64_t cs[2] = {g.channels * g.kernel_h * g.kernel_w, g.out_h * g.out_w};
    lm_tensor *x = filled(3, xs, 61, 1.0f);
    lm_tensor *c_cpu = tensor(2, cs), *c_gpu = tensor(2, cs);
    CHECK_OK(cpu()->im2col(c_cpu, x, &g));
    CHECK_OK(lm_cuda_im2col(c_gpu, x, &g));
    CHECK(same_bits(c_gpu, c_cpu)); /* copies and zeros */

    /* col2im adds into gx: from zero, both add each pixel's taps in the same
     * order (ki, then kj), so bit for bit */
    lm_tensor *cols = filled(2, cs, 67, 1.0f);
    lm_tensor *gx_cpu = tensor(3, xs), *gx_gpu = tensor(3, xs);
    memset(lm_tensor_f32(gx_cpu), 0, 4 * (size_t)lm_tensor_numel(gx_cpu));
    memset(lm_tensor_f32(gx_gpu), 0, 4 * (size_t)lm_tensor_numel(gx_gpu));
    CHECK_OK(cpu()->col2im(gx_cpu, cols, &g));
    CHECK_OK(lm_cuda_col2im(gx_gpu, cols, &g));
    CHECK(same_bits(gx_gpu, gx_cpu));

    /* into a gradient already there: the CPU adds tap by tap into gx, the
     * kernel adds the taps' sum once, so the roundings may differ */
    lm_tensor *base = filled(3, xs, 71, 3.0f);
    lm_tensor *acc_cpu = copy_of(base), *acc_gpu = copy_of(base);
    CHECK_OK(cpu()->col2im(acc_cpu, cols, &g));
    CHECK_OK(lm_cuda_col2im(acc_gpu, cols, &g));
    CHECK(rel_err(acc_gpu, acc_cpu) <= 1e-6);
    /* and it did add: the kernel's sum from zero plus what was there */
    bool added = true;
    for (int64_t i = 0; i < lm_tensor_numel(base); i++)
        added &= lm_tensor_f32(acc_gpu)[i] == lm_tensor_f32(base)[i] + lm_tensor_f32(gx_gpu)[i];
    CHECK(added);
    release({x, c_cpu, c_gpu, cols, gx_cpu, gx_gpu, base, acc_cpu, acc_gpu});
}

void test_im2col(void) {
    check_im2col(geometry(3, 7, 9, 3, 3, 1, 1, 1, 1));   /* a 'same' 3x3 convolution */
    check_im2col(geometry(2, 8, 8, 3, 3, 2, 2, 1, 1));   /* strided */
    check_im2col(geometry(4, 5, 6, 1, 1, 1, 1, 0, 0));   /* 1x1 */
    check_im2col(geometry(2, 7, 7, 1, 1, 2, 2, 0, 0));   /* 1x1 strided: pixels no tap sees */
    check_im2col(geometry(2, 9, 7, 2, 3, 2, 1, 0, 2));   /* 2x3, padding 2 across */
    check_im2col(geometry(3, 10, 11, 3, 3, 2, 1, 2, 0)); /* padding 2 down */
    check_im2col(geometry(1, 4, 4, 1, 1, 1, 1, 2, 2));   /* taps on padding alone */
    check_im2col(geometry(5, 20, 20, 3, 3, 1, 1, 1, 1)); /* several blocks of threads */
    check_im2col(dilated(geometry(2, 9, 9, 3, 3, 1, 1, 2, 2), 2, 2));   /* dilated 'same' */
    check_im2col(dilated(geometry(3, 13, 11, 3, 3, 2, 2, 3, 1), 2, 3)); /* strided, {2, 3} */
    check_im2col(dilated(geometry(1, 7, 8, 2, 3, 1, 2, 0, 2), 3, 2));   /* taps skip rows */
}

/* ---- pooling ---- */

void check_pool(int64_t planes, const lm_conv_geometry &g, bool max) {
    int64_t xs[3] = {planes, g.height, g.width}, os[3] = {planes, g.out_h, g.out_w};
    lm_tensor *x = coarse(3, xs, (uint32_t)(planes + g.kernel_h * 10 + g.stride_h));
    if (max) { /* NaN wins its windows; -inf and -0 against +0 need the window order */
        float *p = lm_tensor_f32(x);
        p[5] = NAN;
        p[g.width + 2] = -INFINITY;
        for (int64_t i = 2 * g.width; i < 3 * g.width; i++) p[i] = i % 2 ? -0.0f : 0.0f;
    }
    lm_tensor *o_cpu = tensor(3, os), *o_gpu = tensor(3, os);
    lm_tensor *a_cpu = max ? tensor(3, os, LM_INT32) : NULL;
    lm_tensor *a_gpu = max ? tensor(3, os, LM_INT32) : NULL;
    CHECK_OK(cpu()->pool2d(o_cpu, a_cpu, x, &g));
    CHECK_OK(lm_cuda_pool2d(o_gpu, a_gpu, x, &g));
    CHECK(same_bits(o_gpu, o_cpu)); /* the same window walk: bit for bit */
    if (max) CHECK(same_bits(a_gpu, a_cpu));

    /* the gradient, from the CPU's argmax. Coarse g: the max gradient's terms
     * (the outputs whose argmax a pixel is) add exactly in any order, and so
     * do the average's where the window's area is a power of two */
    lm_tensor *g_out = coarse(3, os, 83);
    lm_tensor *gx_cpu = filled(3, xs, 1, 1.0f), *gx_gpu = filled(3, xs, 2, 1.0f); /* overwritten */
    CHECK_OK(cpu()->pool2d_backward(gx_cpu, g_out, a_cpu, &g));
    CHECK_OK(lm_cuda_pool2d_backward(gx_gpu, g_out, a_cpu, &g));
    int64_t area = g.kernel_h * g.kernel_w;
    if (max || !(area & (area - 1)))
        CHECK(same_bits(gx_gpu, gx_cpu));
    else /* g / area rounded, then added in the other order: the CPU walks the
          * outputs forwards, the kernel a pixel's windows backwards */
        CHECK(rel_err(gx_gpu, gx_cpu) <= 1e-6);

    /* a fine-grained gradient: the order of the terms may show, barely */
    lm_tensor *g_fine = filled(3, os, 89, 1.0f);
    CHECK_OK(cpu()->pool2d_backward(gx_cpu, g_fine, a_cpu, &g));
    CHECK_OK(lm_cuda_pool2d_backward(gx_gpu, g_fine, a_cpu, &g));
    CHECK(rel_err(gx_gpu, gx_cpu) <= 1e-6);
    release({x, o_cpu, o_gpu, a_cpu, a_gpu, g_out, gx_cpu, gx_gpu, g_fine});
}

void test_pool(void) {
    /* average pooling counts the padding: a corner of a padded 3x3 window
     * sums four pixels (in the window's order) and divides by nine */
    lm_conv_geometry g = geometry(1, 4, 4, 3, 3, 1, 1, 1, 1);
    int64_t xs[3] = {1, 4, 4};
    lm_tensor *x = filled(3, xs, 79, 1.0f), *o = tensor(3, xs);
    CHECK_OK(lm_cuda_pool2d(o, NULL, x, &g));
    const float *p = lm_tensor_f32(x);
    CHECK(lm_tensor_f32(o)[0] == (((p[0] + p[1]) + p[4]) + p[5]) / 9.0f);
    release({x, o});

    for (int max = 0; max < 2; max++) {
        check_pool(6, geometry(1, 8, 8, 2, 2, 2, 2, 0, 0), max);    /* the usual 2x2 */
        check_pool(3, geometry(1, 9, 7, 3, 3, 1, 1, 1, 1), max);    /* overlapping, padded */
        check_pool(4, geometry(1, 11, 10, 3, 3, 2, 2, 1, 1), max);  /* ResNet's stem pool */
        check_pool(2, geometry(1, 7, 9, 2, 3, 1, 2, 1, 1), max);    /* 2x3, mixed strides */
        check_pool(2, geometry(1, 9, 9, 5, 4, 2, 3, 2, 2), max);    /* padding 2 */
        check_pool(2, geometry(1, 5, 6, 1, 1, 1, 1, 0, 0), max);    /* 1x1: a copy */
        check_pool(20, geometry(1, 16, 16, 2, 2, 2, 2, 0, 0), max); /* several blocks */
    }
}

/* ---- gathers, top-k, one-hot ---- */

void test_index_select(void) {
    int64_t xs[3] = {10, 3, 5}, is[2] = {9, 2}, os[3] = {9, 3, 5};
    lm_tensor *x = filled(3, xs, 97, 1.0f);
    lm_tensor *pairs = tensor(2, is, LM_INT32), *idx = NULL;
    int32_t rows[9] = {3, 0, 9, 3, 3, 7, 1, 9, 0}; /* repeats, first and last rows */
    for (int i = 0; i < 9; i++) {
        lm_tensor_i32(pairs)[2 * i] = -1; /* the column the gather must not read */
        lm_tensor_i32(pairs)[2 * i + 1] = rows[i];
    }
    CHECK_OK(lm_tensor_select(&idx, pairs, 1, 1)); /* indices at stride 2 */
    lm_tensor *o_cpu = tensor(3, os), *o_gpu = tensor(3, os);
    CHECK_OK(cpu()->index_select(o_cpu, x, idx));
    CHECK_OK(lm_cuda_index_select(o_gpu, x, idx));
    CHECK(same_bits(o_gpu, o_cpu));
    CHECK(!memcmp(lm_tensor_f32(o_gpu) + 2 * 15, lm_tensor_f32(x) + 9 * 15, 15 * sizeof(float)));

    /* many rows of one value each: several blocks */
    int64_t xs2[2] = {50, 1}, is2[1] = {700}, os2[2] = {700, 1};
    lm_tensor *x2 = filled(2, xs2, 101, 1.0f), *idx2 = tensor(1, is2, LM_INT32);
    for (int i = 0; i < 700; i++) lm_tensor_i32(idx2)[i] = (i * 37) % 50;
    lm_tensor *p_cpu = tensor(2, os2), *p_gpu = tensor(2, os2);
    CHECK_OK(cpu()->index_select(p_cpu, x2, idx2));
    CHECK_OK(lm_cuda_index_select(p_gpu, x2, idx2));
    CHECK(same_bits(p_gpu, p_cpu));
    release({x, pairs, idx, o_cpu, o_gpu, x2, idx2, p_cpu, p_gpu});
}

void check_topk(int64_t rows, int64_t cols, int64_t k, bool largest) {
    int64_t xs[2] = {rows, cols}, ks[2] = {rows, k};
    lm_tensor *x = coarse(2, xs, (uint32_t)(cols * 7 + k)); /* ties everywhere */
    float *p = lm_tensor_f32(x);
    for (int64_t r = 0; r < rows; r += 3) p[r * cols + (r / 3) % cols] = NAN; /* ranked last */
    if (cols > 2) p[cols + 1] = NAN, p[cols + 2] = NAN, p[2 * cols] = INFINITY, p[3] = -INFINITY;
    lm_tensor *v_cpu = tensor(2, ks), *v_gpu = tensor(2, ks);
    lm_tensor *i_cpu = tensor(2, ks, LM_INT32), *i_gpu = tensor(2, ks, LM_INT32);
    CHECK_OK(cpu()->topk(v_cpu, i_cpu, x, k, largest));
    CHECK_OK(lm_cuda_topk(v_gpu, i_gpu, x, k, largest));
    CHECK(same_bits(v_gpu, v_cpu));
    CHECK(same_bits(i_gpu, i_cpu));
    release({x, v_cpu, v_gpu, i_cpu, i_gpu});
}

void test_topk(void) {
    for (int largest = 0; largest < 2; largest++) {
        check_topk(150, 20, 1, largest); /* three blocks of 64 rows */
        check_topk(150, 20, 5, largest);
        check_topk(70, 33, 33, largest); /* k = cols: the whole row sorted, NaN last */
        check_topk(5, 1, 1, largest);
    }
}

void test_one_hot(void) {
    int64_t ls[2] = {300, 3}, os[2] = {300, 10};
    lm_tensor *pairs = tensor(2, ls, LM_INT32), *labels = NULL;
    for (int i = 0; i < 300; i++)
        for (int j = 0; j < 3; j++) lm_tensor_i32(pairs)[3 * i + j] = j == 2 ? (i * 7) % 10 : 99;
    CHECK_OK(lm_tensor_select(&labels, pairs, 1, 2));                  /* labels at stride 3 */
    lm_tensor *o_cpu = tensor(2, os), *o_gpu = filled(2, os, 3, 1.0f); /* every value written */
    CHECK_OK(cpu()->one_hot(o_cpu, labels));
    CHECK_OK(lm_cuda_one_hot(o_gpu, labels));
    CHECK(same_bits(o_gpu, o_cpu));
    CHECK(lm_tensor_f32(o_gpu)[10 * 299 + 3] == 1.0f); /* 299 * 7 % 10 */
    release({pairs, labels, o_cpu, o_gpu});
}

/* ---- optimisers ---- */

struct Opt {
    const char *name;
    lm_optim_params p;
    int states; /* 0: none, 1: s1, 2: s1 and s2 */
};

/* lr, weight_decay, momentum, nesterov, beta1, beta2, alpha, eps */
const Opt OPTS[] = {
    {"sgd", {LM_OPT_SGD, 0.1, 0, 0, false, 0, 0, 0, 0, 1}, 0},
    {"sgd decay", {LM_OPT_SGD, 0.1, 0.01, 0, false, 0, 0, 0, 0, 1}, 0},
    {"sgd momentum", {LM_OPT_SGD, 0.05, 0, 0.9, false, 0, 0, 0, 0, 1}, 1},
    {"sgd nesterov", {LM_OPT_SGD, 0.05, 0.001, 0.9, true, 0, 0, 0, 0, 1}, 1},
    {"adam", {LM_OPT_ADAM, 0.01, 0.01, 0, false, 0.9, 0.999, 0, 1e-8, 1}, 2},
    {"adamw", {LM_OPT_ADAMW, 0.01, 0.1, 0, false, 0.9, 0.999, 0, 1e-8, 1}, 2},
    {"rmsprop", {LM_OPT_RMSPROP, 0.01, 0.001, 0, false, 0, 0, 0.99, 1e-8, 1}, 1},
};

/* One parameter's weights and states, twice: the CPU's and the kernel's. */
struct Param {
    lm_tensor *w[2], *s1[2], *s2[2];
    Param(int64_t n, int states, uint32_t seed) {
        int64_t shape[1] = {n};
        for (int side = 0; side < 2; side++) {
            w[side] = filled(1, shape, seed, 1.0f);
            s1[side] = states >= 1 ? tensor(1, shape) : NULL;
            s2[side] = states >= 2 ? tensor(1, shape) : NULL;
            for (lm_tensor *s : {s1[side], s2[side]})
                if (s) memset(lm_tensor_f32(s), 0, 4 * (size_t)n);
        }
    }
    ~Param() { release({w[0], w[1], s1[0], s1[1], s2[0], s2[1]}); }
    /* the kernel's w and states against the CPU's */
    bool same() const {
        return same_bits(w[1], w[0]) && (!s1[0] || same_bits(s1[1], s1[0])) &&
               (!s2[0] || same_bits(s2[1], s2[0]));
    }
    double err() const {
        double e = rel_err(w[1], w[0]);
        if (s1[0] && rel_err(s1[1], s1[0]) > e) e = rel_err(s1[1], s1[0]);
        if (s2[0] && rel_err(s2[1], s2[0]) > e) e = rel_err(s2[1], s2[0]);
        return e;
    }
};

void test_optim_step(void) {
    const int64_t n = 1000; /* four blocks */
    int64_t shape[1] = {n};
    for (const Opt &o : OPTS) {
        Param w(n, o.states, 107);
        bool same = true;
        double worst = 0;
        for (int step = 1; step <= 4; step++) {
            lm_optim_params p = o.p;
            p.step = step;
            lm_tensor *g = filled(1, shape, 109 + (uint32_t)step, 0.5f, 0.1f);
            CHECK_OK(cpu()->optim_step(&p, w.w[0], g, w.s1[0], w.s2[0]));
            CHECK_OK(lm_cuda_optim_step(&p, w.w[1], g, w.s1[1], w.s2[1]));
            same &= w.same();
            if (w.err() > worst) worst = w.err();
            lm_tensor_release(g);
        }
        CHECK(same); /* the same float operations */
        if (!same) fprintf(stderr, "  %s: %.3g\n", o.name, worst);
    }
}

/* Many parameters at once: empty ones among them, some larger than a block's
 * share (MANY_BLOCK_ELEMS), and more than one launch takes (MANY_PER_LAUNCH),
 * against the CPU's many-parameter step; each is updated exactly once. */
void test_optim_step_many(void) {
    const int count = 130;
    for (const Opt &o : OPTS) {
        std::vector<Param *> ps;
        int nonempty = 0;
        for (int k = 0; k < count; k++) {
            int64_t n = k % 7 == 3 || k == 0 || k == count - 1 ? 0
                        : k % 29 == 5                          ? MANY_BLOCK_ELEMS * 2 + 17
                        : k % 11 == 1                          ? MANY_BLOCK_ELEMS
                                                               : 1 + (k * 13) % 60;
            ps.push_back(new Param(n, o.states, 200 + (uint32_t)k));
            nonempty += n > 0;
        }
        CHECK(nonempty > 2 * MANY_PER_LAUNCH);
        bool same = true;
        double worst = 0;
        for (int step = 1; step <= 3; step++) {
            lm_optim_params p = o.p;
            p.step = step;
            std::vector<lm_tensor *> grads, w[2], s1[2], s2[2];
            for (int k = 0; k < count; k++) {
                grads.push_back(
                    filled(1, ps[k]->w[0]->shape, 300 + (uint32_t)(k * 5 + step), 0.5f));
                for (int side = 0; side < 2; side++) {
                    w[side].push_back(ps[k]->w[side]);
                    s1[side].push_back(ps[k]->s1[side]); /* NULL where the optimiser keeps none */
                    s2[side].push_back(ps[k]->s2[side]);
                }
            }
            const lm_tensor *const *gs = grads.data();
            CHECK_OK(
                cpu()->optim_step_many(&p, count, w[0].data(), gs, s1[0].data(), s2[0].data()));
            CHECK_OK(
                lm_cuda_optim_step_many(&p, count, w[1].data(), gs, s1[1].data(), s2[1].data()));
            for (Param *q : ps) {
                same &= q->same();
                if (q->err() > worst) worst = q->err();
            }
            for (lm_tensor *t : grads) lm_tensor_release(t);
        }
        CHECK(same);
        if (!same) fprintf(stderr, "  %s (many): %.3g\n", o.name, worst);
        for (Param *q : ps) delete q;
    }
}

/* Adam alone, one step from a state some steps in: bit for bit. */
void test_adam_one_step(void) {
    const int64_t n = 2000;
    int64_t shape[1] = {n};
    for (int kind = LM_OPT_ADAM; kind <= LM_OPT_ADAMW; kind++) {
        lm_optim_params p = OPTS[kind == LM_OPT_ADAM ? 4 : 5].p;
        p.step = 7;
        Param w(n, 2, 401);
        lm_tensor *g = filled(1, shape, 409, 0.5f);
        for (int side = 0; side < 2; side++) { /* a state some steps in */
            lm_tensor *m = filled(1, shape, 419, 0.05f), *v = filled(1, shape, 421, 0.01f, 0.01f);
            memcpy(lm_tensor_f32(w.s1[side]), lm_tensor_f32(m), 4 * n);
            memcpy(lm_tensor_f32(w.s2[side]), lm_tensor_f32(v), 4 * n);
            release({m, v});
        }
        CHECK_OK(cpu()->optim_step(&p, w.w[0], g, w.s1[0], w.s2[0]));
        CHECK_OK(lm_cuda_optim_step(&p, w.w[1], g, w.s1[1], w.s2[1]));
        CHECK(same_bits(w.s1[1], w.s1[0]));
        CHECK(same_bits(w.s2[1], w.s2[0]));
        CHECK(same_bits(w.w[1], w.w[0]));
        lm_tensor_release(g);
    }
}

} // namespace

TEST_MAIN(test_softmax, test_im2col, test_pool, test_index_select, test_topk, test_one_hot,
          test_optim_step, test_optim_step_many, test_adam_one_step)
