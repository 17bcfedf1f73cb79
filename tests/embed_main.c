/* embed_main.c - runs the reference CNN that `test_embed --emit DIR` wrote as
 * C (DIR/ref_cnn.c, .h; with -DEMBED_Q8 its int8 version, DIR/ref_cnn_q8.c),
 * in a program whose allocator aborts: DL_MALLOC and
 * DL_FREE are never reached, no file is opened, and no thread is started
 * (build it with -DDL_NO_THREADS for targets without pthreads). The work
 * memory is static and sized by the generated constants. On the machine that
 * generated DIR (-DEMBED_EXACT) the outputs must equal dl_predict's (int8:
 * dl_frozen_run's) bit for bit; elsewhere (a 32-bit ARM under qemu: other micro-kernels, another sum
 * order) within 1e-5 and with the same classes. Last line: "N passed, N failed". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

static void *embed_no_malloc(size_t n) { fprintf(stderr, "DL_MALLOC(%lu) was reached\n", (unsigned long)n); abort(); }
static void embed_no_free(void *p) { if (p) { fprintf(stderr, "DL_FREE was reached\n"); abort(); } }
#define DL_MALLOC(sz) embed_no_malloc(sz)
#define DL_FREE(p) embed_no_free(p)
#define DL_IMPLEMENTATION
#include "dl.h"
#ifdef EMBED_Q8                 /* the int8 net */
#include "ref_cnn_q8.h"
#include "ref_cnn_q8_check.h"
#define NET "ref_cnn_q8"
#define NET_predict ref_cnn_q8_predict
#define NET_predict_n ref_cnn_q8_predict_n
#define NET_IN_SIZE REF_CNN_Q8_IN_SIZE
#define NET_OUT_SIZE REF_CNN_Q8_OUT_SIZE
#define NET_WORK_BYTES REF_CNN_Q8_WORK_BYTES
#define NET_WORK_BYTES_N REF_CNN_Q8_WORK_BYTES_N
#else
#include "ref_cnn.h"
#include "ref_cnn_check.h"
#define NET "ref_cnn"
#define NET_predict ref_cnn_predict
#define NET_predict_n ref_cnn_predict_n
#define NET_IN_SIZE REF_CNN_IN_SIZE
#define NET_OUT_SIZE REF_CNN_OUT_SIZE
#define NET_WORK_BYTES REF_CNN_WORK_BYTES
#define NET_WORK_BYTES_N REF_CNN_WORK_BYTES_N
#endif

static float work1[NET_WORK_BYTES / sizeof(float)];                     /* exactly the constant */
static float workn[NET_WORK_BYTES_N(CHECK_N) / sizeof(float)];
static float out[CHECK_N * NET_OUT_SIZE];

static int argmax(const float *p) { int c, b = 0; for (c = 1; c < NET_OUT_SIZE; c++) if (p[c] > p[b]) b = c; return b; }
/* 0 when out matches want (bit for bit with EMBED_EXACT, else within tol with the same class) */
static int compare(const float *want, int n, const char *what) {
    double worst = 0;
    int i, bits = 0, classes = 0;
    for (i = 0; i < n * NET_OUT_SIZE; i++) {
        double d = fabs((double)out[i] - want[i]);
        if (memcmp(&out[i], &want[i], sizeof(float))) bits++;
        if (!(d <= worst)) worst = d;
    }
    for (i = 0; i < n; i++) classes += argmax(out + i * NET_OUT_SIZE) != argmax(want + i * NET_OUT_SIZE);
    printf("%s %s: %d of %d outputs differ in bits, largest difference %.3g, %d classes differ\n",
#ifdef EMBED_EXACT
           bits ? "FAIL" : "ok  ",
#else
           worst <= 1e-5 && !classes ? "ok  " : "FAIL",
#endif
           what, bits, n * NET_OUT_SIZE, worst, classes);
#ifdef EMBED_EXACT
    return bits != 0;
#else
    return !(worst <= 1e-5) || classes;
#endif
}

int main(void) {
    int i, failed = 0;
    for (i = 0; i < CHECK_N; i++)
        NET_predict(check_in + (size_t)i * NET_IN_SIZE, out + i * NET_OUT_SIZE, work1);
    failed += compare(check_out1, CHECK_N, NET "_predict, one sample at a time, in NAME_WORK_BYTES");
    memset(out, 0, sizeof out);
    failed += NET_predict_n(check_in, out, CHECK_N, workn) != 0;
    failed += compare(check_outn, CHECK_N, NET "_predict_n, 8 samples, in NAME_WORK_BYTES_N(8)");
    failed += NET_predict_n(check_in, out, 0, workn) != DL_ERR_ARG;
    printf("static work memory: %lu bytes for one sample, %lu for %d\n", (unsigned long)sizeof work1,
           (unsigned long)sizeof workn, CHECK_N);
    printf("%d passed, %d failed\n", 3 - failed, failed);
    return failed != 0;
}
