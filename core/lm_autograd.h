/* The tape: reverse-mode automatic differentiation.
 *
 * Every differentiable op has an autograd entry point here (lm_ag_*) that runs
 * the plain op (lm_ops.h, lm_nn.h) and, when grad mode is on and an input
 * requires gradients, records a node on the output: the rule, the inputs and
 * whatever the rule saved. lm_backward walks the graph from a root in
 * topological order (iteratively, no recursion), calls each node's rule and
 * sums gradients into the inputs; leaves that require gradients receive them
 * in .grad. Rules are written with ordinary ops (autograd_rules.c), so they
 * run on any backend. The graph is freed after backward unless retain_graph.
 *
 * Ownership: a node holds counted references to its inputs' autograd state
 * (lm_autograd_meta: an edge of the graph, not the input's memory) and to
 * the tensors its rule saved; the output's autograd state holds the node.
 * An intermediate result no rule saved is freed when the user drops it. */
#ifndef LM_AUTOGRAD_H
#define LM_AUTOGRAD_H

#include "lm_autograd_meta.h"
#include "lm_backend.h"
#include "lm_tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LM_NODE_MAX_INPUTS 16
#define LM_NODE_MAX_SAVED 4

typedef struct lm_node lm_node;

/* Computes the gradients of the node's inputs from the gradient of its
 * output. grad_inputs[i] gets a new reference, or stays NULL when input i
 * needs no gradient (node->inputs[i] NULL). */
typedef lm_status (*lm_backward_fn)(lm_node *node, lm_tensor *grad_output, lm_tensor **grad_inputs);

struct lm_node {
    int refcount;
    const char *name;
    lm_backward_fn backward;
    int ninputs;
    /* input i's autograd state, NULL when it needs no gradient */
    lm_autograd_meta *inputs[LM_NODE_MAX_INPUTS];
    /* a one-input op whose output shares the input's memory (a view) keeps
     * the input itself, which costs nothing, to tell a view of a leaf */
    lm_tensor *view_of;
    lm_tensor *saved[LM_NODE_MAX_SAVED];
    uint32_t saved_version[LM_NODE_MAX_SAVED];
    double p[4];
    int64_t iparams[LM_NODE_MAX_INPUTS + 1];
    int ndim; /* e.g. the input shape of a view */
    int64_t shape[LM_MAX_DIMS];
    bool released; /* backward ran without retain_graph */
    /* the autocast mode (lm_autocast.h) it was recorded under, and its
     * rule runs under: backward products round as the forward ones did */
    uint8_t autocast;
    /* for rules implemented outside the core (custom Lua functions) */
    void *ctx;
    void (*free_ctx)(void *ctx);
};

/* ---- grad mode ------------------------------------------------------------------------- */
bool lm_grad_enabled(void);
/* Returns the previous mode. */
bool lm_set_grad_enabled(bool enabled);

/* ---- anomaly mode: stop at the first NaN or Inf ------------------------------------------------
 */
/* When on, backward checks every gradient a rule produces, and the bindings
 * check the output of every recorded op (lm_check_output). Off by default:
 * each check reads a value back from the device. Returns the previous mode. */
bool lm_set_detect_anomaly(bool on);
bool lm_detect_anomaly(void);
/* LM_OK when t is finite everywhere; otherwise an error naming `op`, what
 * t is (`what`, e.g. "output") and its shape. */
lm_status lm_check_finite(const char *op, const char *what, const lm_tensor *t);
/* In anomaly mode, lm_check_finite on a recorded op's output (no-op otherwise). */
lm_status lm_check_output(const lm_tensor *t);

/* ---- tensor state -------------------------------------------------------------------------- */
bool lm_requires_grad(const lm_tensor *t);
/* Only leaves (and float tensors) can be switched. */
lm_status lm_set_requires_grad(lm_tensor *t, bool requires_grad);
lm_status lm_set_retain_grad(lm_tensor *t);
/* Undoes lm_set_retain_grad: a non-leaf's .grad is no longer kept (the one
 * it holds stays until cleared). */
void lm_unset_retain_grad(lm_tensor *t);
bool lm_retains_grad(const lm_tensor *t);             /* set by lm_set_retain_grad */
lm_tensor *lm_grad(const lm_tensor *t);               /* borrowed, may be NULL */
lm_status lm_set_grad(lm_tensor *t, lm_tensor *grad); /* grad may be NULL */
lm_node *lm_grad_fn(const lm_tensor *t);              /* borrowed, may be NULL */
/* A view sharing storage, outside the graph. */
lm_status lm_detach(lm_tensor **out, lm_tensor *t);

/* ---- graph building (used by the lm_ag_* entry points and by bindings) ---------------------- */
/* True when an op on these inputs must be recorded. */
bool lm_any_requires_grad(int n, lm_tensor *const *inputs);
/* A node with the given inputs (retained), attached to `out` as its grad_fn;
 * NULL when out of memory. */
lm_node *lm_node_attach(lm_tensor *out, const char *name, lm_backward_fn backward, int ninputs,
                        lm_tensor *const *inputs);
/* How an lm_ag_* entry point records: lm_node_attach on the op's result *out,
 * the node in *node. On failure *out is released and set to NULL and the
 * error (naming the op) is returned, so the op hands back nothing:
 *     lm_node *node;
 *     LM_TRY(lm_node_record(&node, out, "matmul", lm_rule_matmul, 2, in)); */
lm_status lm_node_record(lm_node **node, lm_tensor **out, const char *name, lm_backward_fn backward,
                         int ninputs, lm_tensor *const *inputs);
/* Keeps a reference to t (and its storage version) for the rule. */
void lm_node_save(lm_node *node, int slot, lm_tensor *t);
/* Saves a node's own output: through a plain view of its storage, because
 * a reference to the output tensor itself would be a cycle (output -> node
 * -> output) that refcounting never frees. */
lm_status lm_node_save_output(lm_node *node, int slot, lm_tensor *out);
/* Borrowed saved tensor; fails if it was modified in place since. */
lm_status lm_node_saved(lm_node *node, int slot, lm_tensor **t);

/* ---- backward ----------------------------------------------------------------------------------
 */
/* grad NULL: root must have one element (gradient 1). */
lm_status lm_backward(lm_tensor *root, lm_tensor *grad, bool retain_graph);

/* ---- differentiable ops -----------------------------------------------------------------------
 */
lm_status lm_ag_unary(lm_tensor **out, lm_unary_op op, lm_tensor *x, double p0, double p1);
lm_status lm_ag_binary(lm_tensor **out, lm_binary_op op, lm_tensor *a, lm_tensor *b);
lm_status lm_ag_binary_scalar(lm_tensor **out, lm_binary_op op, lm_tensor *a, double s,
                              bool scalar_first);
lm_status lm_ag_where(lm_tensor **out, lm_tensor *cond, lm_tensor *a, lm_tensor *b);
lm_status lm_ag_reduce(lm_tensor **out, lm_tensor **indices, lm_reduce_op op, lm_tensor *x, int dim,
                       bool keepdim);
lm_status lm_ag_matmul(lm_tensor **out, lm_tensor *a, lm_tensor *b);
lm_status lm_ag_view(lm_tensor **out, lm_tensor *t, int ndim, const int64_t *shape);
lm_status lm_ag_reshape(lm_tensor **out, lm_tensor *t, int ndim, const int64_t *shape);
lm_status lm_ag_transpose(lm_tensor **out, lm_tensor *t, int d0, int d1);
lm_status lm_ag_permute(lm_tensor **out, lm_tensor *t, int ndim, const int *perm);
lm_status lm_ag_narrow(lm_tensor **out, lm_tensor *t, int dim, int64_t start, int64_t len);
lm_status lm_ag_select(lm_tensor **out, lm_tensor *t, int dim, int64_t index);
lm_status lm_ag_expand(lm_tensor **out, lm_tensor *t, int ndim, const int64_t *shape);
lm_status lm_ag_unsqueeze(lm_tensor **out, lm_tensor *t, int dim);
lm_status lm_ag_squeeze(lm_tensor **out, lm_tensor *t, int dim);
lm_status lm_ag_contiguous(lm_tensor **out, lm_tensor *t);
lm_status lm_ag_clone(lm_tensor **out, lm_tensor *t);
/* lm_gather (differentiable in x), lm_scatter_add (in x and src), lm_cumsum. */
lm_status lm_ag_gather(lm_tensor **out, lm_tensor *x, int dim, lm_tensor *idx);
lm_status lm_ag_scatter_add(lm_tensor **out, lm_tensor *x, int dim, lm_tensor *idx, lm_tensor *src);
lm_status lm_ag_cumsum(lm_tensor **out, lm_tensor *x, int dim);
lm_status lm_ag_resample(lm_tensor **out, lm_tensor *x, int dim, lm_tensor *idx, lm_tensor *w);
lm_status lm_ag_resample2d(lm_tensor **out, lm_tensor *x, lm_tensor *idx_h, lm_tensor *w_h,
                           lm_tensor *idx_w, lm_tensor *w_w);
/* Concatenation along dim of n tensors (stack = unsqueeze + cat). */
lm_status lm_ag_cat(lm_tensor **out, int n, lm_tensor *const *ts, int dim);

/* Sums `grad` over broadcast dimensions down to `shape` (a helper for rules). */
lm_status lm_sum_to_shape(lm_tensor **out, lm_tensor *grad, int ndim, const int64_t *shape);

/* In-place writes bump the storage version; a rule whose saved tensor changed
 * refuses to run. Also refuses in-place writes to leaves that require grad. */
lm_status lm_check_inplace(const char *op, lm_tensor *t);

#ifdef __cplusplus
}
#endif

#endif
