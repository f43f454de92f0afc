"""The PyTorch peer of bench/conv_nets.lua: Net2 and torchvision-style
ResNet-18 with the CIFAR stem (3x3 stride-1 first convolution, no max
pooling), one inference batch (eval, no_grad) and one training step
(forward, MSE against one-hot targets, backward, Adam), ms per batch, best
of BENCH_REPS (default 5) after two untimed.
    /usr/bin/python3 bench/conv_nets_torch.py [threads] [batch]
BENCH_WIDTH: ResNet-18's first-stage channels (default 64, torchvision's).
Threads: torch.set_num_threads; the caller sets OMP/OpenBLAS variables."""
import os
import sys

import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(__file__))
from best_ms import best_ms  # noqa: E402
from torch_models import net2, resnet18_cifar  # noqa: E402

threads = int(sys.argv[1]) if len(sys.argv) > 1 else torch.get_num_threads()
batch = int(sys.argv[2]) if len(sys.argv) > 2 else 64
width = int(os.environ.get("BENCH_WIDTH", "64"))
torch.set_num_threads(threads)
torch.manual_seed(1)



x = torch.rand(batch, 3, 32, 32)
target = nn.functional.one_hot(torch.randint(0, 10, (batch,)), 10).float()
for name, make in (("net2", net2), ("resnet18", lambda: resnet18_cifar(10, width))):
    net = make()
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    net.eval()

    def infer():
        with torch.no_grad():
            net(x)

    t_infer = best_ms(infer)
    net.train()

    def step():
        opt.zero_grad(set_to_none=True)
        out = net(x)
        if name == "resnet18":
            out = out.sigmoid()
        nn.functional.mse_loss(out, target).backward()
        opt.step()

    t_train = best_ms(step)
    label = f"{name} width {width}" if name == "resnet18" and width != 64 else name
    print(f"torch {label}, {threads} thread(s), batch {batch}: inference {t_infer:.1f} ms, "
          f"training step {t_train:.1f} ms (torch {torch.__version__}, mkldnn {torch.backends.mkldnn.enabled})")
