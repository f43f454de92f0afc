# Sourced by the CPU benchmark scripts (and read by bench/torch_best.py):
# prints the machine line and sets `kernels` to the OpenBLAS kernel sets worth
# comparing on this processor: the one the environment pins
# (OPENBLAS_CORETYPE, Haswell on the development VM, whose OpenBLAS 0.3.21
# misdetects its AMD EPYC; empty: OpenBLAS detects the core) and, with
# AVX-512, SkylakeX. Both frameworks get the same sets in each round.
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores; date: $(date -u +%F)"
kernels=("${OPENBLAS_CORETYPE:-}")
if grep -q avx512f /proc/cpuinfo && [ "${OPENBLAS_CORETYPE:-}" != SkylakeX ]; then kernels+=(SkylakeX); fi
