/* fuzz_dl.h - what the dl.h fuzz targets do with one input. Shared by
 * tests/fuzz/fuzz_model.c and fuzz_checkpoint.c (under libFuzzer) and by
 * tests/test_reliability.c, which replays the committed corpora through it
 * in every build of the suite (plain, sanitizers, valgrind).
 *
 * Include after dl.h with its implementation. fuzz_dl_one() returns 0 when
 * every invariant held, else the line that failed:
 *   - a load either gives a net or a non-zero status with a message;
 *   - the input is also loaded with its length field and CRC-32 recomputed,
 *     so mutations get past the checksum into the parser;
 *   - a loaded net of modest size predicts (or says why not) and every output
 *     float can be read; it saves, the save loads, and saving that gives the
 *     same bytes;
 *   - a loaded checkpoint trains one step; a step that fails changes no
 *     parameter;
 *   - parsing into an existing graph (what dl_net_load_weights does) either
 *     succeeds or fails with a message. */
#ifndef FUZZ_DL_H
#define FUZZ_DL_H
#include <string.h>

#define FUZZ_DL_FAIL() return __LINE__

/* The graphs of the seed files (tests/fuzz/make_seeds.c): between them
   every op a file can hold, several shapes of each, and every optimizer.
   Returns the last layer, NULL if building failed. */
static dl_layer *fuzz_dl_graph(dl_net *net, int which) {
    dl_layer *x, *h, *xs[3];
    dl_conv_desc c;
    dl_pool_desc pd;
    int s2[2];
    memset(&c, 0, sizeof c);
    memset(&pd, 0, sizeof pd);
    switch (which) {
    case 0:         /* MLP with batchnorm on features */
        x = dl_input(net, 4, 0, 0);
        h = dl_batchnorm(dl_tanh(dl_dense(x, 8)));
        return dl_softmax(dl_dense(h, 3));
    case 1:         /* CNN: conv, grouped conv without bias, pools, dropout */
        x = dl_input(net, 1, 8, 8);
        h = dl_maxpool2d(dl_prelu(dl_batchnorm(dl_conv2d(x, 4, 3, 1, 1))), 2, 2);
        c.filters = 4; c.kernel = 3; c.pad = 1; c.groups = 2; c.no_bias = 1;
        h = dl_relu(dl_conv2d_ex(h, &c));
        pd.kernel = 3; pd.stride = 1; pd.pad = 1;
        h = dl_dropout(dl_avgpool2d_ex(h, &pd), 0.2f);
        return dl_dense(dl_global_avgpool(h), 3);
    case 2:         /* a DAG: activations, add, mul, concat, reshape, matmul */
        x = dl_input(net, 2, 4, 4);
        xs[0] = dl_leaky_relu(x, 0.1f); xs[1] = dl_elu(x, 1.0f); xs[2] = dl_sigmoid(x);
        h = dl_mul(dl_add_n(xs, 3), xs[2]);
        xs[0] = h; xs[1] = x;
        s2[0] = 16; s2[1] = 4;
        h = dl_reshape(dl_concat(xs, 2), 2, s2);
        s2[0] = 4; s2[1] = 8;
        h = dl_tanh(dl_matmul(h, dl_reshape(dl_mul(x, x), 2, s2)));
        return dl_softmax(dl_dense(dl_flatten(h), 2));
    case 4: {       /* the layers of exported models: same pads, ceil mode, hard swish, conv transpose,
                       broadcasting with a constant, pad, upsample, slice, reduce, log_softmax */
        static const int s311[3] = { 4, 1, 1 };
        static const float scale[4] = { 0.5f, 1.5f, -1.0f, 2.0f };
        x = dl_input(net, 2, 6, 5);
        c.filters = 4; c.kernel = 2; c.stride = 2; c.auto_pad = DL_PAD_SAME_UPPER;
        h = dl_hard_swish(dl_conv2d_ex(x, &c));
        h = dl_mul(h, dl_constant(net, 3, s311, scale));
        pd.kernel = 2; pd.stride = 2; pd.ceil_mode = 1; pd.exclude_pad = 1;
        h = dl_clip(dl_avgpool2d_ex(dl_pad(h, 1, DL_PAD_REFLECT), &pd), 0, 6);
        memset(&c, 0, sizeof c);
        c.filters = 3; c.kernel = 3; c.stride = 2; c.pad = 1; c.output_padding = 1;
        h = dl_upsample(dl_slice_channels(dl_conv2d_transpose_ex(h, &c), 0, 2), 2, 1);
        s2[0] = 1; s2[1] = 2;
        return dl_log_softmax(dl_dense(dl_reduce_mean(h, s2, 2, 0), 3));
    }
    default:        /* strided, padded and rectangular windows, dilation */
        x = dl_input(net, 3, 7, 9);
        pd.kernel_h = 3; pd.kernel_w = 2; pd.stride_h = 2; pd.stride_w = 1; pd.pad_h = 1;   /* pad_w 0 */
        h = dl_maxpool2d_ex(x, &pd);
        c.filters = 3; c.kernel_h = 2; c.kernel_w = 3; c.dilation_h = 2; c.stride_w = 2; c.pad_w = 1; c.groups = 3;
        h = dl_batchnorm_ex(dl_conv2d_ex(h, &c), 1e-3f, 0.2f);
        return dl_dense(dl_flatten(dl_avgpool2d(h, 2, 1)), 2);
    }
}

/* Small enough to run: layers' floats per sample and parameters. */
static int fuzz_dl__small(dl_net *net) {
    size_t acts = 0;
    int i;
    for (i = 0; i < dl_net_layer_count(net); i++) {
        const dl_layer *l = dl_net_layer(net, i);
        acts += (size_t)dl_layer_size(l);
        if (l->op == DL_OP_CONV2D) {       /* im2col: K x P floats */
            int c = 0, h, w;
            dl_layer_in_hw(l, 0, &c, &h, &w);
            if ((size_t)c * l->a.kernel[0] * l->a.kernel[1] * (size_t)l->shape[1] * l->shape[2] > (1u << 18)) return 0;
        }
    }
    return acts <= (1u << 14) && dl_net_param_floats(net) + net->ns <= (1u << 16);
}

static int fuzz_dl__run(dl_net *net, dl_optim *opt) {
    static float x[2 * (1 << 14)], t[2 * (1 << 14)];
    dl_layer *out = dl_net_layer(net, -1), *in = NULL;
    const float *p;
    void *b1 = NULL, *b2 = NULL;
    size_t n1 = 0, n2 = 0, i;
    dl_status st;
    dl_net *again;
    int k;
    dl_net_set_threads(net, 1);
    for (k = 0; k < dl_net_layer_count(net) && !in; k++)
        if (dl_layer_op(dl_net_layer(net, k)) == DL_OP_INPUT) in = dl_net_layer(net, k);
    if (out && !in) FUZZ_DL_FAIL();     /* every graph starts at an input (an empty net is a valid file) */
    if (out && fuzz_dl__small(net) && dl_layer_size(in) <= (1 << 14)) {
        for (i = 0; i < (size_t)2 * dl_layer_size(in); i++) x[i] = (float)((int)(i % 7) - 3) * 0.25f;
        p = dl_predict(net, out, x, 2);
        if (!p && !dl_net_error(net)[0]) FUZZ_DL_FAIL();
        if (p) {
            volatile float sum = 0;
            for (i = 0; i < (size_t)2 * dl_layer_size(out); i++) sum += p[i];
            (void)sum;
        }
        if (opt && dl_layer_size(out) <= (1 << 14)) {
            float *w0 = (float *)malloc((dl_net_param_floats(net) + 1) * sizeof(float));
            int rc;
            memset(t, 0, sizeof(float) * 2 * (size_t)dl_layer_size(out));
            if (w0) memcpy(w0, dl_net_params(net), dl_net_param_floats(net) * sizeof(float));
            rc = dl_train_step_mse(net, opt, out, x, t, 2, NULL);
            if (rc && !dl_net_error(net)[0]) { free(w0); FUZZ_DL_FAIL(); }
            if (rc && w0 && memcmp(w0, dl_net_params(net), dl_net_param_floats(net) * sizeof(float))) { free(w0); FUZZ_DL_FAIL(); }
            free(w0);
        }
    }
    /* what loaded saves, and saves again to the same bytes (unless the step
       above diverged: saving refuses non-finite numbers) */
    k = dl_net_save_mem(net, opt, &b1, &n1);
    if (k == DL_ERR_NUMERIC || k == DL_ERR_NOMEM) return 0;
    if (k) FUZZ_DL_FAIL();
    {
        dl_optim *o2 = NULL;
        again = opt ? dl_checkpoint_load_mem(b1, n1, &o2, &st) : dl_net_load_mem(b1, n1, &st);
        if (!again) { DL_FREE(b1); return st.code == DL_ERR_NOMEM ? 0 : __LINE__; }
        if (dl_net_save_mem(again, o2, &b2, &n2)) { DL_FREE(b1); dl_net_free(again); return 0; }   /* out of memory */
    }
    k = n1 != n2 || memcmp(b1, b2, n1);
    DL_FREE(b1); DL_FREE(b2);
    dl_net_free(again);
    if (k) FUZZ_DL_FAIL();
    return 0;
}

/* Patches the body length and CRC of a copy so that the parser sees it. */
static void fuzz_dl__fix(unsigned char *p, size_t len) {
    uint64_t body = len - 28;
    uint32_t crc;
    int k;
    for (k = 0; k < 8; k++) p[16 + k] = (unsigned char)(body >> (8 * k));
    crc = dl__crc32(0, p, len - 4);
    for (k = 0; k < 4; k++) p[len - 4 + k] = (unsigned char)(crc >> (8 * k));
}

/* checkpoint 0: as a model file; 1: as a checkpoint. `into` (may be NULL):
   a net to parse the input into, as dl_net_load_weights does. */
static int fuzz_dl_one(const unsigned char *data, size_t size, int checkpoint, dl_net *into) {
    unsigned char *fixed = NULL;
    int pass, rc = 0;
    if (size >= 28) {
        fixed = (unsigned char *)malloc(size);
        if (!fixed) return 0;
        memcpy(fixed, data, size);
        fuzz_dl__fix(fixed, size);
    }
    for (pass = 0; pass < (fixed ? 2 : 1) && !rc; pass++) {
        const unsigned char *p = pass ? fixed : data;
        dl_status st;
        dl_optim *opt = NULL;
        dl_net *net;
        memset(&st, 0x55, sizeof st);
        net = checkpoint ? dl_checkpoint_load_mem(p, size, &opt, &st) : dl_net_load_mem(p, size, &st);
        if (!net && (st.code == DL_OK || !st.msg[0] || !memchr(st.msg, 0, sizeof st.msg))) rc = __LINE__;
        if (net && !rc) rc = fuzz_dl__run(net, opt);
        dl_net_free(net);
        if (into && !rc) {
            char err[256];
            err[0] = 0;
            if (dl__parse(p, size, into, NULL, NULL, err) != DL_OK && !err[0]) rc = __LINE__;
        }
    }
    free(fixed);
    return rc;
}
#endif
