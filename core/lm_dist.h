/* Collectives between processes (lm.dist): MPI when Lumen is built with it
 * (-DLUMEN_MPI), a world of one otherwise. docs/distributed.md.
 *
 * The world starts on first use (lm_dist_init, called by every entry point):
 * a process started by mpirun or srun (OMPI_COMM_WORLD_SIZE, PMI_SIZE,
 * PMIX_RANK in its environment) initialises MPI and finalises it at exit;
 * any other process is a world of one (rank 0 of 1) and never touches MPI,
 * so a script runs the same with and without a launcher. A build without
 * MPI that was started by a launcher with more than one process fails every
 * call: the processes would otherwise each train alone without saying so.
 *
 * Collectives take float32 and int32 tensors of any strides, on the CPU or
 * on a GPU (through a host copy). Every rank must call them in the same
 * order with tensors of the same dtype and shape; a mismatch is an error on
 * every rank (each call first compares a small signature), never a hang.
 * This is the one place NCCL would plug in: a second implementation of
 * these functions chosen per device. */
#ifndef LM_DIST_H
#define LM_DIST_H

#include <stdbool.h>
#include <stddef.h>

#include "lm_tensor.h"

typedef enum lm_dist_op { LM_DIST_SUM, LM_DIST_MEAN, LM_DIST_MAX, LM_DIST_MIN } lm_dist_op;

/* Whether this build has MPI. */
bool lm_dist_built_with_mpi(void);
/* "mpi (Open MPI v4.1.4, ...)", "world of one (not started by a launcher)", ... */
const char *lm_dist_backend(void);
/* Starts the world (idempotent). Fails when a launcher started several
 * processes of a build without MPI, or when MPI cannot start. */
lm_status lm_dist_init(void);
/* The process's 0-based rank and the number of processes (0 and 1 before
 * lm_dist_init or when it failed). */
int lm_dist_rank(void);
int lm_dist_size(void);
/* Whether MPI is running in this process (initialised and not finalised). */
bool lm_dist_active(void);

lm_status lm_dist_barrier(void);
/* For bindings whose own argument check failed before a collective: takes
 * part in the collective's argument exchange as a rank that refused its
 * arguments, so that the other ranks fail too instead of waiting. The
 * caller then raises its own error. */
lm_status lm_dist_refuse(const char *fn);
/* t on every rank becomes root's t. */
lm_status lm_dist_broadcast_(lm_tensor *t, int root);
/* t becomes the elementwise reduction over ranks (MEAN: float32 only). */
lm_status lm_dist_allreduce_(lm_tensor *t, lm_dist_op op);
/* Every rank's t concatenated along dimension 0 in rank order; the first
 * dimension may differ between ranks, the others may not. A CPU tensor on
 * the device of t. */
lm_status lm_dist_all_gather(lm_tensor **out, lm_tensor *t);
/* The same concatenation on root only; the other ranks get 0 rows (results
 * that only root writes, without a copy on every rank). */
lm_status lm_dist_gather(lm_tensor **out, lm_tensor *t, int root);

/* The same over a list of n tensors of one dtype, packed into a flat buffer
 * and exchanged in buckets of at most bucket_bytes (0: 16 MiB): one
 * collective per bucket instead of one per tensor (gradients, parameters). */
lm_status lm_dist_allreduce_many_(lm_tensor *const *ts, int n, lm_dist_op op, size_t bucket_bytes);
lm_status lm_dist_broadcast_many_(lm_tensor *const *ts, int n, int root, size_t bucket_bytes);

/* Seconds spent inside collectives since the start (a step's communication
 * share), and how many bytes this process contributed. */
double lm_dist_comm_seconds(void);
double lm_dist_comm_bytes(void);

/* For programs, never called by the library: ends every process of the job
 * (MPI_Abort) when MPI runs with more than one process; returns otherwise.
 * The host calls it after printing an uncaught error. */
void lm_dist_abort(int code);

#endif
