"""PyTorch's matmul on the shapes of bench/matmul.c, same thread count.
Run with Debian's interpreter: /usr/bin/python3 bench/matmul_torch.py THREADS"""
import sys
import time

import torch

threads = int(sys.argv[1]) if len(sys.argv) > 1 else torch.get_num_threads()
torch.set_num_threads(threads)
torch.manual_seed(1)
print(f"torch {torch.__version__}, threads: {torch.get_num_threads()}\n")
print("| M x K x N | layout | PyTorch GFLOP/s |")
print("|---|---|---|")
for m, k, n in [(128, 784, 200), (128, 200, 200), (1024, 1024, 1024)]:
    for transposed in (False, True):
        a = torch.randn(m, k)
        b = torch.randn(n, k).t() if transposed else torch.randn(k, n)
        flops = 2.0 * m * k * n
        reps = 3 if flops > 1e9 else 100 if flops > 1e7 else 500
        torch.matmul(a, b)
        best = 1e30
        for _ in range(5):
            t0 = time.perf_counter()
            for _ in range(reps):
                torch.matmul(a, b)
            best = min(best, (time.perf_counter() - t0) / reps)
        print(f"| {m:4d}x{k:4d}x{n:4d} | {'nt' if transposed else 'nn'} | {flops / best / 1e9:8.1f} |")
