/* test_cuda.c - the CUDA backend (dl_cuda.cu) against the CPU.

   Without a usable GPU it checks that dl_cuda_backend_new and dl_cuda_use
   fail cleanly, with a message, and that the net keeps training on the CPU.
   With one, every op runs on two nets built alike (same seed), one moved to
   the GPU, over the shapes of test_grad.c: outputs in eval and training mode,
   every layer's activation and gradient (the input's too), what forward saves
   for backward (maxpool's argmax exactly), running statistics, parameter
   gradients and the parameters after an optimizer step. Then every loss,
   every optimizer (from identical gradients), files, moving back to the CPU,
   contexts and threads, and the error paths of a training step.

   GPU and CPU agree when |gpu - cpu| <= 1e-4 |cpu| + 1e-5 max|cpu| + 1e-7,
   max over the tensor compared: float sums in another order differ by a few
   ulps of the tensor's scale, not of each element. Parameters and their
   gradients get a floor from a wider scale (see layer_scale, term_scale),
   since a bias feeding batchnorm has a true gradient of zero and holds noise.
   Results of several training steps get 10 times these tolerances, since
   differences compound from step to step; single steps get them as they are.

   Options: --require-gpu (no GPU is a failure), --bench (only measure the
   reference CNN's throughput, GPU and CPU), --bench-conv (only time the two
   convolution paths, DL_CUDA_CONV=im2col and implicit), --quick (smaller
   cases). Built with -DDLC_EMULATE the GPU half runs on the CPU against tests/cuda_emu.h. The line starting
   "GPU tests:" says whether the GPU half ran. */
#define _POSIX_C_SOURCE 200809L
#define DL_IMPLEMENTATION
#include "../dl.h"
#include "test.h"
#define OPS_NETS
#include "ops.h"
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <pthread.h>
#include <unistd.h>

#define RTOL 1e-4
#define ATOL_SCALE 1e-5

static int quick;
static double loose = 1;            /* x tolerance: 10 where differences compound over several steps */

static uint64_t rng_state = 1;
static float frand(void) {          /* uniform in [-1, 1) */
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (float)((rng_state >> 40) & 0xFFFFFF) / 8388608.0f - 1.0f;
}
static float *random_floats(size_t n) {
    float *p = (float *)malloc((n ? n : 1) * sizeof(float));
    size_t i;
    for (i = 0; i < n; i++) p[i] = frand();
    return p;
}
static float *copy_floats(const float *src, size_t n) {
    float *p = (float *)malloc((n ? n : 1) * sizeof(float));
    if (src && n) memcpy(p, src, n * sizeof(float));
    return p;
}

/* A host copy of n floats of a net's working memory (device or host). */
static float *fetch(dl_net *net, const float *src, size_t n) {
    float *h = (float *)malloc((n ? n : 1) * sizeof(float));
    if (n && net->b->copy(net->b, h, src, n * sizeof(float), DL_TO_HOST)) {
        CHECK(0, "copy to host failed: %s", net->b->error);
        memset(h, 0, n * sizeof(float));
    }
    return h;
}

/* gpu against cpu, n floats, with an extra absolute tolerance; one CHECK
   naming the first difference. */
static int compare_tol(const char *label, const char *what, const float *gpu, const float *cpu, size_t n, double extra) {
    double maxabs = 0, atol;
    size_t i, bad = 0, first = 0;
    for (i = 0; i < n; i++) if (fabs(cpu[i]) > maxabs) maxabs = fabs(cpu[i]);
    atol = loose * (ATOL_SCALE * maxabs + 1e-7 + extra);
    for (i = 0; i < n; i++) {
        double d = fabs((double)gpu[i] - cpu[i]);
        if (!(d <= atol + loose * RTOL * fabs(cpu[i]))) { if (!bad) first = i; bad++; }
    }
    CHECK(!bad, "%s: %s: %lu of %lu differ; first [%lu]: gpu %.9g cpu %.9g (max |cpu| %.3g, extra tolerance %.3g)", label, what,
          (unsigned long)bad, (unsigned long)n, (unsigned long)first, bad ? gpu[first] : 0.0, bad ? cpu[first] : 0.0, maxabs, extra);
    return !bad;
}
static int compare(const char *label, const char *what, const float *gpu, const float *cpu, size_t n) {
    return compare_tol(label, what, gpu, cpu, n, 0);
}

/* A parameter gradient is a sum over the batch of terms the size of the
   layer's output gradient; float rounding of such a sum is relative to the
   terms, not to the result, which for a bias feeding batchnorm is zero but for
   noise. So its floor is TERM_TOL x (sum of |dout| per output channel). */
#define TERM_TOL 1e-6
static double term_scale(dl_net *net, const dl_layer *l) {
    dl_ctx *c = net->ctx;
    size_t k, i;
    float *h;
    double s = 0;
    if (!c || !c->last || !c->train_plan || c->version != net->version || !c->rg[l->index]) return 0;
    k = (size_t)c->n * l->size;
    h = fetch(net, c->dout[l->index], k);
    for (i = 0; i < k; i++) s += fabs(h[i]);
    free(h);
    return s / l->shape[0];
}
/* Every computed layer's output (grads 0) or gradient (grads 1) of the last
   forward or backward on the nets' own contexts that the plan keeps (a
   training plan reuses a buffer once its value is dead: the output asked
   for and the input's gradient stay). */
static void compare_layers(const char *label, dl_net *a, dl_net *b, int n, int grads) {
    dl_ctx *ca = a->ctx, *cb = b->ctx;
    int i;
    char what[96];
    if (!ca || !cb) { CHECK(0, "%s: no context", label); return; }
    for (i = 0; i < a->n_layers; i++) {
        const dl_layer *l = a->layers[i];
        size_t k = (size_t)n * l->size;
        float *h;
        if (!ca->needed[i] || (grads && !ca->rg[i]) || !(ca->keep[i] & (grads ? 2 : 1))) continue;
        CHECK(cb->needed[i] && (!grads || cb->rg[i]), "%s: layer %s is not computed on the GPU", label, l->name);
        h = fetch(b, grads ? cb->dout[i] : cb->out[i], k);
        snprintf(what, sizeof what, "%s of %s", grads ? "gradient" : "output", l->name);
        compare(label, what, h, grads ? ca->dout[i] : ca->out[i], k);
        free(h);
    }
}
/* What forward saved: batchnorm mean and invstd, maxpool argmax (exactly). */
static void compare_saved(const char *label, dl_net *a, dl_net *b, int n) {
    int i;
    char what[96];
    for (i = 0; i < a->n_layers; i++) {
        const dl_layer *l = a->layers[i];
        size_t k = dl_layer_saved_floats(l, n), j, bad = 0;
        float *h;
        if (!k || !a->ctx->needed[i] || !a->ctx->saved[i]) continue;
        h = fetch(b, b->ctx->saved[i], k);
        snprintf(what, sizeof what, "saved buffer of %s", l->name);
        if (l->op == DL_OP_MAXPOOL2D || l->op == DL_OP_GLOBAL_MAXPOOL) {   /* int32 indices */
            const int32_t *ga = (const int32_t *)(void *)h, *ca = (const int32_t *)(void *)a->ctx->saved[i];
            for (j = 0; j < k; j++) bad += ga[j] != ca[j];
            CHECK(!bad, "%s: %s: %lu of %lu argmax indices differ", label, what, (unsigned long)bad, (unsigned long)k);
        } else compare(label, what, h, a->ctx->saved[i], k);
        free(h);
    }
}
/* The largest |value| among the parameters of l: the scale of a bias that
   has only moved by noise. */
static double layer_scale(dl_net *net, const dl_layer *l) {
    double m = 0;
    int i, j;
    for (i = 0; i < l->n_params; i++) {
        dl_param *p = dl_net_param(net, l->first_param + i);
        for (j = 0; j < p->size; j++) if (fabs(p->data[j]) > m) m = fabs(p->data[j]);
    }
    return m;
}
/* Parameters (and gradients when grads) of two nets, by name; b on the GPU
   (a may be too). */
static void compare_params(const char *label, dl_net *a, dl_net *b, int grads) {
    int i;
    char what[96];
    CHECK(dl_net_sync(a) == DL_OK && dl_net_sync(b) == DL_OK, "%s: sync: %s %s", label, dl_net_error(a), dl_net_error(b));
    for (i = 0; i < dl_net_param_count(a); i++) {
        dl_param *pa = dl_net_param(a, i), *pb = dl_net_param(b, i);
        snprintf(what, sizeof what, "%s", pa->name);
        compare_tol(label, what, pb->data, pa->data, (size_t)pa->size, ATOL_SCALE * layer_scale(a, pa->layer));
        if (grads && pa->grad) {
            snprintf(what, sizeof what, "gradient of %s", pa->name);
            compare_tol(label, what, pb->grad, pa->grad, (size_t)pa->size, TERM_TOL * term_scale(a, pa->layer));
        }
    }
}

static dl_optim_desc sgd_desc(float lr, float momentum, float wd) {
    dl_optim_desc d;
    memset(&d, 0, sizeof d);
    d.kind = DL_SGD; d.lr = lr; d.momentum = momentum; d.weight_decay = wd;
    return d;
}

/* ---- the core check: one net, CPU against GPU ---- */
typedef dl_layer *(*build_fn)(dl_net *net, const void *arg);

static void parity(const char *label, build_fn build, const void *arg, int n) {
    dl_net *a = dl_net_new(), *b = dl_net_new();
    dl_layer *oa, *ob;
    float *x = NULL, *R = NULL, *ya = NULL;
    const float *y;
    dl_optim_desc d = sgd_desc(0.05f, 0.9f, 1e-3f);
    dl_optim *pa, *pb;
    size_t in_n, out_n;
    dl_net_seed(a, 5); dl_net_seed(b, 5);
    a->plan_unshared = b->plan_unshared = 1;    /* every value stays to be compared */
    oa = build(a, arg); ob = build(b, arg);
    if (!oa || !ob) { CHECK(0, "%s: building failed: %s", label, dl_net_error(a)); goto done; }
    if (dl_cuda_use(b, 0) != DL_OK) { CHECK(0, "%s: dl_cuda_use: %s", label, dl_net_error(b)); goto done; }
    CHECK(!strcmp(dl_net_backend(b)->name, "cuda"), "%s: on %s", label, dl_net_backend(b)->name);
    in_n = (size_t)n * dl_layer_size(dl_net_layer(a, 0));
    out_n = (size_t)n * dl_layer_size(oa);
    x = random_floats(in_n);
    R = random_floats(out_n);
    dl_net_set_input_grad(a, 1); dl_net_set_input_grad(b, 1);

    /* inference */
    y = dl_forward(a, oa, x, n, 0);
    CHECK(y != NULL, "%s: cpu eval forward: %s", label, dl_net_error(a));
    if (!y) goto done;
    ya = copy_floats(y, out_n);
    y = dl_forward(b, ob, x, n, 0);
    CHECK(y != NULL, "%s: gpu eval forward: %s", label, dl_net_error(b));
    if (!y) goto done;
    compare(label, "eval output", y, ya, out_n);

    /* training: the same generator state draws the same dropout masks */
    dl_net_seed(a, 7); dl_net_seed(b, 7);
    free(ya);
    ya = NULL;
    y = dl_forward(a, oa, x, n, 1);
    CHECK(y != NULL, "%s: cpu train forward: %s", label, dl_net_error(a));
    if (!y) goto done;
    ya = copy_floats(y, out_n);
    y = dl_forward(b, ob, x, n, 1);
    CHECK(y != NULL, "%s: gpu train forward: %s", label, dl_net_error(b));
    if (!y) goto done;
    compare(label, "train output", y, ya, out_n);
    compare_layers(label, a, b, n, 0);
    compare_saved(label, a, b, n);

    /* backward from R, adding into zeroed gradients */
    dl_zero_grad(a); dl_zero_grad(b);
    CHECK(dl_backward(a, oa, R) == DL_OK, "%s: cpu backward: %s", label, dl_net_error(a));
    CHECK(dl_backward(b, ob, R) == DL_OK, "%s: gpu backward: %s", label, dl_net_error(b));
    compare_layers(label, a, b, n, 1);          /* includes the input's gradient */
    compare_params(label, a, b, 1);             /* running statistics and gradients */

    /* one optimizer step: SGD is linear in the gradient, so differences stay small */
    pa = dl_optim_new(a, &d); pb = dl_optim_new(b, &d);
    CHECK(pa && pb, "%s: optimizer: %s", label, dl_net_error(b));
    if (pa && pb) {
        CHECK(dl_optim_step(pa) == DL_OK, "%s: cpu step: %s", label, dl_net_error(a));
        CHECK(dl_optim_step(pb) == DL_OK, "%s: gpu step: %s", label, dl_net_error(b));
        compare_params(label, a, b, 0);
    }
done:
    free(x); free(R); free(ya);
    dl_net_free(a); dl_net_free(b);
}

/* ---- builders ---- */
/* the _w fields: 0 for the same as along h */
typedef struct conv_arg { int c, h, w, filters, kh, kw, stride, pad, dil, groups, bias, stride_w, pad_w, dil_w; } conv_arg;
static dl_layer *build_conv(dl_net *net, const void *p) {
    const conv_arg *a = (const conv_arg *)p;
    dl_layer *x = dl_input(net, a->c, a->h, a->w);
    dl_conv_desc d;
    memset(&d, 0, sizeof d);
    d.filters = a->filters; d.kernel = a->kh; d.kernel_w = a->kw; d.stride = a->stride; d.pad = a->pad;
    d.dilation = a->dil; d.groups = a->groups; d.no_bias = !a->bias;
    d.stride_w = a->stride_w; d.pad_w = a->pad_w; d.dilation_w = a->dil_w;
    return dl_conv2d_ex(x, &d);
}
/* Nets for the loss checks, named by an int. */
enum { N_DENSE, N_BN_DENSE, N_ADD3, N_MATMUL3, N_REFERENCE, N_LOG_SOFTMAX, N_SCALAR, N_RES_CONCAT };

/* conv 3x3 32 -> bn -> prelu -> maxpool -> conv 3x3 64 -> bn -> prelu -> maxpool -> dense 10 */
static dl_layer *reference_cnn(dl_net *net) {
    dl_layer *x = dl_input(net, 1, 28, 28);
    dl_layer *h = dl_maxpool2d(dl_prelu(dl_batchnorm(dl_conv2d(x, 32, 3, 1, 1))), 2, 2);
    h = dl_maxpool2d(dl_prelu(dl_batchnorm(dl_conv2d(h, 64, 3, 1, 1))), 2, 2);
    return dl_dense(dl_flatten(h), 10);
}

static dl_layer *build_net(dl_net *net, const void *p) {
    switch (*(const int *)p) {
    case N_DENSE: return dl_dense(dl_input(net, 7, 0, 0), 5);
    case N_BN_DENSE: return dl_batchnorm(dl_dense(dl_input(net, 6, 0, 0), 5));
    case N_SCALAR: return dl_reduce_mean(dl_tanh(dl_dense(dl_input(net, 7, 0, 0), 5)), NULL, 0, 0);
    case N_LOG_SOFTMAX: return dl_log_softmax(dl_dense(dl_input(net, 7, 0, 0), 5));
    case N_ADD3: return mk_add3_dense(dl_input(net, 6, 0, 0), NULL);
    case N_MATMUL3: return mk_matmul3(dl_input(net, 24, 0, 0), NULL);
    case N_REFERENCE: return reference_cnn(net);
    case N_RES_CONCAT: return mk_res_concat(dl_input(net, 3, 8, 8), NULL);
    }
    return NULL;
}
static void net_case(int kind, int n, const char *label) { parity(label, build_net, &kind, n); }

/* ---- op tests ---- */
/* Every case of tests/ops.h, CPU against GPU; every op must have one. */
static dl_layer *build_case(dl_net *net, const void *k) { return op_case_build(net, (const op_case *)k); }
static void test_op_cases(void) {
    int ran[DL_OP_COUNT] = { 0 }, i;
    for (i = 0; i < OP_CASES; i++) {
        parity(op_cases[i].label, build_case, &op_cases[i], op_cases[i].batch);
        ran[op_cases[i].op]++;
    }
    op_cases_cover("test_cuda", ran, NULL);
}

/* Options tests/ops.h's rows leave out, GPU against CPU only (no finite
   differences or fixtures needed: the CPU kernels are checked there). */
static dl_layer *gx_bcast_both(dl_layer *x, const void *a) {   /* (C,1,W) + (1,H,1): neither input has the output's shape */
    static const int h[1] = { 1 }, cw[2] = { 0, 2 };
    (void)a;
    return dl_add(dl_reduce_mean(x, h, 1, 1), dl_reduce_sum(dl_tanh(x), cw, 2, 1));
}
static dl_layer *gx_bcast_add3(dl_layer *x, const void *a) {   /* x + (C,1,1) + (1): add_n broadcasting */
    static const int hw[2] = { 1, 2 };
    dl_layer *xs[3];
    (void)a;
    xs[0] = x; xs[1] = dl_reduce_mean(dl_sigmoid(x), hw, 2, 1); xs[2] = dl_reduce_sum(x, NULL, 0, 0);
    return dl_add_n(xs, 3);
}
static dl_layer *gx_bcast_small_first(dl_layer *x, const void *a) {   /* (C,1,1) * x, then (1,H,W) / (sigmoid(x) + 1) */
    static const int c[1] = { 0 }, hw[2] = { 1, 2 }, s1[1] = { 1 };
    static const float one[1] = { 1 };
    (void)a;
    return dl_div(dl_reduce_mean(dl_mul(dl_reduce_mean(x, hw, 2, 1), x), c, 1, 1),
                  dl_add(dl_sigmoid(x), dl_constant(x->net, 1, s1, one)));
}
static dl_layer *gx_sub_scalar_first(dl_layer *x, const void *a) { (void)a; return dl_sub(dl_reduce_sum(x, NULL, 0, 0), x); }
static dl_layer *gx_softmax_cl(dl_layer *x, const void *a) { (void)a; return dl_softmax(x); }
static dl_layer *gx_log_softmax_cl(dl_layer *x, const void *a) { (void)a; return dl_log_softmax(x); }
static dl_layer *gx_bn_eval(dl_layer *x, const void *a) { (void)a; return dl_batchnorm(x); }
static dl_layer *gx_dropout_high(dl_layer *x, const void *a) { (void)a; return dl_dropout(dl_elu(x, 0.5f), 0.9f); }
static dl_layer *gx_gap(dl_layer *x, const void *a) { (void)a; return dl_global_avgpool(x); }
static dl_layer *gx_argmax_flat_cm(dl_layer *x, const void *a) {
    return dl_maxpool2d_argmax(x, (const dl_pool_desc *)a, DL_ARGMAX_FLAT | DL_ARGMAX_COLUMN_MAJOR);
}
static dl_layer *gx_conv_big(dl_layer *x, const void *a) {      /* kernel wider than the padded input's interior */
    dl_conv_desc d;
    (void)a;
    memset(&d, 0, sizeof d);
    d.filters = 3; d.kernel = 5; d.pad = 3; d.stride = 2;
    return dl_conv2d_ex(x, &d);
}
static const dl_conv_desc
    gx_cv_5x5_dil_groups = { .filters = 6, .kernel = 5, .pad = 4, .dilation = 2, .groups = 3 },
    gx_cv_32 = { .filters = 32, .kernel = 3, .pad = 1 },
    gx_cv_80 = { .filters = 80, .kernel = 3, .stride = 2, .pad = 1 },
    gx_cv_5x5_g2 = { .filters = 40, .kernel = 5, .pad = 2, .groups = 2 },
    gx_cv_dw_5x5 = { .filters = 8, .kernel = 5, .pad = 2, .groups = 8 },
    gx_cv_same_lower_s2 = { .filters = 4, .kernel = 3, .stride = 2, .auto_pad = DL_PAD_SAME_LOWER, .groups = 2 },
    gx_cv_slices = { .filters = 20, .kernel = 3, .pad = 1 },
    gx_cv_slices_5x5 = { .filters = 24, .kernel = 5, .stride = 2, .pad = 2, .groups = 2 },
    gx_cv_slices_dw = { .filters = 8, .kernel = 3, .stride = 2, .pad_top = 1, .pad_left = 2, .groups = 8 },
    gx_ct_s3_dil2 = { .filters = 4, .kernel = 3, .stride = 3, .dilation = 2, .pad = 1, .output_padding_w = 2 },
    gx_ct_groups3_s2 = { .filters = 6, .kernel = 2, .stride = 2, .groups = 3, .no_bias = 1 };
static const dl_pool_desc
    gx_pl_ceil_dil = { .kernel = 2, .stride = 2, .dilation = 2, .ceil_mode = 1, .pad = 1 },
    gx_pl_max_same_lower_rect = { .kernel_h = 3, .kernel_w = 2, .stride = 2, .auto_pad = DL_PAD_SAME_LOWER },
    gx_pl_avg_same_lower = { .kernel = 3, .stride = 2, .auto_pad = DL_PAD_SAME_LOWER },
    gx_pl_avg_ceil_incl = { .kernel = 3, .stride = 2, .pad_top = 1, .pad_right = 2, .ceil_mode = 1 };
static const int gx_perm_201[3] = { 2, 0, 1 }, gx_perm_021[3] = { 0, 2, 1 }, gx_perm_210[3] = { 2, 1, 0 },
                 gx_perm_102[3] = { 1, 0, 2 }, gx_slice_last[2] = { 4, 5 };
static const int gx_red_ch[4] = { 0, 2, 0, 1 }, gx_red_w_keep[3] = { 1, 1, 2 }, gx_red_all_keep[2] = { 1, 0 }, gx_red_c_2d[3] = { 1, 1, 0 };
static const dl_upsample_desc gx_up_bil_ac_32 = { 3, 2, 1, 1 }, gx_up_near_21 = { 2, 1, 0, 0 }, gx_up_bil_13 = { 1, 3, 1, 0 };
static const dl_pad_desc gx_pad_reflect_max = { 3, 3, 4, 4, DL_PAD_REFLECT, 0 }, gx_pad_edge_wide = { 5, 0, 0, 6, DL_PAD_EDGE, 0 },
                         gx_pad_const_neg = { 1, 1, 0, 0, DL_PAD_CONSTANT, -2.5f };
static const op_case gpu_cases[] = {
    OPS_UNARY(DL_OP_ADD, "add (C,1,W) + (1,H,1)", 2, 3, 4, 5, gx_bcast_both, NULL, NULL, NULL),
    OPS_UNARY(DL_OP_ADD, "add_n x + (C,1,1) + (1)", 3, 3, 4, 5, gx_bcast_add3, NULL, NULL, NULL),
    OPS_UNARY(DL_OP_MUL, "(C,1,1) * x, (1,H,W) / (sigmoid x + 1)", 2, 3, 4, 5, gx_bcast_small_first, NULL, NULL, NULL),
    OPS_UNARY(DL_OP_SUB, "scalar - x", 2, 3, 4, 5, gx_sub_scalar_first, NULL, NULL, NULL),
    OPS_UNARY(DL_OP_SOFTMAX, "softmax over C of (C,L)", 3, 5, 6, 0, gx_softmax_cl, NULL, NULL, NULL),
    OPS_UNARY(DL_OP_LOG_SOFTMAX, "log_softmax over C of (C,L)", 3, 5, 6, 0, gx_log_softmax_cl, NULL, NULL, NULL),
    { DL_OP_BATCHNORM, "batchnorm eval (C,L)", 3, 4, 6, 0, gx_bn_eval, NULL, NULL, NULL, 0 },
    OPS_UNARY(DL_OP_DROPOUT, "dropout p 0.9 after elu", 3, 4, 5, 6, gx_dropout_high, NULL, NULL, NULL),
    OPS_UNARY(DL_OP_GLOBAL_AVGPOOL, "global avgpool batch1 1x1 plane", 1, 6, 1, 1, gx_gap, NULL, NULL, NULL),
    OPS_CONV("conv 5x5 dilation2 groups3", 2, 6, 9, 10, gx_cv_5x5_dil_groups, NULL),
    OPS_CONV("conv 3x3 16->32 on 9x9", 2, 16, 9, 9, gx_cv_32, NULL),
    OPS_CONV("conv 3x3 8->80 stride2 (two 64-filter tiles)", 3, 8, 11, 9, gx_cv_80, NULL),
    OPS_CONV("conv 5x5 6->40 groups2", 2, 6, 8, 7, gx_cv_5x5_g2, NULL),
    OPS_CONV("conv depthwise 5x5", 2, 8, 7, 6, gx_cv_dw_5x5, NULL),
    OPS_CONV("conv same_lower stride2 groups2", 2, 4, 7, 8, gx_cv_same_lower_s2, NULL),
    /* the implicit weight gradient cuts a depth (batch x output pixels) over 1024 into slices */
    OPS_CONV("conv 3x3 5->20 on 23x21 (weight gradient in 2 slices)", 3, 5, 23, 21, gx_cv_slices, NULL),
    OPS_CONV("conv 5x5 stride2 groups2 6->24 on 40x37 (3 slices)", 5, 6, 40, 37, gx_cv_slices_5x5, NULL),
    OPS_CONV("conv depthwise 3x3 stride2 asymmetric pad on 33x31 (2 slices)", 4, 8, 33, 31, gx_cv_slices_dw, NULL),
    OPS_UNARY(DL_OP_CONV2D, "conv 5x5 stride2 pad3 on 3x2", 2, 2, 3, 2, gx_conv_big, NULL, NULL, NULL),
    { DL_OP_CONV2D_TRANSPOSE, "conv transpose stride3 dilation2 output_padding_w2", 2, 3, 4, 3, mk_convT, &gx_ct_s3_dil2, NULL, NULL, 1 },
    { DL_OP_CONV2D_TRANSPOSE, "conv transpose groups3 stride2", 2, 6, 3, 4, mk_convT, &gx_ct_groups3_s2, NULL, NULL, 1 },
    OPS_POOL(DL_OP_MAXPOOL2D, "maxpool ceil, dilation2, pad1", 2, 2, 9, 8, mk_maxpool, gx_pl_ceil_dil, NULL),
    OPS_POOL(DL_OP_MAXPOOL2D, "maxpool 3x2 same_lower", 2, 2, 7, 6, mk_maxpool, gx_pl_max_same_lower_rect, NULL),
    OPS_POOL(DL_OP_MAXPOOL2D_ARGMAX, "maxpool argmax ceil, dilation2", 2, 2, 9, 8, mk_maxpool_argmax, gx_pl_ceil_dil, NULL),
    OPS_POOL(DL_OP_MAXPOOL2D_ARGMAX, "maxpool argmax flat and column-major, batch 3", 3, 3, 7, 8, gx_argmax_flat_cm, pl_k3_s2_p1, NULL),
    OPS_POOL(DL_OP_AVGPOOL2D, "avgpool same_lower (pads counted)", 2, 2, 8, 7, mk_avgpool, gx_pl_avg_same_lower, NULL),
    OPS_POOL(DL_OP_AVGPOOL2D, "avgpool ceil, asymmetric pads counted", 2, 2, 8, 9, mk_avgpool, gx_pl_avg_ceil_incl, NULL),
    OPS_UNARY(DL_OP_TRANSPOSE, "transpose (2,0,1)", 2, 3, 4, 5, mk_transpose, gx_perm_201, NULL, NULL),
    OPS_UNARY(DL_OP_TRANSPOSE, "transpose (0,2,1)", 2, 3, 4, 5, mk_transpose, gx_perm_021, NULL, NULL),
    OPS_UNARY(DL_OP_TRANSPOSE, "transpose (2,1,0)", 2, 3, 4, 5, mk_transpose, gx_perm_210, NULL, NULL),
    OPS_UNARY(DL_OP_TRANSPOSE, "transpose (1,0,2)", 2, 3, 4, 5, mk_transpose, gx_perm_102, NULL, NULL),
    OPS_UNARY(DL_OP_SLICE, "slice the last channel", 2, 5, 3, 2, mk_slice, gx_slice_last, NULL, NULL),
    OPS_UNARY(DL_OP_REDUCE, "reduce_sum over C, H", 2, 3, 4, 5, mk_reduce_sum, gx_red_ch, NULL, NULL),
    OPS_UNARY(DL_OP_REDUCE, "reduce_mean over W keepdims", 2, 3, 4, 5, mk_reduce_mean, gx_red_w_keep, NULL, NULL),
    OPS_UNARY(DL_OP_REDUCE, "reduce_sum over all keepdims", 2, 3, 4, 5, mk_reduce_sum, gx_red_all_keep, NULL, NULL),
    OPS_UNARY(DL_OP_REDUCE, "reduce_mean over C of (C,L) keepdims", 2, 4, 6, 0, mk_reduce_mean, gx_red_c_2d, NULL, NULL),
    OPS_UNARY(DL_OP_UPSAMPLE, "upsample bilinear 3x2 align_corners", 2, 2, 4, 3, mk_upsample, &gx_up_bil_ac_32, NULL, NULL),
    OPS_UNARY(DL_OP_UPSAMPLE, "upsample nearest 2x1", 2, 2, 3, 4, mk_upsample, &gx_up_near_21, NULL, NULL),
    OPS_UNARY(DL_OP_UPSAMPLE, "upsample bilinear 1x3", 1, 2, 3, 4, mk_upsample, &gx_up_bil_13, NULL, NULL),
    OPS_UNARY(DL_OP_PAD, "pad reflect, pads = size - 1", 2, 2, 4, 5, mk_pad, &gx_pad_reflect_max, NULL, NULL),
    OPS_UNARY(DL_OP_PAD, "pad edge wider than the plane", 2, 2, 3, 2, mk_pad, &gx_pad_edge_wide, NULL, NULL),
    OPS_UNARY(DL_OP_PAD, "pad constant -2.5 top and bottom", 2, 3, 2, 4, mk_pad, &gx_pad_const_neg, NULL, NULL),
};
static void test_option_cases(void) {
    int i;
    for (i = 0; i < (int)(sizeof gpu_cases / sizeof gpu_cases[0]); i++)
        parity(gpu_cases[i].label, build_case, &gpu_cases[i], gpu_cases[i].batch);
}

/* The convolution paths (DL_CUDA_CONV, read when a backend starts): every
   conv and conv transpose case through the implicit GEMM (any geometry,
   not only the 3x3 and 5x5 it is chosen for), and through im2col + cuBLAS,
   which the 3x3 cases no longer take by default. Under the emulation the
   implicit kernel's blocks are counted: it must run in the first, never in
   the second. */
#ifdef DLC_EMULATE
long dlc_emu_block_launches(void);
#define BLOCK_LAUNCHES() dlc_emu_block_launches()
#else
#define BLOCK_LAUNCHES() 0L
#endif
static void conv_cases(const op_case *cases, int count) {
    int i;
    for (i = 0; i < count; i++)
        if (cases[i].op == DL_OP_CONV2D || cases[i].op == DL_OP_CONV2D_TRANSPOSE)
            parity(cases[i].label, build_case, &cases[i], cases[i].batch);
}
static void test_conv_paths(void) {
    static const char *const path[2] = { "implicit", "im2col" };
    int k;
    for (k = 0; k < 2; k++) {
        long before = BLOCK_LAUNCHES();
        setenv("DL_CUDA_CONV", path[k], 1);
        conv_cases(op_cases, OP_CASES);
        conv_cases(gpu_cases, (int)(sizeof gpu_cases / sizeof gpu_cases[0]));
        net_case(N_REFERENCE, 3, path[k]);
        unsetenv("DL_CUDA_CONV");
#ifdef DLC_EMULATE
        if (k == 0) CHECK(BLOCK_LAUNCHES() > before, "DL_CUDA_CONV=implicit: the implicit GEMM never ran");
        else CHECK(BLOCK_LAUNCHES() == before, "DL_CUDA_CONV=im2col: %ld implicit GEMM launches", BLOCK_LAUNCHES() - before);
#else
        (void)before;
#endif
    }
}

/* max |gpu - cpu| / max |cpu| */
static double scaled_error(const float *gpu, const float *cpu, size_t n) {
    double d = 0, m = 0;
    size_t i;
    for (i = 0; i < n; i++) {
        if (fabs((double)gpu[i] - cpu[i]) > d) d = fabs((double)gpu[i] - cpu[i]);
        if (fabs(cpu[i]) > m) m = fabs(cpu[i]);
    }
    return m > 0 ? d / m : d;
}
/* TF32 (dl_cuda_set_tf32): a CNN's output and gradients move away from the
   CPU's by more than float rounding (the mode reaches the GEMMs: the
   emulation rounds their operands to TF32) but by less than a few 1e-3 of
   their scale; off again, float parity is back. Smooth activations and
   average pooling: a maxpool or relu decision that TF32 flips moves a
   gradient by a whole term, which says nothing about TF32's rounding. */
#define TF32_MIN 1e-5
#define TF32_MAX 5e-3
static dl_layer *tf32_cnn(dl_net *net) {
    dl_layer *x = dl_input(net, 1, 28, 28);
    dl_layer *h = dl_avgpool2d(dl_tanh(dl_batchnorm(dl_conv2d(x, 16, 3, 1, 1))), 2, 2);
    h = dl_avgpool2d(dl_tanh(dl_batchnorm(dl_conv2d(h, 32, 5, 1, 2))), 2, 2);
    return dl_dense(dl_flatten(h), 10);
}
static void test_tf32(void) {
    dl_net *a = dl_net_new(), *b = dl_net_new();
    dl_layer *oa, *ob;
    const int n = 4;
    uint64_t outer = rng_state;         /* inputs of their own, so the numbers printed do not depend on the tests before */
    float *x = (rng_state = 16, random_floats((size_t)n * 784)), *R = random_floats((size_t)n * 10), *ya = NULL, *y = NULL, *ga = NULL, *gb = NULL;
    const float *p;
    double e_out, e_din, e_dw;
    rng_state = outer;
    dl_net_seed(a, 5); dl_net_seed(b, 5);
    oa = tf32_cnn(a); ob = tf32_cnn(b);
    if (!oa || !ob || dl_cuda_use(b, 0) != DL_OK) { CHECK(0, "setup: %s", dl_net_error(b)); goto done; }
    CHECK(dl_cuda_set_tf32(dl_net_backend(a), 1) == DL_ERR_ARG, "dl_cuda_set_tf32 accepted the CPU backend");
    CHECK(dl_cuda_set_tf32(NULL, 1) == DL_ERR_ARG, "dl_cuda_set_tf32 accepted NULL");
    CHECK(dl_cuda_set_tf32(dl_net_backend(b), 2) == DL_ERR_ARG && strstr(dl_net_backend(b)->error, "on is 2"),
          "dl_cuda_set_tf32(b, 2): '%s'", dl_net_backend(b)->error);
    dl_net_set_input_grad(a, 1); dl_net_set_input_grad(b, 1);
    p = dl_forward(a, oa, x, n, 1);
    ya = copy_floats(p, (size_t)n * 10);
    dl_zero_grad(a);
    CHECK(p && dl_backward(a, oa, R) == DL_OK, "cpu: %s", dl_net_error(a));
    ga = copy_floats(dl_net_grads(a), dl_net_param_floats(a));

    CHECK(dl_cuda_set_tf32(dl_net_backend(b), 1) == DL_OK, "tf32 on: %s", dl_net_backend(b)->error);
    p = dl_forward(b, ob, x, n, 1);
    CHECK(p != NULL, "gpu tf32 forward: %s", dl_net_error(b));
    if (!p) goto done;
    y = copy_floats(p, (size_t)n * 10);
    dl_zero_grad(b);
    CHECK(dl_backward(b, ob, R) == DL_OK, "gpu tf32 backward: %s", dl_net_error(b));
    e_out = scaled_error(y, ya, (size_t)n * 10);
    CHECK(dl_net_sync(b) == DL_OK, "sync: %s", dl_net_error(b));
    e_dw = scaled_error(dl_net_grads(b), ga, dl_net_param_floats(a));   /* over all of them: a bias before batchnorm has ~0 */
    gb = fetch(b, b->ctx->dout[0], (size_t)n * 784);
    e_din = scaled_error(gb, a->ctx->dout[0], (size_t)n * 784);
    printf("     TF32 against the CPU, max error / max value: output %.2g, input gradient %.2g, parameter gradients %.2g\n",
           e_out, e_din, e_dw);
    CHECK(e_out > TF32_MIN && e_out < TF32_MAX, "tf32 output error %.3g not in (%g, %g)", e_out, TF32_MIN, TF32_MAX);
    CHECK(e_din > TF32_MIN && e_din < TF32_MAX, "tf32 input gradient error %.3g not in (%g, %g)", e_din, TF32_MIN, TF32_MAX);
    CHECK(e_dw > TF32_MIN && e_dw < TF32_MAX, "tf32 parameter gradient error %.3g not in (%g, %g)", e_dw, TF32_MIN, TF32_MAX);

    CHECK(dl_cuda_set_tf32(dl_net_backend(b), 0) == DL_OK, "tf32 off: %s", dl_net_backend(b)->error);
    if ((p = dl_forward(b, ob, x, n, 1)) != NULL) compare("tf32 off again", "output", p, ya, (size_t)n * 10);
    else CHECK(0, "gpu forward: %s", dl_net_error(b));
done:
    free(x); free(R); free(ya); free(y); free(ga); free(gb);
    dl_net_free(a); dl_net_free(b);
}

/* What has no GPU path says so: dl_freeze and dl_quantize run on the CPU's
   weights, so a net on the GPU is refused by name, never read as garbage. */
static void test_cpu_only_refused(void) {
    dl_net *net = dl_net_new();
    dl_layer *out = reference_cnn(net);
    dl_status st;
    dl_frozen *f;
    if (!out || dl_cuda_use(net, 0) != DL_OK) { CHECK(0, "setup: %s", dl_net_error(net)); dl_net_free(net); return; }
    f = dl_freeze(net, out, &st);
    CHECK(!f && st.code == DL_ERR_UNSUPPORTED && strstr(st.msg, "cuda") && strstr(st.msg, "CPU"),
          "dl_freeze of a net on the GPU: code %d, '%s'", st.code, st.msg);
    dl_frozen_free(f);
    CHECK(dl_net_to_backend(net, NULL) == DL_OK, "back to the CPU: %s", dl_net_error(net));
    f = dl_freeze(net, out, &st);
    CHECK(f != NULL, "dl_freeze once back on the CPU: %s", st.msg);
    dl_frozen_free(f);
    dl_net_free(net);
}

/* conv, relu, maxpool, avgpool, global avgpool: argmax switches everywhere in
   weight space, so no finite-difference case (tests/ops.h) but a parity one */
static dl_layer *build_pool_chain(dl_net *net, const void *p) {
    dl_pool_desc pd;
    (void)p;
    memset(&pd, 0, sizeof pd);
    pd.kernel = 3; pd.stride = 2; pd.pad = 1;
    return dl_global_avgpool(dl_avgpool2d_ex(dl_maxpool2d_ex(dl_relu(dl_conv2d(dl_input(net, 3, 11, 9), 5, 3, 1, 1)), &pd), &pd));
}
static void test_pool_chain(void) { parity("conv, relu, maxpool, avgpool, global avgpool", build_pool_chain, NULL, 2); }

/* Two input layers on the GPU: dl_train_step_multi with a target fed as an
   input of a layer-built loss, against the CPU. */
static void test_multi_input(void) {
    dl_net *a = dl_net_new(), *b = dl_net_new();
    dl_net *nets[2];
    dl_optim *opt[2];
    dl_layer *outs[2], *ins[2][3];
    float *xa = random_floats(4 * 6), *xb = random_floats(4 * 5), *t = random_floats(4 * 3), loss[2] = { 0, 0 };
    const float *xs[3];
    int k, s;
    nets[0] = a; nets[1] = b;
    xs[0] = xa; xs[1] = xb; xs[2] = t;
    for (k = 0; k < 2; k++) {
        dl_layer *h[2], *d;
        dl_net_seed(nets[k], 9);
        ins[k][0] = dl_input(nets[k], 6, 0, 0); ins[k][1] = dl_input(nets[k], 5, 0, 0); ins[k][2] = dl_input(nets[k], 3, 0, 0);
        h[0] = dl_tanh(dl_dense(ins[k][0], 4)); h[1] = dl_tanh(dl_dense(ins[k][1], 4));
        d = dl_sub(dl_dense(dl_concat(h, 2), 3), ins[k][2]);
        outs[k] = dl_reduce_mean(dl_mul(d, d), NULL, 0, 0);
        opt[k] = dl_sgd(nets[k], 0.1f, 0.9f);
    }
    if (!outs[0] || !outs[1] || dl_cuda_use(b, 0)) { CHECK(0, "setup: %s %s", dl_net_error(a), dl_net_error(b)); goto done; }
    opt[1] = dl_optim_new(b, &opt[0]->d);
    for (s = 0; s < 2; s++) {
        for (k = 0; k < 2; k++)
            CHECK(dl_train_step_multi(nets[k], opt[k], outs[k], 3, ins[k], xs, DL_LOSS_MEAN, NULL, 4, &loss[k]) == DL_OK,
                  "step %d on %s: %s", s, k ? "gpu" : "cpu", dl_net_error(nets[k]));
        CHECK(test_close(loss[1], loss[0], 1e-6, 1e-5), "step %d: loss gpu %.9g cpu %.9g", s, loss[1], loss[0]);
    }
    compare_params("two inputs, layer-built loss", a, b, 1);
done:
    free(xa); free(xb); free(t);
    dl_net_free(a); dl_net_free(b);
}

static void test_conv_chunks(void) {   /* a scratch limit of a few samples: the batch runs in chunks, the last one short */
    conv_arg a = { 3, 7, 6, 5, 3, 3, 1, 1, 1, 1, 1, 0, 0, 0 };
    setenv("DL_CUDA_CONV_SCRATCH", "2700", 1);   /* 1344 floats a sample */
    parity("conv in chunks of 2 samples, batch 5", build_conv, &a, 5);
    unsetenv("DL_CUDA_CONV_SCRATCH");
}

/* Inference fusion (dl_fused): dl_predict on the GPU folds an eval
   batchnorm and an activation into the conv or dense before them, as the CPU
   does, in both convolution paths: conv + bn + relu; grouped, bias-free
   conv + bn + prelu; a conv read twice (not fused) and conv + hard_swish
   without batchnorm; depthwise conv + bn + clip; dense + bn + leaky_relu.
   Running statistics are moved off 0 and 1 by training forwards first. The
   same net with fusion off (dl_backend.fuse 0) agrees and, under the
   emulation, launches more kernels. */
#ifdef DLC_EMULATE
long dlc_emu_kernel_launches(void);
#define KERNEL_LAUNCHES() dlc_emu_kernel_launches()
#else
#define KERNEL_LAUNCHES() 0L
#endif
static dl_layer *fused_cnn(dl_net *net) {
    dl_layer *x = dl_input(net, 3, 11, 10), *h, *skip;
    dl_conv_desc g = { .filters = 20, .kernel = 5, .stride = 2, .pad = 2, .groups = 4, .no_bias = 1 },
                 dw = { .filters = 20, .kernel = 3, .pad = 1, .groups = 20 };
    h = dl_relu(dl_batchnorm(dl_conv2d(x, 16, 3, 1, 1)));
    h = dl_prelu(dl_batchnorm(dl_conv2d_ex(h, &g)));
    skip = dl_conv2d(h, 20, 3, 1, 1);
    h = dl_add(dl_hard_swish(dl_conv2d(skip, 20, 3, 1, 1)), skip);
    h = dl_maxpool2d(dl_clip(dl_batchnorm(dl_conv2d_ex(h, &dw)), -0.5f, 0.5f), 2, 2);
    h = dl_leaky_relu(dl_batchnorm(dl_dense(h, 12)), 0.1f);
    return dl_dense(h, 5);
}
static void test_fused_predict(void) {
    static const char *const path[2] = { "im2col", "implicit" };
    const int n = 5;
    int k, s;
    for (k = 0; k < 2; k++) {
        dl_net *a = dl_net_new(), *b = dl_net_new();
        dl_layer *oa, *ob;
        float *x, *ya = NULL, *yf = NULL;
        const float *y;
        long fused, plain;
        setenv("DL_CUDA_CONV", path[k], 1);
        dl_net_seed(a, 9); dl_net_seed(b, 9);
        oa = fused_cnn(a); ob = fused_cnn(b);
        if (!oa || !ob || dl_cuda_use(b, 0) != DL_OK) { CHECK(0, "%s: setup: %s", path[k], dl_net_error(b)); goto next; }
        CHECK(dl_net_backend(b)->fuse == 1, "%s: the CUDA backend does not fuse by default", path[k]);
        x = random_floats((size_t)n * dl_layer_size(dl_net_layer(a, 0)));
        for (s = 0; s < 3; s++) {
            dl_net_seed(a, 11 + s); dl_net_seed(b, 11 + s);
            CHECK(dl_forward(a, oa, x, n, 1) && dl_forward(b, ob, x, n, 1), "%s: training forward: %s", path[k], dl_net_error(b));
        }
        y = dl_predict(a, oa, x, n);
        CHECK(y != NULL, "%s: cpu predict: %s", path[k], dl_net_error(a));
        ya = copy_floats(y, (size_t)n * 5);
        fused = KERNEL_LAUNCHES();
        y = dl_predict(b, ob, x, n);
        fused = KERNEL_LAUNCHES() - fused;
        CHECK(y != NULL, "%s: gpu predict: %s", path[k], dl_net_error(b));
        if (y && ya) compare(path[k], "fused predict", y, ya, (size_t)n * 5);
        yf = y ? copy_floats(y, (size_t)n * 5) : NULL;
        dl_net_backend(b)->fuse = 0;
        plain = KERNEL_LAUNCHES();
        y = dl_predict(b, ob, x, n);
        plain = KERNEL_LAUNCHES() - plain;
        CHECK(y != NULL, "%s: gpu predict unfused: %s", path[k], dl_net_error(b));
        if (y && ya) compare(path[k], "unfused predict", y, ya, (size_t)n * 5);
        if (y && yf) compare(path[k], "fused against unfused", yf, y, (size_t)n * 5);
#ifdef DLC_EMULATE      /* 4 batchnorms (statistics and apply) and 5 activations fewer, 4 folds more */
        CHECK(plain - fused == 9, "%s: fused predict launched %ld kernels, unfused %ld", path[k], fused, plain);
#endif
        free(x);
    next:
        unsetenv("DL_CUDA_CONV");
        free(ya); free(yf);
        dl_net_free(a); dl_net_free(b);
    }
    setenv("DL_CUDA_FUSE", "0", 1);
    {
        dl_status st;
        dl_backend *be = dl_cuda_backend_new(0, &st);
        CHECK(be && be->fuse == 0, "DL_CUDA_FUSE=0: the backend still fuses");
        if (be) be->destroy(be);
    }
    unsetenv("DL_CUDA_FUSE");
}

/* CUDA graphs (DL_CUDA_GRAPHS=1, read when a backend starts): two GPU nets
   built alike, one capturing its training steps and predictions, must
   agree bit for bit (under the emulation a replayed graph runs the very
   launches it recorded), through Adam's changing step, dropout's new seed
   each step, a batch-size change and a weight load; under the emulation,
   each step and prediction is one graph launch, and the graph is updated in
   place rather than rebuilt while the launches stay the same. */
#ifdef DLC_EMULATE
long dlc_emu_graph_launches(void);
long dlc_emu_graph_instantiations(void);
#define GRAPH_LAUNCHES() dlc_emu_graph_launches()
#define GRAPH_BUILDS() dlc_emu_graph_instantiations()
#else
#define GRAPH_LAUNCHES() 0L
#define GRAPH_BUILDS() 0L
#endif
static dl_layer *graph_cnn(dl_net *net) {
    dl_layer *x = dl_input(net, 1, 12, 12);
    dl_layer *h = dl_maxpool2d(dl_prelu(dl_batchnorm(dl_conv2d(x, 8, 3, 1, 1))), 2, 2);
    h = dl_dropout(dl_relu(dl_batchnorm(dl_conv2d(h, 16, 3, 1, 1))), 0.25f);
    return dl_dense(dl_flatten(h), 5);
}
/* Bit for bit under the emulation; on a GPU within the parity tolerance, since cuBLAS may pick
   other algorithms with the workspace a capture needs. */
#ifdef DLC_EMULATE
#define GRAPH_SAME(what, x, y, n) CHECK(!memcmp(x, y, (n) * sizeof(float)), "graphs: %s differ", what)
#else
#define GRAPH_SAME(what, x, y, n) compare("graphs", what, x, y, n)
#endif
static void same_bits(const char *what, dl_net *a, dl_net *b) {
    float *wa = fetch(a, a->dw, a->nw), *wb = fetch(b, b->dw, b->nw), *sa = fetch(a, a->ds, a->ns), *sb = fetch(b, b->ds, b->ns);
    char label[128];
    CHECK(a->nw == b->nw && a->ns == b->ns, "graphs: %s: nets differ", what);
    snprintf(label, sizeof label, "%s: parameters", what);
    GRAPH_SAME(label, wa, wb, a->nw);
    snprintf(label, sizeof label, "%s: running statistics", what);
    GRAPH_SAME(label, sa, sb, a->ns);
    free(wa); free(wb); free(sa); free(sb);
}
static void graph_steps(const char *what, dl_net *net[2], dl_optim *opt[2], dl_layer *out[2], const float *x, const int *labels,
                        int n, int steps) {
    int s, k;
    for (s = 0; s < steps; s++) {
        float loss[2] = { -1, -2 };
        long before = GRAPH_LAUNCHES();
        for (k = 0; k < 2; k++)
            CHECK(dl_train_step(net[k], opt[k], out[k], x, labels, n, &loss[k]) == DL_OK, "graphs: %s: step %d: %s", what, s,
                  dl_net_error(net[k]));
        GRAPH_SAME(what, &loss[0], &loss[1], 1);
#ifdef DLC_EMULATE
        CHECK(s == 0 || GRAPH_LAUNCHES() - before == 1, "graphs: %s: step %d: %ld graph launches", what, s, GRAPH_LAUNCHES() - before);
#else
        (void)before;
#endif
    }
    same_bits(what, net[0], net[1]);
}
static void graph_predict(const char *what, dl_net *net[2], dl_layer *out[2], const float *x, int n) {
    const float *y;
    float *y0;
    long before = GRAPH_LAUNCHES();
    y = dl_predict(net[0], out[0], x, n);
    CHECK(y != NULL, "graphs: %s: predict: %s", what, dl_net_error(net[0]));
    if (!y) return;
#ifdef DLC_EMULATE
    CHECK(GRAPH_LAUNCHES() - before == 1, "graphs: %s: predict: %ld graph launches", what, GRAPH_LAUNCHES() - before);
#else
    (void)before;
#endif
    y0 = copy_floats(y, (size_t)n * 5);
    y = dl_predict(net[1], out[1], x, n);
    CHECK(y != NULL, "graphs: %s: predict: %s", what, dl_net_error(net[1]));
    if (y) GRAPH_SAME(what, y0, y, (size_t)n * 5);
    free(y0);
}
static void test_graphs(void) {
    dl_net *net[2] = { dl_net_new(), dl_net_new() };
    dl_layer *out[2];
    dl_optim *opt[2] = { NULL, NULL };
    dl_optim_desc d;
    float *x = random_floats(6 * 144);
    int labels[6] = { 0, 3, 1, 4, 2, 3 }, k;
    long builds;
    char path[64];
    memset(&d, 0, sizeof d);
    d.kind = DL_ADAM; d.lr = 0.01f;
    for (k = 0; k < 2; k++) {
        dl_net_seed(net[k], 21);
        out[k] = graph_cnn(net[k]);
        if (!k) setenv("DL_CUDA_GRAPHS", "1", 1);
        if (!out[k] || dl_cuda_use(net[k], 0) != DL_OK || !(opt[k] = dl_optim_new(net[k], &d))) {
            CHECK(0, "graphs: setup: %s", dl_net_error(net[k]));
            unsetenv("DL_CUDA_GRAPHS");
            goto done;
        }
        unsetenv("DL_CUDA_GRAPHS");
    }
    graph_steps("batch 6", net, opt, out, x, labels, 6, 4);
    builds = GRAPH_BUILDS();
    graph_steps("batch 6 again", net, opt, out, x, labels, 6, 3);
    CHECK(GRAPH_BUILDS() == builds, "graphs: the same step's graph was rebuilt %ld times, not updated", GRAPH_BUILDS() - builds);
    graph_predict("predict batch 6", net, out, x, 6);
    graph_predict("predict batch 6 again", net, out, x, 6);
    graph_steps("batch 4", net, opt, out, x, labels, 4, 3);
    graph_predict("predict batch 3", net, out, x, 3);
    snprintf(path, sizeof path, "/tmp/dl_test_graphs_%ld.dl", (long)getpid());
    CHECK(dl_net_save(net[1], path) == DL_OK, "graphs: save: %s", dl_net_error(net[1]));
    graph_steps("batch 6 before the load", net, opt, out, x, labels, 6, 2);
    for (k = 0; k < 2; k++) CHECK(dl_net_load_weights(net[k], path) == DL_OK, "graphs: load: %s", dl_net_error(net[k]));
    remove(path);
    same_bits("after the load", net[0], net[1]);
    graph_steps("batch 6 after the load", net, opt, out, x, labels, 6, 2);
    graph_predict("predict after the load", net, out, x, 6);
done:
    free(x);
    dl_net_free(net[0]); dl_net_free(net[1]);
}

static void test_reference_cnn(void) {
    net_case(N_REFERENCE, quick ? 2 : 5, "reference CNN");
}

/* ---- losses: whole training steps ---- */
/* mse: 0 cross-entropy, 1 mean squared error, 2 negative log-likelihood, 3 a scalar output's mean */
static void loss_case(const char *label, int mse, int kind, int n) {
    uint64_t outer = rng_state;         /* draws of its own: tests added before it cannot move its data (the reference
                                           CNN's batch 8 lies near its tolerance for some draws: maxpool ties) */
    dl_net *a = dl_net_new(), *b = dl_net_new();
    dl_layer *oa, *ob;
    dl_optim_desc d = sgd_desc(0.1f, 0.9f, 0);
    dl_optim *pa, *pb;
    float *x, *t, la = -1, lb = -2;
    int *labels, i, s, classes;
    rng_state = 1000 + 10 * (uint64_t)kind + (uint64_t)n;
    dl_net_seed(a, 3); dl_net_seed(b, 3);
    oa = build_net(a, &kind); ob = build_net(b, &kind);
    pa = dl_optim_new(a, &d);
    if (!oa || !ob || !pa || dl_cuda_use(b, 0)) { CHECK(0, "%s: setup: %s %s", label, dl_net_error(a), dl_net_error(b)); goto done; }
    pb = dl_optim_new(b, &d);               /* made on the GPU */
    classes = dl_layer_size(oa);
    x = random_floats((size_t)n * dl_layer_size(dl_net_layer(a, 0)));
    t = random_floats((size_t)n * classes);
    labels = (int *)malloc((size_t)n * sizeof(int));
    for (i = 0; i < n; i++) labels[i] = (int)((frand() + 1.0f) * 0.5f * classes) % classes;
    for (s = 0; s < 3; s++) {       /* the first step strictly; then differences compound */
        int ra = mse == 1 ? dl_train_step_mse(a, pa, oa, x, t, n, &la) : mse == 2 ? dl_train_step_nll(a, pa, oa, x, labels, n, &la)
               : mse == 3 ? dl_train_step_scalar(a, pa, oa, x, n, &la) : dl_train_step(a, pa, oa, x, labels, n, &la);
        int rb = mse == 1 ? dl_train_step_mse(b, pb, ob, x, t, n, &lb) : mse == 2 ? dl_train_step_nll(b, pb, ob, x, labels, n, &lb)
               : mse == 3 ? dl_train_step_scalar(b, pb, ob, x, n, &lb) : dl_train_step(b, pb, ob, x, labels, n, &lb);
        CHECK(ra == DL_OK && rb == DL_OK, "%s: step %d: %s / %s", label, s, dl_net_error(a), dl_net_error(b));
        CHECK(test_close(lb, la, 1e-6, s ? 1e-4 : 1e-5), "%s: step %d: loss gpu %.9g cpu %.9g", label, s, lb, la);
        if (s == 0) compare_params(label, a, b, 1);
    }
    loose = 10;
    compare_params(label, a, b, 1);
    loose = 1;
    free(x); free(t); free(labels);
done:
    rng_state = outer;
    dl_net_free(a); dl_net_free(b);
}
static void test_losses(void) {
    loss_case("cross-entropy, dense 7->5, batch 3", 0, N_DENSE, 3);
    loss_case("nll of log_softmax, dense 7->5, batch 4", 2, N_LOG_SOFTMAX, 4);
    loss_case("a scalar output's mean (dl_train_step_scalar), batch 5", 3, N_SCALAR, 5);
    loss_case("cross-entropy, batch 1", 0, N_DENSE, 1);
    loss_case("cross-entropy, batch 300 (more samples than threads)", 0, N_ADD3, 300);
    loss_case("cross-entropy through batchnorm, batch 6", 0, N_BN_DENSE, 6);
    loss_case("mse, dense, batch 3", 1, N_DENSE, 3);
    loss_case("mse over 1050 values (several blocks)", 1, N_MATMUL3, 35);
    loss_case("cross-entropy on the reference CNN, batch 8", 0, N_REFERENCE, quick ? 4 : 8);
    loss_case("cross-entropy, residual add and concat (the training plan reuses memory), batch 5", 0, N_RES_CONCAT, 5);
}

/* ---- optimizers: the same gradients in, the same parameters and state out ---- */
static dl_layer *optim_net(dl_net *net) {
    dl_layer *x = dl_input(net, 3, 6, 5);
    return dl_dense(dl_prelu(dl_batchnorm(dl_conv2d(x, 4, 3, 1, 1))), 7);
}
static void set_grads(dl_net *net, uint64_t seed, float bad) {
    float *g = dl_net_grads(net);
    size_t i;
    rng_state = seed;
    for (i = 0; i < dl_net_param_floats(net); i++) {     /* well away from 0: no division by tiny numbers */
        float u = frand();
        g[i] = u < 0 ? u - 0.05f : u + 0.05f;
    }
    if (bad != 0) g[dl_net_param_floats(net) / 2] = bad;
}
static void optim_case(const char *label, dl_optim_desc d) {
    dl_net *a = dl_net_new(), *b = dl_net_new();
    dl_optim *pa, *pb;
    dl_param *frozen;
    float *w0 = NULL;
    int s, k;
    char what[64];
    optim_net(a); optim_net(b);
    dl_net_find_param(a, "batchnorm_1.weight")->frozen = 1;     /* two ranges around it */
    dl_net_find_param(b, "batchnorm_1.weight")->frozen = 1;
    set_grads(a, 99, 0); set_grads(b, 99, 0);
    w0 = copy_floats(dl_net_params(a), dl_net_param_floats(a));
    pa = dl_optim_new(a, &d);
    if (!pa || dl_cuda_use(b, 0) || !(pb = dl_optim_new(b, &d))) { CHECK(0, "%s: setup: %s", label, dl_net_error(b)); goto done; }
    for (s = 0; s < 3; s++) {
        CHECK(dl_optim_step(pa) == DL_OK, "%s: cpu step %d: %s", label, s, dl_net_error(a));
        CHECK(dl_optim_step(pb) == DL_OK, "%s: gpu step %d: %s", label, s, dl_net_error(b));
    }
    CHECK(dl_net_sync(b) == DL_OK, "%s: sync", label);
    compare(label, "parameters", dl_net_params(b), dl_net_params(a), dl_net_param_floats(a));
    compare(label, "gradients (clipped in place)", dl_net_grads(b), dl_net_grads(a), dl_net_param_floats(a));
    for (k = 0; k < 3; k++) {
        float *h;
        CHECK((pa->s[k] == NULL) == (pb->s[k] == NULL), "%s: state %d exists on one side only", label, k);
        if (!pa->s[k] || !pb->s[k]) continue;
        h = fetch(b, pb->s[k], pb->n);
        snprintf(what, sizeof what, "state buffer %d", k);
        compare(label, what, h, pa->s[k], pa->n);
        free(h);
    }
    frozen = dl_net_find_param(b, "batchnorm_1.weight");
    CHECK(!memcmp(frozen->data, w0 + frozen->offset, (size_t)frozen->size * sizeof(float)), "%s: a frozen parameter changed", label);
done:
    free(w0);
    dl_net_free(a); dl_net_free(b);
}
static void test_optimizers(void) {
    dl_optim_desc d;
#define OPT(label, ...) do { memset(&d, 0, sizeof d); __VA_ARGS__; optim_case(label, d); } while (0)
    OPT("sgd", d.kind = DL_SGD; d.lr = 0.1f);
    OPT("sgd momentum, weight decay", d.kind = DL_SGD; d.lr = 0.1f; d.momentum = 0.9f; d.weight_decay = 0.01f);
    OPT("sgd nesterov", d.kind = DL_SGD; d.lr = 0.05f; d.momentum = 0.8f; d.nesterov = 1);
    OPT("sgd momentum, dampening 0.3", d.kind = DL_SGD; d.lr = 0.1f; d.momentum = 0.9f; d.dampening = 0.3f);
    OPT("sgd clipped to norm 0.5", d.kind = DL_SGD; d.lr = 0.1f; d.momentum = 0.5f; d.clip_norm = 0.5f);
    OPT("sgd, clip norm not reached", d.kind = DL_SGD; d.lr = 0.1f; d.clip_norm = 1e6f);
    OPT("adam", d.kind = DL_ADAM);
    OPT("adam, L2 weight decay", d.kind = DL_ADAM; d.lr = 3e-3f; d.weight_decay = 0.01f);
    OPT("adam clipped to norm 1", d.kind = DL_ADAM; d.clip_norm = 1.0f);
    OPT("adamw", d.kind = DL_ADAMW; d.lr = 2e-3f; d.weight_decay = 0.05f);
    OPT("adamw betas 0.5 0.9", d.kind = DL_ADAMW; d.beta1 = 0.5f; d.beta2 = 0.9f; d.eps = 1e-6f);
    OPT("rmsprop", d.kind = DL_RMSPROP);
    OPT("rmsprop momentum", d.kind = DL_RMSPROP; d.momentum = 0.9f);
    OPT("rmsprop centered", d.kind = DL_RMSPROP; d.centered = 1);
    OPT("rmsprop centered, momentum, decay", d.kind = DL_RMSPROP; d.centered = 1; d.momentum = 0.7f; d.weight_decay = 0.01f; d.alpha = 0.9f);
#undef OPT
}
/* A NaN or inf gradient: DL_ERR_NUMERIC, and no parameter, gradient or state changes. */
/* A NaN or infinite gradient, and (i 2) finite gradients whose update at lr
   3e38 would make a weight infinite: the step fails and changes nothing. */
static void test_optim_nonfinite(void) {
    float bads[3];
    int i, k;
    bads[0] = NAN; bads[1] = INFINITY; bads[2] = 30.0f;
    for (i = 0; i < 3; i++) {
        dl_net *b = dl_net_new();
        dl_optim_desc d;
        dl_optim *p;
        float *w0, *g0;
        size_t nw;
        optim_net(b);
        set_grads(b, 5, bads[i]);
        nw = dl_net_param_floats(b);
        w0 = copy_floats(dl_net_params(b), nw);
        g0 = copy_floats(dl_net_grads(b), nw);
        memset(&d, 0, sizeof d);
        d.kind = i == 2 ? DL_SGD : i ? DL_RMSPROP : DL_ADAM; d.clip_norm = i == 2 ? 0 : 0.5f; d.momentum = i ? 0.9f : 0;
        if (i == 2) d.lr = 3e38f;
        p = dl_optim_new(b, &d);
        if (!p || dl_cuda_use(b, 0)) { CHECK(0, "setup: %s", dl_net_error(b)); dl_net_free(b); free(w0); free(g0); continue; }
        CHECK(dl_optim_step(p) == DL_ERR_NUMERIC, "%s: step did not fail: %s", i == 2 ? "overflowing update" : i ? "inf gradient" : "NaN gradient", dl_net_error(b));
        CHECK(strstr(dl_net_error(b), i == 2 ? "the update would make" : "not finite") != NULL, "message: %s", dl_net_error(b));
        CHECK(dl_net_sync(b) == DL_OK, "sync");
        CHECK(!memcmp(dl_net_params(b), w0, nw * sizeof(float)), "parameters changed");
        CHECK(!memcmp(dl_net_grads(b), g0, nw * sizeof(float)), "gradients changed (clipping ran?)");
        for (k = 0; k < 3; k++)
            if (p->s[k]) {
                float *h = fetch(b, p->s[k], p->n);
                size_t j, nz = 0;
                for (j = 0; j < p->n; j++) nz += h[j] != 0;
                CHECK(nz == 0, "optimizer state %d changed in %lu places", k, (unsigned long)nz);
                free(h);
            }
        CHECK(p->step == 0, "the step count moved");
        dl_net_free(b);
        free(w0); free(g0);
    }
}

/* ---- files, moving back, contexts ---- */
static dl_layer *small_cnn(dl_net *net) {
    dl_layer *x = dl_input(net, 1, 12, 12);
    dl_layer *h = dl_maxpool2d(dl_relu(dl_batchnorm(dl_conv2d(x, 8, 3, 1, 1))), 2, 2);
    h = dl_maxpool2d(dl_relu(dl_conv2d(h, 16, 3, 1, 1)), 2, 2);
    return dl_dense(dl_dropout(dl_flatten(h), 0.1f), 4);
}
static void make_batch(float *x, int *y, int n) {
    int i;
    for (i = 0; i < n * 144; i++) x[i] = frand();
    for (i = 0; i < n; i++) y[i] = (int)((frand() + 1.0f) * 2.0f) % 4;
}
static void test_files_and_moving(void) {
    enum { N = 16 };
    static float x[N * 144];
    static int y[N];
    dl_net *a = dl_net_new(), *b = dl_net_new(), *c = NULL, *d = NULL, *e = NULL;
    dl_layer *la, *lb, *lc, *ld, *le;
    dl_optim_desc od = sgd_desc(0.05f, 0.9f, 1e-4f);
    dl_optim *pa, *pb, *pd = NULL, *pe = NULL;
    dl_status st;
    dl_backend *gpu;
    float *pred_b = NULL;
    const float *p;
    int s;
    make_batch(x, y, N);
    dl_net_seed(a, 21); dl_net_seed(b, 21);
    la = small_cnn(a); lb = small_cnn(b);
    pa = dl_optim_new(a, &od); pb = dl_optim_new(b, &od);
    gpu = dl_cuda_backend_new(0, &st);          /* the long way round: backend, then move */
    CHECK(gpu != NULL, "dl_cuda_backend_new: %s", st.msg);
    if (!gpu || dl_net_to_backend(b, gpu)) { CHECK(0, "move: %s", dl_net_error(b)); goto done; }
    for (s = 0; s < 3; s++) {
        CHECK(dl_train_step(a, pa, la, x, y, N, NULL) == DL_OK, "cpu: %s", dl_net_error(a));
        CHECK(dl_train_step(b, pb, lb, x, y, N, NULL) == DL_OK, "gpu: %s", dl_net_error(b));
    }
    loose = 10;
    compare_params("3 steps with dropout and batchnorm", a, b, 0);
    loose = 1;

    CHECK(dl_net_save(b, "build/t_cuda.dl") == DL_OK, "save a GPU net: %s", dl_net_error(b));
    p = dl_predict(b, lb, x, N);
    CHECK(p != NULL, "predict: %s", dl_net_error(b));
    if (!p) goto done;
    pred_b = copy_floats(p, N * 4);
    c = dl_net_load("build/t_cuda.dl", &st);
    CHECK(c != NULL, "load: %s", st.msg);
    if (c && (lc = dl_net_layer(c, -1)) && (p = dl_predict(c, lc, x, N)))
        compare("saved from the GPU, loaded on the CPU", "predictions", pred_b, p, N * 4);

    /* a checkpoint continues alike on the CPU and, moved again, on the GPU */
    CHECK(dl_checkpoint_save(b, pb, "build/t_cuda.ckpt") == DL_OK, "checkpoint: %s", dl_net_error(b));
    d = dl_checkpoint_load("build/t_cuda.ckpt", &pd, &st);
    e = dl_checkpoint_load("build/t_cuda.ckpt", &pe, &st);
    CHECK(d && e && pd && pe, "checkpoint load: %s", st.msg);
    if (!d || !e || !pd || !pe) goto done;
    CHECK(dl_cuda_use(e, 0) == DL_OK, "checkpoint to the GPU: %s", dl_net_error(e));
    ld = dl_net_layer(d, -1); le = dl_net_layer(e, -1);
    dl_net_seed(b, 8); dl_net_seed(d, 8); dl_net_seed(e, 8);
    CHECK(dl_train_step(b, pb, lb, x, y, N, NULL) == DL_OK, "b: %s", dl_net_error(b));
    CHECK(dl_train_step(d, pd, ld, x, y, N, NULL) == DL_OK, "d: %s", dl_net_error(d));
    CHECK(dl_train_step(e, pe, le, x, y, N, NULL) == DL_OK, "e: %s", dl_net_error(e));
    compare_params("checkpoint resumed on the CPU vs the GPU", d, e, 1);
    compare_params("checkpoint resumed on the GPU vs the original", b, e, 1);

    /* weights from a CPU file into a GPU net */
    CHECK(dl_net_save(a, "build/t_cuda_a.dl") == DL_OK, "save: %s", dl_net_error(a));
    CHECK(dl_net_load_weights(b, "build/t_cuda_a.dl") == DL_OK, "load weights into a GPU net: %s", dl_net_error(b));
    free(pred_b);
    pred_b = NULL;
    if ((p = dl_predict(a, la, x, N)) != NULL) {
        pred_b = copy_floats(p, N * 4);
        p = dl_predict(b, lb, x, N);
        CHECK(p != NULL, "predict: %s", dl_net_error(b));
        if (p) compare("weights loaded into a GPU net", "predictions", p, pred_b, N * 4);
    }

    /* back to the CPU: the same predictions, and training goes on */
    free(pred_b);
    p = dl_predict(b, lb, x, N);
    pred_b = p ? copy_floats(p, N * 4) : NULL;
    CHECK(dl_net_to_backend(b, NULL) == DL_OK, "back to the CPU: %s", dl_net_error(b));
    CHECK(!strcmp(dl_net_backend(b)->name, "cpu"), "still on %s", dl_net_backend(b)->name);
    p = dl_predict(b, lb, x, N);
    if (p && pred_b) compare("moved back to the CPU", "predictions", p, pred_b, N * 4);
    CHECK(dl_train_step(b, pb, lb, x, y, N, NULL) == DL_OK, "training after moving back: %s", dl_net_error(b));
    CHECK(dl_dense(lb, 2) != NULL, "adding a layer after moving back: %s", dl_net_error(b));
done:
    free(pred_b);
    dl_net_free(a); dl_net_free(b); dl_net_free(c); dl_net_free(d); dl_net_free(e);
    remove("build/t_cuda.dl"); remove("build/t_cuda.ckpt"); remove("build/t_cuda_a.dl");
}

/* ---- contexts and threads on one GPU net ---- */
/* Within float rounding of want: each context has its own buffers, and cuBLAS
   may choose its kernels by alignment; a race would give garbage. */
static int near(const float *y, const float *want, int count) {
    int i;
    for (i = 0; i < count; i++) if (!(fabs(y[i] - want[i]) <= 1e-5 * (1 + fabs(want[i])))) return 0;
    return 1;
}
typedef struct pred_job { dl_net *net; dl_layer *out; const float *x, *want; int n, rounds, bad; } pred_job;
static void *predict_thread(void *p) {
    pred_job *j = (pred_job *)p;
    dl_ctx *c = dl_ctx_new(j->net);
    int r;
    for (r = 0; r < j->rounds; r++) {
        const float *y = c ? dl_ctx_predict(c, j->out, j->x, j->n) : NULL;
        if (!y || !near(y, j->want, j->n * 4)) j->bad++;
    }
    dl_ctx_free(c);
    return NULL;
}
static void test_contexts_and_threads(void) {
    enum { N = 8, T = 4 };
    static float x[N * 144];
    static int y[N];
    dl_net *b = dl_net_new();
    dl_layer *lb;
    dl_ctx *ctx;
    const float *p;
    float *want = NULL;
    pthread_t th[T];
    pred_job jobs[T];
    int i;
    make_batch(x, y, N);
    lb = small_cnn(b);
    if (!lb || dl_cuda_use(b, 0)) { CHECK(0, "setup: %s", dl_net_error(b)); goto done; }
    p = dl_predict(b, lb, x, N);
    CHECK(p != NULL, "predict: %s", dl_net_error(b));
    if (!p) goto done;
    want = copy_floats(p, N * 4);
    ctx = dl_ctx_new(b);
    p = ctx ? dl_ctx_predict(ctx, lb, x, N) : NULL;
    CHECK(p && near(p, want, N * 4), "a user context predicts differently: %s", ctx ? dl_ctx_error(ctx) : "");
    dl_ctx_free(ctx);
    for (i = 0; i < T; i++) {
        jobs[i].net = b; jobs[i].out = lb; jobs[i].x = x; jobs[i].want = want;
        jobs[i].n = N; jobs[i].rounds = quick ? 3 : 10; jobs[i].bad = 0;
        CHECK(pthread_create(&th[i], NULL, predict_thread, &jobs[i]) == 0, "pthread_create");
    }
    for (i = 0; i < T; i++) {
        pthread_join(th[i], NULL);
        CHECK(jobs[i].bad == 0, "thread %d: %d of %d predictions differ or failed", i, jobs[i].bad, jobs[i].rounds);
    }
done:
    free(want);
    dl_net_free(b);
}

/* ---- the error paths of a training step on the GPU ---- */
static void test_train_errors(void) {
    enum { N = 6 };
    static float x[N * 144];
    static int y[N];
    dl_net *b = dl_net_new(), *c = dl_net_new(), *f = dl_net_new();
    dl_layer *lb, *lc, *lf;
    dl_optim *pb, *pc;
    dl_status st;
    float *w0 = NULL, *s0 = NULL, loss = 0;
    int bad[N];
    size_t nw, ns;
    make_batch(x, y, N);
    lb = small_cnn(b);
    pb = dl_adam(b, 1e-3f);
    if (!lb || !pb || dl_cuda_use(b, 0)) { CHECK(0, "setup: %s", dl_net_error(b)); goto done; }
    CHECK(dl_train_step(b, pb, lb, x, y, N, &loss) == DL_OK && loss > 0, "first step: %s", dl_net_error(b));
    CHECK(dl_net_sync(b) == DL_OK, "sync");
    nw = dl_net_param_floats(b);
    ns = b->ns;
    w0 = copy_floats(dl_net_params(b), nw);
    s0 = copy_floats(b->s, ns);

    memcpy(bad, y, sizeof bad);
    bad[3] = 4;                                 /* 4 classes: out of range */
    CHECK(dl_train_step(b, pb, lb, x, bad, N, NULL) == DL_ERR_ARG, "a bad label was accepted");
    CHECK(strstr(dl_net_error(b), "out of range") != NULL, "message: %s", dl_net_error(b));
    x[7] = NAN;                                 /* a NaN loss: nothing changes, statistics included */
    CHECK(dl_train_step(b, pb, lb, x, y, N, &loss) == DL_ERR_NUMERIC, "a NaN input trained: %s", dl_net_error(b));
    x[7] = 0.5f;
    CHECK(dl_net_sync(b) == DL_OK, "sync");
    CHECK(!memcmp(dl_net_params(b), w0, nw * sizeof(float)), "parameters changed by failed steps");
    CHECK(!memcmp(b->s, s0, ns * sizeof(float)), "running statistics changed by failed steps");
    CHECK(dl_train_step(b, pb, lb, x, y, N, &loss) == DL_OK && loss == loss, "training after errors: %s", dl_net_error(b));

    CHECK(dl_dense(lb, 3) == NULL && strstr(dl_net_error(b), "cuda"), "adding a layer to a GPU net: %s", dl_net_error(b));
    CHECK(dl_cuda_use(b, 0) == DL_ERR_ARG, "moving a GPU net to a GPU again");
    CHECK(!strcmp(dl_net_backend(b)->name, "cuda"), "the net left the GPU");
    CHECK(dl_train_step(b, pb, lb, x, y, N, NULL) == DL_OK, "training after the refused move: %s", dl_net_error(b));
    CHECK(dl_cuda_backend_new(-1, &st) == NULL && st.code == DL_ERR_ARG && st.msg[0], "device -1: %d %s", st.code, st.msg);
    CHECK(dl_cuda_backend_new(1 << 20, &st) == NULL && st.code == DL_ERR_ARG, "device 2^20: %d %s", st.code, st.msg);

    /* batchnorm needs two values per channel; backward needs a forward */
    lc = dl_batchnorm(dl_dense(dl_input(c, 4, 0, 0), 3));
    pc = dl_sgd(c, 0.1f, 0);
    if (!lc || !pc || dl_cuda_use(c, 0)) { CHECK(0, "setup: %s", dl_net_error(c)); goto done; }
    CHECK(dl_backward(c, lc, x) == DL_ERR_ARG, "backward before forward");
    CHECK(dl_train_step(c, pc, lc, x, y, 1, NULL) == DL_ERR_SHAPE, "batchnorm on one value: %s", dl_net_error(c));
    CHECK(dl_train_step(c, pc, lc, x, y, 2, NULL) == DL_OK, "then batch 2: %s", dl_net_error(c));

    /* a custom layer whose callback fails */
    lf = dl_dense(square_layer(dl_input(f, 5, 0, 0), 1), 2);
    if (!lf || dl_cuda_use(f, 0)) { CHECK(0, "setup: %s", dl_net_error(f)); goto done; }
    CHECK(dl_predict(f, lf, x, 2) == NULL && strstr(dl_net_error(f), "callback"), "failing callback: %s", dl_net_error(f));
done:
    free(w0); free(s0);
    dl_net_free(b); dl_net_free(c); dl_net_free(f);
}

/* ---- the step's checks on the device (dl_backend.guard) ----
   The loss and the statistics are checked on the device and the optimizer
   reads that verdict and its own, so a step waits for the device once, at
   its end. A failure must still change nothing (parameters, statistics,
   optimizer state, step count) and give the CPU's message; the next step
   must train as the CPU's does. */
#ifdef DLC_EMULATE
long dlc_emu_stream_waits(void);
#define STREAM_WAITS() dlc_emu_stream_waits()
#else
#define STREAM_WAITS() 0L
#endif
typedef struct guard_snap { float *w, *s, *st[3]; int step; } guard_snap;
static void guard_take(dl_net *b, dl_optim *p, guard_snap *g) {
    int k;
    CHECK(dl_net_sync(b) == DL_OK, "sync: %s", dl_net_error(b));
    g->w = copy_floats(dl_net_params(b), dl_net_param_floats(b));
    g->s = copy_floats(b->s, b->ns);
    for (k = 0; k < 3; k++) g->st[k] = p->s[k] ? fetch(b, p->s[k], p->n) : NULL;
    g->step = p->step;
}
static void guard_same(const char *label, dl_net *b, dl_optim *p, const guard_snap *g) {
    guard_snap now;
    int k;
    guard_take(b, p, &now);
    CHECK(!memcmp(now.w, g->w, dl_net_param_floats(b) * sizeof(float)), "%s: parameters changed", label);
    CHECK(!memcmp(now.s, g->s, b->ns * sizeof(float)), "%s: statistics changed", label);
    for (k = 0; k < 3; k++)
        if (g->st[k]) CHECK(!memcmp(now.st[k], g->st[k], p->n * sizeof(float)), "%s: optimizer state %d changed", label, k);
    CHECK(now.step == g->step, "%s: the step count moved from %d to %d", label, g->step, now.step);
    free(now.w); free(now.s);
    for (k = 0; k < 3; k++) free(now.st[k]);
}
static int counted_backwards;
static int counted_backward(const dl_custom_args *a) { counted_backwards++; return square_backward(a); }
/* A custom layer's backward must not see a diverged loss's gradients: such a step checks its loss on the host. */
static void guard_custom(const float *x, const float *huge_t, int n, int in, int out) {
    dl_net *f = dl_net_new();
    dl_layer *sq = square_layer(dl_input(f, in, 0, 0), 0), *o;
    dl_optim *p = NULL;
    if (sq) sq->custom.backward = counted_backward;
    o = dl_dense(sq, out);
    if (!o || dl_cuda_use(f, 0) || !(p = dl_sgd(f, 0.1f, 0))) { CHECK(0, "setup: %s", dl_net_error(f)); dl_net_free(f); return; }
    counted_backwards = 0;
    CHECK(dl_train_step_mse(f, p, o, x, huge_t, n, NULL) == DL_ERR_NUMERIC && strstr(dl_net_error(f), "the loss of"),
          "custom layer, a loss past FLT_MAX: %s", dl_net_error(f));
    CHECK(counted_backwards == 0, "a custom layer's backward ran %d times in a failed step", counted_backwards);
    dl_net_free(f);
}
static void test_step_guard(void) {
    enum { N = 5, IN = 4, OUT = 3 };
    dl_net *a = dl_net_new(), *b = dl_net_new();
    dl_layer *oa, *ob;
    dl_optim *pa, *pb = NULL;
    float x[N * IN], big[N * IN], t[N * OUT], huge_t[N * OUT], la = 0, lb = 0;
    char msg[512];
    int i, k, ra, rb;
    long waits;
    guard_snap g;
    for (i = 0; i < N * IN; i++) { x[i] = frand(); big[i] = x[i] * 1e20f; }   /* big: a running variance past FLT_MAX */
    for (i = 0; i < N * OUT; i++) huge_t[i] = t[i] = frand();
    huge_t[4] = 1e20f;                          /* a finite gradient, but a squared error past FLT_MAX */
    dl_net_seed(a, 11); dl_net_seed(b, 11);
    oa = dl_dense(dl_tanh(dl_dense(dl_batchnorm(dl_input(a, IN, 0, 0)), 6)), OUT);   /* no bias before batchnorm to cancel */
    ob = dl_dense(dl_tanh(dl_dense(dl_batchnorm(dl_input(b, IN, 0, 0)), 6)), OUT);
    pa = dl_adam(a, 1e-2f);
    if (!oa || !ob || !pa || dl_cuda_use(b, 0) || !(pb = dl_adam(b, 1e-2f))) { CHECK(0, "setup: %s", dl_net_error(b)); goto done; }
    for (k = 0; k < 2; k++) {                   /* the second: every buffer in place, nothing allocated */
        waits = STREAM_WAITS();
        ra = dl_train_step_mse(a, pa, oa, x, t, N, &la);
        rb = dl_train_step_mse(b, pb, ob, x, t, N, &lb);
        waits = STREAM_WAITS() - waits;
        CHECK(ra == DL_OK && rb == DL_OK && test_close(lb, la, 1e-6, 1e-5), "step %d: %s / %s, loss %g / %g", k, dl_net_error(a), dl_net_error(b), la, lb);
    }
#ifdef DLC_EMULATE
    CHECK(waits == 1, "a training step waited for the device %ld times, not once", waits);
#endif
    for (k = 0; k < 3; k++) {
        const char *label = k == 0 ? "a loss past FLT_MAX" : k == 1 ? "a running variance past FLT_MAX" : "an update past FLT_MAX";
        guard_take(b, pb, &g);
        if (k == 2) { dl_optim_set_lr(pa, 3e38f); dl_optim_set_lr(pb, 3e38f); }
        ra = dl_train_step_mse(a, pa, oa, k == 1 ? big : x, k == 0 ? huge_t : t, N, NULL);
        snprintf(msg, sizeof msg, "%s", dl_net_error(a));
        rb = dl_train_step_mse(b, pb, ob, k == 1 ? big : x, k == 0 ? huge_t : t, N, NULL);
        CHECK(ra == DL_ERR_NUMERIC && rb == DL_ERR_NUMERIC, "%s: rc cpu %d gpu %d: %s", label, ra, rb, dl_net_error(b));
        if (k < 2) CHECK(!strcmp(dl_net_error(b), msg), "%s: gpu says '%s', cpu '%s'", label, dl_net_error(b), msg);
        else CHECK(strstr(dl_net_error(b), "the update would make") && strstr(msg, "the update would make"), "%s: gpu says '%s', cpu '%s'",
                   label, dl_net_error(b), msg);
        guard_same(label, b, pb, &g);
        if (k == 2) { dl_optim_set_lr(pa, 1e-2f); dl_optim_set_lr(pb, 1e-2f); }
        free(g.w); free(g.s);
        for (i = 0; i < 3; i++) free(g.st[i]);
        ra = dl_train_step_mse(a, pa, oa, x, t, N, &la);    /* and then training goes on as on the CPU */
        rb = dl_train_step_mse(b, pb, ob, x, t, N, &lb);
        CHECK(ra == DL_OK && rb == DL_OK && test_close(lb, la, 1e-6, 1e-4), "%s: the next step: %s / %s, loss %g / %g", label,
              dl_net_error(a), dl_net_error(b), la, lb);
    }
    loose = 10;
    compare_params("after the failed steps", a, b, 0);
    loose = 1;
    guard_custom(x, huge_t, N, IN, OUT);
done:
    dl_net_free(a); dl_net_free(b);
}

/* ---- data parallelism: the collective gets the device's buffers ---- */
typedef struct { dl_net *net; int dev_calls, host_calls, bad; } coll_log;
/* One rank: the mean is the buffer itself. Checks what dl.h hands over. */
static int one_rank(float *buf, size_t count, int op, int on_device, void *user) {
    coll_log *c = (coll_log *)user;
    if (on_device) {
        c->dev_calls++;
        c->bad += buf == dl_net_grads(c->net) || buf == dl_net_params(c->net);   /* a host view, not the device's */
        c->bad += op == DL_ALLREDUCE_MEAN && count != dl_net_param_floats(c->net);
    } else {
        c->host_calls++;
        c->bad += count != 1 || !(buf[0] > 0);          /* the loss */
    }
    return 0;
}
static void test_collective_on_device(void) {
    enum { N = 8 };
    static float x[N * 144];
    static int y[N];
    dl_net *a = dl_net_new(), *b = dl_net_new();
    dl_layer *la, *lb;
    dl_optim *pa, *pb;
    coll_log log;
    int i;
    make_batch(x, y, N);
    dl_net_seed(a, 9); dl_net_seed(b, 9);
    la = small_cnn(a); lb = small_cnn(b);
    pa = dl_adam(a, 1e-3f); pb = dl_adam(b, 1e-3f);
    memset(&log, 0, sizeof log);
    log.net = b;
    if (!la || !lb || !pa || !pb || dl_cuda_use(a, 0) || dl_cuda_use(b, 0)) { CHECK(0, "setup: %s", dl_net_error(b)); goto done; }
    dl_net_set_collective(b, one_rank, &log);
    CHECK(dl_net_broadcast_params(b, 0) == DL_OK, "broadcast: %s", dl_net_error(b));
    CHECK(log.dev_calls == 2, "broadcast: %d device calls (parameters, statistics)", log.dev_calls);
    for (i = 0; i < 3; i++) {
        CHECK(dl_train_step(a, pa, la, x, y, N, NULL) == DL_OK, "plain: %s", dl_net_error(a));
        CHECK(dl_train_step(b, pb, lb, x, y, N, NULL) == DL_OK, "with the collective: %s", dl_net_error(b));
    }
    CHECK(log.dev_calls == 5 && log.host_calls == 3 && log.bad == 0, "%d device calls, %d host calls, %d bad", log.dev_calls, log.host_calls, log.bad);
    CHECK(dl_net_sync(a) == DL_OK && dl_net_sync(b) == DL_OK, "sync");
    CHECK(!memcmp(dl_net_params(a), dl_net_params(b), dl_net_param_floats(a) * sizeof(float)), "a one-rank collective changed the training");
done:
    dl_net_free(a); dl_net_free(b);
}

/* Synchronised batchnorm on the device: the sums go to the collective as
   device buffers (C + 1 and C floats in the forward, 2C + 1 in the
   backward), and one rank trains as on the CPU with the same option. */
typedef struct { int sums, bad; } sum_log;
static int one_rank_sum(float *buf, size_t count, int op, int on_device, void *user) {
    sum_log *s = (sum_log *)user;
    (void)buf;
    if (op != DL_ALLREDUCE_SUM) return 0;
    s->sums++;
    s->bad += !on_device || (count != 9 && count != 8 && count != 17);     /* small_cnn's batchnorm: 8 channels */
    return 0;
}
/* A backend whose batchnorm ignores allreduce_sum (dl_cuda's, made to forget it). */
static int (*cuda_forward)(dl_backend *b, const dl_layer *l, const dl_exec *e);
static int forward_without_sync(dl_backend *b, const dl_layer *l, const dl_exec *e) {
    dl_exec local = *e;
    local.allreduce_sum = NULL;
    return cuda_forward(b, l, &local);
}
static void test_sync_batchnorm_on_device(void) {
    enum { N = 8 };
    static float x[N * 144];
    static int y[N];
    dl_net *a = dl_net_new(), *b = dl_net_new();
    dl_layer *la, *lb;
    dl_optim *pa, *pb;
    sum_log la_log, lb_log;
    int i;
    make_batch(x, y, N);
    dl_net_seed(a, 13); dl_net_seed(b, 13);
    la = small_cnn(a); lb = small_cnn(b);
    pa = dl_sgd(a, 0.05f, 0.9f); pb = dl_sgd(b, 0.05f, 0.9f);
    memset(&la_log, 0, sizeof la_log);
    memset(&lb_log, 0, sizeof lb_log);
    if (!la || !lb || !pa || !pb || dl_cuda_use(b, 0)) { CHECK(0, "setup: %s", dl_net_error(b)); goto done; }
    dl_net_set_collective(a, one_rank_sum, &la_log);
    dl_net_set_collective(b, one_rank_sum, &lb_log);
    dl_net_sync_batchnorm(a, 1);
    dl_net_sync_batchnorm(b, 1);
    for (i = 0; i < 3; i++) {
        CHECK(dl_train_step(a, pa, la, x, y, N, NULL) == DL_OK, "cpu: %s", dl_net_error(a));
        CHECK(dl_train_step(b, pb, lb, x, y, N, NULL) == DL_OK, "gpu: %s", dl_net_error(b));
    }
    CHECK(lb_log.sums == 9 && lb_log.bad == 0, "gpu: %d sums, %d bad", lb_log.sums, lb_log.bad);
    CHECK(la_log.sums == 9, "cpu: %d sums", la_log.sums);
    loose = 10;
    compare_params("3 steps with synchronised batchnorm", a, b, 0);
    loose = 1;
    {   /* a backend that never calls allreduce_sum fails the step instead of training on local statistics */
        dl_status st;
        dl_backend *gpu = dl_cuda_backend_new(0, &st);
        dl_net *c = dl_net_new();
        dl_layer *lc = small_cnn(c);
        dl_optim *pc = dl_sgd(c, 0.05f, 0.9f);
        float before[2][4096];
        int rc, n = 0, k;
        if (gpu) { cuda_forward = gpu->forward; gpu->forward = forward_without_sync; }
        if (!gpu || !lc || !pc || dl_net_to_backend(c, gpu)) { CHECK(0, "setup: %s %s", st.msg, dl_net_error(c)); dl_net_free(c); goto done; }
        dl_net_set_collective(c, one_rank_sum, &lb_log);
        dl_net_sync_batchnorm(c, 1);
        dl_net_sync(c);
        for (k = 0; k < dl_net_param_count(c) && n + dl_net_param(c, k)->size <= 4096; k++) {
            memcpy(before[0] + n, dl_net_param(c, k)->data, (size_t)dl_net_param(c, k)->size * sizeof(float));
            n += dl_net_param(c, k)->size;
        }
        rc = dl_train_step(c, pc, lc, x, y, N, NULL);
        CHECK(rc == DL_ERR_UNSUPPORTED && strstr(dl_net_error(c), "cannot synchronise batchnorm"), "%d: %s", rc, dl_net_error(c));
        dl_net_sync(c);
        for (k = 0, n = 0; k < dl_net_param_count(c) && n + dl_net_param(c, k)->size <= 4096; k++) {
            memcpy(before[1] + n, dl_net_param(c, k)->data, (size_t)dl_net_param(c, k)->size * sizeof(float));
            n += dl_net_param(c, k)->size;
        }
        CHECK(n > 0 && !memcmp(before[0], before[1], (size_t)n * sizeof(float)), "the failed step changed the net (%d floats)", n);
        dl_net_free(c);
    }
done:
    dl_net_free(a); dl_net_free(b);
}

/* ---- no GPU: clean failures, and the net trains on the CPU ---- */
static void test_no_gpu(void) {
    dl_status st;
    dl_net *net = dl_net_new();
    dl_layer *x = dl_input(net, 2, 0, 0), *out = dl_dense(dl_tanh(dl_dense(x, 8)), 2);
    dl_optim *opt = dl_adam(net, 0.05f);
    float xs[8] = { 0, 0, 0, 1, 1, 0, 1, 1 }, first = 0, loss = 0;
    int ys[4] = { 0, 1, 1, 0 }, i, rc;
    const float *p;
    st.code = 0; st.msg[0] = 0;
    CHECK(dl_cuda_backend_new(0, &st) == NULL, "a backend without a GPU");
    CHECK(st.code == DL_ERR_BACKEND && strstr(st.msg, "dl_cuda_backend_new: no CUDA device"), "status %d: %s", st.code, st.msg);
    printf("     dl_cuda_backend_new says: %s\n", st.msg);
    CHECK(dl_cuda_backend_new(0, NULL) == NULL, "with a NULL status");
    CHECK(dl_cuda_use(NULL, 0) == DL_ERR_ARG, "a NULL net");
    CHECK(dl_train_step(net, opt, out, xs, ys, 4, &first) == DL_OK, "a CPU step before: %s", dl_net_error(net));
    rc = dl_cuda_use(net, 0);
    CHECK(rc == DL_ERR_BACKEND, "dl_cuda_use returned %d", rc);
    CHECK(strstr(dl_net_error(net), "dl_cuda_use: no CUDA device") && strstr(dl_net_error(net), "stays on cpu") &&
          !strstr(dl_net_error(net), "out of memory"), "the net's message: %s", dl_net_error(net));
    printf("     dl_cuda_use says: %s\n", dl_net_error(net));
    CHECK(!strcmp(dl_net_backend(net)->name, "cpu"), "the net is on %s", dl_net_backend(net)->name);
    for (i = 0; i < 300; i++) CHECK(dl_train_step(net, opt, out, xs, ys, 4, &loss) == DL_OK, "%s", dl_net_error(net));
    CHECK(loss < first && loss < 0.05f, "training on the CPU after the failed move: loss %g from %g", loss, first);
    p = dl_predict(net, out, xs, 4);
    CHECK(p != NULL, "predict after the failed move: %s", dl_net_error(net));
    for (i = 0; p && i < 4; i++) CHECK((p[2 * i + 1] > p[2 * i]) == ys[i], "XOR sample %d after the failed move", i);
    CHECK(dl_dense(out, 3) != NULL, "adding layers after the failed move: %s", dl_net_error(net));
    dl_net_free(net);
}

#ifdef DLC_EMULATE
/* Emulated allocation failures at every point of a move and of a step. */
static void test_emu_alloc_failures(void) {
    enum { N = 4 };
    static float x[N * 144];
    static int y[N];
    int k, moved = 0;
    char v[16];
    make_batch(x, y, N);
    for (k = 1; k <= 12; k++) {
        dl_net *net = dl_net_new();
        dl_layer *out = small_cnn(net);
        dl_optim *opt = dl_adam(net, 1e-3f);
        int rc;
        snprintf(v, sizeof v, "%d", k);
        setenv("DLC_EMU_FAIL_MALLOC", v, 1);
        rc = dl_cuda_use(net, 0);
        if (rc == DL_OK) {      /* the k-th allocation comes later: in the first training step */
            moved++;
            rc = dl_train_step(net, opt, out, x, y, N, NULL);
            CHECK(rc == DL_OK || (rc == DL_ERR_NOMEM && strstr(dl_net_error(net), "out of memory")),
                  "allocation %d failing in a step: %d %s", k, rc, dl_net_error(net));
        } else {
            CHECK(rc == DL_ERR_BACKEND || rc == DL_ERR_NOMEM, "allocation %d: %d", k, rc);
            CHECK(!strcmp(dl_net_backend(net)->name, "cpu") && dl_net_error(net)[0], "allocation %d: %s", k, dl_net_error(net));
        }
        unsetenv("DLC_EMU_FAIL_MALLOC");
        CHECK(dl_train_step(net, opt, out, x, y, N, NULL) == DL_OK, "allocation %d: training afterwards: %s", k, dl_net_error(net));
        dl_net_free(net);
    }
    CHECK(moved > 0 && moved < 12, "%d of 12 moves succeeded", moved);
}
#endif

/* ---- throughput: the reference CNN and two of bench/bench.c's nets (the same layers) ---- */
static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}
static dl_layer *bench_conv_layer(dl_layer *x, int filters, int k, int stride) { return dl_conv2d(x, filters, k, stride, k / 2); }
static dl_layer *bench_cifar(dl_net *net) {     /* bench.c's net_cifar */
    dl_layer *h = dl_maxpool2d(dl_relu(bench_conv_layer(dl_input(net, 3, 32, 32), 32, 5, 1)), 2, 2);
    h = dl_maxpool2d(dl_relu(bench_conv_layer(h, 64, 5, 1)), 2, 2);
    return dl_dense(dl_relu(dl_dense(dl_flatten(h), 256)), 10);
}
static dl_layer *bench_bn_relu(dl_layer *x) { return dl_relu(dl_batchnorm(x)); }
static dl_layer *bench_res_block(dl_layer *x, int out, int stride) {   /* bench.c's res_block */
    dl_layer *h = dl_batchnorm(bench_conv_layer(bench_bn_relu(bench_conv_layer(x, out, 3, stride)), out, 3, 1));
    dl_layer *s = stride == 1 && x->shape[0] == out ? x : dl_batchnorm(bench_conv_layer(x, out, 1, stride));
    return dl_relu(dl_add(h, s));
}
static dl_layer *bench_resnet(dl_net *net) {    /* bench.c's net_resnet */
    dl_layer *h = bench_bn_relu(bench_conv_layer(dl_input(net, 3, 32, 32), 16, 3, 1));
    h = bench_res_block(h, 16, 1);
    h = bench_res_block(h, 32, 2);
    h = bench_res_block(h, 64, 2);
    return dl_dense(dl_global_avgpool(h), 10);
}
static const struct { const char *name; dl_layer *(*build)(dl_net *); } bench_nets[] = {
    { "reference CNN", reference_cnn }, { "cifar net", bench_cifar }, { "residual net", bench_resnet },
};
static void bench_one(int which, int gpu, int batch, double seconds) {
    dl_net *net = dl_net_new();
    dl_layer *out = bench_nets[which].build(net);
    dl_optim *opt = dl_adam(net, 1e-3f);
    size_t in = out ? (size_t)dl_layer_size(dl_net_layer(net, 0)) : 1;
    float *x = random_floats((size_t)batch * in);
    int *y = (int *)malloc((size_t)batch * sizeof(int)), i, steps;
    double t0, train, infer;
    for (i = 0; i < batch; i++) y[i] = i % 10;
    if (!out || !opt || (gpu && dl_cuda_use(net, 0))) { printf("bench: setup failed: %s\n", dl_net_error(net)); goto done; }
    for (i = 0; i < 3; i++) dl_train_step(net, opt, out, x, y, batch, NULL);      /* plans, scratch, clocks */
    t0 = now();
    for (steps = 0; steps < 5 || now() - t0 < seconds; steps++)
        if (dl_train_step(net, opt, out, x, y, batch, NULL)) { printf("bench: %s\n", dl_net_error(net)); goto done; }
    train = steps * (double)batch / (now() - t0);
    for (i = 0; i < 2; i++) dl_predict(net, out, x, batch);
    t0 = now();
    for (steps = 0; steps < 5 || now() - t0 < seconds; steps++)
        if (!dl_predict(net, out, x, batch)) { printf("bench: %s\n", dl_net_error(net)); goto done; }
    infer = steps * (double)batch / (now() - t0);
    printf("bench: %s, %s, batch %4d: train %9.0f img/s (%7.3f ms/step), inference %9.0f img/s\n", bench_nets[which].name,
           gpu ? "GPU" : "CPU", batch, train, 1e3 * batch / train, infer);
done:
    free(x); free(y);
    dl_net_free(net);
}
/* The two convolution paths (DL_CUDA_CONV) on a chain of 8 convolutions
   (the first C -> F, then F -> F, pad k/2), eval forward at batch 256:
   input and output copies are in the time but the same for both. */
static void bench_conv_one(const char *path, int C, int F, int H, int k) {
    const int batch = 256, depth = 8;
    dl_net *net = dl_net_new();
    dl_layer *h = dl_input(net, C, H, H);
    float *x = random_floats((size_t)batch * C * H * H);
    double t0, ms;
    int i, reps;
    for (i = 0; i < depth; i++) h = dl_conv2d(h, F, k, 1, k / 2);
    setenv("DL_CUDA_CONV", path, 1);
    if (!h || dl_cuda_use(net, 0)) { printf("bench-conv: setup failed: %s\n", dl_net_error(net)); goto done; }
    for (i = 0; i < 3; i++) dl_forward(net, h, x, batch, 0);
    t0 = now();
    for (reps = 0; reps < 5 || now() - t0 < 0.5; reps++)
        if (!dl_forward(net, h, x, batch, 0)) { printf("bench-conv: %s\n", dl_net_error(net)); goto done; }
    ms = 1e3 * (now() - t0) / reps;
    printf("bench-conv: %dx%d %3d->%3d on %2dx%-2d batch %d, %d convs: %-8s %8.3f ms/forward, %7.0f GFLOP/s\n", k, k, C, F, H, H,
           batch, depth, path, ms, 2.0 * batch * H * H * k * k * ((double)C * F + (depth - 1.0) * F * F) / (ms * 1e6));
done:
    unsetenv("DL_CUDA_CONV");
    free(x);
    dl_net_free(net);
}
static void bench_conv(void) {
    static const int shapes[][4] = { { 32, 64, 14, 3 }, { 64, 128, 8, 3 }, { 16, 32, 32, 3 }, { 3, 32, 32, 5 }, { 16, 16, 64, 3 } };
    int i;
    for (i = 0; i < (int)(sizeof shapes / sizeof shapes[0]); i++) {
        bench_conv_one("im2col", shapes[i][0], shapes[i][1], shapes[i][2], shapes[i][3]);
        bench_conv_one("implicit", shapes[i][0], shapes[i][1], shapes[i][2], shapes[i][3]);
    }
    fflush(stdout);
}
/* On a GPU: each net at batch 64, 256 and 1024 (DL_CUDA_CONV and DL_CUDA_GRAPHS choose the paths; gpu_check.sh
   runs each); on the CPU the reference CNN at 64, for scale. */
static void bench(int gpu) {
    static const int batches[3] = { 64, 256, 1024 };
    int k, b;
    for (k = 0; gpu && k < (int)(sizeof bench_nets / sizeof bench_nets[0]); k++)
        for (b = 0; b < 3; b++) { bench_one(k, 1, batches[b], 0.4); fflush(stdout); }
    if (!getenv("DL_BENCH_GPU_ONLY")) bench_one(0, 0, 64, 0.5);
    fflush(stdout);
}

int main(int argc, char **argv) {
    int i, require = 0, do_bench = 0, have_gpu;
    dl_status st;
    dl_backend *probe;
    for (i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--require-gpu")) require = 1;
        else if (!strcmp(argv[i], "--bench")) do_bench = 1;
        else if (!strcmp(argv[i], "--bench-conv")) do_bench = 2;
        else if (!strcmp(argv[i], "--quick")) quick = 1;
        else { fprintf(stderr, "usage: %s [--require-gpu] [--bench | --bench-conv] [--quick]\n", argv[0]); return 2; }
    }
#ifdef DLC_EMULATE
    setenv("DLC_EMU_NO_DEVICE", "1", 1);        /* first the emulated machine without a GPU */
    RUN(test_no_gpu);
    setenv("DLC_EMU_NO_DEVICE", "driver", 1);   /* and without a driver */
    RUN(test_no_gpu);
    unsetenv("DLC_EMU_NO_DEVICE");
#endif
    probe = dl_cuda_backend_new(0, &st);
    have_gpu = probe != NULL;
    if (probe) probe->destroy(probe);
    if (do_bench) {                             /* the benchmark alone */
        if (!have_gpu) printf("bench: no GPU (%s)\n", st.msg);
#ifdef DLC_EMULATE
        have_gpu = 0;                           /* its timings would mean nothing */
#endif
        if (do_bench == 2 && have_gpu) bench_conv();
        else if (do_bench == 1) bench(have_gpu);
        if (require && !have_gpu) test__failed++;
        return test_summary();
    }
    if (!have_gpu) {
        printf("GPU tests: NOT RUN (%s)\n", st.msg);
        RUN(test_no_gpu);
        if (require) { printf("FAIL --require-gpu: %s\n", st.msg); test__failed++; }
        return test_summary();
    }
#ifdef DLC_EMULATE
    printf("GPU tests: running on an EMULATED device (tests/cuda_emu.h), not a GPU\n");
#else
    printf("GPU tests: running on CUDA device 0\n");
#endif
    RUN(test_op_cases);
    RUN(test_option_cases);
    RUN(test_cpu_only_refused);
    RUN(test_tf32);
    RUN(test_conv_paths);
    RUN(test_conv_chunks);
    RUN(test_multi_input);
    RUN(test_pool_chain);
    RUN(test_fused_predict);
    RUN(test_graphs);
    RUN(test_reference_cnn);
    RUN(test_losses);
    RUN(test_optimizers);
    RUN(test_optim_nonfinite);
    RUN(test_files_and_moving);
    RUN(test_contexts_and_threads);
    RUN(test_train_errors);
    RUN(test_step_guard);
    RUN(test_collective_on_device);
    RUN(test_sync_batchnorm_on_device);
#ifdef DLC_EMULATE
    RUN(test_emu_alloc_failures);
#endif
    printf("GPU tests: %s\n", test__failed ? "ran, with failures" : "ran, all passed");
    return test_summary();
}
