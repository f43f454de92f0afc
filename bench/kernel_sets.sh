# Sourced by the CPU benchmark scripts: prints the machine line and sets
# `kernels` to the OpenBLAS kernel sets worth comparing on this processor:
# the one the environment pins (OPENBLAS_CORETYPE, Haswell on the development
# VM, whose OpenBLAS 0.3.21 misdetects its AMD EPYC) and, with AVX-512,
# SkylakeX. The scripts give both frameworks the same set in each round.
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores; date: $(date -u +%F)"
kernels=("${OPENBLAS_CORETYPE:-}")
if grep -q avx512f /proc/cpuinfo; then kernels+=(SkylakeX); fi

# run_with_peer LUA_BENCH PY_BENCH: the Lumen benchmark and its PyTorch peer,
# 1 and 2 threads, under every kernel set (PyTorch only where it is installed).
run_with_peer() {
    for kernel in "${kernels[@]}"; do
        echo "-- OpenBLAS kernels: ${kernel:-detected}"
        for t in 1 2; do
            OPENBLAS_CORETYPE="$kernel" ./build/lumen "$1" "$t"
            if /usr/bin/python3 -c "import torch" 2>/dev/null; then
                OPENBLAS_CORETYPE="$kernel" OPENBLAS_NUM_THREADS="$t" OMP_NUM_THREADS="$t" \
                    /usr/bin/python3 "$2" "$t"
            fi
        done
    done
}
