/* The data-parallel hook (dl_net_set_collective) without MPI: ranks are
   threads in this process, each with its own net, joined by a collective
   built on a barrier. Checks that the broadcast makes the nets equal, that
   ranks stay bit-identical through training, that the step averages the
   loss and the gradients exactly once, and that a failing collective or a
   non-finite gradient from another rank changes nothing.
   The MPI tests (several processes, rank-count independence, a killed rank,
   resume) are tests/test_mpi.sh. */
#define _POSIX_C_SOURCE 200809L     /* pthread_barrier_t */
#define DL_IMPLEMENTATION
#include "../dl.h"
#include "test.h"
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define RANKS 2
#define LOCAL 8                    /* samples per rank and step */
#define STEPS 20

typedef struct group { pthread_barrier_t bar; float *bufs[RANKS]; } group;
typedef struct rank_ctx {
    group *g;
    int rank, calls[2];             /* per op */
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
        else { for (k = 0; k < RANKS; k++) s += g->bufs[k][i]; s /= RANKS; }
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
    if (r->fail_after && r->calls[0] + r->calls[1] >= r->fail_after) return 5;
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

int main(void) {
    RUN(test_threads_as_ranks);
    RUN(test_broadcast_stats);
    RUN(test_failures_change_nothing);
    return test_summary();
}
