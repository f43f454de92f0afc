#!/usr/bin/env bash
# The main experiment on a lent GPU, end to end (issue 21's goal: at most
# 30 s), in one call that carries the bundle and MNIST:
#   here:        scripts/gpu-bundle.sh && scripts/gpu-data.sh stage mnist
#   the device:  scripts/gpu-study.sh        (carry ["gpu-bundle", "data/mnist"])
# Checks MNIST against its md5s, runs experiments/introspect_mnist.lua with
# --device cuda into a fresh output folder, and prints the wall time, each
# stage's seconds and the map's quality measures (kNN-10, AUROC against the
# largest logit); metrics.json, the log and the figures go to $OUT (or
# /tmp/lumen-gpu-study). Extra arguments go to the experiment.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/lumen-gpu-study}
mkdir -p "$OUT"
[ -x gpu-bundle/bin/lumen ] || { echo "no gpu-bundle/bin/lumen: run scripts/gpu-bundle.sh first and carry gpu-bundle"; exit 1; }
[ -f gpu-bundle/STAMP ] && echo "bundle: $(cat gpu-bundle/STAMP)"
. scripts/gpu-libs.sh
lumen_bundle_matches_tree || exit 1
scripts/gpu-data.sh check mnist || exit 1
run=/tmp/lumen-study-run
rm -rf "$run"
start=$SECONDS
# 420 s: a run that has not finished leaves each finished stage's time in
# the log, and the call time to read it (the device lends 600 s a call)
timeout "${STUDY_LIMIT:-420}" scripts/gpu-lumen.sh experiments/introspect_mnist.lua --device cuda \
  --data-dir data/mnist --out "$run" "$@" > "$OUT/study.log" 2>&1
rc=$?
echo "introspect_mnist --device cuda: status $rc, $((SECONDS - start)) s wall (log: $OUT/study.log)"
tail -5 "$OUT/study.log"
cp "$run"/metrics.json "$run"/*.png "$OUT"/ 2>/dev/null
if [ -f "$run/metrics.json" ]; then
  cat > "$run/summary.lua" <<'LUA'
local m = lm.json.decode(io.open(arg[1]):read("a"))
for stage, s in pairs(m.seconds or {}) do print(string.format("  %-14s %7.1f s", stage, s)) end
print(string.format("kNN-10 %.4f, e_hat AUROC %.4f, largest logit %.4f, test accuracy %.4f",
  m.latent_knn10_accuracy or 0 / 0, m.auroc_correct or 0 / 0, m.auroc_correct_baseline or 0 / 0,
  m.classifier_test_accuracy or 0 / 0))
LUA
  scripts/gpu-lumen.sh "$run/summary.lua" "$run/metrics.json" | tee "$OUT/summary.txt"
fi
exit $rc
