/* The CUDA random fills (kernels/cuda_random.cu), compiled as C++ and run on
 * the CPU by tests/c/cuda_emulator.h, against the CPU backend. The contract
 * (core/lm_backend.h) numbers the elements of the output in its row-major
 * order: uniform and Bernoulli element i is word i % 4 of Philox block
 * offset + i / 4, normal element i the pair i % 2 of block offset + i / 2,
 * so a seed and an offset give the same numbers on every device, whatever
 * the threads. Checked here bit for bit: uniform, normal and Bernoulli on
 * contiguous and strided outputs, lengths that leave a block part-used,
 * offsets that carry into the counter's high word or wrap, and dropout's
 * mask and product. Element values are also checked against the contract
 * written out directly with lm_philox4x32.
 *
 * Normals go through log and cos in double. Emulated, both backends call
 * glibc's; on a GPU, CUDA's log (1 ulp) and cos (2 ulp) may round apart from
 * glibc's, and the float result then differs where the double lies that
 * close to a tie between two floats. test_normal_ties counts such draws
 * among those tested: none expected (one in 2^26 draws was found so close). */
#define LM_CUDA_EMULATED 1
#include "../../kernels/cuda_random.cu"
#include "emulated_tensors.h"

#include <string>
#include <vector>

extern "C" {
#include "lm_backend.h"
#include "lm_tensor.h"
#include "test.h"
}

namespace {

lm_tensor *make(Pool &pool, std::vector<int64_t> shape) {
    lm_tensor *t = NULL;
    CHECK_OK(lm_tensor_new(&t, LM_FLOAT32, LM_CPU, (int)shape.size(), shape.data()));
    return pool(t);
}

uint32_t bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

/* Sentinel bits, so that writes outside a view show. */
void poison(lm_tensor *base) {
    float *p = lm_tensor_f32(base);
    for (int64_t i = 0; i < lm_tensor_numel(base); i++) {
        uint32_t u = 0xa5a5a5a5u ^ (uint32_t)i;
        memcpy(&p[i], &u, 4);
    }
}

/* Elements of a and b (storages of the same size) that differ in any bit. */
int64_t differing(const std::string &what, const lm_tensor *a, const lm_tensor *b) {
    const float *pa = lm_tensor_f32(a), *pb = lm_tensor_f32(b);
    int64_t bad = 0;
    for (int64_t i = 0; i < lm_tensor_numel(a); i++) {
        if (bits(pa[i]) == bits(pb[i])) continue;
        if (bad++ < 4)
            fprintf(stderr, "  %s: element %lld is %.9g, the CPU's %.9g\n", what.c_str(),
                    (long long)i, pa[i], pb[i]);
    }
    return bad;
}

/* ---- the layouts of an output ----------------------------------------------------------- */

enum Layout { FLAT, TRANSPOSED, GAPPED, PERMUTED, SCALAR, COLUMN };
const char *layout_name[] = {"contiguous", "transposed", "gapped", "permuted 3-D", "0-D", "column"};

/* An output of about n elements in the layout over a fresh storage *base:
 * FLAT [n] at element 4 of n + 8 (a write past either end shows); TRANSPOSED [c, r] over [r, c];
 * GAPPED a narrowed-then-transposed view (strides (1, r + 2), offset 1, storage left out between
 * columns); PERMUTED [d2, d0, d1] over [d0, d1, d2]; SCALAR 0-D. */
lm_tensor *output(Pool &pool, Layout l, int64_t n, lm_tensor **base) {
    lm_tensor *b = NULL, *v = NULL, *tmp = NULL;
    int64_t r = n / 7 + 1, c = 7;
    switch (l) {
    case FLAT:
        b = make(pool, {n + 8});
        CHECK_OK(lm_tensor_narrow(&v, b, 0, 4, n));
        pool(v);
        break;
    case TRANSPOSED:
        b = make(pool, {r, c});
        CHECK_OK(lm_tensor_transpose(&v, b, 0, 1));
        pool(v);
        break;
    case GAPPED:
        b = make(pool, {c, r + 2});
        CHECK_OK(lm_tensor_narrow(&tmp, b, 1, 1, r));
        pool(tmp);
        CHECK_OK(lm_tensor_transpose(&v, tmp, 0, 1));
        pool(v);
        break;
    case PERMUTED: {
        b = make(pool, {3, r, 5});
        int perm[3] = {2, 0, 1};
        CHECK_OK(lm_tensor_permute(&v, b, 3, perm));
        pool(v);
        break;
    }
    case SCALAR:
        b = v = make(pool, {});
        break;
    case COLUMN:
        b = make(pool, {n, 3});
        CHECK_OK(lm_tensor_select(&v, b, 1, 1));
        pool(v);
        break;
    }
    *base = b;
    return v;
}

/* ---- the contract, written out ---------------------------------------------------------- */

/* Element i of a fill as core/lm_backend.h defines it. */
float expected(lm_random_kind kind, uint64_t seed, uint64_t offset, double p0, double p1,
               uint64_t i) {
    if (kind == LM_RANDOM_NORMAL) {
        lm_philox_block b = lm_philox4x32(offset + i / 2, seed);
        uint32_t w1 = b.v[2 * (i % 2)], w2 = b.v[2 * (i % 2) + 1];
        double u1 = ((w1 >> 8) + 1.0) / 16777216.0, u2 = (w2 >> 8) / 16777216.0;
        return (float)(p0 + p1 * sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
    }
    uint32_t w = lm_philox4x32(offset + i / 4, seed).v[i % 4] >> 8;
    if (kind == LM_RANDOM_UNIFORM) /* lo + span u, each rounded in float */
        return (float)p0 + (float)(p1 - p0) * ((float)w / 16777216.0f);
    return w < (uint32_t)ceil(p0 * 16777216.0) ? (float)p1 : 0.0f; /* u < p */
}

struct Kind {
    lm_random_kind kind;
    double p0, p1;
    const char *name;
};
const Kind kinds[] = {
    {LM_RANDOM_UNIFORM, 0.0, 1.0, "uniform [0, 1)"},
    {LM_RANDOM_UNIFORM, -2.5, 3.0, "uniform [-2.5, 3)"},
    {LM_RANDOM_NORMAL, 0.0, 1.0, "normal (0, 1)"},
    {LM_RANDOM_NORMAL, 0.5, 2.0, "normal (0.5, 2)"},
    {LM_RANDOM_BERNOULLI, 0.3, 1.0 / 0.3, "Bernoulli 0.3"},
    {LM_RANDOM_BERNOULLI, 0.0, 1.0, "Bernoulli 0"},
    {LM_RANDOM_BERNOULLI, 1.0, 2.0, "Bernoulli 1"},
};

/* lengths that leave the last Philox block part-used (and whole ones), and
 * lengths past the CPU's 16-block vector path */
const int64_t lengths[] = {1, 2, 3, 5, 7, 8, 63, 64, 65, 1001, 4099};
/* offsets: none, mid-block alignments, carrying into the counter's high
 * word, and wrapping past 2^64 */
const uint64_t offsets_tried[] = {0, 1, 3, 0xffffffffull, 0xfffffffffffffffaull};
const uint64_t seeds[] = {0, 0x9e3779b97f4a7c15ull};

/* ---- fills -------------------------------------------------------------------------------- */

void check_fill(const Kind &k, Layout l, int64_t n, uint64_t seed, uint64_t offset) {
    Pool pool;
    lm_tensor *cb, *gb;
    lm_tensor *c = output(pool, l, n, &cb), *g = output(pool, l, n, &gb);
    poison(cb);
    poison(gb);
    CHECK_OK(cpu()->random(k.kind, c, seed, offset, k.p0, k.p1));
    CHECK_OK(lm_cuda_random(k.kind, g, seed, offset, k.p0, k.p1));
    char what[160];
    snprintf(what, sizeof what, "%s, %s of %lld, seed %llx, offset %llx", k.name, layout_name[l],
             (long long)lm_tensor_numel(g), (unsigned long long)seed, (unsigned long long)offset);
    CHECK(differing(what, gb, cb) == 0);
    /* and every element as the contract numbers it */
    std::vector<int64_t> offs = offsets(g);
    int64_t wrong = 0;
    for (size_t i = 0; i < offs.size(); i++)
        wrong +=
            bits(lm_tensor_f32(g)[offs[i]]) != bits(expected(k.kind, seed, offset, k.p0, k.p1, i));
    if (wrong) fprintf(stderr, "  %s: %lld elements not the contract's\n", what, (long long)wrong);
    CHECK(wrong == 0);
}

void test_contiguous(void) {
    for (const Kind &k : kinds)
        for (int64_t n : lengths)
            for (uint64_t offset : offsets_tried)
                for (uint64_t seed : seeds) check_fill(k, FLAT, n, seed, offset);
}

void test_strided(void) {
    for (const Kind &k : kinds)
        for (Layout l : {TRANSPOSED, GAPPED, PERMUTED, SCALAR, COLUMN})
            for (int64_t n : {1, 13, 300})
                for (uint64_t offset : {0ull, 5ull, 0xfffffffeull}) check_fill(k, l, n, 42, offset);
}

/* Each counter value gives the same numbers wherever a fill starts: a fill
 * at offset + 1 is the one at offset moved by a block (4 elements, 2 normals). */
void test_offsets_shift(void) {
    for (const Kind &k : kinds) {
        Pool pool;
        lm_tensor *a = make(pool, {401}), *b = make(pool, {401});
        CHECK_OK(lm_cuda_random(k.kind, a, 7, 100, k.p0, k.p1));
        CHECK_OK(lm_cuda_random(k.kind, b, 7, 101, k.p0, k.p1));
        int per = k.kind == LM_RANDOM_NORMAL ? 2 : 4;
        CHECK(!memcmp(lm_tensor_f32(a) + per, lm_tensor_f32(b), sizeof(float) * (401 - per)));
    }
    /* a different seed changes the numbers */
    Pool pool;
    lm_tensor *a = make(pool, {64}), *b = make(pool, {64});
    CHECK_OK(lm_cuda_random(LM_RANDOM_UNIFORM, a, 1, 0, 0, 1));
    CHECK_OK(lm_cuda_random(LM_RANDOM_UNIFORM, b, 2, 0, 0, 1));
    CHECK(memcmp(lm_tensor_f32(a), lm_tensor_f32(b), sizeof(float) * 64) != 0);
}

/* A Bernoulli draw exactly at the probability: u < p is false when the 24
 * random bits w of an element equal p 2^24, true when p 2^24 is w + 0.5,
 * false again at w - 0.5 (the cut is ceil(p 2^24)). Element 150 of 200 lies
 * in the CPU's 16-block vector path. */
void test_bernoulli_cut(void) {
    const uint64_t seed = 11, offset = 3;
    const int64_t n = 200, e = 150;
    uint32_t w = lm_philox4x32(offset + e / 4, seed).v[e % 4] >> 8;
    for (double half : {0.0, 0.5, -0.5}) {
        Pool pool;
        double p = (w + half) / 16777216.0;
        lm_tensor *c = make(pool, {n}), *g = make(pool, {n});
        CHECK_OK(cpu()->random(LM_RANDOM_BERNOULLI, c, seed, offset, p, 1.0));
        CHECK_OK(lm_cuda_random(LM_RANDOM_BERNOULLI, g, seed, offset, p, 1.0));
        char what[64];
        snprintf(what, sizeof what, "Bernoulli at its cut (w %+g)", half);
        CHECK(differing(what, g, c) == 0);
        CHECK(lm_tensor_f32(g)[e] == (half > 0 ? 1.0f : 0.0f));
    }
}

/* Summary statistics of a long fill, so that a kernel which repeated or
 * skipped words in the same way as the reference would still show. */
void test_statistics(void) {
    Pool pool;
    const int64_t n = 40001;
    lm_tensor *t = make(pool, {n});
    for (const Kind &k : kinds) {
        CHECK_OK(lm_cuda_random(k.kind, t, 2024, 17, k.p0, k.p1));
        double sum = 0, sq = 0, lo = INFINITY, hi = -INFINITY;
        for (int64_t i = 0; i < n; i++) {
            double v = lm_tensor_f32(t)[i];
            sum += v, sq += v * v, lo = fmin(lo, v), hi = fmax(hi, v);
        }
        double mean = sum / n, var = sq / n - mean * mean;
        if (k.kind == LM_RANDOM_UNIFORM) {
            double w = k.p1 - k.p0;
            CHECK(lo >= k.p0 && hi < k.p1);
            CHECK_NEAR(mean, (k.p0 + k.p1) / 2, 0.02 * w); /* 4 standard errors is 0.006 w */
            CHECK_NEAR(var, w * w / 12, 0.02 * w * w / 12);
        } else if (k.kind == LM_RANDOM_NORMAL) {
            CHECK_NEAR(mean, k.p0, 0.02 * k.p1);
            CHECK_NEAR(sqrt(var), k.p1, 0.02 * k.p1);
        } else {
            double p = k.p0, freq = k.p1 > 0 ? mean / k.p1 : 0;
            CHECK(lo >= 0 && hi <= k.p1);
            CHECK_NEAR(freq, p, 4 * sqrt(p * (1 - p) / n) + 1e-12);
        }
    }
}

/* ---- normals' ties ---------------------------------------------------------------------- */

/* Whether a normal draw's float could change if log were off by one ulp
 * and cos by two, as CUDA's double log and cos may be (the CUDA math
 * library's stated bounds), while every other operation is IEEE-rounded. */
bool near_tie(uint32_t w1, uint32_t w2, double mean, double std) {
    double u1 = ((w1 >> 8) + 1.0) * (1.0 / 16777216.0), u2 = (w2 >> 8) * (1.0 / 16777216.0);
    double l0 = log(u1), c0 = cos(6.283185307179586 * u2);
    float want = (float)(mean + std * sqrt(-2.0 * l0) * c0);
    for (int dl = -1; dl <= 1; dl++)
        for (int dc = -2; dc <= 2; dc++) {
            double l = l0, c = c0;
            for (int s = 0; s < abs(dl); s++) l = nextafter(l, dl * INFINITY);
            for (int s = 0; s < abs(dc); s++) c = nextafter(c, dc * INFINITY);
            if (l > 0 || c > 1 || c < -1) continue; /* outside the functions' ranges */
            if (bits((float)(mean + std * sqrt(-2.0 * l) * c)) != bits(want)) return true;
        }
    return false;
}

void test_normal_ties(void) {
    int64_t draws = 0, ties = 0;
    for (uint64_t seed : seeds)
        for (uint64_t block = 0; block < (1 << 16); block++) {
            lm_philox_block b = lm_philox4x32(block, seed);
            for (int pair = 0; pair < 2; pair++, draws++)
                ties += near_tie(b.v[2 * pair], b.v[2 * pair + 1], 0.0, 1.0);
        }
    printf("normal draws whose float a GPU's log or cos could change: %lld of %lld\n",
           (long long)ties, (long long)draws);
    CHECK(ties == 0); /* about 2^-26 each: none expected among 2^18 */
}

/* ---- dropout ------------------------------------------------------------------------------ */

void test_dropout(void) {
    for (double keep : {0.5, 0.9, 0.1, 1.0})
        for (int64_t n : {1, 3, 7, 65, 1001, 4099})
            for (uint64_t offset : {0ull, 3ull, 0xffffffffull}) {
                Pool pool;
                lm_tensor *x = make(pool, {n});
                float *px = lm_tensor_f32(x);
                uint32_t s = 99;
                for (int64_t i = 0; i < n; i++) {
                    s = s * 1664525u + 1013904223u;
                    px[i] = ((float)(s >> 8) / 8388608.0f - 1.0f) * 3.0f;
                }
                if (n > 3) px[1] = INFINITY, px[2] = NAN, px[3] = -0.0f; /* inf * 0 is NaN */
                lm_tensor *co = make(pool, {n}), *cm = make(pool, {n}), *go = make(pool, {n}),
                          *gm = make(pool, {n}), *ref = make(pool, {n});
                CHECK_OK(cpu()->dropout(co, cm, x, 5, offset, keep));
                CHECK_OK(lm_cuda_dropout(go, gm, x, 5, offset, keep));
                char what[96];
                snprintf(what, sizeof what, "dropout keep %g of %lld at offset %llx", keep,
                         (long long)n, (unsigned long long)offset);
                CHECK(differing(std::string(what) + ": mask", gm, cm) == 0);
                CHECK(differing(std::string(what) + ": output", go, co) == 0);
                /* the mask as a Bernoulli fill draws it, and out = x * mask */
                CHECK_OK(cpu()->random(LM_RANDOM_BERNOULLI, ref, 5, offset, keep, 1.0 / keep));
                CHECK(differing(std::string(what) + ": mask vs Bernoulli fill", gm, ref) == 0);
                int64_t wrong = 0;
                for (int64_t i = 0; i < n; i++)
                    wrong += bits(lm_tensor_f32(go)[i]) != bits(px[i] * lm_tensor_f32(gm)[i]);
                CHECK(wrong == 0);
            }
}

} // namespace

TEST_MAIN(test_contiguous, test_strided, test_offsets_shift, test_bernoulli_cut, test_statistics,
          test_normal_ties, test_dropout)
