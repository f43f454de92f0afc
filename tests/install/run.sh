#!/usr/bin/env bash
# Lumen as an installed library (ctest: install_prefix, install_luarocks).
#
#   tests/install/run.sh prefix   SOURCE_DIR BUILD_DIR
#   tests/install/run.sh luarocks SOURCE_DIR BUILD_DIR
#
# prefix: `cmake --install BUILD_DIR --prefix P` into a temporary folder, then,
# from a folder outside the source tree: the installed `lumen` says its build
# kind and runs an experiment from P/share/lumen; a stock lua5.4 with
# LUA_CPATH set to P requires the module; `pkg-config` compiles
# examples/embed, which runs a script and calls the core; examples/c_module
# builds with find_package(Lumen) and its op works from lua5.4 and from the
# installed `lumen`, gradients included; docs/embedding.md's C blocks are the
# examples' files or compile against P.
# luarocks: `luarocks make --tree T` from a copy of the source tree (kept in
# BUILD_DIR/luarocks-src, so a second run is incremental), then a stock
# lua5.4 with that tree's paths requires lumen and T/bin/lumen is portable.
#
# Exit 77 (skipped) when a tool is missing, unless CI is set: CI installs them.
set -euo pipefail
mode="$1"
src="$(cd "$2" && pwd)"
build="$(cd "$3" && pwd)"

need() {
    for tool in "$@"; do
        if ! command -v "$tool" >/dev/null; then
            if [ -n "${CI:-}" ]; then
                echo "FAIL: $tool is missing, and CI installs it (scripts/install-deps.sh)"
                exit 1
            fi
            echo "SKIP: $tool is not installed (./scripts/install-deps.sh installs it)"
            exit 77
        fi
    done
}
step() { echo "== $*"; }
fail() {
    echo "FAIL: $*"
    exit 1
}
# expect TEXT OUTPUT: OUTPUT contains TEXT
expect() {
    case "$2" in *"$1"*) ;; *) fail "expected '$1' in:"$'\n'"$2" ;; esac
}

tmp="$(mktemp -d)"
tmp="$(cd "$tmp" && pwd -P)"
trap 'rm -rf "$tmp"' EXIT
cd "$tmp" # nothing below may rely on the source tree being the working folder

case "$mode" in
prefix)
    need cmake cc c++ pkg-config lua5.4
    P="$tmp/prefix"
    step "cmake --install $build --prefix P"
    cmake --install "$build" --prefix "$P" >/dev/null
    for f in bin/lumen lib/lua/5.4/lumen.so lib/liblumen.so include/lumen/lumen.h include/lumen/lumen_lua.h \
        include/lumen/lm_tensor.h lib/pkgconfig/lumen.pc lib/cmake/Lumen/LumenConfig.cmake \
        share/lumen/experiments/custom_layer.lua share/lumen/docs/embedding.md share/doc/lumen/LICENSE; do
        [ -e "$P/$f" ] || fail "P/$f was not installed"
    done
    soname="$(readelf -d "$P/lib/liblumen.so" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')"
    expect "liblumen.so.0" "$soname"

    step "the installed lumen: -v, and an experiment from P/share/lumen"
    out="$("$P/bin/lumen" -v)"
    expect "Lumen " "$out"
    case "$out" in *"native build"* | *"portable build"*) ;; *) fail "lumen -v names no build kind: $out" ;; esac
    out="$("$P/bin/lumen" -e 'print(lm._share_dir)')"
    [ "$out" = "$P/share/lumen" ] || fail "the installed lumen finds its files in '$out', not $P/share/lumen"
    out="$("$P/bin/lumen" "$P/share/lumen/experiments/custom_layer.lua" 2>&1)" || fail "$out"
    expect "final loss" "$out"

    step "a stock lua5.4 requires the installed module"
    out="$(LUA_CPATH="$P/lib/lua/5.4/?.so" lua5.4 -e "
        local lm = require 'lumen'
        assert(lm._share_dir == '$P/share/lumen', tostring(lm._share_dir))
        print(lm.matmul(lm.ones(2, 3), lm.ones(3, 2)):sum():item())")"
    [ "$out" = "12.0" ] || [ "$out" = "12" ] || fail "lua5.4 with lumen printed '$out'"

    step "pkg-config compiles examples/embed, which runs"
    export PKG_CONFIG_PATH="$P/lib/pkgconfig"
    # shellcheck disable=SC2046
    cc -std=c11 -Wall -Wextra -Werror -o embed "$src/examples/embed/embed.c" \
        $(pkg-config --cflags --libs lumen) -Wl,-rpath,"$P/lib"
    out="$(./embed 2>&1)" || fail "$out"
    echo "$out"
    expect "script: a 4x1 output from 4 parameters" "$out"
    expect "script returned 12" "$out"
    expect "core: c = [[6, 6], [6, 6]]" "$out"
    expect "core: a a fails: " "$out"
    expect "lua: c:sum() = 24" "$out"

    step "each public header serves C++ alone (C linkage without lumen.h around it)"
    cat >headers.cpp <<'CPP'
#include <lumen/lm_ops.h>
#include <lumen/lm_safetensors.h>
int main() {
    lm_tensor *t = nullptr;
    int64_t shape[1] = {3};
    if (lm_full(&t, LM_FLOAT32, LM_CPU, 1, shape, 2.0) != LM_OK) return 1;
    lm_tensor *bad = nullptr; /* a refused call: its message through lm_last_error */
    if (lm_full(&bad, LM_FLOAT32, LM_CPU, -1, shape, 2.0) == LM_OK || !*lm_last_error()) return 2;
    lm_tensor_release(t);
    return 0;
}
CPP
    # shellcheck disable=SC2046
    c++ -std=c++11 -Wall -Werror -o headers headers.cpp $(pkg-config --cflags --libs lumen) -Wl,-rpath,"$P/lib" ||
        fail "a C++ program including lm_ops.h alone does not build"
    ./headers || fail "the C++ program including lm_ops.h failed"

    step "examples/c_module builds with find_package(Lumen); its op works with gradients"
    cmake -S "$src/examples/c_module" -B c_module -DCMAKE_PREFIX_PATH="$P" \
        -DCMAKE_C_FLAGS="-Wall -Wextra -Werror" >/dev/null
    cmake --build c_module >/dev/null
    out="$(cd "$src/examples/c_module" && LUA_CPATH="$tmp/c_module/?.so;$P/lib/lua/5.4/?.so" lua5.4 check.lua 2>&1)" ||
        fail "$out"
    expect "softsign: values and gradients match" "$out"
    out="$(cd "$src/examples/c_module" && LUA_CPATH="$tmp/c_module/?.so" "$P/bin/lumen" check.lua 2>&1)" ||
        fail "$out"
    expect "softsign: values and gradients match" "$out"

    step "find_package(Lumen) leaves the project's own LUA_* variables and PkgConfig::LUA alone"
    mkdir -p consumer
    cat >consumer/CMakeLists.txt <<'CMAKE'
cmake_minimum_required(VERSION 3.16)
project(consumer C)
set(LUA_INCLUDE_DIRS "the project's own")
set(LUA_FOUND "the project's own")
find_package(Lumen REQUIRED)
if(NOT LUA_INCLUDE_DIRS STREQUAL "the project's own" OR NOT LUA_FOUND STREQUAL "the project's own")
  message(FATAL_ERROR "find_package(Lumen) changed LUA_*: '${LUA_INCLUDE_DIRS}' '${LUA_FOUND}'")
endif()
if(TARGET PkgConfig::LUA)
  message(FATAL_ERROR "find_package(Lumen) defined PkgConfig::LUA")
endif()
if(NOT TARGET Lumen::lumen)
  message(FATAL_ERROR "no Lumen::lumen")
endif()
CMAKE
    out="$(cmake -S consumer -B consumer/build -DCMAKE_PREFIX_PATH="$P" 2>&1)" || fail "$out"

    step "docs/embedding.md: its C blocks are the examples, or compile against P"
    LUA_PATH="$src/tests/install/?.lua" lua5.4 "$src/tests/install/doc_blocks.lua" "$src" docs/embedding.md blocks
    n=0
    for block in blocks/*.c; do
        [ -e "$block" ] || continue
        # shellcheck disable=SC2046
        cc -std=c11 -Wall -Wextra -Werror -c -o "$block.o" "$block" $(pkg-config --cflags lumen) ||
            fail "a C block of docs/embedding.md does not compile ($block)"
        n=$((n + 1))
    done
    echo "$n stand-alone C blocks compiled"
    ;;
luarocks)
    need cmake luarocks lua5.4
    rocksrc="$build/luarocks-src"
    step "luarocks make --tree T (from a copy of the source tree in $rocksrc)"
    mkdir -p "$rocksrc"
    if git -C "$src" rev-parse --git-dir >/dev/null 2>&1; then
        (cd "$src" && git ls-files -co --exclude-standard -z | tar --null -T - -cf -) | tar -xf - -C "$rocksrc"
    else
        (cd "$src" && tar --exclude='./build*' -cf - .) | tar -xf - -C "$rocksrc"
    fi
    rockspec="$(cd "$rocksrc" && ls lumen-*-1.rockspec)"
    T="$tmp/tree"
    log="$tmp/luarocks.log"
    (cd "$rocksrc" && CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" luarocks --lua-version 5.4 make --tree "$T" "$rockspec") \
        >"$log" 2>&1 || { tail -40 "$log"; fail "luarocks make failed"; }
    [ -e "$T/lib/lua/5.4/lumen.so" ] || fail "no lumen.so in the tree"
    eval "$(luarocks --lua-version 5.4 --tree "$T" path)"
    out="$(lua5.4 -e "local lm = require 'lumen'; print(package.searchpath('lumen', package.cpath)); print(lm.ones(3):sum():item())")"
    echo "$out"
    expect "$T/lib/lua/5.4/lumen.so" "$out"
    expect "3.0" "$out"
    out="$("$T/bin/lumen" -v)"
    expect "portable build" "$out"
    ;;
*)
    fail "unknown mode '$mode' (prefix or luarocks)"
    ;;
esac
echo "== install ($mode): passed"
