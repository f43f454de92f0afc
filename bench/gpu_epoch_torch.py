"""One training epoch of Net1 or Net2 in PyTorch eager on the GPU, timed like
bench/gpu_epoch.lua: host data, a shuffled batch of 128 uploaded each step,
MSE against one-hot targets, Adam, no synchronisation inside the epoch.
TF32 is off for matrix products and convolutions (full float32, as Lumen's
default); cuDNN picks its algorithms by benchmarking (as Lumen does).
Usage: python3 bench/gpu_epoch_torch.py net1|net2 [epochs]"""
import sys
import time

import torch

sys.path.insert(0, "bench")
from torch_models import net1, net2  # noqa: E402

torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
torch.backends.cudnn.benchmark = True


def main():
    name = sys.argv[1] if len(sys.argv) > 1 else "net1"
    epochs = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    torch.manual_seed(1)
    if name == "net1":
        n, model, shape = 60000, net1(), (60000, 784)
    else:
        n, model, shape = 50000, net2(), (50000, 3, 32, 32)
    x_all = torch.rand(shape)
    y_all = torch.tensor([(i * 7919) % 10 for i in range(1, n + 1)])
    dev = torch.device("cuda")
    model = model.to(dev).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    eye = torch.eye(10, device=dev)

    def run_epoch(max_steps=None):
        perm = torch.randperm(n)
        steps, loss = 0, None
        for start in range(0, n - 127, 128):
            idx = perm[start:start + 128]
            x, y = x_all[idx].to(dev), y_all[idx].to(dev)
            opt.zero_grad(set_to_none=True)
            out = model(x)
            loss = 0.5 * ((out - eye[y]) ** 2).sum() / x.shape[0]
            loss.backward()
            opt.step()
            steps += 1
            if max_steps and steps >= max_steps:
                break
        return steps, loss

    run_epoch(20)
    torch.cuda.synchronize()
    best, steps, loss = float("inf"), 0, None
    for _ in range(epochs):
        t0 = time.perf_counter()
        steps, loss = run_epoch()
        torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    print(f"torch {name} cuda epoch_s {best:.3f} steps {steps} loss {loss.item():.5f} "
          f"(torch {torch.__version__}, {torch.cuda.get_device_name()})")


if __name__ == "__main__":
    main()
