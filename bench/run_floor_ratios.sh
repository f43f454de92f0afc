#!/usr/bin/env bash
# Net1 and InfoVAE training epochs against their GEMM-only floors
# (bench/net1_gemm_floor.lua, bench/infovae_gemm_floor.lua), side by side:
# each floor and its epoch run one after the other, ROUNDS times (default 2),
# at 1 and 2 threads, and the best of each is kept. This VM's speed changes
# by up to 50 % from minute to minute, so a ratio is only worth something
# when both of its numbers come from the same minutes.
#   bench/run_floor_ratios.sh [THREADS...]
# LUMEN names the binary (default ./build/lumen, rebuilt first).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${LUMEN:-}" ]; then cmake --build build --target lumen >/dev/null; fi
lumen=${LUMEN:-./build/lumen}
rounds=${ROUNDS:-2}
threads=("$@")
[ ${#threads[@]} -gt 0 ] || threads=(1 2)

# seconds from a floor's line ("...: 1.142 s, ...") or an epoch's json line
floor_s() { "$lumen" "$1" "$2" | sed -n 's/.*): \([0-9.]*\) s,.*/\1/p'; }
epoch_s() { "$lumen" "$1" "$2" | sed -n 's/.*"epoch_s": \([0-9.]*\).*/\1/p'; }
best() { printf '%s\n' "$@" | sort -g | head -1; }

echo "$("$lumen" -v 2>&1 | paste -sd";" -); $(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) cores;" \
  "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}; $rounds rounds, floor and epoch alternated"
printf '%-8s %-8s %10s %10s %7s\n' threads network floor_s epoch_s ratio
for t in "${threads[@]}"; do
  nf=() ne=() vf=() ve=()
  for _ in $(seq "$rounds"); do
    nf+=("$(floor_s bench/net1_gemm_floor.lua "$t")")
    ne+=("$(epoch_s bench/net1_epoch.lua "$t")")
    vf+=("$(floor_s bench/infovae_gemm_floor.lua "$t")")
    ve+=("$(BENCH_EPOCHS=3 epoch_s bench/introspect.lua "$t")")
  done
  for net in Net1 InfoVAE; do
    if [ "$net" = Net1 ]; then f=$(best "${nf[@]}") e=$(best "${ne[@]}"); else f=$(best "${vf[@]}") e=$(best "${ve[@]}"); fi
    printf '%-8s %-8s %10.3f %10.3f %7.2f\n' "$t" "$net" "$f" "$e" "$(awk "BEGIN { print $e / $f }")"
  done
done
