#!/usr/bin/env bash
# Style checks, part of the test command: every C/CUDA file as .clang-format
# formats it, and luacheck (Debian's lua-check, .luacheckrc) clean over the
# Lua library, the experiments, the tests and the benchmarks. Fix a C file
# with `clang-format -i FILE`.
set -euo pipefail
cd "$(dirname "$0")/.."
status=0
if command -v clang-format >/dev/null; then
    mapfile -t c_files < <(git ls-files '*.c' '*.h' '*.cu' '*.cuh')
    if ! clang-format --dry-run -Werror "${c_files[@]}"; then
        echo "lint: C/CUDA files differ from .clang-format (clang-format -i FILE fixes them)"
        status=1
    fi
else
    echo "lint: clang-format is not installed (./scripts/install-deps.sh installs it)"
    status=1
fi
if command -v luacheck >/dev/null; then
    luacheck --no-color -q lua experiments tests bench fuzz || status=1
else
    echo "lint: luacheck is not installed (apt-get install lua-check)"
    status=1
fi
[ "$status" = 0 ] && echo "lint: clean"
exit "$status"
