/* Counter-based random fills. One Philox block gives four 32-bit words:
 * uniform and Bernoulli element i uses word i % 4 of block offset + i / 4;
 * normal element i uses words (2 (i % 2), 2 (i % 2) + 1) of block
 * offset + i / 2 (Box-Muller, cosine branch). */
#include <math.h>

#include "cpu_backend.h"
#include "lm_iter.h"
#include "lm_philox.h"
#include "lm_threads.h"

typedef struct {
    lm_iter it;
    lm_tensor *out;
    lm_random_kind kind;
    uint64_t seed, offset;
    double p0, p1;
    bool contiguous;
} random_job;

static void random_range_scalar(random_job *j, int64_t begin, int64_t end);

/* Box-Muller in double from two 24-bit uniforms, so that every machine
 * rounds to the same float (the CUDA backend too, but for rare ties: its
 * double log and cos may differ from glibc's in the last bit). */
static inline float normal_from(uint32_t w1, uint32_t w2, double mean, double std) {
    double u1 = ((w1 >> 8) + 1.0) * (1.0 / 16777216.0); /* (0, 1] */
    double u2 = (w2 >> 8) * (1.0 / 16777216.0);
    return (float)(mean + std * sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

/* A Bernoulli draw's cut on 24 random bits; other kinds have none (their p0,
 * a uniform's lower bound, may be negative: no conversion to unsigned). */
static uint32_t bernoulli_threshold(const random_job *j) {
    if (j->kind != LM_RANDOM_BERNOULLI) return 0;
    return lm_bernoulli_threshold(j->p0);
}

/* Contiguous uniform/Bernoulli fill of elements [e0, e1): whole Philox blocks
 * in a branch-free loop the compiler vectorises (32x32->64-bit multiplies). */
static void fill_blocks(const random_job *j, float *o, uint64_t e0, uint64_t e1) {
    bool bernoulli = j->kind == LM_RANDOM_BERNOULLI;
    /* u < p  <=>  (bits >> 8) < ceil(p * 2^24), exactly, since u = (bits >> 8) / 2^24 */
    uint32_t threshold = bernoulli_threshold(j);
    float value = (float)j->p1, lo = (float)j->p0, span = (float)(j->p1 - j->p0);
    uint64_t b0 = e0 / 4, b1 = e1 / 4, b = b0;
    uint32_t words[4][LM_PHILOX_LANES];
    /* one loop per kind, so each vectorises without a select on the kind */
    if (bernoulli) {
        float cut = (float)threshold; /* <= 2^24: exact */
        for (; b + LM_PHILOX_LANES <= b1; b += LM_PHILOX_LANES) {
            lm_philox4x32_lanes(j->offset + b, j->seed, words);
            float *dst = o + (b * 4 - e0);
            for (int l = 0; l < LM_PHILOX_LANES; l++)
                for (int k = 0; k < 4; k++) /* 24-bit integers compare exactly as floats */
                    dst[4 * l + k] = (float)(words[k][l] >> 8) < cut ? value : 0.0f;
        }
    } else {
        for (; b + LM_PHILOX_LANES <= b1; b += LM_PHILOX_LANES) {
            lm_philox4x32_lanes(j->offset + b, j->seed, words);
            float *dst = o + (b * 4 - e0);
            for (int l = 0; l < LM_PHILOX_LANES; l++)
                for (int k = 0; k < 4; k++)
                    dst[4 * l + k] = lo + span * ((float)(words[k][l] >> 8) * (1.0f / 16777216.0f));
        }
    }
    for (; b < b1; b++) {
        lm_philox_block blk = lm_philox4x32(j->offset + b, j->seed);
        float *dst = o + (b * 4 - e0);
        for (int k = 0; k < 4; k++) {
            uint32_t bits = blk.v[k] >> 8;
            dst[k] = bernoulli ? (bits < threshold ? value : 0.0f)
                               : lo + span * ((float)bits * (1.0f / 16777216.0f));
        }
    }
}

/* Contiguous uniform/Bernoulli elements [e0, e1) of o one by one: the
 * arithmetic of fill_blocks, for the partial blocks at a span's ends. */
static void fill_elements(const random_job *j, float *o, uint64_t e0, uint64_t e1) {
    bool bernoulli = j->kind == LM_RANDOM_BERNOULLI;
    uint32_t threshold = bernoulli_threshold(j);
    float value = (float)j->p1, lo = (float)j->p0, span = (float)(j->p1 - j->p0);
    for (uint64_t e = e0; e < e1; e++) {
        uint32_t bits = lm_philox4x32(j->offset + e / 4, j->seed).v[e % 4] >> 8;
        o[e] = bernoulli ? (bits < threshold ? value : 0.0f)
                         : lo + span * ((float)bits * (1.0f / 16777216.0f));
    }
}

/* Contiguous uniform/Bernoulli elements [begin, end) of the array at o:
 * whole blocks in the middle, the partial ones at the ends one by one. */
static void fill_span(const random_job *j, float *o, uint64_t begin, uint64_t end) {
    uint64_t first = (begin + 3) / 4 * 4, last = end / 4 * 4;
    if (first >= last) first = last = end; /* no whole block: all one by one */
    if (first < last) fill_blocks(j, o + first, first, last);
    fill_elements(j, o, begin, first);
    fill_elements(j, o, last, end);
}

static void random_range(void *ctx, int64_t begin, int64_t end) {
    random_job *j = ctx;
    if (j->contiguous && j->kind != LM_RANDOM_NORMAL)
        fill_span(j, lm_tensor_f32(j->out), (uint64_t)begin, (uint64_t)end);
    else
        random_range_scalar(j, begin, end);
}

static void random_range_scalar(random_job *j, int64_t begin, int64_t end) {
    const lm_iter *it = &j->it;
    int64_t so = it->strides[0][it->ndim - 1], pos = begin;
    LM_ITER_FOR(it, begin, end, off, n) {
        float *o = lm_tensor_f32(j->out) + off[0];
        int per_block = j->kind == LM_RANDOM_NORMAL ? 2 : 4;
        lm_philox_block b = {{0, 0, 0, 0}};
        uint64_t have = UINT64_MAX; /* the block now in b */
        /* the same arithmetic as fill_blocks, so both paths give the same bits */
        uint32_t threshold = bernoulli_threshold(j);
        float value = (float)j->p1, lo = (float)j->p0, span = (float)(j->p1 - j->p0);
        for (int64_t i = 0; i < n; i++) {
            uint64_t e = (uint64_t)(pos + i), block = e / per_block;
            int lane = (int)(e % per_block);
            if (block != have) {
                b = lm_philox4x32(j->offset + block, j->seed);
                have = block;
            }
            float v;
            switch (j->kind) {
            case LM_RANDOM_UNIFORM:
                v = lo + span * ((float)(b.v[lane] >> 8) * (1.0f / 16777216.0f));
                break;
            case LM_RANDOM_NORMAL:
                v = normal_from(b.v[2 * lane], b.v[2 * lane + 1], j->p0, j->p1);
                break;
            default:
                v = (b.v[lane] >> 8) < threshold ? value : 0.0f;
                break;
            }
            o[i * so] = v;
        }
        pos += n;
    }
}

/* Each chunk draws its part of the mask and multiplies while it is in cache. */
typedef struct {
    random_job r;
    float *out;
    const float *x;
} dropout_job;

static void dropout_range(void *ctx, int64_t begin, int64_t end) {
    dropout_job *d = ctx;
    random_range(&d->r, begin, end);
    const float *m = lm_tensor_f32(d->r.out);
    for (int64_t i = begin; i < end; i++) d->out[i] = d->x[i] * m[i];
}

lm_status lm_cpu_dropout(lm_tensor *out, lm_tensor *mask, const lm_tensor *x, uint64_t seed,
                         uint64_t offset, double keep) {
    dropout_job d = {.r = {.out = mask,
                           .kind = LM_RANDOM_BERNOULLI,
                           .seed = seed,
                           .offset = offset,
                           .p0 = keep,
                           .p1 = 1.0 / keep,
                           .contiguous = true},
                     .out = lm_tensor_f32(out),
                     .x = lm_tensor_f32(x)};
    lm_iter_init_ordered(&d.r.it, mask);
    lm_parallel_for_balanced(d.r.it.numel, LM_GRAIN_ELEMENTWISE / 8, dropout_range, &d);
    return LM_OK;
}

void lm_cpu_dropout_mask_span(float *mask, uint64_t seed, uint64_t offset, double keep,
                              int64_t begin, int64_t end) {
    random_job r = {.kind = LM_RANDOM_BERNOULLI,
                    .seed = seed,
                    .offset = offset,
                    .p0 = keep,
                    .p1 = 1.0 / keep,
                    .contiguous = true};
    fill_span(&r, mask, (uint64_t)begin, (uint64_t)end); /* as random_range draws it */
}

void lm_cpu_dropout_span(float *out, float *mask, const float *x, uint64_t seed, uint64_t offset,
                         double keep, int64_t begin, int64_t end) {
    lm_cpu_dropout_mask_span(mask, seed, offset, keep, begin, end);
    for (int64_t i = begin; i < end; i++) out[i] = x[i] * mask[i];
}

lm_status lm_cpu_random(lm_random_kind kind, lm_tensor *out, uint64_t seed, uint64_t offset,
                        double p0, double p1) {
    random_job j = {.out = out,
                    .kind = kind,
                    .seed = seed,
                    .offset = offset,
                    .p0 = p0,
                    .p1 = p1,
                    .contiguous = lm_tensor_is_contiguous(out)};
    lm_iter_init_ordered(&j.it, out); /* element i is always counter i */
    lm_parallel_for_balanced(j.it.numel, LM_GRAIN_ELEMENTWISE / 8, random_range, &j);
    return LM_OK;
}
