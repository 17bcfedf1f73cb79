#!/bin/sh
# Rebuilds fashion-mnist-subset/ from the full Fashion-MNIST data set: the FIRST
# 5000 training and the FIRST 1000 test images with their labels, as gzip IDX
# files under the standard names.
#
#   examples/data/make_subset.sh [SRC_DIR]
#
# SRC_DIR holds the four standard .gz files (default: /usr/share/datasets/fashion-mnist,
# from the Debian package dataset-fashion-mnist). Needs python3 (standard
# library only). The output is deterministic: gzip level 9, no file name, mtime 0.
set -eu
src=${1:-/usr/share/datasets/fashion-mnist}
dst=$(dirname "$0")/fashion-mnist-subset
mkdir -p "$dst"
python3 - "$src" "$dst" <<'PY'
import gzip, struct, sys
src, dst = sys.argv[1], sys.argv[2]
for name, n in [("train-images-idx3-ubyte", 5000), ("train-labels-idx1-ubyte", 5000),
                ("t10k-images-idx3-ubyte", 1000), ("t10k-labels-idx1-ubyte", 1000)]:
    with gzip.open(f"{src}/{name}.gz", "rb") as f:
        data = f.read()
    magic, count = struct.unpack(">II", data[:8])
    if magic == 0x803:  # images: count, rows, cols, then rows*cols bytes per image
        rows, cols = struct.unpack(">II", data[8:16])
        head, rec = struct.pack(">IIII", magic, n, rows, cols), rows * cols
        body = data[16:16 + n * rec]
    elif magic == 0x801:  # labels: count, then one byte per label
        head, body = struct.pack(">II", magic, n), data[8:8 + n]
    else:
        sys.exit(f"{name}: unexpected magic {magic:#010x}")
    if count < n:
        sys.exit(f"{name}: only {count} items")
    with open(f"{dst}/{name}.gz", "wb") as f:
        f.write(gzip.compress(head + body, compresslevel=9, mtime=0))
    print(f"{dst}/{name}.gz: first {n} of {count}")
PY
