#!/usr/bin/env bash
# A Net1 training epoch and a test-set inference pass on MNIST, Lumen and
# PyTorch, 1 and 2 threads (OPENBLAS_CORETYPE as the environment has it).
set -euo pipefail
cd "$(dirname "$0")/.."
cmake --build build --target lumen >/dev/null
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores; OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}; date: $(date -u +%F)"
for t in 1 2; do
    ./build/lumen bench/net1_epoch.lua "$t"
    if /usr/bin/python3 -c "import torch" 2>/dev/null; then
        OPENBLAS_NUM_THREADS="$t" OMP_NUM_THREADS="$t" /usr/bin/python3 bench/net1_epoch_torch.py "$t"
    fi
done
