-- LuaRocks package of Lumen: `luarocks --lua-version 5.4 make` in the source
-- tree builds with CMake (portable: LUMEN_NATIVE=OFF, CPU only; Open MPI,
-- for lm.dist, is linked where libopenmpi-dev is installed) and installs
-- the module lumen.so (the Lua library embedded) and the `lumen` program into
-- the tree. The C headers, liblumen.so and the CMake and pkg-config files come
-- with `cmake --install` instead (README.md, "Installing").
rockspec_format = "3.0"
package = "lumen"
version = "0.1.0-1"
source = {
  -- `luarocks make` builds the checked-out tree and does not fetch this;
  -- a published rock points it at the release's archive
  url = "git+https://example.invalid/lumen.git",
  tag = "v0.1.0",
}
description = {
  summary = "A deep-learning scripting host: a C core with Lua 5.4 embedded",
  detailed = [[
Tensors, autograd, layers, optimisers, CPU (and CUDA) kernels in C, driven
from Lua 5.4, built for looking inside trained neural networks with the
self-introspection method (Pardo et al., arXiv:1910.04903).]],
  license = "MIT",
  labels = {"deep-learning", "neural-networks", "tensor", "autograd"},
}
dependencies = {
  "lua >= 5.4, < 5.5",
}
-- Debian: liblua5.4-dev libopenblas-dev libstb-dev zlib1g-dev libjpeg62-turbo-dev libreadline-dev
-- cmake pkg-config (scripts/install-deps.sh), found by CMake.
build = {
  type = "cmake",
  variables = {
    CMAKE_BUILD_TYPE = "Release",
    CMAKE_INSTALL_PREFIX = "$(PREFIX)",
    LUMEN_NATIVE = "OFF",
    LUMEN_CUDA = "OFF",
    LUMEN_BUILD_TESTS = "OFF",
    LUMEN_INSTALL_DEV = "OFF",
    LUMEN_INSTALL_LUA_CMOD_DIR = "$(LIBDIR)",
    LUMEN_INSTALL_BIN_DIR = "$(BINDIR)",
  },
}
