/* fuzz_idx.c - libFuzzer target for examples/idx.h.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all tests/fuzz/fuzz_idx.c -o fuzz_idx
 *   mkdir -p /tmp/corpus && ./fuzz_idx -max_total_time=300 -max_len=8192 /tmp/corpus tests/fuzz/corpus_idx
 *
 * (New inputs go to the first directory, so the committed seeds stay as they are.)
 *
 * Each input is parsed as an IDX images file and as an IDX labels file (raw or
 * gzip, as idx_load_mem decides), and once more as the deflate data of a gzip
 * file behind a fixed header, so that mutations reach the decoder without first
 * having to keep a valid gzip header. Nothing may crash, leak or read out of
 * bounds; every failure must come with a message. */
#include "../../examples/idx.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const unsigned char head[10] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff};
    unsigned char *gz, *out;
    size_t n;
    const char *e;
    char err[256];
    idx_set s;
    int kind;

    for (kind = 0; kind < 2; kind++) {
        err[0] = '\0';
        if (idx_load_mem(data, size, kind, &s, err, sizeof err) == 0) {
            size_t i, px = (size_t)s.count * (size_t)s.rows * (size_t)s.cols;
            unsigned sum = 0;
            for (i = 0; i < px; i++) sum += s.pixels[i]; /* touch all of it: ASan checks the size */
            for (i = 0; kind == 0 && i < (size_t)s.count; i++)
                if (s.labels[i] > 9) abort();
            (void)sum;
            idx_free(&s);
        } else if (!err[0]) {
            abort();
        }
    }

    gz = (unsigned char *)malloc(size + 10);
    if (!gz) return 0;
    memcpy(gz, head, 10);
    if (size) memcpy(gz + 10, data, size);
    /* A small cap keeps bombs fast; a failure must say why. */
    if (idx_gunzip(gz, size + 10, 1 << 24, &out, &n, &e) == 0) free(out);
    else if (!e || !*e) abort();
    free(gz);
    return 0;
}
