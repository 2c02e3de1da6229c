"""USPS handwritten digits (16x16 grey) from MATLAB ``.mat`` files (thesis Table 4-1).

Two packagings are understood (see ``shared/data/usps/PROVENANCE.md``): ``fea``/``gnd`` (the
11,000-image, 1,100-per-digit variant of thesis Table 4-1, file ``USPS.mat``) and a single
``(N, 257)`` matrix with the pixels then a 1..10 label (``usps_all.mat``, the 9,298 train+test
set). Labels are returned as digits 0..9 (stored label - 1).
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Tuple

import numpy as np

from ._paths import find_data_file

__all__ = ["load_usps_mat", "load_usps"]


def load_usps_mat(path) -> Tuple[np.ndarray, np.ndarray]:
    """Images ``(N, 16, 16)`` uint8 (upright, row-major) and digit labels ``(N,)`` int64."""
    from scipy.io import loadmat

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"USPS file not found: {path}")
    m = {k: v for k, v in loadmat(str(path)).items() if not k.startswith("__")}
    if "fea" in m and "gnd" in m:
        fea, gnd = np.asarray(m["fea"]), np.asarray(m["gnd"]).reshape(-1)
    else:
        mats = [v for v in m.values() if isinstance(v, np.ndarray) and v.ndim == 2 and v.shape[1] == 257]
        if len(mats) != 1:
            raise ValueError(f"{path}: expected variables 'fea'/'gnd' or one (N, 257) matrix, found {sorted(m)}")
        fea, gnd = mats[0][:, :256], mats[0][:, 256]
    if fea.ndim != 2 or fea.shape[1] != 256 or gnd.shape[0] != fea.shape[0]:
        raise ValueError(f"{path}: expected (N, 256) pixels and N labels, got {fea.shape} and {gnd.shape}")
    fea = np.asarray(fea, dtype=np.float64)
    if fea.max() <= 1.0 and fea.min() < 0:  # some copies store pixels in [-1, 1]
        fea = (fea + 1.0) * 127.5
    elif fea.max() <= 1.0:
        fea = fea * 255.0
    X = np.clip(np.rint(fea), 0, 255).astype(np.uint8).reshape(-1, 16, 16)
    y = gnd.astype(np.int64) - 1
    return X, y


def load_usps(data_dir: Optional[str] = None, variant: str = "11k") -> Tuple[np.ndarray, np.ndarray]:
    """The named dataset ``usps``: ``variant="11k"`` reads ``USPS.mat`` (11,000 images, thesis
    Table 4-1), ``variant="9298"`` reads ``usps_all.mat`` (official train + test)."""
    names = {"11k": ["USPS.mat"], "9298": ["usps_all.mat"]}
    if variant not in names:
        raise ValueError(f"variant must be '11k' or '9298', got {variant!r}")
    return load_usps_mat(find_data_file("usps", "usps", names[variant], data_dir))
