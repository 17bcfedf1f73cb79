/* dl_cuda.cu - the CUDA backend of dl.h: the same layers, losses and optimizers on an NVIDIA GPU.

   Build it with nvcc and link the CUDA runtime and cuBLAS (no cuDNN):
      nvcc -O3 -gencode arch=compute_90,code=sm_90 -gencode arch=compute_90,code=compute_90 -I. -c dl_cuda.cu
      cc app.c dl_cuda.o -lcublas -lcudart -lstdc++ -lm      (or link with nvcc: nvcc app.o dl_cuda.o -lcublas)
   where app.c includes dl.h with DL_IMPLEMENTATION (not DL_STATIC) and calls
      if (dl_cuda_use(net, 0)) printf("staying on the CPU: %s\n", dl_net_error(net));

   The file mirrors dl.h's CPU kernels in the same order and with the same
   names: dl__conv2d_forward in dl.h is dlc__conv2d_forward here (host side,
   called by the executor through the dl_backend table), which launches
   kernels named dlk__conv2d_*. Every kernel reads the CPU kernel's formula;
   sums that the CPU does in double are done in double here, so results agree
   to float rounding (tests/test_cuda.c checks every op, loss and optimizer).

   LAYOUTS AND FUSION
   - Convolution is im2col + cuBLAS. The column matrix of a chunk of nb samples
     is laid out [group][K][nb * P] (K = C/G*KH*KW rows, P output pixels), so
     each group is ONE GEMM over the whole chunk and all groups are one
     strided-batched call (depthwise included). Its output comes out as
     [M][nb * P]; the pass that puts it back in NCHW also adds the bias, so
     the bias costs no extra pass over the output. Backward transposes dY to
     the same layout (one pass) and then needs one GEMM for dW, one for the
     column gradient, and a gather (col2im, no atomics) into dx; the bias
     gradient is a row sum of the transposed dY. Chunks keep the scratch under
     DLC_CONV_SCRATCH floats. With DL_CUDA_CONV=auto (read when a backend
     starts), forward and input gradient of 3x3 and 5x5 kernels with 16 or
     more rows per group (filters, input channels) are instead an implicit
     GEMM (dlk__conv2d_implicit): column tiles are gathered into shared
     memory, never into global memory, and the bias or the accumulation
     into dx is its epilogue; so is the weight gradient of 3x3 and 5x5
     kernels with 16 or more filters per group (dlk__conv2d_dw_implicit, its
     depth cut into slices summed in order); =implicit takes them wherever they can run. Not
     the default until timed on a GPU (tests/gpu_check.sh step 3b).
   - Inference (dl_predict; dl_backend.fuse, off with DL_CUDA_FUSE=0): a
     conv2d or dense layer applies the eval batchnorm and the activation
     that follow it (dl_fused, the CPU's choice of layers) in the pass that
     writes its output (the NCHW write-back, the dense bias pass, or the
     implicit GEMM's epilogue); the batchnorm's scale and shift come from
     the batchnorm kernel's own eval arithmetic (dlk__batchnorm_stats).
   - Batchnorm: one kernel per layer computes the statistics (double sums),
     updates the running statistics and writes per-channel scale and shift;
     one elementwise pass applies them (normalize and affine fused).
   - Softmax cross-entropy: one kernel computes the softmax, the loss and
     dlogits together. MSE: one pass computes dout and partial sums.
   - The optimizer is four launches whatever the net: squared-norm partial
     sums, their total (which also decides clipping and finiteness on the
     device), a pass that computes the update without storing it (any value
     not finite vetoes the step, as in dl_optim_step_cpu), and one fused
     update over every range. In a training step, the guard (one block)
     checks the loss and every statistic before backward, and the total
     keeps its verdict, so the update kernels change nothing after it.
   - Maxpool keeps dl.h's saved layout (int32 argmax in the plane, per
     output); its backward and avgpool's are gathers, deterministic like the
     CPU's (the same additions in the same order).
   - Dropout masks come from the same hash as dl_dropout_keep, so GPU and CPU
     draw identical masks from identical seeds.

   SYNCHRONISATION
   Everything runs on one stream owned by the backend, so kernels never wait
   for the host. The host waits only where the interface needs an answer:
   copies to the host, sync (which also delivers the loss), and the end of
   a plain optim_step (dl_optim_step), which must say whether a gradient or
   the update was not finite (the update kernel itself checks the
   device-side verdict, so nothing changes when one is not). A training
   step waits once: dl_train_step queues the guard after the loss
   (dlk__step_guard: loss and running statistics finite, else verdict 2),
   backward and the optimizer (whose norm kernel keeps a verdict of 2), and
   the sync that ends the step copies the verdict back with the loss; only
   when it says stop does dl.h read the statistics to name what failed.
   Copies from pageable host memory are staged by CUDA before
   cudaMemcpyAsync returns; copies from pinned memory are waited for, since
   the caller may reuse its buffer at once.

   LAUNCH OVERHEAD AND CUDA GRAPHS
   A training step of the reference CNN (conv 32, bn, prelu, maxpool,
   conv 64, bn, prelu, maxpool, dense 10) is about 60 stream operations: 16
   kernels forward (2 of them GEMMs), 1 for the loss, 23 backward (5 GEMMs),
   3 for the optimizer, and about 16 memsets and copies that the executor
   asks for. At a few microseconds of host time each, small batches are
   bound by launches rather than by the GPU. With DL_CUDA_GRAPHS=1 (read
   when a backend starts; opt-in: never run on a GPU) dl.h marks where a
   training step or a prediction starts (dl_backend.graph) and the stream
   captures from there to the step's one wait, which launches the capture
   as one graph (dlc__flush: the slot's graph updated in place, or built
   anew when the launches differ). Host work that must happen inside a
   step ends the capture early and the rest runs as before: scratch growth
   (dlc__reserve waits), custom layers, a collective, an optimizer step
   that is not armed.

   THREADS
   One mutex per backend serialises calls, so dl_ctx_predict on distinct
   contexts of one GPU net may run concurrently (their work shares the stream).

   CUSTOM LAYERS (DL_OP_CUSTOM) run their CPU callbacks: inputs, output,
   parameters and gradients are copied to the host and back, every call. Slow
   but exact; prefer built-in ops on the GPU.

   Any CUDA or cuBLAS failure becomes DL_ERR_BACKEND (DL_ERR_NOMEM for out of
   memory) with the CUDA message in b->error; nothing here aborts.

   Built with -DDLC_EMULATE and a C++ compiler, the same source runs on the
   CPU against tests/cuda_emu.h (kernels one thread per block), which lets the
   parity tests check this file's indexing on machines without a GPU. */
#include "dl.h"
#ifdef DLC_EMULATE
#include "tests/cuda_emu.h"
#else
#include <cuda_runtime.h>
#include <cublas_v2.h>
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdarg.h>
#include <float.h>
#include <math.h>
#include <new>
#include <mutex>

#define DLC_T 256                       /* threads per block, everywhere */
#define DLC_CONV_SCRATCH (1u << 26)     /* floats of convolution scratch before chunking the batch (256 MB);
                                           the environment variable DL_CUDA_CONV_SCRATCH overrides it (tests) */

/* ======================================================================== */
/*  The backend object and its error handling                               */
/* ======================================================================== */
typedef struct dlc_verdict {            /* device scalars the host reads back */
    int ok;                             /* 1 go; 0 a gradient, -1 the update is not finite; 2 the step's guard failed */
    float clip;                         /* optimizer: factor for the gradients */
    float loss;                         /* the last loss */
    int pad;
} dlc_verdict;

typedef struct dlc {
    dl_backend b;
    int device;
    cudaStream_t stream;
    cublasHandle_t blas;
    std::mutex lock;
    void *big;                          /* convolution columns and transposed outputs */
    size_t big_cap;                     /* bytes */
    void *small;                        /* per-channel values, partial sums, range tables */
    size_t small_cap;
    dlc_verdict *dev_v, *host_v;        /* device scalars, and their pinned host mirror */
    size_t *host_ranges;                /* pinned staging for the optimizer's ranges */
    size_t host_ranges_cap;             /* size_t entries */
    float *pending_loss;                /* where the next sync writes the loss */
    int armed;                          /* guard queued: optim_step neither waits nor reports until the next sync */
    size_t conv_scratch;                /* floats; see DLC_CONV_SCRATCH */
    int conv_algo;                      /* DLC_CONV_*: DL_CUDA_CONV=im2col or implicit forces one */
    int tf32;                           /* dl_cuda_set_tf32 */
    int graphs;                         /* DL_CUDA_GRAPHS=1: dl_backend.graph captures steps and predictions */
    int capturing;                      /* the stream is capturing for exec[slot] */
    int slot;
    cudaGraphExec_t exec[2];            /* a training step, a prediction: the last one captured, updated in place */
    char *stage;                        /* pinned: the caller's inputs and targets, copied from here by the graph */
    size_t stage_cap, stage_used;
    void *blas_ws;                      /* cuBLAS's workspace, set so that its calls can be captured */
} dlc;
enum { DLC_CONV_AUTO = 0, DLC_CONV_IM2COL = 1, DLC_CONV_IMPLICIT = 2 };

static dlc *dlc__of(dl_backend *b) { return (dlc *)b->user; }

static int dlc__fail(dlc *c, int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->b.error, sizeof c->b.error, fmt, ap);
    va_end(ap);
    return code;
}
static int dlc__cuda(dlc *c, cudaError_t e, const char *what, int line) {
    cudaGetLastError();                 /* a non-sticky error must not be blamed on the next launch */
    return dlc__fail(c, e == cudaErrorMemoryAllocation ? DL_ERR_NOMEM : DL_ERR_BACKEND, "%s (dl_cuda.cu:%d): %s (%s)",
                     what, line, cudaGetErrorString(e), cudaGetErrorName(e));
}
static int dlc__blas(dlc *c, cublasStatus_t s, const char *what, int line) {
    return dlc__fail(c, s == CUBLAS_STATUS_ALLOC_FAILED ? DL_ERR_NOMEM : DL_ERR_BACKEND, "cuBLAS %s (dl_cuda.cu:%d): %s",
                     what, line, cublasGetStatusString(s));
}
/* These need a `dlc *c` in scope and return the status from the enclosing function. */
#define DLC_CHECK(call) do {                                                           \
        cudaError_t e_ = (call);                                                       \
        if (e_ != cudaSuccess) return dlc__cuda(c, e_, #call, __LINE__);               \
    } while (0)
#define DLC_TRY(call) do { int rc_ = (call); if (rc_) return rc_; } while (0)

/* Kernel launches: grid blocks of DLC_T threads on the backend's stream, checked. */
#ifdef DLC_EMULATE
#define DLC_RUN(kernel, grid, ...) dlc_emu_kernel(c->stream, (grid), kernel, __VA_ARGS__)
#else
#define DLC_RUN(kernel, grid, ...) kernel<<<(grid), DLC_T, 0, c->stream>>>(__VA_ARGS__)
#endif
#define DLC_LAUNCH(kernel, grid, ...) do {                                             \
        DLC_RUN(kernel, grid, __VA_ARGS__);                                            \
        cudaError_t e_ = cudaGetLastError();                                           \
        if (e_ != cudaSuccess) return dlc__cuda(c, e_, "launching " #kernel, __LINE__);\
    } while (0)
/* A kernel whose threads work together (shared memory, __syncthreads): a
   gx x gy x gz grid of blocks of `threads`; the emulation runs every thread. */
#ifdef DLC_EMULATE
#define DLC_RUN_BLOCKS(kernel, gx, gy, gz, threads, ...) dlc_emu_kernel_blocks(c->stream, (gx), (gy), (gz), (threads), kernel, __VA_ARGS__)
#else
#define DLC_RUN_BLOCKS(kernel, gx, gy, gz, threads, ...) kernel<<<dim3((gx), (gy), (gz)), (threads), 0, c->stream>>>(__VA_ARGS__)
#endif
#define DLC_LAUNCH_BLOCKS(kernel, gx, gy, gz, threads, ...) do {                       \
        DLC_RUN_BLOCKS(kernel, gx, gy, gz, threads, __VA_ARGS__);                      \
        cudaError_t e_ = cudaGetLastError();                                           \
        if (e_ != cudaSuccess) return dlc__cuda(c, e_, "launching " #kernel, __LINE__);\
    } while (0)
/* The common case: a grid-stride loop over total elements (nothing for 0). */
#define DLC_EACH(kernel, total, ...) do {                                              \
        if ((size_t)(total) > 0) DLC_LAUNCH(kernel, dlc__grid((size_t)(total)), __VA_ARGS__); \
    } while (0)
#define DLC_FOR(i, total)                                                              \
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < (size_t)(total); \
         i += (size_t)gridDim.x * blockDim.x)

static unsigned dlc__grid(size_t total) {
    size_t b = (total + DLC_T - 1) / DLC_T;
    return (unsigned)(b < 1 ? 1 : b > (1u << 20) ? (1u << 20) : b);   /* loops stride over the rest */
}

/* ---- CUDA graphs (DL_CUDA_GRAPHS=1). dl.h calls graph(b, slot) where a
   training step (slot 0) or a prediction (1) starts queuing; from there the
   stream captures instead of running. The capture ends at the first thing
   that must wait or allocate (the sync that ends a step, a copy to the
   host, growing scratch, a custom layer, an optimizer step that is not
   armed): dlc__flush instantiates what was captured, or updates the slot's
   graph in place when only parameters changed (cudaGraphExecUpdate: a new
   dropout seed, learning rate, Adam step, batch size with the same
   launches, moved buffers), and launches it, so a step is one launch.
   Everything is captured every time (host work about that of the launches
   it replaces): what a kernel is given is never stale. The caller's inputs
   and targets are copied to pinned staging first, since a capture cannot
   read pageable memory; staging is reused only after the stream was waited
   for (contexts on other threads may start captures in between). ---- */
static int dlc__flush(dlc *c) {
    cudaGraph_t g = NULL;
    cudaGraphExecUpdateResultInfo info;
    cudaError_t e;
    int k = c->slot;
    if (!c->capturing) return DL_OK;
    c->capturing = 0;
    DLC_CHECK(cudaStreamEndCapture(c->stream, &g));
    if (c->exec[k] && cudaGraphExecUpdate(c->exec[k], g, &info) != cudaSuccess) {
        cudaGetLastError();             /* other launches: instantiate anew */
        cudaGraphExecDestroy(c->exec[k]);
        c->exec[k] = NULL;
    }
    e = c->exec[k] ? cudaSuccess : cudaGraphInstantiate(&c->exec[k], g, 0);
    cudaGraphDestroy(g);
    if (e != cudaSuccess) { c->exec[k] = NULL; return dlc__cuda(c, e, "cudaGraphInstantiate", __LINE__); }
    DLC_CHECK(cudaGraphLaunch(c->exec[k], c->stream));
    return DL_OK;
}
/* A pinned copy of a pageable host source for a capture; NULL when staging is full (the caller then flushes). */
static const void *dlc__staged(dlc *c, const void *src, size_t bytes) {
    size_t at = (c->stage_used + 255) & ~(size_t)255;
    if (!c->capturing || at + bytes > c->stage_cap) return NULL;
    memcpy(c->stage + at, src, bytes);
    c->stage_used = at + bytes;
    return c->stage + at;
}

/* Grows one of the scratch buffers to at least bytes. Growing waits for the
   stream first, so no queued kernel still reads the old buffer. */
static int dlc__reserve(dlc *c, void **buf, size_t *cap, size_t bytes) {
    void *p = NULL;
    if (bytes <= *cap) return DL_OK;
    bytes += bytes / 2;
    DLC_TRY(dlc__flush(c));
    DLC_CHECK(cudaStreamSynchronize(c->stream));
    if (*buf) DLC_CHECK(cudaFree(*buf));
    *buf = NULL;
    *cap = 0;
    DLC_CHECK(cudaMalloc(&p, bytes));
    *buf = p;
    *cap = bytes;
    return DL_OK;
}
static int dlc__reserve_big(dlc *c, size_t floats) { return dlc__reserve(c, &c->big, &c->big_cap, floats * sizeof(float)); }
static int dlc__reserve_small(dlc *c, size_t bytes) { return dlc__reserve(c, &c->small, &c->small_cap, bytes); }

/* The sum of v over the block, returned to every thread; blockDim.x is a
   multiple of 32 and every thread calls it. The tree is fixed, so the result
   does not depend on timing. */
#ifdef DLC_EMULATE
static double dlc__block_sum(double v) { return v; }   /* one thread per block */
#else
static __device__ double dlc__block_sum(double v) {
    __shared__ double part[32];
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, o;
    for (o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    if (lane == 0) part[warp] = v;
    __syncthreads();
    if (warp == 0) {
        v = lane < (int)(blockDim.x >> 5) ? part[lane] : 0.0;
        for (o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
        if (lane == 0) part[0] = v;
    }
    __syncthreads();
    v = part[0];
    __syncthreads();                    /* part may be reused by the next call */
    return v;
}
#endif

static void dlc__chw(const dl_layer *x, int *c, int *h, int *w) {   /* dl.h's dl__chw */
    *c = x->shape[0];
    *h = x->ndim > 1 ? x->shape[1] : 1;
    *w = x->ndim > 2 ? x->shape[2] : 1;
}

/* Row-major C = alpha op(A) op(B) + beta C, like dl.h's dl__sgemm, for batch
   matrices sA, sB, sC floats apart. cuBLAS is column-major, where a row-major
   matrix reads as its transpose, so it computes C^T = op(B)^T op(A)^T. beta 0
   never reads C. */
static int dlc__sgemm(dlc *c, int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, long long sA,
                      const float *B, int ldb, long long sB, float beta, float *C, int ldc, long long sC, int batch) {
    cublasStatus_t s = cublasSgemmStridedBatched(c->blas, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N,
                                                 N, M, K, &alpha, B, ldb, sB, A, lda, sA, &beta, C, ldc, sC, batch);
    return s == CUBLAS_STATUS_SUCCESS ? DL_OK : dlc__blas(c, s, "sgemm", __LINE__);
}

/* ======================================================================== */
/*  Kernels, layer by layer in dl.h's order. Backward ADDS into din and dw. */
/* ======================================================================== */

/* ---- inference fusion (dl_fused): conv2d and dense apply an eval
   batchnorm's scale and shift (ss, C each, from dlk__batchnorm_stats: the
   batchnorm kernel's own numbers) and then an activation to each output as
   they write it, with the formulas of the kernels they replace. ---- */
typedef struct dlc_epi {
    const float *ss;            /* NULL: no batchnorm */
    int C, act;                 /* act: the activation's DL_OP_*, or -1 */
    float a, b;                 /* its alpha and beta */
    const float *slope;         /* prelu */
} dlc_epi;
static __device__ float dlc__clip_value(float x, float lo, float hi);
static __device__ float dlc__hard_swish_value(float x, float a, float b);
static __device__ __forceinline__ float dlc__epi_apply(const dlc_epi &e, int ch, float v) {
    if (e.ss) v = v * e.ss[ch] + e.ss[e.C + ch];
    switch (e.act) {
    case DL_OP_RELU: return v > 0 ? v : 0.0f;
    case DL_OP_LEAKY_RELU: return v > 0 ? v : e.a * v;
    case DL_OP_PRELU: return v > 0 ? v : e.slope[ch] * v;
    case DL_OP_CLIP: return dlc__clip_value(v, e.a, e.b);
    case DL_OP_HARD_SWISH: return dlc__hard_swish_value(v, e.a, e.b);
    }
    return v;
}
static __global__ void dlk__batchnorm_stats(const float *x, int N, int C, int S, int train, float eps, float momentum,
                                            const float *gamma, const float *beta, float *rmean, float *rvar,
                                            float *saved, const float *st, float *ss);
/* The epilogue of e->fused (none: ss NULL, act -1); a batchnorm's scale and
   shift go to the small scratch, which nothing else uses until the layer ends. */
static int dlc__epi_of(dlc *c, const dl_exec *e, dlc_epi *ep) {
    const dl_fused *f = e->fused;
    memset(ep, 0, sizeof *ep);
    ep->act = f && f->act ? f->act->op : -1;
    if (!f) return DL_OK;
    if (f->act) { ep->a = f->act->a.alpha; ep->b = f->act->a.beta; ep->slope = f->act->op == DL_OP_PRELU ? f->act_w[0] : NULL; }
    if (f->bn) {
        float *const *w = f->bn_w;
        ep->C = f->bn->shape[0];
        DLC_TRY(dlc__reserve_small(c, 2 * (size_t)ep->C * sizeof(float)));
        DLC_LAUNCH(dlk__batchnorm_stats, (unsigned)ep->C, (const float *)NULL, 0, ep->C, 1, 0, f->bn->a.eps, 0.0f, w[0], w[1], w[2],
                   w[3], (float *)NULL, (const float *)NULL, (float *)c->small);
        ep->ss = (const float *)c->small;
    }
    return DL_OK;
}
static int dlc__epi_none(const dlc_epi *ep) { return !ep->ss && ep->act < 0; }
static dlc_epi dlc__no_epi(void) { dlc_epi ep; memset(&ep, 0, sizeof ep); ep.act = -1; return ep; }

/* ---- dense: y[n,o] = sum_i W[o,i] x[n,i] + b[o];  x (N,I), W (O,I), b (O) ---- */
static __global__ void dlk__dense_bias_forward(float *y, const float *b, int O, size_t total, dlc_epi ep) {
    DLC_FOR(i, total) {
        int o = (int)(i % O);
        y[i] = dlc__epi_apply(ep, o, b ? y[i] + b[o] : y[i]);
    }
}
/* db[o] += dy[0,o] + dy[1,o] + ... in the CPU's order */
static __global__ void dlk__dense_bias_backward(float *db, const float *dy, int N, int O) {
    DLC_FOR(o, O) {
        float acc = db[o];
        for (int k = 0; k < N; k++) acc += dy[(size_t)k * O + o];
        db[o] = acc;
    }
}

static int dlc__dense_forward(dlc *c, const dl_layer *l, const dl_exec *e) {
    int O = l->a.units, I = l->in[0]->size;
    size_t total = (size_t)e->n * O;
    dlc_epi ep;
    DLC_TRY(dlc__epi_of(c, e, &ep));
    DLC_TRY(dlc__sgemm(c, 0, 1, e->n, O, I, 1.0f, e->in[0], I, 0, e->w[0], I, 0, 0.0f, e->out, O, 0, 1));
    if (l->a.bias || !dlc__epi_none(&ep))
        DLC_EACH(dlk__dense_bias_forward, total, e->out, l->a.bias ? e->w[1] : NULL, O, total, ep);
    return DL_OK;
}
static int dlc__dense_backward(dlc *c, const dl_layer *l, const dl_exec *e) {
    int O = l->a.units, I = l->in[0]->size;
    if (e->din[0]) DLC_TRY(dlc__sgemm(c, 0, 0, e->n, I, O, 1.0f, e->dout, O, 0, e->w[0], I, 0, 1.0f, e->din[0], I, 0, 1)); /* dx += dy W */
    if (e->dw[0]) DLC_TRY(dlc__sgemm(c, 1, 0, O, I, e->n, 1.0f, e->dout, O, 0, e->in[0], I, 0, 1.0f, e->dw[0], I, 0, 1)); /* dW += dy^T x */
    if (l->a.bias && e->dw[1]) DLC_EACH(dlk__dense_bias_backward, O, e->dw[1], e->dout, e->n, O);
    return DL_OK;
}

/* ---- conv2d: y[n,m,oh,ow] = b[m] + sum_{c,kh,kw} W[m,c,kh,kw] x[n,g*C/G+c, oh*s-p+kh*d, ow*s-p+kw*d]
   x (N,C,H,W), W (M,C/G,KH,KW), y (N,M,OH,OW). For a chunk of nb samples:
   col [C*KH*KW][nb*P] (group g's K rows start at row g*K), Yt [M][nb*P]. ---- */
typedef dl_conv_geom dlc_conv;                           /* dl.h's, shared by every backend */

static __global__ void dlk__conv2d_im2col(dlc_conv g, const float *x, int nb, size_t total, float *col) {
    DLC_FOR(i, total) {
        size_t t = i / g.P;
        int p = (int)(i % g.P), nl = (int)(t % nb), r = (int)(t / nb);
        int kw = r % g.KW, kh = (r / g.KW) % g.KH, ch = r / (g.KW * g.KH);
        int ih = (p / g.OW) * g.sh - g.ph + kh * g.dh, iw = (p % g.OW) * g.sw - g.pw + kw * g.dw;
        col[i] = ih >= 0 && ih < g.H && iw >= 0 && iw < g.W ? x[(((size_t)nl * g.C + ch) * g.H + ih) * g.W + iw] : 0.0f;
    }
}
/* The adjoint, as a gather: dx[nl][c][ih][iw] += every column entry that read it, in (kh, kw) order. */
static __global__ void dlk__conv2d_col2im(dlc_conv g, const float *col, int nb, size_t total, float *dx) {
    DLC_FOR(i, total) {
        int iw = (int)(i % g.W), ih = (int)(i / g.W % g.H), ch = (int)(i / ((size_t)g.W * g.H) % g.C);
        int nl = (int)(i / ((size_t)g.W * g.H * g.C)), kh, kw;
        float acc = dx[i];
        for (kh = 0; kh < g.KH; kh++) {
            int th = ih + g.ph - kh * g.dh, oh;
            if (th < 0 || th % g.sh) continue;
            if ((oh = th / g.sh) >= g.OH) continue;
            for (kw = 0; kw < g.KW; kw++) {
                int tw = iw + g.pw - kw * g.dw, ow, r = (ch * g.KH + kh) * g.KW + kw;
                if (tw < 0 || tw % g.sw) continue;
                if ((ow = tw / g.sw) >= g.OW) continue;
                acc += col[((size_t)r * nb + nl) * g.P + (size_t)oh * g.OW + ow];
            }
        }
        dx[i] = acc;
    }
}
/* y[nl][m][p] = Yt[m][nl*P + p] + b[m]: back to NCHW with the bias and the epilogue fused in */
static __global__ void dlk__conv2d_output(const float *yt, const float *b, int M, int P, int nb, int acc, size_t total, float *y,
                                          dlc_epi ep) {
    DLC_FOR(i, total) {
        int p = (int)(i % P), m = (int)(i / P % M), nl = (int)(i / ((size_t)P * M));
        float v = yt[((size_t)m * nb + nl) * P + p];
        y[i] = acc ? y[i] + v : dlc__epi_apply(ep, m, b ? v + b[m] : v);
    }
}
/* dYt[m][nl*P + p] = dy[nl][m][p] */
static __global__ void dlk__conv2d_dout_t(const float *dy, int M, int P, int nb, size_t total, float *dyt) {
    DLC_FOR(i, total) {
        int p = (int)(i % P), m = (int)(i / P % M), nl = (int)(i / ((size_t)P * M));
        dyt[((size_t)m * nb + nl) * P + p] = dy[i];
    }
}
/* db[m] += sum of row m of dYt; one block per m */
static __global__ void dlk__conv2d_bias_backward(const float *dyt, size_t row, float *db) {
    const float *r = dyt + (size_t)blockIdx.x * row;
    double s = 0;
    for (size_t k = threadIdx.x; k < row; k += blockDim.x) s += r[k];
    s = dlc__block_sum(s);
    if (threadIdx.x == 0) db[blockIdx.x] += (float)s;
}

/* db[c] += sum over samples and positions of dy[n][c][p]; one block per c */
static __global__ void dlk__bias_planes_backward(const float *dy, int N, int C, size_t P, float *db) {
    double s = 0;
    for (size_t k = threadIdx.x; k < (size_t)N * P; k += blockDim.x) s += dy[(k / P * C + blockIdx.x) * P + k % P];
    s = dlc__block_sum(s);
    if (threadIdx.x == 0) db[blockIdx.x] += (float)s;
}
/* Samples per chunk so that columns and the transposed output fit the scratch. */
static int dlc__conv_chunk(dlc *c, const dlc_conv *g, int n, int *nb) {
    size_t per = (size_t)g->C * g->KH * g->KW * g->P + (size_t)g->M * g->P, k = c->conv_scratch / per;
    if (per > (size_t)0x7fffffff)
        return dlc__fail(c, DL_ERR_UNSUPPORTED, "conv2d: one sample needs %lu floats of columns; at most 2^31 are supported",
                         (unsigned long)per);
    *nb = k < 1 ? 1 : k > (size_t)n ? n : (int)k;
    return dlc__reserve_big(c, (size_t)*nb * per);
}

/* ---- conv2d as an implicit GEMM, per group g, in 64 x 64 output tiles of
   256 threads (4 x 4 outputs each, strided by 16 so that shared-memory reads
   and global writes are contiguous across a warp), 16 deep; each tile of the
   column matrix is gathered into shared memory as it is needed, never stored
   in global memory (im2col of conv2 of the reference CNN at batch 256 is 58 MB).
     forward (DX 0): Y_g (Mg x n*P) = W_g (Mg x K) col_g(x) (K x n*P); the
       epilogue writes NCHW with the bias, or adds into y (acc);
     input gradient (DX 1): dX_g (Cg x n*H*W) += W_g^T (Cg x Mg*KK) cols of dy
       (Mg*KK x n*H*W): dy[m][oh][ow] where ih = oh*sh - ph + kh*dh (likewise
       w), 0 where no output read that input; the epilogue adds into dx.
   Sums run in depth order, one fused multiply-add at a time: float rounding
   of the CPU's sum in another order. ---- */
#define DLC_IG_BM 64
#define DLC_IG_BN 64
#define DLC_IG_BK 16
#define DLC_IG_T 256
/* One 16-deep slice of a 64 x 64 tile's product: thread (tx, ty) owns rows
   ty + 16i of As and columns tx + 16j of Bs (both stored depth-major). */
template <int LA, int LB>
static __device__ __forceinline__ void dlc__tile_fma(const float (*As)[LA], const float (*Bs)[LB], int tx, int ty, float accv[4][4]) {
    int i, j, k;
    for (k = 0; k < DLC_IG_BK; k++) {
        float a[4], bv[4];
        for (i = 0; i < 4; i++) { a[i] = As[k][ty + 16 * i]; bv[i] = Bs[k][tx + 16 * i]; }
        for (i = 0; i < 4; i++)
            for (j = 0; j < 4; j++) accv[i][j] = fmaf(a[i], bv[j], accv[i][j]);
    }
}
template <int DX>
static __global__ void dlk__conv2d_implicit(dlc_conv g, const float *src, const float *w, const float *b, long long cols, int acc,
                                            float *y, dlc_epi ep) {
    __shared__ float As[DLC_IG_BK][DLC_IG_BM + 1], Bs[DLC_IG_BK][DLC_IG_BN];   /* +1: a column of A is stored without conflicts */
    const int KK = g.KH * g.KW, R = DX ? g.Cg : g.Mg, D = DX ? g.Mg * KK : g.K, Q = DX ? g.H * g.W : g.P;
    const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16, grp = blockIdx.z;
    const int m0 = blockIdx.y * DLC_IG_BM, lm = tid % DLC_IG_BM, lk = tid / DLC_IG_BM;   /* what this thread loads: */
    const long long j0 = (long long)blockIdx.x * DLC_IG_BN, col = j0 + tid % DLC_IG_BN;  /* rows lk + 4i, column lm / col */
    const float *wg = w + (size_t)grp * g.Mg * g.K, *base = src;
    int a0 = 0, b0 = 0, i, j, k0;
    float accv[4][4];
    if (col < cols) {                   /* the column's sample and pixel, once */
        int q = (int)(col % Q);
        size_t nn = (size_t)(col / Q);
        if (DX) { base = src + (nn * g.M + (size_t)grp * g.Mg) * g.OH * g.OW; a0 = q / g.W + g.ph; b0 = q % g.W + g.pw; }
        else { base = src + (nn * g.C + (size_t)grp * g.Cg) * g.H * g.W; a0 = q / g.OW * g.sh - g.ph; b0 = q % g.OW * g.sw - g.pw; }
    }
    for (i = 0; i < 4; i++) for (j = 0; j < 4; j++) accv[i][j] = 0.0f;
    for (k0 = 0; k0 < D; k0 += DLC_IG_BK) {
        for (i = 0; i < DLC_IG_BK * DLC_IG_BM / DLC_IG_T; i++) {
            int kr = lk + i * (DLC_IG_T / DLC_IG_BM), d = k0 + kr, ch = d / KK, kh = d % KK / g.KW, kw = d % g.KW;
            float v = 0.0f;
            /* A: W_g[m][d] forward; W_g[ch][row][kh][kw] (that is, W^T) for the input gradient */
            As[kr][lm] = m0 + lm >= R || d >= D ? 0.0f
                       : DX ? wg[((size_t)ch * g.Cg + m0 + lm) * KK + d % KK] : wg[(size_t)(m0 + lm) * g.K + d];
            if (col < cols && d < D) {
                if (DX) {
                    int th = a0 - kh * g.dh, tw = b0 - kw * g.dw, oh = th / g.sh, ow = tw / g.sw;
                    if (th >= 0 && tw >= 0 && oh * g.sh == th && ow * g.sw == tw && oh < g.OH && ow < g.OW)
                        v = base[((size_t)ch * g.OH + oh) * g.OW + ow];
                } else {
                    int ih = a0 + kh * g.dh, iw = b0 + kw * g.dw;
                    if (ih >= 0 && ih < g.H && iw >= 0 && iw < g.W) v = base[((size_t)ch * g.H + ih) * g.W + iw];
                }
            }
            Bs[kr][tid % DLC_IG_BN] = v;
        }
        __syncthreads();
        dlc__tile_fma(As, Bs, tx, ty, accv);
        __syncthreads();                /* before the next tile overwrites As and Bs */
    }
    for (i = 0; i < 4; i++) {
        int r = m0 + ty + 16 * i, gr = grp * R + r;
        if (r >= R) continue;
        for (j = 0; j < 4; j++) {
            long long cj = j0 + tx + 16 * j;
            size_t at;
            if (cj >= cols) continue;
            at = ((size_t)(cj / Q) * (DX ? g.C : g.M) + gr) * Q + (size_t)(cj % Q);
            y[at] = acc ? y[at] + accv[i][j] : dlc__epi_apply(ep, gr, b ? accv[i][j] + b[gr] : accv[i][j]);
        }
    }
}
/* The weight gradient: dW_g (Mg x K) += dy_g (Mg x n*P) col_g(x)^T, the
   depth n*P cut into slices of `span` (a multiple of 16) so that a small dW
   still fills the GPU: blockIdx.z is group + G * slice. With one slice the
   epilogue adds into dW; with several, slice s stores its tile in
   out + s*M*K and dlk__conv2d_dw_sum adds the slices in order (no atomics:
   the result does not depend on timing). Loads: each thread reads depth
   j = tid % 16 of the slice (consecutive pixels across a warp, so dy and x
   are read contiguously) for rows and weight positions tid / 16 + 16i. */
static __global__ void dlk__conv2d_dw_implicit(dlc_conv g, const float *x, const float *dy, long long depth, long long span,
                                               int slices_out, float *out) {
    __shared__ float As[DLC_IG_BK][DLC_IG_BM + 1], Bs[DLC_IG_BK][DLC_IG_BN + 1];
    const int KK = g.KH * g.KW, tid = threadIdx.x, tx = tid % 16, ty = tid / 16, kk = tid % DLC_IG_BK, grp = blockIdx.z % g.G;
    const int m0 = blockIdx.y * DLC_IG_BM, d0 = blockIdx.x * DLC_IG_BN;
    const long long s = blockIdx.z / g.G, lo = s * span, hi = lo + span < depth ? lo + span : depth;
    const float *xg = x + (size_t)grp * g.Cg * g.H * g.W, *dyg = dy + (size_t)grp * g.Mg * g.P;
    int dch[4], dkh[4], dkw[4], i, j;
    float accv[4][4];
    long long j0;
    for (i = 0; i < 4; i++) {           /* this thread's weight positions, once */
        int d = d0 + ty + 16 * i;
        dch[i] = d < g.K ? d / KK : -1; dkh[i] = d % KK / g.KW * g.dh; dkw[i] = d % g.KW * g.dw;
    }
    for (i = 0; i < 4; i++) for (j = 0; j < 4; j++) accv[i][j] = 0.0f;
    for (j0 = lo; j0 < hi; j0 += DLC_IG_BK) {
        long long jj = j0 + kk;
        int ok = jj < hi, p = ok ? (int)(jj % g.P) : 0, ih0 = p / g.OW * g.sh - g.ph, iw0 = p % g.OW * g.sw - g.pw;
        size_t nn = ok ? (size_t)(jj / g.P) : 0;
        for (i = 0; i < 4; i++) {
            int r = ty + 16 * i, ih = ih0 + dkh[i], iw = iw0 + dkw[i];
            As[kk][r] = ok && m0 + r < g.Mg ? dyg[(nn * g.M + m0 + r) * g.P + p] : 0.0f;
            Bs[kk][r] = ok && dch[i] >= 0 && ih >= 0 && ih < g.H && iw >= 0 && iw < g.W
                      ? xg[((nn * g.C + dch[i]) * g.H + ih) * g.W + iw] : 0.0f;
        }
        __syncthreads();
        dlc__tile_fma(As, Bs, tx, ty, accv);
        __syncthreads();
    }
    out += slices_out ? (size_t)s * g.M * g.K : 0;
    for (i = 0; i < 4; i++) {
        int r = m0 + ty + 16 * i;
        if (r >= g.Mg) continue;
        for (j = 0; j < 4; j++) {
            int d = d0 + tx + 16 * j;
            size_t at = ((size_t)grp * g.Mg + r) * g.K + d;
            if (d < g.K) out[at] = slices_out ? accv[i][j] : out[at] + accv[i][j];
        }
    }
}
static __global__ void dlk__conv2d_dw_sum(const float *part, int slices, size_t total, float *dw) {
    DLC_FOR(i, total) {
        float v = 0.0f;
        for (int k = 0; k < slices; k++) v += part[(size_t)k * total + i];
        dw[i] += v;
    }
}
/* DL_CUDA_CONV=auto takes the implicit GEMM for 3x3 and 5x5 kernels whose
   tile rows (rows: filters per group forward, input channels per group for
   the input gradient) are 16 or more (fewer waste most of a 64-row tile),
   unless TF32 asks for cuBLAS's tensor cores; =implicit forces it, and the
   default is im2col: the implicit kernel has been checked only in the
   emulation, never timed on a GPU, and becomes the default once
   tests/gpu_check.sh step 3b shows it winning. cols: the batch's output
   (forward) or input pixels. */
static int dlc__conv_implicit(const dlc *c, const dlc_conv *g, int rows, long long cols) {
    int k35 = (g->KH == 3 || g->KH == 5) && (g->KW == 3 || g->KW == 5);
    if (c->conv_algo == DLC_CONV_IM2COL || g->G > 65535 || (rows + DLC_IG_BM - 1) / DLC_IG_BM > 65535 ||
        (cols + DLC_IG_BN - 1) / DLC_IG_BN > 0x7fffffffLL)
        return 0;
    return c->conv_algo == DLC_CONV_IMPLICIT || (k35 && rows >= 16 && !c->tf32);
}
#define DLC_IMPLICIT(DX, g, rows, cols, ...)                                                                     \
    DLC_LAUNCH_BLOCKS(dlk__conv2d_implicit<DX>, (unsigned)(((cols) + DLC_IG_BN - 1) / DLC_IG_BN),               \
                      (unsigned)(((rows) + DLC_IG_BM - 1) / DLC_IG_BM), (unsigned)(g).G, DLC_IG_T, g, __VA_ARGS__)

/* Slices of the weight gradient's depth: enough blocks to fill a GPU (about
   512), each slice at least 512 deep (shallower ones cost more in partial
   tiles than they gain), at most 64 slices. */
static int dlc__conv_dw_run(dlc *c, const dlc_conv *g, const dl_exec *e) {
    long long depth = (long long)e->n * g->P, span;
    unsigned gx = (unsigned)((g->K + DLC_IG_BN - 1) / DLC_IG_BN), gy = (unsigned)((g->Mg + DLC_IG_BM - 1) / DLC_IG_BM);
    long long blocks = (long long)gx * gy * g->G, slices = (512 + blocks - 1) / blocks, most = depth / 512;
    size_t mk = (size_t)g->M * g->K;
    if (slices > most) slices = most;
    if (slices > 64) slices = 64;
    if (slices * g->G > 65535) slices = 65535 / g->G;
    if (slices < 1) slices = 1;
    span = (depth + slices - 1) / slices;
    span = (span + DLC_IG_BK - 1) / DLC_IG_BK * DLC_IG_BK;
    slices = (depth + span - 1) / span;
    if (slices > 1) DLC_TRY(dlc__reserve_big(c, (size_t)slices * mk));
    DLC_LAUNCH_BLOCKS(dlk__conv2d_dw_implicit, gx, gy, (unsigned)(slices * g->G), DLC_IG_T, *g, e->in[0], e->dout, depth, span,
                      slices > 1, slices > 1 ? (float *)c->big : e->dw[0]);
    if (slices > 1) DLC_EACH(dlk__conv2d_dw_sum, mk, (const float *)c->big, (int)slices, mk, e->dw[0]);
    return DL_OK;
}

/* acc: out += the convolution, no bias (conv2d_transpose's backward) */
static int dlc__conv_forward_run(dlc *c, const dl_layer *l, const dl_exec *e, int acc) {
    dlc_conv g = dl_layer_conv_geom(l);
    size_t col_per = (size_t)g.C * g.KH * g.KW * g.P, out_per = (size_t)g.M * g.P, in_per = (size_t)g.C * g.H * g.W;
    int nb = 1, n0;
    float *col, *yt;
    dlc_epi ep;
    DLC_TRY(dlc__epi_of(c, e, &ep));    /* none when acc: conv2d_transpose's backward passes no dl_fused */
    if (dlc__conv_implicit(c, &g, g.Mg, (long long)e->n * g.P)) {
        DLC_IMPLICIT(0, g, g.Mg, (long long)e->n * g.P, e->in[0], e->w[0], l->a.bias && !acc ? e->w[1] : NULL,
                     (long long)e->n * g.P, acc, e->out, ep);
        return DL_OK;
    }
    DLC_TRY(dlc__conv_chunk(c, &g, e->n, &nb));
    col = (float *)c->big;
    yt = col + (size_t)nb * col_per;
    for (n0 = 0; n0 < e->n; n0 += nb) {
        int k = e->n - n0 < nb ? e->n - n0 : nb, kP = k * g.P;
        DLC_EACH(dlk__conv2d_im2col, k * col_per, g, e->in[0] + n0 * in_per, k, k * col_per, col);
        /* Yt_g (Mg x kP) = W_g (Mg x K) col_g (K x kP), every group in one call */
        DLC_TRY(dlc__sgemm(c, 0, 0, g.Mg, kP, g.K, 1.0f, e->w[0], g.K, (long long)g.Mg * g.K, col, kP, (long long)g.K * kP,
                           0.0f, yt, kP, (long long)g.Mg * kP, g.G));
        DLC_EACH(dlk__conv2d_output, k * out_per, yt, l->a.bias && !acc ? e->w[1] : NULL, g.M, g.P, k, acc, k * out_per,
                 e->out + n0 * out_per, ep);
    }
    return DL_OK;
}
static int dlc__conv2d_forward(dlc *c, const dl_layer *l, const dl_exec *e) { return dlc__conv_forward_run(c, l, e, 0); }
static int dlc__conv2d_backward(dlc *c, const dl_layer *l, const dl_exec *e) {
    dlc_conv g = dl_layer_conv_geom(l);
    size_t col_per = (size_t)g.C * g.KH * g.KW * g.P, out_per = (size_t)g.M * g.P, in_per = (size_t)g.C * g.H * g.W;
    int nb = 1, n0, dbias = l->a.bias && e->dw[1], dx_col = e->din[0] != NULL, dw_col = e->dw[0] != NULL;
    long long in_cols = (long long)e->n * g.H * g.W;
    float *col, *dyt;
    if (dx_col && dlc__conv_implicit(c, &g, g.Cg, in_cols)) {
        DLC_IMPLICIT(1, g, g.Cg, in_cols, e->dout, e->w[0], NULL, in_cols, 1, e->din[0], dlc__no_epi());
        dx_col = 0;
    }
    if (dw_col && dlc__conv_implicit(c, &g, g.Mg, g.K)) {
        DLC_TRY(dlc__conv_dw_run(c, &g, e));
        dw_col = 0;
    }
    if (!dx_col && !dw_col) {           /* nothing needs dy transposed: the bias sums it in place */
        if (dbias) DLC_LAUNCH(dlk__bias_planes_backward, (unsigned)g.M, e->dout, e->n, g.M, (size_t)g.P, e->dw[1]);
        return DL_OK;
    }
    DLC_TRY(dlc__conv_chunk(c, &g, e->n, &nb));
    col = (float *)c->big;
    dyt = col + (size_t)nb * col_per;
    for (n0 = 0; n0 < e->n; n0 += nb) {
        int k = e->n - n0 < nb ? e->n - n0 : nb, kP = k * g.P;
        DLC_EACH(dlk__conv2d_dout_t, k * out_per, e->dout + n0 * out_per, g.M, g.P, k, k * out_per, dyt);
        if (dbias) DLC_LAUNCH(dlk__conv2d_bias_backward, (unsigned)g.M, dyt, (size_t)kP, e->dw[1]);
        if (dw_col) {       /* dW_g (Mg x K) += dYt_g (Mg x kP) col_g^T */
            DLC_EACH(dlk__conv2d_im2col, k * col_per, g, e->in[0] + n0 * in_per, k, k * col_per, col);
            DLC_TRY(dlc__sgemm(c, 0, 1, g.Mg, g.K, kP, 1.0f, dyt, kP, (long long)g.Mg * kP, col, kP, (long long)g.K * kP,
                               1.0f, e->dw[0], g.K, (long long)g.Mg * g.K, g.G));
        }
        if (dx_col) {       /* dcol_g (K x kP) = W_g^T dYt_g, gathered into dx */
            DLC_TRY(dlc__sgemm(c, 1, 0, g.K, kP, g.Mg, 1.0f, e->w[0], g.K, (long long)g.Mg * g.K, dyt, kP, (long long)g.Mg * kP,
                               0.0f, col, kP, (long long)g.K * kP, g.G));
            DLC_EACH(dlk__conv2d_col2im, k * in_per, g, col, k, k * in_per, e->din[0] + n0 * in_per);
        }
    }
    return DL_OK;
}

/* ---- conv2d_transpose: the adjoint of conv2d on dl_layer_conv_geom's geometry
   (dl.h's dl__conv2d_transpose_*): forward = conv2d's input gradient of x plus
   the bias; dx = conv2d's forward of dy; dW = conv2d's weight gradient with x
   and dy in each other's place; db = dy summed per output channel. ---- */
static __global__ void dlk__bias_planes(const float *b, int C, size_t P, size_t total, float *y) {
    DLC_FOR(i, total) y[i] += b[i / P % C];
}
static int dlc__conv2d_transpose_forward(dlc *c, const dl_layer *l, const dl_exec *e) {
    float *din[1], *dw[2] = { NULL, NULL };
    dl_exec a = *e;
    size_t P = (size_t)l->shape[1] * l->shape[2], total = (size_t)e->n * l->size;
    din[0] = e->out;
    a.dout = e->in[0]; a.din = din; a.dw = dw;
    DLC_CHECK(cudaMemsetAsync(e->out, 0, total * sizeof(float), c->stream));
    DLC_TRY(dlc__conv2d_backward(c, l, &a));
    if (l->a.bias) DLC_EACH(dlk__bias_planes, total, e->w[1], l->shape[0], P, total, e->out);
    return DL_OK;
}
static int dlc__conv2d_transpose_backward(dlc *c, const dl_layer *l, const dl_exec *e) {
    const float *in[1];
    float *din[1] = { NULL }, *dw[2];
    dl_exec a = *e;
    in[0] = e->dout;
    if (e->din[0]) { a.in = in; a.out = e->din[0]; DLC_TRY(dlc__conv_forward_run(c, l, &a, 1)); }
    if (e->dw[0]) {
        a = *e;
        dw[0] = e->dw[0]; dw[1] = NULL;
        a.in = in; a.dout = e->in[0]; a.din = din; a.dw = dw;
        DLC_TRY(dlc__conv2d_backward(c, l, &a));
    }
    if (l->a.bias && e->dw[1])
        DLC_LAUNCH(dlk__bias_planes_backward, (unsigned)l->shape[0], e->dout, e->n, l->shape[0], (size_t)l->shape[1] * l->shape[2], e->dw[1]);
    return DL_OK;
}

/* ---- pooling geometry ---- */
typedef struct dlc_pool { int H, W, OH, OW, KH, KW, sh, sw, ph, pw, ph1, pw1, dh, dw, count_pad; } dlc_pool;
static dlc_pool dlc__pool_geom(const dl_layer *l) {
    dlc_pool g;
    int C;
    dlc__chw(l->in[0], &C, &g.H, &g.W);
    g.OH = l->shape[1]; g.OW = l->shape[2];
    g.KH = l->a.kernel[0]; g.KW = l->a.kernel[1];
    g.sh = l->a.stride[0]; g.sw = l->a.stride[1];
    g.ph = l->a.pad[0]; g.pw = l->a.pad[1]; g.ph1 = l->a.pad[2]; g.pw1 = l->a.pad[3];
    g.dh = l->a.dilation[0]; g.dw = l->a.dilation[1];
    g.count_pad = l->a.count_include_pad;
    return g;
}
/* The outputs whose (unclipped) window holds input row ih: oh*s - p <= ih < oh*s - p + k. */
static __device__ void dlc__pool_range(int ih, int k, int s, int p, int on, int *lo, int *hi) {
    int t = ih + p - k;
    *lo = t < 0 ? 0 : t / s + 1;
    *hi = (ih + p) / s;
    if (*hi > on - 1) *hi = on - 1;
}

/* ---- maxpool2d: y = max over the (dilated) window (padding is -inf); saved:
   int32 index in the input plane of each output's maximum (the first in scan
   order; NaN wins). (N,C,H,W) -> (N,C,OH,OW) ---- */
static __device__ int dlc__max_window(dlc_pool g, const float *x, size_t o, float *m) {
    int ow = (int)(o % g.OW), oh = (int)(o / g.OW % g.OH), i, j, a, b, best = -1;
    const float *xp = x + o / ((size_t)g.OW * g.OH) * g.H * g.W;
    int h0 = oh * g.sh - g.ph, w0 = ow * g.sw - g.pw;
    *m = -INFINITY;
    for (a = 0; a < g.KH && *m == *m; a++) {
        if ((i = h0 + a * g.dh) < 0 || i >= g.H) continue;
        for (b = 0; b < g.KW; b++) {
            float v;
            if ((j = w0 + b * g.dw) < 0 || j >= g.W) continue;
            v = xp[i * g.W + j];
            if (best < 0 || v > *m || v != v) { *m = v; best = i * g.W + j; }
            if (*m != *m) break;
        }
    }
    return best;
}
static __global__ void dlk__maxpool2d_forward(dlc_pool g, const float *x, size_t total, float *y, int *arg) {
    DLC_FOR(o, total) {
        float m;
        int best = dlc__max_window(g, x, o, &m);
        y[o] = m;
        if (arg) arg[o] = best;
    }
}
/* maxpool2d_argmax: the index of that maximum in the plane, as a float; column-major: w H + h;
   flat: plus the cells of the planes before, from plane0 (dl_exec.first C) on */
static __global__ void dlk__maxpool2d_argmax_forward(dlc_pool g, const float *x, size_t total, int mode, long long plane0, float *y) {
    DLC_FOR(o, total) {
        float m;
        int best = dlc__max_window(g, x, o, &m);
        long long before = (mode & DL_ARGMAX_FLAT) ? (plane0 + (long long)(o / ((size_t)g.OH * g.OW))) * g.H * g.W : 0;
        y[o] = (float)(before + ((mode & DL_ARGMAX_COLUMN_MAJOR) ? best % g.W * g.H + best / g.W : best));
    }
}
/* dx[i] += dy[o] for every output o whose maximum was i, in increasing o */
static __global__ void dlk__maxpool2d_backward(dlc_pool g, const float *dy, const int *arg, size_t total, float *dx) {
    DLC_FOR(i, total) {
        int iw = (int)(i % g.W), ih = (int)(i / g.W % g.H), self = ih * g.W + iw, oh0, oh1, ow0, ow1, oh, ow;
        size_t plane = i / ((size_t)g.W * g.H) * g.OH * g.OW;
        float acc = dx[i];
        dlc__pool_range(ih, (g.KH - 1) * g.dh + 1, g.sh, g.ph, g.OH, &oh0, &oh1);   /* the dilated extent: a superset */
        dlc__pool_range(iw, (g.KW - 1) * g.dw + 1, g.sw, g.pw, g.OW, &ow0, &ow1);
        for (oh = oh0; oh <= oh1; oh++)
            for (ow = ow0; ow <= ow1; ow++) {
                size_t o = plane + (size_t)oh * g.OW + ow;
                if (arg[o] == self) acc += dy[o];
            }
        dx[i] = acc;
    }
}
static int dlc__maxpool2d_forward(dlc *c, const dl_layer *l, const dl_exec *e) {
    size_t total = (size_t)e->n * l->size;
    DLC_EACH(dlk__maxpool2d_forward, total, dlc__pool_geom(l), e->in[0], total, e->out, (int *)e->saved);
    return DL_OK;
}
static int dlc__maxpool2d_backward(dlc *c, const dl_layer *l, const dl_exec *e) {
    size_t total = (size_t)e->n * l->in[0]->size;
    if (!e->din[0]) return DL_OK;
    DLC_EACH(dlk__maxpool2d_backward, total, dlc__pool_geom(l), e->dout, (const int *)e->saved, total, e->din[0]);
    return DL_OK;
}
static int dlc__maxpool2d_argmax_forward(dlc *c, const dl_layer *l, const dl_exec *e) {
    size_t total = (size_t)e->n * l->size;
    DLC_EACH(dlk__maxpool2d_argmax_forward, total, dlc__pool_geom(l), e->in[0], total, l->a.mode, (long long)e->first * l->shape[0], e->out);
    return DL_OK;
}
static int dlc__maxpool2d_argmax_backward(dlc *c, const dl_layer *l, const dl_exec *e) { (void)c; (void)l; (void)e; return DL_OK; }   /* piecewise constant */

/* ---- avgpool2d: y = mean over the window, clipped to the padded input; the
   divisor counts the padding or not (dl.h's dl__avgpool_window) ---- */
static __device__ int dlc__avgpool_window(const dlc_pool *g, int oh, int ow, int *h0, int *h1, int *w0, int *w1) {
    int hs = oh * g->sh - g->ph, ws = ow * g->sw - g->pw;
    int he = hs + g->KH, we = ws + g->KW;
    if (he > g->H + g->ph1) he = g->H + g->ph1;
    if (we > g->W + g->pw1) we = g->W + g->pw1;
    *h0 = hs < 0 ? 0 : hs; *w0 = ws < 0 ? 0 : ws;
    *h1 = he > g->H ? g->H : he; *w1 = we > g->W ? g->W : we;
    return g->count_pad ? (he - hs) * (we - ws) : (*h1 - *h0) * (*w1 - *w0);
}
static __global__ void dlk__avgpool2d_forward(dlc_pool g, const float *x, size_t total, float *y) {
    DLC_FOR(o, total) {
        int ow = (int)(o % g.OW), oh = (int)(o / g.OW % g.OH), i, j, h0, h1, w0, w1;
        const float *xp = x + o / ((size_t)g.OW * g.OH) * g.H * g.W;
        int count = dlc__avgpool_window(&g, oh, ow, &h0, &h1, &w0, &w1);
        float s = 0;
        for (i = h0; i < h1; i++) for (j = w0; j < w1; j++) s += xp[i * g.W + j];
        y[o] = s / (float)count;
    }
}
static __global__ void dlk__avgpool2d_backward(dlc_pool g, const float *dy, size_t total, float *dx) {
    DLC_FOR(i, total) {
        int iw = (int)(i % g.W), ih = (int)(i / g.W % g.H), oh0, oh1, ow0, ow1, oh, ow, h0, h1, w0, w1;
        size_t plane = i / ((size_t)g.W * g.H) * g.OH * g.OW;
        float acc = dx[i];
        dlc__pool_range(ih, g.KH, g.sh, g.ph, g.OH, &oh0, &oh1);
        dlc__pool_range(iw, g.KW, g.sw, g.pw, g.OW, &ow0, &ow1);
        for (oh = oh0; oh <= oh1; oh++)
            for (ow = ow0; ow <= ow1; ow++) {
                int count = dlc__avgpool_window(&g, oh, ow, &h0, &h1, &w0, &w1);
                if (ih >= h0 && ih < h1 && iw >= w0 && iw < w1) acc += dy[plane + (size_t)oh * g.OW + ow] / (float)count;
            }
        dx[i] = acc;
    }
}
static int dlc__avgpool2d_forward(dlc *c, const dl_layer *l, const dl_exec *e) {
    size_t total = (size_t)e->n * l->size;
    DLC_EACH(dlk__avgpool2d_forward, total, dlc__pool_geom(l), e->in[0], total, e->out);
    return DL_OK;
}
static int dlc__avgpool2d_backward(dlc *c, const dl_layer *l, const dl_exec *e) {
    size_t total = (size_t)e->n * l->in[0]->size;
    if (!e->din[0]) return DL_OK;
    DLC_EACH(dlk__avgpool2d_backward, total, dlc__pool_geom(l), e->dout, total, e->din[0]);
    return DL_OK;
}

/* ---- global_avgpool: y[n,c] = mean_s x[n,c,s]; (N,C,S) -> (N,C); one block per (n,c) ---- */
static __global__ void dlk__global_avgpool_forward(const float *x, int S, float *y) {
    const float *r = x + (size_t)blockIdx.x * S;
    double s = 0;
    for (int k = threadIdx.x; k < S; k += blockDim.x) s += r[k];
    s = dlc__block_sum(s);
    if (threadIdx.x == 0) y[blockIdx.x] = (float)s / (float)S;
}
static __global__ void dlk__global_avgpool_backward(const float *dy, int S, size_t total, float *dx) {
    DLC_FOR(i, total) dx[i] += dy[i / S] / (float)S;
}
static int dlc__global_avgpool_forward(dlc *c, const dl_layer *l, const dl_exec *e) {
    int C = l->shape[0], S = l->in[0]->size / C;
    DLC_LAUNCH(dlk__global_avgpool_forward, (unsigned)(e->n * C), e->in[0], S, e->out);
    return DL_OK;
}
static int dlc__global_avgpool_backward(dlc *c, const dl_layer *l, const dl_exec *e) {
    int C = l->shape[0], S = l->in[0]->size / C;
    size_t total = (size_t)e->n * l->in[0]->size;
    if (!e->din[0]) return DL_OK;
    DLC_EACH(dlk__global_avgpool_backward, total, e->dout, S, total, e->din[0]);
    return DL_OK;
}

/* ---- global_maxpool: y[n,c] = max_s x[n,c,s]; saved: int32 index s of the
   maximum (the first; NaN wins). One thread per (n,c). ---- */
static __global__ void dlk__global_maxpool_forward(const float *x, int S, size_t total, float *y, int *arg) {
    DLC_FOR(o, total) {
        const float *r = x + o * S;
        int best = 0, s;
        for (s = 1; s < S && r[best] == r[best]; s++) if (r[s] > r[best] || r[s] != r[s]) best = s;
        y[o] = r[best];
        if (arg) arg[o] = best;
    }
}
static __global__ void dlk__global_maxpool_backward(const float *dy, const int *arg, int S, size_t total, float *dx) {
    DLC_FOR(o, total) dx[o * S + arg[o]] += dy[o];
}
static int dlc__global_maxpool_forward(dlc *c, const dl_layer *l, const dl_exec *e) {
    int C = l->shape[0], S = l->in[0]->size / C;
    size_t total = (size_t)e->n * C;
    DLC_EACH(dlk__global_maxpool_forward, total, e->in[0], S, total, e->out, (int *)e->saved);
    return DL_OK;
}
static int dlc__global_maxpool_backward(dlc *c, const dl_layer *l, const dl_exec *e) {
    int C = l->shape[0], S = l->in[0]->size / C;
    size_t total = (size_t)e->n * C;
    if (!e->din[0]) return DL_OK;
    DLC_EACH(dlk__global_maxpool_backward, total, e->dout, (const int *)e->saved, S, total, e->din[0]);
    return DL_OK;
}

/* ---- batchnorm over channel c (dim 0) of (N,C,S); w = gamma, beta,
   running_mean, running_var; saved = mean[C], invstd[C]. One block per
   channel computes the statistics in double (the CPU's formulas), updates the
   running ones (variance unbiased) and leaves scale and shift in ss[2C].
   Synchronised (e->allreduce_sum): the sums are added over the ranks
   between the passes, in st = sums[C], sample count, centred squares[C]
   (dl.h's layout), and the statistics come from there. ---- */
/* out[c] = sum of x over channel c, out[C] = N; or, given st, the sum of
   squares about st's mean */
static __global__ void dlk__batchnorm_sums(const float *x, int N, int C, int S, const float *st, float *out) {
    int c = blockIdx.x;
    size_t M = (size_t)N * S, k;
    double s = 0;
    float mean = st ? (float)(st[c] / ((double)st[C] * S)) : 0.0f;
    for (k = threadIdx.x; k < M; k += blockDim.x) {
        float v = x[((k / S) * C + c) * S + k % S] - mean;
        s += st ? (double)v * v : (double)v;
    }
    s = dlc__block_sum(s);
    if (threadIdx.x == 0) {
        out[c] = (float)s;
        if (!st && c == 0) out[C] = (float)N;
    }
}
static __global__ void dlk__batchnorm_stats(const float *x, int N, int C, int S, int train, float eps, float momentum,
                                            const float *gamma, const float *beta, float *rmean, float *rvar,
                                            float *saved, const float *st, float *ss) {
    int c = blockIdx.x;
    size_t M = (size_t)N * S, k;
    double mean, var;
    if (st) {
        M = (size_t)st[C] * S;
        mean = st[c] / (double)M;
        var = st[C + 1 + c] / (double)M;
    } else if (train) {
        double sum = 0, sq = 0;
        for (k = threadIdx.x; k < M; k += blockDim.x) sum += x[((k / S) * C + c) * S + k % S];
        mean = dlc__block_sum(sum) / (double)M;
        for (k = threadIdx.x; k < M; k += blockDim.x) {
            double d = (double)x[((k / S) * C + c) * S + k % S] - mean;
            sq += d * d;
        }
        var = dlc__block_sum(sq) / (double)M;
    } else {
        mean = rmean[c];
        var = rvar[c];
    }
    if (threadIdx.x == 0) {
        float inv, sc;
        if (train) {
            rmean[c] = (float)((1.0 - momentum) * rmean[c] + momentum * mean);
            rvar[c] = (float)((1.0 - momentum) * rvar[c] + momentum * var * (double)M / (double)(M - 1));
        }
        inv = (float)(1.0 / sqrt(var + eps));
        if (saved) { saved[c] = (float)mean; saved[C + c] = inv; }
        sc = gamma[c] * inv;
        ss[c] = sc;
        ss[C + c] = beta[c] - (float)mean * sc;
    }
}
static __global__ void dlk__batchnorm_apply(const float *x, int C, int S, size_t total, const float *ss, float *y) {
    DLC_FOR(i, total) {
        int c = (int)(i / S % C);
        y[i] = x[i] * ss[c] + ss[C + c];
    }
}
/* dgamma += sum dy*xhat, dbeta += sum dy; k[2C] = the batch means of both (0
   in eval); sums: k = the sums themselves and k[2C] = N, for the ranks to add */
static __global__ void dlk__batchnorm_backward_stats(const float *x, const float *dy, int N, int C, int S, int train,
                                                     int sums, const float *saved, float *dgamma, float *dbeta, float *k) {
    int c = blockIdx.x;
    size_t M = (size_t)N * S, j;
    float mean = saved[c], inv = saved[C + c];
    double sdy = 0, sdyx = 0;
    for (j = threadIdx.x; j < M; j += blockDim.x) {
        size_t i = ((j / S) * C + c) * S + j % S;
        sdy += dy[i];
        sdyx += (double)dy[i] * ((x[i] - mean) * inv);
    }
    sdy = dlc__block_sum(sdy);
    sdyx = dlc__block_sum(sdyx);
    if (threadIdx.x == 0) {
        if (dgamma) dgamma[c] += (float)sdyx;
        if (dbeta) dbeta[c] += (float)sdy;
        if (sums) {
            k[c] = (float)sdy;
            k[C + c] = (float)sdyx;
            if (c == 0) k[2 * C] = (float)N;
        } else {
            k[c] = train ? (float)(sdy / (double)M) : 0.0f;
            k[C + c] = train ? (float)(sdyx / (double)M) : 0.0f;
        }
    }
}
/* The ranks' added sums (k, with the count at k[2C]) -> their means */
static __global__ void dlk__batchnorm_means(int C, int S, float *k) {
    DLC_FOR(i, 2 * (size_t)C) k[i] = (float)(k[i] / ((double)k[2 * C] * S));
}
/* dx += gamma*invstd * (dy - mean(dy) - xhat * mean(dy*xhat)) */
static __global__ void dlk__batchnorm_backward_dx(const float *x, const float *dy, int C, int S, size_t total,
                                                  const float *saved, const float *gamma, const float *k, float *dx) {
    DLC_FOR(i, total) {
        int c = (int)(i / S % C);
        float mean = saved[c], inv = saved[C + c], g = gamma[c], k1 = k[c], k2 = k[C + c];
        dx[i] += g * inv * (dy[i] - k1 - (x[i] - mean) * inv * k2);
    }
}
static int dlc__batchnorm_forward(dlc *c, const dl_layer *l, const dl_exec *e) {
    int C = l->shape[0], S = l->size / C, sync = e->train && e->allreduce_sum;
    size_t total = (size_t)e->n * l->size;
    float *ss, *st = NULL;
    DLC_TRY(dlc__reserve_small(c, (4 * (size_t)C + 1) * sizeof(float)));
    ss = (float *)c->small;
    if (sync) {
        st = ss + 2 * C;
        DLC_LAUNCH(dlk__batchnorm_sums, (unsigned)C, e->in[0], e->n, C, S, (const float *)NULL, st);
        DLC_TRY(e->allreduce_sum(e, st, (size_t)C + 1));
        DLC_LAUNCH(dlk__batchnorm_sums, (unsigned)C, e->in[0], e->n, C, S, (const float *)st, st + C + 1);
        DLC_TRY(e->allreduce_sum(e, st + C + 1, (size_t)C));
    }
    DLC_LAUNCH(dlk__batchnorm_stats, (unsigned)C, e->in[0], e->n, C, S, e->train, l->a.eps, l->a.momentum,
               e->w[0], e->w[1], e->w[2], e->w[3], e->saved, (const float *)st, ss);
    DLC_EACH(dlk__batchnorm_apply, total, e->in[0], C, S, total, ss, e->out);
    return DL_OK;
}
static int dlc__batchnorm_backward(dlc *c, const dl_layer *l, const dl_exec *e) {
    int C = l->shape[0], S = l->size / C, sync = e->train && e->allreduce_sum && e->din[0];   /* as dl.h's */
    size_t total = (size_t)e->n * l->size;
    float *k;
    if (!e->din[0] && !e->dw[0] && !e->dw[1]) return DL_OK;
    DLC_TRY(dlc__reserve_small(c, (2 * (size_t)C + 1) * sizeof(float)));
    k = (float *)c->small;
    DLC_LAUNCH(dlk__batchnorm_backward_stats, (unsigned)C, e->in[0], e->dout, e->n, C, S, e->train, sync, e->saved,
               e->dw[0], e->dw[1], k);
    if (sync) {
        DLC_TRY(e->allreduce_sum(e, k, 2 * (size_t)C + 1));
        DLC_EACH(dlk__batchnorm_means, 2 * (size_t)C, C, S, k);
    }
    if (e->din[0]) DLC_EACH(dlk__batchnorm_backward_dx, total, e->in[0], e->dout, C, S, total, e->saved, e->w[0], k, e->din[0]);
    return DL_OK;
}

/* ---- dropout: y = x * keep / (1 - p) in training, y = x in eval ---- */
static __device__ int dlc__dropout_keep(unsigned long long seed, unsigned long long i, float p) {   /* dl_dropout_keep */
    unsigned long long z = seed + (i + 1) * 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    z ^= z >> 31;
    return (float)(z >> 40) * (1.0f / 16777216.0f) >= p;
}
static __global__ void dlk__dropout_forward(const float *x, size_t total, int train, unsigned long long seed, float p,
                                            float scale, float *y) {
    DLC_FOR(i, total) y[i] = !train ? x[i] : dlc__dropout_keep(seed, i, p) ? x[i] * scale : 0.0f;
}
static __global__ void dlk__dropout_backward(const float *dy, size_t total, int train, unsigned long long seed, float p,
                                             float scale, float *dx) {
    DLC_FOR(i, total) dx[i] += !train ? dy[i] : dlc__dropout_keep(seed, i, p) ? dy[i] * scale : 0.0f;
}
static int dlc__dropout_forward(dlc *c, const dl_layer *l, const dl_exec *e) {
    size_t total = (size_t)e->n * l->size;
    float p = l->a.alpha, scale = 1.0f / (1.0f - p);
    DLC_EACH(dlk__dropout_forward, total, e->in[0], total, e->train, (unsigned long long)e->seed, p, scale, e->out);
    return DL_OK;
}
static int dlc__dropout_backward(dlc *c, const dl_layer *l, const dl_exec *e) {
    size_t total = (size_t)e->n * l->size;
    float p = l->a.alpha, scale = 1.0f / (1.0f - p);
    if (!e->din[0]) return DL_OK;
    DLC_EACH(dlk__dropout_backward, total, e->dout, total, e->train, (unsigned long long)e->seed, p, scale, e->din[0]);
    return DL_OK;
}

/* ---- reshape: a view; the executor aliases its buffers to its input's ---- */

/* ---- elementwise activations: forward from x, backward from x or y ---- */
static __device__ void dlc__unused(float, float, float, float, int) {}   /* each formula reads only some of a, b, m, x, y */
/* a, b: the layer's alpha and beta; m: gelu's approximate */
#define DLC_ELEMENTWISE(name, fwd, bwd)                                                               \
    static __global__ void dlk__##name##_forward(const float *in, size_t total, float a, float b, int m, float *out) { \
        DLC_FOR(i, total) { float x = in[i]; dlc__unused(a, b, x, x, m); out[i] = (fwd); }             \
    }                                                                                                 \
    static __global__ void dlk__##name##_backward(const float *in, const float *out, const float *dout, \
                                                  size_t total, float a, float b, int m, float *din) { \
        DLC_FOR(i, total) {                                                                           \
            float x = in[i], y = out[i], dy = dout[i];                                                \
            dlc__unused(a, b, x, y, m);                                                               \
            din[i] += (bwd);                                                                          \
        }                                                                                             \
    }
DLC_ELEMENTWISE(relu, x > 0 ? x : 0.0f, y > 0 ? dy : 0.0f)                    /* max(0, x); backward from y (DL__F_BWD_NO_IN) */
DLC_ELEMENTWISE(leaky_relu, x > 0 ? x : a * x, x > 0 ? dy : a * dy)           /* x > 0 ? x : a x */
DLC_ELEMENTWISE(elu, x > 0 ? x : a * expm1f(x), x > 0 ? dy : dy * (y + a))    /* x > 0 ? x : a (e^x - 1) */
DLC_ELEMENTWISE(sigmoid, 1.0f / (1.0f + expf(-x)), dy * y * (1.0f - y))       /* 1 / (1 + e^-x) */
DLC_ELEMENTWISE(tanh, tanhf(x), dy * (1.0f - y * y))                          /* tanh x */

/* ---- the activations of exported models: dl.h's formulas and constants ---- */
static __device__ float dlc__clip_value(float x, float lo, float hi) { return x < lo ? lo : x > hi ? hi : x; }
static __device__ float dlc__hard_swish_value(float x, float a, float b) {
    float t = a * x + b;
    return t <= 0.0f ? 0.0f : t >= 1.0f ? x : x * t;
}
static __device__ float dlc__gelu_erf(float x) { return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f)); }
static __device__ float dlc__gelu_erf_grad(float x) {
    return 0.5f * (1.0f + erff(x * 0.70710678118654752f)) + x * 0.39894228040143268f * expf(-0.5f * x * x);
}
static __device__ float dlc__gelu_tanh(float x) { return 0.5f * x * (1.0f + tanhf(0.79788456080286536f * (x + 0.044715f * x * x * x))); }
static __device__ float dlc__gelu_tanh_grad(float x) {
    float t = tanhf(0.79788456080286536f * (x + 0.044715f * x * x * x));
    return 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * 0.79788456080286536f * (1.0f + 3.0f * 0.044715f * x * x);
}
static __device__ float dlc__sigmoid_value(float x) { return 1.0f / (1.0f + expf(-x)); }
DLC_ELEMENTWISE(clip, dlc__clip_value(x, a, b), x > a && x < b ? dy : 0.0f)
DLC_ELEMENTWISE(hard_sigmoid, dlc__clip_value(a * x + b, 0.0f, 1.0f), a * x + b > 0.0f && a * x + b < 1.0f ? a * dy : 0.0f)
DLC_ELEMENTWISE(hard_swish, dlc__hard_swish_value(x, a, b),
                a * x + b <= 0.0f ? 0.0f : a * x + b >= 1.0f ? dy : dy * (2.0f * a * x + b))
DLC_ELEMENTWISE(selu, x > 0 ? b * x : b * a * expm1f(x), x > 0 ? b * dy : dy * (y + b * a))
DLC_ELEMENTWISE(gelu, m ? dlc__gelu_tanh(x) : dlc__gelu_erf(x), dy * (m ? dlc__gelu_tanh_grad(x) : dlc__gelu_erf_grad(x)))
DLC_ELEMENTWISE(silu, x * dlc__sigmoid_value(x), dy * dlc__sigmoid_value(x) * (1.0f + x * (1.0f - dlc__sigmoid_value(x))))
DLC_ELEMENTWISE(softplus, x > 20.0f ? x : log1pf(expf(x)), dy * dlc__sigmoid_value(x))
DLC_ELEMENTWISE(sqrt, sqrtf(x), dy * 0.5f / sqrtf(x))

#define DLC_ELEMENTWISE_HOST(name)                                                                    \
    static int dlc__##name##_forward(dlc *c, const dl_layer *l, const dl_exec *e) {                   \
        size_t total = (size_t)e->n * l->size;                                                        \
        DLC_EACH(dlk__##name##_forward, total, e->in[0], total, l->a.alpha, l->a.beta, l->a.approximate, e->out); \
        return DL_OK;                                                                                 \
    }                                                                                                 \
    static int dlc__##name##_backward(dlc *c, const dl_layer *l, const dl_exec *e) {                  \
        size_t total = (size_t)e->n * l->size;                                                        \
        if (!e->din[0]) return DL_OK;                                                                 \
        DLC_EACH(dlk__##name##_backward, total, e->in[0], e->out, e->dout, total, l->a.alpha, l->a.beta,  \
                 l->a.approximate, e->din[0]);                                                        \
        return DL_OK;                                                                                 \
    }
DLC_ELEMENTWISE_HOST(relu)
DLC_ELEMENTWISE_HOST(leaky_relu)
DLC_ELEMENTWISE_HOST(elu)
DLC_ELEMENTWISE_HOST(sigmoid)
DLC_ELEMENTWISE_HOST(tanh)
DLC_ELEMENTWISE_HOST(clip)
DLC_ELEMENTWISE_HOST(hard_sigmoid)
DLC_ELEMENTWISE_HOST(hard_swish)
DLC_ELEMENTWISE_HOST(selu)
DLC_ELEMENTWISE_HOST(gelu)
DLC_ELEMENTWISE_HOST(silu)
DLC_ELEMENTWISE_HOST(softplus)
DLC_ELEMENTWISE_HOST(sqrt)

/* ---- prelu: y = x > 0 ? x : a[c] x, one slope per channel (dim 0) ---- */
static __global__ void dlk__prelu_forward(const float *x, const float *a, int C, int S, size_t total, float *y) {
    DLC_FOR(i, total) {
        float v = x[i];
        y[i] = v > 0 ? v : a[i / S % C] * v;
    }
}
static __global__ void dlk__prelu_backward_dx(const float *x, const float *dy, const float *a, int C, int S, size_t total,
                                              float *dx) {
    DLC_FOR(i, total) dx[i] += x[i] > 0 ? dy[i] : a[i / S % C] * dy[i];
}
/* da[c] += sum of dy*x where x <= 0; one block per channel */
static __global__ void dlk__prelu_backward_da(const float *x, const float *dy, int N, int C, int S, float *da) {
    int c = blockIdx.x;
    size_t M = (size_t)N * S, j;
    double s = 0;
    for (j = threadIdx.x; j < M; j += blockDim.x) {
        size_t i = ((j / S) * C + c) * S + j % S;
        if (!(x[i] > 0)) s += dy[i] * x[i];
    }
    s = dlc__block_sum(s);
    if (threadIdx.x == 0) da[c] += (float)s;
}
static int dlc__prelu_forward(dlc *c, const dl_layer *l, const dl_exec *e) {
    int C = l->shape[0], S = l->size / C;
    size_t total = (size_t)e->n * l->size;
    DLC_EACH(dlk__prelu_forward, total, e->in[0], e->w[0], C, S, total, e->out);
    return DL_OK;
}
static int dlc__prelu_backward(dlc *c, const dl_layer *l, const dl_exec *e) {
    int C = l->shape[0], S = l->size / C;
    size_t total = (size_t)e->n * l->size;
    if (e->din[0]) DLC_EACH(dlk__prelu_backward_dx, total, e->in[0], e->dout, e->w[0], C, S, total, e->din[0]);
    if (e->dw[0]) DLC_LAUNCH(dlk__prelu_backward_da, (unsigned)C, e->in[0], e->dout, e->n, C, S, e->dw[0]);
    return DL_OK;
}

/* ---- softmax over channels: y_c = e^(x_c - max) / sum_k e^(x_k - max) at each
   position s of (N,C,S); dx_c = y_c (dy_c - sum_k dy_k y_k). One thread per (n,s). ---- */
static __global__ void dlk__softmax_forward(const float *x, int C, int S, size_t total, float *y) {
    DLC_FOR(t, total) {
        size_t o = t / S * (size_t)C * S + t % S;
        const float *xi = x + o;
        float *yi = y + o, m = xi[0], sum = 0;
        int c;
        for (c = 1; c < C; c++) if (xi[(size_t)c * S] > m) m = xi[(size_t)c * S];
        for (c = 0; c < C; c++) { yi[(size_t)c * S] = expf(xi[(size_t)c * S] - m); sum += yi[(size_t)c * S]; }
        for (c = 0; c < C; c++) yi[(size_t)c * S] /= sum;
    }
}
static __global__ void dlk__softmax_backward(const float *y, const float *dy, int C, int S, size_t total, float *dx) {
    DLC_FOR(t, total) {
        size_t o = t / S * (size_t)C * S + t % S;
        float dot = 0;
        int c;
        for (c = 0; c < C; c++) dot += dy[o + (size_t)c * S] * y[o + (size_t)c * S];
        for (c = 0; c < C; c++) dx[o + (size_t)c * S] += y[o + (size_t)c * S] * (dy[o + (size_t)c * S] - dot);
    }
}
static int dlc__softmax_forward(dlc *c, const dl_layer *l, const dl_exec *e) {
    int C = l->shape[0], S = l->size / C;
    size_t total = (size_t)e->n * S;
    DLC_EACH(dlk__softmax_forward, total, e->in[0], C, S, total, e->out);
    return DL_OK;
}
static int dlc__softmax_backward(dlc *c, const dl_layer *l, const dl_exec *e) {
    int C = l->shape[0], S = l->size / C;
    size_t total = (size_t)e->n * S;
    if (!e->din[0]) return DL_OK;
    DLC_EACH(dlk__softmax_backward, total, e->out, e->dout, C, S, total, e->din[0]);
    return DL_OK;
}

/* ---- log_softmax over channels: y_c = x_c - max - log sum_k e^(x_k - max);
   dx_c += dy_c - e^(y_c) sum_k dy_k ---- */
static __global__ void dlk__log_softmax_forward(const float *x, int C, int S, size_t total, float *y) {
    DLC_FOR(t, total) {
        size_t o = t / S * (size_t)C * S + t % S;
        const float *xi = x + o;
        float *yi = y + o, m = xi[0], sum = 0, lse;
        int c;
        for (c = 1; c < C; c++) if (xi[(size_t)c * S] > m) m = xi[(size_t)c * S];
        for (c = 0; c < C; c++) sum += expf(xi[(size_t)c * S] - m);
        lse = m + logf(sum);
        for (c = 0; c < C; c++) yi[(size_t)c * S] = xi[(size_t)c * S] - lse;
    }
}
static __global__ void dlk__log_softmax_backward(const float *y, const float *dy, int C, int S, size_t total, float *dx) {
    DLC_FOR(t, total) {
        size_t o = t / S * (size_t)C * S + t % S;
        float sum = 0;
        int c;
        for (c = 0; c < C; c++) sum += dy[o + (size_t)c * S];
        for (c = 0; c < C; c++) dx[o + (size_t)c * S] += dy[o + (size_t)c * S] - expf(y[o + (size_t)c * S]) * sum;
    }
}
static int dlc__log_softmax_forward(dlc *c, const dl_layer *l, const dl_exec *e) {
    int C = l->shape[0], S = l->size / C;
    size_t total = (size_t)e->n * S;
    DLC_EACH(dlk__log_softmax_forward, total, e->in[0], C, S, total, e->out);
    return DL_OK;
}
static int dlc__log_softmax_backward(dlc *c, const dl_layer *l, const dl_exec *e) {
    int C = l->shape[0], S = l->size / C;
    size_t total = (size_t)e->n * S;
    if (!e->din[0]) return DL_OK;
    DLC_EACH(dlk__log_softmax_backward, total, e->out, e->dout, C, S, total, e->din[0]);
    return DL_OK;
}

/* ---- add: y = sum_i x_i (in input order);  dx_i += dy ---- */
typedef struct dlc_inputs { const float *p[64]; } dlc_inputs;
static __global__ void dlk__add_forward(dlc_inputs in, int n_in, size_t total, float *y) {
    DLC_FOR(j, total) {
        float s = in.p[0][j];
        for (int i = 1; i < n_in; i++) s += in.p[i][j];
        y[j] = s;
    }
}
static __global__ void dlk__accumulate(const float *dy, size_t total, float *dx) { DLC_FOR(j, total) dx[j] += dy[j]; }
static int dlc__bcast_forward(dlc *c, const dl_layer *l, const dl_exec *e);
static int dlc__bcast_backward(dlc *c, const dl_layer *l, const dl_exec *e);
static int dlc__same_shapes(const dl_layer *l);
static int dlc__add_forward(dlc *c, const dl_layer *l, const dl_exec *e) {
    size_t total = (size_t)e->n * l->size;
    dlc_inputs in;
    int i;
    if (!dlc__same_shapes(l)) return dlc__bcast_forward(c, l, e);
    if (l->n_in > 64) return dlc__fail(c, DL_ERR_UNSUPPORTED, "add: %d inputs; at most 64", l->n_in);
    for (i = 0; i < l->n_in; i++) in.p[i] = e->in[i];
    DLC_EACH(dlk__add_forward, total, in, l->n_in, total, e->out);
    return DL_OK;
}
static int dlc__add_backward(dlc *c, const dl_layer *l, const dl_exec *e) {
    size_t total = (size_t)e->n * l->size;
    int i;
    if (!dlc__same_shapes(l)) return dlc__bcast_backward(c, l, e);
    for (i = 0; i < l->n_in; i++)       /* one launch each: two inputs may share a gradient buffer */
        if (e->din[i]) DLC_EACH(dlk__accumulate, total, e->dout, total, e->din[i]);
    return DL_OK;
}

/* ---- mul: y = a * b;  da += dy b, db += dy a ---- */
static __global__ void dlk__mul_forward(const float *a, const float *b, size_t total, float *y) {
    DLC_FOR(j, total) y[j] = a[j] * b[j];
}
static __global__ void dlk__mul_backward(const float *a, const float *b, const float *dy, size_t total, float *da, float *db) {
    DLC_FOR(j, total) {                 /* da and db may be the same buffer: one thread does both */
        if (da) da[j] += dy[j] * b[j];
        if (db) db[j] += dy[j] * a[j];
    }
}
static int dlc__mul_forward(dlc *c, const dl_layer *l, const dl_exec *e) {
    size_t total = (size_t)e->n * l->size;
    if (!dlc__same_shapes(l)) return dlc__bcast_forward(c, l, e);
    DLC_EACH(dlk__mul_forward, total, e->in[0], e->in[1], total, e->out);
    return DL_OK;
}
static int dlc__mul_backward(dlc *c, const dl_layer *l, const dl_exec *e) {
    size_t total = (size_t)e->n * l->size;
    if (!dlc__same_shapes(l)) return dlc__bcast_backward(c, l, e);
    if (!e->din[0] && !e->din[1]) return DL_OK;
    DLC_EACH(dlk__mul_backward, total, e->in[0], e->in[1], e->dout, total, e->din[0], e->din[1]);
    return DL_OK;
}

/* ---- broadcasting add, sub, mul, div (dl.h's dl__bcast_*): inputs read at
   the output position, a size-1 axis at index 0. Backward gathers: one thread
   per element of an input sums the gradient of every output that read it. ---- */
typedef struct dlc_bcast { const float *p[64]; int d[64][3]; int size[64]; int C, H, W, size_out, n_in, op; } dlc_bcast;
static dlc_bcast dlc__bcast_geom(const dl_layer *l, const dl_exec *e) {
    dlc_bcast g;
    int i, k;
    memset(&g, 0, sizeof g);
    dlc__chw(l, &g.C, &g.H, &g.W);
    g.size_out = l->size; g.n_in = l->n_in; g.op = l->op;
    for (i = 0; i < l->n_in; i++) {
        int full[3] = { 1, 1, 1 }, off = l->ndim - l->in[i]->ndim;
        for (k = 0; k < l->in[i]->ndim; k++) full[off + k] = l->in[i]->shape[k];
        g.d[i][0] = full[0];
        g.d[i][1] = l->ndim > 1 ? full[1] : 1;
        g.d[i][2] = l->ndim > 2 ? full[2] : 1;
        g.p[i] = e->in[i];
        g.size[i] = l->in[i]->size;
    }
    return g;
}
static __device__ size_t dlc__bcast_at(const int *d, int c, int h, int w) {
    return ((size_t)(d[0] > 1 ? c : 0) * d[1] + (d[1] > 1 ? h : 0)) * d[2] + (d[2] > 1 ? w : 0);
}
static __device__ float dlc__binary(int op, float a, float b) {
    return op == DL_OP_SUB ? a - b : op == DL_OP_MUL ? a * b : op == DL_OP_DIV ? a / b : a + b;
}
static __device__ float dlc__binary_grad(int op, int which, float a, float b, float dy) {
    if (op == DL_OP_ADD) return dy;
    if (op == DL_OP_SUB) return which ? -dy : dy;
    if (op == DL_OP_MUL) return which ? dy * a : dy * b;
    return which ? -dy * a / (b * b) : dy / b;
}
static __global__ void dlk__bcast_forward(dlc_bcast g, size_t total, float *y) {
    DLC_FOR(o, total) {
        int w = (int)(o % g.W), h = (int)(o / g.W % g.H), c = (int)(o / ((size_t)g.W * g.H) % g.C);
        size_t n = o / g.size_out;
        float v = g.p[0][n * g.size[0] + dlc__bcast_at(g.d[0], c, h, w)];
        for (int i = 1; i < g.n_in; i++) v = dlc__binary(g.op, v, g.p[i][n * g.size[i] + dlc__bcast_at(g.d[i], c, h, w)]);
        y[o] = v;
    }
}
/* din_i[j] += the gradient through every output position that read element j of input `which` */
static __global__ void dlk__bcast_backward(dlc_bcast g, int which, const float *dy, size_t total, float *dx) {
    DLC_FOR(j, total) {
        const int *d = g.d[which];
        int wi = (int)(j % d[2]), hi = (int)(j / d[2] % d[1]), ci = (int)(j / ((size_t)d[2] * d[1]) % d[0]);
        size_t n = j / g.size[which];
        float acc = dx[j];
        for (int c = d[0] > 1 ? ci : 0; c < (d[0] > 1 ? ci + 1 : g.C); c++)
            for (int h = d[1] > 1 ? hi : 0; h < (d[1] > 1 ? hi + 1 : g.H); h++)
                for (int w = d[2] > 1 ? wi : 0; w < (d[2] > 1 ? wi + 1 : g.W); w++) {
                    size_t o = n * g.size_out + ((size_t)c * g.H + h) * g.W + w;
                    float a = g.p[0][n * g.size[0] + dlc__bcast_at(g.d[0], c, h, w)];
                    float b = g.n_in > 1 ? g.p[1][n * g.size[1] + dlc__bcast_at(g.d[1], c, h, w)] : 0.0f;
                    acc += dlc__binary_grad(g.op, which, a, b, dy[o]);
                }
        dx[j] = acc;
    }
}
static int dlc__same_shapes(const dl_layer *l) {
    for (int i = 0; i < l->n_in; i++) if (l->in[i]->size != l->size) return 0;
    return 1;
}
static int dlc__bcast_forward(dlc *c, const dl_layer *l, const dl_exec *e) {
    size_t total = (size_t)e->n * l->size;
    DLC_EACH(dlk__bcast_forward, total, dlc__bcast_geom(l, e), total, e->out);
    return DL_OK;
}
static int dlc__bcast_backward(dlc *c, const dl_layer *l, const dl_exec *e) {
    dlc_bcast g = dlc__bcast_geom(l, e);
    for (int i = 0; i < l->n_in; i++) {     /* one launch each: two inputs may share a gradient buffer */
        size_t total = (size_t)e->n * l->in[i]->size;
        if (e->din[i]) DLC_EACH(dlk__bcast_backward, total, g, i, e->dout, total, e->din[i]);
    }
    return DL_OK;
}
static int dlc__sub_forward(dlc *c, const dl_layer *l, const dl_exec *e) { return dlc__bcast_forward(c, l, e); }
static int dlc__sub_backward(dlc *c, const dl_layer *l, const dl_exec *e) { return dlc__bcast_backward(c, l, e); }
static int dlc__div_forward(dlc *c, const dl_layer *l, const dl_exec *e) { return dlc__bcast_forward(c, l, e); }
static int dlc__div_backward(dlc *c, const dl_layer *l, const dl_exec *e) { return dlc__bcast_backward(c, l, e); }

/* ---- pad, transpose, upsample, slice (dl.h's formulas). Backward of pad and
   upsample: one thread per plane adds each output's gradient into what it
   read, outputs in order, as the CPU does. ---- */
typedef struct dlc_shape_op { int C, H, W, OH, OW, mode, pad_top, pad_left, sh, sw, align, nd, perm[3], in_shape[3], out_shape[3]; float value; } dlc_shape_op;
static dlc_shape_op dlc__shape_geom(const dl_layer *l) {
    dlc_shape_op g;
    int k;
    memset(&g, 0, sizeof g);
    dlc__chw(l->in[0], &g.C, &g.H, &g.W);
    g.OH = l->ndim > 1 ? l->shape[1] : 1; g.OW = l->ndim > 2 ? l->shape[2] : 1;
    g.mode = l->a.mode; g.value = l->a.value; g.pad_top = l->a.pad[0]; g.pad_left = l->a.pad[1];
    g.sh = l->a.scale[0]; g.sw = l->a.scale[1]; g.align = l->a.align_corners; g.nd = l->ndim;
    for (k = 0; k < 3; k++) { g.perm[k] = l->a.perm[k]; g.in_shape[k] = l->in[0]->shape[k]; g.out_shape[k] = l->shape[k]; }
    return g;
}
static __device__ int dlc__pad_src(int i, int n, int mode) {
    if (i >= 0 && i < n) return i;
    if (mode == DL_PAD_CONSTANT) return -1;
    if (mode == DL_PAD_EDGE) return i < 0 ? 0 : n - 1;
    return i < 0 ? -i : 2 * (n - 1) - i;
}
static __global__ void dlk__pad_forward(dlc_shape_op g, const float *x, size_t total, float *y) {
    DLC_FOR(o, total) {
        int ow = (int)(o % g.OW), oh = (int)(o / g.OW % g.OH);
        size_t plane = o / ((size_t)g.OW * g.OH);
        int ih = dlc__pad_src(oh - g.pad_top, g.H, g.mode), iw = dlc__pad_src(ow - g.pad_left, g.W, g.mode);
        y[o] = ih < 0 || iw < 0 ? g.value : x[(plane * g.H + ih) * g.W + iw];
    }
}
static __global__ void dlk__pad_backward(dlc_shape_op g, const float *dy, size_t planes, float *dx) {
    DLC_FOR(p, planes) {
        for (int oh = 0; oh < g.OH; oh++) {
            int ih = dlc__pad_src(oh - g.pad_top, g.H, g.mode);
            for (int ow = 0; ow < g.OW; ow++) {
                int iw = dlc__pad_src(ow - g.pad_left, g.W, g.mode);
                if (ih >= 0 && iw >= 0) dx[(p * g.H + ih) * g.W + iw] += dy[(p * g.OH + oh) * g.OW + ow];
            }
        }
    }
}
static int dlc__pad_forward(dlc *c, const dl_layer *l, const dl_exec *e) {
    size_t total = (size_t)e->n * l->size;
    DLC_EACH(dlk__pad_forward, total, dlc__shape_geom(l), e->in[0], total, e->out);
    return DL_OK;
}
static int dlc__pad_backward(dlc *c, const dl_layer *l, const dl_exec *e) {
    size_t planes = (size_t)e->n * l->shape[0];
    if (!e->din[0]) return DL_OK;
    DLC_EACH(dlk__pad_backward, planes, dlc__shape_geom(l), e->dout, planes, e->din[0]);
    return DL_OK;
}

static __device__ size_t dlc__transpose_src(const dlc_shape_op *g, size_t o) {
    int idx[3] = { 0, 0, 0 }, in_idx[3] = { 0, 0, 0 }, k;
    size_t s = 0;
    for (k = g->nd - 1; k >= 0; k--) { idx[k] = (int)(o % (size_t)g->out_shape[k]); o /= (size_t)g->out_shape[k]; }
    for (k = 0; k < g->nd; k++) in_idx[g->perm[k]] = idx[k];
    for (k = 0; k < g->nd; k++) s = s * (size_t)g->in_shape[k] + (size_t)in_idx[k];
    return s;
}
static __global__ void dlk__transpose_run(dlc_shape_op g, const float *src, size_t S, size_t total, float *dst, int backward) {
    DLC_FOR(o, total) {         /* a bijection: one thread per element either way */
        size_t i = o / S * S + dlc__transpose_src(&g, o % S);
        if (backward) dst[i] += src[o]; else dst[o] = src[i];
    }
}
static int dlc__transpose_forward(dlc *c, const dl_layer *l, const dl_exec *e) {
    size_t total = (size_t)e->n * l->size;
    DLC_EACH(dlk__transpose_run, total, dlc__shape_geom(l), e->in[0], (size_t)l->size, total, e->out, 0);
    return DL_OK;
}
static int dlc__transpose_backward(dlc *c, const dl_layer *l, const dl_exec *e) {
    size_t total = (size_t)e->n * l->size;
    if (!e->din[0]) return DL_OK;
    DLC_EACH(dlk__transpose_run, total, dlc__shape_geom(l), e->dout, (size_t)l->size, total, e->din[0], 1);
    return DL_OK;
}

static __device__ void dlc__lerp_src(int o, int in, int out, int s, int bilinear, int align, int *i0, int *i1, float *t) {
    float src;
    if (!bilinear) { *i0 = *i1 = o / s; *t = 0; return; }
    src = align ? (out > 1 ? (float)o * (float)(in - 1) / (float)(out - 1) : 0.0f) : ((float)o + 0.5f) / (float)s - 0.5f;
    if (src < 0) src = 0;
    *i0 = (int)src;
    if (*i0 > in - 1) *i0 = in - 1;
    *i1 = *i0 + 1 < in ? *i0 + 1 : in - 1;
    *t = src - (float)*i0;
}
static __global__ void dlk__upsample_forward(dlc_shape_op g, const float *x, size_t total, float *y) {
    DLC_FOR(o, total) {
        int ow = (int)(o % g.OW), oh = (int)(o / g.OW % g.OH), h0, h1, w0, w1;
        const float *xp = x + o / ((size_t)g.OW * g.OH) * g.H * g.W;
        float th, tw, top, bot;
        dlc__lerp_src(oh, g.H, g.OH, g.sh, g.mode, g.align, &h0, &h1, &th);
        dlc__lerp_src(ow, g.W, g.OW, g.sw, g.mode, g.align, &w0, &w1, &tw);
        top = xp[h0 * g.W + w0] + tw * (xp[h0 * g.W + w1] - xp[h0 * g.W + w0]);
        bot = xp[h1 * g.W + w0] + tw * (xp[h1 * g.W + w1] - xp[h1 * g.W + w0]);
        y[o] = top + th * (bot - top);
    }
}
static __global__ void dlk__upsample_backward(dlc_shape_op g, const float *dy, size_t planes, float *dx) {
    DLC_FOR(p, planes) {
        float *d = dx + p * g.H * g.W;
        for (int oh = 0; oh < g.OH; oh++) {
            int h0, h1;
            float th;
            dlc__lerp_src(oh, g.H, g.OH, g.sh, g.mode, g.align, &h0, &h1, &th);
            for (int ow = 0; ow < g.OW; ow++) {
                int w0, w1;
                float tw, v = dy[(p * g.OH + oh) * g.OW + ow];
                dlc__lerp_src(ow, g.W, g.OW, g.sw, g.mode, g.align, &w0, &w1, &tw);
                d[h0 * g.W + w0] += v * (1 - th) * (1 - tw);
                d[h0 * g.W + w1] += v * (1 - th) * tw;
                d[h1 * g.W + w0] += v * th * (1 - tw);
                d[h1 * g.W + w1] += v * th * tw;
            }
        }
    }
}
static int dlc__upsample_forward(dlc *c, const dl_layer *l, const dl_exec *e) {
    size_t total = (size_t)e->n * l->size;
    DLC_EACH(dlk__upsample_forward, total, dlc__shape_geom(l), e->in[0], total, e->out);
    return DL_OK;
}
static int dlc__upsample_backward(dlc *c, const dl_layer *l, const dl_exec *e) {
    size_t planes = (size_t)e->n * l->shape[0];
    if (!e->din[0]) return DL_OK;
    DLC_EACH(dlk__upsample_backward, planes, dlc__shape_geom(l), e->dout, planes, e->din[0]);
    return DL_OK;
}

static __global__ void dlk__slice_run(const float *src, int size_in, int size_out, size_t off, size_t total, float *dst, int backward) {
    DLC_FOR(o, total) {
        size_t i = o / size_out * size_in + off + o % size_out;
        if (backward) dst[i] += src[o]; else dst[o] = src[i];
    }
}
static int dlc__slice_forward(dlc *c, const dl_layer *l, const dl_exec *e) {
    size_t total = (size_t)e->n * l->size, off = (size_t)l->a.range[0] * (l->in[0]->size / l->in[0]->shape[0]);
    DLC_EACH(dlk__slice_run, total, e->in[0], l->in[0]->size, l->size, off, total, e->out, 0);
    return DL_OK;
}
static int dlc__slice_backward(dlc *c, const dl_layer *l, const dl_exec *e) {
    size_t total = (size_t)e->n * l->size, off = (size_t)l->a.range[0] * (l->in[0]->size / l->in[0]->shape[0]);
    if (!e->din[0]) return DL_OK;
    DLC_EACH(dlk__slice_run, total, e->dout, l->in[0]->size, l->size, off, total, e->din[0], 1);
    return DL_OK;
}

/* ---- reduce (dl.h's dl__reduce_*): one thread per output sums its inputs in
   index order; backward gathers dy per input element. ---- */
typedef struct dlc_reduce { int d[3], r[3], count, size_in, size_out, mean; } dlc_reduce;
static dlc_reduce dlc__reduce_geom(const dl_layer *l) {
    dlc_reduce g;
    int k;
    g.count = 1;
    for (k = 0; k < 3; k++) {
        g.d[k] = k < l->in[0]->ndim ? l->in[0]->shape[k] : 1;
        g.r[k] = l->a.axes[k];
        if (g.r[k]) g.count *= g.d[k];
    }
    g.size_in = l->in[0]->size; g.size_out = l->size; g.mean = l->a.mode;
    return g;
}
static __global__ void dlk__reduce_forward(dlc_reduce g, const float *x, size_t total, float *y) {
    DLC_FOR(o, total) {
        int e0 = g.r[0] ? 1 : g.d[0], e1 = g.r[1] ? 1 : g.d[1], e2 = g.r[2] ? 1 : g.d[2], q = (int)(o % g.size_out);
        int o2 = q % e2, o1 = q / e2 % e1, o0 = q / (e2 * e1) % e0;
        const float *xp = x + o / g.size_out * g.size_in;
        float s = 0;
        (void)e0;
        for (int i0 = g.r[0] ? 0 : o0; i0 < (g.r[0] ? g.d[0] : o0 + 1); i0++)
            for (int i1 = g.r[1] ? 0 : o1; i1 < (g.r[1] ? g.d[1] : o1 + 1); i1++)
                for (int i2 = g.r[2] ? 0 : o2; i2 < (g.r[2] ? g.d[2] : o2 + 1); i2++) s += xp[((size_t)i0 * g.d[1] + i1) * g.d[2] + i2];
        y[o] = g.mean ? s / (float)g.count : s;
    }
}
static __global__ void dlk__reduce_backward(dlc_reduce g, const float *dy, size_t total, float *dx) {
    DLC_FOR(i, total) {
        int q = (int)(i % g.size_in), i2 = q % g.d[2], i1 = q / g.d[2] % g.d[1], i0 = q / (g.d[2] * g.d[1]);
        size_t o = ((size_t)(g.r[0] ? 0 : i0) * (g.r[1] ? 1 : g.d[1]) + (g.r[1] ? 0 : i1)) * (g.r[2] ? 1 : g.d[2]) + (g.r[2] ? 0 : i2);
        float v = dy[i / g.size_in * g.size_out + o];
        dx[i] += g.mean ? v / (float)g.count : v;
    }
}
static int dlc__reduce_forward(dlc *c, const dl_layer *l, const dl_exec *e) {
    size_t total = (size_t)e->n * l->size;
    DLC_EACH(dlk__reduce_forward, total, dlc__reduce_geom(l), e->in[0], total, e->out);
    return DL_OK;
}
static int dlc__reduce_backward(dlc *c, const dl_layer *l, const dl_exec *e) {
    size_t total = (size_t)e->n * l->in[0]->size;
    if (!e->din[0]) return DL_OK;
    DLC_EACH(dlk__reduce_backward, total, dlc__reduce_geom(l), e->dout, total, e->din[0]);
    return DL_OK;
}

/* ---- constant: every sample's output is the value parameter ---- */
static __global__ void dlk__constant_forward(const float *v, int size, size_t total, float *y) { DLC_FOR(o, total) y[o] = v[o % size]; }
static int dlc__constant_forward(dlc *c, const dl_layer *l, const dl_exec *e) {
    size_t total = (size_t)e->n * l->size;
    DLC_EACH(dlk__constant_forward, total, e->w[0], l->size, total, e->out);
    return DL_OK;
}
static int dlc__constant_backward(dlc *c, const dl_layer *l, const dl_exec *e) { (void)c; (void)l; (void)e; return DL_OK; }

/* ---- concat along channels: per sample, the inputs' blocks one after another ---- */
static __global__ void dlk__concat_backward(const float *dy, int size, int off, int k, size_t total, float *dx) {
    DLC_FOR(j, total) dx[j] += dy[j / k * size + off + j % k];
}
static int dlc__concat_forward(dlc *c, const dl_layer *l, const dl_exec *e) {
    int i, off = 0;
    for (i = 0; i < l->n_in; i++) {     /* a strided copy per input: n rows of its size */
        size_t k = (size_t)l->in[i]->size;
        DLC_CHECK(cudaMemcpy2DAsync(e->out + off, (size_t)l->size * sizeof(float), e->in[i], k * sizeof(float),
                                    k * sizeof(float), (size_t)e->n, cudaMemcpyDeviceToDevice, c->stream));
        off += (int)k;
    }
    return DL_OK;
}
static int dlc__concat_backward(dlc *c, const dl_layer *l, const dl_exec *e) {
    int i, off = 0;
    for (i = 0; i < l->n_in; i++) {     /* one launch each: two inputs may share a gradient buffer */
        int k = l->in[i]->size;
        size_t total = (size_t)e->n * k;
        if (e->din[i]) DLC_EACH(dlk__concat_backward, total, e->dout, l->size, off, k, total, e->din[i]);
        off += k;
    }
    return DL_OK;
}

/* ---- matmul per sample: C (B,M,P) = A (B,M,K) x B (B,K,P); dA += dC B^T, dB += A^T dC ---- */
static void dlc__matmul_dims(const dl_layer *l, int *batch, int *M, int *K, int *P) {
    int r = l->ndim;
    *batch = r == 3 ? l->shape[0] : 1;
    *M = l->shape[r - 2]; *P = l->shape[r - 1]; *K = l->in[0]->shape[r - 1];
}
static int dlc__matmul_forward(dlc *c, const dl_layer *l, const dl_exec *e) {
    int batch, M, K, P;
    dlc__matmul_dims(l, &batch, &M, &K, &P);
    return dlc__sgemm(c, 0, 0, M, P, K, 1.0f, e->in[0], K, (long long)M * K, e->in[1], P, (long long)K * P,
                      0.0f, e->out, P, (long long)M * P, e->n * batch);
}
static int dlc__matmul_backward(dlc *c, const dl_layer *l, const dl_exec *e) {
    int batch, M, K, P;
    dlc__matmul_dims(l, &batch, &M, &K, &P);
    if (e->din[0]) DLC_TRY(dlc__sgemm(c, 0, 1, M, K, P, 1.0f, e->dout, P, (long long)M * P, e->in[1], P, (long long)K * P,
                                      1.0f, e->din[0], K, (long long)M * K, e->n * batch));
    if (e->din[1]) DLC_TRY(dlc__sgemm(c, 1, 0, K, P, M, 1.0f, e->in[0], K, (long long)M * K, e->dout, P, (long long)M * P,
                                      1.0f, e->din[1], P, (long long)K * P, e->n * batch));
    return DL_OK;
}

/* ---- custom: the user's CPU callbacks, on host copies of every buffer ---- */
static int dlc__memcpy(dlc *c, void *dst, const void *src, size_t bytes, cudaMemcpyKind kind) {
    if (bytes) DLC_CHECK(cudaMemcpyAsync(dst, src, bytes, kind, c->stream));
    return DL_OK;
}
static int dlc__wait(dlc *c) {
    DLC_TRY(dlc__flush(c));
    DLC_CHECK(cudaStreamSynchronize(c->stream));
    c->stage_used = 0;                  /* no graph reads the staging any more */
    return DL_OK;
}
static int dlc__custom(dlc *c, const dl_layer *l, const dl_exec *e, int backward) {
    const cudaMemcpyKind D2H = cudaMemcpyDeviceToHost, H2D = cudaMemcpyHostToDevice;
    const float *in[64];
    float *din[64], *params[4], *dparams[4], *host, *out, *dout = NULL, *p;
    int sizes[64], first[64], psize[4], np = l->n_params, i, j, rc = DL_OK, cb;
    size_t n = (size_t)e->n, total, F = sizeof(float);
    dl_custom_args a;
    if (backward && !l->custom.backward) return DL_OK;      /* nothing flows back through it */
    DLC_TRY(dlc__flush(c));             /* host copies and callbacks: no capture goes past them */
    if (l->n_in > 64 || np > 4)
        return dlc__fail(c, DL_ERR_UNSUPPORTED, "custom '%s': %d inputs and %d parameters; at most 64 and 4", l->name, l->n_in, np);
    /* one host block: out, dout, inputs, input gradients, parameters, their gradients */
    total = n * l->size * (backward ? 2 : 1);
    for (i = 0; i < l->n_in; i++) {
        sizes[i] = l->in[i]->size;
        first[i] = 1;                   /* two inputs may share one gradient buffer: keep one host copy */
        for (j = 0; j < i; j++) if (e->din[j] == e->din[i]) first[i] = 0;
        total += n * sizes[i] * (backward && e->din[i] && first[i] ? 2 : 1);
    }
    for (j = 0; j < np; j++) {
        psize[j] = dl_net_param(l->net, l->first_param + j)->size;
        total += (size_t)psize[j] * (backward && e->dw[j] ? 2 : 1);
    }
    if (!(host = (float *)malloc((total ? total : 1) * F)))
        return dlc__fail(c, DL_ERR_NOMEM, "custom '%s': out of host memory for a copy of its buffers", l->name);
    p = host;
    out = p; p += n * l->size;
    if (backward) { dout = p; p += n * l->size; }
    for (i = 0; i < l->n_in; i++) { in[i] = p; p += n * sizes[i]; }
    for (i = 0; i < l->n_in; i++) {
        din[i] = NULL;
        if (!backward || !e->din[i]) continue;
        if (first[i]) { din[i] = p; p += n * sizes[i]; }
        else for (j = 0; j < i; j++) if (e->din[j] == e->din[i]) { din[i] = din[j]; break; }
    }
    for (j = 0; j < np; j++) { params[j] = p; p += psize[j]; }
    for (j = 0; j < np; j++) { dparams[j] = NULL; if (backward && e->dw[j]) { dparams[j] = p; p += psize[j]; } }
#define DLC_STEP(x) do { if (!rc) rc = (x); } while (0)
    DLC_STEP(dlc__memcpy(c, out, e->out, n * l->size * F, D2H));
    if (backward) DLC_STEP(dlc__memcpy(c, dout, e->dout, n * l->size * F, D2H));
    for (i = 0; i < l->n_in; i++) {
        DLC_STEP(dlc__memcpy(c, (float *)in[i], e->in[i], n * sizes[i] * F, D2H));
        if (din[i] && first[i]) DLC_STEP(dlc__memcpy(c, din[i], e->din[i], n * sizes[i] * F, D2H));   /* callbacks add */
    }
    for (j = 0; j < np; j++) {
        DLC_STEP(dlc__memcpy(c, params[j], e->w[j], psize[j] * F, D2H));
        if (dparams[j]) DLC_STEP(dlc__memcpy(c, dparams[j], e->dw[j], psize[j] * F, D2H));
    }
    DLC_STEP(dlc__wait(c));
    if (!rc) {                          /* exactly what dl.h's dl__custom_call passes */
        memset(&a, 0, sizeof a);
        a.n = e->n; a.train = e->train; a.n_in = l->n_in; a.in = in; a.in_size = sizes;
        a.out = out; a.out_size = l->size; a.din = din; a.dout = dout;
        a.params = params; a.dparams = dparams; a.user = l->custom.user;
        cb = backward ? l->custom.backward(&a) : l->custom.forward(&a);
        if (cb) rc = dlc__fail(c, DL_ERR_ARG, "custom '%s': its %s callback returned %d", l->name, backward ? "backward" : "forward", cb);
    }
    if (!backward) {
        DLC_STEP(dlc__memcpy(c, e->out, out, n * l->size * F, H2D));
        for (j = 0; j < np; j++) DLC_STEP(dlc__memcpy(c, e->w[j], params[j], psize[j] * F, H2D));  /* forward may update statistics */
    } else {
        for (i = 0; i < l->n_in; i++)
            if (din[i] && first[i]) DLC_STEP(dlc__memcpy(c, e->din[i], din[i], n * sizes[i] * F, H2D));
        for (j = 0; j < np; j++) if (dparams[j]) DLC_STEP(dlc__memcpy(c, e->dw[j], dparams[j], psize[j] * F, H2D));
    }
    DLC_STEP(dlc__wait(c));             /* before the host block goes */
#undef DLC_STEP
    if (rc) cudaStreamSynchronize(c->stream);
    free(host);
    return rc;
}

static int dlc__input_forward(dlc *c, const dl_layer *l, const dl_exec *e) { (void)c; (void)l; (void)e; return DL_OK; }
static int dlc__input_backward(dlc *c, const dl_layer *l, const dl_exec *e) { (void)c; (void)l; (void)e; return DL_OK; }
static int dlc__reshape_forward(dlc *c, const dl_layer *l, const dl_exec *e) { (void)c; (void)l; (void)e; return DL_OK; }
static int dlc__reshape_backward(dlc *c, const dl_layer *l, const dl_exec *e) { (void)c; (void)l; (void)e; return DL_OK; }
static int dlc__custom_forward(dlc *c, const dl_layer *l, const dl_exec *e) { return dlc__custom(c, l, e, 0); }
static int dlc__custom_backward(dlc *c, const dl_layer *l, const dl_exec *e) { return dlc__custom(c, l, e, 1); }

typedef int (*dlc__kernel)(dlc *c, const dl_layer *l, const dl_exec *e);
/* dl.h's dl__ops[], row for row: a forgotten row stops the build, a misplaced
   one stops dl_cuda_backend_new. */
static const struct { int op; dlc__kernel forward, backward; } dlc__ops[] = {
    { DL_OP_INPUT, dlc__input_forward, dlc__input_backward },
    { DL_OP_DENSE, dlc__dense_forward, dlc__dense_backward },
    { DL_OP_CONV2D, dlc__conv2d_forward, dlc__conv2d_backward },
    { DL_OP_MAXPOOL2D, dlc__maxpool2d_forward, dlc__maxpool2d_backward },
    { DL_OP_AVGPOOL2D, dlc__avgpool2d_forward, dlc__avgpool2d_backward },
    { DL_OP_GLOBAL_AVGPOOL, dlc__global_avgpool_forward, dlc__global_avgpool_backward },
    { DL_OP_BATCHNORM, dlc__batchnorm_forward, dlc__batchnorm_backward },
    { DL_OP_DROPOUT, dlc__dropout_forward, dlc__dropout_backward },
    { DL_OP_RESHAPE, dlc__reshape_forward, dlc__reshape_backward },
    { DL_OP_RELU, dlc__relu_forward, dlc__relu_backward },
    { DL_OP_LEAKY_RELU, dlc__leaky_relu_forward, dlc__leaky_relu_backward },
    { DL_OP_ELU, dlc__elu_forward, dlc__elu_backward },
    { DL_OP_PRELU, dlc__prelu_forward, dlc__prelu_backward },
    { DL_OP_SIGMOID, dlc__sigmoid_forward, dlc__sigmoid_backward },
    { DL_OP_TANH, dlc__tanh_forward, dlc__tanh_backward },
    { DL_OP_SOFTMAX, dlc__softmax_forward, dlc__softmax_backward },
    { DL_OP_ADD, dlc__add_forward, dlc__add_backward },
    { DL_OP_CONCAT, dlc__concat_forward, dlc__concat_backward },
    { DL_OP_MUL, dlc__mul_forward, dlc__mul_backward },
    { DL_OP_MATMUL, dlc__matmul_forward, dlc__matmul_backward },
    { DL_OP_CUSTOM, dlc__custom_forward, dlc__custom_backward },
    { DL_OP_GLOBAL_MAXPOOL, dlc__global_maxpool_forward, dlc__global_maxpool_backward },
    { DL_OP_CLIP, dlc__clip_forward, dlc__clip_backward },
    { DL_OP_HARD_SIGMOID, dlc__hard_sigmoid_forward, dlc__hard_sigmoid_backward },
    { DL_OP_HARD_SWISH, dlc__hard_swish_forward, dlc__hard_swish_backward },
    { DL_OP_SELU, dlc__selu_forward, dlc__selu_backward },
    { DL_OP_GELU, dlc__gelu_forward, dlc__gelu_backward },
    { DL_OP_SILU, dlc__silu_forward, dlc__silu_backward },
    { DL_OP_SOFTPLUS, dlc__softplus_forward, dlc__softplus_backward },
    { DL_OP_LOG_SOFTMAX, dlc__log_softmax_forward, dlc__log_softmax_backward },
    { DL_OP_SUB, dlc__sub_forward, dlc__sub_backward },
    { DL_OP_DIV, dlc__div_forward, dlc__div_backward },
    { DL_OP_CONSTANT, dlc__constant_forward, dlc__constant_backward },
    { DL_OP_CONV2D_TRANSPOSE, dlc__conv2d_transpose_forward, dlc__conv2d_transpose_backward },
    { DL_OP_PAD, dlc__pad_forward, dlc__pad_backward },
    { DL_OP_TRANSPOSE, dlc__transpose_forward, dlc__transpose_backward },
    { DL_OP_UPSAMPLE, dlc__upsample_forward, dlc__upsample_backward },
    { DL_OP_SLICE, dlc__slice_forward, dlc__slice_backward },
    { DL_OP_REDUCE, dlc__reduce_forward, dlc__reduce_backward },
    { DL_OP_SQRT, dlc__sqrt_forward, dlc__sqrt_backward },
    { DL_OP_MAXPOOL2D_ARGMAX, dlc__maxpool2d_argmax_forward, dlc__maxpool2d_argmax_backward },
};
typedef char dlc__ops_has_every_op[sizeof dlc__ops / sizeof dlc__ops[0] == DL_OP_COUNT ? 1 : -1];

/* ======================================================================== */
/*  Losses                                                                  */
/* ======================================================================== */
/* loss = mean_n -log softmax(z_n)[label_n];  dz = (softmax - onehot) / n, in
   double like dl_softmax_cross_entropy. One block, a thread per sample. */
static __global__ void dlk__softmax_cross_entropy(const float *z, const int *labels, int n, int classes, float *dz, float *loss) {
    double total = 0;
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        const float *r = z + (size_t)i * classes;
        float m = r[0];
        double sum = 0;
        int c;
        for (c = 1; c < classes; c++) if (r[c] > m) m = r[c];
        for (c = 0; c < classes; c++) sum += exp((double)r[c] - m);
        total += log(sum) - ((double)r[labels[i]] - m);
        if (dz)
            for (c = 0; c < classes; c++)
                dz[(size_t)i * classes + c] = (float)((exp((double)r[c] - m) / sum - (c == labels[i])) / n);
    }
    total = dlc__block_sum(total);
    if (threadIdx.x == 0) *loss = (float)(total / n);
}
/* loss = mean_i out[i] of a scalar output; dout = 1 / n */
static __global__ void dlk__batch_mean(const float *out, int n, float *dout, float *loss) {
    double total = 0;
    for (int i = threadIdx.x; i < n; i += blockDim.x) { total += out[i]; dout[i] = 1.0f / (float)n; }
    total = dlc__block_sum(total);
    if (threadIdx.x == 0) *loss = (float)(total / n);
}
/* loss = -mean_i logp[i, label_i];  dlogp[i, c] = -(c == label_i) / n (dl.h's dl_nll) */
static __global__ void dlk__nll(const float *logp, const int *labels, int n, int classes, float *dz, float *loss) {
    double total = 0;
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        total -= logp[(size_t)i * classes + labels[i]];
        if (dz)
            for (int c = 0; c < classes; c++) dz[(size_t)i * classes + c] = c == labels[i] ? -1.0f / (float)n : 0.0f;
    }
    total = dlc__block_sum(total);
    if (threadIdx.x == 0) *loss = (float)(total / n);
}
/* loss = mean of (out - target)^2;  dout = 2 (out - target) / count; part[block] = its sum */
static __global__ void dlk__mse(const float *out, const float *t, size_t count, float fcount, float *dout, double *part) {
    double s = 0;
    DLC_FOR(i, count) {
        float d = out[i] - t[i];
        s += (double)d * d;
        if (dout) dout[i] = 2.0f * d / fcount;
    }
    s = dlc__block_sum(s);
    if (threadIdx.x == 0) part[blockIdx.x] = s;
}
static __global__ void dlk__mse_total(const double *part, int parts, double count, float *loss) {
    double s = 0;
    for (int k = threadIdx.x; k < parts; k += blockDim.x) s += part[k];
    s = dlc__block_sum(s);
    if (threadIdx.x == 0) *loss = (float)(s / count);
}

/* The guard of a training step (dl_backend.guard): the loss and every
   statistic finite, or the verdict says stop before the optimizer runs. */
static __device__ __forceinline__ int dlc__finite(float x) { return fabsf(x) <= FLT_MAX; }
static __global__ void dlk__step_guard(const float *stats, size_t n, dlc_verdict *v) {
    double bad = 0;
    for (size_t i = threadIdx.x; i < n; i += blockDim.x) bad += !dlc__finite(stats[i]);
    bad = dlc__block_sum(bad);
    if (threadIdx.x == 0) { v->ok = bad == 0 && dlc__finite(v->loss) ? 1 : 2; v->clip = 1.0f; }
}

/* ======================================================================== */
/*  Optimizers: dl_optim_step_cpu, over ranges, X blocks per range           */
/* ======================================================================== */
typedef struct dlc_optim {
    int kind, nesterov, has_mom, centered;
    float lr, wd, momentum, beta1, beta2, eps, alpha, step_size, bc2_sqrt, keep;   /* keep: 1 - dampening after step 1 */
} dlc_optim;

/* part[b] = sum of g^2 over block b's share of range b / X */
static __global__ void dlk__optim_sumsq(const float *g, const size_t *off, const size_t *len, int X, double *part) {
    int r = blockIdx.x / X, xb = blockIdx.x % X;
    const float *gr = g + off[r];
    double s = 0;
    for (size_t i = (size_t)xb * blockDim.x + threadIdx.x; i < len[r]; i += (size_t)X * blockDim.x) s += (double)gr[i] * gr[i];
    s = dlc__block_sum(s);
    if (threadIdx.x == 0) part[blockIdx.x] = s;
}
/* The verdict the update and the host read: all finite? and the clipping
   factor; guarded, a step whose guard failed keeps that verdict. */
static __global__ void dlk__optim_norm(const double *part, int parts, float clip_norm, dlc_verdict *v, int guarded) {
    double sq = 0;
    for (int k = threadIdx.x; k < parts; k += blockDim.x) sq += part[k];
    sq = dlc__block_sum(sq);
    if (threadIdx.x == 0) {
        float clip = 1.0f;
        if (guarded && v->ok != 1) return;
        if (clip_norm > 0 && sqrt(sq) > clip_norm) clip = (float)(clip_norm / (sqrt(sq) + 1e-6));
        v->ok = sq <= DBL_MAX;          /* false for inf and NaN */
        v->clip = clip;
    }
}
/* One float's update, PyTorch's rules as in dl_optim_step_cpu: commit 0
   computes it and says whether every new value is finite; commit 1 stores. */
static __device__ __forceinline__ int dlc__optim_one(const dlc_optim &o, float clip, int commit, size_t i, float *w, float *g,
                                                     float *s0, float *s1, float *s2) {
    float *mom_buf = o.kind == DL_SGD ? s0 : s1, *mean_g = o.has_mom ? s2 : s1;
    float gc = g[i] * clip, wi = w[i];
    if (o.kind == DL_SGD) {             /* b = mu b + keep g;  w -= lr (nesterov ? g + mu b : b) */
        float gi = gc + o.wd * wi, bi = 0;
        if (o.has_mom) { bi = o.momentum * mom_buf[i] + o.keep * gi; gi = o.nesterov ? gi + o.momentum * bi : bi; }
        wi -= o.lr * gi;
        if (!commit) return dlc__finite(wi) && dlc__finite(bi);
        if (o.has_mom) mom_buf[i] = bi;
    } else if (o.kind == DL_ADAM || o.kind == DL_ADAMW) {   /* m, v; w -= lr/bc1 m / (sqrt(v)/sqrt(bc2) + eps) */
        float gi = gc, mi, vi;
        if (o.kind == DL_ADAMW) wi *= 1.0f - o.lr * o.wd;
        else gi += o.wd * wi;
        mi = o.beta1 * s0[i] + (1.0f - o.beta1) * gi;
        vi = o.beta2 * s1[i] + (1.0f - o.beta2) * gi * gi;
        wi -= o.step_size * mi / (sqrtf(vi) / o.bc2_sqrt + o.eps);
        if (!commit) return dlc__finite(wi) && dlc__finite(mi) && dlc__finite(vi);
        s0[i] = mi; s1[i] = vi;
    } else {                            /* RMSProp: v = a v + (1-a) g^2;  w -= lr g / (sqrt(v [- mean_g^2]) + eps) */
        float gi = gc + o.wd * wi, vi, mgi = 0, bi = 0, avg;
        vi = o.alpha * s0[i] + (1.0f - o.alpha) * gi * gi;
        if (o.centered) { mgi = o.alpha * mean_g[i] + (1.0f - o.alpha) * gi; avg = sqrtf(vi - mgi * mgi) + o.eps; }
        else avg = sqrtf(vi) + o.eps;
        if (o.has_mom) { bi = o.momentum * mom_buf[i] + gi / avg; wi -= o.lr * bi; }
        else wi -= o.lr * gi / avg;
        if (!commit) return dlc__finite(wi) && dlc__finite(vi) && dlc__finite(mgi) && dlc__finite(bi);
        s0[i] = vi;
        if (o.centered) mean_g[i] = mgi;
        if (o.has_mom) mom_buf[i] = bi;
    }
    if (clip != 1.0f) g[i] = gc;
    w[i] = wi;
    return 1;
}
/* commit 0: any value that would not be finite turns the verdict to -1;
   commit 1: the update, when the verdict is still 1. */
static __global__ void dlk__optim_update(dlc_optim o, float *w, float *g, float *s0, float *s1, float *s2,
                                         const size_t *off, const size_t *len, int X, dlc_verdict *v, int commit) {
    int r = blockIdx.x / X, xb = blockIdx.x % X;
    float clip = v->clip;
    if (v->ok != 1) return;             /* a non-finite gradient, or update: change nothing */
    for (size_t k = (size_t)xb * blockDim.x + threadIdx.x; k < len[r]; k += (size_t)X * blockDim.x)
        if (!dlc__optim_one(o, clip, commit, off[r] + k, w, g, s0, s1, s2)) v->ok = -1;   /* every writer writes -1 */
}

/* Queues the whole step; the caller waits for it. */
static int dlc__optim_queue(dlc *c, const dl_optim_job *job, int X) {
    const dl_optim_desc *d = job->d;
    int R = job->n_ranges;
    size_t table = ((2 * (size_t)R * sizeof(size_t)) + 255) & ~(size_t)255;
    size_t *off = (size_t *)c->small, *len = off + R;
    double *part = (double *)(void *)((char *)c->small + table);
    dlc_optim o;
    memset(&o, 0, sizeof o);
    o.kind = d->kind; o.nesterov = d->nesterov; o.has_mom = d->momentum > 0; o.centered = d->centered;
    o.lr = job->lr; o.wd = d->weight_decay; o.momentum = d->momentum;
    o.keep = job->step > 1 ? 1.0f - d->dampening : 1.0f;
    o.beta1 = d->beta1; o.beta2 = d->beta2; o.eps = d->eps; o.alpha = d->alpha;
    o.step_size = (float)(job->lr / (1.0 - pow(d->beta1, (double)job->step)));
    o.bc2_sqrt = (float)sqrt(1.0 - pow(d->beta2, (double)job->step));
    DLC_CHECK(cudaMemcpyAsync(off, c->host_ranges, 2 * (size_t)R * sizeof(size_t), cudaMemcpyHostToDevice, c->stream));
    DLC_LAUNCH(dlk__optim_sumsq, (unsigned)(R * X), job->g, off, len, X, part);
    DLC_LAUNCH(dlk__optim_norm, 1, part, R * X, d->clip_norm, c->dev_v, c->armed);
    DLC_LAUNCH(dlk__optim_update, (unsigned)(R * X), o, job->w, job->g, job->s[0], job->s[1], job->s[2], off, len, X, c->dev_v, 0);
    DLC_LAUNCH(dlk__optim_update, (unsigned)(R * X), o, job->w, job->g, job->s[0], job->s[1], job->s[2], off, len, X, c->dev_v, 1);
    DLC_CHECK(cudaMemcpyAsync(&c->host_v->ok, &c->dev_v->ok, sizeof(int), cudaMemcpyDeviceToHost, c->stream));
    return DL_OK;
}

/* ======================================================================== */
/*  The dl_backend table                                                    */
/* ======================================================================== */
/* Every entry takes the backend's lock and makes its device current. */
#define DLC_ENTER(b)                                                                   \
    dlc *c = dlc__of(b);                                                               \
    std::lock_guard<std::mutex> hold_(c->lock);                                        \
    DLC_CHECK(cudaSetDevice(c->device))

static void *dlc__alloc(dl_backend *b, size_t bytes) {
    dlc *c = dlc__of(b);
    std::lock_guard<std::mutex> hold(c->lock);
    void *p = NULL;
    cudaError_t e = cudaSetDevice(c->device);
    if (e == cudaSuccess && dlc__flush(c)) return NULL;
    if (e == cudaSuccess) e = cudaMalloc(&p, bytes ? bytes : 16);
    if (e != cudaSuccess) {
        char what[64];
        snprintf(what, sizeof what, "cudaMalloc of %lu bytes", (unsigned long)bytes);
        dlc__cuda(c, e, what, __LINE__);
        return NULL;
    }
    return p;
}
static void dlc__release(dl_backend *b, void *p) {
    dlc *c = dlc__of(b);
    std::lock_guard<std::mutex> hold(c->lock);
    if (!p) return;
    cudaSetDevice(c->device);
    dlc__flush(c);
    cudaStreamSynchronize(c->stream);   /* queued kernels may still use p */
    cudaFree(p);
    cudaGetLastError();                 /* release cannot report; keep the error from the next call */
}
static int dlc__copy(dl_backend *b, void *dst, const void *src, size_t bytes, int dir) {
    DLC_ENTER(b);
    if (!bytes) return DL_OK;
    if (dir == DL_TO_DEVICE) {
        cudaPointerAttributes at;
        int pinned = 1;
        if (cudaPointerGetAttributes(&at, src) != cudaSuccess) cudaGetLastError();
        else pinned = at.type != cudaMemoryTypeUnregistered;
        if (c->capturing) {             /* a capture reads pinned staging; the caller's own pinned memory is waited for */
            const void *st = pinned ? NULL : dlc__staged(c, src, bytes);
            if (st) { DLC_CHECK(cudaMemcpyAsync(dst, st, bytes, cudaMemcpyHostToDevice, c->stream)); return DL_OK; }
            DLC_TRY(dlc__flush(c));
            if (!pinned) {              /* staging was short: twice what this capture needed, for the next one */
                size_t want = 2 * (c->stage_used + bytes + 256);
                void *p = NULL;
                DLC_CHECK(cudaStreamSynchronize(c->stream));
                if (c->stage) DLC_CHECK(cudaFreeHost(c->stage));
                c->stage = NULL;
                c->stage_cap = 0;
                DLC_CHECK(cudaMallocHost(&p, want));
                c->stage = (char *)p;
                c->stage_cap = want;
                c->stage_used = 0;
            }
        }
        DLC_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, c->stream));
        /* pageable memory is staged before the call returns; pinned memory is read later: wait for it */
        if (pinned) DLC_CHECK(cudaStreamSynchronize(c->stream));
    } else if (dir == DL_TO_HOST) {
        DLC_TRY(dlc__flush(c));
        DLC_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, c->stream));
        DLC_CHECK(cudaStreamSynchronize(c->stream));
        c->stage_used = 0;
    } else if (dir == DL_ON_DEVICE) {
        DLC_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, c->stream));
    } else return dlc__fail(c, DL_ERR_ARG, "copy: unknown direction %d", dir);
    return DL_OK;
}
static int dlc__zero(dl_backend *b, void *p, size_t bytes) {
    DLC_ENTER(b);
    if (bytes) DLC_CHECK(cudaMemsetAsync(p, 0, bytes, c->stream));
    return DL_OK;
}
static int dlc__forward(dl_backend *b, const dl_layer *l, const dl_exec *e) {
    DLC_ENTER(b);
    if (l->op < 0 || l->op >= DL_OP_COUNT) return dlc__fail(c, DL_ERR_UNSUPPORTED, "layer '%s': unknown op %d", l->name, l->op);
    return dlc__ops[l->op].forward(c, l, e);
}
static int dlc__backward(dl_backend *b, const dl_layer *l, const dl_exec *e) {
    DLC_ENTER(b);
    if (l->op < 0 || l->op >= DL_OP_COUNT) return dlc__fail(c, DL_ERR_UNSUPPORTED, "layer '%s': unknown op %d", l->name, l->op);
    return dlc__ops[l->op].backward(c, l, e);
}
/* The loss stays on the device; a pinned copy is queued and sync hands it over. */
static int dlc__loss(dl_backend *b, int kind, const float *out, const void *targets, int n, int size, float *dout, float *loss) {
    DLC_ENTER(b);
    if (kind == DL_LOSS_SOFTMAX_CE) {
        DLC_LAUNCH(dlk__softmax_cross_entropy, 1, out, (const int *)targets, n, size, dout, &c->dev_v->loss);
    } else if (kind == DL_LOSS_MEAN) {
        DLC_LAUNCH(dlk__batch_mean, 1, out, n, dout, &c->dev_v->loss);
    } else if (kind == DL_LOSS_NLL) {
        DLC_LAUNCH(dlk__nll, 1, out, (const int *)targets, n, size, dout, &c->dev_v->loss);
    } else if (kind == DL_LOSS_MSE) {
        size_t count = (size_t)n * size;
        unsigned parts = dlc__grid(count) < 1024 ? dlc__grid(count) : 1024;
        DLC_TRY(dlc__reserve_small(c, parts * sizeof(double)));
        DLC_LAUNCH(dlk__mse, parts, out, (const float *)targets, count, (float)count, dout, (double *)c->small);
        DLC_LAUNCH(dlk__mse_total, 1, (const double *)c->small, (int)parts, (double)count, &c->dev_v->loss);
    } else return dlc__fail(c, DL_ERR_ARG, "loss: unknown kind %d", kind);
    DLC_CHECK(cudaMemcpyAsync(&c->host_v->loss, &c->dev_v->loss, sizeof(float), cudaMemcpyDeviceToHost, c->stream));
    c->pending_loss = loss;
    return DL_OK;
}
/* The host's reading of the verdict; the guard's failure has no message (dl.h finds which check failed). */
static int dlc__verdict(dlc *c) {
    int ok = c->host_v->ok;
    if (ok == 1) return DL_OK;
    if (ok == 2) return dlc__fail(c, DL_ERR_NUMERIC, "%s", "");
    if (ok == 0) return dlc__fail(c, DL_ERR_NUMERIC, "a gradient is not finite");
    return dlc__fail(c, DL_ERR_NUMERIC, "the update would make a parameter or the optimizer's state infinite or NaN "
                     "(diverged? a smaller learning rate may help)");
}
static int dlc__optim_step(dl_backend *b, const dl_optim_job *job) {
    DLC_ENTER(b);
    int R = job->n_ranges, X, r, rc, wait;
    size_t maxlen = 0;
    if (R <= 0) return DL_OK;           /* everything frozen */
    for (r = 0; r < R; r++) if (job->range_len[r] > maxlen) maxlen = job->range_len[r];
    X = (int)((maxlen + 4 * DLC_T - 1) / (4 * DLC_T));
    X = X < 1 ? 1 : X > 1024 ? 1024 : X;
    if ((size_t)R * X > 65536) X = R >= 65536 ? 1 : 65536 / R;
    DLC_TRY(dlc__reserve_small(c, (((2 * (size_t)R * sizeof(size_t)) + 255) & ~(size_t)255) + (size_t)R * X * sizeof(double)));
    if (c->host_ranges_cap < 2 * (size_t)R) {       /* no copy reads it: every step ends waiting */
        void *p = NULL;
        DLC_TRY(dlc__flush(c));
        DLC_CHECK(cudaStreamSynchronize(c->stream));
        if (c->host_ranges) DLC_CHECK(cudaFreeHost(c->host_ranges));
        c->host_ranges = NULL;
        c->host_ranges_cap = 0;
        DLC_CHECK(cudaMallocHost(&p, 2 * (size_t)R * sizeof(size_t)));
        c->host_ranges = (size_t *)p;
        c->host_ranges_cap = 2 * (size_t)R;
    }
    memcpy(c->host_ranges, job->range_off, (size_t)R * sizeof(size_t));
    memcpy(c->host_ranges + R, job->range_len, (size_t)R * sizeof(size_t));
    rc = dlc__optim_queue(c, job, X);
    if (c->armed && !rc) return DL_OK;  /* the sync that ends the step waits, and reports */
    wait = dlc__wait(c);                /* always, so the staging is free again */
    if (rc || (rc = wait)) return rc;
    return dlc__verdict(c);
}
/* dl_backend.graph: slot 0 a training step, 1 a prediction starts; -1 ends any capture (launching it). */
static int dlc__graph(dl_backend *b, int slot) {
    DLC_ENTER(b);
    if (slot < 0 || !c->graphs) return dlc__flush(c);
    if (slot > 1) return dlc__fail(c, DL_ERR_ARG, "graph: slot %d", slot);
    DLC_TRY(dlc__flush(c));
    c->slot = slot;
    DLC_CHECK(cudaStreamBeginCapture(c->stream, cudaStreamCaptureModeThreadLocal));
    c->capturing = 1;
    return DL_OK;
}
/* Queued after the loss, before backward: the step's one wait is then the sync that ends it. */
static int dlc__guard(dl_backend *b, const float *stats, size_t n) {
    DLC_ENTER(b);
    DLC_LAUNCH(dlk__step_guard, 1, stats, n, c->dev_v);
    c->armed = 1;
    return DL_OK;
}
static int dlc__sync(dl_backend *b) {
    DLC_ENTER(b);
    float *dst = c->pending_loss;
    int armed = c->armed;
    c->pending_loss = NULL;
    c->armed = 0;
    DLC_TRY(dlc__flush(c));
    if (armed) DLC_CHECK(cudaMemcpyAsync(&c->host_v->ok, &c->dev_v->ok, sizeof(int), cudaMemcpyDeviceToHost, c->stream));
    DLC_CHECK(cudaStreamSynchronize(c->stream));
    c->stage_used = 0;
    if (dst) *dst = c->host_v->loss;
    return armed ? dlc__verdict(c) : DL_OK;
}
static void dlc__destroy(dl_backend *b) {
    dlc *c = dlc__of(b);
    if (!c) return;
    cudaSetDevice(c->device);
    dlc__flush(c);
    if (c->stream) cudaStreamSynchronize(c->stream);
    for (int k = 0; k < 2; k++) if (c->exec[k]) cudaGraphExecDestroy(c->exec[k]);
    if (c->stage) cudaFreeHost(c->stage);
    if (c->blas_ws) cudaFree(c->blas_ws);
    if (c->blas) cublasDestroy(c->blas);
    if (c->stream) cudaStreamDestroy(c->stream);
    if (c->big) cudaFree(c->big);
    if (c->small) cudaFree(c->small);
    if (c->dev_v) cudaFree(c->dev_v);
    if (c->host_v) cudaFreeHost(c->host_v);
    if (c->host_ranges) cudaFreeHost(c->host_ranges);
    cudaGetLastError();
    delete c;
}

/* ======================================================================== */
/*  Construction                                                            */
/* ======================================================================== */
static void dlc__status(dl_status *st, int code, const char *fmt, ...) {
    va_list ap;
    if (!st) return;
    st->code = code;
    va_start(ap, fmt);
    vsnprintf(st->msg, sizeof st->msg, fmt, ap);
    va_end(ap);
}
static __global__ void dlk__probe(dlc_verdict *v) {
    if (blockIdx.x == 0 && threadIdx.x == 0) { v->ok = 1; v->clip = 1.0f; v->loss = 0.0f; v->pad = 0; }
}
static int dlc__start(dlc *c) {
    cublasStatus_t s;
    void *p = NULL;
    DLC_CHECK(cudaSetDevice(c->device));
    DLC_CHECK(cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking));
    if ((s = cublasCreate(&c->blas)) != CUBLAS_STATUS_SUCCESS) { c->blas = NULL; return dlc__blas(c, s, "cublasCreate", __LINE__); }
    if ((s = cublasSetStream(c->blas, c->stream)) != CUBLAS_STATUS_SUCCESS) return dlc__blas(c, s, "cublasSetStream", __LINE__);
    /* plain float32 GEMMs (no TF32, until dl_cuda_set_tf32), so results stay within float rounding of the CPU's */
    if ((s = cublasSetMathMode(c->blas, CUBLAS_DEFAULT_MATH)) != CUBLAS_STATUS_SUCCESS) return dlc__blas(c, s, "cublasSetMathMode", __LINE__);
    DLC_CHECK(cudaMalloc(&p, sizeof(dlc_verdict)));
    c->dev_v = (dlc_verdict *)p;
    DLC_CHECK(cudaMallocHost(&p, sizeof(dlc_verdict)));
    c->host_v = (dlc_verdict *)p;
    memset(c->host_v, 0, sizeof *c->host_v);
    /* a first kernel, so a device these kernels were not built for fails here, not mid-training */
    DLC_LAUNCH(dlk__probe, 1, c->dev_v);
    DLC_CHECK(cudaStreamSynchronize(c->stream));
    if (c->graphs) {                    /* cuBLAS's calls are capturable with a workspace of its own (32 MB: Hopper's advice) */
        DLC_CHECK(cudaMalloc(&c->blas_ws, (size_t)32 << 20));
        if ((s = cublasSetWorkspace(c->blas, c->blas_ws, (size_t)32 << 20)) != CUBLAS_STATUS_SUCCESS)
            return dlc__blas(c, s, "cublasSetWorkspace", __LINE__);
    }
    return DL_OK;
}

/* dl_cuda_backend_new, its messages naming call. A machine without a GPU
   (no device, or no driver: the runtime then says "driver version is
   insufficient") is told apart from one whose GPU fails. */
static dl_backend *dlc__new(int device, dl_status *st, const char *call) {
    int count = 0, rc;
    cudaError_t e = cudaGetDeviceCount(&count);
    dlc *c;
    if (st) { st->code = DL_OK; st->msg[0] = 0; }
    if (e == cudaErrorNoDevice || e == cudaErrorInsufficientDriver || (e == cudaSuccess && count <= 0)) {
        cudaGetLastError();
        dlc__status(st, DL_ERR_BACKEND, "%s: no CUDA device on this machine (%s%s%s)", call,
                    e != cudaSuccess ? cudaGetErrorName(e) : "the driver reports none", e != cudaSuccess ? ": " : "",
                    e != cudaSuccess ? cudaGetErrorString(e) : "");
        return NULL;
    }
    if (e != cudaSuccess) {
        cudaGetLastError();
        dlc__status(st, DL_ERR_BACKEND, "%s: no usable CUDA device: %s (%s)", call, cudaGetErrorString(e), cudaGetErrorName(e));
        return NULL;
    }
    if (device < 0 || device >= count) {
        dlc__status(st, DL_ERR_ARG, "%s: there is no CUDA device %d (found %d)", call, device, count);
        return NULL;
    }
    for (rc = 0; rc < DL_OP_COUNT; rc++)
        if (dlc__ops[rc].op != rc) {
            dlc__status(st, DL_ERR_BACKEND, "dl_cuda_backend_new: dlc__ops row %d holds op %d", rc, dlc__ops[rc].op);
            return NULL;
        }
    if (!(c = new (std::nothrow) dlc())) {
        dlc__status(st, DL_ERR_NOMEM, "%s: out of memory on the host", call);
        return NULL;
    }
    c->device = device;
    c->conv_scratch = getenv("DL_CUDA_CONV_SCRATCH") && atol(getenv("DL_CUDA_CONV_SCRATCH")) > 0
                      ? (size_t)atol(getenv("DL_CUDA_CONV_SCRATCH")) : DLC_CONV_SCRATCH;
    c->conv_algo = !getenv("DL_CUDA_CONV") ? DLC_CONV_IM2COL : !strcmp(getenv("DL_CUDA_CONV"), "auto") ? DLC_CONV_AUTO
                 : !strcmp(getenv("DL_CUDA_CONV"), "implicit") ? DLC_CONV_IMPLICIT : DLC_CONV_IM2COL;
    c->graphs = getenv("DL_CUDA_GRAPHS") && !strcmp(getenv("DL_CUDA_GRAPHS"), "1");
    c->b.name = "cuda";
    c->b.alloc = dlc__alloc;
    c->b.release = dlc__release;
    c->b.copy = dlc__copy;
    c->b.zero = dlc__zero;
    c->b.forward = dlc__forward;
    c->b.backward = dlc__backward;
    c->b.loss = dlc__loss;
    c->b.optim_step = dlc__optim_step;
    c->b.sync = dlc__sync;
    c->b.guard = dlc__guard;
    c->b.destroy = dlc__destroy;
    c->b.user = c;
    c->b.graph = dlc__graph;
    c->b.fuse = !getenv("DL_CUDA_FUSE") || strcmp(getenv("DL_CUDA_FUSE"), "0");   /* =0: every layer its own pass (gpu_check compares) */
    if ((rc = dlc__start(c)) != DL_OK) {
        dlc__status(st, rc, "%s: device %d: %s", call, device, c->b.error);
        dlc__destroy(&c->b);
        return NULL;
    }
    return &c->b;
}
extern "C" dl_backend *dl_cuda_backend_new(int device, dl_status *st) { return dlc__new(device, st, "dl_cuda_backend_new"); }

/* The math mode is read when a GEMM is queued: GEMMs queued before keep theirs. */
extern "C" int dl_cuda_set_tf32(dl_backend *b, int on) {
    cublasStatus_t s;
    if (!b) return DL_ERR_ARG;
    if (b->destroy != dlc__destroy) {
        snprintf(b->error, sizeof b->error, "dl_cuda_set_tf32: backend '%s' is not a CUDA backend", b->name ? b->name : "?");
        return DL_ERR_ARG;
    }
    DLC_ENTER(b);
    if (on != 0 && on != 1) return dlc__fail(c, DL_ERR_ARG, "dl_cuda_set_tf32: on is %d; 1 turns TF32 on, 0 off", on);
    if ((s = cublasSetMathMode(c->blas, on ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH)) != CUBLAS_STATUS_SUCCESS)
        return dlc__blas(c, s, "cublasSetMathMode", __LINE__);
    c->tf32 = on;                       /* convolutions then go through cuBLAS too */
    return DL_OK;
}


extern "C" int dl_cuda_use(dl_net *net, int device) {
    dl_backend *b = NULL, stub;
    dl_status st;
    int rc, on_cpu;
    if (!net) return DL_ERR_ARG;
    on_cpu = !strcmp(dl_net_backend(net)->name, "cpu");
    st.code = DL_OK;
    st.msg[0] = 0;
    if (on_cpu && (b = dlc__new(device, &st, "dl_cuda_use")) != NULL)
        return dl_net_to_backend(net, b);       /* on failure it destroys b; the net stays on the CPU */
    /* a backend that could not start (no alloc): dl_net_to_backend records
       its message in the net, which stays as it was */
    memset(&stub, 0, sizeof stub);
    stub.name = "cuda";
    snprintf(stub.error, sizeof stub.error, "%s", st.msg);
    rc = dl_net_to_backend(net, &stub);         /* off the CPU already: refused first */
    return on_cpu ? st.code : rc;
}
