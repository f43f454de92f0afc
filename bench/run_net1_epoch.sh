#!/usr/bin/env bash
# A Net1 training epoch and a test-set inference pass on MNIST, Lumen and
# PyTorch, 1 and 2 threads, under each OpenBLAS kernel set worth trying on
# this processor: the one the environment pins (OPENBLAS_CORETYPE, Haswell
# on the development VM, whose OpenBLAS 0.3.21 misdetects its AMD EPYC) and,
# where the processor has AVX-512, SkylakeX. Both frameworks get the same
# kernels in each round; the results file compares with PyTorch's best.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake --build build --target lumen >/dev/null
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores; date: $(date -u +%F)"
kernels=("${OPENBLAS_CORETYPE:-}")
grep -q avx512f /proc/cpuinfo && kernels+=(SkylakeX)
for kernel in "${kernels[@]}"; do
    echo "-- OpenBLAS kernels: ${kernel:-detected}"
    for t in 1 2; do
        OPENBLAS_CORETYPE="$kernel" ./build/lumen bench/net1_epoch.lua "$t"
        if /usr/bin/python3 -c "import torch" 2>/dev/null; then
            OPENBLAS_CORETYPE="$kernel" OPENBLAS_NUM_THREADS="$t" OMP_NUM_THREADS="$t" \
                /usr/bin/python3 bench/net1_epoch_torch.py "$t"
        fi
    done
done
