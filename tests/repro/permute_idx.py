#!/usr/bin/env python3
"""Writes a copy of Fashion-MNIST's IDX files with the images in another order (ctest label repro).

  permute_idx.py SRC_DIR DST_DIR

For each split (train, t10k) found in SRC_DIR (plain or .gz), writes DST_DIR/SPLIT-images-idx3-ubyte
and DST_DIR/SPLIT-labels-idx1-ubyte (uncompressed) with the images sorted by class, largest class
first, and within a class in reverse file order: as far from the original order as a sort by
class gets. gradcomp_reproduce must give byte-identical outputs on both directories.
"""
import gzip
import os
import struct
import sys


def read(path):
    for candidate in (path, path + ".gz"):
        if os.path.isfile(candidate):
            opener = gzip.open if candidate.endswith(".gz") else open
            with opener(candidate, "rb") as f:
                return f.read()
    sys.exit(f"permute_idx: neither {path} nor {path}.gz exists")


def main(src, dst):
    os.makedirs(dst, exist_ok=True)
    for split in ("train", "t10k"):
        images = read(os.path.join(src, f"{split}-images-idx3-ubyte"))
        labels = read(os.path.join(src, f"{split}-labels-idx1-ubyte"))
        magic, count, rows, cols = struct.unpack(">IIII", images[:16])
        label_magic, label_count = struct.unpack(">II", labels[:8])
        if magic != 0x803 or label_magic != 0x801 or label_count != count:
            sys.exit(f"permute_idx: {split}: unexpected headers")
        size = rows * cols
        order = sorted(range(count), key=lambda i: (labels[8 + i], i), reverse=True)
        with open(os.path.join(dst, f"{split}-images-idx3-ubyte"), "wb") as f:
            f.write(images[:16])
            f.write(b"".join(images[16 + i * size:16 + (i + 1) * size] for i in order))
        with open(os.path.join(dst, f"{split}-labels-idx1-ubyte"), "wb") as f:
            f.write(labels[:8])
            f.write(bytes(labels[8 + i] for i in order))
    print(f"permute_idx: wrote {dst} (images sorted by class, descending)")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
