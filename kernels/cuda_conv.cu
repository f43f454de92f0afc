// Whole-batch 2-D convolution through cuDNN: forward and both backward
// passes, with the algorithms found once per shape (cudnnFind*, which times
// them) and cached. TF32 tensor cores only when lm.cuda.allow_tf32(true),
// or under autocast, whose operands come rounded to bfloat16.
#include <cudnn.h>

#include <map>
#include <tuple>

#include "cuda_backend.h"

namespace {

cudnnHandle_t handle;
bool handle_ready;

lm_status dnn_fail(cudnnStatus_t st, const char *what) {
    return lm_fail(LM_ERR_DEVICE, "cuDNN error in %s: %s", what, cudnnGetErrorString(st));
}

#define DNN_TRY(call, what)                                                                        \
    do {                                                                                           \
        cudnnStatus_t dnn_st_ = (call);                                                            \
        if (dnn_st_ != CUDNN_STATUS_SUCCESS) return dnn_fail(dnn_st_, what);                       \
    } while (0)

typedef std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t,
                   int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, bool>
    ShapeKey;

// Descriptors and chosen algorithms of one convolution shape.
struct Plan {
    cudnnTensorDescriptor_t x, y;
    cudnnFilterDescriptor_t w;
    cudnnConvolutionDescriptor_t conv;
    cudnnConvolutionFwdAlgo_t fwd;
    cudnnConvolutionBwdDataAlgo_t bwd_data;
    cudnnConvolutionBwdFilterAlgo_t bwd_filter;
    // each algorithm was timed under its own math type (cudnnFind reports it),
    // and the kernel cuDNN runs depends on both: set before each call
    cudnnMathType_t fwd_math, bwd_data_math, bwd_filter_math;
    size_t fwd_ws, bwd_data_ws, bwd_filter_ws;
    bool found_fwd, found_data, found_filter;
};

std::map<ShapeKey, Plan> plans;

// Under autocast the core rounded the operands to bfloat16, which TF32
// tensor cores hold exactly; a conversion to half precision would not (its
// range is narrower), so that stays refused.
bool tensor_math() {
    return lm_cuda_tf32() || lm_autocast() == LM_AUTOCAST_BF16;
}

// Never ALLOW_CONVERSION, which may convert float32 to half; tensor-core
// math only when allowed.
bool math_ok(cudnnMathType_t m) {
    if (m == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION) return false;
    return tensor_math() || m != CUDNN_TENSOR_OP_MATH;
}

// The math type a chosen algorithm runs under: the one it was timed with,
// but FMA without tensor math (CUDNN_DEFAULT_MATH would let TF32 in on
// Ampere and later; the search ran on an FMA descriptor then anyway).
cudnnMathType_t run_math(cudnnMathType_t timed) {
    return tensor_math() ? timed : CUDNN_FMA_MATH;
}

const size_t WORKSPACE_LIMIT = (size_t)1 << 30;

lm_status describe(Plan *pp, int64_t N, int64_t O, const lm_conv_geometry *g);

lm_status not_capturing(void);

lm_status plan_for(const lm_tensor *x, const lm_tensor *w, const lm_conv_geometry *g, Plan **out) {
    if (!handle_ready) {
        LM_TRY(not_capturing()); /* cuDNN's set-up would break a capture */
        DNN_TRY(cudnnCreate(&handle), "cudnnCreate");
        handle_ready = true;
    }
    DNN_TRY(cudnnSetStream(handle, cu_stream), "cudnnSetStream"); /* (a graph's, while captured) */
    int64_t N = x->shape[0], O = w->shape[0];
    ShapeKey key(N, g->channels, g->height, g->width, O, g->kernel_h, g->kernel_w, g->stride_h,
                 g->stride_w, g->pad_h, g->pad_w, lm_conv_dilation_h(g), lm_conv_dilation_w(g),
                 lm_conv_groups(g), lm_autocast(), lm_cuda_tf32());
    auto found = plans.find(key);
    if (found != plans.end()) {
        *out = &found->second;
        return LM_OK;
    }
    Plan p = {};
    lm_status st = describe(&p, N, O, g);
    if (st != LM_OK) { /* a refused shape leaves no descriptor behind */
        if (p.x) cudnnDestroyTensorDescriptor(p.x);
        if (p.y) cudnnDestroyTensorDescriptor(p.y);
        if (p.w) cudnnDestroyFilterDescriptor(p.w);
        if (p.conv) cudnnDestroyConvolutionDescriptor(p.conv);
        return st;
    }
    auto inserted = plans.emplace(key, p);
    *out = &inserted.first->second;
    return LM_OK;
}

// Creates and sets a plan's four descriptors (what was created stays in p).
lm_status describe(Plan *pp, int64_t N, int64_t O, const lm_conv_geometry *g) {
    Plan &p = *pp;
    DNN_TRY(cudnnCreateTensorDescriptor(&p.x), "descriptor");
    DNN_TRY(cudnnCreateTensorDescriptor(&p.y), "descriptor");
    DNN_TRY(cudnnCreateFilterDescriptor(&p.w), "descriptor");
    DNN_TRY(cudnnCreateConvolutionDescriptor(&p.conv), "descriptor");
    DNN_TRY(cudnnSetTensor4dDescriptor(p.x, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, (int)N,
                                       (int)g->channels, (int)g->height, (int)g->width),
            "input descriptor");
    DNN_TRY(cudnnSetTensor4dDescriptor(p.y, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, (int)N, (int)O,
                                       (int)g->out_h, (int)g->out_w),
            "output descriptor");
    /* a grouped filter holds C / groups input channels, torch's layout */
    int64_t groups = lm_conv_groups(g);
    DNN_TRY(cudnnSetFilter4dDescriptor(p.w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, (int)O,
                                       (int)(g->channels / groups), (int)g->kernel_h,
                                       (int)g->kernel_w),
            "filter descriptor");
    DNN_TRY(cudnnSetConvolution2dDescriptor(p.conv, (int)g->pad_h, (int)g->pad_w, (int)g->stride_h,
                                            (int)g->stride_w, (int)lm_conv_dilation_h(g),
                                            (int)lm_conv_dilation_w(g), CUDNN_CROSS_CORRELATION,
                                            CUDNN_DATA_FLOAT),
            "convolution descriptor");
    DNN_TRY(cudnnSetConvolutionGroupCount(p.conv, (int)groups), "convolution group count");
    DNN_TRY(
        cudnnSetConvolutionMathType(p.conv, tensor_math() ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH),
        "convolution math type");
    return LM_OK;
}

// FFT and Winograd transform the operands before their products: on tensor
// cores the transformed values would be rounded to TF32, which autocast's
// exact products of bfloat16 operands must not be.
bool transforms(cudnnConvolutionFwdAlgo_t a) {
    return a == CUDNN_CONVOLUTION_FWD_ALGO_FFT || a == CUDNN_CONVOLUTION_FWD_ALGO_FFT_TILING ||
           a == CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD ||
           a == CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD_NONFUSED;
}
bool transforms(cudnnConvolutionBwdDataAlgo_t a) {
    return a == CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT ||
           a == CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT_TILING ||
           a == CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD ||
           a == CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD_NONFUSED;
}
bool transforms(cudnnConvolutionBwdFilterAlgo_t a) {
    return a == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_FFT ||
           a == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_FFT_TILING ||
           a == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_WINOGRAD_NONFUSED;
}

// The first (fastest) of cudnnFind*'s results that ran, honours the TF32
// setting (and autocast's exactness) and fits the workspace limit: its
// index, or -1.
template <class Perf> int pick(const Perf *perf, int count) {
    bool exact = lm_autocast() == LM_AUTOCAST_BF16 && !lm_cuda_tf32();
    for (int k = 0; k < count; k++)
        if (perf[k].status == CUDNN_STATUS_SUCCESS && math_ok(perf[k].mathType) &&
            perf[k].memory <= WORKSPACE_LIMIT &&
            !(exact && perf[k].mathType != CUDNN_FMA_MATH && transforms(perf[k].algo)))
            return k;
    return -1;
}

// cudnnFind* times the algorithms by running them and waiting: not within
// a graph capture, where nothing runs
lm_status not_capturing(void) {
    if (!cu_stream) return LM_OK;
    return lm_fail(LM_ERR_DEVICE, "a convolution shape first met inside a CUDA graph capture: "
                                  "run the captured function once before capturing it (cuDNN "
                                  "chooses its algorithms by timing them)");
}

// cudnnFind* allocates its own trial buffers, which Lumen's cache of freed
// blocks may leave no room for: a failed search empties the cache and tries
// once more. The chosen result, or an error naming the pass.
template <class Perf, int MAX, class Find>
lm_status choose(Find find, const char *pass, Perf *chosen) {
    Perf perf[MAX];
    cudnnStatus_t st = CUDNN_STATUS_SUCCESS;
    for (int attempt = 0; attempt < 2; attempt++) {
        int count = 0;
        st = find(MAX, &count, perf);
        int k = st == CUDNN_STATUS_SUCCESS ? pick(perf, count) : -1;
        if (k >= 0) {
            *chosen = perf[k];
            return LM_OK;
        }
        if (!attempt) lm_cuda_empty_cache();
    }
    if (st != CUDNN_STATUS_SUCCESS)
        return lm_fail(LM_ERR_DEVICE, "cuDNN error in choosing the %s algorithm: %s", pass,
                       cudnnGetErrorString(st));
    return lm_fail(LM_ERR_DEVICE, "cuDNN offers no %s algorithm", pass);
}

lm_status workspace(size_t bytes, void **ws) {
    *ws = NULL;
    if (!bytes) return LM_OK;
    *ws = lm_cuda_alloc(bytes);
    return *ws ? LM_OK : LM_ERR_MEMORY;
}

} // namespace

lm_status lm_cuda_conv2d(lm_tensor *out, const lm_tensor *x, const lm_tensor *w,
                         const lm_tensor *bias, const lm_conv_geometry *geo) {
    Plan *p;
    LM_TRY(plan_for(x, w, geo, &p));
    if (!p->found_fwd) {
        LM_TRY(not_capturing());
        cudnnConvolutionFwdAlgoPerf_t best = {};
        LM_TRY((choose<cudnnConvolutionFwdAlgoPerf_t, CUDNN_CONVOLUTION_FWD_ALGO_COUNT>(
            [&](int max, int *count, cudnnConvolutionFwdAlgoPerf_t *perf) {
                return cudnnFindConvolutionForwardAlgorithm(handle, p->x, p->w, p->conv, p->y, max,
                                                            count, perf);
            },
            "forward convolution", &best)));
        p->fwd = best.algo;
        p->fwd_math = run_math(best.mathType);
        p->fwd_ws = best.memory;
        p->found_fwd = true;
    }
    DNN_TRY(cudnnSetConvolutionMathType(p->conv, p->fwd_math), "convolution math type");
    void *ws;
    LM_TRY(workspace(p->fwd_ws, &ws));
    float one = 1, zero = 0;
    cudnnStatus_t st =
        cudnnConvolutionForward(handle, &one, p->x, cu_f32(x), p->w, cu_f32(w), p->conv, p->fwd, ws,
                                p->fwd_ws, &zero, p->y, cu_f32(out));
    lm_cuda_free(ws, p->fwd_ws);
    if (st != CUDNN_STATUS_SUCCESS) return dnn_fail(st, "convolution forward");
    if (!bias) return LM_OK;
    /* the bias as [1, O, 1, 1] broadcast over the output, added in place */
    int64_t bshape[4] = {1, bias->shape[0], 1, 1};
    lm_tensor *b4 = NULL, *planes = NULL;
    lm_status s = lm_tensor_view(&b4, (lm_tensor *)bias, 4, bshape);
    if (s == LM_OK) s = lm_tensor_expand(&planes, b4, 4, out->shape);
    if (s == LM_OK) s = lm_cuda_binary(LM_ADD, out, out, planes);
    lm_tensor_release(b4);
    lm_tensor_release(planes);
    return s;
}

lm_status lm_cuda_conv2d_backward(lm_tensor *gx, lm_tensor *gw, const lm_tensor *g,
                                  const lm_tensor *x, const lm_tensor *w,
                                  const lm_conv_geometry *geo) {
    Plan *p;
    LM_TRY(plan_for(x, w, geo, &p));
    float one = 1, zero = 0;
    if (gx) {
        if (!p->found_data) {
            LM_TRY(not_capturing());
            cudnnConvolutionBwdDataAlgoPerf_t best = {};
            LM_TRY(
                (choose<cudnnConvolutionBwdDataAlgoPerf_t, CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT>(
                    [&](int max, int *count, cudnnConvolutionBwdDataAlgoPerf_t *perf) {
                        return cudnnFindConvolutionBackwardDataAlgorithm(
                            handle, p->w, p->y, p->conv, p->x, max, count, perf);
                    },
                    "backward-data", &best)));
            p->bwd_data = best.algo;
            p->bwd_data_math = run_math(best.mathType);
            p->bwd_data_ws = best.memory;
            p->found_data = true;
        }
        DNN_TRY(cudnnSetConvolutionMathType(p->conv, p->bwd_data_math), "convolution math type");
        void *ws;
        LM_TRY(workspace(p->bwd_data_ws, &ws));
        cudnnStatus_t st =
            cudnnConvolutionBackwardData(handle, &one, p->w, cu_f32(w), p->y, cu_f32(g), p->conv,
                                         p->bwd_data, ws, p->bwd_data_ws, &zero, p->x, cu_f32(gx));
        lm_cuda_free(ws, p->bwd_data_ws);
        if (st != CUDNN_STATUS_SUCCESS) return dnn_fail(st, "convolution backward (data)");
    }
    if (gw) {
        if (!p->found_filter) {
            LM_TRY(not_capturing());
            cudnnConvolutionBwdFilterAlgoPerf_t best = {};
            LM_TRY((choose<cudnnConvolutionBwdFilterAlgoPerf_t,
                           CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT>(
                [&](int max, int *count, cudnnConvolutionBwdFilterAlgoPerf_t *perf) {
                    return cudnnFindConvolutionBackwardFilterAlgorithm(handle, p->x, p->y, p->conv,
                                                                       p->w, max, count, perf);
                },
                "backward-filter", &best)));
            p->bwd_filter = best.algo;
            p->bwd_filter_math = run_math(best.mathType);
            p->bwd_filter_ws = best.memory;
            p->found_filter = true;
        }
        DNN_TRY(cudnnSetConvolutionMathType(p->conv, p->bwd_filter_math), "convolution math type");
        void *ws;
        LM_TRY(workspace(p->bwd_filter_ws, &ws));
        cudnnStatus_t st = cudnnConvolutionBackwardFilter(
            handle, &one, p->x, cu_f32(x), p->y, cu_f32(g), p->conv, p->bwd_filter, ws,
            p->bwd_filter_ws, &zero, p->w, cu_f32(gw));
        lm_cuda_free(ws, p->bwd_filter_ws);
        if (st != CUDNN_STATUS_SUCCESS) return dnn_fail(st, "convolution backward (filter)");
    }
    return LM_OK;
}
