#!/usr/bin/env bash
# Net1 training step (batch 128) in Lumen, 1 and 2 threads, first with
# OPENBLAS_CORETYPE as the environment has it, then unset: the step time and
# the count of new system blocks after the first step (0: the caching
# allocator serves every step). The comparison with PyTorch is the epoch
# benchmark's (bench/run_peers.sh), where PyTorch runs in its best
# configuration; this script has no PyTorch peer of its own.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake --build build --target lumen >/dev/null
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores; date: $(date -u +%F)"
for mode in env unset; do
    run=()
    if [ "$mode" = unset ]; then run=(env -u OPENBLAS_CORETYPE); fi
    echo
    echo "## OPENBLAS_CORETYPE: $([ "$mode" = env ] && echo "${OPENBLAS_CORETYPE:-(not set)}" || echo "unset (OpenBLAS picks the kernel)")"
    for t in 1 2; do
        "${run[@]}" ./build/lumen bench/net1_step.lua "$t" 300
    done
done
