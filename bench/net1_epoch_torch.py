"""PyTorch's time for bench/net1_epoch.lua: a Net1 training epoch on MNIST
(batch 128, MSE, Adam, dropout 0.1) and an inference pass over the test set.
OPENBLAS_NUM_THREADS=T /usr/bin/python3 bench/net1_epoch_torch.py T"""
import gzip
import struct
import sys
import time

import torch

from torch_models import net1

threads = int(sys.argv[1]) if len(sys.argv) > 1 else torch.get_num_threads()
torch.set_num_threads(threads)
torch.manual_seed(1)


def idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = struct.unpack(">" + "I" * ndim, data[4 : 4 + 4 * ndim])
    return torch.frombuffer(bytearray(data[4 + 4 * ndim :]), dtype=torch.uint8).reshape(dims)


root = "../shared/data/mnist/"
x_train = idx(root + "train-images-idx3-ubyte.gz").reshape(-1, 784).float() / 255
y_train = idx(root + "train-labels-idx1-ubyte.gz").long()
x_test = idx(root + "t10k-images-idx3-ubyte.gz").reshape(-1, 784).float() / 255
y_test = idx(root + "t10k-labels-idx1-ubyte.gz").long()

net = net1()
opt = torch.optim.Adam(net.parameters(), lr=1e-4)
eye = torch.eye(10)


def step(x, y):
    opt.zero_grad()
    loss = 0.5 * ((net(x) - eye[y]) ** 2).sum() / x.shape[0]
    loss.backward()
    opt.step()


for i in range(16):  # warm-up
    step(x_train[i * 128 : (i + 1) * 128], y_train[i * 128 : (i + 1) * 128])
t0 = time.perf_counter()
perm = torch.randperm(60000)
n = 0
for b in range(60000 // 128):
    idx_b = perm[b * 128 : (b + 1) * 128]
    step(x_train[idx_b], y_train[idx_b])
    n += 128
t_epoch = time.perf_counter() - t0
def inference():
    with torch.no_grad():
        net.eval()
        correct = 0
        for s in range(0, 10000, 1000):
            correct += (net(x_test[s : s + 1000]).argmax(1) == y_test[s : s + 1000]).sum().item()
    return correct


t0 = time.perf_counter()
inference()
t_first = time.perf_counter() - t0
t0 = time.perf_counter()
inference()
t_infer = time.perf_counter() - t0
print(f"torch {torch.__version__} net1 epoch, {threads} thread(s): {t_epoch:.2f} s ({n} samples, {n / t_epoch:.0f} samples/s); "
      f"inference on 10,000 test images: {t_infer:.3f} s ({10000 / t_infer:.0f} samples/s; first pass {t_first:.3f} s)")
