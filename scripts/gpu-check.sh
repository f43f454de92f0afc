#!/usr/bin/env bash
# The GPU check, in one call on the lent GPU machine (see docs and
# bench/RESULTS.md): uses the bundle that scripts/gpu-bundle.sh built here
# (carried as gpu-bundle/), runs tests/gpu against the CPU reference, then
# the epoch benchmarks of Lumen and PyTorch on the same card, and prints a
# short table last. Every stage's whole output goes to $OUT (or
# /tmp/lumen-gpu); the exit status is non-zero when any stage failed or gave
# no result. The stages share one deadline (BUDGET seconds, 520 by default)
# so that the call ends with its summary inside the device's 600 s a call.
#   on the GPU machine: scripts/gpu-check.sh [quick|autocast]
#   quick: tests and Net1 only
#   autocast: tests, then ResNet-18 (CIFAR stem) epochs in float32 and under
#   lm.autocast('bfloat16'), against PyTorch in float32 and with bfloat16 AMP
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/lumen-gpu}
mkdir -p "$OUT"
B=gpu-bundle
[ -x $B/bin/lumen ] || { echo "no $B/bin/lumen: run scripts/gpu-bundle.sh first and carry gpu-bundle"; exit 1; }
DEADLINE=$((SECONDS + ${BUDGET:-520}))
left() { local l=$((DEADLINE - SECONDS)); [ $l -gt 1 ] && echo $l || echo 1; }
# at most $1 seconds, and never past the deadline
limit() { local l; l=$(left); [ "$1" -lt "$l" ] && echo "$1" || echo "$l"; }
failed=""
stage_failed() { failed="$failed $1"; echo "!! $1 failed (status $2)"; }

. scripts/gpu-libs.sh
lumen_bundle_matches_tree || exit 1
lumen() { LD_LIBRARY_PATH="$LUMEN_LIBS" timeout "$1" $B/bin/lumen "${@:2}"; }
{
  echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  [ -f $B/STAMP ] && echo "bundle: $(cat $B/STAMP)"
  timeout 30 nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader
  echo "cuDNN from: ${CUDNN_DIR:-none}; cuBLAS from: ${CUBLAS_DIR:-none}"
  timeout 60 python3 -c 'import torch; print("torch", torch.__version__, "cuDNN", torch.backends.cudnn.version())'
  nproc
} 2>&1 | tee "$OUT/machine.txt"
lumen 30 -e 'print("lumen sees: " .. lm.cuda.status())' 2>&1 | tee -a "$OUT/machine.txt"

echo "== tests/gpu"
lumen "$(limit 150)" tests/run_specs.lua tests/gpu > "$OUT/gpu_tests.log" 2>&1
tests_rc=$?
grep -E "FAILED|passed|SKIPPED" "$OUT/gpu_tests.log" | head -60
[ $tests_rc -eq 0 ] || stage_failed "tests/gpu" $tests_rc
if [ $tests_rc -ne 0 ] && [ "$(left)" -gt 300 ]; then
  # the fused layers' kernels (kernels/cuda_norm.cu and the others, never
  # run on a GPU before this session's tests) are the likeliest cause: the
  # same tests without them say so, and the benchmarks then run without them
  echo "== tests/gpu again with LUMEN_CUDA_UNFUSED=1"
  LUMEN_CUDA_UNFUSED=1 lumen "$(limit 150)" tests/run_specs.lua tests/gpu > "$OUT/gpu_tests_unfused.log" 2>&1
  unfused_rc=$?
  grep -E "FAILED|passed" "$OUT/gpu_tests_unfused.log" | head -20
  if [ $unfused_rc -eq 0 ]; then
    echo "!! the fused kernels fail where the composed ops pass: benchmarks run with LUMEN_CUDA_UNFUSED=1"
    export LUMEN_CUDA_UNFUSED=1
  fi
fi

echo "== benchmarks"
models="net1 net2"
[ "${1:-}" = quick ] && models=net1
[ "${1:-}" = autocast ] && models=""
: > "$OUT/bench.txt"
if [ "${1:-}" = autocast ]; then
  # one epoch each (after 20 warm-up steps): float32, then bfloat16 products
  for p in float32 bfloat16; do
    lumen "$(limit 100)" bench/gpu_epoch.lua resnet18 cuda 1 $p > "$OUT/lumen_resnet18_$p.log" 2>&1
    rc=$?
    tail -2 "$OUT/lumen_resnet18_$p.log" | tee -a "$OUT/bench.txt"
    [ $rc -eq 0 ] || stage_failed "lumen resnet18 $p" $rc
  done
  for amp in "" --amp; do
    timeout "$(limit 130)" python3 bench/gpu_epoch_torch.py resnet18 1 $amp --variants resident,graph \
      > "$OUT/torch_resnet18${amp}.log" 2>&1
    rc=$?
    sed "s/^torch/torch${amp:+-amp}/" "$OUT/torch_resnet18${amp}.log" | tail -6 | tee -a "$OUT/bench.txt"
    [ $rc -eq 0 ] || stage_failed "torch resnet18 ${amp:-float32}" $rc
  done
fi
for m in $models; do
  lumen "$(limit 90)" bench/gpu_epoch.lua $m cuda 2 > "$OUT/lumen_$m.log" 2>&1
  rc=$?
  tail -3 "$OUT/lumen_$m.log" | tee -a "$OUT/bench.txt"
  [ $rc -eq 0 ] || stage_failed "lumen $m" $rc
  # the same epochs as replays of one captured CUDA graph (lm.cuda.graph)
  lumen "$(limit 90)" bench/gpu_epoch.lua $m cuda 2 float32 graph > "$OUT/lumen_graph_$m.log" 2>&1
  rc=$?
  tail -3 "$OUT/lumen_graph_$m.log" | tee -a "$OUT/bench.txt"
  [ $rc -eq 0 ] || stage_failed "lumen $m graph" $rc
  # one line per variant (eager, pinned, resident, graph), then "torch" (eager) and "torch-best"
  timeout "$(limit 150)" python3 bench/gpu_epoch_torch.py $m 2 > "$OUT/torch_$m.log" 2>&1
  rc=$?
  tail -12 "$OUT/torch_$m.log" | tee -a "$OUT/bench.txt"
  [ $rc -eq 0 ] || stage_failed "torch $m" $rc
done

echo "== summary"
echo "tests/gpu: $(tail -1 "$OUT/gpu_tests.log") (exit $tests_rc)"
[ -n "${LUMEN_CUDA_UNFUSED:-}" ] && echo "(benchmarks without the fused layers: LUMEN_CUDA_UNFUSED=1)"
for m in $models; do
  l=$(awk -v m=$m '$1=="lumen" && $2==m {print $5}' "$OUT/bench.txt")
  t=$(awk -v m=$m '$1=="torch" && $2==m {print $5}' "$OUT/bench.txt")
  b=$(awk -v m=$m '$1=="torch-best" && $2==m {print $5}' "$OUT/bench.txt")
  bv=$(awk -v m=$m '$1=="torch-best" && $2==m {sub(/;.*/, "", $11); print $11}' "$OUT/bench.txt")
  [ -n "$l" ] || stage_failed "lumen $m: no result line" 0
  [ -n "$t" ] || stage_failed "torch $m: no result line" 0
  ratio=$(awk -v l="$l" -v t="$t" 'BEGIN { if (l > 0 && t > 0) printf "%.2f", l / t; else print "n/a" }')
  ratio_b=$(awk -v l="$l" -v t="$b" 'BEGIN { if (l > 0 && t > 0) printf "%.2f", l / t; else print "n/a" }')
  echo "$m epoch (batch 128): lumen ${l:-?} s, torch eager ${t:-?} s, lumen/torch-eager $ratio; torch best ${b:-?} s (${bv:-?}), lumen/torch-best $ratio_b"
  lg=$(awk -v m=$m '$1=="lumen-graph" && $2==m {print $5}' "$OUT/bench.txt")
  [ -n "$lg" ] || stage_failed "lumen $m graph: no result line" 0
  ratio_g=$(awk -v l="$lg" -v t="$b" 'BEGIN { if (l > 0 && t > 0) printf "%.2f", l / t; else print "n/a" }')
  echo "$m epoch as CUDA graph replays: lumen ${lg:-?} s, lumen-graph/torch-best $ratio_g"
done
if [ "${1:-}" = autocast ]; then
  l32=$(awk '$1=="lumen" && $2=="resnet18" && $NF!="bfloat16" {print $5}' "$OUT/bench.txt")
  l16=$(awk '$1=="lumen" && $2=="resnet18" && $NF=="bfloat16" {print $5}' "$OUT/bench.txt")
  t32=$(awk '$1=="torch-best" && $2=="resnet18" {print $5}' "$OUT/bench.txt")
  t16=$(awk '$1=="torch-amp-best" && $2=="resnet18" {print $5}' "$OUT/bench.txt")
  for v in l32 l16 t32 t16; do [ -n "${!v}" ] || stage_failed "resnet18: no $v result line" 0; done
  ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a > 0 && b > 0) printf "%.2f", a / b; else print "n/a" }'; }
  echo "resnet18 epoch (batch 128): lumen float32 ${l32:-?} s, bfloat16 ${l16:-?} s (x$(ratio "$l32" "$l16") faster);" \
    "torch best float32 ${t32:-?} s, AMP bfloat16 ${t16:-?} s; lumen/torch float32 $(ratio "$l32" "$t32")," \
    "bfloat16 $(ratio "$l16" "$t16")"
fi
echo "time used: ${SECONDS} s"
if [ -n "$failed" ]; then
  echo "gpu-check: failed:$failed (logs in $OUT)"
  exit 1
fi
echo "gpu-check: every stage passed"
