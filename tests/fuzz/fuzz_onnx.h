/* fuzz_onnx.h - what the ONNX fuzz target does with one input. Shared by
 * tests/fuzz/fuzz_onnx.c (under libFuzzer) and tests/test_onnx.c, which
 * replays the committed corpus (tests/fuzz/corpus_onnx) in every build.
 * Include after dl.h with its implementation. fuzz_onnx_one() returns 0
 * when every invariant held, else the line that failed:
 *   - a load gives a net, or NULL with a non-zero status and a message;
 *   - a loaded net of modest size predicts (or says why not) at its last
 *     layer, and every output float can be read;
 *   - it exports to ONNX (or says why not: custom layers cannot happen, so
 *     only running out of memory, or MaxPool's indices, which dl.h keeps per
 *     plane and refuses to export), and the export loads again. */
#ifndef FUZZ_ONNX_H
#define FUZZ_ONNX_H
#include <string.h>

static int fuzz_onnx_one(const unsigned char *data, size_t size) {
    static float x[2 * (1 << 14)];
    dl_status st;
    dl_net *net = dl_onnx_load_mem(data, size, &st), *again;
    dl_layer *out, *in;
    void *b = NULL;
    size_t n = 0, i;
    size_t acts = 0;
    int k;
    if (!net) return st.code != DL_OK && st.msg[0] ? 0 : __LINE__;
    if (st.code != DL_OK) { dl_net_free(net); return __LINE__; }
    dl_net_set_threads(net, 1);
    out = dl_net_layer(net, -1);
    in = dl_net_layer(net, 0);
    if (!out || !in || dl_layer_op(in) != DL_OP_INPUT) { dl_net_free(net); return __LINE__; }
    for (k = 0; k < dl_net_layer_count(net); k++) acts += (size_t)dl_layer_size(dl_net_layer(net, k));
    if (acts <= (1u << 14) && dl_net_param_floats(net) <= (1u << 16) && dl_layer_size(in) <= (1 << 14)) {
        const float *p;
        for (i = 0; i < (size_t)2 * dl_layer_size(in); i++) x[i] = (float)((int)(i % 7) - 3) * 0.25f;
        p = dl_predict(net, out, x, 2);
        if (!p && !dl_net_error(net)[0]) { dl_net_free(net); return __LINE__; }
        if (p) {
            volatile float sum = 0;
            for (i = 0; i < (size_t)2 * dl_layer_size(out); i++) sum += p[i];
            (void)sum;
        }
    }
    k = dl_onnx_save_mem(net, &out, 1, &b, &n);
    dl_net_free(net);
    if (k == DL_ERR_NOMEM) return 0;
    if (k) return __LINE__;
    again = dl_onnx_load_mem(b, n, &st);
    DL_FREE(b);
    if (!again) return st.code == DL_ERR_NOMEM ? 0 : __LINE__;
    dl_net_free(again);
    return 0;
}
#endif
