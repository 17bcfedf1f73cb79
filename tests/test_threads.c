/* dl_net_set_threads does what it says (it used to fall back to one thread
 * because it was compiled before the library decided it had threads; with
 * mingw-w64 and tcc the library had none), dl_net_threads tells the truth,
 * and the thread count does not change results. */
#define DL_IMPLEMENTATION
#include "dl.h"
#include "tests/test.h"
#include <string.h>
#ifndef DL_NO_THREADS
#include <pthread.h>
#endif

static void test_set_threads(void) {
    dl_net *net = dl_net_new();
    dl_layer *x = dl_input(net, 1, 12, 12), *y = dl_dense(dl_flatten(dl_conv2d(x, 8, 3, 1, 1)), 4);
    static float in[32 * 144], out1[32 * 4];
    const float *p;
    int n, i;
    for (i = 0; i < 32 * 144; i++) in[i] = (float)((i * 37) % 101) / 101.0f;
    net->par_min_work = 0;              /* split every op, however small */
    CHECK(dl_net_set_threads(net, 1) == DL_OK && dl_net_threads(net) == 1, "1 thread: %d", dl_net_threads(net));
    p = dl_predict(net, y, in, 32);
    CHECK(p != NULL, "%s", dl_net_error(net));
    if (p) memcpy(out1, p, sizeof out1);
    for (n = 2; n <= 4; n++) {
        CHECK(dl_net_set_threads(net, n) == DL_OK, "%s", dl_net_error(net));
#ifndef DL_NO_THREADS
        CHECK(dl_net_threads(net) == n, "asked for %d threads, got %d", n, dl_net_threads(net));
#else
        CHECK(dl_net_threads(net) == 1, "built without threads, yet it reports %d", dl_net_threads(net));
#endif
        p = dl_predict(net, y, in, 32);
        CHECK(p && !memcmp(p, out1, sizeof out1), "%d threads give other results", n);
    }
    CHECK(dl_net_set_threads(net, -1) == DL_ERR_ARG, "-1 threads accepted");
    dl_net_free(net);
}

#ifndef DL_NO_THREADS
/* Contexts made and freed from several threads at once, while the same
   threads predict: the net's list of contexts must come out whole (it used
   to be changed without a lock: lost links, freed contexts left in it). */
typedef struct { dl_net *net; dl_layer *out; const float *x; const float *ref; int ok; } churn_job;
static void *ctx_churn(void *arg) {
    churn_job *j = (churn_job *)arg;
    int it, k;
    for (it = 0; it < 3000 && j->ok; it++) {
        dl_ctx *c[4];
        for (k = 0; k < 4; k++) if (!(c[k] = dl_ctx_new(j->net))) j->ok = 0;
        if (it % 100 == 0 && j->ok) {
            const float *p = dl_ctx_predict(c[it / 100 % 4], j->out, j->x, 2);
            j->ok = p && !memcmp(p, j->ref, 2 * 4 * sizeof(float));
        }
        for (k = 0; k < 4; k++) dl_ctx_free(c[(k + it) % 4]);
    }
    return NULL;
}
static void test_ctx_new_free_from_threads(void) {
    dl_net *net = dl_net_new();
    dl_layer *x = dl_input(net, 1, 12, 12), *y = dl_dense(dl_flatten(dl_conv2d(x, 8, 3, 1, 1)), 4);
    static float in[2 * 144], ref[2 * 4];
    churn_job jobs[4];
    pthread_t th[4];
    dl_ctx *keep = dl_ctx_new(net);     /* made before, freed after: must stay listed */
    const float *p;
    int i, started = 0;
    for (i = 0; i < 2 * 144; i++) in[i] = (float)((i * 53) % 97) / 97.0f;
    p = dl_predict(net, y, in, 2);
    CHECK(p != NULL && keep != NULL, "%s", dl_net_error(net));
    if (!p || !keep) { dl_ctx_free(keep); dl_net_free(net); return; }
    memcpy(ref, p, sizeof ref);
    for (i = 0; i < 4; i++) {
        jobs[i].net = net; jobs[i].out = y; jobs[i].x = in; jobs[i].ref = ref; jobs[i].ok = 1;
        if (pthread_create(&th[i], NULL, ctx_churn, &jobs[i]) == 0) started++;
    }
    for (i = 0; i < started; i++) { pthread_join(th[i], NULL); CHECK(jobs[i].ok, "thread %d: a context failed or predicted wrong", i); }
    CHECK(started == 4, "%d threads started", started);
    CHECK(net->ctxs == keep && keep->next == NULL, "the net lists %p then %p, not just the one context left",
          (void *)net->ctxs, net->ctxs ? (void *)net->ctxs->next : NULL);
    dl_ctx_free(keep);
    CHECK(net->ctxs == NULL, "a freed context is still listed");
    dl_net_free(net);
}
#endif

int main(void) {
    RUN(test_set_threads);
#ifndef DL_NO_THREADS
    RUN(test_ctx_new_free_from_threads);
#endif
    return test_summary();
}
