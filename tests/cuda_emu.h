/* cuda_emu.h - the part of the CUDA runtime and cuBLAS that dl_cuda.cu uses,
   emulated on the CPU, so that its host code and its kernels' indexing can be
   tested on machines without a GPU (make test-cuda-emu).

   dl_cuda.cu includes this instead of the CUDA headers when built with
   -DDLC_EMULATE by a C++ compiler. Kernels become plain functions run once
   per block with ONE thread per block (grid-stride loops then cover every
   index, and block sums are the identity); everything is synchronous, except
   that a capturing stream (cudaStreamBeginCapture) records what it is given
   and a graph launch runs the recording (see "graph capture" below).

   It is stricter than a real device where that finds bugs: "device" memory is
   registered, filled with NaN bytes when allocated and fenced by guard bytes
   (checked when freed; left out under AddressSanitizer, which sees overruns
   itself); copies check their direction and bounds; the GEMM checks its
   leading dimensions as cuBLAS does and that every matrix lies inside one
   allocation; a zero grid is an invalid launch. Environment:
   DLC_EMU_NO_DEVICE=1 reports no device; DLC_EMU_FAIL_MALLOC=N fails the
   N-th device allocation after the variable was set to N (counting from 1).

   Kernels launched with DLC_LAUNCH_BLOCKS (shared memory, __syncthreads)
   run every thread of a block instead, as fibers switched at each barrier.

   What it cannot check: multi-thread block sums and shuffles, data races
   between barriers (fibers run one after another), real asynchrony, the real cuBLAS (its GEMM only sums in another order than
   dl.h's, as cuBLAS does; in CUBLAS_TF32_TENSOR_OP_MATH it rounds both
   operands to TF32 first, as tensor cores do, so dl_cuda_set_tf32's effect
   on accuracy can be measured). */
#ifndef DL_CUDA_EMU_H
#define DL_CUDA_EMU_H
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <map>
#include <ucontext.h>
#include <atomic>
#include <mutex>
#include <vector>
#include <functional>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline

/* ---- errors ---- */
typedef enum cudaError {
    cudaSuccess = 0, cudaErrorInvalidValue = 1, cudaErrorMemoryAllocation = 2,
    cudaErrorInvalidConfiguration = 9, cudaErrorInsufficientDriver = 35, cudaErrorNoDevice = 100, cudaErrorInvalidDevice = 101,
    cudaErrorStreamCaptureUnsupported = 900, cudaErrorStreamCaptureInvalidated = 901, cudaErrorGraphExecUpdateFailure = 910
} cudaError_t;
static thread_local cudaError_t dlc_emu_last = cudaSuccess;
static cudaError_t dlc_emu_err(cudaError_t e) { if (e != cudaSuccess) dlc_emu_last = e; return e; }
static inline cudaError_t cudaGetLastError(void) { cudaError_t e = dlc_emu_last; dlc_emu_last = cudaSuccess; return e; }
static inline const char *cudaGetErrorName(cudaError_t e) {
    switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    case cudaErrorInsufficientDriver: return "cudaErrorInsufficientDriver";
    case cudaErrorStreamCaptureUnsupported: return "cudaErrorStreamCaptureUnsupported";
    case cudaErrorStreamCaptureInvalidated: return "cudaErrorStreamCaptureInvalidated";
    case cudaErrorGraphExecUpdateFailure: return "cudaErrorGraphExecUpdateFailure";
    default: return "cudaErrorInvalidDevice";
    }
}
static inline const char *cudaGetErrorString(cudaError_t e) {
    switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected (emulated)";
    case cudaErrorInsufficientDriver: return "CUDA driver version is insufficient for CUDA runtime version (emulated)";
    case cudaErrorStreamCaptureUnsupported: return "operation not permitted when stream is capturing";
    case cudaErrorStreamCaptureInvalidated: return "operation failed due to a previous error during capture";
    case cudaErrorGraphExecUpdateFailure: return "the graph update was not performed because it included changes which violated constraints specific to instantiated graph update";
    default: return "invalid device ordinal";
    }
}

/* ---- streams and graph capture: a capturing stream records each
   operation as a closure (its arguments evaluated when queued, as a real
   launch's are) instead of running it; a graph is that list, and launching
   it runs the list. What a real capture refuses is refused (and invalidates
   the capture): waiting on the stream, copies from or to pageable host
   memory, allocating or freeing while any stream captures. ---- */
struct dlc_emu_op { const void *tag; std::function<void()> run; };   /* tag: the kernel, or what kind of copy */
typedef struct dlc_emu_stream {
    int magic;
    std::vector<dlc_emu_op> *cap;       /* capturing: the operations so far */
    bool invalid;                       /* a refused operation ended the capture's use */
} *cudaStream_t;
static std::atomic<int> dlc_emu_capturing(0);
static std::atomic<long> dlc_emu_graph_runs(0), dlc_emu_graph_builds(0);
extern "C" long dlc_emu_graph_launches(void) { return dlc_emu_graph_runs.load(); }
extern "C" long dlc_emu_graph_instantiations(void) { return dlc_emu_graph_builds.load(); }
static void dlc_emu_submit(cudaStream_t s, const void *tag, const std::function<void()> &f) {
    if (s && s->cap) s->cap->push_back(dlc_emu_op{ tag, f });
    else f();
}
static cudaError_t dlc_emu_refuse(cudaStream_t s) {     /* an operation a capture cannot hold */
    if (s) s->invalid = true;
    return cudaErrorStreamCaptureUnsupported;
}
static const char dlc_emu_tag_copy = 0, dlc_emu_tag_set = 0, dlc_emu_tag_gemm = 0;
template <class T> struct dlc_emu_id { typedef T type; };

/* ---- launches: one thread per block ---- */
struct dlc_emu_dim3 { unsigned x, y, z; };
static thread_local dlc_emu_dim3 threadIdx, blockIdx, blockDim, gridDim;
/* Kernel launches so far (both kinds): tests check that fusion saves passes. */
static std::atomic<long> dlc_emu_kernels(0);
extern "C" long dlc_emu_kernel_launches(void) { return dlc_emu_kernels.load(); }
template <class F> static void dlc_emu_launch(unsigned grid, F f) {
    if (grid == 0) { dlc_emu_err(cudaErrorInvalidConfiguration); return; }
    gridDim.x = grid; gridDim.y = gridDim.z = 1;
    blockDim.x = blockDim.y = blockDim.z = 1;
    threadIdx.x = threadIdx.y = threadIdx.z = 0;
    blockIdx.y = blockIdx.z = 0;
    for (unsigned b = 0; b < grid; b++) { blockIdx.x = b; f(); }
}

/* ---- launches with real blocks: a 3-d grid of blocks of `threads`
   threads, each thread a fiber (ucontext) on the calling thread, run in
   turn from one __syncthreads to the next; __shared__ is one copy per OS
   thread, which is one block at a time. A block whose threads do not all
   reach the same barrier (a deadlock on a GPU) stops the program. ---- */
#define __shared__ static thread_local
#define DLC_EMU_STACK (64 * 1024)
struct dlc_emu_block {
    ucontext_t main;
    ucontext_t *fib;
    char *stacks;
    unsigned char *done;
    int n, cap;
    void (*body)(void *);
    void *arg;
};
static thread_local dlc_emu_block *dlc_emu_blk;
/* Launches of multi-thread blocks so far (all threads): tests check a path was taken. */
static std::atomic<long> dlc_emu_blocks_launched(0);
extern "C" long dlc_emu_block_launches(void) { return dlc_emu_blocks_launched.load(); }
static inline void __syncthreads(void) {
    dlc_emu_block *k = dlc_emu_blk;
    if (k) swapcontext(&k->fib[threadIdx.x], &k->main);
}
static void dlc_emu_fiber(void) {
    dlc_emu_block *k = dlc_emu_blk;
    k->body(k->arg);
    k->done[threadIdx.x] = 1;           /* then back to main through uc_link */
}
template <class F> static void dlc_emu_call(void *f) { (*(F *)f)(); }
template <class F> static void dlc_emu_launch_blocks(unsigned gx, unsigned gy, unsigned gz, int threads, F f) {
    static thread_local dlc_emu_block k;
    unsigned x, y, z;
    int t, running;
    if (!gx || !gy || !gz || threads < 1 || threads > 1024) { dlc_emu_err(cudaErrorInvalidConfiguration); return; }
    if (k.cap < threads) {
        free(k.fib); free(k.stacks); free(k.done);
        k.fib = (ucontext_t *)calloc((size_t)threads, sizeof(ucontext_t));
        k.stacks = (char *)malloc((size_t)threads * DLC_EMU_STACK);
        k.done = (unsigned char *)calloc((size_t)threads, 1);
        if (!k.fib || !k.stacks || !k.done) { fprintf(stderr, "cuda_emu: out of memory for %d fibers\n", threads); abort(); }
        k.cap = threads;
    }
    dlc_emu_blocks_launched++;
    k.n = threads; k.body = dlc_emu_call<F>; k.arg = &f;
    gridDim.x = gx; gridDim.y = gy; gridDim.z = gz;
    blockDim.x = (unsigned)threads; blockDim.y = blockDim.z = 1;
    threadIdx.y = threadIdx.z = 0;
    dlc_emu_blk = &k;
    for (z = 0; z < gz; z++)
        for (y = 0; y < gy; y++)
            for (x = 0; x < gx; x++) {
                blockIdx.x = x; blockIdx.y = y; blockIdx.z = z;
                for (t = 0; t < threads; t++) {
                    getcontext(&k.fib[t]);
                    k.fib[t].uc_stack.ss_sp = k.stacks + (size_t)t * DLC_EMU_STACK;
                    k.fib[t].uc_stack.ss_size = DLC_EMU_STACK;
                    k.fib[t].uc_link = &k.main;
                    makecontext(&k.fib[t], dlc_emu_fiber, 0);
                    k.done[t] = 0;
                }
                do {                    /* one round: every thread to its next barrier, or to its end */
                    running = 0;
                    for (t = 0; t < threads; t++) {
                        threadIdx.x = (unsigned)t;
                        swapcontext(&k.main, &k.fib[t]);
                        running += !k.done[t];
                    }
                    if (running && running != threads) {
                        fprintf(stderr, "cuda_emu: block (%u,%u,%u): %d of %d threads wait at __syncthreads while the others "
                                "have returned (a deadlock on a GPU)\n", x, y, z, running, threads);
                        abort();
                    }
                } while (running);
            }
    dlc_emu_blk = NULL;
    blockDim.x = 1;
    gridDim.y = gridDim.z = 1;
}

/* A kernel launch on stream s: the arguments converted to the kernel's
   parameter types now, the kernel run now or, while s captures, recorded. */
template <class... P>
static void dlc_emu_kernel(cudaStream_t s, unsigned grid, void (*k)(P...), typename dlc_emu_id<P>::type... a) {
    if (grid == 0) { dlc_emu_err(cudaErrorInvalidConfiguration); return; }
    dlc_emu_kernels++;
    dlc_emu_submit(s, (const void *)k, [=] { dlc_emu_launch(grid, [&] { k(a...); }); });
}
template <class... P>
static void dlc_emu_kernel_blocks(cudaStream_t s, unsigned gx, unsigned gy, unsigned gz, int threads, void (*k)(P...),
                                  typename dlc_emu_id<P>::type... a) {
    if (!gx || !gy || !gz || threads < 1 || threads > 1024) { dlc_emu_err(cudaErrorInvalidConfiguration); return; }
    dlc_emu_kernels++;
    dlc_emu_submit(s, (const void *)k, [=] { dlc_emu_launch_blocks(gx, gy, gz, threads, [&] { k(a...); }); });
}

/* ---- memory: a registry of device and pinned blocks ---- */
#if defined(__SANITIZE_ADDRESS__)
#define DLC_EMU_GUARD 0
#else
#define DLC_EMU_GUARD 64
#endif
struct dlc_emu_state {
    std::mutex m;
    std::map<const char *, size_t> dev, pinned;     /* start -> bytes */
    long mallocs;
};
static dlc_emu_state &dlc_emu(void) { static dlc_emu_state s; return s; }
/* Is [p, p+bytes) inside one live device block? */
static bool dlc_emu_on_device(const void *p, size_t bytes) {
    dlc_emu_state &s = dlc_emu();
    std::lock_guard<std::mutex> hold(s.m);
    const char *q = (const char *)p;
    std::map<const char *, size_t>::iterator it = s.dev.upper_bound(q);
    if (it == s.dev.begin()) return false;
    --it;
    return q >= it->first && q + bytes <= it->first + it->second;
}
static bool dlc_emu_is_pinned(const void *p) {    /* inside a pinned block */
    dlc_emu_state &s = dlc_emu();
    std::lock_guard<std::mutex> hold(s.m);
    const char *q = (const char *)p;
    std::map<const char *, size_t>::iterator it = s.pinned.upper_bound(q);
    if (it == s.pinned.begin()) return false;
    --it;
    return q >= it->first && q < it->first + (it->second ? it->second : 1);
}
static inline cudaError_t cudaMalloc(void **p, size_t bytes) {
    dlc_emu_state &s = dlc_emu();
    const char *fail = getenv("DLC_EMU_FAIL_MALLOC");
    static char counting[32];           /* the value the count started from */
    unsigned char *q;
    std::lock_guard<std::mutex> hold(s.m);
    *p = NULL;
    if (dlc_emu_capturing.load()) return dlc_emu_err(cudaErrorStreamCaptureUnsupported);
    if (fail && strcmp(fail, counting)) { snprintf(counting, sizeof counting, "%s", fail); s.mallocs = 0; }
    if (++s.mallocs == (fail ? atol(fail) : -1) || !(q = (unsigned char *)malloc(bytes + 2 * DLC_EMU_GUARD + 1)))
        return dlc_emu_err(cudaErrorMemoryAllocation);
#if DLC_EMU_GUARD
    memset(q, 0xA5, DLC_EMU_GUARD);
    memset(q + DLC_EMU_GUARD + bytes, 0x5A, DLC_EMU_GUARD);
#endif
    memset(q + DLC_EMU_GUARD, 0xFF, bytes);                 /* NaN floats: reading before writing shows */
    *p = q + DLC_EMU_GUARD;
    s.dev[(const char *)*p] = bytes;
    return cudaSuccess;
}
template <class T> static cudaError_t cudaMalloc(T **p, size_t bytes) { return cudaMalloc((void **)p, bytes); }
static inline cudaError_t cudaFree(void *p) {
    dlc_emu_state &s = dlc_emu();
    std::lock_guard<std::mutex> hold(s.m);
    unsigned char *q = (unsigned char *)p;
    size_t bytes, i;
    if (!p) return cudaSuccess;
    if (dlc_emu_capturing.load()) return dlc_emu_err(cudaErrorStreamCaptureUnsupported);
    if (!s.dev.count((const char *)p)) return dlc_emu_err(cudaErrorInvalidValue);
    bytes = s.dev[(const char *)p];
#if DLC_EMU_GUARD
    for (i = 0; i < DLC_EMU_GUARD; i++)
        if (q[(long)i - DLC_EMU_GUARD] != 0xA5 || q[bytes + i] != 0x5A) {
            fprintf(stderr, "cuda_emu: guard bytes around a device block of %lu bytes were overwritten\n", (unsigned long)bytes);
            abort();
        }
#else
    (void)i; (void)bytes;
#endif
    s.dev.erase((const char *)p);
    free(q - DLC_EMU_GUARD);
    return cudaSuccess;
}
static inline cudaError_t cudaMallocHost(void **p, size_t bytes) {
    dlc_emu_state &s = dlc_emu();
    std::lock_guard<std::mutex> hold(s.m);
    if (dlc_emu_capturing.load()) return dlc_emu_err(cudaErrorStreamCaptureUnsupported);
    if (!(*p = malloc(bytes ? bytes : 1))) return dlc_emu_err(cudaErrorMemoryAllocation);
    s.pinned[(const char *)*p] = bytes;
    return cudaSuccess;
}
static inline cudaError_t cudaFreeHost(void *p) {
    dlc_emu_state &s = dlc_emu();
    std::lock_guard<std::mutex> hold(s.m);
    if (dlc_emu_capturing.load()) return dlc_emu_err(cudaErrorStreamCaptureUnsupported);
    if (!p || !s.pinned.count((const char *)p)) return dlc_emu_err(cudaErrorInvalidValue);   /* NULL too: not documented as allowed */
    s.pinned.erase((const char *)p);
    free(p);
    return cudaSuccess;
}

enum cudaMemoryType { cudaMemoryTypeUnregistered = 0, cudaMemoryTypeHost = 1, cudaMemoryTypeDevice = 2, cudaMemoryTypeManaged = 3 };
struct cudaPointerAttributes { enum cudaMemoryType type; int device; void *devicePointer, *hostPointer; };
static inline cudaError_t cudaPointerGetAttributes(cudaPointerAttributes *a, const void *p) {
    memset(a, 0, sizeof *a);
    a->type = dlc_emu_on_device(p, 1) ? cudaMemoryTypeDevice : dlc_emu_is_pinned(p) ? cudaMemoryTypeHost : cudaMemoryTypeUnregistered;
    return cudaSuccess;
}

/* ---- streams, devices ---- */
#define cudaStreamNonBlocking 0x01
static inline cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned flags) {
    (void)flags;
    *s = new dlc_emu_stream;
    (*s)->magic = 0x5717ea;
    (*s)->cap = NULL;
    (*s)->invalid = false;
    return cudaSuccess;
}
static inline cudaError_t cudaStreamDestroy(cudaStream_t s) {
    if (!s || s->magic != 0x5717ea || s->cap) return dlc_emu_err(cudaErrorInvalidValue);
    s->magic = 0;
    delete s;
    return cudaSuccess;
}
static inline cudaError_t dlc_emu_stream_ok(cudaStream_t s) { return s && s->magic == 0x5717ea ? cudaSuccess : dlc_emu_err(cudaErrorInvalidValue); }
/* Host waits are counted, so that a test can tell how often a step waits for the device. */
static std::atomic<long> dlc_emu_waits(0);
extern "C" long dlc_emu_stream_waits(void) { return dlc_emu_waits.load(); }
static inline cudaError_t cudaStreamSynchronize(cudaStream_t s) {
    if (s && s->cap) return dlc_emu_err(dlc_emu_refuse(s));
    dlc_emu_waits++;
    return dlc_emu_stream_ok(s);
}
/* ---- graphs ---- */
enum cudaStreamCaptureMode { cudaStreamCaptureModeGlobal = 0, cudaStreamCaptureModeThreadLocal = 1, cudaStreamCaptureModeRelaxed = 2 };
struct dlc_emu_graph { std::vector<dlc_emu_op> ops; };
typedef dlc_emu_graph *cudaGraph_t;
typedef dlc_emu_graph *cudaGraphExec_t;
typedef struct cudaGraphExecUpdateResultInfo { int result; void *errorNode, *errorFromNode; } cudaGraphExecUpdateResultInfo;
static inline cudaError_t cudaStreamBeginCapture(cudaStream_t s, cudaStreamCaptureMode mode) {
    (void)mode;
    if (dlc_emu_stream_ok(s) != cudaSuccess || s->cap) return dlc_emu_err(cudaErrorInvalidValue);
    s->cap = new std::vector<dlc_emu_op>;
    s->invalid = false;
    dlc_emu_capturing++;
    return cudaSuccess;
}
static inline cudaError_t cudaStreamEndCapture(cudaStream_t s, cudaGraph_t *g) {
    bool invalid;
    *g = NULL;
    if (dlc_emu_stream_ok(s) != cudaSuccess || !s->cap) return dlc_emu_err(cudaErrorInvalidValue);
    invalid = s->invalid;
    if (!invalid) { *g = new dlc_emu_graph; (*g)->ops.swap(*s->cap); }
    delete s->cap;
    s->cap = NULL;
    s->invalid = false;
    dlc_emu_capturing--;
    return invalid ? dlc_emu_err(cudaErrorStreamCaptureInvalidated) : cudaSuccess;
}
static inline cudaError_t cudaGraphInstantiate(cudaGraphExec_t *e, cudaGraph_t g, unsigned long long flags) {
    (void)flags;
    if (!g) return dlc_emu_err(cudaErrorInvalidValue);
    *e = new dlc_emu_graph(*g);
    dlc_emu_graph_builds++;
    return cudaSuccess;
}
/* Parameters may change, the operations may not: the same count, each the same kernel or kind of copy. */
static inline cudaError_t cudaGraphExecUpdate(cudaGraphExec_t e, cudaGraph_t g, cudaGraphExecUpdateResultInfo *info) {
    size_t i;
    if (info) memset(info, 0, sizeof *info);
    if (!e || !g) return dlc_emu_err(cudaErrorInvalidValue);
    if (e->ops.size() != g->ops.size()) return dlc_emu_err(cudaErrorGraphExecUpdateFailure);
    for (i = 0; i < g->ops.size(); i++)
        if (e->ops[i].tag != g->ops[i].tag) return dlc_emu_err(cudaErrorGraphExecUpdateFailure);
    e->ops = g->ops;
    return cudaSuccess;
}
static inline cudaError_t cudaGraphLaunch(cudaGraphExec_t e, cudaStream_t s) {
    size_t i;
    if (!e || dlc_emu_stream_ok(s) != cudaSuccess || s->cap) return dlc_emu_err(cudaErrorInvalidValue);
    dlc_emu_graph_runs++;
    for (i = 0; i < e->ops.size(); i++) e->ops[i].run();
    return cudaSuccess;
}
static inline cudaError_t cudaGraphDestroy(cudaGraph_t g) { delete g; return cudaSuccess; }
static inline cudaError_t cudaGraphExecDestroy(cudaGraphExec_t e) { delete e; return cudaSuccess; }
static inline cudaError_t cudaGetDeviceCount(int *n) {
    const char *none = getenv("DLC_EMU_NO_DEVICE");     /* "driver": a machine without the driver */
    *n = none && *none && *none != '0' ? 0 : 1;
    return *n ? cudaSuccess : dlc_emu_err(strcmp(none, "driver") ? cudaErrorNoDevice : cudaErrorInsufficientDriver);
}
static inline cudaError_t cudaSetDevice(int d) { int n; return cudaGetDeviceCount(&n) == cudaSuccess && d >= 0 && d < n ? cudaSuccess : dlc_emu_err(cudaErrorInvalidDevice); }

/* ---- copies: synchronous; directions and bounds checked ---- */
enum cudaMemcpyKind { cudaMemcpyHostToHost = 0, cudaMemcpyHostToDevice = 1, cudaMemcpyDeviceToHost = 2, cudaMemcpyDeviceToDevice = 3 };
static bool dlc_emu_side_ok(const void *p, size_t bytes, bool device) {
    return device ? dlc_emu_on_device(p, bytes) : !dlc_emu_on_device(p, 1);
}
static inline cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind, cudaStream_t s) {
    if (dlc_emu_stream_ok(s) != cudaSuccess || kind == cudaMemcpyHostToHost ||
        !dlc_emu_side_ok(dst, bytes, kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice) ||
        !dlc_emu_side_ok(src, bytes, kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice)) {
        fprintf(stderr, "cuda_emu: bad cudaMemcpyAsync of %lu bytes, kind %d\n", (unsigned long)bytes, (int)kind);
        return dlc_emu_err(cudaErrorInvalidValue);
    }
    if (s->cap && ((kind == cudaMemcpyHostToDevice && !dlc_emu_is_pinned(src)) || (kind == cudaMemcpyDeviceToHost && !dlc_emu_is_pinned(dst))))
        return dlc_emu_err(dlc_emu_refuse(s));      /* pageable host memory: a real capture refuses it too */
    dlc_emu_submit(s, &dlc_emu_tag_copy, [=] { memmove(dst, src, bytes); });
    return cudaSuccess;
}
static inline cudaError_t cudaMemcpy2DAsync(void *dst, size_t dpitch, const void *src, size_t spitch, size_t width,
                                            size_t height, cudaMemcpyKind kind, cudaStream_t s) {
    size_t r;
    if (kind != cudaMemcpyDeviceToDevice || width > dpitch || width > spitch || dlc_emu_stream_ok(s) != cudaSuccess ||
        (height && (!dlc_emu_on_device(dst, (height - 1) * dpitch + width) || !dlc_emu_on_device(src, (height - 1) * spitch + width)))) {
        fprintf(stderr, "cuda_emu: bad cudaMemcpy2DAsync %lu x %lu\n", (unsigned long)width, (unsigned long)height);
        return dlc_emu_err(cudaErrorInvalidValue);
    }
    (void)r;
    dlc_emu_submit(s, &dlc_emu_tag_copy, [=] {
        for (size_t k = 0; k < height; k++) memmove((char *)dst + k * dpitch, (const char *)src + k * spitch, width);
    });
    return cudaSuccess;
}
static inline cudaError_t cudaMemsetAsync(void *p, int v, size_t bytes, cudaStream_t s) {
    if (dlc_emu_stream_ok(s) != cudaSuccess || !dlc_emu_on_device(p, bytes)) {
        fprintf(stderr, "cuda_emu: bad cudaMemsetAsync of %lu bytes\n", (unsigned long)bytes);
        return dlc_emu_err(cudaErrorInvalidValue);
    }
    dlc_emu_submit(s, &dlc_emu_tag_set, [=] { memset(p, v, bytes); });
    return cudaSuccess;
}

/* ---- cuBLAS: column-major SGEMM with cuBLAS's argument rules ---- */
typedef enum { CUBLAS_STATUS_SUCCESS = 0, CUBLAS_STATUS_NOT_INITIALIZED = 1, CUBLAS_STATUS_ALLOC_FAILED = 3,
               CUBLAS_STATUS_INVALID_VALUE = 7 } cublasStatus_t;
typedef enum { CUBLAS_OP_N = 0, CUBLAS_OP_T = 1 } cublasOperation_t;
typedef enum { CUBLAS_DEFAULT_MATH = 0, CUBLAS_TF32_TENSOR_OP_MATH = 3 } cublasMath_t;
typedef struct dlc_emu_blas { cudaStream_t s; cublasMath_t math; } *cublasHandle_t;
static inline cublasStatus_t cublasCreate(cublasHandle_t *h) {
    *h = new dlc_emu_blas;
    (*h)->s = NULL;
    (*h)->math = CUBLAS_DEFAULT_MATH;
    return CUBLAS_STATUS_SUCCESS;
}
static inline cublasStatus_t cublasDestroy(cublasHandle_t h) { delete h; return CUBLAS_STATUS_SUCCESS; }
static inline cublasStatus_t cublasSetStream(cublasHandle_t h, cudaStream_t s) { h->s = s; return CUBLAS_STATUS_SUCCESS; }
static inline cublasStatus_t cublasSetMathMode(cublasHandle_t h, cublasMath_t m) {
    if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (m != CUBLAS_DEFAULT_MATH && m != CUBLAS_TF32_TENSOR_OP_MATH) return CUBLAS_STATUS_INVALID_VALUE;
    h->math = m;
    return CUBLAS_STATUS_SUCCESS;
}
static inline cublasStatus_t cublasGetMathMode(cublasHandle_t h, cublasMath_t *m) {
    if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
    *m = h->math;
    return CUBLAS_STATUS_SUCCESS;
}
/* TF32 tensor-core input: float's 8-bit exponent, 10 of its 23 mantissa bits,
   rounded to nearest with ties away from zero (PTX's cvt.rna.tf32.f32).
   Infinities and NaN pass as they are; products and sums stay float. */
static inline float dlc_emu_tf32(float x) {
    unsigned u;
    memcpy(&u, &x, sizeof u);
    if ((u & 0x7f800000u) != 0x7f800000u) u = (u + 0x1000u) & 0xffffe000u;
    memcpy(&x, &u, sizeof x);
    return x;
}
static inline const char *cublasGetStatusString(cublasStatus_t s) {
    return s == CUBLAS_STATUS_SUCCESS ? "CUBLAS_STATUS_SUCCESS" : s == CUBLAS_STATUS_INVALID_VALUE ? "CUBLAS_STATUS_INVALID_VALUE"
         : s == CUBLAS_STATUS_ALLOC_FAILED ? "CUBLAS_STATUS_ALLOC_FAILED" : "CUBLAS_STATUS_NOT_INITIALIZED";
}
/* A rows x cols column-major matrix with leading dimension ld, inside one device block? */
static bool dlc_emu_matrix_ok(const float *p, int rows, int cols, int ld) {
    return dlc_emu_on_device(p, (((size_t)cols - 1) * ld + rows) * sizeof(float));
}
static inline cublasStatus_t cublasSgemmStridedBatched(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n,
                                                       int k, const float *alpha, const float *A, int lda, long long sA,
                                                       const float *B, int ldb, long long sB, const float *beta, float *C,
                                                       int ldc, long long sC, int batch) {
    int b;
    float al, be;
    cublasMath_t math;
    if (!h || !h->s) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (m < 0 || n < 0 || k < 0 || batch < 0 || lda < (ta == CUBLAS_OP_N ? (m > 1 ? m : 1) : (k > 1 ? k : 1)) ||
        ldb < (tb == CUBLAS_OP_N ? (k > 1 ? k : 1) : (n > 1 ? n : 1)) || ldc < (m > 1 ? m : 1)) {
        fprintf(stderr, "cuda_emu: cublasSgemmStridedBatched: bad dimensions m %d n %d k %d lda %d ldb %d ldc %d\n", m, n, k, lda, ldb, ldc);
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    for (b = 0; b < batch; b++) {
        const float *a = A + b * sA, *bb = B + b * sB;
        float *c = C + b * sC;
        if (!m || !n) continue;
        if ((k && (!(ta == CUBLAS_OP_N ? dlc_emu_matrix_ok(a, m, k, lda) : dlc_emu_matrix_ok(a, k, m, lda)) ||
                   !(tb == CUBLAS_OP_N ? dlc_emu_matrix_ok(bb, k, n, ldb) : dlc_emu_matrix_ok(bb, n, k, ldb)))) ||
            !dlc_emu_matrix_ok(c, m, n, ldc)) {
            fprintf(stderr, "cuda_emu: cublasSgemmStridedBatched: batch %d reads or writes outside device memory\n", b);
            return CUBLAS_STATUS_INVALID_VALUE;
        }
    }
    al = *alpha; be = *beta; math = h->math;    /* host scalars are read when the call is made */
    /* summed like a tiled kernel, not like dl.h's loop: 4 interleaved fused
       multiply-add accumulators, so the tests' tolerances meet reordering */
    dlc_emu_submit(h->s, &dlc_emu_tag_gemm, [=] {
        for (int q = 0; q < batch; q++) {
            const float *a = A + q * sA, *bb = B + q * sB;
            float *c = C + q * sC;
            for (int j = 0; j < n; j++)
                for (int i = 0; i < m; i++) {
                    float acc[4] = { 0, 0, 0, 0 };
                    for (int l = 0; l < k; l++) {
                        float x = ta == CUBLAS_OP_N ? a[i + (size_t)l * lda] : a[l + (size_t)i * lda];
                        float y = tb == CUBLAS_OP_N ? bb[l + (size_t)j * ldb] : bb[j + (size_t)l * ldb];
                        if (math == CUBLAS_TF32_TENSOR_OP_MATH) { x = dlc_emu_tf32(x); y = dlc_emu_tf32(y); }
                        acc[l & 3] = fmaf(x, y, acc[l & 3]);
                    }
                    c[i + (size_t)j * ldc] = al * ((acc[0] + acc[2]) + (acc[1] + acc[3])) + (be == 0 ? 0.0f : be * c[i + (size_t)j * ldc]);
                }
        }
    });
    return CUBLAS_STATUS_SUCCESS;
}
/* Where cuBLAS works, so that its calls can be captured; the emulation needs none. */
static inline cublasStatus_t cublasSetWorkspace(cublasHandle_t h, void *p, size_t bytes) {
    (void)p; (void)bytes;
    return h ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_NOT_INITIALIZED;
}
#endif
