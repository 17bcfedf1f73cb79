/* test_torch.c - parity with PyTorch for every layer, loss and optimizer.
 *
 * The references are float64 PyTorch results on float32 inputs, stored as
 * float32 in tests/fixtures/<case>.bin by tests/gen_fixtures.py (which documents
 * the file format and the names). Each case builds the same graph in dl.h,
 * naming its layers like the PyTorch modules so parameters match by name,
 * loads the parameters, runs forward and backward and compares:
 *   forward outputs, statistics, optimizer steps: |d| <= 1e-5 + 1e-4 |ref|
 *   input and parameter gradients:                |d| <= 1e-4 + 1e-3 |ref|
 * A missing fixture or tensor is a failure, never a skip. Run from the
 * repository root, or give the fixture directory as the first argument. */
#define DL_IMPLEMENTATION
#include "dl.h"
#include "test.h"
#include "ops.h"
#include <stdlib.h>
#include <string.h>

#define FWD_ATOL 1e-5
#define FWD_RTOL 1e-4
#define GRAD_ATOL 1e-4
#define GRAD_RTOL 1e-3

/* ---- fixtures ------------------------------------------------------------ */
typedef struct fx_tensor {
    char name[64];
    int ndim, dims[4];
    size_t size;
    float *data;
} fx_tensor;

typedef struct fx {
    char name[64];
    int count;
    fx_tensor *t;
} fx;

static const char *fx_dir = "tests/fixtures";

static uint32_t fx_u32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void fx_free(fx *f) {
    int i;
    for (i = 0; i < f->count; i++) free(f->t[i].data);
    free(f->t);
    f->t = NULL;
    f->count = 0;
}

/* Reads tests/fixtures/<name>.bin; 0 (and a failed CHECK) when it cannot. */
static int fx_load(fx *f, const char *name) {
    char path[512];
    unsigned char *buf = NULL, *p, *end;
    long len;
    int i, ok = 0;
    size_t k;
    FILE *fp;
    memset(f, 0, sizeof *f);
    snprintf(f->name, sizeof f->name, "%s", name);
    snprintf(path, sizeof path, "%s/%s.bin", fx_dir, name);
    fp = fopen(path, "rb");
    CHECK(fp != NULL, "%s: cannot open %s (run tests/gen_fixtures.py?)", name, path);
    if (!fp) return 0;
    if (fseek(fp, 0, SEEK_END) == 0 && (len = ftell(fp)) >= 12 && fseek(fp, 0, SEEK_SET) == 0 &&
        (buf = (unsigned char *)malloc((size_t)len)) && fread(buf, 1, (size_t)len, fp) == (size_t)len) {
        p = buf; end = buf + len;
        if (!memcmp(p, "DLFX", 4) && fx_u32(p + 4) == 1) {
            f->count = (int)fx_u32(p + 8);
            p += 12;
            f->t = (fx_tensor *)calloc((size_t)f->count + 1, sizeof(fx_tensor));
            for (i = 0; f->t && i < f->count; i++) {
                fx_tensor *t = &f->t[i];
                uint32_t nl, d;
                if (end - p < 4 || (nl = fx_u32(p)) >= sizeof t->name || end - p < 8 + (long)nl) break;
                memcpy(t->name, p + 4, nl);
                p += 4 + nl;
                if (fx_u32(p) > 4) break;
                t->ndim = (int)fx_u32(p);
                p += 4;
                if (end - p < 4L * t->ndim) break;
                t->size = 1;
                for (d = 0; d < (uint32_t)t->ndim; d++, p += 4) t->size *= (t->dims[d] = (int)fx_u32(p));
                if ((size_t)(end - p) < 4 * t->size || !(t->data = (float *)malloc(4 * t->size + 4))) break;
                for (k = 0; k < t->size; k++, p += 4) {
                    uint32_t u = fx_u32(p);
                    memcpy(&t->data[k], &u, 4);
                }
            }
            ok = f->t && i == f->count && p == end;
        }
    }
    fclose(fp);
    free(buf);
    CHECK(ok, "%s: %s is truncated or not a fixture", name, path);
    if (!ok) fx_free(f);
    return ok;
}

static const fx_tensor *fx_find(const fx *f, const char *name) {
    int i;
    for (i = 0; i < f->count; i++) if (!strcmp(f->t[i].name, name)) return &f->t[i];
    return NULL;
}
/* A tensor the case needs: its absence fails the test. */
static const fx_tensor *fx_get(const fx *f, const char *name) {
    const fx_tensor *t = fx_find(f, name);
    CHECK(t != NULL, "%s: fixture has no tensor '%s'", f->name, name);
    return t;
}

/* ---- comparisons ----------------------------------------------------------- */
/* Per case: the largest absolute error and the largest fraction of the
   tolerance used, for forward-type and gradient-type values. */
static struct { double fwd, fwd_frac, grad, grad_frac; int grads; } err;

static void err_reset(void) { memset(&err, 0, sizeof err); }
static void err_print(const char *name) {
    printf("  %-34s max err: fwd %.2e (%.3f of tol)", name, err.fwd, err.fwd_frac);
    if (err.grads) printf("  grad %.2e (%.3f of tol)", err.grad, err.grad_frac);
    printf("\n");
}

/* Compares n floats with a reference; grad selects the gradient tolerance. */
static void cmp(const char *cs, const char *what, const float *got, const float *ref, size_t n, int grad) {
    double atol = grad ? GRAD_ATOL : FWD_ATOL, rtol = grad ? GRAD_RTOL : FWD_RTOL, worst = 0, frac = 0;
    size_t i;
    CHECK(got != NULL, "%s: %s: dl.h gave no values", cs, what);
    if (!got || !ref) return;
    for (i = 0; i < n; i++) {
        double d = fabs((double)got[i] - ref[i]), tol = atol + rtol * fabs((double)ref[i]);
        CHECK(test_close(got[i], ref[i], atol, rtol), "%s: %s[%lu] = %.9g, PyTorch %.9g (diff %.3g, tol %.3g)",
              cs, what, (unsigned long)i, got[i], ref[i], d, tol);
        if (!(d <= worst)) worst = d;            /* NaN sticks */
        if (!(d / tol <= frac)) frac = d / tol;
    }
    if (grad) { err.grads = 1; if (!(worst <= err.grad)) err.grad = worst; if (!(frac <= err.grad_frac)) err.grad_frac = frac; }
    else { if (!(worst <= err.fwd)) err.fwd = worst; if (!(frac <= err.fwd_frac)) err.fwd_frac = frac; }
}

/* Compares with a fixture tensor, which must hold exactly n floats. */
static void cmp_fx(const fx *f, const char *what, const char *ref_name, const float *got, size_t n, int grad) {
    const fx_tensor *t = fx_get(f, ref_name);
    if (!t) return;
    CHECK(t->size == n, "%s: '%s' has %lu floats, dl.h %lu", f->name, ref_name, (unsigned long)t->size, (unsigned long)n);
    if (t->size == n) cmp(f->name, what, got, t->data, n, grad);
}

/* A fixture batch tensor must be (n, shape of layer l). */
static int fx_batch_shape(const fx *f, const fx_tensor *t, const dl_layer *l, int n) {
    int shape[3], nd = dl_layer_shape(l, shape), i, ok = t->ndim == nd + 1 && t->dims[0] == n;
    for (i = 0; ok && i < nd; i++) ok = t->dims[i + 1] == shape[i];
    CHECK(ok, "%s: '%s' is not batch %d of layer '%s''s shape", f->name, t->name, n, dl_layer_name(l));
    return ok;
}

/* Copies every parameter and statistic of net from the fixture, by name and
   shape; the fixture must hold all of them. */
static int load_params(dl_net *net, const fx *f) {
    int i, j, ok = 1;
    for (i = 0; i < dl_net_param_count(net); i++) {
        dl_param *p = dl_net_param(net, i);
        const fx_tensor *t = fx_get(f, p->name);
        int same = t && t->ndim == p->ndim;
        for (j = 0; same && j < p->ndim; j++) same = t->dims[j] == p->shape[j];
        CHECK(!t || same, "%s: parameter %s has another shape in PyTorch", f->name, p->name);
        if (same) memcpy(p->data, t->data, (size_t)p->size * sizeof(float));
        else ok = 0;
    }
    return ok;
}

/* Every reference gradient or statistic in the fixture belongs to a dl.h
   parameter: a PyTorch parameter dl.h lacks would otherwise go unchecked. */
static void check_all_params_known(dl_net *net, const fx *f) {
    int i;
    for (i = 0; i < f->count; i++) {
        char base[64];
        const char *dot = strrchr(f->t[i].name, '.');
        if (!dot || (strcmp(dot, ".grad") && strcmp(dot, ".new"))) continue;
        snprintf(base, sizeof base, "%.*s", (int)(dot - f->t[i].name), f->t[i].name);
        CHECK(dl_net_find_param(net, base) != NULL, "%s: PyTorch has %s, dl.h has no parameter %s", f->name, f->t[i].name, base);
    }
}

/* ---- one layer case: forward, backward, compare ---------------------------- */
/* The net reads input `in` and computes `out`; train selects the mode of the
   forward (and so of batchnorm and dropout). Frees the net. */
static void layer_case(const char *name, dl_net *net, dl_layer *in, dl_layer *out, int train) {
    fx f;
    const fx_tensor *x, *dout, *yref;
    const float *y;
    int i, n, rc;
    err_reset();
    CHECK(in && out, "%s: building the net failed: %s", name, dl_net_error(net));
    if (!in || !out || !fx_load(&f, name)) { dl_net_free(net); return; }
    x = fx_get(&f, "x"); dout = fx_get(&f, "dout"); yref = fx_get(&f, "y");
    if (!x || !dout || !yref || !load_params(net, &f)) goto done;
    n = x->dims[0];
    if (!fx_batch_shape(&f, x, in, n) || !fx_batch_shape(&f, yref, out, n) || !fx_batch_shape(&f, dout, out, n)) goto done;
    check_all_params_known(net, &f);
    dl_net_set_input_grad(net, 1);
    dl_zero_grad(net);
    y = dl_forward(net, out, x->data, n, train);
    CHECK(y != NULL, "%s: dl_forward failed: %s", name, dl_net_error(net));
    if (!y) goto done;
    cmp(name, "y", y, yref->data, yref->size, 0);
    rc = dl_backward(net, out, dout->data);
    CHECK(rc == DL_OK, "%s: dl_backward failed: %s", name, dl_net_error(net));
    if (rc) goto done;
    cmp_fx(&f, "dx", "dx", dl_layer_grad(in), x->size, 1);
    for (i = 0; i < dl_net_param_count(net); i++) {
        dl_param *p = dl_net_param(net, i);
        char ref[64];
        snprintf(ref, sizeof ref, "%s.%s", p->name, p->trainable ? "grad" : "new");
        cmp_fx(&f, p->name, ref, p->trainable ? p->grad : p->data, (size_t)p->size, p->trainable);
    }
    err_print(name);
done:
    fx_free(&f);
    dl_net_free(net);
}

/* ---- every case of tests/ops.h with a fixture; every op must have one ---- */
static dl_layer *named(dl_layer *l, const char *name) { if (l) dl_layer_set_name(l, name); return l; }

static void test_op_cases(void) {
    int ran[DL_OP_COUNT] = { 0 }, elsewhere[DL_OP_COUNT] = { 0 }, i;
    double worst[DL_OP_COUNT] = { 0 };
    for (i = 0; i < OP_CASES; i++) {
        const op_case *k = &op_cases[i];
        dl_net *net;
        dl_layer *out;
        if (!k->fixture) continue;
        net = dl_net_new();
        out = op_case_build(net, k);          /* before dl_net_layer(net, 0): it makes the input */
        layer_case(k->fixture, net, dl_net_layer(net, 0), out, k->train);
        ran[k->op]++;
        if (err.fwd_frac > worst[k->op]) worst[k->op] = err.fwd_frac;
        if (err.grad_frac > worst[k->op]) worst[k->op] = err.grad_frac;
    }
    elsewhere[DL_OP_INPUT] = 1;         /* every case reads one */
    elsewhere[DL_OP_DROPOUT] = 1;       /* PyTorch takes no mask: test_dropout */
    op_cases_cover("test_torch", ran, elsewhere);
    printf("  worst error per op, as a fraction of the tolerance:\n");
    for (i = 0; i < DL_OP_COUNT; i++)
        if (ran[i]) printf("    %-16s %.3f (%d fixtures)\n", dl_op_name(i), worst[i], ran[i]);
}

/* ---- dropout ----------------------------------------------------------------- */
/* PyTorch cannot be given a mask, so dropout is checked two ways: the mask
   hash dl_dropout_keep against gen_fixtures.py's reimplementation of it, and
   the layer against the mask read back from its own output (x is never 0):
   kept elements are x / (1 - p), gradients flow through kept ones only,
   scaled the same, and eval mode is the identity. */
static void test_dropout(void) {
    static const struct { uint64_t seed; float p; } seeds[3] = {   /* DROPOUT_SEEDS in gen_fixtures.py */
        { 0, 0.5f }, { 0x0123456789ABCDEFULL, 0.25f }, { 0xFFFFFFFFFFFFFFFFULL, 0.9f } };
    enum { C = 4, H = 5, W = 6, N = 3, T = N * C * H * W };
    const float p = 0.3f;
    float xs[T], dys[T];
    const float *y, *dx;
    fx f;
    int j, i, mismatches, kept = 0;
    uint32_t r = 12345;
    dl_net *net;
    dl_layer *in, *drop;

    err_reset();
    if (fx_load(&f, "dropout_keep")) {
        for (j = 0; j < 3; j++) {
            char key[16];
            const fx_tensor *t;
            snprintf(key, sizeof key, "keep%d", j);
            if (!(t = fx_get(&f, key))) continue;
            for (i = mismatches = 0; i < (int)t->size; i++) mismatches += dl_dropout_keep(seeds[j].seed, (uint64_t)i, seeds[j].p) != (t->data[i] != 0);
            CHECK(mismatches == 0, "dropout_keep: seed %d: %d of %lu bits differ from the documented hash", j, mismatches, (unsigned long)t->size);
        }
        fx_free(&f);
    }

    for (i = 0; i < T; i++) {           /* x in +-[0.5, 1.5), dy in [-1, 1) */
        r = r * 1664525u + 1013904223u; xs[i] = ((r >> 31) ? -1.0f : 1.0f) * (0.5f + (float)((r >> 8) & 0xFFFF) / 65536.0f);
        r = r * 1664525u + 1013904223u; dys[i] = (float)(r >> 8) / 8388608.0f - 1.0f;
    }
    net = dl_net_new();
    in = dl_input(net, C, H, W);
    drop = dl_dropout(in, p);
    dl_net_set_input_grad(net, 1);
    y = dl_forward(net, drop, xs, N, 1);
    CHECK(y != NULL, "dropout: forward failed: %s", dl_net_error(net));
    if (y) {
        static float ref[T], dref[T];
        for (i = 0; i < T; i++) {
            int keep = y[i] != 0;
            kept += keep;
            ref[i] = keep ? (float)(xs[i] / (1.0 - p)) : 0.0f;
            dref[i] = keep ? (float)(dys[i] / (1.0 - p)) : 0.0f;
        }
        cmp("dropout", "y", y, ref, T, 0);
        /* kept ~ Binomial(T, 1-p): mean 252, sd 8.7; allow 5 sd */
        CHECK(abs(kept - (int)(T * (1 - p) + 0.5f)) < 44, "dropout: kept %d of %d at p %g", kept, T, p);
        CHECK(dl_backward(net, drop, dys) == DL_OK, "dropout: backward failed: %s", dl_net_error(net));
        cmp("dropout", "dx", dl_layer_grad(in), dref, T, 1);
    }
    y = dl_forward(net, drop, xs, N, 0);                  /* eval: identity both ways */
    CHECK(y && !memcmp(y, xs, sizeof xs), "dropout: eval forward is not the identity");
    CHECK(dl_backward(net, drop, dys) == DL_OK, "dropout: eval backward failed: %s", dl_net_error(net));
    dx = dl_layer_grad(in);
    CHECK(dx && !memcmp(dx, dys, sizeof dys), "dropout: eval backward is not the identity");
    dl_net_free(net);
    err_print("dropout");
    printf("  %-34s kept %d of %d at p %.1f\n", "", kept, T, p);
}

/* ---- losses ------------------------------------------------------------------- */
static void test_losses(void) {
    fx f;
    const fx_tensor *t, *lab, *loss, *tg;
    err_reset();
    if (fx_load(&f, "loss_ce")) {
        if ((t = fx_get(&f, "logits")) && (lab = fx_get(&f, "labels")) && (loss = fx_get(&f, "loss")) && t->ndim == 2) {
            int n = t->dims[0], classes = t->dims[1], i, *labels = (int *)malloc((size_t)n * sizeof(int));
            float *d = (float *)malloc(t->size * sizeof(float)), l;
            for (i = 0; i < n; i++) labels[i] = (int)lab->data[i];
            l = dl_softmax_cross_entropy(t->data, labels, n, classes, d);
            cmp("loss_ce", "loss", &l, loss->data, 1, 0);
            cmp_fx(&f, "dlogits", "dlogits", d, t->size, 1);
            free(labels);
            free(d);
        }
        fx_free(&f);
        err_print("loss_ce");
    }
    err_reset();
    if (fx_load(&f, "loss_nll")) {
        if ((t = fx_get(&f, "logp")) && (lab = fx_get(&f, "labels")) && (loss = fx_get(&f, "loss")) && t->ndim == 2) {
            int n = t->dims[0], classes = t->dims[1], i, *labels = (int *)malloc((size_t)n * sizeof(int));
            float *d = (float *)malloc(t->size * sizeof(float)), l;
            for (i = 0; i < n; i++) labels[i] = (int)lab->data[i];
            l = dl_nll(t->data, labels, n, classes, d);
            cmp("loss_nll", "loss", &l, loss->data, 1, 0);
            cmp_fx(&f, "dlogp", "dlogp", d, t->size, 1);
            free(labels);
            free(d);
        }
        fx_free(&f);
        err_print("loss_nll");
    }
    err_reset();
    if (fx_load(&f, "loss_mse")) {
        if ((t = fx_get(&f, "out")) && (tg = fx_get(&f, "target")) && (loss = fx_get(&f, "loss")) && t->ndim == 2) {
            float *d = (float *)malloc(t->size * sizeof(float)), l;
            l = dl_mse(t->data, tg->data, t->dims[0], t->dims[1], d);
            cmp("loss_mse", "loss", &l, loss->data, 1, 0);
            cmp_fx(&f, "dout", "dout", d, t->size, 1);
            free(d);
        }
        fx_free(&f);
        err_print("loss_mse");
    }
}

/* ---- optimizers: 3 steps with given gradients, the same table as OPTIMS ------ */
typedef struct optim_case { const char *name; dl_optim_desc d; float lr2, lr3; } optim_case;
static const optim_case optims[] = {
    { "sgd",              { .kind = DL_SGD, .lr = 0.1f }, 0, 0 },
    { "sgd_momentum",     { .kind = DL_SGD, .lr = 0.1f, .momentum = 0.9f }, 0, 0 },
    { "sgd_nesterov",     { .kind = DL_SGD, .lr = 0.1f, .momentum = 0.9f, .nesterov = 1 }, 0, 0 },
    { "sgd_wd",           { .kind = DL_SGD, .lr = 0.1f, .weight_decay = 0.05f }, 0, 0 },
    { "sgd_momentum_wd",  { .kind = DL_SGD, .lr = 0.1f, .momentum = 0.5f, .weight_decay = 0.05f }, 0, 0 },
    { "adam",             { .kind = DL_ADAM, .lr = 0.01f }, 0, 0 },
    { "adam_wd",          { .kind = DL_ADAM, .lr = 0.01f, .weight_decay = 0.1f }, 0, 0 },
    { "adam_betas",       { .kind = DL_ADAM, .lr = 0.02f, .beta1 = 0.8f, .beta2 = 0.95f, .eps = 1e-6f }, 0, 0 },
    { "adamw",            { .kind = DL_ADAMW, .lr = 0.01f, .weight_decay = 0.1f }, 0, 0 },
    { "adamw_default_wd", { .kind = DL_ADAMW, .lr = 0.01f }, 0, 0 },
    { "rmsprop",          { .kind = DL_RMSPROP, .lr = 0.01f }, 0, 0 },
    { "rmsprop_momentum", { .kind = DL_RMSPROP, .lr = 0.01f, .momentum = 0.9f }, 0, 0 },
    { "rmsprop_centered", { .kind = DL_RMSPROP, .lr = 0.01f, .centered = 1 }, 0, 0 },
    { "rmsprop_centered_momentum_wd", { .kind = DL_RMSPROP, .lr = 0.01f, .momentum = 0.5f, .centered = 1, .weight_decay = 0.1f }, 0, 0 },
    { "sgd_momentum_clip", { .kind = DL_SGD, .lr = 0.1f, .momentum = 0.9f, .clip_norm = 1.0f }, 0, 0 },
    { "adam_clip",        { .kind = DL_ADAM, .lr = 0.01f, .weight_decay = 0.1f, .clip_norm = 0.5f }, 0, 0 },
    { "sgd_momentum_lr",  { .kind = DL_SGD, .lr = 0.1f, .momentum = 0.9f }, 0.03f, 0.2f },
    { "adam_lr",          { .kind = DL_ADAM, .lr = 0.01f }, 0.003f, 0.02f },
    { "rmsprop_lr",       { .kind = DL_RMSPROP, .lr = 0.01f, .momentum = 0.9f }, 0.05f, 0 },
    { "sgd_dampening",    { .kind = DL_SGD, .lr = 0.1f, .momentum = 0.9f, .dampening = 0.3f }, 0, 0 },
};

static void optim_case_run(const optim_case *oc) {
    char name[64], key[80];
    fx f;
    dl_net *net = dl_net_new();
    dl_layer *x = dl_input(net, 5, 0, 0);
    dl_layer *out = named(dl_dense(dl_relu(named(dl_dense(x, 4), "fc1")), 3), "fc2");
    dl_optim *opt = dl_optim_new(net, &oc->d);
    int step, i;
    err_reset();
    snprintf(name, sizeof name, "optim_%s", oc->name);
    CHECK(out && opt, "%s: building failed: %s", name, dl_net_error(net));
    if (out && opt && fx_load(&f, name)) {
        if (load_params(net, &f))
            for (step = 1; step <= 3; step++) {
                float lr = step == 2 ? oc->lr2 : step == 3 ? oc->lr3 : 0;
                if (lr > 0) dl_optim_set_lr(opt, lr);
                for (i = 0; i < dl_net_param_count(net); i++) {
                    dl_param *p = dl_net_param(net, i);
                    const fx_tensor *g;
                    snprintf(key, sizeof key, "%s.g%d", p->name, step);
                    if ((g = fx_get(&f, key)) && g->size == (size_t)p->size) memcpy(p->grad, g->data, g->size * sizeof(float));
                }
                CHECK(dl_optim_step(opt) == DL_OK, "%s: step %d failed: %s", name, step, dl_net_error(net));
                for (i = 0; i < dl_net_param_count(net); i++) {
                    dl_param *p = dl_net_param(net, i);
                    snprintf(key, sizeof key, "%s.s%d", p->name, step);
                    cmp_fx(&f, key, key, p->data, (size_t)p->size, 0);
                }
            }
        fx_free(&f);
        err_print(name);
    }
    dl_net_free(net);
}

static void test_optimizers(void) {
    size_t i;
    for (i = 0; i < sizeof optims / sizeof optims[0]; i++) optim_case_run(&optims[i]);
}

/* ---- end to end: dl_train_step, _nll and _mse, 3 steps ------------------------ */
/* mse: 0 cross-entropy, 1 mean squared error, 2 negative log-likelihood */
static void train_case(const char *name, dl_net *net, dl_layer *out, dl_optim *opt, int mse) {
    fx f;
    const fx_tensor *x, *target;
    int step, i, rc, *labels = NULL;
    char key[80];
    err_reset();
    CHECK(out && opt, "%s: building failed: %s", name, dl_net_error(net));
    if (!out || !opt || !fx_load(&f, name)) { dl_net_free(net); return; }
    x = fx_get(&f, "x");
    target = fx_get(&f, mse == 1 ? "target" : "labels");
    if (x && target && load_params(net, &f)) {
        int n = x->dims[0];
        labels = (int *)calloc((size_t)n, sizeof(int));
        for (i = 0; mse != 1 && i < n; i++) labels[i] = (int)target->data[i];
        for (step = 1; step <= 3; step++) {
            float loss = 0;
            rc = mse == 1 ? dl_train_step_mse(net, opt, out, x->data, target->data, n, &loss)
               : mse == 2 ? dl_train_step_nll(net, opt, out, x->data, labels, n, &loss)
                          : dl_train_step(net, opt, out, x->data, labels, n, &loss);
            CHECK(rc == DL_OK, "%s: step %d failed: %s", name, step, dl_net_error(net));
            snprintf(key, sizeof key, "loss%d", step);
            cmp_fx(&f, key, key, &loss, 1, 0);
            for (i = 0; i < dl_net_param_count(net); i++) {
                dl_param *p = dl_net_param(net, i);
                snprintf(key, sizeof key, "%s.s%d", p->name, step);
                cmp_fx(&f, key, key, p->data, (size_t)p->size, 0);
            }
        }
    }
    free(labels);
    fx_free(&f);
    dl_net_free(net);
    err_print(name);
}

static void test_train_step(void) {
    dl_net *net;
    dl_layer *x, *h;

    net = dl_net_new();                 /* dense -> batchnorm -> relu -> dense, softmax CE, SGD momentum */
    x = dl_input(net, 8, 0, 0);
    h = dl_relu(named(dl_batchnorm(named(dl_dense(x, 10), "fc1")), "bn"));
    h = named(dl_dense(h, 4), "fc2");
    train_case("train_ce", net, h, dl_sgd(net, 0.1f, 0.9f), 0);

    net = dl_net_new();                 /* the same, as log_softmax and NLL: the same steps as the fused CE */
    x = dl_input(net, 8, 0, 0);
    h = dl_relu(named(dl_batchnorm(named(dl_dense(x, 10), "fc1")), "bn"));
    h = dl_log_softmax(named(dl_dense(h, 4), "fc2"));
    train_case("train_ce", net, h, dl_sgd(net, 0.1f, 0.9f), 2);

    net = dl_net_new();                 /* conv -> relu -> flatten -> dense, MSE, Adam */
    x = dl_input(net, 2, 4, 5);
    h = dl_flatten(dl_relu(named(dl_conv2d(x, 3, 3, 1, 1), "conv")));
    h = named(dl_dense(h, 3), "fc");
    train_case("train_mse", net, h, dl_adam(net, 0.01f), 1);
}

int main(int argc, char **argv) {
    if (argc > 1) fx_dir = argv[1];
    RUN(test_op_cases);
    RUN(test_dropout);
    RUN(test_losses);
    RUN(test_optimizers);
    RUN(test_train_step);
    return test_summary();
}
