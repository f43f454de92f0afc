#!/usr/bin/env bash
# Net1 epoch, data parallel (bench/dist_net1.lua): one process with 2 threads
# against 2 processes with 1 thread each, the same global batch of 128.
#   bench/dist_net1.sh [epochs]       (LUMEN: the binary, default ./build/lumen)
set -euo pipefail
cd "$(dirname "$0")/.."
lumen=${LUMEN:-./build/lumen}
epochs=${1:-2}
export OMPI_MCA_btl_vader_single_copy_mechanism=none
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(date -u +%Y-%m-%d)"
"$lumen" bench/dist_net1.lua 2 "$epochs"
mpirun --allow-run-as-root --oversubscribe --bind-to none -n 2 "$lumen" bench/dist_net1.lua 1 "$epochs"
mpirun --allow-run-as-root --oversubscribe --bind-to none -n 1 "$lumen" bench/dist_net1.lua 1 "$epochs"
