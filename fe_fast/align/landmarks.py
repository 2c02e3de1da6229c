"""Sources of the 68 iBUG landmarks of a face image: the ``face-alignment`` package's 3D FAN, a file
(.npy / .json / .txt), a user callable, or the toy face world's ground truth.

Convention everywhere: array (68, 3) (or (68, 2) for 2D-only files), x right and y down in pixels
with pixel centres at integer coordinates, z the depth in pixel units (smaller = closer).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Union

import numpy as np

__all__ = ["FAN_WEIGHT_FILES", "fan_landmarks", "get_landmarks", "load_landmarks", "toy_landmarks"]

#: Files the ``face-alignment`` package downloads into ``torch.hub.get_dir()/checkpoints`` for
#: ``LandmarksType.THREE_D`` (face detector, 3D FAN, depth network), named by their URL basenames.
FAN_WEIGHT_FILES = ("s3fd-619a316812.pth", "3DFAN4-4a694010b9.zip", "depth-6c4283c0e0.zip")


def _as_landmarks(a, what: str) -> np.ndarray:
    L = np.asarray(a, dtype=np.float64)
    if L.ndim != 2 or L.shape[0] != 68 or L.shape[1] not in (2, 3):
        raise ValueError(f"{what}: expected 68 landmarks of 2 or 3 coordinates, got shape {L.shape}")
    if np.isinf(L).any():
        raise ValueError(f"{what}: landmarks contain Inf")
    return L


def load_landmarks(path) -> np.ndarray:
    """Landmarks from ``.npy`` (array), ``.json`` (a 68 x 2|3 list, or an object with a
    ``"landmarks"`` key, as ``fe-fast align --json`` writes) or ``.txt``/``.csv`` (one point per row)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"landmark file not found: {p}")
    ext = p.suffix.lower()
    if ext == ".npy":
        a = np.load(p, allow_pickle=False)
    elif ext == ".json":
        a = json.loads(p.read_text())
        if isinstance(a, dict):
            if "landmarks" not in a:
                raise ValueError(f"{p}: a JSON object needs a 'landmarks' key")
            a = a["landmarks"]
    elif ext in (".txt", ".csv"):
        a = np.loadtxt(p, delimiter="," if ext == ".csv" else None)
    else:
        raise ValueError(f"{p}: unsupported landmark file type {ext!r} (use .npy, .json, .txt or .csv)")
    return _as_landmarks(a, str(p))


def fan_landmarks(image, device: str = "cpu", face_index: int = 0) -> np.ndarray:
    """68 3D landmarks of one face by the ``face-alignment`` package's 3D FAN
    (``LandmarksType.THREE_D``). Offline, its weights must already be in
    ``torch.hub.get_dir()/checkpoints``: :data:`FAN_WEIGHT_FILES`. A missing file is reported before
    anything tries to download it."""
    try:
        import face_alignment
    except ImportError as e:
        raise ImportError("3D FAN landmarks need the face-alignment package: pip install face-alignment "
                          "(or pass landmarks from a file or a callable)") from e
    import torch

    folder = Path(torch.hub.get_dir()) / "checkpoints"
    missing = [f for f in FAN_WEIGHT_FILES if not (folder / f).is_file()]
    if missing:
        raise FileNotFoundError(
            f"face-alignment weights missing: {', '.join(missing)}. Put them in {folder} "
            "(they are the files face-alignment downloads from www.adrianbulat.com/downloads/python-fan "
            "and the s3fd detector URL), or pass landmarks from a file (--landmarks).")
    kind = getattr(face_alignment.LandmarksType, "THREE_D", None) or face_alignment.LandmarksType._3D
    fa = face_alignment.FaceAlignment(kind, device=device)
    found = fa.get_landmarks_from_image(np.asarray(image))
    if not found:
        raise ValueError("no face found in the image")
    if face_index >= len(found):
        raise ValueError(f"face {face_index} requested, {len(found)} found")
    return _as_landmarks(found[face_index], "face-alignment output")


def toy_landmarks(params, size: int) -> np.ndarray:
    """Ground-truth 3D landmarks of a toy face (``fe_fast.datasets.toyfaces`` parameters)."""
    from fe_fast.datasets.toyfaces import render_with_labels

    return render_with_labels(params, size).landmarks.astype(np.float64)


LandmarkSource = Union[str, Path, np.ndarray, Callable, None]


def get_landmarks(image, source: LandmarkSource = None, device: str = "cpu") -> np.ndarray:
    """Landmarks of ``image`` from ``source``: None or ``"fan"`` (3D FAN), a file path, an array, or a
    callable ``f(image) -> (68, 2|3)``."""
    if source is None or (isinstance(source, str) and source == "fan"):
        return fan_landmarks(image, device=device)
    if isinstance(source, (str, Path)):
        return load_landmarks(source)
    if callable(source):
        return _as_landmarks(source(image), "landmark callable")
    return _as_landmarks(source, "landmarks")
