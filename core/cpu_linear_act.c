/* A Linear layer with its activation and dropout in one pass (lm_ag_linear_act):
 * each thread activates and masks its block of the product while the block
 * is still in its core's cache, instead of three passes over the output with
 * a hand-over to the threads each; the backward pass forms the gradient at
 * the product in one pass. Values are bit for bit those of the three ops. */
#include "cpu_backend.h"
#include "lm_scalar_ops.h"
#include "lm_threads.h"

typedef struct {
    float *a, *y, *mask;
    int64_t N;
    const lm_act_params *act;
} act_job;

/* The elements [begin, end) of a, y and mask: activation, then dropout. */
static void act_span(const act_job *j, int64_t begin, int64_t end) {
    const lm_act_params *p = j->act;
    if (p->op != LM_UNARY_COUNT)
        lm_cpu_unary_span(p->op, end - begin, j->a + begin, j->a + begin, (float)p->alpha, 0.0f);
    if (j->mask) lm_cpu_dropout_span(j->y, j->mask, j->a, p->seed, p->offset, p->keep, begin, end);
}

static void act_block(void *ctx, int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
    const act_job *j = ctx;
    if (c0 == 0 && c1 == j->N) { /* whole rows: one span */
        act_span(j, r0 * j->N, r1 * j->N);
        return;
    }
    for (int64_t r = r0; r < r1; r++) act_span(j, r * j->N + c0, r * j->N + c1);
}

lm_status lm_cpu_linear_act(lm_tensor *y, lm_tensor *a, lm_tensor *mask, const lm_tensor *x,
                            const lm_tensor *w, const lm_tensor *bias, const lm_act_params *act) {
    int64_t M = x->shape[0], K = x->shape[1], N = w->shape[0];
    act_job j = {.a = lm_tensor_f32(a),
                 .y = lm_tensor_f32(y),
                 .mask = lm_tensor_f32_or_null(mask),
                 .N = N,
                 .act = act};
    lm_cpu_linear_gemm(j.a, lm_tensor_f32(x), lm_tensor_f32(w), lm_tensor_f32_or_null(bias), M, N,
                       K, act_block, &j);
    return LM_OK;
}

typedef struct {
    float *gz;
    const float *g, *a, *mask;
    lm_unary_op op;
    float alpha;
} act_grad_job;

/* The gradients of dropout (g * mask) and of the activation (lm_unary_grad_f32
 * with a in place of its input: a > 0 exactly where the input was) in turn,
 * one loop per case so that each vectorises. */
#define GRAD_LOOPS(OP)                                                                             \
    if (m) {                                                                                       \
        for (int64_t i = begin; i < end; i++)                                                      \
            gz[i] = lm_unary_grad_f32(OP, g[i] * m[i], a[i], a[i], alpha);                         \
    } else {                                                                                       \
        for (int64_t i = begin; i < end; i++)                                                      \
            gz[i] = lm_unary_grad_f32(OP, g[i], a[i], a[i], alpha);                                \
    }                                                                                              \
    break

static void act_grad_range(void *ctx, int64_t begin, int64_t end) {
    const act_grad_job *j = ctx;
    float *restrict gz = j->gz;
    const float *restrict g = j->g, *restrict a = j->a, *restrict m = j->mask;
    float alpha = j->alpha;
    switch (j->op) {
    case LM_ELU:
        GRAD_LOOPS(LM_ELU);
    case LM_RELU:
        GRAD_LOOPS(LM_RELU);
    default: /* no activation */
        for (int64_t i = begin; i < end; i++) gz[i] = m ? g[i] * m[i] : g[i];
        break;
    }
}

lm_status lm_cpu_linear_act_backward(lm_tensor *gz, const lm_tensor *g, const lm_tensor *a,
                                     const lm_tensor *mask, lm_unary_op op, double alpha) {
    act_grad_job j = {.gz = lm_tensor_f32(gz),
                      .g = lm_tensor_f32(g),
                      .a = lm_tensor_f32(a),
                      .mask = lm_tensor_f32_or_null(mask),
                      .op = op,
                      .alpha = (float)alpha};
    lm_parallel_for_balanced(lm_tensor_numel(gz), LM_GRAIN_ELEMENTWISE, act_grad_range, &j);
    return LM_OK;
}
