"""PyTorch reference for tests/lua/torch_losses_spec.lua: torch 1.13's
losses binary_cross_entropy (and _with_logits), l1_loss, smooth_l1_loss,
huber_loss, nll_loss and kl_div, their values and gradients, and the
state-dict names of their nn modules.

Each case runs one function of torch.nn.functional in float32 on seeded
inputs (edge values included: probabilities 0 and 1, logits of +-100 and
+-1000, differences exactly at beta or delta, labels all ignored, zero
targets), then backward: a scalar loss from itself, a 'none' loss with a
seeded upstream gradient. Writes one safetensors file:
  <case>.input, <case>.target   (nll_loss: labels int32, 1-based)
  <case>.weight, <case>.pos_weight   when the case has them
  <case>.upstream   the upstream gradient of a 'none' case
  <case>.loss, <case>.grad_input, <case>.grad_target   (grad_target where
                    torch defines one: every loss but nll_loss)
  module.<config>.<name>   the state dict of each module configuration
and in __metadata__ "manifest": JSON {"torch": version, "cases": [{name, fn,
module (the nn class), reduction, options (the Lumen options besides
weight, pos_weight and reduction: beta, delta, ignore_index in Lumen's
1-based numbering, log_target), weight, pos_weight (booleans), target_grad
(boolean)}], "modules": [{config, module, weight, pos_weight, names (the
state dict's keys in torch's order)}]}.
Usage: losses_reference.py OUT
"""
import json
import os
import sys
import warnings

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_file import save  # noqa: E402

GEN = torch.Generator().manual_seed(20261206)
REDUCTIONS = ("mean", "sum", "none")


def randn(*shape):
    return torch.randn(*shape, generator=GEN)


def rand(*shape):
    return torch.rand(*shape, generator=GEN)


def probs(*shape):
    """Probabilities away from 0 and 1 (those have cases of their own)."""
    return rand(*shape) * 0.96 + 0.02


def bce_edges():
    """Probabilities 0 and 1 against targets 0, 1 and soft ones: each log clamped at -100."""
    x = torch.tensor([[0.0, 1.0, 0.0, 1.0, 0.0, 1.0], [0.5, 1e-30, 1 - 2 ** -24, 0.25, 1e-8, 0.999]])
    t = torch.tensor([[0.0, 1.0, 1.0, 0.0, 0.3, 0.6], [1.0, 0.0, 1.0, 0.5, 1.0, 0.0]])
    return x, t


def logit_extremes():
    x = torch.tensor([[1000.0, -1000.0, 100.0, -100.0, 0.0, 30.0],
                      [-1000.0, 1000.0, -100.0, 100.0, 17.0, -17.0]])
    t = torch.tensor([[0.0, 1.0, 0.0, 1.0, 0.5, 0.2], [0.0, 1.0, 0.0, 1.0, 0.7, 1.0]])
    return x, t


def at_threshold(width):
    """Differences exactly at -width, +width and 0, then inside and outside (all exact in float32)."""
    t = torch.tensor([[1.0, 1.0, 1.0, -2.0, 0.25], [0.5, 0.0, 3.0, 1.0, -1.0]])
    d = torch.tensor([[width, -width, 0.0, width / 2, -3 * width], [2 * width, -width / 4, width, -width, 0.0]])
    return t + d, t


def nll_inputs(n, c, *rest):
    logp = F.log_softmax(randn(n, c, *rest) * 2, dim=1)
    labels = torch.randint(0, c, (n, *rest), generator=GEN)
    return logp, labels


def kl_inputs(log_target):
    x = F.log_softmax(randn(4, 5), dim=1)
    p = F.softmax(randn(4, 5) * 2, dim=1)
    p[0, 1], p[2, 3], p[3, 0] = 0.0, 0.0, 0.0  # zero targets: xlogy gives 0
    if log_target:
        t = p.log()
        t[0, 1], t[2, 3], t[3, 0] = -1000.0, -100.0, -50.0  # exp underflows to 0 (or nearly)
        return x, t
    return x, p


# name -> (fn, module, inputs (a function), options (torch's keywords besides weight/pos_weight),
#          weight, pos_weight, reductions)
CASES = {}


def case(name, fn, module, inputs, options=None, weight=None, pos_weight=None, reductions=REDUCTIONS):
    for r in reductions:
        CASES[f"{name}_{r}"] = (fn, module, inputs, options or {}, weight, pos_weight, r)


case("bce", "binary_cross_entropy", "BCELoss", lambda: (probs(4, 5), rand(4, 5)))
case("bce_hard", "binary_cross_entropy", "BCELoss", lambda: (probs(6, 3), torch.randint(0, 2, (6, 3), generator=GEN)
                                                               .float()))
case("bce_weight", "binary_cross_entropy", "BCELoss", lambda: (probs(4, 5), rand(4, 5)), weight=lambda: rand(5) * 2)
case("bce_weight_full", "binary_cross_entropy", "BCELoss", lambda: (probs(3, 4), rand(3, 4)),
     weight=lambda: rand(3, 4) + 0.5)
case("bce_edges", "binary_cross_entropy", "BCELoss", bce_edges)
case("bce_edges_weight", "binary_cross_entropy", "BCELoss", bce_edges, weight=lambda: rand(6) + 0.5)

case("bcel", "binary_cross_entropy_with_logits", "BCEWithLogitsLoss", lambda: (randn(4, 5) * 3, rand(4, 5)))
case("bcel_weight", "binary_cross_entropy_with_logits", "BCEWithLogitsLoss", lambda: (randn(4, 5) * 3, rand(4, 5)),
     weight=lambda: rand(4, 1) * 2)
case("bcel_pos_weight", "binary_cross_entropy_with_logits", "BCEWithLogitsLoss",
     lambda: (randn(4, 5) * 3, rand(4, 5)), pos_weight=lambda: rand(5) * 3)
case("bcel_both", "binary_cross_entropy_with_logits", "BCEWithLogitsLoss", lambda: (randn(4, 5) * 3, rand(4, 5)),
     weight=lambda: rand(5) + 0.5, pos_weight=lambda: rand(5) * 3)
case("bcel_extremes", "binary_cross_entropy_with_logits", "BCEWithLogitsLoss", logit_extremes)
case("bcel_extremes_pos_weight", "binary_cross_entropy_with_logits", "BCEWithLogitsLoss", logit_extremes,
     pos_weight=lambda: torch.tensor([2.0, 0.5, 3.0, 1.5, 2.5, 0.25]))

case("l1", "l1_loss", "L1Loss", lambda: (randn(4, 5), randn(4, 5)))
case("l1_equal", "l1_loss", "L1Loss", lambda: at_threshold(1.0))
case("smooth_l1", "smooth_l1_loss", "SmoothL1Loss", lambda: (randn(4, 5) * 2, randn(4, 5)))
case("smooth_l1_beta", "smooth_l1_loss", "SmoothL1Loss", lambda: (randn(4, 5), randn(4, 5)), {"beta": 0.3})
case("smooth_l1_at_beta", "smooth_l1_loss", "SmoothL1Loss", lambda: at_threshold(0.5), {"beta": 0.5})
case("smooth_l1_at_default_beta", "smooth_l1_loss", "SmoothL1Loss", lambda: at_threshold(1.0))
case("smooth_l1_beta0", "smooth_l1_loss", "SmoothL1Loss", lambda: at_threshold(0.5), {"beta": 0.0})


def infinite_differences():
    """Differences of +-inf and beyond float32's square: torch's gradients stay +-1 there."""
    return torch.tensor([[float("inf"), float("-inf"), 1e30, 2.0, 2e38]]), torch.tensor([[0.0, 0.0, 0.0, float("inf"), 0.0]])


case("smooth_l1_infinite", "smooth_l1_loss", "SmoothL1Loss", infinite_differences)
case("smooth_l1_beta0_infinite", "smooth_l1_loss", "SmoothL1Loss", infinite_differences, {"beta": 0.0})
case("huber_infinite", "huber_loss", "HuberLoss", infinite_differences, {"delta": 2.0})
case("huber", "huber_loss", "HuberLoss", lambda: (randn(4, 5) * 2, randn(4, 5)))
case("huber_delta", "huber_loss", "HuberLoss", lambda: (randn(4, 5) * 3, randn(4, 5)), {"delta": 2.5})
case("huber_at_delta", "huber_loss", "HuberLoss", lambda: at_threshold(0.5), {"delta": 0.5})
case("huber_at_default_delta", "huber_loss", "HuberLoss", lambda: at_threshold(1.0))


def nll_ignoring(labels_of):
    def make():
        logp, labels = nll_inputs(6, 4)
        return logp, labels_of(labels)
    return make


def some_ignored(labels):
    labels[1], labels[4] = -100, -100
    return labels


def class2_twice(labels):
    labels[0], labels[3] = 2, 2
    return labels


case("nll", "nll_loss", "NLLLoss", lambda: nll_inputs(6, 4))
case("nll_weight", "nll_loss", "NLLLoss", lambda: nll_inputs(6, 4), weight=lambda: rand(4) * 2 + 0.1)
case("nll_ignore_default", "nll_loss", "NLLLoss", nll_ignoring(some_ignored))
case("nll_ignore_class", "nll_loss", "NLLLoss", nll_ignoring(class2_twice), {"ignore_index": 2})
case("nll_weight_ignore", "nll_loss", "NLLLoss", nll_ignoring(class2_twice), {"ignore_index": 2},
     weight=lambda: rand(4) * 2 + 0.1)


def ignored_rows_masked():
    """Ignored rows whose first class is -inf, or all NaN (a fully masked row): torch never reads them."""
    logp, labels = nll_inputs(6, 4)
    logp[1, 0] = float("-inf")
    logp[4, :] = float("nan")
    labels[1], labels[4] = -100, -100
    return logp, labels


case("nll_ignored_masked", "nll_loss", "NLLLoss", ignored_rows_masked, weight=lambda: rand(4) + 0.5)
case("nll_all_ignored", "nll_loss", "NLLLoss", nll_ignoring(lambda y: torch.full_like(y, -100)))
case("nll_all_ignored_weight", "nll_loss", "NLLLoss", nll_ignoring(lambda y: torch.full_like(y, -100)),
     weight=lambda: rand(4) + 0.5)
case("nll_spatial", "nll_loss", "NLLLoss", lambda: nll_inputs(2, 3, 4, 2), weight=lambda: rand(3) + 0.5)
case("nll_one", "nll_loss", "NLLLoss", lambda: (F.log_softmax(randn(5), 0), torch.tensor(3)))



def ce_inputs(n, c, *rest):
    return randn(n, c, *rest) * 2, torch.randint(0, c, (n, *rest), generator=GEN)


def ce_ignoring(labels_of, *shape):
    def make():
        logits, labels = ce_inputs(*shape)
        return logits, labels_of(labels)
    return make


case("ce", "cross_entropy", "CrossEntropyLoss", lambda: ce_inputs(6, 4))
case("ce_weight", "cross_entropy", "CrossEntropyLoss", lambda: ce_inputs(6, 4), weight=lambda: rand(4) * 2 + 0.1)
case("ce_ignore_default", "cross_entropy", "CrossEntropyLoss", ce_ignoring(some_ignored, 6, 4))
case("ce_ignore_class", "cross_entropy", "CrossEntropyLoss", ce_ignoring(class2_twice, 6, 4), {"ignore_index": 2})
case("ce_smooth", "cross_entropy", "CrossEntropyLoss", lambda: ce_inputs(6, 4), {"label_smoothing": 0.1})
case("ce_smooth_weight_ignore", "cross_entropy", "CrossEntropyLoss", ce_ignoring(some_ignored, 6, 4),
     {"label_smoothing": 0.2}, weight=lambda: rand(4) * 2 + 0.1)
case("ce_smooth_ignore", "cross_entropy", "CrossEntropyLoss", ce_ignoring(some_ignored, 6, 4),
     {"label_smoothing": 0.3})
case("ce_spatial", "cross_entropy", "CrossEntropyLoss", lambda: ce_inputs(2, 3, 4, 2), {"label_smoothing": 0.1},
     weight=lambda: rand(3) + 0.5)
case("ce_one", "cross_entropy", "CrossEntropyLoss", lambda: (randn(5), torch.tensor(3)), {"label_smoothing": 0.1})

case("kl", "kl_div", "KLDivLoss", lambda: kl_inputs(False), reductions=("mean", "batchmean", "sum", "none"))
case("kl_log_target", "kl_div", "KLDivLoss", lambda: kl_inputs(True), {"log_target": True},
     reductions=("mean", "batchmean", "sum", "none"))

# config -> (module, torch keyword arguments)
MODULES = {
    "bce": ("BCELoss", {}),
    "bce_weight": ("BCELoss", {"weight": True}),
    "bcel": ("BCEWithLogitsLoss", {}),
    "bcel_pos_weight": ("BCEWithLogitsLoss", {"pos_weight": True}),
    "bcel_both": ("BCEWithLogitsLoss", {"weight": True, "pos_weight": True}),
    "l1": ("L1Loss", {}),
    "smooth_l1": ("SmoothL1Loss", {}),
    "huber": ("HuberLoss", {}),
    "nll": ("NLLLoss", {}),
    "nll_weight": ("NLLLoss", {"weight": True}),
    "kl": ("KLDivLoss", {}),
    "ce": ("CrossEntropyLoss", {}),
    "ce_weight": ("CrossEntropyLoss", {"weight": True}),
}


def run_case(name, tensors):
    fn, module, inputs, options, weight, pos_weight, reduction = CASES[name]
    x, t = inputs()
    x = x.clone().requires_grad_()
    labels = fn in ("nll_loss", "cross_entropy")
    target_grad = not labels
    if target_grad:
        t = t.clone().requires_grad_()
    kwargs = dict(options)
    if weight:
        kwargs["weight"] = weight()
        tensors[f"{name}.weight"] = kwargs["weight"]
    if pos_weight:
        kwargs["pos_weight"] = pos_weight()
        tensors[f"{name}.pos_weight"] = kwargs["pos_weight"]
    loss = getattr(F, fn)(x, t, reduction=reduction, **kwargs)
    if reduction == "none":
        upstream = torch.randn(loss.shape, generator=GEN)
        tensors[f"{name}.upstream"] = upstream
        loss.backward(upstream)
    else:
        loss.backward()
    tensors[f"{name}.input"] = x.detach()
    # classes from 1; the ignored -100 is no class and stays
    tensors[f"{name}.target"] = torch.where(t < 0, t, t + 1).to(torch.int32) if labels else t.detach()
    tensors[f"{name}.loss"] = loss.detach()
    tensors[f"{name}.grad_input"] = x.grad
    if target_grad:
        tensors[f"{name}.grad_target"] = t.grad
    lumen_options = dict(options)
    if "ignore_index" in lumen_options and lumen_options["ignore_index"] >= 0:
        lumen_options["ignore_index"] += 1  # a class: Lumen numbers classes from 1
    return {"name": name, "fn": fn, "module": module, "reduction": reduction, "options": lumen_options,
            "weight": bool(weight), "pos_weight": bool(pos_weight), "target_grad": target_grad}


def main():
    torch.set_num_threads(1)
    # kl_div's 'mean' is torch's (over every element), on purpose
    warnings.filterwarnings("ignore", message="reduction: 'mean' divides")
    tensors, cases, modules = {}, [], []
    for name in CASES:
        cases.append(run_case(name, tensors))
    for config, (module, kwargs) in MODULES.items():
        made = {k: rand(3) + 0.5 for k in kwargs}
        m = getattr(nn, module)(**made)
        for k, v in m.state_dict().items():
            tensors[f"module.{config}.{k}"] = v
        modules.append({"config": config, "module": module, "weight": "weight" in made,
                        "pos_weight": "pos_weight" in made, "names": list(m.state_dict().keys())})
    save(sys.argv[1], tensors, {"manifest": json.dumps({"torch": torch.__version__, "cases": cases,
                                                        "modules": modules})})


if __name__ == "__main__":
    main()
