#!/usr/bin/env bash
# The InfoVAE epoch and interrogation benchmark (bench/introspect.lua and its
# PyTorch peer), 1 and 2 threads, under the same OpenBLAS kernel sets as
# bench/run_net1_epoch.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake --build build --target lumen >/dev/null
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores; date: $(date -u +%F)"
kernels=("${OPENBLAS_CORETYPE:-}")
grep -q avx512f /proc/cpuinfo && kernels+=(SkylakeX)
for kernel in "${kernels[@]}"; do
    echo "-- OpenBLAS kernels: ${kernel:-detected}"
    for t in 1 2; do
        OPENBLAS_CORETYPE="$kernel" ./build/lumen bench/introspect.lua "$t"
        if /usr/bin/python3 -c "import torch" 2>/dev/null; then
            OPENBLAS_CORETYPE="$kernel" OPENBLAS_NUM_THREADS="$t" OMP_NUM_THREADS="$t" \
                /usr/bin/python3 bench/introspect_torch.py "$t"
        fi
    done
done
