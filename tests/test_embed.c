/* test_embed.c - embedding (dl.h zone >>emit): dl_freeze, dl_frozen_run,
 * dl_frozen_memory / dl_net_memory and dl_emit_c.
 *
 * A frozen net must predict exactly what dl_predict predicts (bit for bit)
 * on the reference CNN, the big Fashion-MNIST model and a net with every
 * layer inference supports, at several batch sizes; it must run in exactly
 * the memory dl_frozen_memory reports (guard bytes after the arena, and
 * ASan in `make test-sanitize`). `test_embed --emit DIR` also writes the
 * reference CNN as C (DIR/ref_cnn.c, .h) with inputs and dl_predict's
 * outputs (DIR/ref_cnn_check.h) for tests/embed_main.c (make test-embed). */
#define DL_IMPLEMENTATION
#include "dl.h"
#include "test.h"
#include <stdlib.h>
#include <string.h>

static uint64_t rng_state = 12345;
static float urand(float lo, float hi) {
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return lo + (hi - lo) * (float)(rng_state >> 40) / 16777216.0f;
}
static float *random_floats(size_t n, float lo, float hi) {
    float *p = (float *)malloc(n * sizeof(float));
    size_t i;
    for (i = 0; i < n; i++) p[i] = urand(lo, hi);
    return p;
}
/* Trained-looking statistics: batchnorm and prelu parameters away from their starting values. */
static void perturb(dl_net *net) {
    int i, k;
    for (i = 0; i < dl_net_param_count(net); i++) {
        dl_param *p = dl_net_param(net, i);
        int op = dl_layer_op(p->layer);
        float lo = 0, hi = 0;
        if (op == DL_OP_BATCHNORM) {
            if (strstr(p->name, "running_var")) lo = 0.3f, hi = 2.0f;
            else if (strstr(p->name, "running_mean")) lo = -0.5f, hi = 0.5f;
            else if (strstr(p->name, "weight")) lo = 0.5f, hi = 1.5f;
            else lo = -0.3f, hi = 0.3f;
        } else if (op == DL_OP_PRELU) lo = 0.0f, hi = 0.5f;
        else if (strstr(p->name, "bias")) lo = -0.1f, hi = 0.1f;
        else continue;
        for (k = 0; k < p->size; k++) p->data[k] = urand(lo, hi);
    }
}

/* The reference CNN of examples/fashion.c: returns the logits, *probs the softmax. */
static dl_layer *reference_cnn(dl_net *net, dl_layer **probs) {
    dl_layer *h = dl_input(net, 1, 28, 28);
    h = dl_maxpool2d(dl_prelu(dl_batchnorm(dl_conv2d(h, 32, 3, 1, 1))), 2, 2);
    h = dl_maxpool2d(dl_prelu(dl_batchnorm(dl_conv2d(h, 64, 3, 1, 1))), 2, 2);
    h = dl_dense(dl_flatten(h), 10);
    *probs = dl_softmax(h);
    return h;
}
static dl_layer *cbp(dl_layer *x, int filters) { return dl_prelu(dl_batchnorm(dl_conv2d(x, filters, 3, 1, 1))); }
/* examples/fashion.c --model big */
static dl_layer *big_cnn(dl_net *net, dl_layer **probs) {
    dl_layer *h = dl_input(net, 1, 28, 28);
    h = dl_maxpool2d(cbp(h, 32), 2, 2);
    h = dl_maxpool2d(cbp(cbp(h, 64), 64), 2, 2);
    h = dl_dense(dl_flatten(cbp(h, 128)), 10);
    *probs = dl_softmax(h);
    return h;
}
/* Every layer inference supports, and the cases fusion must leave alone:
   a conv read twice, a dropout between conv and batchnorm, a batchnorm and
   a prelu on their own, grouped, strided and dilated convolutions. */
static dl_layer *every_layer(dl_net *net, dl_layer **probs) {
    dl_conv_desc cd;
    dl_pool_desc pd;
    dl_dense_desc dd;
    dl_layer *x = dl_input(net, 4, 12, 12), *a, *b, *c, *xs[3], *m, *r;
    int sh[2] = { 4, 8 }, sh2[2] = { 8, 5 };
    memset(&cd, 0, sizeof cd); memset(&pd, 0, sizeof pd); memset(&dd, 0, sizeof dd);
    cd.filters = 8; cd.kernel = 3; cd.pad = 2; cd.dilation = 2; cd.groups = 2; cd.no_bias = 1;
    a = dl_leaky_relu(dl_batchnorm(dl_conv2d_ex(x, &cd)), 0.1f);           /* 8x12x12 */
    b = dl_conv2d(x, 8, 3, 1, 1);                                           /* read by two layers: not fused */
    b = dl_add(dl_relu(b), dl_sigmoid(b));
    c = dl_batchnorm(dl_dropout(dl_conv2d(x, 8, 1, 1, 0), 0.3f));           /* dropout stops fusion, as in dl_predict */
    c = dl_elu(c, 0.7f);
    xs[0] = a; xs[1] = dl_mul(b, dl_tanh(c)); xs[2] = c;
    m = dl_concat(xs, 3);                                                   /* 24x12x12 */
    pd.kernel = 3; pd.stride = 2; pd.pad = 1;
    m = dl_prelu(dl_batchnorm(dl_maxpool2d_ex(m, &pd)));                    /* 24x6x6, both on their own */
    m = dl_avgpool2d(m, 2, 2);                                              /* 24x3x3 */
    cd.filters = 16; cd.kernel = 3; cd.pad = 1; cd.dilation = 1; cd.groups = 1; cd.stride = 2; cd.no_bias = 0;
    m = dl_relu(dl_conv2d_ex(m, &cd));                                      /* 16x2x2 */
    m = dl_add(dl_global_avgpool(m), dl_dense(dl_flatten(m), 16));
    dd.units = 32;
    m = dl_prelu(dl_batchnorm(dl_dense_ex(m, &dd)));                         /* fused dense chain */
    m = dl_reshape(m, 2, sh);                                               /* 4x8 */
    r = dl_reshape(dl_dense(m, 40), 2, sh2);                                /* per sample 8x5 */
    m = dl_matmul(m, r);                                                    /* 4x5 */
    m = dl_dense(m, 6);
    *probs = dl_softmax(m);
    return m;
}

typedef dl_layer *(*builder)(dl_net *, dl_layer **);
static dl_net *make_net(builder build, dl_layer **logits, dl_layer **probs) {
    dl_net *net = dl_net_new();
    dl_net_seed(net, 7);
    *logits = build(net, probs);
    CHECK(*probs != NULL, "building the net: %s", dl_net_error(net));
    if (*probs) perturb(net);
    return net;
}

/* dl_frozen_run of f on n samples equals dl_predict, bit for bit, in exactly
   the memory reported; the guard bytes after the arena stay untouched. */
static void check_same(dl_net *net, dl_layer *out, const dl_frozen *f, int n, const char *what) {
    int size = dl_layer_size(out), in_size = dl_layer_size(dl_net_layer(net, 0)), rc, diff = 0;
    size_t i, total = (size_t)n * size;
    float *x = random_floats((size_t)n * in_size, -1.0f, 1.0f), *y = (float *)malloc(total * sizeof(float)), *ref;
    const float *p = dl_predict(net, out, x, n);
    dl_memory m;
    unsigned char *work;
    double worst = 0;
    CHECK(p != NULL, "%s: dl_predict: %s", what, dl_net_error(net));
    ref = (float *)malloc(total * sizeof(float));
    if (p) memcpy(ref, p, total * sizeof(float));
    CHECK(dl_frozen_memory(f, n, &m) == DL_OK && m.in_size == in_size && m.out_size == size, "%s: memory", what);
    work = (unsigned char *)malloc(m.work_bytes + 64);
    memset(work + m.work_bytes, 0xA5, 64);
    rc = dl_frozen_run(f, x, y, n, work);
    CHECK(rc == DL_OK, "%s: dl_frozen_run at batch %d returned %d", what, n, rc);
    for (i = 0; p && i < total; i++)
        if (memcmp(&y[i], &ref[i], sizeof(float))) {
            diff++;
            if (fabs((double)y[i] - ref[i]) > worst) worst = fabs((double)y[i] - ref[i]);
        }
    CHECK(diff == 0, "%s, batch %d: %d of %lu outputs differ from dl_predict (largest difference %g)", what, n, diff,
          (unsigned long)total, worst);
    for (i = 0; i < 64; i++) if (work[m.work_bytes + i] != 0xA5) break;
    CHECK(i == 64, "%s, batch %d: dl_frozen_run wrote past its %lu bytes of work memory", what, n, (unsigned long)m.work_bytes);
    free(x); free(y); free(ref); free(work);
}

static void freeze_and_compare(builder build, const char *what, const int *batches, int n_batches) {
    dl_layer *logits, *probs;
    dl_net *net = make_net(build, &logits, &probs);
    int k, j;
    for (k = 0; probs && k < 2; k++) {
        dl_layer *out = k ? logits : probs;
        dl_status st;
        dl_frozen *f = dl_freeze(net, out, &st);
        CHECK(f != NULL && st.code == DL_OK, "%s: dl_freeze: %s", what, st.msg);
        for (j = 0; f && j < n_batches; j++) check_same(net, out, f, batches[j], k ? "logits" : "probabilities");
        dl_frozen_free(f);
    }
    dl_net_free(net);
}

static void test_freeze_reference_cnn(void) {
    static const int batches[] = { 1, 3, 4, 64 };     /* dense: dot products below 4, a GEMM from 4 on */
    freeze_and_compare(reference_cnn, "reference CNN", batches, 4);
}
static void test_freeze_big_model(void) {
    static const int batches[] = { 1, 5 };
    freeze_and_compare(big_cnn, "big model", batches, 2);
}
static void test_freeze_every_layer(void) {
    static const int batches[] = { 1, 2, 7 };
    freeze_and_compare(every_layer, "every layer", batches, 3);
}

/* The frozen reference CNN: what was fused, and its memory to the byte. */
static void test_memory_reference_cnn(void) {
    dl_layer *logits, *probs;
    dl_net *net = make_net(reference_cnn, &logits, &probs);
    dl_frozen *f = dl_freeze(net, probs, NULL);
    dl_memory m, m2, m64;
    /* conv1 + bn + prelu, pool, conv2 + bn + prelu, pool, dense, softmax */
    size_t weights = (32 * 9 + 32) + 3 * 32 + (64 * 288 + 64) + 3 * 64 + (10 * 3136 + 10);
    memset(&m, 0, sizeof m); memset(&m2, 0, sizeof m2); memset(&m64, 0, sizeof m64);   /* -O3: read in messages even when a call failed */
    CHECK(f && dl_frozen_memory(f, 1, &m) == DL_OK, "memory");
    CHECK(m.steps == 6, "6 steps after fusion, got %d", m.steps);
    CHECK(m.weight_bytes == weights * sizeof(float), "weights: %lu bytes, expected %lu", (unsigned long)m.weight_bytes,
          (unsigned long)(weights * sizeof(float)));
    /* live at once at worst: conv1's output (32x28x28) and the first pool's (32x14x14) */
    CHECK(m.act_bytes == (25088 + 6272) * sizeof(float), "activations %lu bytes", (unsigned long)m.act_bytes);
    CHECK(m.work_bytes == m.act_bytes + m.scratch_bytes && m.scratch_bytes > 0, "work = activations + scratch");
    CHECK(dl_net_memory(net, probs, 1, &m2) == DL_OK && !memcmp(&m, &m2, sizeof m), "dl_net_memory == dl_frozen_memory");
    CHECK(dl_frozen_memory(f, 64, &m64) == DL_OK && m64.act_bytes == 64 * m.act_bytes && m64.scratch_bytes >= m.scratch_bytes,
          "batch 64: activations scale with n");
    printf("    reference CNN frozen: %d steps, weights %lu B, work at batch 1 %lu B (activations %lu, scratch %lu), "
           "batch 64 %lu B\n", m.steps, (unsigned long)m.weight_bytes, (unsigned long)m.work_bytes, (unsigned long)m.act_bytes,
           (unsigned long)m.scratch_bytes, (unsigned long)m64.work_bytes);
    dl_frozen_free(f);
    dl_net_free(net);
}

static int square_fwd(const dl_custom_args *a) {
    int i;
    for (i = 0; i < a->n * a->out_size; i++) a->out[i] = a->in[0][i] * a->in[0][i];
    return 0;
}
static void test_freeze_errors(void) {
    dl_net *net = dl_net_new(), *other = dl_net_new();
    dl_layer *x = dl_input(net, 3, 0, 0), *sq, *d = dl_dense(x, 2), *y = dl_dense(dl_input(other, 2, 0, 0), 2);
    dl_custom_desc cd;
    dl_status st;
    dl_frozen *f, bad;
    int32_t code[64 + sizeof(dl_attrs) / sizeof(int32_t)];
    float in[3] = { 1, 2, 3 }, out[2], work[4096];
    memset(&cd, 0, sizeof cd);
    cd.ndim = 1; cd.shape[0] = 3; cd.forward = square_fwd;
    sq = dl_custom(&x, 1, &cd);
    CHECK(!dl_freeze(net, dl_dense(sq, 2), &st) && st.code == DL_ERR_UNSUPPORTED && strstr(st.msg, "custom"),
          "a custom layer: %d %s", st.code, st.msg);
    CHECK(!dl_freeze(NULL, NULL, &st) && st.code == DL_ERR_ARG, "NULL net");
    CHECK(!dl_freeze(net, NULL, &st) && st.code == DL_ERR_ARG && strstr(st.msg, "NULL"), "a NULL layer is an error: %s", st.msg);
    CHECK(!dl_freeze(net, y, &st) && st.code == DL_ERR_ARG && strstr(st.msg, "another net"), "a layer of another net: %s", st.msg);
    f = dl_freeze(net, d, &st);
    CHECK(f != NULL, "dense: %s", st.msg);
    if (f) {
        CHECK(dl_frozen_run(f, in, out, 0, work) == DL_ERR_ARG, "batch 0");
        CHECK(dl_frozen_run(f, NULL, out, 1, work) == DL_ERR_ARG, "NULL input");
        CHECK(dl_frozen_run(f, in, out, 1, (char *)work + 1) == DL_ERR_ARG, "unaligned work");
        CHECK(f->code_len <= 64 + (int)(sizeof(dl_attrs) / sizeof(int32_t)), "small table: %d words", (int)f->code_len);   /* a step holds every attribute */
        bad = *f;
        memcpy(code, f->code, f->code_len * sizeof(int32_t));
        bad.code = code;
        code[1]++;                                 /* another version */
        CHECK(dl_frozen_run(&bad, in, out, 1, work) == DL_ERR_FORMAT, "another version");
        code[1]--;
        code[DL__FZ_HEAD + code[3] + DL__R_OUT] = 99;  /* a value that does not exist */
        CHECK(dl_frozen_run(&bad, in, out, 1, work) == DL_ERR_FORMAT, "a broken step");
        bad.code_len--;
        CHECK(dl_frozen_memory(&bad, 1, (dl_memory *)(void *)work) == DL_ERR_FORMAT, "a truncated table");
        CHECK(dl_emit_c(f, "1abc", ".", NULL, &st) == DL_ERR_ARG, "a name that is not an identifier");
    }
    dl_frozen_free(f);
    dl_net_free(net);
    dl_net_free(other);
}


/* ---- int8 ---- */
/* The int8 kernels agree with the plain C ones on every path this CPU
   has, at the extremes too (255 x -127 sums that a saturating vpmaddubsw
   would clip), with B's rows at scattered offsets (a convolution's taps)
   and dot products whose length is no multiple of the vector. */
static void test_int8_kernels_agree(void) {
    enum { K4 = 37, LDB = 4 * 64 + 12 };
    int8_t w[4][4 * K4];
    const int8_t *rows[4] = { w[0], w[1], w[2], w[3] };
    uint8_t b[K4 * LDB + 64];
    size_t koff[K4];
    int32_t ref[4 * 64], got[4 * 64], dref[4], dgot[4];
    int i, k, trial, len;
    const dl__q8k *paths[DL__Q8K_ROWS];
    int n_paths = dl__q8k_rows(paths);
    for (trial = 0; trial < 2; trial++) {
        for (i = 0; i < 4; i++) for (k = 0; k < 4 * K4; k++) w[i][k] = (int8_t)(trial ? (i % 2 ? -127 : 127) : (int)urand(-127.9f, 127.9f));
        for (k = 0; k < (int)sizeof b; k++) b[k] = (uint8_t)(trial ? 255 : (int)urand(0, 255.9f));
        for (k = 0; k < K4; k++) koff[k] = (size_t)((k * 7) % K4) * LDB + (size_t)(k % 3);
        dl__q8k_c.tile(K4, rows, b, koff, ref);
        CHECK(!trial || ref[0] == 127 * 255 * 4 * K4, "the C tile sums 255 x 127 exactly: %d", ref[0]);
        for (i = 0; i < n_paths; i++) {
            paths[i]->tile(K4, rows, b, koff, got);
            CHECK(!memcmp(ref, got, sizeof ref), "trial %d: the %s tile differs from the C one", trial, paths[i]->name);
            for (len = 1; len <= K4; len += 9) {
                dl__q8k_c.dot(len, rows, b, dref);
                paths[i]->dot(len, rows, b, dgot);
                CHECK(!memcmp(dref, dgot, sizeof dref), "trial %d: the %s dot product of %d words differs", trial, paths[i]->name, len);
            }
        }
    }
    printf("    int8 kernels on this CPU: %s (used)", paths[0]->name);
    for (i = 1; i < n_paths; i++) printf(", %s", paths[i]->name);
    printf(", each checked against c\n");
}

/* The int8 reference CNN against a plain implementation of the same
   arithmetic, written from the step table: bit for bit. */
static void ref_quantize(unsigned char *u, const float *x, int count, float inv, float z) {
    int i;
    for (i = 0; i < count; i++) {
        volatile float s = x[i] * inv;   /* two roundings, as the library: x / s, then + (z + 1/2); volatile: see ref_affine */
        double v = floor((double)(s + (z + 0.5f)));
        u[i] = (unsigned char)(v < 0 ? 0 : v > 255 ? 255 : v);
    }
}
/* t scale + bias rounded twice, as the library does: the product stored
   through a volatile, since gcc fuses a product and a sum into an FMA
   across statements too (-ffp-contract=fast, its default in C++ and GNU C)
   where the target has one (aarch64, x86 with -mfma). */
static float ref_affine(float t, float scale, float bias) {
    volatile float p = t * scale;
    return p + bias;
}
static float ref_act(float t, float scale, float bias, float slope) {
    float v = ref_affine(t, scale, bias);
    return v > 0 ? v : slope * v;
}
static const int32_t *step_at(const dl_frozen *f, int i) {
    const int32_t *r = f->code + DL__FZ_HEAD + f->code[3];
    while (i--) r += r[DL__R_LEN];
    return r;
}
/* conv 3x3 pad 1 (C -> M, HxW) in int8, then prelu; out M x H x W */
static void ref_conv(const dl_frozen *f, const int32_t *r, const float *x, int C, int H, int W, float *out) {
    int M = r[DL__R_SHAPE], C4 = (C + 3) / 4, m, y, xx, c, ky, kx;
    const float *scale = f->w + r[DL__R_W], *bias = f->w + r[DL__R_W + 2], *wsum = f->w + r[DL__R_W + 4];
    const float *xq = f->w + r[DL__R_W + 6], *slope = f->w + r[DL__R_SLOPE];
    const int8_t *q = f->q + r[DL__R_Q];
    unsigned char *u = (unsigned char *)malloc((size_t)C * H * W);
    ref_quantize(u, x, C * H * W, xq[0], xq[1]);
    for (m = 0; m < M; m++)
        for (y = 0; y < H; y++)
            for (xx = 0; xx < W; xx++) {
                int32_t acc = 0;
                for (c = 0; c < C; c++)
                    for (ky = 0; ky < 3; ky++)
                        for (kx = 0; kx < 3; kx++) {
                            int iy = y + ky - 1, ix = xx + kx - 1;
                            int v = iy >= 0 && iy < H && ix >= 0 && ix < W ? u[(c * H + iy) * W + ix] : (int)xq[1];
                            acc += q[m * 36 * C4 + 4 * ((ky * 3 + kx) * C4 + c / 4) + c % 4] * v;   /* tap-major, 4 channels a word */
                        }
                out[(m * H + y) * W + xx] = ref_act((float)(acc - (int32_t)xq[1] * (int32_t)wsum[m]), scale[m], bias[m], slope[m]);
            }
    free(u);
}
static void ref_pool(const float *x, int C, int H, int W, float *out) {
    int c, y, xx;
    for (c = 0; c < C; c++)
        for (y = 0; y < H / 2; y++)
            for (xx = 0; xx < W / 2; xx++) {
                const float *p = x + (c * H + 2 * y) * W + 2 * xx;
                float m = p[0];
                if (p[1] > m) m = p[1];
                if (p[W] > m) m = p[W];
                if (p[W + 1] > m) m = p[W + 1];
                out[(c * (H / 2) + y) * (W / 2) + xx] = m;
            }
}
static void ref_dense(const dl_frozen *f, const int32_t *r, const float *x, int K, float *out) {
    int M = r[DL__R_SHAPE], K4 = (K + 3) / 4, m, k;
    const float *scale = f->w + r[DL__R_W], *bias = f->w + r[DL__R_W + 2], *wsum = f->w + r[DL__R_W + 4], *xq = f->w + r[DL__R_W + 6];
    unsigned char *u = (unsigned char *)malloc((size_t)K);
    ref_quantize(u, x, K, xq[0], xq[1]);
    for (m = 0; m < M; m++) {
        int32_t acc = 0;
        for (k = 0; k < K; k++) acc += f->q[r[DL__R_Q] + m * K4 * 4 + k] * u[k];
        out[m] = ref_affine((float)(acc - (int32_t)xq[1] * (int32_t)wsum[m]), scale[m], bias[m]);
    }
    free(u);
}
static float *calibration_set(int n) { return random_floats((size_t)n * 784, 0.0f, 1.0f); }
static void test_int8_matches_reference_arithmetic(void) {
    static const int calibs[3] = { DL_CALIB_MINMAX, DL_CALIB_PERCENTILE, DL_CALIB_ENTROPY };
    dl_layer *logits, *probs;
    dl_net *net = make_net(reference_cnn, &logits, &probs);
    dl_frozen *f = dl_freeze(net, logits, NULL), *q;
    float *cal = calibration_set(100), *x = calibration_set(5), a[32 * 784], b[32 * 196], c2[64 * 196], d[64 * 49];
    float want[5 * 10], got[5 * 10], fl[5 * 10], *work;
    dl_quant_desc qd;
    dl_status st;
    dl_memory m;
    int i, k, diff;
    double err = 0;
    for (k = 0; k < 3; k++) {
        memset(&qd, 0, sizeof qd);
        qd.calib = calibs[k];
        q = dl_quantize(f, cal, 100, &qd, &st);
        CHECK(q != NULL, "dl_quantize: %s", st.msg);
        if (!q) continue;
        CHECK(q->q_len == 32 * 36 + 64 * 288 + 10 * 3136, "int8 weights: %lu bytes", (unsigned long)q->q_len);
        for (i = 0; i < 5; i++) {
            ref_conv(q, step_at(q, 0), x + i * 784, 1, 28, 28, a);
            ref_pool(a, 32, 28, 28, b);
            ref_conv(q, step_at(q, 2), b, 32, 14, 14, c2);
            ref_pool(c2, 64, 14, 14, d);
            ref_dense(q, step_at(q, 4), d, 3136, want + i * 10);
        }
        dl_frozen_memory(q, 5, &m);
        work = (float *)malloc(m.work_bytes);
        CHECK(dl_frozen_run(q, x, got, 5, work) == DL_OK, "int8 run");
#ifndef __FAST_MATH__   /* -ffast-math may reorder the float epilogue: bit equality holds only without it (make test-fastmath) */
        for (i = diff = 0; i < 50; i++) diff += memcmp(&got[i], &want[i], sizeof(float)) != 0;
        CHECK(diff == 0, "calibration %d: %d of 50 int8 logits differ from the plain implementation", k, diff);
#else
        (void)diff;
#endif
        free(work);
        dl_frozen_memory(f, 5, &m);
        work = (float *)malloc(m.work_bytes);
        CHECK(dl_frozen_run(f, x, fl, 5, work) == DL_OK, "float run");
        for (i = 0; i < 50; i++) if (fabs(fl[i] - got[i]) > err) err = fabs(fl[i] - got[i]);
        CHECK(err < 0.5, "int8 logits within 0.5 of float, got %g", err);
        free(work);
        dl_frozen_free(q);
    }
    free(cal); free(x);
    dl_frozen_free(f);
    dl_net_free(net);
}

/* Every convolution shape through int8 against a plain implementation
   read from the step table: channels no multiple of 4, strides (the
   gathered path), groups, depthwise, dilation, asymmetric and "same"
   padding, 1x1, and a group's filters no multiple of 4. */
static void test_int8_conv_shapes(void) {
    static const struct { int C, H, W, filters, kernel, stride, pad, dil, groups, top, bottom, left, right, same; } cs[] = {
        { 6, 9, 7, 10, 3, 2, 1, 1, 1, 0, 0, 0, 0, 0 },  { 8, 8, 8, 6, 3, 1, 2, 2, 2, 0, 0, 0, 0, 0 },
        { 5, 6, 6, 5, 3, 1, 1, 1, 5, 0, 0, 0, 0, 0 },   { 7, 5, 9, 9, 1, 1, 0, 1, 1, 0, 0, 0, 0, 0 },
        { 3, 8, 10, 4, 3, 2, 0, 1, 1, 0, 0, 0, 0, 1 },  { 4, 7, 6, 8, 3, 1, 0, 1, 1, 2, 0, 1, 2, 0 },
        { 12, 5, 5, 12, 3, 3, 1, 1, 3, 0, 0, 0, 0, 0 },
    };
    int t;
    for (t = 0; t < (int)(sizeof cs / sizeof cs[0]); t++) {
        dl_net *net = dl_net_new();
        dl_conv_desc d;
        dl_layer *conv;
        dl_frozen *f, *q;
        dl_status st;
        dl_memory m;
        dl_conv_geom g;
        float *cal, *x, *got, *work;
        int i, mm, oy, ox, c, ky, kx, diff = 0, size;
        memset(&d, 0, sizeof d);
        d.filters = cs[t].filters; d.kernel = cs[t].kernel; d.stride = cs[t].stride; d.pad = cs[t].pad;
        d.dilation = cs[t].dil; d.groups = cs[t].groups; d.auto_pad = cs[t].same ? DL_PAD_SAME_UPPER : 0;
        d.pad_top = cs[t].top; d.pad_bottom = cs[t].bottom; d.pad_left = cs[t].left; d.pad_right = cs[t].right;
        dl_net_seed(net, 11 + t);
        conv = dl_conv2d_ex(dl_input(net, cs[t].C, cs[t].H, cs[t].W), &d);
        CHECK(conv != NULL, "case %d: %s", t, dl_net_error(net));
        if (!conv) { dl_net_free(net); continue; }
        g = dl_layer_conv_geom(conv);
        size = cs[t].C * cs[t].H * cs[t].W;
        cal = random_floats((size_t)20 * size, -1.0f, 2.0f);
        x = random_floats((size_t)3 * size, -1.0f, 2.0f);
        got = (float *)malloc((size_t)3 * dl_layer_size(conv) * sizeof(float));
        f = dl_freeze(net, conv, NULL);
        q = f ? dl_quantize(f, cal, 20, NULL, &st) : NULL;
        CHECK(q && step_at(q, 0)[DL__R_Q] >= 0, "case %d quantized", t);
        if (q && dl_frozen_memory(q, 3, &m) == DL_OK) {
            const int32_t *r = step_at(q, 0);
            const float *scale = q->w + r[DL__R_W], *bias = q->w + r[DL__R_W + 2], *wsum = q->w + r[DL__R_W + 4], *xq = q->w + r[DL__R_W + 6];
            const int8_t *w = q->q + r[DL__R_Q];
            int C4 = (g.Cg + 3) / 4, rowb = 4 * g.KH * g.KW * C4;
            unsigned char *u = (unsigned char *)malloc((size_t)size);
            work = (float *)malloc(m.work_bytes);
            CHECK(dl_frozen_run(q, x, got, 3, work) == DL_OK, "case %d: int8 run", t);
            for (i = 0; i < 3; i++) {
                ref_quantize(u, x + (size_t)i * size, size, xq[0], xq[1]);
                for (mm = 0; mm < g.M; mm++)
                    for (oy = 0; oy < g.OH; oy++)
                        for (ox = 0; ox < g.OW; ox++) {
                            int32_t acc = 0;
                            float v;
                            for (c = 0; c < g.Cg; c++)
                                for (ky = 0; ky < g.KH; ky++)
                                    for (kx = 0; kx < g.KW; kx++) {
                                        int iy = oy * g.sh + ky * g.dh - g.ph, ix = ox * g.sw + kx * g.dw - g.pw;
                                        int cin = mm / g.Mg * g.Cg + c;
                                        int val = iy >= 0 && iy < g.H && ix >= 0 && ix < g.W ? u[(cin * g.H + iy) * g.W + ix] : (int)xq[1];
                                        acc += w[mm * rowb + 4 * ((ky * g.KW + kx) * C4 + c / 4) + c % 4] * val;
                                    }
                            v = ref_affine((float)(acc - (int32_t)xq[1] * (int32_t)wsum[mm]), scale[mm], bias[mm]);
                            diff += memcmp(&v, &got[((size_t)i * g.M + mm) * g.P + (size_t)oy * g.OW + ox], sizeof v) != 0;
                        }
            }
#ifndef __FAST_MATH__   /* as in test_int8_matches_reference_arithmetic */
            CHECK(diff == 0, "case %d (%dx%dx%d, k%d s%d d%d g%d): %d outputs differ from the plain implementation", t,
                  g.C, g.H, g.W, g.KH, g.sh, g.dh, g.G, diff);
#else
            (void)diff;
#endif
            free(u); free(work);
        }
        dl_frozen_free(q); dl_frozen_free(f);
        free(cal); free(x); free(got);
        dl_net_free(net);
    }
}

/* Dense layers through int8 against the plain implementation: a small
   net runs 64 samples at a time (one tile over B) and the 6 left over as
   dot products; both give the plain sums' bits. */
static void test_int8_dense_paths(void) {
    dl_net *net = dl_net_new();
    dl_layer *out;
    dl_frozen *f, *q;
    dl_status st;
    dl_memory m;
    float *cal = random_floats(50 * 101, -1.0f, 1.0f), *x = random_floats(70 * 101, -1.0f, 1.0f), got[70 * 10], want[70 * 10], h[70];
    float *work;
    int i, diff = 0;
    dl_net_seed(net, 5);
    out = dl_dense(dl_dense(dl_input(net, 101, 0, 0), 70), 10);        /* 101: rows of 26 words, the last one partial */
    f = dl_freeze(net, out, NULL);
    q = f ? dl_quantize(f, cal, 50, NULL, &st) : NULL;
    CHECK(q && dl_frozen_memory(q, 70, &m) == DL_OK, "quantized: %s", st.msg);
    CHECK(q && dl__fz_chunk(q, 70) == 64, "a small net runs 64 samples at a time, not %d", q ? dl__fz_chunk(q, 70) : 0);
    if (q) {
        work = (float *)malloc(m.work_bytes);
        CHECK(dl_frozen_run(q, x, got, 70, work) == DL_OK, "int8 run");
        for (i = 0; i < 70; i++) {
            ref_dense(q, step_at(q, 0), x + i * 101, 101, h);
            ref_dense(q, step_at(q, 1), h, 70, want + i * 10);
        }
        for (i = 0; i < 700; i++) diff += memcmp(&got[i], &want[i], sizeof(float)) != 0;
#ifndef __FAST_MATH__
        CHECK(diff == 0, "%d of 700 int8 outputs differ from the plain implementation", diff);
#else
        (void)diff;
#endif
        free(work);
    }
    dl_frozen_free(q); dl_frozen_free(f);
    free(cal); free(x);
    dl_net_free(net);
}

/* keep_float leaves the chosen layers in float; the rest of the errors. */
/* A convolution whose output channels differ 100-fold in scale feeds a
   1x1 one that weighs the small ones 100 times more: one input range per
   tensor leaves the small channels about 3 levels, unless dl_quantize
   equalizes the channels first (dl__equalize); the relative error of the
   int8 output against float must fall well below what it is without. */
static double int8_rel_error(const dl_frozen *f, const float *x, int n, int no_equalize) {
    dl_quant_desc qd;
    dl_frozen *q;
    dl_memory m;
    float want[20 * 4 * 36], got[20 * 4 * 36], *work;
    double err = 0, top = 0;
    int i;
    memset(&qd, 0, sizeof qd);
    qd.no_equalize = no_equalize;
    q = dl_quantize(f, x, n, &qd, NULL);
    dl_frozen_memory(f, n, &m);
    work = (float *)malloc(m.work_bytes + 64 * 1024);
    CHECK(q && work && dl_frozen_run(f, x, want, n, work) == DL_OK && dl_frozen_run(q, x, got, n, work) == DL_OK, "runs");
    for (i = 0; i < n * 4 * 36; i++) {
        if (fabs(want[i]) > top) top = fabs(want[i]);
        if (fabs(want[i] - got[i]) > err) err = fabs(want[i] - got[i]);
    }
    free(work);
    dl_frozen_free(q);
    return err / top;
}
static void test_int8_equalization(void) {
    dl_net *net = dl_net_new();
    dl_layer *h, *out;
    dl_frozen *f;
    float *x = random_floats(20 * 4 * 36, -1.0f, 1.0f);
    double eq, plain;
    int i, k, conv = 0;
    dl_net_seed(net, 3);
    h = dl_relu(dl_conv2d(dl_input(net, 4, 6, 6), 8, 3, 1, 1));
    out = dl_conv2d(h, 4, 1, 1, 0);
    for (i = 0; i < dl_net_param_count(net); i++) {
        dl_param *p = dl_net_param(net, i);
        if (!strstr(p->name, "weight")) continue;
        for (k = 0; k < p->size; k++)       /* channel c < 4 is small: filter c of the first, column c of the second */
            p->data[k] *= conv == 0 ? (k / 36 < 4 ? 0.01f : 1.0f) : (k % 8 < 4 ? 100.0f : 1.0f);
        conv++;
    }
    f = dl_freeze(net, out, NULL);
    CHECK(conv == 2 && f != NULL, "the net");
    if (f) {
        eq = int8_rel_error(f, x, 20, 0);
        plain = int8_rel_error(f, x, 20, 1);
        printf("    int8 error / max |float|: %.4f equalized, %.4f not\n", eq, plain);
        CHECK(eq < 0.02 && eq < plain / 4, "equalized %g, not %g", eq, plain);
    }
    dl_frozen_free(f);
    dl_net_free(net);
    free(x);
}
static void test_int8_options(void) {
    dl_layer *logits, *probs;
    dl_net *net = make_net(reference_cnn, &logits, &probs);
    dl_frozen *f = dl_freeze(net, probs, NULL), *q;
    float *cal = calibration_set(20);
    int keep[2] = { 0, -1 }, bad = 3;
    dl_quant_desc qd;
    dl_status st;
    memset(&qd, 0, sizeof qd);
    qd.keep_float = keep; qd.n_keep_float = 2;
    q = dl_quantize(f, cal, 20, &qd, &st);
    CHECK(q && q->q_len == 64 * 288, "first and last kept in float: %lu int8 bytes (%s)", q ? (unsigned long)q->q_len : 0UL, st.msg);
    CHECK(q && step_at(q, 0)[DL__R_Q] < 0 && step_at(q, 2)[DL__R_Q] >= 0 && step_at(q, 4)[DL__R_Q] < 0, "which steps are int8");
    CHECK(!dl_quantize(q, cal, 20, NULL, &st) && st.code == DL_ERR_ARG, "quantizing twice");
    dl_frozen_free(q);
    qd.keep_float = &bad; qd.n_keep_float = 1;
    CHECK(!dl_quantize(f, cal, 20, &qd, &st) && st.code == DL_ERR_ARG && strstr(st.msg, "keep_float"), "index out of range: %s", st.msg);
    qd.n_keep_float = 0; qd.per_tensor_weights = 1;
    q = dl_quantize(f, cal, 20, &qd, &st);
    CHECK(q != NULL, "per-tensor weights: %s", st.msg);
    if (q) {        /* past one 64-sample block of the int8 dense step, in exactly the memory reported */
        float *x = calibration_set(130), *y = (float *)malloc(130 * 10 * sizeof(float)), *y1 = (float *)malloc(10 * sizeof(float));
        dl_memory m;
        unsigned char *work;
        int i;
        dl_frozen_memory(q, 130, &m);
        work = (unsigned char *)malloc(m.work_bytes + 64);
        memset(work + m.work_bytes, 0xA5, 64);
        CHECK(dl_frozen_run(q, x, y, 130, work) == DL_OK, "int8 at batch 130");
        for (i = 0; i < 64 && work[m.work_bytes + i] == 0xA5; i++) {}
        CHECK(i == 64, "int8 at batch 130 wrote past its work memory");
        CHECK(dl_frozen_run(q, x + 129 * 784, y1, 1, work) == DL_OK && !memcmp(y1, y + 1290, 10 * sizeof(float)),
              "int8: sample 129 alone gives the same bits as in a batch of 130");
        free(x); free(y); free(y1); free(work);
    }
    dl_frozen_free(q);
    cal[5] = NAN;
    CHECK(!dl_quantize(f, cal, 20, NULL, &st) && st.code == DL_ERR_NUMERIC, "NaN in calibration: %d", st.code);
    free(cal);
    dl_frozen_free(f);
    dl_net_free(net);
}

static char *read_all(const char *path) {
    FILE *fp = fopen(path, "rb");
    char *s;
    long len;
    if (!fp) return NULL;
    fseek(fp, 0, SEEK_END);
    len = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    s = (char *)calloc((size_t)len + 1, 1);
    if (fread(s, 1, (size_t)len, fp) != (size_t)len) s[0] = 0;
    fclose(fp);
    return s;
}
/* The header states the exact work memory; the source holds every weight. */
static void test_emit_constants(void) {
    dl_layer *logits, *probs;
    dl_net *net = make_net(reference_cnn, &logits, &probs);
    dl_frozen *f = dl_freeze(net, probs, NULL);
    const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    char path[1024], want[256], *h, *c;
    dl_memory m;
    dl_status st;
    CHECK(f && dl_frozen_memory(f, 1, &m) == DL_OK, "freeze");
    CHECK(dl_emit_c(f, "dl_test_emit", dir, NULL, &st) == DL_OK, "dl_emit_c: %s", st.msg);
    snprintf(path, sizeof path, "%s/dl_test_emit.h", dir);
    h = read_all(path);
    remove(path);
    snprintf(path, sizeof path, "%s/dl_test_emit.c", dir);
    c = read_all(path);
    remove(path);
    CHECK(h && c, "both files written");
    snprintf(want, sizeof want, "#define DL_TEST_EMIT_WORK_BYTES ((size_t)%lu)", (unsigned long)m.work_bytes);
    CHECK(h && strstr(h, want), "the header says '%s'", want);
    snprintf(want, sizeof want, "static const float dl_test_emit_w[%lu]", (unsigned long)(m.weight_bytes / 4));
    CHECK(c && strstr(c, want), "the source has '%s'", want);
    {   /* NAME_WORK_BYTES_N(n) = n * activations + the largest scratch: enough for every n */
        dl_memory mn;
        int n, n_full, short_at = 0;
        size_t smax = dl__fz_scratch_max(f, &n_full);
        for (n = 1; n <= 2000; n += n < 100 ? 1 : 37) {
            dl_frozen_memory(f, n, &mn);
            if ((size_t)n * m.act_bytes + smax < mn.work_bytes || (n >= n_full && (size_t)n * m.act_bytes + smax != mn.work_bytes))
                short_at = n;
        }
        CHECK(short_at == 0, "NAME_WORK_BYTES_N is wrong at n = %d", short_at);
    }
    {   /* an int8 net runs chunks of samples: min(n, chunk) * activations + the largest scratch */
        float *cal = random_floats(20 * 784, 0.0f, 1.0f);
        dl_frozen *q = dl_quantize(f, cal, 20, NULL, &st);
        dl_memory m1, mn;
        int n, n_full, short_at = 0;
        size_t smax;
        CHECK(q && dl_frozen_memory(q, 1, &m1) == DL_OK, "quantized: %s", st.msg);
        smax = q ? dl__fz_scratch_max(q, &n_full) : 0;
        for (n = 1; q && n <= 300; n += n < 20 ? 1 : 37) {
            size_t macro = (size_t)dl__fz_chunk(q, n) * m1.act_bytes + smax;
            dl_frozen_memory(q, n, &mn);
            if (macro < mn.work_bytes || (n >= n_full && macro != mn.work_bytes)) short_at = n;
        }
        CHECK(short_at == 0, "int8: NAME_WORK_BYTES_N is wrong at n = %d", short_at);
        dl_frozen_free(q);
        free(cal);
    }
    free(h); free(c);
    dl_frozen_free(f);
    dl_net_free(net);
}

/* --emit DIR: the reference CNN as C, float (ref_cnn) and int8 (ref_cnn_q8),
   each with inputs and expected outputs in NAME_check.h for
   tests/embed_main.c: each sample alone (batch 1) and all 8 together. The
   float net's are dl_predict's, the int8 net's dl_frozen_run's. */
static void write_floats(FILE *fp, const char *name, const float *p, int count) {
    int i;
    fprintf(fp, "static const float %s[%d] = {\n", name, count);
    for (i = 0; i < count; i++) fprintf(fp, "%.9ef,%s", (double)p[i], i % 8 == 7 ? "\n" : " ");
    fprintf(fp, "};\n");
}
static int emit_one(const dl_frozen *f, const char *name, const char *dir, const float *x, int n, const float *out1,
                    const float *outn) {
    char path[1024];
    dl_status st;
    FILE *fp;
    if (dl_emit_c(f, name, dir, NULL, &st)) { fprintf(stderr, "test_embed --emit: %s\n", st.msg); return 1; }
    snprintf(path, sizeof path, "%s/%s_check.h", dir, name);
    if (!(fp = fopen(path, "w"))) { fprintf(stderr, "test_embed --emit: cannot write %s\n", path); return 1; }
    fprintf(fp, "/* Written by test_embed --emit: inputs and the outputs to expect. */\n#define CHECK_N %d\n", n);
    write_floats(fp, "check_in", x, n * 784);
    write_floats(fp, "check_out1", out1, n * 10);
    write_floats(fp, "check_outn", outn, n * 10);
    return fclose(fp) != 0;
}
static int emit(const char *dir) {
    enum { N = 8 };
    dl_layer *logits, *probs;
    dl_net *net = make_net(reference_cnn, &logits, &probs);
    dl_frozen *f = dl_freeze(net, probs, NULL), *q;
    float *x = random_floats((size_t)N * 784, 0.0f, 1.0f), *cal = calibration_set(64), out1[N * 10], outn[N * 10], *work;
    dl_memory m;
    int i, rc;
    for (i = 0; i < N; i++) memcpy(out1 + i * 10, dl_predict(net, probs, x + (size_t)i * 784, 1), 10 * sizeof(float));
    memcpy(outn, dl_predict(net, probs, x, N), sizeof outn);
    rc = emit_one(f, "ref_cnn", dir, x, N, out1, outn);
    q = dl_quantize(f, cal, 64, NULL, NULL);
    dl_frozen_memory(q, N, &m);
    work = (float *)malloc(m.work_bytes);
    for (i = 0; i < N; i++) dl_frozen_run(q, x + (size_t)i * 784, out1 + i * 10, 1, work);
    dl_frozen_run(q, x, outn, N, work);
    rc = rc || emit_one(q, "ref_cnn_q8", dir, x, N, out1, outn);
    free(work); free(x); free(cal);
    dl_frozen_free(q);
    dl_frozen_free(f);
    dl_net_free(net);
    return rc;
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "--emit")) return emit(argv[2]);
    RUN(test_freeze_reference_cnn);
    RUN(test_freeze_big_model);
    RUN(test_freeze_every_layer);
    RUN(test_memory_reference_cnn);
    RUN(test_freeze_errors);
    RUN(test_emit_constants);
    RUN(test_int8_kernels_agree);
    RUN(test_int8_matches_reference_arithmetic);
    RUN(test_int8_conv_shapes);
    RUN(test_int8_dense_paths);
    RUN(test_int8_equalization);
    RUN(test_int8_options);
    return test_summary();
}
