// Multi-head self-attention on the GPU in one op (lm_ag_self_attention), put
// together from the backend's own entries on views: each head's products
// read its queries, keys and values in place from the packed projection qkv
// [N, L, 3E] (row stride 3E) and write its output into [N, L, E] with the
// heads side by side, so none of the composed form's split, transpose and
// merge copies are made; the mask is added and the softmax taken over all
// heads at once. The backward pass writes the three gradients straight
// into [N, L, 3E]. The same steps as the CPU's (core/cpu_attention.c).
#include "cuda_backend.h"

namespace {

// A 3-D view of t's storage: shape (d0, d1, d2), strides (s0, s1, s2),
// `at` elements past t's offset (no reference taken: used within the call).
lm_tensor view3(const lm_tensor *t, int64_t at, int64_t d0, int64_t d1, int64_t d2, int64_t s0,
                int64_t s1, int64_t s2) {
    lm_tensor v = *t;
    v.ndim = 3;
    v.shape[0] = d0, v.shape[1] = d1, v.shape[2] = d2;
    v.strides[0] = s0, v.strides[1] = s1, v.strides[2] = s2;
    v.offset = t->offset + at;
    v.autograd = NULL;
    return v;
}

// When `wanted`, a work tensor with the shape and strides of the contiguous
// tensor `like`, on its device, freed with the object (ok() says whether
// it could be allocated).
struct Scratch {
    lm_storage storage;
    lm_tensor t;
    Scratch(const lm_tensor *like, bool wanted) {
        storage = lm_storage{};
        storage.bytes = wanted ? sizeof(float) * (size_t)lm_tensor_numel(like) : 0;
        storage.data = wanted ? lm_cuda_alloc(storage.bytes) : NULL;
        storage.refcount = 1;
        storage.device = like->storage->device;
        t = *like;
        t.offset = 0;
        t.storage = &storage;
        t.autograd = NULL;
    }
    bool ok() const { return !storage.bytes || storage.data; }
    Scratch(const Scratch &) = delete;
    Scratch &operator=(const Scratch &) = delete;
    ~Scratch() {
        if (storage.data) lm_cuda_free(storage.data, storage.bytes);
    }
};

// Float32 products for the op's duration whatever the autocast mode (the
// CPU's self-attention rounds no operands either; the products' inputs are
// the op's own, not the autocast operands a layer's would be).
struct Float32Products {
    lm_autocast_mode before = lm_set_autocast(LM_AUTOCAST_OFF);
    ~Float32Products() { lm_set_autocast(before); }
};

struct Heads {
    int64_t N, L, E, H, D;
};

Heads heads_of(const lm_tensor *qkv, int heads) {
    Heads s = {qkv->shape[0], qkv->shape[1], qkv->shape[2] / 3, heads, 0};
    s.D = s.E / heads;
    return s;
}

// head h's queries (part 0), keys (1) or values (2) in qkv: [N, L, D]
lm_tensor part(const lm_tensor *qkv, const Heads &s, int which, int64_t h) {
    return view3(qkv, which * s.E + h * s.D, s.N, s.L, s.D, s.L * 3 * s.E, 3 * s.E, 1);
}
// the same transposed: [N, D, L]
lm_tensor part_t(const lm_tensor *qkv, const Heads &s, int which, int64_t h) {
    return view3(qkv, which * s.E + h * s.D, s.N, s.D, s.L, s.L * 3 * s.E, 1, 3 * s.E);
}
// head h's block of a [N, H, L, L] tensor: [N, L, L], or transposed
lm_tensor block(const lm_tensor *t, const Heads &s, int64_t h, bool transposed = false) {
    int64_t LL = s.L * s.L;
    return transposed ? view3(t, h * LL, s.N, s.L, s.L, s.H * LL, 1, s.L)
                      : view3(t, h * LL, s.N, s.L, s.L, s.H * LL, s.L, 1);
}
// head h's columns of a [N, L, E] tensor, or of the gradient [N, L, 3E]'s part `which`
lm_tensor columns(const lm_tensor *t, const Heads &s, int64_t h) {
    return view3(t, h * s.D, s.N, s.L, s.D, s.L * s.E, s.E, 1);
}

} // namespace

lm_status lm_cuda_self_attention(lm_tensor *out, lm_tensor *probs, const lm_tensor *qkv,
                                 const lm_tensor *mask, const lm_attention_params *p) {
    Float32Products float32;
    Heads s = heads_of(qkv, p->heads);
    /* scores = scale q k^T, head by head (each product batched over the images) */
    for (int64_t h = 0; h < s.H; h++) {
        lm_tensor q = part(qkv, s, 0, h), kt = part_t(qkv, s, 1, h), scores = block(probs, s, h);
        LM_TRY(lm_cuda_matmul(&scores, &q, &kt, (float)p->scale, 0.0f, NULL));
    }
    if (mask) LM_TRY(lm_cuda_binary(LM_ADD, probs, probs, mask));
    LM_TRY(lm_cuda_softmax(probs, probs, false)); /* rows of L over all heads at once */
    const lm_tensor *weights = probs;
    Scratch dropped(probs, p->keep < 1);
    if (!dropped.ok()) return LM_ERR_MEMORY;
    if (p->keep < 1) { /* the mask lm_ag_dropout would draw for probs, at the same position */
        LM_TRY(lm_cuda_random(LM_RANDOM_BERNOULLI, p->dropout_mask, p->seed, p->offset, p->keep,
                              1.0 / p->keep));
        LM_TRY(lm_cuda_binary(LM_MUL, &dropped.t, probs, p->dropout_mask));
        weights = &dropped.t;
    }
    /* out = weights v, head by head, into the head's columns of out */
    for (int64_t h = 0; h < s.H; h++) {
        lm_tensor a = block(weights, s, h), v = part(qkv, s, 2, h), o = columns(out, s, h);
        LM_TRY(lm_cuda_matmul(&o, &a, &v, 1.0f, 0.0f, NULL));
    }
    return LM_OK;
}

lm_status lm_cuda_self_attention_backward(lm_tensor *gqkv, const lm_tensor *g, const lm_tensor *qkv,
                                          const lm_tensor *probs, const lm_attention_params *p) {
    Float32Products float32;
    Heads s = heads_of(qkv, p->heads);
    Scratch dropped(probs, p->keep < 1), grad_scores(probs, true);
    if (!dropped.ok() || !grad_scores.ok()) return LM_ERR_MEMORY;
    const lm_tensor *weights = probs;
    if (p->keep < 1) {
        LM_TRY(lm_cuda_binary(LM_MUL, &dropped.t, probs, p->dropout_mask));
        weights = &dropped.t;
    }
    lm_tensor *gs = &grad_scores.t;
    for (int64_t h = 0; h < s.H; h++) {
        /* gv = weights^T g, and the gradient at the weights, g v^T */
        lm_tensor at = block(weights, s, h, true), gh = columns(g, s, h);
        lm_tensor gv = part(gqkv, s, 2, h), vt = part_t(qkv, s, 2, h), gw = block(gs, s, h);
        LM_TRY(lm_cuda_matmul(&gv, &at, &gh, 1.0f, 0.0f, NULL));
        LM_TRY(lm_cuda_matmul(&gw, &gh, &vt, 1.0f, 0.0f, NULL));
    }
    if (p->keep < 1)
        LM_TRY(lm_cuda_binary(LM_MUL, gs, gs, p->dropout_mask)); /* through the dropout */
    LM_TRY(lm_cuda_softmax_backward(gs, gs, probs, false));      /* at the scores, in place */
    for (int64_t h = 0; h < s.H; h++) {
        /* gq = scale gscores k, gk = scale gscores^T q */
        lm_tensor sh = block(gs, s, h), sht = block(gs, s, h, true);
        lm_tensor k = part(qkv, s, 1, h), q = part(qkv, s, 0, h);
        lm_tensor gq = part(gqkv, s, 0, h), gk = part(gqkv, s, 1, h);
        LM_TRY(lm_cuda_matmul(&gq, &sh, &k, (float)p->scale, 0.0f, NULL));
        LM_TRY(lm_cuda_matmul(&gk, &sht, &q, (float)p->scale, 0.0f, NULL));
    }
    return LM_OK;
}
