/* Inference allocates nothing after its first call: dl.h's allocator is
 * replaced by one that counts, and repeated dl_predict / dl_ctx_predict calls
 * on the reference CNN (fresh, trained, and loaded from a file as
 * examples/classify.c does) must not call it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static long allocs, frees;
static void *count_malloc(size_t n) { allocs++; return malloc(n); }
static void count_free(void *p) { if (p) frees++; free(p); }
#define DL_MALLOC(sz) count_malloc(sz)
#define DL_FREE(p) count_free(p)
#define DL_IMPLEMENTATION
#include "dl.h"
#include "tests/test.h"

static dl_net *reference(dl_layer **logits, dl_layer **probs) {
    dl_net *net = dl_net_new();
    dl_layer *h = dl_input(net, 1, 28, 28);
    h = dl_maxpool2d(dl_prelu(dl_batchnorm(dl_conv2d(h, 32, 3, 1, 1))), 2, 2);
    h = dl_maxpool2d(dl_prelu(dl_batchnorm(dl_conv2d(h, 64, 3, 1, 1))), 2, 2);
    *logits = dl_dense(dl_flatten(h), 10);
    *probs = dl_softmax(*logits);
    return net;
}

static float x[64 * 784];
static int y[64];

static void fill(void) {
    int i;
    for (i = 0; i < 64 * 784; i++) x[i] = (float)((i * 2654435761u) >> 24) / 255.0f;
    for (i = 0; i < 64; i++) y[i] = i % 10;
}

/* Calls predict `calls` times with batch sizes from sizes[] after a first
   call with the largest; returns the allocations and frees after the first. */
static long count_after_first(dl_net *net, dl_ctx *ctx, dl_layer *out, int first, const int *sizes, int n_sizes,
                              int calls) {
    long a0, f0;
    int i;
    const float *p = ctx ? dl_ctx_predict(ctx, out, x, first) : dl_predict(net, out, x, first);
    CHECK(p != NULL, "first call: %s", ctx ? dl_ctx_error(ctx) : dl_net_error(net));
    a0 = allocs;
    f0 = frees;
    for (i = 0; i < calls; i++) {
        int n = sizes[i % n_sizes];
        p = ctx ? dl_ctx_predict(ctx, out, x, n) : dl_predict(net, out, x, n);
        CHECK(p != NULL, "call %d (batch %d): %s", i, n, ctx ? dl_ctx_error(ctx) : dl_net_error(net));
        CHECK(p[0] >= 0 && p[0] <= 1, "not a probability: %g", p[0]);
    }
    printf("    %s, %d calls after the first: %ld allocations, %ld frees\n", ctx ? "dl_ctx_predict" : "dl_predict",
           calls, allocs - a0, frees - f0);
    return (allocs - a0) + (frees - f0);
}

static const int one[1] = {1}, mixed[5] = {64, 1, 17, 64, 32};

static void test_predict_fresh_net(void) {
    dl_layer *logits, *probs;
    dl_net *net = reference(&logits, &probs);
    fill();
    CHECK(count_after_first(net, NULL, probs, 1, one, 1, 100) == 0, "dl_predict, batch 1, allocates");
    CHECK(count_after_first(net, NULL, probs, 64, mixed, 5, 100) == 0, "dl_predict, batches up to 64, allocates");
    CHECK(count_after_first(net, NULL, logits, 64, mixed, 5, 20) == 0, "dl_predict to the logits allocates");
    dl_net_free(net);
    CHECK(allocs == frees, "leak: %ld allocations, %ld frees", allocs, frees);
}

static void test_predict_after_training(void) {
    dl_layer *logits, *probs;
    dl_net *net = reference(&logits, &probs);
    dl_optim *opt = dl_adam(net, 1e-3f);
    long a0, f0;
    int i;
    fill();
    dl_net_set_threads(net, 2);     /* on any machine: batches 17-64 then run chunks on both threads (dl__predict_parallel) */
    for (i = 0; i < 3; i++) CHECK(dl_train_step(net, opt, logits, x, y, 64, NULL) == DL_OK, "%s", dl_net_error(net));
    a0 = allocs;
    f0 = frees;
    for (i = 0; i < 10; i++) dl_train_step(net, opt, logits, x, y, 64, NULL);
    printf("    (training, for the record: %ld allocations and %ld frees in 10 steps)\n", allocs - a0, frees - f0);
    /* evaluation between epochs, on the net's own (training) context */
    CHECK(count_after_first(net, NULL, probs, 64, mixed, 5, 100) == 0, "dl_predict after training allocates");
    dl_net_free(net);
}

static void test_ctx_predict_on_loaded_model(void) {
    dl_layer *logits, *probs;
    dl_net *net = reference(&logits, &probs), *loaded;
    dl_ctx *ctx;
    void *data;
    size_t len;
    dl_status st;
    fill();
    CHECK(dl_net_save_mem(net, NULL, &data, &len) == DL_OK, "%s", dl_net_error(net));
    loaded = dl_net_load_mem(data, len, &st);
    CHECK(loaded != NULL, "%s", st.msg);
    if (loaded) {
        /* classify.c: dl_predict on the last layer, one image at a time */
        CHECK(count_after_first(loaded, NULL, dl_net_output(loaded), 1, one, 1, 100) == 0, "dl_predict on a loaded model allocates");
        ctx = dl_ctx_new(loaded);
        CHECK(ctx != NULL, "%s", dl_net_error(loaded));
        CHECK(count_after_first(loaded, ctx, dl_net_output(loaded), 1, one, 1, 100) == 0, "dl_ctx_predict, batch 1, allocates");
        CHECK(count_after_first(loaded, ctx, dl_net_output(loaded), 64, mixed, 5, 100) == 0, "dl_ctx_predict, batches up to 64, allocates");
        dl_ctx_free(ctx);
        dl_net_free(loaded);
    }
    DL_FREE(data);
    dl_net_free(net);
}

/* dl_fit: after the first steps (plans, buffers), no step allocates or
   frees, whatever the augmentation and schedule; only epoch ends may
   (validation, checkpoints, the report). */
static long step_allocs[64];
static int on_step(void *user, const dl_fit_history *h, float loss) {
    (void)user, (void)loss;
    if (h->step < 64) step_allocs[h->step] = allocs + frees;
    return 0;
}
static void test_fit_steps(void) {
    dl_layer *logits, *probs;
    dl_net *net = reference(&logits, &probs);
    dl_optim *opt = dl_adam(net, 1e-3f);
    dl_dataset d;
    dl_fit_options o;
    dl_fit_history h;
    int i, during = 0;
    fill();
    memset(&d, 0, sizeof d), memset(&o, 0, sizeof o), memset(&h, 0, sizeof h);
    d.x = x, d.labels = y, d.count = 64, d.c = 1, d.h = d.w = 28;
    o.epochs = 3, o.batch = 8, o.quiet = 1, o.on_step = on_step;
    o.augment.shift = 2, o.augment.flip = 1, o.augment.cutout = 4, o.augment.brightness = 0.1f, o.augment.contrast = 0.1f;
    o.schedule.kind = DL_SCHED_ONECYCLE, o.schedule.warmup = 3;
    CHECK(dl_fit(net, opt, logits, &d, &d, &o, &h) == DL_OK, "%s", dl_net_error(net));
    CHECK(h.step == 24, "%ld steps", h.step);
    for (i = 3; i < 24; i++)
        if (i % 8 != 0) during += step_allocs[i + 1] != step_allocs[i];   /* step i+1 within an epoch */
    printf("    dl_fit: %d of 18 steps inside epochs allocated\n", during);
    CHECK(during == 0, "dl_fit allocates during steps");
    dl_fit_history_free(&h);
    dl_net_free(net);
    CHECK(allocs == frees, "leak: %ld allocations, %ld frees", allocs, frees);
}

int main(void) {
    RUN(test_predict_fresh_net);
    RUN(test_predict_after_training);
    RUN(test_ctx_predict_on_loaded_model);
    RUN(test_fit_steps);
    return test_summary();
}
