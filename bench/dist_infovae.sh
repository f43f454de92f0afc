#!/usr/bin/env bash
# InfoVAE epoch, data parallel (bench/dist_infovae.lua): one process with 2
# threads against 2 processes with 1 thread each (and one with 1 thread),
# the same global batch of 128.
#   bench/dist_infovae.sh [epochs] [rows]     (LUMEN: the binary, default ./build/lumen)
# The numbers are only meaningful on an otherwise idle machine: run it with
# nothing else busy (check `uptime`), e.g. `nice -n -5 bench/dist_infovae.sh`.
set -euo pipefail
cd "$(dirname "$0")/.."
lumen=${LUMEN:-./build/lumen}
epochs=${1:-3}
rows=${2:-30000}
export OMPI_MCA_btl_vader_single_copy_mechanism=none
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(date -u +%Y-%m-%d), load $(cut -d' ' -f1-3 /proc/loadavg)"
"$lumen" bench/dist_infovae.lua 2 "$epochs" "$rows"
mpirun --allow-run-as-root --oversubscribe --bind-to none -n 2 "$lumen" bench/dist_infovae.lua 1 "$epochs" "$rows"
"$lumen" bench/dist_infovae.lua 1 "$epochs" "$rows"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
