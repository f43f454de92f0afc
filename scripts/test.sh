#!/usr/bin/env bash
# Builds Lumen and runs every test: the normal build with warnings as errors,
# then the whole suite again under AddressSanitizer + UndefinedBehaviorSanitizer
# (with LeakSanitizer). Set LUMEN_SKIP_SANITIZE=1 to run only the first pass.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs="$(nproc)"

echo "== release build (-Werror)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DLUMEN_WERROR=ON >/dev/null
cmake --build build -j"$jobs"
(cd build && ctest --output-on-failure -j"$jobs")

if [ "${LUMEN_SKIP_SANITIZE:-0}" != 1 ]; then
    echo "== sanitizer build (ASan + UBSan + LSan)"
    cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DLUMEN_SANITIZE=ON -DLUMEN_WERROR=ON \
        -DLUMEN_CUDA=OFF >/dev/null
    cmake --build build-asan -j"$jobs"
    (cd build-asan && ctest --output-on-failure -j"$jobs")
fi
echo "== all tests passed"
