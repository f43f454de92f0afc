#!/usr/bin/env bash
# The fingerprint of the Lua library (lua/lumen and its page assets), which
# a lumen binary embeds: scripts/gpu-bundle.sh records it beside the bundle
# and the GPU machine's scripts compare it with their tree (gpu-libs.sh).
cd "$(dirname "$0")/.."
find lua -type f \( -name '*.lua' -o -name '*.css' -o -name '*.js' \) | LC_ALL=C sort | xargs cat | md5sum | cut -d' ' -f1
