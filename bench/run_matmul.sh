#!/usr/bin/env bash
# Runs the matmul benchmark (Lumen vs direct cblas_sgemm, then PyTorch) for
# 1 and 2 threads, first with OPENBLAS_CORETYPE as the environment has it,
# then with it unset (OpenBLAS picks its kernel from the CPU). Each table
# names the OpenBLAS kernel that ran.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake --build build --target bench_matmul >/dev/null
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores; date: $(date -u +%F)"
for mode in env unset; do
    run=()
    if [ "$mode" = unset ]; then run=(env -u OPENBLAS_CORETYPE); fi
    echo
    echo "## OPENBLAS_CORETYPE: $([ "$mode" = env ] && echo "${OPENBLAS_CORETYPE:-(not set)}" || echo unset)"
    for t in 1 2; do
        echo
        echo "### $t thread(s)"
        "${run[@]}" ./build/bench/bench_matmul "$t"
        echo
        if /usr/bin/python3 -c "import torch" 2>/dev/null; then
            # A product goes straight to the pthreads OpenBLAS that Debian's
            # torch calls, so PyTorch's only knobs are the ones matched here:
            # OpenBLAS's threads (torch.set_num_threads does not reach them)
            # and kernel set. Its best configuration is this one.
            OPENBLAS_NUM_THREADS="$t" OMP_NUM_THREADS="$t" "${run[@]}" /usr/bin/python3 bench/matmul_torch.py "$t"
        else
            echo "(python3-torch not installed: PyTorch column skipped)"
        fi
    done
done
