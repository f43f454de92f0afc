/* Collectives between processes: MPI, or a world of one (lm_dist.h). */
#include "lm_dist.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lm_ops.h"

#ifdef LUMEN_HAVE_MPI
#include <mpi.h>
#endif

enum { NOT_STARTED, WORLD_OF_ONE, RUNNING, FINISHED, FAILED };
static int state = NOT_STARTED;
static char failure[256]; /* why starting MPI failed: MPI may not be started twice */
static int world_rank = 0, world_size = 1;
static double comm_seconds, comm_bytes;
static char backend_name[320] = "world of one (not started yet)";

bool lm_dist_built_with_mpi(void) {
#ifdef LUMEN_HAVE_MPI
    return true;
#else
    return false;
#endif
}

/* How many processes a launcher started: 0 when none did, -1 when one did
 * but did not say how many (PMIx under srun). */
static int launched_size(void) {
    static const char *const sizes[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE"};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        const char *v = getenv(sizes[i]);
        if (v && *v) return atoi(v);
    }
    if (getenv("PMIX_RANK")) return -1;
    return 0;
}

#ifdef LUMEN_HAVE_MPI
static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void free_bucket(void);

static void finalize_at_exit(void) {
    free_bucket();
    if (state != RUNNING) return;
    state = FINISHED;
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Finalize();
}

static lm_status mpi_fail(int rc, const char *what) {
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, msg, &len) != MPI_SUCCESS) snprintf(msg, sizeof msg, "error %d", rc);
    return lm_fail(LM_ERR_DEVICE, "lm.dist: %s failed on rank %d: %s", what, world_rank, msg);
}
#define MPI_TRY(call, what)                                                                        \
    do {                                                                                           \
        int rc_ = (call);                                                                          \
        if (rc_ != MPI_SUCCESS) return mpi_fail(rc_, what);                                        \
    } while (0)
#endif

lm_status lm_dist_init(void) {
    if (state != NOT_STARTED) {
        if (state == FINISHED)
            return lm_fail(LM_ERR_STATE, "lm.dist: MPI has already been finalised");
        if (state == FAILED) return lm_fail(LM_ERR_DEVICE, "%s", failure);
        return LM_OK;
    }
    int launched = launched_size();
#ifdef LUMEN_HAVE_MPI
    if (launched == 0) {
        state = WORLD_OF_ONE;
        snprintf(backend_name, sizeof backend_name, "world of one (not started by mpirun or srun)");
        return LM_OK;
    }
    int initialized = 0, provided = 0;
    MPI_Initialized(&initialized);
    if (!initialized) {
        /* only the main thread calls MPI; the thread pool never does */
        int rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
        if (rc != MPI_SUCCESS) {
            snprintf(failure, sizeof failure, "lm.dist: MPI_Init failed (error %d)", rc);
            state = FAILED;
            return lm_fail(LM_ERR_DEVICE, "%s", failure);
        }
    }
    /* errors come back as codes, turned into Lua errors naming the rank */
    int rc = MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    if (rc == MPI_SUCCESS) rc = MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
    if (rc == MPI_SUCCESS) rc = MPI_Comm_size(MPI_COMM_WORLD, &world_size);
    if (rc != MPI_SUCCESS) {
        snprintf(failure, sizeof failure,
                 "lm.dist: MPI started but its world is unusable (error %d)", rc);
        state = FAILED;
        world_rank = 0, world_size = 1;
        return lm_fail(LM_ERR_DEVICE, "%s", failure);
    }
    state = RUNNING;
    if (!initialized) atexit(finalize_at_exit);
    char version[MPI_MAX_LIBRARY_VERSION_STRING];
    int len = 0;
    MPI_Get_library_version(version, &len);
    char *nl = strpbrk(version, ",\n");
    if (nl) *nl = 0;
    snprintf(backend_name, sizeof backend_name, "mpi (%s), %d processes", version, world_size);
    return LM_OK;
#else
    if (launched > 1 || launched < 0) {
        return lm_fail(LM_ERR_STATE,
                       "lm.dist: Lumen was built without MPI, but a launcher (mpirun or srun) "
                       "started this script as one of several processes, which would each train "
                       "alone. Install libopenmpi-dev and rebuild (-DLUMEN_MPI=ON), or run one "
                       "process");
    }
    state = WORLD_OF_ONE;
    snprintf(backend_name, sizeof backend_name, "world of one (Lumen was built without MPI)");
    return LM_OK;
#endif
}

const char *lm_dist_backend(void) {
    return backend_name;
}
int lm_dist_rank(void) {
    return world_rank;
}
int lm_dist_size(void) {
    return world_size;
}
bool lm_dist_active(void) {
    return state == RUNNING;
}
double lm_dist_comm_seconds(void) {
    return comm_seconds;
}
double lm_dist_comm_bytes(void) {
    return comm_bytes;
}

void lm_dist_abort(int code) {
#ifdef LUMEN_HAVE_MPI
    if (state == RUNNING && world_size > 1) MPI_Abort(MPI_COMM_WORLD, code ? code : 1);
#else
    (void)code;
#endif
}

/* ---- checks shared by both worlds ---------------------------------------------------------- */

static lm_status check_tensor(const char *fn, const lm_tensor *t) {
    if (t->dtype != LM_FLOAT32 && t->dtype != LM_INT32)
        return lm_fail(LM_ERR_ARG, "%s: float32 and int32 tensors only", fn);
    return LM_OK;
}

static lm_status check_op(const char *fn, lm_dtype dtype, lm_dist_op op) {
    if ((unsigned)op > LM_DIST_MIN)
        return lm_fail(LM_ERR_ARG, "%s: unknown reduction %d", fn, (int)op);
    if (op == LM_DIST_MEAN && dtype == LM_INT32)
        return lm_fail(LM_ERR_ARG,
                       "%s: 'mean' of an int32 tensor: reduce with 'sum' and divide "
                       "(or convert to float32 first)",
                       fn);
    return LM_OK;
}

static lm_status check_root(const char *fn, int root) {
    if (root < 0 || root >= world_size)
        return lm_fail(LM_ERR_ARG, "%s: root %d is not a rank (0..%d)", fn, root, world_size - 1);
    return LM_OK;
}

static lm_status check_list(const char *fn, lm_tensor *const *ts, int n) {
    for (int i = 0; i < n; i++) {
        LM_TRY(check_tensor(fn, ts[i]));
        if (ts[i]->dtype != ts[0]->dtype)
            return lm_fail(LM_ERR_ARG, "%s: tensor %d is %s, tensor 1 %s: one dtype per call", fn,
                           i + 1, lm_dtype_name(ts[i]->dtype), lm_dtype_name(ts[0]->dtype));
    }
    return LM_OK;
}

#ifdef LUMEN_HAVE_MPI
/* ---- MPI ------------------------------------------------------------------------------------- */

/* ---- host staging: collectives run on contiguous host memory ------------------------------- */

/* A contiguous CPU tensor with t's elements: t itself (retained) when it is one. */
static lm_status to_host_tensor(lm_tensor **out, lm_tensor *t) {
    if (t->storage->device == LM_CPU) return lm_contiguous(out, t);
    LM_TRY(lm_tensor_new(out, t->dtype, LM_CPU, t->ndim, t->shape));
    lm_status s = lm_to_host(t, lm_tensor_f32(*out));
    if (s != LM_OK) lm_tensor_release(*out), *out = NULL;
    return s;
}

/* Writes the host copy back into t (nothing to copy when it is t itself). */
static lm_status write_back(lm_tensor *t, lm_tensor *host) {
    if (host != t) LM_TRY(lm_copy_(t, host));
    t->storage->version++;
    return LM_OK;
}

/* Copies t's number of elements from host memory into t, any device and strides. */
static lm_status write_elements(lm_tensor *t, const void *src) {
    if (t->storage->device == LM_CPU && lm_tensor_is_contiguous(t)) {
        memcpy(lm_tensor_f32(t), src, (size_t)lm_tensor_numel(t) * lm_dtype_size(t->dtype));
        t->storage->version++;
        return LM_OK;
    }
    lm_tensor *tmp;
    LM_TRY(lm_from_host(&tmp, t->dtype, t->ndim, t->shape, src));
    lm_status s = write_back(t, tmp);
    lm_tensor_release(tmp);
    return s;
}

static void divide(void *data, int64_t n, int by) {
    float *f = data, inv = 1.0f / (float)by;
    if ((by & (by - 1)) == 0) /* a power of two: multiplying is exact, the same as dividing */
        for (int64_t i = 0; i < n; i++) f[i] *= inv;
    else
        for (int64_t i = 0; i < n; i++) f[i] /= (float)by;
}

enum { SIG_LEN = 4 + LM_MAX_DIMS };
enum {
    K_BARRIER = 1,
    K_BROADCAST,
    K_ALLREDUCE,
    K_GATHER,
    K_BROADCAST_MANY,
    K_ALLREDUCE_MANY,
    K_GATHER_ROOT
};
static const char *const kind_names[] = {"?",
                                         "barrier",
                                         "broadcast_",
                                         "allreduce_",
                                         "all_gather",
                                         "broadcast_parameters",
                                         "average_gradients/allreduce list",
                                         "gather"};

static MPI_Datatype mpi_type(lm_dtype d) {
    return d == LM_INT32 ? MPI_INT32_T : MPI_FLOAT;
}

static MPI_Op mpi_op(lm_dist_op op) {
    return op == LM_DIST_MAX ? MPI_MAX : op == LM_DIST_MIN ? MPI_MIN : MPI_SUM;
}

/* Every rank must make the same call with the same kind of tensor: one
 * small all-reduce of (sig, -sig) under max finds any difference on every
 * rank at once, so a mismatch is an error everywhere instead of a hang.
 * `local` is this rank's own verdict on its arguments, exchanged with the
 * signature: a rank that refused its arguments returns that error, and the
 * others learn of it and fail too, instead of waiting in the collective. */
static lm_status check_same(const char *fn, const int64_t *sig, lm_status local) {
    int64_t buf[2 * SIG_LEN + 1];
    for (int i = 0; i < SIG_LEN; i++) buf[i] = sig[i], buf[SIG_LEN + i] = -sig[i];
    buf[2 * SIG_LEN] = local != LM_OK;
    MPI_TRY(MPI_Allreduce(MPI_IN_PLACE, buf, 2 * SIG_LEN + 1, MPI_INT64_T, MPI_MAX, MPI_COMM_WORLD),
            fn);
    if (local != LM_OK) return local; /* its message is still the one set */
    if (buf[2 * SIG_LEN])
        return lm_fail(LM_ERR_ARG,
                       "%s: another rank's arguments were refused (its error says why); this "
                       "is rank %d, stopping with it",
                       fn, world_rank);
    bool same = true;
    for (int i = 0; i < SIG_LEN; i++) same = same && buf[i] == -buf[SIG_LEN + i];
    if (same) return LM_OK;
    if (buf[0] != -buf[SIG_LEN])
        return lm_fail(LM_ERR_STATE,
                       "%s: rank %d called %s while another rank called %s: every rank must "
                       "make the same collective calls in the same order",
                       fn, world_rank, kind_names[sig[0]],
                       kind_names[sig[0] == buf[0] ? -buf[SIG_LEN] : buf[0]]);
    return lm_fail(
        LM_ERR_SHAPE,
        "%s: the ranks passed different tensors or arguments (dtype, shape, root, "
        "reduction or bucket size); every rank must pass the same kind of tensor (this is rank %d)",
        fn, world_rank);
}

static void tensor_sig(int64_t *sig, int kind, const lm_tensor *t, int64_t extra) {
    memset(sig, 0, SIG_LEN * sizeof *sig);
    sig[0] = kind, sig[1] = t ? t->dtype : 0, sig[2] = t ? t->ndim : 0, sig[3] = extra;
    for (int d = 0; t && d < t->ndim; d++) sig[4 + d] = t->shape[d];
}

/* MPI counts are ints: large buffers go in pieces. */
#define MAX_COUNT ((int64_t)1 << 30)

static lm_status allreduce_buffer(const char *fn, void *data, int64_t n, lm_dtype dtype,
                                  lm_dist_op op) {
    char *p = data;
    for (int64_t done = 0; done < n;) {
        int count = (int)(n - done < MAX_COUNT ? n - done : MAX_COUNT);
        MPI_TRY(MPI_Allreduce(MPI_IN_PLACE, p + done * 4, count, mpi_type(dtype), mpi_op(op),
                              MPI_COMM_WORLD),
                fn);
        done += count;
    }
    if (op == LM_DIST_MEAN) divide(data, n, world_size);
    comm_bytes += (double)n * 4;
    return LM_OK;
}

static lm_status broadcast_buffer(const char *fn, void *data, int64_t n, lm_dtype dtype, int root) {
    char *p = data;
    for (int64_t done = 0; done < n;) {
        int count = (int)(n - done < MAX_COUNT ? n - done : MAX_COUNT);
        MPI_TRY(MPI_Bcast(p + done * 4, count, mpi_type(dtype), root, MPI_COMM_WORLD), fn);
        done += count;
    }
    comm_bytes += (double)n * 4;
    return LM_OK;
}
#endif

/* ---- the collectives --------------------------------------------------------------------------
 */

static bool many_ranks(void) {
    return state == RUNNING && world_size > 1;
}

lm_status lm_dist_refuse(const char *fn) {
    LM_TRY(lm_dist_init());
    if (!many_ranks()) return LM_OK;
#ifdef LUMEN_HAVE_MPI
    int64_t sig[SIG_LEN];
    tensor_sig(sig, K_BARRIER, NULL, 0);
    return check_same(fn, sig, LM_ERR_ARG) == LM_ERR_ARG ? LM_OK : LM_ERR_STATE;
#else
    (void)fn;
    return LM_OK;
#endif
}

lm_status lm_dist_barrier(void) {
    LM_TRY(lm_dist_init());
    if (!many_ranks()) return LM_OK;
#ifdef LUMEN_HAVE_MPI
    double t0 = now();
    int64_t sig[SIG_LEN];
    tensor_sig(sig, K_BARRIER, NULL, 0);
    LM_TRY(check_same("barrier", sig, LM_OK));
    MPI_TRY(MPI_Barrier(MPI_COMM_WORLD), "barrier");
    comm_seconds += now() - t0;
#endif
    return LM_OK;
}

lm_status lm_dist_broadcast_(lm_tensor *t, int root) {
    LM_TRY(lm_dist_init());
    lm_status local = check_tensor("broadcast_", t);
    if (local == LM_OK) local = check_root("broadcast_", root);
    if (!many_ranks()) return local;
#ifdef LUMEN_HAVE_MPI
    double t0 = now();
    int64_t sig[SIG_LEN];
    tensor_sig(sig, K_BROADCAST, t, root);
    LM_TRY(check_same("broadcast_", sig, local));
    lm_tensor *h;
    LM_TRY(to_host_tensor(&h, t));
    lm_status s =
        broadcast_buffer("broadcast_", lm_tensor_f32(h), lm_tensor_numel(h), t->dtype, root);
    if (s == LM_OK && world_rank != root) s = write_back(t, h);
    lm_tensor_release(h);
    comm_seconds += now() - t0;
    return s;
#else
    return LM_OK;
#endif
}

lm_status lm_dist_allreduce_(lm_tensor *t, lm_dist_op op) {
    LM_TRY(lm_dist_init());
    lm_status local = check_tensor("allreduce_", t);
    if (local == LM_OK) local = check_op("allreduce_", t->dtype, op);
    if (!many_ranks()) return local;
#ifdef LUMEN_HAVE_MPI
    double t0 = now();
    int64_t sig[SIG_LEN];
    tensor_sig(sig, K_ALLREDUCE, t, op);
    LM_TRY(check_same("allreduce_", sig, local));
    lm_tensor *h;
    LM_TRY(to_host_tensor(&h, t));
    lm_status s =
        allreduce_buffer("allreduce_", lm_tensor_f32(h), lm_tensor_numel(h), t->dtype, op);
    if (s == LM_OK) s = write_back(t, h);
    lm_tensor_release(h);
    comm_seconds += now() - t0;
    return s;
#else
    return LM_OK;
#endif
}

/* all_gather (to_root false) or gather to root: every rank's rows in rank
 * order, on every rank or on root only (the others get 0 rows). A root
 * that is not a rank is refused on the rank that passed it, and the others
 * hear of it (the ranks stay in step). */
static lm_status gather_rows(const char *fn, lm_tensor **out, lm_tensor *t, int root,
                             bool to_root) {
    *out = NULL;
    LM_TRY(lm_dist_init());
    lm_status local = check_tensor(fn, t);
    if (local == LM_OK && t->ndim < 1)
        local = lm_fail(LM_ERR_ARG, "%s: needs a tensor of at least 1 dimension", fn);
    if (local == LM_OK && to_root) local = check_root(fn, root);
    if (!many_ranks()) return local == LM_OK ? lm_clone(out, t) : local;
#ifdef LUMEN_HAVE_MPI
    double t0 = now();
    int64_t sig[SIG_LEN];
    tensor_sig(sig, to_root ? K_GATHER_ROOT : K_GATHER, t, to_root ? root : -1);
    sig[4] = 0; /* the first dimension may differ */
    LM_TRY(check_same(fn, sig, local));
    int64_t rows = t->shape[0], row_elems = lm_tensor_numel(t) / (rows ? rows : 1);
    if (rows == 0) { /* numel / rows is undefined: the row size from the shape */
        row_elems = 1;
        for (int d = 1; d < t->ndim; d++) row_elems *= t->shape[d];
    }
    int64_t *all_rows = malloc((size_t)world_size * sizeof *all_rows);
    int *counts = malloc((size_t)world_size * sizeof *counts);
    int *displs = malloc((size_t)world_size * sizeof *displs);
    lm_tensor *h = NULL, *res = NULL;
    lm_status s = LM_OK;
    if (!all_rows || !counts || !displs) {
        s = lm_fail(LM_ERR_MEMORY, "%s: out of memory", fn);
        goto done;
    }
    int rc = MPI_Allgather(&rows, 1, MPI_INT64_T, all_rows, 1, MPI_INT64_T, MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS) {
        s = mpi_fail(rc, fn);
        goto done;
    }
    int64_t total = 0;
    for (int r = 0; r < world_size; r++) {
        if (total * row_elems > INT32_MAX - all_rows[r] * row_elems) {
            s = lm_fail(LM_ERR_ARG, "%s: more than 2^31 elements in all", fn);
            goto done;
        }
        displs[r] = (int)(total * row_elems);
        counts[r] = (int)(all_rows[r] * row_elems);
        total += all_rows[r];
    }
    int64_t shape[LM_MAX_DIMS];
    memcpy(shape, t->shape, sizeof shape);
    shape[0] = !to_root || root == world_rank ? total : 0;
    if ((s = to_host_tensor(&h, t)) != LM_OK) goto done;
    if ((s = lm_tensor_new(&res, t->dtype, LM_CPU, t->ndim, shape)) != LM_OK) goto done;
    if (!to_root)
        rc = MPI_Allgatherv(lm_tensor_f32(h), counts[world_rank], mpi_type(t->dtype),
                            lm_tensor_f32(res), counts, displs, mpi_type(t->dtype), MPI_COMM_WORLD);
    else
        rc = MPI_Gatherv(lm_tensor_f32(h), counts[world_rank], mpi_type(t->dtype),
                         lm_tensor_f32(res), counts, displs, mpi_type(t->dtype), root,
                         MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS) {
        s = mpi_fail(rc, fn);
        goto done;
    }
    comm_bytes += (double)(!to_root ? lm_tensor_numel(res) : counts[world_rank]) * 4;
    if (t->storage->device != LM_CPU) {
        s = lm_to_device(out, res, t->storage->device);
    } else {
        *out = res;
        res = NULL;
    }
done:
    free(all_rows), free(counts), free(displs);
    if (h) lm_tensor_release(h);
    if (res) lm_tensor_release(res);
    comm_seconds += now() - t0;
    return s;
#else
    return LM_OK;
#endif
}

lm_status lm_dist_all_gather(lm_tensor **out, lm_tensor *t) {
    return gather_rows("all_gather", out, t, -1, false);
}

lm_status lm_dist_gather(lm_tensor **out, lm_tensor *t, int root) {
    return gather_rows("gather", out, t, root, true);
}

/* ---- lists through one flat, bucketed buffer --------------------------------------------------
 */

#ifdef LUMEN_HAVE_MPI
/* Runs the collective over ts[0..n) in buckets: packs consecutive tensors
 * into the buffer until it is full (a tensor larger than a bucket goes in
 * pieces), exchanges, unpacks. */
static char *bucket_buf;
static size_t bucket_bytes_held;

static void free_bucket(void) {
    free(bucket_buf);
    bucket_buf = NULL, bucket_bytes_held = 0;
}

/* The elements a bucket of `many` holds for this list (0: nothing to send). */
static int64_t bucket_elements(lm_tensor *const *ts, int n, size_t bucket_bytes) {
    int64_t cap = (int64_t)(bucket_bytes ? bucket_bytes : (size_t)16 << 20) / 4;
    if (cap < 1024) cap = 1024;
    int64_t total = 0;
    for (int i = 0; i < n; i++) total += lm_tensor_numel(ts[i]);
    return cap > total ? total : cap;
}

/* One bucket kept from call to call: a fresh multi-megabyte buffer per step
 * (mapped, faulted in, unmapped) made a 4.5 MB all-reduce 20-40x slower than
 * into a reused one. Reserved before the ranks compare their arguments, so
 * that a rank out of memory fails with the others instead of leaving them
 * in the collective. */
static lm_status reserve_bucket(const char *fn, int64_t cap) {
    if ((size_t)cap * 4 <= bucket_bytes_held) return LM_OK;
    free(bucket_buf);
    bucket_buf = malloc((size_t)cap * 4);
    bucket_bytes_held = bucket_buf ? (size_t)cap * 4 : 0;
    if (!bucket_buf)
        return lm_fail(LM_ERR_MEMORY, "%s: out of memory for a %lld-element bucket", fn,
                       (long long)cap);
    return LM_OK;
}

/* Runs on the bucket reserve_bucket gave: every rank has agreed to go on. */
static lm_status many(const char *fn, lm_tensor *const *ts, int n, size_t bucket_bytes, int root,
                      lm_dist_op op, bool reduce) {
    int64_t cap = bucket_elements(ts, n, bucket_bytes);
    if (cap == 0) return LM_OK;
    char *buf = bucket_buf;
    lm_status s = LM_OK;
    lm_dtype dtype = ts[0]->dtype;
    bool receives = reduce || world_rank != root;
    int first = 0;        /* the first tensor with elements in the bucket */
    int64_t first_at = 0; /* where in it the bucket starts */
    while (s == LM_OK && first < n) {
        /* fill */
        int64_t used = 0;
        int i = first;
        int64_t at = first_at;
        while (s == LM_OK && i < n && used < cap) {
            int64_t numel = lm_tensor_numel(ts[i]);
            int64_t take = numel - at < cap - used ? numel - at : cap - used;
            if (take > 0 && (reduce || world_rank == root)) {
                lm_tensor *h;
                if ((s = to_host_tensor(&h, ts[i])) != LM_OK) break;
                memcpy(buf + used * 4, (char *)lm_tensor_f32(h) + at * 4, (size_t)take * 4);
                lm_tensor_release(h);
            }
            used += take, at += take;
            if (at == numel) i++, at = 0;
        }
        if (s != LM_OK) break;
        s = reduce ? allreduce_buffer(fn, buf, used, dtype, op)
                   : broadcast_buffer(fn, buf, used, dtype, root);
        if (s != LM_OK || !receives) {
            first = i, first_at = at;
            continue;
        }
        /* unpack: whole tensors directly, a piece of one through a host copy */
        int64_t off = 0;
        while (s == LM_OK && off < used) {
            lm_tensor *t = ts[first];
            int64_t numel = lm_tensor_numel(t);
            int64_t take = numel - first_at < used - off ? numel - first_at : used - off;
            if (first_at == 0 && take == numel) {
                s = write_elements(t, buf + off * 4);
            } else {
                lm_tensor *h;
                if ((s = to_host_tensor(&h, t)) != LM_OK) break;
                memcpy((char *)lm_tensor_f32(h) + first_at * 4, buf + off * 4, (size_t)take * 4);
                s = write_back(t, h);
                lm_tensor_release(h);
            }
            off += take, first_at += take;
            if (first_at == numel) first++, first_at = 0;
        }
        while (first < n && lm_tensor_numel(ts[first]) == 0) first++;
    }
    return s;
}

/* (bucket: the elements a bucket holds, which decides each MPI call's count:
 * ranks that differ there would run collectives of different sizes) */
static void list_sig(int64_t *sig, int kind, lm_tensor *const *ts, int n, int64_t extra,
                     int64_t bucket) {
    memset(sig, 0, SIG_LEN * sizeof *sig);
    uint64_t h = 1469598103934665603ull; /* FNV-1a over the shapes */
    int64_t total = 0;
    for (int i = 0; i < n; i++) {
        for (int d = 0; d < ts[i]->ndim; d++)
            h = (h ^ (uint64_t)ts[i]->shape[d]) * 1099511628211ull;
        h = (h ^ 0xffu) * 1099511628211ull;
        total += lm_tensor_numel(ts[i]);
    }
    sig[0] = kind, sig[1] = n ? ts[0]->dtype : 0, sig[2] = n, sig[3] = extra;
    sig[4] = total, sig[5] = (int64_t)(h >> 1), sig[6] = bucket;
}
#endif

lm_status lm_dist_allreduce_many_(lm_tensor *const *ts, int n, lm_dist_op op, size_t bucket_bytes) {
    LM_TRY(lm_dist_init());
    lm_status local = check_list("allreduce list", ts, n);
    if (local == LM_OK && n > 0) local = check_op("allreduce list", ts[0]->dtype, op);
    if (!many_ranks()) return local;
#ifdef LUMEN_HAVE_MPI
    if (local == LM_OK)
        local = reserve_bucket("allreduce list", bucket_elements(ts, n, bucket_bytes));
    double t0 = now();
    int64_t sig[SIG_LEN];
    list_sig(sig, K_ALLREDUCE_MANY, ts, n, op, bucket_elements(ts, n, bucket_bytes));
    LM_TRY(check_same(kind_names[K_ALLREDUCE_MANY], sig, local));
    lm_status s = n ? many("average_gradients", ts, n, bucket_bytes, 0, op, true) : LM_OK;
    comm_seconds += now() - t0;
    return s;
#else
    (void)bucket_bytes;
    return LM_OK;
#endif
}

lm_status lm_dist_broadcast_many_(lm_tensor *const *ts, int n, int root, size_t bucket_bytes) {
    LM_TRY(lm_dist_init());
    lm_status local = check_list("broadcast list", ts, n);
    if (local == LM_OK) local = check_root("broadcast list", root);
    if (!many_ranks()) return local;
#ifdef LUMEN_HAVE_MPI
    if (local == LM_OK)
        local = reserve_bucket("broadcast list", bucket_elements(ts, n, bucket_bytes));
    double t0 = now();
    int64_t sig[SIG_LEN];
    list_sig(sig, K_BROADCAST_MANY, ts, n, root, bucket_elements(ts, n, bucket_bytes));
    LM_TRY(check_same(kind_names[K_BROADCAST_MANY], sig, local));
    lm_status s =
        n ? many("broadcast_parameters", ts, n, bucket_bytes, root, LM_DIST_SUM, false) : LM_OK;
    comm_seconds += now() - t0;
    return s;
#else
    (void)bucket_bytes;
    return LM_OK;
#endif
}
