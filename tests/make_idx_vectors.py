#!/usr/bin/env python3
"""Writes tests/idx_vectors.h: gzip test vectors for tests/test_idx.c.

    python3 tests/make_idx_vectors.py > tests/idx_vectors.h

Valid vectors are made with Python's zlib (one per deflate block type, plus
header flags, several members, an empty stream, a zip bomb); each comes with
its decompressed length and FNV-1a hash. Invalid ones are raw deflate streams
written bit by bit, each checked here to be rejected by zlib too, and wrapped
in a minimal gzip header with a zero trailer (the decoder must fail before it
gets there). Also writes the fuzzer seed corpus to tests/fuzz/corpus_idx/.
"""
import gzip, os, struct, sys, zlib

def fnv1a(data):
    h = 0x811C9DC5
    for b in data:
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return h

def gz(data, level=9, strategy=zlib.Z_DEFAULT_STRATEGY):
    c = zlib.compressobj(level, zlib.DEFLATED, 31, 8, strategy)  # wbits 31: gzip wrapper
    return c.compress(data) + c.flush()

def first_block_type(g):
    assert g[3] == 0, "plain header expected"
    return (g[10] >> 1) & 3

def text_payload(n):
    """Repetitive text mixed with bytes that do not repeat."""
    s = b"abracadabra, fashion mnist! "
    return bytes(s[i % len(s)] if (i // 64) % 2 == 0 else (i * 37 + (i >> 3)) & 0xFF for i in range(n))

def skewed_payload():
    """Symbol k appears fib(k) times in scrambled order: Huffman codes up to 15 bits."""
    fib, out = [1, 1], []
    while len(fib) < 16:
        fib.append(fib[-1] + fib[-2])
    for k, f in enumerate(fib):
        out += [k * 11 + 3] * f
    x = 12345
    for i in range(len(out) - 1, 0, -1):  # Fisher-Yates with an LCG, so no long matches
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
        j = x % (i + 1)
        out[i], out[j] = out[j], out[i]
    return bytes(out)

class Bits:
    def __init__(self):
        self.out, self.acc, self.n = bytearray(), 0, 0
    def put(self, value, n):  # value's low bit first (header fields, extra bits)
        self.acc |= value << self.n
        self.n += n
        while self.n >= 8:
            self.out.append(self.acc & 0xFF); self.acc >>= 8; self.n -= 8
    def code(self, code, n):  # Huffman codes go most significant bit first
        for i in range(n - 1, -1, -1):
            self.put((code >> i) & 1, 1)
    def bytes(self):
        return bytes(self.out) + (bytes([self.acc]) if self.n else b"")

def canonical(lens):
    """symbol -> (code, length) for code lengths, RFC 1951 3.2.2."""
    codes, code = {}, 0
    for L in range(1, 16):
        for s, l in enumerate(lens):
            if l == L:
                codes[s] = (code, L); code += 1
        code <<= 1
    return codes

CL_ORDER = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15]

def dynamic(nlit, ndist, cl_lens, cl_syms, w=None):
    """Dynamic block header: cl_lens are the 19 code length code lengths (by symbol),
    cl_syms the (symbol, extra value) sequence describing the lit/dist lengths."""
    w = w or Bits()
    w.put(1, 1); w.put(2, 2)
    w.put(nlit - 257, 5); w.put(ndist - 1, 5); w.put(19 - 4, 4)
    for s in CL_ORDER:
        w.put(cl_lens[s], 3)
    codes = canonical(cl_lens)
    for sym, extra in cl_syms:
        w.code(*codes[sym])
        if sym in (16, 17, 18):
            w.put(extra, {16: 2, 17: 3, 18: 7}[sym])
    return w

def bad_streams():
    out = []
    w = Bits(); w.put(1, 1); w.put(3, 2)
    out.append(("bad_block_type", w.bytes(), "invalid block type"))

    w = Bits(); w.put(1, 1); w.put(1, 2)           # fixed block
    w.code(0x30 + ord("a"), 8)                     # literal 'a'
    w.code(1, 7); w.code(1, 5)                     # length 3 (symbol 257), distance 2 > 1 byte written
    w.code(0, 7)
    out.append(("distance_too_far", w.bytes(), "distance too far back"))

    w = Bits(); w.put(1, 1); w.put(0, 2)           # stored block, NLEN not ~LEN
    b = w.bytes() + struct.pack("<HH", 5, 5) + b"hello"
    out.append(("stored_bad_nlen", b, "stored block length check"))

    w = dynamic(257, 1, [1] * 19, [])              # 19 one-bit codes: over-subscribed
    out.append(("cl_oversubscribed", w.bytes() + bytes(8), "invalid code lengths code"))

    w = Bits(); w.put(1, 1); w.put(2, 2); w.put(30, 5); w.put(0, 5); w.put(15, 4)  # 287 lit codes
    out.append(("too_many_codes", w.bytes() + bytes(16), "too many length or distance"))

    cl = [0] * 19
    for s in (0, 1, 2, 18): cl[s] = 2              # complete: four 2-bit codes
    cl16 = [0] * 19
    for s in (0, 1, 2, 16): cl16[s] = 2
    w = dynamic(257, 1, cl16, [(16, 0)])           # repeat with nothing to repeat
    out.append(("repeat_first", w.bytes() + bytes(8), "repeated length with no first length"))

    # literal 0 and 256 both 2 bits long: two codes of four, incomplete
    syms = [(2, 0), (18, 127), (18, 106), (2, 0), (1, 0)]
    w = dynamic(257, 1, cl, syms)
    out.append(("incomplete_lit", w.bytes() + bytes(8), "invalid literal/length code lengths"))

    # literals 0 and 1 one bit each, no end-of-block code
    syms = [(1, 0), (1, 0), (18, 127), (18, 106), (1, 0)]
    w = dynamic(257, 1, cl, syms)
    out.append(("no_end_of_block", w.bytes() + bytes(8), "no end-of-block code"))

    # lengths run past nlit + ndist
    syms = [(2, 0), (18, 127), (18, 127)]
    w = dynamic(257, 1, cl, syms)
    out.append(("lengths_overflow", w.bytes() + bytes(8), "too many code lengths"))

    w = Bits(); w.put(1, 1); w.put(1, 2); w.code(0x30 + ord("a"), 8)  # fixed, stops mid-block
    out.append(("truncated_fixed", w.bytes(), "truncated gzip stream"))

    w = Bits(); w.put(1, 1); w.put(1, 2); w.code(0x30 + 1, 8)
    w.code(0xC0 + 286 - 280, 8)                    # length symbol 286: in the fixed code, never valid
    out.append(("bad_length_symbol", w.bytes() + bytes(8), "invalid length code"))

    w = Bits(); w.put(1, 1); w.put(1, 2); w.code(0x30 + 1, 8)
    w.code(1, 7); w.code(30, 5)                    # distance symbol 30
    out.append(("bad_distance_symbol", w.bytes() + bytes(8), "invalid distance code"))

    for name, raw, _ in out:
        try:
            d = zlib.decompressobj(-15)
            d.decompress(raw); d.flush()
            ok = d.eof
        except zlib.error:
            ok = False
        assert not ok, f"zlib accepts {name}"
    return out

def carray(name, data):
    lines = [f"static const unsigned char {name}[{len(data)}] = {{"]
    for i in range(0, len(data), 16):
        lines.append("    " + ", ".join(f"0x{b:02x}" for b in data[i:i + 16]) + ",")
    lines.append("};")
    return "\n".join(lines)

def main():
    here = os.path.dirname(os.path.abspath(__file__))
    text, skew = text_payload(2000), skewed_payload()
    good = [
        ("stored", gz(text, 0), text, 0),
        ("fixed", gz(text, 9, zlib.Z_FIXED), text, 1),
        ("dynamic_level1", gz(text, 1), text, 2),
        ("dynamic_level9", gz(text, 9), text, 2),
        ("dynamic_long_codes", gz(skew, 9), skew, 2),
        ("empty", gz(b"", 9), b"", None),
        ("two_members", gz(text[:700], 9) + gz(text[700:], 1), text, None),
    ]
    for name, g, _, btype in good:
        if btype is not None:
            assert first_block_type(g) == btype, name
    # Every optional header field, and the header CRC over them.
    body = gz(text, 6)[10:]
    head = bytes([0x1F, 0x8B, 8, 0x1F, 1, 2, 3, 4, 0, 3]) + struct.pack("<H", 5) + b"extra" + \
        b"name.idx\0" + b"a comment\0"
    head += struct.pack("<H", zlib.crc32(head) & 0xFFFF)
    good.append(("header_flags", head + body, text, None))
    assert gzip.decompress(head + body) == text
    bomb = gz(bytes(1 << 21), 9)

    o = ["/* Generated by tests/make_idx_vectors.py; do not edit. */", ""]
    o.append("typedef struct idx_vec { const char *name; const unsigned char *gz; size_t len; size_t out_len; unsigned out_fnv; } idx_vec;")
    for name, g, data, _ in good:
        o.append(carray("vec_" + name, g))
    o.append("static const idx_vec good_vectors[] = {")
    for name, g, data, _ in good:
        o.append(f'    {{"{name}", vec_{name}, sizeof vec_{name}, {len(data)}, 0x{fnv1a(data):08x}u}},')
    o.append("};")
    o.append("")
    o.append("/* Raw deflate streams that must be rejected, and part of the expected message. */")
    o.append("typedef struct idx_bad { const char *name; const unsigned char *deflate; size_t len; const char *msg; } idx_bad;")
    bad = bad_streams()
    for name, raw, _ in bad:
        o.append(carray("bad_" + name, raw))
    o.append("static const idx_bad bad_vectors[] = {")
    for name, raw, msg in bad:
        o.append(f'    {{"{name}", bad_{name}, sizeof bad_{name}, "{msg}"}},')
    o.append("};")
    o.append("")
    o.append(f"/* gzip of {1 << 21} zero bytes */")
    o.append(carray("vec_bomb", bomb))
    print("\n".join(o))

    # Seed corpus for tests/fuzz/fuzz_idx.c: small IDX files, gzip and raw.
    corpus = os.path.join(here, "fuzz", "corpus_idx")
    os.makedirs(corpus, exist_ok=True)
    sub = os.path.join(here, "..", "examples", "data", "fashion-mnist-subset")
    imgs = gzip.open(os.path.join(sub, "t10k-images-idx3-ubyte.gz")).read()
    labs = gzip.open(os.path.join(sub, "t10k-labels-idx1-ubyte.gz")).read()
    def images(n): return struct.pack(">IIII", 0x803, n, 28, 28) + imgs[16:16 + n * 784]
    def labels(n): return struct.pack(">II", 0x801, n) + labs[8:8 + n]
    seeds = {
        "images3_level9.gz": gz(images(3), 9),
        "images2_stored.gz": gz(images(2), 0),
        "images2_fixed.gz": gz(images(2), 9, zlib.Z_FIXED),
        "images1_level1.gz": gz(images(1), 1),
        "images1_raw.idx": images(1),
        "labels50_level9.gz": gz(labels(50), 9),
        "labels20_fixed.gz": gz(labels(20), 9, zlib.Z_FIXED),
        "labels10_raw.idx": labels(10),
        "text_header_flags.gz": head + body,
        "labels_two_members.gz": gz(labels(30)[:20], 9) + gz(labels(30)[20:], 1),
        "skewed_long_codes.gz": gz(skew, 9),
    }
    for name, data in seeds.items():
        with open(os.path.join(corpus, name), "wb") as f:
            f.write(data)

main()
