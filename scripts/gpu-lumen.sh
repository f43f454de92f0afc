#!/usr/bin/env bash
# Runs the carried gpu-bundle's lumen on the GPU machine with the libraries
# it needs (the bundle's own, then the machine's cuDNN and cuBLAS); only
# this process sees them, so the machine's Python keeps its own.
#   scripts/gpu-lumen.sh experiments/net2_cifar10.lua --device cuda ...
cd "$(dirname "$0")/.."
libdir_of() { find /usr/local /opt /usr/lib -name "$1" 2>/dev/null | head -1 | xargs -r dirname; }
LIBS="$PWD/gpu-bundle/lib:$(libdir_of 'libcudnn.so.9'):$(libdir_of 'libcublas.so.13'):/usr/local/cuda/lib64"
LD_LIBRARY_PATH="$LIBS:${LD_LIBRARY_PATH:-}" exec "$PWD/gpu-bundle/bin/lumen" "$@"
