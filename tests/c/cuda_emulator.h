/* CUDA's execution model on the CPU, for testing kernels where no GPU is
 * lent. A kernel source compiled as C++ with LM_CUDA_EMULATED (see
 * kernels/cuda_common.cuh) launches through cu_launch, which runs every
 * block of the grid in turn and every thread of a block as a fiber:
 * __syncthreads() waits for the block's threads, and a warp
 * shuffle for the 32 lanes of its warp, exchanging values as the hardware
 * does. Memory is the host's, so kernels read and write CPU tensors.
 *
 * What it catches: wrong indices, parts of a reduction lost or counted
 * twice, a barrier or a shuffle that not all threads reach (reported as an
 * error of the launch, as the GPU would hang or compute garbage). What it
 * cannot: races between threads (fibers switch only at barriers), timing,
 * and the device's own arithmetic (the host's IEEE float and double stand
 * in; with -ffp-contract=off and nvcc -fmad=false both round each op).
 * Built with LM_CUDA_EMULATED_BACKEND (cmake -DLUMEN_CUDA=EMULATED), it is
 * the runtime of the whole CUDA backend on the CPU, for the GPU specs. */
#ifndef LM_CUDA_EMULATOR_H
#define LM_CUDA_EMULATOR_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ucontext.h>

#include <functional>
#include <vector>
#if defined(__x86_64__)
#include <xmmintrin.h>
#endif

extern "C" {
#include "lm_error.h"
}

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static /* one block at a time: each block's threads share it */

struct dim3 {
    unsigned x, y, z;
    dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct uint3 {
    unsigned x, y, z;
};
struct double2 {
    double x, y;
};
static inline double2 make_double2(double x, double y) {
    return double2{x, y};
}

/* ---- the runtime calls the kernels' host code makes ---- */
typedef int cudaError_t;
enum {
    cudaSuccess = 0,
    cudaErrorMemoryAllocation = 2,
    cudaErrorInvalidValue = 1,
    cudaErrorLaunchFailure = 719,
    cudaErrorStreamCaptureUnsupported = 900,
    cudaErrorStreamCaptureInvalidated = 901,
    cudaErrorStreamCaptureImplicit = 906
};
typedef struct cu_emu_stream *cudaStream_t;
enum cudaStreamCaptureMode { cudaStreamCaptureModeGlobal = 0, cudaStreamCaptureModeRelaxed = 2 };
enum cudaMemcpyKind {
    cudaMemcpyHostToDevice = 1,
    cudaMemcpyDeviceToHost = 2,
    cudaMemcpyDeviceToDevice = 3
};
enum cudaDeviceAttr { cudaDevAttrMultiProcessorCount = 16 };

namespace cu_emu {

/* Fibers: start(c, stack, size, entry) readies c to run entry() on the
 * stack; jump(from, to) saves the running fiber in `from` and resumes `to`. */
#if defined(__x86_64__) && defined(__linux__)
/* On x86-64 a switch saves only what the ABI asks a callee to keep (rbx,
 * rbp, r12-r15, the SSE and x87 control words) and the stack pointer:
 * ucontext's switch also makes a system call for the signal mask, which
 * made the emulator twenty times slower. */
struct Context {
    void *sp;
};
extern "C" void cu_emu_switch(void **save_sp, void *load_sp);
/* (weak: every file of the backend built on the CPU includes it) */
asm(R"(
    .pushsection .text
    .weak cu_emu_switch
    .type cu_emu_switch, @function
cu_emu_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    subq $8, %rsp
    stmxcsr (%rsp)
    fnstcw 4(%rsp)
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    ldmxcsr (%rsp)
    fldcw 4(%rsp)
    addq $8, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size cu_emu_switch, .-cu_emu_switch
    .popsection
)");
/* The new stack as cu_emu_switch leaves a saved one: control words, six
 * registers, then entry as the return address, placed so that entry starts
 * with the stack aligned as a called function's (8 past 16). */
inline void start(Context &c, char *stack, size_t size, void (*entry)(void)) {
    uintptr_t top = (uintptr_t)(stack + size) & ~(uintptr_t)15;
    uint64_t *sp = (uint64_t *)(top - 72);
    uint32_t mxcsr;
    uint16_t fpu_cw;
    asm volatile("stmxcsr %0" : "=m"(mxcsr));
    asm volatile("fnstcw %0" : "=m"(fpu_cw));
    sp[0] = (uint64_t)mxcsr | (uint64_t)fpu_cw << 32;
    for (int k = 1; k <= 6; k++) sp[k] = 0;
    sp[7] = (uint64_t)(uintptr_t)entry;
    sp[8] = 0;
    c.sp = sp;
}
inline void jump(Context &from, Context &to) {
    cu_emu_switch(&from.sp, to.sp);
}
#else
struct Context {
    ucontext_t uc;
};
inline void start(Context &c, char *stack, size_t size, void (*entry)(void)) {
    getcontext(&c.uc);
    c.uc.uc_stack.ss_sp = stack;
    c.uc.uc_stack.ss_size = size;
    c.uc.uc_link = NULL;
    makecontext(&c.uc, entry, 0);
}
inline void jump(Context &from, Context &to) {
    swapcontext(&from.uc, &to.uc);
}
#endif

enum State { READY, AT_BLOCK_BARRIER, AT_WARP_BARRIER, DONE };
struct Fiber {
    Context ctx;
    State state;
    uint3 index;
};
const size_t STACK = 64 * 1024;
inline std::vector<Fiber> fibers;
inline std::vector<char> stacks;
inline Context scheduler;
inline int current;
inline std::function<void()> body;
inline uint64_t exchange[1024]; /* a shuffle's values, by thread */
inline char error[256];         /* the first launch failure, until read */
inline char reported[256];      /* the one cudaGetLastError returned last */
inline int sms = 4; /* what the emulated device reports: few, so that work splits show */

/* Stream capture: while `capturing` names a stream, work queued on it is
 * recorded, not run (as CUDA records a graph's nodes); work on any other
 * stream, or a call that waits for the device, breaks the capture, as
 * CUDA's does, and the first such call is kept to say why. */
inline cudaStream_t capturing;
inline std::vector<std::function<void()>> recorded;
inline char broken[256];
inline cudaStream_t blas_stream; /* the stream cuBLAS's handle was given */
inline void break_capture(const char *why) {
    if (capturing && !broken[0]) snprintf(broken, sizeof broken, "%s", why);
}
/* True when f was recorded for the capture instead of being run now. */
template <typename F> inline bool deferred(cudaStream_t stream, F f) {
    if (!capturing) return false;
    if (stream != capturing)
        break_capture("work queued on another stream than the one being captured");
    else
        recorded.push_back(f);
    return true;
}
} // namespace cu_emu

inline uint3 threadIdx, blockIdx;
inline dim3 blockDim, gridDim;

/* the error of the launches since the last call, which it clears (as CUDA) */
static inline cudaError_t cudaGetLastError(void) {
    if (!cu_emu::error[0]) return cudaSuccess;
    memcpy(cu_emu::reported, cu_emu::error, sizeof cu_emu::error);
    cu_emu::error[0] = 0;
    return cudaErrorLaunchFailure;
}
/* the errors the runtime here returns besides a launch's, by name and text */
struct cu_emu_error_info {
    cudaError_t code;
    const char *name, *text;
};
static inline const cu_emu_error_info *cu_emu_error_of(cudaError_t err) {
    static const cu_emu_error_info known[] = {
        {cudaErrorMemoryAllocation, "cudaErrorMemoryAllocation", "out of memory"},
        {cudaErrorInvalidValue, "cudaErrorInvalidValue", "invalid argument"},
        {cudaErrorStreamCaptureUnsupported, "cudaErrorStreamCaptureUnsupported",
         "operation not permitted when stream is capturing"},
        {cudaErrorStreamCaptureInvalidated, "cudaErrorStreamCaptureInvalidated",
         "operation failed due to a previous error during capture"},
        {cudaErrorStreamCaptureImplicit, "cudaErrorStreamCaptureImplicit",
         "operation would make the legacy stream depend on a capturing blocking stream"}};
    for (const cu_emu_error_info &e : known)
        if (e.code == err) return &e;
    return NULL;
}
static inline const char *cudaGetErrorString(cudaError_t err) {
    static char text[160];
    const cu_emu_error_info *e = cu_emu_error_of(err);
    if (!e) return cu_emu::reported;
    snprintf(text, sizeof text, "%s (emulated)", e->text);
    return text;
}
static inline const char *cudaGetErrorName(cudaError_t err) {
    static char name[96];
    const cu_emu_error_info *e = cu_emu_error_of(err);
    snprintf(name, sizeof name, "%s (emulated)", e ? e->name : "cudaErrorLaunchFailure");
    return name;
}
static inline cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind,
                                          cudaStream_t stream = 0) {
    if (cu_emu::deferred(stream, [=] { memmove(dst, src, bytes); })) return cudaSuccess;
    memmove(dst, src, bytes);
    return cudaSuccess;
}
/* (on the legacy stream, which waits for every blocking stream: during a
 * capture that is the implicit dependency CUDA refuses) */
static inline cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, cudaMemcpyKind) {
    if (cu_emu::capturing) {
        cu_emu::break_capture("a synchronous cudaMemcpy (it waits for the capturing stream)");
        return cudaErrorStreamCaptureImplicit;
    }
    memmove(dst, src, bytes);
    return cudaSuccess;
}
static inline cudaError_t cudaGetDevice(int *device) {
    *device = 0;
    return cudaSuccess;
}
static inline cudaError_t cudaDeviceGetAttribute(int *value, cudaDeviceAttr, int) {
    *value = cu_emu::sms;
    return cudaSuccess;
}

/* The rest of the runtime, for the whole backend built on the CPU
 * (cmake -DLUMEN_CUDA=EMULATED): one device of host memory, work done when
 * it is queued, so events and synchronisation have nothing to wait for. */
struct cudaDeviceProp {
    char name[256];
};
typedef struct cu_emu_event *cudaEvent_t;
enum { cudaHostAllocDefault = 0, cudaEventDisableTiming = 2 };
static inline cudaError_t cudaGetDeviceCount(int *count) {
    *count = 1;
    return cudaSuccess;
}
static inline cudaError_t cudaGetDeviceProperties(cudaDeviceProp *prop, int) {
    snprintf(prop->name, sizeof prop->name, "CUDA emulator on the CPU (tests only)");
    return cudaSuccess;
}
static inline cudaError_t cudaSetDevice(int) {
    return cudaSuccess;
}
static inline cudaError_t cudaDeviceSynchronize(void) {
    if (cu_emu::capturing) {
        cu_emu::break_capture("cudaDeviceSynchronize");
        return cudaErrorStreamCaptureUnsupported;
    }
    return cudaSuccess;
}
static inline cudaError_t cudaMalloc(void **p, size_t bytes) {
    *p = malloc(bytes ? bytes : 1);
    return *p ? cudaSuccess : cudaErrorMemoryAllocation;
}
/* (cudaFree waits for the device: during a capture it breaks it) */
static inline cudaError_t cudaFree(void *p) {
    if (cu_emu::capturing && p) {
        cu_emu::break_capture("cudaFree (it waits for the device)");
        return cudaErrorStreamCaptureUnsupported;
    }
    free(p);
    return cudaSuccess;
}
/* LUMEN_EMU_NO_PINNED=1 refuses pinned memory, as a sandbox's limit can */
static inline cudaError_t cudaHostAlloc(void **p, size_t bytes, unsigned) {
    const char *refuse = getenv("LUMEN_EMU_NO_PINNED");
    if (refuse && *refuse == '1') return cudaErrorMemoryAllocation;
    return cudaMalloc(p, bytes);
}
static inline cudaError_t cudaFreeHost(void *p) {
    return cudaFree(p);
}
static inline cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total) {
    *free_bytes = *total = (size_t)1 << 34;
    return cudaSuccess;
}
static inline cudaError_t cudaEventCreateWithFlags(cudaEvent_t *e, unsigned) {
    static char one_event;
    *e = (cudaEvent_t)&one_event;
    return cudaSuccess;
}
static inline cudaError_t cudaEventRecord(cudaEvent_t, cudaStream_t stream = 0) {
    if (cu_emu::capturing && stream != cu_emu::capturing) {
        cu_emu::break_capture("cudaEventRecord on the legacy stream");
        return cudaErrorStreamCaptureImplicit;
    }
    return cudaSuccess;
}
static inline cudaError_t cudaEventSynchronize(cudaEvent_t) {
    return cudaSuccess;
}

/* Streams and graphs: a graph is the list of recorded work, run in order. */
struct cu_emu_stream {
    int unused;
};
struct cu_emu_graph {
    std::vector<std::function<void()>> nodes;
};
typedef cu_emu_graph *cudaGraph_t;
typedef cu_emu_graph *cudaGraphExec_t;
static inline cudaError_t cudaStreamCreate(cudaStream_t *stream) {
    *stream = new cu_emu_stream();
    return cudaSuccess;
}
static inline cudaError_t cudaStreamBeginCapture(cudaStream_t stream, cudaStreamCaptureMode) {
    if (!stream || cu_emu::capturing) return cudaErrorStreamCaptureUnsupported;
    cu_emu::capturing = stream;
    cu_emu::recorded.clear();
    cu_emu::broken[0] = 0;
    return cudaSuccess;
}
static inline cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t *graph) {
    *graph = NULL;
    if (stream != cu_emu::capturing) return cudaErrorInvalidValue;
    cu_emu::capturing = NULL;
    if (cu_emu::broken[0]) {
        snprintf(cu_emu::reported, sizeof cu_emu::reported, "%s", cu_emu::broken);
        cu_emu::recorded.clear();
        return cudaErrorStreamCaptureInvalidated;
    }
    *graph = new cu_emu_graph{std::move(cu_emu::recorded)};
    cu_emu::recorded.clear();
    return cudaSuccess;
}
static inline cudaError_t cudaGraphInstantiate(cudaGraphExec_t *exec, cudaGraph_t graph,
                                               unsigned long long) {
    *exec = new cu_emu_graph(*graph);
    return cudaSuccess;
}
static inline cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t stream) {
    if (cu_emu::deferred(stream, [=] {
            for (auto &node : exec->nodes) node();
        }))
        return cudaSuccess;
    for (auto &node : exec->nodes) node();
    return cudaSuccess;
}
static inline cudaError_t cudaGraphDestroy(cudaGraph_t graph) {
    delete graph;
    return cudaSuccess;
}
static inline cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec) {
    delete exec;
    return cudaSuccess;
}

/* Device memory is host memory here, and errors say they were emulated:
 * the kernels' files call these under the backend's names (renamed, so a
 * test linked beside the real CUDA backend does not clash with it). The
 * whole backend built on the CPU has its own, over cudaMalloc above. */
#ifndef LM_CUDA_EMULATED_BACKEND
#define lm_cuda_alloc cu_emu_alloc
#define lm_cuda_free cu_emu_free
#define lm_cuda_fail cu_emu_fail
extern "C" inline void *cu_emu_alloc(size_t bytes) {
    return malloc(bytes ? bytes : 1);
}
extern "C" inline void cu_emu_free(void *p, size_t) {
    free(p);
}
inline lm_status cu_emu_fail(cudaError_t, const char *what) {
    return lm_fail(LM_ERR_DEVICE, "emulated CUDA error in %s: %s", what, cu_emu::reported);
}
/* a kernel file's test captures no graphs (cuda_graph.cu is not in it) */
inline lm_status lm_cuda_graph_slot(size_t, void **slot, bool *refreshed) {
    *slot = NULL;
    *refreshed = false;
    return LM_OK;
}
#endif

namespace cu_emu {

inline int thread_rank(void) {
    return (int)(threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z));
}

inline void fail(const char *what) {
    if (!error[0])
        snprintf(error, sizeof error, "%s (block %u,%u,%u)", what, blockIdx.x, blockIdx.y,
                 blockIdx.z);
}

/* Whether a thread of this launch has waited at a barrier or a shuffle;
 * when none of the first block's did, the other blocks' threads run as
 * plain calls (no fibers, no context switches: elementwise kernels). */
inline bool waited, plain;

inline void wait(State s) {
    if (plain) {
        fail("a barrier or shuffle that the first block's threads never reached (not emulated)");
        return;
    }
    waited = true;
    fibers[current].state = s;
    jump(fibers[current].ctx, scheduler);
}

inline void trampoline(void) {
    body();
    fibers[current].state = DONE;
    jump(fibers[current].ctx, scheduler);
}

/* Releases the barriers every waiting thread has reached; false when
 * none can be (the launch would hang, or a warp's lanes diverged). */
inline bool release(int n) {
    bool released = false, any_block = false, all_block = true;
    for (int w = 0; w < n; w += 32) {
        int at_warp = 0, lanes = n - w < 32 ? n - w : 32;
        for (int t = w; t < w + lanes; t++) at_warp += fibers[t].state == AT_WARP_BARRIER;
        if (at_warp == lanes) {
            for (int t = w; t < w + lanes; t++) fibers[t].state = READY;
            released = true;
        } else if (at_warp) {
            fail("a warp shuffle that not every lane of the warp reached");
            return false;
        }
    }
    if (released) return true;
    /* every thread, exited ones included, must reach it: CUDA leaves a
     * barrier in code that not all of the block runs undefined */
    for (int t = 0; t < n; t++) {
        any_block |= fibers[t].state == AT_BLOCK_BARRIER;
        all_block &= fibers[t].state == AT_BLOCK_BARRIER;
    }
    if (all_block) {
        for (int t = 0; t < n; t++) fibers[t].state = READY;
        return true;
    }
    if (any_block) fail("__syncthreads() that not every thread of the block reached");
    return false;
}

inline void run_block(void) {
    int n = (int)(blockDim.x * blockDim.y * blockDim.z);
    fibers.assign(n, Fiber{});
    if (stacks.size() < (size_t)n * STACK) stacks.resize((size_t)n * STACK);
    for (int t = 0; t < n; t++) {
        Fiber &f = fibers[t];
        f.index =
            uint3{t % blockDim.x, (t / blockDim.x) % blockDim.y, t / (blockDim.x * blockDim.y)};
        f.state = READY;
        start(f.ctx, stacks.data() + (size_t)t * STACK, STACK, trampoline);
    }
    for (;;) {
        bool ran = false, done = true;
        for (int t = 0; t < n; t++) {
            if (fibers[t].state != READY) continue;
            current = t;
            threadIdx = fibers[t].index;
            jump(scheduler, fibers[t].ctx);
            ran = true;
        }
        for (int t = 0; t < n; t++) done &= fibers[t].state == DONE;
        if (done || error[0]) return;
        if (!release(n) && !ran) {
            fail("__syncthreads() that not every thread of the block reached");
            return;
        }
    }
}

} // namespace cu_emu

static inline void __syncthreads(void) {
    cu_emu::wait(cu_emu::AT_BLOCK_BARRIER);
}

/* The lanes exchange through memory between two warp barriers, each
 * reading the lane it names. Only whole warps are modelled: a partial mask
 * is an error. */
template <typename T> static inline T cu_emu_shuffle(unsigned mask, T v, int source_lane) {
    static_assert(sizeof(T) <= sizeof(uint64_t), "shuffled values are at most 8 bytes");
    if (mask != 0xffffffffu) cu_emu::fail("a warp shuffle with a partial mask (not emulated)");
    int t = cu_emu::thread_rank();
    memcpy(&cu_emu::exchange[t], &v, sizeof(T));
    cu_emu::wait(cu_emu::AT_WARP_BARRIER);
    T r;
    memcpy(&r, &cu_emu::exchange[(t & ~31) | (source_lane & 31)], sizeof(T));
    cu_emu::wait(cu_emu::AT_WARP_BARRIER);
    return r;
}
template <typename T> static inline T __shfl_xor_sync(unsigned mask, T v, int d) {
    return cu_emu_shuffle(mask, v, (cu_emu::thread_rank() & 31) ^ d);
}
template <typename T> static inline T __shfl_sync(unsigned mask, T v, int src) {
    return cu_emu_shuffle(mask, v, src);
}
template <typename T> static inline T __shfl_down_sync(unsigned mask, T v, unsigned delta) {
    int lane = cu_emu::thread_rank() & 31;
    return cu_emu_shuffle(mask, v, lane + (int)delta < 32 ? lane + (int)delta : lane);
}

/* The emulated threads are fibers of one host thread that switch only at
 * barriers and shuffles, so a read-modify-write is already atomic. */
static inline float atomicAdd(float *address, float v) {
    float old = *address;
    *address = old + v;
    return old;
}

/* the device's correctly rounded operations: the host's IEEE ones (the
 * emulated files are built with -ffp-contract=off) */
static inline float __fadd_rn(float a, float b) {
    return a + b;
}
static inline float __fmul_rn(float a, float b) {
    return a * b;
}
static inline double __dadd_rn(double a, double b) {
    return a + b;
}
static inline double __dmul_rn(double a, double b) {
    return a * b;
}

/* A GPU keeps subnormal floats (nvcc's default), where Lumen's CPU threads
 * flush them (lm_set_flush_denormal): an emulated launch runs with the
 * caller's flush-to-zero and denormals-are-zero bits cleared. */
struct cu_emu_keep_subnormals {
#if defined(__x86_64__)
    unsigned saved;
    cu_emu_keep_subnormals() : saved(_mm_getcsr()) {
        _mm_setcsr(saved & ~0x8040u);
    }
    ~cu_emu_keep_subnormals() {
        _mm_setcsr(saved);
    }
#endif
};

/* kernel<<<grid, block, 0, stream>>>(args) as cu_launch calls it here:
 * run now, or recorded while the stream is captured */
template <typename F> static inline void cu_emulate_now(dim3 grid, dim3 block, F kernel);
template <typename F>
static inline void cu_emulate(dim3 grid, dim3 block, cudaStream_t stream, F kernel) {
    if (cu_emu::deferred(stream, [=] { cu_emulate_now(grid, block, kernel); })) return;
    cu_emulate_now(grid, block, kernel);
}
template <typename F> static inline void cu_emulate_now(dim3 grid, dim3 block, F kernel) {
    cu_emu_keep_subnormals subnormals;
    if (block.x * block.y * block.z > 1024) {
        cu_emu::fail("more than 1024 threads a block");
        return;
    }
    cu_emu::body = kernel;
    gridDim = grid;
    blockDim = block;
    cu_emu::waited = cu_emu::plain = false;
    unsigned n = block.x * block.y * block.z;
    for (unsigned z = 0; z < grid.z; z++)
        for (unsigned y = 0; y < grid.y; y++)
            for (unsigned x = 0; x < grid.x && !cu_emu::error[0]; x++) {
                blockIdx = uint3{x, y, z};
                if (!cu_emu::plain) {
                    cu_emu::run_block();
                    cu_emu::plain = !cu_emu::waited;
                    continue;
                }
                for (unsigned t = 0; t < n; t++) {
                    threadIdx =
                        uint3{t % block.x, (t / block.x) % block.y, t / (block.x * block.y)};
                    kernel();
                }
            }
    cu_emu::plain = false;
}

#endif
