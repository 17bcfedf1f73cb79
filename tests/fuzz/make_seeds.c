/* make_seeds.c - writes the seed corpora of the dl.h fuzz targets: a model
 * and a checkpoint of each graph in fuzz_dl.h, after two training steps.
 *
 *   cc -std=c99 -I. tests/fuzz/make_seeds.c -o build/make_seeds -lm -pthread && build/make_seeds
 *
 * Writes tests/fuzz/corpus_model/seed_*.dl and corpus_checkpoint/seed_*.dl
 * (the fuzzers' grown corpora sit beside them), and checks that each seed
 * passes the fuzzers' invariants. */
#define DL_IMPLEMENTATION
#include "../../dl.h"
#include "fuzz_dl.h"
#include <stdio.h>

int main(void) {
    static const char *const names[5] = { "mlp", "cnn", "graph", "windows", "layers" };
    static float x[4 * 256], t[4 * 16];
    int g, i, failed = 0;
    for (g = 0; g < 5; g++) {
        dl_net *net = dl_net_new();
        dl_layer *out = fuzz_dl_graph(net, g);
        dl_optim_desc d;
        dl_optim *opt;
        char path[256];
        memset(&d, 0, sizeof d);
        d.kind = g % 4;                             /* SGD, Adam, AdamW, RMSProp */
        d.lr = 0.01f; d.momentum = g == 0 || g == 3 ? 0.9f : 0; d.nesterov = g == 0;
        d.weight_decay = g == 0 ? 1e-4f : 0; d.clip_norm = g == 0 ? 1.0f : 0; d.centered = g == 3;
        opt = dl_optim_new(net, &d);
        if (!out || !opt) { fprintf(stderr, "%s: %s\n", names[g], dl_net_error(net)); return 1; }
        dl_net_set_threads(net, 1);
        if (g == 1) dl_net_find_param(net, "conv2d_1.bias")->frozen = 1;
        for (i = 0; i < (int)(sizeof x / sizeof x[0]); i++) x[i] = (float)((i * 37) % 11) / 11.0f - 0.5f;
        memset(t, 0, sizeof t);
        for (i = 0; i < 2; i++)
            if (dl_train_step_mse(net, opt, out, x, t, 4, NULL)) { fprintf(stderr, "%s: %s\n", names[g], dl_net_error(net)); return 1; }
        snprintf(path, sizeof path, "tests/fuzz/corpus_model/seed_%s.dl", names[g]);
        failed |= dl_net_save(net, path);
        snprintf(path, sizeof path, "tests/fuzz/corpus_checkpoint/seed_%s.dl", names[g]);
        failed |= dl_checkpoint_save(net, opt, path);
        if (failed) { fprintf(stderr, "%s: %s\n", names[g], dl_net_error(net)); return 1; }
        for (i = 0; i < 2; i++) {       /* each seed passes the fuzzers' checks */
            void *buf;
            size_t len;
            dl_net *into = dl_net_new();
            int line;
            fuzz_dl_graph(into, 0);
            if (dl_net_save_mem(net, i ? opt : NULL, &buf, &len)) return 1;
            if ((line = fuzz_dl_one((const unsigned char *)buf, len, i, into)) != 0) {
                fprintf(stderr, "%s: seed fails fuzz_dl.h:%d\n", names[g], line);
                return 1;
            }
            DL_FREE(buf);
            dl_net_free(into);
        }
        dl_net_free(net);
    }
    return 0;
}
