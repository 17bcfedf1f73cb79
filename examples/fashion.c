/* fashion.c - train a CNN on Fashion-MNIST with dl.h; what `make demo` runs.
 *
 *   cc -std=c99 -O2 -I. examples/fashion.c -o build/fashion -lm -pthread
 *   build/fashion [options]        (build/fashion --help lists them)
 *
 * Data: --data DIR (or DATA=DIR) names a folder with the four Fashion-MNIST
 * files, gzip-compressed as Debian ships them or raw. Without it the program
 * uses the full set from Debian's dataset-fashion-mnist package when it is
 * installed, else the 5000/1000-image subset shipped in examples/data.
 *
 * It trains the reference CNN (--model ref, below) or a bigger one (--model
 * big, with random shifts and flips and a cosine learning-rate schedule),
 * shows a progress bar per epoch, evaluates on the test set after each epoch,
 * prints per-class accuracy and a confusion matrix, and saves the model
 * (examples/classify.c loads it). Its last line is always
 * "test accuracy: 0.NNNN".
 *
 * Built with -DDL_CUDA and linked with dl_cuda.o, --gpu trains on GPU 0.
 *
 * tests/test_fashion.c includes this file with FASHION_NO_MAIN defined, to
 * train the same model and to feed it broken data files.
 */
#define _POSIX_C_SOURCE 200809L /* isatty, clock_gettime, mkdir */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#ifdef _WIN32
#include <direct.h>
#include <windows.h>                             /* GetTickCount64: no clock_gettime there */
#define fashion_mkdir(dir) _mkdir(dir)          /* one argument there */
#else
#define fashion_mkdir(dir) mkdir(dir, 0755)
#endif

#define DL_IMPLEMENTATION
#include "dl.h"
#include "idx.h"

#define FASHION_FULL_DIR "/usr/share/datasets/fashion-mnist"
#define FASHION_SIDE 28
#define FASHION_PIXELS (FASHION_SIDE * FASHION_SIDE)
#define FASHION_CLASSES 10

static const char *const fashion_names[FASHION_CLASSES] = {
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"};
static const char *const fashion_short[FASHION_CLASSES] = {
    "Top", "Trous", "Pull", "Dress", "Coat", "Sand", "Shirt", "Sneak", "Bag", "Boot"};

/* ---- data ---------------------------------------------------------------- */
typedef struct fashion_data {
    idx_set train, test;
    char dir[1024];   /* where the files came from */
    int shipped;      /* 1: the subset in examples/data */
} fashion_data;

static void fashion_free(fashion_data *d) {
    idx_free(&d->train);
    idx_free(&d->test);
}

static int fashion_check_size(const idx_set *s, const char *path, char *err, size_t errlen) {
    if (s->rows == FASHION_SIDE && s->cols == FASHION_SIDE) return 0;
    snprintf(err, errlen, "%s: images are %dx%d, the model needs %dx%d", path, s->rows, s->cols, FASHION_SIDE,
             FASHION_SIDE);
    return -1;
}

/* dir: a folder with the four files; NULL or "": the Debian package if it is
   installed, else the shipped subset. Errors name the file at fault. */
static int fashion_load(const char *dir, fashion_data *d, char *err, size_t errlen) {
    idx_paths p;
    memset(d, 0, sizeof *d);
    if ((!dir || !*dir) && idx_find(FASHION_FULL_DIR, &p, err, errlen) == 0) dir = FASHION_FULL_DIR;
    if (idx_find(dir, &p, err, errlen)) return -1;
    if (idx_load_pair(p.train_images, p.train_labels, &d->train, err, errlen) ||
        fashion_check_size(&d->train, p.train_images, err, errlen) ||
        idx_load_pair(p.test_images, p.test_labels, &d->test, err, errlen) ||
        fashion_check_size(&d->test, p.test_images, err, errlen)) {
        fashion_free(d);
        return -1;
    }
    snprintf(d->dir, sizeof d->dir, "%.*s", (int)(strrchr(p.train_images, '/') - p.train_images), p.train_images);
    d->shipped = !dir || !*dir;
    return 0;
}

/* The first count images as floats in [0,1] and int labels, as dl_fit reads
   them; *x and *y are the caller's to free. */
static dl_dataset fashion_dataset(const idx_set *s, int count, float **x, int **y) {
    dl_dataset d = {0};
    size_t i, n = (size_t)count * FASHION_PIXELS;
    *x = (float *)malloc(sizeof(float) * n + 1);
    *y = (int *)malloc(sizeof(int) * (size_t)count + 1);
    if (!*x || !*y) return d;
    for (i = 0; i < n; i++) (*x)[i] = s->pixels[i] * (1.0f / 255);
    for (i = 0; i < (size_t)count; i++) (*y)[i] = s->labels[i];
    d.x = *x, d.labels = *y, d.count = count;
    d.c = 1, d.h = d.w = FASHION_SIDE;
    return d;
}

/* ---- models ---------------------------------------------------------------- */
/* The reference CNN (README, benchmarks, bench/torch_fashion.py):
   1x28x28 -> conv 3x3 32 -> BN -> PReLU -> maxpool 2 -> conv 3x3 64 -> BN ->
   PReLU -> maxpool 2 -> dense 10. Returns the logits; *probs gets a softmax.
   Weights start as PyTorch's do (U(+-1/sqrt(fan_in))), so the same model in
   PyTorch is the same experiment: with Adam, the initial scale sets how fast
   the first epoch learns (He's 2.4x larger weights cost about 0.01 accuracy
   after one epoch, in both frameworks). */
static dl_layer *fashion_reference(dl_net *net, dl_layer **probs) {
    dl_conv_desc c1 = {0}, c2 = {0};
    dl_dense_desc fc = {0};
    dl_layer *h = dl_input(net, 1, FASHION_SIDE, FASHION_SIDE);
    c1.filters = 32, c2.filters = 64, fc.units = FASHION_CLASSES;
    c1.kernel = c2.kernel = 3, c1.pad = c2.pad = 1;
    c1.init = c2.init = fc.init = DL_INIT_TORCH_UNIFORM;
    h = dl_maxpool2d(dl_prelu(dl_batchnorm(dl_conv2d_ex(h, &c1))), 2, 2);
    h = dl_maxpool2d(dl_prelu(dl_batchnorm(dl_conv2d_ex(h, &c2))), 2, 2);
    h = dl_dense_ex(dl_flatten(h), &fc);
    *probs = dl_softmax(h);
    return h;
}

/* conv 3x3 -> BN -> PReLU */
static dl_layer *fashion_cbp(dl_layer *x, int filters) {
    return dl_prelu(dl_batchnorm(dl_conv2d(x, filters, 3, 1, 1)));
}

/* The bigger model (--model big), trained with random shifts and flips and a
   cosine learning-rate decay: one more 3x3 conv at 14x14 and one at 7x7.
   1x28x28 -> conv 32 -> pool -> conv 64 -> conv 64 -> pool -> conv 128 ->
   dense 10; about 3 times the reference's work per image. */
static dl_layer *fashion_big(dl_net *net, dl_layer **probs) {
    dl_layer *h = dl_input(net, 1, FASHION_SIDE, FASHION_SIDE);
    h = dl_maxpool2d(fashion_cbp(h, 32), 2, 2);
    h = dl_maxpool2d(fashion_cbp(fashion_cbp(h, 64), 64), 2, 2);
    h = dl_dense(dl_flatten(fashion_cbp(h, 128)), FASHION_CLASSES);
    *probs = dl_softmax(h);
    return h;
}

/* ---- options ---------------------------------------------------------------- */
typedef struct fashion_opts {
    int epochs;           /* 0: the model's default for the data */
    int batch;
    float lr;             /* 0: the optimizer's default here */
    const char *optim;    /* adam, rmsprop, sgd */
    int threads;          /* 0: dl.h's default (all cores, or DL_THREADS) */
    unsigned long seed;
    const char *data;     /* NULL: $DATA, else the Debian package, else the subset */
    const char *model;    /* ref, big */
    const char *save;
    const char *dump;     /* write test images as PGM here */
    const char *report;   /* dl_fit's HTML report, rewritten after each epoch */
    int augment;          /* -1: the model's default */
    int cosine;           /* -1: the model's default */
    int limit;            /* train on the first N images only; 0: all */
    int gpu;
    int progress;         /* -1: when stdout is a terminal */
} fashion_opts;

static void fashion_default_opts(fashion_opts *o) {
    memset(o, 0, sizeof *o);
    o->batch = 64;
    o->optim = "adam";
    o->seed = 1;
    o->data = getenv("DATA");
    o->model = "ref";
    o->save = "fashion.dl";
    o->augment = o->cosine = o->progress = -1;
}

static void fashion_usage(FILE *f) {
    fprintf(f,
            "usage: fashion [options]\n"
            "  --epochs N        epochs (default: ref 3 on the full set, 12 on the subset; big 25)\n"
            "  --batch N         batch size (64)\n"
            "  --lr X            learning rate (adam, rmsprop 0.001; sgd 0.01 with momentum 0.9)\n"
            "  --optim NAME      adam, rmsprop or sgd (adam)\n"
            "  --threads N       threads (default: all cores, or $DL_THREADS)\n"
            "  --seed N          weights, shuffling and augmentation (1)\n"
            "  --data DIR        folder with the four IDX files (default: $DATA, else\n"
            "                    " FASHION_FULL_DIR " if installed, else the shipped subset)\n"
            "  --model NAME      ref (the reference CNN) or big (better: 4 convolutions, augmented)\n"
            "  --augment 0|1     random shifts and flips (default: on for big)\n"
            "  --cosine 0|1      cosine learning-rate decay (default: on for big)\n"
            "  --limit N         train on the first N images only\n"
            "  --save FILE       where to save the model (fashion.dl)\n"
            "  --report FILE     write an HTML training report there after each epoch\n"
            "  --dump-samples DIR  write one test image per class as PGM, for classify\n"
            "  --progress 0|1    progress bar (default: when stdout is a terminal)\n"
            "  --gpu             train on GPU 0 (when built with -DDL_CUDA)\n");
}

/* Returns 0, or 2 after printing why the command line is wrong. */
static int fashion_parse(int argc, char **argv, fashion_opts *o) {
    const char *opt = NULL;
    int i;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL, *eq = strchr(a, '=');
        opt = a;
        char name[32];
        char *end = NULL;
        size_t len = eq ? (size_t)(eq - a) : strlen(a);
        if (strncmp(a, "--", 2) || len >= sizeof name) goto bad;
        memcpy(name, a + 2, len - 2);
        name[len - 2] = '\0';
        if (!strcmp(name, "help")) { fashion_usage(stdout); exit(0); }
        if (!strcmp(name, "gpu")) { o->gpu = 1; continue; }
        if (eq) v = eq + 1;
        else if (i + 1 < argc) v = argv[++i];
        else { fprintf(stderr, "fashion: %s needs a value\n", a); return 2; }
#define FASHION_INT(opt, field, lo, hi)                                                                \
    if (!strcmp(name, opt)) {                                                                          \
        long n = strtol(v, &end, 10);                                                                  \
        if (!*v || *end || n < (lo) || n > (hi)) {                                                     \
            fprintf(stderr, "fashion: --%s wants a whole number from %ld to %ld, not '%s'\n", opt,     \
                    (long)(lo), (long)(hi), v);                                                        \
            return 2;                                                                                  \
        }                                                                                              \
        field = (int)n;                                                                                \
        continue;                                                                                      \
    }
        FASHION_INT("epochs", o->epochs, 1, 100000)
        FASHION_INT("batch", o->batch, 2, 65536)
        FASHION_INT("threads", o->threads, 1, 256)
        FASHION_INT("augment", o->augment, 0, 1)
        FASHION_INT("cosine", o->cosine, 0, 1)
        FASHION_INT("limit", o->limit, 1, 1 << 30)
        FASHION_INT("progress", o->progress, 0, 1)
#undef FASHION_INT
        if (!strcmp(name, "seed")) {
            o->seed = strtoul(v, &end, 10);
            if (!*v || *end) { fprintf(stderr, "fashion: --seed wants a number, not '%s'\n", v); return 2; }
        } else if (!strcmp(name, "lr")) {
            o->lr = strtof(v, &end);
            if (!*v || *end || !(o->lr > 0 && o->lr < 10)) {
                fprintf(stderr, "fashion: --lr wants a number in (0, 10), not '%s'\n", v);
                return 2;
            }
        } else if (!strcmp(name, "optim")) {
            if (strcmp(v, "adam") && strcmp(v, "rmsprop") && strcmp(v, "sgd")) {
                fprintf(stderr, "fashion: --optim is adam, rmsprop or sgd, not '%s'\n", v);
                return 2;
            }
            o->optim = v;
        } else if (!strcmp(name, "model")) {
            if (strcmp(v, "ref") && strcmp(v, "big")) {
                fprintf(stderr, "fashion: --model is ref or big, not '%s'\n", v);
                return 2;
            }
            o->model = v;
        } else if (!strcmp(name, "data")) o->data = v;
        else if (!strcmp(name, "save")) o->save = v;
        else if (!strcmp(name, "report")) o->report = v;
        else if (!strcmp(name, "dump-samples")) o->dump = v;
        else goto bad;
    }
    return 0;
bad:
    fprintf(stderr, "fashion: unknown option '%s'\n", opt);
    fashion_usage(stderr);
    return 2;
}

/* ---- training and evaluation: dl_fit ------------------------------------------ */
typedef struct fashion_eval {
    double accuracy, loss;
    int confusion[FASHION_CLASSES][FASHION_CLASSES]; /* [true][predicted] */
} fashion_eval;

typedef struct fashion_run {
    fashion_eval last;
    double images_per_s;   /* training throughput over all epochs */
    double train_loss;     /* the last epoch's mean */
} fashion_run;

/* dl_fit's bar while training (on a terminal), then the demo's line per epoch. */
static void fashion_progress(void *user, const dl_fit_progress *p) {
    const dl_fit_epoch *e = p->last;
    if (p->phase != DL_FIT_EPOCH_DONE) {
        if (*(const int *)user) dl_fit_print_progress(NULL, p);
        return;
    }
    if (*(const int *)user) printf("\r%79s\r", "");
    printf("epoch %d/%d: %ld images in %.1f s, %.0f img/s, train loss %.4f, test accuracy %.4f, test loss %.4f\n",
           e->epoch, p->epochs, e->images, e->seconds, e->images / e->seconds, e->train_loss, e->val_acc, e->val_loss);
    fflush(stdout);
}

/* Trains net for o->epochs (already resolved), evaluating on the test set
   after each epoch. Returns 0 or -1 with dl_net_error(net) saying why.
   probs is not used (dl_fit evaluates from the logits); callers keep it. */
static int fashion_train(dl_net *net, dl_optim *opt, dl_layer *logits, dl_layer *probs, const fashion_data *d,
                         const fashion_opts *o, fashion_run *run) {
    dl_fit_options fo = {0};
    dl_fit_history h = {0};
    float *tx, *vx;
    int *ty, *vy, rc = -1, e;
    dl_dataset train = fashion_dataset(&d->train, o->limit && o->limit < d->train.count ? o->limit : d->train.count, &tx, &ty);
    dl_dataset test = fashion_dataset(&d->test, d->test.count, &vx, &vy);
    (void)probs;
    memset(run, 0, sizeof *run);
    fo.epochs = o->epochs, fo.batch = o->batch, fo.seed = o->seed;
    fo.augment.shift = o->augment ? 2 : 0, fo.augment.flip = o->augment;
    fo.schedule.kind = o->cosine ? DL_SCHED_COSINE : DL_SCHED_CONSTANT;
    fo.report = o->report, fo.class_names = fashion_names;
    fo.progress = fashion_progress, fo.user = (void *)&o->progress;
    if (train.x && test.x && dl_fit(net, opt, logits, &train, &test, &fo, &h) == DL_OK) {
        const dl_fit_epoch *last = &h.epochs[h.n_epochs - 1];
        double secs = 0;
        for (e = 0; e < h.n_epochs; e++) run->images_per_s += h.epochs[e].images, secs += h.epochs[e].seconds;
        run->images_per_s /= secs > 0 ? secs : 1;
        run->train_loss = last->train_loss;
        run->last.accuracy = last->val_acc, run->last.loss = last->val_loss;
        memcpy(run->last.confusion, h.confusion, sizeof run->last.confusion);
        rc = 0;
    } else if (!train.x || !test.x) fprintf(stderr, "fashion: out of memory\n");
    dl_fit_history_free(&h);
    free(tx), free(ty), free(vx), free(vy);
    return rc;
}

static void fashion_report(const fashion_eval *ev) {
    int t, p;
    printf("\nper class (accuracy, then the confusion matrix: rows true, columns predicted)\n%-12s", "");
    for (p = 0; p < FASHION_CLASSES; p++) printf(" %5s", fashion_short[p]);
    printf("  accuracy\n");
    for (t = 0; t < FASHION_CLASSES; t++) {
        int total = 0;
        printf("%-12s", fashion_names[t]);
        for (p = 0; p < FASHION_CLASSES; p++) {
            printf(" %5d", ev->confusion[t][p]);
            total += ev->confusion[t][p];
        }
        printf("  %.4f\n", total ? (double)ev->confusion[t][t] / total : 0.0);
    }
}

/* One test image per class, as binary PGM (0 = background, as in the data). */
static int fashion_dump(const char *dir, const idx_set *s) {
    int c, i;
    if (fashion_mkdir(dir) && errno != EEXIST) {
        fprintf(stderr, "fashion: %s: %s\n", dir, strerror(errno));
        return -1;
    }
    for (c = 0; c < FASHION_CLASSES; c++) {
        for (i = 0; i < s->count && s->labels[i] != c; i++) {}
        if (i < s->count) {
            char path[1200], name[32];
            FILE *f;
            int k, ok;
            for (k = 0; fashion_names[c][k] && k < 31; k++)
                name[k] = fashion_names[c][k] == '/' || fashion_names[c][k] == ' ' ? '-' : fashion_names[c][k];
            name[k] = '\0';
            snprintf(path, sizeof path, "%s/%04d-%s.pgm", dir, i, name);
            if (!(f = fopen(path, "wb"))) {
                fprintf(stderr, "fashion: %s: %s\n", path, strerror(errno));
                return -1;
            }
            fprintf(f, "P5\n%d %d\n255\n", FASHION_SIDE, FASHION_SIDE);
            ok = fwrite(s->pixels + (size_t)i * FASHION_PIXELS, 1, FASHION_PIXELS, f) == FASHION_PIXELS;
            if (fclose(f) || !ok) {
                fprintf(stderr, "fashion: %s: write error\n", path);
                return -1;
            }
        }
    }
    return 0;
}

/* The whole program; main calls it, tests call it with argument lists. */
static int fashion_main(int argc, char **argv) {
    fashion_opts o;
    fashion_data d;
    fashion_run run;
    char err[1200];
    dl_net *net = NULL;
    dl_layer *logits, *probs;
    dl_optim *opt = NULL;
    int big, rc = 1;

    fashion_default_opts(&o);
    if ((rc = fashion_parse(argc, argv, &o))) return rc;
    if (o.progress < 0) o.progress = isatty(STDOUT_FILENO);
    if (fashion_load(o.data, &d, err, sizeof err)) {
        fprintf(stderr, "fashion: %s\n", err);
        return 1;
    }
    rc = 1;
    big = !strcmp(o.model, "big");
    if (o.augment < 0) o.augment = big;
    if (o.cosine < 0) o.cosine = big;
    if (!o.epochs) o.epochs = big ? 25 : d.train.count >= 20000 ? 3 : 12;
    printf("data: %s (%s): %d training, %d test images\n", d.dir,
           d.shipped ? "the subset shipped with dl.h; for all of it: apt-get install dataset-fashion-mnist, or --data DIR"
                     : d.train.count >= 60000 ? "the full Fashion-MNIST" : "Fashion-MNIST files",
           o.limit && o.limit < d.train.count ? o.limit : d.train.count, d.test.count);

    if (!(net = dl_net_new())) { fprintf(stderr, "fashion: out of memory\n"); goto done; }
    dl_net_seed(net, o.seed);
    logits = big ? fashion_big(net, &probs) : fashion_reference(net, &probs);
    if (!probs) { fprintf(stderr, "fashion: building the model: %s\n", dl_net_error(net)); goto done; }
    if (o.threads && dl_net_set_threads(net, o.threads)) { fprintf(stderr, "fashion: %s\n", dl_net_error(net)); goto done; }
    if (o.gpu) {
#ifdef DL_CUDA
        if (dl_cuda_use(net, 0)) { fprintf(stderr, "fashion: --gpu: %s\n", dl_net_error(net)); goto done; }
#else
        fprintf(stderr, "fashion: --gpu: this build has no CUDA backend (compile with -DDL_CUDA, link dl_cuda.o)\n");
        goto done;
#endif
    }
    if (!strcmp(o.optim, "sgd")) opt = dl_sgd(net, o.lr ? o.lr : 0.01f, 0.9f);
    else if (!strcmp(o.optim, "rmsprop")) opt = dl_rmsprop(net, o.lr ? o.lr : 1e-3f);
    else opt = dl_adam(net, o.lr ? o.lr : 1e-3f);
    if (!opt) { fprintf(stderr, "fashion: %s\n", dl_net_error(net)); goto done; }
    printf("model: %s, %lu parameters; %s lr %g%s, batch %d, %d epochs, seed %lu%s\n",
           big ? "bigger CNN" : "reference CNN", (unsigned long)dl_net_param_floats(net), o.optim,
           (double)dl_optim_lr(opt), o.cosine ? " (cosine decay)" : "", o.batch, o.epochs, o.seed,
           o.augment ? ", random shifts and flips" : "");
    if (o.gpu) printf("on GPU 0");
    else printf("on %d CPU threads", dl_net_threads(net));
    printf(" (build/fashion --help lists the options)\n");
    fflush(stdout);

    if (fashion_train(net, opt, logits, probs, &d, &o, &run)) {
        fprintf(stderr, "fashion: training failed: %s\n", dl_net_error(net));
        goto done;
    }
    fashion_report(&run.last);
    printf("\ntraining speed: %.0f images/s\n", run.images_per_s);
    if (dl_net_save(net, o.save)) { fprintf(stderr, "fashion: %s\n", dl_net_error(net)); goto done; }
    printf("model saved to %s\n", o.save);
    if (o.report) printf("training report written to %s (open it in a browser)\n", o.report);
    if (o.dump) {
        if (fashion_dump(o.dump, &d.test)) goto done;
        printf("test images written to %s/ (try: build/classify %s %s/*.pgm)\n", o.dump, o.save, o.dump);
    }
    printf("test accuracy: %.4f\n", run.last.accuracy);
    rc = 0;
done:
    dl_net_free(net);
    fashion_free(&d);
    return rc;
}

#ifndef FASHION_NO_MAIN
int main(int argc, char **argv) { return fashion_main(argc, argv); }
#endif
