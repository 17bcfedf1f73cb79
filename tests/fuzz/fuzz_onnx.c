/* fuzz_onnx.c - libFuzzer target for the ONNX loader (dl_onnx_load_mem).
 *
 *   make fuzz FUZZ_SECONDS=600        (all targets; see the Makefile)
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -I. \
 *         tests/fuzz/fuzz_onnx.c -o fuzz_onnx -lm -pthread
 *   mkdir -p /tmp/c && ./fuzz_onnx -max_total_time=300 /tmp/c tests/fuzz/corpus_onnx
 *
 * The corpus is seeded from libonnx-testdata's node tests (their other
 * inputs bound as initializers, as tests/test_onnx.c runs them), the PyTorch
 * fixtures and dl.h's own exports. Each input is loaded, run, exported and
 * reloaded: see fuzz_onnx.h for the invariants. An allocation over 64 MB
 * fails, as on a small machine: the loader must say so, not crash. */
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>

static void *fuzz_malloc(size_t n) { return n > ((size_t)64 << 20) ? NULL : malloc(n); }
#define DL_MALLOC(sz) fuzz_malloc(sz)
#define DL_FREE(p) free(p)
#define DL_IMPLEMENTATION
#include "../../dl.h"
#include "fuzz_onnx.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    int line = fuzz_onnx_one(data, size);
    if (line) {
        fprintf(stderr, "fuzz_onnx.h:%d: invariant broken\n", line);
        abort();
    }
    return 0;
}
