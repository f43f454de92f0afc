// A Linear layer with its activation and dropout on the GPU (lm_ag_linear_act):
// the product and its bias through cuBLAS, then one kernel that activates,
// draws the dropout mask and applies it, where the composed form launches an
// activation op and a dropout op, each with its own tensors; backward, the
// gradient at the product in one kernel. The values are the three ops': the
// activation is lm_scalar_ops.h's, and the mask is drawn as the dropout
// kernel draws it (cuda_random.cu), element e from word e % 4 of Philox
// block offset + e / 4.
#include "cuda_backend.h"

extern "C" {
#include "lm_philox.h"
#include "lm_scalar_ops.h"
}

namespace {

struct ActArgs {
    float *a, *y, *mask; /* mask and y NULL: no dropout */
    int64_t n;
    lm_unary_op op; /* LM_UNARY_COUNT: no activation */
    float alpha;
    float kept;         /* a kept element's mask value, 1 / keep */
    uint32_t threshold; /* a word whose top 24 bits are below it keeps */
    cu_rng rng;
};

// One thread a Philox block: four elements of a, activated in place, then
// their mask and y = a * mask.
__global__ void act_dropout_kernel(ActArgs j) {
    int64_t blocks = (j.n + 3) / 4;
    CU_GRID_LOOP(b, blocks) {
        lm_philox_block w = {{0, 0, 0, 0}};
        if (j.mask) w = cu_philox(j.rng, (uint64_t)b);
        for (int k = 0; k < 4; k++) {
            int64_t e = 4 * b + k;
            if (e >= j.n) break;
            float v = j.a[e];
            if (j.op != LM_UNARY_COUNT) {
                v = lm_unary_f32(j.op, v, j.alpha, 0.0f);
                j.a[e] = v;
            }
            if (j.mask) {
                float m = (w.v[k] >> 8) < j.threshold ? j.kept : 0.0f;
                j.mask[e] = m;
                j.y[e] = v * m;
            }
        }
    }
}

// gz = act'(g * mask), the activation's derivative written from its output
// a (a > 0 exactly where its input was, for ELU with alpha > 0 and ReLU)
__global__ void act_grad_kernel(float *gz, const float *g, const float *a, const float *mask,
                                int64_t n, lm_unary_op op, float alpha) {
    CU_GRID_LOOP(i, n) {
        float t = mask ? g[i] * mask[i] : g[i];
        gz[i] = op == LM_UNARY_COUNT ? t : lm_unary_grad_f32(op, t, a[i], a[i], alpha);
    }
}

// A 3-D view [1, rows, cols] of the matrix t with strides (row, col),
// sharing t's storage (no reference taken: it lives within the call).
lm_tensor matrix_view(const lm_tensor *t, int64_t rows, int64_t cols, int64_t row_stride,
                      int64_t col_stride) {
    lm_tensor v = *t;
    v.ndim = 3;
    v.shape[0] = 1, v.shape[1] = rows, v.shape[2] = cols;
    v.strides[0] = rows * cols, v.strides[1] = row_stride, v.strides[2] = col_stride;
    v.autograd = NULL;
    return v;
}

} // namespace

lm_status lm_cuda_linear_act(lm_tensor *y, lm_tensor *a, lm_tensor *mask, const lm_tensor *x,
                             const lm_tensor *w, const lm_tensor *bias, const lm_act_params *act) {
    int64_t M = x->shape[0], K = x->shape[1], N = w->shape[0];
    if (M == 0 || N == 0) return LM_OK;
    /* a [1, M, N] = x [1, M, K] @ w^T [1, K, N] + bias (x and w contiguous) */
    lm_tensor a3 = matrix_view(a, M, N, N, 1), x3 = matrix_view(x, M, K, K, 1);
    lm_tensor wt = matrix_view(w, K, N, 1, K);
    LM_TRY(lm_cuda_matmul(&a3, &x3, &wt, 1.0f, 0.0f, bias));
    if (act->op == LM_UNARY_COUNT && !mask) return LM_OK;
    ActArgs j;
    j.a = cu_f32(a);
    j.mask = mask ? cu_f32(mask) : NULL;
    j.y = mask ? cu_f32(y) : NULL;
    j.n = M * N;
    j.op = act->op;
    j.alpha = (float)act->alpha;
    j.kept = (float)(1.0 / act->keep);
    j.threshold = lm_bernoulli_threshold(act->keep);
    j.rng = cu_rng{act->seed, act->offset, NULL};
    if (mask) LM_TRY(cu_rng_at(act->seed, act->offset, &j.rng));
    cu_launch(cu_blocks((j.n + 3) / 4), CU_THREADS, act_dropout_kernel, j);
    CU_LAUNCHED("linear_act");
    return LM_OK;
}

lm_status lm_cuda_linear_act_backward(lm_tensor *gz, const lm_tensor *g, const lm_tensor *a,
                                      const lm_tensor *mask, lm_unary_op op, double alpha) {
    int64_t n = lm_tensor_numel(gz);
    if (n == 0) return LM_OK;
    cu_launch(cu_blocks(n), CU_THREADS, act_grad_kernel, cu_f32(gz), cu_f32(g), cu_f32(a),
              mask ? cu_f32(mask) : NULL, n, op, (float)alpha);
    CU_LAUNCHED("linear_act backward");
    return LM_OK;
}
