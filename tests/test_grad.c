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

/* Compares the analytic gradient g of the float at v with a central difference. */
static int check_one(dl_net *net, dl_layer *out, float *x, int n, int train, const float *R, float *v, float g,
                     const char *what, int idx, double *worst) {
    const float h = 1e-2f;
    float saved = *v;
    double lp, lm, num, err;
    *v = saved + h; lp = loss_of(net, out, x, n, train, R);
    *v = saved - h; lm = loss_of(net, out, x, n, train, R);
    *v = saved;
    num = (lp - lm) / (2.0 * h);
    err = fabs(num - g) / (fabs(num) + fabs(g) + 1e-1);
    if (err > *worst) *worst = err;
    CHECK(err < 2e-2, "%s[%d]: analytic %.6g numeric %.6g", what, idx, g, num);
    return err < 2e-2;
}

/* Checks d/d input and d/d every trainable parameter of the graph ending in out.
   At most `budget` entries of each tensor are probed, spread evenly. */
static void gradcheck(dl_net *net, dl_layer *in, dl_layer *out, int n, int train, const char *label) {
    int size_in = dl_layer_size(in), size_out = dl_layer_size(out), i, p, budget = 40;
    float *x = (float *)malloc(sizeof(float) * n * size_in), *R = (float *)malloc(sizeof(float) * n * size_out);
    float *gx = (float *)malloc(sizeof(float) * n * size_in);
    double worst = 0;
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
        check_one(net, out, x, n, train, R, &x[i], gx[i], "input", i, &worst);
    for (p = 0; p < dl_net_param_count(net); p++) {
        dl_param *pr = dl_net_param(net, p);
        float *grad;
        if (!pr->trainable) continue;
        grad = (float *)malloc(sizeof(float) * pr->size);
        memcpy(grad, pr->grad, sizeof(float) * pr->size);
        for (i = 0; i < pr->size; i += (pr->size + budget - 1) / budget)
            check_one(net, out, x, n, train, R, &pr->data[i], grad[i], pr->name, i, &worst);
        free(grad);
    }
    printf("     %-44s worst relative error %.2e\n", label, worst);
done:
    free(x); free(R); free(gx);
    dl_net_free(net);
}

/* ---- convolution ---- */
static void conv_case(int n, int c, int h, int w, int filters, int kh, int kw, int stride, int pad, int dil, int groups,
                      int bias, const char *label) {
    dl_net *net = dl_net_new();
    dl_layer *x = dl_input(net, c, h, w);
    dl_conv_desc d;
    memset(&d, 0, sizeof d);
    d.filters = filters; d.kernel_h = kh; d.kernel_w = kw; d.stride = stride; d.pad = pad;
    d.dilation = dil; d.groups = groups; d.no_bias = !bias;
    gradcheck(net, x, dl_conv2d_ex(x, &d), n, 1, label);
}
static void test_conv2d(void) {
    conv_case(1, 3, 7, 5, 5, 3, 3, 1, 1, 1, 1, 1, "conv 3x3 pad1 batch1 7x5");
    conv_case(3, 3, 7, 5, 6, 3, 3, 2, 0, 1, 1, 1, "conv 3x3 stride2 pad0 batch3");
    conv_case(2, 5, 6, 7, 3, 3, 3, 1, 2, 1, 1, 1, "conv 3x3 pad2 5->3 channels");
    conv_case(2, 3, 9, 8, 4, 3, 3, 1, 2, 2, 1, 1, "conv dilation2 pad2");
    conv_case(3, 6, 5, 5, 4, 3, 3, 1, 1, 1, 2, 1, "conv groups2");
    conv_case(2, 5, 6, 5, 5, 3, 3, 2, 1, 1, 5, 1, "conv depthwise stride2");
    conv_case(3, 6, 4, 5, 7, 1, 1, 1, 0, 1, 1, 1, "conv 1x1 pointwise");
    conv_case(1, 3, 7, 6, 4, 3, 2, 1, 1, 1, 1, 0, "conv 3x2 kernel no bias");
    conv_case(2, 4, 5, 5, 6, 1, 1, 2, 0, 1, 2, 1, "conv 1x1 stride2 groups2");
    {   /* padding and stride per axis: (1, 0) and (2, 1) */
        dl_net *net = dl_net_new();
        dl_layer *x = dl_input(net, 3, 6, 7);
        dl_conv_desc d;
        memset(&d, 0, sizeof d);
        d.filters = 4; d.kernel = 3; d.pad_h = 1; d.stride_h = 2;
        gradcheck(net, x, dl_conv2d_ex(x, &d), 2, 1, "conv pad (1,0) stride (2,1)");
    }
}

static void test_dense(void) {
    dl_net *net = dl_net_new();
    dl_layer *x = dl_input(net, 7, 0, 0);
    dl_dense_desc d;
    gradcheck(net, x, dl_dense(x, 5), 3, 1, "dense 7->5 batch3");
    net = dl_net_new();
    x = dl_input(net, 3, 4, 5);
    gradcheck(net, x, dl_dense(x, 9), 1, 1, "dense flattening 3x4x5->9 batch1");
    net = dl_net_new();
    x = dl_input(net, 6, 0, 0);
    memset(&d, 0, sizeof d);
    d.units = 3; d.no_bias = 1;
    gradcheck(net, x, dl_dense_ex(x, &d), 2, 1, "dense no bias");
}

static void pool_case(int op, int n, int c, int h, int w, int k, int s, int pad, const char *label) {
    dl_net *net = dl_net_new();
    dl_layer *x = dl_input(net, c, h, w);
    dl_pool_desc d;
    memset(&d, 0, sizeof d);
    d.kernel = k; d.stride = s; d.pad = pad;
    gradcheck(net, x, op == DL_OP_MAXPOOL2D ? dl_maxpool2d_ex(x, &d) : dl_avgpool2d_ex(x, &d), n, 1, label);
}
static void test_pool(void) {
    pool_case(DL_OP_MAXPOOL2D, 3, 3, 7, 5, 2, 2, 0, "maxpool 2x2 on 7x5 batch3");
    pool_case(DL_OP_MAXPOOL2D, 1, 2, 7, 6, 3, 2, 1, "maxpool 3x3 stride2 pad1");
    pool_case(DL_OP_AVGPOOL2D, 3, 3, 7, 5, 2, 2, 0, "avgpool 2x2 on 7x5");
    pool_case(DL_OP_AVGPOOL2D, 2, 2, 6, 7, 3, 2, 1, "avgpool 3x3 stride2 pad1");
    {
        dl_net *net = dl_net_new();
        dl_layer *x = dl_input(net, 5, 3, 4);
        gradcheck(net, x, dl_global_avgpool(x), 3, 1, "global avgpool 5x3x4");
    }
}

static void test_batchnorm(void) {
    dl_net *net = dl_net_new();
    dl_layer *x = dl_input(net, 3, 5, 4);
    gradcheck(net, x, dl_batchnorm(x), 3, 1, "batchnorm CxHxW training");
    net = dl_net_new();
    x = dl_input(net, 6, 0, 0);
    gradcheck(net, x, dl_batchnorm(dl_dense(x, 5)), 4, 1, "batchnorm after dense, training");
    net = dl_net_new();
    x = dl_input(net, 3, 3, 3);
    gradcheck(net, x, dl_batchnorm(x), 2, 0, "batchnorm eval");
    net = dl_net_new();
    x = dl_input(net, 2, 3, 3);
    gradcheck(net, x, dl_batchnorm(x), 1, 1, "batchnorm training batch1");
}

static void test_activations(void) {
    struct { const char *label; int kind; } cases[] = {
        { "relu", DL_OP_RELU }, { "leaky relu", DL_OP_LEAKY_RELU }, { "elu", DL_OP_ELU }, { "prelu", DL_OP_PRELU },
        { "sigmoid", DL_OP_SIGMOID }, { "tanh", DL_OP_TANH }, { "softmax over channels", DL_OP_SOFTMAX },
        { "dropout training", DL_OP_DROPOUT },
    };
    size_t k;
    for (k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        dl_net *net = dl_net_new();
        dl_layer *x = dl_input(net, 3, 5, 3), *y = NULL;
        switch (cases[k].kind) {
        case DL_OP_RELU: y = dl_relu(x); break;
        case DL_OP_LEAKY_RELU: y = dl_leaky_relu(x, 0.1f); break;
        case DL_OP_ELU: y = dl_elu(x, 0.7f); break;
        case DL_OP_PRELU: y = dl_prelu(x); break;
        case DL_OP_SIGMOID: y = dl_sigmoid(x); break;
        case DL_OP_TANH: y = dl_tanh(x); break;
        case DL_OP_SOFTMAX: y = dl_softmax(x); break;
        case DL_OP_DROPOUT: y = dl_dropout(x, 0.3f); break;
        }
        gradcheck(net, x, y, 3, 1, cases[k].label);
    }
    {   /* softmax over a 1-D vector, prelu after dense */
        dl_net *net = dl_net_new();
        dl_layer *x = dl_input(net, 7, 0, 0);
        gradcheck(net, x, dl_softmax(x), 2, 1, "softmax over features");
        net = dl_net_new();
        x = dl_input(net, 4, 0, 0);
        gradcheck(net, x, dl_prelu(dl_dense(x, 5)), 3, 1, "prelu after dense");
    }
}

static void test_graph_ops(void) {
    dl_net *net = dl_net_new();
    dl_layer *x = dl_input(net, 6, 0, 0), *xs[3];
    xs[0] = dl_dense(x, 4); xs[1] = dl_dense(x, 4); xs[2] = dl_tanh(dl_dense(x, 4));
    gradcheck(net, x, dl_add_n(xs, 3), 3, 1, "add of 3 branches");

    net = dl_net_new();
    x = dl_input(net, 6, 0, 0);
    gradcheck(net, x, dl_mul(dl_dense(x, 5), dl_dense(x, 5)), 2, 1, "mul of 2 branches");

    net = dl_net_new();
    x = dl_input(net, 2, 5, 3);
    xs[0] = dl_conv2d(x, 3, 3, 1, 1); xs[1] = x; xs[2] = dl_conv2d(x, 1, 1, 1, 0);
    gradcheck(net, x, dl_concat(xs, 3), 3, 1, "concat conv3x3, identity, conv1x1");

    net = dl_net_new();
    x = dl_input(net, 12, 0, 0);
    {
        int sa[2] = { 3, 4 }, sb[2] = { 4, 2 };
        gradcheck(net, x, dl_matmul(dl_reshape(x, 2, sa), dl_reshape(dl_dense(x, 8), 2, sb)), 3, 1, "matmul 3x4 by 4x2");
    }
    net = dl_net_new();
    x = dl_input(net, 24, 0, 0);
    {
        int sa[3] = { 2, 3, 4 }, sb[3] = { 2, 4, 5 };
        gradcheck(net, x, dl_matmul(dl_reshape(x, 3, sa), dl_reshape(dl_dense(x, 40), 3, sb)), 2, 1, "batched matmul 2x(3x4 by 4x5)");
    }
    net = dl_net_new();
    x = dl_input(net, 2, 3, 4);
    {   /* a residual block: x + conv(tanh(bn(conv(x)))); tanh, not relu, so no difference crosses a kink */
        dl_layer *h = dl_conv2d(dl_tanh(dl_batchnorm(dl_conv2d(x, 2, 3, 1, 1))), 2, 3, 1, 1);
        gradcheck(net, x, dl_add(x, h), 3, 1, "residual block");
    }
    net = dl_net_new();
    x = dl_input(net, 2, 3, 4);
    gradcheck(net, x, dl_dense(dl_flatten(dl_elu(x, 1.0f)), 3), 2, 1, "flatten view between elu and dense");
}

/* A user-defined layer: y = scale * x^2 + shift, with its own parameters. */
static int square_forward(const dl_custom_args *a) {
    int i;
    for (i = 0; i < a->n * a->out_size; i++) a->out[i] = a->params[0][0] * a->in[0][i] * a->in[0][i] + a->params[1][i % a->out_size];
    return 0;
}
static int square_backward(const dl_custom_args *a) {
    int i;
    for (i = 0; i < a->n * a->out_size; i++) {
        float x = a->in[0][i];
        if (a->din[0]) a->din[0][i] += a->dout[i] * 2.0f * a->params[0][0] * x;
        if (a->dparams[0]) a->dparams[0][0] += a->dout[i] * x * x;
        if (a->dparams[1]) a->dparams[1][i % a->out_size] += a->dout[i];
    }
    return 0;
}
static void test_custom(void) {
    dl_net *net = dl_net_new();
    dl_layer *x = dl_input(net, 5, 0, 0);
    dl_custom_desc d;
    memset(&d, 0, sizeof d);
    d.name = "square";
    d.ndim = 1; d.shape[0] = 5;
    d.forward = square_forward; d.backward = square_backward;
    d.n_params = 2;
    d.params[0].name = "scale"; d.params[0].size = 1; d.params[0].init_value = 0.5f;
    d.params[1].name = "shift"; d.params[1].size = 5; d.params[1].init_value = 0.1f;
    gradcheck(net, x, dl_dense(dl_custom(&x, 1, &d), 3), 3, 1, "custom layer with parameters");
}

int main(void) {
    RUN(test_dense);
    RUN(test_conv2d);
    RUN(test_pool);
    RUN(test_batchnorm);
    RUN(test_activations);
    RUN(test_graph_ops);
    RUN(test_custom);
    return test_summary();
}
