#!/usr/bin/env bash
# The whole CPU comparison with PyTorch in one command: both benchmarks
# (Net1 epoch + inference, InfoVAE epoch + interrogation), 1 and 2 cores,
# Lumen under both OpenBLAS kernel sets, PyTorch's whole configuration search
# (bench/torch_best.py), best of 3 epochs everywhere. About 12-15 minutes on
# the 2-core development VM when it is otherwise idle (run it so).
#   bench/run_peers.sh [OUTDIR] [torch_best.py options]
# Results: OUTDIR/{net1_epoch,introspect}.{json,tsv,txt}, logs in OUTDIR/logs,
# everything printed also in OUTDIR/run.log; the RATIO lines are the headline.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-results/bench-peers-$(date -u +%Y%m%d-%H%M)}
shift || true
if [ -z "${LUMEN:-}" ]; then cmake --build build --target lumen >/dev/null; fi
mkdir -p "$out"
LUMEN="${LUMEN:-./build/lumen}" /usr/bin/python3 bench/check_infovae_loss.py > "$out/check_infovae_loss.txt"
start=$(date +%s)
/usr/bin/python3 bench/torch_best.py net1_epoch introspect --out "$out" --lumen "${LUMEN:-./build/lumen}" "$@" 2>&1 | tee "$out/run.log"
echo "total: $(( ($(date +%s) - start) / 60 )) min; headline:" | tee -a "$out/run.log"
grep '^RATIO' "$out/run.log" | tee "$out/ratios.txt"
