"""Checks that the InfoVAE loss of bench/introspect_torch.py (torch_models.
infovae_loss: distances once per pair of sets, five kernels summed, fused MSE)
equals the earlier peer's formulation (distances recomputed per bandwidth,
(a - b)**2 summed) in value and gradients, in float64 and float32.
  /usr/bin/python3 bench/check_infovae_loss.py"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_models import infovae_loss, mlp  # noqa: E402


def old_kernel(a, b, denom):
    d2 = (a * a).sum(1, keepdim=True) + (b * b).sum(1, keepdim=True).t() - 2 * a @ b.t()
    return torch.exp(-d2 / denom)


def old_mmd(z, p, bws=(0.1, 1, 10, 100, 1000)):
    total = 0
    for bw in bws:
        d = bw * 2
        total = total + old_kernel(z, z, d).mean() + old_kernel(p, p, d).mean() - 2 * old_kernel(z, p, d).mean()
    return total


def old_loss(enc, dec, x, prior):
    z = enc(x)
    return 0.5 * ((dec(z) - x) ** 2).sum() / x.shape[0] + 500 * old_mmd(z, prior)


worst = 0.0
for dtype, tol in ((torch.float64, 1e-10), (torch.float32, 1e-5)):
    for seed in range(3):
        torch.manual_seed(seed)
        enc, dec = mlp([40, 16, 16, 16, 2]).to(dtype), mlp([2, 16, 16, 16, 40]).to(dtype)
        x = torch.randn(8, 40, dtype=dtype)
        prior = torch.randn(8, 2, dtype=dtype)
        values, grads = [], []
        for f in (old_loss, lambda e, d, xx, pp: infovae_loss(e, d, xx, pp)):
            for m in (enc, dec):
                m.zero_grad(set_to_none=True)
            v = f(enc, dec, x, prior)
            v.backward()
            values.append(v.item())
            grads.append(torch.cat([q.grad.reshape(-1) for q in list(enc.parameters()) + list(dec.parameters())]))
        rel_v = abs(values[0] - values[1]) / abs(values[0])
        rel_g = ((grads[0] - grads[1]).abs().max() / grads[0].abs().max()).item()
        worst = max(worst, rel_v / tol, rel_g / tol)
        print(f"{str(dtype):14s} seed {seed}: loss old {values[0]:.10g} new {values[1]:.10g} "
              f"rel. diff {rel_v:.2e}; gradients max rel. diff {rel_g:.2e} (tolerance {tol:g})")

# Against Lumen itself (F.mmd and F.mse on fixed small inputs), where a binary is at hand
import subprocess  # noqa: E402

Z = [[0.1, -0.3], [1.2, 0.4], [-0.7, 2.0], [0.05, 0.05]]
P = [[0.3, 0.1], [-1.1, 0.6], [0.9, -0.8], [0.0, 1.5]]
X = [[1, 2, 3], [0, -1, 4], [2, 2, 2], [0.5, 0.25, -1]]
Y = [[1.5, 2, 2], [0, 1, 4], [2, 3, 2], [0.5, 0, -1]]


def lua(t):
    return "{" + ",".join("{" + ",".join(repr(float(v)) for v in row) + "}" for row in t) + "}"


root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
lumen = os.environ.get("LUMEN", os.path.join(root, "build/lumen"))
if os.access(lumen, os.X_OK):
    code = (f"local F = lm.nn.functional; local z, p = lm.tensor({lua(Z)}), lm.tensor({lua(P)}); "
            f"local x, y = lm.tensor({lua(X)}), lm.tensor({lua(Y)}); "
            "print(string.format('%.9g %.9g', F.mmd(z, p, {bw = {0.1, 1, 10, 100, 1000}}):item(), F.mse(y, x):item()))")
    out = subprocess.run([lumen, "-e", code], cwd=root, stdout=subprocess.PIPE, text=True).stdout.split()
    from torch_models import mmd_multiscale  # noqa: E402
    import torch.nn.functional as F  # noqa: E402

    t_mmd = mmd_multiscale(torch.tensor(Z), torch.tensor(P)).item()
    t_mse = (F.mse_loss(torch.tensor(Y), torch.tensor(X), reduction="sum") * (0.5 / 4)).item()
    l_mmd, l_mse = float(out[0]), float(out[1])
    rel = max(abs(l_mmd - t_mmd) / abs(t_mmd), abs(l_mse - t_mse) / abs(t_mse))
    worst = max(worst, rel / 1e-5)
    print(f"against Lumen ({lumen}): MMD {l_mmd:.9g} vs {t_mmd:.9g}, MSE {l_mse:.9g} vs {t_mse:.9g}, "
          f"max rel. diff {rel:.2e} (tolerance 1e-05)")
else:
    print(f"no Lumen binary at {lumen}: the comparison with Lumen's F.mmd/F.mse skipped")
print("OK" if worst <= 1 else "MISMATCH")
sys.exit(0 if worst <= 1 else 1)
