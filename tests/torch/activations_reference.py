"""torch.nn.functional's activations against Lumen's (run by
tests/lua/torch_activations_spec.lua): hardswish, hardsigmoid, mish, selu,
celu, logsigmoid, softsign, tanhshrink, silu, hardshrink, softshrink, threshold,
prelu, glu and softmin.

  activations_reference.py write DIR
      DIR/cases.json: {"torch": version, "cases": [{name, fn, args, dim,
      special, weight_grad}]}: fn is the name in torch.nn.functional (and
      Lumen's F), args its numeric arguments after the input, dim (glu,
      softmin) torch's 0-based dimension or null; special cases hold
      infinities or NaN and are compared element by element.
      DIR/cases.safetensors: for each case "<name>/x", the upstream gradient
      "<name>/gy", torch's output "<name>/y" and input gradient "<name>/gx" of
      sum(y * gy); prelu also "<name>/w" and its gradient "<name>/gw".
      DIR/nets.json and DIR/<net>.safetensors, DIR/<net>_io.safetensors: torch
      Sequentials using the activations as modules, their state dicts, an input
      "x", upstream gradient "gy", output "y", input gradient "gx" and each
      parameter's gradient "grad/<name>".

Torch computes in float64 from the float32 inputs (the reference is then
independent of its own float32 rounding; the cases of infinities and NaN in
float32, as Lumen: torch's float64 kernels give NaN other gradients in
places) at torch 1.13's definitions, kinks
included: the derivatives it chooses at -3 and 3 (hardswish, hardsigmoid),
at +-lambd (the shrinks), at the threshold, and at 0 (selu, celu, prelu).
"""
import json
import sys

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from dtype_reference import save  # noqa: E402

INF, NAN = float("inf"), float("nan")

# each function's kinks and the places its formula changes; every case adds
# random values around them
KINKS = {
    "hardswish": [-3.0, 3.0, -2.9999998, 2.9999998, -3.0000002, 3.0000002, 0.0],
    "hardsigmoid": [-3.0, 3.0, -2.9999998, 2.9999998, -3.0000002, 3.0000002, 0.0],
    "mish": [0.0, -5.0, 5.0, 19.9, 20.0, 20.1, -20.0],
    "selu": [0.0, -1e-7, 1e-7, -5.0],
    "celu": [0.0, -1e-7, 1e-7, -5.0],
    "logsigmoid": [0.0, -30.0, 30.0, -90.0, 90.0],
    "softsign": [0.0, -1.0, 1.0],
    "tanhshrink": [0.0, -1e-3, 1e-3, 9.0, -9.0],
    "silu": [0.0, -1e-7, 1e-7, -88.0, -90.0, 88.0, -1.278],
    "softmin": [0.0],
    "glu": [0.0],
}
LARGE = [-1000.0, -50.0, -20.0, 20.0, 50.0, 1000.0, -999.5, 49.25]


def lambd_kinks(lambd):
    return [lambd, -lambd, 0.0, lambd + 1e-3, -lambd - 1e-3, lambd - 1e-3, -lambd + 1e-3]


def elementwise_cases():
    """(name, fn, args, kinks) of every elementwise case"""
    out = []
    for fn in ["hardswish", "hardsigmoid", "mish", "selu", "logsigmoid", "softsign", "tanhshrink", "silu"]:
        out.append((fn, fn, [], KINKS[fn]))
    for alpha in [1.0, 2.0, 0.5]:
        out.append((f"celu_alpha{alpha}", "celu", [alpha], KINKS["celu"] + [-alpha, alpha]))
    out.append(("celu_default", "celu", [], KINKS["celu"]))
    for fn in ["hardshrink", "softshrink"]:
        out.append((f"{fn}_default", fn, [], lambd_kinks(0.5)))
        for lambd in [1.5, 0.0]:
            out.append((f"{fn}_lambd{lambd}", fn, [lambd], lambd_kinks(lambd)))
    out.append(("hardshrink_lambd-1.0", "hardshrink", [-1.0], lambd_kinks(1.0)))  # torch allows it: identity
    for thr, val in [(0.5, -2.0), (-1.0, 3.0), (0.0, 0.0), (1.0, 20.0)]:
        out.append((f"threshold_{thr}_{val}", "threshold", [thr, val], [thr, thr + 1e-3, thr - 1e-3, val]))
    return out


# where torch's output and gradient are not NaN at +-inf (and NaN, for the
# functions that give NaN a defined gradient or value); the spec checks
# the values torch defines and ignores torch's NaN
SPECIAL = [-INF, INF, NAN, 0.0, -1.0, 1.0, -3.0, 3.0]


def no_tail(x, gen):
    """x padded with random values to a multiple of 16 elements. torch's CPU
    kernels run vectorised over blocks of 16 float32 (8 float64) and finish
    a tensor's last elements with a scalar loop, and the two disagree at one
    kink: hardswish's gradient at x = 3 is 1 in the vectorised loop (Lumen's
    value: the slope right of 3) and 1.5 in the scalar one. Without a tail,
    the reference is torch's vectorised kernel throughout."""
    pad = -x.numel() % 16
    return torch.cat([x, torch.randn(pad, generator=gen) * 2]) if pad else x


def call(fn, x, args, dim=None):
    f = getattr(F, fn)
    if fn in ("glu", "softmin"):
        return f(x, dim=dim)
    return f(x, *args)


def elementwise(name, fn, args, kinks, gen, tensors, cases):
    base = torch.tensor(kinks, dtype=torch.float32)
    spread = torch.randn(64, generator=gen) * 4
    for kind, x in [("values", torch.cat([base, spread, -base])), ("large", torch.tensor(LARGE)),
                    ("special", torch.tensor(SPECIAL))]:
        x = no_tail(x.float(), gen)
        gy = torch.ones_like(x) if kind == "special" else torch.randn(x.shape, generator=gen)
        # infinities and NaN in float32, what Lumen computes in: torch's float64
        # kernels treat NaN otherwise in places (hardshrink's gradient)
        xd = (x.clone() if kind == "special" else x.double()).requires_grad_(True)
        y = call(fn, xd, args)
        (y * gy.to(xd.dtype)).sum().backward()
        case = f"{name}_{kind}"
        tensors.update({f"{case}/x": x, f"{case}/gy": gy.float(), f"{case}/y": y.detach().float(),
                        f"{case}/gx": xd.grad.float()})
        cases.append({"name": case, "fn": fn, "args": args, "dim": None, "special": kind == "special",
                      "weight_grad": False})


def with_dim(fn, shape, dim, gen, tensors, cases):
    x = torch.randn(shape, generator=gen) * 3
    x.view(-1)[::7] = 0.0
    gy_shape = list(shape)
    if fn == "glu":
        gy_shape[dim] //= 2
    gy = torch.randn(gy_shape, generator=gen)
    xd = x.double().requires_grad_(True)
    y = call(fn, xd, [], dim)
    (y * gy.double()).sum().backward()
    case = f"{fn}_{'x'.join(map(str, shape))}_dim{dim}"
    tensors.update({f"{case}/x": x, f"{case}/gy": gy, f"{case}/y": y.detach().float(), f"{case}/gx": xd.grad.float()})
    cases.append({"name": case, "fn": fn, "args": [], "dim": dim, "special": False, "weight_grad": False})


def prelu(shape, per_channel, gen, tensors, cases, scale=3.0):
    x = torch.randn(shape, generator=gen) * scale
    x.view(-1)[::5] = 0.0  # the kink: torch's slope there, and no weight gradient
    n = shape[1] if per_channel else 1
    w = torch.randn(n, generator=gen) * 0.5
    gy = torch.randn(shape, generator=gen)
    xd, wd = x.double().requires_grad_(True), w.double().requires_grad_(True)
    y = F.prelu(xd, wd)
    (y * gy.double()).sum().backward()
    case = f"prelu_{'x'.join(map(str, shape))}_w{n}" + ("_large" if scale > 100 else "")
    tensors.update({f"{case}/x": x, f"{case}/w": w, f"{case}/gy": gy, f"{case}/y": y.detach().float(),
                    f"{case}/gx": xd.grad.float(), f"{case}/gw": wd.grad.float()})
    cases.append({"name": case, "fn": "prelu", "args": [], "dim": None, "special": False, "weight_grad": True})


def nets():
    """torch Sequentials as MobileNetV3, YOLO and self-normalising nets use these layers"""
    return {
        "mlp": (nn.Sequential(nn.Linear(6, 8), nn.PReLU(8), nn.Linear(8, 8), nn.SELU(), nn.Linear(8, 8), nn.Mish(),
                              nn.Linear(8, 8), nn.CELU(0.7), nn.PReLU(), nn.Linear(8, 8), nn.Softsign(),
                              nn.Linear(8, 8), nn.Tanhshrink(), nn.Hardshrink(0.2), nn.Softshrink(0.1),
                              nn.Threshold(0.05, -0.5), nn.Linear(8, 8), nn.LogSigmoid(), nn.GLU(), nn.Softmin(1)),
                (5, 6)),
        "conv": (nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.PReLU(8), nn.Conv2d(8, 8, 3, padding=1, groups=8),
                               nn.Hardswish(), nn.Conv2d(8, 8, 1), nn.Hardsigmoid(), nn.Conv2d(8, 4, 1), nn.PReLU(),
                               nn.GLU(1)),
                 (2, 3, 6, 7)),
    }


def write_nets(folder, gen):
    listing = {}
    for name, (net, shape) in nets().items():
        torch.manual_seed(7)
        with torch.no_grad():
            for p in net.parameters():
                p.copy_(torch.randn(p.shape, generator=gen) * 0.6)
        save(f"{folder}/{name}.safetensors", {k: v.contiguous() for k, v in net.state_dict().items()})
        x = (torch.randn(shape, generator=gen) * 2).requires_grad_(True)
        y = net(x)
        gy = torch.randn(y.shape, generator=gen)
        (y * gy).sum().backward()
        io = {"x": x.detach(), "gy": gy, "y": y.detach(), "gx": x.grad}
        for k, p in net.named_parameters():
            io["grad/" + k] = p.grad
        save(f"{folder}/{name}_io.safetensors", io)
        listing[name] = list(net.state_dict().keys())
    with open(f"{folder}/nets.json", "w") as f:
        json.dump(listing, f)


def write(folder):
    gen = torch.Generator().manual_seed(20261206)
    tensors, cases = {}, []
    for name, fn, args, kinks in elementwise_cases():
        elementwise(name, fn, args, kinks, gen, tensors, cases)
    for fn in ["glu", "softmin"]:
        for shape, dim in [((4, 6), -1), ((4, 6), 0), ((2, 4, 3, 5), 1), ((2, 4, 3, 6), -1), ((8,), 0)]:
            with_dim(fn, shape, dim, gen, tensors, cases)
    for shape in [(4, 3), (2, 3, 4, 5), (7,), (3, 5, 6)]:
        for per_channel in ([False, True] if len(shape) > 1 else [False]):
            prelu(shape, per_channel, gen, tensors, cases)
    prelu((4, 3), True, gen, tensors, cases, scale=1000.0)
    save(f"{folder}/cases.safetensors", {k: v.contiguous() for k, v in tensors.items()})
    write_nets(folder, gen)
    with open(f"{folder}/cases.json", "w") as f:
        json.dump({"torch": torch.__version__, "cases": cases}, f)


if __name__ == "__main__":
    write(sys.argv[2])
