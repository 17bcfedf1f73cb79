/* test_idx.c - the gzip/DEFLATE decoder and IDX reader of examples/idx.h.
 *
 *   gcc -std=c99 -Wall -Wextra -pedantic -Werror -O2 tests/test_idx.c -o test_idx && ./test_idx
 *
 * Run from the repository root (it finds examples/data/fashion-mnist-subset).
 * Where the full Fashion-MNIST is installed (/usr/share/datasets/fashion-mnist)
 * the subset is also compared with it image by image. */
#include "../examples/idx.h"
#include "test.h"
#include "idx_vectors.h" /* made by tests/make_idx_vectors.py */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define FULL_DIR "/usr/share/datasets/fashion-mnist"

static unsigned fnv1a(const unsigned char *p, size_t n) {
    unsigned h = 0x811c9dc5u;
    while (n--) h = (h ^ *p++) * 0x01000193u;
    return h & 0xffffffffu;
}

static int contains(const char *s, const char *part) { return s && strstr(s, part) != NULL; }

/* A raw deflate stream in a minimal gzip header, with a zero trailer. */
static size_t wrap_gzip(unsigned char *dst, const unsigned char *deflate, size_t len) {
    static const unsigned char head[10] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff};
    memcpy(dst, head, 10);
    memcpy(dst + 10, deflate, len);
    memset(dst + 10 + len, 0, 8);
    return len + 18;
}

/* Decodes a copy in a buffer of exactly len bytes, so ASan sees any over-read. */
static int gunzip_copy(const unsigned char *gz, size_t len, size_t max, unsigned char **out, size_t *out_len,
                       const char **err) {
    unsigned char *copy = (unsigned char *)malloc(len ? len : 1);
    int r;
    memcpy(copy, gz, len);
    r = idx_gunzip(copy, len, max, out, out_len, err);
    free(copy);
    return r;
}

static const idx_vec *find_vec(const char *name) {
    size_t i;
    for (i = 0; i < sizeof good_vectors / sizeof *good_vectors; i++)
        if (!strcmp(good_vectors[i].name, name)) return &good_vectors[i];
    return NULL;
}

/* ---- gzip / DEFLATE ---- */

static void test_block_types_decode(void) {
    size_t i;
    /* The generator asserted these first block types; check the bits are what they claim. */
    CHECK(((vec_stored[10] >> 1) & 3) == 0, "stored vector starts with a stored block");
    CHECK(((vec_fixed[10] >> 1) & 3) == 1, "fixed vector starts with a fixed block");
    CHECK(((vec_dynamic_level9[10] >> 1) & 3) == 2, "dynamic vector starts with a dynamic block");
    for (i = 0; i < sizeof good_vectors / sizeof *good_vectors; i++) {
        const idx_vec *v = &good_vectors[i];
        unsigned char *out = NULL;
        size_t n = 12345;
        const char *err = "unset";
        int r = gunzip_copy(v->gz, v->len, IDX_MAX_OUTPUT, &out, &n, &err);
        CHECK(r == 0, "%s: failed: %s", v->name, err);
        CHECK(err == NULL, "%s: error left set", v->name);
        CHECK(n == v->out_len, "%s: %lu bytes, expected %lu", v->name, (unsigned long)n, (unsigned long)v->out_len);
        if (r == 0 && n == v->out_len)
            CHECK(fnv1a(out, n) == v->out_fnv, "%s: wrong bytes (hash %08x, expected %08x)", v->name, fnv1a(out, n),
                  v->out_fnv);
        free(out);
    }
}

static void test_output_limit(void) {
    const idx_vec *v = find_vec("dynamic_level9");
    unsigned char *out;
    size_t n;
    const char *err;
    CHECK(gunzip_copy(v->gz, v->len, v->out_len, &out, &n, &err) == 0, "limit = size passes: %s", err);
    free(out);
    CHECK(gunzip_copy(v->gz, v->len, v->out_len - 1, &out, &n, &err) == -1, "limit = size - 1 fails");
    CHECK(out == NULL && n == 0, "no output on failure");
    CHECK(contains(err, "larger than the limit"), "message: %s", err);

    /* 2 MiB of zeros from 2 KB: stopped at the limit, not after. */
    CHECK(gunzip_copy(vec_bomb, sizeof vec_bomb, 1 << 20, &out, &n, &err) == -1, "bomb stopped at 1 MiB");
    CHECK(contains(err, "larger than the limit"), "message: %s", err);
    CHECK(gunzip_copy(vec_bomb, sizeof vec_bomb, 4 << 20, &out, &n, &err) == 0, "bomb under a 4 MiB limit: %s", err);
    CHECK(n == 2u << 20, "bomb size %lu", (unsigned long)n);
    free(out);
}

static void test_corrupt_deflate_rejected(void) {
    size_t i;
    for (i = 0; i < sizeof bad_vectors / sizeof *bad_vectors; i++) {
        const idx_bad *b = &bad_vectors[i];
        unsigned char gz[64], *out = gz; /* must come back NULL */
        size_t n = 1, len = wrap_gzip(gz, b->deflate, b->len);
        const char *err = NULL;
        int r = gunzip_copy(gz, len, IDX_MAX_OUTPUT, &out, &n, &err);
        CHECK(r == -1, "%s: accepted", b->name);
        CHECK(out == NULL && n == 0, "%s: output left behind", b->name);
        CHECK(contains(err, b->msg), "%s: message \"%s\", expected \"%s\"", b->name, err ? err : "(null)", b->msg);
    }
}

static void test_every_truncation_rejected(void) {
    size_t i, cut;
    for (i = 0; i < sizeof good_vectors / sizeof *good_vectors; i++) {
        const idx_vec *v = &good_vectors[i];
        if (!strcmp(v->name, "two_members")) continue; /* its first member alone is valid */
        for (cut = 0; cut < v->len; cut++) {
            unsigned char *out;
            size_t n;
            const char *err = NULL;
            int r = gunzip_copy(v->gz, cut, IDX_MAX_OUTPUT, &out, &n, &err);
            CHECK(r == -1, "%s cut at %lu: accepted", v->name, (unsigned long)cut);
            CHECK(contains(err, "truncated"), "%s cut at %lu: message %s", v->name, (unsigned long)cut, err);
            if (r == 0) free(out);
        }
    }
}

/* Every single-bit error either fails cleanly or (in fields nobody checks,
 * such as the time stamp) still gives the original bytes. */
static void test_every_bit_flip_safe(void) {
    static const char *const names[] = {"stored", "fixed", "dynamic_level9", "dynamic_long_codes", "header_flags"};
    size_t k, i;
    int bit;
    for (k = 0; k < sizeof names / sizeof *names; k++) {
        const idx_vec *v = find_vec(names[k]);
        unsigned char *gz = (unsigned char *)malloc(v->len);
        for (i = 0; i < v->len; i++)
            for (bit = 0; bit < 8; bit++) {
                unsigned char *out;
                size_t n;
                const char *err;
                memcpy(gz, v->gz, v->len);
                gz[i] ^= (unsigned char)(1 << bit);
                if (idx_gunzip(gz, v->len, IDX_MAX_OUTPUT, &out, &n, &err) == 0) {
                    CHECK(n == v->out_len && fnv1a(out, n) == v->out_fnv, "%s: flip at byte %lu bit %d: wrong output",
                          v->name, (unsigned long)i, bit);
                    free(out);
                } else {
                    CHECK(err && *err, "%s: flip at byte %lu bit %d: no message", v->name, (unsigned long)i, bit);
                }
            }
        free(gz);
    }
}

static void test_gzip_wrapper_checks(void) {
    const idx_vec *v = find_vec("fixed"), *h = find_vec("header_flags");
    unsigned char gz[4096], *out;
    size_t n;
    const char *err;

    memcpy(gz, v->gz, v->len);
    gz[v->len - 8] ^= 1;
    CHECK(gunzip_copy(gz, v->len, IDX_MAX_OUTPUT, &out, &n, &err) == -1 && contains(err, "CRC32 mismatch"),
          "bad CRC: %s", err);
    memcpy(gz, v->gz, v->len);
    gz[v->len - 4] ^= 1;
    CHECK(gunzip_copy(gz, v->len, IDX_MAX_OUTPUT, &out, &n, &err) == -1 && contains(err, "length mismatch"),
          "bad ISIZE: %s", err);
    memcpy(gz, h->gz, h->len);
    gz[14] ^= 1; /* inside FEXTRA */
    CHECK(gunzip_copy(gz, h->len, IDX_MAX_OUTPUT, &out, &n, &err) == -1 && contains(err, "header CRC"),
          "bad header CRC: %s", err);
    memcpy(gz, v->gz, v->len);
    gz[2] = 7;
    CHECK(gunzip_copy(gz, v->len, IDX_MAX_OUTPUT, &out, &n, &err) == -1 && contains(err, "compression method"),
          "method 7: %s", err);
    memcpy(gz, v->gz, v->len);
    gz[3] = 0x20;
    CHECK(gunzip_copy(gz, v->len, IDX_MAX_OUTPUT, &out, &n, &err) == -1 && contains(err, "reserved flags"),
          "reserved flag: %s", err);
    memcpy(gz, v->gz, v->len);
    gz[0] = 0x1e;
    CHECK(gunzip_copy(gz, v->len, IDX_MAX_OUTPUT, &out, &n, &err) == -1 && contains(err, "not a gzip"),
          "bad id: %s", err);

    /* Trailing bytes that are not another member are ignored, as gzip does;
     * the start of a member that is not there is an error. */
    memcpy(gz, v->gz, v->len);
    memcpy(gz + v->len, "\0\0\0\0", 4);
    CHECK(gunzip_copy(gz, v->len + 4, IDX_MAX_OUTPUT, &out, &n, &err) == 0 && n == v->out_len,
          "zero padding after the stream: %s", err);
    if (!err) free(out);
    gz[v->len] = 0x1f;
    gz[v->len + 1] = 0x8b;
    CHECK(gunzip_copy(gz, v->len + 2, IDX_MAX_OUTPUT, &out, &n, &err) == -1 && contains(err, "truncated gzip header"),
          "half a second member: %s", err);

    /* A back-reference may not reach into the previous member. */
    {
        static const unsigned char lit_a[] = {0x4b, 0x04, 0x00}; /* fixed: 'a', end */
        static const unsigned char copy3[] = {0x03, 0x02, 0x00}; /* fixed: length 3 distance 1, end */
        static const unsigned char trailer_a[8] = {0x43, 0xbe, 0xb7, 0xe8, 1, 0, 0, 0}; /* crc32("a"), size 1 */
        size_t len = wrap_gzip(gz, lit_a, sizeof lit_a);
        memcpy(gz + len - 8, trailer_a, 8);
        CHECK(gunzip_copy(gz, len, IDX_MAX_OUTPUT, &out, &n, &err) == 0 && n == 1 && out[0] == 'a', "'a': %s", err);
        if (!err) free(out);
        len += wrap_gzip(gz + len, copy3, sizeof copy3);
        CHECK(gunzip_copy(gz, len, IDX_MAX_OUTPUT, &out, &n, &err) == -1 && contains(err, "too far back"),
              "match across members: %s", err);
    }
}

/* ---- IDX ---- */

static const char *subset_dir(void) {
    static const char *const dirs[] = {"examples/data/fashion-mnist-subset", "../examples/data/fashion-mnist-subset"};
    static const char *found;
    size_t i;
    idx_paths p;
    if (found) return found;
    for (i = 0; i < 2; i++)
        if (idx_find(dirs[i], &p, NULL, 0) == 0) return found = dirs[i];
    return NULL;
}

static void test_find(void) {
    idx_paths p;
    char err[512] = "";
    const char *dir = subset_dir();
    CHECK(dir != NULL, "the subset is not in examples/data/fashion-mnist-subset (run from the repository root)");
    if (!dir) return;
    CHECK(idx_find(dir, &p, err, sizeof err) == 0, "%s", err);
    CHECK(contains(p.train_images, "/train-images-idx3-ubyte.gz"), "%s", p.train_images);
    CHECK(contains(p.train_labels, "/train-labels-idx1-ubyte.gz"), "%s", p.train_labels);
    CHECK(contains(p.test_images, "/t10k-images-idx3-ubyte.gz"), "%s", p.test_images);
    CHECK(contains(p.test_labels, "/t10k-labels-idx1-ubyte.gz"), "%s", p.test_labels);
    CHECK(idx_find(NULL, &p, err, sizeof err) == 0, "default places: %s", err);
    CHECK(idx_find("", &p, err, sizeof err) == 0, "\"\" means the default places: %s", err);
    CHECK(idx_find("no/such/dir", &p, err, sizeof err) == -1, "missing dir accepted");
    CHECK(contains(err, "no/such/dir: no train-images-idx3-ubyte or train-images-idx3-ubyte.gz"), "%s", err);
}

static void check_subset(const char *what, const idx_set *s, int count, unsigned pixel_fnv, unsigned label_fnv) {
    int i, seen[10] = {0}, classes = 0;
    CHECK(s->count == count && s->rows == 28 && s->cols == 28, "%s: %d x %d x %d", what, s->count, s->rows, s->cols);
    if (s->count != count || s->rows != 28 || s->cols != 28) return;
    for (i = 0; i < count; i++) {
        CHECK(s->labels[i] <= 9, "%s: label %d at %d", what, s->labels[i], i);
        if (s->labels[i] <= 9 && !seen[s->labels[i]]++) classes++;
    }
    CHECK(classes == 10, "%s: only %d classes", what, classes);
    /* Data identity, computed once from the files made by make_subset.sh. */
    CHECK(fnv1a(s->pixels, (size_t)count * 784) == pixel_fnv, "%s: pixel hash %08x", what,
          fnv1a(s->pixels, (size_t)count * 784));
    CHECK(fnv1a(s->labels, (size_t)count) == label_fnv, "%s: label hash %08x", what, fnv1a(s->labels, (size_t)count));
}

static void test_subset_loads(void) {
    idx_paths p;
    idx_set train, test;
    char err[512] = "";
    if (!subset_dir() || idx_find(subset_dir(), &p, err, sizeof err)) {
        CHECK(0, "no subset (run from the repository root) %s", err);
        return;
    }
    CHECK(idx_load_pair(p.train_images, p.train_labels, &train, err, sizeof err) == 0, "%s", err);
    CHECK(idx_load_pair(p.test_images, p.test_labels, &test, err, sizeof err) == 0, "%s", err);
    check_subset("train", &train, 5000, 0x777a6a97u, 0xb03f7bf9u);
    check_subset("test", &test, 1000, 0x137a86eau, 0x97da8af6u);
    idx_free(&train);
    idx_free(&test);
}

static void compare_with_full(const char *sub_img, const char *sub_lab, const char *full_img, const char *full_lab) {
    idx_set sub, full;
    char err[512] = "";
    CHECK(idx_load_pair(sub_img, sub_lab, &sub, err, sizeof err) == 0, "%s", err);
    CHECK(idx_load_pair(full_img, full_lab, &full, err, sizeof err) == 0, "%s", err);
    if (sub.count && full.count) {
        CHECK(full.rows == sub.rows && full.cols == sub.cols && full.count > sub.count, "%s: shape", full_img);
        CHECK(memcmp(sub.pixels, full.pixels, (size_t)sub.count * 784) == 0, "%s: pixels differ from the full set",
              sub_img);
        CHECK(memcmp(sub.labels, full.labels, (size_t)sub.count) == 0, "%s: labels differ from the full set",
              sub_lab);
    }
    idx_free(&sub);
    idx_free(&full);
}

static void test_subset_is_prefix_of_full_set(void) {
    idx_paths sub, full;
    if (idx_find(FULL_DIR, &full, NULL, 0) != 0) {
        printf("     (%s not installed: the subset is checked by its hashes only)\n", FULL_DIR);
        return;
    }
    CHECK(subset_dir() && idx_find(subset_dir(), &sub, NULL, 0) == 0, "no subset");
    if (!subset_dir()) return;
    compare_with_full(sub.train_images, sub.train_labels, full.train_images, full.train_labels);
    compare_with_full(sub.test_images, sub.test_labels, full.test_images, full.test_labels);
}

/* An IDX file in memory: images if rows > 0, else labels. */
static size_t make_idx(unsigned char *dst, unsigned count, unsigned rows, unsigned cols, const unsigned char *body,
                       size_t len) {
    size_t head = rows ? 16 : 8, i;
    unsigned v[4];
    v[0] = rows ? 0x803 : 0x801;
    v[1] = count;
    v[2] = rows;
    v[3] = cols;
    for (i = 0; i < head; i++) dst[i] = (unsigned char)(v[i / 4] >> (24 - 8 * (i % 4)));
    memcpy(dst + head, body, len);
    return head + len;
}

static void test_raw_idx(void) {
    static const unsigned char px[12] = {0, 1, 2, 3, 4, 5, 250, 251, 252, 253, 254, 255};
    static const unsigned char lab[2] = {9, 0};
    unsigned char buf[64];
    char err[256] = "";
    idx_set s;
    size_t n = make_idx(buf, 2, 3, 2, px, 12);
    CHECK(idx_load_mem(buf, n, 1, &s, err, sizeof err) == 0, "%s", err);
    CHECK(s.count == 2 && s.rows == 3 && s.cols == 2 && s.labels == NULL, "shape %d %d %d", s.count, s.rows, s.cols);
    CHECK(s.pixels && memcmp(s.pixels, px, 12) == 0, "pixels");
    idx_free(&s);
    CHECK(s.pixels == NULL && s.count == 0, "idx_free clears");
    idx_free(&s); /* twice is fine */
    n = make_idx(buf, 2, 0, 0, lab, 2);
    CHECK(idx_load_mem(buf, n, 0, &s, err, sizeof err) == 0, "%s", err);
    CHECK(s.count == 2 && s.pixels == NULL && s.labels && s.labels[0] == 9 && s.labels[1] == 0, "labels");
    idx_free(&s);
}

static void test_idx_errors(void) {
    static const unsigned char px[12] = {0};
    unsigned char lab[8] = {1, 2, 3, 4, 5, 12, 6, 7}, buf[64];
    char err[256];
    idx_set s;
    size_t n;

    n = make_idx(buf, 8, 0, 0, lab, 8);
    CHECK(idx_load_mem(buf, n, 0, &s, err, sizeof err) == -1, "label 12 accepted");
    CHECK(!strcmp(err, "label 12 out of range 0..9 at index 5"), "%s", err);
    CHECK(s.labels == NULL && s.count == 0, "set left empty");
    CHECK(idx_load_mem(buf, n, 1, &s, err, sizeof err) == -1, "labels as images");
    CHECK(!strcmp(err, "wrong magic 0x00000801 (expected IDX images 0x00000803): this is a labels file"), "%s", err);
    CHECK(idx_load_mem(buf, n - 3, 0, &s, err, sizeof err) == -1, "short labels");
    CHECK(!strcmp(err, "truncated: header says 8 labels but 5 bytes follow"), "%s", err);

    n = make_idx(buf, 2, 3, 2, px, 12);
    CHECK(idx_load_mem(buf, n - 1, 1, &s, err, sizeof err) == -1, "short images");
    CHECK(!strcmp(err, "truncated: header says 2 images of 3x2 (12 bytes) but 11 bytes follow"), "%s", err);
    CHECK(idx_load_mem(buf, n + 1, 1, &s, err, sizeof err) == -1, "long images");
    CHECK(contains(err, "unexpected data at the end"), "%s", err);
    CHECK(idx_load_mem(buf, 10, 1, &s, err, sizeof err) == -1 && contains(err, "truncated IDX images header"), "%s",
          err);
    CHECK(idx_load_mem(buf, 3, 1, &s, err, sizeof err) == -1 && contains(err, "too short"), "%s", err);
    CHECK(idx_load_mem(buf, 0, 1, &s, err, sizeof err) == -1 && contains(err, "too short"), "%s", err);
    n = make_idx(buf, 0, 3, 2, px, 0);
    CHECK(idx_load_mem(buf, n, 1, &s, err, sizeof err) == -1 && contains(err, "dimensions"), "no images: %s", err);
    n = make_idx(buf, 0x40000000u, 65535, 65535, px, 0);
    CHECK(idx_load_mem(buf, n, 1, &s, err, sizeof err) == -1 && contains(err, "truncated"), "huge header: %s", err);
    CHECK(idx_load_mem(buf, n, 1, &s, NULL, 0) == -1, "no error buffer is fine");
}

/* The four failures a user is most likely to meet, with the file in the message. */
static void test_file_errors(void) {
    idx_paths p;
    idx_set s;
    char err[512] = "";
    unsigned char *data = NULL;
    size_t len = 0;
    if (!subset_dir() || idx_find(subset_dir(), &p, NULL, 0)) {
        CHECK(0, "no subset (run from the repository root)");
        return;
    }

    CHECK(idx_load_pair("no-such-images.gz", p.train_labels, &s, err, sizeof err) == -1, "missing file");
    CHECK(contains(err, "no-such-images.gz: ") && contains(err, strerror(ENOENT)), "%s", err);
    CHECK(s.pixels == NULL && s.labels == NULL, "set left empty");
    CHECK(idx_load_pair(p.train_images, "no-such-labels", &s, err, sizeof err) == -1, "missing labels file");
    CHECK(contains(err, "no-such-labels: ") && contains(err, strerror(ENOENT)), "%s", err);
    CHECK(s.pixels == NULL && s.labels == NULL, "images freed when the labels fail");

    CHECK(idx_load_pair(p.train_images, p.test_labels, &s, err, sizeof err) == -1, "5000 images, 1000 labels");
    CHECK(contains(err, "train-images-idx3-ubyte.gz: 5000 images but ") &&
              contains(err, "t10k-labels-idx1-ubyte.gz has 1000 labels"), "%s", err);
    CHECK(s.pixels == NULL && s.labels == NULL, "set left empty");

    CHECK(idx_load_pair(p.train_labels, p.train_labels, &s, err, sizeof err) == -1, "labels as images");
    CHECK(contains(err, "train-labels-idx1-ubyte.gz: wrong magic 0x00000801 (expected IDX images 0x00000803)"), "%s",
          err);

    /* Truncated and corrupted copies of a real file. */
    CHECK(idx__read_file(p.test_labels, &data, &len, err, sizeof err) == 0, "%s", err);
    if (!data) return;
    CHECK(idx_load_mem(data, len / 2, 0, &s, err, sizeof err) == -1, "half a file");
    CHECK(!strcmp(err, "truncated gzip stream"), "%s", err);
    data[len - 6] ^= 0x40; /* inside the CRC32 */
    CHECK(idx_load_mem(data, len, 0, &s, err, sizeof err) == -1, "bad CRC");
    CHECK(!strcmp(err, "corrupt gzip stream: CRC32 mismatch"), "%s", err);
    data[len - 6] ^= 0x40;
    data[len / 2] ^= 0xff; /* inside the compressed data */
    CHECK(idx_load_mem(data, len, 0, &s, err, sizeof err) == -1, "corrupt deflate data");
    CHECK(contains(err, "corrupt"), "%s", err);
    data[len / 2] ^= 0xff;
    CHECK(idx_load_mem(data, len, 0, &s, err, sizeof err) == 0 && s.count == 1000, "restored: %s", err);
    idx_free(&s);
    free(data);
}

/* Inputs the fuzzer (tests/fuzz/fuzz_idx.c) finds troublesome belong here as
 * regression cases. So far it has found none; the sanitizer build of this test
 * found two undefined-behaviour bugs (a match copy indexing with a wrapped
 * size_t, NULL + 0 when checking the CRC of empty output), and the vectors
 * above ("empty", and every vector with matches) keep them covered. */

int main(void) {
    RUN(test_block_types_decode);
    RUN(test_output_limit);
    RUN(test_corrupt_deflate_rejected);
    RUN(test_every_truncation_rejected);
    RUN(test_every_bit_flip_safe);
    RUN(test_gzip_wrapper_checks);
    RUN(test_find);
    RUN(test_subset_loads);
    RUN(test_subset_is_prefix_of_full_set);
    RUN(test_raw_idx);
    RUN(test_idx_errors);
    RUN(test_file_errors);
    return test_summary();
}
