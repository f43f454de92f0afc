"""Products under lm.autocast('bfloat16') against PyTorch (Debian's
python3-torch, run by tests/lua/autocast_spec.lua).

  autocast_reference.py write DIR
      DIR/rounding.safetensors: "x", float32 values over the whole range
      (random exponents, ties, the overflow edge, subnormals, zeros,
      infinities) and "xr", torch's x.bfloat16().float().
      DIR/products.safetensors: the operands of a Linear layer, a batched
      matmul and a strided, padded convolution, each with an upstream
      gradient "gy", and the float64 results of the same products on the
      operands rounded to bfloat16 (what autocast computes, without float32
      rounding): outputs "*.y64", input and weight gradients "*.gx64",
      "*.gw64" (from the rounded gy as well), and torch's own CPU autocast
      output of the Linear layer, "linear.y_amp" (bfloat16, widened).
"""
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from dtype_reference import save  # noqa: E402


def bf(t):
    return t.bfloat16().double()


def rounding():
    g = torch.Generator().manual_seed(3)
    mant = torch.rand(6000, generator=g, dtype=torch.float64) + 1
    exps = torch.randint(-149, 128, (6000,), generator=g).double()
    sign = torch.where(torch.rand(6000, generator=g) < 0.5, -1.0, 1.0).double()
    x = (sign * mant * torch.pow(2.0, exps)).float()
    one = 1.0
    edges = [0.0, -0.0, float("inf"), float("-inf"), one + 2 ** -8, one + 3 * 2 ** -8,
             one + 2 ** -8 + 2 ** -20, -(one + 2 ** -8), 3.3895313892515355e38,
             3.3961775292304172e38, 3.4028234663852886e38, 1e-40, -1e-40, 2 ** -133, 1.17549435e-38]
    x = torch.cat([x[torch.isfinite(x)], torch.tensor(edges, dtype=torch.float32)])
    return {"x": x, "xr": x.bfloat16().float()}


def products():
    g = torch.Generator().manual_seed(5)
    out = {}
    # Linear [16, 70] x [30, 70]^T + b
    x, w = torch.randn(16, 70, generator=g), torch.randn(30, 70, generator=g) * 0.3
    b, gy = torch.randn(30, generator=g), torch.randn(16, 30, generator=g)
    out.update({"linear.x": x, "linear.w": w, "linear.b": b, "linear.gy": gy})
    out["linear.y64"] = (bf(x) @ bf(w).T + b.double()).float()
    out["linear.gx64"] = (bf(gy) @ bf(w)).float()
    out["linear.gw64"] = (bf(gy).T @ bf(x)).float()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out["linear.y_amp"] = F.linear(x, w, b).float()
    # batched matmul [3, 8, 20] @ [20, 6]
    a, m = torch.randn(3, 8, 20, generator=g), torch.randn(20, 6, generator=g)
    gy = torch.randn(3, 8, 6, generator=g)
    out.update({"bmm.a": a, "bmm.b": m, "bmm.gy": gy})
    out["bmm.y64"] = (bf(a) @ bf(m)).float()
    out["bmm.gx64"] = (bf(gy) @ bf(m).T).float()
    out["bmm.gw64"] = (bf(a).transpose(1, 2) @ bf(gy)).sum(0).float()
    # convolution [2, 5, 9, 9] * [7, 5, 3, 3], stride 2, padding 1
    x, w = torch.randn(2, 5, 9, 9, generator=g), torch.randn(7, 5, 3, 3, generator=g) * 0.3
    b, gy = torch.randn(7, generator=g), torch.randn(2, 7, 5, 5, generator=g)
    out.update({"conv.x": x, "conv.w": w, "conv.b": b, "conv.gy": gy})
    xd, wd = bf(x).requires_grad_(), bf(w).requires_grad_()
    y = F.conv2d(xd, wd, b.double(), stride=2, padding=1)
    (y * bf(gy)).sum().backward()
    out["conv.y64"], out["conv.gx64"], out["conv.gw64"] = y.detach().float(), xd.grad.float(), wd.grad.float()
    return out


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "write":
        sys.exit(__doc__)
    save(sys.argv[2] + "/rounding.safetensors", rounding())
    save(sys.argv[2] + "/products.safetensors", products())
