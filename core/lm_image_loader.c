#include "lm_image_loader.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <stb_image.h>

#include "lm_fpenv.h"
#include "lm_image.h"

#define REASON_MAX 160

struct lm_image_loader {
    char **paths;
    int64_t count;
    int channels;
    int64_t h, w;
    int nworkers;
    pthread_t *workers;

    pthread_mutex_t mu;
    pthread_cond_t work, done;
    bool stop;
    /* the batch in flight */
    lm_tensor *batch;       /* NULL when none */
    int64_t *indices, n;    /* samples of the batch */
    int64_t next, finished; /* next item to take, items completed */
    int64_t capacity;       /* of indices and reasons */
    char (*reasons)[REASON_MAX];
};

/* Decodes one file into `row` ([channels, h, w]); returns false with
 * `reason` filled when the file cannot be read or decoded. */
static bool decode_into(const lm_image_loader *l, const char *path, float *row, char *reason) {
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        snprintf(reason, REASON_MAX, "cannot open it");
        return false;
    }
    int w = 0, h = 0, stored = 0, c = l->channels;
    bool wide;
    void *px = lm_image_read_pixels(fp, NULL, 0, &w, &h, &stored, c, &wide);
    fclose(fp);
    if (!px) {
        snprintf(reason, REASON_MAX, "cannot decode it: %s", lm_image_decode_reason());
        return false;
    }
    int64_t plane = (int64_t)w * h;
    bool same = h == l->h && w == l->w;
    float *planar = same ? row : malloc((size_t)(plane * c) * sizeof *planar);
    bool ok = planar != NULL;
    if (ok) lm_image_planes(planar, px, wide, w, h, c);
    if (ok && !same) ok = lm_image_resize_planes(planar, c, h, w, row, (int)l->h, (int)l->w);
    if (!ok) snprintf(reason, REASON_MAX, "out of memory decoding it");
    if (!same) free(planar);
    free(px);
    return ok;
}

static void *worker_main(void *arg) {
    lm_image_loader *l = arg;
    pthread_mutex_lock(&l->mu);
    for (;;) {
        while (!l->stop && (!l->batch || l->next >= l->n)) pthread_cond_wait(&l->work, &l->mu);
        if (l->stop) break;
        int64_t i = l->next++;
        float *row = lm_tensor_f32(l->batch) + i * l->channels * l->h * l->w;
        const char *path = l->paths[l->indices[i]];
        char *reason = l->reasons[i];
        pthread_mutex_unlock(&l->mu);
        lm_fpenv_sync(); /* resizing computes in floats: the mode of Lumen's other threads */
        reason[0] = '\0';
        if (!decode_into(l, path, row, reason))
            memset(row, 0, (size_t)(l->channels * l->h * l->w) * sizeof *row);
        pthread_mutex_lock(&l->mu);
        if (++l->finished == l->n) pthread_cond_signal(&l->done);
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

lm_status lm_image_loader_new(lm_image_loader **out, const char *const *paths, int64_t count,
                              int channels, int64_t h, int64_t w, int workers) {
    *out = NULL;
    if (count < 1) return lm_fail(LM_ERR_ARG, "image loader: no files");
    if (channels < 1 || channels > 4)
        return lm_fail(LM_ERR_ARG, "image loader: channels must be 1-4, got %d", channels);
    if (h < 1 || w < 1 || h > 16384 || w > 16384)
        return lm_fail(LM_ERR_ARG, "image loader: size %lld x %lld is out of range", (long long)h,
                       (long long)w);
    if (workers < 1 || workers > 256)
        return lm_fail(LM_ERR_ARG, "image loader: workers must be 1-256, got %d", workers);
    lm_image_loader *l = calloc(1, sizeof *l);
    if (!l) return lm_fail(LM_ERR_MEMORY, "image loader: out of memory");
    l->channels = channels, l->h = h, l->w = w;
    l->paths = calloc((size_t)count, sizeof *l->paths);
    l->workers = calloc((size_t)workers, sizeof *l->workers);
    if (!l->paths || !l->workers) goto oom;
    for (int64_t i = 0; i < count; i++) {
        size_t n = strlen(paths[i]) + 1;
        if (!(l->paths[i] = malloc(n))) goto oom;
        memcpy(l->paths[i], paths[i], n);
        l->count = i + 1;
    }
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->work, NULL);
    pthread_cond_init(&l->done, NULL);
    for (int i = 0; i < workers; i++) {
        if (pthread_create(&l->workers[i], NULL, worker_main, l) != 0) {
            lm_image_loader_free(l);
            return lm_fail(LM_ERR_STATE, "image loader: cannot start worker threads");
        }
        l->nworkers = i + 1;
    }
    *out = l;
    return LM_OK;
oom:
    for (int64_t i = 0; i < l->count; i++) free(l->paths[i]);
    free(l->paths);
    free(l->workers);
    free(l);
    return lm_fail(LM_ERR_MEMORY, "image loader: out of memory");
}

lm_status lm_image_loader_start(lm_image_loader *l, const int64_t *indices, int64_t n) {
    if (l->batch) return lm_fail(LM_ERR_STATE, "image loader: a batch is already in flight");
    if (n < 1) return lm_fail(LM_ERR_ARG, "image loader: a batch needs at least one sample");
    for (int64_t i = 0; i < n; i++)
        if (indices[i] < 0 || indices[i] >= l->count)
            return lm_fail(LM_ERR_ARG, "image loader: sample %lld is out of range (%lld files)",
                           (long long)indices[i] + 1, (long long)l->count);
    if (n > l->capacity) {
        int64_t *idx = realloc(l->indices, (size_t)n * sizeof *idx);
        if (idx) l->indices = idx;
        char(*reasons)[REASON_MAX] = realloc(l->reasons, (size_t)n * sizeof *reasons);
        if (reasons) l->reasons = reasons;
        if (!idx || !reasons) return lm_fail(LM_ERR_MEMORY, "image loader: out of memory");
        l->capacity = n;
    }
    lm_tensor *batch = NULL;
    int64_t shape[4] = {n, l->channels, l->h, l->w};
    LM_TRY(lm_tensor_new(&batch, LM_FLOAT32, LM_CPU, 4, shape));
    pthread_mutex_lock(&l->mu);
    memcpy(l->indices, indices, (size_t)n * sizeof *indices);
    l->n = n, l->next = 0, l->finished = 0;
    l->batch = batch;
    pthread_cond_broadcast(&l->work);
    pthread_mutex_unlock(&l->mu);
    return LM_OK;
}

/* Blocks until the workers have completed every item of the batch. */
static void wait_batch(lm_image_loader *l) {
    pthread_mutex_lock(&l->mu);
    while (l->batch && l->finished < l->n) pthread_cond_wait(&l->done, &l->mu);
    pthread_mutex_unlock(&l->mu);
}

lm_status lm_image_loader_finish(lm_image_loader *l, lm_tensor **batch, bool *failed) {
    *batch = NULL;
    if (!l->batch) return lm_fail(LM_ERR_STATE, "image loader: no batch was started");
    wait_batch(l);
    lm_tensor *b = l->batch;
    l->batch = NULL;
    for (int64_t i = 0; i < l->n; i++) {
        bool bad = l->reasons[i][0] != '\0';
        if (failed) {
            failed[i] = bad;
        } else if (bad) {
            lm_tensor_release(b);
            return lm_fail(LM_ERR_FORMAT, "image '%s': %s", l->paths[l->indices[i]], l->reasons[i]);
        }
    }
    *batch = b;
    return LM_OK;
}

const char *lm_image_loader_reason(const lm_image_loader *l, int64_t i) {
    return i >= 0 && i < l->n && l->reasons ? l->reasons[i] : "";
}

void lm_image_loader_free(lm_image_loader *l) {
    if (!l) return;
    wait_batch(l);
    pthread_mutex_lock(&l->mu);
    l->stop = true;
    pthread_cond_broadcast(&l->work);
    pthread_mutex_unlock(&l->mu);
    for (int i = 0; i < l->nworkers; i++) pthread_join(l->workers[i], NULL);
    lm_tensor_release(l->batch);
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->work);
    pthread_cond_destroy(&l->done);
    for (int64_t i = 0; i < l->count; i++) free(l->paths[i]);
    free(l->paths);
    free(l->workers);
    free(l->indices);
    free(l->reasons);
    free(l);
}
