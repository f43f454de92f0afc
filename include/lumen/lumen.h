/* Lumen's public C API: one header for programs that embed or extend Lumen.
 *
 *   #include <lumen/lumen.h>        cc prog.c $(pkg-config --cflags --libs lumen)
 *
 * It brings in the core's public headers (tensors, ops, autograd, layers'
 * kernels, RNG, memory, safetensors files, threads, CUDA runtime queries);
 * every function follows the core's conventions: it returns an lm_status and,
 * on failure, leaves a message that lm_last_error() returns; every tensor a
 * function hands out (through an `lm_tensor **out`) holds one reference, which
 * the caller gives back with lm_tensor_release(). lumen/lumen_lua.h adds what
 * a Lua host or a Lua C module needs (luaopen_lumen, tensors on the Lua stack).
 *
 * ABI: before 1.0 the ABI may change with every minor version, and the
 * shared library's soname says so (liblumen.so.0.MINOR): a program built
 * against 0.1.x runs with any 0.1.y. Structures shown in the headers
 * (lm_tensor, lm_storage) may be read but are not to be allocated by callers:
 * create tensors with lm_tensor_new, lm_full and the other constructors.
 * lumen_version() is the version of the library actually loaded; compare it
 * with LUMEN_VERSION_STRING when that matters. */
#ifndef LUMEN_H
#define LUMEN_H

#define LUMEN_VERSION_MAJOR 0
#define LUMEN_VERSION_MINOR 1
#define LUMEN_VERSION_PATCH 0
#define LUMEN_VERSION_STRING "0.1.0"
/* One number that grows with each release: 0.1.0 -> 100. */
#define LUMEN_VERSION_NUM                                                                          \
    (LUMEN_VERSION_MAJOR * 10000 + LUMEN_VERSION_MINOR * 100 + LUMEN_VERSION_PATCH)

#ifdef __cplusplus
extern "C" {
#endif

#include "lm_alloc.h"
#include "lm_autograd.h"
#include "lm_cuda.h"
#include "lm_error.h"
#include "lm_nn.h"
#include "lm_ops.h"
#include "lm_rng.h"
#include "lm_safetensors.h"
#include "lm_tensor.h"
#include "lm_threads.h"

/* The version of the loaded library ("0.1.0"). */
const char *lumen_version(void);
/* "native" (built with -march=native, for the building machine) or
 * "portable" (LUMEN_NATIVE=OFF, for packages and binaries that move). */
const char *lumen_build_kind(void);

#ifdef __cplusplus
}
#endif

#endif
