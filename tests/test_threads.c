/* dl_net_set_threads does what it says (it used to fall back to one thread
 * because it was compiled before the library decided it had threads; with
 * mingw-w64 and tcc the library had none), dl_net_threads tells the truth,
 * and the thread count does not change results. */
#define DL_IMPLEMENTATION
#include "dl.h"
#include "tests/test.h"
#include "tests/ops.h"
#include <string.h>

/* dl_predict's chunks are per thread (56 samples on 1 thread), and must not
   change the bits either. Batch 300: chunks of 56 on 1 thread, 4 chunks of
   75 run in parallel on 2 (2 or more single-thread chunks per thread), one
   pass on 3 and 4; batch 1001: 17 chunks on 1 thread, 16, 15 and 16 chunks
   run in parallel on 2, 3 and 4 threads. */
static void test_set_threads(void) {
    static const int batch[2] = { 300, 1001 };
    dl_net *net = dl_net_new();
    dl_layer *x = dl_input(net, 1, 12, 12), *y = dl_dense(dl_flatten(dl_conv2d(x, 8, 3, 1, 1)), 4);
    static float in[1001 * 144], out1[1001 * 4];
    const float *p;
    int n, i, b;
    for (i = 0; i < 1001 * 144; i++) in[i] = (float)((i * 37) % 101) / 101.0f;
    net->par_min_work = 0;              /* split every op, however small */
    for (b = 0; b < 2; b++) {
        CHECK(dl_net_set_threads(net, 1) == DL_OK && dl_net_threads(net) == 1, "1 thread: %d", dl_net_threads(net));
        p = dl_predict(net, y, in, batch[b]);
        CHECK(p != NULL, "%s", dl_net_error(net));
        if (p) memcpy(out1, p, (size_t)batch[b] * 4 * sizeof(float));
        for (n = 2; n <= 4; n++) {
            CHECK(dl_net_set_threads(net, n) == DL_OK, "%s", dl_net_error(net));
#ifndef DL_NO_THREADS
            CHECK(dl_net_threads(net) == n, "asked for %d threads, got %d", n, dl_net_threads(net));
#else
            CHECK(dl_net_threads(net) == 1, "built without threads, yet it reports %d", dl_net_threads(net));
#endif
            p = dl_predict(net, y, in, batch[b]);
            CHECK(p && !memcmp(p, out1, (size_t)batch[b] * 4 * sizeof(float)), "batch %d: %d threads give other results", batch[b], n);
        }
    }
    CHECK(dl_net_set_threads(net, -1) == DL_ERR_ARG, "-1 threads accepted");
    dl_net_free(net);
}

#ifndef DL_NO_THREADS
/* Contexts made and freed from several threads at once, while the same
   threads predict: the net's list of contexts must come out whole (it used
   to be changed without a lock: lost links, freed contexts left in it). */
typedef struct { dl_net *net; dl_layer *out; const float *x; const float *ref; int ok; } churn_job;
static void ctx_churn(void *arg) {
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
}
static void test_ctx_new_free_from_threads(void) {
    dl_net *net = dl_net_new();
    dl_layer *x = dl_input(net, 1, 12, 12), *y = dl_dense(dl_flatten(dl_conv2d(x, 8, 3, 1, 1)), 4);
    static float in[2 * 144], ref[2 * 4];
    churn_job jobs[4];
    test_thread th[4];
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
        if (test_thread_start(&th[i], ctx_churn, &jobs[i])) started++;
    }
    for (i = 0; i < started; i++) { test_thread_join(&th[i]); CHECK(jobs[i].ok, "thread %d: a context failed or predicted wrong", i); }
    CHECK(started == 4, "%d threads started", started);
    CHECK(net->ctxs == keep && keep->next == NULL, "the net lists %p then %p, not just the one context left",
          (void *)net->ctxs, net->ctxs ? (void *)net->ctxs->next : NULL);
    dl_ctx_free(keep);
    CHECK(net->ctxs == NULL, "a freed context is still listed");
    dl_net_free(net);
}
#endif

/* Every case of tests/ops.h, forward and backward, at 1 and 3 threads with
   every op split however small its work: the same bits in the output, the
   input gradient and every parameter gradient. */
static int run_case(const op_case *k, int threads, int n, const float *x, const float *r, float *out, float *gx, float *gp, int *np) {
    dl_net *net = dl_net_new();
    dl_layer *y = op_case_build(net, k);
    const float *o, *g;
    int i, ok = 0, size_in;
    if (!y) { CHECK(0, "%s: %s", k->label, dl_net_error(net)); dl_net_free(net); return 0; }
    dl_net_seed(net, 5);
    net->par_min_work = 0;
    dl_net_set_threads(net, threads);
    dl_net_set_input_grad(net, 1);
    dl_zero_grad(net);
    size_in = dl_layer_size(dl_net_layer(net, 0));
    o = dl_forward(net, y, x, n, k->train);
    if (o && dl_backward(net, y, r) == DL_OK && (g = dl_layer_grad(dl_net_layer(net, 0))) != NULL) {
        memcpy(out, o, sizeof(float) * (size_t)n * (size_t)dl_layer_size(y));
        memcpy(gx, g, sizeof(float) * (size_t)n * (size_t)size_in);
        *np = 0;
        for (i = 0; i < dl_net_param_count(net); i++) {
            dl_param *p = dl_net_param(net, i);
            if (!p->trainable) continue;
            memcpy(gp + *np, p->grad, sizeof(float) * (size_t)p->size);
            *np += p->size;
        }
        ok = 1;
    }
    CHECK(ok, "%s at %d threads: %s", k->label, threads, dl_net_error(net));
    dl_net_free(net);
    return ok;
}
static void test_op_cases_any_thread_count(void) {
    enum { CAP = 1 << 16 };
    static float x[CAP], r[CAP], o1[CAP], o3[CAP], gx1[CAP], gx3[CAP], gp1[CAP], gp3[CAP];
    int i, j, n1 = 0, n3 = 0, ran[DL_OP_COUNT] = { 0 };
    for (i = 0; i < OP_CASES; i++) {
        const op_case *k = &op_cases[i];
        int n = k->batch + 4, size_in = k->c * (k->h ? k->h : 1) * (k->w ? k->w : 1), size_out;
        dl_net *probe = dl_net_new();
        dl_layer *y = op_case_build(probe, k);
        size_out = y ? dl_layer_size(y) : 0;
        dl_net_free(probe);
        if (!y || n * size_in > CAP || n * size_out > CAP) { CHECK(0, "%s: too big for the test", k->label); continue; }
        for (j = 0; j < n * size_in; j++) x[j] = (float)((j * 37) % 23) / 11.0f - 1.0f + 0.013f;
        for (j = 0; j < n * size_out; j++) r[j] = (float)((j * 13) % 17) / 8.0f - 1.0f;
        if (!run_case(k, 1, n, x, r, o1, gx1, gp1, &n1) || !run_case(k, 3, n, x, r, o3, gx3, gp3, &n3)) continue;
        CHECK(!memcmp(o1, o3, sizeof(float) * (size_t)n * (size_t)size_out), "%s: outputs differ at 3 threads", k->label);
        CHECK(!memcmp(gx1, gx3, sizeof(float) * (size_t)n * (size_t)size_in), "%s: input gradients differ at 3 threads", k->label);
        CHECK(n1 == n3 && !memcmp(gp1, gp3, sizeof(float) * (size_t)n1), "%s: parameter gradients differ at 3 threads", k->label);
        ran[k->op]++;
    }
    op_cases_cover("test_threads", ran, NULL);
}

int main(void) {
    RUN(test_set_threads);
    RUN(test_op_cases_any_thread_count);
#ifndef DL_NO_THREADS
    RUN(test_ctx_new_free_from_threads);
#endif
    return test_summary();
}
