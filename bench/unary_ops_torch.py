"""The PyTorch peer of bench/unary_ops.lua: each activation function's
forward pass (no_grad) and backward pass on one [8, 96, 56, 56] tensor,
nanoseconds per element, best of BENCH_REPS (default 5).
    /usr/bin/python3 bench/unary_ops_torch.py [threads]"""
import os
import sys
import time

THREADS = sys.argv[1] if len(sys.argv) > 1 else str(os.cpu_count())
os.environ["OPENBLAS_NUM_THREADS"] = THREADS
os.environ["OMP_NUM_THREADS"] = THREADS

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
from best_ms import best_ms  # noqa: E402

torch.set_num_threads(int(THREADS))
torch.manual_seed(1)
x = torch.randn(8, 96, 56, 56) * 3
g = torch.randn(8, 96, 56, 56)
n = x.numel()
ops = [("relu", F.relu), ("sigmoid", torch.sigmoid), ("tanh", torch.tanh), ("elu", F.elu), ("silu", F.silu),
       ("gelu", F.gelu), ("gelu_tanh", lambda t: F.gelu(t, approximate="tanh"))]
for name, f in ops:
    def forward():
        with torch.no_grad():
            f(x)
    fwd = best_ms(forward)
    xg = x.clone().requires_grad_(True)
    bwd = float("inf")
    for r in range(6):
        xg.grad = None
        y = f(xg)
        start = time.perf_counter()
        y.backward(g)
        if r > 0:
            bwd = min(bwd, time.perf_counter() - start)
    print(f"torch {name:10s} forward {fwd * 1e6 / n:6.3f} ns  backward {bwd * 1e9 / n:6.3f} ns")
