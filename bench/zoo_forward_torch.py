"""The PyTorch peer of bench/zoo_forward.lua: torchvision's own models
(weights=None, 1000 classes), one inference batch (eval, no_grad) of
3 x SIZE x SIZE images, ms per batch, best of BENCH_REPS (default 5) after
two untimed.
    /usr/bin/python3 bench/zoo_forward_torch.py [threads] [batch] [size] [name,name,...]
Threads: torch.set_num_threads, and OpenBLAS's and OpenMP's pools set to
the same count before torch loads (Debian's torch runs its 1x1 and linear
products through OpenBLAS, whose pool otherwise takes every core: an
unset OPENBLAS_NUM_THREADS made a "1-thread" run use both)."""
import os
import sys

THREADS = sys.argv[1] if len(sys.argv) > 1 else str(os.cpu_count())
os.environ["OPENBLAS_NUM_THREADS"] = THREADS
os.environ["OMP_NUM_THREADS"] = THREADS

import torch  # noqa: E402
import torchvision  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
from best_ms import best_ms  # noqa: E402

threads = int(THREADS)
batch = int(sys.argv[2]) if len(sys.argv) > 2 else 8
size = int(sys.argv[3]) if len(sys.argv) > 3 else 224
names = (sys.argv[4] if len(sys.argv) > 4 else
         "resnet50,resnext50_32x4d,wide_resnet50_2,densenet121,vgg11_bn,efficientnet_b0,"
         "mobilenet_v3_large,regnet_y_800mf,convnext_tiny")
torch.set_num_threads(threads)
torch.manual_seed(1)
x = torch.rand(batch, 3, size, size)
for name in names.split(","):
    net = getattr(torchvision.models, name)(weights=None).eval()

    def infer():
        with torch.no_grad():
            net(x)

    ms = best_ms(infer)
    print(f"torch {name:20s} {threads} thread(s), batch {batch}, {size}x{size}: inference {ms:8.1f} ms")
