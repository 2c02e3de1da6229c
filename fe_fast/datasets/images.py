"""Images for clustering from user files: a folder of images (one sub-folder per class gives the
labels used for scoring), a flat folder (no labels), ``.npy`` / ``.npz`` arrays, and the named
datasets ``digits``, ``mnist-test`` and ``usps`` (:func:`load_images`, :func:`load_clustering_data`).

Folders of real photographs (:func:`read_image_folder`):

* **colour or grey**: every image is read as grey (``L``) when all of them are grey, else as RGB
  (grey images are then repeated over the three channels; alpha is dropped); 16-bit grey is scaled
  to 8 bits; the EXIF orientation of photographs is applied.
* **sizes** (the resize policy): with ``size=(H, W)`` every image is brought to ``H x W``; without
  it, images that already share one size no larger than ``max_side`` (default 64) pixels a side
  are kept as they are, and otherwise the size is the median height and median width of the
  readable images, rounded to integers and scaled down (aspect ratio kept) so that the longer side
  is at most ``max_side`` (:func:`default_image_size`). An image whose aspect ratio differs from
  ``W / H`` is centre-cropped to that ratio first, then resized (bilinear, antialiased when
  shrinking), so faces are not stretched.
* **unreadable files** (a file with an image extension that the decoder rejects, e.g. truncated
  or not an image at all) are skipped and reported by name in ``skipped``; the others are kept.
  Only when no file can be read is it an error.
* **labels** (``labels=None``, the default): when the folder holds sub-folders with images, each
  sub-folder is a class (sorted names give labels 0, 1, ...) and images directly in the folder are
  ignored (with a warning); otherwise the images are read without labels. ``labels=False`` ignores
  the sub-folders as classes and reads every image below the folder, unlabelled; ``labels=True``
  requires class sub-folders.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np

__all__ = [
    "IMAGE_EXTENSIONS", "NAMED_DATASETS", "DEFAULT_MAX_SIDE", "ImageSet", "default_image_size",
    "read_image_folder", "load_image_folder", "load_array_file", "load_images", "load_clustering_data",
]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm")
NAMED_DATASETS = ("digits", "mnist-test", "usps")
#: Longest side of the images a folder is resized to when no size is given (the encoder adapts to
#: the size, fe_fast.clustering.autoencoder.encoder_layout; 64 keeps a CPU epoch short).
DEFAULT_MAX_SIDE = 64
_GREY_MODES = ("L", "1", "I", "I;16", "I;16B", "I;16L", "I;16N", "F", "LA", "La")


@dataclass
class ImageSet:
    """Images ready for clustering and where they came from.

    ``images``: uint8 ``(N, H, W)`` (grey) or ``(N, H, W, 3)`` for folders, the stored array for
    array files and named datasets; ``labels``: int64 ``(N,)`` or None; ``class_names``: the
    sub-folder names of the labels (folders only); ``files``: the file of each image (folders
    only); ``skipped``: ``"name: reason"`` of every unreadable file; ``size``: ``(H, W)``."""

    images: np.ndarray
    labels: Optional[np.ndarray] = None
    class_names: List[str] = field(default_factory=list)
    files: List[str] = field(default_factory=list)
    skipped: List[str] = field(default_factory=list)

    @property
    def size(self) -> Tuple[int, int]:
        shape = self.images.shape
        return (int(shape[1]), int(shape[2])) if self.images.ndim in (3, 4) else (0, 0)


def _images_in(folder: Path) -> List[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def _check_size(size, name: str = "size") -> Tuple[int, int]:
    try:
        h, w = (int(v) for v in size)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be two integers (H, W), got {size!r}") from None
    if h < 4 or w < 4:
        raise ValueError(f"{name} must be at least 4 x 4 pixels, got {h} x {w}")
    return h, w


def default_image_size(sizes: Sequence[Tuple[int, int]], max_side: int = DEFAULT_MAX_SIDE) -> Tuple[int, int]:
    """The resize policy's ``(H, W)`` for images of ``sizes`` (each ``(h, w)``).

    One shared size no larger than ``max_side`` on its longer side is kept; otherwise the median
    height and width, rounded, scaled down (aspect kept) to a longer side of ``max_side``, and at
    least 4 pixels (the encoder's minimum)."""
    if not sizes:
        raise ValueError("sizes: expected at least one image size")
    if max_side < 4:
        raise ValueError(f"max_side must be >= 4, got {max_side}")
    uniq = set(tuple(s) for s in sizes)
    if len(uniq) == 1:
        (h, w), = uniq
        if max(h, w) <= max_side:
            return int(h), int(w)
    arr = np.asarray(sizes, dtype=np.float64)
    h, w = float(np.median(arr[:, 0])), float(np.median(arr[:, 1]))
    scale = min(1.0, max_side / max(h, w))
    return max(4, int(round(h * scale))), max(4, int(round(w * scale)))


def _to_array(im, mode: str) -> np.ndarray:
    """A PIL image as uint8 ``(h, w)`` (mode ``L``) or ``(h, w, 3)`` (``RGB``)."""
    if im.mode.startswith("I") or im.mode == "F":  # 16/32-bit grey: scale (PIL's convert clips at 255)
        a = np.asarray(im, dtype=np.float64)
        if im.mode != "F":
            a = a / 257.0
        a = np.clip(np.rint(a), 0, 255).astype(np.uint8)
        return a if mode == "L" else np.repeat(a[..., None], 3, axis=2)
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        im = im.convert("RGBA" if mode == "RGB" else "LA")
    return np.asarray(im.convert(mode), dtype=np.uint8)


def _fit_to(arr: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
    """Centre-crop ``arr`` to the aspect ratio of ``size`` = (H, W), then resize (bilinear)."""
    from PIL import Image

    H, W = size
    h, w = arr.shape[:2]
    if (h, w) == (H, W):
        return arr
    if w * H > h * W:  # too wide: crop the width
        cw = max(1, int(round(h * W / H)))
        x0 = (w - cw) // 2
        arr = arr[:, x0 : x0 + cw]
    elif w * H < h * W:  # too tall: crop the height
        ch = max(1, int(round(w * H / W)))
        y0 = (h - ch) // 2
        arr = arr[y0 : y0 + ch]
    im = Image.fromarray(np.ascontiguousarray(arr))
    return np.asarray(im.resize((int(W), int(H)), Image.BILINEAR), dtype=np.uint8)


def read_image_folder(path, size: Optional[Tuple[int, int]] = None, grayscale: Optional[bool] = None,
                      labels: Optional[bool] = None, max_side: int = DEFAULT_MAX_SIDE) -> ImageSet:
    """Read a folder of images with the policy of this module's docstring.

    ``size``: ``(H, W)`` to resize every image to (default: :func:`default_image_size` with
    ``max_side``). ``grayscale``: force grey (True) or RGB (False); None: grey when every image is
    grey. ``labels``: None (sub-folders give labels when there are any), True (they must), False
    (no labels; every image below ``path``). Raises ``FileNotFoundError`` for a missing folder and
    ``ValueError`` when no image can be read (naming the files that could not).
    """
    from PIL import Image, ImageOps

    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder not found: {root}")
    if size is not None:
        size = _check_size(size)
    if labels not in (None, True, False):
        raise ValueError(f"labels must be None, True or False, got {labels!r}")
    subdirs = sorted(d for d in root.iterdir() if d.is_dir() and _images_in(d)) if labels is not False else []
    if labels is True and not subdirs:
        raise ValueError(f"{root}: labels=True needs one sub-folder of images per class, found none")
    files: List[Path] = []
    file_labels: List[int] = []
    names: List[str] = []
    if subdirs:
        loose = _images_in(root)
        if loose:
            warnings.warn(f"{root}: {len(loose)} images directly in the folder are ignored (the sub-folders are "
                          "the classes; pass labels=False to read every image without labels)", UserWarning,
                          stacklevel=2)
        for i, d in enumerate(subdirs):
            imgs = _images_in(d)
            files += imgs
            file_labels += [i] * len(imgs)
            names.append(d.name)
    elif labels is False:
        files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    else:
        files = _images_in(root)
    if not files:
        raise ValueError(f"{root}: no images found (extensions {', '.join(IMAGE_EXTENSIONS)})")
    pil, kept, kept_labels, skipped = [], [], [], []
    for f, lab in zip(files, file_labels or [None] * len(files)):
        try:
            with Image.open(f) as im:
                im.load()
                im = ImageOps.exif_transpose(im) or im
                pil.append(im.copy())
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
            skipped.append(f"{f.relative_to(root)}: {type(exc).__name__}: {exc}")
            continue
        kept.append(f)
        kept_labels.append(lab)
    if not pil:
        raise ValueError(f"{root}: none of the {len(files)} image files could be read: " + "; ".join(skipped[:5]))
    if grayscale is None:
        grayscale = all(im.mode in _GREY_MODES for im in pil)
    mode = "L" if grayscale else "RGB"
    arrays = [_to_array(im, mode) for im in pil]
    if size is None:
        size = default_image_size([a.shape[:2] for a in arrays], max_side=max_side)
    X = np.stack([_fit_to(a, size) for a in arrays])
    y = np.asarray(kept_labels, dtype=np.int64) if subdirs else None
    return ImageSet(X, y, names, [str(f.relative_to(root)) for f in kept], skipped)


def _warn_skipped(skipped: Sequence[str]) -> None:
    if skipped:
        warnings.warn(f"skipped {len(skipped)} unreadable image files: " + "; ".join(skipped), UserWarning,
                      stacklevel=3)


def load_image_folder(path, grayscale: Optional[bool] = None, size: Optional[Tuple[int, int]] = None,
                      labels: Optional[bool] = None, max_side: int = DEFAULT_MAX_SIDE):
    """:func:`read_image_folder` as a tuple ``(X, y, class_names)``; unreadable files are skipped
    with a ``UserWarning`` that names them."""
    s = read_image_folder(path, size=size, grayscale=grayscale, labels=labels, max_side=max_side)
    _warn_skipped(s.skipped)
    return s.images, s.labels, s.class_names


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


def load_images(data: str, data_dir: Optional[str] = None, size: Optional[Tuple[int, int]] = None,
                labels: Optional[bool] = None, max_side: int = DEFAULT_MAX_SIDE) -> ImageSet:
    """Resolve ``data`` (a named dataset, a folder, or an ``.npy``/``.npz``/``.mat``/IDX file) into
    an :class:`ImageSet`.

    Named datasets: ``digits`` (scikit-learn, bundled), ``mnist-test`` and ``usps`` (looked up in
    ``data_dir``, then ``$FE_FAST_DATA``, then ``../shared/data``; see
    :mod:`fe_fast.datasets._paths`). ``size``, ``labels`` and ``max_side`` apply to folders
    (:func:`read_image_folder`); for other data ``size`` is an error and ``labels=False`` drops
    the stored labels.
    """
    p = Path(data)
    if data not in NAMED_DATASETS and p.is_dir():
        return read_image_folder(p, size=size, labels=labels, max_side=max_side)
    if size is not None:
        raise ValueError(f"size: resizing applies to image folders only; {data} is stored at a fixed size")
    X, y = _load_stored(data, data_dir)
    if labels is True and y is None:
        raise ValueError(f"{data}: labels were asked for but the data has none")
    return ImageSet(X, None if labels is False else y)


def load_clustering_data(data: str, data_dir: Optional[str] = None, size: Optional[Tuple[int, int]] = None):
    """:func:`load_images` as ``(X, y)``; ``y`` is None when the labels are unknown. Unreadable
    files of a folder are skipped with a ``UserWarning`` that names them."""
    s = load_images(data, data_dir=data_dir, size=size)
    _warn_skipped(s.skipped)
    return s.images, s.labels


def _load_stored(data: str, data_dir: Optional[str]):
    """``(X, y)`` of a named dataset or an array / .mat / IDX file."""
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
