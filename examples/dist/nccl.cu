/* nccl.cu - dl.h's data-parallel hook on NCCL: gradients all-reduced where
 * they live, in GPU memory. The contract is in dist_nccl.h; the training program
 * is examples/dist/mpi.c built with -DDIST_NCCL (`make dist-nccl`), which
 * launches one process per GPU with mpirun, broadcasts the NCCL unique id
 * over MPI and trains with --gpu --reduce fast.
 */
#include <cuda_runtime.h>
#include <nccl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "dl.h"
#include "dist_nccl.h"

struct dist_nccl {
    ncclComm_t comm;
    cudaStream_t stream;
    int size;
    double timeout;
    float *scratch;         /* one float on the device, for host buffers (the loss) */
    char err[256];
};

typedef char dist_nccl_id_fits[sizeof(ncclUniqueId) == DIST_NCCL_ID_BYTES ? 1 : -1];

static double dist_nccl_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* buf /= size: the mean, computed as the contract says (sum, then divide). */
__global__ static void dist_nccl_divide(float *buf, size_t n, float size) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) buf[i] /= size;
}

int dist_nccl_unique_id(unsigned char id[DIST_NCCL_ID_BYTES], char *err, size_t errlen) {
    ncclUniqueId u;
    ncclResult_t r = ncclGetUniqueId(&u);
    if (r != ncclSuccess) { snprintf(err, errlen, "ncclGetUniqueId: %s", ncclGetErrorString(r)); return -1; }
    memcpy(id, &u, sizeof u);
    return 0;
}

dist_nccl *dist_nccl_new(const unsigned char id[DIST_NCCL_ID_BYTES], int rank, int size, int device, double timeout,
                         char *err, size_t errlen) {
    dist_nccl *c = (dist_nccl *)calloc(1, sizeof *c);
    ncclUniqueId u;
    ncclResult_t r;
    cudaError_t e;
    if (!c) { snprintf(err, errlen, "out of memory"); return NULL; }
    memcpy(&u, id, sizeof u);
    c->size = size;
    c->timeout = timeout;
    if ((e = cudaSetDevice(device)) != cudaSuccess || (e = cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking)) != cudaSuccess ||
        (e = cudaMalloc((void **)&c->scratch, sizeof(float))) != cudaSuccess) {
        snprintf(err, errlen, "GPU %d: %s", device, cudaGetErrorString(e));
        free(c);
        return NULL;
    }
    if ((r = ncclCommInitRank(&c->comm, size, u, rank)) != ncclSuccess) {
        snprintf(err, errlen, "ncclCommInitRank (rank %d of %d, GPU %d): %s", rank, size, device, ncclGetErrorString(r));
        cudaFree(c->scratch);
        cudaStreamDestroy(c->stream);
        free(c);
        return NULL;
    }
    return c;
}

/* Waits for the adapter's stream; past the deadline, or on an asynchronous
   NCCL error (a peer gone), aborts the communicator. */
static int dist_nccl_wait(dist_nccl *c, const char *what) {
    double deadline = dist_nccl_now() + c->timeout;
    struct timespec pause_ = {0, 100000};
    for (;;) {
        cudaError_t e = cudaStreamQuery(c->stream);
        ncclResult_t async = ncclSuccess;
        if (e == cudaSuccess) return 0;
        if (e != cudaErrorNotReady) { snprintf(c->err, sizeof c->err, "%s: %s", what, cudaGetErrorString(e)); return -1; }
        ncclCommGetAsyncError(c->comm, &async);
        if (async != ncclSuccess || dist_nccl_now() > deadline) {
            snprintf(c->err, sizeof c->err, "%s: %s", what, async != ncclSuccess ? ncclGetErrorString(async)
                     : "timed out: another rank died or hangs");
            ncclCommAbort(c->comm);
            c->comm = NULL;
            return -1;
        }
        nanosleep(&pause_, NULL);
    }
}

/* The failure's reason goes to stderr too: dl.h only sees the code. */
static int dist_nccl_fail(dist_nccl *c, int code, const char *what, const char *why) {
    if (why) snprintf(c->err, sizeof c->err, "%s: %s", what, why);
    fprintf(stderr, "dist_nccl: %s\n", c->err);
    return code;
}

int dist_nccl_collective(float *buf, size_t count, int op, int on_device, void *user) {
    dist_nccl *c = (dist_nccl *)user;
    const char *what = op == DL_BROADCAST ? "ncclBroadcast" : "ncclAllReduce";
    float *d = buf;
    cudaError_t e;
    ncclResult_t r;
    if (!c->comm) return dist_nccl_fail(c, 1, what, "the communicator was aborted earlier");
    if (!on_device) {
        if (count != 1) return dist_nccl_fail(c, 2, what, "a host buffer of more than one float");   /* dl.h hands only the loss */
        if ((e = cudaMemcpy(c->scratch, buf, sizeof(float), cudaMemcpyHostToDevice)) != cudaSuccess)
            return dist_nccl_fail(c, 3, what, cudaGetErrorString(e));
        d = c->scratch;
    }
    if ((e = cudaDeviceSynchronize()) != cudaSuccess)        /* the backend's stream wrote buf */
        return dist_nccl_fail(c, 3, what, cudaGetErrorString(e));
    r = op == DL_BROADCAST ? ncclBroadcast(d, d, count, ncclFloat, 0, c->comm, c->stream)
                           : ncclAllReduce(d, d, count, ncclFloat, ncclSum, c->comm, c->stream);
    if (r != ncclSuccess) return dist_nccl_fail(c, 4, what, ncclGetErrorString(r));
    if (op == DL_ALLREDUCE_MEAN && c->size > 1)        /* DL_ALLREDUCE_SUM (synchronised batchnorm): the sum */
        dist_nccl_divide<<<(unsigned)((count + 255) / 256), 256, 0, c->stream>>>(d, count, (float)c->size);
    if (dist_nccl_wait(c, what)) return dist_nccl_fail(c, 5, what, NULL);
    if (!on_device && (e = cudaMemcpy(buf, c->scratch, sizeof(float), cudaMemcpyDeviceToHost)) != cudaSuccess)
        return dist_nccl_fail(c, 3, what, cudaGetErrorString(e));
    return 0;
}

const char *dist_nccl_error(const dist_nccl *c) { return c ? c->err : "no communicator"; }

void dist_nccl_free(dist_nccl *c) {
    if (!c) return;
    if (c->comm) ncclCommDestroy(c->comm);
    cudaFree(c->scratch);
    cudaStreamDestroy(c->stream);
    free(c);
}
