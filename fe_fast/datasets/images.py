"""Images for clustering from user files: a folder of images (one sub-folder per class gives the
labels used for scoring), a flat folder (no labels), ``.npy`` / ``.npz`` arrays, and the named
datasets ``digits``, ``mnist-test`` and ``usps`` (:func:`load_clustering_data`)."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np

__all__ = ["IMAGE_EXTENSIONS", "load_image_folder", "load_array_file", "load_clustering_data", "NAMED_DATASETS"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm")
NAMED_DATASETS = ("digits", "mnist-test", "usps")


def _images_in(folder: Path) -> List[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def load_image_folder(path, grayscale: Optional[bool] = None, size: Optional[Tuple[int, int]] = None):
    """Read a folder of images.

    If ``path`` holds sub-folders with images, each sub-folder is a class (sorted names give labels
    0, 1, ...; ``class_names`` keeps the names) and images directly in ``path`` are ignored;
    otherwise the images in ``path`` are read without labels. All images must share one size unless
    ``size=(H, W)`` is given (then they are resized). ``grayscale=None`` converts to grey when every
    image is grey, else RGB. Returns ``(X, y, class_names)`` with ``X`` uint8 ``(N, H, W)`` or
    ``(N, H, W, 3)`` and ``y`` int64 or None.
    """
    from PIL import Image

    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder not found: {root}")
    subdirs = sorted(d for d in root.iterdir() if d.is_dir() and _images_in(d))
    files: List[Path] = []
    labels: List[int] = []
    names: List[str] = []
    if subdirs:
        for i, d in enumerate(subdirs):
            imgs = _images_in(d)
            files += imgs
            labels += [i] * len(imgs)
            names.append(d.name)
    else:
        files = _images_in(root)
    if not files:
        raise ValueError(f"{root}: no images found (extensions {', '.join(IMAGE_EXTENSIONS)})")
    pil = []
    for f in files:
        with Image.open(f) as im:
            im.load()
            pil.append(im.copy())
    if grayscale is None:
        grayscale = all(im.mode in ("L", "1", "I", "I;16", "F", "LA") for im in pil)
    mode = "L" if grayscale else "RGB"
    arrays = []
    for f, im in zip(files, pil):
        im = im.convert(mode)
        if size is not None:
            im = im.resize((int(size[1]), int(size[0])), Image.BILINEAR)
        arrays.append(np.asarray(im, dtype=np.uint8))
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        raise ValueError(f"{root}: images have different sizes {sorted(shapes)[:4]}; pass size=(H, W) to resize them")
    X = np.stack(arrays)
    y = np.asarray(labels, dtype=np.int64) if subdirs else None
    return X, y, names


def load_array_file(path) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """Images (and labels) from ``.npy`` (images only) or ``.npz``.

    In an ``.npz`` the images are the array named ``X``, ``x``, ``images``, ``data`` or ``fea``
    (else the only array), labels the one named ``y``, ``labels``, ``targets``, ``target`` or
    ``gnd`` (optional).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"array file not found: {path}")
    if path.suffix.lower() == ".npy":
        return np.load(path, allow_pickle=False), None
    if path.suffix.lower() != ".npz":
        raise ValueError(f"{path}: expected a .npy or .npz file")
    with np.load(path, allow_pickle=False) as z:
        keys = list(z.keys())
        xk = next((k for k in ("X", "x", "images", "data", "fea") if k in keys), None)
        yk = next((k for k in ("y", "labels", "targets", "target", "gnd") if k in keys), None)
        if xk is None:
            rest = [k for k in keys if k != yk]
            if len(rest) != 1:
                raise ValueError(f"{path}: cannot tell which array holds the images among {keys}; name it 'X'")
            xk = rest[0]
        X = z[xk]
        y = z[yk].reshape(-1) if yk is not None else None
    if y is not None and y.shape[0] != X.shape[0]:
        raise ValueError(f"{path}: {y.shape[0]} labels for {X.shape[0]} images")
    return X, y


def load_clustering_data(data: str, data_dir: Optional[str] = None):
    """Resolve ``data`` (a named dataset, a folder, or an ``.npy``/``.npz``/``.mat``/IDX file).

    Returns ``(X, y)``; ``y`` is None when the labels are unknown. Named datasets: ``digits``
    (scikit-learn, bundled), ``mnist-test`` and ``usps`` (looked up in ``data_dir``, then
    ``$FE_FAST_DATA``, then ``../shared/data``; see :mod:`fe_fast.datasets._paths`).
    """
    if data == "digits":
        from .digits import load_digits_8x8

        return load_digits_8x8()
    if data == "mnist-test":
        from .mnist import load_mnist_test

        return load_mnist_test(data_dir)
    if data == "usps":
        from .usps import load_usps

        return load_usps(data_dir)
    p = Path(data)
    if p.is_dir():
        X, y, _ = load_image_folder(p)
        return X, y
    if not p.exists():
        raise FileNotFoundError(
            f"{data}: no such file or folder (named datasets: {', '.join(NAMED_DATASETS)})"
        )
    suffix = "".join(p.suffixes[-2:]).lower() if p.suffix.lower() == ".gz" else p.suffix.lower()
    if suffix in (".npy", ".npz"):
        return load_array_file(p)
    if suffix == ".mat":
        from .usps import load_usps_mat

        return load_usps_mat(p)
    if "idx3" in p.name:
        from .mnist import load_mnist

        lab = p.parent / p.name.replace("images", "labels").replace("idx3", "idx1")
        return load_mnist(p, lab if lab.is_file() and lab != p else None)
    if p.suffix.lower() in IMAGE_EXTENSIONS:
        raise ValueError(f"{data}: give the folder that holds the images, not a single image")
    raise ValueError(f"{data}: unsupported data file (use a folder of images, .npy, .npz, .mat or an MNIST idx file)")
