/* Behaviour of the core: small trainings converge, files round-trip bit for
   bit, checkpoints resume exactly, bad files and bad calls give errors,
   one net serves several threads, and the backend interface works through a
   guarded fake device. Also compiled as C++ (make test builds cxx_check). */
#define DL_IMPLEMENTATION
#include "../dl.h"
#include "test.h"
#include "format1_seeds.h"
#include <stdlib.h>

static uint64_t rng_state = 12345;
static float frand(void) {          /* uniform in [0, 1) */
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (float)((rng_state >> 40) & 0xFFFFFF) / 16777216.0f;
}
static int argmax(const float *p, int k) {
    int i, b = 0;
    for (i = 1; i < k; i++) if (p[i] > p[b]) b = i;
    return b;
}

/* ---- convergence ---- */
static void test_xor_mlp(void) {
    float x[8] = { 0, 0, 0, 1, 1, 0, 1, 1 };
    int y[4] = { 0, 1, 1, 0 }, i, correct = 0;
    float loss = 0;
    dl_net *net = dl_net_new();
    dl_layer *in = dl_input(net, 2, 0, 0);
    dl_layer *out = dl_dense(dl_tanh(dl_dense(in, 8)), 2);
    dl_optim *opt = dl_adam(net, 0.05f);
    const float *p;
    CHECK(out && opt, "build: %s", dl_net_error(net));
    for (i = 0; i < 300; i++) CHECK(dl_train_step(net, opt, out, x, y, 4, &loss) == DL_OK, "%s", dl_net_error(net));
    p = dl_predict(net, out, x, 4);
    for (i = 0; i < 4; i++) correct += argmax(p + 2 * i, 2) == y[i];
    CHECK(correct == 4, "XOR: %d of 4 right, loss %g", correct, loss);
    CHECK(loss < 0.05f, "XOR loss %g", loss);
    dl_net_free(net);
}

/* 4 classes of 12x12 images: a horizontal bar, a vertical bar, a diagonal, a
   ring, at random places, with noise. */
static void make_patterns(float *x, int *y, int n) {
    int i, r, c;
    for (i = 0; i < n; i++) {
        float *img = x + i * 144;
        int k = (int)(frand() * 4), o = 2 + (int)(frand() * 8);
        y[i] = k;
        for (r = 0; r < 144; r++) img[r] = 0.3f * frand();
        for (r = 0; r < 12; r++)
            for (c = 0; c < 12; c++) {
                int on = k == 0 ? r == o : k == 1 ? c == o : k == 2 ? r == c : (abs(r - 6) + abs(c - 6)) == 4;
                if (on) img[r * 12 + c] += 1.0f;
            }
    }
}
static dl_layer *pattern_cnn(dl_net *net) {
    dl_layer *x = dl_input(net, 1, 12, 12);
    dl_layer *h = dl_maxpool2d(dl_relu(dl_batchnorm(dl_conv2d(x, 8, 3, 1, 1))), 2, 2);
    h = dl_maxpool2d(dl_relu(dl_conv2d(h, 16, 3, 1, 1)), 2, 2);
    return dl_dense(dl_dropout(dl_flatten(h), 0.1f), 4);
}
static void test_pattern_cnn(void) {
    enum { N = 512, T = 256 };
    static float x[N * 144], tx[T * 144];
    static int y[N], ty[T];
    dl_net *net = dl_net_new();
    dl_layer *logits = pattern_cnn(net), *probs = dl_softmax(logits);
    dl_optim *opt = dl_adam(net, 3e-3f);
    int epoch, b, i, correct = 0;
    float loss = 0;
    const float *p;
    make_patterns(x, y, N);
    make_patterns(tx, ty, T);
    CHECK(probs && opt, "build: %s", dl_net_error(net));
    for (epoch = 0; epoch < 4; epoch++)
        for (b = 0; b < N; b += 32)
            CHECK(dl_train_step(net, opt, logits, x + b * 144, y + b, 32, &loss) == DL_OK, "%s", dl_net_error(net));
    p = dl_predict(net, probs, tx, T);
    for (i = 0; i < T; i++) correct += argmax(p + 4 * i, 4) == ty[i];
    printf("     pattern CNN: held-out accuracy %.3f, last loss %.4f\n", (double)correct / T, loss);
    CHECK(correct >= T * 95 / 100, "held-out accuracy %d/%d", correct, T);
    for (i = 0; i < T; i++) {   /* probabilities sum to 1 */
        float s = p[4 * i] + p[4 * i + 1] + p[4 * i + 2] + p[4 * i + 3];
        if (fabsf(s - 1) > 1e-5f) { CHECK(0, "sample %d probabilities sum to %g", i, s); break; }
    }
    dl_net_free(net);
}

static void test_mse_regression(void) {
    /* y = 2 x0 - x1 + 0.5 learned by a dense layer */
    float x[64], t[32], loss = 1;
    int i, s;
    dl_net *net = dl_net_new();
    dl_layer *in = dl_input(net, 2, 0, 0), *out = dl_dense(in, 1);
    dl_optim *opt = dl_sgd(net, 0.1f, 0.9f);
    for (i = 0; i < 32; i++) { x[2 * i] = frand() * 2 - 1; x[2 * i + 1] = frand() * 2 - 1; t[i] = 2 * x[2 * i] - x[2 * i + 1] + 0.5f; }
    for (s = 0; s < 200; s++) CHECK(dl_train_step_mse(net, opt, out, x, t, 32, &loss) == DL_OK, "%s", dl_net_error(net));
    CHECK(loss < 1e-6f, "MSE after 200 steps: %g", loss);
    CHECK(fabsf(dl_net_find_param(net, "dense_1.bias")->data[0] - 0.5f) < 1e-3f, "bias %g", dl_net_find_param(net, "dense_1.bias")->data[0]);
    dl_net_free(net);
}

/* Each initializer fills a 100x200 dense weight (fan_in 200, fan_out 100) from
   its distribution: uniform ones reach close to their bound and never past it,
   normal ones have the right standard deviation, and the mean is near 0. */
static void test_initializers(void) {
    static const struct { int init; double bound, sd; } k[] = {
        {DL_INIT_DEFAULT, 0.17320508, 0}, {DL_INIT_HE_UNIFORM, 0.17320508, 0}, {DL_INIT_HE_NORMAL, 0, 0.1},
        {DL_INIT_GLOROT_UNIFORM, 0.14142136, 0}, {DL_INIT_GLOROT_NORMAL, 0, 0.08164966},
        {DL_INIT_TORCH_UNIFORM, 0.07071068, 0}, {DL_INIT_ZEROS, 0, 0}};
    int t, i;
    for (t = 0; t < (int)(sizeof k / sizeof k[0]); t++) {
        dl_net *net = dl_net_new();
        dl_dense_desc d;
        dl_param *p;
        double sum = 0, sq = 0, peak = 0;
        memset(&d, 0, sizeof d);
        d.units = 100, d.init = k[t].init;
        CHECK(dl_dense_ex(dl_input(net, 200, 0, 0), &d) != NULL, "%s", dl_net_error(net));
        p = dl_net_find_param(net, "dense_1.weight");
        CHECK(p && p->size == 20000, "no 100x200 weight");
        if (!p || p->size != 20000) { dl_net_free(net); continue; }
        for (i = 0; i < p->size; i++) {
            sum += p->data[i], sq += (double)p->data[i] * p->data[i];
            if (fabs(p->data[i]) > peak) peak = fabs(p->data[i]);
        }
        if (k[t].bound > 0) CHECK(peak <= k[t].bound && peak > 0.99 * k[t].bound, "init %d: largest |w| %g, bound %g",
                                  k[t].init, peak, k[t].bound);
        else if (k[t].sd > 0) CHECK(fabs(sqrt(sq / p->size) - k[t].sd) < 0.03 * k[t].sd, "init %d: sd %g, want %g",
                                    k[t].init, sqrt(sq / p->size), k[t].sd);
        else CHECK(peak == 0, "init %d: zeros gave %g", k[t].init, peak);
        CHECK(fabs(sum / p->size) < 0.02 * (k[t].bound + k[t].sd) + 1e-12, "init %d: mean %g", k[t].init, sum / p->size);
        dl_net_free(net);
    }
}

/* ---- determinism and files ---- */
/* Steps first.. over batches of 16 drawn in turn from n samples. */
static void train_some(dl_net *net, dl_optim *opt, dl_layer *logits, const float *x, const int *y, int n, int steps, int first) {
    int s;
    for (s = first; s < first + steps; s++) {
        int b = s % (n / 16);
        CHECK(dl_train_step(net, opt, logits, x + b * 16 * 144, y + b * 16, 16, NULL) == DL_OK, "%s", dl_net_error(net));
    }
}
static int same_params(dl_net *a, dl_net *b) {
    return dl_net_param_floats(a) == dl_net_param_floats(b) &&
           !memcmp(dl_net_params(a), dl_net_params(b), dl_net_param_floats(a) * sizeof(float));
}
static void test_same_seed_same_training(void) {
    static float x[128 * 144];
    static int y[128];
    dl_net *a = dl_net_new(), *b = dl_net_new();
    dl_layer *la, *lb;
    dl_optim *oa, *ob;
    make_patterns(x, y, 128);
    dl_net_seed(a, 99); dl_net_seed(b, 99);
    la = pattern_cnn(a); lb = pattern_cnn(b);
    oa = dl_adam(a, 1e-3f); ob = dl_adam(b, 1e-3f);
    CHECK(same_params(a, b), "same seed, different initial weights");
    train_some(a, oa, la, x, y, (int)(sizeof y / sizeof y[0]), 10, 0);
    train_some(b, ob, lb, x, y, (int)(sizeof y / sizeof y[0]), 10, 0);
    CHECK(same_params(a, b), "same seed and data, different weights after training");
    dl_net_free(a); dl_net_free(b);
}

static void test_save_load_identical(void) {
    static float x[64 * 144];
    static int y[64];
    dl_net *net = dl_net_new(), *back, *mem;
    dl_layer *logits = pattern_cnn(net), *probs = dl_softmax(logits);
    dl_optim *opt = dl_adam(net, 1e-3f);
    dl_status st;
    void *buf = NULL;
    size_t len = 0;
    const float *p;
    float *ref = (float *)malloc(64 * 4 * sizeof(float));
    make_patterns(x, y, 64);
    train_some(net, opt, logits, x, y, (int)(sizeof y / sizeof y[0]), 4, 0);
    dl_layer_set_name(probs, "probs");
    p = dl_predict(net, probs, x, 64);
    memcpy(ref, p, 64 * 4 * sizeof(float));
    CHECK(dl_net_save(net, "build/t_model.dl") == DL_OK, "save: %s", dl_net_error(net));
    back = dl_net_load("build/t_model.dl", &st);
    CHECK(back != NULL, "load: %s", st.msg);
    if (back) {
        p = dl_predict(back, dl_net_find(back, "probs"), x, 64);
        CHECK(p && !memcmp(p, ref, 64 * 4 * sizeof(float)), "predictions differ after load");
        CHECK(dl_net_layer_count(back) == dl_net_layer_count(net), "layer count");
        CHECK(same_params(net, back), "parameters differ after load");
    }
    CHECK(dl_net_save_mem(net, NULL, &buf, &len) == DL_OK, "save_mem");
    mem = dl_net_load_mem(buf, len, &st);
    CHECK(mem && (p = dl_predict(mem, dl_net_output(mem), x, 64)) && !memcmp(p, ref, 64 * 4 * sizeof(float)), "from memory: %s", st.msg);
    DL_FREE(buf);
    dl_net_free(net); dl_net_free(back); dl_net_free(mem);
    free(ref);
}

static void test_checkpoint_resume(void) {
    static float x[128 * 144];
    static int y[128];
    dl_net *a = dl_net_new(), *b = dl_net_new(), *c;
    dl_layer *la, *lb, *lc;
    dl_optim *oa, *ob, *oc = NULL;
    dl_status st;
    dl_optim_desc d;
    make_patterns(x, y, 128);
    dl_net_seed(a, 5); dl_net_seed(b, 5);
    la = pattern_cnn(a); lb = pattern_cnn(b);
    memset(&d, 0, sizeof d);
    d.kind = DL_RMSPROP; d.lr = 1e-3f; d.momentum = 0.5f; d.centered = 1;
    oa = dl_optim_new(a, &d); ob = dl_optim_new(b, &d);
    train_some(a, oa, la, x, y, (int)(sizeof y / sizeof y[0]), 12, 0);         /* uninterrupted: 12 steps */
    train_some(b, ob, lb, x, y, (int)(sizeof y / sizeof y[0]), 5, 0);          /* interrupted after 5 */
    CHECK(dl_checkpoint_save(b, ob, "build/t_ckpt.dl") == DL_OK, "checkpoint: %s", dl_net_error(b));
    dl_net_free(b);
    c = dl_checkpoint_load("build/t_ckpt.dl", &oc, &st);
    CHECK(c && oc, "resume: %s", st.msg);
    if (!c || !oc) { dl_net_free(a); dl_net_free(c); return; }
    lc = dl_net_layer(c, -1);
    train_some(c, oc, lc, x, y, (int)(sizeof y / sizeof y[0]), 7, 5);
    CHECK(same_params(a, c), "resumed training differs from uninterrupted training");
    {   /* a checkpoint also loads as a plain model */
        dl_net *m = dl_net_load("build/t_ckpt.dl", &st);
        CHECK(m != NULL, "checkpoint as model: %s", st.msg);
        dl_net_free(m);
    }
    dl_net_free(a); dl_net_free(c);
}

static dl_net *load_bytes(const unsigned char *p, size_t len, dl_status *st) { return dl_net_load_mem(p, len, st); }
static void put_u32(unsigned char *p, uint32_t v) { p[0] = (unsigned char)v; p[1] = (unsigned char)(v >> 8); p[2] = (unsigned char)(v >> 16); p[3] = (unsigned char)(v >> 24); }
static void fix_crc(unsigned char *p, size_t len) { put_u32(p + len - 4, dl__crc32(0, p, len - 4)); }

static void test_corrupt_files(void) {
    dl_net *net = dl_net_new(), *bad;
    dl_layer *logits = pattern_cnn(net);
    void *buf = NULL;
    size_t len = 0, cut, i, rejected = 0, tried = 0;
    unsigned char *p, *q;
    dl_status st;
    FILE *f;
    (void)logits;
    CHECK(dl_net_save_mem(net, NULL, &buf, &len) == DL_OK, "save_mem");
    p = (unsigned char *)buf;
    q = (unsigned char *)malloc(len);
    /* every truncation */
    for (cut = 0; cut < len; cut += (cut < 200 ? 1 : 97)) {
        tried++;
        bad = load_bytes(p, cut, &st);
        if (!bad && st.code != DL_OK && st.msg[0]) rejected++;
        dl_net_free(bad);
    }
    CHECK(rejected == tried, "%lu of %lu truncations rejected", (unsigned long)rejected, (unsigned long)tried);
    /* every single flipped byte is caught by the checksum */
    rejected = tried = 0;
    for (i = 0; i < len; i += (i < 300 ? 1 : 53)) {
        memcpy(q, p, len);
        q[i] ^= 0x5a;
        tried++;
        bad = load_bytes(q, len, &st);
        if (!bad && st.code == DL_ERR_FORMAT) rejected++;
        dl_net_free(bad);
    }
    CHECK(rejected == tried, "%lu of %lu corruptions rejected", (unsigned long)rejected, (unsigned long)tried);
    /* a corrupt body with a valid checksum still fails cleanly: walk bytes of the layer table */
    for (i = 24; i < len - 4 && i < 24 + 1200; i++) {
        int v;
        for (v = 0; v < 3; v++) {
            static const unsigned char vals[3] = { 0xff, 0x00, 0x7f };
            memcpy(q, p, len);
            q[i] = vals[v];
            fix_crc(q, len);
            bad = load_bytes(q, len, &st);   /* may load if harmless; must not crash */
            if (bad) { CHECK(dl_predict(bad, dl_net_output(bad), (const float *)(const void *)q, 1) != NULL || dl_net_error(bad)[0], "no output and no error"); dl_net_free(bad); }
        }
    }
    /* wrong magic, newer version, foreign, empty, missing */
    memcpy(q, p, len); q[1] = 'X';
    CHECK(!load_bytes(q, len, &st) && strstr(st.msg, "magic"), "bad magic: '%s'", st.msg);
    memcpy(q, p, len); put_u32(q + 8, 99); fix_crc(q, len);
    CHECK(!load_bytes(q, len, &st) && strstr(st.msg, "format 99"), "newer version: '%s'", st.msg);
    CHECK(!load_bytes((const unsigned char *)"hello, world, this is not a model file at all", 45, &st) && st.code == DL_ERR_FORMAT, "foreign: '%s'", st.msg);
    CHECK(!load_bytes(q, 0, &st) && st.code == DL_ERR_FORMAT, "empty");
    CHECK(!dl_net_load("build/does/not/exist.dl", &st) && st.code == DL_ERR_IO && strstr(st.msg, "exist.dl"), "missing: '%s'", st.msg);
    f = fopen("build/t_trunc.dl", "wb");
    if (f) { fwrite(p, 1, len / 2, f); fclose(f); }
    CHECK(!dl_net_load("build/t_trunc.dl", &st) && strstr(st.msg, "t_trunc.dl") && strstr(st.msg, "truncated"), "truncated file: '%s'", st.msg);
    CHECK(!dl_net_load("build/t_trunc.dl", NULL), "NULL status is allowed");
    free(q);
    DL_FREE(buf);
    dl_net_free(net);
}

static void test_save_is_atomic(void) {
    /* a failed save leaves the old file in place */
    dl_net *net = dl_net_new();
    dl_status st;
    dl_net *back;
    dl_dense(dl_input(net, 3, 0, 0), 2);
    CHECK(dl_net_save(net, "build/t_atomic.dl") == DL_OK, "save");
    CHECK(dl_net_save(net, "build/no/such/folder/t.dl") == DL_ERR_IO, "save into a missing folder must fail");
    CHECK(strstr(dl_net_error(net), "no/such/folder") != NULL, "message names the path: %s", dl_net_error(net));
    back = dl_net_load("build/t_atomic.dl", &st);
    CHECK(back != NULL, "old file still loads: %s", st.msg);
    dl_net_free(back);
    dl_net_free(net);
}

/* ---- errors ---- */
static void test_build_errors(void) {
    dl_net *net = dl_net_new(), *other = dl_net_new();
    dl_layer *x = dl_input(net, 3, 8, 8), *y, *o = dl_input(other, 3, 8, 8), *xs[2];
    float loss;
    int labels[2] = { 0, 7 };
    float data[2 * 192];
    memset(data, 0, sizeof data);
    y = dl_conv2d(x, 4, 11, 1, 0);
    CHECK(!y && strstr(dl_net_error(net), "conv2d_1") && strstr(dl_net_error(net), "3x8x8"), "too-large kernel: %s", dl_net_error(net));
    CHECK(!dl_relu(y), "NULL propagates");
    CHECK(dl_conv2d(x, 4, 3, 1, 1) != NULL, "a valid layer after an error still builds");
    CHECK(dl_conv2d(dl_input(net, 5, 8, 8), 4, 3, 1, 1) != NULL, "second input builds");
    {
        dl_conv_desc d;
        memset(&d, 0, sizeof d);
        d.filters = 4; d.kernel = 3; d.groups = 2;
        CHECK(!dl_conv2d_ex(x, &d) && strstr(dl_net_error(net), "groups 2"), "groups: %s", dl_net_error(net));
    }
    xs[0] = x; xs[1] = o;
    CHECK(!dl_add_n(xs, 2) && strstr(dl_net_error(net), "another net"), "cross-net: %s", dl_net_error(net));
    xs[1] = dl_maxpool2d(x, 2, 2);
    CHECK(!dl_add_n(xs, 2) && strstr(dl_net_error(net), "3x4x4"), "add shape mismatch: %s", dl_net_error(net));
    CHECK(!dl_dense(x, 0), "zero units");
    CHECK(!dl_dropout(x, 1.0f), "p = 1");
    CHECK(!dl_maxpool2d(dl_flatten(x), 2, 2) && strstr(dl_net_error(net), "CxHxW"), "pool on flat: %s", dl_net_error(net));
    {
        int bad[2] = { 5, 7 };
        CHECK(!dl_reshape(x, 2, bad) && strstr(dl_net_error(net), "5x7"), "reshape: %s", dl_net_error(net));
    }
    CHECK(!dl_input(net, 0, 1, 1), "zero channels");
    y = dl_dense(dl_flatten(x), 5);
    dl_layer_set_name(y, "head");
    CHECK(dl_layer_set_name(x, "head") == DL_ERR_ARG, "duplicate name");
    CHECK(dl_net_find_param(net, "head.weight") != NULL, "renamed parameters");
    {
        dl_optim *opt = dl_adam(net, 1e-3f), *oopt = dl_adam(other, 1e-3f);
        CHECK(dl_train_step(net, opt, y, data, labels, 2, &loss) == DL_ERR_ARG && strstr(dl_net_error(net), "label 7"),
              "label out of range: %s", dl_net_error(net));
        labels[1] = 1;
        CHECK(dl_train_step(net, oopt, y, data, labels, 2, &loss) == DL_ERR_ARG, "optimizer of another net");
        CHECK(dl_train_step(net, opt, y, data, labels, 0, &loss) == DL_ERR_ARG, "batch 0");
        CHECK(dl_train_step(net, opt, y, NULL, labels, 2, &loss) == DL_ERR_ARG, "NULL data");
        CHECK(dl_train_step(net, opt, o, data, labels, 2, &loss) == DL_ERR_ARG, "layer of another net");
        CHECK(dl_train_step(net, opt, y, data, labels, 2, &loss) == DL_OK, "valid step: %s", dl_net_error(net));
        CHECK(!dl_predict(net, y, NULL, 2) && strstr(dl_net_error(net), "input data is NULL"), "predict NULL data");
        CHECK(!dl_adam(net, -1.0f), "negative lr");
    }
    dl_net_free(net);
    dl_net_free(other);
}

static void test_nonfinite_changes_nothing(void) {
    static float x[16 * 144];
    static int y[16];
    dl_net *net = dl_net_new();
    dl_layer *logits = pattern_cnn(net);
    dl_optim *opt = dl_adam(net, 1e-3f);
    size_t nw, ns;
    float *w0, *s0, *m0;
    make_patterns(x, y, 16);
    train_some(net, opt, logits, x, y, (int)(sizeof y / sizeof y[0]), 2, 0);
    nw = dl_net_param_floats(net); ns = net->ns;
    w0 = (float *)malloc(nw * sizeof(float)); s0 = (float *)malloc(ns * sizeof(float)); m0 = (float *)malloc(nw * sizeof(float));
    memcpy(w0, net->w, nw * sizeof(float)); memcpy(s0, net->s, ns * sizeof(float)); memcpy(m0, opt->s[1], nw * sizeof(float));
    x[5] = NAN;
    CHECK(dl_train_step(net, opt, logits, x, y, 16, NULL) == DL_ERR_NUMERIC, "NaN input must stop the step: %s", dl_net_error(net));
    CHECK(!memcmp(w0, net->w, nw * sizeof(float)), "weights changed");
    CHECK(!memcmp(s0, net->s, ns * sizeof(float)), "batchnorm statistics changed");
    CHECK(!memcmp(m0, opt->s[1], nw * sizeof(float)), "optimizer state changed");
    CHECK(opt->step == 2, "step count %ld", opt->step);
    x[5] = 0.5f;
    CHECK(dl_train_step(net, opt, logits, x, y, 16, NULL) == DL_OK, "training continues: %s", dl_net_error(net));
    free(w0); free(s0); free(m0);
    dl_net_free(net);
}

static void test_freeze_and_lr(void) {
    float x[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
    int y[4] = { 0, 1, 0, 1 };
    dl_net *net = dl_net_new();
    dl_layer *in = dl_input(net, 2, 0, 0), *h = dl_dense(in, 3), *out = dl_dense(h, 2);
    const float lr = 0.1f;          /* a float: the constant 0.1f may be evaluated wider (i686, s390x) */
    dl_optim *opt = dl_sgd(net, lr, 0);
    dl_param *w1 = dl_net_find_param(net, "dense_1.weight"), *w2 = dl_net_find_param(net, "dense_2.weight");
    float before1[6], before2[6], after2[6];
    int i;
    memcpy(before1, w1->data, sizeof before1);
    memcpy(before2, w2->data, sizeof before2);
    w1->frozen = 1;
    CHECK(dl_train_step(net, opt, out, x, y, 4, NULL) == DL_OK, "%s", dl_net_error(net));
    CHECK(!memcmp(before1, w1->data, sizeof before1), "a frozen parameter changed");
    CHECK(memcmp(before2, w2->data, sizeof before2), "an unfrozen parameter did not change");
    /* the step is proportional to the learning rate */
    memcpy(before2, w2->data, sizeof before2);
    dl_optim_set_lr(opt, 0.0f);     /* ignored: must stay positive */
    CHECK(dl_optim_lr(opt) == lr, "lr %g", dl_optim_lr(opt));
    dl_optim_set_lr(opt, 1e-9f);
    CHECK(dl_train_step(net, opt, out, x, y, 4, NULL) == DL_OK, "%s", dl_net_error(net));
    memcpy(after2, w2->data, sizeof after2);
    for (i = 0; i < 6; i++) CHECK(fabsf(after2[i] - before2[i]) < 1e-6f, "tiny lr moved weight %d by %g", i, after2[i] - before2[i]);
    dl_net_free(net);
}

/* ---- one net, several threads ---- */
typedef struct { dl_net *net; dl_layer *out; const float *x; const float *ref; int ok; } job_t;
static void infer_thread(void *arg) {
    job_t *j = (job_t *)arg;
    dl_ctx *c = dl_ctx_new(j->net);
    int it;
    j->ok = c != NULL;
    for (it = 0; it < 20 && j->ok; it++) {
        const float *p = dl_ctx_predict(c, j->out, j->x, 32);
        j->ok = p && !memcmp(p, j->ref, 32 * 4 * sizeof(float));
    }
    dl_ctx_free(c);
}
static void test_threads_share_one_net(void) {
    static float x[32 * 144];
    static int y[32];
    dl_net *net = dl_net_new();
    dl_layer *logits = pattern_cnn(net), *probs = dl_softmax(logits);
    dl_optim *opt = dl_adam(net, 1e-3f);
    test_thread th[4];
    job_t jobs[4];
    float *ref = (float *)malloc(32 * 4 * sizeof(float));
    int i;
    make_patterns(x, y, 32);
    train_some(net, opt, logits, x, y, (int)(sizeof y / sizeof y[0]), 3, 0);
    memcpy(ref, dl_predict(net, probs, x, 32), 32 * 4 * sizeof(float));
    for (i = 0; i < 4; i++) {
        jobs[i].net = net; jobs[i].out = probs; jobs[i].x = x; jobs[i].ref = ref; jobs[i].ok = 0;
        CHECK(test_thread_start(&th[i], infer_thread, &jobs[i]), "cannot start thread %d", i);
    }
    for (i = 0; i < 4; i++) { test_thread_join(&th[i]); CHECK(jobs[i].ok, "thread %d got a different answer", i); }
    free(ref);
    dl_net_free(net);
}

/* ---- the backend interface, through a fake device with guard bytes ---- */
#define GUARD 64
typedef struct { dl_backend b; int allocs, live, copies_in, copies_out, bad_guard; } fake_dev;
static void *fake_alloc(dl_backend *b, size_t bytes) {
    fake_dev *f = (fake_dev *)b;
    unsigned char *p = (unsigned char *)malloc(bytes + 2 * GUARD + sizeof(size_t));
    if (!p) return NULL;
    memcpy(p, &bytes, sizeof(size_t));
    memset(p + sizeof(size_t), 0xAB, GUARD);
    memset(p + sizeof(size_t) + GUARD + bytes, 0xCD, GUARD);
    f->allocs++; f->live++;
    return p + sizeof(size_t) + GUARD;
}
static int guard_ok(void *q) {
    unsigned char *p = (unsigned char *)q - GUARD - sizeof(size_t);
    size_t bytes, i;
    memcpy(&bytes, p, sizeof(size_t));
    for (i = 0; i < GUARD; i++) if (p[sizeof(size_t) + i] != 0xAB || p[sizeof(size_t) + GUARD + bytes + i] != 0xCD) return 0;
    return 1;
}
static void fake_release(dl_backend *b, void *q) {
    fake_dev *f = (fake_dev *)b;
    if (!q) return;
    if (!guard_ok(q)) f->bad_guard++;
    f->live--;
    free((unsigned char *)q - GUARD - sizeof(size_t));
}
static int fake_copy(dl_backend *b, void *dst, const void *src, size_t n, int dir) {
    fake_dev *f = (fake_dev *)b;
    if (dir == DL_TO_DEVICE) f->copies_in++;
    if (dir == DL_TO_HOST) f->copies_out++;
    memmove(dst, src, n);
    return 0;
}
static int fake_zero(dl_backend *b, void *p, size_t n) { (void)b; memset(p, 0, n); return 0; }
/* The fake device runs the CPU kernels single-threaded, with scratch of its own. */
static int fake_run(const dl_layer *l, const dl_exec *e, int backward) {
    size_t shared, per_thread;
    dl__cpu cpu;
    dl_exec e2 = *e;
    float *scratch;
    int rc;
    dl__cpu_ws(l->net->simd, l, e->n, &shared, &per_thread);
    scratch = (float *)malloc((shared + per_thread + 1) * sizeof(float));
    if (!scratch) return DL_ERR_NOMEM;
    memset(&cpu, 0, sizeof cpu);
    cpu.simd = l->net->simd; cpu.net = l->net; cpu.threads = 1;
    cpu.shared = scratch; cpu.thread_ws = scratch + shared; cpu.thread_floats = per_thread;
    e2.cpu = &cpu;
    rc = backward ? dl__op(l->op)->backward(l, &e2) : dl__op(l->op)->forward(l, &e2);
    free(scratch);
    return rc;
}
static int fake_forward(dl_backend *b, const dl_layer *l, const dl_exec *e) { (void)b; return fake_run(l, e, 0); }
static int fake_backward(dl_backend *b, const dl_layer *l, const dl_exec *e) { (void)b; return fake_run(l, e, 1); }
static int fake_loss(dl_backend *b, int kind, const float *out, const void *t, int n, int size, float *dout, float *loss) {
    return dl__cpu_loss(b, kind, out, t, n, size, dout, loss);
}
static int fake_optim(dl_backend *b, const dl_optim_job *j) { (void)b; return dl_optim_step_cpu(j); }
static int destroyed;
static void fake_destroy(dl_backend *b) { destroyed = 1; CHECK(((fake_dev *)b)->live == 0, "%d device buffers leaked", ((fake_dev *)b)->live);
                                          CHECK(((fake_dev *)b)->bad_guard == 0, "guard bytes overwritten"); free(b); }
static fake_dev *fake_new(void) {
    fake_dev *f = (fake_dev *)calloc(1, sizeof(fake_dev));
    f->b.name = "fake"; f->b.alloc = fake_alloc; f->b.release = fake_release; f->b.copy = fake_copy; f->b.zero = fake_zero;
    f->b.forward = fake_forward; f->b.backward = fake_backward; f->b.loss = fake_loss; f->b.optim_step = fake_optim;
    f->b.destroy = fake_destroy;
    return f;
}
static void test_fake_device_backend(void) {
    static float x[64 * 144];
    static int y[64];
    dl_net *a = dl_net_new(), *b = dl_net_new(), *c;
    dl_layer *la, *lb;
    dl_optim *oa, *ob;
    fake_dev *f = fake_new();
    dl_status st;
    const float *pa, *pb;
    make_patterns(x, y, 64);
    dl_net_seed(a, 3); dl_net_seed(b, 3);
    la = pattern_cnn(a); lb = pattern_cnn(b);
    oa = dl_adam(a, 1e-3f); ob = dl_adam(b, 1e-3f);
    train_some(a, oa, la, x, y, (int)(sizeof y / sizeof y[0]), 2, 0);
    train_some(b, ob, lb, x, y, (int)(sizeof y / sizeof y[0]), 2, 0);
    CHECK(dl_net_to_backend(b, &f->b) == DL_OK, "to fake: %s", dl_net_error(b));
    CHECK(!dl_dense(lb, 3), "adding layers on a device net is refused");
    train_some(a, oa, la, x, y, (int)(sizeof y / sizeof y[0]), 3, 2);
    train_some(b, ob, lb, x, y, (int)(sizeof y / sizeof y[0]), 3, 2);
    CHECK(f->bad_guard == 0, "guard bytes overwritten during training");
    CHECK(dl_net_sync(b) == DL_OK && same_params(a, b), "device training differs from CPU training");
    pa = dl_predict(a, la, x, 64);
    pb = dl_predict(b, lb, x, 64);
    CHECK(pa && pb && !memcmp(pa, pb, 64 * 4 * sizeof(float)), "device predictions differ");
    CHECK(dl_checkpoint_save(b, ob, "build/t_dev.dl") == DL_OK, "save from device: %s", dl_net_error(b));
    CHECK(dl_net_to_backend(b, NULL) == DL_OK && destroyed, "back to CPU");
    train_some(a, oa, la, x, y, (int)(sizeof y / sizeof y[0]), 1, 5);
    train_some(b, ob, lb, x, y, (int)(sizeof y / sizeof y[0]), 1, 5);
    CHECK(same_params(a, b), "training after moving back differs");
    c = dl_checkpoint_load("build/t_dev.dl", NULL, &st);
    CHECK(c != NULL, "load device checkpoint: %s", st.msg);
    dl_net_free(a); dl_net_free(b); dl_net_free(c);
}

static void test_load_weights_custom(void) {
    dl_net *a = dl_net_new(), *b = dl_net_new(), *c = dl_net_new();
    dl_layer *xa = dl_input(a, 4, 0, 0), *xb = dl_input(b, 4, 0, 0), *xc = dl_input(c, 4, 0, 0);
    dl_status st;
    dl_dense(dl_tanh(dl_dense(xa, 6)), 2);
    dl_net_seed(b, 1234);
    dl_dense(dl_tanh(dl_dense(xb, 6)), 2);
    dl_dense(xc, 2);
    CHECK(!same_params(a, b), "different seeds, same weights");
    CHECK(dl_net_save(a, "build/t_w.dl") == DL_OK, "save");
    CHECK(dl_net_load_weights(b, "build/t_w.dl") == DL_OK && same_params(a, b), "load_weights: %s", dl_net_error(b));
    CHECK(dl_net_load_weights(c, "build/t_w.dl") == DL_ERR_FORMAT && strstr(dl_net_error(c), "layers"), "mismatch: %s", dl_net_error(c));
    CHECK(!dl_net_load("build/t_w.dl.tmp", &st), "no temporary file left behind");
    dl_net_free(a); dl_net_free(b); dl_net_free(c);
}


/* The same training on 1, 2, 3 and 16 threads, and through a user job
   system, gives bit-identical weights: work splits by shape, never by thread. */
static void serial_for(void *user, int n_tasks, dl_task task, void *arg) {
    int i;
    (*(int *)user)++;
    for (i = n_tasks - 1; i >= 0; i--) task(arg, i, i % 3);    /* backwards, on 3 "threads" */
}
static void test_threads_bit_identical(void) {
    static float x[128 * 144];
    static int y[128];
    int counts[4] = { 1, 2, 3, 16 }, k, calls = 0;
    dl_net *ref = NULL;
    make_patterns(x, y, 128);
    for (k = 0; k <= 4; k++) {
        dl_net *net = dl_net_new();
        dl_layer *logits;
        dl_optim *opt;
        dl_net_seed(net, 11);
        logits = pattern_cnn(net);
        opt = dl_adam(net, 1e-3f);
        net->par_min_work = 0;          /* split every op, however small */
        if (k < 4) CHECK(dl_net_set_threads(net, counts[k]) == DL_OK && dl_net_threads(net) == counts[k], "set %d threads", counts[k]);
        else CHECK(dl_net_set_parallel(net, serial_for, &calls, 3) == DL_OK, "job system");
        train_some(net, opt, logits, x, y, 128, 6, 0);
        if (!ref) ref = net;
        else {
            CHECK(same_params(ref, net), "%s gives different weights than 1 thread", k < 4 ? "a thread count" : "the job system");
            dl_net_free(net);
        }
    }
    CHECK(calls > 0, "the job system was never called");
    dl_net_free(ref);
}

/* dl_predict fuses conv/dense + batchnorm + activation; dl_forward in eval
   mode (which may be followed by dl_backward) does not. Same numbers. */
static void test_inference_fusion(void) {
    static float x[64 * 144];
    static int y[64];
    dl_net *net = dl_net_new();
    dl_layer *in = dl_input(net, 1, 12, 12), *h, *logits;
    dl_optim *opt;
    float *a = (float *)malloc(64 * 4 * sizeof(float));
    const float *b;
    int i, identical = 1;
    double worst = 0;
    h = dl_maxpool2d(dl_prelu(dl_batchnorm(dl_conv2d(in, 8, 3, 1, 1))), 2, 2);          /* conv+bn+prelu */
    h = dl_leaky_relu(dl_conv2d(h, 12, 3, 1, 1), 0.2f);                                 /* conv+leaky */
    h = dl_relu(dl_batchnorm(dl_dense(dl_flatten(h), 16)));                             /* dense+bn+relu */
    logits = dl_dense(h, 4);
    opt = dl_adam(net, 1e-2f);
    make_patterns(x, y, 64);
    train_some(net, opt, logits, x, y, 64, 8, 0);               /* non-trivial statistics */
    memcpy(a, dl_forward(net, logits, x, 64, 0), 64 * 4 * sizeof(float));
    b = dl_predict(net, logits, x, 64);
    CHECK(b != NULL, "%s", dl_net_error(net));
    for (i = 0; b && i < 64 * 4; i++) {
        double d = fabs((double)a[i] - b[i]) / (fabs(a[i]) + 1e-3);
        if (d > worst) worst = d;
        if (a[i] != b[i]) identical = 0;
    }
    printf("     fused vs unfused inference: worst relative difference %.2e%s\n", worst, identical ? " (bit-identical)" : "");
    CHECK(worst < 1e-5, "fused inference differs by %g", worst);
    CHECK(dl_layer_output(dl_net_layer(net, 2)) == NULL, "an absorbed layer's output must not be offered");
    free(a);
    dl_net_free(net);
}

/* dl_predict's weights are prepared once (packed, batchnorm folded) and again
   after each change to the parameters: every kind of change, checked against
   a fresh copy of the net (save, load) that prepares from scratch, and on 1
   and 3 threads. */
static int predicts_like_a_fresh_copy(dl_net *net, const float *x, int n) {
    void *data = NULL;
    size_t len = 0;
    dl_net *copy;
    const float *a, *b;
    int same = 0, outs = n * dl_layer_size(dl_net_layer(net, -1));
    float *keep = (float *)malloc((size_t)outs * sizeof(float));
    if (dl_net_save_mem(net, NULL, &data, &len) != DL_OK || !(copy = dl_net_load_mem(data, len, NULL))) { free(keep); DL_FREE(data); return 0; }
    a = dl_predict(net, dl_net_layer(net, -1), x, n);
    if (a) memcpy(keep, a, (size_t)outs * sizeof(float));
    b = dl_predict(copy, dl_net_layer(copy, -1), x, n);
    same = a && b && !memcmp(keep, b, (size_t)outs * sizeof(float));
    dl_net_free(copy);
    DL_FREE(data);
    free(keep);
    return same;
}
static void test_prepared_inference(void) {
    static float x[64 * 144];
    static int y[64];
    dl_net *net = dl_net_new();
    dl_layer *h;
    dl_optim *opt;
    dl_param *w, *gamma;
    float *flat;
    int t;
    h = dl_maxpool2d(dl_prelu(dl_batchnorm(dl_conv2d(dl_input(net, 1, 12, 12), 8, 3, 1, 1))), 2, 2);
    h = dl_relu(dl_batchnorm(dl_dense(dl_flatten(h), 16)));
    dl_dense(h, 4);
    opt = dl_adam(net, 1e-2f);
    make_patterns(x, y, 64);
    net->par_min_work = 0;              /* 3 threads split every op */
    for (t = 1; t <= 3; t += 2) {
        int version;
        CHECK(dl_net_set_threads(net, t) == DL_OK, "threads");
        /* the plan, made for training at the largest batch first, stays: only the preparation can go stale */
        CHECK(dl_forward(net, dl_net_layer(net, -1), x, 64, 1) != NULL, "%s", dl_net_error(net));
        version = net->version;
        train_some(net, opt, dl_net_layer(net, -1), x, y, 64, 2, 0);
        CHECK(predicts_like_a_fresh_copy(net, x, 64), "after training, %d threads", t);
        CHECK(predicts_like_a_fresh_copy(net, x, 3), "batch 3 (dot products), %d threads", t);
        CHECK(dl_forward(net, dl_net_layer(net, -1), x, 64, 1) != NULL, "%s", dl_net_error(net));   /* statistics move */
        CHECK(predicts_like_a_fresh_copy(net, x, 64), "after a training-mode forward, %d threads", t);
        w = dl_net_find_param(net, "conv2d_1.weight");
        gamma = dl_net_find_param(net, "batchnorm_2.weight");
        CHECK(w && gamma, "parameters by name");
        if (!w || !gamma) break;
        w->data[0] += 0.5f;             /* through a pointer just handed out */
        CHECK(predicts_like_a_fresh_copy(net, x, 64), "after writing a weight, %d threads", t);
        gamma->data[1] *= 2.0f;         /* through a kept pointer: announced */
        dl_net_params_changed(net);
        CHECK(predicts_like_a_fresh_copy(net, x, 64), "after writing a batchnorm scale, %d threads", t);
        flat = dl_net_params(net);
        flat[net->nw - 1] += 1.0f;      /* the last dense layer's bias */
        CHECK(predicts_like_a_fresh_copy(net, x, 64), "after writing the flat buffer, %d threads", t);
        CHECK(net->version == version, "the graph changed: the test checks nothing");
    }
    dl_net_free(net);
}

/* The depthwise backward (its own direct path): dx, dW and db against plain
   loops, and the same bits on 1 and 3 threads. x is 3 samples of 5x9x8. */
static void depthwise_backward_check(dl_net *net, dl_layer *in, dl_layer *cv, const float *x, dl_conv_desc d, int k) {
    static float dy[3 * 5 * 9 * 8], g1[3 * 5 * 9 * 8 + 5 * 25 + 5];
    double rdx[3 * 5 * 9 * 8], rdw[5 * 25], rdb[5], worst = 0;
    const float *w = dl_net_find_param(net, "conv2d_1.weight")->data;
    dl_param *pw = dl_net_find_param(net, "conv2d_1.weight"), *pb = dl_net_find_param(net, "conv2d_1.bias");
    int OH = cv->shape[1], OW = cv->shape[2], KK = d.kernel * d.kernel, i, n, c, oh, ow, kh, kw, t;
    for (i = 0; i < 3 * 5 * OH * OW; i++) dy[i] = (float)((i * 53) % 97) / 48.0f - 1.0f;
    memset(rdx, 0, sizeof rdx); memset(rdw, 0, sizeof rdw); memset(rdb, 0, sizeof rdb);
    for (n = 0; n < 3; n++) for (c = 0; c < 5; c++) for (oh = 0; oh < OH; oh++) for (ow = 0; ow < OW; ow++) {
        double g = dy[((n * 5 + c) * OH + oh) * OW + ow];
        rdb[c] += g;
        for (kh = 0; kh < d.kernel; kh++) for (kw = 0; kw < d.kernel; kw++) {
            int ih = oh * d.stride - d.pad + kh * d.dilation, iw = ow * d.stride - d.pad + kw * d.dilation, xi = ((n * 5 + c) * 9 + ih) * 8 + iw;
            if (ih < 0 || ih >= 9 || iw < 0 || iw >= 8) continue;
            rdx[xi] += g * w[c * KK + kh * d.kernel + kw];
            rdw[c * KK + kh * d.kernel + kw] += g * x[xi];
        }
    }
    dl_net_set_input_grad(net, 1);
    for (t = 1; t <= 3; t += 2) {
        const float *gx;
        int same = 1;
        dl_net_set_threads(net, t);
        dl_zero_grad(net);
        gx = dl_forward(net, cv, x, 3, 1) && dl_backward(net, cv, dy) == DL_OK ? dl_layer_grad(in) : NULL;
        CHECK(gx != NULL, "case %d: backward: %s", k, dl_net_error(net));
        if (!gx) return;
        for (i = 0, worst = 0; i < 3 * 5 * 72; i++) if (fabs(gx[i] - rdx[i]) > worst) worst = fabs(gx[i] - rdx[i]);
        for (i = 0; i < 5 * KK; i++) if (fabs(pw->grad[i] - rdw[i]) > worst) worst = fabs(pw->grad[i] - rdw[i]);
        for (i = 0; i < 5; i++) if (fabs(pb->grad[i] - rdb[i]) > worst) worst = fabs(pb->grad[i] - rdb[i]);
        CHECK(worst < 1e-4, "case %d, %d threads: depthwise backward off the plain loops by %g", k, t, worst);
        if (t == 1) { memcpy(g1, gx, sizeof(float) * 3 * 5 * 72); memcpy(g1 + 3 * 5 * 72, pw->grad, sizeof(float) * 5 * KK);
                      memcpy(g1 + 3 * 5 * 72 + 5 * KK, pb->grad, sizeof(float) * 5); continue; }
        same = !memcmp(g1, gx, sizeof(float) * 3 * 5 * 72) && !memcmp(g1 + 3 * 5 * 72, pw->grad, sizeof(float) * 5 * KK) &&
               !memcmp(g1 + 3 * 5 * 72 + 5 * KK, pb->grad, sizeof(float) * 5);
        CHECK(same, "case %d: depthwise gradients on 3 threads differ from 1", k);
    }
}

/* Depthwise convolutions run as a direct kernel (not a GEMM per channel):
   against a plain loop, with stride, padding and dilation, fused with a
   batchnorm and relu in dl_predict, and bit-identical on 1 and 3 threads. */
static void test_depthwise_direct(void) {
    static const int cfg[4][4] = { { 3, 1, 1, 1 }, { 3, 2, 1, 1 }, { 5, 1, 4, 2 }, { 3, 2, 0, 1 } };   /* kernel, stride, pad, dilation */
    int k;
    for (k = 0; k < 4; k++) {
        dl_net *net = dl_net_new();
        dl_conv_desc d;
        dl_layer *in = dl_input(net, 5, 9, 8), *cv, *out;
        static float x[3 * 5 * 9 * 8], ref[3 * 5 * 9 * 8], one[3 * 5 * 9 * 8];
        const float *y, *w, *b;
        int i, n, c, oh, ow, kh, kw, OH, OW, size;
        double worst = 0;
        memset(&d, 0, sizeof d);
        d.filters = 5; d.kernel = cfg[k][0]; d.stride = cfg[k][1]; d.pad = cfg[k][2]; d.dilation = cfg[k][3]; d.groups = 5;
        cv = dl_conv2d_ex(in, &d);
        out = dl_relu(dl_batchnorm(cv));
        CHECK(cv && out, "%s", dl_net_error(net));
        if (!cv || !out) { dl_net_free(net); continue; }
        OH = cv->shape[1]; OW = cv->shape[2]; size = 5 * OH * OW;
        for (i = 0; i < 3 * 5 * 72; i++) x[i] = (float)((i * 37) % 101) / 50.0f - 1.0f;
        w = dl_net_find_param(net, "conv2d_1.weight")->data;
        b = dl_net_find_param(net, "conv2d_1.bias")->data;
        dl_net_find_param(net, "conv2d_1.bias")->data[2] = 0.25f;
        for (n = 0; n < 3; n++) for (c = 0; c < 5; c++) for (oh = 0; oh < OH; oh++) for (ow = 0; ow < OW; ow++) {
            double sum = b[c];
            for (kh = 0; kh < d.kernel; kh++) for (kw = 0; kw < d.kernel; kw++) {
                int ih = oh * d.stride - d.pad + kh * d.dilation, iw = ow * d.stride - d.pad + kw * d.dilation;
                if (ih >= 0 && ih < 9 && iw >= 0 && iw < 8) sum += (double)w[(c * d.kernel + kh) * d.kernel + kw] * x[((n * 5 + c) * 9 + ih) * 8 + iw];
            }
            ref[((n * 5 + c) * OH + oh) * OW + ow] = (float)sum;
        }
        y = dl_forward(net, cv, x, 3, 0);
        for (i = 0; y && i < 3 * size; i++) if (fabs(y[i] - ref[i]) > worst) worst = fabs(y[i] - ref[i]);
        CHECK(y && worst < 1e-5, "case %d: forward differs from the plain loop by %g", k, worst);
        net->par_min_work = 0;
        dl_net_set_threads(net, 1);
        y = dl_predict(net, out, x, 3);
        if (y) memcpy(one, y, (size_t)3 * size * sizeof(float));
        for (i = 0, worst = 0; y && i < 3 * size; i++) if (fabs(y[i] - (ref[i] > 0 ? ref[i] : 0) / sqrt(1 + 1e-5)) > worst)
            worst = fabs(y[i] - (ref[i] > 0 ? ref[i] : 0) / sqrt(1 + 1e-5));
        CHECK(y && worst < 1e-5, "case %d: fused with batchnorm and relu: off by %g", k, worst);
        dl_net_set_threads(net, 3);
        y = dl_predict(net, out, x, 3);
        CHECK(y && !memcmp(y, one, (size_t)3 * size * sizeof(float)), "case %d: 3 threads differ from 1", k);
        depthwise_backward_check(net, in, cv, x, d, k);
        dl_net_free(net);
    }
}

/* The direct depthwise kernel of this CPU (flattened planes, phase planes
   for stride 2, or rows) against the portable path (im2col rows and the
   kernel table's axpy): the same bits, on sizes odd and even, narrower and
   wider than a vector, every stride, padding and dilation. */
/* One depthwise case of the kernel tests: 3 channels, cfg = kernel, stride,
   pad, dilation; simd NULL: the detected table. */
static dl_layer *depthwise_case(dl_net **net, const int cfg[4], const int hw[2], const dl__simd *simd, int input_grad, dl_layer **in) {
    dl_conv_desc d;
    dl_layer *x;
    memset(&d, 0, sizeof d);
    d.filters = 3; d.kernel = cfg[0]; d.stride = cfg[1]; d.pad = cfg[2]; d.dilation = cfg[3]; d.groups = 3;
    *net = dl_net_new();
    if (simd) (*net)->simd = simd;
    dl_net_seed(*net, 7);
    if (input_grad) dl_net_set_input_grad(*net, 1);
    x = dl_input(*net, 3, hw[0], hw[1]);
    if (in) *in = x;
    return dl_conv2d_ex(x, &d);
}
static void test_depthwise_kernel_bits(void) {
    static const int cfg[][4] = { { 3, 1, 1, 1 }, { 3, 2, 1, 1 }, { 5, 1, 2, 1 }, { 5, 2, 2, 1 }, { 3, 1, 2, 2 }, { 3, 2, 0, 1 },
                                  { 3, 3, 1, 1 }, { 1, 2, 0, 1 }, { 3, 2, 2, 2 }, { 3, 1, 0, 1 } };   /* kernel, stride, pad, dilation */
    static const int hw[][2] = { { 16, 16 }, { 8, 8 }, { 4, 4 }, { 7, 9 }, { 9, 7 }, { 1, 5 }, { 33, 20 }, { 13, 31 } };
    static float x[2 * 3 * 33 * 31];
    dl__simd plain = *dl__simd_detect();
    int k, s, i, cases = 0;
    plain.depthwise = NULL;
    for (i = 0; i < (int)(sizeof x / sizeof x[0]); i++) x[i] = (float)((i * 53) % 97) / 48.0f - 1.0f;
    for (k = 0; k < (int)(sizeof cfg / sizeof cfg[0]); k++)
        for (s = 0; s < (int)(sizeof hw / sizeof hw[0]); s++) {
            dl_net *net[2];
            const float *y[2];
            dl_layer *cv[2], *out[2];
            int v, size;
            for (v = 0; v < 2; v++) {
                cv[v] = depthwise_case(&net[v], cfg[k], hw[s], v ? &plain : NULL, 0, NULL);
                out[v] = cv[v] ? dl_relu(dl_batchnorm(cv[v])) : NULL;
            }
            if (!cv[0] || !cv[1] || !out[0] || !out[1]) { for (v = 0; v < 2; v++) dl_net_free(net[v]); continue; }  /* no output */
            size = 2 * cv[0]->size;
            for (v = 0; v < 2; v++) y[v] = dl_forward(net[v], cv[v], x, 2, 0);
            CHECK(y[0] && y[1] && !memcmp(y[0], y[1], (size_t)size * sizeof(float)), "k%d s%d p%d d%d %dx%d: forward bits differ",
                  cfg[k][0], cfg[k][1], cfg[k][2], cfg[k][3], hw[s][0], hw[s][1]);
            for (v = 0; v < 2; v++) y[v] = dl_predict(net[v], out[v], x, 2);
            CHECK(y[0] && y[1] && !memcmp(y[0], y[1], (size_t)size * sizeof(float)), "k%d s%d p%d d%d %dx%d: fused bits differ",
                  cfg[k][0], cfg[k][1], cfg[k][2], cfg[k][3], hw[s][0], hw[s][1]);
            cases++;
            for (v = 0; v < 2; v++) dl_net_free(net[v]);
        }
    CHECK(cases >= 70, "only %d cases built", cases);
}

/* Batchnorm's training statistics come from one pass of sums around the
   first sample's mean: on channels far from zero (a mean of 1000, spread 1)
   whose first sample sits far out, the output still matches a two-pass
   double-precision reference. */
static void test_batchnorm_one_pass_stats(void) {
    static float x[8 * 2 * 50];
    double worst = 0;
    dl_net *net = dl_net_new();
    dl_layer *bn = dl_batchnorm(dl_input(net, 2, 5, 10));
    const float *y;
    int n, c, i;
    for (n = 0; n < 8; n++) for (c = 0; c < 2; c++) for (i = 0; i < 50; i++)
        x[(n * 2 + c) * 50 + i] = (c ? 1000.0f : -3.0f) + (float)((i * 37 + n * 11) % 23) / 11.0f - 1.0f + (n == 0 ? (c ? 6.0f : 40.0f) : 0.0f);
    y = bn ? dl_forward(net, bn, x, 8, 1) : NULL;
    CHECK(y != NULL, "forward: %s", dl_net_error(net));
    for (c = 0; y && c < 2; c++) {
        double mean = 0, var = 0;
        for (n = 0; n < 8; n++) for (i = 0; i < 50; i++) mean += x[(n * 2 + c) * 50 + i];
        mean /= 400;
        for (n = 0; n < 8; n++) for (i = 0; i < 50; i++) var += (x[(n * 2 + c) * 50 + i] - mean) * (x[(n * 2 + c) * 50 + i] - mean);
        var /= 400;
        for (n = 0; n < 8; n++) for (i = 0; i < 50; i++) {
            double r = (x[(n * 2 + c) * 50 + i] - mean) / sqrt(var + 1e-5), d = fabs(y[(n * 2 + c) * 50 + i] - r);
            if (d > worst) worst = d;
        }
    }
    CHECK(worst < 5e-4, "off a two-pass reference by %g", worst);
    dl_net_free(net);
}

/* The depthwise backward's direct kernels of this CPU (dW and dx without
   im2col rows or col2im) against the portable path: the same gradients up
   to rounding (the sums run in another order), on sizes narrower and wider
   than a vector, every stride (3: dx's general division), padding and
   dilation. */
static void test_depthwise_backward_kernel(void) {
    static const int cfg[][4] = { { 3, 1, 1, 1 }, { 3, 2, 1, 1 }, { 5, 1, 2, 1 }, { 5, 2, 2, 1 }, { 3, 1, 2, 2 }, { 3, 2, 0, 1 },
                                  { 3, 3, 1, 1 }, { 1, 2, 0, 1 }, { 3, 2, 2, 2 } };   /* kernel, stride, pad, dilation */
    static const int hw[][2] = { { 16, 16 }, { 8, 8 }, { 4, 4 }, { 7, 9 }, { 1, 5 }, { 33, 20 }, { 13, 40 } };
    static float x[2 * 3 * 33 * 40], dy[2 * 3 * 33 * 40], g[2][2 * 3 * 33 * 40 + 3 * 25 + 3];
    dl__simd plain = *dl__simd_detect();
    int k, s, i, cases = 0;
    plain.depthwise_dw = NULL; plain.depthwise_dx = NULL;
    for (i = 0; i < (int)(sizeof x / sizeof x[0]); i++) {
        x[i] = (float)((i * 53) % 97) / 48.0f - 1.0f;
        dy[i] = (float)((i * 31) % 89) / 44.0f - 1.0f;
    }
    for (k = 0; k < (int)(sizeof cfg / sizeof cfg[0]); k++)
        for (s = 0; s < (int)(sizeof hw / sizeof hw[0]); s++) {
            dl_net *net[2];
            dl_layer *in[2], *cv[2];
            double worst = 0, scale = 1;
            int v, nx = 2 * 3 * hw[s][0] * hw[s][1], nw = 0;
            for (v = 0; v < 2; v++) {
                cv[v] = depthwise_case(&net[v], cfg[k], hw[s], v ? &plain : NULL, 1, &in[v]);
                if (!cv[v]) continue;
                nw = dl_net_find_param(net[v], "conv2d_1.weight")->size + 3;
                dl_zero_grad(net[v]);
                if (!dl_forward(net[v], cv[v], x, 2, 1) || dl_backward(net[v], cv[v], dy) != DL_OK || !dl_layer_grad(in[v])) {
                    CHECK(0, "k%d s%d %dx%d: backward: %s", cfg[k][0], cfg[k][1], hw[s][0], hw[s][1], dl_net_error(net[v]));
                    cv[v] = NULL;
                    continue;
                }
                memcpy(g[v], dl_layer_grad(in[v]), (size_t)nx * sizeof(float));
                memcpy(g[v] + nx, dl_net_find_param(net[v], "conv2d_1.weight")->grad, (size_t)(nw - 3) * sizeof(float));
                memcpy(g[v] + nx + nw - 3, dl_net_find_param(net[v], "conv2d_1.bias")->grad, 3 * sizeof(float));
            }
            if (cv[0] && cv[1]) {
                for (i = 0; i < nx + nw; i++) if (fabs(g[1][i]) > scale) scale = fabs(g[1][i]);
                for (i = 0; i < nx + nw; i++) if (fabs(g[0][i] - g[1][i]) > worst) worst = fabs(g[0][i] - g[1][i]);
                CHECK(worst <= 1e-5 * scale, "k%d s%d p%d d%d %dx%d: gradients differ by %g (scale %g)", cfg[k][0], cfg[k][1],
                      cfg[k][2], cfg[k][3], hw[s][0], hw[s][1], worst, scale);
                cases++;
            }
            for (v = 0; v < 2; v++) dl_net_free(net[v]);
        }
    CHECK(cases >= 50, "only %d cases built", cases);
}

/* Stride-2 convolutions pack their im2col rows with this CPU's kernel
   (two loads and the even lanes per 16 outputs on AVX-512) or the portable
   dl__im2col_row: the same bits, on widths around a vector, runs split
   across rows and samples, padding and dilation. */
static void test_strided_im2col_bits(void) {
    static const int cfg[][3] = { { 3, 1, 1 }, { 1, 0, 1 }, { 5, 2, 1 }, { 3, 0, 1 }, { 3, 2, 2 }, { 4, 1, 1 } };   /* kernel, pad, dilation */
    static const int hw[][2] = { { 32, 32 }, { 16, 16 }, { 7, 9 }, { 5, 40 }, { 33, 65 }, { 2, 3 } };
    static float x[3 * 3 * 33 * 65];
    dl__simd plain = *dl__simd_detect();
    int k, s, i, cases = 0;
    plain.im2col_s2 = NULL;
    for (i = 0; i < (int)(sizeof x / sizeof x[0]); i++) x[i] = (float)((i * 29) % 89) / 44.0f - 1.0f;
    for (k = 0; k < (int)(sizeof cfg / sizeof cfg[0]); k++)
        for (s = 0; s < (int)(sizeof hw / sizeof hw[0]); s++) {
            dl_net *net[2];
            const float *y[2];
            dl_layer *cv[2];
            int v;
            for (v = 0; v < 2; v++) {
                dl_conv_desc d;
                memset(&d, 0, sizeof d);
                d.filters = 5; d.kernel = cfg[k][0]; d.stride = 2; d.pad = cfg[k][1]; d.dilation = cfg[k][2];
                net[v] = dl_net_new();
                if (v) net[v]->simd = &plain;
                dl_net_seed(net[v], 5);
                cv[v] = dl_conv2d_ex(dl_input(net[v], 3, hw[s][0], hw[s][1]), &d);
            }
            if (cv[0] && cv[1]) {
                for (v = 0; v < 2; v++) y[v] = dl_predict(net[v], cv[v], x, 3);
                CHECK(y[0] && y[1] && !memcmp(y[0], y[1], (size_t)3 * cv[0]->size * sizeof(float)), "k%d p%d d%d %dx%d: bits differ",
                      cfg[k][0], cfg[k][1], cfg[k][2], hw[s][0], hw[s][1]);
                cases++;
            }
            for (v = 0; v < 2; v++) dl_net_free(net[v]);
        }
    CHECK(cases >= 30, "only %d cases built", cases);
}

/* Stride-1 convolutions read their input in place (dl__conv_direct: the
   output on the padded width, B's rows at offsets into a zero-padded copy)
   or pack im2col panels: the same bits, each path forced (net->conv_direct),
   on kernels 1 to 5, pads 0 to 2 and asymmetric ones, dilation, groups, 1 to
   64 channels (K past DL__KC), planes 1x1 to 5x64, batches 1 to 5, with and
   without bias; fused with batchnorm and prelu or relu in dl_predict, in a
   training forward, on 3 threads, frozen (the shapes' choice), and the input
   gradient of a stride-1 transposed convolution (the GEMM accumulating).
   Then forward and fused again with every other kernel table this CPU runs
   (the scalar one, AVX2, and this one's with the portable dl__cols). */
static void test_conv_direct_bits(void) {
    static const int cfg[][10] = {      /* C, M, kernel, pad, dilation, H, W, groups, no bias, asymmetric pads */
        { 3, 16, 3, 1, 1, 32, 32, 1, 0, 0 }, { 16, 16, 3, 1, 1, 16, 16, 1, 0, 0 }, { 1, 32, 3, 1, 1, 28, 28, 1, 0, 0 },
        { 32, 64, 3, 1, 1, 8, 8, 1, 1, 0 }, { 3, 32, 5, 2, 1, 13, 11, 1, 0, 0 }, { 33, 5, 3, 1, 1, 9, 7, 1, 0, 0 },
        { 64, 8, 5, 2, 1, 6, 5, 1, 1, 0 }, { 4, 6, 3, 0, 1, 7, 9, 2, 0, 0 }, { 5, 7, 3, 2, 2, 5, 6, 1, 0, 0 },
        { 2, 3, 1, 1, 1, 4, 3, 1, 0, 0 }, { 8, 9, 5, 0, 1, 5, 5, 1, 0, 0 }, { 6, 10, 3, 1, 1, 1, 1, 1, 0, 0 },
        { 3, 4, 3, 2, 1, 1, 1, 1, 0, 0 }, { 7, 17, 3, 1, 1, 33, 17, 1, 0, 0 }, { 16, 24, 2, 1, 1, 7, 7, 1, 0, 0 },
        { 12, 12, 3, 1, 2, 10, 9, 3, 0, 0 }, { 5, 11, 3, 1, 1, 6, 7, 1, 0, 1 }, { 9, 13, 5, 2, 1, 9, 12, 1, 1, 1 },
        { 40, 20, 3, 1, 1, 12, 31, 1, 0, 0 }, { 1, 1, 3, 1, 1, 17, 33, 1, 0, 0 }, { 64, 64, 3, 1, 1, 4, 4, 1, 0, 0 },
        { 2, 5, 3, 1, 1, 5, 64, 1, 0, 0 }, { 4, 8, 5, 2, 1, 3, 32, 1, 1, 0 }, { 3, 6, 3, 1, 1, 4, 33, 1, 0, 1 },
        { 6, 10, 3, 1, 2, 9, 32, 2, 0, 0 },
    };                                  /* the last four: rows of 32 or 64 outputs, no column dropped */
    static float x[5 * 64 * 33 * 33], dy[5 * 64 * 33 * 33];
    dl__simd plain = *dl__simd_detect();
    const dl__simd *isa[4];
    int k, i, cases = 0, t, n_isa = 0;
    isa[n_isa++] = dl__simd_detect();
    plain.cols = NULL;
    if (isa[0]->cols) isa[n_isa++] = &plain;
    if (isa[0] != &dl__simd_scalar) isa[n_isa++] = &dl__simd_scalar;
#ifdef DL__X86
    if (isa[0] == &dl__simd_avx512 && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) isa[n_isa++] = &dl__simd_avx2;
#endif
    for (i = 0; i < (int)(sizeof x / sizeof x[0]); i++) { x[i] = (float)((i * 37) % 101) / 50.0f - 1.0f; dy[i] = (float)((i * 13) % 29) / 14.0f - 1.0f; }
    for (k = 0; k < (int)(sizeof cfg / sizeof cfg[0]); k++) {
        const int *c = cfg[k];
        int n = 1 + k % 5, v, size = 0, direct = 0;
        dl_net *net[2];
        dl_layer *in[2], *cv[2], *out[2];
        const float *y[2];
        float *keep = NULL;
        for (v = 0; v < 2; v++) {
            dl_conv_desc d;
            memset(&d, 0, sizeof d);
            d.filters = c[1]; d.kernel = c[2]; d.pad = c[3]; d.dilation = c[4]; d.groups = c[7]; d.no_bias = c[8];
            if (c[9]) { d.pad = 0; d.pad_top = c[3]; d.pad_bottom = 0; d.pad_left = 0; d.pad_right = c[3]; }
            net[v] = dl_net_new();
            net[v]->conv_direct = v ? -1 : 1;
            dl_net_seed(net[v], 11);
            in[v] = dl_input(net[v], c[0], c[5], c[6]);
            cv[v] = dl_conv2d_ex(in[v], &d);
            out[v] = cv[v] ? (k % 2 ? dl_prelu(dl_batchnorm(cv[v])) : dl_relu(dl_batchnorm(cv[v]))) : NULL;
        }
        CHECK(out[0] && out[1], "case %d: %s", k, dl_net_error(net[0]));
        if (out[0] && out[1]) {
            dl_conv_geom g = dl_layer_conv_geom(cv[0]);
            dl__direct dd;
            direct = dl__conv_direct(&g, n, 1, &dd);
            size = n * cv[0]->size;
            for (v = 0; v < 2; v++) y[v] = dl_forward(net[v], cv[v], x, n, 0);
            CHECK(y[0] && y[1] && !memcmp(y[0], y[1], (size_t)size * sizeof(float)), "case %d: forward bits differ", k);
            for (v = 0; v < 2; v++) y[v] = dl_predict(net[v], out[v], x, n);
            CHECK(y[0] && y[1] && !memcmp(y[0], y[1], (size_t)size * sizeof(float)), "case %d: fused bits differ", k);
            keep = y[1] ? (float *)malloc((size_t)size * sizeof(float)) : NULL;
            if (keep) memcpy(keep, y[1], (size_t)size * sizeof(float));
            net[0]->par_min_work = 0;
            dl_net_set_threads(net[0], 3);
            y[0] = dl_predict(net[0], out[0], x, n);
            CHECK(y[0] && keep && !memcmp(y[0], keep, (size_t)size * sizeof(float)), "case %d: 3 threads differ", k);
            {
                dl_status st;
                dl_memory m;
                dl_frozen *f = dl_freeze(net[1], out[1], &st);
                float *fy = (float *)malloc((size_t)size * sizeof(float));
                void *work = f && dl_frozen_memory(f, n, &m) == DL_OK ? malloc(m.work_bytes + 64) : NULL;
                CHECK(work && fy && keep && dl_frozen_run(f, x, fy, n, work) == DL_OK && !memcmp(fy, keep, (size_t)size * sizeof(float)),
                      "case %d: the frozen net differs", k);
                free(work); free(fy);
                dl_frozen_free(f);
            }
            if (size > cv[0]->shape[0]) {       /* batch statistics need two values: last, it moves them */
                for (v = 0; v < 2; v++) y[v] = dl_forward(net[v], out[v], x, n, 1);
                CHECK(y[0] && y[1] && !memcmp(y[0], y[1], (size_t)size * sizeof(float)), "case %d: training forward bits differ", k);
            }
            cases += direct;
        }
        free(keep);
        for (v = 0; v < 2; v++) dl_net_free(net[v]);
    }
    CHECK(cases == (int)(sizeof cfg / sizeof cfg[0]), "only %d cases went direct", cases);
    for (t = 1; t < n_isa; t++)
        for (k = 0; k < (int)(sizeof cfg / sizeof cfg[0]); k++) {
            const int *c = cfg[k];
            int n = 1 + k % 5, v;
            dl_net *net[2];
            dl_layer *cv[2], *out[2];
            const float *y[2];
            for (v = 0; v < 2; v++) {
                dl_conv_desc d;
                memset(&d, 0, sizeof d);
                d.filters = c[1]; d.kernel = c[2]; d.pad = c[3]; d.dilation = c[4]; d.groups = c[7]; d.no_bias = c[8];
                if (c[9]) { d.pad = 0; d.pad_top = c[3]; d.pad_right = c[3]; }
                net[v] = dl_net_new();
                net[v]->simd = isa[t];
                net[v]->conv_direct = v ? -1 : 1;
                dl_net_seed(net[v], 11);
                cv[v] = dl_conv2d_ex(dl_input(net[v], c[0], c[5], c[6]), &d);
                out[v] = cv[v] ? (k % 2 ? dl_prelu(dl_batchnorm(cv[v])) : dl_relu(dl_batchnorm(cv[v]))) : NULL;
            }
            if (out[0] && out[1]) {
                for (v = 0; v < 2; v++) y[v] = dl_forward(net[v], cv[v], x, n, 0);
                CHECK(y[0] && y[1] && !memcmp(y[0], y[1], (size_t)n * cv[0]->size * sizeof(float)), "%s%s, case %d: forward bits differ",
                      isa[t]->name, isa[t]->cols ? "" : " (portable cols)", k);
                for (v = 0; v < 2; v++) y[v] = dl_predict(net[v], out[v], x, n);
                CHECK(y[0] && y[1] && !memcmp(y[0], y[1], (size_t)n * cv[0]->size * sizeof(float)), "%s%s, case %d: fused bits differ",
                      isa[t]->name, isa[t]->cols ? "" : " (portable cols)", k);
            }
            for (v = 0; v < 2; v++) dl_net_free(net[v]);
        }
    CHECK(n_isa >= 2 || isa[0] == &dl__simd_scalar, "only %d kernel tables", n_isa);   /* a build without SIMD (tcc, s390x, DL_NO_SIMD) has one */
    for (k = 0; k < 6; k++) {           /* conv2d_transpose's dx: a stride-1 convolution accumulating into dx */
        const int *c = cfg[k * 3 + 1];
        int n = 1 + k % 5, v, size = 0;
        dl_net *net[2];
        dl_layer *in[2], *tc[2];
        const float *gx[2];
        for (v = 0; v < 2; v++) {
            dl_conv_desc d;
            memset(&d, 0, sizeof d);
            d.filters = c[1]; d.kernel = c[2]; d.pad = c[3] < c[2] ? c[3] : 0; d.dilation = c[4];
            net[v] = dl_net_new();
            net[v]->conv_direct = v ? -1 : 1;
            dl_net_seed(net[v], 13);
            in[v] = dl_input(net[v], c[0], c[5], c[6]);
            tc[v] = dl_conv2d_transpose_ex(in[v], &d);
            dl_net_set_input_grad(net[v], 1);
        }
        CHECK(tc[0] && tc[1], "transpose case %d: %s", k, dl_net_error(net[0]));
        if (tc[0] && tc[1]) {
            size = n * in[0]->size;
            for (v = 0; v < 2; v++) {
                dl_zero_grad(net[v]);
                gx[v] = dl_forward(net[v], tc[v], x, n, 1) && dl_backward(net[v], tc[v], dy) == DL_OK ? dl_layer_grad(in[v]) : NULL;
            }
            CHECK(gx[0] && gx[1] && !memcmp(gx[0], gx[1], (size_t)size * sizeof(float)), "transpose case %d: dx bits differ", k);
        }
        for (v = 0; v < 2; v++) dl_net_free(net[v]);
    }
}

/* Dense layers pack their input transposed and transpose their output
   with this CPU's 16 x 16 block kernel (AVX-512) or plain loops: the same
   bits on sizes around 16 and a vector tile (edge tiles, tails of k). */
static void test_transpose_kernel_bits(void) {
    static const int io[][2] = { { 1, 7 }, { 5, 16 }, { 16, 31 }, { 17, 40 }, { 33, 1 }, { 300, 33 } };
    static const int batch[] = { 4, 5, 16, 17, 37, 64 };
    static float x[64 * 300];
    dl__simd plain = *dl__simd_detect();
    int k, b, i, cases = 0;
    plain.transpose16 = NULL;
    for (i = 0; i < (int)(sizeof x / sizeof x[0]); i++) x[i] = (float)((i * 31) % 83) / 41.0f - 1.0f;
    for (k = 0; k < (int)(sizeof io / sizeof io[0]); k++)
        for (b = 0; b < (int)(sizeof batch / sizeof batch[0]); b++) {
            dl_net *net[2];
            const float *y[2];
            dl_layer *out[2];
            int v;
            for (v = 0; v < 2; v++) {
                net[v] = dl_net_new();
                if (v) net[v]->simd = &plain;
                dl_net_seed(net[v], 3);
                out[v] = dl_dense(dl_relu(dl_dense(dl_input(net[v], io[k][0], 0, 0), io[k][1])), 3);
            }
            for (v = 0; v < 2; v++) y[v] = out[v] ? dl_predict(net[v], out[v], x, batch[b]) : NULL;
            CHECK(y[0] && y[1] && !memcmp(y[0], y[1], (size_t)batch[b] * 3 * sizeof(float)), "%d -> %d, batch %d: bits differ",
                  io[k][0], io[k][1], batch[b]);
            cases++;
            for (v = 0; v < 2; v++) dl_net_free(net[v]);
        }
    CHECK(cases == 36, "%d cases", cases);
}

/* The weight gradient packs its im2col rows and dy^T transposed: this CPU's
   block transpose (dl__transpose_k) against a plain loop (whole 16-column
   blocks and tails, fewer rows than lanes), and dl__pack_b of a strided
   operand against its definition. */
static void test_pack_transpose(void) {
    const dl__simd *s = dl__simd_detect();
    static float src[16 * 37], got[37 * 16];
    int kc, r, k, rows, bad = 0;
    for (r = 0; r < 16 * 37; r++) src[r] = (float)r;
    for (rows = 1; rows <= 16 && s->transpose16; rows += 7)
        for (kc = 1; kc <= 37; kc++) {
            for (r = 0; r < 37 * 16; r++) got[r] = -1.0f;
            dl__transpose_k(s, got, 16, src, 37, rows, kc, 16);
            for (k = 0; k < kc; k++)
                for (r = 0; r < 16; r++) bad += got[k * 16 + r] != (r < rows ? src[r * 37 + k] : 0.0f);
            if (kc < 37) bad += got[kc * 16] != -1.0f;        /* nothing written past kc */
        }
    CHECK(!bad, "%s transpose: %d entries wrong", s->name, bad);
    {   /* dl__pack_b of dy^T as the weight gradient has it: rows (n, p) in blocks of P = 7, columns m
           strided by P; N columns: partial and whole blocks of 16, two slivers; 30 rows cross 4 blocks */
        static const int ns[] = { 13, 16, 35 };
        static float dy[5 * 35 * 7], packed[30 * 2 * 64];
        int nr = s->nr, j, t, N;
        for (t = 0, bad = 0; t < 3; t++) {
            dl__mat B = dl__plain(dy, 1, 7);
            N = ns[t];
            B.Pr = 7; B.rbs = (size_t)N * 7;
            for (r = 0; r < 5 * N * 7; r++) dy[r] = (float)r + 1;
            for (r = 0; r < 30 * 2 * 64; r++) packed[r] = -1.0f;
            dl__pack_b(s, &B, N, 2, 30, 0, N, nr, packed);
            for (k = 0; k < 30; k++)
                for (j = 0; j < (N + nr - 1) / nr * nr; j++) {
                    float want = j < N ? dy[(k + 2) / 7 * N * 7 + (k + 2) % 7 + j * 7] : 0.0f;
                    bad += packed[(size_t)(j / nr) * nr * 30 + (size_t)k * nr + j % nr] != want;
                }
        }
        CHECK(!bad, "%s pack_b of a transposed operand: %d entries wrong", s->name, bad);
    }
}

/* relu's vector row kernels: x > 0 ? x : +0 bit for bit (NaN and -0 give
   +0), and dx += the same mask of dy, over vector bodies and tails. */
static void test_relu_rows(void) {
    const dl__rowk *rk = dl__simd_detect()->row;
    static float x[37], y[37], g[37], dx[37];
    float want;
    int i, bad = 0;
    for (i = 0; i < 37; i++) {
        x[i] = i % 5 == 0 ? -0.0f : i % 3 == 0 ? -(float)i : (float)i;
#ifndef __FAST_MATH__                           /* NaN compares as the compiler likes there */
        if (i % 7 == 0) x[i] = (float)NAN;
#endif
        g[i] = (float)i - 20.5f; dx[i] = 1.0f;
    }
    rk->relu(y, x, 37);
    rk->relu_back(dx, g, x, 37);
    for (i = 0; i < 37; i++) {
        want = x[i] > 0 ? x[i] : 0.0f;
        bad += memcmp(&y[i], &want, sizeof want) != 0;
        want = 1.0f + (x[i] > 0 ? g[i] : 0.0f);
        bad += memcmp(&dx[i], &want, sizeof want) != 0;
    }
    CHECK(!bad, "relu rows: %d entries differ from x > 0 ? x : 0", bad);
}

/* The op table: row i is op i, every row has kernels and an attribute list,
   names are unique. (Its row count is checked when dl.h compiles.) */
static void test_op_table(void) {
    int i, j;
    for (i = 0; i < DL_OP_COUNT; i++) {
        CHECK(dl__ops[i].op == i, "dl__ops row %d holds op %d", i, dl__ops[i].op);
        CHECK(dl__ops[i].forward && dl__ops[i].backward && dl__ops[i].attrs, "op %s lacks kernels or attributes", dl__ops[i].name);
        CHECK(dl__ops[i].min_in <= dl__ops[i].max_in && dl__ops[i].max_in <= 64, "op %s: inputs %d..%d", dl__ops[i].name,
              dl__ops[i].min_in, dl__ops[i].max_in);
        for (j = 0; j < i; j++) CHECK(strcmp(dl__ops[i].name, dl__ops[j].name), "ops %d and %d are both '%s'", j, i, dl__ops[i].name);
    }
}

/* Files of format 1 (fixed attribute records) still load: each seed of the
   fuzz corpora loads, saves as format 2, and the reloaded net predicts the
   same bits from the same parameters. */
static void test_format1_still_loads(void) {
    static const char *const seeds[4] = { "mlp", "cnn", "graph", "windows" };
    int g, i;
    for (g = 0; g < 4; g++) {
        char path[256];
        dl_status st;
        dl_net *a, *b;
        void *buf = NULL;
        size_t len = 0;
        FILE *f;
        snprintf(path, sizeof path, "tests/fuzz/corpus_model/seed_format1_%s.dl", seeds[g]);
        if ((f = fopen(path, "rb")) != NULL) {   /* the fuzz seed, when run from the checkout */
            unsigned char file[4096];
            size_t n = fread(file, 1, sizeof file, f);
            fclose(f);
            CHECK(n == format1_sizes[g] && !memcmp(file, format1_seeds[g], n), "%s differs from tests/format1_seeds.h", path);
        }
        a = dl_net_load_mem(format1_seeds[g], format1_sizes[g], &st);
        CHECK(a != NULL, "%s: %s", path, st.msg);
        if (!a) continue;
        CHECK(dl_net_save_mem(a, NULL, &buf, &len) == DL_OK && len > 12 && ((unsigned char *)buf)[8] == 2, "%s: not saved as format 2", path);
        b = buf ? dl_net_load_mem(buf, len, &st) : NULL;
        CHECK(b != NULL, "%s: the format 2 copy does not load: %s", path, b ? "" : st.msg);
        if (b) {
            int size = dl_layer_size(dl_net_layer(a, 0)), nout = dl_layer_size(dl_net_layer(a, -1));
            float *x = (float *)malloc(sizeof(float) * 3 * size), *ya = (float *)malloc(sizeof(float) * 3 * nout);
            const float *y;
            for (i = 0; i < 3 * size; i++) x[i] = (float)((i * 37) % 11) / 11.0f - 0.5f;
            CHECK(dl_net_layer_count(a) == dl_net_layer_count(b) && dl_net_param_floats(a) == dl_net_param_floats(b), "%s: graphs differ", path);
            y = dl_predict(a, dl_net_output(a), x, 3);
            if (y) memcpy(ya, y, sizeof(float) * 3 * nout);
            y = y ? dl_predict(b, dl_net_output(b), x, 3) : NULL;
            CHECK(y && !memcmp(y, ya, sizeof(float) * 3 * nout), "%s: format 1 and format 2 predictions differ", path);
            free(x); free(ya);
        }
        DL_FREE(buf);
        dl_net_free(a); dl_net_free(b);
    }
}

/* Clip (ReLU6) and hard swish are GEMM epilogues in inference, like relu:
   fused and unfused agree and the absorbed layers are not computed. */
static void test_fusion_clip_hard_swish(void) {
    static float x[16 * 3 * 6 * 6];
    dl_net *net = dl_net_new();
    dl_layer *in = dl_input(net, 3, 6, 6), *c1, *h, *out;
    float *a = (float *)malloc(16 * 5 * sizeof(float));
    const float *b;
    int i;
    double worst = 0;
    c1 = dl_clip(dl_conv2d(in, 4, 3, 1, 1), 0, 6);
    h = dl_hard_swish(dl_batchnorm(dl_conv2d(c1, 5, 3, 2, 1)));
    out = dl_clip(dl_dense(dl_flatten(h), 5), -0.3f, 0.4f);
    for (i = 0; i < 16 * 3 * 6 * 6; i++) x[i] = (float)((i * 7919) % 1000) / 250.0f - 2.0f;
    memcpy(a, dl_forward(net, out, x, 16, 0), 16 * 5 * sizeof(float));
    b = dl_predict(net, out, x, 16);
    CHECK(b != NULL, "%s", dl_net_error(net));
    for (i = 0; b && i < 16 * 5; i++) {
        double d = fabs((double)a[i] - b[i]) / (fabs(a[i]) + 1e-3);
        if (d > worst) worst = d;
    }
    printf("     clip and hard swish fused vs unfused: worst relative difference %.2e\n", worst);
    CHECK(worst < 1e-5, "fused inference differs by %g", worst);
    CHECK(dl_layer_output(c1) == NULL && dl_layer_output(h) == NULL, "absorbed clip / hard swish outputs must not be offered");
    free(a);
    dl_net_free(net);
}

/* A net with constants and broadcasting round-trips through a file: the
   constants are parameters ("scale.value"), saved and loaded with it. */
static void test_constants_saved(void) {
    static const int s311[3] = { 3, 1, 1 }, s1[1] = { 1 };
    static const float scale[3] = { 0.5f, -2.0f, 3.0f }, shift[1] = { 0.25f };
    float x[2 * 3 * 4 * 5], ya[2 * 3 * 4 * 5];
    dl_net *a = dl_net_new(), *b;
    dl_layer *in = dl_input(a, 3, 4, 5), *c = dl_constant(a, 3, s311, scale), *out;
    void *buf = NULL;
    size_t len = 0;
    dl_status st;
    const float *y;
    int i;
    dl_layer_set_name(c, "scale");
    out = dl_sub(dl_mul(in, c), dl_constant(a, 1, s1, shift));
    CHECK(out != NULL, "%s", dl_net_error(a));
    for (i = 0; i < 2 * 3 * 4 * 5; i++) x[i] = (float)i / 7.0f - 3.0f;
    y = dl_predict(a, out, x, 2);
    CHECK(y && y[0] == x[0] * 0.5f - 0.25f && y[20] == x[20] * -2.0f - 0.25f && y[119] == x[119] * 3.0f - 0.25f, "broadcast values");
    if (y) memcpy(ya, y, sizeof ya);
    CHECK(dl_net_find_param(a, "scale.value") && !dl_net_find_param(a, "scale.value")->trainable, "the constant is a statistic-like parameter");
    CHECK(dl_net_save_mem(a, NULL, &buf, &len) == DL_OK, "%s", dl_net_error(a));
    b = buf ? dl_net_load_mem(buf, len, &st) : NULL;
    CHECK(b != NULL, "load: %s", b ? "" : st.msg);
    y = b ? dl_predict(b, dl_net_output(b), x, 2) : NULL;
    CHECK(y && !memcmp(y, ya, sizeof ya), "the loaded net predicts other values");
    DL_FREE(buf);
    dl_net_free(a); dl_net_free(b);
}

/* maxpool2d_argmax: the first maximum's index in the plane (ties and all),
   column-major on request, per sample, or flat over the batch (ONNX's),
   also when dl_predict runs the batch in chunks; it saves and loads with
   its order; planes (flat: batches) past 2^24 cells are refused (float
   indices would be inexact). */
static void test_maxpool_argmax(void) {
    static const float x[2 * 3 * 4] = { 1, 5, 5, 0,   2, 2, 3, 4,   0, 0, 4, 1,         /* sample 0: ties of 2s and 4s */
                                        9, 8, 7, 6,   5, 4, 3, 2,   1, 0, 1, 9 };       /* sample 1 */
    static const float rm[2 * 2 * 2] = { 1, 2, 4, 7,   0, 2, 4, 11 }, cm[2 * 2 * 2] = { 3, 6, 1, 10,   0, 6, 1, 11 };
    dl_pool_desc d;
    dl_net *a = dl_net_new(), *b;
    dl_layer *in = dl_input(a, 1, 3, 4), *r, *c;
    void *buf = NULL;
    size_t len = 0;
    dl_status st;
    const float *y;
    memset(&d, 0, sizeof d);
    d.kernel = 2; d.stride = 2; d.pad_top = 1;
    r = dl_maxpool2d_argmax(in, &d, 0);
    c = dl_maxpool2d_argmax(in, &d, 1);
    CHECK(r && c && r->shape[1] == 2 && r->shape[2] == 2, "%s", dl_net_error(a));
    y = dl_predict(a, r, x, 2);
    CHECK(y && !memcmp(y, rm, sizeof rm), "row-major indices %g %g %g %g", y ? y[0] : -1, y ? y[1] : -1, y ? y[2] : -1, y ? y[3] : -1);
    y = dl_predict(a, c, x, 2);
    CHECK(y && !memcmp(y, cm, sizeof cm), "column-major indices %g %g %g %g", y ? y[4] : -1, y ? y[5] : -1, y ? y[6] : -1, y ? y[7] : -1);
    CHECK(dl_net_save_mem(a, NULL, &buf, &len) == DL_OK, "%s", dl_net_error(a));
    b = buf ? dl_net_load_mem(buf, len, &st) : NULL;
    CHECK(b != NULL, "load: %s", b ? "" : st.msg);
    y = b ? dl_predict(b, dl_net_layer(b, 2), x, 2) : NULL;
    CHECK(y && !memcmp(y, cm, sizeof cm), "the loaded net lost the column-major order");
    DL_FREE(buf);
    dl_net_free(a); dl_net_free(b);
    a = dl_net_new();
    d.pad_top = 0;
    CHECK(!dl_maxpool2d_argmax(dl_input(a, 1, 4097, 4097), &d, 0) && strstr(dl_net_error(a), "2^24"), "a plane past 2^24: %s", dl_net_error(a));
    CHECK(!dl_maxpool2d_argmax(dl_input(a, 1, 4, 4), &d, 4), "flags 4 accepted");
    dl_net_free(a);
    {   /* flat: (n C + c) H W more than in the plane, for every sample of a batch dl_predict cuts in chunks */
        enum { N = 600 };
        static float xs[N * 4 * 8 * 8], plane[N * 4 * 4 * 4];
        const float *f;
        int i, bad = 0;
        a = dl_net_new();
        dl_net_set_threads(a, 1);       /* chunks are per thread: 256 samples on one */
        in = dl_input(a, 4, 8, 8);
        d.kernel = 2; d.stride = 2;
        r = dl_maxpool2d_argmax(in, &d, 0);
        c = dl_maxpool2d_argmax(in, &d, DL_ARGMAX_FLAT);
        for (i = 0; i < N * 4 * 8 * 8; i++) xs[i] = (float)((i * 7919) % 1013);
        CHECK(dl__predict_chunk(a, c, 1) > 0 && dl__predict_chunk(a, c, 1) < N / 2, "a batch of %d is not cut in chunks", N);
        y = dl_predict(a, r, xs, N);
        if (y) memcpy(plane, y, sizeof plane);
        f = y ? dl_predict(a, c, xs, N) : NULL;
        CHECK(f != NULL, "%s", dl_net_error(a));
        for (i = 0; f && i < N * 4 * 4 * 4; i++) bad += f[i] != plane[i] + (float)(i / 16 * 64);
        CHECK(!bad, "%d flat indices are not the plane's plus (n C + c) H W", bad);
        dl_net_free(a);
        a = dl_net_new();
        c = dl_maxpool2d_argmax(dl_input(a, 4, 64, 64), &d, DL_ARGMAX_FLAT);
        CHECK(c && !dl_predict(a, c, xs, 1025) && strstr(dl_net_error(a), "2^24"), "flat indices past 2^24: %s", dl_net_error(a));
        dl_net_free(a);
    }
}

/* A loss written with layers: mean((out - t)^2) with the target a constant,
   minimised by dl_train_step_scalar, takes the same steps as
   dl_train_step_mse with that target repeated. */
static void test_train_step_scalar(void) {
    static const int s3[1] = { 3 };
    static const float t[3] = { 0.5f, -1.0f, 2.0f };
    float x[4 * 6], tt[4 * 3], la = 0, lb = 0;
    dl_net *a = dl_net_new(), *b = dl_net_new();
    dl_layer *oa = dl_dense(dl_tanh(dl_dense(dl_input(a, 6, 0, 0), 5)), 3), *ob = dl_dense(dl_tanh(dl_dense(dl_input(b, 6, 0, 0), 5)), 3);
    dl_layer *d = dl_sub(oa, dl_constant(a, 1, s3, t)), *loss = dl_reduce_mean(dl_mul(d, d), NULL, 0, 0);
    dl_optim *pa = dl_adam(a, 0.01f), *pb = dl_adam(b, 0.01f);
    int i, s;
    double worst = 0;
    for (i = 0; i < 24; i++) x[i] = (float)((i * 37) % 11) / 11.0f - 0.5f;
    for (i = 0; i < 12; i++) tt[i] = t[i % 3];
    CHECK(loss && dl_layer_size(loss) == 1, "%s", dl_net_error(a));
    for (s = 0; s < 3; s++) {
        CHECK(dl_train_step_scalar(a, pa, loss, x, 4, &la) == DL_OK, "%s", dl_net_error(a));
        CHECK(dl_train_step_mse(b, pb, ob, x, tt, 4, &lb) == DL_OK, "%s", dl_net_error(b));
        CHECK(test_close(la, lb, 1e-6, 1e-5), "step %d: loss %.9g, mse %.9g", s, la, lb);
    }
    for (i = 0; i < (int)dl_net_param_floats(b); i++) {
        double e = fabs(dl_net_params(a)[i] - dl_net_params(b)[i]);
        if (e > worst) worst = e;
    }
    CHECK(worst < 1e-5, "parameters differ by %g", worst);
    CHECK(dl_train_step_scalar(a, pa, oa, x, 4, &la) == DL_ERR_SHAPE && strstr(dl_net_error(a), "3 values per sample"), "%s", dl_net_error(a));
    dl_net_free(a); dl_net_free(b);
}

/* Two input layers: the net reading (a, b) computes and trains exactly as
   one reading their concatenation x through two channel slices; a target
   fed as an input drives a layer-built loss like dl_train_step_mse. */
static dl_layer *two_stream(dl_net *net, dl_layer *a, dl_layer *b) {
    dl_layer *xs[2];
    xs[0] = dl_tanh(dl_dense(a, 5)); xs[1] = dl_tanh(dl_dense(b, 5));
    (void)net;
    return dl_dense(dl_concat(xs, 2), 2);
}
static void test_multi_input(void) {
    float a[3 * 4], b[3 * 3], x[3 * 7], t[3 * 2], p1[128], p2[128];   /* 67 parameters */
    const float *xs[3];
    dl_net *m = dl_net_new(), *s = dl_net_new();
    dl_layer *ia = dl_input(m, 4, 0, 0), *ib = dl_input(m, 3, 0, 0), *om = two_stream(m, ia, ib), *ins[3], *it, *d;
    dl_layer *ix = dl_input(s, 7, 0, 0), *os = two_stream(s, dl_slice_channels(ix, 0, 4), dl_slice_channels(ix, 4, 7));
    dl_optim *pm = dl_sgd(m, 0.1f, 0.9f), *ps = dl_sgd(s, 0.1f, 0.9f);
    const float *y;
    float lm = 0, ls = 0;
    int i, k;
    for (i = 0; i < 3; i++) {
        for (k = 0; k < 4; k++) x[i * 7 + k] = a[i * 4 + k] = (float)((i * 7 + k) % 5) / 5.0f - 0.4f;
        for (k = 0; k < 3; k++) x[i * 7 + 4 + k] = b[i * 3 + k] = (float)((i * 3 + k) % 7) / 7.0f - 0.3f;
        t[i * 2] = 0.5f; t[i * 2 + 1] = -0.25f * (float)i;
    }
    ins[0] = ia; ins[1] = ib; xs[0] = a; xs[1] = b;
    y = dl_predict_multi(m, om, 2, ins, xs, 3);
    CHECK(y != NULL, "%s", dl_net_error(m));
    if (y) memcpy(p1, y, 6 * sizeof(float));
    y = dl_predict(s, os, x, 3);
    CHECK(y && !memcmp(p1, y, 6 * sizeof(float)), "two inputs and one sliced input predict differently");
    for (i = 0; i < 2; i++) {
        CHECK(dl_train_step_multi(m, pm, om, 2, ins, xs, DL_LOSS_MSE, t, 3, &lm) == DL_OK, "%s", dl_net_error(m));
        CHECK(dl_train_step_mse(s, ps, os, x, t, 3, &ls) == DL_OK, "%s", dl_net_error(s));
        CHECK(lm == ls, "step %d: loss %.9g vs %.9g", i, lm, ls);
    }
    memcpy(p1, dl_net_params(m), dl_net_param_floats(m) * sizeof(float));
    memcpy(p2, dl_net_params(s), dl_net_param_floats(s) * sizeof(float));
    CHECK(dl_net_param_floats(m) == dl_net_param_floats(s) && !memcmp(p1, p2, dl_net_param_floats(m) * sizeof(float)),
          "training on two inputs differs from the sliced single input");
    /* errors: an input not given, not an input layer, two inputs through the single-input call */
    CHECK(!dl_predict_multi(m, om, 1, ins, xs, 3) && strstr(dl_net_error(m), "reads input 'input_2', which was not given"), "%s", dl_net_error(m));
    ins[1] = om;
    CHECK(!dl_predict_multi(m, om, 2, ins, xs, 3) && strstr(dl_net_error(m), "is not an input layer"), "%s", dl_net_error(m));
    ins[1] = ib; xs[1] = NULL;
    CHECK(!dl_predict_multi(m, om, 2, ins, xs, 3) && strstr(dl_net_error(m), "data of input 'input_2' is NULL"), "%s", dl_net_error(m));
    CHECK(!dl_predict(m, om, a, 3) && strstr(dl_net_error(m), "_multi"), "%s", dl_net_error(m));
    /* a target as an input of the loss: mean((y - t)^2) = dl_train_step_mse's loss */
    it = dl_input(m, 2, 0, 0);
    d = dl_sub(om, it);
    ins[1] = ib; ins[2] = it; xs[1] = b; xs[2] = t;
    CHECK(dl_train_step_multi(m, pm, dl_reduce_mean(dl_mul(d, d), NULL, 0, 0), 3, ins, xs, DL_LOSS_MEAN, NULL, 3, &lm) == DL_OK,
          "%s", dl_net_error(m));
    CHECK(dl_train_step_mse(s, ps, os, x, t, 3, &ls) == DL_OK && test_close(lm, ls, 1e-7, 1e-5), "layer-built loss %.9g vs mse %.9g", lm, ls);
    dl_net_free(m); dl_net_free(s);
}

/* Optimizer state by parameter: after one step SGD's momentum buffer is the
   gradient and Adam's first moment (1 - beta1) times it; a checkpoint keeps
   SGD's dampening. */
static void test_optim_state(void) {
    dl_net *net = dl_net_new();
    dl_layer *out = dl_dense(dl_input(net, 3, 0, 0), 2);
    dl_optim_desc d;
    dl_optim *sgd, *adam, *back = NULL;
    dl_param *w = dl_net_find_param(net, "dense_1.weight");
    const float *s;
    float g[6];
    void *buf = NULL;
    size_t len = 0;
    int i;
    memset(&d, 0, sizeof d);
    d.kind = DL_SGD; d.lr = 0.1f; d.momentum = 0.9f; d.dampening = 0.25f;
    sgd = dl_optim_new(net, &d);
    adam = dl_adam(net, 0.01f);
    CHECK(out && sgd && adam && dl_optim_state_slots(sgd) == 1 && dl_optim_state_slots(adam) == 2, "%s", dl_net_error(net));
    for (i = 0; i < 6; i++) w->grad[i] = g[i] = 0.1f * (float)(i + 1);
    CHECK(dl_optim_step(sgd) == DL_OK && dl_optim_step(adam) == DL_OK, "%s", dl_net_error(net));
    s = dl_optim_state(sgd, w, 0);
    CHECK(s && !memcmp(s, g, sizeof g), "SGD's first buffer is the gradient (no dampening at step 1)");
    s = dl_optim_state(adam, w, 0);
    for (i = 0; s && i < 6; i++)     /* within rounding: s390x and x87 may round 1 - beta1 differently */
        CHECK(fabsf(s[i] - (1.0f - 0.9f) * g[i]) <= 1e-6f * g[i], "adam m[%d] = %g", i, s[i]);
    CHECK(!dl_optim_state(adam, w, 2) && strstr(dl_net_error(net), "slot 2"), "%s", dl_net_error(net));
    CHECK(!dl_optim_state(sgd, NULL, 0) && dl_optim_steps(sgd) == 1, "steps");
    CHECK(dl_net_save_mem(net, sgd, &buf, &len) == DL_OK, "%s", dl_net_error(net));
    if (buf) {
        dl_status st;
        dl_net *again = dl_checkpoint_load_mem(buf, len, &back, &st);
        CHECK(again && back && back->d.dampening == 0.25f, "the checkpoint lost the dampening: %s", again ? "" : st.msg);
        dl_net_free(again);
        DL_FREE(buf);
    }
    d.nesterov = 1;
    CHECK(!dl_optim_new(net, &d) && strstr(dl_net_error(net), "no dampening"), "%s", dl_net_error(net));
    dl_net_free(net);
}

/* dl_freeze carries every attribute and the clip / hard swish epilogues: a
   frozen net of the new layers computes dl_predict's bits. */
static void test_freeze_new_layers(void) {
    static const int s311[3] = { 4, 1, 1 }, ax[2] = { 1, 2 };
    static const float scale[4] = { 0.5f, 1.5f, -1.0f, 2.0f };
    dl_net *net = dl_net_new();
    dl_layer *x = dl_input(net, 2, 7, 6), *h;
    dl_conv_desc c;
    dl_pool_desc pd;
    dl_memory m;
    dl_frozen *f;
    dl_status st;
    float in[3 * 2 * 7 * 6], y[3 * 3];
    void *work;
    const float *p;
    int i;
    memset(&c, 0, sizeof c); memset(&pd, 0, sizeof pd);
    c.filters = 4; c.kernel = 2; c.stride = 2; c.auto_pad = DL_PAD_SAME_UPPER;
    h = dl_clip(dl_conv2d_ex(x, &c), 0, 6);
    h = dl_mul(dl_hard_swish(dl_conv2d(h, 4, 1, 1, 0)), dl_constant(net, 3, s311, scale));
    pd.kernel = 2; pd.stride = 2; pd.ceil_mode = 1; pd.exclude_pad = 1; pd.pad_bottom = 1;
    h = dl_avgpool2d_ex(dl_pad(h, 1, DL_PAD_REFLECT), &pd);
    memset(&c, 0, sizeof c);
    c.filters = 3; c.kernel = 3; c.stride = 2; c.pad = 1; c.output_padding = 1;
    h = dl_upsample(dl_conv2d_transpose_ex(h, &c), 2, 1);
    h = dl_log_softmax(dl_dense(dl_reduce_mean(h, ax, 2, 0), 3));
    for (i = 0; i < 3 * 2 * 7 * 6; i++) in[i] = (float)((i * 31) % 17) / 8.0f - 1.0f;
    f = dl_freeze(net, h, &st);
    CHECK(f && dl_frozen_memory(f, 3, &m) == DL_OK, "freeze: %s", f ? "" : st.msg);
    p = dl_predict(net, h, in, 3);
    if (f && p) {
        work = malloc(m.work_bytes + 64);
        CHECK(dl_frozen_run(f, in, y, 3, work) == DL_OK && !memcmp(y, p, sizeof y), "the frozen net computes other values");
        free(work);
    }
    dl_frozen_free(f);
    dl_net_free(net);
}

/* Large batches run in chunks of samples (dl__predict): the same bits as the
   frozen net, which runs the whole batch at once; dl_ctx_predict too; the
   layers' outputs are then not offered; a batch under two chunks is one pass.
   At 2-4 threads, 131 samples are 2 or more chunks per thread, each thread
   running whole chunks on its own context (dl__predict_parallel): 8 or 9
   chunks of 14-17 samples, and the same bits. */
static void test_chunked_inference(void) {
    enum { N = 131 };
    dl_net *net = dl_net_new();
    dl_layer *x = dl_input(net, 2, 20, 20), *h, *out;
    dl_ctx *ctx;
    dl_frozen *f;
    dl_memory m;
    dl_conv_desc dw;
    float *in = (float *)malloc(N * 800 * sizeof(float)), *y = (float *)malloc(N * 5 * sizeof(float));
    const float *p;
    void *work;
    int i;
    h = dl_maxpool2d(dl_relu(dl_batchnorm(dl_conv2d(x, 12, 3, 1, 1))), 2, 2);       /* 4800 floats: chunks of 13 */
    memset(&dw, 0, sizeof dw);
    dw.filters = 12; dw.kernel = 3; dw.stride = 1; dw.pad = 1; dw.groups = 12;              /* depthwise */
    h = dl_conv2d_ex(h, &dw);
    out = dl_dense(dl_flatten(dl_relu(h)), 5);
    memset(&m, 0, sizeof m);    /* gcc -O3 cannot see dl_frozen_memory set it */
    for (i = 0; i < N * 800; i++) in[i] = (float)((i * 37) % 23) / 11.0f - 1.0f;
    dl_net_set_threads(net, 1);     /* chunks are per thread: 13 samples on one */
    CHECK(dl__predict_chunk(net, out, 1) == 13 && dl__predict_chunk(net, out, 2) == 27, "chunks %d, %d; expected 13, 27",
          dl__predict_chunk(net, out, 1), dl__predict_chunk(net, out, 2));
    f = dl_freeze(net, out, NULL);
    CHECK(f && dl_frozen_memory(f, N, &m) == DL_OK, "freeze");
    work = malloc(m.work_bytes + 64);
    p = dl_predict(net, out, in, N);
    CHECK(p && f && dl_frozen_run(f, in, y, N, work) == DL_OK && !memcmp(y, p, N * 5 * sizeof(float)),
          "chunked dl_predict differs from the frozen net's one pass");
    CHECK(dl_layer_output(out) == NULL && dl_layer_output(h) == NULL, "outputs of a chunked pass must not be offered");
    ctx = dl_ctx_new(net);
    p = ctx ? dl_ctx_predict(ctx, out, in, N) : NULL;
    CHECK(p && !memcmp(y, p, N * 5 * sizeof(float)), "chunked dl_ctx_predict differs");
    p = dl_predict(net, out, in + 11 * 800, 25);                                    /* under two chunks: one pass */
    CHECK(p && !memcmp(y + 11 * 5, p, 25 * 5 * sizeof(float)) && dl_layer_output(out) == p, "one pass of 25 differs");
#ifndef DL_NO_THREADS
    for (i = 2; i <= 4; i++) {
        dl_net_set_threads(net, i);
        p = dl_predict(net, out, in, N);
        CHECK(p && !memcmp(y, p, N * 5 * sizeof(float)), "%d threads, chunks in parallel: other results", i);
        CHECK(net->ctx->n_workers == i - 1 && dl_layer_output(out) == NULL, "%d threads: %d worker contexts, outputs %s offered", i,
              net->ctx->n_workers, dl_layer_output(out) ? "" : "not");
        p = ctx ? dl_ctx_predict(ctx, out, in, N) : NULL;                           /* a user context stays on one thread */
        CHECK(p && !memcmp(y, p, N * 5 * sizeof(float)) && ctx->n_workers == 0, "%d threads: dl_ctx_predict differs", i);
    }
#endif
    dl_ctx_free(ctx);
    free(work); free(in); free(y);
    dl_frozen_free(f);
    dl_net_free(net);
}

/* Training memory (dl_net_train_bytes) of the reference CNN at batch 64:
   buffers placed by liveness, batchnorm outputs recomputed for backward.
   One buffer per value (net->plan_unshared) held every activation and its
   gradient, more than twice the activations; now all of it, scratch too,
   fits in the activations plus one largest layer. One thread: one
   thread's scratch. A training step uses exactly the plan reported. */
static void test_training_memory(void) {
    static float x[64 * 784];
    int y[64], i;
    dl_net *net = dl_net_new();
    dl_layer *h = dl_maxpool2d(dl_prelu(dl_batchnorm(dl_conv2d(dl_input(net, 1, 28, 28), 32, 3, 1, 1))), 2, 2), *out;
    dl_optim *opt;
    double acts = 0, largest = 0, shared, unshared;
    h = dl_maxpool2d(dl_prelu(dl_batchnorm(dl_conv2d(h, 64, 3, 1, 1))), 2, 2);
    out = dl_dense(dl_flatten(h), 10);
    opt = dl_sgd(net, 0.01f, 0.9f);
    CHECK(out && opt, "build: %s", dl_net_error(net));
    if (!out || !opt) return;
    dl_net_set_threads(net, 1);
    for (i = 0; i < net->n_layers; i++) {
        const dl_layer *l = dl_net_layer(net, i);
        if (dl_layer_op(l) == DL_OP_RESHAPE) continue;      /* a view */
        acts += 4.0 * 64 * dl_layer_size(l);
        if (4.0 * 64 * dl_layer_size(l) > largest) largest = 4.0 * 64 * dl_layer_size(l);
    }
    shared = (double)dl_net_train_bytes(net, out, 64);
    net->plan_unshared = 1;
    unshared = (double)dl_net_train_bytes(net, out, 64);
    net->plan_unshared = 0;
    CHECK(unshared > 2 * acts, "one buffer per value: %.1f MB, activations %.1f MB", unshared / 1e6, acts / 1e6);
    CHECK(shared > 0 && shared <= acts + largest, "training plan %.1f MB: more than the activations (%.1f MB) and the largest layer (%.1f MB)",
          shared / 1e6, acts / 1e6, largest / 1e6);
    CHECK(shared < 0.5 * unshared, "training plan %.1f MB, one buffer per value %.1f MB", shared / 1e6, unshared / 1e6);
    for (i = 0; i < 64 * 784; i++) x[i] = frand();
    for (i = 0; i < 64; i++) y[i] = i % 10;
    CHECK(dl_train_step(net, opt, out, x, y, 64, NULL) == DL_OK, "%s", dl_net_error(net));
    CHECK(net->ctx && (double)net->ctx->plan_floats * sizeof(float) == shared && net->ctx->arena_floats == net->ctx->plan_floats,
          "the step planned %.1f MB, dl_net_train_bytes said %.1f MB", net->ctx ? net->ctx->plan_floats * 4e-6 : 0.0, shared / 1e6);
    CHECK(dl_net_train_bytes(net, NULL, 64) == 0 && dl_net_train_bytes(net, out, 0) == 0 && dl_net_train_bytes(NULL, out, 64) == 0,
          "bad arguments give 0");
    dl_net_free(net);
}

int main(void) {
    RUN(test_op_table);
    RUN(test_format1_still_loads);
    RUN(test_constants_saved);
    RUN(test_maxpool_argmax);
    RUN(test_train_step_scalar);
    RUN(test_multi_input);
    RUN(test_optim_state);
    RUN(test_freeze_new_layers);
    RUN(test_xor_mlp);
    RUN(test_pattern_cnn);
    RUN(test_mse_regression);
    RUN(test_initializers);
    RUN(test_same_seed_same_training);
    RUN(test_save_load_identical);
    RUN(test_checkpoint_resume);
    RUN(test_corrupt_files);
    RUN(test_save_is_atomic);
    RUN(test_build_errors);
    RUN(test_nonfinite_changes_nothing);
    RUN(test_freeze_and_lr);
    RUN(test_threads_share_one_net);
    RUN(test_threads_bit_identical);
    RUN(test_inference_fusion);
    RUN(test_prepared_inference);
    RUN(test_depthwise_direct);
    RUN(test_depthwise_kernel_bits);
    RUN(test_depthwise_backward_kernel);
    RUN(test_batchnorm_one_pass_stats);
    RUN(test_strided_im2col_bits);
    RUN(test_conv_direct_bits);
    RUN(test_transpose_kernel_bits);
    RUN(test_pack_transpose);
    RUN(test_relu_rows);
    RUN(test_fusion_clip_hard_swish);
    RUN(test_fake_device_backend);
    RUN(test_load_weights_custom);
    RUN(test_chunked_inference);
    RUN(test_training_memory);
    return test_summary();
}
