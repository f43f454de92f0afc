// CUDA kernels of resampling along one dimension, with the CPU's semantics
// (core/cpu_resample.c): one thread per output element forward; backward one
// thread per line along the dimension, which clears its line of gx and adds
// the taps in the CPU's order (no atomics: the same sums on every run). The
// two-dimensional form (both of the last two dimensions at once) adds its
// backward with atomics: a plane per thread would leave the GPU idle.
#include "cuda_backend.h"

namespace {

// out [outer, m, inner] from x [outer, n, inner]
__global__ void resample_kernel(float *out, const float *x, const int32_t *idx, const float *w,
                                int64_t n, int64_t m, int64_t inner, int taps, int64_t total) {
    CU_GRID_LOOP(e, total) {
        int64_t i = e % inner, k = (e / inner) % m, o = e / (inner * m);
        const float *line = x + o * n * inner + i;
        const int32_t *ik = idx + k * taps;
        const float *wk = w + k * taps;
        float s = wk[0] * line[(int64_t)ik[0] * inner];
        for (int t = 1; t < taps; t++) s += wk[t] * line[(int64_t)ik[t] * inner];
        out[e] = s;
    }
}

// gx [outer, n, inner] from g [outer, m, inner]: line l = (o, i)
__global__ void resample_backward_kernel(float *gx, const float *g, const int32_t *idx,
                                         const float *w, int64_t n, int64_t m, int64_t inner,
                                         int taps, int64_t lines) {
    CU_GRID_LOOP(l, lines) {
        int64_t i = l % inner, o = l / inner;
        float *dst = gx + o * n * inner + i;
        const float *src = g + o * m * inner + i;
        for (int64_t p = 0; p < n; p++) dst[p * inner] = 0.0f;
        for (int64_t k = 0; k < m; k++) {
            float gk = src[k * inner];
            for (int t = 0; t < taps; t++)
                dst[(int64_t)idx[k * taps + t] * inner] += w[k * taps + t] * gk;
        }
    }
}

// out [planes, mh, mw] from x [planes, h, w], one thread per output element
__global__ void resample2d_kernel(float *out, const float *x, const int32_t *ih, const float *wh,
                                  const int32_t *iw, const float *ww, int64_t h, int64_t w,
                                  int64_t mh, int64_t mw, int th, int tw, int64_t total) {
    CU_GRID_LOOP(e, total) {
        int64_t k = e % mw, i = (e / mw) % mh, o = e / (mw * mh);
        const float *plane = x + o * h * w;
        float acc = 0.0f;
        for (int a = 0; a < th; a++) {
            const float *row = plane + (int64_t)ih[i * th + a] * w;
            float s = ww[k * tw] * row[iw[k * tw]];
            for (int b = 1; b < tw; b++) s += ww[k * tw + b] * row[iw[k * tw + b]];
            acc = a == 0 ? wh[i * th] * s : acc + wh[i * th + a] * s;
        }
        out[e] = acc;
    }
}

// gx (zeroed) += each output's weighted taps: atomic adds, so positions read
// by several outputs sum in any order (to rounding, as the CPU's in-order sum)
__global__ void resample2d_backward_kernel(float *gx, const float *g, const int32_t *ih,
                                           const float *wh, const int32_t *iw, const float *ww,
                                           int64_t h, int64_t w, int64_t mh, int64_t mw, int th,
                                           int tw, int64_t total) {
    CU_GRID_LOOP(e, total) {
        int64_t k = e % mw, i = (e / mw) % mh, o = e / (mw * mh);
        float *plane = gx + o * h * w;
        for (int a = 0; a < th; a++) {
            float *row = plane + (int64_t)ih[i * th + a] * w;
            float v = wh[i * th + a] * g[e];
            for (int b = 0; b < tw; b++) atomicAdd(row + iw[k * tw + b], ww[k * tw + b] * v);
        }
    }
}

__global__ void zero_kernel(float *x, int64_t n) {
    CU_GRID_LOOP(i, n) x[i] = 0.0f;
}

void split_at(const lm_tensor *t, int dim, int64_t *outer, int64_t *inner) {
    *outer = *inner = 1;
    for (int d = 0; d < dim; d++) *outer *= t->shape[d];
    for (int d = dim + 1; d < t->ndim; d++) *inner *= t->shape[d];
}

} // namespace

lm_status lm_cuda_resample(lm_tensor *out, const lm_tensor *x, const lm_tensor *idx,
                           const lm_tensor *w, int dim) {
    int64_t outer, inner, total = lm_tensor_numel(out);
    if (!total) return LM_OK;
    split_at(x, dim, &outer, &inner);
    cu_launch(cu_blocks(total), CU_THREADS, resample_kernel, cu_f32(out), cu_f32(x), cu_i32(idx),
              cu_f32(w), x->shape[dim], idx->shape[0], inner, (int)idx->shape[1], total);
    CU_LAUNCHED("resample");
    return LM_OK;
}

lm_status lm_cuda_resample_backward(lm_tensor *gx, const lm_tensor *g, const lm_tensor *idx,
                                    const lm_tensor *w, int dim) {
    int64_t outer, inner;
    if (!lm_tensor_numel(gx)) return LM_OK;
    split_at(gx, dim, &outer, &inner);
    int64_t lines = outer * inner;
    cu_launch(cu_blocks(lines), CU_THREADS, resample_backward_kernel, cu_f32(gx), cu_f32(g),
              cu_i32(idx), cu_f32(w), gx->shape[dim], idx->shape[0], inner, (int)idx->shape[1],
              lines);
    CU_LAUNCHED("resample_backward");
    return LM_OK;
}

lm_status lm_cuda_resample2d(lm_tensor *out, const lm_tensor *x, const lm_tensor *idx_h,
                             const lm_tensor *w_h, const lm_tensor *idx_w, const lm_tensor *w_w) {
    int64_t total = lm_tensor_numel(out);
    if (!total) return LM_OK;
    int n = x->ndim;
    cu_launch(cu_blocks(total), CU_THREADS, resample2d_kernel, cu_f32(out), cu_f32(x),
              cu_i32(idx_h), cu_f32(w_h), cu_i32(idx_w), cu_f32(w_w), x->shape[n - 2],
              x->shape[n - 1], idx_h->shape[0], idx_w->shape[0], (int)idx_h->shape[1],
              (int)idx_w->shape[1], total);
    CU_LAUNCHED("resample2d");
    return LM_OK;
}

lm_status lm_cuda_resample2d_backward(lm_tensor *gx, const lm_tensor *g, const lm_tensor *idx_h,
                                      const lm_tensor *w_h, const lm_tensor *idx_w,
                                      const lm_tensor *w_w) {
    int64_t n_gx = lm_tensor_numel(gx), total = lm_tensor_numel(g);
    if (!n_gx) return LM_OK;
    int n = gx->ndim;
    cu_launch(cu_blocks(n_gx), CU_THREADS, zero_kernel, cu_f32(gx), n_gx);
    if (total)
        cu_launch(cu_blocks(total), CU_THREADS, resample2d_backward_kernel, cu_f32(gx), cu_f32(g),
                  cu_i32(idx_h), cu_f32(w_h), cu_i32(idx_w), cu_f32(w_w), gx->shape[n - 2],
                  gx->shape[n - 1], idx_h->shape[0], idx_w->shape[0], (int)idx_h->shape[1],
                  (int)idx_w->shape[1], total);
    CU_LAUNCHED("resample2d_backward");
    return LM_OK;
}
