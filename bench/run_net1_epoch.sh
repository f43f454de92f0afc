#!/usr/bin/env bash
# A Net1 training epoch and a test-set inference pass on MNIST, Lumen against
# PyTorch's best configuration at equal core counts: 1 and 2 cores (taskset),
# Lumen on N threads under each OpenBLAS kernel set of bench/kernel_sets.sh,
# PyTorch searched over threads x OPENBLAS_NUM_THREADS x OMP_WAIT_POLICY x
# kernel set x ATen CPU capability (bench/torch_best.py), best of 3 epochs;
# prints Lumen / PyTorch-best at each core count.
#   bench/run_net1_epoch.sh [OUTDIR] [torch_best.py options]
# LUMEN names the binary (default ./build/lumen, rebuilt first).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-results/bench-peers-$(date -u +%Y%m%d-%H%M)}
shift || true
if [ -z "${LUMEN:-}" ]; then cmake --build build --target lumen >/dev/null; fi
exec /usr/bin/python3 bench/torch_best.py net1_epoch --out "$out" --lumen "${LUMEN:-./build/lumen}" "$@"
