// CUDA elementwise kernels: copy, fill, unary, binary, where and the fused
// unary gradients. Same definitions as the CPU's (core/cpu_elementwise.c):
// float32 through float arithmetic, other dtype mixes in double (exact for
// int32). One grid-stride kernel template walks any strided layout.
#include "cuda_backend.h"

extern "C" {
#include "lm_scalar_ops.h"
}

namespace {

template <int NOPS, class F>
__global__ void ew_kernel(cpu_iter it, int64_t n, bool flat, F f) {
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
    cpu_iter it;
    cpu_iter_init(&it, NOPS, ops);
    if (it.numel == 0) return LM_OK;
    ew_kernel<NOPS><<<cu_blocks(it.numel), CU_THREADS>>>(it, it.numel, cu_iter_flat(it), f);
    CU_LAUNCHED(what);
    return LM_OK;
}

bool all_f32(int n, const lm_tensor *const *ts) {
    for (int k = 0; k < n; k++)
        if (ts[k]->dtype != LM_FLOAT32) return false;
    return true;
}

// ---- scalar definitions ---------------------------------------------------------------------

__device__ __forceinline__ float unary_f(int op, float x, float p0, float p1) {
    switch (op) {
    case LM_NEG: return -x;
    case LM_EXP: return expf(x);
    case LM_LOG: return logf(x);
    case LM_SQRT: return sqrtf(x);
    case LM_ABS: return fabsf(x);
    case LM_SIGN: return (float)((x > 0) - (x < 0));
    case LM_TANH: return tanhf(x);
    case LM_SIGMOID: return 1.0f / (1.0f + expf(-x));
    case LM_RELU: return x > 0 ? x : 0.0f;
    case LM_ELU: return x > 0 ? x : p0 * expm1f(x);
    case LM_CLAMP: return x < p0 ? p0 : x > p1 ? p1 : x;
    case LM_POW_SCALAR: return p0 == 2.0f ? x * x : powf(x, p0);
    case LM_RPOW_SCALAR: return powf(p0, x);
    case LM_SQUARE: return x * x;
    case LM_RECIPROCAL: return 1.0f / x;
    default: return 0;
    }
}

template <class T> __device__ __forceinline__ T binary_op(int op, T a, T b) {
    switch (op) {
    case LM_ADD: return a + b;
    case LM_SUB: return a - b;
    case LM_MUL: return a * b;
    case LM_DIV: return a / b;
    case LM_POW: return pow(a, b);
    case LM_MAXIMUM: return a > b || a != a ? a : b;
    case LM_MINIMUM: return a < b || a != a ? a : b;
    case LM_EQ: return (T)(a == b);
    case LM_NE: return (T)(a != b);
    case LM_LT: return (T)(a < b);
    case LM_LE: return (T)(a <= b);
    case LM_GT: return (T)(a > b);
    case LM_GE: return (T)(a >= b);
    default: return 0;
    }
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
    int op;
    float p0, p1;
    __device__ void operator()(const int64_t *f) const { o[f[0]] = unary_f(op, x[f[1]], p0, p1); }
};
struct UnaryAny {
    cu_ref o, x;
    int op;
    double p0, p1;
    __device__ void operator()(const int64_t *f) const {
        cu_store(o, f[0], lm_scalar_unary(op, cu_load(x, f[1]), p0, p1));
    }
};
struct BinaryF32 {
    float *o;
    const float *a, *b;
    int op;
    __device__ void operator()(const int64_t *f) const {
        o[f[0]] = binary_op<float>(op, a[f[1]], b[f[2]]);
    }
};
struct BinaryAny {
    cu_ref o, a, b;
    int op;
    __device__ void operator()(const int64_t *f) const {
        cu_store(o, f[0], lm_scalar_binary(op, cu_load(a, f[1]), cu_load(b, f[2])));
    }
};
struct ScalarF32 {
    float *o;
    const float *a;
    float s;
    int op;
    bool first;
    __device__ void operator()(const int64_t *f) const {
        float t = a[f[1]];
        o[f[0]] = first ? binary_op<float>(op, s, t) : binary_op<float>(op, t, s);
    }
};
struct ScalarAny {
    cu_ref o, a;
    double s;
    int op;
    bool first;
    __device__ void operator()(const int64_t *f) const {
        double t = cu_load(a, f[1]);
        cu_store(o, f[0], first ? lm_scalar_binary(op, s, t) : lm_scalar_binary(op, t, s));
    }
};
struct UnaryGrad {
    float *gx;
    const float *g, *x, *y;
    int op;
    float alpha;
    __device__ void operator()(const int64_t *f) const {
        float gv = g[f[1]], xv = x[f[2]], yv = y[f[3]], r;
        switch (op) {
        case LM_ELU: r = xv > 0 ? gv : gv * (yv + alpha); break;
        case LM_SIGMOID: r = gv * yv * (1.0f - yv); break;
        case LM_TANH: r = gv * (1.0f - yv * yv); break;
        case LM_RELU: r = xv > 0 ? gv : 0.0f; break;
        default: r = gv * yv; break; /* EXP */
        }
        gx[f[0]] = r;
    }
};
struct Where {
    cu_ref o, c, a, b;
    __device__ void operator()(const int64_t *f) const {
        cu_store(o, f[0], cu_load(c, f[1]) != 0 ? cu_load(a, f[2]) : cu_load(b, f[3]));
    }
};

} // namespace

lm_status cu_copy(lm_tensor *dst, const lm_tensor *src) {
    const lm_tensor *ops[2] = {dst, src};
    if (all_f32(2, ops)) return ew_launch<2>(ops, CopyF32{cu_f32(dst), cu_f32(src)}, "copy");
    return ew_launch<2>(ops, CopyAny{cu_ref_of(dst), cu_ref_of(src)}, "copy");
}

lm_status cu_fill(lm_tensor *dst, double value) {
    const lm_tensor *ops[1] = {dst};
    return ew_launch<1>(ops, Fill{cu_ref_of(dst), value}, "fill");
}

lm_status cu_unary(lm_unary_op op, lm_tensor *out, const lm_tensor *x, double p0, double p1) {
    const lm_tensor *ops[2] = {out, x};
    if (all_f32(2, ops))
        return ew_launch<2>(ops, UnaryF32{cu_f32(out), cu_f32(x), op, (float)p0, (float)p1}, "unary op");
    return ew_launch<2>(ops, UnaryAny{cu_ref_of(out), cu_ref_of(x), op, p0, p1}, "unary op");
}

lm_status cu_binary(lm_binary_op op, lm_tensor *out, const lm_tensor *a, const lm_tensor *b) {
    const lm_tensor *ops[3] = {out, a, b};
    if (all_f32(3, ops))
        return ew_launch<3>(ops, BinaryF32{cu_f32(out), cu_f32(a), cu_f32(b), op}, "binary op");
    return ew_launch<3>(ops, BinaryAny{cu_ref_of(out), cu_ref_of(a), cu_ref_of(b), op}, "binary op");
}

lm_status cu_binary_scalar(lm_binary_op op, lm_tensor *out, const lm_tensor *a, double s,
                           bool scalar_first) {
    const lm_tensor *ops[2] = {out, a};
    if (all_f32(2, ops))
        return ew_launch<2>(ops, ScalarF32{cu_f32(out), cu_f32(a), (float)s, op, scalar_first},
                            "scalar op");
    return ew_launch<2>(ops, ScalarAny{cu_ref_of(out), cu_ref_of(a), s, op, scalar_first},
                        "scalar op");
}

lm_status cu_unary_backward(lm_unary_op op, lm_tensor *gx, const lm_tensor *g, const lm_tensor *x,
                            const lm_tensor *y, double p0) {
    const lm_tensor *ops[4] = {gx, g, x, y};
    return ew_launch<4>(ops, UnaryGrad{cu_f32(gx), cu_f32(g), cu_f32(x), cu_f32(y), op, (float)p0},
                        "unary gradient");
}

lm_status cu_where(lm_tensor *out, const lm_tensor *cond, const lm_tensor *a, const lm_tensor *b) {
    const lm_tensor *ops[4] = {out, cond, a, b};
    return ew_launch<4>(ops, Where{cu_ref_of(out), cu_ref_of(cond), cu_ref_of(a), cu_ref_of(b)},
                        "where");
}
