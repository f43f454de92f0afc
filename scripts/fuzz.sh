#!/usr/bin/env bash
# Fuzzes the file readers (fonts and images included) and the
# tensor-from-table constructor with libFuzzer (clang; ASan + UBSan), each
# for SECONDS (default 30), starting from seed corpora the build generates. A
# crash fails the script and leaves the input in build-fuzz/crashes/: add it
# as a regression test. A harness that fails in any other way, or executes no
# input, fails the script too. Then the Lua API fuzzer (fuzz/lua_api.lua)
# calls every function Lumen gives Lua with random arguments, from the seed
# LUMEN_FUZZ_SEED (default: the time, printed): SECONDS/400 a function, about
# 5 x SECONDS in all with the objects' set-up under ASan (142 s for 30 on 2
# cores, 1,076 functions, 2026-12-05).
#   scripts/fuzz.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-30}"
CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DLUMEN_FUZZ=ON -DLUMEN_CUDA=OFF \
    -DLUMEN_NATIVE=OFF >/dev/null
cmake --build build-fuzz -j"$(nproc)" --target lumen fuzz_idx fuzz_cifar fuzz_safetensors fuzz_tensor_table \
    fuzz_font fuzz_image
rm -rf build-fuzz/corpus build-fuzz/crashes && mkdir -p build-fuzz/crashes
ASAN_OPTIONS=detect_leaks=0 build-fuzz/lumen fuzz/make_corpus.lua build-fuzz/corpus
# Each harness must exit 0 (a crash, a leak, a timeout or a harness that does
# not start all exit non-zero) and must have executed a positive number of
# inputs: a run that tested nothing fails too.
for name in idx cifar safetensors tensor_table font image; do
    echo "== fuzz_${name}: ${seconds} s"
    log=build-fuzz/fuzz_${name}.log
    status=0
    max_len=65536
    if [ "$name" = font ]; then max_len=1048576; fi # its seeds include DejaVu Sans (760 kB)
    ASAN_OPTIONS=detect_leaks=1 build-fuzz/fuzz_${name} -max_total_time="$seconds" -max_len="$max_len" \
        -timeout=10 -rss_limit_mb=2048 -artifact_prefix=build-fuzz/crashes/${name}- \
        -print_final_stats=1 build-fuzz/corpus/${name} > "$log" 2>&1 || status=$?
    grep -E "^#[0-9]+ *DONE|stat::number_of_executed_units|ERROR|SUMMARY|crash-" "$log" || true
    units=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' "$log" | tail -1)
    if [ "$status" != 0 ]; then
        tail -30 "$log"
        echo "fuzz_${name} failed (exit status ${status}; inputs, if any: build-fuzz/crashes/; log: ${log})"
        exit 1
    fi
    if ! [ "${units:-0}" -gt 0 ] 2>/dev/null; then
        tail -30 "$log"
        echo "fuzz_${name} executed no inputs (log: ${log})"
        exit 1
    fi
    if ls build-fuzz/crashes/${name}-* >/dev/null 2>&1; then
        echo "fuzz_${name} left a crash input: build-fuzz/crashes/"
        exit 1
    fi
    echo "fuzz_${name}: ${units} inputs executed"
done

# The Lua API: a crash, a sanitizer report or a hang fails; the calls run in
# a scratch folder (some write files), each logged before it runs.
seed="${LUMEN_FUZZ_SEED:-$(date +%s)}"
echo "== lua_api (seed ${seed}): every Lua function, about $((seconds * 5)) s"
rm -rf build-fuzz/lua_api && mkdir -p build-fuzz/lua_api
status=0
(cd build-fuzz/lua_api &&
    ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1:max_allocation_size_mb=1024:hard_rss_limit_mb=3072 \
        timeout $((seconds * 4 + 300)) ../lumen ../../fuzz/lua_api.lua --seed "$seed" --calls 1000000 \
        --per-function-seconds "$(awk "BEGIN { print ${seconds} / 400 }")" > run.log 2>&1) || status=$?
tail -3 build-fuzz/lua_api/run.log
if [ "$status" != 0 ]; then
    tail -40 build-fuzz/lua_api/run.log
    echo "lua_api failed (exit status ${status}); the call that failed is the last line of" \
        "build-fuzz/lua_api/lua_api_calls.log; rerun: cd build-fuzz/lua_api && ../lumen ../../fuzz/lua_api.lua" \
        "--seed ${seed} --only NAME"
    exit 1
fi
echo "== fuzzing found nothing"
