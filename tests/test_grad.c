/* Finite-difference checks of every layer's backward pass, for its inputs and
   its parameters, over shapes chosen to catch indexing bugs: batch 1 and odd
   batches, odd non-square images, stride 2, padding 0 and 2, dilation,
   groups, depthwise, 1x1, channel counts that are not multiples of 8.

   The scalar checked is L = sum(out * R) for a fixed random R, so dL/dout = R.
   Central differences run in float32 through the real forward pass, so the
   tolerance is loose (relative 2e-2 on a step of 1e-2) but any indexing error
   shows up as an O(1) mismatch. */
#define DL_IMPLEMENTATION
#include "../dl.h"
#include "test.h"
#define OPS_NETS
#include "ops.h"
#include <stdlib.h>

static uint64_t rng_state = 1;
static float frand(void) {          /* uniform in [-1, 1) */
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (float)((rng_state >> 40) & 0xFFFFFF) / 8388608.0f - 1.0f;
}

/* L = sum out * R, accumulated in double. Reseeding makes dropout draw the same mask. */
static double loss_of(dl_net *net, dl_layer *out, const float *x, int n, int train, const float *R) {
    const float *y;
    double s = 0;
    int i;
    dl_net_seed(net, 7);
    y = dl_forward(net, out, x, n, train);
    if (!y) return NAN;
    for (i = 0; i < n * dl_layer_size(out); i++) s += (double)y[i] * R[i];
    return s;
}

/* Compares the analytic gradient g of the float at v with a central
   difference. Where the two one-sided differences disagree the loss has a
   kink within the step (max pooling near a tie, relu near 0): no derivative
   to compare with, so the probe is skipped and counted. */
static int check_one(dl_net *net, dl_layer *out, float *x, int n, int train, const float *R, float *v, float g,
                     const char *what, int idx, double *worst, int *kinks) {
    const float h = 1e-2f;
    float saved = *v;
    double lp, lm, l0, num, err;
    l0 = loss_of(net, out, x, n, train, R);
    *v = saved + h; lp = loss_of(net, out, x, n, train, R);
    *v = saved - h; lm = loss_of(net, out, x, n, train, R);
    *v = saved;
    if (fabs((lp - l0) - (l0 - lm)) > 0.03 * (fabs(lp - l0) + fabs(l0 - lm)) + 1e-5) { (*kinks)++; return 1; }
    num = (lp - lm) / (2.0 * h);
    err = fabs(num - g) / (fabs(num) + fabs(g) + 1e-1);
    if (err > *worst) *worst = err;
    CHECK(err < 2e-2, "%s[%d]: analytic %.6g numeric %.6g (one-sided %.6g %.6g)", what, idx, g, num, (lp - l0) / h, (l0 - lm) / h);
    return err < 2e-2;
}

/* Checks d/d input and d/d every trainable parameter of the graph ending in out.
   At most `budget` entries of each tensor are probed, spread evenly. */
static void gradcheck(dl_net *net, dl_layer *in, dl_layer *out, int n, int train, const char *label) {
    int size_in = dl_layer_size(in), size_out = dl_layer_size(out), i, p, budget = 40;
    float *x = (float *)malloc(sizeof(float) * n * size_in), *R = (float *)malloc(sizeof(float) * n * size_out);
    float *gx = (float *)malloc(sizeof(float) * n * size_in);
    double worst = 0;
    int kinks = 0, probes = 0;
    const float *g;
    if (!out) { CHECK(0, "%s: building failed: %s", label, dl_net_error(net)); goto done; }
    for (i = 0; i < n * size_in; i++) {     /* keep |x| >= 0.05 so no difference straddles relu's kink */
        float u = frand();
        x[i] = u < 0 ? u - 0.05f : u + 0.05f;
    }
    for (i = 0; i < n * size_out; i++) R[i] = frand();
    dl_net_set_input_grad(net, 1);
    dl_zero_grad(net);
    dl_net_seed(net, 7);
    CHECK(dl_forward(net, out, x, n, train) != NULL, "%s: forward: %s", label, dl_net_error(net));
    CHECK(dl_backward(net, out, R) == DL_OK, "%s: backward: %s", label, dl_net_error(net));
    g = dl_layer_grad(in);
    CHECK(g != NULL, "%s: no input gradient", label);
    if (!g) goto done;
    memcpy(gx, g, sizeof(float) * n * size_in);
    for (i = 0; i < n * size_in; i += (n * size_in + budget - 1) / budget)
        check_one(net, out, x, n, train, R, &x[i], gx[i], "input", i, &worst, &kinks), probes++;
    for (p = 0; p < dl_net_param_count(net); p++) {
        dl_param *pr = dl_net_param(net, p);
        float *grad;
        if (!pr->trainable) continue;
        grad = (float *)malloc(sizeof(float) * pr->size);
        memcpy(grad, pr->grad, sizeof(float) * pr->size);
        for (i = 0; i < pr->size; i += (pr->size + budget - 1) / budget)
            check_one(net, out, x, n, train, R, &pr->data[i], grad[i], pr->name, i, &worst, &kinks), probes++;
        free(grad);
    }
    CHECK(kinks * 4 < probes, "%s: %d of %d probes sit on a kink", label, kinks, probes);
    printf("     %-44s worst relative error %.2e (%d of %d probes on a kink)\n", label, worst, kinks, probes);
done:
    free(x); free(R); free(gx);
    dl_net_free(net);
}

/* Every case of tests/ops.h; every op must have one. */
static void test_op_cases(void) {
    int ran[DL_OP_COUNT] = { 0 }, i;
    for (i = 0; i < OP_CASES; i++) {
        const op_case *k = &op_cases[i];
        dl_net *net = dl_net_new();
        dl_layer *out = op_case_build(net, k);
        gradcheck(net, dl_net_layer(net, 0), out, k->batch, k->train, k->label);
        ran[k->op]++;
    }
    op_cases_cover("test_grad", ran, NULL);
}

/* Training plans place buffers by liveness (a gradient takes memory an
   activation no longer needs); with one buffer per value
   (net->plan_unshared) the same steps must give the same bits: losses,
   parameters, the input's gradient, a pass to an inner layer and
   inference after it. On a net whose values have many readers (residual
   add, concat, views, a custom layer), on 3 threads that split every op. */
static dl_layer *mk_small_reference(dl_layer *x, const void *a) {     /* the reference CNN's layers on (3,8,8) */
    dl_layer *h = dl_maxpool2d(dl_prelu(dl_batchnorm(dl_conv2d(x, 6, 3, 1, 1))), 2, 2);
    h = dl_maxpool2d(dl_prelu(dl_batchnorm(dl_conv2d(h, 18, 3, 1, 1))), 1, 1);
    (void)a;
    return dl_dense(dl_flatten(h), 5);
}
static void shared_plan_case(dl_layer *(*build)(dl_layer *x, const void *a), int inner_op, const char *label) {
    enum { N = 13 };
    static float x[N * 3 * 8 * 8], dy[N * 18 * 4 * 4];
    dl_net *net[2];
    dl_layer *in[2], *out[2], *cat[2];
    dl_optim *opt[2];
    float loss[2];
    const float *p[2];
    int labels[N], i, k, s;
    for (i = 0; i < N * 3 * 8 * 8; i++) x[i] = frand();
    for (i = 0; i < N * 18 * 4 * 4; i++) dy[i] = frand();
    for (i = 0; i < N; i++) labels[i] = i % 5;
    for (k = 0; k < 2; k++) {
        net[k] = dl_net_new();
        dl_net_seed(net[k], 11);
        in[k] = dl_input(net[k], 3, 8, 8);
        out[k] = build(in[k], NULL);
        opt[k] = dl_adam(net[k], 1e-2f);
        CHECK(out[k] && opt[k], "%s: build: %s", label, dl_net_error(net[k]));
        if (!out[k] || !opt[k]) return;
        net[k]->plan_unshared = k;
        net[k]->par_min_work = 0;
        dl_net_set_threads(net[k], 3);
        dl_net_set_input_grad(net[k], 1);
        for (i = 0, cat[k] = NULL; i < net[k]->n_layers; i++) if (net[k]->layers[i]->op == inner_op) cat[k] = net[k]->layers[i];
    }
    for (s = 0; s < 4; s++) {
        for (k = 0; k < 2; k++) CHECK(dl_train_step(net[k], opt[k], out[k], x, labels, N, &loss[k]) == DL_OK, "%s: %s", label, dl_net_error(net[k]));
        CHECK(!memcmp(&loss[0], &loss[1], sizeof(float)), "%s: step %d: loss %.9g shared, %.9g unshared", label, s, loss[0], loss[1]);
        p[0] = dl_layer_grad(in[0]); p[1] = dl_layer_grad(in[1]);
        CHECK(p[0] && p[1] && !memcmp(p[0], p[1], sizeof(float) * N * 3 * 8 * 8), "%s: step %d: the input's gradient differs", label, s);
    }
    CHECK(!memcmp(net[0]->w, net[1]->w, net[0]->nw * sizeof(float)) && !memcmp(net[0]->s, net[1]->s, net[0]->ns * sizeof(float)),
          "%s: parameters or statistics differ after training", label);
    CHECK(net[0]->ctx->plan_floats < net[1]->ctx->plan_floats, "%s: the shared plan (%lu floats) is not smaller than one buffer per value (%lu)",
          label, (unsigned long)net[0]->ctx->plan_floats, (unsigned long)net[1]->ctx->plan_floats);
    for (k = 0; k < 2; k++) {       /* to an inner layer: a plan for another output */
        dl_zero_grad(net[k]);
        CHECK(cat[k] && dl_forward(net[k], cat[k], x, N, 1) && dl_backward(net[k], cat[k], dy) == DL_OK, "%s: %s", label, dl_net_error(net[k]));
    }
    CHECK(!memcmp(net[0]->g, net[1]->g, net[0]->nw * sizeof(float)), "%s: a pass to an inner layer: parameter gradients differ", label);
    p[0] = dl_layer_grad(in[0]); p[1] = dl_layer_grad(in[1]);
    CHECK(p[0] && p[1] && !memcmp(p[0], p[1], sizeof(float) * N * 3 * 8 * 8), "%s: a pass to an inner layer: the input's gradient differs", label);
    CHECK(!dl_layer_output(out[0]) && dl_layer_output(cat[0]), "%s: after a pass to an inner layer only its output is offered", label);
    p[0] = dl_predict(net[0], out[0], x, N); p[1] = dl_predict(net[1], out[1], x, N);
    CHECK(p[0] && p[1] && !memcmp(p[0], p[1], sizeof(float) * N * 5), "%s: inference after training differs", label);
    dl_net_free(net[0]); dl_net_free(net[1]);
}
static void test_shared_plan(void) {
    shared_plan_case(mk_res_concat, DL_OP_CONCAT, "residual add and concat");
    shared_plan_case(mk_small_reference, DL_OP_PRELU, "the reference CNN's layers");
}

int main(void) {
    RUN(test_op_cases);
    RUN(test_shared_plan);
    return test_summary();
}
