// CUDA elementwise kernels: copy, fill, unary, binary, where and the fused
// unary gradients. The maths of every op is core/lm_scalar_ops.h's, the same
// functions the CPU kernels call: float32 through the float forms, other
// dtype mixes through the double forms (exact for int32). One grid-stride
// kernel template walks any strided layout; an op number the enums do not
// name is refused with an error before anything is launched.
#include "cuda_backend.h"

extern "C" {
#include "lm_scalar_ops.h"
}

namespace {

template <int NOPS, class F> __global__ void ew_kernel(lm_iter it, int64_t n, bool flat, F f) {
    bool small = n < ((int64_t)1 << 31);
    CU_GRID_LOOP(i, n) {
        int64_t off[NOPS];
        if (flat) {
#pragma unroll
            for (int k = 0; k < NOPS; k++) off[k] = i;
        } else if (small) {
            cu_offsets32<NOPS>(it, (uint32_t)i, off);
        } else {
            cu_offsets<NOPS>(it, i, off);
        }
        f(off);
    }
}

template <int NOPS, class F>
lm_status ew_launch(const lm_tensor *const *ops, const F &f, const char *what) {
    lm_iter it;
    lm_iter_init(&it, NOPS, ops);
    if (it.numel == 0) return LM_OK;
    cu_launch(cu_blocks(it.numel), CU_THREADS, ew_kernel<NOPS, F>, it, it.numel, cu_iter_flat(it),
              f);
    CU_LAUNCHED(what);
    return LM_OK;
}

bool all_f32(int n, const lm_tensor *const *ts) {
    for (int k = 0; k < n; k++)
        if (ts[k]->dtype != LM_FLOAT32) return false;
    return true;
}

// ---- functors -------------------------------------------------------------------------------

struct CopyF32 {
    float *d;
    const float *s;
    __device__ void operator()(const int64_t *o) const { d[o[0]] = s[o[1]]; }
};
struct CopyAny {
    cu_ref d, s;
    __device__ void operator()(const int64_t *o) const { cu_store(d, o[0], cu_load(s, o[1])); }
};
struct Fill {
    cu_ref d;
    double v;
    __device__ void operator()(const int64_t *o) const { cu_store(d, o[0], v); }
};
struct UnaryF32 {
    float *o;
    const float *x;
    lm_unary_op op;
    float p0, p1;
    __device__ void operator()(const int64_t *f) const {
        o[f[0]] = lm_unary_f32(op, x[f[1]], p0, p1);
    }
};
struct UnaryAny {
    cu_ref o, x;
    lm_unary_op op;
    double p0, p1;
    __device__ void operator()(const int64_t *f) const {
        cu_store(o, f[0], lm_scalar_unary(op, cu_load(x, f[1]), p0, p1));
    }
};
struct BinaryF32 {
    float *o;
    const float *a, *b;
    lm_binary_op op;
    __device__ void operator()(const int64_t *f) const {
        o[f[0]] = lm_binary_f32(op, a[f[1]], b[f[2]]);
    }
};
struct BinaryAny {
    cu_ref o, a, b;
    lm_binary_op op;
    __device__ void operator()(const int64_t *f) const {
        cu_store(o, f[0], lm_scalar_binary(op, cu_load(a, f[1]), cu_load(b, f[2])));
    }
};
struct ScalarF32 {
    float *o;
    const float *a;
    float s;
    lm_binary_op op;
    bool first;
    __device__ void operator()(const int64_t *f) const {
        float t = a[f[1]];
        o[f[0]] = first ? lm_binary_f32(op, s, t) : lm_binary_f32(op, t, s);
    }
};
struct ScalarAny {
    cu_ref o, a;
    double s;
    lm_binary_op op;
    bool first;
    __device__ void operator()(const int64_t *f) const {
        double t = cu_load(a, f[1]);
        cu_store(o, f[0], first ? lm_scalar_binary(op, s, t) : lm_scalar_binary(op, t, s));
    }
};
struct UnaryGrad {
    float *gx;
    const float *g, *x, *y;
    lm_unary_op op;
    float alpha;
    __device__ void operator()(const int64_t *f) const {
        gx[f[0]] = lm_unary_grad_f32(op, g[f[1]], x[f[2]], y[f[3]], alpha);
    }
};
struct Where {
    cu_ref o, c, a, b;
    __device__ void operator()(const int64_t *f) const {
        cu_store(o, f[0], cu_load(c, f[1]) != 0 ? cu_load(a, f[2]) : cu_load(b, f[3]));
    }
};

} // namespace

lm_status lm_cuda_copy(lm_tensor *dst, const lm_tensor *src) {
    const lm_tensor *ops[2] = {dst, src};
    if (all_f32(2, ops)) return ew_launch<2>(ops, CopyF32{cu_f32(dst), cu_f32(src)}, "copy");
    return ew_launch<2>(ops, CopyAny{cu_ref_of(dst), cu_ref_of(src)}, "copy");
}

lm_status lm_cuda_fill(lm_tensor *dst, double value) {
    const lm_tensor *ops[1] = {dst};
    return ew_launch<1>(ops, Fill{cu_ref_of(dst), value}, "fill");
}

lm_status lm_cuda_unary(lm_unary_op op, lm_tensor *out, const lm_tensor *x, double p0, double p1) {
    if (!lm_unary_op_valid(op)) return lm_fail(LM_ERR_ARG, "unary: unknown op %d", (int)op);
    const lm_tensor *ops[2] = {out, x};
    if (all_f32(2, ops))
        return ew_launch<2>(ops, UnaryF32{cu_f32(out), cu_f32(x), op, (float)p0, (float)p1},
                            "unary op");
    return ew_launch<2>(ops, UnaryAny{cu_ref_of(out), cu_ref_of(x), op, p0, p1}, "unary op");
}

lm_status lm_cuda_binary(lm_binary_op op, lm_tensor *out, const lm_tensor *a, const lm_tensor *b) {
    if (!lm_binary_op_valid(op)) return lm_fail(LM_ERR_ARG, "binary: unknown op %d", (int)op);
    const lm_tensor *ops[3] = {out, a, b};
    if (all_f32(3, ops))
        return ew_launch<3>(ops, BinaryF32{cu_f32(out), cu_f32(a), cu_f32(b), op}, "binary op");
    return ew_launch<3>(ops, BinaryAny{cu_ref_of(out), cu_ref_of(a), cu_ref_of(b), op},
                        "binary op");
}

lm_status lm_cuda_binary_scalar(lm_binary_op op, lm_tensor *out, const lm_tensor *a, double s,
                                bool scalar_first) {
    if (!lm_binary_op_valid(op)) return lm_fail(LM_ERR_ARG, "binary: unknown op %d", (int)op);
    const lm_tensor *ops[2] = {out, a};
    if (all_f32(2, ops))
        return ew_launch<2>(ops, ScalarF32{cu_f32(out), cu_f32(a), (float)s, op, scalar_first},
                            "scalar op");
    return ew_launch<2>(ops, ScalarAny{cu_ref_of(out), cu_ref_of(a), s, op, scalar_first},
                        "scalar op");
}

lm_status lm_cuda_unary_backward(lm_unary_op op, lm_tensor *gx, const lm_tensor *g,
                                 const lm_tensor *x, const lm_tensor *y, double p0) {
    if (!lm_unary_has_fused_grad(op))
        return lm_fail(LM_ERR_ARG, "unary gradient: op %d has no fused gradient", (int)op);
    const lm_tensor *ops[4] = {gx, g, x, y};
    return ew_launch<4>(ops, UnaryGrad{cu_f32(gx), cu_f32(g), cu_f32(x), cu_f32(y), op, (float)p0},
                        "unary gradient");
}

lm_status lm_cuda_where(lm_tensor *out, const lm_tensor *cond, const lm_tensor *a,
                        const lm_tensor *b) {
    const lm_tensor *ops[4] = {out, cond, a, b};
    return ew_launch<4>(ops, Where{cu_ref_of(out), cu_ref_of(cond), cu_ref_of(a), cu_ref_of(b)},
                        "where");
}
