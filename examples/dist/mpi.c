/* mpi.c - data-parallel training of the reference CNN on Fashion-MNIST over MPI.
 *
 *   make dist-mpi         (mpicc -std=c99 -O2 -I. examples/dist/mpi.c -o build/dist_mpi -lm -pthread)
 *   mpirun -np 4 build/dist_mpi --batch 64 --steps 1000 --ckpt run.dl
 *   mpirun -np 2 build/dist_mpi --resume run.dl --steps 1000      (any rank count dividing --batch)
 *
 * One process per machine (or per socket: --threads sets dl.h's threads per
 * process). dl.h links no MPI: this file gives it a collective through
 * dl_net_set_collective and keeps everything else (data, checkpoints,
 * checks) here. The global batch (--batch) is fixed; each rank trains on its
 * share of it, read from its own slice of every global batch.
 *
 * Two ways to add up the gradients (--reduce):
 *   exact (default)  The global batch is split into --micro K microbatches of
 *      batch/K samples, K fixed for the run and a multiple of the rank count
 *      (default: the rank count; give it to compare or resume across counts).
 *      Rank r computes the gradients of microbatches r*K/P .. (r+1)*K/P-1,
 *      each on its own (dl_forward, dl_backward), and the microbatch
 *      gradients are added in microbatch order: an all-to-all hands each rank
 *      one slice of the gradient vector from every microbatch, the rank sums
 *      its slice over microbatches 0, 1, ..., K-1, divides by K, and an
 *      all-gather returns the whole mean. Every float is the same sum in the
 *      same order for any rank count dividing K, so the run is bit-identical
 *      for 1, 2, ... K ranks (tests/test_mpi.sh checks 1, 2 and 4). Traffic
 *      per rank: (K/P + 1)(P-1)/P gradient sizes, the same as a ring
 *      all-reduce's 2(P-1)/P when K = P.
 *   fast   dl_train_step on the rank's batch/P samples with a collective that
 *      calls MPI_Iallreduce (sum) and divides by P. Ranks are bit-identical to
 *      each other, but MPI fixes no summation order, so results change with the
 *      rank count (not for 1 or 2 ranks: a sum of two floats is commutative).
 * With batchnorm (--model ref) each microbatch (exact) or rank (fast) uses its
 * own batch statistics by default; the running statistics (only they) are
 * broadcast from rank 0 after every step so all ranks stay identical (they
 * then depend on the rank count; the weights in exact mode do not).
 * --sync-bn (implies --reduce fast) turns on dl_net_sync_batchnorm: every
 * batchnorm layer adds its per-channel sums over the ranks (MPI_SUM, or
 * ncclSum on GPUs) and normalises with the global batch's statistics, so
 * the run matches --solo at the same global batch to float rounding, and
 * the running statistics agree without a broadcast. --model ref-nobn drops
 * the batchnorm layers. --against PATH (rank 0, at the end) prints the
 * largest difference between this run's parameters and statistics and
 * those in the checkpoint PATH.
 *
 * Every step all ranks compare a hash of their parameters and statistics
 * (all-gather of a 64-bit FNV-1a), and stop with an error if any differs.
 * Every collective is non-blocking and polled against --timeout seconds: a
 * rank that died or hangs makes the others print which collective at which
 * step timed out and MPI_Abort the job, instead of waiting forever.
 * Checkpoints (dl_checkpoint_save: model, optimizer, generator) are written
 * by rank 0 only, atomically; the step count is the optimizer's, so
 * --resume PATH (a path every rank can read) restarts at the next global
 * batch, with any rank count that divides --micro (bit for bit), or that
 * divides --batch with --micro set to a multiple of it (to float rounding).
 *
 * GPUs (`make dist-nccl`: this file with -DDL_CUDA -DDIST_NCCL, linked with
 * nccl.cu and dl_cuda.o): --gpu trains each rank on GPU <rank on its
 * machine> and exchanges gradients with NCCL in GPU memory (--reduce fast
 * only); MPI still starts the ranks, hands out NCCL's id and checks hashes.
 * --solo (1 rank) trains with no collective at all: the plain run that the
 * others are compared with. --optim sgd trains with SGD (momentum 0.9)
 * instead of Adam: Adam's first steps turn float-rounding differences in
 * near-zero gradients (a conv bias before batchnorm has none) into whole
 * learning-rate steps, which hides how close two runs are.
 *
 * Test hooks: --die-at N makes rank --fail-rank (default 1) kill itself with
 * SIGKILL at step N; --hang-at N makes it stop taking part (sleep) at step N;
 * --corrupt-at N changes one of its weights after step N (the hash check must stop the job).
 * The last line on rank 0 is "final step N hash 0x...".
 */
#define FASHION_NO_MAIN
#include "../fashion.c"
#include <mpi.h>
#include <signal.h>
#ifdef DIST_NCCL
#include "dist_nccl.h"
#endif

typedef struct dist {
    MPI_Comm comm;
    int rank, size;
    double timeout;         /* seconds a collective may take */
    long step;              /* for messages */
    double wait_s;          /* time spent in collectives (MPI only) */
} dist;

/* Polls a non-blocking collective; past the deadline the whole job stops. */
static void dist_wait(dist *d, MPI_Request *req, const char *what) {
    double t0 = MPI_Wtime(), deadline = t0 + d->timeout;
    struct timespec pause_ = {0, 200000};   /* after 2 ms, poll every 0.2 ms: leave the core to the others */
    int done = 0;
    for (;;) {
        if (MPI_Test(req, &done, MPI_STATUS_IGNORE) != MPI_SUCCESS) {
            fprintf(stderr, "dist_mpi: rank %d: %s at step %ld failed; aborting the job\n", d->rank, what, d->step);
            MPI_Abort(d->comm, 3);
        }
        if (done) { d->wait_s += MPI_Wtime() - t0; return; }
        if (MPI_Wtime() > deadline) {
            fprintf(stderr, "dist_mpi: rank %d: %s at step %ld timed out after %.0f s: another rank died or hangs; "
                    "aborting the job (resume from the last checkpoint)\n", d->rank, what, d->step, d->timeout);
            fflush(stderr);
            MPI_Abort(d->comm, 3);
        }
        if (MPI_Wtime() > t0 + 2e-3) nanosleep(&pause_, NULL);
    }
}

/* dl.h's hook (fast mode, broadcasts and the loss): host buffers only. */
static int dist_collective(float *buf, size_t count, int op, int on_device, void *user) {
    dist *d = (dist *)user;
    MPI_Request req;
    size_t i;
    if (on_device || count > INT_MAX) {
        fprintf(stderr, "dist_mpi: rank %d: a GPU buffer needs the NCCL build (make dist-nccl)\n", d->rank);
        return 2;
    }
    if (op == DL_BROADCAST) {
        if (MPI_Ibcast(buf, (int)count, MPI_FLOAT, 0, d->comm, &req) != MPI_SUCCESS) return 1;
        dist_wait(d, &req, "broadcast");
        return 0;
    }
    if (MPI_Iallreduce(MPI_IN_PLACE, buf, (int)count, MPI_FLOAT, MPI_SUM, d->comm, &req) != MPI_SUCCESS) return 1;
    dist_wait(d, &req, op == DL_ALLREDUCE_SUM ? "all-reduce of batchnorm sums" : "all-reduce");
    if (op == DL_ALLREDUCE_MEAN)                /* DL_ALLREDUCE_SUM (synchronised batchnorm): the sum */
        for (i = 0; i < count; i++) buf[i] /= (float)d->size;
    return 0;
}

/* ---- exact mode: microbatch gradients added in microbatch order ---------- */
typedef struct exact {
    int K, q;               /* microbatches in all, per rank */
    size_t n, S, L;         /* floats per microbatch (gradients + loss); slice; padded length P*S */
    float *slots, *send, *recv, *mine, *full, *dout;
} exact;

static int exact_init(exact *e, const dist *d, size_t nw, int K, int m) {
    e->K = K; e->q = K / d->size;
    e->n = nw + 1;
    e->S = (e->n + (size_t)d->size - 1) / (size_t)d->size;
    e->L = e->S * (size_t)d->size;
    e->slots = (float *)calloc((size_t)e->q * e->L, sizeof(float));
    e->send = (float *)calloc((size_t)e->q * e->L, sizeof(float));
    e->recv = (float *)calloc((size_t)K * e->S, sizeof(float));
    e->mine = (float *)calloc(e->S, sizeof(float));
    e->full = (float *)calloc(e->L, sizeof(float));
    e->dout = (float *)calloc((size_t)m * FASHION_CLASSES, sizeof(float));
    return e->slots && e->send && e->recv && e->mine && e->full && e->dout ? 0 : -1;
}
static void exact_free(exact *e) {
    free(e->slots); free(e->send); free(e->recv); free(e->mine); free(e->full); free(e->dout);
}

/* slots[j] (this rank's microbatch j) -> the mean over all K microbatches in
   full[0..n): all-to-all of slices, ordered sum of this rank's slice, all-gather. */
static void exact_reduce(exact *e, dist *d) {
    MPI_Request req;
    int dst, j, mb;
    size_t i;
    for (dst = 0; dst < d->size; dst++)
        for (j = 0; j < e->q; j++)
            memcpy(e->send + ((size_t)dst * e->q + j) * e->S, e->slots + (size_t)j * e->L + (size_t)dst * e->S, e->S * sizeof(float));
    MPI_Ialltoall(e->send, (int)(e->q * e->S), MPI_FLOAT, e->recv, (int)(e->q * e->S), MPI_FLOAT, d->comm, &req);
    dist_wait(d, &req, "all-to-all of microbatch gradients");
    for (i = 0; i < e->S; i++) {        /* rank src sent microbatches src*q .. src*q+q-1: recv is in microbatch order */
        float s = e->recv[i];
        for (mb = 1; mb < e->K; mb++) s += e->recv[(size_t)mb * e->S + i];
        e->mine[i] = s / (float)e->K;
    }
    MPI_Iallgather(e->mine, (int)e->S, MPI_FLOAT, e->full, (int)e->S, MPI_FLOAT, d->comm, &req);
    dist_wait(d, &req, "all-gather of the mean gradient");
}

/* ---- the run ---------------------------------------------------------------- */
typedef struct dopts {
    int batch, micro, threads, print_every, ckpt_every, fail_rank, exact, nobn, gpu, solo, sync_bn, sgd;
    long steps, die_at, hang_at, corrupt_at;
    unsigned long seed;
    double timeout;
    float lr;
    const char *data, *ckpt, *resume, *against;
} dopts;

static uint64_t dist_hash(dl_net *net) {        /* FNV-1a over every parameter and statistic */
    uint64_t h = 1469598103934665603ull;
    int i, k;
    for (i = 0; i < dl_net_param_count(net); i++) {
        const dl_param *p = dl_net_param(net, i);
        const unsigned char *b = (const unsigned char *)p->data;
        for (k = 0; k < p->size * (int)sizeof(float); k++) h = (h ^ b[k]) * 1099511628211ull;
    }
    return h;
}

static void dist_check_hash(dist *d, dl_net *net, uint64_t *all) {
    uint64_t h;
    MPI_Request req;
    int r;
    if (dl_net_sync(net)) { fprintf(stderr, "dist_mpi: rank %d: %s\n", d->rank, dl_net_error(net)); MPI_Abort(d->comm, 3); }
    h = dist_hash(net);
    MPI_Iallgather(&h, 1, MPI_UINT64_T, all, 1, MPI_UINT64_T, d->comm, &req);
    dist_wait(d, &req, "all-gather of the parameter hashes");
    for (r = 1; r < d->size; r++)
        if (all[r] != all[0]) {
            if (d->rank == 0)
                fprintf(stderr, "dist_mpi: after step %ld rank %d holds parameters with hash 0x%016llx, rank 0 0x%016llx\n",
                        d->step, r, (unsigned long long)all[r], (unsigned long long)all[0]);
            MPI_Abort(d->comm, 4);
        }
}

/* --against: the largest difference, parameters and statistics, to a
   checkpoint of the same model (the net is synced: the hash check did it). */
static int dist_against(dl_net *net, const char *path) {
    dl_status st;
    dl_net *ref = dl_net_load(path, &st);
    double worst = 0, scale = 0;
    const char *where = "";
    int i, k, at = 0, n = 0, same = ref && dl_net_param_count(ref) == dl_net_param_count(net);
    if (!ref) { fprintf(stderr, "dist_mpi: --against: %s\n", st.msg); return -1; }
    for (i = 0; same && i < dl_net_param_count(net); i++) {
        const dl_param *p = dl_net_param(net, i), *q = dl_net_param(ref, i);
        if (!(same = p->size == q->size)) break;
        for (k = 0; k < p->size; k++, n++) {
            double d = fabs((double)p->data[k] - q->data[k]);
            if (d > worst) { worst = d; scale = fabs(q->data[k]); where = p->name; at = k; }
        }
    }
    if (same)
        printf("against %s: largest difference %.3g (%s[%d], of magnitude %.3g) over %d parameters and statistics\n",
               path, worst, where, at, scale, n);
    else fprintf(stderr, "dist_mpi: --against %s: another model\n", path);
    dl_net_free(ref);
    return same ? 0 : -1;
}

/* The reference CNN of examples/fashion.c, optionally without batchnorm. */
static dl_layer *dist_model(dl_net *net, int nobn) {
    dl_conv_desc c1 = {0}, c2 = {0};
    dl_dense_desc fc = {0};
    dl_layer *h = dl_input(net, 1, FASHION_SIDE, FASHION_SIDE), *probs;
    if (!nobn) return fashion_reference(net, &probs);
    c1.filters = 32, c2.filters = 64, fc.units = FASHION_CLASSES;
    c1.kernel = c2.kernel = 3, c1.pad = c2.pad = 1;
    c1.init = c2.init = fc.init = DL_INIT_TORCH_UNIFORM;
    h = dl_maxpool2d(dl_prelu(dl_conv2d_ex(h, &c1)), 2, 2);
    h = dl_maxpool2d(dl_prelu(dl_conv2d_ex(h, &c2)), 2, 2);
    return dl_dense_ex(dl_flatten(h), &fc);
}

/* The global batch of a step: a fixed permutation of the used images per
   epoch, so a step's samples depend on the step alone (resume, rank count). */
typedef struct batches { int count, epoch, *order; unsigned long seed; } batches;
static const int *dist_batch(batches *b, long step, int B) {
    long per_epoch = b->count / B;
    int epoch = (int)(step / per_epoch), i;
    if (epoch != b->epoch) {
        uint64_t rng = (b->seed + 1) * 0x2545f4914f6cdd1dull + (uint64_t)epoch;
        for (i = 0; i < b->count; i++) b->order[i] = i;
        dl_shuffle(b->order, b->count, &rng);
        b->epoch = epoch;
    }
    return b->order + (step % per_epoch) * B;
}

/* Images idx[0..n) of s as floats in [0,1], and their labels. */
static void dist_images(const idx_set *s, const int *idx, int n, float *x, int *y) {
    int i, k;
    for (i = 0; i < n; i++) {
        for (k = 0; k < FASHION_PIXELS; k++)
            x[(size_t)i * FASHION_PIXELS + k] = s->pixels[(size_t)idx[i] * FASHION_PIXELS + k] * (1.0f / 255);
        y[i] = s->labels[idx[i]];
    }
}

/* One exact-mode step: this rank's microbatches, ordered reduction, update. */
static int exact_step(dist *d, exact *e, dl_net *net, dl_optim *opt, dl_layer *logits, const idx_set *train,
                      const int *gbatch, int m, float *x, int *y, float *loss) {
    size_t nw = dl_net_param_floats(net);
    int j;
    for (j = 0; j < e->q; j++) {
        int mb = d->rank * e->q + j;
        float *slot = e->slots + (size_t)j * e->L;
        const float *out;
        dist_images(train, gbatch + (size_t)mb * m, m, x, y);
        /* dropout masks from (step, microbatch), not from how many forwards this rank ran */
        dl_net_seed(net, ((uint64_t)d->step << 20) ^ (uint64_t)mb);
        dl_zero_grad(net);
        if (!(out = dl_forward(net, logits, x, m, 1))) return -1;
        slot[nw] = dl_softmax_cross_entropy(out, y, m, FASHION_CLASSES, e->dout);
        if (dl_backward(net, logits, e->dout)) return -1;
        memcpy(slot, dl_net_grads(net), nw * sizeof(float));
    }
    exact_reduce(e, d);
    memcpy(dl_net_grads(net), e->full, nw * sizeof(float));
    *loss = e->full[nw];
    if (!(*loss == *loss) || isinf(*loss)) {    /* the same value on every rank: all stop */
        fprintf(stderr, "dist_mpi: rank %d: step %ld: the loss is %g\n", d->rank, d->step, (double)*loss);
        return -1;
    }
    /* the gradients are exchanged already: step without the hook */
    dl_net_set_collective(net, NULL, NULL);
    j = dl_optim_step(opt);
    dl_net_set_collective(net, dist_collective, d);
    return j;
}

/* --gpu: this rank's GPU is its rank on its machine; with NCCL, gradients
   are exchanged on the GPUs (rank 0's NCCL id goes to all over MPI). */
static int dist_gpu(dist *d, dl_net *net, const dopts *o, dl_collective *fn, void **user) {
#ifdef DL_CUDA
    MPI_Comm local;
    int lrank;
    MPI_Comm_split_type(d->comm, MPI_COMM_TYPE_SHARED, d->rank, MPI_INFO_NULL, &local);
    MPI_Comm_rank(local, &lrank);
    MPI_Comm_free(&local);
    if (dl_cuda_use(net, lrank)) { fprintf(stderr, "dist_mpi: rank %d: GPU %d: %s\n", d->rank, lrank, dl_net_error(net)); return -1; }
#ifdef DIST_NCCL
    if (!o->solo) {
        unsigned char id[DIST_NCCL_ID_BYTES];
        char err[300];
        MPI_Request req;
        if (d->rank == 0 && dist_nccl_unique_id(id, err, sizeof err)) { fprintf(stderr, "dist_mpi: %s\n", err); return -1; }
        MPI_Ibcast(id, DIST_NCCL_ID_BYTES, MPI_BYTE, 0, d->comm, &req);
        dist_wait(d, &req, "broadcast of the NCCL id");
        if (!(*user = dist_nccl_new(id, d->rank, d->size, lrank, d->timeout, err, sizeof err))) {
            fprintf(stderr, "dist_mpi: rank %d: %s\n", d->rank, err);
            return -1;
        }
        *fn = dist_nccl_collective;
    }
#endif
    (void)o; (void)fn; (void)user;
    return 0;
#else
    (void)net; (void)o; (void)fn; (void)user;
    fprintf(stderr, "dist_mpi: rank %d: --gpu: this build has no CUDA backend (make dist-nccl)\n", d->rank);
    return -1;
#endif
}

static void dist_usage(void) {
    fprintf(stderr, "usage: dist_mpi [--batch B] [--micro K] [--steps N] [--reduce exact|fast] [--model ref|ref-nobn]\n"
                    "  [--lr LR] [--seed S] [--threads T] [--data DIR] [--ckpt PATH] [--ckpt-every N] [--resume PATH]\n"
                    "  [--timeout SECONDS] [--print-every N] [--die-at N] [--hang-at N] [--corrupt-at N] [--fail-rank R]\n"
                    "  [--gpu] [--solo] [--sync-bn] [--against CHECKPOINT] [--optim adam|sgd]\n");
}

static int dist_parse(int argc, char **argv, dopts *o) {
    int i;
    memset(o, 0, sizeof *o);
    o->batch = 64; o->micro = 0; o->steps = 300; o->exact = 1; o->seed = 1; o->timeout = 60;
    o->print_every = 50; o->ckpt_every = 50; o->fail_rank = 1; o->die_at = o->hang_at = o->corrupt_at = -1; o->lr = 1e-3f;
    o->data = getenv("DATA");
    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--gpu")) { o->gpu = 1; continue; }
        if (!strcmp(a, "--solo")) { o->solo = 1; continue; }
        if (!strcmp(a, "--sync-bn")) { o->sync_bn = 1; continue; }
        if (!v) { dist_usage(); return -1; }
        i++;
        if (!strcmp(a, "--batch")) o->batch = atoi(v);
        else if (!strcmp(a, "--micro")) o->micro = atoi(v);
        else if (!strcmp(a, "--steps")) o->steps = atol(v);
        else if (!strcmp(a, "--reduce")) o->exact = !strcmp(v, "exact") ? 1 : !strcmp(v, "fast") ? 0 : -1;
        else if (!strcmp(a, "--model")) o->nobn = !strcmp(v, "ref-nobn") ? 1 : !strcmp(v, "ref") ? 0 : -1;
        else if (!strcmp(a, "--lr")) o->lr = (float)atof(v);
        else if (!strcmp(a, "--seed")) o->seed = strtoul(v, NULL, 10);
        else if (!strcmp(a, "--threads")) o->threads = atoi(v);
        else if (!strcmp(a, "--data")) o->data = v;
        else if (!strcmp(a, "--ckpt")) o->ckpt = v;
        else if (!strcmp(a, "--ckpt-every")) o->ckpt_every = atoi(v);
        else if (!strcmp(a, "--resume")) o->resume = v;
        else if (!strcmp(a, "--against")) o->against = v;
        else if (!strcmp(a, "--optim")) o->sgd = !strcmp(v, "sgd") ? 1 : !strcmp(v, "adam") ? 0 : -1;
        else if (!strcmp(a, "--timeout")) o->timeout = atof(v);
        else if (!strcmp(a, "--print-every")) o->print_every = atoi(v);
        else if (!strcmp(a, "--die-at")) o->die_at = atol(v);
        else if (!strcmp(a, "--hang-at")) o->hang_at = atol(v);
        else if (!strcmp(a, "--corrupt-at")) o->corrupt_at = atol(v);
        else if (!strcmp(a, "--fail-rank")) o->fail_rank = atoi(v);
        else { dist_usage(); return -1; }
    }
    if ((o->gpu || o->solo || o->sync_bn) && o->exact > 0) o->exact = 0;     /* all step with dl_train_step */
    if (o->exact < 0 || o->nobn < 0 || o->sgd < 0 || o->batch < 1 || o->steps < 0 || o->timeout <= 0 || o->print_every < 1 ||
        o->ckpt_every < 1) {
        dist_usage();
        return -1;
    }
    return 0;
}

static int dist_run(dist *d, const dopts *o) {
    fashion_data data;
    char err[1200];
    dl_net *net = NULL;
    dl_optim *opt = NULL;
    dl_layer *logits;
    dl_status st;
    batches bs;
    exact e;
    uint64_t *hashes = (uint64_t *)calloc((size_t)d->size, sizeof(uint64_t));
    int K = o->micro ? o->micro : d->size, local = o->batch / d->size, m = o->batch / K, rc = 1, has_bn;
    float *x = NULL, loss = 0;
    int *y = NULL;
    long step, first;
    double t_start;
    memset(&e, 0, sizeof e);
    memset(&bs, 0, sizeof bs);
    dl_collective coll = dist_collective;
    void *coll_user = d;
    if (o->solo && d->size != 1) {
        fprintf(stderr, "dist_mpi: --solo trains without a collective: one rank only\n");
        free(hashes);
        return 1;
    }
    if (o->batch % K || K % d->size || (o->exact ? m : local) < (o->nobn ? 1 : 2)) {
        if (d->rank == 0)
            fprintf(stderr, "dist_mpi: --batch %d, --micro %d and %d ranks: the rank count must divide the microbatch "
                    "count, which must divide the batch (batchnorm needs 2 samples per microbatch)\n", o->batch, K, d->size);
        free(hashes);
        return 1;
    }
    if (fashion_load(o->data, &data, err, sizeof err)) {
        fprintf(stderr, "dist_mpi: rank %d: %s\n", d->rank, err);
        free(hashes);
        return 1;
    }
    if (o->resume) {        /* every rank reads the same file: no broadcast needed, the hash check proves it */
        if (!(net = dl_checkpoint_load(o->resume, &opt, &st))) { fprintf(stderr, "dist_mpi: rank %d: %s\n", d->rank, st.msg); goto done; }
        logits = dl_net_find(net, "dense_1");
    } else {
        if (!(net = dl_net_new())) goto done;
        dl_net_seed(net, o->seed + (unsigned long)d->rank);  /* different on purpose: the broadcast makes them equal */
        logits = dist_model(net, o->nobn);
        opt = o->sgd ? dl_sgd(net, o->lr, 0.9f) : dl_adam(net, o->lr);
    }
    if (!logits || !opt) { fprintf(stderr, "dist_mpi: rank %d: %s\n", d->rank, dl_net_error(net)); goto done; }
    has_bn = dl_net_find(net, "batchnorm_1") != NULL;
    if (o->threads) dl_net_set_threads(net, o->threads);
    if (o->gpu && dist_gpu(d, net, o, &coll, &coll_user)) goto done;
    if (!o->solo) dl_net_set_collective(net, coll, coll_user);
    if (o->sync_bn) dl_net_sync_batchnorm(net, 1);
    if (!o->resume && !o->solo && dl_net_broadcast_params(net, 0)) { fprintf(stderr, "dist_mpi: %s\n", dl_net_error(net)); goto done; }
    bs.count = data.train.count / o->batch * o->batch;
    bs.epoch = -1; bs.seed = o->seed;
    bs.order = (int *)malloc(sizeof(int) * (size_t)data.train.count);
    x = (float *)malloc(sizeof(float) * FASHION_PIXELS * (size_t)o->batch);
    y = (int *)malloc(sizeof(int) * (size_t)o->batch);
    if (!bs.order || !x || !y || !bs.count || (o->exact && exact_init(&e, d, dl_net_param_floats(net), K, m))) {
        fprintf(stderr, "dist_mpi: rank %d: out of memory (or fewer images than one batch)\n", d->rank);
        goto done;
    }
    first = step = dl_optim_steps(opt);
    t_start = MPI_Wtime();
    d->step = step;
    dist_check_hash(d, net, hashes);
    if (d->rank == 0)
        printf("dist_mpi: %d ranks%s, global batch %d (%s), %s, %lu parameters, %s, steps %ld..%ld, hash 0x%016llx\n",
               d->size, o->gpu ? " on GPUs" : "", o->batch, o->exact ? "exact: microbatches in a fixed order"
               : o->solo ? "solo: no collective" : coll == dist_collective ? "fast: MPI_Allreduce" : "fast: ncclAllReduce",
               has_bn ? (o->sync_bn ? "reference CNN, synchronised batchnorm" : "reference CNN") : "reference CNN without batchnorm", (unsigned long)dl_net_param_floats(net),
               o->resume ? "resumed" : "new", step + 1, o->steps, (unsigned long long)hashes[0]);
    for (; step < o->steps; step++) {
        const int *gb = dist_batch(&bs, step, o->batch);
        d->step = step + 1;
        if (d->rank == o->fail_rank && step + 1 == o->die_at) { fprintf(stderr, "dist_mpi: rank %d: --die-at %ld: SIGKILL\n", d->rank, o->die_at); fflush(stderr); raise(SIGKILL); }
        if (d->rank == o->fail_rank && step + 1 == o->hang_at) { fprintf(stderr, "dist_mpi: rank %d: --hang-at %ld: hanging\n", d->rank, o->hang_at); fflush(stderr); for (;;) sleep(1000); }
        if (o->exact) {
            if (exact_step(d, &e, net, opt, logits, &data.train, gb, m, x, y, &loss)) {
                fprintf(stderr, "dist_mpi: rank %d: step %ld: %s\n", d->rank, step + 1, dl_net_error(net));
                goto done;
            }
        } else {
            dist_images(&data.train, gb + (size_t)d->rank * local, local, x, y);
            dl_net_seed(net, ((uint64_t)d->step << 20) ^ (uint64_t)d->rank);   /* each rank its own dropout masks */
            if (dl_train_step(net, opt, logits, x, y, local, &loss)) {
                fprintf(stderr, "dist_mpi: rank %d: step %ld: %s\n", d->rank, step + 1, dl_net_error(net));
                goto done;
            }
        }
        if (has_bn && !o->solo && !o->sync_bn && dl_net_broadcast_params(net, 1)) { fprintf(stderr, "dist_mpi: %s\n", dl_net_error(net)); goto done; }
        if (d->rank == o->fail_rank && step + 1 == o->corrupt_at) dl_net_params(net)[0] += 1e-3f;   /* CPU nets */
        dist_check_hash(d, net, hashes);
        if (d->rank == 0 && ((step + 1) % o->print_every == 0 || step + 1 == o->steps)) {
            printf("step %ld loss %.4f hash 0x%016llx\n", step + 1, (double)loss, (unsigned long long)hashes[0]);
            fflush(stdout);
        }
        if (d->rank == 0 && o->ckpt && ((step + 1) % o->ckpt_every == 0 || step + 1 == o->steps)) {
            if (dl_checkpoint_save(net, opt, o->ckpt)) { fprintf(stderr, "dist_mpi: %s\n", dl_net_error(net)); goto done; }
        }
    }
    if (d->rank == 0) {
        double secs = MPI_Wtime() - t_start, n = (double)(o->steps > first ? o->steps - first : 1);
        printf("time: %ld steps in %.2f s, %.1f ms per step, %.1f ms of it waiting in collectives (rank 0)\n",
               o->steps - first, secs, 1e3 * secs / n, 1e3 * d->wait_s / n);
        printf("final step %ld hash 0x%016llx\n", o->steps, (unsigned long long)hashes[0]);
        if (o->against && dist_against(net, o->against)) goto done;
    }
    rc = 0;
done:
    if (o->exact) exact_free(&e);
#ifdef DIST_NCCL
    if (coll_user != d) dist_nccl_free((dist_nccl *)coll_user);
#endif
    free(bs.order); free(x); free(y); free(hashes);
    dl_net_free(net);
    fashion_free(&data);
    return rc;
}

int main(int argc, char **argv) {
    dist d;
    dopts o;
    int rc;
    (void)fashion_main;     /* examples/fashion.c's program is not used here */
    MPI_Init(&argc, &argv);
    memset(&d, 0, sizeof d);
    d.comm = MPI_COMM_WORLD;
    MPI_Comm_rank(d.comm, &d.rank);
    MPI_Comm_size(d.comm, &d.size);
    if (dist_parse(argc, argv, &o)) { MPI_Finalize(); return 2; }
    d.timeout = o.timeout;
    rc = dist_run(&d, &o);
    /* one rank failing alone must not leave the others waiting */
    if (rc) { fflush(stdout); fprintf(stderr, "dist_mpi: rank %d failed; aborting the job\n", d.rank); MPI_Abort(d.comm, rc); }
    MPI_Finalize();
    return rc;
}
