#!/usr/bin/env bash
# Takes a data set to a lent GPU machine, whose calls carry at most 64 MiB
# with the working tree: CIFAR-10's five gzipped training batches (28 MB
# each) and its test images travel a few files a call, MNIST's four gzipped
# files (12 MB) in one, into ./data/<set> (ignored by git, and kept there
# between the calls of a warm machine), where Lumen's data search finds them.
#   here:        scripts/gpu-data.sh stage [cifar10|mnist] [FROM]
#                copies FROM (default ../shared/data/<set>) into
#                data/<set> and prints the calls: one `carry` list each
#   the device:  scripts/gpu-data.sh check [cifar10|mnist]
#                compares each file with MD5SUMS (CIFAR-10's batches
#                gunzipped in a pipe); exits non-zero when a file is missing
#                or differs
# The last call can run the check and the run in one command:
#   scripts/gpu-data.sh check && scripts/gpu-lumen.sh experiments/train_cifar10.lua --device cuda
#   scripts/gpu-data.sh check mnist && scripts/gpu-lumen.sh experiments/introspect_mnist.lua --device cuda --data-dir data/mnist
set -euo pipefail
cd "$(dirname "$0")/.."
SET=cifar10
case "${2:-}" in cifar10 | mnist) SET=$2 ;; esac
DEST=data/$SET

stage() {
    local from=${1:-../shared/data/$SET}
    [ -f "$from/MD5SUMS" ] || { echo "gpu-data: no $SET with MD5SUMS in $from"; exit 1; }
    mkdir -p "$DEST"
    if [ "$SET" = mnist ]; then
        cp "$from"/MD5SUMS "$from"/*-ubyte.gz "$DEST"/
    else
        cp "$from"/MD5SUMS "$from"/batches.meta.txt "$from"/*.bin.gz "$DEST"/
        [ -f "$from/README.txt" ] && cp "$from/README.txt" "$DEST"/
    fi
    # what a call may carry beside the tracked tree, with 2 MB to spare
    local tree budget
    tree=$(git ls-files -z | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1)
    budget=$((64 * 1024 * 1024 - tree - 2000000))
    echo "gpu-data: $(du -sh "$DEST" | cut -f1) in $DEST; a call carries up to $((budget / 1000000)) MB besides the tree"
    echo "calls (carry lists; the bundle, 44 MB, travels beside MNIST, or in a call of its own beside CIFAR-10):"
    local call=() size=0 n=1 f s
    shopt -s nullglob
    for f in "$DEST"/MD5SUMS "$DEST"/*.txt "$DEST"/*.gz; do
        s=$(stat -c %s "$f")
        if [ ${#call[@]} -gt 0 ] && { [ $((size + s)) -gt "$budget" ] || [ ${#call[@]} -ge 8 ]; }; then
            printf 'call %d: [%s]\n' "$n" "$(printf '"%s",' "${call[@]}" | sed 's/,$//')"
            n=$((n + 1)) call=() size=0
        fi
        call+=("$f")
        size=$((size + s))
    done
    printf 'call %d: [%s]\n' "$n" "$(printf '"%s",' "${call[@]}" | sed 's/,$//')"
}

check() {
    [ -f "$DEST/MD5SUMS" ] || { echo "gpu-data: no $DEST/MD5SUMS: not staged yet"; exit 1; }
    if [ "$SET" = mnist ]; then # MNIST's MD5SUMS lists the gzipped files themselves
        (cd "$DEST" && grep -v '^#' MD5SUMS | md5sum -c --quiet) && echo "gpu-data: MNIST in $DEST matches MD5SUMS"
        return
    fi
    local bad=0 sum name got
    while read -r sum name; do
        case "$sum" in '#'* | '') continue ;; esac
        if [ ! -f "$DEST/$name.gz" ]; then
            echo "gpu-data: $DEST/$name.gz is missing"
            bad=1
            continue
        fi
        got=$(gunzip -c "$DEST/$name.gz" | md5sum | cut -d' ' -f1)
        if [ "$got" != "$sum" ]; then
            echo "gpu-data: $name: md5 $got, expected $sum"
            bad=1
        fi
    done < "$DEST/MD5SUMS"
    [ $bad -eq 0 ] && echo "gpu-data: CIFAR-10 in $DEST matches MD5SUMS"
    return $bad
}

case "${1:-}" in
    stage) if [ "$SET" = "${2:-}" ]; then stage "${3:-}"; else stage "${2:-}"; fi ;;
    check) check ;;
    *) sed -n '2,16p' "$0"; exit 2 ;;
esac
