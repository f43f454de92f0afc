#!/usr/bin/env bash
# Installs Lumen's build and run dependencies from Debian 12's archive.
set -euo pipefail
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends \
    build-essential cmake pkg-config git ca-certificates curl \
    liblua5.4-dev lua5.4 libopenblas-dev libstb-dev zlib1g-dev libjpeg62-turbo-dev libreadline-dev \
    fonts-dejavu-core luarocks lua-check clang-format openmpi-bin libopenmpi-dev "$@" >/dev/null
echo "dependencies installed"
