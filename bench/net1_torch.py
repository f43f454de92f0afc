"""PyTorch's time for bench/net1_step.lua's Net1 training step (batch 128,
MSE, Adam, dropout 0.1), same thread count. Run with Debian's interpreter:
OPENBLAS_NUM_THREADS=T /usr/bin/python3 bench/net1_torch.py T [steps]"""
import sys
import time

import torch

from torch_models import net1

threads = int(sys.argv[1]) if len(sys.argv) > 1 else torch.get_num_threads()
steps = int(sys.argv[2]) if len(sys.argv) > 2 else 200
torch.set_num_threads(threads)
torch.manual_seed(1)
net = net1()
opt = torch.optim.Adam(net.parameters(), lr=1e-4)
x = torch.rand(128, 784)
y = torch.zeros(128, 10)
y[torch.arange(128), torch.arange(128) % 10] = 1


def step():
    opt.zero_grad()
    loss = 0.5 * ((net(x) - y) ** 2).sum() / 128
    loss.backward()
    opt.step()


for _ in range(5):
    step()
t0 = time.perf_counter()
for _ in range(steps):
    step()
dt = (time.perf_counter() - t0) / steps
print(f"torch {torch.__version__} net1 step, batch 128, {threads} thread(s): {dt * 1e3:.3f} ms/step")
