/* The device registry: which backend table serves which device. */
#include "lm_backend.h"

#include "lm_cuda.h"

/* Each device's table, made on first use: the CPU's is static, CUDA's is
 * created when a device answers (so a CPU-only run never probes the driver).
 * A provider returns NULL with lm_last_error saying why. A new device adds
 * its line here. */
static const lm_backend *(*const providers[])(void) = {
    [LM_CPU] = lm_cpu_backend,
    [LM_CUDA] = lm_cuda_backend,
};

#define PROVIDER_COUNT ((int)(sizeof providers / sizeof providers[0]))

const lm_backend *lm_backend_get(lm_device device) {
    if ((int)device < 0 || (int)device >= PROVIDER_COUNT || !providers[device]) {
        lm_fail(LM_ERR_DEVICE, "no backend is registered for device %d", (int)device);
        return NULL;
    }
    return providers[device]();
}

const lm_backend *lm_backend_of(const lm_tensor *t) {
    return lm_backend_get(t->storage->device);
}
