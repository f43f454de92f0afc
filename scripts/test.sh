#!/usr/bin/env bash
# Builds Lumen and runs every test: the style checks (scripts/lint.sh), the
# normal build with warnings as errors, the GPU specs on the CUDA emulator,
# then the whole suite again under AddressSanitizer + UndefinedBehaviorSanitizer
# (with LeakSanitizer), then short libFuzzer runs of the file readers and the
# tensor-from-table constructor (needs clang; LUMEN_FUZZ_SECONDS per harness,
# default 30). LUMEN_SKIP_SANITIZE=1 runs only the first pass, LUMEN_SKIP_FUZZ=1
# skips the fuzzing.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs="$(nproc)"

echo "== lint (clang-format, luacheck)"
./scripts/lint.sh

echo "== release build (-Werror)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DLUMEN_WERROR=ON >/dev/null
cmake --build build -j"$jobs"
(cd build && ctest --output-on-failure -j"$jobs")

# The CUDA backend's own code, kernels and glue, with the GPU specs: built
# for the CPU by the emulator of CUDA's execution model (tests/c/cuda_emulator.h),
# fused and composed (LUMEN_CUDA_UNFUSED=1). On a lent GPU,
# scripts/gpu-check.sh runs the same specs on the device.
echo "== GPU specs on the CUDA emulator"
cmake -S . -B build-emu -DCMAKE_BUILD_TYPE=Release -DLUMEN_CUDA=EMULATED -DLUMEN_WERROR=ON \
    -DLUMEN_BUILD_TESTS=OFF -DLUMEN_MPI=OFF >/dev/null
cmake --build build-emu -j"$jobs" --target lumen
LUMEN_BUILD_DIR=build-emu build-emu/lumen tests/run_specs.lua tests/gpu
LUMEN_CUDA_UNFUSED=1 LUMEN_BUILD_DIR=build-emu build-emu/lumen tests/run_specs.lua tests/gpu

if [ "${LUMEN_SKIP_SANITIZE:-0}" != 1 ]; then
    echo "== sanitizer build (ASan + UBSan + LSan)"
    cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DLUMEN_SANITIZE=ON -DLUMEN_WERROR=ON \
        -DLUMEN_CUDA=OFF >/dev/null
    cmake --build build-asan -j"$jobs"
    (cd build-asan && ctest --output-on-failure -j"$jobs")
fi
if [ "${LUMEN_SKIP_FUZZ:-0}" != 1 ] && [ "${LUMEN_SKIP_SANITIZE:-0}" != 1 ]; then
    if command -v clang >/dev/null; then
        echo "== fuzzing (libFuzzer, ${LUMEN_FUZZ_SECONDS:-30} s per harness)"
        ./scripts/fuzz.sh "${LUMEN_FUZZ_SECONDS:-30}"
    else
        echo "== fuzzing skipped: clang is not installed (./scripts/install-deps.sh clang libclang-rt-14-dev)"
    fi
fi
echo "== all tests passed"
