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

/* input -> one layer made by make() -> output; the layer is named `lname`. */
static void unary_case(const char *name, int c, int h, int w, dl_layer *(*make)(dl_layer *, const void *),
                       const void *arg, const char *lname, int train) {
    dl_net *net = dl_net_new();
    dl_layer *x = dl_input(net, c, h, w), *y = make(x, arg);
    if (y && lname) dl_layer_set_name(y, lname);
    layer_case(name, net, x, y, train);
}

/* ---- dense ------------------------------------------------------------------- */
static dl_layer *mk_dense(dl_layer *x, const void *a) { return dl_dense_ex(x, (const dl_dense_desc *)a); }

static void test_dense(void) {
    dl_dense_desc d7 = { 7, 0, 0 }, d5 = { 5, 1, 0 }, d6 = { 6, 0, 0 };
    unary_case("dense", 12, 0, 0, mk_dense, &d7, "fc", 1);
    unary_case("dense_nobias", 12, 0, 0, mk_dense, &d5, "fc", 1);
    unary_case("dense_flatten", 3, 5, 4, mk_dense, &d6, "fc", 1);   /* flattens (3,5,4) per sample */
}

/* ---- conv2d: the same table as CONVS in gen_fixtures.py --------------------- */
typedef struct conv_case { const char *name; int c, h, w; dl_conv_desc d; } conv_case;
static const conv_case convs[] = {
    { "conv_k3_p1_b1",     3, 7, 9,    { .filters = 5, .kernel = 3, .pad = 1 } },
    { "conv_k3_p0_b3",     5, 9, 7,    { .filters = 7, .kernel = 3 } },
    { "conv_k5_s2_p2",     3, 11, 9,   { .filters = 6, .kernel = 5, .stride = 2, .pad = 2 } },
    { "conv_dil2",         4, 9, 11,   { .filters = 5, .kernel = 3, .dilation = 2, .pad = 2 } },
    { "conv_groups2",      6, 7, 5,    { .filters = 10, .kernel = 3, .pad = 1, .groups = 2 } },
    { "conv_depthwise",    5, 8, 7,    { .filters = 5, .kernel = 3, .pad = 1, .groups = 5 } },
    { "conv_depthwise_x2", 3, 7, 6,    { .filters = 6, .kernel = 3, .stride = 2, .pad = 1, .groups = 3 } },
    { "conv_1x1",          9, 5, 7,    { .filters = 11, .kernel = 1 } },
    { "conv_1x1_s2",       9, 5, 7,    { .filters = 4, .kernel = 1, .stride = 2 } },
    { "conv_nobias",       3, 6, 5,    { .filters = 4, .kernel = 3, .pad = 1, .no_bias = 1 } },
    { "conv_rect",         2, 9, 8,    { .filters = 3, .kernel_h = 3, .kernel_w = 2, .stride_h = 2, .stride = 1,
                                         .pad_h = 2, .pad_w = 1 } },
    { "conv_wide",         16, 12, 12, { .filters = 12, .kernel = 3, .pad = 1 } },
};
static dl_layer *mk_conv(dl_layer *x, const void *a) { return dl_conv2d_ex(x, (const dl_conv_desc *)a); }

static void test_conv2d(void) {
    size_t i;
    for (i = 0; i < sizeof convs / sizeof convs[0]; i++)
        unary_case(convs[i].name, convs[i].c, convs[i].h, convs[i].w, mk_conv, &convs[i].d, "conv", 1);
}

/* ---- pooling ---------------------------------------------------------------- */
typedef struct pool_case { const char *name; int max, c, h, w; dl_pool_desc d; } pool_case;
static const pool_case pools[] = {
    { "maxpool_k2",       1, 3, 8, 6, { .kernel = 2, .stride = 2 } },
    { "maxpool_k3_s2_p1", 1, 3, 9, 7, { .kernel = 3, .stride = 2, .pad = 1 } },
    { "maxpool_rect",     1, 2, 7, 8, { .kernel_h = 3, .kernel_w = 2, .stride_h = 1, .stride_w = 2, .pad = 1 } },
    { "avgpool_k2",       0, 3, 8, 6, { .kernel = 2, .stride = 2 } },
    { "avgpool_k3_s2_p1", 0, 3, 9, 7, { .kernel = 3, .stride = 2, .pad = 1 } },
    { "avgpool_k3_s1_p1", 0, 2, 5, 6, { .kernel = 3, .stride = 1, .pad = 1 } },
};
static dl_layer *mk_maxpool(dl_layer *x, const void *a) { return dl_maxpool2d_ex(x, (const dl_pool_desc *)a); }
static dl_layer *mk_avgpool(dl_layer *x, const void *a) { return dl_avgpool2d_ex(x, (const dl_pool_desc *)a); }
static dl_layer *mk_gap(dl_layer *x, const void *a) { (void)a; return dl_global_avgpool(x); }

static void test_pool(void) {
    size_t i;
    for (i = 0; i < sizeof pools / sizeof pools[0]; i++)
        unary_case(pools[i].name, pools[i].c, pools[i].h, pools[i].w, pools[i].max ? mk_maxpool : mk_avgpool,
                   &pools[i].d, NULL, 1);
    unary_case("global_avgpool", 5, 4, 6, mk_gap, NULL, NULL, 1);
    unary_case("global_avgpool_cl", 5, 6, 0, mk_gap, NULL, NULL, 1);  /* (C, L) */
}

/* ---- batchnorm: outputs, gradients and the running statistics ---------------- */
static dl_layer *mk_bn(dl_layer *x, const void *a) { (void)a; return dl_batchnorm(x); }
static dl_layer *mk_bn_ex(dl_layer *x, const void *a) { (void)a; return dl_batchnorm_ex(x, 1e-3f, 0.3f); }

static void bn1d_case(const char *name, int train) {      /* input(7) -> dense(6) -> batchnorm */
    dl_net *net = dl_net_new();
    dl_layer *x = dl_input(net, 7, 0, 0), *fc = dl_dense(x, 6), *bn = dl_batchnorm(fc);
    dl_layer_set_name(fc, "fc");
    dl_layer_set_name(bn, "bn");
    layer_case(name, net, x, bn, train);
}

static void test_batchnorm(void) {
    unary_case("bn2d_train", 4, 5, 3, mk_bn, NULL, "bn", 1);
    unary_case("bn2d_eval", 4, 5, 3, mk_bn, NULL, "bn", 0);
    bn1d_case("bn1d_train", 1);
    bn1d_case("bn1d_eval", 0);
    unary_case("bn_cl_train", 4, 7, 0, mk_bn, NULL, "bn", 1);        /* (C, L) */
    unary_case("bn2d_ex_train", 3, 4, 5, mk_bn_ex, NULL, "bn", 1);   /* eps 1e-3, momentum 0.3, batch 1 */
}

/* ---- activations ------------------------------------------------------------- */
static dl_layer *mk_relu(dl_layer *x, const void *a) { (void)a; return dl_relu(x); }
static dl_layer *mk_leaky(dl_layer *x, const void *a) { (void)a; return dl_leaky_relu(x, 0.1f); }
static dl_layer *mk_elu(dl_layer *x, const void *a) { (void)a; return dl_elu(x, 0.7f); }
static dl_layer *mk_prelu(dl_layer *x, const void *a) { (void)a; return dl_prelu(x); }
static dl_layer *mk_sigmoid(dl_layer *x, const void *a) { (void)a; return dl_sigmoid(x); }
static dl_layer *mk_tanh(dl_layer *x, const void *a) { (void)a; return dl_tanh(x); }
static dl_layer *mk_softmax(dl_layer *x, const void *a) { (void)a; return dl_softmax(x); }

static void test_activations(void) {
    unary_case("relu", 3, 4, 5, mk_relu, NULL, NULL, 1);
    unary_case("leaky_relu", 3, 4, 5, mk_leaky, NULL, NULL, 1);
    unary_case("elu", 3, 4, 5, mk_elu, NULL, NULL, 1);
    unary_case("sigmoid", 3, 4, 5, mk_sigmoid, NULL, NULL, 1);
    unary_case("tanh", 3, 4, 5, mk_tanh, NULL, NULL, 1);
    unary_case("prelu", 3, 4, 5, mk_prelu, NULL, "act", 1);
    unary_case("prelu_1d", 6, 0, 0, mk_prelu, NULL, "act", 1);
    unary_case("softmax_nchw", 5, 3, 4, mk_softmax, NULL, NULL, 1);   /* over dim 1 of NCHW */
    unary_case("softmax_1d", 9, 0, 0, mk_softmax, NULL, NULL, 1);     /* over features */
}

/* ---- multi-input ops and views: one input feeding several branches ---------- */
static dl_layer *named(dl_layer *l, const char *name) { if (l) dl_layer_set_name(l, name); return l; }

static void test_combine(void) {
    dl_net *net;
    dl_layer *x, *xs[3];
    int s65[2] = { 6, 5 }, s245[3] = { 2, 4, 5 }, s109[2] = { 10, 9 };

    net = dl_net_new();                 /* conv1x1(x) + conv3x3(x) */
    x = dl_input(net, 3, 5, 4);
    xs[0] = named(dl_conv2d(x, 4, 1, 1, 0), "ca"); xs[1] = named(dl_conv2d(x, 4, 3, 1, 1), "cb");
    layer_case("add2", net, x, dl_add(xs[0], xs[1]), 1);

    net = dl_net_new();                 /* fa(x) + fb(x) + x */
    x = dl_input(net, 6, 0, 0);
    xs[0] = named(dl_dense(x, 6), "fa"); xs[1] = named(dl_dense(x, 6), "fb"); xs[2] = x;
    layer_case("add3", net, x, dl_add_n(xs, 3), 1);

    net = dl_net_new();                 /* cat(ca(x), x, cb(x)) along channels */
    x = dl_input(net, 3, 5, 4);
    xs[0] = named(dl_conv2d(x, 2, 1, 1, 0), "ca"); xs[1] = x; xs[2] = named(dl_conv2d(x, 4, 3, 1, 1), "cb");
    layer_case("concat", net, x, dl_concat(xs, 3), 1);

    net = dl_net_new();                 /* cat(fa(x), x) of features */
    x = dl_input(net, 5, 0, 0);
    xs[0] = named(dl_dense(x, 3), "fa"); xs[1] = x;
    layer_case("concat_1d", net, x, dl_concat(xs, 2), 1);

    net = dl_net_new();                 /* ca(x) * x */
    x = dl_input(net, 3, 4, 5);
    layer_case("mul", net, x, dl_mul(named(dl_conv2d(x, 3, 1, 1, 0), "ca"), x), 1);

    net = dl_net_new();                 /* x (4,6) times fb(x) viewed as (6,5) */
    x = dl_input(net, 4, 6, 0);
    layer_case("matmul_2d", net, x, dl_matmul(x, dl_reshape(named(dl_dense(x, 30), "fb"), 2, s65)), 1);

    net = dl_net_new();                 /* x (2,3,4) times fb(x) viewed as (2,4,5) */
    x = dl_input(net, 2, 3, 4);
    layer_case("matmul_3d", net, x, dl_matmul(x, dl_reshape(named(dl_dense(x, 40), "fb"), 3, s245)), 1);

    net = dl_net_new();                 /* softmax over dim 0 of conv(x) (6,3,5) viewed as (10,9) */
    x = dl_input(net, 4, 3, 5);
    layer_case("reshape", net, x, dl_softmax(dl_reshape(named(dl_conv2d(x, 6, 1, 1, 0), "conv"), 2, s109)), 1);

    net = dl_net_new();                 /* softmax over the flattened (2,3,4) */
    x = dl_input(net, 2, 3, 4);
    layer_case("flatten", net, x, dl_softmax(dl_flatten(x)), 1);
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

/* ---- end to end: dl_train_step and dl_train_step_mse, 3 steps ---------------- */
static void train_case(const char *name, dl_net *net, dl_layer *out, dl_optim *opt, int mse) {
    fx f;
    const fx_tensor *x, *target;
    int step, i, rc, *labels = NULL;
    char key[80];
    err_reset();
    CHECK(out && opt, "%s: building failed: %s", name, dl_net_error(net));
    if (!out || !opt || !fx_load(&f, name)) { dl_net_free(net); return; }
    x = fx_get(&f, "x");
    target = fx_get(&f, mse ? "target" : "labels");
    if (x && target && load_params(net, &f)) {
        int n = x->dims[0];
        labels = (int *)calloc((size_t)n, sizeof(int));
        for (i = 0; !mse && i < n; i++) labels[i] = (int)target->data[i];
        for (step = 1; step <= 3; step++) {
            float loss = 0;
            rc = mse ? dl_train_step_mse(net, opt, out, x->data, target->data, n, &loss)
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

    net = dl_net_new();                 /* conv -> relu -> flatten -> dense, MSE, Adam */
    x = dl_input(net, 2, 4, 5);
    h = dl_flatten(dl_relu(named(dl_conv2d(x, 3, 3, 1, 1), "conv")));
    h = named(dl_dense(h, 3), "fc");
    train_case("train_mse", net, h, dl_adam(net, 0.01f), 1);
}

int main(int argc, char **argv) {
    if (argc > 1) fx_dir = argv[1];
    RUN(test_dense);
    RUN(test_conv2d);
    RUN(test_pool);
    RUN(test_batchnorm);
    RUN(test_activations);
    RUN(test_combine);
    RUN(test_dropout);
    RUN(test_losses);
    RUN(test_optimizers);
    RUN(test_train_step);
    return test_summary();
}
