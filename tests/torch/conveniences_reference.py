"""PyTorch reference for tests/lua/torch_conveniences_spec.lua: the tensor
methods and creation functions composed in Lua (lua/lumen/conveniences.lua,
F.hardtanh / F.relu6 and their modules) against torch's.

Every case writes its inputs and torch's outputs; differentiable cases take
the gradient of sum(y * g) for a fixed upstream g, as <case>.g and
<case>.grad. Names:
  <case>.x, <case>.mask       inputs
  <case>.y, <case>.indices    torch's outputs (indices 1-based, int32)
and in __metadata__ "manifest": JSON {"cases": [{name, kind, args}, ...]}.
Usage: conveniences_reference.py OUT
"""
import json
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_file import save  # noqa: E402

torch.manual_seed(7)
tensors, cases = {}, []


def differentiable(name, kind, x, fn, args, g=None):
    x = x.clone().requires_grad_(True)
    y = fn(x)
    g = torch.randn(y.shape) if g is None else g
    (y * g).sum().backward()
    tensors.update({name + ".x": x.detach(), name + ".y": y.detach(), name + ".g": g, name + ".grad": x.grad})
    cases.append({"name": name, "kind": kind, "args": args})


# softmax and log_softmax as methods, over each dimension and the default (the last)
x3 = torch.randn(3, 4, 5) * 3
for dim in [1, 2, 3, None]:
    suffix = "default" if dim is None else str(dim)
    d = -1 if dim is None else dim - 1
    differentiable("softmax_" + suffix, "softmax", x3, lambda x: x.softmax(d), {"dim": dim})
    differentiable("log_softmax_" + suffix, "log_softmax", x3, lambda x: x.log_softmax(d), {"dim": dim})

# softplus as a method: defaults, and beta 2 with threshold 5 (both sides of it)
xs = torch.linspace(-6, 6, 25)
differentiable("softplus_default", "softplus", xs, F.softplus, {})
differentiable("softplus_beta2_threshold5", "softplus", xs, lambda x: F.softplus(x, 2, 5), {"beta": 2, "threshold": 5})

# masked_fill: masks that broadcast along rows and along columns, one of x's own shape
xm = torch.randn(3, 4)
for name, mask, value in [("row", torch.tensor([1, 0, 0, 1]), -1e9),
                          ("column", torch.tensor([[0], [1], [0]]), 0.5),
                          ("full", (torch.randn(3, 4) > 0).int(), -2.25)]:
    case = "masked_fill_" + name
    tensors[case + ".mask"] = mask.to(torch.int32)
    differentiable(case, "masked_fill", xm, lambda x: x.masked_fill(mask.bool(), value), {"value": value})

# hardtanh at, inside and beyond its bounds: torch passes the gradient strictly inside only
xh = torch.tensor([-3.0, -1.0, -0.999, -0.5, 0.0, 0.5, 0.999, 1.0, 2.0, -0.5, 1.5, 2.0, 2.5, 6.0, 6.5])
differentiable("hardtanh_default", "hardtanh", xh, F.hardtanh, {})
differentiable("hardtanh_min-0.5_max2", "hardtanh", xh, lambda x: F.hardtanh(x, -0.5, 2.0),
               {"min_val": -0.5, "max_val": 2.0})
differentiable("relu6", "relu6", xh * 2, F.relu6, {})
# the same through clamp: torch's clamp passes it at the bounds too, as Lumen's
differentiable("clamp_-1_1", "clamp", xh, lambda x: x.clamp(-1, 1), {"min": -1, "max": 1})

# linspace in float32, bit for bit
for start, stop, steps in [(0, 1, 7), (-3.3, 7.1, 11), (0, 1, 1), (5, -2, 4), (0, 10, 100),
                           (-1, 1, 2), (1e-3, 3.7, 33), (0.1, 0.7, 0), (-7.7, 1.3, 50), (2.5, -9.1, 1000),
                           (0.3, 0.3, 5), (-1e-5, 2e-5, 31), (1e4, -3.25e4, 77)]:
    name = "linspace_%g_%g_%d" % (start, stop, steps)
    tensors[name + ".y"] = torch.linspace(start, stop, steps, dtype=torch.float32)
    cases.append({"name": name, "kind": "linspace", "args": {"start": start, "stop": stop, "steps": steps}})

# and random ones: both halves, the blocks of 16 and the scalar tail
gen = torch.Generator().manual_seed(5)
for k in range(20):
    start, stop = [round(v, 3) for v in (torch.rand(2, generator=gen) * 40 - 20).tolist()]
    steps = int(torch.randint(2, 200, (1,), generator=gen))
    name = "linspace_random_%d" % k
    tensors[name + ".y"] = torch.linspace(start, stop, steps, dtype=torch.float32)
    cases.append({"name": name, "kind": "linspace", "args": {"start": start, "stop": stop, "steps": steps}})

for n, m in [(3, None), (2, 4), (4, 1)]:
    name = "eye_%d_%s" % (n, m)
    tensors[name + ".y"] = torch.eye(n) if m is None else torch.eye(n, m)
    cases.append({"name": name, "kind": "eye", "args": {"n": n, "m": m}})

# sort and argsort over distinct values (torch's sort is not stable: ties would differ)
xsort = torch.randperm(60).float().reshape(3, 4, 5) * 0.37 - 9
for dim in [1, 2, 3, None]:
    for descending in [False, True]:
        name = "sort_%s_%s" % ("default" if dim is None else dim, "descending" if descending else "ascending")
        values, indices = torch.sort(xsort, -1 if dim is None else dim - 1, descending)
        tensors[name + ".x"] = xsort
        tensors[name + ".y"] = values
        tensors[name + ".indices"] = (indices + 1).to(torch.int32)
        cases.append({"name": name, "kind": "sort", "args": {"dim": dim, "descending": descending}})

save(sys.argv[1], tensors, {"manifest": json.dumps({"cases": cases})})
