/* make bench: dl.h's speed on this machine, next to the machine's measured
   peak and, in the same run, PyTorch (bench/torch_ref.py) and ONNX Runtime
   (bench/ort_ref.js) on the identical reference CNN. Prints numbers and
   ratios, never pass/fail. Usage: build/bench [--quick | --embed]
   (--train-rss is the child that measures the training process's peak RSS) */
#define _POSIX_C_SOURCE 200809L
#define DL_IMPLEMENTATION
#include "../dl.h"
#include <time.h>
#include <sys/resource.h>
#include <sys/wait.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}
static int quick;

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

/* ---- GEMM, through the library's own driver ---- */
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

/* ---- the reference CNN (the Fashion-MNIST demo's) ---- */
static dl_layer *reference_cnn(dl_net *net) {
    dl_layer *x = dl_input(net, 1, 28, 28);
    dl_layer *h = dl_maxpool2d(dl_prelu(dl_batchnorm(dl_conv2d(x, 32, 3, 1, 1))), 2, 2);
    h = dl_maxpool2d(dl_prelu(dl_batchnorm(dl_conv2d(h, 32 * 2, 3, 1, 1))), 2, 2);
    return dl_dense(dl_flatten(h), 10);
}
static float *images(int n) {
    float *x = (float *)malloc(sizeof(float) * 784 * (size_t)n);
    int i;
    for (i = 0; i < 784 * n; i++) x[i] = (float)((i * 2654435761u) >> 24) / 255.0f;
    return x;
}
/* Median of repeated timings of fn, with at least `min_s` seconds measured. */
static int cmp_d(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return x < y ? -1 : x > y; }
static double train_ips(int threads, int batch) {
    dl_net *net = dl_net_new();
    dl_layer *logits = reference_cnn(net);
    dl_optim *opt = dl_adam(net, 1e-3f);
    float *x = images(batch);
    int *y = (int *)malloc(sizeof(int) * (size_t)batch), i, steps = 0;
    double t0, t;
    for (i = 0; i < batch; i++) y[i] = i % 10;
    dl_net_set_threads(net, threads);
    for (i = 0; i < 3; i++) dl_train_step(net, opt, logits, x, y, batch, NULL);
    t0 = now();
    do { dl_train_step(net, opt, logits, x, y, batch, NULL); steps++; } while ((t = now() - t0) < (quick ? 0.5 : 2.0));
    free(x); free(y);
    dl_net_free(net);
    return steps * batch / t;
}
static double infer_ips(int threads, int batch) {
    dl_net *net = dl_net_new();
    dl_layer *logits = reference_cnn(net);
    float *x = images(batch);
    int steps = 0;
    double t0, t;
    dl_net_set_threads(net, threads);
    dl_predict(net, logits, x, batch);
    t0 = now();
    do { dl_predict(net, logits, x, batch); steps++; } while ((t = now() - t0) < (quick ? 0.5 : 2.0));
    free(x);
    dl_net_free(net);
    return steps * batch / t;
}
/* Inference images/s on one thread at a batch size: 0 dl_predict, 1 the
   frozen float net (dl_frozen_run), 2 the same net in int8 (dl_quantize,
   min/max ranges from 256 of the images). */
static double embed_ips(int mode, int batch) {
    dl_net *net = dl_net_new();
    dl_layer *logits = reference_cnn(net);
    float *x = images(batch < 256 ? 256 : batch), *y = (float *)malloc(sizeof(float) * 10 * (size_t)batch);
    dl_frozen *f = dl_freeze(net, logits, NULL), *q = mode == 2 ? dl_quantize(f, x, 256, NULL, NULL) : NULL;
    const dl_frozen *run = mode == 2 ? q : f;
    dl_memory m;
    void *work;
    int steps = 0;
    double t0, t;
    dl_net_set_threads(net, 1);
    dl_frozen_memory(run, batch, &m);
    work = malloc(m.work_bytes);
    if (mode == 0) dl_predict(net, logits, x, batch); else dl_frozen_run(run, x, y, batch, work);
    t0 = now();
    do {
        if (mode == 0) dl_predict(net, logits, x, batch); else dl_frozen_run(run, x, y, batch, work);
        steps++;
    } while ((t = now() - t0) < (quick ? 0.3 : 1.0));
    free(x); free(y); free(work);
    dl_frozen_free(q); dl_frozen_free(f);
    dl_net_free(net);
    return steps * batch / t;
}
/* The embedding table (also alone: build/bench --embed). */
static void embed_table(void) {
    static const int batches[3] = { 1, 64, 256 };
    const char *q8;
    int i;
    dl__q8_detect(&q8);
    printf("\nEmbedding: the reference CNN frozen (dl_frozen_run) and in int8 (dl_quantize; %s kernel), images/s on 1 thread\n\n", q8);
    printf("| %-10s | %12s | %12s | %12s | %10s |\n", "batch", "dl_predict", "frozen float", "int8", "int8/float");
    printf("|------------|--------------|--------------|--------------|------------|\n");
    for (i = 0; i < 3; i++) {
        double a = embed_ips(0, batches[i]), b = embed_ips(1, batches[i]), c = embed_ips(2, batches[i]);
        printf("| %-10d | %12.0f | %12.0f | %12.0f | %9.2fx |\n", batches[i], a, b, c, c / a);
        fflush(stdout);
    }
}
static double latency_us(int threads) {
    dl_net *net = dl_net_new();
    dl_layer *logits = reference_cnn(net);
    float *x = images(1);
    double ts[2000];
    int n = 0;
    double t0 = now();
    dl_net_set_threads(net, threads);
    dl_predict(net, logits, x, 1);
    while (n < 2000 && (n < 50 || now() - t0 < (quick ? 0.5 : 2.0))) {
        double t = now();
        dl_predict(net, logits, x, 1);
        ts[n++] = now() - t;
    }
    qsort(ts, (size_t)n, sizeof(double), cmp_d);
    free(x);
    dl_net_free(net);
    return ts[n / 2] * 1e6;
}
/* The largest convolution of the reference CNN, forward at batch 64. */
static double conv_gflops(int threads) {
    dl_net *net = dl_net_new();
    dl_layer *x = dl_input(net, 32, 14, 14), *c = dl_conv2d(x, 64, 3, 1, 1);
    float *in = (float *)malloc(sizeof(float) * 64 * 32 * 196);
    double best = 1e30;
    int i, reps = 0;
    for (i = 0; i < 64 * 32 * 196; i++) in[i] = (float)(i % 17) * 0.05f;
    dl_net_set_threads(net, threads);
    dl_predict(net, c, in, 64);
    do {
        double t = now();
        dl_predict(net, c, in, 64);
        t = now() - t;
        if (t < best) best = t;
    } while (++reps < 5 || (reps < 200 && best * reps < (quick ? 0.2 : 0.5)));
    free(in);
    dl_net_free(net);
    return 2.0 * 64 * 64 * 288 * 196 / best / 1e9;
}
/* Peak RSS of a fresh process that trains the reference CNN: this program
   run again with --train-rss (a fork would inherit this process's pages). */
static double train_rss_mb(const char *self) {
    char cmd[4200];
    double mb = 0;
    FILE *p;
    if (strlen(self) > 4000) return 0;
    snprintf(cmd, sizeof cmd, "'%s' --train-rss", self);
    if (!(p = popen(cmd, "r"))) return 0;
    if (fscanf(p, "%lf", &mb) != 1) mb = 0;
    pclose(p);
    return mb;
}
static int train_rss_child(void) {
    struct rusage ru;
    train_ips(2, 64);
    getrusage(RUSAGE_SELF, &ru);
    printf("%.1f\n", (double)ru.ru_maxrss / 1024.0);
    return 0;
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

/* ---- references: key value lines from a script ---- */
typedef struct { char key[64]; double v; } ref_t;
static int n_refs;
static ref_t refs[64];
static void run_ref(const char *cmd) {
    FILE *p = popen(cmd, "r");
    char line[256];
    if (!p) return;
    while (fgets(line, sizeof line, p) && n_refs < 64)
        if (sscanf(line, "%63s %lf", refs[n_refs].key, &refs[n_refs].v) == 2) n_refs++;
    pclose(p);
}
static double ref(const char *key) {
    int i;
    for (i = n_refs - 1; i >= 0; i--) if (!strcmp(refs[i].key, key)) return refs[i].v;
    return 0;
}

static void row(const char *what, double ours, const char *key_torch, const char *key_ort, int lower_better) {
    double t = key_torch ? ref(key_torch) : 0, o = key_ort ? ref(key_ort) : 0;
    printf("| %-38s | %10.0f |", what, ours);
    if (t > 0) printf(" %10.0f | %5.2fx |", t, lower_better ? t / ours : ours / t);
    else printf(" %10s | %6s |", "-", "");
    if (o > 0) printf(" %10.0f | %5.2fx |\n", o, lower_better ? o / ours : ours / o);
    else printf(" %10s | %6s |\n", "-", "");
}

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
    qsort(ts, 5, sizeof ts[0], cmp_d);
    DL_FREE(data);
    dl_net_free(net);
    return ts[2];
}

int main(int argc, char **argv) {
    dl_net *net = dl_net_new();
    const char *simd = net->simd->name;
    int cores = dl__default_threads(), sizes[4] = { 256, 512, 1024, 2048 }, i;
    double peak1, peak2;
    quick = argc > 1 && !strcmp(argv[1], "--quick");
    if (argc > 1 && !strcmp(argv[1], "--embed")) { embed_table(); return 0; }
    if (argc > 1 && !strcmp(argv[1], "--train-rss")) { dl_net_free(net); return train_rss_child(); }
    if (argc > 1 && !strcmp(argv[1], "--onnx-import")) {     /* just this number */
        double mb = 0, ms = onnx_import_ms(&mb);
        printf("ONNX import (dl_onnx_load_mem) of a %.1f MB model: %.1f ms (median of 5)\n", mb, ms);
        dl_net_free(net);
        return 0;
    }
    printf("dl.h %d.%d.%d benchmark: %s kernels, %d cores%s\n\n", DL_VERSION_MAJOR, DL_VERSION_MINOR, DL_VERSION_PATCH,
           simd, cores, quick ? " (quick)" : "");
    if (!system("command -v /usr/bin/python3 >/dev/null 2>&1 && /usr/bin/python3 -c 'import torch' 2>/dev/null")) {
        printf("measuring PyTorch (bench/torch_ref.py) ...\n");
        fflush(stdout);
        run_ref(quick ? "OPENBLAS_NUM_THREADS=1 /usr/bin/python3 bench/torch_ref.py --quick --onnx build/reference.onnx"
                      : "OPENBLAS_NUM_THREADS=1 /usr/bin/python3 bench/torch_ref.py --onnx build/reference.onnx");
    } else printf("PyTorch not installed (apt-get install python3-torch): no PyTorch column\n");
    if (!system("test -f build/reference.onnx && NODE_PATH=build/node_modules node -e \"require('onnxruntime-node')\" 2>/dev/null")) {
        printf("measuring ONNX Runtime (bench/ort_ref.js) ...\n");
        fflush(stdout);
        run_ref(quick ? "NODE_PATH=build/node_modules node bench/ort_ref.js build/reference.onnx --quick"
                      : "NODE_PATH=build/node_modules node bench/ort_ref.js build/reference.onnx");
    } else printf("ONNX Runtime not available (make bench installs onnxruntime-node with npm): no ORT column\n");
    printf("measuring dl.h ...\n\n");
    fflush(stdout);

    peak1 = fma_peak(simd);
    peak2 = fma_peak_threads(simd, cores < 2 ? 1 : 2);
    printf("machine FMA peak (%s): %.0f GFLOP/s on 1 core, %.0f on %d\n\n", simd, peak1, peak2, cores < 2 ? 1 : 2);

    printf("Reference CNN (conv32-bn-prelu-pool-conv64-bn-prelu-pool-dense10), batch 64 unless said\n\n");
    printf("| %-38s | %10s | %10s | %6s | %10s | %6s |\n", "", "dl.h", "PyTorch", "ratio", "ONNX RT", "ratio");
    printf("|%s|%s|%s|%s|%s|%s|\n", "----------------------------------------", "------------", "------------", "--------", "------------", "--------");
    row("training images/s, 1 thread", train_ips(1, 64), "train_ips_1", NULL, 0);
    row("training images/s, 2 threads", train_ips(2, 64), "train_ips_2", NULL, 0);
    row("inference images/s, 1 thread", infer_ips(1, 64), "infer_ips_1", "ort_infer_ips_1", 0);
    row("inference images/s, 2 threads", infer_ips(2, 64), "infer_ips_2", "ort_infer_ips_2", 0);
    row("batch-1 latency us (median), 1 thread", latency_us(1), "latency_us_1", "ort_latency_us_1", 1);
    row("batch-1 latency us (median), 2 threads", latency_us(2), "latency_us_2", "ort_latency_us_2", 1);
    row("training peak RSS MB", train_rss_mb(argv[0]), "train_rss_mb", NULL, 1);
    printf("\n(ratio: how many times better dl.h is; above 1 is dl.h ahead)\n\n");

    printf("GEMM and convolution, GFLOP/s (share of the FMA peak)\n\n");
    printf("| %-44s | %16s | %16s |\n", "", "1 thread", "2 threads");
    printf("|----------------------------------------------|------------------|------------------|\n");
    for (i = 0; i < 4; i++) {
        char name[64];
        double a = gemm_gflops(net, sizes[i], sizes[i], sizes[i], 1), b = gemm_gflops(net, sizes[i], sizes[i], sizes[i], 2);
        snprintf(name, sizeof name, "SGEMM %dx%dx%d", sizes[i], sizes[i], sizes[i]);
        printf("| %-44s | %6.0f (%5.1f%%) | %6.0f (%5.1f%%) |\n", name, a, 100 * a / peak1, b, 100 * b / peak2);
    }
    {   /* the reference CNN's layers as GEMMs (M x N x K) */
        struct { const char *name; int M, N, K; } L[] = {
            { "conv1 fwd as GEMM 32 x 50176 x 9", 32, 50176, 9 },
            { "conv2 fwd as GEMM 64 x 12544 x 288", 64, 12544, 288 },
            { "conv2 dW as GEMM 288 x 64 x 12544", 288, 64, 12544 },
            { "conv2 dX as GEMM 288 x 196 x 64", 288, 196, 64 },
            { "dense fwd as GEMM 10 x 64 x 3136", 10, 64, 3136 },
        };
        for (i = 0; i < 5; i++) {
            double a = gemm_gflops(net, L[i].M, L[i].N, L[i].K, 1), b = gemm_gflops(net, L[i].M, L[i].N, L[i].K, 2);
            printf("| %-44s | %6.0f (%5.1f%%) | %6.0f (%5.1f%%) |\n", L[i].name, a, 100 * a / peak1, b, 100 * b / peak2);
        }
    }
    {
        double a = conv_gflops(1), b = conv_gflops(2);
        printf("| %-44s | %6.0f (%5.1f%%) | %6.0f (%5.1f%%) |\n", "conv2 layer forward, batch 64 (with im2col)", a, 100 * a / peak1, b, 100 * b / peak2);
    }
    {
        double mb = 0, ms = onnx_import_ms(&mb);
        printf("\nONNX import (dl_onnx_load_mem) of a %.1f MB model: %.1f ms (median of 5)\n", mb, ms);
    }
    embed_table();
    printf("\ncompile time of a program with the implementation, cc -O2: %.2f s\n", compile_seconds());
    dl_net_free(net);
    return 0;
}
