#!/bin/bash
# Depthwise layers (3x3 on 56x56, 7x7 on 28x28, 3x3 stride 2) on the CPU,
# Lumen against PyTorch at 1 and 2 cores (bench/conv_depthwise.lua,
# bench/conv_depthwise_torch.py).
#   bench/run_conv_depthwise.sh > results.txt
# Every process is pinned with taskset to the cores it may use. PyTorch runs
# under each intra-op thread count up to the cores, OMP_WAIT_POLICY (unset,
# PASSIVE) with 2 threads, ATEN_CPU_CAPABILITY (its default and avx512) and
# glibc's malloc as it is or without mmap (GLIBC_TUNABLES: torch's oneDNN
# path allocates 25 MB buffers a call, which glibc maps and unmaps each time,
# and a fresh page costs 10-18 us on these VMs: 230-300 ms a 3x3 forward pass
# against 7 ms without). Lumen runs with the cores' thread count under the
# OpenBLAS kernel set lumen -v names, its depthwise kernel (auto) and im2col
# a group at a time (gemm).
set -u
lumen=${LUMEN:-./build/lumen}
export BENCH_REPS=${BENCH_REPS:-5}
core=$(OPENBLAS_CORETYPE= $lumen -e 'print(lm.blas_info().avx512 and "SkylakeX" or "Haswell")')
echo "# $(date -u +%F' '%H:%M) UTC, $(nproc) cores, best of $BENCH_REPS; OpenBLAS kernels for Lumen: $core"
for cores in 1 2; do
  mask=$([ $cores = 1 ] && echo 0 || echo 0,1)
  for algorithm in auto gemm; do
    OPENBLAS_CORETYPE=$core taskset -c $mask $lumen bench/conv_depthwise.lua $cores $algorithm
  done
  for threads in $(seq 1 $cores); do
    for policy in unset PASSIVE; do
      [ $threads = 1 ] && [ $policy = PASSIVE ] && continue
      for cap in default avx512; do
        for heap in default no-mmap; do
          env=(OPENBLAS_NUM_THREADS=$threads OMP_NUM_THREADS=$threads)
          [ $policy != unset ] && env+=(OMP_WAIT_POLICY=$policy)
          [ $cap != default ] && env+=(ATEN_CPU_CAPABILITY=$cap)
          [ $heap != default ] && env+=(GLIBC_TUNABLES=glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=17179869184)
          echo "## torch on $cores core(s): ${env[*]}"
          env "${env[@]}" taskset -c $mask /usr/bin/python3 bench/conv_depthwise_torch.py $threads
        done
      done
    done
  done
done
