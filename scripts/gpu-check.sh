#!/usr/bin/env bash
# The GPU check, in one call on the lent GPU machine (see docs and
# bench/RESULTS.md): uses the bundle that scripts/gpu-bundle.sh built here
# (carried as gpu-bundle/), runs tests/gpu against the CPU reference, then
# the epoch benchmarks of Lumen and PyTorch on the same card, and prints a
# short table last. Logs go to $OUT (or /tmp/lumen-gpu).
#   on the GPU machine: scripts/gpu-check.sh [quick]
#   quick: tests and Net1 only
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/lumen-gpu}
mkdir -p "$OUT"
B=gpu-bundle
[ -x $B/bin/lumen ] || { echo "no $B/bin/lumen: run scripts/gpu-bundle.sh first and carry gpu-bundle"; exit 1; }

# cuDNN and cuBLAS of the machine (Python wheels or the toolkit)
libdir_of() { find /usr/local /opt /usr/lib -name "$1" 2>/dev/null | head -1 | xargs -r dirname; }
CUDNN_DIR=$(libdir_of 'libcudnn.so.9')
CUBLAS_DIR=$(libdir_of 'libcublas.so.13')
# only Lumen sees the carried libraries: Python keeps the machine's own
LUMEN_LIBS="$PWD/$B/lib:${CUDNN_DIR}:${CUBLAS_DIR}:/usr/local/cuda/lib64"
lumen() { LD_LIBRARY_PATH="$LUMEN_LIBS:${LD_LIBRARY_PATH:-}" $B/bin/lumen "$@"; }
{
  echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader
  echo "cuDNN from: ${CUDNN_DIR:-none}; cuBLAS from: ${CUBLAS_DIR:-none}"
  python3 -c 'import torch; print("torch", torch.__version__, "cuDNN", torch.backends.cudnn.version())'
  nproc
} 2>&1 | tee "$OUT/machine.txt"
lumen -e 'print("lumen sees: " .. lm.cuda.status())' 2>&1 | tee -a "$OUT/machine.txt"

echo "== tests/gpu"
timeout 300 env LD_LIBRARY_PATH="$LUMEN_LIBS" $B/bin/lumen tests/run_specs.lua tests/gpu > "$OUT/gpu_tests.log" 2>&1
tests_rc=$?
grep -E "FAILED|passed|SKIPPED" "$OUT/gpu_tests.log" | head -60

echo "== benchmarks"
models="net1 net2"
[ "${1:-}" = quick ] && models=net1
: > "$OUT/bench.txt"
for m in $models; do
  timeout 200 env LD_LIBRARY_PATH="$LUMEN_LIBS" $B/bin/lumen bench/gpu_epoch.lua $m cuda 2 2>&1 | tail -3 | tee -a "$OUT/bench.txt"
  # one line per variant (eager, pinned, resident, graph), then "torch" (eager) and "torch-best"
  timeout 300 python3 bench/gpu_epoch_torch.py $m 2 2>&1 | tail -12 | tee -a "$OUT/bench.txt"
done

echo "== summary"
echo "tests/gpu: $(tail -1 "$OUT/gpu_tests.log") (exit $tests_rc)"
for m in $models; do
  l=$(awk -v m=$m '$1=="lumen" && $2==m {print $5}' "$OUT/bench.txt")
  t=$(awk -v m=$m '$1=="torch" && $2==m {print $5}' "$OUT/bench.txt")
  b=$(awk -v m=$m '$1=="torch-best" && $2==m {print $5}' "$OUT/bench.txt")
  bv=$(awk -v m=$m '$1=="torch-best" && $2==m {sub(/;.*/, "", $11); print $11}' "$OUT/bench.txt")
  ratio=$(awk -v l="$l" -v t="$t" 'BEGIN { if (l > 0 && t > 0) printf "%.2f", l / t; else print "n/a" }')
  ratio_b=$(awk -v l="$l" -v t="$b" 'BEGIN { if (l > 0 && t > 0) printf "%.2f", l / t; else print "n/a" }')
  echo "$m epoch (batch 128): lumen ${l:-?} s, torch eager ${t:-?} s, lumen/torch-eager $ratio; torch best ${b:-?} s (${bv:-?}), lumen/torch-best $ratio_b"
done
exit $tests_rc
