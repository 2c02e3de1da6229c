"""MNIST in the original IDX format (gzip-compressed or not), e.g. the 10,000-image test set
``t10k-images-idx3-ubyte.gz`` / ``t10k-labels-idx1-ubyte.gz`` used in thesis Table 4-3
("MNIST-test", 28x28 grey)."""
from __future__ import annotations

import gzip
from pathlib import Path
from typing import Optional, Tuple

import numpy as np

from ._paths import find_data_file

__all__ = ["read_idx", "load_mnist", "load_mnist_test"]


def _read_bytes(path) -> bytes:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"MNIST file not found: {path}")
    with open(path, "rb") as f:
        head = f.read(2)
    opener = gzip.open if head == b"\x1f\x8b" else open
    with opener(path, "rb") as f:
        return f.read()


def read_idx(path) -> np.ndarray:
    """Read an IDX file (big-endian header: magic with type code and rank, then the sizes).

    Supports the unsigned-byte type (0x08) used by MNIST; ``.gz`` detected from the content.
    """
    data = _read_bytes(path)
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError(f"{path}: not an IDX file (bad magic number)")
    dtype_code, ndim = data[2], data[3]
    if dtype_code != 0x08:
        raise ValueError(f"{path}: IDX type 0x{dtype_code:02x} not supported (only unsigned bytes, 0x08)")
    if ndim < 1 or len(data) < 4 + 4 * ndim:
        raise ValueError(f"{path}: truncated IDX header")
    shape = tuple(int(v) for v in np.frombuffer(data[4 : 4 + 4 * ndim], ">i4"))
    count = int(np.prod(shape))
    payload = np.frombuffer(data, np.uint8, offset=4 + 4 * ndim)
    if payload.size != count:
        raise ValueError(f"{path}: IDX header announces {count} values but the file holds {payload.size}")
    return payload.reshape(shape).copy()


def load_mnist(images_path, labels_path=None) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """Images ``(N, 28, 28)`` uint8 and labels ``(N,)`` int64 (None without a labels file)."""
    X = read_idx(images_path)
    if X.ndim != 3:
        raise ValueError(f"{images_path}: expected a rank-3 image IDX file, got shape {X.shape}")
    y = None
    if labels_path is not None:
        y = read_idx(labels_path).astype(np.int64)
        if y.ndim != 1 or y.shape[0] != X.shape[0]:
            raise ValueError(f"{labels_path}: {y.shape} labels do not match {X.shape[0]} images")
    return X, y


def load_mnist_test(data_dir: Optional[str] = None) -> Tuple[np.ndarray, np.ndarray]:
    """The named dataset ``mnist-test``: 10,000 MNIST test images from ``<DATA>/mnist_t10k/``."""
    img = find_data_file("mnist-test", "mnist_t10k", ["t10k-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte"], data_dir)
    lab = find_data_file("mnist-test", "mnist_t10k", ["t10k-labels-idx1-ubyte.gz", "t10k-labels-idx1-ubyte"], data_dir)
    return load_mnist(img, lab)
