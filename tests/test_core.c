/* Behaviour of the core: small trainings converge, files round-trip bit for
   bit, checkpoints resume exactly, bad files and bad calls give errors,
   one net serves several threads, and the backend interface works through a
   guarded fake device. Also compiled as C++ (make test builds cxx_check). */
#define DL_IMPLEMENTATION
#include "../dl.h"
#include "test.h"
#include <stdlib.h>
#include <pthread.h>

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
    dl_optim *opt = dl_sgd(net, 0.1f, 0);
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
    CHECK(dl_optim_lr(opt) == 0.1f, "lr %g", dl_optim_lr(opt));
    dl_optim_set_lr(opt, 1e-9f);
    CHECK(dl_train_step(net, opt, out, x, y, 4, NULL) == DL_OK, "%s", dl_net_error(net));
    memcpy(after2, w2->data, sizeof after2);
    for (i = 0; i < 6; i++) CHECK(fabsf(after2[i] - before2[i]) < 1e-6f, "tiny lr moved weight %d by %g", i, after2[i] - before2[i]);
    dl_net_free(net);
}

/* ---- one net, several threads ---- */
typedef struct { dl_net *net; dl_layer *out; const float *x; const float *ref; int ok; } job_t;
static void *infer_thread(void *arg) {
    job_t *j = (job_t *)arg;
    dl_ctx *c = dl_ctx_new(j->net);
    int it;
    j->ok = c != NULL;
    for (it = 0; it < 20 && j->ok; it++) {
        const float *p = dl_ctx_predict(c, j->out, j->x, 32);
        j->ok = p && !memcmp(p, j->ref, 32 * 4 * sizeof(float));
    }
    dl_ctx_free(c);
    return NULL;
}
static void test_threads_share_one_net(void) {
    static float x[32 * 144];
    static int y[32];
    dl_net *net = dl_net_new();
    dl_layer *logits = pattern_cnn(net), *probs = dl_softmax(logits);
    dl_optim *opt = dl_adam(net, 1e-3f);
    pthread_t th[4];
    job_t jobs[4];
    float *ref = (float *)malloc(32 * 4 * sizeof(float));
    int i;
    make_patterns(x, y, 32);
    train_some(net, opt, logits, x, y, (int)(sizeof y / sizeof y[0]), 3, 0);
    memcpy(ref, dl_predict(net, probs, x, 32), 32 * 4 * sizeof(float));
    for (i = 0; i < 4; i++) {
        jobs[i].net = net; jobs[i].out = probs; jobs[i].x = x; jobs[i].ref = ref; jobs[i].ok = 0;
        pthread_create(&th[i], NULL, infer_thread, &jobs[i]);
    }
    for (i = 0; i < 4; i++) { pthread_join(th[i], NULL); CHECK(jobs[i].ok, "thread %d got a different answer", i); }
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
    rc = backward ? dl__cpu_ops[l->op].backward(l, &e2) : dl__cpu_ops[l->op].forward(l, &e2);
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

int main(void) {
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
    RUN(test_fake_device_backend);
    RUN(test_load_weights_custom);
    return test_summary();
}
