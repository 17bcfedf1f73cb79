/* The >>fit zone: summary, schedules against PyTorch, augmentation, dl_fit
 * against a hand-written loop, early stopping, resuming from checkpoints,
 * evaluation and the HTML report's content (tests/report.sh renders it). */
#include <stdlib.h>
#include <string.h>
#define DL_IMPLEMENTATION
#include "dl.h"
#include "tests/test.h"

/* ---- a small problem: 1x8x8 images, 3 classes by where a bright bar is ---- */
#define S 8
#define NTRAIN 150
#define NVAL 60
static float tx[NTRAIN * S * S], vx[NVAL * S * S];
static int ty[NTRAIN], vy[NVAL];

static void make_images(float *x, int *y, int n, uint64_t seed) {
    int i, k;
    for (i = 0; i < n; i++) {
        int c = (int)(dl_rand(&seed) % 3);
        for (k = 0; k < S * S; k++) {
            int r = k / S, bar = c == 0 ? r < 3 : c == 1 ? r >= 5 : (k % S) < 3;
            x[i * S * S + k] = (bar ? 0.8f : 0.1f) + 0.3f * (float)(dl_rand(&seed) % 1000) / 1000.0f;
        }
        y[i] = c;
    }
}

static dl_net *small_net(dl_layer **logits) {
    dl_net *net = dl_net_new();
    dl_layer *h = dl_input(net, 1, S, S);
    dl_net_seed(net, 7);
    h = dl_maxpool2d(dl_relu(dl_batchnorm(dl_conv2d(h, 4, 3, 1, 1))), 2, 2);
    *logits = dl_dense(dl_flatten(h), 3);
    dl_layer_set_name(*logits, "logits");
    return net;
}

static dl_dataset train_set(void) {
    dl_dataset d;
    memset(&d, 0, sizeof d);
    d.x = tx, d.labels = ty, d.count = NTRAIN, d.c = 1, d.h = S, d.w = S;
    return d;
}
static dl_dataset val_set(void) {
    dl_dataset d = train_set();
    d.x = vx, d.labels = vy, d.count = NVAL;
    return d;
}

static int weights_equal(dl_net *a, dl_net *b) {
    int i;
    if (dl_net_param_count(a) != dl_net_param_count(b)) return 0;
    for (i = 0; i < dl_net_param_count(a); i++) {
        dl_param *p = dl_net_param(a, i), *q = dl_net_param(b, i);
        if (p->size != q->size || memcmp(p->data, q->data, sizeof(float) * (size_t)p->size)) return 0;
    }
    return 1;
}

/* ---- summary ---- */
static void test_net_summary(void) {
    dl_net *net = dl_net_new();
    dl_layer *h = dl_input(net, 1, 28, 28);
    char buf[8192];
    struct { char tiny[16], guard[2048]; } g;   /* nothing may be written past tiny */
    int len, len2, i;
    h = dl_maxpool2d(dl_prelu(dl_batchnorm(dl_conv2d(h, 32, 3, 1, 1))), 2, 2);
    h = dl_maxpool2d(dl_prelu(dl_batchnorm(dl_conv2d(h, 64, 3, 1, 1))), 2, 2);
    h = dl_dense(dl_flatten(h), 10);
    dl_net_find_param(net, "conv2d_1.bias")->frozen = 1;
    len = dl_net_summary_str(net, buf, sizeof buf);
    CHECK(len > 0 && (size_t)len < sizeof buf && strlen(buf) == (size_t)len, "length %d", len);
    printf("%s", buf);
    /* conv 1: 32*9 + 32 parameters, 32*28*28*9 multiply-adds, 32*28*28*4 bytes */
    CHECK(strstr(buf, "conv2d_1 (conv2d)          32x28x28                320          288         32        225,792      98.0 KB"),
          "conv2d_1's row");
    CHECK(strstr(buf, "dense_1 (dense)            10                   31,370       31,370          0         31,360"), "dense_1's row");
    CHECK(strstr(buf, "flatten") || strstr(buf, "(reshape)"), "the flatten row");
    CHECK(strstr(buf, "Total params: 50,666"), "total: 50,474 trainable + 192 statistics");
    CHECK(strstr(buf, "Trainable params: 50,442") && strstr(buf, "Frozen params: 32"), "trainable and frozen totals");
    CHECK(strstr(buf, "Non-trainable params (statistics): 192"), "statistics");
    /* 225,792 + 32*784 (bn) + 64*196*288 + 64*196 (bn) + 31,360 */
    CHECK(strstr(buf, "Multiply-adds per sample: 3,907,456"), "MACs total");
    memset(g.guard, 0x5a, sizeof g.guard);
    len2 = dl_net_summary_str(net, g.tiny, sizeof g.tiny);
    CHECK(len2 == len && strlen(g.tiny) == sizeof g.tiny - 1 && !strncmp(g.tiny, buf, sizeof g.tiny - 1), "truncated copy");
    for (i = 0; i < (int)sizeof g.guard; i++) CHECK(g.guard[i] == 0x5a, "written past the buffer at %d", 16 + i);
    CHECK(dl_net_summary_str(NULL, buf, sizeof buf) == -1 && dl_net_summary(net, NULL) == DL_ERR_ARG, "NULLs");
    dl_net_free(net);
}

/* ---- schedules ---- */
static int read_case(const char *want, double *v, int cap) {
    FILE *f = fopen("tests/fixtures/schedules.txt", "r");
    char name[64];
    int n, i, found = 0;
    if (!f) return 0;
    while (!found && fscanf(f, "%63s %d", name, &n) == 2 && n <= cap) {
        for (i = 0; i < n; i++) if (fscanf(f, "%lf", &v[i]) != 1) n = 0;
        found = !strcmp(name, want);
    }
    fclose(f);
    return found ? n : 0;
}

static void check_sched(const char *name, dl_schedule s) {
    double want[64], metric[64];
    int n = read_case(name, want, 64), t, plateau = s.kind == DL_SCHED_PLATEAU;
    CHECK(n == 40, "%s: no fixture", name);
    if (plateau) CHECK(read_case("plateau_metric", metric, 64) == n, "metrics");
    for (t = 0; t < n; t++) {
        float lr = dl_schedule_lr(&s, t);
        CHECK(test_close(lr, want[t], 1e-9, 1e-5), "%s, t %d: %.9g, torch %.9g", name, t, lr, want[t]);
        if (plateau) dl_schedule_observe(&s, metric[t]);
    }
}

static void test_schedules_torch(void) {
    dl_schedule s;
    memset(&s, 0, sizeof s); s.lr = 0.1f; s.kind = DL_SCHED_STEP; s.step_size = 7; s.gamma = 0.5f;
    check_sched("step", s);
    memset(&s, 0, sizeof s); s.lr = 0.1f; s.kind = DL_SCHED_MULTISTEP; s.gamma = 0.3f;
    s.milestones[0] = 5, s.milestones[1] = 12, s.milestones[2] = 20;
    check_sched("multistep", s);
    memset(&s, 0, sizeof s); s.lr = 0.1f; s.kind = DL_SCHED_EXPONENTIAL; s.gamma = 0.9f;
    check_sched("exponential", s);
    memset(&s, 0, sizeof s); s.lr = 0.1f; s.kind = DL_SCHED_COSINE; s.period = 40; s.min_lr = 0.001f;
    check_sched("cosine", s);
    memset(&s, 0, sizeof s); s.lr = 0.1f; s.kind = DL_SCHED_COSINE; s.period = 5; s.restart_mult = 2; s.min_lr = 0.002f;
    check_sched("sgdr", s);
    memset(&s, 0, sizeof s); s.lr = 0.1f; s.kind = DL_SCHED_ONECYCLE; s.total = 40;
    check_sched("onecycle", s);
    memset(&s, 0, sizeof s); s.lr = 0.1f; s.kind = DL_SCHED_STEP; s.step_size = 5; s.gamma = 0.5f; s.warmup = 4; s.warmup_start = 0.25f;
    check_sched("warmup_step", s);
    memset(&s, 0, sizeof s); s.lr = 0.1f; s.kind = DL_SCHED_COSINE; s.period = 35; s.warmup = 5; s.warmup_start = 0.1f;
    check_sched("warmup_cosine", s);
    memset(&s, 0, sizeof s); s.lr = 0.1f; s.kind = DL_SCHED_PLATEAU; s.gamma = 0.5f; s.patience = 2; s.cooldown = 1; s.min_lr = 0.02f;
    check_sched("plateau", s);
    memset(&s, 0, sizeof s); s.lr = 0.1f; s.kind = DL_SCHED_PLATEAU; s.gamma = 0.5f; s.min_lr = 0.001f;   /* patience 0 */
    check_sched("plateau_p0", s);
    memset(&s, 0, sizeof s);
    s.kind = 99;
    CHECK(test_nan(dl_schedule_lr(&s, 0)) && test_nan(dl_schedule_lr(NULL, 0)), "bad kind: NaN");
    s.kind = DL_SCHED_CONSTANT;
    CHECK(dl_schedule_lr(&s, 5) == 1.0f, "lr 0: multipliers");
}

/* ---- augmentation ---- */
static void test_augment_known(void) {
    float img[2 * 4 * 5], out[2 * 4 * 5];
    int idx = 0, i, r, c, ch, trial;
    dl_dataset d;
    dl_augment a;
    memset(&d, 0, sizeof d);
    for (i = 0; i < 40; i++) img[i] = (float)(i + 1);
    d.x = img, d.count = 1, d.c = 2, d.h = 4, d.w = 5;
    memset(&a, 0, sizeof a);
    a.shift = 2, a.flip = 1;
    for (trial = 0; trial < 20; trial++) {   /* each draw against the formula written out */
        uint64_t rng = (uint64_t)trial * 77 + 5, copy = rng, u = dl_rand(&copy);
        int dy = (int)(u % 5) - 2, dx = (int)((u >> 16) % 5) - 2, flip = (int)(u >> 32) & 1;
        CHECK(dl_dataset_batch(&d, &idx, 1, &a, &rng, out, NULL, NULL) == DL_OK, "batch");
        CHECK(rng == copy, "one draw per sample");
        for (ch = 0; ch < 2; ch++)
            for (r = 0; r < 4; r++)
                for (c = 0; c < 5; c++) {
                    int sr = r - dy, sc = (flip ? 4 - c : c) - dx;
                    float want = sr >= 0 && sr < 4 && sc >= 0 && sc < 5 ? img[ch * 20 + sr * 5 + sc] : 0;
                    CHECK(out[ch * 20 + r * 5 + c] == want, "trial %d (dy %d dx %d flip %d) at %d,%d,%d: %g, want %g", trial, dy,
                          dx, flip, ch, r, c, out[ch * 20 + r * 5 + c], want);
                }
    }
    /* a flip alone: the mirror or the image */
    memset(&a, 0, sizeof a);
    a.flip = 1;
    {
        uint64_t rng = 3, copy = 3;
        int flip = (int)(dl_rand(&copy) >> 32) & 1;
        dl_dataset_batch(&d, &idx, 1, &a, &rng, out, NULL, NULL);
        CHECK(out[0] == (flip ? 5 : 1) && out[4] == (flip ? 1 : 5) && out[25] == (flip ? 29 : 26), "flip %d: %g %g", flip, out[0], out[4]);
    }
    /* cutout: a 3x3 square of zeros, clipped at the border */
    memset(&a, 0, sizeof a);
    a.cutout = 3;
    for (trial = 0; trial < 10; trial++) {
        uint64_t rng = (uint64_t)trial, copy = rng, u = dl_rand(&copy);
        int cy = (int)(u % 4) - 1, cx = (int)((u >> 32) % 5) - 1, zeros = 0, want = 0;
        dl_dataset_batch(&d, &idx, 1, &a, &rng, out, NULL, NULL);
        for (r = 0; r < 4; r++) for (c = 0; c < 5; c++) want += r >= cy && r < cy + 3 && c >= cx && c < cx + 3;
        for (i = 0; i < 40; i++) zeros += out[i] == 0;
        CHECK(zeros == 2 * want, "cutout at %d,%d: %d zeros, want %d", cy, cx, zeros, 2 * want);
        CHECK(out[0] == 0 || out[0] == 1, "the rest is untouched");
    }
    /* contrast keeps the mean; brightness moves it by at most b */
    memset(&a, 0, sizeof a);
    a.contrast = 0.5f;
    {
        uint64_t rng = 11;
        double m0 = 0, m1 = 0;
        dl_dataset_batch(&d, &idx, 1, &a, &rng, out, NULL, NULL);
        for (i = 0; i < 40; i++) m0 += img[i], m1 += out[i];
        CHECK(fabs(m0 - m1) < 1e-3 && out[0] != img[0], "contrast: mean %g -> %g", m0 / 40, m1 / 40);
        CHECK(fabs((out[39] - out[0]) / (img[39] - img[0]) - 1) <= 0.5 + 1e-6, "contrast factor in [0.5, 1.5]");
    }
    memset(&a, 0, sizeof a);
    a.brightness = 0.2f;
    {
        uint64_t rng = 12;
        float delta;
        dl_dataset_batch(&d, &idx, 1, &a, &rng, out, NULL, NULL);
        delta = out[0] - img[0];
        CHECK(fabsf(delta) <= 0.2f && delta != 0, "brightness %g", delta);
        for (i = 1; i < 40; i++) CHECK(fabsf(out[i] - img[i] - delta) < 1e-5f, "one shift for all");
    }
}

static void test_augment_same_seed(void) {
    static float a[16 * S * S], b[16 * S * S];
    int idx[16], i;
    uint64_t r1 = 42, r2 = 42, r3 = 43;
    dl_dataset d = train_set();
    dl_augment aug;
    memset(&aug, 0, sizeof aug);
    aug.shift = 2, aug.flip = 1, aug.cutout = 3, aug.brightness = 0.1f, aug.contrast = 0.2f;
    make_images(tx, ty, NTRAIN, 1);
    for (i = 0; i < 16; i++) idx[i] = (i * 7) % NTRAIN;
    dl_dataset_batch(&d, idx, 16, &aug, &r1, a, NULL, NULL);
    dl_dataset_batch(&d, idx, 16, &aug, &r2, b, NULL, NULL);
    CHECK(!memcmp(a, b, sizeof a) && r1 == r2, "same seed, same images");
    dl_dataset_batch(&d, idx, 16, &aug, &r3, b, NULL, NULL);
    CHECK(memcmp(a, b, sizeof a) != 0, "another seed, other images");
    idx[3] = NTRAIN;
    CHECK(dl_dataset_batch(&d, idx, 16, &aug, &r3, b, NULL, NULL) == DL_ERR_ARG, "index out of range");
}

/* ---- fit ---- */
static dl_fit_options base_options(void) {
    dl_fit_options o;
    memset(&o, 0, sizeof o);
    o.epochs = 3, o.batch = 16, o.seed = 5, o.quiet = 1;
    o.augment.shift = 1, o.augment.flip = 1;
    o.schedule.kind = DL_SCHED_COSINE;
    return o;
}

/* dl_fit's history and weights equal a loop written with the same calls;
   seed 0: the data's generator starts from a draw of the net's */
static void test_fit_matches_loop(void) {
    dl_layer *la, *lb;
    dl_net *a = small_net(&la), *b = small_net(&lb);
    dl_optim *oa = dl_adam(a, 0.01f), *ob = dl_adam(b, 0.01f);
    dl_fit_options o = base_options();
    dl_fit_history h;
    dl_dataset tr = train_set(), va = val_set();
    int order[NTRAIN], y[16], i, e, rc;
    float x[16 * S * S];
    uint64_t rng = dl_net_rand(b) * 0x2545f4914f6cdd1dull + 1;
    long step = 0, steps = 3 * ((NTRAIN + 15) / 16);
    dl_schedule s, s0 = o.schedule;
    o.seed = 0;
    make_images(tx, ty, NTRAIN, 1);
    make_images(vx, vy, NVAL, 2);
    memset(&h, 0, sizeof h);
    rc = dl_fit(a, oa, la, &tr, &va, &o, &h);
    CHECK(rc == DL_OK, "dl_fit: %d %s", rc, dl_net_error(a));
    CHECK(h.n_epochs == 3 && h.step == steps, "epochs %d, steps %ld", h.n_epochs, h.step);
    s0.lr = 0.01f, s0.period = (int)steps;
    test_opaque(&s, &s0, sizeof s);   /* as unknown here as in dl_fit (fast-math) */
    for (i = 0; i < NTRAIN; i++) order[i] = i;
    for (e = 0; e < 3; e++) {
        double sum = 0;
        int done = 0;
        dl_shuffle(order, NTRAIN, &rng);
        while (done < NTRAIN) {
            int n = NTRAIN - done < 16 ? NTRAIN - done : 16;
            float loss;
            dl_optim_set_lr(ob, dl_schedule_lr(&s, step));
            dl_dataset_batch(&tr, order + done, n, &o.augment, &rng, x, y, NULL);
            CHECK(dl_train_step(b, ob, lb, x, y, n, &loss) == DL_OK, "step");
            sum += (double)loss * n, done += n, step++;
        }
        CHECK(h.n_epochs > e && h.epochs[e].train_loss == sum / done, "epoch %d: fit %.17g, loop %.17g", e + 1,
              h.n_epochs > e ? h.epochs[e].train_loss : 0, sum / done);
    }
    CHECK(weights_equal(a, b), "weights differ from the loop's");
    CHECK(h.epochs[2].val_acc > 0.5 && h.epochs[2].train_acc > 0.8, "it learns: val acc %.3f, train acc %.3f", h.epochs[2].val_acc,
          h.epochs[2].train_acc);
    CHECK(h.epochs[2].val_topk == 1.0, "top-5 of 3 classes is 1: %g", h.epochs[2].val_topk);
    CHECK(h.epochs[0].lr > h.epochs[2].lr, "cosine: lr falls");
    {
        long total = 0;
        for (i = 0; i < 9; i++) total += h.confusion[i];
        CHECK(total == NVAL && h.class_acc[0] >= 0 && h.class_acc[0] <= 1, "confusion matrix sums to %ld", total);
    }
    dl_fit_history_free(&h);
    dl_net_free(a);
    dl_net_free(b);
}

static float best_copy[4096];
static int copy_best(void *user, const dl_fit_history *h) {
    dl_net *net = (dl_net *)user;
    int i;
    size_t k = 0;
    if (h->best_epoch != h->n_epochs) return 0;
    for (i = 0; i < dl_net_param_count(net); i++) {
        dl_param *p = dl_net_param(net, i);
        memcpy(best_copy + k, p->data, sizeof(float) * (size_t)p->size);
        k += (size_t)p->size;
    }
    return 0;
}

/* Validation labels that disagree with training: validation loss rises, so
   an early epoch is the best, training stops `patience` epochs later, and
   the weights are that epoch's. */
static void test_early_stopping(void) {
    dl_layer *l;
    dl_net *net = small_net(&l);
    dl_optim *opt = dl_adam(net, 0.01f);
    dl_fit_options o = base_options();
    dl_fit_history h;
    dl_dataset tr = train_set(), va = val_set();
    int i, wrong[NVAL];
    size_t k = 0;
    make_images(tx, ty, NTRAIN, 1);
    make_images(vx, vy, NVAL, 2);
    for (i = 0; i < NVAL; i++) wrong[i] = (vy[i] + 1) % 3;
    va.labels = wrong;
    o.epochs = 30, o.patience = 2, o.on_epoch = copy_best, o.user = net;
    o.schedule.kind = DL_SCHED_CONSTANT;
    memset(&h, 0, sizeof h);
    CHECK(dl_fit(net, opt, l, &tr, &va, &o, &h) == DL_OK, "%s", dl_net_error(net));
    printf("    stopped after epoch %d, best %d\n", h.n_epochs, h.best_epoch);
    CHECK(h.stopped_early == 1 && h.n_epochs == h.best_epoch + 2 && h.n_epochs < 30, "stopped %d after %d, best %d",
          h.stopped_early, h.n_epochs, h.best_epoch);
    for (i = 0; i < dl_net_param_count(net); i++) {
        dl_param *p = dl_net_param(net, i);
        CHECK(!memcmp(best_copy + k, p->data, sizeof(float) * (size_t)p->size), "%s is not the best epoch's", p->name);
        k += (size_t)p->size;
    }
    dl_fit_history_free(&h);
    dl_net_free(net);
}

static long kill_at;
static int killer(void *user, const dl_fit_history *h, float loss) {
    (void)user, (void)loss;
    return h->step == kill_at;
}

/* Runs killed at given steps and resumed from their last checkpoint end with
   the weights and history of a run never stopped. */
static void test_resume_bit_identical(void) {
    static const long kills[][3] = { { 7, 0, 0 }, { 10, 0, 0 }, { 13, 22, 0 }, { 5, 9, 27 } };
    const char *path = "build/test_fit.ckpt";
    dl_layer *l;
    dl_net *ref = small_net(&l);
    dl_optim *opt = dl_adam(ref, 0.01f);
    dl_fit_options o = base_options();
    dl_fit_history href;
    dl_dataset tr = train_set(), va = val_set();
    int k, j, e;
    make_images(tx, ty, NTRAIN, 1);
    make_images(vx, vy, NVAL, 2);
    o.checkpoint_every = 4;
    o.seed = 0;   /* the data's generator from the net's: the checkpoint keeps both */
    o.schedule.kind = DL_SCHED_ONECYCLE;
    o.augment.cutout = 2, o.augment.brightness = 0.1f;
    memset(&href, 0, sizeof href);
    CHECK(dl_fit(ref, opt, l, &tr, &va, &o, &href) == DL_OK, "reference run");
    for (k = 0; k < 4; k++) {
        dl_net *net = small_net(&l);
        dl_fit_history h;
        dl_status st;
        remove(path);
        opt = dl_adam(net, 0.01f);
        memset(&h, 0, sizeof h);
        for (j = 0; j < 3 && kills[k][j]; j++) {   /* killed at kills[k][j], resumed */
            o.checkpoint = path, o.on_step = killer, kill_at = kills[k][j];
            CHECK(dl_fit(net, opt, l, &tr, &va, &o, &h) == DL_OK && h.stopped_early == 2, "killed run");
            dl_net_free(net);
            dl_fit_history_free(&h);
            net = dl_fit_load(path, &opt, &h, &st);
            CHECK(net && opt, "dl_fit_load: %s", st.msg);
            if (!net) return;
            l = dl_net_find(net, "logits");
        }
        o.on_step = NULL;
        CHECK(dl_fit(net, opt, l, &tr, &va, &o, &h) == DL_OK, "resumed run: %s", dl_net_error(net));
        CHECK(weights_equal(net, ref), "kills at %ld %ld %ld: weights differ", kills[k][0], kills[k][1], kills[k][2]);
        CHECK(h.n_epochs == 3 && h.step == href.step, "history: %d epochs, %ld steps", h.n_epochs, h.step);
        for (e = 0; e < h.n_epochs && e < 3; e++)
            CHECK(h.epochs[e].train_loss == href.epochs[e].train_loss && h.epochs[e].val_loss == href.epochs[e].val_loss,
                  "epoch %d's losses", e + 1);
        dl_fit_history_free(&h);
        dl_net_free(net);
    }
    {   /* a damaged file is refused */
        FILE *f = fopen(path, "r+b");
        dl_fit_history h;
        dl_status st;
        memset(&h, 0, sizeof h);
        if (f) { fseek(f, 100, SEEK_SET); fputc(0x55, f); fclose(f); }
        CHECK(!dl_fit_load(path, &opt, &h, &st) && st.code == DL_ERR_FORMAT, "corrupt checkpoint: %d %s", st.code, st.msg);
        CHECK(!dl_fit_load("build/no-such-file", &opt, &h, &st) && st.code == DL_ERR_IO, "missing file");
    }
    dl_fit_history_free(&href);
    dl_net_free(ref);
}

static void test_evaluate_predict(void) {
    dl_layer *l;
    dl_net *net = small_net(&l);
    dl_dataset va = val_set();
    dl_eval ev;
    int conf[9], i, c, correct = 0;
    static float all[NVAL * 3];
    const float *p;
    make_images(vx, vy, NVAL, 2);
    memset(&ev, 0, sizeof ev);
    ev.confusion = conf, ev.k = 2;
    CHECK(dl_evaluate(net, l, &va, 7, &ev) == DL_OK, "evaluate");
    CHECK(dl_predict_dataset(net, l, &va, 7, all) == DL_OK, "predict over the set");
    p = dl_predict(net, l, vx, NVAL);
    CHECK(p && !memcmp(p, all, sizeof all), "batched predictions = one big batch");
    for (i = 0; i < NVAL; i++) {
        int best = 0;
        for (c = 1; c < 3; c++) if (all[i * 3 + c] > all[i * 3 + best]) best = c;
        correct += best == vy[i];
    }
    CHECK(ev.count == NVAL && ev.accuracy == (double)correct / NVAL, "accuracy %g, want %g", ev.accuracy, (double)correct / NVAL);
    {
        double loss = 0;
        for (i = 0; i < NVAL; i++) loss += dl_softmax_cross_entropy(all + 3 * i, vy + i, 1, 3, NULL);
        CHECK(test_close(ev.loss, loss / NVAL, 1e-6, 1e-5), "loss %g, want %g", ev.loss, loss / NVAL);
    }
    vy[5] = 3;
    CHECK(dl_evaluate(net, l, &va, 7, &ev) == DL_ERR_ARG, "a label out of range");
    dl_net_free(net);
}

/* targets and MSE; a callback fills the batches */
static int fill_targets(void *user, const int *index, int n, float *x, int *labels, float *targets) {
    int i, k;
    (void)user, (void)labels;
    for (i = 0; i < n; i++) {
        for (k = 0; k < 4; k++) x[i * 4 + k] = (float)((index[i] * (k + 3)) % 7) / 7;
        targets[i * 2] = x[i * 4] + x[i * 4 + 1];
        targets[i * 2 + 1] = x[i * 4 + 2] - x[i * 4 + 3];
    }
    return 0;
}
static void test_fit_mse_callback_data(void) {
    dl_net *net = dl_net_new();
    dl_layer *out = dl_dense(dl_input(net, 4, 0, 0), 2);
    dl_optim *opt = dl_sgd(net, 0.1f, 0.9f);
    dl_dataset d;
    dl_fit_options o;
    dl_fit_history h;
    memset(&d, 0, sizeof d), memset(&o, 0, sizeof o), memset(&h, 0, sizeof h);
    d.fill = fill_targets, d.count = 100, d.target_size = 2;
    o.epochs = 20, o.batch = 10, o.quiet = 1, o.schedule.kind = DL_SCHED_STEP, o.schedule.per_epoch = 1, o.schedule.step_size = 10;
    CHECK(dl_fit(net, opt, out, &d, &d, &o, &h) == DL_OK, "%s", dl_net_error(net));
    CHECK(h.n_epochs == 20 && h.epochs[19].val_loss < 1e-3 && h.epochs[19].val_loss < h.epochs[0].val_loss, "MSE %g -> %g",
          h.epochs[0].val_loss, h.epochs[19].val_loss);
    CHECK(test_nan(h.epochs[19].val_acc), "no accuracy for MSE");
    CHECK(h.epochs[9].lr == 0.1f && test_close(h.epochs[10].lr, 0.01, 0, 1e-6), "per-epoch step schedule: %g %g", h.epochs[9].lr,
          h.epochs[10].lr);
    dl_fit_history_free(&h);
    dl_net_free(net);
}

/* val_split: the last fifth of the training set validates, the rest trains */
static void test_val_split(void) {
    dl_layer *l;
    dl_net *net = small_net(&l);
    dl_optim *opt = dl_adam(net, 0.01f);
    dl_fit_options o = base_options();
    dl_fit_history h;
    dl_dataset tr = train_set(), last = train_set();
    dl_eval ev;
    make_images(tx, ty, NTRAIN, 1);
    o.val_split = 0.2f, o.epochs = 1, o.eval_batch = 7;
    memset(&h, 0, sizeof h);
    CHECK(dl_fit(net, opt, l, &tr, NULL, &o, &h) == DL_OK, "%s", h.error);
    CHECK(h.epochs[0].images == 120, "trained on %ld samples", h.epochs[0].images);
    last.x = tx + 120 * S * S, last.labels = ty + 120, last.count = 30;
    memset(&ev, 0, sizeof ev);
    CHECK(dl_evaluate(net, l, &last, 7, &ev) == DL_OK && ev.loss == h.epochs[0].val_loss && ev.accuracy == h.epochs[0].val_acc,
          "validation is the last 30: %g vs %g", ev.loss, h.epochs[0].val_loss);
    dl_fit_history_free(&h);
    dl_net_free(net);
}

static void test_report_content(void) {
    static const char *names[3] = { "top bar", "bottom <bar>", "left bar" };
    dl_layer *l;
    dl_net *net = small_net(&l);
    dl_optim *opt = dl_adam(net, 0.01f);
    dl_fit_options o = base_options();
    dl_fit_history h;
    dl_dataset tr = train_set(), va = val_set();
    static char html[1 << 20];
    size_t n;
    FILE *f;
    make_images(tx, ty, NTRAIN, 1);
    make_images(vx, vy, NVAL, 2);
    o.report = "build/report.html";
    o.class_names = names;
    memset(&h, 0, sizeof h);
    CHECK(dl_fit(net, opt, l, &tr, &va, &o, &h) == DL_OK, "%s", dl_net_error(net));
    f = fopen(o.report, "rb");
    n = f ? fread(html, 1, sizeof html - 1, f) : 0;
    if (f) fclose(f);
    html[n] = '\0';
    CHECK(n > 10000, "report of %lu bytes", (unsigned long)n);
    CHECK(strstr(html, "default-src 'none'") && !strstr(html, "<script") && !strstr(html, "http://") && !strstr(html, "https://"),
          "self-contained, no script");
    CHECK(strstr(html, "<polyline") && strstr(html, "Confusion matrix") && strstr(html, "bottom &lt;bar&gt;"), "curves, matrix, names");
    CHECK(strstr(html, "data:image/png;base64,iVBORw0KGgo") && strstr(html, "Activation maps") && strstr(html, "First layer"),
          "images");
    CHECK(strstr(html, "Total params") && strstr(html, "Settings") && strstr(html, "epoch 3 of 3"), "summary and settings");
    dl_fit_history_free(&h);
    dl_net_free(net);
}

static void test_bad_arguments(void) {
    dl_layer *l;
    dl_net *net = small_net(&l);
    dl_optim *opt = dl_adam(net, 0.01f);
    dl_dataset tr = train_set();
    dl_fit_history h;
    memset(&h, 0, sizeof h);
    CHECK(dl_fit(NULL, opt, l, &tr, NULL, NULL, &h) == DL_ERR_ARG, "NULL net");
    tr.c = 2;
    CHECK(dl_fit(net, opt, l, &tr, NULL, NULL, &h) == DL_ERR_ARG, "wrong sample size");
    CHECK(strstr(h.error, "input layer's size") != NULL, "message: %s", h.error);
    tr.c = 1, tr.labels = NULL;
    CHECK(dl_fit(net, opt, l, &tr, NULL, NULL, &h) == DL_ERR_ARG, "no labels");
    tr.labels = ty;
    {
        dl_fit_options o = base_options();
        int rc;
        o.epochs = 1;
        make_images(tx, ty, NTRAIN, 1);
        CHECK(dl_fit(net, opt, l, &tr, NULL, &o, &h) == DL_OK && !h.error[0], "one epoch: %s", h.error);
        tr.count = 100;
        CHECK(dl_fit(net, opt, l, &tr, NULL, &o, &h) == DL_ERR_ARG && strstr(h.error, "150 training samples"),
              "continuing on another set: %s", h.error);
        tr.count = NTRAIN, o.epochs = 2;
        rc = dl_fit(net, opt, l, &tr, NULL, &o, &h);
        CHECK(rc == DL_OK && h.n_epochs == 2, "one more epoch: %d %d %s", rc, h.n_epochs, h.error);
        o.val_split = 0.2f, tr.x = NULL, tr.fill = fill_targets;
        dl_fit_history_free(&h);
        CHECK(dl_fit(net, opt, l, &tr, NULL, &o, &h) == DL_ERR_ARG && strstr(h.error, "val_split"), "val_split without x: %s", h.error);
        o.val_split = 0, o.schedule.kind = 42;
        tr.x = tx, tr.fill = NULL;
        dl_fit_history_free(&h);
        CHECK(dl_fit(net, opt, l, &tr, NULL, &o, &h) == DL_ERR_ARG && strstr(h.error, "schedule"), "bad schedule: %s", h.error);
        o.schedule.kind = DL_SCHED_STEP, o.schedule.gamma = nanf("");   /* refused by its bits, fast-math too */
        dl_fit_history_free(&h);
        CHECK(dl_fit(net, opt, l, &tr, NULL, &o, &h) == DL_ERR_ARG && strstr(h.error, "schedule"), "NaN gamma: %s", h.error);
        o.schedule.gamma = 0, o.val_split = nanf("");
        dl_fit_history_free(&h);
        CHECK(dl_fit(net, opt, l, &tr, NULL, &o, &h) == DL_ERR_ARG && strstr(h.error, "val_split"), "NaN val_split: %s", h.error);
        o.val_split = 0, o.augment.brightness = nanf("");
        dl_fit_history_free(&h);
        CHECK(dl_fit(net, opt, l, &tr, NULL, &o, &h) == DL_ERR_ARG && strstr(h.error, "augment"), "NaN brightness: %s", h.error);
        o.augment.brightness = 0;
        o.schedule.kind = 0, ty[3] = 7;
        dl_fit_history_free(&h);
        CHECK(dl_fit(net, opt, l, &tr, NULL, &o, &h) != DL_OK && strstr(h.error, "step"), "bad label: %s", h.error);
        ty[3] = 0;
    }
    dl_fit_history_free(&h);
    dl_net_free(net);
}

int main(void) {
    RUN(test_net_summary);
    RUN(test_schedules_torch);
    RUN(test_augment_known);
    RUN(test_augment_same_seed);
    RUN(test_fit_matches_loop);
    RUN(test_early_stopping);
    RUN(test_resume_bit_identical);
    RUN(test_evaluate_predict);
    RUN(test_fit_mse_callback_data);
    RUN(test_val_split);
    RUN(test_report_content);
    RUN(test_bad_arguments);
    return test_summary();
}
