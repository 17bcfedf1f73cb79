/* embed_model.c - the whole embedding path for the Fashion-MNIST CNN:
 * train (or load) -> freeze -> quantize -> emit C.
 *
 *   build/embed_model [--model FILE.dl] [--data DIR] [--out DIR] [--calib minmax|percentile|entropy]
 *
 * Without --model it trains the reference CNN for one epoch on the data
 * (found as the demo finds it: $DATA, the full Fashion-MNIST when
 * installed, else the subset shipped in examples/data). It writes
 *   OUT/f32/fashion_net.c, .h   the frozen float net (bit-identical to dl_predict)
 *   OUT/q8/fashion_net.c, .h    the same net in int8 (calibrated on 500 training images)
 *   OUT/NNNN-CLASS.pgm          one test image per class
 * and prints both nets' test accuracy and memory. examples/embed/classify_pgm.c
 * is the program that includes either generated file (make embed-example).
 */
#define FASHION_NO_MAIN
#include "../fashion.c"

#define N_CALIB 500

static double accuracy(const dl_frozen *f, const idx_set *s) {
    dl_memory m;
    float *x = (float *)malloc((size_t)s->count * FASHION_PIXELS * sizeof(float));
    float *y = (float *)malloc((size_t)s->count * FASHION_CLASSES * sizeof(float)), *work;
    size_t i;
    int n, c, right = 0;
    for (i = 0; i < (size_t)s->count * FASHION_PIXELS; i++) x[i] = s->pixels[i] * (1.0f / 255);
    dl_frozen_memory(f, s->count, &m);
    work = (float *)malloc(m.work_bytes);
    if (x && y && work && !dl_frozen_run(f, x, y, s->count, work))
        for (n = 0; n < s->count; n++) {
            int best = 0;
            for (c = 1; c < FASHION_CLASSES; c++) if (y[n * FASHION_CLASSES + c] > y[n * FASHION_CLASSES + best]) best = c;
            right += best == s->labels[n];
        }
    free(x); free(y); free(work);
    return (double)right / s->count;
}

static int emit(const dl_frozen *f, const char *out, const char *sub, const char *what, const idx_set *test) {
    char dir[1100];
    dl_status st;
    dl_memory m;
    snprintf(dir, sizeof dir, "%s/%s", out, sub);
    if (mkdir(dir, 0755) && errno != EEXIST) { fprintf(stderr, "embed_model: %s: %s\n", dir, strerror(errno)); return 1; }
    if (dl_emit_c(f, "fashion_net", dir, NULL, &st)) { fprintf(stderr, "embed_model: %s\n", st.msg); return 1; }
    dl_frozen_memory(f, 1, &m);
    printf("%-5s test accuracy %.4f; weights %lu bytes, work %lu bytes for one image -> %s/fashion_net.c\n", what,
           accuracy(f, test), (unsigned long)m.weight_bytes, (unsigned long)m.work_bytes, dir);
    return 0;
}

int main(int argc, char **argv) {
    const char *model = NULL, *data = NULL, *out = "build/embed_example", *calib = "minmax";
    fashion_data d;
    fashion_opts o;
    fashion_run run;
    dl_quant_desc qd;
    dl_status st;
    dl_net *net = NULL;
    dl_layer *logits, *probs = NULL;
    dl_frozen *f = NULL, *q = NULL;
    float *cal = NULL;
    char err[1200];
    int i, rc = 1;
    (void)fashion_main;                        /* the demo's entry point is not needed here */
    for (i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--model")) model = argv[i + 1];
        else if (!strcmp(argv[i], "--data")) data = argv[i + 1];
        else if (!strcmp(argv[i], "--out")) out = argv[i + 1];
        else if (!strcmp(argv[i], "--calib")) calib = argv[i + 1];
        else break;
    }
    if (i != argc) {
        fprintf(stderr, "usage: %s [--model FILE.dl] [--data DIR] [--out DIR] [--calib minmax|percentile|entropy]\n", argv[0]);
        return 2;
    }
    memset(&qd, 0, sizeof qd);
    qd.calib = !strcmp(calib, "percentile") ? DL_CALIB_PERCENTILE : !strcmp(calib, "entropy") ? DL_CALIB_ENTROPY : DL_CALIB_MINMAX;
    fashion_default_opts(&o);
    if (data) o.data = data;
    if (fashion_load(o.data, &d, err, sizeof err)) { fprintf(stderr, "embed_model: %s\n", err); return 1; }
    if (mkdir(out, 0755) && errno != EEXIST) { fprintf(stderr, "embed_model: %s: %s\n", out, strerror(errno)); goto done; }
    if (model) {                                /* a model saved by the demo: its last layer is the softmax */
        if (!(net = dl_net_load(model, &st))) { fprintf(stderr, "embed_model: %s\n", st.msg); goto done; }
        probs = dl_net_layer(net, -1);
    } else {                                    /* 1. train */
        o.epochs = 1;
        o.progress = o.augment = o.cosine = 0;
        net = dl_net_new();
        dl_net_seed(net, o.seed);
        logits = fashion_reference(net, &probs);
        if (!probs || fashion_train(net, dl_adam(net, 1e-3f), logits, probs, &d, &o, &run)) {
            fprintf(stderr, "embed_model: training: %s\n", dl_net_error(net));
            goto done;
        }
    }
    /* 2. freeze: batchnorm and PReLU fused into the convolutions, an arena planned */
    if (!(f = dl_freeze(net, probs, &st))) { fprintf(stderr, "embed_model: %s\n", st.msg); goto done; }
    /* 3. quantize: calibrated on training images */
    cal = (float *)malloc((size_t)N_CALIB * FASHION_PIXELS * sizeof(float));
    for (i = 0; i < N_CALIB * FASHION_PIXELS; i++) cal[i] = d.train.pixels[i] * (1.0f / 255);
    if (!(q = dl_quantize(f, cal, N_CALIB, &qd, &st))) { fprintf(stderr, "embed_model: %s\n", st.msg); goto done; }
    /* 4. emit C, and test images for the program that uses it */
    if (emit(f, out, "f32", "float", &d.test) || emit(q, out, "q8", "int8", &d.test) || fashion_dump(out, &d.test)) goto done;
    printf("test images: %s/*.pgm (int8 calibration: %s)\n", out, calib);
    rc = 0;
done:
    free(cal);
    dl_frozen_free(q);
    dl_frozen_free(f);
    dl_net_free(net);
    fashion_free(&d);
    return rc;
}
