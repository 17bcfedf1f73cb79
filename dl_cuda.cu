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
     DLC_CONV_SCRATCH floats.
   - Batchnorm: one kernel per layer computes the statistics (double sums),
     updates the running statistics and writes per-channel scale and shift;
     one elementwise pass applies them (normalize and affine fused).
   - Softmax cross-entropy: one kernel computes the softmax, the loss and
     dlogits together. MSE: one pass computes dout and partial sums.
   - The optimizer is four launches whatever the net: squared-norm partial
     sums, their total (which also decides clipping and finiteness on the
     device), a pass that computes the update without storing it (any value
     not finite vetoes the step, as in dl_optim_step_cpu), and one fused
     update over every range.
   - Maxpool keeps dl.h's saved layout (int32 argmax in the plane, per
     output); its backward and avgpool's are gathers, deterministic like the
     CPU's (the same additions in the same order).
   - Dropout masks come from the same hash as dl_dropout_keep, so GPU and CPU
     draw identical masks from identical seeds.

   SYNCHRONISATION
   Everything runs on one stream owned by the backend, so kernels never wait
   for the host. The host waits only where the interface needs an answer:
   copies to the host, sync (which also delivers the loss), and the end of
   optim_step, which must say whether a gradient or the update was not finite
   (the update kernel itself checks the device-side verdict, so nothing
   changes when one is not). A training step therefore waits twice: for the loss and for the
   optimizer's verdict. Copies from pageable host memory are staged by CUDA
   before cudaMemcpyAsync returns; copies from pinned memory are waited for,
   since the caller may reuse its buffer at once.

   LAUNCH OVERHEAD AND CUDA GRAPHS
   A training step of the reference CNN (conv 32, bn, prelu, maxpool,
   conv 64, bn, prelu, maxpool, dense 10) is about 60 stream operations: 16
   kernels forward (2 of them GEMMs), 1 for the loss, 23 backward (5 GEMMs),
   3 for the optimizer, and about 16 memsets and copies that the executor
   asks for (zeroing each layer's gradient, inputs, targets, the statistics
   backup). At a few microseconds of host time each, small batches are
   bound by launches rather than by the GPU. A CUDA graph per (plan,
   batch size) could replay forward + loss + backward + optimizer in one
   launch, but the interface forces two host waits inside a step (the loss
   check in dl_train_step and the optimizer verdict), so capture would need
   the executor to defer those checks to the next step. Not implemented.

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
    int ok;                             /* optimizer: 1 go; 0 a gradient, -1 the update is not finite */
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
    size_t conv_scratch;                /* floats; see DLC_CONV_SCRATCH */
} dlc;

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
#define DLC_RUN(kernel, grid, ...) dlc_emu_launch((grid), [&] { kernel(__VA_ARGS__); })
#else
#define DLC_RUN(kernel, grid, ...) kernel<<<(grid), DLC_T, 0, c->stream>>>(__VA_ARGS__)
#endif
#define DLC_LAUNCH(kernel, grid, ...) do {                                             \
        DLC_RUN(kernel, grid, __VA_ARGS__);                                            \
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

/* Grows one of the scratch buffers to at least bytes. Growing waits for the
   stream first, so no queued kernel still reads the old buffer. */
static int dlc__reserve(dlc *c, void **buf, size_t *cap, size_t bytes) {
    void *p = NULL;
    if (bytes <= *cap) return DL_OK;
    bytes += bytes / 2;
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

/* ---- dense: y[n,o] = sum_i W[o,i] x[n,i] + b[o];  x (N,I), W (O,I), b (O) ---- */
static __global__ void dlk__dense_bias_forward(float *y, const float *b, int O, size_t total) {
    DLC_FOR(i, total) y[i] += b[i % O];
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
    DLC_TRY(dlc__sgemm(c, 0, 1, e->n, O, I, 1.0f, e->in[0], I, 0, e->w[0], I, 0, 0.0f, e->out, O, 0, 1));
    if (l->a.bias) DLC_EACH(dlk__dense_bias_forward, total, e->out, e->w[1], O, total);
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
/* y[nl][m][p] = Yt[m][nl*P + p] + b[m]: back to NCHW with the bias fused in */
static __global__ void dlk__conv2d_output(const float *yt, const float *b, int M, int P, int nb, size_t total, float *y) {
    DLC_FOR(i, total) {
        int p = (int)(i % P), m = (int)(i / P % M), nl = (int)(i / ((size_t)P * M));
        float v = yt[((size_t)m * nb + nl) * P + p];
        y[i] = b ? v + b[m] : v;
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

/* Samples per chunk so that columns and the transposed output fit the scratch. */
static int dlc__conv_chunk(dlc *c, const dlc_conv *g, int n, int *nb) {
    size_t per = (size_t)g->C * g->KH * g->KW * g->P + (size_t)g->M * g->P, k = c->conv_scratch / per;
    if (per > (size_t)0x7fffffff)
        return dlc__fail(c, DL_ERR_UNSUPPORTED, "conv2d: one sample needs %lu floats of columns; at most 2^31 are supported",
                         (unsigned long)per);
    *nb = k < 1 ? 1 : k > (size_t)n ? n : (int)k;
    return dlc__reserve_big(c, (size_t)*nb * per);
}

static int dlc__conv2d_forward(dlc *c, const dl_layer *l, const dl_exec *e) {
    dlc_conv g = dl_layer_conv_geom(l);
    size_t col_per = (size_t)g.C * g.KH * g.KW * g.P, out_per = (size_t)g.M * g.P, in_per = (size_t)g.C * g.H * g.W;
    int nb = 1, n0;
    float *col, *yt;
    DLC_TRY(dlc__conv_chunk(c, &g, e->n, &nb));
    col = (float *)c->big;
    yt = col + (size_t)nb * col_per;
    for (n0 = 0; n0 < e->n; n0 += nb) {
        int k = e->n - n0 < nb ? e->n - n0 : nb, kP = k * g.P;
        DLC_EACH(dlk__conv2d_im2col, k * col_per, g, e->in[0] + n0 * in_per, k, k * col_per, col);
        /* Yt_g (Mg x kP) = W_g (Mg x K) col_g (K x kP), every group in one call */
        DLC_TRY(dlc__sgemm(c, 0, 0, g.Mg, kP, g.K, 1.0f, e->w[0], g.K, (long long)g.Mg * g.K, col, kP, (long long)g.K * kP,
                           0.0f, yt, kP, (long long)g.Mg * kP, g.G));
        DLC_EACH(dlk__conv2d_output, k * out_per, yt, l->a.bias ? e->w[1] : NULL, g.M, g.P, k, k * out_per,
                 e->out + n0 * out_per);
    }
    return DL_OK;
}
static int dlc__conv2d_backward(dlc *c, const dl_layer *l, const dl_exec *e) {
    dlc_conv g = dl_layer_conv_geom(l);
    size_t col_per = (size_t)g.C * g.KH * g.KW * g.P, out_per = (size_t)g.M * g.P, in_per = (size_t)g.C * g.H * g.W;
    int nb = 1, n0, dbias = l->a.bias && e->dw[1];
    float *col, *dyt;
    if (!e->din[0] && !e->dw[0] && !dbias) return DL_OK;
    DLC_TRY(dlc__conv_chunk(c, &g, e->n, &nb));
    col = (float *)c->big;
    dyt = col + (size_t)nb * col_per;
    for (n0 = 0; n0 < e->n; n0 += nb) {
        int k = e->n - n0 < nb ? e->n - n0 : nb, kP = k * g.P;
        DLC_EACH(dlk__conv2d_dout_t, k * out_per, e->dout + n0 * out_per, g.M, g.P, k, k * out_per, dyt);
        if (dbias) DLC_LAUNCH(dlk__conv2d_bias_backward, (unsigned)g.M, dyt, (size_t)kP, e->dw[1]);
        if (e->dw[0]) {     /* dW_g (Mg x K) += dYt_g (Mg x kP) col_g^T */
            DLC_EACH(dlk__conv2d_im2col, k * col_per, g, e->in[0] + n0 * in_per, k, k * col_per, col);
            DLC_TRY(dlc__sgemm(c, 0, 1, g.Mg, g.K, kP, 1.0f, dyt, kP, (long long)g.Mg * kP, col, kP, (long long)g.K * kP,
                               1.0f, e->dw[0], g.K, (long long)g.Mg * g.K, g.G));
        }
        if (e->din[0]) {    /* dcol_g (K x kP) = W_g^T dYt_g, gathered into dx */
            DLC_TRY(dlc__sgemm(c, 1, 0, g.K, kP, g.Mg, 1.0f, e->w[0], g.K, (long long)g.Mg * g.K, dyt, kP, (long long)g.Mg * kP,
                               0.0f, col, kP, (long long)g.K * kP, g.G));
            DLC_EACH(dlk__conv2d_col2im, k * in_per, g, col, k, k * in_per, e->din[0] + n0 * in_per);
        }
    }
    return DL_OK;
}

/* ---- pooling geometry ---- */
typedef struct dlc_pool { int H, W, OH, OW, KH, KW, sh, sw, ph, pw; } dlc_pool;
static dlc_pool dlc__pool_geom(const dl_layer *l) {
    dlc_pool g;
    int C;
    dlc__chw(l->in[0], &C, &g.H, &g.W);
    g.OH = l->shape[1]; g.OW = l->shape[2];
    g.KH = l->a.kernel[0]; g.KW = l->a.kernel[1];
    g.sh = l->a.stride[0]; g.sw = l->a.stride[1];
    g.ph = l->a.pad[0]; g.pw = l->a.pad[1];
    return g;
}
/* The outputs whose (unclipped) window holds input row ih: oh*s - p <= ih < oh*s - p + k. */
static __device__ void dlc__pool_range(int ih, int k, int s, int p, int on, int *lo, int *hi) {
    int t = ih + p - k;
    *lo = t < 0 ? 0 : t / s + 1;
    *hi = (ih + p) / s;
    if (*hi > on - 1) *hi = on - 1;
}

/* ---- maxpool2d: y = max over the window (padding is -inf); saved: int32
   index in the input plane of each output's maximum. (N,C,H,W) -> (N,C,OH,OW) ---- */
static __global__ void dlk__maxpool2d_forward(dlc_pool g, const float *x, size_t total, float *y, int *arg) {
    DLC_FOR(o, total) {
        int ow = (int)(o % g.OW), oh = (int)(o / g.OW % g.OH), i, j, best = -1;
        const float *xp = x + o / ((size_t)g.OW * g.OH) * g.H * g.W;
        int h0 = oh * g.sh - g.ph, w0 = ow * g.sw - g.pw;
        float m = -INFINITY;
        for (i = h0 < 0 ? 0 : h0; i < h0 + g.KH && i < g.H; i++)
            for (j = w0 < 0 ? 0 : w0; j < w0 + g.KW && j < g.W; j++) {
                float v = xp[i * g.W + j];
                if (best < 0 || v > m || v != v) { m = v; best = i * g.W + j; }
            }
        y[o] = m;
        if (arg) arg[o] = best;
    }
}
/* dx[i] += dy[o] for every output o whose maximum was i, in increasing o */
static __global__ void dlk__maxpool2d_backward(dlc_pool g, const float *dy, const int *arg, size_t total, float *dx) {
    DLC_FOR(i, total) {
        int iw = (int)(i % g.W), ih = (int)(i / g.W % g.H), self = ih * g.W + iw, oh0, oh1, ow0, ow1, oh, ow;
        size_t plane = i / ((size_t)g.W * g.H) * g.OH * g.OW;
        float acc = dx[i];
        dlc__pool_range(ih, g.KH, g.sh, g.ph, g.OH, &oh0, &oh1);
        dlc__pool_range(iw, g.KW, g.sw, g.pw, g.OW, &ow0, &ow1);
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

/* ---- avgpool2d: y = mean over the window, zero padding counted; windows are
   clipped to the padded input (dl.h's dl__avgpool_window) ---- */
static __device__ int dlc__avgpool_window(const dlc_pool *g, int oh, int ow, int *h0, int *h1, int *w0, int *w1) {
    int hs = oh * g->sh - g->ph, ws = ow * g->sw - g->pw;
    int he = hs + g->KH, we = ws + g->KW;
    if (he > g->H + g->ph) he = g->H + g->ph;
    if (we > g->W + g->pw) we = g->W + g->pw;
    *h0 = hs < 0 ? 0 : hs; *w0 = ws < 0 ? 0 : ws;
    *h1 = he > g->H ? g->H : he; *w1 = we > g->W ? g->W : we;
    return (he - hs) * (we - ws);
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

/* ---- batchnorm over channel c (dim 0) of (N,C,S); w = gamma, beta,
   running_mean, running_var; saved = mean[C], invstd[C]. One block per
   channel computes the statistics in double (the CPU's formulas), updates the
   running ones (variance unbiased) and leaves scale and shift in ss[2C]. ---- */
static __global__ void dlk__batchnorm_stats(const float *x, int N, int C, int S, int train, float eps, float momentum,
                                            const float *gamma, const float *beta, float *rmean, float *rvar,
                                            float *saved, float *ss) {
    int c = blockIdx.x;
    size_t M = (size_t)N * S, k;
    double mean, var;
    if (train) {
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
/* dgamma += sum dy*xhat, dbeta += sum dy; k[2C] = the batch means of both (0 in eval) */
static __global__ void dlk__batchnorm_backward_stats(const float *x, const float *dy, int N, int C, int S, int train,
                                                     const float *saved, float *dgamma, float *dbeta, float *k) {
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
        k[c] = train ? (float)(sdy / (double)M) : 0.0f;
        k[C + c] = train ? (float)(sdyx / (double)M) : 0.0f;
    }
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
    int C = l->shape[0], S = l->size / C;
    size_t total = (size_t)e->n * l->size;
    float *ss;
    DLC_TRY(dlc__reserve_small(c, 2 * (size_t)C * sizeof(float)));
    ss = (float *)c->small;
    DLC_LAUNCH(dlk__batchnorm_stats, (unsigned)C, e->in[0], e->n, C, S, e->train, l->a.eps, l->a.momentum,
               e->w[0], e->w[1], e->w[2], e->w[3], e->saved, ss);
    DLC_EACH(dlk__batchnorm_apply, total, e->in[0], C, S, total, ss, e->out);
    return DL_OK;
}
static int dlc__batchnorm_backward(dlc *c, const dl_layer *l, const dl_exec *e) {
    int C = l->shape[0], S = l->size / C;
    size_t total = (size_t)e->n * l->size;
    float *k;
    if (!e->din[0] && !e->dw[0] && !e->dw[1]) return DL_OK;
    DLC_TRY(dlc__reserve_small(c, 2 * (size_t)C * sizeof(float)));
    k = (float *)c->small;
    DLC_LAUNCH(dlk__batchnorm_backward_stats, (unsigned)C, e->in[0], e->dout, e->n, C, S, e->train, e->saved,
               e->dw[0], e->dw[1], k);
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
static __device__ void dlc__unused(float, float, float) {}   /* each formula reads only some of a, x, y */
#define DLC_ELEMENTWISE(name, fwd, bwd)                                                               \
    static __global__ void dlk__##name##_forward(const float *in, size_t total, float a, float *out) {  \
        DLC_FOR(i, total) { float x = in[i]; dlc__unused(a, x, x); out[i] = (fwd); }                   \
    }                                                                                                 \
    static __global__ void dlk__##name##_backward(const float *in, const float *out, const float *dout, \
                                                  size_t total, float a, float *din) {                \
        DLC_FOR(i, total) {                                                                           \
            float x = in[i], y = out[i], dy = dout[i];                                                \
            dlc__unused(a, x, y);                                                                     \
            din[i] += (bwd);                                                                          \
        }                                                                                             \
    }
DLC_ELEMENTWISE(relu, x > 0 ? x : 0.0f, x > 0 ? dy : 0.0f)                    /* max(0, x) */
DLC_ELEMENTWISE(leaky_relu, x > 0 ? x : a * x, x > 0 ? dy : a * dy)           /* x > 0 ? x : a x */
DLC_ELEMENTWISE(elu, x > 0 ? x : a * expm1f(x), x > 0 ? dy : dy * (y + a))    /* x > 0 ? x : a (e^x - 1) */
DLC_ELEMENTWISE(sigmoid, 1.0f / (1.0f + expf(-x)), dy * y * (1.0f - y))       /* 1 / (1 + e^-x) */
DLC_ELEMENTWISE(tanh, tanhf(x), dy * (1.0f - y * y))                          /* tanh x */

#define DLC_ELEMENTWISE_HOST(name)                                                                    \
    static int dlc__##name##_forward(dlc *c, const dl_layer *l, const dl_exec *e) {                   \
        size_t total = (size_t)e->n * l->size;                                                        \
        DLC_EACH(dlk__##name##_forward, total, e->in[0], total, l->a.alpha, e->out);                  \
        return DL_OK;                                                                                 \
    }                                                                                                 \
    static int dlc__##name##_backward(dlc *c, const dl_layer *l, const dl_exec *e) {                  \
        size_t total = (size_t)e->n * l->size;                                                        \
        if (!e->din[0]) return DL_OK;                                                                 \
        DLC_EACH(dlk__##name##_backward, total, e->in[0], e->out, e->dout, total, l->a.alpha, e->din[0]); \
        return DL_OK;                                                                                 \
    }
DLC_ELEMENTWISE_HOST(relu)
DLC_ELEMENTWISE_HOST(leaky_relu)
DLC_ELEMENTWISE_HOST(elu)
DLC_ELEMENTWISE_HOST(sigmoid)
DLC_ELEMENTWISE_HOST(tanh)

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
static int dlc__add_forward(dlc *c, const dl_layer *l, const dl_exec *e) {
    size_t total = (size_t)e->n * l->size;
    dlc_inputs in;
    int i;
    if (l->n_in > 64) return dlc__fail(c, DL_ERR_UNSUPPORTED, "add: %d inputs; at most 64", l->n_in);
    for (i = 0; i < l->n_in; i++) in.p[i] = e->in[i];
    DLC_EACH(dlk__add_forward, total, in, l->n_in, total, e->out);
    return DL_OK;
}
static int dlc__add_backward(dlc *c, const dl_layer *l, const dl_exec *e) {
    size_t total = (size_t)e->n * l->size;
    int i;
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
    DLC_EACH(dlk__mul_forward, total, e->in[0], e->in[1], total, e->out);
    return DL_OK;
}
static int dlc__mul_backward(dlc *c, const dl_layer *l, const dl_exec *e) {
    size_t total = (size_t)e->n * l->size;
    if (!e->din[0] && !e->din[1]) return DL_OK;
    DLC_EACH(dlk__mul_backward, total, e->in[0], e->in[1], e->dout, total, e->din[0], e->din[1]);
    return DL_OK;
}

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
    DLC_CHECK(cudaStreamSynchronize(c->stream));
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
static const struct { dlc__kernel forward, backward; } dlc__ops[DL_OP_COUNT] = {   /* dl.h's dl__cpu_ops */
    { dlc__input_forward, dlc__input_backward },
    { dlc__dense_forward, dlc__dense_backward },
    { dlc__conv2d_forward, dlc__conv2d_backward },
    { dlc__maxpool2d_forward, dlc__maxpool2d_backward },
    { dlc__avgpool2d_forward, dlc__avgpool2d_backward },
    { dlc__global_avgpool_forward, dlc__global_avgpool_backward },
    { dlc__batchnorm_forward, dlc__batchnorm_backward },
    { dlc__dropout_forward, dlc__dropout_backward },
    { dlc__reshape_forward, dlc__reshape_backward },
    { dlc__relu_forward, dlc__relu_backward },
    { dlc__leaky_relu_forward, dlc__leaky_relu_backward },
    { dlc__elu_forward, dlc__elu_backward },
    { dlc__prelu_forward, dlc__prelu_backward },
    { dlc__sigmoid_forward, dlc__sigmoid_backward },
    { dlc__tanh_forward, dlc__tanh_backward },
    { dlc__softmax_forward, dlc__softmax_backward },
    { dlc__add_forward, dlc__add_backward },
    { dlc__concat_forward, dlc__concat_backward },
    { dlc__mul_forward, dlc__mul_backward },
    { dlc__matmul_forward, dlc__matmul_backward },
    { dlc__custom_forward, dlc__custom_backward },
};

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

/* ======================================================================== */
/*  Optimizers: dl_optim_step_cpu, over ranges, X blocks per range           */
/* ======================================================================== */
typedef struct dlc_optim {
    int kind, nesterov, has_mom, centered;
    float lr, wd, momentum, beta1, beta2, eps, alpha, step_size, bc2_sqrt;
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
/* The verdict the update and the host read: all finite? and the clipping factor */
static __global__ void dlk__optim_norm(const double *part, int parts, float clip_norm, dlc_verdict *v) {
    double sq = 0;
    for (int k = threadIdx.x; k < parts; k += blockDim.x) sq += part[k];
    sq = dlc__block_sum(sq);
    if (threadIdx.x == 0) {
        float clip = 1.0f;
        if (clip_norm > 0 && sqrt(sq) > clip_norm) clip = (float)(clip_norm / (sqrt(sq) + 1e-6));
        v->ok = sq <= DBL_MAX;          /* false for inf and NaN */
        v->clip = clip;
    }
}
static __device__ __forceinline__ int dlc__finite(float x) { return fabsf(x) <= FLT_MAX; }
/* One float's update, PyTorch's rules as in dl_optim_step_cpu: commit 0
   computes it and says whether every new value is finite; commit 1 stores. */
static __device__ __forceinline__ int dlc__optim_one(const dlc_optim &o, float clip, int commit, size_t i, float *w, float *g,
                                                     float *s0, float *s1, float *s2) {
    float *mom_buf = o.kind == DL_SGD ? s0 : s1, *mean_g = o.has_mom ? s2 : s1;
    float gc = g[i] * clip, wi = w[i];
    if (o.kind == DL_SGD) {             /* b = mu b + g;  w -= lr (nesterov ? g + mu b : b) */
        float gi = gc + o.wd * wi, bi = 0;
        if (o.has_mom) { bi = o.momentum * mom_buf[i] + gi; gi = o.nesterov ? gi + o.momentum * bi : bi; }
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
    o.beta1 = d->beta1; o.beta2 = d->beta2; o.eps = d->eps; o.alpha = d->alpha;
    o.step_size = (float)(job->lr / (1.0 - pow(d->beta1, (double)job->step)));
    o.bc2_sqrt = (float)sqrt(1.0 - pow(d->beta2, (double)job->step));
    DLC_CHECK(cudaMemcpyAsync(off, c->host_ranges, 2 * (size_t)R * sizeof(size_t), cudaMemcpyHostToDevice, c->stream));
    DLC_LAUNCH(dlk__optim_sumsq, (unsigned)(R * X), job->g, off, len, X, part);
    DLC_LAUNCH(dlk__optim_norm, 1, part, R * X, d->clip_norm, c->dev_v);
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
    cudaStreamSynchronize(c->stream);   /* queued kernels may still use p */
    cudaFree(p);
    cudaGetLastError();                 /* release cannot report; keep the error from the next call */
}
static int dlc__copy(dl_backend *b, void *dst, const void *src, size_t bytes, int dir) {
    DLC_ENTER(b);
    if (!bytes) return DL_OK;
    if (dir == DL_TO_DEVICE) {
        cudaPointerAttributes at;
        DLC_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, c->stream));
        /* pageable memory is staged before the call returns; pinned memory is read later: wait for it */
        if (cudaPointerGetAttributes(&at, src) != cudaSuccess) cudaGetLastError();
        else if (at.type != cudaMemoryTypeUnregistered) DLC_CHECK(cudaStreamSynchronize(c->stream));
    } else if (dir == DL_TO_HOST) {
        DLC_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, c->stream));
        DLC_CHECK(cudaStreamSynchronize(c->stream));
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
    wait = dlc__wait(c);                /* always, so the staging is free again */
    if (rc || (rc = wait)) return rc;
    if (c->host_v->ok == 0) return dlc__fail(c, DL_ERR_NUMERIC, "a gradient is not finite");
    if (c->host_v->ok != 1)
        return dlc__fail(c, DL_ERR_NUMERIC, "the update would make a parameter or the optimizer's state infinite or NaN "
                         "(diverged? a smaller learning rate may help)");
    return DL_OK;
}
static int dlc__sync(dl_backend *b) {
    DLC_ENTER(b);
    float *dst = c->pending_loss;
    c->pending_loss = NULL;
    DLC_CHECK(cudaStreamSynchronize(c->stream));
    if (dst) *dst = c->host_v->loss;
    return DL_OK;
}
static void dlc__destroy(dl_backend *b) {
    dlc *c = dlc__of(b);
    if (!c) return;
    cudaSetDevice(c->device);
    if (c->stream) cudaStreamSynchronize(c->stream);
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
    /* plain float32 GEMMs (no TF32), so results stay within float rounding of the CPU's */
    if ((s = cublasSetMathMode(c->blas, CUBLAS_DEFAULT_MATH)) != CUBLAS_STATUS_SUCCESS) return dlc__blas(c, s, "cublasSetMathMode", __LINE__);
    DLC_CHECK(cudaMalloc(&p, sizeof(dlc_verdict)));
    c->dev_v = (dlc_verdict *)p;
    DLC_CHECK(cudaMallocHost(&p, sizeof(dlc_verdict)));
    c->host_v = (dlc_verdict *)p;
    memset(c->host_v, 0, sizeof *c->host_v);
    /* a first kernel, so a device these kernels were not built for fails here, not mid-training */
    DLC_LAUNCH(dlk__probe, 1, c->dev_v);
    DLC_CHECK(cudaStreamSynchronize(c->stream));
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
    if (!(c = new (std::nothrow) dlc())) {
        dlc__status(st, DL_ERR_NOMEM, "%s: out of memory on the host", call);
        return NULL;
    }
    c->device = device;
    c->conv_scratch = getenv("DL_CUDA_CONV_SCRATCH") && atol(getenv("DL_CUDA_CONV_SCRATCH")) > 0
                      ? (size_t)atol(getenv("DL_CUDA_CONV_SCRATCH")) : DLC_CONV_SCRATCH;
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
    c->b.destroy = dlc__destroy;
    c->b.user = c;
    if ((rc = dlc__start(c)) != DL_OK) {
        dlc__status(st, rc, "%s: device %d: %s", call, device, c->b.error);
        dlc__destroy(&c->b);
        return NULL;
    }
    return &c->b;
}
extern "C" dl_backend *dl_cuda_backend_new(int device, dl_status *st) { return dlc__new(device, st, "dl_cuda_backend_new"); }


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
