/* The depthwise kernel's portable loops, which builds without AVX-512 run,
 * checked on machines that have it (where the library takes the AVX-512
 * paths, the specs never reach these): this file compiles the kernel a
 * second time without AVX-512 (tests/CMakeLists.txt), under other names,
 * and compares its output and both gradients with the library's kernel and
 * its output with the reference loops. */
#define lm_cpu_conv_depthwise_applies portable_depthwise_applies
#define lm_cpu_conv2d_depthwise portable_depthwise
#define lm_cpu_conv2d_depthwise_backward portable_depthwise_backward
#include "../../core/cpu_conv_depthwise.c"
#undef lm_cpu_conv_depthwise_applies
#undef lm_cpu_conv2d_depthwise
#undef lm_cpu_conv2d_depthwise_backward
/* the library's own (cpu_backend.h declared the names above) */
bool lm_cpu_conv_depthwise_applies(int64_t out_channels, const lm_conv_geometry *g);
lm_status lm_cpu_conv2d_depthwise(lm_tensor *out, const lm_tensor *x, const lm_tensor *w,
                                  const lm_tensor *bias, const lm_conv_epilogue *ep,
                                  const lm_conv_geometry *g);
lm_status lm_cpu_conv2d_depthwise_backward(lm_tensor *gx, lm_tensor *gw, const lm_tensor *gy,
                                           const lm_tensor *x, const lm_tensor *w,
                                           const lm_conv_geometry *g);

#include <math.h>

#include "lm_ops.h"
#include "lm_reference.h"
#include "lm_rng.h"
#include "test.h"
#include "test_tensor.h"

/* max |got - want| / max(max |want|, 1) */
static double rel_diff(const lm_tensor *got, const lm_tensor *want) {
    double worst = 0, scale = 1;
    for (int64_t i = 0; i < lm_tensor_numel(want); i++) {
        worst = fmax(worst, fabs(at(got, i) - at(want, i)));
        scale = fmax(scale, fabs(at(want, i)));
    }
    return worst / scale;
}

/* {N, C, multiplier, H, W, kernel, stride, padding, dilation h, dilation w} */
static void check_shape(const int64_t s[10]) {
    int64_t n = s[0], c = s[1], o = s[1] * s[2], h = s[3], w = s[4], k = s[5];
    lm_conv_options opt = {s[6], s[6], s[7], s[7], s[8], s[9], c};
    lm_conv_geometry g = {.channels = c,
                          .height = h,
                          .width = w,
                          .kernel_h = k,
                          .kernel_w = k,
                          .stride_h = s[6],
                          .stride_w = s[6],
                          .pad_h = s[7],
                          .pad_w = s[7],
                          .dilation_h = s[8],
                          .dilation_w = s[9],
                          .groups = c};
    g.out_h = (h + 2 * g.pad_h - g.dilation_h * (k - 1) - 1) / g.stride_h + 1;
    g.out_w = (w + 2 * g.pad_w - g.dilation_w * (k - 1) - 1) / g.stride_w + 1;
    int64_t xs[4] = {n, c, h, w}, ws[4] = {o, 1, k, k}, bs[1] = {o},
            ys[4] = {n, o, g.out_h, g.out_w};
    lm_tensor *x = randn(4, xs), *wt = randn(4, ws), *b = randn(1, bs), *gy = randn(4, ys);
    lm_tensor *ref, *y[2], *gx[2], *gw[2];
    CHECK(portable_depthwise_applies(o, &g) && lm_cpu_conv_depthwise_applies(o, &g));
    for (int v = 0; v < 2; v++) {
        lm_tensor_new(&y[v], LM_FLOAT32, LM_CPU, 4, ys);
        lm_tensor_new(&gx[v], LM_FLOAT32, LM_CPU, 4, xs);
        lm_tensor_new(&gw[v], LM_FLOAT32, LM_CPU, 4, ws);
    }
    CHECK_OK(portable_depthwise(y[0], x, wt, b, NULL, &g));
    CHECK_OK(lm_cpu_conv2d_depthwise(y[1], x, wt, b, NULL, &g));
    CHECK_OK(portable_depthwise_backward(gx[0], gw[0], gy, x, wt, &g));
    CHECK_OK(lm_cpu_conv2d_depthwise_backward(gx[1], gw[1], gy, x, wt, &g));
    CHECK_OK(lm_reference_conv2d(&ref, x, wt, b, &opt));
    CHECK(rel_diff(y[0], ref) < 1e-5);
    CHECK(rel_diff(y[0], y[1]) < 1e-5);
    CHECK(rel_diff(gx[0], gx[1]) < 1e-5);
    CHECK(rel_diff(gw[0], gw[1]) < 1e-5);
    /* and the gradients are not both zero: the comparison means something */
    double gsum = 0;
    for (int64_t i = 0; i < lm_tensor_numel(gw[0]); i++) gsum += fabs(at(gw[0], i));
    CHECK(gsum > 0);
    lm_tensor *all[] = {x, wt, b, gy, ref, y[0], y[1], gx[0], gx[1], gw[0], gw[1]};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) lm_tensor_release(all[i]);
}

static void test_against_the_library(void) {
    lm_manual_seed(5);
    /* partial blocks, 7x7, strides 2 and 3, a dilation pair, 2 filters a
     * channel, a 1x1 plane (the spec's depthwise shapes) */
    static const int64_t shapes[][10] = {
        {3, 4, 1, 13, 37, 3, 1, 1, 1, 1}, {2, 6, 2, 14, 14, 7, 1, 3, 1, 1},
        {2, 5, 1, 15, 19, 3, 2, 1, 1, 1}, {2, 3, 2, 16, 17, 5, 3, 2, 2, 3},
        {1, 2, 1, 1, 1, 3, 2, 1, 1, 1},
    };
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++) check_shape(shapes[i]);
}

TEST_MAIN(test_against_the_library)
