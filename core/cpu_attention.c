/* Multi-head self-attention on the CPU in one op (lm_ag_self_attention):
 * each (image, head) unit reads its queries, keys and values in place from
 * the packed projection qkv [N, L, 3E] (row stride 3E, no split or
 * transpose copies), forms its scores with one product, adds the mask,
 * takes the softmax in place, and writes its output into [N, L, E] with
 * the heads side by side, the layout the output projection reads. The
 * backward pass writes the three gradients straight into [N, L, 3E]. */
#include <cblas.h>

#include "cpu_backend.h"
#include "lm_alloc.h"
#include "lm_threads.h"

typedef struct {
    int64_t N, L, E, heads, D;
    float scale;
    const float *qkv, *g;
    float *probs, *out, *gqkv;
    const float *mask;      /* NULL, or element [n, h, l, s] at the strides below */
    int64_t mask_stride[4]; /* 0 along broadcast dimensions */
    float *scratch;         /* backward: one [L, L] block a slot */
} attention_job;

/* unit u = n * heads + h: its first query element, in qkv */
static const float *unit_queries(const attention_job *j, int64_t u) {
    int64_t n = u / j->heads, h = u % j->heads;
    return j->qkv + n * j->L * 3 * j->E + h * j->D;
}

static void add_mask(const attention_job *j, int64_t u, float *p) {
    int64_t n = u / j->heads, h = u % j->heads, L = j->L;
    const int64_t *st = j->mask_stride;
    for (int64_t l = 0; l < L; l++) {
        const float *m = j->mask + n * st[0] + h * st[1] + l * st[2];
        float *row = p + l * L;
        if (st[3] == 1)
            for (int64_t s = 0; s < L; s++) row[s] += m[s];
        else
            for (int64_t s = 0; s < L; s++) row[s] += m[s * st[3]];
    }
}

static void forward_units(void *ctx, int64_t u0, int64_t u1) {
    const attention_job *j = ctx;
    int L = (int)j->L, D = (int)j->D, ld = (int)(3 * j->E);
    for (int64_t u = u0; u < u1; u++) {
        const float *q = unit_queries(j, u), *k = q + j->E, *v = q + 2 * j->E;
        float *p = j->probs + u * j->L * j->L;
        float *o = j->out + (u / j->heads) * j->L * j->E + (u % j->heads) * j->D;
        /* scores = scale q k^T [L, L] */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, L, L, D, j->scale, q, ld, k, ld, 0.0f,
                    p, L);
        if (j->mask) add_mask(j, u, p);
        lm_cpu_softmax_rows_span(p, p, j->L, j->L);
        /* out = probs v [L, D], at row stride E */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, L, D, L, 1.0f, p, L, v, ld, 0.0f, o,
                    (int)j->E);
    }
}

lm_status lm_cpu_self_attention(lm_tensor *out, lm_tensor *probs, const lm_tensor *qkv,
                                const lm_tensor *mask, int heads, double scale) {
    attention_job j = {.N = qkv->shape[0],
                       .L = qkv->shape[1],
                       .E = qkv->shape[2] / 3,
                       .heads = heads,
                       .scale = (float)scale,
                       .qkv = lm_tensor_f32(qkv),
                       .probs = lm_tensor_f32(probs),
                       .out = lm_tensor_f32(out),
                       .mask = lm_tensor_f32_or_null(mask)};
    j.D = j.E / heads;
    if (mask)
        for (int d = 0; d < 4; d++) j.mask_stride[d] = mask->strides[d];
    lm_parallel_for(j.N * heads, 1, forward_units, &j);
    return LM_OK;
}

static void backward_units(void *ctx, int64_t u0, int64_t u1, int slot) {
    const attention_job *j = ctx;
    int L = (int)j->L, D = (int)j->D, ld = (int)(3 * j->E), E = (int)j->E;
    float *dp = j->scratch + (int64_t)slot * j->L * j->L;
    for (int64_t u = u0; u < u1; u++) {
        int64_t n = u / j->heads, h = u % j->heads;
        const float *q = unit_queries(j, u), *k = q + E, *v = q + 2 * E;
        const float *p = j->probs + u * j->L * j->L;
        const float *go = j->g + n * j->L * E + h * D;
        float *gq = j->gqkv + n * j->L * ld + h * D, *gk = gq + E, *gv = gq + 2 * E;
        /* gv = probs^T go [L, D] */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, L, D, L, 1.0f, p, L, go, E, 0.0f, gv,
                    ld);
        /* gprobs = go v^T [L, L], then the softmax's gradient at the scores, in place */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, L, L, D, 1.0f, go, E, v, ld, 0.0f, dp,
                    L);
        lm_cpu_softmax_rows_backward_span(dp, dp, p, j->L, j->L);
        /* gq = scale gscores k, gk = scale gscores^T q [L, D] */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, L, D, L, j->scale, dp, L, k, ld,
                    0.0f, gq, ld);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, L, D, L, j->scale, dp, L, q, ld, 0.0f,
                    gk, ld);
    }
}

lm_status lm_cpu_self_attention_backward(lm_tensor *gqkv, const lm_tensor *g, const lm_tensor *qkv,
                                         const lm_tensor *probs, int heads, double scale) {
    attention_job j = {.N = qkv->shape[0],
                       .L = qkv->shape[1],
                       .E = qkv->shape[2] / 3,
                       .heads = heads,
                       .scale = (float)scale,
                       .qkv = lm_tensor_f32(qkv),
                       .g = lm_tensor_f32(g),
                       .probs = lm_tensor_f32(probs),
                       .gqkv = lm_tensor_f32(gqkv)};
    j.D = j.E / heads;
    int64_t units = j.N * heads;
    int slots = lm_parallel_chunks(units, 1);
    size_t bytes = (size_t)(slots * j.L * j.L) * sizeof(float);
    j.scratch = lm_cpu_alloc(bytes ? bytes : sizeof(float));
    if (!j.scratch) return LM_ERR_MEMORY;
    lm_parallel_for_slots(units, slots, backward_units, &j);
    lm_cpu_free(j.scratch, bytes ? bytes : sizeof(float));
    return LM_OK;
}
