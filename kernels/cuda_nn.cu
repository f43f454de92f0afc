// CUDA kernels of the layers: softmax, im2col/col2im, pooling, row gathers,
// one-hot and the fused optimiser updates, with the CPU's semantics
// (core/cpu_nn.c). Operands are contiguous, as the backend contract says.
#include <math.h>

#include "cuda_backend.h"

extern "C" {
#include "lm_scalar_ops.h"
}

namespace {

__device__ __forceinline__ float warp_max(float v) {
    for (int d = 16; d > 0; d >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, d));
    return v;
}

// ---- softmax: one warp per row ----

__global__ void softmax_rows(float *out, const float *x, int64_t rows, int64_t cols, bool log) {
    int lane = threadIdx.x & 31;
    CU_WARP_LOOP(r, rows) {
        const float *xr = x + r * cols;
        float *o = out + r * cols;
        float m = -INFINITY;
        for (int64_t c = lane; c < cols; c += 32) m = fmaxf(m, xr[c]);
        m = warp_max(m);
        double sum = 0;
        for (int64_t c = lane; c < cols; c += 32) {
            float e = expf(xr[c] - m);
            sum += e;
            if (!log) o[c] = e;
        }
        sum = cu_warp_sum(sum);
        if (log) {
            float ls = (float)::log(sum); /* (x - m) - log(sum), as the CPU's */
            for (int64_t c = lane; c < cols; c += 32) o[c] = (xr[c] - m) - ls;
        } else {
            float inv = (float)(1.0 / sum);
            for (int64_t c = lane; c < cols; c += 32) o[c] *= inv;
        }
    }
}

__global__ void softmax_backward_rows(float *gx, const float *g, const float *y, int64_t rows,
                                      int64_t cols, bool log) {
    int lane = threadIdx.x & 31;
    CU_WARP_LOOP(r, rows) {
        const float *gr = g + r * cols, *yr = y + r * cols;
        float *o = gx + r * cols;
        double dot = 0;
        for (int64_t c = lane; c < cols; c += 32)
            dot += log ? (double)gr[c] : (double)gr[c] * yr[c];
        float d = (float)cu_warp_sum(dot);
        for (int64_t c = lane; c < cols; c += 32)
            o[c] = log ? gr[c] - expf(yr[c]) * d : yr[c] * (gr[c] - d);
    }
}

// ---- im2col / col2im for one image (one group's channels), with dilation ----

__global__ void im2col_kernel(float *cols, const float *x, lm_conv_geometry g, int64_t n) {
    int64_t plane = g.out_h * g.out_w, dh = lm_conv_dilation_h(&g), dw = lm_conv_dilation_w(&g);
    CU_GRID_LOOP(e, n) { /* e = ((c * kh + ki) * kw + kj) * plane + oi * ow + oj */
        int64_t p = e % plane, row = e / plane;
        int64_t oi = p / g.out_w, oj = p % g.out_w;
        int64_t kj = row % g.kernel_w, ki = (row / g.kernel_w) % g.kernel_h;
        int64_t c = row / (g.kernel_w * g.kernel_h);
        int64_t i = oi * g.stride_h - g.pad_h + ki * dh, j = oj * g.stride_w - g.pad_w + kj * dw;
        cols[e] = i >= 0 && i < g.height && j >= 0 && j < g.width
                      ? x[(c * g.height + i) * g.width + j]
                      : 0.0f;
    }
}

// One thread per input pixel gathers every tap that saw it: no atomics.
__global__ void col2im_kernel(float *gx, const float *cols, lm_conv_geometry g, int64_t n) {
    int64_t plane = g.out_h * g.out_w, dh = lm_conv_dilation_h(&g), dw = lm_conv_dilation_w(&g);
    CU_GRID_LOOP(e, n) { /* e = (c * H + i) * W + j */
        int64_t j = e % g.width, i = (e / g.width) % g.height, c = e / (g.width * g.height);
        float acc = 0;
        for (int64_t ki = 0; ki < g.kernel_h; ki++) {
            int64_t t = i + g.pad_h - ki * dh;
            if (t < 0 || t % g.stride_h) continue;
            int64_t oi = t / g.stride_h;
            if (oi >= g.out_h) continue;
            for (int64_t kj = 0; kj < g.kernel_w; kj++) {
                int64_t u = j + g.pad_w - kj * dw;
                if (u < 0 || u % g.stride_w) continue;
                int64_t oj = u / g.stride_w;
                if (oj >= g.out_w) continue;
                acc += cols[((c * g.kernel_h + ki) * g.kernel_w + kj) * plane + oi * g.out_w + oj];
            }
        }
        gx[e] += acc;
    }
}

// ---- pooling over planes [P, H, W] ----

__global__ void pool_kernel(float *out, int32_t *argmax, const float *x, lm_conv_geometry g,
                            int64_t n) {
    int64_t out_plane = g.out_h * g.out_w;
    CU_GRID_LOOP(o, n) {
        int64_t p = o / out_plane, oi = (o % out_plane) / g.out_w, oj = o % g.out_w;
        const float *xp = x + p * g.height * g.width;
        float best = -INFINITY, sum = 0;
        int32_t best_at = -1;
        for (int64_t ki = 0; ki < g.kernel_h; ki++) {
            int64_t i = oi * g.stride_h - g.pad_h + ki;
            if (i < 0 || i >= g.height) continue;
            for (int64_t kj = 0; kj < g.kernel_w; kj++) {
                int64_t j = oj * g.stride_w - g.pad_w + kj;
                if (j < 0 || j >= g.width) continue;
                float v = xp[i * g.width + j];
                sum += v;
                if (v > best || best_at < 0 || v != v) {
                    best = v;
                    best_at = (int32_t)(i * g.width + j);
                }
            }
        }
        if (argmax) {
            out[o] = best;
            argmax[o] = best_at;
        } else {
            out[o] = sum / (float)(g.kernel_h * g.kernel_w);
        }
    }
}

// One thread per input pixel: max pooling sums the outputs whose argmax it
// is, average pooling every window that covers it. Deterministic, no atomics.
__global__ void pool_backward_kernel(float *gx, const float *g, const int32_t *argmax,
                                     lm_conv_geometry geo, int64_t n) {
    int64_t in_plane = geo.height * geo.width, out_plane = geo.out_h * geo.out_w;
    float scale = 1.0f / (float)(geo.kernel_h * geo.kernel_w);
    CU_GRID_LOOP(e, n) {
        int64_t p = e / in_plane, pix = e % in_plane, i = pix / geo.width, j = pix % geo.width;
        float acc = 0;
        for (int64_t ki = 0; ki < geo.kernel_h; ki++) {
            int64_t t = i + geo.pad_h - ki;
            if (t < 0 || t % geo.stride_h) continue;
            int64_t oi = t / geo.stride_h;
            if (oi >= geo.out_h) continue;
            for (int64_t kj = 0; kj < geo.kernel_w; kj++) {
                int64_t u = j + geo.pad_w - kj;
                if (u < 0 || u % geo.stride_w) continue;
                int64_t oj = u / geo.stride_w;
                if (oj >= geo.out_w) continue;
                int64_t o = p * out_plane + oi * geo.out_w + oj;
                if (!argmax)
                    acc += g[o] * scale;
                else if (argmax[o] == pix)
                    acc += g[o];
            }
        }
        gx[e] = acc;
    }
}

// ---- gathers, one-hot ----

__global__ void gather_kernel(float *out, const float *x, const int32_t *idx, int64_t idx_stride,
                              int64_t row, int64_t n) {
    CU_GRID_LOOP(e, n) out[e] = x[(int64_t)idx[(e / row) * idx_stride] * row + e % row];
}

__global__ void one_hot_kernel(float *out, const int32_t *labels, int64_t stride, int64_t classes,
                               int64_t n) {
    CU_GRID_LOOP(e, n) {
        int64_t i = e / classes, c = e % classes;
        out[e] = labels[i * stride] == c ? 1.0f : 0.0f;
    }
}

// ---- optimisers: the CPU's arithmetic, element by element ----

struct OptimArgs {
    int kind;
    float lr, wd, eps, mu, b1, b2, step, inv_root_c2, alpha;
    float ob1, ob2, oalpha; /* 1 - beta1, 1 - beta2, 1 - alpha, from the doubles (as the CPU) */
    bool nesterov;
};

__device__ __forceinline__ void optim_update(const OptimArgs &p, float *w, const float *g,
                                             float *s1, float *s2, int64_t i) {
    {
        switch (p.kind) {
        case LM_OPT_SGD: {
            float d = g[i] + p.wd * w[i];
            if (s1) {
                float v = p.mu * s1[i] + d;
                s1[i] = v;
                d = p.nesterov ? d + p.mu * v : v;
            }
            w[i] -= p.lr * d;
            break;
        }
        case LM_OPT_ADAM:
        case LM_OPT_ADAMW: {
            bool decoupled = p.kind == LM_OPT_ADAMW;
            float gi = decoupled ? g[i] : g[i] + p.wd * w[i];
            if (decoupled) w[i] -= p.lr * p.wd * w[i];
            float m = p.b1 * s1[i] + p.ob1 * gi;
            float v = p.b2 * s2[i] + p.ob2 * gi * gi;
            s1[i] = m;
            s2[i] = v;
            w[i] -= p.step * m / (sqrtf(v) * p.inv_root_c2 + p.eps);
            break;
        }
        default: { /* RMSprop */
            float gi = g[i] + p.wd * w[i];
            float v = p.alpha * s1[i] + p.oalpha * gi * gi;
            s1[i] = v;
            w[i] -= p.lr * gi / (sqrtf(v) + p.eps);
        }
        }
    }
}

// `live`: inside a CUDA graph, the settings in device memory that each
// replay writes first (the rate and the step's bias corrections change)
__global__ void optim_kernel(OptimArgs p, const OptimArgs *live, float *w, const float *g,
                             float *s1, float *s2, int64_t n) {
    const OptimArgs &q = live ? *live : p;
    CU_GRID_LOOP(i, n) optim_update(q, w, g, s1, s2, i);
}

// Many parameters in one launch: block b works on the tensor whose range of
// blocks holds b (first_block is a prefix sum), element by element.
const int MANY_PER_LAUNCH = 48;
const int MANY_BLOCK_ELEMS = 4096;

struct ManyArgs {
    int count;
    float *w[MANY_PER_LAUNCH], *s1[MANY_PER_LAUNCH], *s2[MANY_PER_LAUNCH];
    const float *g[MANY_PER_LAUNCH];
    int64_t n[MANY_PER_LAUNCH];
    int first_block[MANY_PER_LAUNCH + 1];
};

__global__ void optim_many_kernel(OptimArgs p, const OptimArgs *live, ManyArgs m) {
    const OptimArgs &q = live ? *live : p;
    int t = 0;
    while (t + 1 < m.count && (int)blockIdx.x >= m.first_block[t + 1]) t++;
    int64_t begin = (int64_t)(blockIdx.x - m.first_block[t]) * MANY_BLOCK_ELEMS;
    int64_t end = begin + MANY_BLOCK_ELEMS < m.n[t] ? begin + MANY_BLOCK_ELEMS : m.n[t];
    for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x)
        optim_update(q, m.w[t], m.g[t], m.s1[t], m.s2[t], i);
}

__global__ void set_optim_args(OptimArgs *slot, OptimArgs a) {
    *slot = a;
}

} // namespace

lm_status lm_cuda_softmax(lm_tensor *out, const lm_tensor *x, bool log) {
    int64_t cols = x->ndim ? x->shape[x->ndim - 1] : 1;
    int64_t rows = cols ? lm_tensor_numel(x) / cols : 0;
    if (!rows) return LM_OK;
    cu_launch(cu_blocks(rows * 32), CU_THREADS, softmax_rows, cu_f32(out), cu_f32(x), rows, cols,
              log);
    CU_LAUNCHED("softmax");
    return LM_OK;
}

lm_status lm_cuda_softmax_backward(lm_tensor *gx, const lm_tensor *g, const lm_tensor *y,
                                   bool log) {
    int64_t cols = y->ndim ? y->shape[y->ndim - 1] : 1;
    int64_t rows = cols ? lm_tensor_numel(y) / cols : 0;
    if (!rows) return LM_OK;
    cu_launch(cu_blocks(rows * 32), CU_THREADS, softmax_backward_rows, cu_f32(gx), cu_f32(g),
              cu_f32(y), rows, cols, log);
    CU_LAUNCHED("softmax backward");
    return LM_OK;
}

lm_status lm_cuda_im2col(lm_tensor *cols, const lm_tensor *x, const lm_conv_geometry *geo) {
    int64_t n = lm_tensor_numel(cols);
    if (!n) return LM_OK;
    cu_launch(cu_blocks(n), CU_THREADS, im2col_kernel, cu_f32(cols), cu_f32(x), *geo, n);
    CU_LAUNCHED("im2col");
    return LM_OK;
}

lm_status lm_cuda_col2im(lm_tensor *gx, const lm_tensor *cols, const lm_conv_geometry *geo) {
    int64_t n = lm_tensor_numel(gx);
    if (!n) return LM_OK;
    cu_launch(cu_blocks(n), CU_THREADS, col2im_kernel, cu_f32(gx), cu_f32(cols), *geo, n);
    CU_LAUNCHED("col2im");
    return LM_OK;
}

lm_status lm_cuda_pool2d(lm_tensor *out, lm_tensor *argmax, const lm_tensor *x,
                         const lm_conv_geometry *geo) {
    int64_t n = lm_tensor_numel(out);
    if (!n) return LM_OK;
    cu_launch(cu_blocks(n), CU_THREADS, pool_kernel, cu_f32(out), argmax ? cu_i32(argmax) : NULL,
              cu_f32(x), *geo, n);
    CU_LAUNCHED("pool2d");
    return LM_OK;
}

lm_status lm_cuda_pool2d_backward(lm_tensor *gx, const lm_tensor *g, const lm_tensor *argmax,
                                  const lm_conv_geometry *geo) {
    int64_t n = lm_tensor_numel(gx);
    if (!n) return LM_OK;
    cu_launch(cu_blocks(n), CU_THREADS, pool_backward_kernel, cu_f32(gx), cu_f32(g),
              argmax ? cu_i32(argmax) : NULL, *geo, n);
    CU_LAUNCHED("pool2d backward");
    return LM_OK;
}

lm_status lm_cuda_index_select(lm_tensor *out, const lm_tensor *x, const lm_tensor *idx) {
    int64_t n = lm_tensor_numel(out), row = x->shape[0] ? lm_tensor_numel(x) / x->shape[0] : 0;
    if (!n || !row) return LM_OK;
    cu_launch(cu_blocks(n), CU_THREADS, gather_kernel, cu_f32(out), cu_f32(x), cu_i32(idx),
              idx->strides[0], row, n);
    CU_LAUNCHED("index_select");
    return LM_OK;
}

lm_status lm_cuda_one_hot(lm_tensor *out, const lm_tensor *labels) {
    int64_t n = lm_tensor_numel(out);
    if (!n) return LM_OK;
    cu_launch(cu_blocks(n), CU_THREADS, one_hot_kernel, cu_f32(out), cu_i32(labels),
              labels->strides[0], out->shape[1], n);
    CU_LAUNCHED("one_hot");
    return LM_OK;
}

static OptimArgs optim_args(const lm_optim_params *p) {
    OptimArgs a;
    a.kind = p->kind;
    a.lr = (float)p->lr, a.wd = (float)p->weight_decay, a.eps = (float)p->eps;
    a.mu = (float)p->momentum, a.nesterov = p->nesterov;
    a.b1 = (float)p->beta1, a.b2 = (float)p->beta2, a.alpha = (float)p->alpha;
    a.ob1 = (float)(1 - p->beta1), a.ob2 = (float)(1 - p->beta2), a.oalpha = (float)(1 - p->alpha);
    a.step = a.inv_root_c2 = 1;
    if (p->kind == LM_OPT_ADAM || p->kind == LM_OPT_ADAMW) {
        /* bias corrections folded into the step size and epsilon, as on the CPU:
         * sqrt(v) / sqrt(c2) as a product with the inverse */
        double c1 = 1 - pow(p->beta1, (double)p->step), c2 = 1 - pow(p->beta2, (double)p->step);
        a.step = (float)(p->lr / c1);
        a.inv_root_c2 = (float)(1 / sqrt(c2));
    }
    return a;
}

// The device copy of a launch's settings inside a CUDA graph (NULL outside
// one), or while a replay is prepared (*refreshed) the slot of the next
// captured launch, given this step's settings instead of launching.
static lm_status graph_slot(const OptimArgs &a, OptimArgs **slot, bool *refreshed) {
    void *p = NULL;
    *slot = NULL;
    LM_TRY(lm_cuda_graph_slot(sizeof(OptimArgs), &p, refreshed));
    *slot = (OptimArgs *)p;
    if (*refreshed) {
        cu_launch(1, 1, set_optim_args, *slot, a);
        CU_LAUNCHED("optimizer step (a CUDA graph's settings)");
    }
    return LM_OK;
}

lm_status lm_cuda_optim_step(const lm_optim_params *p, lm_tensor *param, const lm_tensor *grad,
                             lm_tensor *s1, lm_tensor *s2) {
    OptimArgs a = optim_args(p);
    int64_t n = lm_tensor_numel(param);
    if (!n) return LM_OK;
    OptimArgs *live;
    bool refreshed;
    LM_TRY(graph_slot(a, &live, &refreshed));
    if (refreshed) return LM_OK;
    cu_launch(cu_blocks(n), CU_THREADS, optim_kernel, a, live, cu_f32(param), cu_f32(grad),
              s1 ? cu_f32(s1) : NULL, s2 ? cu_f32(s2) : NULL, n);
    CU_LAUNCHED("optimizer step");
    return LM_OK;
}

lm_status lm_cuda_optim_step_many(const lm_optim_params *p, int n, lm_tensor *const *params,
                                  const lm_tensor *const *grads, lm_tensor *const *s1,
                                  lm_tensor *const *s2) {
    OptimArgs a = optim_args(p);
    /* a launch takes the next MANY_PER_LAUNCH non-empty parameters: the scan
     * goes on where the last launch stopped (a fixed stride would give a
     * parameter after an empty one two updates) */
    for (int i = 0; i < n;) {
        ManyArgs m;
        m.count = 0;
        int blocks = 0;
        for (; i < n && m.count < MANY_PER_LAUNCH; i++) {
            int64_t len = lm_tensor_numel(params[i]);
            if (!len) continue;
            int k = m.count++;
            m.w[k] = cu_f32(params[i]);
            m.g[k] = cu_f32(grads[i]);
            m.s1[k] = s1[i] ? cu_f32(s1[i]) : NULL;
            m.s2[k] = s2[i] ? cu_f32(s2[i]) : NULL;
            m.n[k] = len;
            m.first_block[k] = blocks;
            blocks += (int)((len + MANY_BLOCK_ELEMS - 1) / MANY_BLOCK_ELEMS);
        }
        if (!m.count) continue;
        m.first_block[m.count] = blocks;
        OptimArgs *live;
        bool refreshed;
        LM_TRY(graph_slot(a, &live, &refreshed));
        if (refreshed) continue;
        cu_launch(blocks, CU_THREADS, optim_many_kernel, a, live, m);
        CU_LAUNCHED("optimizer step");
    }
    return LM_OK;
}
