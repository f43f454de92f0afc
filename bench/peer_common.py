"""Shared by the CPU PyTorch peers (bench/net1_epoch_torch.py,
bench/introspect_torch.py): the thread setting, the run-length settings the
driver (bench/torch_best.py) passes in, and the machine-readable result line.

Threads: the first argument, else TORCH_THREADS, else torch's default; the
driver also sets OPENBLAS_NUM_THREADS, OMP_NUM_THREADS, OMP_WAIT_POLICY,
OPENBLAS_CORETYPE and ATEN_CPU_CAPABILITY in the environment, which the
libraries read when they load (torch.set_num_threads does not reach
Debian's pthreads OpenBLAS).

Run length, from the environment:
  BENCH_EPOCHS      full epochs timed, the best is reported (default 3)
  BENCH_PROBE_STEPS >0: a probe instead of full epochs: BENCH_PROBE_REPS
                    (default 3) timed chunks of that many steps; the epoch
                    time is estimated as the best chunk's time per step x
                    the steps of an epoch; no inference/interrogation timing
  BENCH_ABORT_STEP_S  probe only: stop after the first chunk when its time
                    per step exceeds this (the configuration is dominated)
  BENCH_MAX_STEPS   caps the steps of a full epoch (short checks only)
"""
import ctypes
import json
import os
import sys
import time

import torch


def setup_threads():
    if len(sys.argv) > 1:
        threads = int(sys.argv[1])
    elif os.environ.get("TORCH_THREADS"):
        threads = int(os.environ["TORCH_THREADS"])
    else:
        threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    return threads


def _env_int(name, default):
    v = os.environ.get(name, "")
    return int(v) if v else default


def run_settings():
    return {
        "epochs": _env_int("BENCH_EPOCHS", 3),
        "probe_steps": _env_int("BENCH_PROBE_STEPS", 0),
        "probe_reps": _env_int("BENCH_PROBE_REPS", 3),
        "abort_step_s": float(os.environ.get("BENCH_ABORT_STEP_S") or "inf"),
        "max_steps": _env_int("BENCH_MAX_STEPS", 0),
    }


def openblas_info():
    """The OpenBLAS kernel set and thread count the process actually uses."""
    for line in open("/proc/self/maps"):
        path = line.split()[-1]
        if "openblas" in path:
            try:
                lib = ctypes.CDLL(path)
                lib.openblas_get_corename.restype = ctypes.c_char_p
                return lib.openblas_get_corename().decode(), lib.openblas_get_num_threads()
            except (OSError, AttributeError):
                pass
    return "unknown", -1


def cpu_capability():
    for line in torch.__config__.show().splitlines():
        if "CPU capability usage" in line:
            return line.split(":", 1)[1].strip()
    return "unknown"


def timed_epochs(epoch, steps_per_epoch, settings):
    """Times epoch(max_steps) -> steps done. Returns a dict with epoch_s (the
    best full epoch, or the probe's estimate), per-step seconds, the mode and
    whether the probe stopped early."""
    if settings["probe_steps"] > 0:
        best, aborted, steps = float("inf"), False, settings["probe_steps"]
        for rep in range(settings["probe_reps"]):
            if rep == 0:
                # the first chunk in pieces of 10 steps: it stops as soon as it
                # can no longer come in under the bar
                done, t0 = 0, time.perf_counter()
                while done < steps:
                    done += epoch(min(10, steps - done))
                    if time.perf_counter() - t0 > settings["abort_step_s"] * steps:
                        aborted = True
                        break
                best = (time.perf_counter() - t0) / done
                if aborted:
                    break
                continue
            t0 = time.perf_counter()
            n = epoch(steps)
            best = min(best, (time.perf_counter() - t0) / n)
        return {"mode": "probe", "step_s": best, "epoch_s": best * steps_per_epoch, "aborted": aborted,
                "probe_steps": settings["probe_steps"]}
    best, steps = float("inf"), 0
    for _ in range(settings["epochs"]):
        t0 = time.perf_counter()
        steps = epoch(settings["max_steps"] or None)
        best = min(best, time.perf_counter() - t0)
    return {"mode": "full", "step_s": best / steps, "epoch_s": best, "steps": steps, "aborted": False,
            "epochs": settings["epochs"]}


def emit(record):
    """The machine-readable line the driver parses."""
    core, blas_threads = openblas_info()
    record.update({
        "framework": "torch", "version": torch.__version__,
        "threads": torch.get_num_threads(), "openblas_core": core, "openblas_threads": blas_threads,
        "cpu_capability": cpu_capability(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", ""),
    })
    print("json: " + json.dumps(record), flush=True)
