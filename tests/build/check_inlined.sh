#!/usr/bin/env bash
# The op functions the CPU loops share (core/lm_scalar_ops.h,
# core/lm_fastmath.h) must be inlined into every optimised object that uses
# them: each loop is written once per op so that the op's switch folds away
# and the loop vectorises, which a call left in the object undoes (when GCC
# stopped inlining lm_unary_f32, every element of a ReLU paid a call and a
# switch: 16x slower). Fails naming each object and function called (or
# jumped to, or a compiler's clone of it: name.constprop.0, name.isra.0).
#   check_inlined.sh SOURCE_DIR OBJECT_DIR (the core's objects: *.o)
set -euo pipefail
src="$1"
objects=("$2"/*.o)
if ! command -v objdump >/dev/null; then
    echo "objdump (binutils) is needed to read the objects"
    exit 1
fi
names=$(sed -n 's/^.*static inline [a-z_0-9 ]*[ *]\(lm_[a-z_0-9]*\)(.*$/\1/p' \
    "$src/core/lm_scalar_ops.h" "$src/core/lm_fastmath.h" | sort -u)
if [ "$(echo "$names" | wc -l)" -lt 20 ]; then
    echo "found only these shared functions, expected 20 or more: $names"
    exit 1
fi
pattern="(call|jmp|bl)[a-z]* .*<($(echo "$names" | paste -sd '|'))(\.[a-z]+\.[0-9]+)?>"
status=0
checked=0
for obj in "${objects[@]}"; do
    listing=$(objdump -d "$obj") || {
        echo "objdump cannot read $obj"
        exit 1
    }
    calls=$(echo "$listing" | grep -E "$pattern" | sed 's/.*<\(.*\)>.*/\1/' | sort | uniq -c || true)
    checked=$((checked + 1))
    if [ -n "$calls" ]; then
        echo "$(basename "$obj") calls, rather than inlines:"
        echo "$calls"
        status=1
    fi
done
if [ "$checked" -lt 20 ] || ! [ -f "${objects[0]}" ]; then
    echo "expected the core's 20 or more objects in $2"
    exit 1
fi
echo "$checked objects checked for calls to $(echo "$names" | wc -l) shared op functions"
exit $status
