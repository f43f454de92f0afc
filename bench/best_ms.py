"""The timing loop the PyTorch layer and network peers share (the twin of
bench/best_ms.lua): two untimed calls warm caches and allocators, then the
best of BENCH_REPS (default 5) timed calls, in milliseconds."""
import os
import time


def best_ms(fn, reps=None):
    reps = reps if reps is not None else int(os.environ.get("BENCH_REPS", "5"))
    fn()
    fn()
    best = float("inf")
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best * 1e3
