/* lib_check.c - a program built against the installed library, not the
 * header's implementation: tests/test_lib.sh compiles it with
 * `pkg-config --cflags --libs dlh` (shared, then static) and runs it. */
#include <dl.h>     /* the installed header: no DL_IMPLEMENTATION here */
#include <stdlib.h>
#include <string.h>
#include "test.h"

/* A tiny CNN on 1x6x6 inputs, 3 classes: the whole API path a program uses. */
static dl_net *make_net(dl_layer **logits, dl_layer **probs) {
    dl_net *net = dl_net_new();
    dl_layer *x = dl_input(net, 1, 6, 6);
    dl_layer *h = dl_maxpool2d(dl_relu(dl_conv2d(x, 4, 3, 1, 1)), 2, 2);
    *logits = dl_dense(dl_flatten(h), 3);
    *probs = dl_softmax(*logits);
    dl_net_seed(net, 7);
    return net;
}

/* Class c lights row c of the image: learnable in a few steps. */
static void make_data(float *x, int *y, int n) {
    int i, k;
    memset(x, 0, sizeof(float) * 36 * n);
    for (i = 0; i < n; i++) {
        y[i] = i % 3;
        for (k = 0; k < 6; k++) x[i * 36 + y[i] * 2 * 6 + k] = 1.0f;
    }
}

static void test_train_predict_save_load(void) {
    dl_layer *logits, *probs;
    dl_net *net = make_net(&logits, &probs), *again;
    float x[12 * 36], first = 0, loss = 0, p1[12 * 3];
    int y[12], i, step, ok = 1;
    void *buf = NULL;
    size_t len = 0;
    dl_status st;
    dl_optim *opt = dl_adam(net, 0.05f);
    const float *p;
    make_data(x, y, 12);
    CHECK(probs && opt, "building: %s", dl_net_error(net));
    for (step = 0; step < 60; step++) {
        ok &= dl_train_step(net, opt, logits, x, y, 12, &loss) == DL_OK;
        if (step == 0) first = loss;
    }
    CHECK(ok, "train step: %s", dl_net_error(net));
    CHECK(loss < 0.5f * first, "loss %g after 60 steps, %g at first", loss, first);
    p = dl_predict(net, probs, x, 12);
    CHECK(p != NULL, "predict: %s", dl_net_error(net));
    if (!p) { dl_net_free(net); return; }
    memcpy(p1, p, sizeof p1);
    for (i = 0; i < 12; i++) CHECK(p1[i * 3 + y[i]] > 0.5f, "sample %d: p(class %d) = %g", i, y[i], p1[i * 3 + y[i]]);
    CHECK(dl_net_save_mem(net, NULL, &buf, &len) == DL_OK, "save_mem: %s", dl_net_error(net));
    again = dl_net_load_mem(buf, len, &st);
    CHECK(again != NULL, "load_mem: %s", st.msg);
    if (again) {
        p = dl_predict(again, dl_net_output(again), x, 12);
        CHECK(p && !memcmp(p, p1, sizeof p1), "the loaded copy predicts differently");
    }
    free(buf);     /* dl.h's default allocator is malloc, so the library's DL_FREE is free */
    dl_net_free(again);
    dl_net_free(net);
}

static void test_errors_carry_messages(void) {
    dl_net *net = dl_net_new();
    dl_layer *x = dl_input(net, 1, 6, 6);
    dl_status st;
    CHECK(dl_conv2d(x, 4, 9, 1, 0) == NULL, "a 9x9 kernel on 6x6 was accepted");
    CHECK(strstr(dl_net_error(net), "conv2d") != NULL, "message: '%s'", dl_net_error(net));
    CHECK(dl_net_load_mem("nonsense", 8, &st) == NULL && st.code == DL_ERR_FORMAT && st.msg[0],
          "loading garbage: code %d, '%s'", st.code, st.msg);
    dl_net_free(net);
}

int main(void) {
    RUN(test_train_predict_save_load);
    RUN(test_errors_carry_messages);
    return test_summary();
}
