/* idx.h - read (Fashion-)MNIST IDX files, raw or gzip-compressed, with libc only.
 *
 * Part of the dl.h examples. Every function is `static`, so there is no
 * IMPLEMENTATION macro: include it where you need it. It carries its own small
 * DEFLATE (RFC 1951) and gzip (RFC 1952) decoder, written to survive hostile
 * input: every bit read is checked against the end of the input, every
 * back-reference against the start of the output, over-subscribed and
 * malformed Huffman codes are rejected, and the output is capped so that a
 * zip bomb stops with an error instead of eating the memory.
 *
 * Quick start:
 *
 *     #include "idx.h"
 *     idx_paths p; idx_set train, test; char err[512];
 *     if (idx_find(getenv("DATA"), &p, err, sizeof err) ||
 *         idx_load_pair(p.train_images, p.train_labels, &train, err, sizeof err) ||
 *         idx_load_pair(p.test_images, p.test_labels, &test, err, sizeof err)) {
 *         fprintf(stderr, "%s\n", err);
 *         return 1;
 *     }
 *     // pixel (x, y) of image i: train.pixels[(size_t)i * train.rows * train.cols + y * train.cols + x]
 *     // its class 0..9:         train.labels[i]
 *     idx_free(&train); idx_free(&test);   // (idx_free on a failed load is fine too)
 *
 * Configuration (define before including):
 *     IDX_MALLOC(n), IDX_REALLOC(p, n), IDX_FREE(p)
 *                      allocator; define all three or none (default: libc)
 *     IDX_MAX_OUTPUT   largest file or decompressed stream accepted, in bytes
 *                      (default 1 GiB; the full training images are 47 MB)
 *
 * Errors are returned, never asserted: every loader returns 0 on success and
 * -1 on failure with a message such as
 *     "train-images-idx3-ubyte.gz: truncated gzip stream"
 * in the caller's buffer. There is no global state, so it is thread-safe.
 */
#ifndef IDX_H
#define IDX_H

#include <stddef.h>
#include <stdint.h>

#if defined(IDX_MALLOC) || defined(IDX_REALLOC) || defined(IDX_FREE)
#if !defined(IDX_MALLOC) || !defined(IDX_REALLOC) || !defined(IDX_FREE)
#error "idx.h: define all of IDX_MALLOC, IDX_REALLOC and IDX_FREE, or none of them"
#endif
#else
#include <stdlib.h>
#define IDX_MALLOC(n) malloc(n)
#define IDX_REALLOC(p, n) realloc(p, n)
#define IDX_FREE(p) free(p)
#endif

#ifndef IDX_MAX_OUTPUT
#define IDX_MAX_OUTPUT ((size_t)1 << 30)
#endif

/* Unused static functions are fine here: a program takes what it needs. */
#if defined(__GNUC__) || defined(__clang__)
#define IDX_DEF static __attribute__((unused))
#define IDX__PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define IDX_DEF static
#define IDX__PRINTF(f, a)
#endif

/* A labelled image set. All of it is owned by the set; release with idx_free. */
typedef struct idx_set {
    int count, rows, cols;  /* count images of rows x cols pixels (rows = cols = 0: labels only) */
    unsigned char *pixels;  /* count*rows*cols bytes, image-major then row-major, 0 = background */
    unsigned char *labels;  /* count bytes, each 0..9 */
} idx_set;

/* Where idx_find found the four standard files. */
typedef struct idx_paths {
    char train_images[1024], train_labels[1024], test_images[1024], test_labels[1024];
    char dir[1024];         /* the folder they are in */
} idx_paths;

/* Decompresses a whole gzip file (all members, concatenated) into a new buffer
 * of at most max_out bytes, owned by the caller (IDX_FREE; NULL if empty). On
 * failure returns -1, leaves *out NULL and points *err at a static message. */
IDX_DEF int idx_gunzip(const unsigned char *in, size_t len, size_t max_out,
                       unsigned char **out, size_t *out_len, const char **err);

/* Parses one IDX file held in memory, raw or gzip (told apart by 1f 8b).
 * want_images = 1: an images file (magic 0x00000803), fills count, rows, cols
 * and pixels; 0: a labels file (magic 0x00000801), fills count and labels. */
IDX_DEF int idx_load_mem(const unsigned char *data, size_t len, int want_images,
                         idx_set *out, char *err, size_t errlen);

/* Same, read from a file; error messages start with the path. */
IDX_DEF int idx_load_file(const char *path, int want_images, idx_set *out, char *err, size_t errlen);

/* Loads an images file and its labels file into one set and checks they agree. */
IDX_DEF int idx_load_pair(const char *images_path, const char *labels_path, idx_set *out,
                          char *err, size_t errlen);

IDX_DEF void idx_free(idx_set *s);

/* Finds train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte
 * and t10k-labels-idx1-ubyte, each as .gz or plain, in dir. With dir NULL or ""
 * it looks for the subset shipped with the examples, relative to the current
 * directory: examples/data/fashion-mnist-subset, data/fashion-mnist-subset,
 * ../examples/data/fashion-mnist-subset. */
IDX_DEF int idx_find(const char *dir, idx_paths *p, char *err, size_t errlen);

/* idx_find, then both pairs, which must hold rows x cols images (0: any
 * size); p (or NULL) gets the paths. On failure both sets are empty. */
IDX_DEF int idx_load_dir(const char *dir, int rows, int cols, idx_set *train, idx_set *test, idx_paths *p,
                         char *err, size_t errlen);

/* Images first..first+n-1 as floats in [0, 1] (pixel / 255) into x, and
 * their labels into labels (or NULL). */
IDX_DEF void idx_floats(const idx_set *s, int first, int n, float *x, int *labels);

/* The same for images index[0..n) of the idx_set *set, in the shape of
 * dl.h's dl_dataset fill callback (targets unused): a set used this way is
 * converted batch by batch, never copied whole. Returns 0. */
IDX_DEF int idx_fill(void *set, const int *index, int n, float *x, int *labels, float *targets);

/* ------------------------------------------------------------------------- */
/* Implementation                                                             */
/* ------------------------------------------------------------------------- */

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

IDX__PRINTF(3, 4)
static void idx__msg(char *err, size_t errlen, const char *fmt, ...) {
    va_list ap;
    if (!err || !errlen) return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* ---- DEFLATE (RFC 1951) ---- */

/* A canonical Huffman code. Codes of up to IDX__FAST bits are found with one
 * look-up of the next IDX__FAST input bits; longer ones (rare) are decoded a
 * bit at a time from count[] and symbol[], as in zlib's puff.c. */
#define IDX__FAST 10
typedef struct idx__huff {
    unsigned short fast[1 << IDX__FAST]; /* next bits -> length << 9 | symbol; 0: not a short code */
    unsigned short count[16];            /* number of codes of each length, count[0] unused lengths */
    unsigned short symbol[288];          /* symbols in code order */
} idx__huff;

typedef struct idx__z {
    const unsigned char *in, *end;  /* input not yet in the bit buffer */
    uint64_t bits;                  /* bit buffer, next bit lowest */
    int nbits;
    unsigned char *out;             /* output so far: len bytes of cap */
    size_t len, cap, max, start;    /* start: where this gzip member's output begins */
    const char *err;                /* first error; once set every read returns 0 */
} idx__z;

static int idx__fail(idx__z *z, const char *msg) {
    if (!z->err) z->err = msg;
    return -1;
}

static void idx__fill(idx__z *z) {
    while (z->nbits <= 56 && z->in < z->end) {
        z->bits |= (uint64_t)*z->in++ << z->nbits;
        z->nbits += 8;
    }
}

/* Next n bits (n <= 16), first bit lowest. Past the end: 0 and an error. */
static unsigned idx__bits(idx__z *z, int n) {
    unsigned v;
    if (z->nbits < n) {
        idx__fill(z);
        if (z->nbits < n) { idx__fail(z, "truncated gzip stream"); return 0; }
    }
    v = (unsigned)(z->bits & ((1u << n) - 1));
    z->bits >>= n;
    z->nbits -= n;
    return v;
}

/* Leaves the bit buffer at a byte boundary: the partly used byte is dropped,
 * the whole bytes still buffered are handed back to the input. */
static void idx__align(idx__z *z) {
    z->in -= z->nbits / 8;
    z->bits = 0;
    z->nbits = 0;
}

/* Builds h from code lengths (RFC 1951 3.2.2). Returns < 0 if over-subscribed,
 * > 0 if incomplete (the number of unused codes at length 15), 0 if complete. */
static int idx__build(idx__huff *h, const unsigned char *lens, int n) {
    int offs[16], left = 1, len, i, k, code;
    memset(h->count, 0, sizeof h->count);
    memset(h->fast, 0, sizeof h->fast);
    for (i = 0; i < n; i++) h->count[lens[i]]++;
    if (h->count[0] == n) return 0; /* no codes: only an error if one is ever read */
    for (len = 1; len < 16; len++) {
        left = (left << 1) - h->count[len];
        if (left < 0) return -1;
    }
    offs[1] = 0;
    for (len = 1; len < 15; len++) offs[len + 1] = offs[len] + h->count[len];
    for (i = 0; i < n; i++)
        if (lens[i]) h->symbol[offs[lens[i]]++] = (unsigned short)i;
    /* Huffman codes are sent most significant bit first, but the bit buffer
     * gives the first bit lowest: index the table by the reversed code, once
     * for every value the bits after the code may take. */
    code = 0;
    k = 0;
    for (len = 1; len <= IDX__FAST; len++, code <<= 1) {
        for (i = 0; i < h->count[len]; i++, k++, code++) {
            int rev = 0, b, r;
            for (b = 0; b < len; b++) rev |= ((code >> b) & 1) << (len - 1 - b);
            for (r = rev; r < (1 << IDX__FAST); r += 1 << len)
                h->fast[r] = (unsigned short)(len << 9 | h->symbol[k]);
        }
    }
    return left;
}

/* Codes longer than IDX__FAST bits, or bits that are no code at all. */
static int idx__decode_slow(idx__z *z, const idx__huff *h) {
    int code = 0, first = 0, index = 0, len;
    for (len = 1; len < 16; len++) {
        int count = h->count[len];
        if (len > z->nbits) return idx__fail(z, "truncated gzip stream");
        code |= (int)(z->bits >> (len - 1)) & 1;
        if (code - first < count) {
            z->bits >>= len;
            z->nbits -= len;
            return h->symbol[index + code - first];
        }
        index += count;
        first = (first + count) << 1;
        code <<= 1;
    }
    return idx__fail(z, "corrupt deflate data: invalid Huffman code");
}

/* Next symbol of code h, or -1 on error. */
static int idx__decode(idx__z *z, const idx__huff *h) {
    unsigned e;
    if (z->nbits < 16) idx__fill(z);
    e = h->fast[z->bits & ((1u << IDX__FAST) - 1)];
    if (e && (int)(e >> 9) <= z->nbits) {
        z->bits >>= e >> 9;
        z->nbits -= (int)(e >> 9);
        return (int)(e & 511);
    }
    return idx__decode_slow(z, h);
}

/* Makes room for n more output bytes, doubling the buffer up to z->max. */
static int idx__room(idx__z *z, size_t n) {
    size_t cap = z->cap ? z->cap : z->max < 1 << 16 ? z->max : 1 << 16;
    unsigned char *p;
    if (z->cap - z->len >= n) return 0;
    if (n > z->max - z->len) return idx__fail(z, "decompressed data larger than the limit (IDX_MAX_OUTPUT)");
    while (cap - z->len < n) cap = cap > z->max / 2 ? z->max : cap * 2;
    p = (unsigned char *)IDX_REALLOC(z->out, cap);
    if (!p) return idx__fail(z, "out of memory");
    z->out = p;
    z->cap = cap;
    return 0;
}

static const unsigned short idx__len_base[29] = {
    3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31,
    35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258};
static const unsigned char idx__len_extra[29] = {
    0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
static const unsigned short idx__dist_base[30] = {
    1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769,
    1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577};
static const unsigned char idx__dist_extra[30] = {
    0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13};

/* The symbols of one Huffman-coded block, up to its end-of-block code. */
static int idx__codes(idx__z *z, const idx__huff *lit, const idx__huff *dist) {
    for (;;) {
        int sym = idx__decode(z, lit);
        if (sym < 256) {
            if (sym < 0) return -1;
            if (z->len == z->cap && idx__room(z, 1)) return -1;
            z->out[z->len++] = (unsigned char)sym;
        } else if (sym == 256) {
            return 0;
        } else {
            size_t n, d, i;
            unsigned char *o;
            const unsigned char *from;
            sym -= 257;
            if (sym >= 29) return idx__fail(z, "corrupt deflate data: invalid length code");
            n = idx__len_base[sym] + idx__bits(z, idx__len_extra[sym]);
            sym = idx__decode(z, dist);
            if (sym < 0) return -1;
            if (sym >= 30) return idx__fail(z, "corrupt deflate data: invalid distance code");
            d = idx__dist_base[sym] + idx__bits(z, idx__dist_extra[sym]);
            if (z->err) return -1;
            if (d > z->len - z->start) return idx__fail(z, "corrupt deflate data: distance too far back");
            if (idx__room(z, n)) return -1;
            o = z->out + z->len;
            from = o - d;
            for (i = 0; i < n; i++) o[i] = from[i]; /* byte by byte: the copy may overlap itself */
            z->len += n;
        }
    }
}

static int idx__stored(idx__z *z) {
    size_t n;
    idx__align(z);
    if (z->end - z->in < 4) return idx__fail(z, "truncated gzip stream");
    n = (size_t)z->in[0] | (size_t)z->in[1] << 8;
    if ((z->in[2] | z->in[3] << 8) != (int)(~n & 0xffff))
        return idx__fail(z, "corrupt deflate data: stored block length check failed");
    z->in += 4;
    if ((size_t)(z->end - z->in) < n) return idx__fail(z, "truncated gzip stream");
    if (idx__room(z, n)) return -1;
    if (n) memcpy(z->out + z->len, z->in, n); /* out is still NULL if n = 0 is all there is */
    z->in += n;
    z->len += n;
    return 0;
}

/* The fixed code of RFC 1951 3.2.6. */
static void idx__fixed(idx__huff *lit, idx__huff *dist) {
    unsigned char lens[288];
    memset(lens, 8, 144);
    memset(lens + 144, 9, 112);
    memset(lens + 256, 7, 24);
    memset(lens + 280, 8, 8);
    idx__build(lit, lens, 288);
    memset(lens, 5, 32); /* 30 and 31 take part in the code but are invalid if read */
    idx__build(dist, lens, 32);
}

static int idx__dynamic(idx__z *z, idx__huff *lit, idx__huff *dist) {
    static const unsigned char order[19] = {16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15};
    unsigned char lens[286 + 30];
    int nlit, ndist, ncode, i, r;
    nlit = (int)idx__bits(z, 5) + 257;
    ndist = (int)idx__bits(z, 5) + 1;
    ncode = (int)idx__bits(z, 4) + 4;
    if (z->err) return -1;
    if (nlit > 286 || ndist > 30) return idx__fail(z, "corrupt deflate data: too many length or distance codes");

    /* The code lengths are themselves Huffman-coded; that code must be complete. */
    memset(lens, 0, 19);
    for (i = 0; i < ncode; i++) lens[order[i]] = (unsigned char)idx__bits(z, 3);
    if (z->err) return -1;
    if (idx__build(lit, lens, 19) != 0 || lit->count[0] == 19)
        return idx__fail(z, "corrupt deflate data: invalid code lengths code");
    for (i = 0; i < nlit + ndist;) {
        int sym = idx__decode(z, lit), len = 0, rep;
        if (sym < 0) return -1;
        if (sym < 16) { lens[i++] = (unsigned char)sym; continue; }
        if (sym == 16) {
            if (i == 0) return idx__fail(z, "corrupt deflate data: repeated length with no first length");
            len = lens[i - 1];
            rep = 3 + (int)idx__bits(z, 2);
        } else if (sym == 17) {
            rep = 3 + (int)idx__bits(z, 3);
        } else {
            rep = 11 + (int)idx__bits(z, 7);
        }
        if (z->err) return -1;
        if (rep > nlit + ndist - i) return idx__fail(z, "corrupt deflate data: too many code lengths");
        while (rep--) lens[i++] = (unsigned char)len;
    }
    if (lens[256] == 0) return idx__fail(z, "corrupt deflate data: no end-of-block code");

    /* Incomplete codes are allowed only as a single one-bit code (as zlib does). */
    r = idx__build(lit, lens, nlit);
    if (r < 0 || (r > 0 && nlit != lit->count[0] + lit->count[1]))
        return idx__fail(z, "corrupt deflate data: invalid literal/length code lengths");
    r = idx__build(dist, lens + nlit, ndist);
    if (r < 0 || (r > 0 && ndist != dist->count[0] + dist->count[1]))
        return idx__fail(z, "corrupt deflate data: invalid distance code lengths");
    return idx__codes(z, lit, dist);
}

/* One whole deflate stream; the input is left at the byte after it. */
static int idx__inflate(idx__z *z) {
    idx__huff lit, dist, fixed_lit, fixed_dist;
    int last, type, r, have_fixed = 0;
    z->bits = 0;
    z->nbits = 0;
    do {
        last = (int)idx__bits(z, 1);
        type = (int)idx__bits(z, 2);
        if (z->err) return -1;
        if (type == 0) {
            r = idx__stored(z);
        } else if (type == 1) {
            /* Built once: a stream of tiny fixed blocks must not cost a table each. */
            if (!have_fixed) idx__fixed(&fixed_lit, &fixed_dist);
            have_fixed = 1;
            r = idx__codes(z, &fixed_lit, &fixed_dist);
        } else if (type == 2) {
            r = idx__dynamic(z, &lit, &dist);
        } else {
            r = idx__fail(z, "corrupt deflate data: invalid block type");
        }
        if (r) return -1;
    } while (!last);
    idx__align(z);
    return 0;
}

/* ---- gzip (RFC 1952) ---- */

static uint32_t idx__le32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* CRC-32 (the gzip one), four bytes per step ("slicing by 4"): t[k][b] is the
 * CRC of byte b followed by k zero bytes. Tables are built per call (4 KB, ~1 us)
 * so that there is no global state. */
static uint32_t idx__crc32(uint32_t crc, const unsigned char *p, size_t n) {
    uint32_t t[4][256];
    unsigned i, k;
    for (i = 0; i < 256; i++) {
        uint32_t c = i;
        for (k = 0; k < 8; k++) c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
        t[0][i] = c;
    }
    for (i = 0; i < 256; i++)
        for (k = 1; k < 4; k++) t[k][i] = t[0][t[k - 1][i] & 0xff] ^ (t[k - 1][i] >> 8);
    crc = ~crc;
    for (; n >= 4; n -= 4, p += 4) {
        crc ^= idx__le32(p);
        crc = t[3][crc & 0xff] ^ t[2][(crc >> 8) & 0xff] ^ t[1][(crc >> 16) & 0xff] ^ t[0][crc >> 24];
    }
    while (n--) crc = t[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return ~crc;
}

/* Skips one member's header; returns NULL with z->err set if it is bad. */
static const unsigned char *idx__gzip_header(idx__z *z, const unsigned char *p) {
    const unsigned char *h = p, *end = z->end;
    int flags;
    if (end - p < 10) { idx__fail(z, "truncated gzip header"); return NULL; }
    if (p[0] != 0x1f || p[1] != 0x8b) { idx__fail(z, "not a gzip stream"); return NULL; }
    if (p[2] != 8) { idx__fail(z, "unsupported gzip compression method (not deflate)"); return NULL; }
    flags = p[3];
    if (flags & 0xe0) { idx__fail(z, "corrupt gzip header: reserved flags set"); return NULL; }
    p += 10;
    if (flags & 4) { /* FEXTRA */
        size_t xlen;
        if (end - p < 2) { idx__fail(z, "truncated gzip header"); return NULL; }
        xlen = (size_t)p[0] | (size_t)p[1] << 8;
        p += 2;
        if ((size_t)(end - p) < xlen) { idx__fail(z, "truncated gzip header"); return NULL; }
        p += xlen;
    }
    if (flags & 8) { /* FNAME, zero-terminated */
        while (p < end && *p) p++;
        if (p == end) { idx__fail(z, "truncated gzip header"); return NULL; }
        p++;
    }
    if (flags & 16) { /* FCOMMENT, zero-terminated */
        while (p < end && *p) p++;
        if (p == end) { idx__fail(z, "truncated gzip header"); return NULL; }
        p++;
    }
    if (flags & 2) { /* FHCRC: low 16 bits of the CRC32 of the header so far */
        if (end - p < 2) { idx__fail(z, "truncated gzip header"); return NULL; }
        if ((idx__crc32(0, h, (size_t)(p - h)) & 0xffff) != ((unsigned)p[0] | (unsigned)p[1] << 8)) {
            idx__fail(z, "corrupt gzip header: header CRC mismatch");
            return NULL;
        }
        p += 2;
    }
    return p;
}

IDX_DEF int idx_gunzip(const unsigned char *in, size_t len, size_t max_out,
                       unsigned char **out, size_t *out_len, const char **err) {
    idx__z z;
    memset(&z, 0, sizeof z);
    z.in = in;
    z.end = in + len;
    z.max = max_out;
    /* The trailer's size (mod 2^32) of a single-member file sizes the buffer up
     * front. A lying trailer cannot make it big: deflate expands at most 1032:1. */
    if (len >= 18) {
        size_t hint = idx__le32(in + len - 4);
        if (hint / 1032 <= len && hint <= max_out) idx__room(&z, hint);
    }
    do {
        const unsigned char *p = idx__gzip_header(&z, z.in);
        uint32_t crc;
        if (!p) break;
        z.in = p;
        z.start = z.len;
        if (idx__inflate(&z)) break;
        if (z.end - z.in < 8) { idx__fail(&z, "truncated gzip stream"); break; }
        crc = z.len > z.start ? idx__crc32(0, z.out + z.start, z.len - z.start) : 0; /* out is NULL if empty */
        if (crc != idx__le32(z.in)) {
            idx__fail(&z, "corrupt gzip stream: CRC32 mismatch");
            break;
        }
        if (idx__le32(z.in + 4) != (uint32_t)(z.len - z.start)) {
            idx__fail(&z, "corrupt gzip stream: length mismatch");
            break;
        }
        z.in += 8;
        /* Another member may follow (as from `cat a.gz b.gz`); anything else is ignored like gzip does. */
    } while (z.end - z.in >= 2 && z.in[0] == 0x1f && z.in[1] == 0x8b);
    if (z.err) {
        IDX_FREE(z.out);
        *out = NULL;
        *out_len = 0;
        if (err) *err = z.err;
        return -1;
    }
    *out = z.out;
    *out_len = z.len;
    if (err) *err = NULL;
    return 0;
}

/* ---- IDX ---- */

static uint32_t idx__be32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

IDX_DEF void idx_free(idx_set *s) {
    if (!s) return;
    IDX_FREE(s->pixels);
    IDX_FREE(s->labels);
    memset(s, 0, sizeof *s);
}

IDX_DEF int idx_load_mem(const unsigned char *data, size_t len, int want_images,
                         idx_set *out, char *err, size_t errlen) {
    const uint32_t magic = want_images ? 0x00000803u : 0x00000801u;
    const char *kind = want_images ? "images" : "labels";
    const size_t head = want_images ? 16 : 8;
    unsigned char *buf = NULL, *dst;
    const unsigned char *p = data;
    size_t n = len;
    unsigned long long count, rows = 0, cols = 0, size;
    memset(out, 0, sizeof *out);

    if (len >= 2 && data[0] == 0x1f && data[1] == 0x8b) {
        const char *e;
        if (idx_gunzip(data, len, IDX_MAX_OUTPUT, &buf, &n, &e)) {
            idx__msg(err, errlen, "%s", e);
            return -1;
        }
        p = buf;
    }
    if (n < 4) {
        idx__msg(err, errlen, "too short for an IDX file (%lu bytes)", (unsigned long)n);
        goto fail;
    }
    if (idx__be32(p) != magic) {
        uint32_t m = idx__be32(p);
        idx__msg(err, errlen, "wrong magic 0x%08lx (expected IDX %s 0x%08lx)%s", (unsigned long)m, kind,
                 (unsigned long)magic,
                 m == 0x803 ? ": this is an images file" : m == 0x801 ? ": this is a labels file" : "");
        goto fail;
    }
    if (n < head) {
        idx__msg(err, errlen, "truncated IDX %s header", kind);
        goto fail;
    }
    count = idx__be32(p + 4);
    if (want_images) {
        rows = idx__be32(p + 8);
        cols = idx__be32(p + 12);
    }
    if (count == 0 || count > INT_MAX || (want_images && (rows == 0 || cols == 0 || rows > 65535 || cols > 65535))) {
        idx__msg(err, errlen, "bad IDX %s dimensions %llu x %llu x %llu", kind, count, rows, cols);
        goto fail;
    }
    size = want_images ? count * rows * cols : count;
    if (n - head != size) {
        const char *what = n - head < size ? "truncated" : "unexpected data at the end";
        if (want_images)
            idx__msg(err, errlen, "%s: header says %llu images of %llux%llu (%llu bytes) but %lu bytes follow", what,
                     count, rows, cols, size, (unsigned long)(n - head));
        else
            idx__msg(err, errlen, "%s: header says %llu labels but %lu bytes follow", what, count,
                     (unsigned long)(n - head));
        goto fail;
    }
    if (!want_images) {
        size_t i;
        for (i = 0; i < size; i++)
            if (p[head + i] > 9) {
                idx__msg(err, errlen, "label %d out of range 0..9 at index %lu", p[head + i], (unsigned long)i);
                goto fail;
            }
    }

    /* Keep the payload: in place if we decompressed it, else in a copy. */
    if (buf) {
        memmove(buf, buf + head, (size_t)size);
        dst = buf;
    } else {
        dst = (unsigned char *)IDX_MALLOC((size_t)size);
        if (!dst) {
            idx__msg(err, errlen, "out of memory");
            return -1;
        }
        memcpy(dst, p + head, (size_t)size);
    }
    out->count = (int)count;
    out->rows = (int)rows;
    out->cols = (int)cols;
    if (want_images) out->pixels = dst;
    else out->labels = dst;
    return 0;
fail:
    IDX_FREE(buf);
    return -1;
}

/* Reads a whole file into a new buffer. */
static int idx__read_file(const char *path, unsigned char **data, size_t *len, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    unsigned char *buf = NULL;
    size_t n = 0, cap = 0;
    *data = NULL;
    *len = 0;
    if (!f) {
        idx__msg(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    for (;;) {
        size_t got;
        if (n == cap) {
            unsigned char *p;
            if (cap >= IDX_MAX_OUTPUT) {
                idx__msg(err, errlen, "%s: file larger than the limit (IDX_MAX_OUTPUT)", path);
                goto fail;
            }
            cap = cap ? (cap > IDX_MAX_OUTPUT / 2 ? IDX_MAX_OUTPUT : cap * 2) : 1 << 20;
            p = (unsigned char *)IDX_REALLOC(buf, cap);
            if (!p) {
                idx__msg(err, errlen, "%s: out of memory", path);
                goto fail;
            }
            buf = p;
        }
        got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) break;
    }
    if (ferror(f)) {
        idx__msg(err, errlen, "%s: read error: %s", path, strerror(errno));
        goto fail;
    }
    fclose(f);
    *data = buf;
    *len = n;
    return 0;
fail:
    fclose(f);
    IDX_FREE(buf);
    return -1;
}

IDX_DEF int idx_load_file(const char *path, int want_images, idx_set *out, char *err, size_t errlen) {
    unsigned char *data;
    size_t len;
    char msg[256];
    int r;
    memset(out, 0, sizeof *out);
    if (idx__read_file(path, &data, &len, err, errlen)) return -1;
    r = idx_load_mem(data, len, want_images, out, msg, sizeof msg);
    if (r) idx__msg(err, errlen, "%s: %s", path, msg);
    IDX_FREE(data);
    return r;
}

IDX_DEF int idx_load_pair(const char *images_path, const char *labels_path, idx_set *out,
                          char *err, size_t errlen) {
    idx_set labels;
    if (idx_load_file(images_path, 1, out, err, errlen)) return -1;
    if (idx_load_file(labels_path, 0, &labels, err, errlen)) {
        idx_free(out);
        return -1;
    }
    if (labels.count != out->count) {
        idx__msg(err, errlen, "%s: %d images but %s has %d labels", images_path, out->count, labels_path,
                 labels.count);
        idx_free(&labels);
        idx_free(out);
        return -1;
    }
    out->labels = labels.labels;
    return 0;
}

/* Writes dir/name.gz or dir/name, whichever exists, into path. */
static int idx__find_one(const char *dir, const char *name, char *path, size_t size) {
    static const char *const ext[2] = {".gz", ""};
    int i;
    for (i = 0; i < 2; i++) {
        int n = snprintf(path, size, "%s/%s%s", dir, name, ext[i]);
        FILE *f;
        if (n < 0 || (size_t)n >= size) return -1;
        f = fopen(path, "rb");
        if (f) {
            fclose(f);
            return 0;
        }
    }
    path[0] = '\0';
    return -1;
}

IDX_DEF int idx_find(const char *dir, idx_paths *p, char *err, size_t errlen) {
    static const char *const defaults[3] = {
        "examples/data/fashion-mnist-subset", "data/fashion-mnist-subset", "../examples/data/fashion-mnist-subset"};
    static const char *const names[4] = {
        "train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"};
    const char *const *dirs = defaults;
    int ndirs = 3, d;
    if (dir && *dir) {
        dirs = &dir;
        ndirs = 1;
    }
    for (d = 0; d < ndirs; d++) {
        char *dst[4];
        int i;
        dst[0] = p->train_images;
        dst[1] = p->train_labels;
        dst[2] = p->test_images;
        dst[3] = p->test_labels;
        for (i = 0; i < 4; i++)
            if (idx__find_one(dirs[d], names[i], dst[i], sizeof p->train_images)) break;
        if (i == 4) {
            snprintf(p->dir, sizeof p->dir, "%s", dirs[d]);
            return 0;
        }
        if (ndirs == 1) {
            idx__msg(err, errlen, "%s: no %s or %s.gz there (set DATA=dir to the Fashion-MNIST files)", dirs[d],
                     names[i], names[i]);
            return -1;
        }
    }
    idx__msg(err, errlen,
             "Fashion-MNIST not found in %s, %s or %s (run from the repository root, or set DATA=dir)", defaults[0],
             defaults[1], defaults[2]);
    return -1;
}

IDX_DEF int idx_load_dir(const char *dir, int rows, int cols, idx_set *train, idx_set *test, idx_paths *p,
                         char *err, size_t errlen) {
    idx_paths own;
    idx_set *sets[2];
    int i;
    sets[0] = train, sets[1] = test;
    memset(train, 0, sizeof *train);
    memset(test, 0, sizeof *test);
    if (!p) p = &own;
    if (idx_find(dir, p, err, errlen)) return -1;
    for (i = 0; i < 2; i++) {
        const char *images = i ? p->test_images : p->train_images;
        if (idx_load_pair(images, i ? p->test_labels : p->train_labels, sets[i], err, errlen)) break;
        if ((rows && sets[i]->rows != rows) || (cols && sets[i]->cols != cols)) {
            idx__msg(err, errlen, "%s: images are %dx%d, the model needs %dx%d", images, sets[i]->rows, sets[i]->cols,
                     rows, cols);
            break;
        }
    }
    if (i == 2) return 0;
    idx_free(train);
    idx_free(test);
    return -1;
}

IDX_DEF void idx_floats(const idx_set *s, int first, int n, float *x, int *labels) {
    size_t size = (size_t)s->rows * s->cols, i;
    const unsigned char *px = s->pixels + size * (size_t)first;
    for (i = 0; i < size * (size_t)n; i++) x[i] = px[i] * (1.0f / 255);
    for (i = 0; labels && i < (size_t)n; i++) labels[i] = s->labels[first + i];
}

IDX_DEF int idx_fill(void *set, const int *index, int n, float *x, int *labels, float *targets) {
    const idx_set *s = (const idx_set *)set;
    int i;
    (void)targets;
    for (i = 0; i < n; i++) idx_floats(s, index[i], 1, x + (size_t)i * s->rows * s->cols, labels ? labels + i : NULL);
    return 0;
}

#endif /* IDX_H */

/* This file is part of the dl.h examples and is under the same licence as dl.h.
 * Fashion-MNIST itself is MIT-licensed, (c) 2017 Zalando SE: see
 * examples/data/fashion-mnist-subset/LICENSE. */
