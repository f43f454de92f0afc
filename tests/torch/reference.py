"""PyTorch reference for tests/lua/torch_spec.lua: this file defines the cases.

Usage: /usr/bin/python3 tests/torch/reference.py OUT.safetensors
(Debian's python3-torch works only with /usr/bin/python3.)

For every case it generates the inputs (seeded, float32, the values of a
case all distinct so that max, min, maximum, clamp and max pooling have no
ties; only cases without such ops opt out of the check), computes the
forward output and the gradients of sum(output * r) (r random, saved too)
with respect to every differentiable input, and writes one safetensors file:

  inputs/<case>/<name>     the case's inputs (float32; labels int32)
  r/<case>                 the weights r of sum(output * r)
  expected/<case>/out      the expected output
  expected/<case>/indices  the expected indices, when the op returns them
  expected/<case>/grad/<n> the expected gradient with respect to input <n>

and in __metadata__ a key "manifest" holding a JSON string:
  {"version", "conventions", "count", "cases": [{"name", "inputs", "grad",
   "options", "outputs", "expected"}, ...]}
where "expected" lists every expected tensor's short name ("out",
"indices", "grad/<n>").

The reference is computed in float64 from the float32 inputs (independent of
and more exact than Lumen's float32 arithmetic) and saved as float32.

Conventions of the manifest, as the Lua side reads them:
  - dimension options ("dim", "dims", "dim0", ...) and positions ("start",
    "index") are PyTorch's, 0-based; the Lua side adds 1 to non-negative ones;
  - integer outputs ("indices" of max/min, the "out" of argmax/argmin) are
    saved int32 and 1-based, as Lumen returns them (PyTorch's index + 1);
  - labels (cross_entropy) are saved 1-based, as Lumen takes them.
Cases with the option "special" (NaN, infinities, signed zeros among the
inputs) may expect non-finite values; the Lua side compares them element by
element.
Where Lumen documents a convention that differs from PyTorch's default, the
reference follows Lumen's and says so at the case:
  - var/std: unbiased (divide by n - 1), which is also PyTorch's default;
  - avg_pool2d: padding counted in the divisor (count_include_pad=True, also
    PyTorch's default);
  - mse: 1/2 sum over features, mean over the batch (DESIGN.md), not
    PyTorch's mse_loss; reduction 'none' gives the per-sample [N] errors;
  - mmd: DESIGN.md's kernel exp(-|a-b|^2 / (bw D)), biased estimate over all
    pairs (i = j included), a sum of kernels for a list of bandwidths, times
    an optional weight; written here from pairwise differences, not from
    Lumen's |a|^2 + |b|^2 - 2 a.b.
"""
import json
import math
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_file import save  # noqa: E402

SEED = 20240611


# ---- input generators (float32; the case checks distinctness) -------------------------------

GEN = torch.Generator().manual_seed(SEED)


def distinct(draw):
    """draw() again until its float32 values are all different (seeded, so still reproducible)."""
    while True:
        x = draw().float()
        if x.unique().numel() == x.numel():
            return x


def randn(*shape, scale=1.0):
    return distinct(lambda: torch.randn(tuple(shape), generator=GEN, dtype=torch.float64) * scale)


def uniform(*shape, lo=0.0, hi=1.0):
    return distinct(lambda: lo + (hi - lo) * torch.rand(tuple(shape), generator=GEN, dtype=torch.float64))


def away_from_zero(*shape, lo=0.5, hi=2.0):
    """Magnitudes in [lo, hi] with random signs (divisors, reciprocals)."""
    sign = torch.where(torch.rand(tuple(shape), generator=GEN) < 0.5, -1.0, 1.0)
    return uniform(*shape, lo=lo, hi=hi) * sign


def spread(*shape, lo=-3.0, hi=3.0):
    """Many distinct values (too many for randn to avoid float32 ties): a shuffled, jittered grid on [lo, hi]."""
    n = math.prod(shape)
    perm = torch.randperm(n, generator=GEN, dtype=torch.float64)
    jitter = 0.25 + 0.5 * torch.rand(n, generator=GEN, dtype=torch.float64)
    x = (lo + (hi - lo) * (perm + jitter) / n).reshape(shape).float()
    assert x.unique().numel() == n
    return x


def mask(*shape):
    return (torch.rand(tuple(shape), generator=GEN) < 0.5).float()


def labels(n, classes):
    return torch.randint(1, classes + 1, (n,), generator=GEN, dtype=torch.int32)


# ---- the cases ------------------------------------------------------------------------------

CASES = []


def case(name, inputs, grad, fn, options=None, check_distinct=True):
    """inputs: name -> float32/int32 tensor; grad: names needing gradients;
    fn(t, options) -> output, or (output, {"indices": LongTensor}) on float64 inputs."""
    assert all(c["name"] != name for c in CASES), name
    if check_distinct:
        values = torch.cat([v.flatten() for k, v in inputs.items() if v.dtype == torch.float32])
        assert values.unique().numel() == values.numel(), f"{name}: inputs have ties"
    CASES.append({"name": name, "inputs": inputs, "grad": grad, "fn": fn, "options": options or {}})


# elementwise binary, broadcasting, non-contiguous (transposed) operands
for op, fn in [("add", torch.add), ("sub", torch.sub), ("mul", torch.mul), ("div", torch.div)]:
    b_gen = (lambda *s: away_from_zero(*s)) if op == "div" else (lambda *s: randn(*s))
    case(f"{op}_same_shape", {"a": randn(5, 7), "b": b_gen(5, 7)}, ["a", "b"],
         lambda t, o, fn=fn: fn(t["a"], t["b"]))
    case(f"{op}_broadcast", {"a": randn(2, 3, 4), "b": b_gen(3, 1)}, ["a", "b"],
         lambda t, o, fn=fn: fn(t["a"], t["b"]))
    case(f"{op}_broadcast_both", {"a": randn(4, 1), "b": b_gen(1, 3)}, ["a", "b"],
         lambda t, o, fn=fn: fn(t["a"], t["b"]))
    # a is stored [4, 3] and used transposed: a non-contiguous [3, 4] view
    case(f"{op}_transposed", {"a": randn(4, 3), "b": b_gen(4)}, ["a", "b"],
         lambda t, o, fn=fn: fn(t["a"].t(), t["b"]))
    case(f"{op}_one_grad", {"a": randn(3, 4), "b": b_gen(3, 4)}, ["b"],
         lambda t, o, fn=fn: fn(t["a"], t["b"]))
case("mul_self", {"x": randn(3, 4)}, ["x"], lambda t, o: t["x"] * t["x"])
# an int32 operand is promoted to float32 (docs/api.md); only the float side has a gradient
case("mul_int_operand", {"a": randn(3, 4), "n": torch.randint(-3, 4, (3, 4), generator=GEN, dtype=torch.int32)},
     ["a"], lambda t, o: t["a"] * t["n"].double())
case("div_by_int_operand", {"a": randn(3, 4), "n": torch.randint(1, 5, (4,), generator=GEN, dtype=torch.int32)},
     ["a"], lambda t, o: t["a"] / t["n"].double())
case("pow_tensor", {"a": uniform(3, 4, lo=0.5, hi=2.0), "b": randn(3, 4)}, ["a", "b"],
     lambda t, o: torch.pow(t["a"], t["b"]))
case("pow_tensor_broadcast", {"a": uniform(3, 4, lo=0.5, hi=2.0), "b": randn(4)}, ["a", "b"],
     lambda t, o: torch.pow(t["a"], t["b"]))
case("maximum", {"a": randn(3, 4), "b": randn(4)}, ["a", "b"], lambda t, o: torch.maximum(t["a"], t["b"]))
case("minimum", {"a": randn(3, 4), "b": randn(3, 1)}, ["a", "b"], lambda t, o: torch.minimum(t["a"], t["b"]))

# tensor-scalar: x op s and s op x
for op, fn, x_gen in [
    ("add", lambda x, s: x + s, randn), ("sub", lambda x, s: x - s, randn),
    ("mul", lambda x, s: x * s, randn), ("div", lambda x, s: x / s, randn),
    ("radd", lambda x, s: s + x, randn), ("rsub", lambda x, s: s - x, randn),
    ("rmul", lambda x, s: s * x, randn), ("rdiv", lambda x, s: s / x, away_from_zero),
]:
    case(f"{op}_scalar", {"x": x_gen(4, 5)}, ["x"], lambda t, o, fn=fn: fn(t["x"], o["scalar"]),
         {"scalar": -2.5})
for label, p, gen in [("2", 2.0, randn), ("3", 3.0, randn), ("0.5", 0.5, lambda *s: uniform(*s, lo=0.2, hi=3.0)),
                      ("-1", -1.0, away_from_zero), ("1.5", 1.5, lambda *s: uniform(*s, lo=0.2, hi=3.0))]:
    case(f"pow_scalar_{label}", {"x": gen(4, 5)}, ["x"], lambda t, o: torch.pow(t["x"], o["exponent"]),
         {"exponent": p})
case("rpow_scalar", {"x": randn(4, 5)}, ["x"], lambda t, o: torch.pow(o["base"], t["x"]), {"base": 2.0})
case("maximum_scalar", {"x": randn(4, 5)}, ["x"], lambda t, o: torch.clamp(t["x"], min=o["scalar"]),
     {"scalar": 0.25})
case("minimum_scalar", {"x": randn(4, 5)}, ["x"], lambda t, o: torch.clamp(t["x"], max=o["scalar"]),
     {"scalar": 0.25})

# elementwise unary; odd sizes (37 x 29) reach the vectorised loops' tails
UNARY = [
    ("neg", torch.neg, randn), ("unm", torch.neg, randn),
    ("exp", torch.exp, randn), ("log", torch.log, lambda *s: uniform(*s, lo=0.1, hi=4.0)),
    ("sqrt", torch.sqrt, lambda *s: uniform(*s, lo=0.1, hi=4.0)), ("abs", torch.abs, randn),
    ("sign", torch.sign, randn), ("tanh", torch.tanh, lambda *s: randn(*s, scale=2.0)),
    ("sigmoid", torch.sigmoid, lambda *s: randn(*s, scale=3.0)), ("relu", torch.relu, randn),
    ("elu", F.elu, lambda *s: randn(*s, scale=2.0)),
]
for name, fn, gen in UNARY:
    case(name, {"x": gen(37, 29)}, ["x"], lambda t, o, fn=fn: fn(t["x"]))
for name in ["exp", "tanh", "sigmoid", "relu", "elu"]:  # the fused backward kernels on a strided input
    fn = dict((n, f) for n, f, _ in UNARY)[name]
    case(f"{name}_transposed", {"x": randn(6, 5)}, ["x"], lambda t, o, fn=fn: fn(t["x"].t()))
for approximate in ["none", "tanh"]:  # GELU's two forms: the fused backward, strided input, both tails
    case(f"gelu_{approximate}", {"x": randn(37, 29, scale=3.0)}, ["x"],
         lambda t, o: F.gelu(t["x"], approximate=o["approximate"]), {"approximate": approximate})
    case(f"gelu_{approximate}_transposed", {"x": randn(6, 5, scale=3.0)}, ["x"],
         lambda t, o: F.gelu(t["x"].t(), approximate=o["approximate"]), {"approximate": approximate})
for alpha in [0.5, 2.0]:
    case(f"elu_alpha_{alpha}", {"x": randn(6, 7, scale=2.0)}, ["x"],
         lambda t, o: F.elu(t["x"], alpha=o["alpha"]), {"alpha": alpha})
# clamp with values inside and outside the range
case("clamp", {"x": randn(6, 7, scale=2.0)}, ["x"], lambda t, o: torch.clamp(t["x"], o["min"], o["max"]),
     {"min": -1.0, "max": 0.5})
case("clamp_min", {"x": randn(6, 7, scale=2.0)}, ["x"], lambda t, o: torch.clamp(t["x"], min=o["min"]),
     {"min": -0.5})
case("clamp_max", {"x": randn(6, 7, scale=2.0)}, ["x"], lambda t, o: torch.clamp(t["x"], max=o["max"]),
     {"max": 0.5})
case("where", {"cond": mask(3, 4), "a": randn(3, 4), "b": randn(4)}, ["a", "b"],
     lambda t, o: torch.where(t["cond"] != 0, t["a"], t["b"]), check_distinct=False)
case("where_broadcast_cond", {"cond": mask(3, 1), "a": randn(3, 4), "b": randn(3, 4)}, ["a", "b"],
     lambda t, o: torch.where(t["cond"] != 0, t["a"], t["b"]), check_distinct=False)

# reductions (x [3, 4, 5])
case("sum_all", {"x": randn(3, 4, 5)}, ["x"], lambda t, o: t["x"].sum())
case("mean_all", {"x": randn(3, 4, 5)}, ["x"], lambda t, o: t["x"].mean())
for dim in [0, 1, 2, -1]:
    for keep in [False, True]:
        suffix = f"dim{dim}" + ("_keepdim" if keep else "")
        opts = {"dim": dim, "keepdim": keep}
        case(f"sum_{suffix}", {"x": randn(3, 4, 5)}, ["x"], lambda t, o: t["x"].sum(o["dim"], keepdim=o["keepdim"]), opts)
        case(f"mean_{suffix}", {"x": randn(3, 4, 5)}, ["x"], lambda t, o: t["x"].mean(o["dim"], keepdim=o["keepdim"]), opts)
        for red in ["max", "min"]:
            def fn(t, o, red=red):
                v, i = getattr(t["x"], red)(o["dim"], keepdim=o["keepdim"])
                return v, {"indices": i}
            case(f"{red}_{suffix}", {"x": randn(3, 4, 5)}, ["x"], fn, opts)
        # unbiased, Lumen's documented convention and PyTorch's default
        case(f"var_{suffix}", {"x": randn(3, 4, 5)}, ["x"],
             lambda t, o: t["x"].var(o["dim"], unbiased=True, keepdim=o["keepdim"]), opts)
        case(f"std_{suffix}", {"x": randn(3, 4, 5)}, ["x"],
             lambda t, o: t["x"].std(o["dim"], unbiased=True, keepdim=o["keepdim"]), opts)
case("sum_transposed", {"x": randn(4, 3)}, ["x"], lambda t, o: t["x"].t().sum(o["dim"]), {"dim": 1})
case("max_all", {"x": randn(3, 4, 5)}, ["x"], lambda t, o: t["x"].max())
case("min_all", {"x": randn(3, 4, 5)}, ["x"], lambda t, o: t["x"].min())
case("var_all", {"x": randn(3, 4, 5)}, ["x"], lambda t, o: t["x"].var(unbiased=True))
case("std_all", {"x": randn(3, 4, 5)}, ["x"], lambda t, o: t["x"].std(unbiased=True))
case("max_dim_transposed", {"x": randn(5, 4)}, ["x"],
     lambda t, o: (lambda v, i: (v, {"indices": i}))(*t["x"].t().max(o["dim"])), {"dim": 1})
# argmax / argmin: integer outputs only (no gradient), compared exactly, 1-based
for red in ["argmax", "argmin"]:
    case(f"{red}_dim1", {"x": randn(3, 4, 5)}, [], lambda t, o, red=red: getattr(t["x"], red)(o["dim"]),
         {"dim": 1})
    case(f"{red}_all", {"x": randn(3, 4, 5)}, [], lambda t, o, red=red: getattr(t["x"], red)())

# softmax / log_softmax along each dimension, and the default (last)
for name, fn in [("softmax", F.softmax), ("log_softmax", F.log_softmax)]:
    for dim in [0, 1, 2]:
        case(f"{name}_dim{dim}", {"x": randn(3, 4, 5, scale=2.0)}, ["x"],
             lambda t, o, fn=fn: fn(t["x"], dim=o["dim"]), {"dim": dim})
    case(f"{name}_default", {"x": randn(4, 6, scale=2.0)}, ["x"], lambda t, o, fn=fn: fn(t["x"], dim=-1))
    case(f"{name}_transposed", {"x": randn(6, 4, scale=2.0)}, ["x"],
         lambda t, o, fn=fn: fn(t["x"].t(), dim=o["dim"]), {"dim": 1})

# pooling ([N, C, H, W]); max excludes padding; avg counts it (count_include_pad=True, Lumen's convention)
for k, stride, pad in [(2, 2, 0), (3, 2, 1), (3, 1, 1), (2, 1, 0)]:
    opts = {"kernel": k, "stride": stride, "padding": pad}
    case(f"max_pool2d_k{k}_s{stride}_p{pad}", {"x": randn(2, 3, 7, 6)}, ["x"],
         lambda t, o: F.max_pool2d(t["x"], o["kernel"], o["stride"], o["padding"]), opts)
    case(f"avg_pool2d_k{k}_s{stride}_p{pad}", {"x": randn(2, 3, 7, 6)}, ["x"],
         lambda t, o: F.avg_pool2d(t["x"], o["kernel"], o["stride"], o["padding"], count_include_pad=True), opts)
case("max_pool2d_default_stride", {"x": randn(1, 2, 6, 6)}, ["x"], lambda t, o: F.max_pool2d(t["x"], o["kernel"]),
     {"kernel": 3})
case("global_avg_pool2d", {"x": randn(2, 3, 5, 4)}, ["x"], lambda t, o: t["x"].mean((2, 3)))

# cat / stack
for dim in [0, 1, 2]:
    sizes = [[2, 3, 4] for _ in range(3)]
    for j in range(3):
        sizes[j][dim] = j + 1
    case(f"cat_dim{dim}", {"a": randn(*sizes[0]), "b": randn(*sizes[1]), "c": randn(*sizes[2])}, ["a", "b", "c"],
         lambda t, o: torch.cat([t["a"], t["b"], t["c"]], o["dim"]), {"dim": dim})
case("cat_partial_grad", {"a": randn(2, 3), "b": randn(2, 2), "c": randn(2, 1)}, ["a", "c"],
     lambda t, o: torch.cat([t["a"], t["b"], t["c"]], o["dim"]), {"dim": 1})
for dim in [0, 1, 2]:
    case(f"stack_dim{dim}", {"a": randn(3, 4), "b": randn(3, 4), "c": randn(3, 4)}, ["a", "b", "c"],
         lambda t, o: torch.stack([t["a"], t["b"], t["c"]], o["dim"]), {"dim": dim})

# views (differentiable in Lumen)
case("narrow", {"x": randn(4, 5)}, ["x"], lambda t, o: t["x"].narrow(o["dim"], o["start"], o["length"]),
     {"dim": 1, "start": 1, "length": 3})
case("select", {"x": randn(3, 4, 5)}, ["x"], lambda t, o: t["x"].select(o["dim"], o["index"]),
     {"dim": 1, "index": 2})
case("index", {"x": randn(3, 4)}, ["x"], lambda t, o: t["x"][o["index"]], {"index": 1})
case("transpose", {"x": randn(2, 3, 4)}, ["x"], lambda t, o: t["x"].transpose(o["dim0"], o["dim1"]),
     {"dim0": 0, "dim1": 2})
case("t", {"x": randn(3, 4)}, ["x"], lambda t, o: t["x"].t())
case("permute", {"x": randn(2, 3, 4)}, ["x"], lambda t, o: t["x"].permute(*o["dims"]), {"dims": [2, 0, 1]})
case("view", {"x": randn(2, 3, 4)}, ["x"], lambda t, o: t["x"].view(*o["shape"]), {"shape": [6, 4]})
case("view_infer", {"x": randn(2, 3, 4)}, ["x"], lambda t, o: t["x"].view(*o["shape"]), {"shape": [-1]})
case("reshape_transposed", {"x": randn(3, 4)}, ["x"], lambda t, o: t["x"].t().reshape(*o["shape"]), {"shape": [2, 6]})
case("unsqueeze", {"x": randn(3, 4)}, ["x"], lambda t, o: t["x"].unsqueeze(o["dim"]), {"dim": 1})
case("squeeze_dim", {"x": randn(3, 1, 4)}, ["x"], lambda t, o: t["x"].squeeze(o["dim"]), {"dim": 1})
case("squeeze_all", {"x": randn(1, 3, 1, 4)}, ["x"], lambda t, o: t["x"].squeeze())
case("expand", {"x": randn(3, 1)}, ["x"], lambda t, o: t["x"].expand(*o["shape"]), {"shape": [2, 3, 4]})
case("contiguous_transposed", {"x": randn(3, 4)}, ["x"], lambda t, o: t["x"].t().contiguous())
case("clone", {"x": randn(3, 4)}, ["x"], lambda t, o: t["x"].clone())
case("narrow_of_transposed", {"x": randn(5, 4)}, ["x"],
     lambda t, o: t["x"].t().narrow(o["dim"], o["start"], o["length"]) * 2, {"dim": 1, "start": 2, "length": 2})

# matmul
MATMUL = [
    ("2d", (3, 4), (4, 5)), ("batched", (2, 3, 4, 5), (2, 3, 5, 6)),
    ("broadcast_batch", (2, 1, 3, 4), (5, 4, 6)), ("batch_by_2d", (2, 3, 4), (4, 5)),
    ("2d_by_batch", (3, 4), (2, 4, 5)), ("vec_mat", (4,), (4, 5)), ("mat_vec", (3, 4), (4,)),
    ("vec_vec", (4,), (4,)), ("batch_vec", (2, 3, 4), (4,)), ("large", (33, 65), (65, 17)),
]
for name, sa, sb in MATMUL:
    case(f"matmul_{name}", {"a": randn(*sa), "b": randn(*sb)}, ["a", "b"], lambda t, o: torch.matmul(t["a"], t["b"]))
case("matmul_transposed", {"a": randn(4, 3), "b": randn(5, 4)}, ["a", "b"],
     lambda t, o: torch.matmul(t["a"].t(), t["b"].t()))

# linear (w is [out, in])
case("linear", {"x": randn(8, 5), "w": randn(4, 5), "b": randn(4)}, ["x", "w", "b"],
     lambda t, o: F.linear(t["x"], t["w"], t["b"]))
case("linear_no_bias", {"x": randn(8, 5), "w": randn(4, 5)}, ["x", "w"], lambda t, o: F.linear(t["x"], t["w"]))
case("linear_3d_input", {"x": randn(2, 3, 5), "w": randn(4, 5), "b": randn(4)}, ["x", "w", "b"],
     lambda t, o: F.linear(t["x"], t["w"], t["b"]))
case("linear_1d_input", {"x": randn(5), "w": randn(4, 5), "b": randn(4)}, ["x", "w", "b"],
     lambda t, o: F.linear(t["x"], t["w"], t["b"]))

# conv2d
CONV = [
    ("s2_p1", (2, 3, 7, 6), (4, 3, 3, 3), True, 2, 1),
    ("s1_p0_no_bias", (2, 3, 6, 5), (4, 3, 3, 3), False, 1, 0),
    ("s1_p1", (1, 2, 5, 5), (3, 2, 3, 3), True, 1, 1),
    ("1x1", (2, 4, 3, 3), (2, 4, 1, 1), True, 1, 0),
    ("rect_kernel_s2_p2", (2, 2, 6, 7), (3, 2, 3, 2), True, 2, 2),
    ("s3_no_bias", (1, 3, 9, 8), (2, 3, 3, 3), False, 3, 1),
    # 3x3 stride 1 with at least 16 channels in and out: Lumen's CPU takes Winograd F(2x2, 3x3)
    ("winograd_p1", (2, 16, 9, 7), (16, 16, 3, 3), True, 1, 1),
    ("winograd_p0_no_bias", (3, 24, 6, 11), (20, 24, 3, 3), False, 1, 0),
    ("winograd_p2", (1, 17, 5, 4), (32, 17, 3, 3), True, 1, 2),
]
for name, sx, sw, bias, stride, pad in CONV:
    inputs = {"x": randn(*sx), "w": randn(*sw)}
    if bias:
        inputs["b"] = randn(sw[0])
    case(f"conv2d_{name}", inputs, list(inputs),
         lambda t, o: F.conv2d(t["x"], t["w"], t.get("b"), stride=o["stride"], padding=o["padding"]),
         {"stride": stride, "padding": pad, "bias": bias})

# dropout in evaluation mode (and p = 0 in training): the identity
case("dropout_eval", {"x": randn(10)}, ["x"], lambda t, o: F.dropout(t["x"], o["p"], training=False),
     {"p": 0.2, "training": False})
case("dropout_p0_training", {"x": randn(10)}, ["x"], lambda t, o: F.dropout(t["x"], o["p"], training=True),
     {"p": 0.0, "training": True})


# losses
def mse(y_hat, y, reduction):
    """DESIGN.md: e = 1/2 sum over features per sample; 'mean' averages over the batch."""
    per_sample = 0.5 * ((y_hat - y) ** 2).flatten(1).sum(1)
    return per_sample if reduction == "none" else per_sample.mean()


for name, shape in [("mse", (6, 3)), ("mse_3d", (4, 3, 2))]:
    for reduction in ["mean", "none"]:
        case(f"{name}_{reduction}", {"y_hat": randn(*shape), "y": randn(*shape)}, ["y_hat", "y"],
             lambda t, o: mse(t["y_hat"], t["y"], o["reduction"]), {"reduction": reduction})
case("mse_target_no_grad", {"y_hat": randn(5, 4), "y": randn(5, 4)}, ["y_hat"],
     lambda t, o: mse(t["y_hat"], t["y"], o["reduction"]), {"reduction": "mean"})
for name, n, c, scale in [("cross_entropy", 6, 4, 2.0), ("cross_entropy_wide", 9, 10, 5.0)]:
    case(name, {"logits": randn(n, c, scale=scale), "labels": labels(n, c)}, ["logits"],
         lambda t, o: F.cross_entropy(t["logits"], t["labels"].long() - 1))


def mmd(z, p, bws, weight):
    """DESIGN.md: k(a, b) = exp(-|a - b|^2 / (bw D)); mean k(z, z') + mean k(p, p') - 2 mean k(z, p)."""
    dim = z.shape[1]

    def k(a, b, bw):
        sq = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
        return torch.exp(-sq / (bw * dim))

    total = sum(k(z, z, bw).mean() + k(p, p, bw).mean() - 2 * k(z, p, bw).mean() for bw in bws)
    return total * weight


# bw: None is F.mmd's default (bw = D); a list is a multi-scale kernel; the
# experiments' multi-scale default is {0.1, 1, 10, 100, 1000}
MMD = [
    ("default", None, None, (5, 2), (7, 2)), ("bw_0.1", 0.1, None, (5, 2), (7, 2)),
    ("bw_1", 1.0, None, (5, 2), (7, 2)), ("bw_10", 10.0, None, (5, 2), (7, 2)),
    ("multiscale", [0.1, 1, 10, 100, 1000], None, (8, 2), (8, 2)),
    ("multiscale_weight", [0.1, 1, 10, 100, 1000], 500.0, (8, 2), (8, 2)),
    ("bw_2_weight_d3", 2.0, 0.5, (6, 3), (4, 3)),
]
for name, bw, weight, sz, sp in MMD:
    opts = {}
    if bw is not None:
        opts["bw"] = bw
    if weight is not None:
        opts["weight"] = weight

    def fn(t, o):
        bw = o.get("bw", t["z"].shape[1])
        return mmd(t["z"], t["p"], bw if isinstance(bw, list) else [bw], o.get("weight", 1.0))

    case(f"mmd_{name}", {"z": randn(*sz), "p": randn(*sp)}, ["z", "p"], fn, opts)


# large inputs (over 2 x 32768 elements): the threaded and chunked paths of the CPU kernels
LARGE = (257, 263)
case("exp_large", {"x": spread(*LARGE)}, ["x"], lambda t, o: torch.exp(t["x"]))
case("add_broadcast_large", {"a": spread(*LARGE), "b": randn(LARGE[1])}, ["a", "b"], lambda t, o: t["a"] + t["b"])
case("sum_all_large", {"x": spread(*LARGE, lo=-1.0, hi=3.0)}, ["x"], lambda t, o: t["x"].sum())
case("mean_dim0_large", {"x": spread(*LARGE)}, ["x"], lambda t, o: t["x"].mean(o["dim"]), {"dim": 0})
case("var_dim1_large", {"x": spread(*LARGE)}, ["x"], lambda t, o: t["x"].var(o["dim"], unbiased=True), {"dim": 1})
case("max_dim0_large", {"x": spread(*LARGE)}, ["x"],
     lambda t, o: (lambda v, i: (v, {"indices": i}))(*t["x"].max(o["dim"])), {"dim": 0})
case("softmax_dim1_large", {"x": spread(*LARGE)}, ["x"], lambda t, o: F.softmax(t["x"], dim=o["dim"]), {"dim": 1})
case("log_softmax_dim0_large", {"x": spread(*LARGE)}, ["x"], lambda t, o: F.log_softmax(t["x"], dim=o["dim"]),
     {"dim": 0})
case("matmul_2d_large", {"a": randn(130, 70), "b": randn(70, 90)}, ["a", "b"], lambda t, o: torch.matmul(t["a"], t["b"]),
     check_distinct=False)  # no max or min: ties do not matter
case("conv2d_large", {"x": spread(4, 8, 12, 12), "w": randn(16, 8, 3, 3), "b": randn(16)}, ["x", "w", "b"],
     lambda t, o: F.conv2d(t["x"], t["w"], t["b"], stride=o["stride"], padding=o["padding"]),
     {"stride": 1, "padding": 1}, check_distinct=False)
case("max_pool2d_large", {"x": spread(4, 16, 16, 16)}, ["x"],
     lambda t, o: F.max_pool2d(t["x"], o["kernel"], o["stride"], o["padding"]), {"kernel": 3, "stride": 2, "padding": 1})
case("avg_pool2d_large", {"x": spread(4, 16, 16, 16)}, ["x"],
     lambda t, o: F.avg_pool2d(t["x"], o["kernel"], o["stride"], o["padding"]), {"kernel": 3, "stride": 2, "padding": 1})


# the fused MMD kernel's blocks of 64 pairs crossed, sets of unequal size
# (drawn last: earlier cases keep their inputs)
for name, bw, weight, sz, sp in [
    ("multiscale_weight_130x70", [0.1, 1, 10, 100, 1000], 500.0, (130, 2), (70, 2)),
    ("bw_3_d5_65x129", 3.0, None, (65, 5), (129, 5)),
]:
    opts = {"bw": bw} if weight is None else {"bw": bw, "weight": weight}

    def fn(t, o):
        return mmd(t["z"], t["p"], o["bw"] if isinstance(o["bw"], list) else [o["bw"]], o.get("weight", 1.0))

    case(f"mmd_{name}", {"z": randn(*sz), "p": randn(*sp)}, ["z", "p"], fn, opts)

# elementwise ops added later (drawn after the cases above: their inputs stay as they were)
UNARY_MORE = [
    ("leaky_relu", F.leaky_relu, randn),
    ("floor", torch.floor, lambda *s: randn(*s, scale=3.0)),
    ("ceil", torch.ceil, lambda *s: randn(*s, scale=3.0)),
    ("round", torch.round, lambda *s: randn(*s, scale=3.0)),
    ("trunc", torch.trunc, lambda *s: randn(*s, scale=3.0)),
    ("log1p", torch.log1p, lambda *s: uniform(*s, lo=-0.9, hi=4.0)),
    ("expm1", torch.expm1, lambda *s: randn(*s, scale=2.0)),
    ("log2", torch.log2, lambda *s: uniform(*s, lo=0.1, hi=4.0)),
    ("log10", torch.log10, lambda *s: uniform(*s, lo=0.1, hi=4.0)),
    ("reciprocal", torch.reciprocal, away_from_zero),
    ("rsqrt", torch.rsqrt, lambda *s: uniform(*s, lo=0.1, hi=4.0)),
    ("square", torch.square, randn),
    ("erf", torch.erf, lambda *s: randn(*s, scale=2.0)),
]
for name, fn, gen in UNARY_MORE:
    case(name, {"x": gen(37, 29)}, ["x"], lambda t, o, fn=fn: fn(t["x"]))
for slope in [0.2, -0.5]:  # the fused backward on a strided input; a negative slope
    case(f"leaky_relu_slope_{slope}_transposed", {"x": randn(6, 5)}, ["x"],
         lambda t, o: F.leaky_relu(t["x"].t(), negative_slope=o["negative_slope"]), {"negative_slope": slope})
case("leaky_relu_module", {"x": randn(4, 6)}, ["x"], lambda t, o: torch.nn.LeakyReLU()(t["x"]))
# NaN, +-inf, +-0 and the ties of round (half to even): the output compared element by element (NaN where
# torch gives NaN, infinities and zeros exactly, the sign of a zero included), the gradients likewise
SPECIAL = torch.tensor([float("nan"), float("inf"), -float("inf"), -0.0, 0.0, 0.5, -0.5, 1.5, -1.5, 2.5, -2.5,
                        -1.0, 1.0, -0.3, 3.7, 1e-8, -1e-8, 88.0], dtype=torch.float32)
for name, fn, _ in UNARY_MORE:
    case(f"{name}_special", {"x": SPECIAL.clone()}, ["x"], lambda t, o, fn=fn: fn(t["x"]), {"special": True},
         check_distinct=False)
# softplus: torch's defaults, and beta 2 with threshold 5 crossed by the inputs (linear past it)
case("softplus", {"x": randn(37, 29, scale=4.0)}, ["x"], lambda t, o: F.softplus(t["x"]))
case("softplus_beta_2_threshold_5", {"x": randn(6, 7, scale=3.0)}, ["x"],
     lambda t, o: F.softplus(t["x"], beta=o["beta"], threshold=o["threshold"]), {"beta": 2.0, "threshold": 5.0})
case("softplus_special", {"x": torch.cat([SPECIAL, torch.tensor([-30.0, 19.5, 20.5])])}, ["x"],
     lambda t, o: F.softplus(t["x"]), {"special": True}, check_distinct=False)
for name in ["isnan", "isinf", "isfinite"]:  # 1 or 0 in float32, as Lumen's comparisons; no gradient
    case(f"{name}_special", {"x": SPECIAL.clone()}, [], lambda t, o, name=name: getattr(torch, name)(t["x"]),
         {"special": True}, check_distinct=False)


# gather, scatter_add and cumsum (after every other case: those keep their random inputs). Index values are
# saved 1-based, as Lumen takes them; the index may be smaller than the input outside `dim`, and may repeat.
def index(shape, size):
    return torch.randint(1, size + 1, tuple(shape), generator=GEN, dtype=torch.int32)


for d, ishape in [(0, (5, 3)), (1, (2, 7)), (-1, (3, 2)), (-2, (6, 4))]:
    case(f"gather_dim{d}", {"x": randn(3, 4), "index": index(ishape, 4 if d in (1, -1) else 3)}, ["x"],
         lambda t, o: torch.gather(t["x"], o["dim"], t["index"].long() - 1), {"dim": d})
case("gather_3d", {"x": randn(3, 4, 5), "index": index((2, 6, 3), 4)}, ["x"],
     lambda t, o: torch.gather(t["x"], o["dim"], t["index"].long() - 1), {"dim": 1})
# x is stored [5, 4] and used transposed: a non-contiguous [4, 5] view
case("gather_transposed", {"x": randn(5, 4), "index": index((4, 7), 5)}, ["x"],
     lambda t, o: torch.gather(t["x"].t(), o["dim"], t["index"].long() - 1), {"dim": 1})
case("gather_large", {"x": spread(64, 300), "index": index((64, 500), 300)}, ["x"],
     lambda t, o: torch.gather(t["x"], o["dim"], t["index"].long() - 1), {"dim": 1})
for d in [0, 1, -1]:
    case(f"scatter_add_dim{d}", {"x": randn(3, 4), "index": index((5, 3) if d == 0 else (3, 6), 3 if d == 0 else 4),
                                 "src": randn(*((5, 3) if d == 0 else (3, 6)))}, ["x", "src"],
         lambda t, o: torch.scatter_add(t["x"], o["dim"], t["index"].long() - 1, t["src"]), {"dim": d})
case("scatter_add_transposed", {"x": randn(5, 4), "index": index((4, 8), 5), "src": randn(8, 4)}, ["x", "src"],
     lambda t, o: torch.scatter_add(t["x"].t(), o["dim"], t["index"].long() - 1, t["src"].t()), {"dim": 1})
case("scatter_add_src_only", {"x": randn(2, 3, 4), "index": index((2, 5, 4), 3), "src": randn(2, 5, 4)}, ["src"],
     lambda t, o: torch.scatter_add(t["x"], o["dim"], t["index"].long() - 1, t["src"]), {"dim": 1})
for d in [0, 1, 2, -1]:
    case(f"cumsum_dim{d}", {"x": randn(3, 4, 5)}, ["x"], lambda t, o: torch.cumsum(t["x"], o["dim"]), {"dim": d})
case("cumsum_transposed", {"x": randn(6, 4)}, ["x"], lambda t, o: torch.cumsum(t["x"].t(), o["dim"]), {"dim": 1})
case("cumsum_large", {"x": spread(70, 400)}, ["x"], lambda t, o: torch.cumsum(t["x"], o["dim"]), {"dim": 1})

# ---- run -------------------------------------------------------------------------------------

def run(c):
    name, o = c["name"], c["options"]
    t = {}
    for k, v in c["inputs"].items():
        t[k] = v.double() if v.dtype == torch.float32 else v
        if k in c["grad"]:
            t[k].requires_grad_(True)
    result = c["fn"](t, o)
    out, extra = result if isinstance(result, tuple) else (result, {})
    tensors, expected = {}, {}
    for k, v in c["inputs"].items():
        tensors[f"inputs/{name}/{k}"] = v
    if out.dtype == torch.int64:  # argmax / argmin: 1-based, as in Lumen
        expected["out"] = (out + 1).to(torch.int32)
    else:
        expected["out"] = out.detach().float()
    for k, v in extra.items():
        expected[k] = (v + 1).to(torch.int32)
    if c["grad"]:
        # r needs no distinct values (and a large output could not have them)
        r = torch.randn(tuple(out.shape), generator=GEN, dtype=torch.float64).float()
        tensors[f"r/{name}"] = r
        (out * r.double()).sum().backward()
        for k in c["grad"]:
            assert t[k].grad is not None, f"{name}: no gradient for {k}"
            expected[f"grad/{k}"] = t[k].grad.float()
    for k, v in expected.items():
        assert o.get("special") or torch.isfinite(v.double()).all(), f"{name}: {k} is not finite"
        tensors[f"expected/{name}/{k}"] = v
    entry = {
        "name": name,
        "inputs": list(c["inputs"]),
        "grad": list(c["grad"]),
        "options": o,
        "outputs": ["out"] + list(extra),
        "expected": list(expected),
    }
    return entry, tensors


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: reference.py OUT.safetensors")
    torch.set_num_threads(1)
    manifest = {
        "version": 1,
        "conventions": "dims 0-based (PyTorch); indices, argmax and labels 1-based (Lumen); "
                       "float64 reference saved as float32",
        "cases": [],
    }
    tensors = {}
    for c in CASES:
        entry, ts = run(c)
        manifest["cases"].append(entry)
        tensors.update(ts)
    manifest["count"] = len(manifest["cases"])
    save(sys.argv[1], tensors, {"manifest": json.dumps(manifest)})


if __name__ == "__main__":
    main()
