/* fuzz_checkpoint.c - libFuzzer target for the checkpoint loader (dl_checkpoint_load_mem).
 *
 *   make fuzz FUZZ_SECONDS=600        (all targets; see the Makefile)
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -I. \
 *         tests/fuzz/fuzz_checkpoint.c -o fuzz_checkpoint -lm -pthread
 *   mkdir -p /tmp/c && ./fuzz_checkpoint -max_total_time=300 /tmp/c tests/fuzz/corpus_checkpoint
 *
 * Each input is loaded as it is and with its length and CRC-32 recomputed
 * (so mutations reach the parser), then run, trained, saved and reloaded
 * and parsed into an existing graph: see fuzz_dl.h for the invariants. An
 * allocation over 64 MB fails, as on a small machine: the loader must say
 * so, not crash. */
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>

static void *fuzz_malloc(size_t n) { return n > ((size_t)64 << 20) ? NULL : malloc(n); }
#define DL_MALLOC(sz) fuzz_malloc(sz)
#define DL_FREE(p) free(p)
#define DL_IMPLEMENTATION
#include "../../dl.h"
#include "fuzz_dl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static dl_net *into;        /* the graph of seed_mlp.dl, kept for the process */
    int line;
    if (!into) {
        into = dl_net_new();
        if (!into || !fuzz_dl_graph(into, 0)) abort();
    }
    if ((line = fuzz_dl_one(data, size, 1, into)) != 0) {
        fprintf(stderr, "fuzz_dl.h:%d: invariant broken\n", line);
        abort();
    }
    return 0;
}
