"""One training epoch of Net1, Net2 or ResNet-18 (CIFAR stem) in PyTorch on
the GPU, timed like
bench/gpu_epoch.lua (batch 128, MSE against one-hot targets, Adam lr 1e-4, no
host synchronisation inside the epoch, the best of `epochs` epochs after 20
warm-up steps), in several variants, so that the comparison can quote both
PyTorch as bench/gpu_epoch.lua runs (eager, host data) and PyTorch at its best:

  eager      host data (pageable), a shuffled batch gathered on the host and
             uploaded each step: the protocol of bench/gpu_epoch.lua
  pinned     host data, each batch gathered straight into one of a ring of pinned
             buffers and uploaded with non_blocking=True (an event per
             buffer keeps a buffer from being rewritten while its copy runs)
  resident   the whole set on the device (Net1 188 MB, Net2 614 MB), the
             permutation drawn on the device, batches gathered there
  graph      resident, and the whole step (gather, forward, loss, backward,
             Adam) captured once in a CUDA graph and replayed; the step's
             batch indices are copied into a static index tensor first
  compile    resident with torch.compile(model) (opt-in: its compilation can
             take minutes; --variants eager,compile,...)

All variants: cudnn.benchmark = True; TF32 off for matmuls and convolutions
(full float32, as Lumen's default), or with --amp the forward pass under
torch.autocast('cuda', dtype=torch.bfloat16) (PyTorch's AMP, the peer of
lm.autocast('bfloat16'); bfloat16 needs no loss scaling); Adam with fused=True where this torch
has it (capturable=True for the graph), else foreach, said in the output.
The model and the optimiser are rebuilt from the same seed for each variant.

Prints one line per variant, then PyTorch eager under the name scripts/
gpu-check.sh has always read, then the fastest variant:
  torch-variant <model> <variant> epoch_s <s> steps <n> loss <l> (<notes>)
  torch <model> cuda epoch_s <s> steps <n> loss <l> (eager; torch <ver>, <gpu>)
  torch-best <model> cuda epoch_s <s> steps <n> loss <l> (variant <name>; ...)
Usage: python3 bench/gpu_epoch_torch.py net1|net2|resnet18 [epochs] [--amp] [--variants a,b,...]
       [--device cpu --steps K]  (a smoke test of the code paths without a GPU)"""
import argparse
import contextlib
import inspect
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_models import net1, net2, resnet18_cifar  # noqa: E402

torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
torch.backends.cudnn.benchmark = True
if hasattr(torch, "set_float32_matmul_precision"):
    torch.set_float32_matmul_precision("highest")

BATCH = 128
DEFAULT_VARIANTS = "eager,pinned,resident,graph"
AMP = False  # --amp: the forward passes under bfloat16 autocast


def amp_context(dev, cache=True):
    """bfloat16 autocast when --amp is given, else nothing."""
    if not AMP:
        return contextlib.nullcontext()
    return torch.autocast(dev.type, dtype=torch.bfloat16, cache_enabled=cache)


def make_adam(params, dev, capturable=False):
    """Adam as fast as this torch offers it on the device: fused, else
    foreach; returns the optimiser and a description."""
    sig = inspect.signature(torch.optim.Adam).parameters
    kw = {"lr": 1e-4}
    if capturable:
        kw["capturable"] = True
    if dev.type == "cuda" and "fused" in sig:
        try:
            return torch.optim.Adam(params, fused=True, **kw), "Adam fused" + (" capturable" if capturable else "")
        except (RuntimeError, TypeError, ValueError) as e:
            note = f"fused unavailable ({type(e).__name__}: {str(e)[:60]})"
    else:
        note = "fused unavailable (no such option or not on CUDA)"
    if "foreach" in sig:
        return torch.optim.Adam(params, foreach=True, **kw), "Adam foreach; " + note
    return torch.optim.Adam(params, **kw), "Adam single-tensor; " + note


def build(name, dev, capturable=False):
    torch.manual_seed(1)
    model = {"net1": net1, "net2": net2, "resnet18": resnet18_cifar}[name]().to(dev).train()
    opt, note = make_adam(model.parameters(), dev, capturable)
    return model, opt, note


def data(name):
    torch.manual_seed(1)
    if name == "net1":
        n, shape = 60000, (60000, 784)
    else:
        n, shape = 50000, (50000, 3, 32, 32)
    x = torch.rand(shape)
    y = torch.tensor([(i * 7919) % 10 for i in range(1, n + 1)])
    return n, x, y


def loss_fn(out, target):
    return F.mse_loss(out, target, reduction="sum") * (0.5 / out.shape[0])


def train_step(opt, fwd, x, target):
    """One eager step of the eager, pinned and resident variants."""
    opt.zero_grad(set_to_none=True)
    with amp_context(x.device):
        out = fwd(x)
    loss = loss_fn(out.float(), target)
    loss.backward()
    opt.step()
    return loss


def sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize()


def timed(run_epoch, dev, epochs, max_steps):
    run_epoch(min(20, max_steps) if max_steps else 20)  # warm-up: cuDNN's algorithm search, allocator, first launches
    sync(dev)
    best, steps, loss = float("inf"), 0, None
    for _ in range(epochs):
        t0 = time.perf_counter()
        steps, loss = run_epoch(max_steps)
        sync(dev)
        best = min(best, time.perf_counter() - t0)
    return best, steps, loss.item()


def variant_host(name, dev, epochs, max_steps, pinned):
    n, x_all, y_all = data(name)
    model, opt, note = build(name, dev)
    eye = torch.eye(10, device=dev)
    if pinned:
        ring = [(torch.empty((BATCH,) + x_all.shape[1:]).pin_memory(), torch.empty(BATCH, dtype=torch.long).pin_memory(),
                 torch.cuda.Event()) for _ in range(4)]

    def run_epoch(limit=None):
        perm = torch.randperm(n)
        steps, loss = 0, None
        for start in range(0, n - BATCH + 1, BATCH):
            idx = perm[start:start + BATCH]
            if pinned:
                xb, yb, done = ring[steps % len(ring)]
                done.synchronize()  # this buffer's previous upload has finished
                torch.index_select(x_all, 0, idx, out=xb)
                torch.index_select(y_all, 0, idx, out=yb)
                x, y = xb.to(dev, non_blocking=True), yb.to(dev, non_blocking=True)
                done.record()
            else:
                x, y = x_all[idx].to(dev), y_all[idx].to(dev)
            loss = train_step(opt, model, x, eye[y])
            steps += 1
            if limit and steps >= limit:
                break
        return steps, loss

    return timed(run_epoch, dev, epochs, max_steps) + (note + ("; pinned ring of 4, non_blocking" if pinned else "; pageable"),)


def variant_resident(name, dev, epochs, max_steps, compiled=False):
    n, x_cpu, y_cpu = data(name)
    x_all, y_all = x_cpu.to(dev), y_cpu.to(dev)
    del x_cpu, y_cpu
    model, opt, note = build(name, dev)
    fwd = model
    if compiled:
        fwd = torch.compile(model)
        note += "; torch.compile default mode"
    eye = torch.eye(10, device=dev)

    def run_epoch(limit=None):
        perm = torch.randperm(n, device=dev)
        steps, loss = 0, None
        for start in range(0, n - BATCH + 1, BATCH):
            idx = perm[start:start + BATCH]
            x, y = x_all.index_select(0, idx), y_all.index_select(0, idx)
            loss = train_step(opt, fwd, x, eye.index_select(0, y))
            steps += 1
            if limit and steps >= limit:
                break
        return steps, loss

    return timed(run_epoch, dev, epochs, max_steps) + (note + "; data on the device",)


def variant_graph(name, dev, epochs, max_steps):
    """The whole step in one CUDA graph (PyTorch's documented whole-network
    capture: warm-up on a side stream, grads set to None before capture, so
    that the backward allocates them in the graph's pool, Adam capturable)."""
    n, x_cpu, y_cpu = data(name)
    x_all, y_all = x_cpu.to(dev), y_cpu.to(dev)
    del x_cpu, y_cpu
    model, opt, note = build(name, dev, capturable=True)
    eye = torch.eye(10, device=dev)
    static_idx = torch.arange(BATCH, device=dev)

    def step():
        x, y = x_all.index_select(0, static_idx), y_all.index_select(0, static_idx)
        with amp_context(dev, cache=False):  # no cast cache inside a captured graph
            out = model(x)
        loss = loss_fn(out.float(), eye.index_select(0, y))
        loss.backward()
        opt.step()
        return loss

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):  # warm-up before capture (cuDNN search, optimiser state)
            opt.zero_grad(set_to_none=True)
            step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    opt.zero_grad(set_to_none=True)
    with torch.cuda.graph(graph):
        static_loss = step()

    def run_epoch(limit=None):
        perm = torch.randperm(n, device=dev)
        steps = 0
        for start in range(0, n - BATCH + 1, BATCH):
            static_idx.copy_(perm[start:start + BATCH])
            graph.replay()  # the graph's backward writes the gradients (no zeroing: it overwrites them)
            steps += 1
            if limit and steps >= limit:
                break
        return steps, static_loss

    return timed(run_epoch, dev, epochs, max_steps) + (note + "; data on the device; whole step in a CUDA graph",)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model", nargs="?", default="net1", choices=["net1", "net2", "resnet18"])
    ap.add_argument("epochs", nargs="?", type=int, default=2)
    ap.add_argument("--variants", default=DEFAULT_VARIANTS)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--steps", type=int, default=0, help="cap the steps of an epoch (smoke tests only)")
    ap.add_argument("--amp", action="store_true", help="forward passes under bfloat16 autocast")
    args = ap.parse_args()
    global AMP
    AMP = args.amp
    dev = torch.device(args.device)
    gpu = torch.cuda.get_device_name() if dev.type == "cuda" else "cpu (smoke test, not a measurement)"
    tag = f"torch {torch.__version__}, {gpu}" + ("; bfloat16 autocast" if AMP else "")
    results = {}
    for v in args.variants.split(","):
        try:
            if v in ("pinned", "graph") and dev.type != "cuda":
                print(f"torch-variant {args.model} {v} skipped (needs CUDA)")
                continue
            if v == "compile" and not hasattr(torch, "compile"):
                print(f"torch-variant {args.model} {v} skipped (torch.compile needs torch >= 2.0)")
                continue
            if v == "eager":
                r = variant_host(args.model, dev, args.epochs, args.steps, pinned=False)
            elif v == "pinned":
                r = variant_host(args.model, dev, args.epochs, args.steps, pinned=True)
            elif v == "resident":
                r = variant_resident(args.model, dev, args.epochs, args.steps)
            elif v == "compile":
                r = variant_resident(args.model, dev, args.epochs, args.steps, compiled=True)
            elif v == "graph":
                r = variant_graph(args.model, dev, args.epochs, args.steps)
            else:
                print(f"torch-variant {args.model} {v} unknown")
                continue
        except Exception as e:  # one variant failing must not cost the others
            print(f"torch-variant {args.model} {v} failed: {type(e).__name__}: {str(e)[:300]}")
            continue
        results[v] = r
        print(f"torch-variant {args.model} {v} epoch_s {r[0]:.3f} steps {r[1]} loss {r[2]:.5f} ({r[3]})", flush=True)
    if "eager" in results:
        r = results["eager"]
        print(f"torch {args.model} {dev.type} epoch_s {r[0]:.3f} steps {r[1]} loss {r[2]:.5f} (eager; {tag})")
    if results:
        v = min(results, key=lambda k: results[k][0])
        r = results[v]
        print(f"torch-best {args.model} {dev.type} epoch_s {r[0]:.3f} steps {r[1]} loss {r[2]:.5f} (variant {v}; {tag})")


if __name__ == "__main__":
    main()
