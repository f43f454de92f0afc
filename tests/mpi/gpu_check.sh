#!/usr/bin/env bash
# The data-parallel check with CUDA tensors (issue 17): two ranks sharing the
# one GPU, batch 16 each, against one process with batch 32, both on the GPU.
# Needs a build with CUDA and MPI; run from the repository root:
#   tests/mpi/gpu_check.sh [build-folder]      (default: build)
# Prints the largest differences and exits 1 when a check fails.
set -euo pipefail
build=${1:-build}
lumen="$build/lumen"
"$lumen" -e 'assert(lm.cuda.available(), "no GPU: " .. lm.cuda.status()); assert(lm.dist.available(), "built without MPI")'
out=$(mktemp -d)
export OMPI_MCA_btl_vader_single_copy_mechanism=none
timeout 300 mpirun --allow-run-as-root --oversubscribe -n 2 "$lumen" tests/mpi/train_mlp.lua dist "$out/dist" cuda
"$lumen" tests/mpi/train_mlp.lua single "$out/single" cuda
"$lumen" -e "
local r0, r1 = lm.load('$out/dist.0.safetensors'), lm.load('$out/dist.1.safetensors')
local single = lm.load('$out/single.0.safetensors')
local worst_ranks, worst_single = 0, 0
for name, t in pairs(single) do
  worst_ranks = math.max(worst_ranks, (r0[name] - r1[name]):abs():max():item())
  worst_single = math.max(worst_single, (r0[name] - t):abs():max():item())
end
print(string.format('CUDA, 2 ranks on one GPU: ranks differ by %g, from one process by %g', worst_ranks, worst_single))
if worst_ranks ~= 0 or worst_single > 1e-5 then os.exit(1) end"
rm -rf "$out"
