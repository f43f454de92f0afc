"""PyTorch reference for tests/lua/torch_nn_utils_spec.lua: gradient
clipping (torch.nn.utils.clip_grad_norm_ and clip_grad_value_), a module
holding an nn.ModuleList, and the loss modules MSELoss and CrossEntropyLoss.

Clipping cases apply torch's function to seeded float32 gradients of
tensors of different shapes (no loss: both sides see the same gradients).
Writes one safetensors file:
  <case>.grad.<k>     the gradient of parameter k before clipping (absent:
                      the parameter has no gradient)
  <case>.after.<k>    the gradient after clipping
  <case>.total        clip_grad_norm_'s returned total norm (0-D)
  modulelist.<name>   the state dict of Net below, with torch's names
  modulelist.x, modulelist.y   an input and Net's output for it
  mse.<reduction>.output/target/loss, ce.logits/labels/loss  (labels 1-based)
and in __metadata__ "manifest": JSON {"torch": version, "cases": [{name,
fn ("norm" | "value"), max_norm, norm_type (a number or "inf"), clip_value,
nparams, single (one tensor passed, not a list)}], "modulelist_names": [...]}.
Usage: nn_utils_reference.py OUT
"""
import json
import os
import sys

import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_file import save  # noqa: E402

SHAPES = [(4, 3), (5,), (2, 3, 2)]

# name -> (fn, max_norm or clip_value, norm_type, parameters without a gradient (0-based), single tensor)
CASES = {
    "norm2": ("norm", 1.0, 2.0, [], False),
    "norm1": ("norm", 2.0, 1.0, [], False),
    "norm3": ("norm", 0.5, 3.0, [], False),
    "norm_half": ("norm", 3.0, 0.5, [], False),
    "norm_inf": ("norm", 0.25, "inf", [], False),
    "norm2_no_grad": ("norm", 0.7, 2.0, [1], False),
    "norm_inf_no_grad": ("norm", 0.1, "inf", [0], False),
    "norm2_above_total": ("norm", 1000.0, 2.0, [], False),
    "norm1_above_total": ("norm", 1000.0, 1.0, [], False),
    "norm2_single": ("norm", 0.3, 2.0, [], True),
    "norm2_zero_max": ("norm", 0.0, 2.0, [], False),
    "value": ("value", 0.2, None, [], False),
    "value_no_grad": ("value", 0.05, None, [2], False),
    "value_single": ("value", 0.3, None, [], True),
}


class Net(nn.Module):
    """A module holding a ModuleList, built with append and extend."""

    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(3, 4), nn.ELU()])
        self.layers.append(nn.Linear(4, 4))
        self.layers.extend([nn.ELU(), nn.Linear(4, 2)])
        self.head = nn.Linear(2, 1)

    def forward(self, x):
        for m in self.layers:
            x = m(x)
        return self.head(x)


def main():
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(20261205)
    tensors, manifest = {}, []
    for name, (fn, bound, norm_type, no_grad, single) in CASES.items():
        shapes = SHAPES[:1] if single else SHAPES
        params = [torch.zeros(s, requires_grad=True) for s in shapes]
        for k, (p, s) in enumerate(zip(params, shapes)):
            if k in no_grad:
                continue
            p.grad = torch.randn(s, generator=gen) * (0.4 * (k + 1))
            tensors[f"{name}.grad.{k + 1}"] = p.grad.clone()
        arg = params[0] if single else params
        if fn == "norm":
            total = torch.nn.utils.clip_grad_norm_(arg, bound, float(norm_type))
            tensors[f"{name}.total"] = total.detach().clone()
        else:
            torch.nn.utils.clip_grad_value_(arg, bound)
        for k, p in enumerate(params):
            if p.grad is not None:
                tensors[f"{name}.after.{k + 1}"] = p.grad.clone()
        manifest.append({"name": name, "fn": fn, "max_norm": bound if fn == "norm" else None,
                         "clip_value": bound if fn == "value" else None, "norm_type": norm_type,
                         "nparams": len(shapes), "single": single})

    torch.manual_seed(7)
    net = Net()
    names = list(net.state_dict().keys())
    for k, t in net.state_dict().items():
        tensors[f"modulelist.{k}"] = t
    x = torch.randn(5, 3, generator=gen)
    tensors["modulelist.x"] = x
    with torch.no_grad():
        tensors["modulelist.y"] = net(x)

    out, target = torch.randn(4, 3, generator=gen), torch.randn(4, 3, generator=gen)
    for reduction in ("mean", "sum", "none"):
        tensors[f"mse.{reduction}.loss"] = nn.MSELoss(reduction=reduction)(out, target)
    tensors["mse.output"], tensors["mse.target"] = out, target
    logits = torch.randn(6, 5, generator=gen) * 2
    labels = torch.randint(0, 5, (6,), generator=gen)
    tensors["ce.logits"], tensors["ce.labels"] = logits, (labels + 1).to(torch.int32)
    tensors["ce.loss"] = nn.CrossEntropyLoss()(logits, labels)

    save(sys.argv[1], tensors, {"manifest": json.dumps({"torch": torch.__version__, "cases": manifest,
                                                        "modulelist_names": names})})


if __name__ == "__main__":
    main()
