/* The data-parallel hook (dl_net_set_collective) without MPI: ranks are
   threads in this process, each with its own net, joined by a collective
   built on a barrier. Checks that the broadcast makes the nets equal, that
   ranks stay bit-identical through training, that the step averages the
   loss and the gradients exactly once, and that a failing collective or a
   non-finite gradient from another rank changes nothing. With
   synchronised batchnorm (dl_net_sync_batchnorm), two ranks at local batch
   8 match one process at batch 16 within a stated tolerance, at every step.
   The MPI tests (several processes, rank-count independence, a killed rank,
   resume) are tests/test_mpi.sh. */
#define _POSIX_C_SOURCE 200809L     /* pthread_barrier_t */
#define DL_IMPLEMENTATION
#include "../dl.h"
#include "test.h"
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <stdio.h>

#define RANKS 2
#define LOCAL 8                    /* samples per rank and step */
#define STEPS 20

typedef struct group { pthread_barrier_t bar; float *bufs[RANKS]; } group;
typedef struct rank_ctx {
    group *g;
    int rank, calls[3];             /* per op */
    int fail_after;                 /* test hooks: fail (return 5) once calls reach this; 0 never */
    int poison;                     /* write a NaN into the next gradient all-reduce */
    size_t counts;                  /* floats handed over, all calls */
} rank_ctx;

/* The reference collective: every rank sums all buffers in rank order. */
static int thread_collective(float *buf, size_t count, int op, int on_device, void *user) {
    rank_ctx *r = (rank_ctx *)user;
    group *g = r->g;
    float *tmp;
    size_t i;
    int k;
    if (on_device || !(tmp = (float *)malloc(count * sizeof(float)))) return 1;
    r->calls[op]++;
    g->bufs[r->rank] = buf;
    pthread_barrier_wait(&g->bar);
    for (i = 0; i < count; i++) {
        float s = 0;
        if (op == DL_BROADCAST) s = g->bufs[0][i];
        else {
            for (k = 0; k < RANKS; k++) s += g->bufs[k][i];
            if (op == DL_ALLREDUCE_MEAN) s /= RANKS;
        }
        tmp[i] = s;
    }
    pthread_barrier_wait(&g->bar);      /* everyone has read before anyone writes */
    memcpy(buf, tmp, count * sizeof(float));
    free(tmp);
    return 0;
}

/* A one-rank collective for the failure cases. */
static int solo_collective(float *buf, size_t count, int op, int on_device, void *user) {
    rank_ctx *r = (rank_ctx *)user;
    (void)on_device;
    r->calls[op]++;
    r->counts += count;
    if (r->fail_after && r->calls[0] + r->calls[1] + r->calls[2] >= r->fail_after) return 5;
    if (r->poison && op == DL_ALLREDUCE_MEAN && count > 1) { buf[count / 2] = NAN; r->poison = 0; }
    return 0;
}

static dl_layer *small_cnn(dl_net *net) {
    dl_layer *h = dl_input(net, 1, 8, 8);
    h = dl_maxpool2d(dl_relu(dl_conv2d(h, 4, 3, 1, 1)), 2, 2);
    return dl_dense(dl_flatten(h), 3);
}
static void make_data(float *x, int *y, int n, uint64_t seed) {
    int i;
    for (i = 0; i < n * 64; i++) { seed = seed * 6364136223846793005ULL + 1442695040888963407ULL; x[i] = (float)((seed >> 40) & 0xFFFF) / 65536.0f; }
    for (i = 0; i < n; i++) y[i] = (int)((x[i * 64] + x[i * 64 + 9]) * 1.5f);
}

typedef struct worker {
    rank_ctx r;
    float *x; int *y;
    float params[400], loss[STEPS];
    int rc, nparams;
} worker;

static void *rank_main(void *arg) {
    worker *w = (worker *)arg;
    dl_net *net = dl_net_new();
    dl_layer *out;
    dl_optim *opt;
    int s;
    dl_net_seed(net, 100 + (uint64_t)w->r.rank);     /* different inits: the broadcast must fix it */
    dl_net_set_threads(net, 1);
    out = small_cnn(net);
    opt = dl_sgd(net, 0.1f, 0.9f);
    w->rc = !out || !opt;
    dl_net_set_collective(net, thread_collective, &w->r);
    if (!w->rc) w->rc = dl_net_broadcast_params(net, 0);
    for (s = 0; s < STEPS && !w->rc; s++)
        w->rc = dl_train_step(net, opt, out, w->x + (size_t)s * RANKS * LOCAL * 64 + (size_t)w->r.rank * LOCAL * 64,
                              w->y + s * RANKS * LOCAL + w->r.rank * LOCAL, LOCAL, &w->loss[s]);
    w->nparams = (int)dl_net_param_floats(net);
    if (w->nparams <= 400) memcpy(w->params, dl_net_params(net), (size_t)w->nparams * sizeof(float));
    dl_net_free(net);
    return NULL;
}

static void test_threads_as_ranks(void) {
    group g;
    worker w[RANKS];
    pthread_t t[RANKS];
    float *x = (float *)malloc(sizeof(float) * STEPS * RANKS * LOCAL * 64);
    int *y = (int *)malloc(sizeof(int) * STEPS * RANKS * LOCAL), k, s;
    make_data(x, y, STEPS * RANKS * LOCAL, 7);
    pthread_barrier_init(&g.bar, NULL, RANKS);
    for (k = 0; k < RANKS; k++) {
        memset(&w[k], 0, sizeof w[k]);
        w[k].r.g = &g; w[k].r.rank = k; w[k].x = x; w[k].y = y;
        pthread_create(&t[k], NULL, rank_main, &w[k]);
    }
    for (k = 0; k < RANKS; k++) pthread_join(t[k], NULL);
    pthread_barrier_destroy(&g.bar);
    for (k = 0; k < RANKS; k++) {
        CHECK(w[k].rc == DL_OK, "rank %d failed with %d", k, w[k].rc);
        /* one broadcast each for parameters (statistics: none), then per step the loss and the gradients */
        CHECK(w[k].r.calls[DL_BROADCAST] == 1, "rank %d: %d broadcasts", k, w[k].r.calls[DL_BROADCAST]);
        CHECK(w[k].r.calls[DL_ALLREDUCE_MEAN] == 2 * STEPS, "rank %d: %d all-reduces, want %d", k, w[k].r.calls[DL_ALLREDUCE_MEAN], 2 * STEPS);
    }
    CHECK(w[0].nparams == w[1].nparams && w[0].nparams <= 400, "parameter counts %d %d", w[0].nparams, w[1].nparams);
    CHECK(memcmp(w[0].params, w[1].params, (size_t)w[0].nparams * sizeof(float)) == 0, "ranks differ after %d steps", STEPS);
    for (s = 0; s < STEPS; s++) CHECK(memcmp(&w[0].loss[s], &w[1].loss[s], sizeof(float)) == 0, "step %d: losses %g %g", s, w[0].loss[s], w[1].loss[s]);
    CHECK(w[0].loss[STEPS - 1] < w[0].loss[0], "no learning: loss %g -> %g", w[0].loss[0], w[0].loss[STEPS - 1]);
    free(x); free(y);
}

/* A collective that fails, or a NaN that another rank contributed, leaves
   every parameter and the optimizer as they were. */
static void test_failures_change_nothing(void) {
    float x[4 * 64], before[400];
    int y[4], i, rc;
    rank_ctx r;
    dl_net *net = dl_net_new();
    dl_layer *out = small_cnn(net);
    dl_optim *opt = dl_adam(net, 0.01f);
    size_t n = dl_net_param_floats(net);
    make_data(x, y, 4, 3);
    memset(&r, 0, sizeof r);
    CHECK(dl_net_broadcast_params(net, 0) == DL_ERR_ARG, "broadcast without a collective");
    dl_net_set_collective(net, solo_collective, &r);
    CHECK(n <= 400, "%lu floats", (unsigned long)n);
    memcpy(before, dl_net_params(net), n * sizeof(float));
    for (i = 1; i <= 2; i++) {      /* fail at the loss, then at the gradients */
        r.fail_after = r.calls[0] + r.calls[1] + i;
        rc = dl_train_step(net, opt, out, x, y, 4, NULL);
        CHECK(rc == DL_ERR_BACKEND, "case %d: rc %d", i, rc);
        CHECK(strstr(dl_net_error(net), i == 1 ? "loss" : "gradients") != NULL, "message: %s", dl_net_error(net));
        CHECK(memcmp(before, dl_net_params(net), n * sizeof(float)) == 0, "case %d: parameters changed", i);
    }
    r.fail_after = 0; r.poison = 1;
    rc = dl_train_step(net, opt, out, x, y, 4, NULL);
    CHECK(rc == DL_ERR_NUMERIC, "poisoned gradient: rc %d (%s)", rc, dl_net_error(net));
    CHECK(memcmp(before, dl_net_params(net), n * sizeof(float)) == 0, "poisoned gradient changed parameters");
    /* the retry is a first step: Adam's step count did not move */
    CHECK(dl_train_step(net, opt, out, x, y, 4, NULL) == DL_OK, "%s", dl_net_error(net));
    dl_net_set_collective(net, NULL, NULL);
    {   /* without the collective, the same first step from the same start gives the same weights */
        dl_net *ref = dl_net_new();
        dl_layer *o2 = small_cnn(ref);
        dl_optim *opt2 = dl_adam(ref, 0.01f);
        memcpy(dl_net_params(ref), before, n * sizeof(float));
        CHECK(dl_train_step(ref, opt2, o2, x, y, 4, NULL) == DL_OK, "%s", dl_net_error(ref));
        CHECK(memcmp(dl_net_params(ref), dl_net_params(net), n * sizeof(float)) == 0, "a one-rank mean is not the identity");
        dl_net_free(ref);
    }
    dl_net_free(net);
}

/* The broadcast covers parameters and batchnorm statistics, or the statistics alone. */
static void test_broadcast_stats(void) {
    rank_ctx r;
    dl_net *net = dl_net_new();
    dl_layer *out = dl_dense(dl_batchnorm(dl_conv2d(dl_input(net, 1, 8, 8), 4, 3, 1, 1)), 3);
    size_t nw = dl_net_param_floats(net), ns = 0;
    int i;
    CHECK(out != NULL, "%s", dl_net_error(net));
    for (i = 0; i < dl_net_param_count(net); i++) if (!dl_net_param(net, i)->trainable) ns += (size_t)dl_net_param(net, i)->size;
    memset(&r, 0, sizeof r);
    dl_net_set_collective(net, solo_collective, &r);
    CHECK(ns == 8, "%lu statistics", (unsigned long)ns);
    CHECK(dl_net_broadcast_params(net, 0) == DL_OK && r.calls[DL_BROADCAST] == 2 && r.counts == nw + ns, "all: %d calls, %lu floats", r.calls[DL_BROADCAST], (unsigned long)r.counts);
    r.counts = 0;
    CHECK(dl_net_broadcast_params(net, 1) == DL_OK && r.calls[DL_BROADCAST] == 3 && r.counts == ns, "stats: %d calls, %lu floats", r.calls[DL_BROADCAST], (unsigned long)r.counts);
    dl_net_free(net);
}

/* ---- synchronised batchnorm ------------------------------------------------ */
#define BN_STEPS 30
#define BN_FLOATS 1024                  /* parameters and statistics */
/* Every float within ABS + REL * |reference| of the one-process run. The
   sums travel as floats (2^-24 relative each); after 30 steps of SGD with
   momentum the largest difference measured is 6.0e-7. Per-rank statistics
   (the default) differ by 0.38. (On images with flat backgrounds a max
   pooling can tie or untie on such a difference and the runs drift apart
   faster: tests/test_mpi.sh compares the reference CNN after one step.) */
#define BN_ABS 1e-5f
#define BN_REL 1e-5f

static dl_layer *bn_cnn(dl_net *net) {
    dl_layer *h = dl_input(net, 1, 8, 8);
    h = dl_maxpool2d(dl_prelu(dl_batchnorm(dl_conv2d(h, 4, 3, 1, 1))), 2, 2);
    h = dl_relu(dl_batchnorm(dl_conv2d(h, 6, 3, 1, 1)));
    return dl_dense(dl_flatten(h), 3);
}
/* Every parameter and statistic, in table order; the count. */
static int snapshot(dl_net *net, float *out) {
    int i, k = 0;
    for (i = 0; i < dl_net_param_count(net); i++) {
        const dl_param *p = dl_net_param(net, i);
        if (k + p->size <= BN_FLOATS) memcpy(out + k, p->data, (size_t)p->size * sizeof(float));
        k += p->size;
    }
    return k;
}
typedef struct bn_worker {
    rank_ctx r;
    const float *x; const int *y;
    int local, sync, rc, count;         /* count: floats in snap */
    float snap[BN_STEPS][BN_FLOATS];    /* after every step */
    char err[256];
} bn_worker;
/* One rank (or, with r.g NULL, the one-process reference at batch local). */
static void *bn_rank_main(void *arg) {
    bn_worker *w = (bn_worker *)arg;
    dl_net *net = dl_net_new();
    dl_layer *out;
    dl_optim *opt;
    int s, per = w->r.g ? RANKS : 1;
    dl_net_seed(net, 100 + (uint64_t)w->r.rank);
    dl_net_set_threads(net, 1);
    out = bn_cnn(net);
    opt = dl_sgd(net, 0.05f, 0.9f);
    w->rc = !out || !opt;
    if (w->r.g) {
        dl_net_set_collective(net, thread_collective, &w->r);
        dl_net_sync_batchnorm(net, w->sync);
        if (!w->rc) w->rc = dl_net_broadcast_params(net, 0);
    }
    for (s = 0; s < BN_STEPS && !w->rc; s++) {
        size_t first = (size_t)s * per * w->local + (size_t)w->r.rank * w->local;
        w->rc = dl_train_step(net, opt, out, w->x + first * 64, w->y + first, w->local, NULL);
        w->count = snapshot(net, w->snap[s]);
    }
    snprintf(w->err, sizeof w->err, "%s", dl_net_error(net));
    dl_net_free(net);
    return NULL;
}
/* The largest |a - b| beyond the tolerance's ABS + REL |b|, as a multiple of it. */
static double bn_excess(const float *a, const float *b, int n, float *worst) {
    double e = 0;
    int i;
    *worst = 0;
    for (i = 0; i < n; i++) {
        float d = fabsf(a[i] - b[i]);
        double q = d / (BN_ABS + BN_REL * fabsf(b[i]));
        if (d > *worst) *worst = d;
        if (q > e) e = q;
    }
    return e;
}
/* Runs RANKS ranks (sync on or off) into w[0..RANKS). */
static void bn_run_ranks(bn_worker *w, const float *x, const int *y, int sync) {
    group g;
    pthread_t t[RANKS];
    int k;
    pthread_barrier_init(&g.bar, NULL, RANKS);
    for (k = 0; k < RANKS; k++) {
        memset(&w[k].r, 0, sizeof w[k].r);
        w[k].r.g = &g; w[k].r.rank = k; w[k].x = x; w[k].y = y; w[k].local = LOCAL; w[k].sync = sync;
        pthread_create(&t[k], NULL, bn_rank_main, &w[k]);
    }
    for (k = 0; k < RANKS; k++) pthread_join(t[k], NULL);
    pthread_barrier_destroy(&g.bar);
}

static void test_sync_batchnorm(void) {
    static bn_worker w[RANKS], plain[RANKS], ref;
    float *x = (float *)malloc(sizeof(float) * BN_STEPS * RANKS * LOCAL * 64), worst = 0;
    int *y = (int *)malloc(sizeof(int) * BN_STEPS * RANKS * LOCAL), k, s, same = 1;
    double e1, e_last, e_plain;
    make_data(x, y, BN_STEPS * RANKS * LOCAL, 11);
    memset(&ref, 0, sizeof ref);
    ref.x = x; ref.y = y; ref.local = RANKS * LOCAL;
    bn_rank_main(&ref);
    bn_run_ranks(w, x, y, 1);
    bn_run_ranks(plain, x, y, 0);
    CHECK(ref.rc == DL_OK, "reference: %s", ref.err);
    for (k = 0; k < RANKS; k++) {
        CHECK(w[k].rc == DL_OK && plain[k].rc == DL_OK, "rank %d: %s / %s", k, w[k].err, plain[k].err);
        /* per step: loss and gradients (mean); per batchnorm layer: 2 sums in forward, 1 in backward */
        CHECK(w[k].r.calls[DL_ALLREDUCE_SUM] == 2 * 3 * BN_STEPS && w[k].r.calls[DL_ALLREDUCE_MEAN] == 2 * BN_STEPS,
              "rank %d: %d sums, %d means", k, w[k].r.calls[DL_ALLREDUCE_SUM], w[k].r.calls[DL_ALLREDUCE_MEAN]);
        CHECK(plain[k].r.calls[DL_ALLREDUCE_SUM] == 0, "unsynchronised: %d sums", plain[k].r.calls[DL_ALLREDUCE_SUM]);
    }
    if (ref.rc || w[0].rc || w[1].rc || plain[0].rc) goto done;
    CHECK(ref.count == w[0].count && ref.count <= BN_FLOATS, "%d floats, %d", ref.count, w[0].count);
    for (s = 0; s < BN_STEPS; s++) same &= !memcmp(w[0].snap[s], w[1].snap[s], (size_t)w[0].count * sizeof(float));
    CHECK(same, "synchronised: the ranks differ at some step");
    e1 = bn_excess(w[0].snap[0], ref.snap[0], ref.count, &worst);
    CHECK(e1 <= 1, "step 1: %.3g times the tolerance (largest difference %g)", e1, (double)worst);
    e_last = bn_excess(w[0].snap[BN_STEPS - 1], ref.snap[BN_STEPS - 1], ref.count, &worst);
    CHECK(e_last <= 1, "step %d: %.3g times the tolerance (largest difference %g)", BN_STEPS, e_last, (double)worst);
    printf("    synchronised, %d ranks x %d = one process x %d: largest difference %g after %d steps "
           "(tolerance %g + %g |w|)\n", RANKS, LOCAL, RANKS * LOCAL, (double)worst, BN_STEPS, (double)BN_ABS, (double)BN_REL);
    /* the default: each rank's own statistics, so not the one-process run, and running statistics per rank */
    e_plain = bn_excess(plain[0].snap[BN_STEPS - 1], ref.snap[BN_STEPS - 1], ref.count, &worst);
    CHECK(e_plain > 10, "per-rank statistics: only %.3g times the tolerance from one process", e_plain);
    CHECK(memcmp(plain[0].snap[0], plain[1].snap[0], (size_t)ref.count * sizeof(float)) != 0,
          "per-rank statistics: the ranks' running statistics agree");
    printf("    per-rank statistics (the default): largest difference %g\n", (double)worst);
done:
    free(x); free(y);
}

/* A collective that fails in a batchnorm's forward or backward sum fails the
   step, names the layer, and changes no parameter or statistic. */
static void test_sync_batchnorm_failure(void) {
    float x[4 * 64], before[BN_FLOATS], after[BN_FLOATS];
    int y[4], i, rc, n;
    rank_ctx r;
    dl_net *net = dl_net_new();
    dl_layer *out = bn_cnn(net);
    dl_optim *opt = dl_adam(net, 0.01f);
    make_data(x, y, 4, 5);
    memset(&r, 0, sizeof r);
    CHECK(dl_net_sync_batchnorm(net, 2) == DL_ERR_ARG, "on = 2");
    CHECK(dl_net_sync_batchnorm(net, 1) == DL_OK && dl_net_set_collective(net, solo_collective, &r) == DL_OK, "%s", dl_net_error(net));
    n = snapshot(net, before);
    /* calls per step: forward 2 + 2 sums, the loss, backward 1 + 1 sums, the gradients */
    for (i = 0; i < 2; i++) {
        r.fail_after = r.calls[0] + r.calls[1] + r.calls[2] + (i ? 6 : 3);
        rc = dl_train_step(net, opt, out, x, y, 4, NULL);
        CHECK(rc == DL_ERR_BACKEND && strstr(dl_net_error(net), i ? "backward: batchnorm 'batchnorm_2'" : "forward: batchnorm 'batchnorm_2'") &&
              strstr(dl_net_error(net), "synchronised batchnorm sums"), "case %d: %d %s", i, rc, dl_net_error(net));
        CHECK(snapshot(net, after) == n && !memcmp(before, after, (size_t)n * sizeof(float)), "case %d: the net changed", i);
    }
    r.fail_after = 0;
    CHECK(dl_train_step(net, opt, out, x, y, 4, NULL) == DL_OK && r.calls[DL_ALLREDUCE_SUM] == 3 + 5 + 6, "%d sums: %s",
          r.calls[DL_ALLREDUCE_SUM], dl_net_error(net));
    dl_net_free(net);
}

int main(void) {
    RUN(test_threads_as_ranks);
    RUN(test_broadcast_stats);
    RUN(test_failures_change_nothing);
    RUN(test_sync_batchnorm);
    RUN(test_sync_batchnorm_failure);
    return test_summary();
}
