/* The autograd engine: grad mode, per-tensor state, nodes and backward. */
#include "lm_autograd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lm_autocast.h"
#include "lm_ops.h"

static bool grad_mode = true;
static uint64_t visit_counter;

bool lm_grad_enabled(void) {
    return grad_mode;
}

bool lm_set_grad_enabled(bool enabled) {
    bool old = grad_mode;
    grad_mode = enabled;
    return old;
}

static bool anomaly_mode;

bool lm_set_detect_anomaly(bool on) {
    bool old = anomaly_mode;
    anomaly_mode = on;
    return old;
}

bool lm_detect_anomaly(void) {
    return anomaly_mode;
}

/* x - x is NaN exactly where x is NaN or infinite; counted on x's device. */
lm_status lm_check_finite(const char *op, const char *what, const lm_tensor *t) {
    if (t->dtype != LM_FLOAT32 || lm_tensor_numel(t) == 0) return LM_OK;
    bool old = lm_set_grad_enabled(false);
    lm_tensor *d = NULL, *bad = NULL, *count = NULL;
    lm_status s = lm_binary(&d, LM_SUB, (lm_tensor *)t, (lm_tensor *)t);
    if (s == LM_OK) s = lm_binary(&bad, LM_NE, d, d);
    if (s == LM_OK) s = lm_reduce(&count, NULL, LM_SUM, bad, -1, false);
    double n = 0;
    if (s == LM_OK) s = lm_get_element(count, 0, &n);
    lm_set_grad_enabled(old);
    lm_tensor_release(d), lm_tensor_release(bad), lm_tensor_release(count);
    if (s != LM_OK || n == 0) return s;
    char shape[LM_SHAPE_STR_MAX];
    return lm_fail(LM_ERR_STATE, "anomaly: %s: %s of shape %s has %.0f NaN or infinite value%s", op,
                   what, lm_shape_str(t, shape, sizeof shape), n, n == 1 ? "" : "s");
}

lm_status lm_check_output(const lm_tensor *t) {
    if (!anomaly_mode || !t || !t->autograd || !t->autograd->grad_fn) return LM_OK;
    return lm_check_finite(t->autograd->grad_fn->name, "the output", t);
}

static lm_autograd_meta *meta_of(lm_tensor *t) {
    if (!t->autograd) t->autograd = lm_autograd_meta_new(t);
    return t->autograd;
}

bool lm_requires_grad(const lm_tensor *t) {
    return t->autograd && t->autograd->requires_grad;
}

lm_status lm_set_requires_grad(lm_tensor *t, bool requires_grad) {
    if (t->autograd && t->autograd->grad_fn)
        return lm_fail(LM_ERR_STATE,
                       "requires_grad: can only be set on leaf tensors (this one was computed "
                       "by %s; use detach() for a new leaf)",
                       t->autograd->grad_fn->name);
    if (requires_grad && t->dtype != LM_FLOAT32)
        return lm_fail(LM_ERR_ARG,
                       "requires_grad: only float32 tensors can require gradients, "
                       "this one is %s",
                       lm_dtype_name(t->dtype));
    if (!requires_grad && !t->autograd) return LM_OK;
    lm_autograd_meta *m = meta_of(t);
    if (!m) return lm_fail(LM_ERR_MEMORY, "out of memory");
    m->requires_grad = requires_grad;
    return LM_OK;
}

lm_status lm_set_retain_grad(lm_tensor *t) {
    if (!lm_requires_grad(t))
        return lm_fail(LM_ERR_STATE, "retain_grad: the tensor does not require gradients");
    t->autograd->retain_grad = true;
    return LM_OK;
}

void lm_unset_retain_grad(lm_tensor *t) {
    if (t->autograd) t->autograd->retain_grad = false;
}

bool lm_retains_grad(const lm_tensor *t) {
    return t->autograd && t->autograd->retain_grad;
}

lm_tensor *lm_grad(const lm_tensor *t) {
    return t->autograd ? t->autograd->grad : NULL;
}

lm_status lm_set_grad(lm_tensor *t, lm_tensor *grad) {
    if (grad && grad->dtype != t->dtype)
        return lm_fail(LM_ERR_ARG, "grad: the gradient is %s, the tensor %s: they must match",
                       lm_dtype_name(grad->dtype), lm_dtype_name(t->dtype));
    if (grad && !lm_tensor_same_shape(t, grad)) {
        char a[LM_SHAPE_STR_MAX], b[LM_SHAPE_STR_MAX];
        return lm_fail(LM_ERR_SHAPE, "grad: a gradient of shape %s for a tensor of shape %s",
                       lm_shape_str(grad, b, sizeof b), lm_shape_str(t, a, sizeof a));
    }
    if (grad && grad->storage->device != t->storage->device)
        return lm_fail(LM_ERR_DEVICE, "grad: the gradient is on %s, the tensor on %s",
                       lm_device_name(grad->storage->device), lm_device_name(t->storage->device));
    if (grad && grad->storage == t->storage)
        return lm_fail(LM_ERR_ARG, "grad: a tensor's gradient cannot share its memory (the next "
                                   "backward would add into the tensor itself); give a copy");
    /* backward adds into .grad in place: each element needs its own memory */
    for (int d = 0; grad && d < grad->ndim; d++)
        if (grad->strides[d] == 0 && grad->shape[d] > 1)
            return lm_fail(LM_ERR_ARG, "grad: the gradient is an expanded view (elements share "
                                       "memory); give a contiguous copy");
    if (!grad && !t->autograd) return LM_OK;
    lm_autograd_meta *m = meta_of(t);
    if (!m) return lm_fail(LM_ERR_MEMORY, "out of memory");
    lm_tensor_retain(grad);
    lm_tensor_release(m->grad);
    m->grad = grad;
    return LM_OK;
}

lm_node *lm_grad_fn(const lm_tensor *t) {
    return t->autograd ? t->autograd->grad_fn : NULL;
}

lm_status lm_detach(lm_tensor **out, lm_tensor *t) {
    int64_t shape[LM_MAX_DIMS];
    memcpy(shape, t->shape, sizeof shape);
    /* a plain view: it carries no autograd state */
    return lm_tensor_view(out, t, t->ndim, shape) == LM_OK
               ? LM_OK
               : lm_tensor_expand(out, t, t->ndim, shape);
}

bool lm_any_requires_grad(int n, lm_tensor *const *inputs) {
    if (!grad_mode) return false;
    for (int i = 0; i < n; i++)
        if (inputs[i] && lm_requires_grad(inputs[i])) return true;
    return false;
}

/* ---- nodes --------------------------------------------------------------------------------------
 */

static void node_clear(lm_node *n) {
    for (int i = 0; i < LM_NODE_MAX_INPUTS; i++) {
        lm_autograd_meta_release(n->inputs[i]);
        n->inputs[i] = NULL;
    }
    lm_tensor_release(n->view_of);
    n->view_of = NULL;
    for (int i = 0; i < LM_NODE_MAX_SAVED; i++) {
        lm_tensor_release(n->saved[i]);
        n->saved[i] = NULL;
    }
    if (n->free_ctx) n->free_ctx(n->ctx);
    n->free_ctx = NULL;
    n->ctx = NULL;
}

void lm_node_release(lm_node *n) {
    if (!n || --n->refcount > 0) return;
    node_clear(n);
    free(n);
}

lm_node *lm_node_attach(lm_tensor *out, const char *name, lm_backward_fn backward, int ninputs,
                        lm_tensor *const *inputs) {
    lm_node *n = calloc(1, sizeof *n);
    lm_autograd_meta *m = meta_of(out);
    if (!n || !m) {
        free(n);
        return NULL;
    }
    n->refcount = 1;
    n->name = name;
    n->backward = backward;
    n->ninputs = ninputs;
    n->autocast = (uint8_t)lm_autocast();
    for (int i = 0; i < ninputs; i++)
        n->inputs[i] = inputs[i] && lm_requires_grad(inputs[i])
                           ? lm_autograd_meta_retain(inputs[i]->autograd)
                           : NULL;
    if (ninputs == 1 && inputs[0] && inputs[0]->storage == out->storage)
        n->view_of = lm_tensor_retain(inputs[0]);
    lm_node_release(m->grad_fn);
    m->grad_fn = n;
    m->requires_grad = true;
    return n;
}

lm_status lm_node_record(lm_node **node, lm_tensor **out, const char *name, lm_backward_fn backward,
                         int ninputs, lm_tensor *const *inputs) {
    *node = lm_node_attach(*out, name, backward, ninputs, inputs);
    if (*node) return LM_OK;
    lm_tensor_release(*out);
    *out = NULL;
    return lm_fail(LM_ERR_MEMORY, "%s: out of memory recording the graph", name);
}

void lm_node_save(lm_node *node, int slot, lm_tensor *t) {
    lm_tensor_release(node->saved[slot]);
    node->saved[slot] = lm_tensor_retain(t);
    node->saved_version[slot] = t ? t->storage->version : 0;
}

lm_status lm_node_save_output(lm_node *node, int slot, lm_tensor *out) {
    lm_tensor *view;
    LM_TRY(lm_detach(&view, out));
    lm_node_save(node, slot, view);
    lm_tensor_release(view);
    return LM_OK;
}

lm_status lm_node_saved(lm_node *node, int slot, lm_tensor **t) {
    *t = node->saved[slot];
    if (*t && (*t)->storage->version != node->saved_version[slot])
        return lm_fail(LM_ERR_STATE,
                       "backward: a tensor saved by %s for the gradient was modified in place "
                       "afterwards; compute it out of place (or clone it) instead",
                       node->name);
    return LM_OK;
}

lm_status lm_check_inplace(const char *op, lm_tensor *t) {
    if (grad_mode && lm_requires_grad(t) && !lm_grad_fn(t))
        return lm_fail(LM_ERR_STATE,
                       "%s: in-place change of a leaf tensor that requires gradients; do it "
                       "inside lm.no_grad or on a detached tensor",
                       op);
    /* a view of such a leaf (every node on the way shares its storage) writes
     * into the leaf just the same */
    for (const lm_tensor *v = t; grad_mode && lm_grad_fn(v);) {
        const lm_node *n = lm_grad_fn(v);
        v = n->view_of;
        if (!v || v->storage != t->storage) break;
        if (lm_requires_grad(v) && !lm_grad_fn(v))
            return lm_fail(LM_ERR_STATE,
                           "%s: in-place change of a view of a leaf tensor that requires "
                           "gradients; do it inside lm.no_grad or on a detached tensor",
                           op);
    }
    /* a result in a graph: the tape records no node for an in-place change,
     * so the gradients through it would silently be those of the old values */
    if (grad_mode && lm_grad_fn(t))
        return lm_fail(LM_ERR_STATE,
                       "%s: in-place change of a tensor computed with gradients (the graph "
                       "would not see it, and the gradients would be wrong); compute it out of "
                       "place (y = y * 3, not y:mul_(3)), or inside lm.no_grad",
                       op);
    t->storage->version++;
    return LM_OK;
}

/* ---- backward
 * -------------------------------------------------------------------------------------- */

typedef struct {
    lm_autograd_meta **items;
    int count, cap;
} meta_list;

static bool list_push(meta_list *l, lm_autograd_meta *t) {
    if (l->count == l->cap) {
        int cap = l->cap ? l->cap * 2 : 64;
        lm_autograd_meta **p = realloc(l->items, sizeof *p * cap);
        if (!p) return false;
        l->items = p;
        l->cap = cap;
    }
    l->items[l->count++] = t;
    return true;
}

/* Post-order of the graph under root: every tensor's state after the states
 * of all the tensors computed from it, so the reverse visits consumers
 * before producers. Iterative (an explicit stack of frames), so deep graphs
 * cannot overflow the C stack. */
typedef struct {
    lm_autograd_meta *t;
    int next_input;
} frame;

static lm_status topological_order(lm_autograd_meta *root, meta_list *order) {
    uint64_t mark = ++visit_counter;
    frame *stack = NULL;
    int depth = 0, cap = 0;
    lm_status s = LM_OK;
    root->visit_mark = mark;
    lm_autograd_meta *push = root;
    for (;;) {
        if (push) {
            if (depth == cap) {
                cap = cap ? cap * 2 : 64;
                frame *p = realloc(stack, sizeof *p * cap);
                if (!p) {
                    s = lm_fail(LM_ERR_MEMORY, "backward: out of memory sorting the graph");
                    break;
                }
                stack = p;
            }
            stack[depth++] = (frame){push, 0};
            push = NULL;
        }
        if (!depth) break;
        frame *f = &stack[depth - 1];
        lm_node *n = f->t->grad_fn;
        if (n && f->next_input < n->ninputs) {
            lm_autograd_meta *in = n->inputs[f->next_input++];
            if (in && in->visit_mark != mark) {
                in->visit_mark = mark;
                push = in;
            }
            continue;
        }
        if (!list_push(order, f->t)) {
            s = lm_fail(LM_ERR_MEMORY, "backward: out of memory sorting the graph");
            break;
        }
        depth--;
    }
    free(stack);
    return s;
}

/* pending += g (g is borrowed) */
static lm_status accumulate_pending(lm_autograd_meta *m, lm_tensor *g) {
    if (!lm_autograd_meta_same_shape(m, g)) {
        char a[LM_SHAPE_STR_MAX], b[LM_SHAPE_STR_MAX];
        return lm_fail(LM_ERR_SHAPE, "backward: internal error, gradient %s for a tensor %s",
                       lm_shape_str(g, a, sizeof a), lm_dims_str(m->ndim, m->shape, b, sizeof b));
    }
    if (!m->pending) {
        m->pending = lm_tensor_retain(g);
        return LM_OK;
    }
    lm_tensor *sum;
    LM_TRY(lm_binary(&sum, LM_ADD, m->pending, g));
    lm_tensor_release(m->pending);
    m->pending = sum;
    return LM_OK;
}

/* True when nothing else can see g's memory: a contiguous tensor that owns
 * all of its storage and has no other reference (a rule's fresh result). */
static bool sole_owner(const lm_tensor *g) {
    return g->refcount == 1 && g->storage->refcount == 1 && g->offset == 0 && !g->autograd &&
           lm_tensor_is_contiguous(g) &&
           g->storage->bytes == (size_t)lm_tensor_numel(g) * lm_dtype_size(g->dtype);
}

/* .grad += g; .grad is always a contiguous tensor of its own. A fresh
 * gradient nobody else holds is adopted instead of copied. */
static lm_status accumulate_grad(lm_autograd_meta *m, lm_tensor *g) {
    if (!m->grad && sole_owner(g)) {
        m->grad = lm_tensor_retain(g);
        return LM_OK;
    }
    if (!m->grad) return lm_clone(&m->grad, g);
    if (m->grad->storage->device != g->storage->device || !lm_tensor_same_shape(m->grad, g)) {
        lm_tensor_release(m->grad);
        m->grad = NULL;
        return lm_clone(&m->grad, g);
    }
    m->grad->storage->version++;
    return lm_binary_into(m->grad, LM_ADD, m->grad, g);
}

static bool in_backward; /* the pass's scratch (pending sums, marks) is one per process */

static lm_status backward_pass(lm_tensor *root, lm_tensor *grad, bool retain_graph);

lm_status lm_backward(lm_tensor *root, lm_tensor *grad, bool retain_graph) {
    if (in_backward)
        return lm_fail(LM_ERR_STATE,
                       "backward: called while a backward pass runs (from a custom Function's "
                       "backward or a hook); a pass cannot run inside another: compute that "
                       "gradient before or after the outer backward");
    in_backward = true;
    lm_status s = backward_pass(root, grad, retain_graph);
    in_backward = false;
    return s;
}

static lm_status backward_pass(lm_tensor *root, lm_tensor *grad, bool retain_graph) {
    if (!lm_requires_grad(root))
        return lm_fail(LM_ERR_STATE, "backward: this tensor does not require gradients (no input "
                                     "of the computation had requires_grad set, or it ran under "
                                     "no_grad)");
    char buf[LM_SHAPE_STR_MAX];
    lm_tensor *seed = NULL;
    if (!grad) {
        if (lm_tensor_numel(root) != 1)
            return lm_fail(LM_ERR_ARG,
                           "backward: a gradient can be created implicitly only for a "
                           "one-element output, this one has shape %s; pass backward(grad)",
                           lm_shape_str(root, buf, sizeof buf));
        LM_TRY(lm_full(&seed, LM_FLOAT32, root->storage->device, root->ndim, root->shape, 1.0));
    } else {
        if (!lm_tensor_same_shape(root, grad)) {
            char b2[LM_SHAPE_STR_MAX];
            return lm_fail(LM_ERR_SHAPE, "backward: gradient of shape %s for an output of shape %s",
                           lm_shape_str(grad, b2, sizeof b2), lm_shape_str(root, buf, sizeof buf));
        }
        if (grad->dtype != LM_FLOAT32)
            return lm_fail(LM_ERR_ARG, "backward: the gradient must be float32, got %s",
                           lm_dtype_name(grad->dtype));
        if (grad->storage->device != root->storage->device)
            return lm_fail(LM_ERR_DEVICE, "backward: the gradient is on %s, the output on %s",
                           lm_device_name(grad->storage->device),
                           lm_device_name(root->storage->device));
        seed = lm_tensor_retain(grad);
    }
    meta_list order = {0};
    lm_status s = topological_order(root->autograd, &order);
    if (s == LM_OK) {
        for (int i = 0; i < order.count; i++) {
            lm_node *n = order.items[i]->grad_fn;
            if (n && n->released) {
                s = lm_fail(LM_ERR_STATE,
                            "backward: the graph through %s was already freed by an earlier "
                            "backward; call backward(nil, true) (retain_graph) the first time to "
                            "run it twice",
                            n->name);
                break;
            }
        }
    }
    if (s == LM_OK) s = accumulate_pending(root->autograd, seed);
    lm_tensor_release(seed);
    bool old_mode = lm_set_grad_enabled(false); /* rules build no graph */
    for (int i = order.count - 1; i >= 0 && s == LM_OK; i--) {
        lm_autograd_meta *m = order.items[i];
        lm_tensor *g = m->pending;
        m->pending = NULL;
        if (!g) continue; /* nothing flowed here */
        lm_node *n = m->grad_fn;
        /* a leaf frozen since the forward pass (requires_grad(false)) gets no gradient, as in torch
         */
        if ((!n && m->requires_grad) || m->retain_grad) s = accumulate_grad(m, g);
        if (s == LM_OK && n) {
            lm_tensor *grads[LM_NODE_MAX_INPUTS] = {NULL};
            lm_autocast_mode old_cast = lm_set_autocast((lm_autocast_mode)n->autocast);
            s = n->backward(n, g, grads);
            lm_set_autocast(old_cast);
            for (int k = 0; k < n->ninputs && s == LM_OK && anomaly_mode; k++) {
                if (!grads[k]) continue;
                char what[64];
                snprintf(what, sizeof what, "the gradient for input %d (backward)", k + 1);
                s = lm_check_finite(n->name, what, grads[k]);
            }
            for (int k = 0; k < n->ninputs; k++) {
                if (s == LM_OK && grads[k] && n->inputs[k])
                    s = accumulate_pending(n->inputs[k], grads[k]);
                lm_tensor_release(grads[k]);
            }
        }
        lm_tensor_release(g);
    }
    lm_set_grad_enabled(old_mode);
    /* clean up: drop scratch gradients, free the graph unless asked to keep it */
    for (int i = 0; i < order.count; i++) {
        lm_autograd_meta *m = order.items[i];
        lm_tensor_release(m->pending);
        m->pending = NULL;
        if (!retain_graph && s == LM_OK && m->grad_fn) {
            node_clear(m->grad_fn);
            m->grad_fn->released = true;
        }
    }
    free(order.items);
    return s;
}
