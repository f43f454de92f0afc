#!/usr/bin/env bash
# The InfoVAE epoch and interrogation benchmark (bench/introspect.lua and its
# PyTorch peer), 1 and 2 threads, under each OpenBLAS kernel set of
# bench/kernel_sets.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake --build build --target lumen >/dev/null
source bench/kernel_sets.sh
run_with_peer bench/introspect.lua bench/introspect_torch.py
