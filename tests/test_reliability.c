/* test_reliability.c - dl.h must never be the reason the program it lives
   in crashes or loses work.
     - bad input: a table of wrong calls to every entry point, each of which
       must give the documented status and a message naming the call, the
       layer and the shapes (the count is printed);
     - non-finite numbers: dl_predict passes them on, training refuses them
       before anything changes;
     - allocation failure: every allocation made while building, training,
       moving, saving and loading a net fails in turn; each failure must be
       reported, leak nothing, and leave the net usable (a retry then gives
       bit for bit the results of a run without failure);
     - kill during save: a child process saving is SIGKILLed at random
       moments; the file must always load, as the old or the new version;
     - threads: separate nets in separate threads, saving to one path;
     - the fuzzing corpora (tests/fuzz) replayed through the fuzzers' checks.
   All allocation goes through a counting allocator defined before dl.h. */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <string.h>
#include <stdint.h>

/* ---- the counting allocator: the fail_at-th call fails (0: none) ---- */
static long ta_calls, ta_fail_at, ta_live, ta_injected;
static size_t ta_size;                      /* the size the failed call asked for */
static void *ta_malloc(size_t n) {
    long k = __atomic_add_fetch(&ta_calls, 1, __ATOMIC_RELAXED);
    void *p;
    if (k == __atomic_load_n(&ta_fail_at, __ATOMIC_RELAXED)) { ta_injected = 1; ta_size = n; return NULL; }
    if ((p = malloc(n ? n : 1)) != NULL) __atomic_add_fetch(&ta_live, 1, __ATOMIC_RELAXED);
    return p;
}
static void *ta_realloc(void *q, size_t n) {
    long k;
    if (!q) return ta_malloc(n);
    k = __atomic_add_fetch(&ta_calls, 1, __ATOMIC_RELAXED);
    if (k == __atomic_load_n(&ta_fail_at, __ATOMIC_RELAXED)) { ta_injected = 1; return NULL; }
    return realloc(q, n ? n : 1);
}
static void ta_free(void *p) {
    if (!p) return;
    __atomic_sub_fetch(&ta_live, 1, __ATOMIC_RELAXED);
    free(p);
}
static long ta_live_now(void) { return __atomic_load_n(&ta_live, __ATOMIC_RELAXED); }

#define DL_MALLOC(sz) ta_malloc(sz)
#define DL_FREE(p) ta_free(p)
#define DL_IMPLEMENTATION
#include "../dl.h"
#define IDX_MALLOC(n) ta_malloc(n)
#define IDX_REALLOC(p, n) ta_realloc(p, n)
#define IDX_FREE(p) ta_free(p)
#include "../examples/idx.h"
#include "fuzz/fuzz_dl.h"
#include "test.h"

#include <dirent.h>
#include <limits.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}
static unsigned char *read_all(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    unsigned char *p = NULL;
    long n;
    *len = 0;
    if (!f) return NULL;
    if (!fseek(f, 0, SEEK_END) && (n = ftell(f)) >= 0 && !fseek(f, 0, SEEK_SET) && (p = (unsigned char *)malloc((size_t)n + 1)) &&
        fread(p, 1, (size_t)n, f) == (size_t)n)
        *len = (size_t)n;
    else { free(p); p = NULL; }
    fclose(f);
    return p;
}
static int write_all(const char *path, const void *p, size_t len) {
    FILE *f = fopen(path, "wb");
    int ok = f && fwrite(p, 1, len, f) == len;
    if (f) ok = !fclose(f) && ok;
    return ok;
}

/* ======================================================================== */
/*  Bad input                                                               */
/* ======================================================================== */
static int n_cases;
/* One case: the call gave `got` and should give `want`; its message must
   contain each '|'-separated word of `words`. */
static void bad_case(int line, const char *what, int got, int want, const char *msg, const char *words) {
    const char *p = words;
    n_cases++;
    if (got != want) { CHECK(0, "line %d: %s gave %d, want %d (%s)", line, what, got, want, msg ? msg : ""); return; }
    if (!words) return;
    if (!msg || !msg[0]) { CHECK(0, "line %d: %s: no message", line, what); return; }
    while (*p) {
        const char *bar = strchr(p, '|');
        size_t n = bar ? (size_t)(bar - p) : strlen(p);
        char w[96];
        snprintf(w, sizeof w, "%.*s", (int)n, p);
        if (!strstr(msg, w)) { CHECK(0, "line %d: %s: message '%s' does not name '%s'", line, what, msg, w); return; }
        p += n + (bar != NULL);
    }
}
static dl_net *fresh(dl_net *net) { if (net) net->err[0] = 0; return net; }
/* rc-returning calls; NULL-returning calls (-1 for NULL); plain conditions */
#define BAD_RC(net, expr, want, words) bad_case(__LINE__, #expr, (fresh(net), (int)(expr)), want, dl_net_error(net), words)
#define BAD_NULL(net, expr, words) bad_case(__LINE__, #expr, (fresh(net), (expr)) ? 0 : -1, -1, dl_net_error(net), words)
#define BAD_IS(cond) bad_case(__LINE__, #cond, (cond) ? 0 : 1, 0, NULL, NULL)

static int fwd_ok(const dl_custom_args *a) { (void)a; return 0; }
static void par_serial(void *user, int n, dl_task task, void *arg) { int i; (void)user; for (i = 0; i < n; i++) task(arg, i, 0); }

static void bad_input_build(dl_net *net, dl_net *other) {
    dl_layer *x = dl_net_find(net, "input_1"), *v = dl_net_find(net, "input_2"), *ox = dl_net_layer(other, 0);
    dl_layer *xs[70], *big;
    dl_conv_desc cd;
    dl_pool_desc pd;
    dl_custom_desc cu;
    int i, shp[3];
    char longname[48];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = 0;
    for (i = 0; i < 70; i++) xs[i] = x;

    /* net */
    dl_net_free(NULL); dl_net_seed(NULL, 1); dl_net_set_input_grad(NULL, 1);
    BAD_IS(strstr(dl_net_error(NULL), "NULL") != NULL);
    BAD_IS(dl_net_layer_count(NULL) == 0);
    BAD_IS(!dl_net_layer(net, 100) && !dl_net_layer(net, -100) && !dl_net_layer(NULL, 0));
    BAD_IS(!dl_net_find(net, NULL) && !dl_net_find(NULL, "input_1"));
    BAD_IS(dl_net_set_threads(NULL, 1) == DL_ERR_ARG);
    BAD_RC(net, dl_net_set_threads(net, -1), DL_ERR_ARG, "dl_net_set_threads|-1");
    BAD_RC(net, dl_net_set_threads(net, 257), DL_ERR_ARG, "dl_net_set_threads|257");
    BAD_RC(net, dl_net_set_parallel(net, par_serial, NULL, 0), DL_ERR_ARG, "dl_net_set_parallel|0 threads");
    BAD_IS(dl_net_set_parallel(NULL, NULL, NULL, 1) == DL_ERR_ARG);

    /* input */
    BAD_IS(!dl_input(NULL, 1, 1, 1));
    BAD_NULL(net, dl_input(net, 0, 8, 8), "input|0x8x8");
    BAD_NULL(net, dl_input(net, -1, 0, 0), "input|-1x0x0");
    BAD_NULL(net, dl_input(net, 1, 0, 5), "input|1x0x5");
    BAD_NULL(net, dl_input(net, 1, -2, 2), "input|1x-2x2");
    BAD_NULL(net, dl_input(net, INT_MAX, INT_MAX, INT_MAX), "input|too large");

    /* dense */
    BAD_IS(!dl_dense(NULL, 3));
    BAD_NULL(net, dl_dense(x, 0), "dense|input_1|3x8x8|units must be positive");
    BAD_NULL(net, dl_dense(x, -4), "dense|input_1|-4");
    BAD_NULL(net, dl_dense_ex(x, NULL), "dense|desc is NULL");
    BAD_NULL(net, dl_dense(x, INT_MAX), "dense|too large");
    BAD_NULL(net, dl_dense(v, 500000000), "dense|weight is too large");

    /* conv2d */
    BAD_NULL(net, dl_conv2d(x, 4, 11, 1, 0), "conv2d|input_1|3x8x8|does not fit kernel 11x11");
    BAD_NULL(net, dl_conv2d(x, 0, 3, 1, 1), "conv2d|input_1|filters 0");
    BAD_NULL(net, dl_conv2d(x, 4, 3, 0, 1), "conv2d|input_1|stride 0");
    BAD_NULL(net, dl_conv2d(x, 4, 3, -1, 1), "conv2d|stride -1");
    BAD_NULL(net, dl_conv2d(x, 4, 3, 1, -1), "conv2d|pads (top -1, left -1, bottom -1, right -1)|not be negative");
    BAD_NULL(net, dl_conv2d(x, 4, 0, 1, 1), "conv2d|kernel 0x0");
    BAD_NULL(net, dl_conv2d(v, 4, 3, 1, 1), "conv2d|input_2|CxHxW");
    BAD_NULL(net, dl_conv2d(x, 4, INT_MAX, 1, 1), "conv2d|does not fit");
    BAD_NULL(net, dl_conv2d(x, 4, 9, 2, 0), "conv2d|input_1|does not fit kernel 9x9");      /* too big by less than a stride */
    BAD_NULL(net, dl_maxpool2d(dl_input(net, 1, 1, 8), 2, 2), "maxpool2d|1x1x8|does not fit kernel 2x2");
    BAD_NULL(net, dl_conv2d(x, 4, 3, 1, INT_MAX), "conv2d|does not fit");
    BAD_NULL(net, dl_conv2d(x, INT_MAX, 3, 1, 1), "conv2d|too large");
    BAD_NULL(net, dl_conv2d_ex(x, NULL), "conv2d|desc is NULL");
    memset(&cd, 0, sizeof cd); cd.filters = 4; cd.kernel = 3; cd.dilation = -1;
    BAD_NULL(net, dl_conv2d_ex(x, &cd), "conv2d|dilation -1x-1");
    memset(&cd, 0, sizeof cd); cd.filters = 4; cd.kernel = 3; cd.groups = 2;
    BAD_NULL(net, dl_conv2d_ex(x, &cd), "conv2d|groups 2|channels 3");
    cd.groups = -1;
    BAD_NULL(net, dl_conv2d_ex(x, &cd), "conv2d|groups -1");
    memset(&cd, 0, sizeof cd); cd.filters = 4; cd.kernel_h = 3; cd.kernel_w = -3;
    BAD_NULL(net, dl_conv2d_ex(x, &cd), "conv2d|kernel 3x-3");
    memset(&cd, 0, sizeof cd); cd.filters = 4; cd.kernel = 3; cd.pad_bottom = -2;
    BAD_NULL(net, dl_conv2d_ex(x, &cd), "conv2d|input_1|pads (top 0, left 0, bottom -2, right 0)");
    BAD_NULL(net, dl_conv2d_transpose(x, 4, 3, 0, 1), "conv2d_transpose|input_1|stride 0");
    BAD_NULL(net, dl_conv2d_transpose(v, 4, 3, 1, 1), "conv2d_transpose|input_2|CxHxW");
    BAD_NULL(net, dl_conv2d_transpose(x, 4, 3, 1, 9), "conv2d_transpose|3x8x8|gives an output of -8x-8");
    BAD_NULL(net, dl_conv2d_transpose_ex(x, NULL), "conv2d_transpose|desc is NULL");
    BAD_IS(!dl_conv2d_transpose(NULL, 4, 3, 1, 1));
    memset(&cd, 0, sizeof cd); cd.filters = 4; cd.kernel = 3; cd.stride = 2; cd.output_padding = 2;
    BAD_NULL(net, dl_conv2d_transpose_ex(x, &cd), "conv2d_transpose|output_padding 2x2|stride 2x2");
    memset(&cd, 0, sizeof cd); cd.filters = 4; cd.kernel = 3; cd.groups = 2;
    BAD_NULL(net, dl_conv2d_transpose_ex(x, &cd), "conv2d_transpose|groups 2|channels 3");
    memset(&cd, 0, sizeof cd); cd.filters = 4; cd.kernel = 3; cd.auto_pad = DL_PAD_SAME_UPPER;
    BAD_NULL(net, dl_conv2d_transpose_ex(x, &cd), "conv2d_transpose|auto_pad 1|give the pads");
    memset(&cd, 0, sizeof cd); cd.filters = 4; cd.kernel = 3; cd.auto_pad = -1;
    BAD_NULL(net, dl_conv2d_ex(x, &cd), "conv2d|auto_pad -1");
    memset(&cd, 0, sizeof cd); cd.filters = 4; cd.kernel = 9; cd.pad_top = 1;
    BAD_NULL(net, dl_conv2d_ex(x, &cd), "conv2d|3x8x8|does not fit kernel 9x9|top 1, left 0, bottom 0");

    /* pooling */
    BAD_NULL(net, dl_maxpool2d(x, 0, 2), "maxpool2d|input_1|kernel 0");
    BAD_NULL(net, dl_maxpool2d(x, 2, 0), "maxpool2d|stride 0");
    BAD_NULL(net, dl_maxpool2d(x, 9, 1), "maxpool2d|input_1|3x8x8|does not fit kernel 9x9");
    BAD_NULL(net, dl_maxpool2d(v, 2, 2), "maxpool2d|input_2|CxHxW");
    BAD_NULL(net, dl_maxpool2d_ex(x, NULL), "maxpool2d|desc is NULL");
    memset(&pd, 0, sizeof pd); pd.kernel = 2; pd.pad = 2;
    BAD_NULL(net, dl_maxpool2d_ex(x, &pd), "maxpool2d|pads (top 2, left 2, bottom 2, right 2)|less than the 2x2 window");
    BAD_NULL(net, dl_avgpool2d(x, 0, 1), "avgpool2d|kernel 0");
    BAD_NULL(net, dl_avgpool2d(x, 2, -1), "avgpool2d|stride -1");
    memset(&pd, 0, sizeof pd); pd.kernel = 3; pd.pad = -1;
    BAD_NULL(net, dl_avgpool2d_ex(x, &pd), "avgpool2d|pads (top -1, left -1, bottom -1, right -1)");
    memset(&pd, 0, sizeof pd); pd.kernel = 3; pd.pad_top = 1; pd.pad_right = 3;
    BAD_NULL(net, dl_maxpool2d_ex(x, &pd), "maxpool2d|input_1|pads (top 1, left 0, bottom 0, right 3)|less than the 3x3 window");
    memset(&pd, 0, sizeof pd); pd.kernel = 3; pd.auto_pad = 3;
    BAD_NULL(net, dl_maxpool2d_ex(x, &pd), "maxpool2d|auto_pad 3");
    memset(&pd, 0, sizeof pd); pd.kernel = 3; pd.ceil_mode = 2;
    BAD_NULL(net, dl_avgpool2d_ex(x, &pd), "avgpool2d|ceil_mode 2");
    memset(&pd, 0, sizeof pd); pd.kernel = 3; pd.dilation = 2;
    BAD_NULL(net, dl_avgpool2d_ex(x, &pd), "avgpool2d|dilation 2x2|not dilated");
    memset(&pd, 0, sizeof pd); pd.kernel = 3; pd.dilation_w = -1;
    BAD_NULL(net, dl_maxpool2d_ex(x, &pd), "maxpool2d|dilation 1x-1");
    memset(&pd, 0, sizeof pd); pd.kernel = 3; pd.dilation = 4;
    BAD_NULL(net, dl_maxpool2d_ex(x, &pd), "maxpool2d|3x8x8|does not fit kernel 3x3, dilation 4x4");
    BAD_NULL(net, dl_global_maxpool(v), "global_maxpool|input_2|CxHxW or CxL");
    BAD_IS(!dl_global_maxpool(NULL));
    BAD_NULL(net, dl_avgpool2d(v, 2, 2), "avgpool2d|input_2|CxHxW");
    BAD_NULL(net, dl_global_avgpool(v), "global_avgpool|input_2|CxHxW or CxL");
    BAD_IS(!dl_global_avgpool(NULL));

    /* batchnorm, dropout, activations */
    BAD_NULL(net, dl_batchnorm_ex(x, 0, 0.1f), "batchnorm|input_1|eps 0");
    BAD_NULL(net, dl_batchnorm_ex(x, NAN, 0.1f), "batchnorm|eps nan");
    BAD_NULL(net, dl_batchnorm_ex(x, -1, 0.1f), "batchnorm|eps -1");
    BAD_NULL(net, dl_batchnorm_ex(x, 1e-5f, 1.5f), "batchnorm|momentum 1.5");
    BAD_NULL(net, dl_batchnorm_ex(x, 1e-5f, NAN), "batchnorm|momentum nan");
    BAD_NULL(net, dl_batchnorm_ex(x, 1e-5f, -0.1f), "batchnorm|momentum -0.1");
    BAD_NULL(net, dl_dropout(x, 1.0f), "dropout|input_1|p 1");
    BAD_NULL(net, dl_dropout(x, -0.1f), "dropout|p -0.1");
    BAD_NULL(net, dl_dropout(x, NAN), "dropout|p nan");
    BAD_NULL(net, dl_dropout(x, INFINITY), "dropout|p inf");
    BAD_NULL(net, dl_leaky_relu(x, NAN), "leaky_relu|input_1|finite");
    BAD_NULL(net, dl_leaky_relu(x, INFINITY), "leaky_relu|finite");
    BAD_NULL(net, dl_elu(x, NAN), "elu|finite");
    BAD_NULL(net, dl_elu(x, -INFINITY), "elu|finite");
    BAD_NULL(net, dl_clip(x, 1, -1), "clip|input_1|min 1 is above max -1");
    BAD_NULL(net, dl_clip(x, NAN, 1), "clip|alpha nan");
    BAD_NULL(net, dl_hard_sigmoid(x, 0.2f, INFINITY), "hard_sigmoid|input_1|beta inf");
    BAD_NULL(net, dl_gelu(x, 2), "gelu|input_1|approximate 2");
    BAD_IS(!dl_clip(NULL, 0, 6) && !dl_hard_sigmoid(NULL, 0.2f, 0.5f) && !dl_hard_swish(NULL) && !dl_selu(NULL));
    BAD_IS(!dl_gelu(NULL, 0) && !dl_silu(NULL) && !dl_softplus(NULL) && !dl_log_softmax(NULL));
    BAD_IS(!dl_relu(NULL) && !dl_sigmoid(NULL) && !dl_tanh(NULL) && !dl_softmax(NULL) && !dl_prelu(NULL) && !dl_flatten(NULL));

    /* reshape */
    BAD_NULL(net, dl_reshape(x, 2, NULL), "reshape|input_1|shape NULL");
    shp[0] = 192; shp[1] = 1; shp[2] = 1;
    BAD_NULL(net, dl_reshape(x, 0, shp), "reshape|input_1|1 to 3 dims, got 0");
    BAD_NULL(net, dl_reshape(x, 4, shp), "reshape|got 4");
    shp[0] = -1; shp[1] = -1;
    BAD_NULL(net, dl_reshape(x, 2, shp), "reshape|dim 1 is -1");
    shp[0] = 0; shp[1] = 192;
    BAD_NULL(net, dl_reshape(x, 2, shp), "reshape|dim 0 is 0");
    shp[0] = 5; shp[1] = 7;
    BAD_NULL(net, dl_reshape(x, 2, shp), "reshape|input_1|3x8x8|5x7");
    shp[0] = shp[1] = shp[2] = INT_MAX;
    BAD_NULL(net, dl_reshape(x, 3, shp), "reshape|cannot reshape 3x8x8");
    shp[0] = -1; shp[1] = 5;
    BAD_NULL(net, dl_reshape(x, 2, shp), "reshape|with -1");
    shp[0] = -2; shp[1] = 96;
    BAD_NULL(net, dl_reshape(x, 2, shp), "reshape|dim 0 is -2");

    /* graph ops */
    static const float xs_data[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
    BAD_NULL(net, dl_add(x, v), "add|input_1|3x8x8|input_2|5");
    BAD_NULL(net, dl_add(x, ox), "add|input_1|another net");
    BAD_IS(!dl_add(x, NULL) && !dl_add(NULL, x));
    BAD_NULL(net, dl_add_n(xs, 1), "add|2 to 64 inputs, got 1");
    BAD_NULL(net, dl_add_n(xs, 65), "add|got 65");
    BAD_IS(!dl_add_n(NULL, 2) && !dl_add_n(xs, 0) && !dl_add_n(xs, -1));
    xs[1] = v;
    BAD_NULL(net, dl_concat(xs, 2), "concat|input_1|3x8x8|input_2|all dims but the first");
    xs[1] = x;
    BAD_NULL(net, dl_concat(xs, 65), "concat|got 65");
    big = dl_input(net, 500000000, 0, 0);
    for (i = 0; i < 8; i++) xs[i] = big;
    BAD_NULL(net, dl_concat(xs, 8), "concat|too many channels");
    for (i = 0; i < 70; i++) xs[i] = x;
    BAD_NULL(net, dl_mul(x, v), "mul|3x8x8|5|shapes must match");
    BAD_NULL(other, dl_mul(ox, x), "mul|input_1|another net");
    BAD_NULL(net, dl_matmul(v, v), "matmul|cannot multiply 5 by 5");
    BAD_NULL(net, dl_pad(x, -1, DL_PAD_CONSTANT), "pad|input_1|pads (top -1, left -1, bottom -1, right -1)");
    BAD_NULL(net, dl_pad(x, 8, DL_PAD_REFLECT), "pad|less than the size|3x8x8");
    BAD_NULL(net, dl_pad(x, 1, 7), "pad|mode 7");
    BAD_NULL(net, dl_pad(v, 1, 0), "pad|input_2|CxHxW");
    BAD_NULL(net, dl_pad_ex(x, NULL), "pad|desc is NULL");
    {
        int bad_perm[3] = { 0, 0, 1 };
        BAD_NULL(net, dl_transpose(x, bad_perm), "transpose|input_1|perm (0, 0, 1)");
        BAD_NULL(net, dl_transpose(x, NULL), "transpose|perm is NULL");
    }
    BAD_NULL(net, dl_upsample(x, 0, 0), "upsample|input_1|scale 0x0");
    BAD_NULL(net, dl_upsample(x, 2, 3), "upsample|bilinear 3");
    BAD_NULL(net, dl_upsample(v, 2, 0), "upsample|input_2|CxHxW");
    BAD_NULL(net, dl_upsample_ex(x, NULL), "upsample|desc is NULL");
    BAD_NULL(net, dl_slice_channels(x, 2, 2), "slice|channels 2..2|3 channels of 3x8x8");
    BAD_NULL(net, dl_slice_channels(x, -1, 2), "slice|channels -1..2");
    BAD_NULL(net, dl_slice_channels(x, 0, 4), "slice|channels 0..4");
    {
        int ax[2] = { 0, 3 };
        BAD_NULL(net, dl_reduce_sum(x, ax, 2, 0), "reduce|input_1|axis 3|3 dims");
        BAD_NULL(net, dl_reduce_mean(x, NULL, 2, 0), "reduce|2 axes but axes NULL");
        BAD_NULL(net, dl_reduce_mean(x, ax, 4, 0), "reduce|4 axes");
        BAD_IS(!dl_reduce_sum(NULL, NULL, 0, 0) && !dl_reduce_mean(NULL, NULL, 0, 0));
    }
    BAD_IS(!dl_pad(NULL, 1, 0) && !dl_transpose(NULL, NULL) && !dl_upsample(NULL, 2, 0) && !dl_slice_channels(NULL, 0, 1));
    BAD_NULL(net, dl_sub(x, v), "sub|input_1|3x8x8|input_2|5|broadcast");
    BAD_NULL(net, dl_div(v, x), "div|input_2|5|input_1|3x8x8");
    BAD_IS(!dl_sub(x, NULL) && !dl_div(NULL, x));
    BAD_NULL(net, dl_constant(net, 0, shp, xs_data), "constant|0 dims");
    BAD_NULL(net, dl_constant(net, 1, NULL, xs_data), "constant|shape NULL");
    BAD_NULL(net, dl_constant(net, 1, shp, NULL), "constant|data NULL");
    BAD_IS(!dl_constant(NULL, 1, shp, xs_data));
    {
        int neg[2] = { 2, -3 };
        BAD_NULL(net, dl_constant(net, 2, neg, xs_data), "constant|dim 1 is -3");
        neg[1] = 1;
        BAD_NULL(net, dl_predict(net, dl_constant(net, 2, neg, xs_data), xs_data, 1), "dl_predict|reads no input layer");
    }
    shp[0] = 24; shp[1] = 8;
    {
        dl_layer *a = dl_reshape(x, 2, shp);
        shp[0] = 16; shp[1] = 12;
        BAD_NULL(net, dl_matmul(a, dl_reshape(x, 2, shp)), "matmul|24x8 by 16x12");
    }

    /* custom */
    memset(&cu, 0, sizeof cu);
    cu.ndim = 1; cu.shape[0] = 4; cu.forward = fwd_ok;
    BAD_IS(!dl_custom(NULL, 1, &cu) && !dl_custom(xs, 0, &cu));
    BAD_NULL(net, dl_custom(xs, 1, NULL), "custom|forward callback");
    cu.forward = NULL;
    BAD_NULL(net, dl_custom(xs, 1, &cu), "custom|forward callback");
    cu.forward = fwd_ok; cu.n_params = 5;
    BAD_NULL(net, dl_custom(xs, 1, &cu), "custom|0..4 params");
    cu.n_params = -1;
    BAD_NULL(net, dl_custom(xs, 1, &cu), "custom|0..4 params");
    cu.n_params = 1; cu.params[0].size = 0;
    BAD_NULL(net, dl_custom(xs, 1, &cu), "custom|param 0 has size 0");
    cu.n_params = 0; cu.ndim = 0;
    BAD_NULL(net, dl_custom(xs, 1, &cu), "custom|input_1|output ndim 0");
    cu.ndim = 4;
    BAD_NULL(net, dl_custom(xs, 1, &cu), "custom|output ndim 4");
    cu.ndim = 2; cu.shape[1] = 0;
    BAD_NULL(net, dl_custom(xs, 1, &cu), "custom|output dim 1 is 0");
    cu.ndim = 1;
    BAD_NULL(net, dl_custom(xs, 65, &cu), "custom|1 to 64 inputs, got 65");
    xs[1] = ox;
    BAD_NULL(net, dl_custom(xs, 2, &cu), "custom|another net");
    xs[1] = x;
    cu.name = longname;
    BAD_NULL(net, dl_custom(xs, 1, &cu), "custom|longer than 31");
    cu.name = "input_1";
    BAD_NULL(net, dl_custom(xs, 1, &cu), "custom|'input_1' is already taken");

    /* names and introspection */
    BAD_IS(dl_layer_set_name(NULL, "a") == DL_ERR_ARG);
    BAD_RC(net, dl_layer_set_name(x, NULL), DL_ERR_ARG, "dl_layer_set_name|(null)");
    BAD_RC(net, dl_layer_set_name(x, ""), DL_ERR_ARG, "dl_layer_set_name|1 to 31");
    BAD_RC(net, dl_layer_set_name(x, "a.b"), DL_ERR_ARG, "dl_layer_set_name|a.b");
    BAD_RC(net, dl_layer_set_name(x, longname), DL_ERR_ARG, "dl_layer_set_name|aaaa");
    BAD_RC(net, dl_layer_set_name(x, "input_2"), DL_ERR_ARG, "dl_layer_set_name|input_2|already taken");
    BAD_IS(!strcmp(dl_layer_name(NULL), "") && dl_layer_op(NULL) == -1 && dl_layer_shape(NULL, shp) == 0 && dl_layer_size(NULL) == 0);
    BAD_IS(!dl_layer_output(NULL) && !dl_layer_grad(NULL) && !dl_layer_output(x));
    BAD_IS(!strcmp(dl_op_name(-1), "unknown") && !strcmp(dl_op_name(DL_OP_COUNT), "unknown"));
    BAD_IS(dl_layer_saved_floats(NULL, 1) == 0 && dl_layer_ws_floats(NULL, 1) == 0);
    BAD_IS(dl_layer_conv_geom(NULL).K == 0 && dl_layer_conv_geom(x).K == 0);      /* not a convolution: all zero */
    BAD_IS(dl_layer_out_hw(NULL, &shp[0], &shp[1], &shp[2]) == 0 && dl_layer_in_hw(x, 0, &shp[0], &shp[1], &shp[2]) == 0);
    BAD_IS(dl_layer_in_hw(NULL, 0, &shp[0], &shp[1], &shp[2]) == 0 && dl_layer_out_hw(x, NULL, NULL, NULL) == 0);
}

/* A small trainable net: input_1 (4) -> dense_1 (3). */
static dl_layer *small_net(dl_net *net) { return dl_dense(dl_input(net, 4, 0, 0), 3); }

static void bad_input_params_optim(dl_net *net, dl_net *other) {
    dl_param *p = dl_net_param(net, 0), *op = dl_net_param(other, 0);
    dl_optim_desc d;
    dl_optim *opt = dl_sgd(net, 0.1f, 0);
    BAD_IS(!dl_net_param(net, -1) && !dl_net_param(net, 1000) && !dl_net_param(NULL, 0));
    BAD_IS(!dl_net_find_param(net, NULL) && !dl_net_find_param(NULL, "dense_1.weight") && !dl_net_find_param(net, "nope"));
    BAD_IS(!dl_net_params(NULL) && !dl_net_grads(NULL) && dl_net_param_floats(NULL) == 0 && dl_net_param_count(NULL) == 0);
    BAD_IS(dl_param_init(NULL, p, 0) == DL_ERR_ARG);
    BAD_RC(net, dl_param_init(net, NULL, 0), DL_ERR_ARG, "dl_param_init|NULL");
    BAD_RC(net, dl_param_init(net, p, 99), DL_ERR_ARG, "dl_param_init|unknown init 99|dense_1.weight");
    BAD_RC(net, dl_param_init(net, op, 0), DL_ERR_ARG, "dl_param_init|another net");

#define OPT_BAD(field, value, words) do { memset(&d, 0, sizeof d); d.kind = DL_SGD; d.lr = 0.1f; d.field = value; \
        BAD_NULL(net, dl_optim_new(net, &d), words); } while (0)
    memset(&d, 0, sizeof d);
    BAD_IS(!dl_optim_new(NULL, &d));
    BAD_NULL(net, dl_optim_new(net, NULL), "dl_optim_new|desc is NULL");
    OPT_BAD(kind, 9, "dl_optim_new|unknown kind 9");
    OPT_BAD(kind, -1, "dl_optim_new|unknown kind -1");
    OPT_BAD(lr, -1.0f, "dl_optim_new|learning rate -1 must");
    OPT_BAD(lr, NAN, "dl_optim_new|learning rate nan");
    OPT_BAD(lr, INFINITY, "dl_optim_new|learning rate inf");
    OPT_BAD(momentum, 1.0f, "dl_optim_new|momentum 1 must be in [0, 1)");
    OPT_BAD(momentum, -0.5f, "dl_optim_new|momentum -0.5");
    OPT_BAD(momentum, NAN, "dl_optim_new|momentum nan");
    OPT_BAD(beta1, 1.0f, "dl_optim_new|beta1 1 must");
    OPT_BAD(beta2, -0.1f, "dl_optim_new|beta2 -0.1 must");
    OPT_BAD(eps, -1.0f, "dl_optim_new|eps -1");
    OPT_BAD(eps, INFINITY, "dl_optim_new|eps inf");
    OPT_BAD(alpha, 1.5f, "dl_optim_new|alpha 1.5");
    OPT_BAD(weight_decay, -1.0f, "dl_optim_new|weight decay -1");
    OPT_BAD(weight_decay, INFINITY, "dl_optim_new|weight decay inf");
    OPT_BAD(clip_norm, -1.0f, "dl_optim_new|clip norm -1");
    OPT_BAD(clip_norm, NAN, "dl_optim_new|clip norm nan");
    OPT_BAD(nesterov, 1, "dl_optim_new|Nesterov needs a momentum");
    BAD_NULL(net, dl_sgd(net, 0, 0), "dl_sgd|learning rate 0");
    BAD_NULL(net, dl_adam(net, NAN), "dl_adam|learning rate nan");
    BAD_NULL(net, dl_adamw(net, 1e-3f, -1.0f), "dl_adamw|weight decay -1");
    BAD_NULL(net, dl_rmsprop(net, -1.0f), "dl_rmsprop|learning rate -1");
    BAD_NULL(net, dl_sgd(net, INFINITY, 0), "dl_sgd|inf");
    BAD_IS(dl_optim_set_lr(NULL, 1.0f) == DL_ERR_ARG);
    BAD_RC(net, dl_optim_set_lr(opt, 0), DL_ERR_ARG, "dl_optim_set_lr|0|stays 0.1");
    BAD_RC(net, dl_optim_set_lr(opt, NAN), DL_ERR_ARG, "dl_optim_set_lr|nan");
    BAD_RC(net, dl_optim_set_lr(opt, -INFINITY), DL_ERR_ARG, "dl_optim_set_lr|-inf");
    BAD_IS(dl_optim_lr(opt) == 0.1f && dl_optim_lr(NULL) == 0);
    BAD_IS(dl_optim_step(NULL) == DL_ERR_ARG);
    dl_optim_free(NULL);
    BAD_IS(dl_optim_step_cpu(NULL) == DL_ERR_ARG);
#undef OPT_BAD
}

static void bad_input_train(dl_net *net, dl_net *other) {
    dl_layer *out = dl_net_layer(net, -1), *oout = dl_net_layer(other, -1);
    dl_optim *opt = dl_adam(net, 1e-2f), *oopt = dl_adam(other, 1e-2f);
    float x[4 * 4], t[4 * 3], *w0 = (float *)malloc(dl_net_param_floats(net) * sizeof(float));
    int y[4] = { 0, 1, 2, 1 }, i;
    dl_net *empty = dl_net_new();
    for (i = 0; i < 16; i++) x[i] = (float)i / 16;
    for (i = 0; i < 12; i++) t[i] = 0.5f;
    memcpy(w0, dl_net_params(net), dl_net_param_floats(net) * sizeof(float));

    BAD_IS(dl_train_step(NULL, opt, out, x, y, 4, NULL) == DL_ERR_ARG);
    BAD_RC(net, dl_train_step(net, NULL, out, x, y, 4, NULL), DL_ERR_ARG, "dl_train_step|optimizer is NULL");
    BAD_RC(net, dl_train_step(net, oopt, out, x, y, 4, NULL), DL_ERR_ARG, "dl_train_step|another net's");
    BAD_RC(net, dl_train_step(net, opt, oout, x, y, 4, NULL), DL_ERR_ARG, "dl_train_step|layer 'dense_1' belongs to another net");
    BAD_RC(net, dl_train_step(net, opt, out, x, NULL, 4, NULL), DL_ERR_ARG, "dl_train_step|labels are NULL");
    BAD_RC(net, dl_train_step(net, opt, out, x, y, 0, NULL), DL_ERR_ARG, "dl_train_step|batch size 0");
    BAD_RC(net, dl_train_step(net, opt, out, x, y, -3, NULL), DL_ERR_ARG, "dl_train_step|batch size -3");
    BAD_RC(net, dl_train_step(net, opt, out, NULL, y, 4, NULL), DL_ERR_ARG, "dl_train_step|dense_1|input data is NULL");
    y[1] = -1;
    BAD_RC(net, dl_train_step(net, opt, out, x, y, 4, NULL), DL_ERR_ARG, "dl_train_step|label -1 of sample 1|dense_1|3 classes");
    y[1] = 3;
    BAD_RC(net, dl_train_step(net, opt, out, x, y, 4, NULL), DL_ERR_ARG, "dl_train_step|label 3 of sample 1");
    BAD_RC(net, dl_train_step_nll(net, opt, out, x, y, 4, NULL), DL_ERR_ARG, "dl_train_step_nll|label 3 of sample 1|dense_1");
    BAD_RC(net, dl_train_step_nll(net, opt, out, x, NULL, 4, NULL), DL_ERR_ARG, "dl_train_step_nll|labels are NULL");
    y[1] = 1;
    BAD_RC(empty, dl_train_step(empty, dl_adam(empty, 1e-3f), NULL, x, y, 4, NULL), DL_ERR_ARG, "dl_train_step|layer is NULL");
    x[6] = NAN;
    BAD_RC(net, dl_train_step(net, opt, out, x, y, 4, NULL), DL_ERR_NUMERIC, "training mode|dense_1|sample 1|index 2|nan|nothing was changed");
    x[6] = -INFINITY;
    BAD_RC(net, dl_train_step(net, opt, out, x, y, 4, NULL), DL_ERR_NUMERIC, "sample 1|index 2|-inf");
    BAD_RC(net, dl_train_step_mse(net, opt, out, x, t, 4, NULL), DL_ERR_NUMERIC, "sample 1|-inf");
    x[6] = 0.5f;
    BAD_RC(net, dl_train_step_mse(net, opt, out, x, NULL, 4, NULL), DL_ERR_ARG, "dl_train_step_mse|targets are NULL");
    t[5] = NAN;
    BAD_RC(net, dl_train_step_mse(net, opt, out, x, t, 4, NULL), DL_ERR_NUMERIC, "dl_train_step_mse|target 2 of sample 1|dense_1|nan");
    t[5] = 0.5f;
    /* inference-only graphs: nothing trainable behind the output */
    {
        dl_layer *r = dl_relu(dl_net_layer(net, 0));
        BAD_RC(net, dl_train_step_mse(net, opt, r, x, x, 4, NULL), DL_ERR_ARG, "dl_train_step_mse|no trainable|relu_1");
        for (i = 0; i < dl_net_param_count(net); i++) dl_net_param(net, i)->frozen = 1;
        BAD_RC(net, dl_train_step(net, opt, out, x, y, 4, NULL), DL_ERR_ARG, "dl_train_step|no trainable, unfrozen|dense_1");
        for (i = 0; i < dl_net_param_count(net); i++) dl_net_param(net, i)->frozen = 0;
    }
    BAD_IS(!memcmp(w0, dl_net_params(net), dl_net_param_floats(net) * sizeof(float)) && opt->step == 0);

    /* a graph reading two inputs, and batchnorm with one value per channel */
    {
        dl_net *g = dl_net_new();
        dl_layer *a = dl_input(g, 4, 0, 0), *b = dl_input(g, 4, 0, 0), *s = dl_dense(dl_add(a, b), 3);
        dl_layer *bn = dl_dense(dl_batchnorm(dl_dense(a, 4)), 3);
        dl_optim *go = dl_sgd(g, 0.1f, 0);
        BAD_RC(g, dl_train_step(g, go, s, x, y, 4, NULL), DL_ERR_UNSUPPORTED, "dl_train_step|reads two inputs|input_1|input_2");
        BAD_RC(g, dl_train_step(g, go, bn, x, y, 1, NULL), DL_ERR_SHAPE, "batchnorm|batchnorm_1|more than one value per channel|batch 1");
        BAD_IS(dl_train_step(g, go, bn, x, y, 2, NULL) == DL_OK);
        dl_net_free(g);
    }

    /* forward, predict, backward */
    BAD_IS(!dl_predict(NULL, out, x, 4) && !dl_forward(NULL, out, x, 4, 0));
    BAD_NULL(net, dl_predict(net, out, NULL, 4), "dl_predict|forward to 'dense_1'|input data is NULL");
    BAD_NULL(net, dl_predict(net, out, x, 0), "dense_1|batch size 0");
    BAD_NULL(net, dl_predict(net, out, x, -1), "batch size -1");
    BAD_NULL(net, dl_predict(net, oout, x, 4), "dl_predict|'dense_1' belongs to another net");
    BAD_NULL(empty, dl_predict(empty, NULL, x, 4), "dl_predict|layer is NULL");
    x[0] = INFINITY;
    BAD_NULL(net, dl_forward(net, out, x, 4, 1), "dl_forward|training mode|sample 0|index 0|inf");
    BAD_IS(dl_forward(net, out, x, 4, 0) != NULL);        /* eval mode passes it on */
    x[0] = 0;
    BAD_IS(dl_backward(NULL, out, t) == DL_ERR_ARG);
    {
        dl_net *fresh_net = dl_net_new();
        dl_layer *fo = small_net(fresh_net);
        BAD_RC(fresh_net, dl_backward(fresh_net, fo, t), DL_ERR_ARG, "dl_backward|call dl_forward to 'dense_1' first");
        dl_net_free(fresh_net);
    }
    BAD_IS(dl_forward(net, out, x, 4, 1) != NULL);
    BAD_RC(net, dl_backward(net, out, NULL), DL_ERR_ARG, "dl_backward|dout is NULL");
    BAD_RC(net, dl_backward(net, dl_net_layer(net, 0), t), DL_ERR_ARG, "dl_backward|call dl_forward to 'input_1'");
    BAD_RC(net, dl_backward(net, oout, t), DL_ERR_ARG, "dl_backward|another net");
    dl_zero_grad(NULL);

    /* the loss helpers: NaN, and nothing written */
    {
        float dl[12], logits[12] = { 0 };
        int lab[4] = { 0, 1, 2, 3 };
        for (i = 0; i < 12; i++) dl[i] = 7;
        BAD_IS(test_nan(dl_softmax_cross_entropy(NULL, lab, 4, 3, NULL)));
        BAD_IS(test_nan(dl_softmax_cross_entropy(logits, NULL, 4, 3, NULL)));
        BAD_IS(test_nan(dl_softmax_cross_entropy(logits, lab, 0, 3, NULL)));
        BAD_IS(test_nan(dl_softmax_cross_entropy(logits, lab, 4, 0, NULL)));
        BAD_IS(test_nan(dl_softmax_cross_entropy(logits, lab, 4, 3, dl)) && dl[0] == 7 && dl[11] == 7);
        BAD_IS(test_nan(dl_nll(NULL, lab, 4, 3, NULL)) && test_nan(dl_nll(logits, NULL, 4, 3, NULL)) && test_nan(dl_nll(logits, lab, 0, 3, NULL)));
        BAD_IS(test_nan(dl_nll(logits, lab, 4, 3, dl)) && dl[0] == 7 && dl[11] == 7);      /* label 3 of 3 classes */
        lab[3] = -1;
        BAD_IS(test_nan(dl_softmax_cross_entropy(logits, lab, 4, 3, dl)) && dl[0] == 7);
        BAD_IS(test_nan(dl_mse(NULL, logits, 4, 3, NULL)) && test_nan(dl_mse(logits, NULL, 4, 3, NULL)));
        BAD_IS(test_nan(dl_mse(logits, logits, 0, 3, NULL)) && test_nan(dl_mse(logits, logits, 4, -1, NULL)));
    }

    /* contexts */
    {
        dl_net *tmp = dl_net_new();
        dl_layer *to = small_net(tmp);
        dl_ctx *c = dl_ctx_new(net), *orphan = dl_ctx_new(tmp);
        BAD_IS(!dl_ctx_new(NULL) && !dl_ctx_predict(NULL, out, x, 4) && strstr(dl_ctx_error(NULL), "NULL"));
        BAD_IS(!dl_ctx_predict(c, out, NULL, 4) && strstr(dl_ctx_error(c), "input data is NULL"));
        BAD_IS(!dl_ctx_predict(c, oout, x, 4) && strstr(dl_ctx_error(c), "another net"));
        BAD_IS(!dl_ctx_predict(c, out, x, 0) && strstr(dl_ctx_error(c), "batch size 0"));
        BAD_IS(dl_ctx_predict(orphan, to, x, 4) != NULL);
        dl_net_free(tmp);
        BAD_IS(!dl_ctx_predict(orphan, to, x, 4) && strstr(dl_ctx_error(orphan), "was freed"));
        dl_ctx_free(orphan);
        dl_ctx_free(c);
        dl_ctx_free(NULL);
    }
    dl_net_free(empty);
    free(w0);
}

static void bad_input_files(dl_net *net, dl_net *other) {
    dl_optim *opt = dl_sgd(net, 0.1f, 0.9f), *oopt = dl_sgd(other, 0.1f, 0);
    char longpath[5000];
    dl_status st;
    void *buf = NULL;
    size_t len = 0;
    dl_net *n2;
    dl_param *p = dl_net_param(net, 0);
    float keep;
    memset(longpath, 'd', sizeof longpath - 1);
    longpath[sizeof longpath - 1] = 0;
    BAD_IS(dl_net_save(NULL, "build/r_bad.dl") == DL_ERR_ARG);
    BAD_RC(net, dl_net_save(net, NULL), DL_ERR_ARG, "save|path is NULL");
    BAD_RC(net, dl_net_save(net, "build/no/such/dir/m.dl"), DL_ERR_IO, "dl_net_save: cannot write build/no/such/dir/m.dl");
    BAD_RC(net, dl_net_save(net, longpath), DL_ERR_ARG, "save|path too long");
    BAD_RC(net, dl_net_save(net, "build"), DL_ERR_IO, "dl_net_save: build exists and is not a regular file");
    BAD_RC(net, dl_net_save_mem(net, NULL, NULL, &len), DL_ERR_ARG, "save|data or len is NULL");
    BAD_RC(net, dl_net_save_mem(net, oopt, &buf, &len), DL_ERR_ARG, "save|optimizer belongs to another net");
    BAD_RC(net, dl_checkpoint_save(net, NULL, "build/r_bad.dl"), DL_ERR_ARG, "dl_checkpoint_save|optimizer is NULL");
    BAD_RC(net, dl_checkpoint_save(net, oopt, "build/r_bad.dl"), DL_ERR_ARG, "save|another net");

    /* loading */
    remove("build/r_missing.dl");
    write_all("build/r_empty.dl", "", 0);
    BAD_IS(!dl_net_load(NULL, &st) && st.code == DL_ERR_ARG && strstr(st.msg, "path is NULL"));
    BAD_IS(!dl_net_load("build/r_missing.dl", &st) && st.code == DL_ERR_IO && strstr(st.msg, "r_missing.dl"));
    BAD_IS(!dl_net_load("build", &st) && st.code == DL_ERR_IO && strstr(st.msg, "not a regular file"));
    BAD_IS(!dl_net_load("/dev/null", &st) && st.code == DL_ERR_IO);
    BAD_IS(!dl_net_load("build/r_empty.dl", &st) && st.code == DL_ERR_FORMAT && strstr(st.msg, "r_empty.dl"));
    BAD_IS(!dl_checkpoint_load("build/r_empty.dl", NULL, &st) && st.code == DL_ERR_FORMAT);
    BAD_IS(!dl_net_load_mem(NULL, 10, &st) && st.code == DL_ERR_ARG);
    BAD_IS(!dl_net_load_mem("x", 0, &st) && st.code == DL_ERR_FORMAT);
    BAD_IS(!dl_net_load_mem("not a model file, not a model file", 34, &st) && st.code == DL_ERR_FORMAT && strstr(st.msg, "magic"));
    BAD_IS(!dl_checkpoint_load_mem(NULL, 10, NULL, &st) && st.code == DL_ERR_ARG);
    BAD_IS(!dl_net_load_mem(NULL, 10, NULL));        /* status may be NULL */

    /* a model file read as a checkpoint has no optimizer; that is not an error */
    BAD_IS(dl_net_save_mem(net, NULL, &buf, &len) == DL_OK);
    {
        dl_optim *o = opt;
        n2 = dl_checkpoint_load_mem(buf, len, &o, &st);
        BAD_IS(n2 && o == NULL && st.code == DL_OK);
        dl_net_free(n2);
    }
    DL_FREE(buf);

    /* a step count that the next step would overflow */
    opt->step = LONG_MAX;
    BAD_IS(dl_net_save_mem(net, opt, &buf, &len) == DL_OK);
    BAD_IS(!dl_checkpoint_load_mem(buf, len, NULL, &st) && st.code == DL_ERR_FORMAT && strstr(st.msg, "optimizer"));
    DL_FREE(buf);
    opt->step = 0;

    /* load_weights: a bad file changes nothing, frozen flags included */
    {
        dl_net *diff = dl_net_new();
        dl_dense(dl_input(diff, 4, 0, 0), 2);
        BAD_IS(dl_net_save(net, "build/r_good.dl") == DL_OK && dl_net_save(diff, "build/r_other.dl") == DL_OK);
        dl_net_free(diff);
    }
    BAD_IS(dl_net_load_weights(NULL, "build/r_good.dl") == DL_ERR_ARG);
    BAD_RC(net, dl_net_load_weights(net, NULL), DL_ERR_ARG, "path is NULL");
    BAD_RC(net, dl_net_load_weights(net, "build/r_missing.dl"), DL_ERR_IO, "r_missing.dl");
    p->frozen = 1;
    keep = p->data[0];
    {
        unsigned char *good;
        size_t glen;
        good = read_all("build/r_good.dl", &glen);
        good[glen - 5] ^= 1;                     /* the last float of the last parameter */
        write_all("build/r_bad.dl", good, glen);
        good[glen - 5] ^= 1;
        fuzz_dl__fix(good, glen);
        p->data[0] += 1;
        BAD_RC(net, dl_net_load_weights(net, "build/r_bad.dl"), DL_ERR_FORMAT, "r_bad.dl|checksum");
        BAD_IS(p->data[0] == keep + 1 && p->frozen == 1);
        /* frozen flag 0 in the file, then trailing garbage: rejected after the parameters were read */
        {
            unsigned char *ext = (unsigned char *)malloc(glen + 4);
            memcpy(ext, good, glen - 4);
            memset(ext + glen - 4, 0, 8);
            fuzz_dl__fix(ext, glen + 4);
            write_all("build/r_bad.dl", ext, glen + 4);
            free(ext);
        }
        BAD_RC(net, dl_net_load_weights(net, "build/r_bad.dl"), DL_ERR_FORMAT, "r_bad.dl|unexpected bytes");
        BAD_IS(p->data[0] == keep + 1 && p->frozen == 1);
        free(good);
    }
    BAD_RC(net, dl_net_load_weights(net, "build/r_other.dl"), DL_ERR_FORMAT, "r_other.dl");
    BAD_IS(dl_net_load_weights(net, "build/r_good.dl") == DL_OK && p->data[0] == keep && p->frozen == 0);

    /* non-finite numbers never reach a file, and the old file stays */
    p->data[1] = NAN;
    BAD_RC(net, dl_net_save(net, "build/r_good.dl"), DL_ERR_NUMERIC, "save|dense_1.weight|nan|index 1|nothing was written");
    BAD_RC(net, dl_net_save_mem(net, NULL, &buf, &len), DL_ERR_NUMERIC, "dense_1.weight");
    n2 = dl_net_load("build/r_good.dl", &st);
    BAD_IS(n2 && !test_nan(dl_net_param(n2, 0)->data[1]));      /* the old file */
    dl_net_free(n2);
    BAD_IS(dl_net_load_weights(net, "build/r_good.dl") == DL_OK && !test_nan(p->data[1]));
    opt->s[0][2] = INFINITY;
    BAD_RC(net, dl_checkpoint_save(net, opt, "build/r_good.dl"), DL_ERR_NUMERIC, "save|optimizer state 0|inf|index 2");
    opt->s[0][2] = 0;
    {   /* a file holding a NaN, with a valid checksum, is rejected */
        unsigned char *good;
        size_t glen;
        float nan = NAN;
        good = read_all("build/r_good.dl", &glen);
        memcpy(good + glen - 8, &nan, 4);       /* the last float */
        fuzz_dl__fix(good, glen);
        BAD_IS(!dl_net_load_mem(good, glen, &st) && st.code == DL_ERR_FORMAT && strstr(st.msg, "not finite"));
        free(good);
    }

    /* backends */
    BAD_IS(dl_net_to_backend(NULL, NULL) == DL_ERR_ARG && dl_net_sync(NULL) == DL_ERR_ARG && !dl_net_backend(NULL));
    BAD_IS(dl_net_to_backend(net, NULL) == DL_OK && dl_net_sync(net) == DL_OK);
    remove("build/r_bad.dl"); remove("build/r_empty.dl"); remove("build/r_good.dl"); remove("build/r_other.dl");
}

static void test_bad_inputs(void) {
    dl_net *net = dl_net_new(), *other = dl_net_new();
    dl_input(net, 3, 8, 8);
    dl_input(net, 5, 0, 0);
    dl_input(other, 3, 8, 8);
    n_cases = 0;
    bad_input_build(net, other);
    dl_net_free(net); dl_net_free(other);
    net = dl_net_new(); other = dl_net_new();
    small_net(net); small_net(other);
    bad_input_params_optim(net, other);
    bad_input_train(net, other);
    bad_input_files(net, other);
    dl_net_free(net); dl_net_free(other);
    printf("     %d bad-input cases\n", n_cases);
}

/* ======================================================================== */
/*  Non-finite numbers                                                      */
/* ======================================================================== */
static void test_nonfinite(void) {
    static float x[4 * 256];
    int g, i, k;
    /* dl_predict passes NaN and infinity on through every op, without crashing */
    for (g = 0; g < 5; g++)
        for (k = 0; k < 3; k++) {
            dl_net *net = dl_net_new();
            dl_layer *out = fuzz_dl_graph(net, g);
            const float *p;
            int bad = 0, size = dl_layer_size(dl_net_layer(net, 0));
            for (i = 0; i < 4 * size; i++) x[i] = (float)(i % 5) - 2;
            for (i = 0; i < 4 * size; i += 3) x[i] = k == 0 ? NAN : k == 1 ? INFINITY : -INFINITY;
            p = dl_predict(net, out, x, 4);
            CHECK(p != NULL, "graph %d: %s", g, dl_net_error(net));
            for (i = 0; p && i < 4 * dl_layer_size(out); i++) bad += !(p[i] >= -FLT_MAX && p[i] <= FLT_MAX);
#ifndef __FAST_MATH__   /* there the compiler may let max or relu drop a NaN: propagation is not promised, checks are */
            CHECK(k != 0 || g == 1 || bad > 0, "graph %d: a NaN input vanished", g);   /* graph 1: relu maps NaN to 0 */
#else
            (void)bad;
#endif
            dl_net_free(net);
        }
    /* divergence: a huge learning rate gives a finite first step, then an
       infinite loss, which stops the step with nothing changed */
    {
        dl_net *net = dl_net_new();
        dl_layer *out = small_net(net);
        dl_optim *opt = dl_sgd(net, 1e30f, 0);
        float xs[8] = { 1, 2, 3, 4, -1, -2, -3, -4 }, t[6] = { 0 }, *w;
        int rc = DL_OK;
        uint64_t rng;
        for (i = 0; i < 5 && rc == DL_OK; i++) rc = dl_train_step_mse(net, opt, out, xs, t, 2, NULL);
        CHECK(rc == DL_ERR_NUMERIC && strstr(dl_net_error(net), "loss of 'dense_1'"), "divergence: %d %s", rc, dl_net_error(net));
        w = (float *)malloc(dl_net_param_floats(net) * sizeof(float));
        memcpy(w, dl_net_params(net), dl_net_param_floats(net) * sizeof(float));
        k = (int)opt->step;
        rng = net->rng;
        CHECK(i == 2 && dl_train_step_mse(net, opt, out, xs, t, 2, NULL) == DL_ERR_NUMERIC, "still diverged (step %d)", i);
        CHECK(!memcmp(w, dl_net_params(net), dl_net_param_floats(net) * sizeof(float)) && opt->step == k && net->rng == rng,
              "a refused step changed the net");
        free(w);
        dl_net_free(net);
    }
    /* a non-finite gradient (here from the caller's dout) stops dl_optim_step, naming the parameter */
    {
        dl_net *net = dl_net_new();
        dl_layer *out = small_net(net);
        dl_optim *opt = dl_adam(net, 1e-3f);
        float xs[8] = { 1, 2, 3, 4, -1, -2, -3, -4 }, dout[6] = { 0, 0, INFINITY, 0, 0, 0 }, w0;
        w0 = dl_net_params(net)[0];
        CHECK(dl_forward(net, out, xs, 2, 1) && dl_backward(net, out, dout) == DL_OK, "%s", dl_net_error(net));
        CHECK(dl_optim_step(opt) == DL_ERR_NUMERIC && strstr(dl_net_error(net), "gradient of dense_1.weight"), "%s", dl_net_error(net));
        CHECK(dl_net_params(net)[0] == w0 && opt->step == 0 && opt->s[0][0] == 0, "a refused optimizer step changed something");
        dl_net_free(net);
    }
}

/* Max pooling stopped its window scan at a NaN by setting the row past the
   plane but kept scanning that row: it read beyond the plane and could save
   an argmax outside it, where backward then wrote. Run on buffers of exactly
   the plane's size, so that ASan and valgrind see any stray access. */
/* A diverging step: at a learning rate of 1e30 the reference CNN's weights,
   batchnorm statistics or optimizer state soon overflow. Every step that
   returns DL_OK must leave all of them finite, and the step that would not
   must return DL_ERR_NUMERIC with all of them unchanged, bit for bit (a
   step used to return DL_OK leaving inf in a running variance). */
static int all_finite(const float *f, size_t n) {
    size_t i;
    for (i = 0; i < n; i++) { uint32_t u; memcpy(&u, &f[i], 4); if ((u & 0x7f800000u) == 0x7f800000u) return 0; }
    return 1;
}
static size_t net_state(dl_net *net, dl_optim *opt, float *to) {   /* weights, statistics, optimizer state; to may be NULL */
    size_t n = 0;
    int k;
    if (to) memcpy(to, net->w, net->nw * sizeof(float));
    n += net->nw;
    if (to && net->ns) memcpy(to + n, net->s, net->ns * sizeof(float));
    n += net->ns;
    for (k = 0; k < 3; k++)
        if (opt->s[k]) { if (to) memcpy(to + n, opt->s[k], opt->n * sizeof(float)); n += opt->n; }
    return n;
}
static void diverge(int kind, float lr) {
    enum { N = 16 };
    static float x[N * 4 * 256];
    int y[N * 4], i, rc = DL_OK, steps;
    dl_net *net = dl_net_new();
    dl_layer *h = dl_input(net, 1, 16, 16), *out;
    dl_optim *opt;
    float *before, *after;
    const char *name = kind == DL_SGD ? "SGD" : "Adam";
    size_t n;
    long step0;
    uint64_t rng0, r = 1;
    h = dl_maxpool2d(dl_prelu(dl_batchnorm(dl_conv2d(h, 8, 3, 1, 1))), 2, 2);
    h = dl_maxpool2d(dl_prelu(dl_batchnorm(dl_conv2d(h, 16, 3, 1, 1))), 2, 2);
    out = dl_dense(dl_flatten(h), 10);
    opt = kind == DL_SGD ? dl_sgd(net, lr, 0) : dl_adam(net, lr);
    for (i = 0; i < N * 4 * 256; i++) { r = r * 6364136223846793005ULL + 1; x[i] = (float)(r >> 40) / 16777216.0f; }
    for (i = 0; i < N * 4; i++) { r = r * 6364136223846793005ULL + 1; y[i] = (int)((r >> 40) % 10); }
    n = net_state(net, opt, NULL);
    before = (float *)malloc(n * sizeof(float));
    after = (float *)malloc(n * sizeof(float));
    for (steps = 0; steps < 12 && rc == DL_OK; steps++) {
        net_state(net, opt, before);
        step0 = opt->step; rng0 = net->rng;
        rc = dl_train_step(net, opt, out, x + (size_t)(steps % 4) * N * 256, y + (steps % 4) * N, N, NULL);
        net_state(net, opt, after);
        if (rc == DL_OK) CHECK(all_finite(after, n), "%s lr %g: step %d returned DL_OK and left a value not finite", name, lr, steps + 1);
    }
    CHECK(rc == DL_ERR_NUMERIC, "%s lr %g: %d steps, last %d: %s", name, lr, steps, rc, dl_net_error(net));
    CHECK(!memcmp(before, after, n * sizeof(float)) && opt->step == step0 && net->rng == rng0,
          "%s lr %g: the refused step %d changed the net or the optimizer", name, lr, steps);
    printf("     %s lr %g: step %d refused: %s\n", name, lr, steps, dl_net_error(net));
    free(before); free(after);
    dl_net_free(net);
}
static void test_diverging_step_changes_nothing(void) {
    static const float lrs[3] = { 1e6f, 1e8f, 1e30f };
    int i;
    for (i = 0; i < 3; i++) { diverge(DL_SGD, lrs[i]); diverge(DL_ADAM, lrs[i]); }
}

/* The optimizer's own overflow, with finite gradients and loss: SGD at lr
   3e38 would make a weight infinite; Adam's second moment would overflow on
   gradients of 1e21. Both steps must fail and change nothing. */
static void test_update_overflow_changes_nothing(void) {
    int kind;
    for (kind = 0; kind < 2; kind++) {
        dl_net *net = dl_net_new();
        dl_layer *out = dl_dense(dl_input(net, 4, 0, 0), 3);
        dl_optim *opt = kind == 0 ? dl_sgd(net, 3e38f, 0) : dl_adam(net, 1e-3f);
        float x[8] = { 1, 2, 3, 4, -1, -2, -3, -4 }, *before, *after;
        int y[2] = { 0, 2 }, i, rc;
        size_t n = net_state(net, opt, NULL);
        if (kind == 1) for (i = 0; i < 8; i++) x[i] *= 1e21f;
        before = (float *)malloc(n * sizeof(float));
        after = (float *)malloc(n * sizeof(float));
        net_state(net, opt, before);
        rc = dl_train_step(net, opt, out, x, y, 2, NULL);
        net_state(net, opt, after);
        CHECK(rc == DL_ERR_NUMERIC && strstr(dl_net_error(net), "the update would make"), "%s: %d %s", kind ? "Adam" : "SGD", rc, dl_net_error(net));
        CHECK(!memcmp(before, after, n * sizeof(float)) && opt->step == 0, "%s: the refused step changed something", kind ? "Adam" : "SGD");
        free(before); free(after);
        dl_net_free(net);
    }
}

/* Softmax cross-entropy on the output of dl_softmax trains on probabilities
   and learns nothing; it used to run without a word. */
static void test_softmax_output_refused_as_logits(void) {
    dl_net *net = dl_net_new();
    dl_layer *logits = dl_dense(dl_input(net, 4, 0, 0), 3), *probs = dl_softmax(logits);
    dl_optim *opt = dl_sgd(net, 0.1f, 0);
    float x[8] = { 1, 2, 3, 4, -1, -2, -3, -4 }, w0 = dl_net_params(net)[0];
    int y[2] = { 0, 2 };
    CHECK(dl_train_step(net, opt, probs, x, y, 2, NULL) == DL_ERR_ARG, "a softmax as logits was accepted");
    CHECK(!strcmp(dl_net_error(net), "dl_train_step: the loss expects logits; 'softmax_1' is a softmax: pass its input 'dense_1'"),
          "message: %s", dl_net_error(net));
    CHECK(dl_net_params(net)[0] == w0 && opt->step == 0, "the refused step changed the net");
    CHECK(dl_train_step(net, opt, logits, x, y, 2, NULL) == DL_OK, "%s", dl_net_error(net));
    CHECK(dl_train_step_mse(net, opt, probs, x, x, 2, NULL) == DL_OK, "MSE on probabilities is fine: %s", dl_net_error(net));
    dl_net_free(net);
}

/* A misspelt dl_net_find name: the NULL it returns is an error everywhere,
   never "the last layer" (dl_predict(net, NULL, ...) used to run that). */
static void test_null_layer_is_an_error(void) {
    dl_net *net = dl_net_new(), *empty = dl_net_new();
    dl_layer *logits = dl_dense(dl_input(net, 4, 0, 0), 3), *probs = dl_softmax(logits), *nope;
    dl_optim *opt = dl_sgd(net, 0.1f, 0);
    dl_ctx *c = dl_ctx_new(net);
    float x[8] = { 1, 2, 3, 4, -1, -2, -3, -4 };
    int y[2] = { 0, 2 };
    CHECK(dl_layer_set_name(probs, "probs") == DL_OK && dl_net_find(net, "probs") == probs, "find by name");
    nope = dl_net_find(net, "prob");
    CHECK(!nope && !strcmp(dl_net_error(net), "dl_net_find: no layer named 'prob'"), "dl_net_find says: %s", dl_net_error(net));
    CHECK(!dl_predict(net, nope, x, 2) && strstr(dl_net_error(net), "dl_predict: layer is NULL (did dl_net_find") &&
          strstr(dl_net_error(net), "no layer named 'prob'"), "dl_predict: %s", dl_net_error(net));
    CHECK(!dl_forward(net, nope, x, 2, 0) && strstr(dl_net_error(net), "dl_forward: layer is NULL"), "dl_forward: %s", dl_net_error(net));
    CHECK(dl_backward(net, nope, x) == DL_ERR_ARG && strstr(dl_net_error(net), "dl_backward: layer is NULL"), "dl_backward: %s", dl_net_error(net));
    CHECK(dl_train_step(net, opt, nope, x, y, 2, NULL) == DL_ERR_ARG && strstr(dl_net_error(net), "layer is NULL"), "dl_train_step: %s", dl_net_error(net));
    CHECK(c && !dl_ctx_predict(c, nope, x, 2) && strstr(dl_ctx_error(c), "dl_ctx_predict: layer is NULL"), "dl_ctx_predict: %s", c ? dl_ctx_error(c) : "");
    CHECK(dl_net_output(net) == probs && dl_predict(net, dl_net_output(net), x, 2) != NULL, "dl_net_output: %s", dl_net_error(net));
    CHECK(!dl_net_output(empty) && !strcmp(dl_net_error(empty), "dl_net_output: the net has no layers"), "empty: %s", dl_net_error(empty));
    CHECK(!dl_net_output(NULL) && !dl_net_find(NULL, "x"), "NULL net");
    dl_ctx_free(c);
    dl_net_free(net); dl_net_free(empty);
}

/* A failed save names the file the user asked for and the system's reason,
   not the temporary file and a guess. */
static void test_save_message_names_path_and_reason(void) {
    dl_net *net = dl_net_new();
    dl_optim *opt;
    char want[512];
    dl_dense(dl_input(net, 4, 0, 0), 3);
    opt = dl_adam(net, 1e-3f);
    CHECK(dl_net_save(net, "build/no/such/dir/m.dl") == DL_ERR_IO, "saving into a missing folder");
    snprintf(want, sizeof want, "dl_net_save: cannot write build/no/such/dir/m.dl: %s", strerror(ENOENT));
    CHECK(!strcmp(dl_net_error(net), want), "message: %s (want: %s)", dl_net_error(net), want);
    CHECK(dl_checkpoint_save(net, opt, "build") == DL_ERR_IO, "saving over a folder");
    snprintf(want, sizeof want, "dl_checkpoint_save: build exists and is not a regular file");
    CHECK(!strcmp(dl_net_error(net), want) && !strstr(dl_net_error(net), ".tmp"), "message: %s (want: %s)", dl_net_error(net), want);
    dl_net_free(net);
}

/* A save replaces regular files only. Saving as root to /dev/null used to
   rename a file over it (the device was gone until reboot); a FIFO or a
   folder in its place must be refused and left as it was. The test makes
   its own FIFO and folder (never touching /dev/null). */
static void test_save_refuses_special_files(void) {
    const char *dir = "build/r_special", *fifo = "build/r_special/fifo", *sub = "build/r_special/dir";
    const char *paths[2];
    dl_net *net = dl_net_new();
    struct stat st;
    int i;
    dl_dense(dl_input(net, 4, 0, 0), 3);
    mkdir("build", 0755);
    mkdir(dir, 0755);
    remove(fifo); rmdir(sub);
    CHECK(mkfifo(fifo, 0600) == 0 && mkdir(sub, 0755) == 0, "making a FIFO and a folder: %s", strerror(errno));
    paths[0] = fifo; paths[1] = sub;
    for (i = 0; i < 2; i++) {
        char want[256];
        snprintf(want, sizeof want, "dl_net_save: %s exists and is not a regular file", paths[i]);
        CHECK(dl_net_save(net, paths[i]) == DL_ERR_IO && !strcmp(dl_net_error(net), want), "saving to %s: %s", paths[i], dl_net_error(net));
        CHECK(stat(paths[i], &st) == 0 && (i ? S_ISDIR(st.st_mode) : S_ISFIFO(st.st_mode)), "%s was replaced", paths[i]);
    }
    {
        DIR *d = opendir(dir);
        struct dirent *e;
        int others = 0;
        while (d && (e = readdir(d)) != NULL) others += strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && strcmp(e->d_name, "fifo") && strcmp(e->d_name, "dir");
        if (d) closedir(d);
        CHECK(d && others == 0, "%d files (temporary?) left in %s", others, dir);
    }
    remove(fifo); rmdir(sub); rmdir(dir);
    dl_net_free(net);
}

/* dl_net_error's rule (header, ERRORS): a call that runs, trains, saves,
   loads, moves or configures the net clears the message when it succeeds;
   building (constructors, dl_layer_set_name, dl_net_find, dl_net_output,
   optimizers, contexts) only ever sets it. It used to keep an old message
   after later calls succeeded. */
static void test_net_error_rule(void) {
    dl_net *net = dl_net_new();
    dl_layer *out = dl_dense(dl_input(net, 4, 0, 0), 3);
    dl_optim *opt = dl_adam(net, 1e-3f);
    dl_ctx *c = dl_ctx_new(net), *c2 = NULL;
    float x[8] = { 1, 2, 3, 4, -1, -2, -3, -4 }, t[6] = { 0 }, dout[6] = { 1, 0, 0, 0, 1, 0 };
    int y[2] = { 0, 2 };
    void *mem = NULL;
    size_t len = 0;
#define CLEARS(ok) do { CHECK(dl_net_set_threads(net, -1) == DL_ERR_ARG && dl_net_error(net)[0], "no error to clear"); \
        CHECK((ok) && !dl_net_error(net)[0], "%s left the message: %s", #ok, dl_net_error(net)); } while (0)
#define KEEPS(ok) do { CHECK(dl_net_set_threads(net, -1) == DL_ERR_ARG && dl_net_error(net)[0], "no error to keep"); \
        CHECK((ok) && strstr(dl_net_error(net), "dl_net_set_threads"), "%s cleared the message", #ok); } while (0)
    CLEARS(dl_net_set_threads(net, 1) == DL_OK);
    CLEARS(dl_net_set_parallel(net, NULL, NULL, 0) == DL_OK);
    CLEARS(dl_param_init(net, dl_net_param(net, 0), 0) == DL_OK);
    CLEARS(dl_optim_set_lr(opt, 1e-3f) == DL_OK);
    CLEARS(dl_predict(net, out, x, 2) != NULL);
    CLEARS(dl_forward(net, out, x, 2, 1) != NULL);
    CLEARS(dl_backward(net, out, dout) == DL_OK);
    CLEARS(dl_optim_step(opt) == DL_OK);
    CLEARS(dl_train_step(net, opt, out, x, y, 2, NULL) == DL_OK);
    CLEARS(dl_train_step_mse(net, opt, out, x, t, 2, NULL) == DL_OK);
    CLEARS(dl_net_save(net, "build/r_rule.dl") == DL_OK);
    CLEARS(dl_checkpoint_save(net, opt, "build/r_rule.dl") == DL_OK);
    CLEARS(dl_net_save_mem(net, NULL, &mem, &len) == DL_OK);
    CLEARS(dl_net_load_weights(net, "build/r_rule.dl") == DL_OK);
    CLEARS(dl_net_to_backend(net, NULL) == DL_OK);
    CLEARS(dl_net_sync(net) == DL_OK);
    KEEPS(dl_relu(out) != NULL);
    KEEPS(dl_layer_set_name(out, "head") == DL_OK);
    KEEPS(dl_net_find(net, "head") == out && dl_net_output(net) != NULL);
    KEEPS(dl_sgd(net, 0.1f, 0) != NULL);
    KEEPS((c2 = dl_ctx_new(net)) != NULL);
#undef CLEARS
#undef KEEPS
    CHECK(c && !dl_ctx_predict(c, out, x, 0) && dl_ctx_error(c)[0], "a failed dl_ctx_predict has no message");
    CHECK(c && dl_ctx_predict(c, out, x, 2) && !dl_ctx_error(c)[0], "dl_ctx_predict left: %s", c ? dl_ctx_error(c) : "");
    DL_FREE(mem);
    remove("build/r_rule.dl");
    dl_net_free(net);       /* frees the contexts' net state; the user frees the contexts */
    dl_ctx_free(c);
    dl_ctx_free(c2);
}

/* A batch no machine can hold (dl_predict(net, conv, x, INT_MAX) used to
   overflow int in the planning arithmetic: UBSan in make test-sanitize) is
   refused with a message before anything runs or any input is read: x and
   the labels here hold one sample. */
static void test_huge_batch_refused(void) {
    static const int ns[4] = { INT_MAX, INT_MAX / 2 + 1, (1 << 30) / 6272 + 1, 1 << 24 };
    static float x[784], ref[10];
    int y[1] = { 0 }, i;
    dl_net *net = dl_net_new();
    dl_layer *in = dl_input(net, 1, 28, 28), *conv = dl_conv2d(in, 8, 3, 1, 1);
    dl_layer *out = dl_dense(dl_flatten(dl_maxpool2d(dl_relu(conv), 2, 2)), 10);
    dl_optim *opt = dl_sgd(net, 0.1f, 0);
    dl_ctx *c = dl_ctx_new(net);
    const float *p = dl_predict(net, out, x, 1);
    CHECK(p != NULL && c != NULL, "%s", dl_net_error(net));
    if (p) memcpy(ref, p, sizeof ref);
    for (i = 0; i < 4; i++) {
        int n = ns[i];
        CHECK(!dl_predict(net, conv, x, n) && strstr(dl_net_error(net), "dl_predict: batch") && strstr(dl_net_error(net), "too large"),
              "dl_predict n %d: %s", n, dl_net_error(net));
        CHECK(!dl_forward(net, out, x, n, 1) && strstr(dl_net_error(net), "dl_forward: batch"), "dl_forward n %d: %s", n, dl_net_error(net));
        CHECK(dl_train_step(net, opt, out, x, y, n, NULL) == DL_ERR_ARG && strstr(dl_net_error(net), "too large"),
              "dl_train_step n %d: %s", n, dl_net_error(net));
        CHECK(dl_train_step_mse(net, opt, out, x, x, n, NULL) == DL_ERR_ARG, "dl_train_step_mse n %d: %s", n, dl_net_error(net));
        CHECK(c && !dl_ctx_predict(c, conv, x, n) && strstr(dl_ctx_error(c), "too large"), "dl_ctx_predict n %d: %s", n, c ? dl_ctx_error(c) : "");
    }
    p = dl_predict(net, out, x, 1);
    CHECK(p && !memcmp(p, ref, sizeof ref) && opt->step == 0, "the net after the refusals: %s", dl_net_error(net));
    CHECK(dl_predict(net, conv, x, 1) != NULL, "a batch of one: %s", dl_net_error(net));
    dl_ctx_free(c);
    dl_net_free(net);
}

/* NaN and infinity made from their bits, so that a -ffast-math build of
   this test (make test-fastmath) still hands the library real ones: every
   hyperparameter check must refuse them there too. */
static float from_bits(uint32_t u) { float f; memcpy(&f, &u, sizeof f); return f; }
static void test_nonfinite_hyperparameters_by_bits(void) {
    const float bad[3] = { from_bits(0x7fc00000u), from_bits(0x7f800000u), from_bits(0xff800000u) };  /* NaN, inf, -inf */
    int k;
    for (k = 0; k < 3; k++) {
        dl_net *net = dl_net_new();
        dl_layer *x = dl_input(net, 2, 4, 4), *out = dl_dense(dl_flatten(x), 3);
        dl_optim *opt = dl_sgd(net, 0.1f, 0);
        dl_optim_desc d;
        const float v = bad[k];
        CHECK(out && opt, "%s", dl_net_error(net));
        CHECK(!dl_sgd(net, v, 0) && strstr(dl_net_error(net), "dl_sgd: learning rate"), "dl_sgd lr %g: %s", v, dl_net_error(net));
        CHECK(!dl_adam(net, v) && strstr(dl_net_error(net), "dl_adam: learning rate"), "dl_adam lr %g: %s", v, dl_net_error(net));
        CHECK(!dl_sgd(net, 0.1f, v), "dl_sgd momentum %g accepted", v);
        CHECK(dl_optim_set_lr(opt, v) == DL_ERR_ARG && dl_optim_lr(opt) == 0.1f, "dl_optim_set_lr %g accepted", v);
        memset(&d, 0, sizeof d); d.kind = DL_ADAM; d.eps = v;
        CHECK(!dl_optim_new(net, &d), "Adam eps %g accepted", v);
        memset(&d, 0, sizeof d); d.kind = DL_ADAM; d.beta2 = v;
        CHECK(!dl_optim_new(net, &d), "Adam beta2 %g accepted", v);
        memset(&d, 0, sizeof d); d.kind = DL_RMSPROP; d.alpha = v;
        CHECK(!dl_optim_new(net, &d), "RMSProp alpha %g accepted", v);
        memset(&d, 0, sizeof d); d.kind = DL_SGD; d.weight_decay = v;
        CHECK(!dl_optim_new(net, &d), "weight decay %g accepted", v);
        CHECK(!dl_batchnorm_ex(x, v, 0.1f) && !dl_batchnorm_ex(x, 1e-5f, v), "batchnorm eps or momentum %g accepted", v);
        CHECK(!dl_dropout(x, v) && !dl_leaky_relu(x, v) && !dl_elu(x, v), "dropout, leaky relu or elu %g accepted", v);
        dl_net_free(net);
    }
}

/* A bad optimizer setting is named alone, with its value, by the function
   the user called (it used to be a list of every rule, from dl_optim_new). */
static void test_optim_message_names_the_rule(void) {
    dl_net *net = dl_net_new();
    dl_optim_desc d;
    dl_dense(dl_input(net, 4, 0, 0), 3);
    CHECK(!dl_sgd(net, 0.1f, 1.5f), "momentum 1.5 accepted");
    CHECK(!strcmp(dl_net_error(net), "dl_sgd: momentum 1.5 must be in [0, 1)"), "dl_sgd says: %s", dl_net_error(net));
    CHECK(!dl_adamw(net, 1e-3f, -2.0f), "weight decay -2 accepted");
    CHECK(!strcmp(dl_net_error(net), "dl_adamw: weight decay -2 must be finite and not negative"), "dl_adamw says: %s", dl_net_error(net));
    CHECK(!dl_rmsprop(net, 0), "lr 0 accepted");
    CHECK(!strcmp(dl_net_error(net), "dl_rmsprop: learning rate 0 must be positive and finite"), "dl_rmsprop says: %s", dl_net_error(net));
    memset(&d, 0, sizeof d); d.kind = DL_ADAM; d.beta1 = 1.0f;
    CHECK(!dl_optim_new(net, &d), "beta1 1 accepted");
    CHECK(!strcmp(dl_net_error(net), "dl_optim_new: beta1 1 must be in [0, 1)"), "dl_optim_new says: %s", dl_net_error(net));
    dl_net_free(net);
}

static void test_maxpool_nan_stays_in_plane(void) {
    dl_net *net = dl_net_new();
    dl_layer *l = dl_maxpool2d(dl_input(net, 1, 3, 3), 2, 1);      /* 2x2 windows, stride 1: the scalar path */
    float *x = (float *)malloc(9 * sizeof(float)), *y = (float *)malloc(4 * sizeof(float));
    float *dx = (float *)calloc(9, sizeof(float)), dy[4] = { 1, 1, 1, 1 };
    int32_t *arg = (int32_t *)malloc(4 * sizeof(int32_t));
    const float *in[1];
    float *din[1];
    dl__cpu cpu;
    dl_exec e;
    int i, pos;
    for (pos = 0; pos < 9; pos++) {
        for (i = 0; i < 9; i++) x[i] = (float)i;
        x[pos] = NAN;
        memset(&cpu, 0, sizeof cpu);
        cpu.simd = net->simd; cpu.net = net; cpu.threads = 1;
        memset(&e, 0, sizeof e);
        in[0] = x; din[0] = dx;
        e.n = 1; e.train = 1; e.in = in; e.out = y; e.din = din; e.dout = dy; e.saved = (float *)(void *)arg; e.cpu = &cpu;
        dl__op(DL_OP_MAXPOOL2D)->forward(l, &e);
        for (i = 0; i < 4; i++) CHECK(arg[i] >= 0 && arg[i] < 9, "NaN at %d: window %d argmax %d is outside the plane", pos, i, arg[i]);
        dl__op(DL_OP_MAXPOOL2D)->backward(l, &e);
    }
    free(x); free(y); free(dx); free(arg);
    dl_net_free(net);
}

/* ======================================================================== */
/*  Allocation failure                                                      */
/* ======================================================================== */
/* A device backend whose every allocation (buffers and per-call scratch)
   goes through the counting allocator; it runs the CPU kernels. */
typedef struct { dl_backend b; } sweep_dev;
static void *sd_alloc(dl_backend *b, size_t n) { (void)b; return ta_malloc(n); }
static void sd_release(dl_backend *b, void *p) { (void)b; ta_free(p); }
static int sd_copy(dl_backend *b, void *dst, const void *src, size_t n, int dir) { (void)b; (void)dir; memmove(dst, src, n); return 0; }
static int sd_zero(dl_backend *b, void *p, size_t n) { (void)b; memset(p, 0, n); return 0; }
static int sd_run(dl_backend *b, const dl_layer *l, const dl_exec *e, int backward) {
    size_t shared, per;
    dl__cpu cpu;
    dl_exec e2 = *e;
    float *scratch;
    int rc;
    dl__cpu_ws(l->net->simd, l, e->n, &shared, &per);
    if (!(scratch = (float *)ta_malloc((shared + per + 1) * sizeof(float)))) {
        snprintf(b->error, sizeof b->error, "out of memory for scratch");
        return DL_ERR_NOMEM;
    }
    b->error[0] = 0;
    memset(&cpu, 0, sizeof cpu);
    cpu.simd = l->net->simd; cpu.net = l->net; cpu.threads = 1;
    cpu.shared = scratch; cpu.thread_ws = scratch + shared; cpu.thread_floats = per;
    e2.cpu = &cpu;
    rc = backward ? dl__op(l->op)->backward(l, &e2) : dl__op(l->op)->forward(l, &e2);
    ta_free(scratch);
    return rc;
}
static int sd_forward(dl_backend *b, const dl_layer *l, const dl_exec *e) { return sd_run(b, l, e, 0); }
static int sd_backward(dl_backend *b, const dl_layer *l, const dl_exec *e) { return sd_run(b, l, e, 1); }
static int sd_loss(dl_backend *b, int kind, const float *out, const void *t, int n, int size, float *dout, float *loss) {
    return dl__cpu_loss(b, kind, out, t, n, size, dout, loss);
}
static int sd_optim(dl_backend *b, const dl_optim_job *j) { (void)b; return dl_optim_step_cpu(j); }
static void sd_destroy(dl_backend *b) { free(b); }
static dl_backend *sd_new(void) {
    sweep_dev *d = (sweep_dev *)calloc(1, sizeof *d);
    d->b.name = "sweepdev"; d->b.alloc = sd_alloc; d->b.release = sd_release; d->b.copy = sd_copy; d->b.zero = sd_zero;
    d->b.forward = sd_forward; d->b.backward = sd_backward; d->b.loss = sd_loss; d->b.optim_step = sd_optim;
    d->b.destroy = sd_destroy;
    return &d->b;
}

/* What one run of the scenario produced, compared bit for bit. */
typedef struct { float v[64]; int n; } sweep_out;
static void keep(sweep_out *o, const float *p, int n) { int i; for (i = 0; i < n && o->n < 64; i++) o->v[o->n++] = p[i]; }

static int sweep_reported, sweep_absorbed, sweep_unexpected;
/* A step failed: the injected failure must be why, and it must have been
   reported as out of memory. Then it is retried without failures. */
static void sweep_failed(int line, int rc, const char *msg) {
    if (!ta_injected) { sweep_unexpected++; CHECK(0, "line %d: failed without an injected failure: %d %s", line, rc, msg); return; }
    if (!(rc == DL_ERR_NOMEM || rc == -1) || !msg || !strstr(msg, "out of memory")) {
        sweep_unexpected++;
        CHECK(0, "line %d: allocation %ld failed, reported as %d '%s'", line, ta_fail_at, rc, msg ? msg : "(none)");
    }
    sweep_reported++;
    ta_fail_at = 0;
}
/* ok: the step's success as an expression that may be evaluated twice */
#define SWEEP(ok, rc, msg) do { if (!(ok)) { sweep_failed(__LINE__, (int)(rc), msg); \
        if (!(ok)) { CHECK(0, "line %d: the retry failed: %s", __LINE__, msg); goto done; } } } while (0)
#define SWEEP_NET(net, ok) SWEEP(ok, -1, dl_net_error(net))
#define SWEEP_RC(net, call) SWEEP((rc = (call)) == DL_OK, rc, dl_net_error(net))

/* Files of the sweep: on tmpfs when there is one (the sweep saves
   hundreds of times; fsync there is free), named after the process. */
static char sweep_paths[3][256];
static void sweep_names(void) {
    const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "build";
    int i;
    for (i = 0; i < 3; i++) snprintf(sweep_paths[i], sizeof sweep_paths[i], "%s/dl_sweep_%ld_%d.dl", dir, (long)getpid(), i);
}

/* Builds, trains (on the CPU and on a device), predicts, saves and loads,
   every way there is. */
static void sweep_scenario(sweep_out *o) {
    static float x[4 * 36];
    float loss, dout[4 * 3];
    int y[4] = { 0, 1, 2, 1 }, i, rc;
    dl_net *net = NULL, *m = NULL, *c = NULL, *cm = NULL;
    dl_layer *in, *conv, *bn, *pr, *mp, *gconv, *cat, *dr, *fl, *d1, *th, *logits = NULL, *probs = NULL, *xs[2];
    dl_layer *ct, *scale, *sc, *hs, *pd, *up, *mp2, *sl, *cat2;
    static const int scale_shape[3] = { 4, 1, 1 };
    static const float scale_data[4] = { 0.5f, -1.0f, 1.5f, 2.0f };
    dl_optim *opt = NULL, *oc = NULL, *ocm = NULL;
    dl_ctx *ctx = NULL;
    dl_status st;
    dl_conv_desc cd;
    const float *p;
    void *buf = NULL;
    size_t len = 0;
    o->n = 0;
    for (i = 0; i < 4 * 36; i++) x[i] = (float)((i * 7) % 13) / 13.0f - 0.4f;
    for (i = 0; i < 12; i++) dout[i] = (float)(i % 3) * 0.1f - 0.1f;

    SWEEP(net = dl_net_new(), -1, "out of memory (dl_net_new)");
    dl_net_set_threads(net, 2);             /* the pool's allocations too */
    SWEEP_NET(net, in = dl_input(net, 1, 6, 6));
    SWEEP_NET(net, conv = dl_conv2d(in, 4, 3, 1, 1));
    SWEEP_NET(net, bn = dl_batchnorm(conv));
    SWEEP_NET(net, pr = dl_prelu(bn));
    SWEEP_NET(net, mp = dl_maxpool2d(pr, 2, 2));
    memset(&cd, 0, sizeof cd); cd.filters = 4; cd.kernel = 3; cd.pad = 1; cd.groups = 2;
    SWEEP_NET(net, gconv = dl_conv2d_ex(mp, &cd));
    xs[0] = mp; xs[1] = gconv;
    SWEEP_NET(net, cat = dl_concat(xs, 2));
    /* issue 11's layers: transposed convolution, a broadcast constant, hard
       swish, reflect padding, bilinear upsampling, a channel slice */
    SWEEP_NET(net, ct = dl_conv2d_transpose(cat, 4, 2, 2, 0));             /* (4,6,6) */
    SWEEP_NET(net, scale = dl_constant(net, 3, scale_shape, scale_data));
    SWEEP_NET(net, sc = dl_mul(ct, scale));
    SWEEP_NET(net, hs = dl_hard_swish(sc));
    SWEEP_NET(net, pd = dl_pad(hs, 1, DL_PAD_REFLECT));                    /* (4,8,8) */
    SWEEP_NET(net, up = dl_upsample(pd, 2, 1));                            /* (4,16,16) */
    SWEEP_NET(net, mp2 = dl_maxpool2d(up, 5, 5));                          /* (4,3,3) */
    SWEEP_NET(net, sl = dl_slice_channels(mp2, 0, 2));
    xs[0] = cat; xs[1] = sl;
    SWEEP_NET(net, cat2 = dl_concat(xs, 2));
    SWEEP_NET(net, dr = dl_dropout(cat2, 0.25f));
    SWEEP_NET(net, fl = dl_flatten(dr));
    SWEEP_NET(net, d1 = dl_dense(fl, 6));
    SWEEP_NET(net, th = dl_tanh(d1));
    SWEEP_NET(net, logits = dl_dense(th, 3));
    SWEEP_NET(net, probs = dl_softmax(logits));
    SWEEP_NET(net, opt = dl_adam(net, 1e-2f));
    for (i = 0; i < 2; i++) {
        SWEEP_RC(net, dl_train_step(net, opt, logits, x, y, 4, &loss));
        keep(o, &loss, 1);
    }
    SWEEP_NET(net, dl_forward(net, logits, x, 4, 1));
    SWEEP_RC(net, dl_backward(net, logits, dout));
    SWEEP_RC(net, dl_optim_step(opt));
    SWEEP_NET(net, p = dl_predict(net, probs, x, 4));
    keep(o, p, 12);
    SWEEP_NET(net, ctx = dl_ctx_new(net));
    SWEEP(p = dl_ctx_predict(ctx, probs, x, 2), -1, dl_ctx_error(ctx));
    keep(o, p, 6);
    SWEEP_RC(net, dl_net_save(net, sweep_paths[0]));
    SWEEP_RC(net, dl_checkpoint_save(net, opt, sweep_paths[1]));
    SWEEP(m = dl_net_load(sweep_paths[0], &st), st.code, st.msg);
    dl_net_set_threads(m, 1);               /* one pool (net's) is enough, and spinning pools are slow on a busy machine */
    SWEEP_NET(m, p = dl_predict(m, dl_net_layer(m, -1), x, 4));
    keep(o, p, 12);
    SWEEP(c = dl_checkpoint_load(sweep_paths[1], &oc, &st), st.code, st.msg);
    dl_net_set_threads(c, 1);
    /* the resumed net trains on a device (whose buffers and scratch are counted too) */
    SWEEP_RC(c, dl_net_to_backend(c, sd_new()));
    SWEEP_RC(c, dl_train_step(c, oc, dl_net_layer(c, -2), x, y, 4, &loss));
    keep(o, &loss, 1);
    SWEEP_RC(c, dl_checkpoint_save(c, oc, sweep_paths[2]));
    SWEEP_RC(c, dl_net_to_backend(c, NULL));
    SWEEP_RC(c, dl_train_step(c, oc, dl_net_layer(c, -2), x, y, 4, &loss));
    keep(o, &loss, 1);
    SWEEP_RC(net, dl_net_load_weights(net, sweep_paths[0]));
    SWEEP_RC(net, dl_net_save_mem(net, opt, &buf, &len));
    SWEEP(cm = dl_checkpoint_load_mem(buf, len, &ocm, &st), st.code, st.msg);
    dl_net_set_threads(cm, 1);
    SWEEP_RC(cm, dl_train_step(cm, ocm, dl_net_layer(cm, -2), x, y, 4, &loss));
    keep(o, &loss, 1);
    dl_net_free(c);
    SWEEP(c = dl_checkpoint_load(sweep_paths[2], &oc, &st), st.code, st.msg);
    dl_net_set_threads(c, 1);
    SWEEP_NET(c, p = dl_predict(c, dl_net_layer(c, -1), x, 4));
    keep(o, p, 12);
done:
    DL_FREE(buf);
    dl_ctx_free(ctx);
    dl_net_free(net); dl_net_free(m); dl_net_free(c); dl_net_free(cm);
}

static void test_allocation_failures(void) {
    sweep_out ref, got;
    long total, k, base = ta_live_now();
    int mismatched = 0, leaked = 0, i;
    sweep_names();
    ta_fail_at = 0; ta_calls = 0; ta_injected = 0;
    sweep_scenario(&ref);
    total = ta_calls;
    CHECK(ref.n == 47 && ta_live_now() == base, "reference run: %d values, %ld blocks leaked", ref.n, ta_live_now() - base);
    sweep_reported = sweep_absorbed = sweep_unexpected = 0;
    for (k = 1; k <= total; k++) {
        ta_calls = 0; ta_injected = 0; ta_fail_at = k; ta_size = 0;
        sweep_scenario(&got);
        if (ta_fail_at) {       /* failed and nobody was told: only the thread pool may do that (it then runs serially) */
            int pool = ta_size == sizeof(struct dl__pool) || ta_size == 2 * sizeof(pthread_t) || ta_size == 2 * sizeof(struct dl__worker);
            sweep_absorbed++;
            CHECK(pool, "allocation %ld of %lu bytes failed silently", k, (unsigned long)ta_size);
        }
        ta_fail_at = 0;
        if (ta_live_now() != base) { if (leaked++ < 3) CHECK(0, "failing allocation %ld leaked %ld blocks", k, ta_live_now() - base); base = ta_live_now(); }
        if (got.n != ref.n || memcmp(got.v, ref.v, sizeof(float) * (size_t)ref.n))
            if (mismatched++ < 3) CHECK(0, "failing allocation %ld: results differ from the run without failure", k);
    }
    printf("     %ld allocation points: %d failures reported as out of memory and retried to the same results, "
           "%d absorbed by the thread pool (runs serially); none leaked\n", total, sweep_reported, sweep_absorbed);
    CHECK(!leaked && !mismatched && !sweep_unexpected, "%d leaks, %d mismatches, %d unexpected", leaked, mismatched, sweep_unexpected);
    for (i = 0; i < 3; i++) remove(sweep_paths[i]);
}

/* The same for the IDX/gzip reader of the examples. */
static void test_allocation_failures_idx(void) {
    static const char *const files[2] = { "tests/fuzz/corpus_idx/images2_fixed.gz", "tests/fuzz/corpus_idx/labels50_level9.gz" };
    int f, points = 0;
    for (f = 0; f < 2; f++) {
        size_t len;
        unsigned char *data = read_all(files[f], &len);
        idx_set ref, s;
        char err[256];
        long total, k, base = ta_live_now();
        CHECK(data != NULL, "%s missing", files[f]);
        if (!data) continue;
        ta_fail_at = 0; ta_calls = 0;
        CHECK(idx_load_mem(data, len, f == 0, &ref, err, sizeof err) == 0, "%s: %s", files[f], err);
        total = ta_calls;
        for (k = 1; k <= total; k++) {
            ta_calls = 0; ta_injected = 0; ta_fail_at = k; err[0] = 0;
            if (idx_load_mem(data, len, f == 0, &s, err, sizeof err) == 0) {
                CHECK(!ta_injected, "%s: allocation %ld failed unnoticed", files[f], k);
                idx_free(&s);
            } else CHECK(ta_injected && err[0], "%s: allocation %ld: '%s'", files[f], k, err);
            ta_fail_at = 0;
        }
        idx_free(&ref);
        CHECK(ta_live_now() == base, "%s: %ld blocks leaked", files[f], ta_live_now() - base);
        points += (int)total;
        free(data);
    }
    printf("     idx.h: %d allocation points, each failure reported, none leaked\n", points);
}

/* ======================================================================== */
/*  Killed while saving                                                     */
/* ======================================================================== */
static int version_of(const char *path, int checkpoint) {
    dl_status st;
    dl_optim *o = NULL;
    dl_net *n = checkpoint ? dl_checkpoint_load(path, &o, &st) : dl_net_load(path, &st);
    int v = n ? (int)dl_net_params(n)[0] : -1;
    if (!n) printf("    %s: %s\n", path, st.msg);
    if (n && checkpoint && !o) v = -2;
    dl_net_free(n);
    return v;
}
static int leftovers(const char *dir) {     /* removes and counts temporary files; -1: something else is there */
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;
    char path[512];
    if (!d) return -1;
    while ((e = readdir(d)) != NULL) {
        size_t k = strlen(e->d_name);
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") || !strcmp(e->d_name, "m.dl") || !strcmp(e->d_name, "c.dl")) continue;
        if (k > 4 && !strcmp(e->d_name + k - 4, ".tmp")) {
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            remove(path);
            n++;
        } else n = -1000;
    }
    closedir(d);
    return n;
}
static void test_kill_during_save(void) {
    const char *dir = "build/r_kill", *paths[2] = { "build/r_kill/m.dl", "build/r_kill/c.dl" };
    const char *env = getenv("DL_KILL_TRIALS");
    int trials = env ? atoi(env) : 200, t, last[2], before_rename = 0, after_rename = 0, completed = 0, tmp_left = 0, bad = 0;
    double t0, save_s, budget = env ? 1e9 : 3.0;
    uint64_t r = 0x9E3779B97F4A7C15ULL;
    dl_net *net = dl_net_new();
    dl_layer *out = dl_dense(dl_dense(dl_input(net, 128, 0, 0), 256), 128);
    dl_optim *opt = dl_sgd(net, 0.1f, 0.9f);
    float *w = dl_net_params(net);
    mkdir(dir, 0755);
    leftovers(dir);
    dl_net_set_threads(net, 1);             /* a child must not need threads it does not have */
    (void)out;
    w[0] = 0;
    CHECK(dl_net_save(net, paths[0]) == DL_OK && dl_checkpoint_save(net, opt, paths[1]) == DL_OK, "%s", dl_net_error(net));
    last[0] = last[1] = 0;
    t0 = now_s();
    for (t = 0; t < 3; t++) dl_checkpoint_save(net, opt, paths[1]);
    save_s = (now_s() - t0) / 3;
    t0 = now_s();
    for (t = 1; t <= trials && now_s() - t0 < budget; t++) {
        int which = t & 1, status = 0, v;
        pid_t pid;
        struct timespec ts;
        double delay;
        w[0] = (float)t;
        fflush(stdout);
        pid = fork();
        if (pid == 0) {
            int rc = which ? dl_checkpoint_save(net, opt, paths[1]) : dl_net_save(net, paths[0]);
            _exit(rc ? 1 : 0);
        }
        CHECK(pid > 0, "fork failed");
        if (pid < 0) break;
        r = r * 6364136223846793005ULL + 1442695040888963407ULL;
        delay = save_s * 1.3 * (double)(r >> 40) / 16777216.0;
        ts.tv_sec = (time_t)delay;
        ts.tv_nsec = (long)((delay - (double)ts.tv_sec) * 1e9);
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        v = version_of(paths[which], which);
        if (WIFEXITED(status)) {
            completed++;
            if (v != t && bad++ < 3) CHECK(0, "trial %d: the save completed but the file holds version %d", t, v);
        } else if (v == last[which]) before_rename++;
        else if (v == t) after_rename++;
        else if (bad++ < 3) CHECK(0, "trial %d: killed, the file holds version %d, not %d or %d", t, v, last[which], t);
        if (v >= 0) last[which] = v;
        v = leftovers(dir);
        if (v < 0 && bad++ < 3) CHECK(0, "trial %d: unexpected files in %s", t, dir);
        tmp_left += v > 0 ? v : 0;
    }
    printf("     %d kill-during-save trials (%.1f ms per save): killed before the rename %d, after it %d, completed %d; "
           "%d temporary files left (removed); the file always loaded\n", t - 1, save_s * 1e3, before_rename, after_rename,
           completed, tmp_left);
    CHECK(!bad, "%d bad trials", bad);
    CHECK(t - 1 < 20 || before_rename > 0, "no trial killed a save before its rename: the test did not test");
    remove(paths[0]); remove(paths[1]); rmdir(dir);
    dl_net_free(net);
}

/* ======================================================================== */
/*  Threads: separate nets share nothing                                    */
/* ======================================================================== */
typedef struct { int id; unsigned char *bytes; size_t len; int ok; } thread_job;
static float thread_x[16 * 64];
static void *thread_main(void *arg) {
    thread_job *j = (thread_job *)arg;
    dl_net *net = dl_net_new(), *back;
    dl_layer *out;
    dl_optim *opt;
    dl_status st;
    char path[64];
    int y[16], i, ok = 1;
    void *buf;
    const float *p;
    float ref[16 * 3];
    dl_net_seed(net, 100 + (uint64_t)j->id);
    dl_net_set_threads(net, 2);             /* each net with its own pool */
    out = fuzz_dl_graph(net, 1);
    opt = dl_adam(net, 1e-2f);
    for (i = 0; i < 16; i++) y[i] = (i + j->id) % 3;
    for (i = 0; i < 5 && ok; i++) ok = dl_train_step(net, opt, out, thread_x, y, 16, NULL) == DL_OK;
    ok = ok && (p = dl_predict(net, out, thread_x, 16)) != NULL;
    if (ok) memcpy(ref, p, sizeof ref);
    snprintf(path, sizeof path, "build/r_thread_%d.dl", j->id);
    ok = ok && dl_net_save(net, path) == DL_OK && dl_net_save(net, "build/r_thread_shared.dl") == DL_OK;
    ok = ok && (back = dl_net_load(path, &st)) != NULL;
    if (ok) {
        p = dl_predict(back, dl_net_layer(back, -1), thread_x, 16);
        ok = p && !memcmp(p, ref, sizeof ref);
        dl_net_free(back);
    }
    ok = ok && dl_net_save_mem(net, NULL, &buf, &j->len) == DL_OK;
    if (ok) { j->bytes = (unsigned char *)malloc(j->len); memcpy(j->bytes, buf, j->len); DL_FREE(buf); }
    remove(path);
    j->ok = ok;
    dl_net_free(net);
    return NULL;
}
static void test_threads_separate_nets(void) {
    enum { T = 4 };
    thread_job seq[T], par[T];
    pthread_t th[T];
    int i, matches = 0;
    size_t len;
    unsigned char *shared;
    for (i = 0; i < 16 * 64; i++) thread_x[i] = (float)((i * 13) % 17) / 17.0f;
    for (i = 0; i < T; i++) { memset(&seq[i], 0, sizeof seq[i]); seq[i].id = i; thread_main(&seq[i]); }
    for (i = 0; i < T; i++) { memset(&par[i], 0, sizeof par[i]); par[i].id = i; pthread_create(&th[i], NULL, thread_main, &par[i]); }
    for (i = 0; i < T; i++) pthread_join(th[i], NULL);
    for (i = 0; i < T; i++) {
        CHECK(seq[i].ok && par[i].ok, "net %d failed", i);
        CHECK(seq[i].len == par[i].len && par[i].bytes && !memcmp(seq[i].bytes, par[i].bytes, seq[i].len),
              "net %d trained in a thread differs from the same net trained alone", i);
    }
    /* four saves raced to one path: it holds exactly one of them, whole */
    shared = read_all("build/r_thread_shared.dl", &len);
    for (i = 0; i < T; i++) matches += shared && len == par[i].len && !memcmp(shared, par[i].bytes, len);
    CHECK(matches == 1, "the shared file matches %d of the nets", matches);
    free(shared);
    remove("build/r_thread_shared.dl");
    for (i = 0; i < T; i++) { free(seq[i].bytes); free(par[i].bytes); }
}

/* ======================================================================== */
/*  The fuzzing corpora, through the fuzzers' own checks                    */
/* ======================================================================== */
static int replay_dir(const char *dir, int kind) {      /* kind 0 model, 1 checkpoint, 2 idx */
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;
    dl_net *into = dl_net_new();
    fuzz_dl_graph(into, 0);
    CHECK(d != NULL, "%s missing", dir);
    while (d && (e = readdir(d)) != NULL) {
        char path[512];
        size_t len;
        unsigned char *data;
        long base = ta_live_now();
        if (e->d_name[0] == '.') continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (!(data = read_all(path, &len))) continue;
        n++;
        if (kind < 2) {
            int line = fuzz_dl_one(data, len, kind, into);
            CHECK(line == 0, "%s: fuzz_dl.h:%d", path, line);
        } else {
            int want;
            for (want = 0; want < 2; want++) {
                idx_set s;
                char err[256];
                err[0] = 0;
                if (idx_load_mem(data, len, want, &s, err, sizeof err) == 0) idx_free(&s);
                else CHECK(err[0], "%s: no message", path);
            }
        }
        CHECK(ta_live_now() == base, "%s: %ld blocks leaked", path, ta_live_now() - base);
        free(data);
    }
    if (d) closedir(d);
    dl_net_free(into);
    return n;
}
static void test_fuzz_corpora(void) {
    int m = replay_dir("tests/fuzz/corpus_model", 0), c = replay_dir("tests/fuzz/corpus_checkpoint", 1);
    int i = replay_dir("tests/fuzz/corpus_idx", 2);
    printf("     replayed %d model, %d checkpoint and %d IDX corpus files\n", m, c, i);
    CHECK(m >= 4 && c >= 4 && i >= 4, "corpora missing");
}

int main(void) {
    RUN(test_bad_inputs);
    RUN(test_nonfinite);
    RUN(test_diverging_step_changes_nothing);
    RUN(test_update_overflow_changes_nothing);
    RUN(test_softmax_output_refused_as_logits);
    RUN(test_null_layer_is_an_error);
    RUN(test_save_message_names_path_and_reason);
    RUN(test_save_refuses_special_files);
    RUN(test_net_error_rule);
    RUN(test_huge_batch_refused);
    RUN(test_nonfinite_hyperparameters_by_bits);
    RUN(test_optim_message_names_the_rule);
    RUN(test_maxpool_nan_stays_in_plane);
    RUN(test_allocation_failures);
    RUN(test_allocation_failures_idx);
    RUN(test_kill_during_save);
    RUN(test_threads_separate_nets);
    RUN(test_fuzz_corpora);
    return test_summary();
}
