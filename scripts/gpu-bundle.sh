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
cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release -DLUMEN_CUDA=ON -DLUMEN_NATIVE=OFF >/dev/null
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
du -sh gpu-bundle
ls gpu-bundle/lib
