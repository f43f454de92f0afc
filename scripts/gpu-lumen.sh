#!/usr/bin/env bash
# Runs the carried gpu-bundle's lumen on the GPU machine with the libraries
# it needs (scripts/gpu-libs.sh); only this process sees them, so the
# machine's Python keeps its own.
#   scripts/gpu-lumen.sh experiments/net2_cifar10.lua --device cuda ...
cd "$(dirname "$0")/.."
. scripts/gpu-libs.sh
LD_LIBRARY_PATH="$LUMEN_LIBS" exec "$PWD/gpu-bundle/bin/lumen" "$@"
