/* The file format is the same on every platform: a model saved on x86-64
 * (tests/fixtures/portable.dl, with its predictions in portable_out.bin)
 * loads on i686, s390x (big-endian), aarch64 and Windows and predicts the
 * same within float tolerance (the kernels differ: AVX-512, NEON, portable C).
 * Saving over an existing file (the atomic replace) keeps every bit.
 *
 *   test_portable                check tests/fixtures
 *   test_portable --check DIR    check DIR/portable.dl against DIR/portable_out.bin
 *   test_portable --save DIR     train the model here and write both files to DIR
 *                                (how the fixture was made; CI saves one on s390x
 *                                and checks it on x86-64) */
#define DL_IMPLEMENTATION
#include "../dl.h"
#include "test.h"
#include <stdlib.h>
#include <string.h>

#define N 8                         /* samples */
#define K 10                        /* classes */
static float x[N * 144];
static char dir[512] = "tests/fixtures";

static void make_inputs(void) {
    int i;
    for (i = 0; i < N * 144; i++) x[i] = (float)((i * 7919) % 1013) / 1013.0f - 0.5f;
}
static void path_of(char *p, size_t size, const char *name) { snprintf(p, size, "%s/%s", dir, name); }

/* Predictions as little-endian float32, whatever this machine's byte order. */
static int write_floats(const char *path, const float *v, int n) {
    FILE *f = fopen(path, "wb");
    int i, ok = f != NULL;
    for (i = 0; ok && i < n; i++) {
        uint32_t u;
        unsigned char b[4];
        memcpy(&u, &v[i], 4);
        b[0] = (unsigned char)u; b[1] = (unsigned char)(u >> 8); b[2] = (unsigned char)(u >> 16); b[3] = (unsigned char)(u >> 24);
        ok = fwrite(b, 1, 4, f) == 4;
    }
    return f && fclose(f) == 0 && ok;
}
static int read_floats(const char *path, float *v, int n) {
    FILE *f = fopen(path, "rb");
    int i, ok = f != NULL;
    for (i = 0; ok && i < n; i++) {
        unsigned char b[4];
        uint32_t u;
        ok = fread(b, 1, 4, f) == 4;
        u = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
        memcpy(&v[i], &u, 4);
    }
    ok = ok && fgetc(f) == EOF;
    if (f) fclose(f);
    return ok;
}

/* conv, batchnorm, prelu, pooling, dense, softmax: every kind of parameter
   and statistic the file holds. */
static void test_save(void) {
    dl_net *net = dl_net_new();
    dl_layer *in = dl_input(net, 1, 12, 12), *h, *out;
    dl_optim *opt;
    int labels[N], i;
    float loss;
    char path[600];
    h = dl_maxpool2d(dl_prelu(dl_batchnorm(dl_conv2d(in, 6, 3, 1, 1))), 2, 2);
    h = dl_relu(dl_conv2d(h, 8, 3, 1, 0));
    h = dl_dense(dl_flatten(h), K);
    out = dl_softmax(h);
    opt = dl_adam(net, 1e-2f);
    make_inputs();
    for (i = 0; i < N; i++) labels[i] = (i * 3) % K;
    for (i = 0; i < 10; i++) CHECK(dl_train_step(net, opt, h, x, labels, N, &loss) == DL_OK, "%s", dl_net_error(net));
    path_of(path, sizeof path, "portable.dl");
    CHECK(dl_net_save(net, path) == DL_OK, "%s", dl_net_error(net));
    path_of(path, sizeof path, "portable_out.bin");
    CHECK(write_floats(path, dl_predict(net, out, x, N), N * K), "cannot write %s", path);
    dl_net_free(net);
}

static void test_load_and_predict(void) {
    char path[600];
    float want[N * K], got[N * K];
    const float *p;
    dl_status st;
    dl_net *net;
    int i, bad = 0;
    make_inputs();
    path_of(path, sizeof path, "portable_out.bin");
    CHECK(read_floats(path, want, N * K), "cannot read %s", path);
    path_of(path, sizeof path, "portable.dl");
    net = dl_net_load(path, &st);
    CHECK(net != NULL, "%s", st.msg);
    if (!net) return;
    p = dl_predict(net, dl_net_layer(net, -1), x, N);
    CHECK(p != NULL, "%s", dl_net_error(net));
    for (i = 0; p && i < N * K; i++)
        if (!test_close(p[i], want[i], 1e-6, 1e-4) && bad++ < 5) CHECK(0, "output %d: %.9g, the saving machine had %.9g", i, p[i], want[i]);
    if (p) memcpy(got, p, sizeof got);

    /* saved here (twice: the second replaces the first) and loaded again: the same bits */
    if (p) {
        const char *again = "build/portable_again.dl";
        dl_net *back;
        CHECK(dl_net_save(net, again) == DL_OK && dl_net_save(net, again) == DL_OK, "%s", dl_net_error(net));
        back = dl_net_load(again, &st);
        CHECK(back != NULL, "%s", st.msg);
        p = back ? dl_predict(back, dl_net_layer(back, -1), x, N) : NULL;
        CHECK(p && !memcmp(p, got, sizeof got), "a model saved and loaded here predicts other bits");
        dl_net_free(back);
        remove(again);
        CHECK(dl_net_save(net, "build/no such folder/m.dl") == DL_ERR_IO, "a save into a missing folder succeeded");
    }
    dl_net_free(net);
}

int main(int argc, char **argv) {
    if (argc == 3 && strlen(argv[2]) < sizeof dir) strcpy(dir, argv[2]);
    if (argc == 3 && !strcmp(argv[1], "--save")) RUN(test_save);
    else if (argc == 1 || (argc == 3 && !strcmp(argv[1], "--check"))) RUN(test_load_and_predict);
    else { fprintf(stderr, "usage: %s [--check DIR | --save DIR]\n", argv[0]); return 2; }
    return test_summary();
}
