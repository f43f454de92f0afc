"""PyTorch peer of bench/explain.lua: integrated gradients (50 Gauss-Legendre
steps, black baseline, the predicted class) on the paper's Net1 in samples per
second, every path point of a batch in one forward and backward pass, the
parameters' gradients switched off (as lm.explain does), best of 3.
  OPENBLAS_NUM_THREADS=T /usr/bin/python3 bench/explain_torch.py [threads] [batch] [repeats]
"""
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_models import net1  # noqa: E402

threads = int(sys.argv[1]) if len(sys.argv) > 1 else torch.get_num_threads()
batch = int(sys.argv[2]) if len(sys.argv) > 2 else 16
repeats = int(sys.argv[3]) if len(sys.argv) > 3 else 10
torch.set_num_threads(threads)
torch.manual_seed(1)

model = net1().eval()
for p in model.parameters():
    p.requires_grad_(False)
x = torch.rand(batch, 784)
nodes, weights = np.polynomial.legendre.leggauss(50)
alphas = torch.tensor((1 - nodes) / 2, dtype=torch.float32)
w = torch.tensor(weights / 2, dtype=torch.float32)


def integrated_gradients(x):
    with torch.no_grad():
        target = model(x).argmax(1)
    base = torch.zeros_like(x)
    diff = x - base
    path = (base[None] + alphas[:, None, None] * diff[None]).reshape(-1, x.shape[1]).requires_grad_(True)
    out = model(path).view(len(alphas), x.shape[0], -1)
    score = out.gather(2, target.view(1, -1, 1).expand(len(alphas), -1, 1)).squeeze(2)
    (score * w[:, None]).sum().backward()
    attr = diff * path.grad.view(len(alphas), x.shape[0], -1).sum(0)
    with torch.no_grad():
        f = model(torch.cat([x, base])).gather(1, torch.cat([target, target]).view(-1, 1)).view(2, -1)
    return attr, attr.sum(1) - (f[0] - f[1])


integrated_gradients(x)
best = float("inf")
for _ in range(3):
    t0 = time.perf_counter()
    for _ in range(repeats):
        integrated_gradients(x)
    best = min(best, time.perf_counter() - t0)
_, gap = integrated_gradients(x)
print(f"torch {torch.__version__} integrated gradients, Net1, 50 steps, batch {batch}, {threads} thread(s): "
      f"{batch * repeats / best:.1f} samples/s (max |gap| {gap.abs().max().item():.2g})")
