/* lm.blas_info(): which OpenBLAS kernels run and why (core/lm_blas_kernel.h). */
#include <stdio.h>
#include <stdlib.h>

#include "l_common.h"
#include "lm_blas_kernel.h"

/* lm.blas_info() -> {kernel, choice, avx2, avx512, better} */
static int l_blas_info(lua_State *L) {
    lm_cpu_features f = lm_cpu_detect();
    const char *core = lm_blas_corename();
    lua_createtable(L, 0, 5);
    lua_pushstring(L, core);
    lua_setfield(L, -2, "kernel");
    lua_pushstring(L, lm_blas_choice());
    lua_setfield(L, -2, "choice");
    lua_pushboolean(L, f.avx2 && f.fma);
    lua_setfield(L, -2, "avx2");
    lua_pushboolean(L, f.avx512f);
    lua_setfield(L, -2, "avx512");
    const char *better = lm_blas_better_core(core, f);
    if (better) {
        lua_pushstring(L, better);
        lua_setfield(L, -2, "better");
    }
    return 1;
}

void l_register_blas(lua_State *L) {
    /* in a stock interpreter nothing can start again before OpenBLAS loads:
     * say once what to set when it runs generic kernels */
    const char *better = lm_blas_better_core(lm_blas_corename(), lm_cpu_detect());
    static int warned = 0;
    if (better && !warned && !getenv("OPENBLAS_CORETYPE")) {
        warned = 1;
        fprintf(stderr,
                "lumen: OpenBLAS runs its generic %s kernels on a processor that has the "
                "instructions of its %s kernels; start with OPENBLAS_CORETYPE=%s for matrix "
                "products several times faster\n",
                lm_blas_corename(), better, better);
    }
    lua_pushcfunction(L, l_blas_info);
    lua_setfield(L, -2, "blas_info");
}
