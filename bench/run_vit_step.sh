#!/bin/bash
# The small vision transformer on the CPU, Lumen against PyTorch's best
# configuration at 1 and 2 cores (bench/vit_step.lua, bench/vit_step_torch.py),
# then each side's best per core count.
#   bench/run_vit_step.sh [BATCH] > results.txt
# Every process is pinned with taskset to the cores it may use. PyTorch runs
# under each intra-op thread count up to the cores, OMP_WAIT_POLICY (unset,
# PASSIVE) with 2 threads, ATEN_CPU_CAPABILITY (its default and avx512) and
# OPENBLAS_CORETYPE (as detected, and SkylakeX where the processor has
# AVX-512: its Linear layers go through OpenBLAS); its inference is the
# faster of its encoder fast path and the plain path (the script times
# both). Lumen runs with the cores' thread count under the kernel set lumen
# -v names and under the detected one.
set -u
batch=${1:-128}
lumen=${LUMEN:-./build/lumen}
export BENCH_REPS=${BENCH_REPS:-5}
core=$(OPENBLAS_CORETYPE= $lumen -e 'print(lm.blas_info().avx512 and "SkylakeX" or "Haswell")')
echo "# $(date -u +%F' '%H:%M) UTC, $(nproc) cores, batch $batch, best of $BENCH_REPS; $($lumen -v 2>&1 | head -1)"
log=$(mktemp)
for cores in 1 2; do
  mask=$([ $cores = 1 ] && echo 0 || echo 0,1)
  for kernels in detected $core; do
    env=()
    [ $kernels != detected ] && env+=(OPENBLAS_CORETYPE=$kernels)
    echo "## lumen on $cores core(s): kernels $kernels"
    env -u OPENBLAS_CORETYPE "${env[@]}" taskset -c $mask $lumen bench/vit_step.lua $cores $batch | tee -a $log
  done
  for threads in $(seq 1 $cores); do
    for policy in unset PASSIVE; do
      [ $threads = 1 ] && [ $policy = PASSIVE ] && continue
      for cap in default avx512; do
        for kernels in detected $core; do
          env=(OPENBLAS_NUM_THREADS=$threads OMP_NUM_THREADS=$threads)
          [ $policy != unset ] && env+=(OMP_WAIT_POLICY=$policy)
          [ $cap != default ] && env+=(ATEN_CPU_CAPABILITY=$cap)
          [ $kernels != detected ] && env+=(OPENBLAS_CORETYPE=$kernels)
          echo "## torch on $cores core(s): ${env[*]}"
          env -u OPENBLAS_CORETYPE "${env[@]}" taskset -c $mask /usr/bin/python3 bench/vit_step_torch.py $threads $batch \
            | sed "s/^torch vit, [0-9]* thread/torch vit on $cores core(s), &/" | tee -a $log
        done
      done
    done
  done
done
echo "# best per side and core count (ms): inference, training step"
for cores in 1 2; do
  for side in lumen torch; do
    pat=$([ $side = lumen ] && echo "^lumen vit, $cores thread" || echo "^torch vit on $cores core")
    grep "$pat" $log | sed -n 's/.*inference \([0-9.]*\) ms, training step \([0-9.]*\) ms.*/\1 \2/p' |
      awk -v s=$side -v c=$cores 'NR == 1 || $1 < i { i = $1 } NR == 1 || $2 < t { t = $2 } END { printf "%s, %d core(s): %.1f %.1f\n", s, c, i, t }'
  done
done
rm -f $log
