"""scikit-learn's bundled 8x8 digits (1,797 images, values 0..16): a small offline test set."""
from __future__ import annotations

from typing import Tuple

import numpy as np

__all__ = ["load_digits_8x8"]


def load_digits_8x8() -> Tuple[np.ndarray, np.ndarray]:
    """Images ``(1797, 8, 8)`` uint8 scaled to 0..255 and labels ``(1797,)`` int64."""
    from sklearn.datasets import load_digits

    d = load_digits()
    X = np.clip(np.rint(d.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)
    return X, d.target.astype(np.int64)
