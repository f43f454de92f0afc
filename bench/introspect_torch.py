"""PyTorch peer of bench/introspect.lua: the same InfoVAE epoch (54,000 x 2400,
batch 128, standardised inputs, multi-scale MMD) and the same interrogation
pipeline. OPENBLAS_NUM_THREADS=T /usr/bin/python3 bench/introspect_torch.py T"""
import sys
import time

import torch
import torch.nn as nn

from torch_models import mlp, net1

threads = int(sys.argv[1]) if len(sys.argv) > 1 else torch.get_num_threads()
torch.set_num_threads(threads)
torch.manual_seed(1)


enc, dec = mlp([2400, 200, 200, 200, 2]), mlp([2, 200, 200, 200, 2400])
H = torch.randn(54000, 2400)
mean, std = H.mean(0), H.std(0).clamp(min=1e-3)


def kernel(a, b, denom):
    d2 = (a * a).sum(1, keepdim=True) + (b * b).sum(1, keepdim=True).t() - 2 * a @ b.t()
    return torch.exp(-d2 / denom)


def mmd(z, p, bws=(0.1, 1, 10, 100, 1000)):
    total = 0
    for bw in bws:
        d = bw * 2
        total = total + kernel(z, z, d).mean() + kernel(p, p, d).mean() - 2 * kernel(z, p, d).mean()
    return total


opt = torch.optim.Adam(list(enc.parameters()) + list(dec.parameters()), lr=1e-3)


def epoch(data):
    perm = torch.randperm(data.shape[0])
    for b in range(data.shape[0] // 128):
        x = (data[perm[b * 128 : (b + 1) * 128]] - mean) / std
        opt.zero_grad()
        z = enc(x)
        loss = 0.5 * ((dec(z) - x) ** 2).sum() / 128 + 500 * mmd(z, torch.randn(128, 2))
        loss.backward()
        opt.step()


epoch(H[:2560])
t_epoch = float("inf")
for _ in range(3):  # the best of three epochs, as bench/introspect.lua
    t0 = time.perf_counter()
    epoch(H)
    t_epoch = min(t_epoch, time.perf_counter() - t0)

net = net1().eval()
est = mlp([2, 200, 200, 200, 1])
acts = []
for m in net:
    if isinstance(m, nn.ELU):
        m.register_forward_hook(lambda mod, inp, out: acts.append(out))


def interrogate(x):
    acts.clear()
    with torch.no_grad():
        out = net(x)
        h = torch.cat(acts, 1)
        z = enc((h - mean) / std)
        return z, est(z), out


def rate(batch, reps):
    x = torch.rand(batch, 784)
    for _ in range(3):  # as bench/introspect.lua: untimed first calls
        interrogate(x)
    t = time.perf_counter()
    for _ in range(reps):
        interrogate(x)
    return batch * reps / (time.perf_counter() - t)


print(f"torch {torch.__version__}, {threads} thread(s): InfoVAE epoch (54000 x 2400, batch 128, best of 3): {t_epoch:.2f} s; "
      f"interrogation: {rate(1, 300):.0f} samples/s one at a time, {rate(1000, 30):.0f} samples/s in batches of 1000")
