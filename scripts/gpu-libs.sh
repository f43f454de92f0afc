#!/usr/bin/env bash
# Sourced by scripts/gpu-check.sh and scripts/gpu-lumen.sh on the GPU
# machine: sets LUMEN_LIBS, the library path the carried gpu-bundle's lumen
# needs (the bundle's own libraries, then the machine's cuDNN and cuBLAS).
# cuDNN and cuBLAS are the ones the machine's PyTorch loads where it has
# them (one set, known to work with its driver), else the newest found.
_lumen_torch_lib() { # the directory of the library PyTorch maps for pattern $1
  timeout 60 python3 - "$1" 2>/dev/null <<'PY'
import os, sys
import torch
torch.backends.cudnn.version()
torch.zeros(1).cuda() @ torch.zeros(1, 1).cuda() if torch.cuda.is_available() else None
for line in open("/proc/self/maps"):
    path = line.split()[-1]
    if sys.argv[1] in os.path.basename(path):
        print(os.path.dirname(path))
        break
PY
}
_lumen_newest_lib() { # the directory of the newest file named $1 (version order)
  find /usr/local /opt /usr/lib -name "$1" 2>/dev/null | sort -V | tail -1 | xargs -r dirname
}
_lumen_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# once per call: a script that sourced this already (gpu-study.sh before
# its gpu-lumen.sh runs) passes LUMEN_LIBS on, and each probe starts PyTorch
if [ -z "${LUMEN_LIBS:-}" ]; then
  CUDNN_DIR=$(_lumen_torch_lib 'libcudnn.so.9')
  [ -n "$CUDNN_DIR" ] || CUDNN_DIR=$(_lumen_newest_lib 'libcudnn.so.9')
  CUBLAS_DIR=$(_lumen_torch_lib 'libcublas.so.13')
  [ -n "$CUBLAS_DIR" ] || CUBLAS_DIR=$(_lumen_newest_lib 'libcublas.so.13')
  LUMEN_LIBS="$_lumen_root/gpu-bundle/lib:${CUDNN_DIR}:${CUBLAS_DIR}:/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export CUDNN_DIR CUBLAS_DIR LUMEN_LIBS
fi

# The bundle's binary embeds the Lua library: gpu-bundle.sh records its
# fingerprint (scripts/lua-md5.sh) in gpu-bundle/LUA_MD5, and the device's
# scripts refuse a bundle built from another tree (a stale bundle would run
# yesterday's Lua on a lent machine's few minutes).
lumen_bundle_matches_tree() {
  local built here
  built=$(cat "$_lumen_root/gpu-bundle/LUA_MD5" 2>/dev/null)
  here=$("$_lumen_root/scripts/lua-md5.sh")
  [ -n "$built" ] && [ "$built" = "$here" ] && return 0
  echo "gpu-bundle was built from another lua/ than this tree's (${built:-no LUA_MD5} vs $here): rerun scripts/gpu-bundle.sh"
  return 1
}
