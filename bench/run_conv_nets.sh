#!/bin/bash
# Net2 and ResNet-18 (CIFAR stem) on the CPU, Lumen against PyTorch's best
# configuration at 1 and 2 cores (bench/conv_nets.lua, bench/conv_nets_torch.py).
#   bench/run_conv_nets.sh [BATCH] > results.txt
# BENCH_WIDTH=16 runs a quarter-width ResNet-18 (both sides read it).
# Every process is pinned with taskset to the cores it may use. PyTorch runs
# under each intra-op thread count up to the cores, OMP_WAIT_POLICY (unset,
# PASSIVE) with 2 threads, and ATEN_CPU_CAPABILITY (its default and avx512);
# its convolutions go through oneDNN (mkldnn), which picks its own kernels.
# Lumen runs with the cores' thread count under the OpenBLAS kernel set
# lumen -v names (SkylakeX where the processor has AVX-512).
set -u
batch=${1:-64}
lumen=${LUMEN:-./build/lumen}
export BENCH_REPS=${BENCH_REPS:-5}
core=$(OPENBLAS_CORETYPE= $lumen -e 'print(lm.blas_info().avx512 and "SkylakeX" or "Haswell")')
echo "# $(date -u +%F' '%H:%M) UTC, $(nproc) cores, batch $batch, ResNet-18 width ${BENCH_WIDTH:-64}, best of $BENCH_REPS; OpenBLAS kernels for Lumen: $core"
for cores in 1 2; do
  mask=$([ $cores = 1 ] && echo 0 || echo 0,1)
  for algorithm in auto gemm; do # Lumen's choice per layer, and im2col + GEMM everywhere
    OPENBLAS_CORETYPE=$core taskset -c $mask $lumen bench/conv_nets.lua $cores $batch $algorithm
  done
  for threads in $(seq 1 $cores); do
    for policy in unset PASSIVE; do
      [ $threads = 1 ] && [ $policy = PASSIVE ] && continue
      for cap in default avx512; do
        env=(OPENBLAS_NUM_THREADS=$threads OMP_NUM_THREADS=$threads)
        [ $policy != unset ] && env+=(OMP_WAIT_POLICY=$policy)
        [ $cap != default ] && env+=(ATEN_CPU_CAPABILITY=$cap)
        echo "## torch on $cores core(s): ${env[*]}"
        env "${env[@]}" taskset -c $mask /usr/bin/python3 bench/conv_nets_torch.py $threads $batch
      done
    done
  done
done
