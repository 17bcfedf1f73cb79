/* test_onnx.c - ONNX import and export (the >>onnx zone of dl.h).
 *
 * 1. Every node test of Debian's libonnx-testdata (model.onnx and
 *    test_data_set_0/{input,output}_*.pb, read by dl.h's own protobuf
 *    reader): a case either fails to load with DL_ERR_UNSUPPORTED, or loads
 *    and matches the expected outputs. Prints a coverage matrix per op;
 *    DL_ONNX_COVERAGE=file also writes it as markdown (make onnx-coverage).
 *    A node test's inputs after the first are bound as initializers: dl.h
 *    nets have one input. Dropout in training mode (a random mask) is
 *    checked by property (check_dropout), not against numpy's bits.
 * 2. Round trips with PyTorch: tests/fixtures/onnx/ (tests/gen_onnx.py), one
 *    model with ONNX local functions (inlined), and hand-made functions.
 * 3. Export: nets built here, saved as ONNX, loaded back, same outputs and
 *    names; the files (and inputs and outputs) go to build/onnx_export/ for
 *    tests/onnx_ort.js (ONNX Runtime, make onnx-ort).
 * 4. Bad input: truncated, hostile and cyclic models. */
#define _POSIX_C_SOURCE 200809L   /* strdup, opendir */
#define DL_IMPLEMENTATION
#include "dl.h"
#include "tests/test.h"
#include "tests/fuzz/fuzz_dl.h"
#include "tests/fuzz/fuzz_onnx.h"
#include "examples/idx.h"
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static unsigned char *read_all(const char *path, size_t *len) {
    unsigned char *p = NULL;
    char err[256];
    if (dl__read_file(path, &p, len, err)) return NULL;
    return p;
}

/* A TensorProto file into t (name optional). */
static int read_tensor(const char *path, dl__ox_t *t, dl__str *name) {
    size_t len;
    unsigned char *p = read_all(path, &len);
    dl__ox ox;
    int rc;
    memset(&ox, 0, sizeof ox);
    if (!p) return -1;
    rc = dl__ox_tensor(&ox, p, len, t, name);
    free(p);
    return rc;
}

/* The model with graph inputs 1.. bound to the given TensorProto bytes. */
static void bind_inputs(const unsigned char *m, size_t n, unsigned char **bound, int n_bound, const size_t *blen,
                        dl__wbuf *out) {
    dl__pb b = dl__pb_of(m, n);
    dl__pbf f;
    memset(out, 0, sizeof *out);
    while (dl__pb_next(&b, &f) > 0) {
        if (f.field == 7 && f.wire == 2) {
            dl__wbuf g;
            dl__pb gb = dl__pb_of(f.s, f.n);
            dl__pbf gf;
            dl__str names[DL__OX_MAXIO];
            int k, ni = 0;
            memset(&g, 0, sizeof g);
            dl__put(&g, f.s, f.n);
            while (dl__pb_next(&gb, &gf) > 0)   /* graph inputs that are not initializers, in order */
                if (gf.field == 11 && gf.wire == 2 && ni < DL__OX_MAXIO) {
                    dl__ox ox;
                    int elem, rank;
                    int64_t d[DL__OX_MAXR];
                    memset(&ox, 0, sizeof ox);
                    dl__ox_valinfo(&ox, gf.s, gf.n, &names[ni++], &elem, d, &rank);
                }
            for (k = 1; k <= n_bound && k < ni; k++) {
                dl__wbuf t;
                memset(&t, 0, sizeof t);
                dl__put(&t, bound[k - 1], blen[k - 1]);
                dl__pw_bytes(&t, 8, names[k].p, names[k].n);     /* the last name field wins */
                dl__pw_msg(&g, 5, &t);
            }
            dl__pw_msg(out, 7, &g);
        } else {
            size_t head = (size_t)(f.s - m);     /* copy the field as it was */
            (void)head;
            dl__pw_varint(out, (uint64_t)f.field << 3 | (unsigned)f.wire);
            if (f.wire == 0) dl__pw_varint(out, f.v);
            else if (f.wire == 2) { dl__pw_varint(out, f.n); dl__put(out, f.s, f.n); }
            else { unsigned char le[8]; int k; for (k = 0; k < (int)f.n; k++) le[k] = (unsigned char)(f.v >> (8 * k)); dl__put(out, le, f.n); }
        }
    }
}

/* The ops of the model's nodes, "A+B" for several. */
static void model_ops(const unsigned char *m, size_t n, char *ops, size_t cap) {
    dl__pb b = dl__pb_of(m, n);
    dl__pbf f;
    ops[0] = 0;
    while (dl__pb_next(&b, &f) > 0)
        if (f.field == 7 && f.wire == 2) {
            dl__pb g = dl__pb_of(f.s, f.n);
            dl__pbf gf;
            int count = 0;
            while (dl__pb_next(&g, &gf) > 0)
                if (gf.field == 1 && gf.wire == 2) {
                    dl__ox ox;
                    dl__ox_node node;
                    memset(&ox, 0, sizeof ox);
                    if (dl__ox_node_parse(&ox, gf.s, gf.n, &node, NULL)) continue;
                    if (count++ == 0) snprintf(ops, cap, "%.*s", (int)node.op.n, node.op.p);
                    else { snprintf(ops, cap, "(models of several nodes)"); return; }
                }
        }
}

/* The graph's output names. */
static int model_outputs(const unsigned char *m, size_t n, dl__str *out, int max) {
    dl__pb b = dl__pb_of(m, n);
    dl__pbf f;
    int k = 0;
    while (dl__pb_next(&b, &f) > 0)
        if (f.field == 7 && f.wire == 2) {
            dl__pb g = dl__pb_of(f.s, f.n);
            dl__pbf gf;
            while (dl__pb_next(&g, &gf) > 0)
                if (gf.field == 12 && gf.wire == 2 && k < max) {
                    dl__ox ox;
                    int elem, rank;
                    int64_t d[DL__OX_MAXR];
                    memset(&ox, 0, sizeof ox);
                    dl__ox_valinfo(&ox, gf.s, gf.n, &out[k++], &elem, d, &rank);
                }
        }
    return k;
}

/* Runs the net on input x (batch = first dim) and compares every output;
   the largest error goes to *maxerr. Returns 0 when all match. */
static int compare_outputs(dl_net *net, const dl__ox_t *x, const dl__str *names, const dl__ox_t *want, int n_out,
                           double atol, double rtol, double *maxerr, char *why, size_t whylen) {
    int k, n = (int)(x->count / (size_t)dl_layer_size(dl_net_layer(net, 0)));    /* 1 where the batch was folded into the sample */
    *maxerr = 0;
    for (k = 0; k < n_out; k++) {
        char nm[256];
        dl_layer *l;
        const float *y;
        size_t i;
        snprintf(nm, sizeof nm, "%.*s", (int)names[k].n, names[k].p);
        if (!(l = dl_onnx_output(net, nm))) { snprintf(why, whylen, "no layer for output '%s'", nm); return 1; }
        if ((size_t)n * (size_t)dl_layer_size(l) != want[k].count) {
            snprintf(why, whylen, "output '%s' has %d x %d values, expected %lu", nm, n, dl_layer_size(l), (unsigned long)want[k].count);
            return 1;
        }
        if (!(y = dl_predict(net, l, x->f, n))) { snprintf(why, whylen, "predict: %.240s", dl_net_error(net)); return 1; }
        for (i = 0; i < want[k].count; i++) {
            double a = y[i], b = dl__ox_get(&want[k], i), e = fabs(a - b);
            if (test_nan(a) && test_nan(b)) continue;     /* NaN expected (sqrt of a negative): by bits, for -ffast-math */
            if (!test_close(a, b, atol, rtol)) {
                snprintf(why, whylen, "output '%s'[%lu] = %g, expected %g", nm, (unsigned long)i, a, b);
                *maxerr = test_nan(e) ? INFINITY : e;
                return 1;
            }
            if (e > *maxerr) *maxerr = e;
        }
    }
    return 0;
}

/* A Dropout in training mode with a ratio draws its mask from a generator
   ONNX does not specify (the expected outputs are numpy's; ONNX Runtime's
   own test lists skip these), so it is checked by property, not bits: each
   y is 0 or x / (1 - ratio), as the mask output (when asked for) says, and
   the dropped fraction is within 5 binomial sigmas of the ratio. Both
   outputs' passes get one seed, so they see one mask. 3: passed, 2: failed. */
static int check_dropout(dl_net *net, const dl__ox_t *x, const dl__str *names, const dl__ox_t *want, int n_out, double ratio,
                         char *why, size_t whylen) {
    static float got[2][4096];
    int k, n = (int)(x->count / (size_t)dl_layer_size(dl_net_layer(net, 0)));
    size_t i, cnt = x->count, dropped = 0;
    double sigma = sqrt((double)cnt * ratio * (1 - ratio));
    if (cnt > 4096 || n_out > 2) { snprintf(why, whylen, "dropout check: %lu values, %d outputs", (unsigned long)cnt, n_out); return 2; }
    for (k = 0; k < n_out; k++) {
        char nm[256];
        dl_layer *l;
        const float *y;
        snprintf(nm, sizeof nm, "%.*s", (int)names[k].n, names[k].p);
        if (!(l = dl_onnx_output(net, nm)) || want[k].count != cnt || (size_t)n * (size_t)dl_layer_size(l) != cnt) {
            snprintf(why, whylen, "output '%s': no layer, or not %lu values", nm, (unsigned long)cnt);
            return 2;
        }
        dl_net_seed(net, 42);
        if (!(y = dl_forward(net, l, x->f, n, 1))) { snprintf(why, whylen, "forward: %.240s", dl_net_error(net)); return 2; }
        memcpy(got[k], y, cnt * sizeof(float));
    }
    for (i = 0; i < cnt; i++) {
        double xi = x->f[i], yi = got[0][i];
        int drop = n_out > 1 ? got[1][i] == 0 : (yi == 0 && xi != 0);
        if ((n_out > 1 && got[1][i] != 0 && got[1][i] != 1) || (drop ? yi != 0 : !test_close(yi, xi / (1 - ratio), 1e-6, 1e-5))) {
            snprintf(why, whylen, "element %lu: x %g, y %g, mask %g (ratio %g)", (unsigned long)i, xi, yi, n_out > 1 ? got[1][i] : -1.0, ratio);
            return 2;
        }
        dropped += (size_t)drop;
    }
    if (fabs((double)dropped - (double)cnt * ratio) > 5 * sigma) {
        snprintf(why, whylen, "%lu of %lu dropped at ratio %g (beyond 5 sigma)", (unsigned long)dropped, (unsigned long)cnt, ratio);
        return 2;
    }
    return 3;
}
/* The ratio of a node test's Dropout in training mode (its inputs 1 and 2,
   bound as initializers), else 0. */
static double random_dropout(const char *dir, const char *op, int n_in) {
    char path[2048];
    dl__ox_t r, t;
    double ratio = 0;
    if (strcmp(op, "Dropout") || n_in < 3) return 0;
    memset(&r, 0, sizeof r); memset(&t, 0, sizeof t);
    snprintf(path, sizeof path, "%s/test_data_set_0/input_1.pb", dir);
    if (!read_tensor(path, &r, NULL) && r.count == 1) {
        snprintf(path, sizeof path, "%s/test_data_set_0/input_2.pb", dir);
        if (!read_tensor(path, &t, NULL) && t.count == 1 && dl__ox_get(&t, 0) != 0) ratio = dl__ox_get(&r, 0);
    }
    dl__ox_t_free(&r); dl__ox_t_free(&t);
    return ratio;
}

/* ---- 1. node tests ---- */
typedef struct op_row { char op[64]; int ran, passed, prop, unsup, failed; char reasons[600]; } op_row;
static op_row rows[1024];
static int n_rows, cov_total, cov_passed, cov_unsup, cov_prop;

static op_row *row_for(const char *op) {
    int k;
    for (k = 0; k < n_rows; k++) if (!strcmp(rows[k].op, op)) return &rows[k];
    if (n_rows == 1024) return &rows[1023];
    snprintf(rows[n_rows].op, sizeof rows[n_rows].op, "%s", op);
    return &rows[n_rows++];
}
static void add_reason(op_row *r, const char *why) {
    const char *p = strstr(why, "': ");     /* "Op 'name': reason" -> reason */
    char reason[200];
    snprintf(reason, sizeof reason, "%s", p ? p + 3 : why);
    if ((p = strchr(reason, ';'))) reason[p - reason] = 0;
    if (strstr(r->reasons, reason)) return;
    if (strlen(r->reasons) + strlen(reason) + 4 >= sizeof r->reasons) return;
    if (r->reasons[0]) strcat(r->reasons, "; ");
    strcat(r->reasons, reason);
}
static int cmp_names(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }
static int cmp_rows(const void *a, const void *b) { return strcmp(((const op_row *)a)->op, ((const op_row *)b)->op); }

/* One case: 0 ran and passed, 1 unsupported, 2 failed (why says), 3 passed by property (check_dropout) */
static int run_case(const char *dir, char *op, size_t oplen, char *why, size_t whylen) {
    char path[2048];
    unsigned char *model, *bound[DL__OX_MAXIO];
    size_t mlen, blen[DL__OX_MAXIO];
    dl__ox_t x, want[16] = { { 0, 0, { 0 }, 0, NULL, NULL } };
    dl__str outs[16];
    dl__wbuf bm;
    dl_status st;
    dl_net *net;
    int n_in = 0, n_out, k, rc = 2;
    double maxerr;
    snprintf(path, sizeof path, "%s/model.onnx", dir);
    if (!(model = read_all(path, &mlen))) { snprintf(why, whylen, "cannot read %.200s", path); return 2; }
    model_ops(model, mlen, op, oplen);
    memset(&x, 0, sizeof x);
    for (k = 0; k < DL__OX_MAXIO; k++) {
        snprintf(path, sizeof path, "%s/test_data_set_0/input_%d.pb", dir, k);
        if (!(bound[k] = read_all(path, &blen[k]))) break;
        n_in++;
        if (read_tensor(path, &x, NULL)) { snprintf(why, whylen, "input_%d.pb: not a tensor dl.h reads (a sequence or optional?)", k); rc = 1; goto done; }
        dl__ox_t_free(&x);
    }
    snprintf(path, sizeof path, "%s/test_data_set_0/input_0.pb", dir);
    if (!n_in) {                        /* the net's input is one float nothing reads (dl_onnx_load) */
        int64_t one = 1;
        if (dl__ox_t_alloc(&x, 0, 1, &one)) { snprintf(why, whylen, "out of memory"); goto done; }
        x.f[0] = 0;
    } else if (read_tensor(path, &x, NULL)) {
        snprintf(why, whylen, "input_0.pb: not a tensor dl.h reads");
        rc = 1;
        goto done;
    }
    bind_inputs(model, mlen, bound + 1, n_in - 1, blen + 1, &bm);
    net = dl_onnx_load_mem(bm.p, bm.len, &st);
    if (getenv("DL_ONNX_SEEDS") && bm.len <= 4096) {  /* fuzzing seeds: the models as this test runs them */
        const char *base = strrchr(dir, '/');
        FILE *f;
        snprintf(path, sizeof path, "%s/%s.onnx", getenv("DL_ONNX_SEEDS"), base ? base + 1 : dir);
        if ((f = fopen(path, "wb"))) { fwrite(bm.p, 1, bm.len, f); fclose(f); }
    }
    free(bm.p);
    if (!net) {
        snprintf(why, whylen, "%s", st.msg);
        rc = st.code == DL_ERR_UNSUPPORTED ? 1 : 2;
        goto done;
    }
    n_out = model_outputs(model, mlen, outs, 16);
    for (k = 0; k < n_out; k++) {
        snprintf(path, sizeof path, "%s/test_data_set_0/output_%d.pb", dir, k);
        memset(&want[k], 0, sizeof want[k]);
        if (read_tensor(path, &want[k], NULL)) { snprintf(why, whylen, "output_%d.pb unreadable", k); n_out = k; rc = 2; break; }
    }
    if (k == n_out) {
        double ratio = random_dropout(dir, op, n_in);
        if (ratio > 0) rc = check_dropout(net, &x, outs, want, n_out, ratio, why, whylen);
        else rc = compare_outputs(net, &x, outs, want, n_out, 1e-4, 1e-3, &maxerr, why, whylen) ? 2 : 0;
    }
    for (k = 0; k < n_out; k++) dl__ox_t_free(&want[k]);
    dl_net_free(net);
done:
    dl__ox_t_free(&x);
    for (k = 0; k < n_in; k++) free(bound[k]);
    free(model);
    return rc;
}

static const char *testdata_dir(void) {
    const char *d = getenv("DL_ONNX_TESTDATA");
    return d ? d : "/usr/share/libonnx-testdata/data";
}

/* The other folders of libonnx-testdata: real exports (PyTorch's converted
   modules and operators, and small models), one row per case. */
typedef struct case_row { char name[80]; int rc; char why[200]; } case_row;
static case_row cases[512];
static int n_cases;

static void test_other_suites(void) {
    static const char *const suites[] = { "pytorch-converted", "pytorch-operator", "simple" };
    int s, k, passed = 0, unsup = 0, failed = 0;
    for (s = 0; s < 3; s++) {
        char base[1024];
        DIR *d;
        struct dirent *e;
        char *names[400];
        int n = 0;
        snprintf(base, sizeof base, "%s/%s", testdata_dir(), suites[s]);
        if (!(d = opendir(base))) { printf("    %s: not run (%s absent)\n", suites[s], base); continue; }
        while ((e = readdir(d)) && n < 400) if (e->d_name[0] != '.') names[n++] = strdup(e->d_name);
        closedir(d);
        qsort(names, (size_t)n, sizeof *names, cmp_names);
        for (k = 0; k < n; k++) {
            char dir[1400], op[64], why[512] = "";
            int rc;
            snprintf(dir, sizeof dir, "%s/%s", base, names[k]);
            rc = run_case(dir, op, sizeof op, why, sizeof why);
            if (n_cases < 512) {
                case_row *c = &cases[n_cases++];
                snprintf(c->name, sizeof c->name, "%s/%s", suites[s], names[k]);
                c->rc = rc;
                snprintf(c->why, sizeof c->why, "%.199s", rc ? (strstr(why, "): ") ? strstr(why, "): ") + 3 : why) : "");
            }
            if (rc == 0 || rc == 3) passed++; else if (rc == 1) unsup++; else { failed++; printf("    FAILED %s: %s\n", names[k], why); }
            CHECK(rc != 2, "%s/%s: %s", suites[s], names[k], why);
            free(names[k]);
        }
    }
    printf("    real exports: %d cases, %d passed, %d unsupported, %d failed\n", passed + unsup + failed, passed, unsup, failed);
    CHECK(passed + unsup + failed == 0 || passed >= 94, "real exports: %d passed (94 with Sqrt)", passed);
}

static void write_coverage(const char *path, int total, int passed, int unsup, int prop) {
    FILE *f = fopen(path, "w");
    int k;
    if (!f) { printf("    cannot write %s\n", path); return; }
    fprintf(f, "# ONNX node-test coverage\n\n"
               "Generated by `make onnx-coverage` (tests/test_onnx.c) from Debian's libonnx-testdata\n"
               "(`%s/node`). A case runs when dl.h imports it; it passes when every output matches\n"
               "within |a-b| <= 1e-4 + 1e-3|b|. A case is *unsupported* when the importer refuses it with\n"
               "DL_ERR_UNSUPPORTED (the reason is the importer's own message); it is *failed* otherwise.\n"
               "Node tests give every operand as a graph input; inputs after the first are bound as\n"
               "initializers (dl.h nets have one input). \"Models of several nodes\" are the function-expanded\n"
               "tests, grouped in one row. A random op (Dropout in training mode with a ratio: its mask\n"
               "comes from a generator ONNX does not specify, the expected outputs from numpy's) is\n"
               "*passed (property check: random op)*, not a bit match: every output is 0 or x / (1 - ratio)\n"
               "as the mask output says, and the dropped fraction is within 5 binomial sigmas of the ratio.\n\n"
               "Total: %d cases, %d ran and passed (%d of them by property check: random op), %d unsupported, %d failed.\n\n"
               "| op | cases | passed | unsupported | failed | why unsupported or failed |\n"
               "|---|---:|---:|---:|---:|---|\n", testdata_dir(), total, passed, prop, unsup, total - passed - unsup);
    for (k = 0; k < n_rows; k++) {
        char pp[64] = "";
        if (rows[k].prop) snprintf(pp, sizeof pp, " (%d passed (property check: random op))", rows[k].prop);
        fprintf(f, "| %s | %d | %d%s | %d | %d | %s |\n", rows[k].op, rows[k].ran + rows[k].unsup + rows[k].failed,
                rows[k].passed, pp, rows[k].unsup, rows[k].failed, rows[k].reasons);
    }
    fprintf(f, "\n## Real exports\n\nThe other folders of libonnx-testdata: PyTorch modules and operators exported by\n"
               "PyTorch's converter, and small models. Same rules.\n\n| case | result | why |\n|---|---|---|\n");
    for (k = 0; k < n_cases; k++)
        fprintf(f, "| %s | %s | %s |\n", cases[k].name, cases[k].rc == 0 ? "passed" : cases[k].rc == 3 ? "passed (property check: random op)" :
                cases[k].rc == 1 ? "unsupported" : "FAILED", cases[k].why);
    fclose(f);
    printf("    wrote %s\n", path);
}

static void test_node_tests(void) {
    char base[1024], dir[1400];
    DIR *d;
    struct dirent *e;
    char **names = NULL;
    int n = 0, cap = 0, k, total = 0, passed = 0, unsup = 0, failed = 0, prop = 0;
    snprintf(base, sizeof base, "%s/node", testdata_dir());
    if (!(d = opendir(base))) {
        printf("    node tests: not run (%s absent; Debian: apt-get install libonnx-testdata)\n", base);
        CHECK(!getenv("DL_TEST_REQUIRE_ALL"), "DL_TEST_REQUIRE_ALL: the node tests must run");
        return;
    }
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') {
            if (n == cap) { cap = cap ? 2 * cap : 256; names = (char **)realloc(names, (size_t)cap * sizeof *names); }
            names[n++] = strdup(e->d_name);
        }
    closedir(d);
    qsort(names, (size_t)n, sizeof *names, cmp_names);
    for (k = 0; k < n; k++) {
        char op[64], why[512];
        op_row *r;
        int rc;
        why[0] = 0;
        snprintf(dir, sizeof dir, "%s/%s", base, names[k]);
        rc = run_case(dir, op, sizeof op, why, sizeof why);
        r = row_for(op[0] ? op : "(unreadable)");
        total++;
        if (rc == 0 || rc == 3) { r->ran++; r->passed++; passed++; r->prop += rc == 3; prop += rc == 3; }
        else if (rc == 1) {
            r->unsup++; unsup++; add_reason(r, why);
            if (getenv("DL_ONNX_SHOW") && strstr(names[k], getenv("DL_ONNX_SHOW"))) printf("    unsupported %s: %s\n", names[k], why);
        }
        else { r->failed++; failed++; add_reason(r, why); printf("    FAILED %s: %s\n", names[k], why); }
        CHECK(rc != 2, "%s: %s", names[k], why);
        free(names[k]);
    }
    free(names);
    qsort(rows, (size_t)n_rows, sizeof rows[0], cmp_rows);
    printf("    %-28s %5s %6s %5s %6s  %s\n", "op", "cases", "passed", "unsup", "failed", "why");
    for (k = 0; k < n_rows; k++)
        if (rows[k].passed || rows[k].failed || getenv("DL_ONNX_VERBOSE"))
            printf("    %-28s %5d %6d %5d %6d  %.90s\n", rows[k].op, rows[k].ran + rows[k].unsup + rows[k].failed,
                   rows[k].passed, rows[k].unsup, rows[k].failed, rows[k].reasons);
    cov_total = total; cov_passed = passed; cov_unsup = unsup; cov_prop = prop;
    {   /* the ops: all their float32 cases pass (Dropout's 4 in training mode by
           property, check_dropout) but these, refused for the reasons docs/ONNX_COVERAGE.md
           gives (an input that is not float32; a 0-element tensor); a case that stops
           passing fails here */
        static const struct { const char *op; int unsup; } pin[] = {
            { "Conv", 0 }, { "ConvTranspose", 0 }, { "BatchNormalization", 0 }, { "Relu", 0 }, { "LeakyRelu", 0 },
            { "PRelu", 0 }, { "Elu", 0 }, { "Selu", 0 }, { "Sigmoid", 0 }, { "Tanh", 0 }, { "HardSigmoid", 0 },
            { "HardSwish", 0 }, { "Clip", 3 }, { "Softmax", 0 }, { "LogSoftmax", 0 }, { "MaxPool", 1 }, { "AveragePool", 0 },
            { "GlobalAveragePool", 0 }, { "GlobalMaxPool", 0 }, { "Gemm", 0 }, { "MatMul", 0 }, { "Add", 1 }, { "Sub", 1 },
            { "Mul", 1 }, { "Div", 1 }, { "Sum", 0 }, { "Mean", 0 }, { "Concat", 0 }, { "Flatten", 0 }, { "Reshape", 1 },
            { "Transpose", 0 }, { "Pad", 2 }, { "Resize", 0 }, { "Upsample", 0 }, { "Dropout", 0 }, { "Identity", 2 },
            { "Constant", 0 }, { "Shape", 0 }, { "Gather", 0 }, { "Unsqueeze", 0 }, { "Expand", 0 }, { "Sqrt", 0 } };
        size_t j;
        for (j = 0; j < sizeof pin / sizeof pin[0]; j++) {
            op_row *r = row_for(pin[j].op);
            CHECK(r->unsup <= pin[j].unsup && r->passed + r->unsup > 0, "%s: %d passed, %d unsupported (at most %d expected)", pin[j].op, r->passed,
                  r->unsup, pin[j].unsup);
        }
    }
    printf("    node tests: %d cases, %d passed (%d by property check: random op), %d unsupported, %d failed (%d ops; rows with nothing "
           "run are in docs/ONNX_COVERAGE.md)\n", total, passed, prop, unsup, failed, n_rows);
}

/* ---- 2. round trips with PyTorch (tests/gen_onnx.py) ---- */
static void test_pytorch_fixtures(void) {
    {   /* batchnorm's saved_var before opset 14: the variance or its inverse square root (ONNX Runtime), ONNX does not
           say, so reading it is refused (bn_train_op12, the same model but for that graph output, imports below; the
           message is the first try's, as the fixed-batch retry failed too) */
        dl_status st;
        dl_net *net = dl_onnx_load("tests/fixtures/onnx/bn_train_saved_var_op12.onnx", &st);
        CHECK(!net && st.code == DL_ERR_UNSUPPORTED, "saved_var read: %s", net ? "imported" : st.msg);
        dl_net_free(net);
    }
    /* blocks: exported with local functions; mobile: clip, hard-sigmoid,
       hard-swish, broadcasting; unet: transposed convolution and resize */
    static const struct { const char *name; int opset[2], may_refuse; } models[] = {
        { "ref_cnn", { 13, 17 }, 0 }, { "residual", { 13, 17 }, 0 }, { "mlp", { 13, 17 }, 0 },
        { "mixed", { 13, 17 }, 0 }, { "blocks", { 15, 17 }, 0 },
        { "mobile", { 13, 17 }, 0 }, { "unet", { 13, 17 }, 0 }, { "logsoftmax_mlp", { 13, 17 }, 0 },
        { "bn_train", { 12, 15 }, 0 } };     /* batchnorm in training mode, before and after opset 14 (fixed batch) */
    int m, o;
    for (m = 0; m < (int)(sizeof models / sizeof models[0]); m++)
        for (o = 0; o < 2; o++) {
            char path[256], why[256] = "";
            dl__ox_t x, y;
            dl__str out;
            dl_status st;
            dl_net *net;
            double err = -1;
            memset(&x, 0, sizeof x); memset(&y, 0, sizeof y);
            snprintf(path, sizeof path, "tests/fixtures/onnx/%s.in.pb", models[m].name);
            CHECK(read_tensor(path, &x, NULL) == 0, "%s unreadable", path);
            snprintf(path, sizeof path, "tests/fixtures/onnx/%s.out.pb", models[m].name);
            CHECK(read_tensor(path, &y, NULL) == 0, "%s unreadable", path);
            snprintf(path, sizeof path, "tests/fixtures/onnx/%s_op%d.onnx", models[m].name, models[m].opset[o]);
            net = dl_onnx_load(path, &st);
            if (!net && models[m].may_refuse && st.code == DL_ERR_UNSUPPORTED)
                printf("    %-20s opset %d: unsupported: %.150s\n", models[m].name, models[m].opset[o], st.msg);
            else CHECK(net != NULL, "%s: %s", path, st.msg);
            if (net && x.f && y.f) {
                out.p = "y"; out.n = 1;
                CHECK(compare_outputs(net, &x, &out, &y, 1, 1e-4, 0, &err, why, sizeof why) == 0, "%s: %s", path, why);
                printf("    %-20s opset %d: %d layers, max |error| %.2e\n", models[m].name, models[m].opset[o], dl_net_layer_count(net), err);
            }
            dl_net_free(net);
            dl__ox_t_free(&x); dl__ox_t_free(&y);
        }
}

/* An imported net is an ordinary net: freeze it, put a new classifier on
   its features, train that, save it in dl.h's format and load it back. */
static void test_fine_tune(void) {
    dl_status st;
    dl_net *net = dl_onnx_load("tests/fixtures/onnx/ref_cnn_op13.onnx", &st), *again;
    dl_layer *feat, *head;
    dl_optim *opt;
    static float x[8 * 784];
    int labels[8], i, k;
    float first = 0, loss = 0;
    const float *p, *q;
    CHECK(net != NULL, "%s", st.msg);
    if (!net) return;
    feat = dl_onnx_output(net, "/Flatten_output_0");
    CHECK(feat != NULL && dl_layer_size(feat) == 64 * 7 * 7, "the flattened features by their ONNX name");
    if (!feat) { dl_net_free(net); return; }
    for (i = 0; i < dl_net_param_count(net); i++) dl_net_param(net, i)->frozen = 1;
    head = dl_dense(feat, 3);
    opt = dl_adam(net, 1e-2f);
    for (i = 0; i < 8 * 784; i++) x[i] = (float)((i * 2654435761u) >> 24) / 255.0f;
    for (i = 0; i < 8; i++) labels[i] = i % 3;
    for (k = 0; k < 20; k++) {
        CHECK(dl_train_step(net, opt, head, x, labels, 8, &loss) == DL_OK, "step %d: %s", k, dl_net_error(net));
        if (!k) first = loss;
    }
    CHECK(loss < 0.5f * first, "the new head learns: loss %g -> %g", first, loss);
    CHECK(dl_net_save(net, "build/onnx_finetuned.dl") == DL_OK, "save: %s", dl_net_error(net));
    again = dl_net_load("build/onnx_finetuned.dl", &st);
    CHECK(again != NULL, "load: %s", st.msg);
    if (again) {
        p = dl_predict(net, head, x, 8);
        q = dl_predict(again, dl_net_find(again, dl_layer_name(head)), x, 8);
        CHECK(p && q && !memcmp(p, q, 8 * 3 * sizeof(float)), "the reloaded net predicts the same");
        dl_net_free(again);
    }
    dl_net_free(net);
}

/* ---- 3. export: nets built here, out to ONNX and back ---- */
static dl_layer *ref_cnn(dl_net *net) {     /* the README's reference CNN */
    dl_layer *h = dl_input(net, 1, 28, 28);
    h = dl_maxpool2d(dl_prelu(dl_batchnorm(dl_conv2d(h, 32, 3, 1, 1))), 2, 2);
    h = dl_maxpool2d(dl_prelu(dl_batchnorm(dl_conv2d(h, 64, 3, 1, 1))), 2, 2);
    return dl_softmax(dl_dense(dl_flatten(h), 10));
}
/* Every parameter and statistic set to a deterministic non-trivial value. */
static void scramble(dl_net *net) {
    int i, j;
    uint32_t s = 12345;
    for (i = 0; i < dl_net_param_count(net); i++) {
        dl_param *p = dl_net_param(net, i);
        int var = strstr(p->name, "running_var") != NULL;
        for (j = 0; j < p->size; j++) {
            float u;
            s = s * 1664525u + 1013904223u;
            u = (float)(s >> 8) / 16777216.0f;
            p->data[j] = var ? 0.5f + u : (u - 0.5f) * (p->trainable ? 0.6f : 0.2f);
        }
    }
}
static void write_floats(const char *path, const float *f, size_t n) {
    FILE *fp = fopen(path, "wb");
    if (!fp) return;
    fwrite(f, sizeof(float), n, fp);
    fclose(fp);
}

/* flags: EXPORT_KEEP keeps the parameters (else scrambled), EXPORT_ONLY
   skips loading the file back (for layers only ONNX Runtime reads back);
   xin: 3 inputs, or NULL for a fixed pattern */
enum { EXPORT_KEEP = 1, EXPORT_ONLY = 2 };
static void export_one(const char *name, dl_net *net, dl_layer *out, int flags, const float *xin) {
    static float x[3 * 4096];
    float *y;
    void *data = NULL;
    size_t len = 0, i, ny;
    dl_status st;
    dl_net *back;
    dl_layer *in = dl_net_layer(net, 0), *out2;
    const float *p;
    double maxerr = 0;
    int k, n_missing = 0, rc;
    CHECK(out != NULL && dl_layer_size(in) <= 4096, "%s: built (%s)", name, dl_net_error(net));
    if (!out) return;
    if (!(flags & EXPORT_KEEP)) scramble(net);
    for (i = 0; i < (size_t)3 * dl_layer_size(in); i++) x[i] = xin ? xin[i] : (float)sin(0.37 * (double)i) * 1.5f;
    ny = (size_t)3 * dl_layer_size(out);
    y = (float *)malloc(ny * sizeof(float));
    p = dl_predict(net, out, x, 3);
    CHECK(p != NULL, "%s: %s", name, dl_net_error(net));
    if (!p || !y) { free(y); return; }
    memcpy(y, p, ny * sizeof(float));
    rc = dl_onnx_save_mem(net, &out, 1, &data, &len);
    CHECK(rc == DL_OK, "%s: save: %s", name, dl_net_error(net));
    if (rc) { free(y); return; }
    back = flags & EXPORT_ONLY ? NULL : dl_onnx_load_mem(data, len, &st);
    CHECK(back != NULL || (flags & EXPORT_ONLY), "%s: load: %s", name, st.msg);
    if (back) {
        out2 = dl_onnx_output(back, dl_layer_name(out));
        CHECK(out2 != NULL, "%s: no layer '%s' after the round trip", name, dl_layer_name(out));
        p = out2 ? dl_predict(back, out2, x, 3) : NULL;
        CHECK(p != NULL, "%s: %s", name, dl_net_error(back));
        for (i = 0; p && i < ny; i++) {
            double e = fabs((double)p[i] - y[i]);
            if (e > maxerr) maxerr = e;
            CHECK(test_close(p[i], y[i], 1e-6, 1e-5), "%s[%lu]: %g after the round trip, %g before", name, (unsigned long)i, p[i], y[i]);
        }
        {   /* names of the exported layers (out's ancestors) round-trip, but an importer's helper "~k" gets a hash */
            char *need = (char *)calloc((size_t)dl_net_layer_count(net), 1);
            for (k = dl_net_layer_count(net) - 1; k >= 0 && need; k--) {
                dl_layer *l = dl_net_layer(net, k);
                const char *nm = dl_layer_name(l);
                int j;
                if (l != out && !need[k]) continue;
                for (j = 0; j < l->n_in; j++) need[l->in[j]->index] = 1;
                if (nm[0] != '~' && !dl_net_find(back, nm)) n_missing++;
            }
            free(need);
        }
        CHECK(n_missing == 0, "%s: %d layer names lost", name, n_missing);
        {   /* an imported net trains like any other */
            dl_optim *opt = dl_sgd(back, 0.01f, 0.9f);
            float loss;
            CHECK(opt && dl_train_step_mse(back, opt, out2, x, y, 3, &loss) == DL_OK, "%s: training the import: %s", name, dl_net_error(back));
        }
        printf("    %-10s %2d layers -> %6lu bytes of ONNX -> %2d layers, max |error| %.1e\n", name, dl_net_layer_count(net),
               (unsigned long)len, dl_net_layer_count(back), maxerr);
        dl_net_free(back);
    }
    {   /* for tests/onnx_ort.js and gen_onnx.py --check */
        char path[256];
        FILE *f;
        int shp[3], nd = dl_layer_shape(in, shp);
        mkdir("build", 0777); mkdir("build/onnx_export", 0777);
        snprintf(path, sizeof path, "build/onnx_export/%s.onnx", name);
        if ((f = fopen(path, "wb"))) { fwrite(data, 1, len, f); fclose(f); }
        snprintf(path, sizeof path, "build/onnx_export/%s.in.f32", name);
        write_floats(path, x, (size_t)3 * dl_layer_size(in));
        snprintf(path, sizeof path, "build/onnx_export/%s.out.f32", name);
        write_floats(path, y, ny);
        snprintf(path, sizeof path, "build/onnx_export/%s.json", name);
        if ((f = fopen(path, "w"))) {
            fprintf(f, "{\"input\": \"%s\", \"output\": \"%s\", \"shape\": [3", dl_layer_name(in), dl_layer_name(out));
            for (k = 0; k < nd; k++) fprintf(f, ", %d", shp[k]);
            fprintf(f, "]}\n");
            fclose(f);
        }
    }
    DL_FREE(data);
    free(y);
}

static int square_fwd(const dl_custom_args *a) { int i; for (i = 0; i < a->n * a->out_size; i++) a->out[i] = a->in[0][i] * a->in[0][i]; return 0; }

/* issue 11's layers and geometry: asymmetric pads, ceil_mode, exclude_pad,
   activations, constants, transposed convolution, pad, transpose, upsample, slice */
static dl_layer *layers11(dl_net *net) {
    static const float c2[2] = { 0.5f, -1.0f }, c1 = 1.75f;
    int two11[3] = { 2, 1, 1 }, one = 1, perm[3] = { 0, 2, 1 };
    dl_conv_desc cd;
    dl_pool_desc pd;
    dl_pad_desc pad;
    dl_upsample_desc ud;
    dl_layer *x = dl_input(net, 4, 8, 8), *h;
    memset(&cd, 0, sizeof cd);
    cd.filters = 6; cd.kernel = 2; cd.pad_top = 1; cd.pad_right = 1;
    h = dl_conv2d_ex(x, &cd);
    h = dl_sqrt(dl_softplus(dl_selu(dl_hard_swish(dl_clip(h, 0, 6)))));
    memset(&pd, 0, sizeof pd);
    pd.kernel = 2; pd.stride = 2; pd.pad_top = pd.pad_left = 1; pd.ceil_mode = 1;
    h = dl_maxpool2d_ex(h, &pd);
    memset(&pd, 0, sizeof pd);
    pd.kernel = 3; pd.stride = 1; pd.pad = 1; pd.exclude_pad = 1;
    h = dl_avgpool2d_ex(h, &pd);
    memset(&cd, 0, sizeof cd);
    cd.filters = 4; cd.kernel = 3; cd.stride = 2; cd.pad = 1; cd.output_padding = 1;
    h = dl_conv2d_transpose_ex(h, &cd);
    memset(&ud, 0, sizeof ud);
    ud.scale_h = 1; ud.scale_w = 2; ud.bilinear = 1; ud.align_corners = 1;
    h = dl_upsample_ex(h, &ud);
    h = dl_upsample(h, 2, 0);
    memset(&pad, 0, sizeof pad);
    pad.top = 1; pad.right = 2; pad.mode = DL_PAD_REFLECT;
    h = dl_pad_ex(h, &pad);
    h = dl_slice_channels(dl_transpose(h, perm), 1, 3);
    h = dl_sub(h, dl_constant(net, 3, two11, c2));
    h = dl_div(h, dl_constant(net, 1, &one, &c1));
    return dl_log_softmax(dl_hard_sigmoid(h, 0.25f, 0.4f));
}

/* the layers the importer does not map back (GELU, SiLU, reduce) and global max pooling */
static dl_layer *layers_export_only(dl_net *net) {
    int ax2 = 2, ax0 = 0, c1[2] = { 4, 1 };
    dl_layer *x = dl_input(net, 4, 6, 6), *h, *r, *g;
    h = dl_silu(dl_gelu(dl_gelu(x, 0), 1));
    r = dl_reduce_mean(h, &ax2, 1, 0);                  /* (4, 6) */
    g = dl_reshape(dl_global_maxpool(h), 2, c1);        /* (4, 1) */
    return dl_reduce_sum(dl_add(r, g), &ax0, 1, 1);     /* (1, 6) */
}

/* A Concat of a layer with a constant (exported expanded to the batch:
   ONNX Runtime's Concat does not broadcast a [1, ..] initializer), and a
   constant fed by the input (dl_constant_for) added on */
static dl_layer *concat_const(dl_net *net) {
    static const float c3[3] = { 0.5f, -1.25f, 2 }, c9[9] = { 1, 2, 3, 4, 5, 6, 7, 8, 9 };
    int three = 3, nine = 9;
    dl_layer *x = dl_input(net, 4, 0, 0), *c, *xs[2];
    xs[0] = dl_dense(x, 6);
    xs[1] = dl_constant(net, 1, &three, c3);
    dl_layer_set_name(xs[1], "k");
    c = dl_constant_for(x, 1, &nine, c9);
    dl_layer_set_name(c, "kfor");
    return dl_add(dl_concat(xs, 2), c);
}

static void test_export(void) {
    int g, k, rows_ok = 1;
    for (k = 0; k < DL_OP_COUNT; k++) rows_ok &= dl__ox_exports[k].op == k && dl__ox_exports[k].fn != NULL;
    CHECK(rows_ok, "dl__ox_exports[k] is op k's row");
    dl_net *net = dl_net_new();
    export_one("ref_cnn", net, ref_cnn(net), 0, NULL);
    dl_net_free(net);
    net = dl_net_new();
    export_one("layers11", net, layers11(net), 0, NULL);
    dl_net_free(net);
    net = dl_net_new();
    export_one("layers_export_only", net, layers_export_only(net), EXPORT_ONLY, NULL);
    dl_net_free(net);
    net = dl_net_new();
    export_one("concat_const", net, concat_const(net), 0, NULL);
    dl_net_free(net);
    for (g = 0; g < 4; g++) {       /* between them every op a net can hold (fuzz_dl.h) */
        char name[32];
        net = dl_net_new();
        snprintf(name, sizeof name, "graph%d", g);
        export_one(name, net, fuzz_dl_graph(net, g), 0, NULL);
        dl_net_free(net);
    }
    {   /* PyTorch's export, imported, exported again (ONNX Runtime checks it too) */
        static const char *const torch[4][2] = { { "torch_ref_cnn", "ref_cnn_op17" }, { "torch_mixed", "mixed_op13" },
                                                  { "torch_mobile", "mobile_op13" }, { "torch_unet", "unet_op17" } };
        dl_status st;
        char path[128];
        for (g = 0; g < 4; g++) {
            snprintf(path, sizeof path, "tests/fixtures/onnx/%s.onnx", torch[g][1]);
            net = dl_onnx_load(path, &st);
            CHECK(net != NULL, "%s", st.msg);
            if (net) export_one(torch[g][0], net, dl_onnx_output(net, "y"), EXPORT_KEEP, NULL);
            dl_net_free(net);
        }
    }
    {   /* a custom layer has no ONNX form: a clear error */
        dl_custom_desc cd;
        dl_layer *x, *c;
        void *data = (void *)1;
        size_t len = 1;
        memset(&cd, 0, sizeof cd);
        cd.name = "square"; cd.ndim = 1; cd.shape[0] = 4; cd.forward = square_fwd;
        net = dl_net_new();
        x = dl_input(net, 4, 0, 0);
        c = dl_custom(&x, 1, &cd);
        CHECK(dl_onnx_save_mem(net, &c, 1, &data, &len) == DL_ERR_UNSUPPORTED && !data && !len, "custom layer exported");
        CHECK(strstr(dl_net_error(net), "square") != NULL, "message: %s", dl_net_error(net));
        CHECK(dl_onnx_save_mem(net, NULL, 1, &data, &len) == DL_ERR_ARG, "NULL outputs");
        dl_net_free(net);
    }
    for (g = 0; g < 2; g++) {   /* maxpool2d_argmax: MaxPool's Indices (int64, flat over the batch) Cast to float, and
                                   Mod H W for indices in the plane (no import maps Mod back: ONNX Runtime checks it) */
        dl_pool_desc pd;
        dl_conv_desc cd;
        memset(&pd, 0, sizeof pd);
        memset(&cd, 0, sizeof cd);
        pd.kernel = 3; pd.stride = 2; pd.pad_top = 1; pd.pad_right = 1; pd.dilation_w = 2; pd.ceil_mode = 1;
        cd.filters = 3; cd.kernel = 1;
        net = dl_net_new();
        export_one(g ? "argmax_plane" : "argmax_flat", net,
                   dl_maxpool2d_argmax(dl_conv2d_ex(dl_input(net, 2, 7, 9), &cd), &pd, g ? DL_ARGMAX_COLUMN_MAJOR : DL_ARGMAX_FLAT),
                   g ? EXPORT_ONLY : 0, NULL);
        dl_net_free(net);
    }
}

/* PyTorch trained the reference CNN one epoch on the shipped Fashion-MNIST
   subset (tests/gen_onnx.py --fashion). Imported, it must score PyTorch's
   test accuracy; then its layers are frozen, a new classifier on its
   features is trained one epoch here, and the net goes back out through
   dl_onnx_save for ONNX Runtime (build/onnx_export/fashion_head, checked by
   tests/onnx_ort.js: within 1e-5 relative of dl_predict). */
static int accuracy_of(dl_net *net, dl_layer *out, const idx_set *s, float *x, double *acc) {
    int i, k, j, right = 0;
    for (i = 0; i < s->count; i += 100) {
        int n = s->count - i < 100 ? s->count - i : 100;
        const float *p;
        for (k = 0; k < n * 784; k++) x[k] = s->pixels[(size_t)i * 784 + (size_t)k] / 255.0f;
        if (!(p = dl_predict(net, out, x, n))) return -1;
        for (k = 0; k < n; k++) {
            int best = 0;
            for (j = 1; j < 10; j++) if (p[k * 10 + j] > p[k * 10 + best]) best = j;
            right += best == s->labels[i + k];
        }
    }
    *acc = (double)right / s->count;
    return 0;
}
/* One epoch of batches of 50 in the files' order; 1 when every step succeeded. */
static int train_epoch(dl_net *net, dl_optim *opt, dl_layer *out, const idx_set *s, float *x) {
    int labels[50], i, k;
    float loss;
    for (i = 0; i + 50 <= s->count; i += 50) {
        for (k = 0; k < 50 * 784; k++) x[k] = s->pixels[(size_t)i * 784 + (size_t)k] / 255.0f;
        for (k = 0; k < 50; k++) labels[k] = s->labels[i + k];
        if (dl_train_step(net, opt, out, x, labels, 50, &loss) != DL_OK) return 0;
    }
    return 1;
}

static void test_fashion_fine_tune(void) {
    static float x[100 * 784];
    int i, k, ok;
    idx_paths ip;
    idx_set train, test;
    char err[512];
    double torch_acc = -1, imported = -1, before = -1, after = -1;
    dl_status st;
    dl_net *net = dl_onnx_load("tests/fixtures/onnx/ref_cnn_fashion_op13.onnx", &st);
    dl_layer *feat, *head;
    dl_optim *opt;
    FILE *f = fopen("tests/fixtures/onnx/ref_cnn_fashion.acc", "r");
    CHECK(f && fscanf(f, "%lf", &torch_acc) == 1, "tests/fixtures/onnx/ref_cnn_fashion.acc unreadable");
    if (f) fclose(f);
    CHECK(net != NULL, "%s", st.msg);
    memset(&train, 0, sizeof train); memset(&test, 0, sizeof test);
    ok = idx_find("examples/data/fashion-mnist-subset", &ip, err, sizeof err) == 0 &&
            idx_load_pair(ip.train_images, ip.train_labels, &train, err, sizeof err) == 0 &&
            idx_load_pair(ip.test_images, ip.test_labels, &test, err, sizeof err) == 0;
    CHECK(ok, "the Fashion-MNIST subset: %s", err);
    if (!net || !ok) { dl_net_free(net); idx_free(&train); idx_free(&test); return; }
    CHECK(accuracy_of(net, dl_onnx_output(net, "y"), &test, x, &imported) == 0, "%s", dl_net_error(net));
    CHECK(fabs(imported - torch_acc) < 0.0025, "imported: test accuracy %.4f, PyTorch's %.4f", imported, torch_acc);
    feat = dl_onnx_output(net, "/Flatten_output_0");
    CHECK(feat != NULL, "the flattened features by their ONNX name");
    for (i = 0; i < dl_net_param_count(net); i++) dl_net_param(net, i)->frozen = 1;
    head = dl_dense(feat, 10);
    dl_layer_set_name(head, "fashion_head");
    opt = dl_adam(net, 1e-3f);
    CHECK(head && opt && accuracy_of(net, head, &test, x, &before) == 0, "%s", dl_net_error(net));
    CHECK(head && train_epoch(net, opt, head, &train, x), "training: %s", dl_net_error(net));
    CHECK(head && accuracy_of(net, head, &test, x, &after) == 0, "%s", dl_net_error(net));
    CHECK(after > before + 0.3 && after > 0.7, "new classifier: test accuracy %.4f -> %.4f after one epoch", before, after);
    printf("    PyTorch %.4f, imported %.4f; frozen, new classifier %.4f -> %.4f after one epoch here\n",
           torch_acc, imported, before, after);
    for (k = 0; k < 3 * 784; k++) x[k] = test.pixels[k] / 255.0f;
    if (head) export_one("fashion_head", net, head, EXPORT_KEEP, x);
    dl_net_free(net);

    /* The whole imported net trained one more epoch here: accuracy rises past
       PyTorch's, and ONNX Runtime runs the re-exported net (test_onnx_ort.sh). */
    net = dl_onnx_load("tests/fixtures/onnx/ref_cnn_fashion_op13.onnx", &st);
    CHECK(net != NULL, "%s", st.msg);
    head = net ? dl_onnx_output(net, "y") : NULL;
    opt = head ? dl_adam(net, 2e-4f) : NULL;
    CHECK(opt != NULL, "%s", net ? dl_net_error(net) : st.msg);
    CHECK(opt && train_epoch(net, opt, head, &train, x), "training: %s", net ? dl_net_error(net) : "");
    after = -1;
    CHECK(opt && accuracy_of(net, head, &test, x, &after) == 0 && after > imported,
          "whole net: test accuracy %.4f -> %.4f after one more epoch", imported, after);
    printf("    whole imported net trained one more epoch here: %.4f -> %.4f\n", imported, after);
    for (k = 0; k < 3 * 784; k++) x[k] = test.pixels[k] / 255.0f;
    if (opt) export_one("fashion_tuned", net, head, EXPORT_KEEP, x);
    dl_net_free(net);
    idx_free(&train); idx_free(&test);
}

/* ---- 4. bad input ---- */
/* A graph input or output [N, c] named name. */
static void mk_valinfo(dl__wbuf *g, uint32_t field, const char *name, int c) {
    dl__wbuf vi, tp, tt, sh, dim;
    memset(&vi, 0, sizeof vi); memset(&tp, 0, sizeof tp); memset(&tt, 0, sizeof tt);
    memset(&sh, 0, sizeof sh); memset(&dim, 0, sizeof dim);
    dl__pw_str(&dim, 2, "N"); dl__pw_msg(&sh, 1, &dim);
    dl__pw_int(&dim, 1, c); dl__pw_msg(&sh, 1, &dim);
    dl__pw_int(&tt, 1, DL__OX_FLOAT); dl__pw_msg(&tt, 2, &sh);
    dl__pw_msg(&tp, 1, &tt);
    dl__pw_str(&vi, 1, name); dl__pw_msg(&vi, 2, &tp);
    dl__pw_msg(g, field, &vi);
}
static void mk_node(dl__wbuf *g, const char *op, const char *in0, const char *in1, const char *out) {
    dl__wbuf node;
    const char *in[3];
    in[0] = in0; in[1] = in1; in[2] = NULL;
    dl__pw_node(&node, op, out, out, in);
    dl__pw_msg(g, 1, &node);
}
/* The model around graph g (freed): IR 7, opset 13. */
static void mk_model(dl__wbuf *m, dl__wbuf *g) {
    dl__wbuf op;
    memset(m, 0, sizeof *m); memset(&op, 0, sizeof op);
    dl__pw_int(m, 1, 7);
    dl__pw_msg(m, 7, g);
    dl__pw_str(&op, 1, ""); dl__pw_int(&op, 2, 13);
    dl__pw_msg(m, 8, &op);
}
static int load_code(const dl__wbuf *m, char *msg) {
    dl_status st;
    dl_net *net = dl_onnx_load_mem(m->p, m->len, &st);
    dl_net_free(net);
    if (msg) snprintf(msg, 256, "%s", st.msg);
    return net ? DL_OK : st.code;
}

static void test_bad_input(void) {
    dl__wbuf g, m;
    char msg[256];
    int rc;
    size_t cut;
    static const unsigned char past_end[] = { 0x08, 0x07, 0x3a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x0a, 0x00 };
    static const unsigned char long_varint[] = { 0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01 };
    dl_status st;
    {   /* a working model first: x -> Relu -> y */
        memset(&g, 0, sizeof g);
        mk_valinfo(&g, 11, "x", 4); mk_node(&g, "Relu", "x", NULL, "y"); mk_valinfo(&g, 12, "y", 4);
        mk_model(&m, &g);
        CHECK(load_code(&m, msg) == DL_OK, "relu model: %s", msg);
        for (cut = 0; cut < m.len; cut++) {     /* every truncation: an error or a net, never a crash */
            dl_net *net = dl_onnx_load_mem(m.p, cut, &st);
            CHECK(net || (st.code != DL_OK && st.msg[0]), "cut at %lu: no net and no message", (unsigned long)cut);
            dl_net_free(net);
        }
        free(m.p);
    }
    CHECK(dl_onnx_load_mem(past_end, sizeof past_end, &st) == NULL && st.code == DL_ERR_FORMAT, "length past the end: %s", st.msg);
    CHECK(dl_onnx_load_mem(long_varint, sizeof long_varint, &st) == NULL && st.code == DL_ERR_FORMAT, "11-byte varint: %s", st.msg);
    CHECK(dl_onnx_load_mem(NULL, 0, &st) == NULL && st.code == DL_ERR_ARG, "NULL data");
    CHECK(dl_onnx_load_mem("", 0, &st) == NULL && st.code == DL_ERR_FORMAT, "empty: %s", st.msg);
    {   /* huge dims with 4 bytes of data: refused before any allocation */
        static const int64_t dims[2][2] = { { (int64_t)1 << 40, (int64_t)1 << 40 }, { 1000000, 1000 } };
        int k;
        for (k = 0; k < 2; k++) {
            dl__wbuf t;
            float one = 1;
            memset(&g, 0, sizeof g); memset(&t, 0, sizeof t);
            dl__pw_int(&t, 1, dims[k][0]); dl__pw_int(&t, 1, dims[k][1]); dl__pw_int(&t, 2, DL__OX_FLOAT);
            dl__pw_str(&t, 8, "w"); dl__pw_bytes(&t, 9, &one, 4);
            dl__pw_msg(&g, 5, &t);
            mk_valinfo(&g, 11, "x", 4); mk_node(&g, "MatMul", "x", "w", "y"); mk_valinfo(&g, 12, "y", 4);
            mk_model(&m, &g);
            CHECK(load_code(&m, msg) == DL_ERR_FORMAT, "huge dims %d: %s", k, msg);
            free(m.p);
        }
    }
    {   /* a cycle: a = Relu(b), b = Relu(a) */
        memset(&g, 0, sizeof g);
        mk_valinfo(&g, 11, "x", 4); mk_node(&g, "Relu", "b", NULL, "a"); mk_node(&g, "Relu", "a", NULL, "b");
        mk_valinfo(&g, 12, "a", 4);
        mk_model(&m, &g);
        CHECK(load_code(&m, msg) == DL_ERR_FORMAT && strstr(msg, "cyclic"), "cycle: %s", msg);
        free(m.p);
    }
    {   /* a self-loop, and an output nothing makes */
        memset(&g, 0, sizeof g);
        mk_valinfo(&g, 11, "x", 4); mk_node(&g, "Relu", "a", NULL, "a"); mk_valinfo(&g, 12, "a", 4);
        mk_model(&m, &g);
        CHECK(load_code(&m, msg) == DL_ERR_FORMAT, "self-loop: %s", msg);
        free(m.p);
        memset(&g, 0, sizeof g);
        mk_valinfo(&g, 11, "x", 4); mk_node(&g, "Relu", "x", NULL, "a"); mk_valinfo(&g, 12, "zz", 4);
        mk_model(&m, &g);
        CHECK(load_code(&m, msg) == DL_ERR_FORMAT, "missing output: %s", msg);
        free(m.p);
    }
    {   /* every unsupported node listed at once, with its name */
        memset(&g, 0, sizeof g);
        mk_valinfo(&g, 11, "x", 4);
        mk_node(&g, "Foo", "x", NULL, "a"); mk_node(&g, "Relu", "a", NULL, "b"); mk_node(&g, "Bar", "b", NULL, "c");
        mk_node(&g, "Softmax", "x", NULL, "d"); mk_node(&g, "Gather", "x", "x", "e");
        mk_valinfo(&g, 12, "c", 4);
        mk_model(&m, &g);
        rc = load_code(&m, msg);
        CHECK(rc == DL_ERR_UNSUPPORTED && strstr(msg, "3 unsupported") && strstr(msg, "Foo 'a'") && strstr(msg, "Bar 'c'") &&
              strstr(msg, "Gather 'e'") && strstr(msg, "opset 13"), "unsupported list: %s", msg);
        free(m.p);
    }
    {   /* a Gemm whose C is computed, not an initializer: added, never read as "no bias" */
        dl__wbuf t, node;
        float w[16] = { 0 };
        const char *in[4];
        memset(&g, 0, sizeof g); memset(&t, 0, sizeof t);
        dl__pw_int(&t, 1, 4); dl__pw_int(&t, 1, 4); dl__pw_int(&t, 2, DL__OX_FLOAT); dl__pw_str(&t, 8, "w");
        dl__pw_bytes(&t, 9, w, sizeof w);
        dl__pw_msg(&g, 5, &t);
        mk_valinfo(&g, 11, "x", 4);
        in[0] = "x"; in[1] = "w"; in[2] = "x"; in[3] = NULL;
        dl__pw_node(&node, "Gemm", "y", "y", in);
        dl__pw_msg(&g, 1, &node);
        mk_valinfo(&g, 12, "y", 4);
        mk_model(&m, &g);
        {   /* w is 0: y = x w + x = x */
            dl_status st;
            dl_net *net = dl_onnx_load_mem(m.p, m.len, &st);
            static const float x[8] = { 1, -2, 3, 0.5f, 4, 5, -6, 7 };
            const float *y = net ? dl_predict(net, dl_onnx_output(net, "y"), x, 2) : NULL;
            CHECK(y && !memcmp(x, y, sizeof x), "computed C: %s", net ? dl_net_error(net) : st.msg);
            dl_net_free(net);
        }
        free(m.p);
    }
    {   /* a Shape as the output with a symbolic batch: not a constant at import */
        memset(&g, 0, sizeof g);
        mk_valinfo(&g, 11, "x", 4); mk_node(&g, "Shape", "x", NULL, "y"); mk_valinfo(&g, 12, "y", 4);
        mk_model(&m, &g);
        CHECK(load_code(&m, msg) == DL_ERR_UNSUPPORTED && strstr(msg, "batch of 1"), "Shape of [N, 4]: %s", msg);
        free(m.p);
    }
    {   /* Dropout: training_mode is dl.h's train argument (at ratio 0.5 nothing under dl_predict,
           about half under dl_forward(.., 1)); its mask outside training is all true, for any
           batch (a constant fed by x) */
        dl__wbuf node;
        const char *in[4];
        float half = 0.5f;
        int64_t on = 1, none = 0;
        memset(&g, 0, sizeof g);
        dl__pw_tensor(&g, 5, "r", 0, &none, &half, NULL);
        dl__pw_tensor(&g, 5, "t", 0, &none, NULL, &on);
        mk_valinfo(&g, 11, "x", 4);
        in[0] = "x"; in[1] = "r"; in[2] = "t"; in[3] = NULL;
        dl__pw_node(&node, "Dropout", "y", "y", in);
        dl__pw_msg(&g, 1, &node);
        mk_valinfo(&g, 12, "y", 4);
        mk_model(&m, &g);
        {
            static float x[4 * 64];
            dl_net *net = dl_onnx_load_mem(m.p, m.len, &st);
            dl_layer *y = net ? dl_onnx_output(net, "y") : NULL;
            const float *p;
            int k, same, dropped = 0;
            for (k = 0; k < 4 * 64; k++) x[k] = 1.0f + (float)k;
            p = y ? dl_predict(net, y, x, 64) : NULL;
            same = p != NULL;
            for (k = 0; p && k < 4 * 64; k++) same &= p[k] == x[k];
            CHECK(same, "training dropout under dl_predict: %s", net ? dl_net_error(net) : st.msg);
            p = y ? dl_forward(net, y, x, 64, 1) : NULL;
            for (k = 0; p && k < 4 * 64; k++) dropped += p[k] == 0;
            CHECK(p && dropped > 64 && dropped < 192, "training dropout under dl_forward(.., 1): %d of 256 dropped", dropped);
            dl_net_free(net);
        }
        free(m.p);
        memset(&g, 0, sizeof g);
        mk_valinfo(&g, 11, "x", 4);
        in[1] = NULL;
        dl__pw_node(&node, "Dropout", "y", "y", in);
        dl__pw_str(&node, 2, "z");          /* the second output: the mask */
        dl__pw_msg(&g, 1, &node);
        mk_valinfo(&g, 12, "y", 4); mk_valinfo(&g, 12, "z", 4);
        mk_model(&m, &g);
        {
            static const float x[8] = { 1, -2, 3, 0.5f, 4, 5, -6, 7 };
            dl_net *net = dl_onnx_load_mem(m.p, m.len, &st);
            const float *z = net ? dl_predict(net, dl_onnx_output(net, "z"), x, 2) : NULL;
            int k, ones = z != NULL;
            for (k = 0; z && k < 8; k++) ones &= z[k] == 1.0f;
            CHECK(ones, "dropout mask at batch 2: %s", net ? dl_net_error(net) : st.msg);
            dl_net_free(net);
        }
        free(m.p);
    }
    {   /* two graph inputs */
        memset(&g, 0, sizeof g);
        mk_valinfo(&g, 11, "x", 4); mk_valinfo(&g, 11, "x2", 4); mk_node(&g, "Add", "x", "x2", "y"); mk_valinfo(&g, 12, "y", 4);
        mk_model(&m, &g);
        CHECK(load_code(&m, msg) == DL_ERR_UNSUPPORTED, "two inputs: %s", msg);
        free(m.p);
    }
}

/* dl_constant_for: a constant that reads its input for the batch alone (an
   imported Shape output or dropout mask is one): it predicts, its input's
   gradient is zero, and it saves and loads in dl.h's format */
static void test_constant_for(void) {
    static const float v[3] = { 3, 4, 5 }, x[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
    int three = 3, four = 4, k, ok;
    void *data = NULL;
    size_t len = 0;
    dl_status st;
    dl_net *net = dl_net_new(), *back = NULL;
    dl_layer *in = dl_input(net, 4, 0, 0), *c = dl_constant_for(in, 1, &three, v), *c2;
    const float *y = dl_predict(net, c, x, 2);
    CHECK(y && !memcmp(y, v, sizeof v) && !memcmp(y + 3, v, sizeof v), "predict: %s", dl_net_error(net));
    CHECK(dl_constant_for(NULL, 1, &three, v) == NULL, "NULL input");
    CHECK(dl_constant_for(in, 4, &three, v) == NULL && strstr(dl_net_error(net), "1 to 3 dims"), "4 dims: %s", dl_net_error(net));
    c2 = dl_add(in, dl_constant_for(in, 1, &four, x));      /* d(in + c)/d(in) = 1: the constant adds nothing */
    dl_net_set_input_grad(net, 1);
    {
        float dy[8];
        const float *dx;
        for (k = 0; k < 8; k++) dy[k] = (float)k - 3;
        ok = dl_forward(net, c2, x, 2, 1) && dl_backward(net, c2, dy) == DL_OK && (dx = dl_layer_grad(in)) != NULL;
        CHECK(ok && !memcmp(dx, dy, sizeof dy), "input gradient: %s", dl_net_error(net));
    }
    CHECK(dl_net_save_mem(net, NULL, &data, &len) == DL_OK, "save: %s", dl_net_error(net));
    back = data ? dl_net_load_mem(data, len, &st) : NULL;
    CHECK(back != NULL, "load: %s", st.msg);
    y = back ? dl_predict(back, dl_net_find(back, dl_layer_name(c)), x, 2) : NULL;
    CHECK(y && !memcmp(y + 3, v, sizeof v), "predict after load: %s", back ? dl_net_error(back) : "");
    DL_FREE(data);
    dl_net_free(back);
    dl_net_free(net);
}

/* float16, double and external weights: a MatMul by a 4x2 matrix */
static void test_weights(void) {
    static const float w[8] = { 1.5f, -2, 0.25f, 3, -0.5f, 1, 2, -1 };
    static const unsigned short h[8] = { 0x3e00, 0xc000, 0x3400, 0x4200, 0xb800, 0x3c00, 0x4000, 0xbc00 };  /* w as halves */
    static const float x[4] = { 1, 2, 3, 4 };
    const float want[2] = { 1.5f + 0.5f - 1.5f + 8, -2 + 6 + 3 - 4 };
    int kind;
    for (kind = 0; kind < 5; kind++) {      /* half raw, half typed, double, external, external through ".." */
        dl__wbuf g, m, t;
        dl_status st;
        dl_net *net;
        char side[] = "build/onnx_side.bin";
        int k;
        memset(&g, 0, sizeof g); memset(&t, 0, sizeof t);
        dl__pw_int(&t, 1, 4); dl__pw_int(&t, 1, 2);
        dl__pw_int(&t, 2, kind == 0 || kind == 1 ? DL__OX_FLOAT16 : kind == 2 ? DL__OX_DOUBLE : DL__OX_FLOAT);
        dl__pw_str(&t, 8, "w");
        if (kind == 0) dl__pw_bytes(&t, 9, h, sizeof h);       /* little-endian host assumed by this test */
        else if (kind == 1) for (k = 0; k < 8; k++) dl__pw_int(&t, 5, h[k]);
        else if (kind == 2) { double dd[8]; for (k = 0; k < 8; k++) dd[k] = w[k]; dl__pw_bytes(&t, 9, dd, sizeof dd); }
        else {
            dl__wbuf e;
            FILE *f = fopen(side, "wb");
            if (f) { fwrite("pad.", 1, 4, f); fwrite(w, 4, 8, f); fclose(f); }
            memset(&e, 0, sizeof e); dl__pw_str(&e, 1, "location"); dl__pw_str(&e, 2, kind == 3 ? "onnx_side.bin" : "../build/onnx_side.bin"); dl__pw_msg(&t, 13, &e);
            memset(&e, 0, sizeof e); dl__pw_str(&e, 1, "offset"); dl__pw_str(&e, 2, "4"); dl__pw_msg(&t, 13, &e);
            dl__pw_int(&t, 14, 1);
        }
        dl__pw_msg(&g, 5, &t);
        mk_valinfo(&g, 11, "x", 4); mk_node(&g, "MatMul", "x", "w", "y"); mk_valinfo(&g, 12, "y", 2);
        mk_model(&m, &g);
        if (kind >= 3) {
            FILE *f = fopen("build/onnx_ext.onnx", "wb");
            if (f) { fwrite(m.p, 1, m.len, f); fclose(f); }
            net = dl_onnx_load_mem(m.p, m.len, &st);
            CHECK(!net && st.code == DL_ERR_UNSUPPORTED, "external data from memory: %s", st.msg);
            net = dl_onnx_load("build/onnx_ext.onnx", &st);
            if (kind == 4) CHECK(!net && st.code == DL_ERR_FORMAT && strstr(st.msg, "relative"), "path traversal: %s", st.msg);
        } else net = dl_onnx_load_mem(m.p, m.len, &st);
        if (kind < 4) {
            const float *y = net ? dl_predict(net, dl_onnx_output(net, "y"), x, 1) : NULL;
            CHECK(y && y[0] == want[0] && y[1] == want[1], "weights kind %d: %s", kind, net ? dl_net_error(net) : st.msg);
        }
        dl_net_free(net);
        free(m.p);
    }
}

/* Local functions: an attribute passed by reference (ref_attr_name), and a
   function that calls itself. */
static void test_functions(void) {
    int self;
    for (self = 0; self < 2; self++) {
        dl__wbuf g, m, fn, node, a, op;
        const char *in[2];
        dl_status st;
        dl_net *net;
        static const float x[4] = { -1, 2, -4, 8 };
        memset(&g, 0, sizeof g); memset(&fn, 0, sizeof fn); memset(&a, 0, sizeof a); memset(&op, 0, sizeof op);
        dl__pw_str(&fn, 1, "Leaky"); dl__pw_str(&fn, 10, "my");
        dl__pw_str(&fn, 4, "X"); dl__pw_str(&fn, 5, "Y"); dl__pw_str(&fn, 6, "a");
        in[0] = "X"; in[1] = NULL;
        dl__pw_node(&node, self ? "Leaky" : "LeakyRelu", "inner", "Y", in);
        if (self) dl__pw_str(&node, 7, "my");
        dl__pw_str(&a, 1, "alpha"); dl__pw_str(&a, 21, "a"); dl__pw_int(&a, 20, 1);
        dl__pw_msg(&node, 5, &a);
        dl__pw_msg(&fn, 7, &node);
        dl__pw_str(&op, 1, ""); dl__pw_int(&op, 2, 13);
        dl__pw_msg(&fn, 9, &op);
        mk_valinfo(&g, 11, "x", 4);
        in[0] = "x";
        dl__pw_node(&node, "Leaky", "call", "y", in);
        dl__pw_str(&node, 7, "my");
        dl__pw_attr_float(&node, "a", 0.25f);
        dl__pw_msg(&g, 1, &node);
        mk_valinfo(&g, 12, "y", 4);
        mk_model(&m, &g);
        dl__pw_msg(&m, 25, &fn);
        net = dl_onnx_load_mem(m.p, m.len, &st);
        if (!self) {
            const float *y = net ? dl_predict(net, dl_onnx_output(net, "y"), x, 1) : NULL;
            CHECK(y && y[0] == -0.25f && y[1] == 2 && y[2] == -1 && y[3] == 8, "inlined LeakyRelu(alpha = a): %s", st.msg);
        } else CHECK(!net && st.code == DL_ERR_UNSUPPORTED && strstr(st.msg, "16 deep"), "a function calling itself: %s", st.msg);
        dl_net_free(net);
        free(m.p);
    }
}

/* The fuzzing corpus, replayed in every build (sanitizers, valgrind). */
static void test_fuzz_corpus(void) {
    DIR *d = opendir("tests/fuzz/corpus_onnx");
    struct dirent *e;
    int n = 0;
    CHECK(d != NULL, "tests/fuzz/corpus_onnx missing");
    while (d && (e = readdir(d))) {
        char path[512];
        unsigned char *p;
        size_t len;
        int line;
        if (e->d_name[0] == '.') continue;
        snprintf(path, sizeof path, "tests/fuzz/corpus_onnx/%s", e->d_name);
        if (!(p = read_all(path, &len))) continue;
        line = fuzz_onnx_one(p, len);
        CHECK(line == 0, "%s: fuzz_onnx.h:%d", path, line);
        free(p);
        n++;
    }
    if (d) closedir(d);
    printf("    %d corpus files replayed\n", n);
}

int main(void) {
    (void)fuzz_dl_one;              /* only fuzz_dl_graph is used here */
    RUN(test_node_tests);
    RUN(test_other_suites);
    if (getenv("DL_ONNX_COVERAGE")) write_coverage(getenv("DL_ONNX_COVERAGE"), cov_total, cov_passed, cov_unsup, cov_prop);
    RUN(test_pytorch_fixtures);
    RUN(test_fine_tune);
    RUN(test_export);
    RUN(test_fashion_fine_tune);
    RUN(test_bad_input);
    RUN(test_constant_for);
    RUN(test_weights);
    RUN(test_functions);
    RUN(test_fuzz_corpus);
    return test_summary();
}
