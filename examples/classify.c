/* classify.c - classify 28x28 grayscale images with a model saved by fashion.c,
 * or trained anywhere else and saved as ONNX (PyTorch: torch.onnx.export).
 *
 *   build/classify fashion.dl image.pgm...      (make demo writes some to build/samples)
 *   build/classify model.onnx image.pgm...      (a 1x28x28 input, 10 logits or probabilities out)
 *
 * The pattern to copy into your own program: load the model once, then call
 * dl_predict for each input; after its first call it allocates nothing.
 * Images are binary PGM (P5), 8-bit, light object on a dark background like
 * Fashion-MNIST.
 */
#define DL_IMPLEMENTATION
#include "dl.h"
#include "pgm.h"
#include <string.h>

static const char *const names[10] = {
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"};

int main(int argc, char **argv) {
    dl_status st;
    dl_net *net;
    dl_layer *out;
    float x[28 * 28];
    int i, shape[3], rc = 0;
    size_t len;
    if (argc < 3) {
        fprintf(stderr, "usage: %s model.dl|model.onnx image.pgm...\n", argv[0]);
        return 2;
    }
    len = strlen(argv[1]);
    net = len > 5 && !strcmp(argv[1] + len - 5, ".onnx") ? dl_onnx_load(argv[1], &st) : dl_net_load(argv[1], &st);
    if (!net) {
        fprintf(stderr, "%s\n", st.msg);
        return 1;
    }
    /* The model must read 1x28x28 and end in 10 class scores; logits (what
       PyTorch models usually end in) get a softmax added here. */
    out = dl_net_output(net);
    if (out && dl_layer_op(out) != DL_OP_SOFTMAX && dl_layer_size(out) == 10) out = dl_softmax(out);
    if (dl_layer_shape(dl_net_layer(net, 0), shape) != 3 || shape[0] != 1 || shape[1] != 28 || shape[2] != 28 ||
        !out || dl_layer_size(out) != 10) {
        fprintf(stderr, "%s: not a Fashion-MNIST model (1x28x28 in, 10 probabilities out)\n", argv[1]);
        dl_net_free(net);
        return 1;
    }
    for (i = 2; i < argc; i++) {
        const float *p;
        int top[10], k, c;
        if (read_pgm(argv[i], x, 28, 28)) {
            fprintf(stderr, "%s: not a 28x28 8-bit binary PGM (P5)\n", argv[i]);
            rc = 1;
            continue;
        }
        if (!(p = dl_predict(net, out, x, 1))) {    /* 10 probabilities */
            fprintf(stderr, "%s: %s\n", argv[i], dl_net_error(net));
            rc = 1;
            break;
        }
        for (c = 0; c < 10; c++) {                   /* classes by probability, most likely first */
            for (k = c; k > 0 && p[top[k - 1]] < p[c]; k--) top[k] = top[k - 1];
            top[k] = c;
        }
        printf("%s: %s %.3f, %s %.3f, %s %.3f\n", argv[i], names[top[0]], p[top[0]], names[top[1]], p[top[1]],
               names[top[2]], p[top[2]]);
    }
    dl_net_free(net);
    return rc;
}
