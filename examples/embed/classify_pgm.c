/* classify_pgm.c - classify 28x28 PGM images with a net that dl_emit_c wrote
 * as C (examples/embed/embed_model.c writes fashion_net.c and .h):
 *
 *   cc -std=c99 -O2 -DDL_NO_THREADS -I. -IOUT/q8 examples/embed/classify_pgm.c OUT/q8/fashion_net.c -lm
 *   ./a.out image.pgm...
 *
 * Inference here needs no heap, no file and no thread: the weights are
 * const arrays in fashion_net.c, the work memory is the static array below,
 * sized by the generated constant, and DL_MALLOC is defined to stop the
 * program if dl.h ever called it. (The program itself reads the images.)
 */
#include <stdio.h>
#include <stdlib.h>

static void *no_heap(size_t n) { fprintf(stderr, "DL_MALLOC(%lu) was called\n", (unsigned long)n); abort(); }
#define DL_MALLOC(sz) no_heap(sz)
#define DL_FREE(p) ((void)(p))
#define DL_IMPLEMENTATION
#include "dl.h"
#include "fashion_net.h"
#include "../pgm.h"

static const char *const names[10] = {
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"};
static float work[FASHION_NET_WORK_BYTES / sizeof(float)];

int main(int argc, char **argv) {
    float x[FASHION_NET_IN_SIZE], p[FASHION_NET_OUT_SIZE];
    int i, c, best, rc = 0;
    if (argc < 2) { fprintf(stderr, "usage: %s image.pgm...\n", argv[0]); return 2; }
    printf("net: %lu bytes of work memory (static), no heap\n", (unsigned long)sizeof work);
    for (i = 1; i < argc; i++) {
        if (read_pgm(argv[i], x, 28, 28)) { fprintf(stderr, "%s: not a 28x28 binary PGM\n", argv[i]); rc = 1; continue; }
        fashion_net_predict(x, p, work);
        for (best = 0, c = 1; c < FASHION_NET_OUT_SIZE; c++) if (p[c] > p[best]) best = c;
        printf("%s: %s (%.1f%%)\n", argv[i], names[best], 100.0 * p[best]);
    }
    return rc;
}
