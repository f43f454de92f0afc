#!/usr/bin/env bash
# The InfoVAE epoch and interrogation benchmark (bench/introspect.lua against
# bench/introspect_torch.py) at equal core counts: 1 and 2 cores (taskset),
# Lumen on N threads under each OpenBLAS kernel set of bench/kernel_sets.sh,
# PyTorch searched over threads x OPENBLAS_NUM_THREADS x OMP_WAIT_POLICY x
# kernel set x ATen CPU capability (bench/torch_best.py), best of 3 epochs;
# prints Lumen / PyTorch-best at each core count.
#   bench/run_introspect.sh [OUTDIR] [torch_best.py options]
# LUMEN names the binary (default ./build/lumen, rebuilt first).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-results/bench-peers-$(date -u +%Y%m%d-%H%M)}
shift || true
if [ -z "${LUMEN:-}" ]; then cmake --build build --target lumen >/dev/null; fi
exec /usr/bin/python3 bench/torch_best.py introspect --out "$out" --lumen "${LUMEN:-./build/lumen}" "$@"
