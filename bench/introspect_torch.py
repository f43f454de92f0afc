"""PyTorch peer of bench/introspect.lua: the same InfoVAE epoch (54,000 x 2400,
batch 128, standardised inputs, multi-scale MMD; the best of BENCH_EPOCHS=3
epochs) and the same interrogation pipeline, written as a careful PyTorch
user would: batches gathered into a reused buffer, each squared-distance
matrix of the MMD computed once for all five bandwidths, a fused MSE
(torch_models.infovae_loss; bench/check_infovae_loss.py checks it against the
earlier formulation), inference under torch.no_grad with the activations
collected in the forward loop. Measured on the development VM (1 thread),
two habits of GPU code are slower with this CPU build and are not used:
zero_grad(set_to_none=True) (9.43 s per epoch against 5.64 s: fresh gradient
buffers each step go through the system allocator) and torch.inference_mode
(8,700 interrogations/s in batches of 1,000 against 21,300 with no_grad).
  OPENBLAS_NUM_THREADS=T /usr/bin/python3 bench/introspect_torch.py T
bench/torch_best.py runs it under every thread/OpenBLAS/OpenMP setting; see
bench/peer_common.py for the settings it reads from the environment
(BENCH_ROWS, default 54000, sets the recording's rows: the driver's short
probes use fewer)."""
import os
import sys
import time

import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peer_common import emit, run_settings, setup_threads, timed_epochs  # noqa: E402
from torch_models import infovae_loss, mlp, net1  # noqa: E402

threads = setup_threads()
settings = run_settings()
torch.manual_seed(1)

BATCH = 128
ROWS = int(os.environ.get("BENCH_ROWS") or 54000)
STEPS = 54000 // BATCH  # 421: the steps of the benchmark's epoch (probes scale to it)
enc, dec = mlp([2400, 200, 200, 200, 2]), mlp([2, 200, 200, 200, 2400])
H = torch.randn(ROWS, 2400)
mean, std = H.mean(0), H.std(0).clamp(min=1e-3)  # outside the timed epoch, as in Lumen's
opt = torch.optim.Adam(list(enc.parameters()) + list(dec.parameters()), lr=1e-3)
buf = torch.empty(BATCH, 2400)


def epoch(max_steps=None):
    perm = torch.randperm(ROWS)
    steps = ROWS // BATCH
    if max_steps:
        steps = min(steps, max_steps)
    for b in range(steps):
        torch.index_select(H, 0, perm[b * BATCH : (b + 1) * BATCH], out=buf)
        x = (buf - mean) / std
        opt.zero_grad(set_to_none=False)  # faster here; see the docstring
        loss = infovae_loss(enc, dec, x, torch.randn(BATCH, 2))
        loss.backward()
        opt.step()
    return steps


epoch(20)  # warm-up
timing = timed_epochs(epoch, STEPS, settings)
record = {"bench": "introspect", "rows": ROWS, **timing}

if timing["mode"] == "full":
    net = net1().eval()
    est = mlp([2, 200, 200, 200, 1])

    def interrogate(x):
        """Net1's forward with its ELU outputs recorded, encoder, estimator."""
        with torch.no_grad():  # faster here than inference_mode; see the docstring
            acts = []
            for m in net:
                x = m(x)
                if isinstance(m, nn.ELU):
                    acts.append(x)
            z = enc((torch.cat(acts, 1) - mean) / std)
            return z, est(z), x

    def rate(batch, reps):
        x = torch.rand(batch, 784)
        for _ in range(3):  # as bench/introspect.lua: untimed first calls
            interrogate(x)
        t = time.perf_counter()
        for _ in range(reps):
            interrogate(x)
        return batch * reps / (time.perf_counter() - t)

    one, batched = rate(1, 300), rate(1000, 30)
    record.update({"interrogate_one_per_s": one, "interrogate_batch_per_s": batched})
    print(f"torch {torch.__version__}, {threads} thread(s): InfoVAE epoch ({ROWS} x 2400, batch 128, best of "
          f"{settings['epochs']}): {timing['epoch_s']:.2f} s; "
          f"interrogation: {one:.0f} samples/s one at a time, {batched:.0f} samples/s in batches of 1000")
else:
    print(f"torch {torch.__version__}, {threads} thread(s): InfoVAE probe ({ROWS} x 2400): "
          f"{timing['step_s'] * 1e3:.2f} ms/step, {timing['epoch_s']:.2f} s per epoch estimated"
          f"{' (stopped: dominated)' if timing['aborted'] else ''}")
emit(record)
