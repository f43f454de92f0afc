#!/usr/bin/env bash
# Builds Lumen with CUDA for a GPU machine that has no Lua, OpenBLAS or
# compilers' runtime libraries of its own, and packs the binary with the
# shared libraries it needs into ./gpu-bundle (bin/lumen, lib/*.so). The
# CUDA driver, cuBLAS and cuDNN come from the GPU machine itself (cuBLAS is
# opened at the first CUDA use; cuDNN is found by scripts/gpu-check.sh).
# Portable code generation (no -march=native): the GPU machine's processor
# is not this one.
set -euo pipefail
cd "$(dirname "$0")/.."
# no MPI: the GPU machine has no mpirun, and its libraries would only add weight
cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release -DLUMEN_CUDA=ON -DLUMEN_NATIVE=OFF -DLUMEN_MPI=OFF >/dev/null
cmake --build build-gpu -j"$(nproc)" --target lumen
# the kernels must be built for the H100/H200 (sm_90), not only as PTX that
# the driver would compile at first use (nvcc's own default is older)
grep -q "code=\[compute_90,sm_90\]" build-gpu/CMakeFiles/lumen_cuda.dir/flags.make ||
  { echo "gpu-bundle: the CUDA kernels are not built for sm_90 (LUMEN_CUDA_ARCHITECTURES)"; exit 1; }
rm -rf gpu-bundle
mkdir -p gpu-bundle/bin gpu-bundle/lib
cp build-gpu/lumen gpu-bundle/bin/
# every library the binary loads, except the C/C++ runtimes (the machine's are
# newer) and cuDNN (too large to carry)
ldd build-gpu/lumen | awk '/=>/ {print $1, $3}' | while read -r name path; do
  case "$name" in
    libc.so*|libm.so*|libdl.so*|libpthread.so*|librt.so*|ld-linux*|libgcc_s.so*|libstdc++*|libcudnn*) ;;
    *) cp -L "$path" "gpu-bundle/lib/$name" ;;
  esac
done
# what was built: the Lua library is inside the binary, so a bundle older
# than the tree would run yesterday's code on the device
echo "$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . ':!gpu-bundle' || echo ' + uncommitted changes')" \
  "built $(date -u '+%Y-%m-%d %H:%M UTC')" > gpu-bundle/STAMP
# ... and which Lua library: the device's scripts compare it with their tree
scripts/lua-md5.sh > gpu-bundle/LUA_MD5
du -sh gpu-bundle
ls gpu-bundle/lib
cat gpu-bundle/STAMP
# the device takes 64 MiB with the tree: say so here, not there
kib=$(du -sk gpu-bundle | cut -f1)
[ "$kib" -lt $((56 * 1024)) ] || { echo "gpu-bundle: ${kib} KiB leaves too little of the 64 MiB carry for the tree"; exit 1; }
