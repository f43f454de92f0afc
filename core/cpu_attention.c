/* Multi-head self-attention on the CPU in one op (lm_ag_self_attention):
 * each (image, head) unit reads its queries, keys and values in place from
 * the packed projection qkv [N, L, 3E] (row stride 3E, no split or
 * transpose copies), forms its scores with one product, adds the mask,
 * takes the softmax in place, and writes its output into [N, L, E] with
 * the heads side by side, the layout the output projection reads. An
 * attention dropout weights the values with a copy of the probabilities
 * times the mask lm_ag_dropout would draw for them. The backward pass
 * writes the three gradients straight into [N, L, 3E]. */
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
    float *drop;            /* NULL, or the dropout's mask [N, heads, L, L] */
    uint64_t seed, offset;
    double keep;
    float *scratch; /* blocks of [L, L] a slot: 1 (forward with dropout) or 2 (backward) */
} attention_job;

static attention_job job_of(const lm_tensor *qkv, const lm_tensor *probs,
                            const lm_attention_params *p) {
    attention_job j = {.N = qkv->shape[0],
                       .L = qkv->shape[1],
                       .E = qkv->shape[2] / 3,
                       .heads = p->heads,
                       .scale = (float)p->scale,
                       .qkv = lm_tensor_f32(qkv),
                       .probs = lm_tensor_f32(probs),
                       .drop = lm_tensor_f32_or_null(p->dropout_mask),
                       .seed = p->seed,
                       .offset = p->offset,
                       .keep = p->keep};
    j.D = j.E / p->heads;
    return j;
}

/* The slots' scratch: `blocks` [L, L] blocks each (none: NULL). */
static float *scratch_new(const attention_job *j, int slots, int blocks, size_t *bytes) {
    *bytes = (size_t)(slots * blocks) * (size_t)(j->L * j->L) * sizeof(float);
    return *bytes ? lm_cpu_alloc(*bytes) : NULL;
}

/* unit u's probabilities times its dropout mask, into d */
static void dropped(const attention_job *j, int64_t u, float *d) {
    int64_t size = j->L * j->L;
    const float *p = j->probs + u * size, *m = j->drop + u * size;
    for (int64_t i = 0; i < size; i++) d[i] = p[i] * m[i];
}

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

static void forward_units(void *ctx, int64_t u0, int64_t u1, int slot) {
    const attention_job *j = ctx;
    int L = (int)j->L, D = (int)j->D, ld = (int)(3 * j->E);
    int64_t size = j->L * j->L;
    for (int64_t u = u0; u < u1; u++) {
        const float *q = unit_queries(j, u), *k = q + j->E, *v = q + 2 * j->E;
        float *p = j->probs + u * size;
        float *o = j->out + (u / j->heads) * j->L * j->E + (u % j->heads) * j->D;
        /* scores = scale q k^T [L, L] */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, L, L, D, j->scale, q, ld, k, ld, 0.0f,
                    p, L);
        if (j->mask) add_mask(j, u, p);
        lm_cpu_softmax_rows_span(p, p, j->L, j->L);
        const float *a = p; /* the probabilities the values are weighted with */
        if (j->drop) {
            lm_cpu_dropout_mask_span(j->drop, j->seed, j->offset, j->keep, u * size,
                                     (u + 1) * size);
            float *d = j->scratch + (int64_t)slot * size;
            dropped(j, u, d);
            a = d;
        }
        /* out = a v [L, D], at row stride E */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, L, D, L, 1.0f, a, L, v, ld, 0.0f, o,
                    (int)j->E);
    }
}

lm_status lm_cpu_self_attention(lm_tensor *out, lm_tensor *probs, const lm_tensor *qkv,
                                const lm_tensor *mask, const lm_attention_params *p) {
    attention_job j = job_of(qkv, probs, p);
    j.out = lm_tensor_f32(out);
    j.mask = lm_tensor_f32_or_null(mask);
    if (mask)
        for (int d = 0; d < 4; d++) j.mask_stride[d] = mask->strides[d];
    int64_t units = j.N * j.heads;
    int slots = lm_parallel_chunks(units, 1);
    size_t bytes = 0;
    if (j.drop && !(j.scratch = scratch_new(&j, slots, 1, &bytes)) && bytes) return LM_ERR_MEMORY;
    lm_parallel_for_slots(units, slots, forward_units, &j);
    lm_cpu_free(j.scratch, bytes);
    return LM_OK;
}

static void backward_units(void *ctx, int64_t u0, int64_t u1, int slot) {
    const attention_job *j = ctx;
    int L = (int)j->L, D = (int)j->D, ld = (int)(3 * j->E), E = (int)j->E;
    int64_t size = j->L * j->L;
    float *dp = j->scratch + (int64_t)slot * 2 * size, *d = dp + size;
    for (int64_t u = u0; u < u1; u++) {
        int64_t n = u / j->heads, h = u % j->heads;
        const float *q = unit_queries(j, u), *k = q + E, *v = q + 2 * E;
        const float *p = j->probs + u * size, *a = p;
        const float *go = j->g + n * j->L * E + h * D;
        float *gq = j->gqkv + n * j->L * ld + h * D, *gk = gq + E, *gv = gq + 2 * E;
        if (j->drop) {
            dropped(j, u, d);
            a = d;
        }
        /* gv = a^T go [L, D] */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, L, D, L, 1.0f, a, L, go, E, 0.0f, gv,
                    ld);
        /* ga = go v^T [L, L]; through the dropout, gprobs = ga * mask; then the
         * softmax's gradient at the scores, in place */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, L, L, D, 1.0f, go, E, v, ld, 0.0f, dp,
                    L);
        if (j->drop) {
            const float *m = j->drop + u * size;
            for (int64_t i = 0; i < size; i++) dp[i] *= m[i];
        }
        lm_cpu_softmax_rows_backward_span(dp, dp, p, j->L, j->L);
        /* gq = scale gscores k, gk = scale gscores^T q [L, D] */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, L, D, L, j->scale, dp, L, k, ld,
                    0.0f, gq, ld);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, L, D, L, j->scale, dp, L, q, ld, 0.0f,
                    gk, ld);
    }
}

lm_status lm_cpu_self_attention_backward(lm_tensor *gqkv, const lm_tensor *g, const lm_tensor *qkv,
                                         const lm_tensor *probs, const lm_attention_params *p) {
    attention_job j = job_of(qkv, probs, p);
    j.g = lm_tensor_f32(g);
    j.gqkv = lm_tensor_f32(gqkv);
    int64_t units = j.N * j.heads;
    int slots = lm_parallel_chunks(units, 1);
    size_t bytes;
    j.scratch = scratch_new(&j, slots, 2, &bytes);
    if (!j.scratch && bytes) return LM_ERR_MEMORY;
    lm_parallel_for_slots(units, slots, backward_units, &j);
    lm_cpu_free(j.scratch, bytes);
    return LM_OK;
}
