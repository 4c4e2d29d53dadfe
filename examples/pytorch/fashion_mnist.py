"""Fashion-MNIST for the PyTorch examples and tests: the IDX files of Debian's
dataset-fashion-mnist, and the 784-128-10 MLP of the C++ examples (examples/mlp.hpp)."""

import gzip
import os

import numpy as np
import torch

DATA_DIR = os.environ.get("GRADCOMP_FASHION_MNIST", "/usr/share/datasets/fashion-mnist")

_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def _read_idx(path, magic, header_ints):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    head = np.frombuffer(data[:4 * header_ints], dtype=">u4")
    if int(head[0]) != magic:
        raise ValueError(f"{path}: magic {int(head[0]):#x}, expected {magic:#x} (not an IDX file of this kind)")
    body = np.frombuffer(data[4 * header_ints:], dtype=np.uint8)
    expected = int(np.prod(head[1:].astype(np.int64)))
    if body.size != expected:
        raise ValueError(f"{path}: {body.size} bytes of data, the header says {expected}")
    return body.reshape([int(v) for v in head[1:]])


def load(split="train", limit=None, data_dir=DATA_DIR):
    """(images float32 [n, 784] in [0, 1], labels int64 [n]) of the train or test split, the first
    `limit` of them if given."""
    if split not in _FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    images_file, labels_file = (os.path.join(data_dir, f) for f in _FILES[split])
    for f in (images_file, labels_file):
        if not os.path.exists(f):
            raise FileNotFoundError(f"{f} is missing (apt-get install dataset-fashion-mnist, or set "
                                    "GRADCOMP_FASHION_MNIST to a directory with the IDX files)")
    images = _read_idx(images_file, 0x803, 4)
    labels = _read_idx(labels_file, 0x801, 2)
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    x = torch.from_numpy(images.reshape(len(images), -1).astype(np.float32) / 255.0)
    y = torch.from_numpy(labels.astype(np.int64))
    return x, y


def mlp(hidden=128, seed=0):
    """784-hidden-10 with ReLU, the same on every rank for a given seed."""
    g = torch.Generator().manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(784, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 10))
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2:
                p.normal_(0.0, (2.0 / p.shape[1]) ** 0.5, generator=g)
            else:
                p.zero_()
    return model
