/* The CUDA elementwise kernels (kernels/cuda_elementwise.cu), compiled as
 * C++ and run on the CPU by tests/c/cuda_emulator.h, against the CPU
 * backend's entries on the same inputs: copy (strided sources and
 * destinations, float32 <-> int32 with saturation), fill, every unary op
 * with its parameters, every binary op over all pairs of edge values
 * (broadcast operands as stride-0 views), the scalar forms, the fused unary
 * gradients and where, on contiguous, transposed, expanded and gapped
 * layouts and on int32 and mixed operands.
 *
 * Both backends compute each element with the functions of
 * core/lm_scalar_ops.h, so results must agree bit for bit (which NaN comes
 * out of arithmetic aside), with one exception: the float32 polynomials of
 * lm_fastmath.h (exp, expm1, erf, tanh: the ops EXP, TANH, SIGMOID, ELU,
 * GELU, GELU_TANH and their gradients) fuse their multiply-adds where the
 * compiler targets FMA. tests/CMakeLists.txt builds this file for the
 * library's instruction set (-march=native under LUMEN_NATIVE); where the
 * two differ, those ops are held to a few ulp against the CPU, and to the
 * bit against the emulated kernel's own result on a contiguous copy of the
 * input, which still pins every index. The CPU
 * runs in IEEE mode here (test_ieee_mode), as the GPU does. */
#define LM_CUDA_EMULATED 1
#include "../../kernels/cuda_elementwise.cu"
#include "emulated_tensors.h"

#include <float.h>

#include <algorithm>
#include <string>
#include <vector>

extern "C" {
#include "lm_backend.h"
#include "lm_fpenv.h"
#include "lm_ops.h"
#include "lm_tensor.h"
#include "test.h"
}

namespace {

lm_tensor *make(Pool &pool, lm_dtype dt, std::vector<int64_t> shape) {
    lm_tensor *t = NULL;
    CHECK_OK(lm_tensor_new(&t, dt, LM_CPU, (int)shape.size(), shape.data()));
    return pool(t);
}

uint32_t bits_at(const lm_tensor *t, int64_t off) {
    uint32_t u;
    memcpy(&u, (const char *)lm_tensor_data(t) + 4 * off, 4);
    return u;
}

float f32_of(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* The distinct element offsets of t in row-major order: an expanded
 * view's repeats once, so that every edge value given lands in storage. */
std::vector<int64_t> distinct_offsets(const lm_tensor *t) {
    std::vector<int64_t> out;
    std::vector<bool> seen;
    for (int64_t off : offsets(t)) {
        if ((size_t)off >= seen.size()) seen.resize(off + 1, false);
        if (!seen[off]) out.push_back(off);
        seen[off] = true;
    }
    return out;
}

/* Float values: the edge cases first, then a fixed sequence in [-scale, scale). */
void fill_f32(lm_tensor *t, const std::vector<float> &edges, uint32_t seed, float scale) {
    std::vector<int64_t> offs = distinct_offsets(t);
    float *p = lm_tensor_f32(t);
    for (size_t i = 0; i < offs.size(); i++) {
        seed = seed * 1664525u + 1013904223u;
        p[offs[i]] = i < edges.size() ? edges[i] : ((float)(seed >> 8) / 8388608.0f - 1.0f) * scale;
    }
}

void fill_i32(lm_tensor *t, const std::vector<int32_t> &edges, uint32_t seed, int32_t range) {
    std::vector<int64_t> offs = distinct_offsets(t);
    int32_t *p = lm_tensor_i32(t);
    for (size_t i = 0; i < offs.size(); i++) {
        seed = seed * 1664525u + 1013904223u;
        p[offs[i]] = i < edges.size() ? edges[i] : (int32_t)(seed >> 8) % range;
    }
}

const float NaN = NAN, Inf = INFINITY;

/* Every float that some op treats specially: zeros, the exp clamps (-104,
 * 89), overflow, subnormals, bfloat16 ties (1 + 2^-8 rounds down to even,
 * 1 + 3 * 2^-8 up), a NaN with a payload and both signs. */
std::vector<float> float_edges(void) {
    float payload;
    uint32_t u = 0x7fc01234u;
    memcpy(&payload, &u, 4);
    return {0.0f,        -0.0f,       1.0f,    -1.0f,    0.5f,  -0.5f,  2.0f,    -3.0f,  1e-3f,
            -1e-3f,      1e-40f,      -1e-40f, 88.0f,    89.5f, -88.0f, -104.5f, 100.0f, -100.0f,
            1e30f,       -1e30f,      FLT_MAX, -FLT_MAX, Inf,   -Inf,   NaN,     -NaN,   payload,
            1.00390625f, 1.01171875f, 3.4e38f, 5.0f,     -5.0f, 10.5f,  -0.25f};
}

std::vector<int32_t> int_edges(void) {
    return {0, 1, -1, 2, -7, 3, 46341, -46341, 100000, INT32_MAX, INT32_MIN, INT32_MAX - 1};
}

/* ---- layouts ----------------------------------------------------------------------------- */

enum Layout { CONTIG, TRANSPOSED, EXPAND_ROW, EXPAND_COL, GAPPED };
const char *layout_name[] = {"contiguous", "transposed", "expanded row", "expanded column",
                             "gapped transposed"};

/* A [rows, cols] view in the given layout over a fresh storage; the
 * storage (contiguous) is *base. CONTIG: rows 1 to rows of rows + 2, so
 * that a write past either end shows. GAPPED: a narrowed-then-transposed
 * view, so the strides are (1, rows + 3), the offset is 1 and two columns
 * of the storage lie outside the view. */
lm_tensor *view(Pool &pool, lm_dtype dt, Layout l, int64_t rows, int64_t cols,
                lm_tensor **base = NULL) {
    lm_tensor *b = NULL, *v = NULL;
    int64_t shape[2] = {rows, cols};
    switch (l) {
    case CONTIG:
        b = make(pool, dt, {rows + 2, cols});
        CHECK_OK(lm_tensor_narrow(&v, b, 0, 1, rows));
        pool(v);
        break;
    case TRANSPOSED:
        b = make(pool, dt, {cols, rows});
        CHECK_OK(lm_tensor_transpose(&v, b, 0, 1));
        pool(v);
        break;
    case EXPAND_ROW:
        b = make(pool, dt, {1, cols});
        CHECK_OK(lm_tensor_expand(&v, b, 2, shape));
        pool(v);
        break;
    case EXPAND_COL:
        b = make(pool, dt, {rows, 1});
        CHECK_OK(lm_tensor_expand(&v, b, 2, shape));
        pool(v);
        break;
    case GAPPED: {
        b = make(pool, dt, {cols, rows + 3});
        lm_tensor *n = NULL;
        CHECK_OK(lm_tensor_narrow(&n, b, 1, 1, rows));
        pool(n);
        CHECK_OK(lm_tensor_transpose(&v, n, 0, 1));
        pool(v);
        break;
    }
    }
    memset(lm_tensor_data(b), 0, 4 * (size_t)lm_tensor_numel(b)); /* gaps read as 0 */
    if (base) *base = b;
    return v;
}

/* Sentinel bits in a whole storage, so that writes outside a view show. */
void poison(lm_tensor *base) {
    uint32_t *p = (uint32_t *)lm_tensor_data(base);
    for (int64_t i = 0; i < lm_tensor_numel(base); i++) p[i] = 0xa5a5a5a5u ^ (uint32_t)i;
}

/* A pair of outputs of the same layout, each over its own poisoned storage:
 * one for the CPU, one for the emulated kernel. */
struct Outs {
    lm_tensor *cpu, *gpu, *cpu_base, *gpu_base;
};
Outs outs(Pool &pool, lm_dtype dt, Layout l, int64_t rows, int64_t cols) {
    Outs o;
    o.cpu = view(pool, dt, l, rows, cols, &o.cpu_base);
    o.gpu = view(pool, dt, l, rows, cols, &o.gpu_base);
    poison(o.cpu_base);
    poison(o.gpu_base);
    return o;
}

/* ---- comparison -------------------------------------------------------------------------- */

/* Distance in units in the last place between two floats; both NaN: 0. */
int64_t ulps(uint32_t a, uint32_t b) {
    float fa = f32_of(a), fb = f32_of(b);
    if (fa != fa || fb != fb) return fa != fa && fb != fb ? 0 : INT64_MAX;
    auto ordered = [](uint32_t u) -> int64_t {
        return u & 0x80000000u ? -(int64_t)(u & 0x7fffffffu) : (int64_t)u;
    };
    int64_t d = ordered(a) - ordered(b);
    return d < 0 ? -d : d;
}

/* How closely a result must match: EXACT, bit for bit; ARITH, bit for bit
 * but any NaN matches any NaN (which NaN an operation on two NaNs returns
 * is the compiler's choice of operand order, and a GPU returns its
 * canonical NaN anyway); FASTMATH (see uses_fastmath below), within a few
 * ulp, or absolutely where a result cancels to near zero. */
struct Tol {
    int64_t ulps;
    double abs;
    bool any_nan;
};
const Tol EXACT = {0, 0, false}, ARITH = {0, 0, true};

/* The number of elements of `got` that differ from `want` (same shape)
 * beyond tol; prints the first few. */
int64_t mismatches(const std::string &what, const lm_tensor *got, const lm_tensor *want,
                   Tol tol = EXACT) {
    std::vector<int64_t> og = offsets(got), ow = offsets(want);
    int64_t bad = 0;
    for (size_t i = 0; i < og.size(); i++) {
        uint32_t g = bits_at(got, og[i]), w = bits_at(want, ow[i]);
        bool ok = g == w;
        if (!ok && got->dtype == LM_FLOAT32) {
            float fg = f32_of(g), fw = f32_of(w);
            if (tol.any_nan && fg != fg && fw != fw) ok = true;
            if (tol.ulps && (ulps(g, w) <= tol.ulps || fabs((double)fg - fw) <= tol.abs)) ok = true;
        }
        if (ok) continue;
        if (bad++ < 4) {
            if (got->dtype == LM_FLOAT32)
                fprintf(stderr, "  %s: element %zu is %.9g (0x%08x), the CPU's %.9g (0x%08x)\n",
                        what.c_str(), i, f32_of(g), g, f32_of(w), w);
            else
                fprintf(stderr, "  %s: element %zu is %d, the CPU's %d\n", what.c_str(), i,
                        (int32_t)g, (int32_t)w);
        }
    }
    return bad;
}

/* The two outputs agree over their whole storages: the view's elements
 * within tol and the sentinels around them (bit for bit). */
bool same_storage(const std::string &what, const Outs &o, Tol tol = EXACT) {
    return mismatches(what, o.gpu_base, o.cpu_base, tol) == 0;
}

/* ---- copy and fill ----------------------------------------------------------------------- */

/* The CPU flushes subnormals to zero by default (lm_fpenv.h), the CUDA
 * kernels do not (docs/api.md): compare in IEEE mode, where both keep them. */
void test_ieee_mode(void) {
    CHECK(lm_set_flush_denormal(false));
    volatile float tiny = 1e-40f;
    CHECK(tiny * 1.0f != 0.0f);
}

void test_copy(void) {
    Pool pool;
    const int64_t R = 37, C = 29;
    /* float32 from every layout into every writable layout */
    for (Layout sl : {CONTIG, TRANSPOSED, EXPAND_ROW, EXPAND_COL, GAPPED})
        for (Layout dl : {CONTIG, TRANSPOSED, GAPPED}) {
            lm_tensor *src = view(pool, LM_FLOAT32, sl, R, C);
            fill_f32(src, float_edges(), 3, 100.0f);
            Outs o = outs(pool, LM_FLOAT32, dl, R, C);
            CHECK_OK(cpu()->copy(o.cpu, src));
            CHECK_OK(lm_cuda_copy(o.gpu, src));
            std::string what =
                std::string("copy from ") + layout_name[sl] + " to " + layout_name[dl];
            CHECK(same_storage(what, o));
            CHECK(mismatches(what + " vs source", o.gpu, src) == 0); /* a copy: the same bits */
        }

    /* float32 -> int32: truncation toward zero, saturation, NaN gives 0 */
    std::vector<float> in = {
        0.0f,           -0.0f,      2.5f, -2.5f, 2.9f,          -2.9f,         1e10f,
        -1e10f,         NaN,        Inf,  -Inf,  2147483520.0f, 2147483648.0f, -2147483648.0f,
        -2147483904.0f, 16777217.0f};
    std::vector<int32_t> expect = {
        0, 0,         2,         -2,         2,         -2,        INT32_MAX, INT32_MIN,
        0, INT32_MAX, INT32_MIN, 2147483520, INT32_MAX, INT32_MIN, INT32_MIN, 16777216};
    for (Layout sl : {CONTIG, TRANSPOSED}) {
        lm_tensor *src = view(pool, LM_FLOAT32, sl, 4, 4);
        fill_f32(src, in, 0, 0);
        Outs o = outs(pool, LM_INT32, GAPPED, 4, 4);
        CHECK_OK(cpu()->copy(o.cpu, src));
        CHECK_OK(lm_cuda_copy(o.gpu, src));
        CHECK(same_storage("copy float32 -> int32", o));
        std::vector<int64_t> offs = offsets(o.gpu);
        bool as_expected = true;
        for (size_t i = 0; i < expect.size(); i++)
            as_expected &= lm_tensor_i32(o.gpu)[offs[i]] == expect[i];
        CHECK(as_expected);
    }

    /* int32 -> float32 (rounded to nearest even past 2^24) and int32 -> int32 */
    for (Layout sl : {CONTIG, TRANSPOSED, EXPAND_COL}) {
        lm_tensor *src = view(pool, LM_INT32, sl, R, C);
        fill_i32(src, {16777217, 16777219, INT32_MAX, INT32_MIN, -1, 0, 123456789}, 5, 1 << 30);
        Outs f = outs(pool, LM_FLOAT32, GAPPED, R, C), i = outs(pool, LM_INT32, TRANSPOSED, R, C);
        CHECK_OK(cpu()->copy(f.cpu, src));
        CHECK_OK(lm_cuda_copy(f.gpu, src));
        CHECK_OK(cpu()->copy(i.cpu, src));
        CHECK_OK(lm_cuda_copy(i.gpu, src));
        CHECK(same_storage("copy int32 -> float32", f));
        CHECK(same_storage("copy int32 -> int32", i));
        CHECK(mismatches("copy int32 -> int32 vs source", i.gpu, src) == 0);
        if (sl == CONTIG) {
            std::vector<int64_t> offs = offsets(f.gpu);
            const float *p = lm_tensor_f32(f.gpu);
            CHECK(p[offs[0]] == 16777216.0f && p[offs[1]] == 16777220.0f);
            CHECK(p[offs[2]] == 2147483648.0f && p[offs[3]] == -2147483648.0f);
        }
    }

    /* an empty tensor launches nothing */
    lm_tensor *e1 = make(pool, LM_FLOAT32, {0, 5}), *e2 = make(pool, LM_FLOAT32, {0, 5});
    CHECK_OK(lm_cuda_copy(e1, e2));
}

void test_fill(void) {
    Pool pool;
    const double values[] = {0.1, -0.0, 7.9, -7.9, 1e12, -1e12, NAN, INFINITY, 3e38, 1e300};
    for (lm_dtype dt : {LM_FLOAT32, LM_INT32})
        for (Layout l : {CONTIG, TRANSPOSED, GAPPED})
            for (double v : values) {
                Outs o = outs(pool, dt, l, 37, 29);
                CHECK_OK(cpu()->fill(o.cpu, v));
                CHECK_OK(lm_cuda_fill(o.gpu, v));
                char what[96];
                snprintf(what, sizeof what, "fill %s %s with %g", lm_dtype_name(dt), layout_name[l],
                         v);
                CHECK(same_storage(what, o));
            }
    /* the conversions themselves, stated: float32 rounds, int32 truncates and saturates */
    lm_tensor *f = make(pool, LM_FLOAT32, {3}), *i = make(pool, LM_INT32, {3});
    CHECK_OK(lm_cuda_fill(f, 0.1));
    CHECK(lm_tensor_f32(f)[2] == 0.1f);
    CHECK_OK(lm_cuda_fill(f, 1e300)); /* past float32's range */
    CHECK(isinf(lm_tensor_f32(f)[1]));
    CHECK_OK(lm_cuda_fill(i, -7.9));
    CHECK(lm_tensor_i32(i)[0] == -7);
    CHECK_OK(lm_cuda_fill(i, 1e12));
    CHECK(lm_tensor_i32(i)[1] == INT32_MAX);
    CHECK_OK(lm_cuda_fill(i, NAN));
    CHECK(lm_tensor_i32(i)[2] == 0);
}

/* ---- unary ------------------------------------------------------------------------------- */

/* Ops whose float32 form calls the polynomials of lm_fastmath.h, whose
 * multiply-adds are fused or not as the compiler targets FMA. */
bool uses_fastmath(lm_unary_op op) {
    return op == LM_EXP || op == LM_TANH || op == LM_SIGMOID || op == LM_ELU || op == LM_GELU ||
           op == LM_GELU_TANH || op == LM_EXPM1 || op == LM_ERF || op == LM_SOFTPLUS ||
           op == LM_MISH || op == LM_SELU || op == LM_CELU || op == LM_LOGSIGMOID ||
           op == LM_TANHSHRINK || op == LM_SILU;
}

/* The tolerance against the CPU for such ops when this file is built
 * without FMA: 4 ulp, or absolutely where a result cancels to near zero (at
 * |x| near 5, GELU's 1 + erf and 1 + tanh lose all but a few bits). A sweep
 * of float32 x with g = 1 found at most 3e-7 for the forward ops and 2.2e-6
 * for GELU_TANH's gradient, whose g here is at most 2 in magnitude. */
#ifdef __FMA__
const Tol FASTMATH = ARITH, FASTMATH_GRAD = ARITH; /* the library's own arithmetic */
#else
const Tol FASTMATH = {4, 4e-7, true}, FASTMATH_GRAD = {4, 5e-6, true};
#endif
Tol unary_tol(lm_unary_op op, bool grad = false) {
    return uses_fastmath(op) ? (grad ? FASTMATH_GRAD : FASTMATH) : ARITH;
}

/* the parameters each op is tried with */
std::vector<std::pair<double, double>> unary_params(lm_unary_op op) {
    switch (op) {
    case LM_ELU:
        return {{1.0, 0}, {0.3, 0}};
    case LM_LEAKY_RELU:
        return {{0.01, 0}, {-0.5, 0}};
    case LM_SOFTPLUS:
        return {{1.0, 20.0}, {2.0, 5.0}};
    case LM_CELU:
        return {{1.0, 0}, {0.5, 0}};
    case LM_HARDSHRINK:
    case LM_SOFTSHRINK:
        return {{0.5, 0}, {0.0, 0}};
    case LM_THRESHOLD:
        return {{0.5, -2.0}, {-1.0, 3.0}};
    case LM_CLAMP:
        return {{-0.5, 2.0}, {-INFINITY, 0.0}, {3.0, 1.0} /* min > max: max wins */};
    case LM_POW_SCALAR:
        return {{2.0, 0} /* x * x */, {3.0, 0}, {0.5, 0}, {-1.0, 0}, {0.0, 0}, {-2.5, 0}};
    case LM_RPOW_SCALAR:
        return {{2.0, 0}, {0.5, 0}, {-2.0, 0}, {0.0, 0}, {2.718281828459045, 0}};
    default:
        return {{0, 0}};
    }
}

/* The dtype of op's result on int32 input, as lm_ops.h's unary gives it. */
lm_dtype int_result(lm_unary_op op, double p0, double p1) {
    bool stays = op == LM_NEG || op == LM_ABS || op == LM_SIGN || op == LM_RELU ||
                 op == LM_SQUARE || op == LM_FLOOR || op == LM_CEIL || op == LM_ROUND ||
                 op == LM_TRUNC || (op == LM_CLAMP && p0 == floor(p0) && p1 == floor(p1));
    return stays ? LM_INT32 : LM_FLOAT32;
}

void test_unary(void) {
    const int64_t R = 37, C = 29;
    int64_t worst_ulps = 0;
    for (int k = 0; k < LM_UNARY_COUNT; k++) {
        lm_unary_op op = (lm_unary_op)k;
        for (auto [p0, p1] : unary_params(op)) {
            Pool pool;
            char name[64];
            snprintf(name, sizeof name, "%s(%g, %g)", lm_unary_name(op), p0, p1);
            Tol tol = unary_tol(op);

            /* contiguous input and output: the flat path */
            lm_tensor *x0 = view(pool, LM_FLOAT32, CONTIG, R, C);
            fill_f32(x0, float_edges(), 7, 6.0f);
            Outs ref = outs(pool, LM_FLOAT32, CONTIG, R, C);
            CHECK_OK(cpu()->unary(op, ref.cpu, x0, p0, p1));
            CHECK_OK(lm_cuda_unary(op, ref.gpu, x0, p0, p1));
            CHECK(same_storage(std::string(name) + " contiguous", ref, tol));
            std::vector<int64_t> oc = offsets(ref.gpu), og = offsets(ref.cpu);
            for (size_t i = 0; i < oc.size(); i++)
                worst_ulps =
                    std::max(worst_ulps, ulps(bits_at(ref.gpu, oc[i]), bits_at(ref.cpu, og[i])));

            for (Layout xl : {TRANSPOSED, EXPAND_ROW, EXPAND_COL, GAPPED})
                for (Layout ol : {CONTIG, GAPPED}) {
                    lm_tensor *x = view(pool, LM_FLOAT32, xl, R, C);
                    fill_f32(x, float_edges(), 11 + xl, 6.0f);
                    lm_tensor *xc = make(pool, LM_FLOAT32, {R, C});
                    CHECK_OK(cpu()->copy(xc, x));
                    Outs o = outs(pool, LM_FLOAT32, ol, R, C);
                    lm_tensor *same = make(pool, LM_FLOAT32, {R, C});
                    CHECK_OK(cpu()->unary(op, o.cpu, x, p0, p1));
                    CHECK_OK(lm_cuda_unary(op, o.gpu, x, p0, p1));
                    CHECK_OK(lm_cuda_unary(op, same, xc, p0, p1));
                    std::string what =
                        std::string(name) + " " + layout_name[xl] + " into " + layout_name[ol];
                    CHECK(same_storage(what, o, tol));
                    /* the strided walk must give the flat path's very bits */
                    CHECK(mismatches(what + " vs its contiguous copy", o.gpu, same) == 0);
                }

            /* int32 input: the exact double path, into the result dtype lm_ops.h gives */
            for (Layout xl : {CONTIG, TRANSPOSED, EXPAND_ROW}) {
                lm_tensor *x = view(pool, LM_INT32, xl, R, C);
                fill_i32(x, int_edges(), 13, 200);
                Outs o = outs(pool, int_result(op, p0, p1), GAPPED, R, C);
                CHECK_OK(cpu()->unary(op, o.cpu, x, p0, p1));
                CHECK_OK(lm_cuda_unary(op, o.gpu, x, p0, p1));
                CHECK(same_storage(std::string(name) + " int32 " + layout_name[xl], o));
            }
        }
    }
    printf("unary: the float32 fastmath ops at most %lld ulp from the CPU's (allowed %lld, or "
           "%g absolutely near zero)\n",
           (long long)worst_ulps, (long long)FASTMATH.ulps, FASTMATH.abs);

    /* an op number outside the enum is refused before any launch */
    Pool pool;
    lm_tensor *x = make(pool, LM_FLOAT32, {4}), *o = make(pool, LM_FLOAT32, {4});
    fill_f32(x, {}, 1, 1.0f);
    CHECK_FAILS(lm_cuda_unary(LM_UNARY_COUNT, o, x, 0, 0), LM_ERR_ARG, "unknown op");
    CHECK_FAILS(lm_cuda_unary((lm_unary_op)-1, o, x, 0, 0), LM_ERR_ARG, "unknown op");
}

/* ---- binary ------------------------------------------------------------------------------ */

/* The result dtype of lm_ops.h's binary: comparisons, DIV and POW give
 * float32, the rest int32 when both operands are. */
lm_dtype binary_result(lm_binary_op op, lm_dtype a, lm_dtype b) {
    if (op >= LM_EQ || op == LM_DIV || op == LM_POW) return LM_FLOAT32;
    return a == LM_INT32 && b == LM_INT32 ? LM_INT32 : LM_FLOAT32;
}

/* Every pair of edge values: a [m, 1] and b [1, m] expanded to [m, m], so
 * both operands arrive with a stride-0 dimension, as lm_ops.h passes them. */
void check_all_pairs(lm_binary_op op, lm_dtype at, lm_dtype bt) {
    Pool pool;
    std::vector<float> fe = float_edges();
    std::vector<int32_t> ie = int_edges();
    int64_t m = (int64_t)(at == LM_FLOAT32 && bt == LM_FLOAT32 ? fe.size()
                                                               : std::max(fe.size(), ie.size()));
    int64_t shape[2] = {m, m};
    lm_tensor *a0 = make(pool, at, {m, 1}), *b0 = make(pool, bt, {1, m}), *a = NULL, *b = NULL;
    at == LM_FLOAT32 ? fill_f32(a0, fe, 17, 4.0f) : fill_i32(a0, ie, 17, 50);
    bt == LM_FLOAT32 ? fill_f32(b0, fe, 19, 4.0f) : fill_i32(b0, ie, 19, 50);
    CHECK_OK(lm_tensor_expand(&a, a0, 2, shape));
    CHECK_OK(lm_tensor_expand(&b, b0, 2, shape));
    pool(a), pool(b);
    Outs o = outs(pool, binary_result(op, at, bt), CONTIG, m, m);
    CHECK_OK(cpu()->binary(op, o.cpu, a, b));
    CHECK_OK(lm_cuda_binary(op, o.gpu, a, b));
    char what[96];
    snprintf(what, sizeof what, "%s all pairs %s x %s", lm_binary_name(op), lm_dtype_name(at),
             lm_dtype_name(bt));
    CHECK(same_storage(what, o, at == LM_FLOAT32 && bt == LM_FLOAT32 ? ARITH : EXACT));
}

/* Larger operands in assorted layouts: contiguous (the flat path), a
 * transposed and a gapped operand, a [1, C] or [R, 1] broadcast, gapped output. */
void check_layouts(lm_binary_op op, lm_dtype at, lm_dtype bt) {
    const int64_t R = 37, C = 29;
    const Layout pairs[][3] = {{CONTIG, CONTIG, CONTIG},         {TRANSPOSED, EXPAND_ROW, CONTIG},
                               {EXPAND_COL, GAPPED, GAPPED},     {GAPPED, TRANSPOSED, TRANSPOSED},
                               {EXPAND_ROW, EXPAND_COL, CONTIG}, {CONTIG, TRANSPOSED, GAPPED}};
    for (auto &p : pairs) {
        Pool pool;
        lm_tensor *a = view(pool, at, p[0], R, C), *b = view(pool, bt, p[1], R, C);
        at == LM_FLOAT32 ? fill_f32(a, float_edges(), 23, 3.0f) : fill_i32(a, int_edges(), 23, 9);
        bt == LM_FLOAT32 ? fill_f32(b, {}, 29, 3.0f) : fill_i32(b, {0, 3, -2}, 29, 9);
        Outs o = outs(pool, binary_result(op, at, bt), p[2], R, C);
        CHECK_OK(cpu()->binary(op, o.cpu, a, b));
        CHECK_OK(lm_cuda_binary(op, o.gpu, a, b));
        char what[160];
        snprintf(what, sizeof what, "%s %s %s x %s %s into %s", lm_binary_name(op),
                 lm_dtype_name(at), layout_name[p[0]], lm_dtype_name(bt), layout_name[p[1]],
                 layout_name[p[2]]);
        CHECK(same_storage(what, o, at == LM_FLOAT32 && bt == LM_FLOAT32 ? ARITH : EXACT));
    }
}

void test_binary(void) {
    const lm_dtype mixes[][2] = {{LM_FLOAT32, LM_FLOAT32},
                                 {LM_INT32, LM_INT32},
                                 {LM_FLOAT32, LM_INT32},
                                 {LM_INT32, LM_FLOAT32}};
    for (int k = 0; k < LM_BINARY_COUNT; k++)
        for (auto &mix : mixes) {
            check_all_pairs((lm_binary_op)k, mix[0], mix[1]);
            check_layouts((lm_binary_op)k, mix[0], mix[1]);
        }

    /* what the shared definitions promise, checked on the kernel's own results */
    Pool pool;
    lm_tensor *a = make(pool, LM_FLOAT32, {4}), *b = make(pool, LM_FLOAT32, {4}),
              *o = make(pool, LM_FLOAT32, {4});
    fill_f32(a, {NaN, 1.0f, -0.0f, 2.0f}, 0, 0);
    fill_f32(b, {1.0f, NaN, 0.0f, NaN}, 0, 0);
    CHECK_OK(lm_cuda_binary(LM_MAXIMUM, o, a, b)); /* NaN wins either side */
    CHECK(isnan(lm_tensor_f32(o)[0]) && isnan(lm_tensor_f32(o)[1]) && isnan(lm_tensor_f32(o)[3]));
    CHECK_OK(lm_cuda_binary(LM_NE, o, a, b)); /* NaN differs from everything */
    CHECK(lm_tensor_f32(o)[0] == 1.0f && lm_tensor_f32(o)[2] == 0.0f);
    lm_tensor *i = make(pool, LM_INT32, {2}), *j = make(pool, LM_INT32, {2}),
              *s = make(pool, LM_INT32, {2});
    fill_i32(i, {INT32_MAX, INT32_MIN}, 0, 1);
    fill_i32(j, {1, -1}, 0, 1);
    CHECK_OK(lm_cuda_binary(LM_ADD, s, i, j)); /* saturates, as a copy converts */
    CHECK(lm_tensor_i32(s)[0] == INT32_MAX && lm_tensor_i32(s)[1] == INT32_MIN);
    CHECK_FAILS(lm_cuda_binary(LM_BINARY_COUNT, o, a, b), LM_ERR_ARG, "unknown op");
}

void test_binary_scalar(void) {
    const int64_t R = 37, C = 29;
    const double scalars[] = {2.5, 2.0, 0.0, -1.0, 1e-50, 0.1, NAN, INFINITY, -3e9};
    for (int k = 0; k < LM_BINARY_COUNT; k++) {
        lm_binary_op op = (lm_binary_op)k;
        for (double s : scalars)
            for (bool first : {false, true})
                for (lm_dtype at : {LM_FLOAT32, LM_INT32}) {
                    Pool pool;
                    /* lm_ops.h's result dtype: a whole s keeps an int32 operand's dtype */
                    bool whole = s >= INT32_MIN && s <= INT32_MAX && s == floor(s);
                    lm_dtype ot = binary_result(op, at, whole ? LM_INT32 : LM_FLOAT32);
                    for (Layout al : {CONTIG, GAPPED, EXPAND_ROW}) {
                        lm_tensor *a = view(pool, at, al, R, C);
                        at == LM_FLOAT32 ? fill_f32(a, float_edges(), 31, 5.0f)
                                         : fill_i32(a, int_edges(), 31, 20);
                        Outs o = outs(pool, ot, al == GAPPED ? CONTIG : GAPPED, R, C);
                        CHECK_OK(cpu()->binary_scalar(op, o.cpu, a, s, first));
                        CHECK_OK(lm_cuda_binary_scalar(op, o.gpu, a, s, first));
                        char what[128];
                        snprintf(what, sizeof what, "%s %s %s with %g %s", lm_binary_name(op),
                                 lm_dtype_name(at), layout_name[al], s, first ? "first" : "second");
                        CHECK(same_storage(what, o, at == LM_FLOAT32 ? ARITH : EXACT));
                    }
                }
    }
    Pool pool;
    lm_tensor *a = make(pool, LM_FLOAT32, {2}), *o = make(pool, LM_FLOAT32, {2});
    fill_f32(a, {4.0f, 0.5f}, 0, 0);
    CHECK_OK(lm_cuda_binary_scalar(LM_DIV, o, a, 2.0, true)); /* 2 / a */
    CHECK(lm_tensor_f32(o)[0] == 0.5f && lm_tensor_f32(o)[1] == 4.0f);
    CHECK_OK(lm_cuda_binary_scalar(LM_DIV, o, a, 2.0, false)); /* a / 2 */
    CHECK(lm_tensor_f32(o)[0] == 2.0f && lm_tensor_f32(o)[1] == 0.25f);
    CHECK_FAILS(lm_cuda_binary_scalar((lm_binary_op)99, o, a, 1.0, false), LM_ERR_ARG,
                "unknown op");
}

/* ---- fused unary gradients --------------------------------------------------------------- */

void test_unary_backward(void) {
    const int64_t R = 37, C = 29;
    for (int k = 0; k < LM_UNARY_COUNT; k++) {
        lm_unary_op op = (lm_unary_op)k;
        Pool pool;
        lm_tensor *x = make(pool, LM_FLOAT32, {4}), *gx = make(pool, LM_FLOAT32, {4});
        if (!lm_unary_has_fused_grad(op)) { /* refused, as the CPU refuses it */
            CHECK_FAILS(lm_cuda_unary_backward(op, gx, x, x, x, 0), LM_ERR_ARG, "no fused");
            CHECK_FAILS(cpu()->unary_backward(op, gx, x, x, x, 0), LM_ERR_ARG, "no fused");
            continue;
        }
        Tol tol = unary_tol(op, true);
        for (double alpha : {1.0, 0.5}) {
            if (alpha != 1.0 && op != LM_ELU && op != LM_CELU && op != LM_SOFTSHRINK &&
                op != LM_THRESHOLD)
                continue; /* the ops whose gradient reads alpha (p0) */
            /* layouts of g, x, y and gx */
            const Layout sets[][4] = {{CONTIG, CONTIG, CONTIG, CONTIG},
                                      {EXPAND_ROW, TRANSPOSED, CONTIG, GAPPED},
                                      {GAPPED, EXPAND_COL, EXPAND_COL, CONTIG},
                                      {TRANSPOSED, GAPPED, TRANSPOSED, TRANSPOSED},
                                      {CONTIG, EXPAND_ROW, EXPAND_ROW, TRANSPOSED}};
            for (auto &l : sets) {
                lm_tensor *xb, *yb;
                lm_tensor *g = view(pool, LM_FLOAT32, l[0], R, C);
                lm_tensor *xs = view(pool, LM_FLOAT32, l[1], R, C, &xb);
                lm_tensor *ys = view(pool, LM_FLOAT32, l[2], R, C, &yb);
                fill_f32(g, {1.0f, -2.0f, 0.0f, NaN, Inf, 1e30f}, 37, 2.0f);
                fill_f32(xs, float_edges(), 41, 6.0f);
                /* y = op(x): an expanded y's storage from x's, others element by element */
                CHECK_OK(l[1] == l[2] && l[1] >= EXPAND_ROW && l[1] <= EXPAND_COL
                             ? cpu()->unary(op, yb, xb, alpha, 0)
                             : cpu()->unary(op, ys, xs, alpha, 0));
                Outs o = outs(pool, LM_FLOAT32, l[3], R, C);
                CHECK_OK(cpu()->unary_backward(op, o.cpu, g, xs, ys, alpha));
                CHECK_OK(lm_cuda_unary_backward(op, o.gpu, g, xs, ys, alpha));
                char what[128];
                snprintf(what, sizeof what, "%s gradient (alpha %g) g %s x %s y %s into %s",
                         lm_unary_name(op), alpha, layout_name[l[0]], layout_name[l[1]],
                         layout_name[l[2]], layout_name[l[3]]);
                CHECK(same_storage(what, o, tol));
                /* exactly the emulated kernel's result on contiguous copies */
                lm_tensor *gc = make(pool, LM_FLOAT32, {R, C}),
                          *xc = make(pool, LM_FLOAT32, {R, C}),
                          *yc = make(pool, LM_FLOAT32, {R, C}),
                          *same = make(pool, LM_FLOAT32, {R, C});
                CHECK_OK(cpu()->copy(gc, g));
                CHECK_OK(cpu()->copy(xc, xs));
                CHECK_OK(cpu()->copy(yc, ys));
                CHECK_OK(lm_cuda_unary_backward(op, same, gc, xc, yc, alpha));
                CHECK(mismatches(std::string(what) + " vs contiguous copies", o.gpu, same) == 0);
            }
        }
    }
}

/* ---- one dimension ---------------------------------------------------------------------- */

/* Operands that merge to one dimension with strides other than 1: a
 * column of a matrix (stride 3, offset 1) and one value broadcast (stride
 * 0), the common `x + scalar tensor`; the kernels must not take them for
 * the flat (all strides 1) case. */
enum Shape1 { DENSE1, COLUMN1, BROADCAST1 };
const char *shape1_name[] = {"dense", "column", "broadcast"};

lm_tensor *view1(Pool &pool, lm_dtype dt, Shape1 s, int64_t n, lm_tensor **base = NULL) {
    lm_tensor *b = NULL, *v = NULL;
    switch (s) {
    case DENSE1:
        b = make(pool, dt, {n + 2});
        CHECK_OK(lm_tensor_narrow(&v, b, 0, 1, n));
        break;
    case COLUMN1:
        b = make(pool, dt, {n, 3});
        CHECK_OK(lm_tensor_select(&v, b, 1, 1));
        break;
    case BROADCAST1:
        b = make(pool, dt, {1});
        CHECK_OK(lm_tensor_expand(&v, b, 1, &n));
        break;
    }
    pool(v);
    memset(lm_tensor_data(b), 0, 4 * (size_t)lm_tensor_numel(b));
    if (base) *base = b;
    return v;
}

Outs outs1(Pool &pool, lm_dtype dt, Shape1 s, int64_t n) {
    Outs o;
    o.cpu = view1(pool, dt, s, n, &o.cpu_base);
    o.gpu = view1(pool, dt, s, n, &o.gpu_base);
    poison(o.cpu_base);
    poison(o.gpu_base);
    return o;
}

void test_one_dimensional(void) {
    const int64_t n = 301;
    for (Shape1 xs : {DENSE1, COLUMN1, BROADCAST1})
        for (Shape1 os : {DENSE1, COLUMN1}) {
            Pool pool;
            std::string where = std::string(shape1_name[xs]) + " into " + shape1_name[os];
            lm_tensor *x = view1(pool, LM_FLOAT32, xs, n), *y = view1(pool, LM_FLOAT32, COLUMN1, n);
            fill_f32(x, {-1.5f, 2.0f}, 59, 4.0f);
            fill_f32(y, {0.5f}, 61, 4.0f);
            Outs c = outs1(pool, LM_FLOAT32, os, n), u = outs1(pool, LM_FLOAT32, os, n),
                 b = outs1(pool, LM_FLOAT32, os, n), r = outs1(pool, LM_FLOAT32, os, n),
                 w = outs1(pool, LM_FLOAT32, os, n), i = outs1(pool, LM_INT32, os, n);
            CHECK_OK(cpu()->copy(c.cpu, x));
            CHECK_OK(lm_cuda_copy(c.gpu, x));
            CHECK(same_storage("copy 1-D " + where, c));
            CHECK_OK(cpu()->copy(i.cpu, x));
            CHECK_OK(lm_cuda_copy(i.gpu, x));
            CHECK(same_storage("copy to int32 1-D " + where, i));
            CHECK_OK(cpu()->unary(LM_SQUARE, u.cpu, x, 0, 0));
            CHECK_OK(lm_cuda_unary(LM_SQUARE, u.gpu, x, 0, 0));
            CHECK(same_storage("square 1-D " + where, u));
            CHECK_OK(cpu()->binary(LM_SUB, b.cpu, y, x)); /* y - x and x - y: both orders */
            CHECK_OK(lm_cuda_binary(LM_SUB, b.gpu, y, x));
            CHECK(same_storage("sub 1-D " + where, b));
            CHECK_OK(cpu()->binary(LM_DIV, r.cpu, x, y));
            CHECK_OK(lm_cuda_binary(LM_DIV, r.gpu, x, y));
            CHECK(same_storage("div 1-D " + where, r));
            CHECK_OK(cpu()->where(w.cpu, y, x, y));
            CHECK_OK(lm_cuda_where(w.gpu, y, x, y));
            CHECK(same_storage("where 1-D " + where, w));
            Outs s = outs1(pool, LM_FLOAT32, os, n);
            CHECK_OK(cpu()->binary_scalar(LM_SUB, s.cpu, x, 0.25, true));
            CHECK_OK(lm_cuda_binary_scalar(LM_SUB, s.gpu, x, 0.25, true));
            CHECK(same_storage("0.25 - x 1-D " + where, s));
            Outs f = outs1(pool, LM_FLOAT32, os, n), g = outs1(pool, LM_FLOAT32, os, n);
            CHECK_OK(cpu()->fill(f.cpu, -2.5));
            CHECK_OK(lm_cuda_fill(f.gpu, -2.5));
            CHECK(same_storage("fill 1-D " + where, f));
            CHECK_OK(cpu()->unary_backward(LM_RELU, g.cpu, y, x, x, 0));
            CHECK_OK(lm_cuda_unary_backward(LM_RELU, g.gpu, y, x, x, 0));
            CHECK(same_storage("relu gradient 1-D " + where, g));
        }
}

/* ---- where ------------------------------------------------------------------------------- */

void test_where(void) {
    const int64_t R = 37, C = 29;
    /* conditions: zeros of both signs are false, NaN and negatives true */
    const std::vector<float> conds = {0.0f, -0.0f, 1.0f, NaN, -2.0f, 1e-40f, Inf};
    const lm_dtype dts[][3] = {{LM_FLOAT32, LM_FLOAT32, LM_FLOAT32},
                               {LM_INT32, LM_INT32, LM_INT32},
                               {LM_FLOAT32, LM_INT32, LM_FLOAT32},
                               {LM_INT32, LM_FLOAT32, LM_INT32}};
    const Layout sets[][4] = {{CONTIG, CONTIG, CONTIG, CONTIG},
                              {EXPAND_ROW, TRANSPOSED, EXPAND_COL, GAPPED},
                              {GAPPED, EXPAND_COL, CONTIG, TRANSPOSED},
                              {TRANSPOSED, GAPPED, EXPAND_ROW, CONTIG}};
    for (auto &d : dts)
        for (auto &l : sets) {
            Pool pool;
            lm_tensor *c = view(pool, d[0], l[0], R, C), *a = view(pool, d[1], l[1], R, C),
                      *b = view(pool, d[2], l[2], R, C);
            if (d[0] == LM_FLOAT32)
                fill_f32(c, conds, 43, 1.0f);
            else
                fill_i32(c, {0, 1, -1, INT32_MIN}, 43, 2);
            d[1] == LM_FLOAT32 ? fill_f32(a, float_edges(), 47, 9.0f)
                               : fill_i32(a, int_edges(), 47, 1000);
            d[2] == LM_FLOAT32 ? fill_f32(b, float_edges(), 53, 9.0f)
                               : fill_i32(b, int_edges(), 53, 1000);
            lm_dtype ot = d[1] == LM_INT32 && d[2] == LM_INT32 ? LM_INT32 : LM_FLOAT32;
            Outs o = outs(pool, ot, l[3], R, C);
            CHECK_OK(cpu()->where(o.cpu, c, a, b));
            CHECK_OK(lm_cuda_where(o.gpu, c, a, b));
            char what[128];
            snprintf(what, sizeof what, "where %s ? %s : %s, cond %s into %s", lm_dtype_name(d[0]),
                     lm_dtype_name(d[1]), lm_dtype_name(d[2]), layout_name[l[0]],
                     layout_name[l[3]]);
            CHECK(same_storage(what, o));
        }
}

} // namespace

TEST_MAIN(test_ieee_mode, test_copy, test_fill, test_unary, test_binary, test_binary_scalar,
          test_unary_backward, test_one_dimensional, test_where)
