/* fashion.c - train a CNN on Fashion-MNIST with dl.h; what `make demo` runs.
 *   cc -std=c99 -O2 -I. examples/fashion.c -o build/fashion -lm -pthread && build/fashion --help
 * dl_fit trains the reference CNN or a bigger one (--model big: shifts, flips,
 * cosine decay) on --data DIR, $DATA, Debian's dataset-fashion-mnist or the
 * subset in examples/data, evaluates on the test set after each epoch, writes
 * the --report page; then per-class accuracy, the model for classify.c, and
 * "test accuracy: 0.NNNN" last. With -DDL_CUDA and dl_cuda.o, --gpu uses GPU 0.
 * tests/test_fashion.c includes this file with FASHION_NO_MAIN defined. */
#define _POSIX_C_SOURCE 200809L /* isatty, mkdir */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#ifdef _WIN32
#include <direct.h>
#define fashion_mkdir(dir) _mkdir(dir)
#else
#define fashion_mkdir(dir) mkdir(dir, 0755)
#endif
#define DL_IMPLEMENTATION
#include "dl.h"
#include "idx.h"
#include "pgm.h"

#define FASHION_FULL_DIR "/usr/share/datasets/fashion-mnist"
#define FASHION_SIDE 28
#define FASHION_PIXELS (FASHION_SIDE * FASHION_SIDE)
#define FASHION_CLASSES 10
static const char *const fashion_names[FASHION_CLASSES] = {
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"};

typedef struct fashion_data { idx_set train, test; idx_paths files; int shipped; /* 1: examples/data's subset */ } fashion_data;

static void fashion_free(fashion_data *d) { idx_free(&d->train), idx_free(&d->test); }

/* dir NULL or "": the Debian package if installed, else the shipped subset. */
static int fashion_load(const char *dir, fashion_data *d, char *err, size_t errlen) {
    if ((!dir || !*dir) && idx_find(FASHION_FULL_DIR, &d->files, err, errlen) == 0) dir = FASHION_FULL_DIR;
    if (idx_load_dir(dir, FASHION_SIDE, FASHION_SIDE, &d->train, &d->test, &d->files, err, errlen)) return -1;
    d->shipped = !dir || !*dir;
    return 0;
}

/* The reference CNN (README, bench/torch_fashion.py): conv 3x3 32 -> BN ->
   PReLU -> maxpool 2 -> conv 3x3 64 -> BN -> PReLU -> maxpool 2 -> dense 10.
   Returns the logits, *probs their softmax. PyTorch's initial weights
   (U(+-1/sqrt(fan_in))) make it the same experiment as the PyTorch script. */
static dl_layer *fashion_reference(dl_net *net, dl_layer **probs) {
    dl_conv_desc c = {0};
    dl_dense_desc fc = {0};
    dl_layer *h = dl_input(net, 1, FASHION_SIDE, FASHION_SIDE);
    c.filters = 32, c.kernel = 3, c.pad = 1, c.init = fc.init = DL_INIT_TORCH_UNIFORM, fc.units = FASHION_CLASSES;
    h = dl_maxpool2d(dl_prelu(dl_batchnorm(dl_conv2d_ex(h, &c))), 2, 2);
    c.filters = 64;
    h = dl_maxpool2d(dl_prelu(dl_batchnorm(dl_conv2d_ex(h, &c))), 2, 2);
    *probs = dl_softmax(h = dl_dense_ex(dl_flatten(h), &fc));
    return h;
}

static dl_layer *fashion_cbp(dl_layer *x, int filters) { return dl_prelu(dl_batchnorm(dl_conv2d(x, filters, 3, 1, 1))); }

/* --model big: conv 32, pool, conv 64, conv 64, pool, conv 128, dense 10 (3x the work) */
static dl_layer *fashion_big(dl_net *net, dl_layer **probs) {
    dl_layer *h = dl_maxpool2d(fashion_cbp(dl_input(net, 1, FASHION_SIDE, FASHION_SIDE), 32), 2, 2);
    h = dl_maxpool2d(fashion_cbp(fashion_cbp(h, 64), 64), 2, 2);
    *probs = dl_softmax(h = dl_dense(dl_flatten(fashion_cbp(h, 128)), FASHION_CLASSES));
    return h;
}

/* ---- options: one table gives the parser and --help ---- */
typedef struct fashion_opts {
    int epochs, batch, threads, augment, cosine, limit, gpu, progress;   /* 0 or -1: a default */
    float lr;
    unsigned long seed;
    const char *data, *model, *optim, *save, *dump, *report;
} fashion_opts;

static void fashion_default_opts(fashion_opts *o) {
    memset(o, 0, sizeof *o);
    o->batch = 64, o->seed = 1, o->data = getenv("DATA"), o->model = "ref", o->optim = "adam", o->save = "fashion.dl";
    o->augment = o->cosine = o->progress = -1;
}

typedef struct fashion_opt { const char *name, *help; char kind; size_t off; long lo, hi; const char *choices; } fashion_opt;
#define FASHION_O(field) offsetof(fashion_opts, field)
static const fashion_opt fashion_table[] = {   /* kind: i int, f float, u seed, s string, b flag */
    {"epochs", "N      epochs (default: ref 3 on the full set, 12 on the subset; big 25)", 'i', FASHION_O(epochs), 1, 100000, 0},
    {"batch", "N       batch size (64)", 'i', FASHION_O(batch), 2, 65536, 0},
    {"lr", "X          learning rate (adam, rmsprop 0.001; sgd 0.01 with momentum 0.9)", 'f', FASHION_O(lr), 0, 10, 0},
    {"optim", "NAME    adam, rmsprop or sgd (adam)", 's', FASHION_O(optim), 0, 0, "|adam|rmsprop|sgd|"},
    {"threads", "N     threads (default: all cores, or $DL_THREADS)", 'i', FASHION_O(threads), 1, 256, 0},
    {"seed", "N        weights, shuffling and augmentation (1)", 'u', FASHION_O(seed), 0, 0, 0},
    {"data", "DIR      the four IDX files (default: $DATA, else " FASHION_FULL_DIR ", else the subset)", 's', FASHION_O(data), 0, 0, 0},
    {"model", "NAME    ref (the reference CNN) or big (better: 4 convolutions, augmented)", 's', FASHION_O(model), 0, 0, "|ref|big|"},
    {"augment", "0|1   random shifts and flips (default: on for big)", 'i', FASHION_O(augment), 0, 1, 0},
    {"cosine", "0|1    cosine learning-rate decay (default: on for big)", 'i', FASHION_O(cosine), 0, 1, 0},
    {"limit", "N       train on the first N images only", 'i', FASHION_O(limit), 1, 1 << 30, 0},
    {"save", "FILE     where to save the model (fashion.dl)", 's', FASHION_O(save), 0, 0, 0},
    {"report", "FILE   write an HTML training report there after each epoch", 's', FASHION_O(report), 0, 0, 0},
    {"dump-samples", "DIR  write one test image per class as PGM, for classify", 's', FASHION_O(dump), 0, 0, 0},
    {"progress", "0|1  progress bar (default: when stdout is a terminal)", 'i', FASHION_O(progress), 0, 1, 0},
    {"gpu", "          train on GPU 0 (when built with -DDL_CUDA)", 'b', FASHION_O(gpu), 0, 0, 0},
    {NULL, NULL, 0, 0, 0, 0, NULL}};

/* v into t's field of o: 0, or -1 when it is not a value t takes. */
static int fashion_set(fashion_opts *o, const fashion_opt *t, const char *v) {
    void *f = (char *)o + t->off;
    char *end = (char *)v, word[40];
    int ok = 1;
    if (t->kind == 's') {   /* any string, or one of the |words| in choices */
        *(const char **)f = v;
        snprintf(word, sizeof word, "|%s|", v);
        return t->choices && (strchr(v, '|') || !strstr(t->choices, word)) ? -1 : 0;
    } else if (t->kind == 'f') {
        float x = strtof(v, &end);
        *(float *)f = x, ok = x > t->lo && x < t->hi;
    } else {
        unsigned long n = strtoul(v, &end, 10);   /* "-1" wraps around: out of range */
        if (t->kind == 'u') *(unsigned long *)f = n;
        else *(int *)f = (int)n, ok = n >= (unsigned long)t->lo && n <= (unsigned long)t->hi;
    }
    return ok && *v && !*end ? 0 : -1;
}

/* Returns 0, or 2 after saying what is wrong with the command line. */
static int fashion_parse(int argc, char **argv, fashion_opts *o) {
    int i, k;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *eq = strchr(a, '='), *v;
        size_t len = eq ? (size_t)(eq - a) : strlen(a);
        if (!strcmp(a, "--help")) {
            for (printf("usage: fashion [options]\n"), k = 0; fashion_table[k].name; k++)
                printf("  --%s %s\n", fashion_table[k].name, fashion_table[k].help);
            exit(0);
        }
        for (k = 0; fashion_table[k].name; k++)
            if (!strncmp(a, "--", 2) && strlen(fashion_table[k].name) == len - 2 && !strncmp(a + 2, fashion_table[k].name, len - 2)) break;
        if (!fashion_table[k].name) return fprintf(stderr, "fashion: unknown option '%s' (--help lists them)\n", a), 2;
        if (fashion_table[k].kind == 'b') { *(int *)((char *)o + fashion_table[k].off) = 1; continue; }
        if (!(v = eq ? eq + 1 : i + 1 < argc ? argv[++i] : NULL)) return fprintf(stderr, "fashion: %s needs a value\n", a), 2;
        if (fashion_set(o, &fashion_table[k], v))
            return fprintf(stderr, "fashion: '%s' is not a value of\n  --%s %s\n", v, fashion_table[k].name, fashion_table[k].help), 2;
    }
    return 0;
}

/* ---- the run ---- */
/* Trains net for o->epochs (resolved) on d with dl_fit, evaluating on the
   test set after each epoch; h is the caller's to free. A dl_fit status. */
static int fashion_train(dl_net *net, dl_optim *opt, dl_layer *logits, fashion_data *d, const fashion_opts *o,
                         dl_fit_history *h) {
    dl_dataset train = {0}, test;
    dl_fit_options fo = {0};
    train.fill = idx_fill, train.user = &d->train, train.c = 1, train.h = train.w = FASHION_SIDE;
    train.count = o->limit && o->limit < d->train.count ? o->limit : d->train.count;
    test = train, test.user = &d->test, test.count = d->test.count;
    fo.epochs = o->epochs, fo.batch = o->batch, fo.seed = o->seed, fo.quiet = o->progress ? 0 : 2;
    fo.augment.shift = o->augment ? 2 : 0, fo.augment.flip = o->augment;
    fo.schedule.kind = o->cosine ? DL_SCHED_COSINE : DL_SCHED_CONSTANT;
    fo.report = o->report, fo.class_names = fashion_names;
    memset(h, 0, sizeof *h);
    return dl_fit(net, opt, logits, &train, &test, &fo, h);
}

/* One test image per class, as binary PGM, for examples/classify.c. */
static int fashion_dump(const char *dir, const idx_set *s) {
    char path[1200], name[32];
    int c, i, k;
    fashion_mkdir(dir);   /* or it is there already; if neither, writing says so */
    for (c = 0; c < FASHION_CLASSES; c++) {
        for (i = 0; i < s->count && s->labels[i] != c; i++) {}
        for (k = 0; (name[k] = fashion_names[c][k]) != 0; k++) if (name[k] == '/' || name[k] == ' ') name[k] = '-';
        snprintf(path, sizeof path, "%s/%04d-%s.pgm", dir, i, name);
        if (i < s->count && write_pgm(path, s->pixels + (size_t)i * FASHION_PIXELS, FASHION_SIDE, FASHION_SIDE))
            return fprintf(stderr, "fashion: %s: cannot write\n", path), -1;
    }
    return 0;
}

/* The whole program; main calls it, tests call it with argument lists. */
static int fashion_main(int argc, char **argv) {
    fashion_opts o;
    fashion_data d;
    dl_fit_history h = {0};
    char err[1200];
    dl_net *net = NULL;
    dl_layer *logits, *probs;
    dl_optim *opt;
    double images = 0, secs = 0;
    int big, e, rc;
    fashion_default_opts(&o);
    if ((rc = fashion_parse(argc, argv, &o))) return rc;
    if (o.progress < 0) o.progress = isatty(STDOUT_FILENO);
    if (fashion_load(o.data, &d, err, sizeof err)) return fprintf(stderr, "fashion: %s\n", err), 1;
    rc = 1, big = !strcmp(o.model, "big");
    if (o.augment < 0) o.augment = big;
    if (o.cosine < 0) o.cosine = big;
    if (!o.epochs) o.epochs = big ? 25 : d.train.count >= 20000 ? 3 : 12;
    printf("data: %s (%s): %d training, %d test images\n", d.files.dir,
           d.shipped ? "the subset shipped with dl.h; for all of it: apt-get install dataset-fashion-mnist, or --data DIR"
                     : d.train.count >= 60000 ? "the full Fashion-MNIST" : "Fashion-MNIST files",
           o.limit && o.limit < d.train.count ? o.limit : d.train.count, d.test.count);
    if (!(net = dl_net_new())) { fprintf(stderr, "fashion: out of memory\n"); goto done; }
    dl_net_seed(net, o.seed);
    logits = big ? fashion_big(net, &probs) : fashion_reference(net, &probs);
    if (!probs || (o.threads && dl_net_set_threads(net, o.threads))) goto fail;
#ifdef DL_CUDA
    if (o.gpu && dl_cuda_use(net, 0)) goto fail;
#else
    if (o.gpu) { fprintf(stderr, "fashion: --gpu: this build has no CUDA backend (-DDL_CUDA, dl_cuda.o)\n"); goto done; }
#endif
    if (!o.lr) o.lr = strcmp(o.optim, "sgd") ? 1e-3f : 0.01f;
    opt = !strcmp(o.optim, "sgd") ? dl_sgd(net, o.lr, 0.9f) : !strcmp(o.optim, "rmsprop") ? dl_rmsprop(net, o.lr) : dl_adam(net, o.lr);
    if (!opt) goto fail;
    printf("model: %s, %lu parameters; %s lr %g%s, batch %d, %d epochs, seed %lu%s\n", big ? "bigger CNN" : "reference CNN",
           (unsigned long)dl_net_param_floats(net), o.optim, (double)dl_optim_lr(opt), o.cosine ? " (cosine decay)" : "",
           o.batch, o.epochs, o.seed, o.augment ? ", random shifts and flips" : "");
    printf("on %s (build/fashion --help lists the options)\n", o.gpu ? "GPU 0" : (snprintf(err, sizeof err, "%d CPU threads", dl_net_threads(net)), err));
    if (fashion_train(net, opt, logits, &d, &o, &h)) { fprintf(stderr, "fashion: training failed: %s\n", h.error); goto done; }
    for (e = 0; e < h.n_epochs; e++) images += h.epochs[e].images, secs += h.epochs[e].seconds;
    printf("\n");
    dl_print_confusion(stdout, h.confusion, FASHION_CLASSES, fashion_names);
    printf("\ntraining speed: %.0f images/s\n", images / (secs > 0 ? secs : 1));
    if (dl_net_save(net, o.save)) goto fail;
    printf("model saved to %s\n", o.save);
    if (o.report) printf("training report written to %s (open it in a browser)\n", o.report);
    if (o.dump && fashion_dump(o.dump, &d.test)) goto done;
    if (o.dump) printf("test images written to %s/ (try: build/classify %s %s/*.pgm)\n", o.dump, o.save, o.dump);
    printf("test accuracy: %.4f\n", h.epochs[h.n_epochs - 1].val_acc);
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "fashion: %s\n", dl_net_error(net));
done:
    dl_fit_history_free(&h);
    dl_net_free(net);
    fashion_free(&d);
    return rc;
}

#ifndef FASHION_NO_MAIN
int main(int argc, char **argv) { return fashion_main(argc, argv); }
#endif
