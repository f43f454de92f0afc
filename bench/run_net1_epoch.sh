#!/usr/bin/env bash
# A Net1 training epoch and a test-set inference pass on MNIST, Lumen and
# PyTorch, 1 and 2 threads, under each OpenBLAS kernel set of
# bench/kernel_sets.sh; the results file compares with PyTorch's best.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake --build build --target lumen >/dev/null
source bench/kernel_sets.sh
run_with_peer bench/net1_epoch.lua bench/net1_epoch_torch.py
