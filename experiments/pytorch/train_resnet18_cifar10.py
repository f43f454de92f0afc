"""Train a ResNet-18 on CIFAR-10 in PyTorch and save its state_dict as
safetensors: the PyTorch-trained network that experiments/introspect_pytorch.lua
maps (docs/import-pytorch.md). Run it with Debian's /usr/bin/python3.

  /usr/bin/python3 experiments/pytorch/train_resnet18_cifar10.py
      [--data DIR] [--width 64] [--epochs 30] [--train N] [--val N] [--batch 128]
      [--lr 0.1] [--threads T] [--seed S] [--device cpu|cuda] [--out resnet18.safetensors]

The model is torchvision's ResNet-18 with the CIFAR stem (a 3x3 stride-1 first
convolution, no max pool), torchvision's names and initialisation
(bench/torch_models.py; --width scales every stage, 64 is torchvision's). The
recipe is the common one: inputs normalised with CIFAR-10's channel mean and
standard deviation (introspect_pytorch.lua's default --mean/--std), random
32x32 crops of the image padded by 4 and left-right flips, SGD with Nesterov
momentum 0.9 and weight decay 5e-4, one triangular learning-rate cycle from
--lr / 100 up to --lr at the middle of the run and back, cross-entropy.

The last --val images of data_batch_1..5 (default 5,000) are the validation
set; it trains on the first --train of the others (default: all 45,000). It
reports the accuracy on the validation set and on the test images that exist
(the shared copy has the first 1,000), and writes them beside the weights
(OUT with .json for .safetensors).
"""
import argparse
import gzip
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "bench"))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "torch"))
from torch_models import resnet18_cifar  # noqa: E402
from dtype_reference import save  # noqa: E402

MEAN = torch.tensor([0.4914, 0.4822, 0.4465]).view(1, 3, 1, 1)
STD = torch.tensor([0.2470, 0.2435, 0.2616]).view(1, 3, 1, 1)
ROOTS = [os.environ.get("LUMEN_DATA", ""), "data", os.path.join(HERE, "..", "..", "..", "shared", "data")]


def read_batch(path):
    """A CIFAR-10 binary batch (1 label byte, 3,072 pixel bytes a record)."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = np.frombuffer(f.read(), dtype=np.uint8)
    if raw.size % 3073 != 0:
        sys.exit(f"{path}: {raw.size} bytes is not a whole number of 3,073-byte CIFAR-10 records")
    rec = raw.reshape(-1, 3073)
    return torch.from_numpy(rec[:, 1:].reshape(-1, 3, 32, 32).copy()), torch.from_numpy(rec[:, 0].astype(np.int64))


def find(folder, name):
    for candidate in (name, name + ".gz"):
        path = os.path.join(folder, candidate)
        if os.path.exists(path):
            return path
    return None


def load(data_dir):
    roots = [data_dir] if data_dir else [r for r in ROOTS if r]
    for root in roots:
        for folder in (os.path.join(root, "cifar10"), os.path.join(root, "cifar-10-batches-bin"), root):
            files = [find(folder, f"data_batch_{i}.bin") for i in range(1, 6)]
            if all(files):
                parts = [read_batch(f) for f in files]
                train = (torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts]))
                test_file = find(folder, "test_batch.bin") or find(folder, "test_batch_first1000.bin")
                return folder, train, read_batch(test_file) if test_file else None
    sys.exit(f"CIFAR-10 (data_batch_1..5.bin[.gz]) not found under {', '.join(roots)}")


def augment(x, gen):
    """Random 32x32 crops of the image zero-padded by 4, and left-right flips."""
    n = x.shape[0]
    padded = F.pad(x, (4, 4, 4, 4))
    dy, dx = torch.randint(0, 9, (n,), generator=gen), torch.randint(0, 9, (n,), generator=gen)
    rows = (dy.view(n, 1) + torch.arange(32)).view(n, 1, 32, 1).expand(n, 3, 32, 40)
    out = padded.gather(2, rows)
    cols = (dx.view(n, 1) + torch.arange(32)).view(n, 1, 1, 32).expand(n, 3, 32, 32)
    out = out.gather(3, cols)
    flip = torch.rand(n, generator=gen) < 0.5
    out[flip] = out[flip].flip(3)
    return out


def accuracy(model, x, y, device, batch=500):
    model.eval()
    right = 0
    with torch.no_grad():
        for i in range(0, x.shape[0], batch):
            xb = (x[i:i + batch].to(device).float() / 255 - MEAN.to(device)) / STD.to(device)
            right += (model(xb).argmax(1) == y[i:i + batch].to(device)).sum().item()
    return right / x.shape[0]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="")
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--train", type=int, default=0)
    p.add_argument("--val", type=int, default=5000)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default="resnet18.safetensors")
    a = p.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    gen = torch.Generator().manual_seed(a.seed)

    folder, (x, y), test = load(a.data)
    available = x.shape[0] - a.val
    if a.val < 1 or available < 1:
        sys.exit(f"--val {a.val}: the validation set must hold at least one of the {x.shape[0]} images and leave some")
    if not 0 <= a.train <= available:
        sys.exit(f"--train {a.train}: at most {available} images are left beside the {a.val} validation images")
    n = a.train or available
    train_x, train_y, val_x, val_y = x[:n], y[:n], x[available:], y[available:]
    print(f"CIFAR-10 from {folder}: {train_x.shape[0]} training, {val_x.shape[0]} validation, "
          f"{test[0].shape[0] if test else 0} test images; {torch.get_num_threads()} threads", flush=True)

    device = torch.device(a.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit(f"--device {a.device}: this PyTorch sees no CUDA device")
    model = resnet18_cifar(10, a.width).to(device)
    mean, std = MEAN.to(device), STD.to(device)
    opt = torch.optim.SGD(model.parameters(), lr=a.lr / 100, momentum=0.9, nesterov=True, weight_decay=5e-4)
    steps = a.epochs * ((train_x.shape[0] + a.batch - 1) // a.batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=a.lr, total_steps=steps, pct_start=0.5,
                                                anneal_strategy="linear", cycle_momentum=False,
                                                div_factor=100, final_div_factor=1)
    history = []
    for epoch in range(1, a.epochs + 1):
        model.train()
        t0, total, seen = time.time(), 0.0, 0
        order = torch.randperm(train_x.shape[0], generator=gen)
        for i in range(0, order.numel(), a.batch):
            idx = order[i:i + a.batch]
            xb = (augment(train_x[idx].float() / 255, gen).to(device) - mean) / std
            loss = F.cross_entropy(model(xb), train_y[idx].to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * idx.numel()
            seen += idx.numel()
        seconds = time.time() - t0
        val = accuracy(model, val_x, val_y, device)
        history.append({"epoch": epoch, "loss": total / seen, "val_accuracy": val, "seconds": seconds})
        print(f"epoch {epoch}/{a.epochs}: loss {total / seen:.4f}, validation {100 * val:.2f} %, {seconds:.1f} s",
              flush=True)

    result = {"width": a.width, "epochs": a.epochs, "train_images": int(train_x.shape[0]),
              "val_accuracy": history[-1]["val_accuracy"], "history": history}
    if test:
        result["test_accuracy"] = accuracy(model, *test, device)
        result["test_images"] = int(test[0].shape[0])
        print(f"test: {100 * result['test_accuracy']:.2f} % of {result['test_images']} images")
    save(a.out, {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()})
    with open(os.path.splitext(a.out)[0] + ".json", "w") as f:
        json.dump(result, f, indent=1)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
