// Batch and layer normalisation on the GPU with the arithmetic of the CPU's
// kernels (core/cpu_norm.c, core/cpu_layer_norm.c): the statistics summed in
// double (in another order, so a mean may differ in its last bit), then the
// same float operations, each rounded on its own (the kernels are built
// with -fmad=false, as the CPU's C11 build contracts nothing). Layer norm's
// weight and bias gradients are summed exactly as on the CPU.
// Without these entries the caller composes a batch norm of a dozen
// elementwise ops and reductions forward and as many backward, each a pass
// over the activations.
#include <math.h>

#include "cuda_backend.h"
#include "lm_scalar_ops.h"

namespace {

// ---- batch normalisation over x [N, C, S] --------------------------------

// Each channel's sums are split into parts, one block each, so that a few
// wide channels (a ResNet's first layers) still fill the device; one thread
// a channel adds the parts in order, so the sums do not depend on timing.
const int64_t BN_MIN_PER_PART = 2048;
const int64_t BN_MAX_PARTS = 64;

int device_sms(void) {
    static int sms = 0;
    if (sms < 1) {
        int dev = 0;
        if (cudaGetDevice(&dev) != cudaSuccess ||
            cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess ||
            sms < 1)
            sms = 100;
    }
    return sms;
}

struct BnShape {
    int64_t n, c, s;
    int64_t count; // values a channel: n * s
    int64_t parts; // blocks a channel
    int64_t chunk; // values a part
};

BnShape bn_shape(const lm_tensor *x) {
    BnShape sh = {x->shape[0], x->shape[1], x->shape[2], x->shape[0] * x->shape[2], 1, 0};
    int64_t want = (4 * (int64_t)device_sms() + sh.c - 1) / sh.c;
    int64_t most = (sh.count + BN_MIN_PER_PART - 1) / BN_MIN_PER_PART;
    sh.parts = want < most ? want : most;
    if (sh.parts > BN_MAX_PARTS) sh.parts = BN_MAX_PARTS;
    if (sh.parts < 1) sh.parts = 1;
    sh.chunk = (sh.count + sh.parts - 1) / sh.parts;
    return sh;
}

// Part blockIdx.y of channel blockIdx.x. Forward (g NULL): the sums of
// x - shift and of its square, shift the channel's first value as on the CPU
// (no cancellation when the mean is large against the spread). Backward:
// the sums of g and of g (x - mean). I: the index type (32 bits where the
// tensor allows, as 64-bit division is emulated on the GPU).
template <typename I>
__global__ void bn_partials(double2 *parts, const float *x, const float *g, const float *mean,
                            BnShape sh) {
    int64_t ch = blockIdx.x, p = blockIdx.y;
    I j0 = (I)(p * sh.chunk), j1 = (I)(j0 + sh.chunk < sh.count ? j0 + sh.chunk : sh.count);
    I s = (I)sh.s, plane_step = (I)(sh.c * sh.s);
    const float *xc = x + ch * sh.s, *gc = g ? g + ch * sh.s : NULL;
    double center = g ? (double)mean[ch] : (double)xc[0];
    double a = 0, b = 0;
    for (I j = j0 + (I)threadIdx.x; j < j1; j += (I)blockDim.x) {
        I image = j / s, at = image * plane_step + (j - image * s);
        double d = (double)xc[at] - center;
        if (gc) {
            double gv = gc[at];
            a += gv;
            b += gv * d;
        } else {
            a += d;
            b += d * d;
        }
    }
    cu_block_sums(a, b);
    if (threadIdx.x == 0) parts[ch * sh.parts + p] = make_double2(a, b);
}

// Channel ch's two sums, its parts added in order.
__device__ double2 channel_total(const double2 *parts, int64_t ch, const BnShape &sh) {
    double2 t = make_double2(0, 0);
    for (int64_t p = 0; p < sh.parts; p++) {
        double2 q = parts[ch * sh.parts + p];
        t.x += q.x;
        t.y += q.y;
    }
    return t;
}

// One thread a channel: the batch's mean and biased variance, and the
// channel's affine map y = x * coef[ch] + coef[C + ch], as the CPU forms them.
__global__ void bn_finish_forward(float *mean, float *var, float *coef, const double2 *parts,
                                  const float *x, const float *w, const float *b, double eps,
                                  BnShape sh) {
    CU_GRID_LOOP(ch, sh.c) {
        double2 t = channel_total(parts, ch, sh);
        double sum = t.x, sumsq = t.y, count = (double)sh.count, shift = x[ch * sh.s];
        double m = shift + sum / count, v = sumsq / count - (sum / count) * (sum / count);
        if (v < 0) v = 0;
        mean[ch] = (float)m;
        var[ch] = (float)v;
        double invstd = lm_batch_invstd(v, eps), wv = w ? w[ch] : 1, bv = b ? b[ch] : 0;
        coef[ch] = (float)(invstd * wv);
        coef[sh.c + ch] = (float)(bv - m * invstd * wv);
    }
}

// One thread a channel: the parameters' gradients and the input gradient's
// gx = k1 g + k2 x + k3, the coefficients in coef [3, C], as on the CPU.
__global__ void bn_finish_backward(float *gw, float *gb, float *coef, const double2 *parts,
                                   const float *mean, const float *var, const float *w, double eps,
                                   BnShape sh) {
    CU_GRID_LOOP(ch, sh.c) {
        double2 t = channel_total(parts, ch, sh);
        double sum_g = t.x, sum_gx = t.y, count = (double)sh.count, m = mean[ch],
               invstd = lm_batch_invstd(var[ch], eps);
        if (gw) gw[ch] = (float)(sum_gx * invstd);
        if (gb) gb[ch] = (float)sum_g;
        double wv = w ? w[ch] : 1, k1 = wv * invstd, k2 = -k1 * invstd * invstd * sum_gx / count;
        coef[ch] = (float)k1;
        coef[sh.c + ch] = (float)k2;
        coef[2 * sh.c + ch] = (float)(-k1 * sum_g / count - k2 * m);
    }
}

// y = x * scale + shift (+ residual) (then ReLU), each op rounded on its own;
// coef [2, C] = scale, shift. The batch norm's output in training, and in
// evaluation the channel_affine entry.
template <typename I, bool RESIDUAL, bool RELU>
__global__ void affine_kernel(float *y, const float *x, const float *scale, const float *shift,
                              const float *r, I total, I s, I c) {
    for (I i = (I)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (I)gridDim.x * blockDim.x) {
        I ch = (i / s) % c;
        float v = x[i] * scale[ch] + shift[ch];
        if (RESIDUAL) v += r[i];
        if (RELU) v = !(v <= 0) ? v : 0.0f; /* NaN passes, as LM_RELU */
        y[i] = v;
    }
}

template <typename I>
__global__ void bn_input_grad(float *gx, const float *g, const float *x, const float *coef, I total,
                              I s, I c) {
    for (I i = (I)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (I)gridDim.x * blockDim.x) {
        I ch = (i / s) % c;
        gx[i] = coef[ch] * g[i] + coef[c + ch] * x[i] + coef[2 * c + ch];
    }
}

// 32-bit indices where every index of the tensor fits in them with room for
// the grid's stride
bool fits_32bit(int64_t total) {
    return total <= 0x7fffffffLL;
}

template <typename I>
void launch_affine(float *y, const float *x, const float *scale, const float *shift, const float *r,
                   bool relu, int64_t total, int64_t s, int64_t c) {
    unsigned blocks = cu_blocks(total);
    if (r && relu)
        cu_launch(blocks, CU_THREADS, affine_kernel<I, true, true>, y, x, scale, shift, r, total, s,
                  c);
    else if (r)
        cu_launch(blocks, CU_THREADS, affine_kernel<I, true, false>, y, x, scale, shift, r, total,
                  s, c);
    else if (relu)
        cu_launch(blocks, CU_THREADS, affine_kernel<I, false, true>, y, x, scale, shift, r, total,
                  s, c);
    else
        cu_launch(blocks, CU_THREADS, affine_kernel<I, false, false>, y, x, scale, shift, r, total,
                  s, c);
}

void affine(float *y, const float *x, const float *scale, const float *shift, const float *r,
            bool relu, int64_t total, int64_t s, int64_t c) {
    if (fits_32bit(total))
        launch_affine<uint32_t>(y, x, scale, shift, r, relu, total, s, c);
    else
        launch_affine<int64_t>(y, x, scale, shift, r, relu, total, s, c);
}

void partials(double2 *parts, const float *x, const float *g, const float *mean,
              const BnShape &sh) {
    dim3 grid((unsigned)sh.c, (unsigned)sh.parts);
    if (fits_32bit(sh.n * sh.c * sh.s))
        cu_launch(grid, CU_THREADS, bn_partials<uint32_t>, parts, x, g, mean, sh);
    else
        cu_launch(grid, CU_THREADS, bn_partials<int64_t>, parts, x, g, mean, sh);
}

// The work space of a batch norm: the parts' sums, then 3 floats a channel.
struct BnScratch {
    void *base = NULL;
    size_t bytes = 0;
    double2 *parts = NULL;
    float *coef = NULL;
    lm_status take(const BnShape &sh) {
        size_t part_bytes = sizeof(double2) * (size_t)(sh.c * sh.parts);
        bytes = part_bytes + sizeof(float) * (size_t)(3 * sh.c);
        base = lm_cuda_alloc(bytes);
        if (!base) return LM_ERR_MEMORY;
        parts = (double2 *)base;
        coef = (float *)((char *)base + part_bytes);
        return LM_OK;
    }
    BnScratch() = default;
    BnScratch(const BnScratch &) = delete;
    BnScratch &operator=(const BnScratch &) = delete;
    ~BnScratch() {
        if (base) lm_cuda_free(base, bytes); /* the stream orders the reuse */
    }
};

// Before bn_shape, which divides by the channels: the callers refuse empty
// batches (lm_ag_batch_norm_then), and this entry does too.
lm_status check_channels(const lm_tensor *x) {
    if (x->shape[1] == 0 || x->shape[0] * x->shape[2] == 0)
        return lm_fail(LM_ERR_SHAPE, "batch_norm: no values to normalise");
    if (x->shape[1] > 0x7fffffffLL)
        return lm_fail(LM_ERR_SHAPE, "batch_norm: %lld channels are more than the GPU grid holds",
                       (long long)x->shape[1]);
    return LM_OK;
}

// ---- layer normalisation over rows of `cols` values --------------------------

// One warp a row: mean, centred values, their variance and the output, as
// the CPU's forward_rows rounds them.
__global__ void ln_rows(float *y, float *stats, const float *x, const float *w, const float *b,
                        int64_t rows, int64_t cols, float eps) {
    int lane = threadIdx.x & 31;
    CU_WARP_LOOP(r, rows) {
        const float *xr = x + r * cols;
        float *yr = y + r * cols;
        double sum = 0;
        for (int64_t c = lane; c < cols; c += 32) sum += xr[c];
        float mean = (float)(cu_warp_sum(sum) / (double)cols);
        double squares = 0;
        for (int64_t c = lane; c < cols; c += 32) {
            float d = xr[c] - mean;
            squares += (double)(d * d);
        }
        float var = (float)(cu_warp_sum(squares) / (double)cols);
        float sd = sqrtf(var + eps);
        for (int64_t c = lane; c < cols; c += 32) {
            float v = (xr[c] - mean) / sd;
            if (w) v = v * w[c];
            if (b) v = v + b[c];
            yr[c] = v;
        }
        if (lane == 0) stats[2 * r] = mean, stats[2 * r + 1] = sd;
    }
}

// One warp a row: gx = (h - mean(h) - xhat mean(h xhat)) / sd with h = g w
// and xhat = (x - mean) / sd, as the CPU's backward_row.
__global__ void ln_rows_backward(float *gx, const float *g, const float *x, const float *stats,
                                 const float *w, int64_t rows, int64_t cols) {
    int lane = threadIdx.x & 31;
    CU_WARP_LOOP(r, rows) {
        const float *xr = x + r * cols, *gr = g + r * cols;
        float *o = gx + r * cols;
        float mean = stats[2 * r], sd = stats[2 * r + 1];
        double h_sum = 0, hx_sum = 0;
        for (int64_t c = lane; c < cols; c += 32) {
            float h = w ? gr[c] * w[c] : gr[c], xhat = (xr[c] - mean) / sd;
            h_sum += h;
            hx_sum += (double)(h * xhat);
        }
        float a = (float)(cu_warp_sum(h_sum) / (double)cols);
        float bb = (float)(cu_warp_sum(hx_sum) / (double)cols);
        for (int64_t c = lane; c < cols; c += 32) {
            float h = w ? gr[c] * w[c] : gr[c], xhat = (xr[c] - mean) / sd;
            o[c] = (h - a - xhat * bb) / sd;
        }
    }
}

// Rows a block of the weight's and bias's gradient partial sums, as the CPU's.
const int64_t LN_BLOCK_ROWS = 64;

// Column blockIdx.x * blockDim.x + threadIdx.x of row blocks blockIdx.y,
// blockIdx.y + gridDim.y, ...: the float sums, in row order, of g xhat
// (partials [0, k, c]) and of g (partials [1, k, c]).
__global__ void ln_grad_partials(float *partials, const float *g, const float *x,
                                 const float *stats, int64_t rows, int64_t cols, int64_t blocks) {
    int64_t c = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= cols) return;
    for (int64_t k = blockIdx.y; k < blocks; k += gridDim.y) {
        int64_t r1 = (k + 1) * LN_BLOCK_ROWS < rows ? (k + 1) * LN_BLOCK_ROWS : rows;
        float pw = 0, pb = 0;
        for (int64_t r = k * LN_BLOCK_ROWS; r < r1; r++) {
            float gv = g[r * cols + c], xhat = (x[r * cols + c] - stats[2 * r]) / stats[2 * r + 1];
            pw += gv * xhat;
            pb += gv;
        }
        partials[k * cols + c] = pw;
        partials[(blocks + k) * cols + c] = pb;
    }
}

// One thread a column: the blocks' partial sums added in block order, in double.
__global__ void ln_grad_finish(float *gw, float *gb, const float *partials, int64_t blocks,
                               int64_t cols) {
    CU_GRID_LOOP(c, cols) {
        double sw = 0, sb = 0;
        for (int64_t k = 0; k < blocks; k++) {
            sw += partials[k * cols + c];
            sb += partials[(blocks + k) * cols + c];
        }
        if (gw) gw[c] = (float)sw;
        if (gb) gb[c] = (float)sb;
    }
}

} // namespace

lm_status lm_cuda_batch_norm(lm_tensor *y, lm_tensor *mean, lm_tensor *var, const lm_tensor *x,
                             const lm_tensor *w, const lm_tensor *b, double eps,
                             const lm_tensor *residual, bool relu) {
    LM_TRY(check_channels(x));
    BnShape sh = bn_shape(x);
    BnScratch ws;
    LM_TRY(ws.take(sh));
    const float *xp = cu_f32(x);
    partials(ws.parts, xp, NULL, NULL, sh);
    cu_launch(cu_blocks(sh.c), CU_THREADS, bn_finish_forward, cu_f32(mean), cu_f32(var), ws.coef,
              ws.parts, xp, w ? cu_f32(w) : NULL, b ? cu_f32(b) : NULL, eps, sh);
    affine(cu_f32(y), xp, ws.coef, ws.coef + sh.c, residual ? cu_f32(residual) : NULL, relu,
           sh.n * sh.c * sh.s, sh.s, sh.c);
    CU_LAUNCHED("batch_norm");
    return LM_OK;
}

lm_status lm_cuda_batch_norm_backward(lm_tensor *gx, lm_tensor *gw, lm_tensor *gb,
                                      const lm_tensor *g, const lm_tensor *x, const lm_tensor *mean,
                                      const lm_tensor *var, const lm_tensor *w, double eps) {
    LM_TRY(check_channels(x));
    BnShape sh = bn_shape(x);
    BnScratch ws;
    LM_TRY(ws.take(sh));
    const float *xp = cu_f32(x), *gp = cu_f32(g), *mp = cu_f32(mean);
    partials(ws.parts, xp, gp, mp, sh);
    cu_launch(cu_blocks(sh.c), CU_THREADS, bn_finish_backward, gw ? cu_f32(gw) : NULL,
              gb ? cu_f32(gb) : NULL, ws.coef, ws.parts, mp, cu_f32(var), w ? cu_f32(w) : NULL, eps,
              sh);
    if (gx) {
        int64_t total = sh.n * sh.c * sh.s;
        if (fits_32bit(total))
            cu_launch(cu_blocks(total), CU_THREADS, bn_input_grad<uint32_t>, cu_f32(gx), gp, xp,
                      ws.coef, total, sh.s, sh.c);
        else
            cu_launch(cu_blocks(total), CU_THREADS, bn_input_grad<int64_t>, cu_f32(gx), gp, xp,
                      ws.coef, total, sh.s, sh.c);
    }
    CU_LAUNCHED("batch_norm backward");
    return LM_OK;
}

lm_status lm_cuda_channel_affine(lm_tensor *y, const lm_tensor *x, const lm_tensor *scale,
                                 const lm_tensor *shift, const lm_tensor *residual, bool relu) {
    int64_t total = x->shape[0] * x->shape[1] * x->shape[2];
    if (total == 0) return LM_OK;
    affine(cu_f32(y), cu_f32(x), cu_f32(scale), cu_f32(shift), residual ? cu_f32(residual) : NULL,
           relu, total, x->shape[2], x->shape[1]);
    CU_LAUNCHED("channel_affine");
    return LM_OK;
}

lm_status lm_cuda_layer_norm(lm_tensor *y, lm_tensor *stats, const lm_tensor *x, const lm_tensor *w,
                             const lm_tensor *b, double eps) {
    int64_t rows = stats->shape[0], cols = rows ? lm_tensor_numel(x) / rows : 0;
    if (rows == 0 || cols == 0) return LM_OK;
    cu_launch(cu_blocks(rows * 32), CU_THREADS, ln_rows, cu_f32(y), cu_f32(stats), cu_f32(x),
              w ? cu_f32(w) : NULL, b ? cu_f32(b) : NULL, rows, cols, (float)eps);
    CU_LAUNCHED("layer_norm");
    return LM_OK;
}

lm_status lm_cuda_layer_norm_backward(lm_tensor *gx, lm_tensor *gw, lm_tensor *gb,
                                      const lm_tensor *g, const lm_tensor *x,
                                      const lm_tensor *stats, const lm_tensor *w) {
    int64_t rows = stats->shape[0], cols = rows ? lm_tensor_numel(x) / rows : 0;
    if (rows == 0 || cols == 0) return LM_OK; /* the caller zeroed gw and gb */
    const float *gp = cu_f32(g), *xp = cu_f32(x), *sp = cu_f32(stats);
    cu_launch(cu_blocks(rows * 32), CU_THREADS, ln_rows_backward, cu_f32(gx), gp, xp, sp,
              w ? cu_f32(w) : NULL, rows, cols);
    CU_LAUNCHED("layer_norm backward");
    if (!gw && !gb) return LM_OK;
    int64_t blocks = (rows + LN_BLOCK_ROWS - 1) / LN_BLOCK_ROWS;
    size_t bytes = sizeof(float) * (size_t)(2 * blocks * cols);
    float *parts = (float *)lm_cuda_alloc(bytes);
    if (!parts) return LM_ERR_MEMORY;
    const int threads = 128;
    dim3 grid((unsigned)((cols + threads - 1) / threads),
              (unsigned)(blocks < 65535 ? blocks : 65535));
    cu_launch(grid, threads, ln_grad_partials, parts, gp, xp, sp, rows, cols, blocks);
    cu_launch(cu_blocks(cols), CU_THREADS, ln_grad_finish, gw ? cu_f32(gw) : NULL,
              gb ? cu_f32(gb) : NULL, parts, blocks, cols);
    cudaError_t err = cudaGetLastError();
    lm_cuda_free(parts, bytes);
    return err == cudaSuccess ? LM_OK : lm_cuda_fail(err, "layer_norm backward");
}
