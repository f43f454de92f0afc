"""The PyTorch peer of bench/zoo_train.lua: torchvision's own models
(weights=None, 1000 classes), one training step (train mode, forward,
cross-entropy against fixed labels, backward, SGD with momentum 0.9) on a
batch of 3 x SIZE x SIZE images, ms per step, best of BENCH_REPS (default
5) after two untimed.
    /usr/bin/python3 bench/zoo_train_torch.py [threads] [batch] [size] [name,name,...]
Threads as in bench/zoo_forward_torch.py: OpenBLAS's and OpenMP's pools set
to the thread count before torch loads."""
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
         "resnet50,resnext50_32x4d,densenet121,vgg11_bn,efficientnet_b0,"
         "mobilenet_v3_large,regnet_y_800mf,convnext_tiny")
torch.set_num_threads(threads)
torch.manual_seed(1)
x = torch.rand(batch, 3, size, size)
labels = torch.tensor([(i * 37) % 1000 for i in range(1, batch + 1)])
for name in names.split(","):
    net = getattr(torchvision.models, name)(weights=None).train()
    opt = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9)

    def step():
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(x), labels).backward()
        opt.step()

    ms = best_ms(step)
    print(f"torch {name:20s} {threads} thread(s), batch {batch}, {size}x{size}: training step {ms:8.1f} ms")
