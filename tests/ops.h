/* ops.h - one table of cases per op, run by every suite:
 *   test_grad.c   finite differences of every case (input and parameters),
 *   test_torch.c  PyTorch parity of the cases with a fixture,
 *   test_cuda.c   CPU against GPU (or the CUDA emulation) for every case.
 * Each suite fails when an op in DL_OP_COUNT has no case it ran, so a new
 * op is one row here (and a fixture in gen_fixtures.py).
 *
 * A case is: an input layer of shape (c, h, w), what make() builds on it
 * (named lname when given: PyTorch's module name, so parameters match), the
 * batch for the gradient and GPU checks (PyTorch's comes from the fixture)
 * and the mode of the forward. Include after dl.h and test.h. */
#ifndef DL_TEST_OPS_H
#define DL_TEST_OPS_H
#include <string.h>

typedef struct op_case {
    int op;                 /* the op this case covers */
    const char *label;
    int batch, c, h, w;
    dl_layer *(*make)(dl_layer *x, const void *arg);
    const void *arg;
    const char *lname;      /* name of the made layer, or NULL */
    const char *fixture;    /* tests/fixtures/<fixture>.bin, or NULL */
    int train;              /* forward in training mode */
} op_case;

/* The test layer shared by the suites: y = scale * x^2 + shift, with its own parameters. */
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
static int failing_forward(const dl_custom_args *a) { (void)a; return 3; }
static dl_layer *square_layer(dl_layer *x, int fail) {
    dl_custom_desc d;
    memset(&d, 0, sizeof d);
    d.name = "square";
    d.ndim = 1; d.shape[0] = dl_layer_size(x);
    d.forward = fail ? failing_forward : square_forward; d.backward = square_backward;
    d.n_params = 2;
    d.params[0].name = "scale"; d.params[0].size = 1; d.params[0].init_value = 0.5f;
    d.params[1].name = "shift"; d.params[1].size = d.shape[0]; d.params[1].init_value = 0.1f;
    return dl_custom(&x, 1, &d);
}

static dl_layer *ops_named(dl_layer *l, const char *name) { if (l) dl_layer_set_name(l, name); return l; }

/* ---- makers: arg is an options struct, a float, or unused ---- */
static dl_layer *mk_dense(dl_layer *x, const void *a) { return dl_dense_ex(x, (const dl_dense_desc *)a); }
static dl_layer *mk_conv(dl_layer *x, const void *a) { return dl_conv2d_ex(x, (const dl_conv_desc *)a); }
static dl_layer *mk_maxpool(dl_layer *x, const void *a) { return dl_maxpool2d_ex(x, (const dl_pool_desc *)a); }
static dl_layer *mk_avgpool(dl_layer *x, const void *a) { return dl_avgpool2d_ex(x, (const dl_pool_desc *)a); }
/* the maxima plus their indices: dx is maxpool's alone (the indices add nothing) */
static dl_layer *mk_maxpool_argmax(dl_layer *x, const void *a) {
    return dl_add(dl_maxpool2d_ex(x, (const dl_pool_desc *)a), dl_maxpool2d_argmax(x, (const dl_pool_desc *)a, 0));
}
static dl_layer *mk_maxpool_argmax_cm(dl_layer *x, const void *a) { return dl_maxpool2d_argmax(x, (const dl_pool_desc *)a, DL_ARGMAX_COLUMN_MAJOR); }
static dl_layer *mk_maxpool_argmax_flat(dl_layer *x, const void *a) { return dl_maxpool2d_argmax(x, (const dl_pool_desc *)a, DL_ARGMAX_FLAT); }
static dl_layer *mk_gap(dl_layer *x, const void *a) { (void)a; return dl_global_avgpool(x); }
static dl_layer *mk_gmp(dl_layer *x, const void *a) { (void)a; return dl_global_maxpool(x); }
static dl_layer *mk_bn(dl_layer *x, const void *a) { (void)a; return dl_batchnorm(x); }
static dl_layer *mk_bn_ex(dl_layer *x, const void *a) { (void)a; return dl_batchnorm_ex(x, 1e-3f, 0.3f); }
static dl_layer *mk_bn_dense(dl_layer *x, const void *a) { (void)a; return dl_batchnorm(ops_named(dl_dense(x, 6), "fc")); }
static dl_layer *mk_dropout(dl_layer *x, const void *a) { return dl_dropout(x, *(const float *)a); }
static dl_layer *mk_relu(dl_layer *x, const void *a) { (void)a; return dl_relu(x); }
static dl_layer *mk_leaky(dl_layer *x, const void *a) { return dl_leaky_relu(x, *(const float *)a); }
static dl_layer *mk_elu(dl_layer *x, const void *a) { return dl_elu(x, *(const float *)a); }
static dl_layer *mk_prelu(dl_layer *x, const void *a) { (void)a; return dl_prelu(x); }
static dl_layer *mk_prelu_dense(dl_layer *x, const void *a) { (void)a; return dl_prelu(dl_dense(x, 5)); }
static dl_layer *mk_sigmoid(dl_layer *x, const void *a) { (void)a; return dl_sigmoid(x); }
static dl_layer *mk_tanh(dl_layer *x, const void *a) { (void)a; return dl_tanh(x); }
static dl_layer *mk_softmax(dl_layer *x, const void *a) { (void)a; return dl_softmax(x); }
static dl_layer *mk_clip(dl_layer *x, const void *a) { return dl_clip(x, ((const float *)a)[0], ((const float *)a)[1]); }
static dl_layer *mk_hard_sigmoid(dl_layer *x, const void *a) { return dl_hard_sigmoid(x, ((const float *)a)[0], ((const float *)a)[1]); }
static dl_layer *mk_hard_swish(dl_layer *x, const void *a) { (void)a; return dl_hard_swish(x); }
static dl_layer *mk_selu(dl_layer *x, const void *a) { (void)a; return dl_selu(x); }
static dl_layer *mk_gelu(dl_layer *x, const void *a) { return dl_gelu(x, a != NULL); }
static dl_layer *mk_silu(dl_layer *x, const void *a) { (void)a; return dl_silu(x); }
static dl_layer *mk_softplus(dl_layer *x, const void *a) { (void)a; return dl_softplus(x); }
static dl_layer *mk_sqrt_softplus(dl_layer *x, const void *a) { (void)a; return dl_sqrt(dl_softplus(x)); }
static dl_layer *mk_log_softmax(dl_layer *x, const void *a) { (void)a; return dl_log_softmax(x); }
static dl_layer *mk_conv_clip(dl_layer *x, const void *a) { (void)a; return dl_clip(dl_conv2d(x, 2, 1, 1, 0), 0, 6); }   /* few outputs: few kinks */
static dl_layer *mk_dense_hard_swish(dl_layer *x, const void *a) { (void)a; return dl_hard_swish(dl_dense(x, 6)); }
/* x * scale + shift from constants: per channel (3,1,1) and (1,4,5); the values are the fixture's */
static dl_layer *mk_bcast_affine(dl_layer *x, const void *a) {
    static const int s311[3] = { 3, 1, 1 }, s145[3] = { 1, 4, 5 };
    static const float zeros[20] = { 0 };
    float scale[3] = { 0.5f, -1.5f, 2.0f };
    (void)a;
    return dl_add(dl_mul(x, ops_named(dl_constant(x->net, 3, s311, scale), "scale")),
                  ops_named(dl_constant(x->net, 3, s145, zeros), "shift"));
}
/* x * a constant fed by x itself (dl_constant_for): x's only gradient is through the mul */
static dl_layer *mk_const_for(dl_layer *x, const void *a) {
    static const int s145[3] = { 1, 4, 5 };
    float v[20];
    int i;
    (void)a;
    for (i = 0; i < 20; i++) v[i] = 0.25f * (float)(i % 7) - 0.5f;
    return dl_mul(x, ops_named(dl_constant_for(x, 3, s145, v), "cfor"));
}
static dl_layer *mk_bcast_div(dl_layer *x, const void *a) {    /* x / (softplus(mean_hw x) + 1) */
    static const int s311[3] = { 3, 1, 1 }, s1[1] = { 1 };
    static const float one[1] = { 1 };
    (void)a;
    return dl_div(x, dl_add(dl_softplus(dl_reshape(dl_global_avgpool(x), 3, s311)), ops_named(dl_constant(x->net, 1, s1, one), "one")));
}
static dl_layer *mk_bcast_sub(dl_layer *x, const void *a) { (void)a; return dl_sub(x, ops_named(dl_conv2d(x, 1, 1, 1, 0), "conv")); }
static dl_layer *mk_bcast_mul_scalar(dl_layer *x, const void *a) { (void)a; return dl_mul(x, ops_named(dl_dense(x, 1), "fc")); }
static dl_layer *mk_bcast_hw(dl_layer *x, const void *a) {     /* (1,H,W) - x and the same-shape sub and div */
    (void)a;
    return dl_div(dl_sub(dl_conv2d(x, 1, 3, 1, 1), x), dl_add(dl_sigmoid(x), dl_sigmoid(dl_conv2d(x, 3, 1, 1, 0))));
}
static dl_layer *mk_convT(dl_layer *x, const void *a) { return dl_conv2d_transpose_ex(x, (const dl_conv_desc *)a); }
static dl_layer *mk_pad(dl_layer *x, const void *a) { return dl_pad_ex(x, (const dl_pad_desc *)a); }
static dl_layer *mk_transpose(dl_layer *x, const void *a) { return dl_transpose(x, (const int *)a); }
static dl_layer *mk_upsample(dl_layer *x, const void *a) { return dl_upsample_ex(x, (const dl_upsample_desc *)a); }
static dl_layer *mk_slice(dl_layer *x, const void *a) { return dl_slice_channels(x, ((const int *)a)[0], ((const int *)a)[1]); }
static dl_layer *mk_channel_split(dl_layer *x, const void *a) {     /* channel shuffle of 2 groups: split, interleave by transpose */
    static const int s[3] = { 2, 2, 12 }, p[3] = { 1, 0, 2 }, back[3] = { 4, 3, 4 };
    dl_layer *xs[2];
    (void)a;
    xs[0] = dl_slice_channels(x, 0, 2); xs[1] = dl_slice_channels(x, 2, 4);
    return dl_reshape(dl_transpose(dl_reshape(dl_concat(xs, 2), 3, s), p), 3, back);
}
static dl_layer *mk_reduce_sum(dl_layer *x, const void *a) {  /* a: { keepdims, n_axes, axes... } */
    const int *v = (const int *)a;
    return dl_reduce_sum(x, v + 2, v[1], v[0]);
}
static dl_layer *mk_reduce_mean(dl_layer *x, const void *a) { const int *v = (const int *)a; return dl_reduce_mean(x, v + 2, v[1], v[0]); }
static dl_layer *mk_custom(dl_layer *x, const void *a) { (void)a; return dl_dense(square_layer(x, 0), 3); }

#ifdef OPS_NETS             /* whole nets, for the suites that train them */
/* Fan-out everywhere: a residual add, a concat of three branches (one
   through dropout, one through a custom layer and a view), a flattened
   value two dense layers read, tanh (backward reads its output) and elu
   (its input and output). A training plan that reuses memory must wait
   for every reader of a value (test_core, test_cuda). x: (3,8,8). */
static dl_layer *mk_res_concat(dl_layer *x, const void *a) {
    static const int s[3] = { 6, 4, 4 };
    dl_layer *h, *r, *b[3], *f, *d[2];
    (void)a;
    h = dl_relu(dl_batchnorm(dl_conv2d(x, 6, 3, 1, 1)));
    r = dl_relu(dl_add(dl_batchnorm(dl_conv2d(dl_elu(dl_conv2d(h, 6, 3, 1, 1), 1.0f), 6, 3, 1, 1)), h));
    b[0] = dl_maxpool2d(r, 2, 2);
    b[1] = dl_dropout(dl_avgpool2d(dl_tanh(r), 2, 2), 0.25f);
    b[2] = dl_reshape(square_layer(dl_maxpool2d(h, 2, 2), 0), 3, s);
    f = dl_flatten(dl_concat(b, 3));
    d[0] = dl_dense(f, 5); d[1] = dl_tanh(dl_dense(f, 5));
    return dl_add_n(d, 2);
}
#endif
static dl_layer *mk_add3_dense(dl_layer *x, const void *a) {          /* fa(x) + fb(x) + tanh(fc(x)) */
    dl_layer *xs[3];
    (void)a;
    xs[0] = dl_dense(x, 4); xs[1] = dl_dense(x, 4); xs[2] = dl_tanh(dl_dense(x, 4));
    return dl_add_n(xs, 3);
}
static dl_layer *mk_add2(dl_layer *x, const void *a) {                /* conv1x1(x) + conv3x3(x) */
    (void)a;
    return dl_add(ops_named(dl_conv2d(x, 4, 1, 1, 0), "ca"), ops_named(dl_conv2d(x, 4, 3, 1, 1), "cb"));
}
static dl_layer *mk_add3(dl_layer *x, const void *a) {                /* fa(x) + fb(x) + x */
    dl_layer *xs[3];
    (void)a;
    xs[0] = ops_named(dl_dense(x, 6), "fa"); xs[1] = ops_named(dl_dense(x, 6), "fb"); xs[2] = x;
    return dl_add_n(xs, 3);
}
static dl_layer *mk_residual(dl_layer *x, const void *a) {  /* tanh, not relu: no difference crosses a kink */
    (void)a;
    return dl_add(x, dl_conv2d(dl_tanh(dl_batchnorm(dl_conv2d(x, 2, 3, 1, 1))), 2, 3, 1, 1));
}
static dl_layer *mk_mul_dense(dl_layer *x, const void *a) { (void)a; return dl_mul(dl_dense(x, 5), dl_dense(x, 5)); }
static dl_layer *mk_mul(dl_layer *x, const void *a) { (void)a; return dl_mul(ops_named(dl_conv2d(x, 3, 1, 1, 0), "ca"), x); }
static dl_layer *mk_concat_conv(dl_layer *x, const void *a) {        /* conv3x3, identity, conv1x1 */
    dl_layer *xs[3];
    (void)a;
    xs[0] = dl_conv2d(x, 3, 3, 1, 1); xs[1] = x; xs[2] = dl_conv2d(x, 1, 1, 1, 0);
    return dl_concat(xs, 3);
}
static dl_layer *mk_concat(dl_layer *x, const void *a) {              /* cat(ca(x), x, cb(x)) */
    dl_layer *xs[3];
    (void)a;
    xs[0] = ops_named(dl_conv2d(x, 2, 1, 1, 0), "ca"); xs[1] = x; xs[2] = ops_named(dl_conv2d(x, 4, 3, 1, 1), "cb");
    return dl_concat(xs, 3);
}
static dl_layer *mk_concat_1d(dl_layer *x, const void *a) {           /* cat(fa(x), x) */
    dl_layer *xs[2];
    (void)a;
    xs[0] = ops_named(dl_dense(x, 3), "fa"); xs[1] = x;
    return dl_concat(xs, 2);
}
static dl_layer *mk_matmul(dl_layer *x, const void *a) {              /* (3,4) x (4,2) */
    int sa[2] = { 3, 4 }, sb[2] = { 4, 2 };
    (void)a;
    return dl_matmul(dl_reshape(x, 2, sa), dl_reshape(dl_dense(x, 8), 2, sb));
}
static dl_layer *mk_matmul3(dl_layer *x, const void *a) {             /* 2 x (3,4) x (4,5) */
    int sa[3] = { 2, 3, 4 }, sb[3] = { 2, 4, 5 };
    (void)a;
    return dl_matmul(dl_reshape(x, 3, sa), dl_reshape(dl_dense(x, 40), 3, sb));
}
static dl_layer *mk_matmul_2d(dl_layer *x, const void *a) {           /* x (4,6) times fb(x) viewed as (6,5) */
    int s65[2] = { 6, 5 };
    (void)a;
    return dl_matmul(x, dl_reshape(ops_named(dl_dense(x, 30), "fb"), 2, s65));
}
static dl_layer *mk_matmul_3d(dl_layer *x, const void *a) {           /* x (2,3,4) times fb(x) viewed as (2,4,5) */
    int s245[3] = { 2, 4, 5 };
    (void)a;
    return dl_matmul(x, dl_reshape(ops_named(dl_dense(x, 40), "fb"), 3, s245));
}
static dl_layer *mk_reshape(dl_layer *x, const void *a) {             /* softmax over dim 0 of conv(x) viewed as (10,9) */
    int s109[2] = { 10, 9 };
    (void)a;
    return dl_softmax(dl_reshape(ops_named(dl_conv2d(x, 6, 1, 1, 0), "conv"), 2, s109));
}
static dl_layer *mk_flatten_softmax(dl_layer *x, const void *a) { (void)a; return dl_softmax(dl_flatten(x)); }
static dl_layer *mk_flatten_dense(dl_layer *x, const void *a) { (void)a; return dl_dense(dl_flatten(dl_elu(x, 1.0f)), 3); }
static dl_layer *mk_same_input(dl_layer *x, const void *a) {  /* one layer as several inputs: they share one gradient buffer */
    dl_layer *h = dl_tanh(dl_dense(x, 9)), *m, *parts[4], *xs[2];
    int sq[2] = { 3, 3 };
    (void)a;
    m = dl_reshape(h, 2, sq);
    xs[0] = h; xs[1] = h;
    parts[0] = dl_add(h, h); parts[1] = dl_mul(h, h); parts[2] = dl_concat(xs, 2); parts[3] = dl_flatten(dl_matmul(m, m));
    return dl_dense(dl_concat(parts, 4), 4);
}
static dl_layer *mk_bn_dropout(dl_layer *x, const void *a) {  /* statistics carried from a training forward into eval */
    (void)a;
    return dl_dropout(dl_prelu(dl_batchnorm(dl_conv2d(x, 6, 3, 2, 1))), 0.25f);
}

/* ---- options the rows point to ---- */
static const dl_dense_desc ops_d7 = { 7, 0, 0 }, ops_d5nb = { 5, 1, 0 }, ops_d6 = { 6, 0, 0 }, ops_d5 = { 5, 0, 0 },
                           ops_d9 = { 9, 0, 0 }, ops_d3nb = { 3, 1, 0 };
static const dl_pad_desc pad_const = { 0, 1, 1, 2, DL_PAD_CONSTANT, 0.5f }, pad_reflect = { 1, 2, 2, 1, DL_PAD_REFLECT, 0 },
                         pad_edge = { 2, 0, 1, 3, DL_PAD_EDGE, 0 };
static const int perm_hwc[3] = { 1, 2, 0 }, perm_2d[3] = { 1, 0, 0 }, slice_1_4[2] = { 1, 4 };
static const dl_upsample_desc up_nearest2 = { 2, 2, 0, 0 }, up_bilinear = { 2, 3, 1, 0 }, up_bilinear_ac = { 2, 2, 1, 1 },
                              up_nearest_13 = { 1, 3, 0, 0 };
static const int red_hw_keep[4] = { 1, 2, 1, 2 }, red_all[2] = { 0, 0 }, red_c[3] = { 0, 1, 0 }, red_w[3] = { 0, 1, 1 };
static const float ops_p03 = 0.3f, ops_slope = 0.1f, ops_alpha = 0.7f, ops_clip[2] = { -0.5f, 1.2f }, ops_relu6[2] = { 0, 6 },
                   ops_hsig_torch[2] = { 1.0f / 6.0f, 0.5f }, ops_hsig_onnx[2] = { 0.2f, 0.5f };
static const dl_conv_desc
    cv_a = { .filters = 5, .kernel = 3, .pad = 1 },                     cv_b = { .filters = 6, .kernel = 3, .stride = 2 },
    cv_c = { .filters = 3, .kernel = 3, .pad = 2 },                     cv_d = { .filters = 4, .kernel = 3, .pad = 2, .dilation = 2 },
    cv_e = { .filters = 4, .kernel = 3, .pad = 1, .groups = 2 },        cv_f = { .filters = 5, .kernel = 3, .stride = 2, .pad = 1, .groups = 5 },
    cv_g = { .filters = 7, .kernel = 1 },                               cv_h = { .filters = 4, .kernel_h = 3, .kernel_w = 2, .pad = 1, .no_bias = 1 },
    cv_i = { .filters = 6, .kernel = 1, .stride = 2, .groups = 2 },     cv_j = { .filters = 4, .kernel = 3, .pad_h = 1, .stride_h = 2 },
    cv_k = { .filters = 8, .kernel = 3, .pad = 1, .groups = 4, .no_bias = 1 },
    cv_l = { .filters = 24, .kernel = 3, .pad = 1 },                    cv_m = { .filters = 5, .kernel = 5, .stride = 2, .pad = 2 },
    cv_n = { .filters = 6, .kernel_h = 3, .kernel_w = 2, .stride = 2, .stride_w = 1, .pad = 2, .pad_w = 1, .dilation = 2,
             .dilation_w = 1, .groups = 2 },
    /* the CONVS table of gen_fixtures.py */
    fx_k3_p1_b1 = { .filters = 5, .kernel = 3, .pad = 1 },              fx_k3_p0_b3 = { .filters = 7, .kernel = 3 },
    fx_k5_s2_p2 = { .filters = 6, .kernel = 5, .stride = 2, .pad = 2 }, fx_dil2 = { .filters = 5, .kernel = 3, .dilation = 2, .pad = 2 },
    fx_groups2 = { .filters = 10, .kernel = 3, .pad = 1, .groups = 2 }, fx_dw = { .filters = 5, .kernel = 3, .pad = 1, .groups = 5 },
    fx_dw_x2 = { .filters = 6, .kernel = 3, .stride = 2, .pad = 1, .groups = 3 }, fx_1x1 = { .filters = 11, .kernel = 1 },
    fx_1x1_s2 = { .filters = 4, .kernel = 1, .stride = 2 },             fx_nobias = { .filters = 4, .kernel = 3, .pad = 1, .no_bias = 1 },
    fx_rect = { .filters = 3, .kernel_h = 3, .kernel_w = 2, .stride_h = 2, .stride = 1, .pad_h = 2, .pad_w = 1 },
    fx_wide = { .filters = 12, .kernel = 3, .pad = 1 };
static const dl_pool_desc
    pl_k2 = { .kernel = 2, .stride = 2 }, pl_k3_s2_p1 = { .kernel = 3, .stride = 2, .pad = 1 },
    pl_k3_s1_p1 = { .kernel = 3, .stride = 1, .pad = 1 }, pl_k4_s3_p2 = { .kernel = 4, .stride = 3, .pad = 2 },
    pl_rect = { .kernel_h = 3, .kernel_w = 2, .stride_h = 1, .stride_w = 2, .pad = 1 },
    pl_rect2 = { .kernel = 3, .kernel_w = 4, .stride = 2, .stride_w = 3, .pad = 1, .pad_w = 2 },
    pl_pads_asym = { .kernel = 2, .stride = 2, .pad_top = 0, .pad_left = 1, .pad_bottom = 1, .pad_right = 0 },
    pl_same_upper = { .kernel = 2, .stride = 2, .auto_pad = DL_PAD_SAME_UPPER },
    pl_same_lower = { .kernel = 3, .stride = 2, .auto_pad = DL_PAD_SAME_LOWER },
    pl_ceil = { .kernel = 3, .stride = 2, .ceil_mode = 1 }, pl_ceil_k2 = { .kernel = 2, .stride = 2, .ceil_mode = 1 },
    pl_dil2 = { .kernel = 3, .stride = 2, .pad = 1, .dilation = 2 },
    pl_dil_rect = { .kernel = 2, .stride = 1, .dilation_h = 3, .dilation_w = 2, .pad_top = 2, .pad_right = 1 },
    pl_avg_ceil = { .kernel = 3, .stride = 2, .pad = 1, .ceil_mode = 1 },
    pl_avg_excl = { .kernel = 3, .stride = 2, .pad = 1, .exclude_pad = 1 },
    pl_avg_ceil_excl = { .kernel = 2, .stride = 2, .pad = 1, .ceil_mode = 1, .exclude_pad = 1 },
    pl_avg_same = { .kernel = 2, .stride = 2, .auto_pad = DL_PAD_SAME_UPPER, .exclude_pad = 1 };
static const dl_conv_desc
    cv_pads_asym = { .filters = 4, .kernel = 3, .pad_top = 0, .pad_left = 2, .pad_bottom = 1, .pad_right = 1 },
    cv_same_k4_s2 = { .filters = 5, .kernel = 4, .stride = 2, .auto_pad = DL_PAD_SAME_UPPER },
    cv_same_lower_k2 = { .filters = 3, .kernel = 2, .auto_pad = DL_PAD_SAME_LOWER },
    cv_same_k4_s1 = { .filters = 3, .kernel = 4, .auto_pad = DL_PAD_SAME_UPPER },
    cv_1x1_asym = { .filters = 3, .kernel = 1, .pad_bottom = 1, .pad_right = 2 },
    /* conv2d_transpose: the CONVTS table of gen_fixtures.py, then more */
    ct_a = { .filters = 3, .kernel = 3, .stride = 2, .pad = 1, .output_padding = 1 },
    ct_b = { .filters = 6, .kernel = 3, .pad = 2, .dilation = 2, .groups = 2 },
    ct_c = { .filters = 5, .kernel = 2, .stride = 2, .no_bias = 1 },
    ct_d = { .filters = 4, .kernel_h = 3, .kernel_w = 2, .stride_h = 2, .stride_w = 1, .pad_h = 1, .output_padding_h = 1 },
    ct_e = { .filters = 3, .kernel = 3, .stride = 2, .pad_top = 1, .pad_left = 0, .pad_bottom = 0, .pad_right = 2 },
    ct_f = { .filters = 4, .kernel = 1 },
    ct_g = { .filters = 4, .kernel = 3, .groups = 4 };

#define OPS_CONV(label, n, c, h, w, d, fx) { DL_OP_CONV2D, label, n, c, h, w, mk_conv, &d, "conv", fx, 1 }
#define OPS_POOL(op, label, n, c, h, w, mk, d, fx) { op, label, n, c, h, w, mk, &d, NULL, fx, 1 }
#define OPS_UNARY(op, label, n, c, h, w, mk, arg, lname, fx) { op, label, n, c, h, w, mk, arg, lname, fx, 1 }
static const op_case op_cases[] = {
    { DL_OP_INPUT, "input alone", 2, 3, 4, 5, NULL, NULL, NULL, NULL, 1 },
    OPS_UNARY(DL_OP_DENSE, "dense 12->7", 3, 12, 0, 0, mk_dense, &ops_d7, "fc", "dense"),
    OPS_UNARY(DL_OP_DENSE, "dense 12->5 no bias", 2, 12, 0, 0, mk_dense, &ops_d5nb, "fc", "dense_nobias"),
    OPS_UNARY(DL_OP_DENSE, "dense flattening 3x5x4->6", 1, 3, 5, 4, mk_dense, &ops_d6, "fc", "dense_flatten"),
    OPS_UNARY(DL_OP_DENSE, "dense 7->5 batch1", 1, 7, 0, 0, mk_dense, &ops_d5, NULL, NULL),
    OPS_UNARY(DL_OP_DENSE, "dense flattening 3x4x5->9", 1, 3, 4, 5, mk_dense, &ops_d9, NULL, NULL),
    OPS_UNARY(DL_OP_DENSE, "dense 6->3 no bias", 2, 6, 0, 0, mk_dense, &ops_d3nb, NULL, NULL),

    OPS_CONV("conv 3x3 pad1 batch1 7x5", 1, 3, 7, 5, cv_a, NULL),
    OPS_CONV("conv 3x3 stride2 pad0 batch3", 3, 3, 7, 5, cv_b, NULL),
    OPS_CONV("conv 3x3 pad2 5->3 channels", 2, 5, 6, 7, cv_c, NULL),
    OPS_CONV("conv dilation2 pad2", 2, 3, 9, 8, cv_d, NULL),
    OPS_CONV("conv groups2", 3, 6, 5, 5, cv_e, NULL),
    OPS_CONV("conv depthwise stride2", 2, 5, 6, 5, cv_f, NULL),
    OPS_CONV("conv 1x1 pointwise", 3, 6, 4, 5, cv_g, NULL),
    OPS_CONV("conv 3x2 kernel no bias", 1, 3, 7, 6, cv_h, NULL),
    OPS_CONV("conv 1x1 stride2 groups2", 2, 4, 5, 5, cv_i, NULL),
    OPS_CONV("conv pad (1,0) stride (2,1)", 2, 3, 6, 7, cv_j, NULL),
    OPS_CONV("conv depthwise x2 multiplier, no bias", 3, 4, 7, 6, cv_k, NULL),
    OPS_CONV("conv 16->24 on 15x13", 2, 16, 15, 13, cv_l, NULL),
    OPS_CONV("conv 5x5 stride2 pad2", 2, 3, 12, 11, cv_m, NULL),
    OPS_CONV("conv 3x2, stride 2x1, pad 2x1, dilation 2x1, groups 2", 3, 4, 11, 13, cv_n, NULL),
    OPS_CONV("conv_k3_p1_b1", 1, 3, 7, 9, fx_k3_p1_b1, "conv_k3_p1_b1"),
    OPS_CONV("conv_k3_p0_b3", 3, 5, 9, 7, fx_k3_p0_b3, "conv_k3_p0_b3"),
    OPS_CONV("conv_k5_s2_p2", 2, 3, 11, 9, fx_k5_s2_p2, "conv_k5_s2_p2"),
    OPS_CONV("conv_dil2", 2, 4, 9, 11, fx_dil2, "conv_dil2"),
    OPS_CONV("conv_groups2", 2, 6, 7, 5, fx_groups2, "conv_groups2"),
    OPS_CONV("conv_depthwise", 2, 5, 8, 7, fx_dw, "conv_depthwise"),
    OPS_CONV("conv_depthwise_x2", 2, 3, 7, 6, fx_dw_x2, "conv_depthwise_x2"),
    OPS_CONV("conv_1x1", 2, 9, 5, 7, fx_1x1, "conv_1x1"),
    OPS_CONV("conv_1x1_s2", 2, 9, 5, 7, fx_1x1_s2, "conv_1x1_s2"),
    OPS_CONV("conv_nobias", 2, 3, 6, 5, fx_nobias, "conv_nobias"),
    OPS_CONV("conv_rect", 2, 2, 9, 8, fx_rect, "conv_rect"),
    OPS_CONV("conv_wide", 2, 16, 12, 12, fx_wide, "conv_wide"),
    OPS_CONV("conv_pads_asym", 2, 3, 7, 6, cv_pads_asym, "conv_pads_asym"),
    OPS_CONV("conv_same_upper_k4_s2", 2, 3, 9, 8, cv_same_k4_s2, "conv_same_upper_k4_s2"),
    OPS_CONV("conv_same_lower_k2", 1, 2, 6, 5, cv_same_lower_k2, "conv_same_lower_k2"),
    OPS_CONV("conv 4x4 same_upper stride1 (pads 1, 2)", 2, 3, 6, 7, cv_same_k4_s1, NULL),
    OPS_CONV("conv 1x1 padded bottom 1, right 2", 2, 4, 5, 6, cv_1x1_asym, NULL),

    { DL_OP_CONV2D_TRANSPOSE, "convT_k3_s2_p1_op1", 3, 4, 5, 4, mk_convT, &ct_a, "conv", "convT_k3_s2_p1_op1", 1 },
    { DL_OP_CONV2D_TRANSPOSE, "convT_groups2_dil2", 2, 4, 6, 5, mk_convT, &ct_b, "conv", "convT_groups2_dil2", 1 },
    { DL_OP_CONV2D_TRANSPOSE, "convT_k2_s2_nobias", 3, 3, 4, 3, mk_convT, &ct_c, "conv", "convT_k2_s2_nobias", 1 },
    { DL_OP_CONV2D_TRANSPOSE, "convT_rect", 2, 2, 5, 6, mk_convT, &ct_d, "conv", "convT_rect", 1 },
    { DL_OP_CONV2D_TRANSPOSE, "conv transpose, asymmetric pads, batch 1", 1, 2, 4, 5, mk_convT, &ct_e, NULL, NULL, 1 },
    { DL_OP_CONV2D_TRANSPOSE, "conv transpose 1x1", 2, 3, 4, 5, mk_convT, &ct_f, NULL, NULL, 1 },
    { DL_OP_CONV2D_TRANSPOSE, "conv transpose depthwise", 2, 4, 5, 5, mk_convT, &ct_g, NULL, NULL, 1 },

    OPS_POOL(DL_OP_MAXPOOL2D, "maxpool 2x2 on 7x5", 3, 3, 7, 5, mk_maxpool, pl_k2, NULL),
    OPS_POOL(DL_OP_MAXPOOL2D, "maxpool 3x3 stride2 pad1", 1, 2, 7, 6, mk_maxpool, pl_k3_s2_p1, NULL),
    OPS_POOL(DL_OP_MAXPOOL2D, "maxpool 3x3 stride1 pad1 (overlapping)", 2, 3, 8, 9, mk_maxpool, pl_k3_s1_p1, NULL),
    OPS_POOL(DL_OP_MAXPOOL2D, "maxpool 3x4, stride 2x3, pad 1x2", 2, 2, 9, 10, mk_maxpool, pl_rect2, NULL),
    OPS_POOL(DL_OP_MAXPOOL2D, "maxpool_k2", 2, 3, 8, 6, mk_maxpool, pl_k2, "maxpool_k2"),
    OPS_POOL(DL_OP_MAXPOOL2D, "maxpool_k3_s2_p1", 2, 3, 9, 7, mk_maxpool, pl_k3_s2_p1, "maxpool_k3_s2_p1"),
    OPS_POOL(DL_OP_MAXPOOL2D, "maxpool_rect", 2, 2, 7, 8, mk_maxpool, pl_rect, "maxpool_rect"),
    OPS_POOL(DL_OP_AVGPOOL2D, "avgpool 2x2 on 7x5", 3, 3, 7, 5, mk_avgpool, pl_k2, NULL),
    OPS_POOL(DL_OP_AVGPOOL2D, "avgpool 3x3 stride2 pad1", 2, 2, 6, 7, mk_avgpool, pl_k3_s2_p1, NULL),
    OPS_POOL(DL_OP_AVGPOOL2D, "avgpool 4x4 stride3 pad2 (clipped windows)", 1, 2, 9, 8, mk_avgpool, pl_k4_s3_p2, NULL),
    OPS_POOL(DL_OP_AVGPOOL2D, "avgpool 3x4, stride 2x3, pad 1x2", 2, 2, 9, 10, mk_avgpool, pl_rect2, NULL),
    OPS_POOL(DL_OP_AVGPOOL2D, "avgpool_k2", 2, 3, 8, 6, mk_avgpool, pl_k2, "avgpool_k2"),
    OPS_POOL(DL_OP_AVGPOOL2D, "avgpool_k3_s2_p1", 2, 3, 9, 7, mk_avgpool, pl_k3_s2_p1, "avgpool_k3_s2_p1"),
    OPS_POOL(DL_OP_AVGPOOL2D, "avgpool_k3_s1_p1", 2, 2, 5, 6, mk_avgpool, pl_k3_s1_p1, "avgpool_k3_s1_p1"),
    OPS_POOL(DL_OP_MAXPOOL2D, "maxpool_pads_asym", 2, 3, 7, 6, mk_maxpool, pl_pads_asym, "maxpool_pads_asym"),
    OPS_POOL(DL_OP_MAXPOOL2D, "maxpool_same_upper", 2, 2, 7, 5, mk_maxpool, pl_same_upper, "maxpool_same_upper"),
    OPS_POOL(DL_OP_MAXPOOL2D, "maxpool_same_lower", 2, 2, 8, 6, mk_maxpool, pl_same_lower, "maxpool_same_lower"),
    OPS_POOL(DL_OP_MAXPOOL2D, "maxpool_ceil", 2, 2, 8, 8, mk_maxpool, pl_ceil, "maxpool_ceil"),
    OPS_POOL(DL_OP_MAXPOOL2D, "maxpool_dil2", 2, 2, 9, 8, mk_maxpool, pl_dil2, "maxpool_dil2"),
    OPS_POOL(DL_OP_MAXPOOL2D, "maxpool 2x2 ceil on 7x5 batch1", 1, 3, 7, 5, mk_maxpool, pl_ceil_k2, NULL),
    OPS_POOL(DL_OP_MAXPOOL2D, "maxpool dilation 3x2, pads top 2 right 1", 2, 2, 8, 7, mk_maxpool, pl_dil_rect, NULL),
    OPS_POOL(DL_OP_MAXPOOL2D_ARGMAX, "maxpool_argmax", 2, 3, 9, 7, mk_maxpool_argmax, pl_k3_s2_p1, "maxpool_argmax"),
    OPS_POOL(DL_OP_MAXPOOL2D_ARGMAX, "maxpool argmax column-major, dilation 3x2", 2, 2, 8, 7, mk_maxpool_argmax_cm, pl_dil_rect, NULL),
    OPS_POOL(DL_OP_MAXPOOL2D_ARGMAX, "maxpool argmax flat (ONNX's), batch 3", 3, 2, 9, 7, mk_maxpool_argmax_flat, pl_k3_s2_p1, NULL),
    OPS_POOL(DL_OP_AVGPOOL2D, "avgpool_ceil", 2, 2, 8, 8, mk_avgpool, pl_avg_ceil, "avgpool_ceil"),
    OPS_POOL(DL_OP_AVGPOOL2D, "avgpool_excl_pad", 2, 3, 9, 7, mk_avgpool, pl_avg_excl, "avgpool_excl_pad"),
    OPS_POOL(DL_OP_AVGPOOL2D, "avgpool_ceil_excl", 1, 2, 7, 6, mk_avgpool, pl_avg_ceil_excl, "avgpool_ceil_excl"),
    OPS_POOL(DL_OP_AVGPOOL2D, "avgpool_same_upper", 2, 2, 7, 5, mk_avgpool, pl_avg_same, "avgpool_same_upper"),
    OPS_UNARY(DL_OP_GLOBAL_MAXPOOL, "global_maxpool", 3, 5, 4, 6, mk_gmp, NULL, NULL, "global_maxpool"),
    OPS_UNARY(DL_OP_GLOBAL_MAXPOOL, "global maxpool over (C, L) batch1", 1, 4, 7, 0, mk_gmp, NULL, NULL, NULL),
    OPS_UNARY(DL_OP_GLOBAL_AVGPOOL, "global_avgpool", 3, 5, 4, 6, mk_gap, NULL, NULL, "global_avgpool"),
    OPS_UNARY(DL_OP_GLOBAL_AVGPOOL, "global_avgpool_cl", 2, 5, 6, 0, mk_gap, NULL, NULL, "global_avgpool_cl"),

    OPS_UNARY(DL_OP_BATCHNORM, "bn2d_train", 3, 4, 5, 3, mk_bn, NULL, "bn", "bn2d_train"),
    { DL_OP_BATCHNORM, "bn2d_eval", 2, 4, 5, 3, mk_bn, NULL, "bn", "bn2d_eval", 0 },
    OPS_UNARY(DL_OP_BATCHNORM, "bn1d_train", 4, 7, 0, 0, mk_bn_dense, NULL, "bn", "bn1d_train"),
    { DL_OP_BATCHNORM, "bn1d_eval", 4, 7, 0, 0, mk_bn_dense, NULL, "bn", "bn1d_eval", 0 },
    OPS_UNARY(DL_OP_BATCHNORM, "bn_cl_train", 3, 4, 7, 0, mk_bn, NULL, "bn", "bn_cl_train"),
    OPS_UNARY(DL_OP_BATCHNORM, "bn2d_ex_train", 1, 3, 4, 5, mk_bn_ex, NULL, "bn", "bn2d_ex_train"),
    OPS_UNARY(DL_OP_BATCHNORM, "batchnorm training batch1", 1, 2, 3, 3, mk_bn, NULL, NULL, NULL),
    OPS_UNARY(DL_OP_BATCHNORM, "conv, batchnorm, prelu, dropout", 3, 4, 6, 5, mk_bn_dropout, NULL, NULL, NULL),

    OPS_UNARY(DL_OP_DROPOUT, "dropout training", 3, 3, 5, 3, mk_dropout, &ops_p03, NULL, NULL),
    OPS_UNARY(DL_OP_DROPOUT, "dropout batch1", 1, 3, 5, 3, mk_dropout, &ops_p03, NULL, NULL),
    OPS_UNARY(DL_OP_RESHAPE, "reshape", 2, 4, 3, 5, mk_reshape, NULL, NULL, "reshape"),
    OPS_UNARY(DL_OP_RESHAPE, "flatten", 2, 2, 3, 4, mk_flatten_softmax, NULL, NULL, "flatten"),
    OPS_UNARY(DL_OP_RESHAPE, "flatten view between elu and dense", 2, 2, 3, 4, mk_flatten_dense, NULL, NULL, NULL),

    OPS_UNARY(DL_OP_RELU, "relu", 3, 3, 4, 5, mk_relu, NULL, NULL, "relu"),
    OPS_UNARY(DL_OP_LEAKY_RELU, "leaky_relu", 3, 3, 4, 5, mk_leaky, &ops_slope, NULL, "leaky_relu"),
    OPS_UNARY(DL_OP_ELU, "elu", 3, 3, 4, 5, mk_elu, &ops_alpha, NULL, "elu"),
    OPS_UNARY(DL_OP_PRELU, "prelu", 3, 3, 4, 5, mk_prelu, NULL, "act", "prelu"),
    OPS_UNARY(DL_OP_PRELU, "prelu_1d", 3, 6, 0, 0, mk_prelu, NULL, "act", "prelu_1d"),
    OPS_UNARY(DL_OP_PRELU, "prelu after dense", 3, 4, 0, 0, mk_prelu_dense, NULL, NULL, NULL),
    OPS_UNARY(DL_OP_SIGMOID, "sigmoid", 3, 3, 4, 5, mk_sigmoid, NULL, NULL, "sigmoid"),
    OPS_UNARY(DL_OP_TANH, "tanh", 3, 3, 4, 5, mk_tanh, NULL, NULL, "tanh"),
    OPS_UNARY(DL_OP_SOFTMAX, "softmax_nchw", 3, 5, 3, 4, mk_softmax, NULL, NULL, "softmax_nchw"),
    OPS_UNARY(DL_OP_SOFTMAX, "softmax_1d", 2, 9, 0, 0, mk_softmax, NULL, NULL, "softmax_1d"),

    OPS_UNARY(DL_OP_CLIP, "clip", 3, 3, 4, 5, mk_clip, ops_clip, NULL, "clip"),
    OPS_UNARY(DL_OP_CLIP, "relu6", 3, 3, 4, 5, mk_clip, ops_relu6, NULL, "relu6"),
    OPS_UNARY(DL_OP_CLIP, "conv then relu6 (fusable)", 2, 3, 2, 2, mk_conv_clip, NULL, NULL, NULL),
    OPS_UNARY(DL_OP_HARD_SIGMOID, "hard_sigmoid", 3, 3, 4, 5, mk_hard_sigmoid, ops_hsig_torch, NULL, "hard_sigmoid"),
    OPS_UNARY(DL_OP_HARD_SIGMOID, "hard_sigmoid_onnx", 3, 3, 4, 5, mk_hard_sigmoid, ops_hsig_onnx, NULL, "hard_sigmoid_onnx"),
    OPS_UNARY(DL_OP_HARD_SWISH, "hard_swish", 3, 3, 4, 5, mk_hard_swish, NULL, NULL, "hard_swish"),
    OPS_UNARY(DL_OP_HARD_SWISH, "dense then hard swish (fusable)", 2, 7, 0, 0, mk_dense_hard_swish, NULL, NULL, NULL),
    OPS_UNARY(DL_OP_SELU, "selu", 3, 3, 4, 5, mk_selu, NULL, NULL, "selu"),
    OPS_UNARY(DL_OP_GELU, "gelu", 3, 3, 4, 5, mk_gelu, NULL, NULL, "gelu"),
    OPS_UNARY(DL_OP_GELU, "gelu_tanh", 3, 3, 4, 5, mk_gelu, &ops_p03, NULL, "gelu_tanh"),
    OPS_UNARY(DL_OP_SILU, "silu", 3, 3, 4, 5, mk_silu, NULL, NULL, "silu"),
    OPS_UNARY(DL_OP_SOFTPLUS, "softplus", 3, 3, 4, 5, mk_softplus, NULL, NULL, "softplus"),
    OPS_UNARY(DL_OP_SQRT, "sqrt_softplus", 3, 3, 4, 5, mk_sqrt_softplus, NULL, NULL, "sqrt_softplus"),
    OPS_UNARY(DL_OP_LOG_SOFTMAX, "log_softmax_nchw", 3, 3, 4, 5, mk_log_softmax, NULL, NULL, "log_softmax_nchw"),
    OPS_UNARY(DL_OP_LOG_SOFTMAX, "log_softmax_1d", 2, 9, 0, 0, mk_log_softmax, NULL, NULL, "log_softmax_1d"),

    OPS_UNARY(DL_OP_ADD, "add2", 3, 3, 5, 4, mk_add2, NULL, NULL, "add2"),
    OPS_UNARY(DL_OP_ADD, "add3", 3, 6, 0, 0, mk_add3, NULL, NULL, "add3"),
    OPS_UNARY(DL_OP_ADD, "add of 3 branches", 3, 6, 0, 0, mk_add3_dense, NULL, NULL, NULL),
    OPS_UNARY(DL_OP_ADD, "residual block", 3, 2, 3, 4, mk_residual, NULL, NULL, NULL),
    OPS_UNARY(DL_OP_MUL, "bcast_affine", 3, 3, 4, 5, mk_bcast_affine, NULL, NULL, "bcast_affine"),
    OPS_UNARY(DL_OP_CONSTANT, "constants (3,1,1) and (1,4,5)", 2, 3, 4, 5, mk_bcast_affine, NULL, NULL, "bcast_affine"),
    OPS_UNARY(DL_OP_CONSTANT, "constant fed by x (dl_constant_for)", 2, 3, 4, 5, mk_const_for, NULL, NULL, NULL),
    OPS_UNARY(DL_OP_DIV, "bcast_div", 3, 3, 4, 5, mk_bcast_div, NULL, NULL, "bcast_div"),
    OPS_UNARY(DL_OP_SUB, "bcast_sub", 3, 3, 4, 5, mk_bcast_sub, NULL, NULL, "bcast_sub"),
    OPS_UNARY(DL_OP_MUL, "bcast_mul_scalar", 3, 3, 4, 5, mk_bcast_mul_scalar, NULL, NULL, "bcast_mul_scalar"),
    OPS_UNARY(DL_OP_SUB, "(1,H,W) minus x, over a sum of sigmoids", 2, 3, 5, 4, mk_bcast_hw, NULL, NULL, NULL),
    OPS_UNARY(DL_OP_PAD, "pad_constant", 2, 3, 4, 5, mk_pad, &pad_const, NULL, "pad_constant"),
    OPS_UNARY(DL_OP_PAD, "pad_reflect", 2, 2, 5, 6, mk_pad, &pad_reflect, NULL, "pad_reflect"),
    OPS_UNARY(DL_OP_PAD, "pad_edge", 1, 2, 4, 3, mk_pad, &pad_edge, NULL, "pad_edge"),
    OPS_UNARY(DL_OP_TRANSPOSE, "transpose_hwc", 2, 3, 4, 5, mk_transpose, perm_hwc, NULL, "transpose_hwc"),
    OPS_UNARY(DL_OP_TRANSPOSE, "transpose_2d", 2, 4, 6, 0, mk_transpose, perm_2d, NULL, "transpose_2d"),
    OPS_UNARY(DL_OP_UPSAMPLE, "upsample_nearest2", 2, 2, 3, 4, mk_upsample, &up_nearest2, NULL, "upsample_nearest2"),
    OPS_UNARY(DL_OP_UPSAMPLE, "upsample_bilinear", 2, 2, 3, 4, mk_upsample, &up_bilinear, NULL, "upsample_bilinear"),
    OPS_UNARY(DL_OP_UPSAMPLE, "upsample_bilinear_ac", 1, 2, 4, 3, mk_upsample, &up_bilinear_ac, NULL, "upsample_bilinear_ac"),
    OPS_UNARY(DL_OP_UPSAMPLE, "upsample nearest 1x3", 2, 2, 3, 3, mk_upsample, &up_nearest_13, NULL, NULL),
    OPS_UNARY(DL_OP_SLICE, "slice_channels", 2, 5, 3, 4, mk_slice, slice_1_4, NULL, "slice_channels"),
    OPS_UNARY(DL_OP_SLICE, "channel shuffle: slices, concat, transpose", 2, 4, 3, 4, mk_channel_split, NULL, NULL, NULL),
    OPS_UNARY(DL_OP_REDUCE, "reduce_sum_hw_keep", 2, 3, 4, 5, mk_reduce_sum, red_hw_keep, NULL, "reduce_sum_hw_keep"),
    OPS_UNARY(DL_OP_REDUCE, "reduce_mean_all", 2, 3, 4, 5, mk_reduce_mean, red_all, NULL, "reduce_mean_all"),
    OPS_UNARY(DL_OP_REDUCE, "reduce_sum_c", 2, 4, 3, 5, mk_reduce_sum, red_c, NULL, "reduce_sum_c"),
    OPS_UNARY(DL_OP_REDUCE, "reduce mean over L of (C, L), batch 1", 1, 4, 6, 0, mk_reduce_mean, red_w, NULL, NULL),
    OPS_UNARY(DL_OP_CONCAT, "concat", 3, 3, 5, 4, mk_concat, NULL, NULL, "concat"),
    OPS_UNARY(DL_OP_CONCAT, "concat_1d", 3, 5, 0, 0, mk_concat_1d, NULL, NULL, "concat_1d"),
    OPS_UNARY(DL_OP_CONCAT, "concat conv3x3, identity, conv1x1", 3, 2, 5, 3, mk_concat_conv, NULL, NULL, NULL),
    OPS_UNARY(DL_OP_MUL, "mul", 2, 3, 4, 5, mk_mul, NULL, NULL, "mul"),
    OPS_UNARY(DL_OP_MUL, "mul of 2 branches", 2, 6, 0, 0, mk_mul_dense, NULL, NULL, NULL),
    OPS_UNARY(DL_OP_MATMUL, "matmul_2d", 2, 4, 6, 0, mk_matmul_2d, NULL, NULL, "matmul_2d"),
    OPS_UNARY(DL_OP_MATMUL, "matmul_3d", 2, 2, 3, 4, mk_matmul_3d, NULL, NULL, "matmul_3d"),
    OPS_UNARY(DL_OP_MATMUL, "matmul 3x4 by 4x2", 3, 12, 0, 0, mk_matmul, NULL, NULL, NULL),
    OPS_UNARY(DL_OP_MATMUL, "batched matmul 2x(3x4 by 4x5)", 2, 24, 0, 0, mk_matmul3, NULL, NULL, NULL),
    OPS_UNARY(DL_OP_MATMUL, "one layer as both inputs of add, mul, matmul, concat", 3, 9, 0, 0, mk_same_input, NULL, NULL, NULL),
    OPS_UNARY(DL_OP_CUSTOM, "custom layer with parameters", 3, 5, 0, 0, mk_custom, NULL, NULL, NULL),
    OPS_UNARY(DL_OP_CUSTOM, "custom_square", 3, 5, 0, 0, mk_custom, NULL, "fc", "custom_square"),
};
#define OP_CASES ((int)(sizeof op_cases / sizeof op_cases[0]))

/* Builds case k in net: returns the output (the input is layer 0), NULL on failure. */
static dl_layer *op_case_build(dl_net *net, const op_case *k) {
    dl_layer *x = dl_input(net, k->c, k->h, k->w), *y;
    if (!k->make) return x;
    y = k->make(x, k->arg);
    if (y && k->lname) dl_layer_set_name(y, k->lname);
    return y;
}

/* Fails (one CHECK per op) unless every op has a case in ran[]. Ops in
   elsewhere[] are covered by a test of their own, given by the reason. */
static void op_cases_cover(const char *suite, const int *ran, const int *elsewhere) {
    int op;
    for (op = 0; op < DL_OP_COUNT; op++)
        CHECK(ran[op] || (elsewhere && elsewhere[op]), "%s: op %s has no case in tests/ops.h", suite, dl_op_name(op));
}
#endif
