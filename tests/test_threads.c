/* dl_net_set_threads does what it says (it used to fall back to one thread
 * because it was compiled before the library decided it had threads; with
 * mingw-w64 and tcc the library had none), dl_net_threads tells the truth,
 * and the thread count does not change results. */
#define DL_IMPLEMENTATION
#include "dl.h"
#include "tests/test.h"
#include <string.h>

static void test_set_threads(void) {
    dl_net *net = dl_net_new();
    dl_layer *x = dl_input(net, 1, 12, 12), *y = dl_dense(dl_flatten(dl_conv2d(x, 8, 3, 1, 1)), 4);
    static float in[32 * 144], out1[32 * 4];
    const float *p;
    int n, i;
    for (i = 0; i < 32 * 144; i++) in[i] = (float)((i * 37) % 101) / 101.0f;
    net->par_min_work = 0;              /* split every op, however small */
    CHECK(dl_net_set_threads(net, 1) == DL_OK && dl_net_threads(net) == 1, "1 thread: %d", dl_net_threads(net));
    p = dl_predict(net, y, in, 32);
    CHECK(p != NULL, "%s", dl_net_error(net));
    if (p) memcpy(out1, p, sizeof out1);
    for (n = 2; n <= 4; n++) {
        CHECK(dl_net_set_threads(net, n) == DL_OK, "%s", dl_net_error(net));
#ifndef DL_NO_THREADS
        CHECK(dl_net_threads(net) == n, "asked for %d threads, got %d", n, dl_net_threads(net));
#else
        CHECK(dl_net_threads(net) == 1, "built without threads, yet it reports %d", dl_net_threads(net));
#endif
        p = dl_predict(net, y, in, 32);
        CHECK(p && !memcmp(p, out1, sizeof out1), "%d threads give other results", n);
    }
    CHECK(dl_net_set_threads(net, -1) == DL_ERR_ARG, "-1 threads accepted");
    dl_net_free(net);
}

int main(void) {
    RUN(test_set_threads);
    return test_summary();
}
