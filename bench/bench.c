/* make bench: dl.h next to PyTorch (bench/torch_ref.py) and ONNX Runtime
   (bench/ort_ref.js) on five nets of different character, each built the
   same way in all three, and next to the machine's measured FMA peak.
   Prints numbers and ratios, never pass/fail.

   Usage: build/bench [--quick] [--reps N] [--secs S] [--net NAME] [--kernels] | --embed | --onnx-import
          build/bench [--reps N] [--secs S] --threads NAME FIGURE
   (--quick: 0.25 s per figure instead of 1, about 5 minutes for all; --secs
   sets it; --net runs one of reference, cifar, mlp, mobile, resnet;
   --threads: dl.h alone, one figure (train, b1, b64 or b256) at 1 and 2
   threads alternating in one process, the median of per-round ratios: what
   a loaded machine's drift hits least)
   Internal: build/bench --train-rss NAME (the fresh process whose peak RSS
   is the training memory figure).

   How it measures (../shared/BENCHMARKING.md): repetitions interleaved per
   net (dl.h, PyTorch, ONNX Runtime, then the next net, then the next
   repetition), medians with the spread (min-max over repetitions) and
   ratios taken within a repetition; PyTorch on the OpenBLAS it loaded (it
   says which), malloc told not to trim, OPENBLAS_NUM_THREADS=1 beside
   torch.set_num_threads, inference the faster of eager and TorchScript
   frozen + optimize_for_inference; ONNX Runtime with all graph
   optimisations. The competing load is one spinning process per core,
   started and stopped here. */
#define _POSIX_C_SOURCE 200809L
#define DL_IMPLEMENTATION
#include "../dl.h"
#include <time.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}
static int quick;
static double secs;         /* per figure */

/* ---- the machine's FMA peak: independent FMA chains in registers ----
   Each chain starts from its own value: chains that start equal are equal
   forever, and the compiler merges them into one (then the probe times one
   dependent FMA and credits it sixteen). */
#ifdef DL__X86
__attribute__((target("avx512f"))) static double fma_peak_avx512(double seconds) {
#define S(k) _mm512_set1_ps(1.0f + 0.01f * k)
    __m512 a0 = S(0), a1 = S(1), a2 = S(2), a3 = S(3), a4 = S(4), a5 = S(5), a6 = S(6), a7 = S(7), a8 = S(8), a9 = S(9),
           a10 = S(10), a11 = S(11), a12 = S(12), a13 = S(13), a14 = S(14), a15 = S(15), m = _mm512_set1_ps(0.999999f),
           d = _mm512_set1_ps(1e-7f);
#undef S
    long it = 0;
    double t0 = now(), t;
    float sink[16];
    do {
        int k;
        for (k = 0; k < 1000; k++) {
#define F(r) r = _mm512_fmadd_ps(r, m, d);
            F(a0) F(a1) F(a2) F(a3) F(a4) F(a5) F(a6) F(a7) F(a8) F(a9) F(a10) F(a11) F(a12) F(a13) F(a14) F(a15)
#undef F
        }
        it += 1000;
    } while ((t = now() - t0) < seconds);
    a0 = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)), _mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7)));
    a8 = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a8, a9), _mm512_add_ps(a10, a11)), _mm512_add_ps(_mm512_add_ps(a12, a13), _mm512_add_ps(a14, a15)));
    _mm512_storeu_ps(sink, _mm512_add_ps(a0, a8));
    if (sink[0] == 12345.0f) printf("-");
    return 16.0 * 16 * 2 * (double)it / t / 1e9;
}
__attribute__((target("avx2,fma"))) static double fma_peak_avx2(double seconds) {
#define S(k) _mm256_set1_ps(1.0f + 0.01f * k)
    __m256 a0 = S(0), a1 = S(1), a2 = S(2), a3 = S(3), a4 = S(4), a5 = S(5), a6 = S(6), a7 = S(7), a8 = S(8), a9 = S(9),
           a10 = S(10), a11 = S(11), m = _mm256_set1_ps(0.999999f), d = _mm256_set1_ps(1e-7f);
#undef S
    long it = 0;
    double t0 = now(), t;
    float sink[8];
    do {
        int k;
        for (k = 0; k < 1000; k++) {
#define F(r) r = _mm256_fmadd_ps(r, m, d);
            F(a0) F(a1) F(a2) F(a3) F(a4) F(a5) F(a6) F(a7) F(a8) F(a9) F(a10) F(a11)
#undef F
        }
        it += 1000;
    } while ((t = now() - t0) < seconds);
    a0 = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)), _mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7)));
    a8 = _mm256_add_ps(_mm256_add_ps(a8, a9), _mm256_add_ps(a10, a11));
    _mm256_storeu_ps(sink, _mm256_add_ps(a0, a8));
    if (sink[0] == 12345.0f) printf("-");
    return 12.0 * 8 * 2 * (double)it / t / 1e9;
}
#endif
static double fma_peak(const char *simd) {
#ifdef DL__X86
    if (!strcmp(simd, "avx512")) return fma_peak_avx512(quick ? 0.2 : 0.5);
    if (!strcmp(simd, "avx2")) return fma_peak_avx2(quick ? 0.2 : 0.5);
#endif
    (void)simd;
    return 0;
}
typedef struct { const char *simd; double r; } peak_job;
static void *peak_thread(void *a) { peak_job *j = (peak_job *)a; j->r = fma_peak(j->simd); return NULL; }
static double fma_peak_threads(const char *simd, int n) {
    pthread_t t[64];
    peak_job j[64];
    double total = 0;
    int i;
    for (i = 0; i < n; i++) { j[i].simd = simd; pthread_create(&t[i], NULL, peak_thread, &j[i]); }
    for (i = 0; i < n; i++) { pthread_join(t[i], NULL); total += j[i].r; }
    return total;
}

/* ---- the nets: the same layers in bench/torch_ref.py ---- */
static dl_layer *conv(dl_layer *x, int filters, int k, int stride, int groups) {
    dl_conv_desc d;
    memset(&d, 0, sizeof d);
    d.filters = filters; d.kernel = k; d.stride = stride; d.pad = k / 2; d.groups = groups;
    return dl_conv2d_ex(x, &d);
}
static dl_layer *bn_relu(dl_layer *x) { return dl_relu(dl_batchnorm(x)); }
static dl_layer *net_reference(dl_net *net) {           /* the Fashion-MNIST demo's CNN */
    dl_layer *h = dl_maxpool2d(dl_prelu(dl_batchnorm(dl_conv2d(dl_input(net, 1, 28, 28), 32, 3, 1, 1))), 2, 2);
    h = dl_maxpool2d(dl_prelu(dl_batchnorm(dl_conv2d(h, 64, 3, 1, 1))), 2, 2);
    return dl_dense(dl_flatten(h), 10);
}
static dl_layer *net_cifar(dl_net *net) {               /* 5x5 convolutions and a dense hidden layer */
    dl_layer *h = dl_maxpool2d(dl_relu(conv(dl_input(net, 3, 32, 32), 32, 5, 1, 1)), 2, 2);
    h = dl_maxpool2d(dl_relu(conv(h, 64, 5, 1, 1)), 2, 2);
    return dl_dense(dl_relu(dl_dense(dl_flatten(h), 256)), 10);
}
static dl_layer *net_mlp(dl_net *net) {
    dl_layer *h = dl_relu(dl_dense(dl_input(net, 784, 0, 0), 512));
    return dl_dense(dl_relu(dl_dense(h, 512)), 10);
}
static dl_layer *dw_sep(dl_layer *x, int out, int stride) {    /* depthwise 3x3, then pointwise */
    dl_layer *h = bn_relu(conv(x, x->shape[0], 3, stride, x->shape[0]));
    return bn_relu(conv(h, out, 1, 1, 1));
}
static dl_layer *net_mobile(dl_net *net) {              /* MobileNet-style, depthwise-separable */
    dl_layer *h = bn_relu(conv(dl_input(net, 3, 32, 32), 32, 3, 2, 1));
    h = dw_sep(h, 64, 1);
    h = dw_sep(h, 128, 2);
    h = dw_sep(h, 128, 1);
    h = dw_sep(h, 256, 2);
    return dl_dense(dl_global_avgpool(h), 10);
}
static dl_layer *res_block(dl_layer *x, int out, int stride) {
    dl_layer *h = dl_batchnorm(conv(bn_relu(conv(x, out, 3, stride, 1)), out, 3, 1, 1));
    dl_layer *s = stride == 1 && x->shape[0] == out ? x : dl_batchnorm(conv(x, out, 1, stride, 1));
    return dl_relu(dl_add(h, s));
}
static dl_layer *net_resnet(dl_net *net) {              /* a small residual net (ResNet-8 style) */
    dl_layer *h = bn_relu(conv(dl_input(net, 3, 32, 32), 16, 3, 1, 1));
    h = res_block(h, 16, 1);
    h = res_block(h, 32, 2);
    h = res_block(h, 64, 2);
    return dl_dense(dl_global_avgpool(h), 10);
}
typedef struct { const char *name, *title; dl_layer *(*build)(dl_net *); } bench_net;
static const bench_net nets[] = {
    { "reference", "reference CNN: conv32-bn-prelu-pool-conv64-bn-prelu-pool-dense10, 1x28x28", net_reference },
    { "cifar", "CIFAR-sized: conv5x5 32-relu-pool-conv5x5 64-relu-pool-dense256-relu-dense10, 3x32x32", net_cifar },
    { "mlp", "MLP 784-512-512-10, relu", net_mlp },
    { "mobile", "MobileNet-style: conv3x3/2 32, 4 depthwise-separable blocks to 256, global pool, dense10, 3x32x32", net_mobile },
    { "resnet", "residual: conv16, 3 basic blocks (16, 32/2, 64/2), global pool, dense10, 3x32x32", net_resnet },
};
#define N_NETS ((int)(sizeof nets / sizeof nets[0]))

/* FLOPs per image (a multiply-add is 2): convolutions and dense layers only.
   Training: forward, the weight gradient, and the input gradient of every
   layer but the first. */
static void net_flops(dl_layer *out, double *fwd, double *train) {
    dl_net *net = out->net;
    int i;
    *fwd = *train = 0;
    for (i = 0; i <= out->index; i++) {
        dl_layer *l = dl_net_layer(net, i);
        double f = 0;
        if (l->op == DL_OP_CONV2D) { dl_conv_geom g = dl_layer_conv_geom(l); f = 2.0 * g.M * g.K * g.P; }
        else if (l->op == DL_OP_DENSE) f = 2.0 * l->a.units * l->in[0]->size;
        *fwd += f;
        *train += f * (l->n_in && l->in[0]->op == DL_OP_INPUT ? 2 : 3);
    }
}

static float *data(int n, int size) {
    float *x = (float *)malloc(sizeof(float) * (size_t)size * (size_t)n);
    size_t i;
    for (i = 0; i < (size_t)size * n; i++) x[i] = (float)((i * 2654435761u) >> 24) / 255.0f;
    return x;
}
typedef struct { dl_net *net; dl_layer *out; int in_size; } built;
static built build(const bench_net *b, int threads) {
    built r;
    r.net = dl_net_new();
    dl_net_seed(r.net, 1);
    r.out = b->build(r.net);
    r.in_size = dl_layer_size(dl_net_layer(r.net, 0));
    dl_net_set_threads(r.net, threads);
    return r;
}
static double train_ips(const bench_net *b, int threads, int batch) {
    built m = build(b, threads);
    dl_optim *opt = dl_adam(m.net, 1e-3f);
    float *x = data(batch, m.in_size);
    int *y = (int *)malloc(sizeof(int) * (size_t)batch), i, steps = 0;
    double t0, t;
    for (i = 0; i < batch; i++) y[i] = i % 10;
    for (i = 0; i < 3; i++) dl_train_step(m.net, opt, m.out, x, y, batch, NULL);
    t0 = now();
    do { dl_train_step(m.net, opt, m.out, x, y, batch, NULL); steps++; } while ((t = now() - t0) < secs);
    free(x); free(y);
    dl_net_free(m.net);
    return steps * batch / t;
}
static double infer_ips(const bench_net *b, int threads, int batch) {
    built m = build(b, threads);
    float *x = data(batch, m.in_size);
    int steps = 0, i;
    double t0, t;
    for (i = 0; i < 3; i++) dl_predict(m.net, m.out, x, batch);
    t0 = now();
    do { dl_predict(m.net, m.out, x, batch); steps++; } while ((t = now() - t0) < secs);
    free(x);
    dl_net_free(m.net);
    return steps * batch / t;
}
static int cmp_d(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return x < y ? -1 : x > y; }
static double median(double *v, int n) { qsort(v, (size_t)n, sizeof(double), cmp_d); return n ? (n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2])) : 0; }
static double latency_us(const bench_net *b, int threads) {
    built m = build(b, threads);
    float *x = data(1, m.in_size);
    static double ts[100000];
    int n = 0, i;
    double t0;
    for (i = 0; i < 20; i++) dl_predict(m.net, m.out, x, 1);
    t0 = now();
    while (n < 100000 && (n < 50 || now() - t0 < secs)) {
        double t = now();
        dl_predict(m.net, m.out, x, 1);
        ts[n++] = now() - t;
    }
    free(x);
    dl_net_free(m.net);
    return median(ts, n) * 1e6;
}

/* ---- results: key value pairs per repetition, net and framework ---- */
enum { DLH, TORCH, ORT, N_FW };
#define MAX_REPS 9
#define MAX_KEYS 48
typedef struct { char key[48]; double v; } kv;
typedef struct { kv k[MAX_KEYS]; int n; } kvs;
static kvs res[MAX_REPS][8][N_FW];
static void put(kvs *s, const char *key, double v) {
    if (s->n < MAX_KEYS) { snprintf(s->k[s->n].key, sizeof s->k[0].key, "%s", key); s->k[s->n++].v = v; }
}
static double get(const kvs *s, const char *key) {
    int i;
    for (i = s->n - 1; i >= 0; i--) if (!strcmp(s->k[i].key, key)) return s->k[i].v;
    return 0;
}
static void run_ref(const char *cmd, kvs *s, char *info, size_t info_len) {
    FILE *p = popen(cmd, "r");
    char line[500], key[48];
    double v;
    if (!p) return;
    while (fgets(line, sizeof line, p)) {
        if (info && !strncmp(line, "info ", 5)) { snprintf(info, info_len, "%s", line + 5); continue; }
        if (sscanf(line, "%47s %lf", key, &v) == 2) put(s, key, v);
    }
    pclose(p);
}

/* ---- the competing load: one spinning process per core ---- */
static pid_t spinners[256];
static int n_spinners;
static void load_start(int n) {
    int i;
    for (i = 0; i < n && i < 256; i++) {
        pid_t p = fork();
        if (p == 0) { volatile unsigned long k = 0; for (;;) k++; }
        if (p > 0) spinners[n_spinners++] = p;
    }
}
static void load_stop(void) {
    int i;
    for (i = 0; i < n_spinners; i++) { kill(spinners[i], SIGKILL); waitpid(spinners[i], NULL, 0); }
    n_spinners = 0;
}

static const int batches[3] = { 1, 64, 256 };
static void measure_dlh(const bench_net *b, kvs *s, int busy) {
    int t, k;
    char key[48];
    if (busy) {         /* the default thread count against one thread */
        put(s, "busy_train_ips_1", train_ips(b, 1, 64));
        put(s, "busy_train_ips_2", train_ips(b, 0, 64));
        return;
    }
    for (t = 1; t <= 2; t++) {
        snprintf(key, sizeof key, "train_ips_%d", t); put(s, key, train_ips(b, t, 64));
        for (k = 0; k < 3; k++) {
            snprintf(key, sizeof key, "infer_ips_b%d_%d", batches[k], t);
            put(s, key, infer_ips(b, t, batches[k]));
        }
        snprintf(key, sizeof key, "latency_us_%d", t); put(s, key, latency_us(b, t));
    }
}
static int have_torch, have_ort;
static char torch_info[512];
#define TORCH_ENV "OPENBLAS_NUM_THREADS=1 GLIBC_TUNABLES=glibc.malloc.mmap_threshold=33554432:" \
                  "glibc.malloc.trim_threshold=4294967295:glibc.malloc.top_pad=268435456 "
static void measure_peers(const bench_net *b, kvs *s, int busy, int fw) {
    char cmd[600];
    if (fw == TORCH && have_torch) {
        snprintf(cmd, sizeof cmd, TORCH_ENV "/usr/bin/python3 bench/torch_ref.py --net %s --secs %g%s --onnx build/bench_%s.onnx",
                 b->name, secs, busy ? " --busy" : "", b->name);
        run_ref(cmd, s, torch_info, sizeof torch_info);
    }
    if (fw == ORT && have_ort && !busy) {
        built m = build(b, 1);
        dl_layer *in = dl_net_layer(m.net, 0);
        char shape[64];
        if (in->ndim == 1) snprintf(shape, sizeof shape, "%d", in->shape[0]);
        else snprintf(shape, sizeof shape, "%d,%d,%d", in->shape[0], in->shape[1], in->shape[2]);
        dl_net_free(m.net);
        snprintf(cmd, sizeof cmd, "test -f build/bench_%s.onnx && NODE_PATH=build/node_modules node bench/ort_ref.js build/bench_%s.onnx %s %g",
                 b->name, b->name, shape, secs);
        run_ref(cmd, s, NULL, 0);
    }
}

/* Peak RSS of a fresh process that only trains (batch 64, the default threads). */
static double rss_of(const char *cmd) {
    kvs s;
    memset(&s, 0, sizeof s);
    run_ref(cmd, &s, NULL, 0);
    return get(&s, "train_rss_mb");
}
static int train_rss_child(const char *name) {
    struct rusage ru;
    int i;
    for (i = 0; i < N_NETS; i++)
        if (!strcmp(nets[i].name, name)) {
            secs = 0.3;
            train_ips(&nets[i], 0, 64);
            getrusage(RUSAGE_SELF, &ru);
            printf("train_rss_mb %.1f\n", (double)ru.ru_maxrss / 1024.0);
            return 0;
        }
    return 1;
}

/* ---- the kernels section (--kernels): GEMMs through the library's driver ---- */
static double gemm_gflops(dl_net *net, int M, int N, int K, int threads) {
    float *A = (float *)malloc(sizeof(float) * (size_t)M * K), *B = (float *)malloc(sizeof(float) * (size_t)K * N);
    float *C = (float *)malloc(sizeof(float) * (size_t)M * N);
    size_t ap = dl__apack_floats(net->simd, M, K);
    float *scratch = (float *)malloc(sizeof(float) * (ap + (size_t)threads * (DL__BPACK + ap)));
    dl__cpu cpu;
    dl__gemm g;
    double best = 1e30, flop = 2.0 * M * N * K;
    int i, reps = 0;
    for (i = 0; i < M * K; i++) A[i] = (float)(i % 13) * 0.01f;
    for (i = 0; i < K * N; i++) B[i] = (float)(i % 7) * 0.02f;
    memset(&cpu, 0, sizeof cpu);
    cpu.simd = net->simd; cpu.net = net; cpu.threads = threads;
    cpu.shared = scratch; cpu.thread_ws = scratch + ap; cpu.thread_floats = DL__BPACK + ap;
    memset(&g, 0, sizeof g);
    g.M = M; g.N = N; g.K = K;
    g.A = dl__plain(A, (size_t)K, 1); g.B = dl__plain(B, (size_t)N, 1); g.C = dl__plain(C, (size_t)N, 1);
    dl_net_set_threads(net, threads);
    do {
        double t = now();
        if (threads == 1) dl__gemm_serial(net->simd, &g, NULL, cpu.thread_ws);
        else dl__gemm_parallel(&cpu, &g, cpu.shared);
        t = now() - t;
        if (t < best) best = t;
    } while (++reps < 3 || (reps < 50 && best * reps < (quick ? 0.1 : 0.4)));
    free(A); free(B); free(C); free(scratch);
    return flop / best / 1e9;
}
static void kernels(dl_net *net, double peak1, double peak2) {
    struct { const char *name; int M, N, K; } L[] = {
        { "SGEMM 256^3", 256, 256, 256 }, { "SGEMM 1024^3", 1024, 1024, 1024 },
        { "conv1 fwd as GEMM 32 x 50176 x 9", 32, 50176, 9 },
        { "conv2 fwd as GEMM 64 x 12544 x 288", 64, 12544, 288 },
        { "conv2 dW as GEMM 288 x 64 x 12544", 288, 64, 12544 },
        { "MLP dense fwd as GEMM 512 x 64 x 784", 512, 64, 784 },
    };
    int i;
    printf("\nGEMMs through dl.h's driver, GFLOP/s (share of the FMA peak)\n\n");
    printf("| %-40s | %16s | %16s |\n|------------------------------------------|------------------|------------------|\n",
           "", "1 thread", "2 threads");
    for (i = 0; i < (int)(sizeof L / sizeof L[0]); i++) {
        double a = gemm_gflops(net, L[i].M, L[i].N, L[i].K, 1), b = gemm_gflops(net, L[i].M, L[i].N, L[i].K, 2);
        printf("| %-40s | %6.0f (%5.1f%%) | %6.0f (%5.1f%%) |\n", L[i].name, a, 100 * a / peak1, b, 100 * b / peak2);
    }
}

/* ---- embedding: dl_freeze and int8 on the reference CNN and the big model ----
   Inference images/s on one thread at a batch size: dl_predict, the frozen
   float net (dl_frozen_run) and the same net in int8 (dl_quantize, min/max
   ranges from 256 of the images). The three run in turn, five rounds of
   secs / 5 each, and each figure is the fastest single call seen: the
   machine may be shared, and a busy neighbour only ever slows a call. */
static dl_layer *net_big(dl_net *net) {                 /* examples/fashion.c --model big */
    dl_layer *h = dl_maxpool2d(dl_prelu(dl_batchnorm(dl_conv2d(dl_input(net, 1, 28, 28), 32, 3, 1, 1))), 2, 2);
    h = dl_prelu(dl_batchnorm(dl_conv2d(h, 64, 3, 1, 1)));
    h = dl_maxpool2d(dl_prelu(dl_batchnorm(dl_conv2d(h, 64, 3, 1, 1))), 2, 2);
    return dl_dense(dl_flatten(dl_prelu(dl_batchnorm(dl_conv2d(h, 128, 3, 1, 1)))), 10);
}
static void embed_row(dl_layer *(*build)(dl_net *), int batch, double ips[3]) {
    dl_net *net = dl_net_new();
    dl_layer *logits = build(net);
    float *x = data(batch < 256 ? 256 : batch, 784), *y = (float *)malloc(sizeof(float) * 10 * (size_t)batch);
    dl_frozen *f = dl_freeze(net, logits, NULL), *q = dl_quantize(f, x, 256, NULL, NULL);
    const dl_frozen *run[3];
    dl_memory mf, mq;
    void *work;
    double best[3] = { 1e30, 1e30, 1e30 };
    int round, mode;
    run[0] = NULL; run[1] = f; run[2] = q;
    dl_net_set_threads(net, 1);
    dl_frozen_memory(f, batch, &mf);
    dl_frozen_memory(q, batch, &mq);
    work = malloc(mf.work_bytes > mq.work_bytes ? mf.work_bytes : mq.work_bytes);
    for (round = 0; round < 5; round++)
        for (mode = 0; mode < 3; mode++) {
            double t0 = now(), t1, t;
            do {
                t1 = now();
                if (mode == 0) dl_predict(net, logits, x, batch); else dl_frozen_run(run[mode], x, y, batch, work);
                t = now() - t1;
                if (t < best[mode]) best[mode] = t;
            } while (now() - t0 < secs / 5);
        }
    for (mode = 0; mode < 3; mode++) ips[mode] = batch / best[mode];
    free(x); free(y); free(work);
    dl_frozen_free(q); dl_frozen_free(f);
    dl_net_free(net);
}
/* The embedding table (also alone: build/bench --embed). */
static void embed_table(void) {
    static const int eb[3] = { 1, 64, 256 };
    static const struct { const char *name; dl_layer *(*build)(dl_net *); } en[2] = { { "reference", net_reference }, { "big", net_big } };
    int i, k;
    printf("\nEmbedding: frozen (dl_frozen_run) and int8 (dl_quantize; %s kernels), images/s on 1 thread, fastest call\n\n",
           dl__q8k_detect()->name);
    printf("| %-10s | %-6s | %12s | %12s | %12s | %10s |\n", "net", "batch", "dl_predict", "frozen float", "int8", "int8/float");
    printf("|------------|--------|--------------|--------------|--------------|------------|\n");
    for (k = 0; k < 2; k++)
        for (i = 0; i < 3; i++) {
            double ips[3], fl;
            embed_row(en[k].build, eb[i], ips);
            fl = ips[0] > ips[1] ? ips[0] : ips[1];
            printf("| %-10s | %-6d | %12.0f | %12.0f | %12.0f | %9.2fx |\n", en[k].name, eb[i], ips[0], ips[1], ips[2], ips[2] / fl);
            fflush(stdout);
        }
}
static double compile_seconds(void) {
    FILE *f = fopen("build/bench_compile.c", "w");
    double t;
    if (!f) return 0;
    fprintf(f, "#define DL_IMPLEMENTATION\n#include \"../dl.h\"\nint main(void) { dl_net_free(dl_net_new()); return 0; }\n");
    fclose(f);
    t = now();
    if (system("cc -std=c99 -O2 -c build/bench_compile.c -o build/bench_compile.o")) return 0;
    return now() - t;
}

/* ---- the report ---- */
static int reps = 3;
static double peak[3];      /* by threads */
typedef struct { double med, lo, hi; int n; } fig;
static fig stat_of(int net, int fw, const char *key) {
    double v[MAX_REPS], lo = 1e300, hi = 0;
    int r, n = 0;
    fig s;
    for (r = 0; r < reps; r++) {
        double x = get(&res[r][net][fw], key);
        if (x > 0) { v[n++] = x; if (x < lo) lo = x; if (x > hi) hi = x; }
    }
    s.n = n; s.med = n ? median(v, n) : 0; s.lo = n ? lo : 0; s.hi = hi;
    return s;
}
/* PyTorch's inference keys come as eager and script; its best is the faster. */
static double best_of(const kvs *s, const char *key, int lower) {
    char k2[64];
    double a = get(s, key), b;
    snprintf(k2, sizeof k2, "script_%s", key);
    b = get(s, k2);
    if (a <= 0) return b;
    if (b <= 0) return a;
    return lower ? (a < b ? a : b) : (a > b ? a : b);
}
static void cell(char *buf, size_t len, fig s, double flops, int threads, int lower) {
    if (!s.n) { snprintf(buf, len, "-"); return; }
    if (lower) {
        double gf = flops / (s.med * 1e-6) / 1e9;
        snprintf(buf, len, "%.0f us [%.0f-%.0f] %.1f GF/s %.0f%%", s.med, s.lo, s.hi, gf, 100 * gf / peak[threads]);
    } else {
        double gf = s.med * flops / 1e9;
        snprintf(buf, len, "%.0f [%.0f-%.0f] %.1f GF/s %.0f%%", s.med, s.lo, s.hi, gf, 100 * gf / peak[threads]);
    }
}
/* The ratio dl.h / best peer within each repetition, its median and range;
   vs is TORCH for training, else the best of both peers. */
static void ratio_cell(char *buf, size_t len, int net, const char *key, int lower, int training, int *which) {
    double v[MAX_REPS], lo = 1e300, hi = 0;
    int r, n = 0, tw = 0, ow = 0;
    for (r = 0; r < reps; r++) {
        double d = get(&res[r][net][DLH], key), t = best_of(&res[r][net][TORCH], key, lower), o = training ? 0 : get(&res[r][net][ORT], key);
        double best = t, x;
        if (o > 0 && (best <= 0 || (lower ? o < best : o > best))) { best = o; ow++; } else if (t > 0) tw++;
        if (d <= 0 || best <= 0) continue;
        x = lower ? best / d : d / best;
        v[n++] = x; if (x < lo) lo = x; if (x > hi) hi = x;
    }
    *which = ow > tw ? ORT : TORCH;
    if (!n) snprintf(buf, len, "-");
    else snprintf(buf, len, "%.2fx [%.2f-%.2f] vs %s", median(v, n), lo, hi, ow > tw ? "ORT" : "PyTorch");
}
static void report_net(int i, double fwd, double trn) {
    static const char *what[] = { "training img/s, batch 64", "inference img/s, batch 1", "inference img/s, batch 64",
                                  "inference img/s, batch 256", "batch-1 latency (median)" };
    int t, f, w;
    printf("\n### %s\n\n%.1f MFLOP per image forward, %.1f per training image\n\n", nets[i].title, fwd / 1e6, trn / 1e6);
    printf("| figure | threads | dl.h | PyTorch (best of eager, TorchScript) | ONNX Runtime | dl.h vs best peer |\n|---|---|---|---|---|---|\n");
    for (f = 0; f < 5; f++)
        for (t = 1; t <= 2; t++) {
            char key[48], c[N_FW][96], r[96];
            int fw, lower = f == 4;
            if (f == 0) snprintf(key, sizeof key, "train_ips_%d", t);
            else if (f < 4) snprintf(key, sizeof key, "infer_ips_b%d_%d", batches[f - 1], t);
            else snprintf(key, sizeof key, "latency_us_%d", t);
            for (fw = 0; fw < N_FW; fw++) {
                fig s = stat_of(i, fw, key);
                if (fw == TORCH) {      /* the best configuration per repetition */
                    double v[MAX_REPS], lo = 1e300, hi = 0;
                    int r, n = 0;
                    for (r = 0; r < reps; r++) {
                        double x = best_of(&res[r][i][TORCH], key, lower);
                        if (x > 0) { v[n++] = x; if (x < lo) lo = x; if (x > hi) hi = x; }
                    }
                    s.n = n; s.med = n ? median(v, n) : 0; s.lo = lo; s.hi = hi;
                }
                cell(c[fw], sizeof c[fw], s, f == 0 ? trn : fwd, t, lower);
            }
            ratio_cell(r, sizeof r, i, key, lower, f == 0, &w);
            printf("| %s | %d | %s | %s | %s | %s |\n", what[f], t, c[DLH], c[TORCH], f == 0 ? "-" : c[ORT], r);
        }
    for (t = 1; t <= 2; t++) {
        char key[48], c[2][96];
        fig a, b;
        snprintf(key, sizeof key, "busy_train_ips_%d", t);
        a = stat_of(i, DLH, key); b = stat_of(i, TORCH, key);
        cell(c[0], sizeof c[0], a, trn, t, 0); cell(c[1], sizeof c[1], b, trn, t, 0);
        printf("| training img/s with a competing load | %d | %s | %s | - | %.2fx |\n", t, c[0], c[1], b.med > 0 ? a.med / b.med : 0);
    }
}
/* Default threads against one, per figure: the threads target. */
/* ONNX import of a ~10 MB model: the reference CNN with an 800-unit dense
   layer behind it (2.6M floats), exported by dl.h. Median of 5 loads, ms;
   *mb gets the size. */
static double onnx_import_ms(double *mb) {
    dl_net *net = dl_net_new();
    dl_layer *h = dl_input(net, 1, 28, 28);
    void *data = NULL;
    size_t len = 0;
    double ts[5];
    int i;
    h = dl_maxpool2d(dl_prelu(dl_batchnorm(dl_conv2d(h, 32, 3, 1, 1))), 2, 2);
    h = dl_maxpool2d(dl_prelu(dl_batchnorm(dl_conv2d(h, 64, 3, 1, 1))), 2, 2);
    h = dl_dense(dl_relu(dl_dense(dl_flatten(h), 800)), 10);
    if (!h || dl_onnx_save_mem(net, &h, 1, &data, &len)) { dl_net_free(net); return -1; }
    *mb = (double)len / 1e6;
    for (i = 0; i < 5; i++) {
        dl_status st;
        double t = now();
        dl_net *m = dl_onnx_load_mem(data, len, &st);
        ts[i] = (now() - t) * 1e3;
        if (!m) { ts[i] = -1; break; }
        dl_net_free(m);
    }
    DL_FREE(data);
    dl_net_free(net);
    return median(ts, 5);
}
static void onnx_import_line(void) {
    double mb = 0, ms = onnx_import_ms(&mb);
    printf("\nONNX import (dl_onnx_load_mem) of a %.1f MB model: %.1f ms (median of 5)\n", mb, ms);
}

static int wanted(const char *only, int i);
static void report_threads(const char *only) {
    static const char *keys[] = { "train_ips_%d", "infer_ips_b1_%d", "infer_ips_b64_%d", "infer_ips_b256_%d", "latency_us_%d", "busy_train_ips_%d" };
    int i, k;
    printf("\n### dl.h threads: the default (%d here) against DL_THREADS=1, median of per-repetition ratios\n\n", dl__default_threads());
    printf("| net | training | infer b1 | infer b64 | infer b256 | latency b1 | training, competing load |\n|---|---|---|---|---|---|---|\n");
    for (i = 0; i < N_NETS; i++) {
        if (!wanted(only, i)) continue;
        printf("| %s |", nets[i].name);
        for (k = 0; k < 6; k++) {
            char k1[48], k2[48];
            double v[MAX_REPS];
            int r, n = 0;
            snprintf(k1, sizeof k1, keys[k], 1); snprintf(k2, sizeof k2, keys[k], 2);
            for (r = 0; r < reps; r++) {
                double a = get(&res[r][i][DLH], k1), b = get(&res[r][i][DLH], k2);
                if (a > 0 && b > 0) v[n++] = k == 4 ? a / b : b / a;
            }
            if (n) printf(" %.2fx |", median(v, n)); else printf(" - |");
        }
        printf("\n");
    }
    printf("\n(above 1: the default is faster than one thread)\n");
}

static int wanted(const char *only, int i) { return !only || !strcmp(only, nets[i].name); }

/* --threads NAME FIGURE: rounds of secs, 1 and 2 threads in turn (which goes first alternates). */
static double pair_run(built *m, dl_optim *opt, const float *x, const int *y, int batch, double s) {
    int steps = 0;
    double t0 = now(), t;
    do {
        if (opt) dl_train_step(m->net, opt, m->out, x, y, batch, NULL);
        else dl_predict(m->net, m->out, x, batch);
        steps++;
    } while ((t = now() - t0) < s);
    return steps * (double)batch / t;
}
static int threads_pair(const char *name, const char *figure) {
    const bench_net *b = NULL;
    built m[2];
    dl_optim *opt[2];
    double v[2][MAX_REPS * 4], ratio[MAX_REPS * 4];
    int train = !strcmp(figure, "train"), batch = train ? 64 : atoi(figure + 1), rounds = reps * 4, i, r, y[256];
    float *x;
    for (i = 0; i < N_NETS; i++) if (!strcmp(nets[i].name, name)) b = &nets[i];
    if (!b || batch < 1 || batch > 256) { fprintf(stderr, "--threads NAME train|b1|b64|b256\n"); return 2; }
    x = data(batch, dl_layer_size(dl_net_layer((m[0] = build(b, 1)).net, 0)));
    m[1] = build(b, 2);
    for (i = 0; i < batch; i++) y[i] = i % 10;
    for (i = 0; i < 2; i++) { opt[i] = train ? dl_adam(m[i].net, 1e-3f) : NULL; pair_run(&m[i], opt[i], x, y, batch, 0.05); }
    for (r = 0; r < rounds; r++) {
        for (i = 0; i < 2; i++) v[(i + r) % 2][r] = pair_run(&m[(i + r) % 2], opt[(i + r) % 2], x, y, batch, secs);
        ratio[r] = v[1][r] / v[0][r];
    }
    printf("%s %s: 1 thread %.0f/s, 2 threads %.0f/s (medians); 2/1 median %.2f", name, figure, median(v[0], rounds),
           median(v[1], rounds), median(ratio, rounds));
    printf(" [%.2f-%.2f] over %d rounds of %.2f s\n", ratio[0], ratio[rounds - 1], rounds, secs);
    free(x);
    for (i = 0; i < 2; i++) dl_net_free(m[i].net);
    return 0;
}

int main(int argc, char **argv) {
    dl_net *net = dl_net_new();
    const char *simd = net->simd->name, *only = NULL;
    int cores = dl__default_threads(), i, r, a, with_kernels = 0;
    double secs_arg = 0;
    char self[600];
    double flops[8][2];
    for (a = 1; a < argc; a++) {
        if (!strcmp(argv[a], "--quick")) quick = 1;
        else if (!strcmp(argv[a], "--kernels")) with_kernels = 1;
        else if (!strcmp(argv[a], "--reps") && a + 1 < argc) reps = atoi(argv[++a]);
        else if (!strcmp(argv[a], "--secs") && a + 1 < argc) secs_arg = atof(argv[++a]);
        else if (!strcmp(argv[a], "--net") && a + 1 < argc) only = argv[++a];
        else if (!strcmp(argv[a], "--train-rss") && a + 1 < argc) { dl_net_free(net); return train_rss_child(argv[a + 1]); }
        else if (!strcmp(argv[a], "--embed")) { secs = 1.0; embed_table(); dl_net_free(net); return 0; }
        else if (!strcmp(argv[a], "--onnx-import")) { onnx_import_line(); dl_net_free(net); return 0; }
        else if (!strcmp(argv[a], "--threads") && a + 2 < argc) {
            dl_net_free(net);
            if (reps > MAX_REPS) reps = MAX_REPS;
            secs = secs_arg > 0 ? secs_arg : 0.1;
            return threads_pair(argv[a + 1], argv[a + 2]);
        }
        else {
            fprintf(stderr, "usage: %s [--quick] [--reps N] [--secs S] [--net NAME] [--kernels] | --embed | --onnx-import\n"
                    "       %s [--reps N] [--secs S] --threads NAME train|b1|b64|b256\n", argv[0], argv[0]);
            return 2;
        }
    }
    if (reps < 1) reps = 1;
    if (reps > MAX_REPS) reps = MAX_REPS;
    secs = secs_arg > 0 ? secs_arg : quick ? 0.25 : 1.0;
    snprintf(self, sizeof self, "%s", argv[0]);
    printf("dl.h %d.%d.%d benchmark: %s kernels, %d cores, %d repetitions, %.2f s per figure\n", DL_VERSION_MAJOR,
           DL_VERSION_MINOR, DL_VERSION_PATCH, simd, cores, reps, secs);
    {
        FILE *p = popen("cat /proc/loadavg", "r");
        char line[128];
        if (p && fgets(line, sizeof line, p)) printf("load average at start: %s", line);
        if (p) pclose(p);
    }
    have_torch = !system("/usr/bin/python3 -c 'import torch' >/dev/null 2>&1");
    have_ort = have_torch && !system("NODE_PATH=build/node_modules node -e \"require('onnxruntime-node')\" >/dev/null 2>&1");
    if (!have_torch) printf("PyTorch not installed (apt-get install python3-torch): no PyTorch column\n");
    if (!have_ort) printf("ONNX Runtime not available (make bench installs onnxruntime-node with npm; it needs PyTorch to export): no ORT column\n");

    peak[1] = fma_peak(simd);
    peak[2] = fma_peak_threads(simd, cores < 2 ? 1 : 2);
    printf("machine FMA peak (%s): %.0f GFLOP/s on 1 core, %.0f on %d\n", simd, peak[1], peak[2], cores < 2 ? 1 : 2);
    fflush(stdout);
    for (i = 0; i < N_NETS; i++) {
        built m = build(&nets[i], 1);
        net_flops(m.out, &flops[i][0], &flops[i][1]);
        dl_net_free(m.net);
    }
    for (r = 0; r < reps; r++) {
        for (i = 0; i < N_NETS; i++) {
            int fw;
            if (!wanted(only, i)) continue;
            fprintf(stderr, "repetition %d/%d: %s\n", r + 1, reps, nets[i].name);
            for (fw = 0; fw < N_FW; fw++) {
                if (fw == DLH) measure_dlh(&nets[i], &res[r][i][DLH], 0);
                else measure_peers(&nets[i], &res[r][i][fw], 0, fw);
            }
        }
        load_start(cores);          /* the competing load: every core busy */
        for (i = 0; i < N_NETS; i++) {
            if (!wanted(only, i)) continue;
            measure_dlh(&nets[i], &res[r][i][DLH], 1);
            measure_peers(&nets[i], &res[r][i][TORCH], 1, TORCH);
        }
        load_stop();
    }
    if (have_torch) printf("PyTorch: %s", torch_info);
    printf("\nEach cell: median [min-max over %d repetitions], GFLOP/s and share of the FMA peak at that thread count.\n"
           "Ratios: dl.h / best peer within each repetition (for latency: peer / dl.h), median [min-max]; above 1 is dl.h ahead.\n"
           "ONNX Runtime's batch-1 latency includes the JavaScript call.\n", reps);
    for (i = 0; i < N_NETS; i++) if (wanted(only, i)) report_net(i, flops[i][0], flops[i][1]);
    report_threads(only);
    printf("\n### training peak RSS, batch 64, a fresh process (MB)\n\n| net | dl.h | PyTorch | PyTorch's import floor |\n|---|---|---|---|\n");
    {
        char cmd[800];
        double floor_mb = 0;
        if (have_torch) floor_mb = rss_of(TORCH_ENV "/usr/bin/python3 bench/torch_ref.py --import-floor");
        for (i = 0; i < N_NETS; i++) {
            double d, t = 0;
            if (!wanted(only, i)) continue;
            snprintf(cmd, sizeof cmd, "'%s' --train-rss %s", self, nets[i].name);
            d = rss_of(cmd);
            if (have_torch) {
                snprintf(cmd, sizeof cmd, TORCH_ENV "/usr/bin/python3 bench/torch_ref.py --net %s --train-rss", nets[i].name);
                t = rss_of(cmd);
            }
            printf("| %s | %.1f | %.1f | %.1f |\n", nets[i].name, d, t, floor_mb);
        }
    }
    if (with_kernels) kernels(net, peak[1], peak[2]);
    onnx_import_line();
    embed_table();
    printf("\ncompile time of a program with the implementation, cc -O2: %.2f s\n", compile_seconds());
    {
        FILE *p = popen("cat /proc/loadavg", "r");
        char line[128];
        if (p && fgets(line, sizeof line, p)) printf("\nload average at the end: %s", line);
        if (p) pclose(p);
    }
    dl_net_free(net);
    return 0;
}
