"""The PyTorch peer of bench/conv_depthwise.lua: the same depthwise layers,
forward (no_grad) and forward+backward of sum(y * r), ms, best of
BENCH_REPS (default 5) after two untimed.
    /usr/bin/python3 bench/conv_depthwise_torch.py [threads]
Threads: torch.set_num_threads; the caller sets OMP/OpenBLAS variables."""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(__file__))
from best_ms import best_ms  # noqa: E402

threads = int(sys.argv[1]) if len(sys.argv) > 1 else torch.get_num_threads()
torch.set_num_threads(threads)
torch.manual_seed(1)



LAYERS = (
    ("depthwise 3x3, x 32x64x56x56", (32, 64, 56, 56), 3, 1, 1),
    ("depthwise 7x7, x 32x96x28x28", (32, 96, 28, 28), 7, 1, 3),
    ("depthwise 3x3 stride 2, x 32x64x56x56", (32, 64, 56, 56), 3, 2, 1),
)
for name, shape, k, stride, pad in LAYERS:
    c = shape[1]
    x = torch.randn(*shape, requires_grad=True)
    w = (torch.randn(c, 1, k, k) * 0.1).requires_grad_(True)
    b = torch.randn(c, requires_grad=True)
    with torch.no_grad():
        r = torch.randn_like(torch.nn.functional.conv2d(x, w, None, stride, pad, 1, c))

    def fwd():
        with torch.no_grad():
            torch.nn.functional.conv2d(x, w, b, stride, pad, 1, c)

    def both():
        x.grad = w.grad = b.grad = None
        y = torch.nn.functional.conv2d(x, w, b, stride, pad, 1, c)
        (y * r).sum().backward()

    print(f"torch {torch.__version__} {name}, {threads} thread(s): forward {best_ms(fwd):.1f} ms, "
          f"forward+backward {best_ms(both):.1f} ms (mkldnn {torch.backends.mkldnn.is_available()}, "
          f"{torch.backends.cpu.get_cpu_capability() if hasattr(torch.backends, 'cpu') else '?'})")
