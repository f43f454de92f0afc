"""PyTorch's time for bench/net1_epoch.lua: a Net1 training epoch on MNIST
(batch 128, MSE, Adam, dropout 0.1; the best of BENCH_EPOCHS=3 epochs) and an
inference pass over the test set. Written as a careful PyTorch user would:
batches gathered into a reused buffer, gradients set to None instead of
zeroed, the MSE as one fused op, inference under torch.inference_mode.
  OPENBLAS_NUM_THREADS=T /usr/bin/python3 bench/net1_epoch_torch.py T
bench/torch_best.py runs it under every thread/OpenBLAS/OpenMP setting; see
bench/peer_common.py for the settings it reads from the environment."""
import gzip
import os
import struct
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peer_common import emit, run_settings, setup_threads, timed_epochs  # noqa: E402
from torch_models import net1  # noqa: E402

threads = setup_threads()
settings = run_settings()
torch.manual_seed(1)


def idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = struct.unpack(">" + "I" * ndim, data[4 : 4 + 4 * ndim])
    return torch.frombuffer(bytearray(data[4 + 4 * ndim :]), dtype=torch.uint8).reshape(dims)


root = os.environ.get("MNIST_DIR", os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../shared/data/mnist")) + "/"
x_train = idx(root + "train-images-idx3-ubyte.gz").reshape(-1, 784).float() / 255
y_train = idx(root + "train-labels-idx1-ubyte.gz").long()
x_test = idx(root + "t10k-images-idx3-ubyte.gz").reshape(-1, 784).float() / 255
y_test = idx(root + "t10k-labels-idx1-ubyte.gz").long()

BATCH = 128
STEPS = 60000 // BATCH  # 468, as Lumen's loader (the last partial batch dropped)
net = net1()
# foreach=True (the multi-tensor Adam) is 10x slower on this torch's CPU path
# (16 ms against 1.7 ms per Net1 step, measured): the default per-tensor loop
opt = torch.optim.Adam(net.parameters(), lr=1e-4)
eye = torch.eye(10)
xb = torch.empty(BATCH, 784)
tb = torch.empty(BATCH, 10)


def step(x, t):
    opt.zero_grad(set_to_none=True)
    loss = F.mse_loss(net(x), t, reduction="sum") * (0.5 / x.shape[0])
    loss.backward()
    opt.step()


def epoch(max_steps=None):
    perm = torch.randperm(60000)
    n = 0
    for b in range(STEPS if not max_steps else min(STEPS, max_steps)):
        i = perm[b * BATCH : (b + 1) * BATCH]
        torch.index_select(x_train, 0, i, out=xb)
        torch.index_select(eye, 0, y_train[i], out=tb)
        step(xb, tb)
        n += 1
    return n


for i in range(16):  # warm-up
    step(x_train[i * BATCH : (i + 1) * BATCH], eye[y_train[i * BATCH : (i + 1) * BATCH]])
timing = timed_epochs(epoch, STEPS, settings)


def inference():
    with torch.inference_mode():
        net.eval()
        correct = 0
        for s in range(0, 10000, 1000):
            correct += (net(x_test[s : s + 1000]).argmax(1) == y_test[s : s + 1000]).sum().item()
        net.train()
    return correct


record = {"bench": "net1_epoch", **timing}
if timing["mode"] == "full":
    t0 = time.perf_counter()
    inference()
    t_first = time.perf_counter() - t0
    t0 = time.perf_counter()
    inference()
    t_infer = time.perf_counter() - t0
    n = timing["steps"] * BATCH
    record.update({"infer_s": t_infer, "infer_first_s": t_first})
    print(f"torch {torch.__version__} net1 epoch, {threads} thread(s): {timing['epoch_s']:.2f} s "
          f"(best of {settings['epochs']}; {n} samples, {n / timing['epoch_s']:.0f} samples/s); "
          f"inference on 10,000 test images: {t_infer:.3f} s ({10000 / t_infer:.0f} samples/s; first pass {t_first:.3f} s)")
else:
    print(f"torch {torch.__version__} net1 epoch, {threads} thread(s), probe: {timing['step_s'] * 1e3:.2f} ms/step, "
          f"{timing['epoch_s']:.2f} s per epoch estimated{' (stopped: dominated)' if timing['aborted'] else ''}")
emit(record)
