/* Derivative rules (autograd_rules.c), referenced by the recording entry
 * points (autograd_ops.c, nn_*.c). Parameters a rule reads from its node are
 * documented next to each rule. */
#ifndef LM_AUTOGRAD_RULES_H
#define LM_AUTOGRAD_RULES_H

#include "lm_autograd.h"

/* What lm_rule_unary reads of op's input x and output y (p0: the op's first
 * parameter), so that the tape keeps only that: as torch, exp keeps its
 * output, log its input; changing the other in place later is no error. */
enum { LM_UNARY_SAVES_X = 1, LM_UNARY_SAVES_Y = 2 };
int lm_unary_grad_saves(lm_unary_op op, double p0);
lm_status lm_rule_unary(lm_node *n, lm_tensor *g, lm_tensor **gi);
/* the same gradient through a chain of ordinary ops: the fused kernels' reference */
lm_status lm_rule_unary_composite(lm_node *n, lm_tensor *g, lm_tensor **gi);
lm_status lm_rule_binary(lm_node *n, lm_tensor *g, lm_tensor **gi);
lm_status lm_rule_binary_scalar(lm_node *n, lm_tensor *g, lm_tensor **gi);
lm_status lm_rule_where(lm_node *n, lm_tensor *g, lm_tensor **gi);
lm_status lm_rule_reduce(lm_node *n, lm_tensor *g, lm_tensor **gi);
lm_status lm_rule_matmul(lm_node *n, lm_tensor *g, lm_tensor **gi);
lm_status lm_rule_reshape(lm_node *n, lm_tensor *g, lm_tensor **gi);
lm_status lm_rule_permute(lm_node *n, lm_tensor *g, lm_tensor **gi);
lm_status lm_rule_narrow(lm_node *n, lm_tensor *g, lm_tensor **gi);
lm_status lm_rule_select(lm_node *n, lm_tensor *g, lm_tensor **gi);
lm_status lm_rule_expand(lm_node *n, lm_tensor *g, lm_tensor **gi);
lm_status lm_rule_identity(lm_node *n, lm_tensor *g, lm_tensor **gi);
lm_status lm_rule_cat(lm_node *n, lm_tensor *g, lm_tensor **gi);
lm_status lm_rule_gather(lm_node *n, lm_tensor *g, lm_tensor **gi);
lm_status lm_rule_scatter_add(lm_node *n, lm_tensor *g, lm_tensor **gi);
lm_status lm_rule_cumsum(lm_node *n, lm_tensor *g, lm_tensor **gi);
lm_status lm_rule_resample(lm_node *n, lm_tensor *g, lm_tensor **gi);
lm_status lm_rule_resample2d(lm_node *n, lm_tensor *g, lm_tensor **gi);
lm_status lm_rule_linear(lm_node *n, lm_tensor *g, lm_tensor **gi);
lm_status lm_rule_linear_act(lm_node *n, lm_tensor *g, lm_tensor **gi);
lm_status lm_rule_softmax(lm_node *n, lm_tensor *g, lm_tensor **gi);
lm_status lm_rule_log_softmax(lm_node *n, lm_tensor *g, lm_tensor **gi);
lm_status lm_rule_cross_entropy(lm_node *n, lm_tensor *g, lm_tensor **gi);
lm_status lm_rule_dropout(lm_node *n, lm_tensor *g, lm_tensor **gi);
lm_status lm_rule_mse(lm_node *n, lm_tensor *g, lm_tensor **gi);
lm_status lm_rule_mmd(lm_node *n, lm_tensor *g, lm_tensor **gi);
lm_status lm_rule_batch_norm(lm_node *n, lm_tensor *g, lm_tensor **gi);
lm_status lm_rule_conv2d(lm_node *n, lm_tensor *g, lm_tensor **gi);
lm_status lm_rule_max_pool2d(lm_node *n, lm_tensor *g, lm_tensor **gi);
lm_status lm_rule_avg_pool2d(lm_node *n, lm_tensor *g, lm_tensor **gi);

/* The geometry a conv2d or pool2d node stored (nn_ops.c). */
lm_conv_geometry lm_node_geometry(const lm_node *n);

/* A backend without whole-batch convolution slots (conv2d, conv2d_backward):
 * conv2d's forward into out [N, O, oh, ow] (nn_ops.c) and its gradients gx
 * [N, C, H, W] and gw [O, K] (either may be NULL; both start at zero and
 * are added to) from g3 [N, O, oh * ow] (autograd_rules.c), per image and
 * group with im2col / col2im; xc [N, C, H, W], w2 the weight as [O, K]. */
lm_status lm_conv2d_by_images(lm_tensor *out, const lm_backend *be, lm_tensor *xc, lm_tensor *w2,
                              const lm_conv_geometry *g);
lm_status lm_conv2d_backward_by_images(lm_tensor *gx, lm_tensor *gw, const lm_backend *be,
                                       lm_tensor *g3, lm_tensor *xc, lm_tensor *w2,
                                       const lm_conv_geometry *geo);

#endif
