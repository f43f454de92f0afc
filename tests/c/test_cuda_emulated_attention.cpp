/* The CUDA self-attention (kernels/cuda_attention.cu: the backend's own
 * products, softmax, random fill and elementwise ops on views of the packed
 * qkv), run on the CPU by tests/c/cuda_emulator.h with OpenBLAS standing in
 * for cuBLAS, against the CPU backend's self_attention: the output, the
 * probabilities, the dropout mask (bit for bit) and the gradient of qkv,
 * with no mask, a mask broadcast over images and heads, a key-padding mask
 * per image, and with dropout. */
#define LM_CUDA_EMULATED 1
#include "../../kernels/cuda_attention.cu"
#include "../../kernels/cuda_elementwise.cu"
#include "../../kernels/cuda_matmul.cu"
#include "../../kernels/cuda_nn.cu"
#include "../../kernels/cuda_random.cu"
#include "emulated_tensors.h"

extern "C" {
#include "lm_backend.h"
#include "lm_tensor.h"
#include "test.h"
}

namespace {

enum MaskKind { NO_MASK, SHARED_MASK, PADDING_MASK };

/* the mask as the core hands it over: a view readable as [N, heads, L, L] */
lm_tensor *make_mask(MaskKind kind, int64_t N, int64_t H, int64_t L) {
    if (kind == NO_MASK) return NULL;
    int64_t full[4] = {N, H, L, L};
    lm_tensor *base = NULL, *view = NULL;
    if (kind == SHARED_MASK) { /* causal: -inf above the diagonal, for every image and head */
        int64_t shape[4] = {1, 1, L, L};
        base = tensor(4, shape);
        for (int64_t l = 0; l < L; l++)
            for (int64_t s = 0; s < L; s++) lm_tensor_f32(base)[l * L + s] = s > l ? -INFINITY : 0;
    } else { /* each image's last n % 3 keys padded out */
        int64_t shape[4] = {N, 1, 1, L};
        base = tensor(4, shape);
        for (int64_t n = 0; n < N; n++)
            for (int64_t s = 0; s < L; s++)
                lm_tensor_f32(base)[n * L + s] = s >= L - n % 3 ? -INFINITY : 0;
    }
    lm_tensor_expand(&view, base, 4, full);
    lm_tensor_release(base);
    return view;
}

void check(int64_t N, int64_t L, int64_t E, int heads, MaskKind mk, double keep) {
    int64_t qs[3] = {N, L, 3 * E}, os[3] = {N, L, E}, ps[4] = {N, heads, L, L};
    lm_tensor *qkv = filled(3, qs, 3, 1.0f), *mask = make_mask(mk, N, heads, L);
    lm_tensor *out_cpu = tensor(3, os), *out_gpu = tensor(3, os);
    lm_tensor *p_cpu = tensor(4, ps), *p_gpu = tensor(4, ps);
    lm_tensor *drop_cpu = keep < 1 ? tensor(4, ps) : NULL,
              *drop_gpu = keep < 1 ? tensor(4, ps) : NULL;
    lm_attention_params pc = {heads, 1 / sqrt((double)(E / heads)), keep, drop_cpu, 77, 5};
    lm_attention_params pg = pc;
    pg.dropout_mask = drop_gpu;
    CHECK_OK(lm_backend_get(LM_CPU)->self_attention(out_cpu, p_cpu, qkv, mask, &pc));
    CHECK_OK(lm_cuda_self_attention(out_gpu, p_gpu, qkv, mask, &pg));
    CHECK(rel_err(p_gpu, p_cpu) <= 1e-6);
    CHECK(rel_err(out_gpu, out_cpu) <= 1e-5);
    if (keep < 1) CHECK(same_bits(drop_gpu, drop_cpu));
    /* the backward pass from the CPU's probabilities and mask on both sides */
    lm_tensor *g = filled(3, os, 7, 1.0f), *gq_cpu = tensor(3, qs), *gq_gpu = tensor(3, qs);
    pg.dropout_mask = drop_cpu;
    CHECK_OK(lm_backend_get(LM_CPU)->self_attention_backward(gq_cpu, g, qkv, p_cpu, &pc));
    CHECK_OK(lm_cuda_self_attention_backward(gq_gpu, g, qkv, p_cpu, &pg));
    double e = rel_err(gq_gpu, gq_cpu);
    CHECK(e <= 1e-5);
    if (e > 1e-5 || rel_err(out_gpu, out_cpu) > 1e-5)
        fprintf(stderr,
                "  attention N %lld L %lld E %lld heads %d mask %d keep %g: out %.3g, gqkv %.3g\n",
                (long long)N, (long long)L, (long long)E, heads, (int)mk, keep,
                rel_err(out_gpu, out_cpu), e);
    lm_tensor *all[] = {qkv,      mask,     out_cpu, out_gpu, p_cpu, p_gpu,
                        drop_cpu, drop_gpu, g,       gq_cpu,  gq_gpu};
    for (lm_tensor *t : all) lm_tensor_release(t);
}

void test_attention(void) {
    for (MaskKind mk : {NO_MASK, SHARED_MASK, PADDING_MASK}) {
        check(3, 7, 8, 2, mk, 1.0);
        check(3, 7, 8, 2, mk, 0.7);
    }
    check(2, 17, 12, 3, NO_MASK, 1.0);   /* three heads of 4 */
    check(2, 5, 6, 1, SHARED_MASK, 0.9); /* one head */
}

} // namespace

TEST_MAIN(test_attention)
