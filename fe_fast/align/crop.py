"""FFHQ-style aligned crop from 68 landmarks, and its inverse (paste an edited crop back).

The quad (Karras et al., FFHQ preparation): eye centres e_l = mean(36..41), e_r = mean(42..47),
e = (e_l + e_r) / 2, mouth m = (p48 + p54) / 2, u = e_r - e_l, v = m - e;
x = u - flipud(v) * [-1, 1], normalised and scaled by max(2 |u|, 1.8 |v|); y = flipud(x) * [-1, 1];
c = e + 0.1 v; quad = [c - x - y, c - x + y, c + x + y, c + x - y] (upper-left, lower-left,
lower-right, upper-right). The quad is a square, so crop and paste-back are affine maps.

Coordinates: landmarks have pixel centres at integer coordinates; the quad is stored in the same
convention. Internally Pillow's continuous coordinates (pixel i spans [i, i + 1)) are used.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["AlignedCrop", "align_crop", "ffhq_quad", "paste_back"]


def ffhq_quad(landmarks) -> np.ndarray:
    """The FFHQ crop quad (4, 2) of 68 landmarks (only x, y are used); see the module docstring."""
    L = np.asarray(landmarks, dtype=np.float64)
    if L.ndim != 2 or L.shape[0] != 68 or L.shape[1] < 2:
        raise ValueError(f"landmarks must have shape (68, 2) or (68, 3), got {L.shape}")
    lm = L[:, :2]
    idx = [*range(36, 48), 48, 54]
    if np.isnan(lm[idx]).any():
        raise ValueError("the FFHQ crop needs the eye (36-47) and mouth-corner (48, 54) landmarks")
    eye_l, eye_r = lm[36:42].mean(0), lm[42:48].mean(0)
    eye_avg = (eye_l + eye_r) / 2
    eye_to_eye = eye_r - eye_l
    mouth_avg = (lm[48] + lm[54]) / 2
    eye_to_mouth = mouth_avg - eye_avg
    x = eye_to_eye - np.flipud(eye_to_mouth) * [-1, 1]
    norm = math.hypot(*x)
    if not norm > 0:
        raise ValueError("degenerate landmarks: eyes and mouth coincide")
    x = x / norm * max(math.hypot(*eye_to_eye) * 2.0, math.hypot(*eye_to_mouth) * 1.8)
    y = np.flipud(x) * [-1, 1]
    c = eye_avg + eye_to_mouth * 0.1
    return np.stack([c - x - y, c - x + y, c + x + y, c + x - y])


def _affine_out_to_src(quad: np.ndarray, size: int) -> np.ndarray:
    """2x3 matrix: output continuous coords (u, v) in [0, size]^2 -> source continuous coords."""
    q = np.asarray(quad, dtype=np.float64) + 0.5  # pixel-centre -> continuous coordinates
    ex, ey = (q[3] - q[0]) / size, (q[1] - q[0]) / size
    return np.array([[ex[0], ey[0], q[0, 0]], [ex[1], ey[1], q[0, 1]]])


def _invert_affine(A: np.ndarray) -> np.ndarray:
    M = np.vstack([A, [0.0, 0.0, 1.0]])
    return np.linalg.inv(M)[:2]


def _to_pil(image):
    from PIL import Image

    if isinstance(image, Image.Image):
        return image.convert("RGB")
    a = np.asarray(image)
    if a.ndim != 3 or a.shape[2] != 3 or a.dtype != np.uint8:
        raise ValueError(f"image must be an RGB uint8 array (H, W, 3) or a PIL image, got {a.dtype} {a.shape}")
    return Image.fromarray(a)


@dataclass
class AlignedCrop:
    """An aligned crop: ``image`` (PIL, size x size), the ``quad`` it came from (source pixel
    coordinates), ``matrix`` (2x3, crop continuous coords -> source continuous coords) and the
    source image size (W, H). :meth:`paste` puts an edited crop back."""

    image: object
    quad: np.ndarray
    matrix: np.ndarray
    size: int
    source_size: tuple

    def paste(self, photo, edited=None, feather: float = 0.04):
        """The photo with ``edited`` (default: this crop) warped back into the quad; see :func:`paste_back`."""
        return paste_back(photo, self if edited is None else edited, self, feather)

    def to_dict(self) -> dict:
        return {"quad": self.quad.tolist(), "size": self.size, "matrix": self.matrix.tolist(),
                "source_size": list(self.source_size)}


def align_crop(image, landmarks=None, size: int = 256, quad=None, supersample: int | None = None) -> AlignedCrop:
    """Crop ``image`` (RGB uint8 array or PIL image) to the FFHQ quad of ``landmarks`` (or a given
    ``quad``) at ``size`` x ``size``. Bilinear sampling at ``supersample`` times the size (default:
    enough to cover the quad's resolution, at most 4) then a Lanczos reduction (anti-aliasing).
    Regions outside the photo are filled by edge replication (mirror padding would invent features)."""
    from PIL import Image

    if not isinstance(size, int) or size < 8:
        raise ValueError(f"size must be an int >= 8, got {size!r}")
    img = _to_pil(image)
    q = ffhq_quad(landmarks) if quad is None else np.asarray(quad, dtype=np.float64)
    if q.shape != (4, 2) or not np.isfinite(q).all():
        raise ValueError(f"quad must be a finite (4, 2) array, got {q.shape}")
    A = _affine_out_to_src(q, size)
    if supersample is None:
        side = math.hypot(*(q[3] - q[0]))
        supersample = int(min(4, max(1, math.ceil(side / size))))
    k = int(supersample)
    W, H = img.size
    # edge replication: pad the photo by its border pixels where the quad leaves it
    lo = np.floor(q.min(0)).astype(int) - 2
    hi = np.ceil(q.max(0)).astype(int) + 2
    pad_l, pad_t = max(0, -lo[0]), max(0, -lo[1])
    pad_r, pad_b = max(0, hi[0] - W), max(0, hi[1] - H)
    if pad_l or pad_t or pad_r or pad_b:
        a = np.pad(np.asarray(img), ((pad_t, pad_b), (pad_l, pad_r), (0, 0)), mode="edge")
        img = Image.fromarray(a)
    Ak = A.copy()
    Ak[:, :2] /= k
    Ak[:, 2] += [pad_l, pad_t]
    out = img.transform((size * k, size * k), Image.AFFINE, tuple(Ak.ravel()), resample=Image.BILINEAR)
    if k > 1:
        out = out.resize((size, size), Image.LANCZOS)
    return AlignedCrop(out, q, A, size, (W, H))


def paste_back(photo, edited, crop: AlignedCrop, feather: float = 0.04):
    """Warp ``edited`` (the crop after editing: PIL image or RGB uint8 array, any size) back into
    ``photo`` through the inverse of ``crop``'s map, blending with a mask whose border is feathered
    over ``feather`` x the crop size. Returns a new PIL image; ``photo`` is not modified."""
    from PIL import Image, ImageFilter

    base = _to_pil(photo)
    if base.size != tuple(crop.source_size):
        raise ValueError(f"photo is {base.size}, the crop was taken from a {tuple(crop.source_size)} image")
    ed = edited.image if isinstance(edited, AlignedCrop) else _to_pil(edited)
    if ed.size != (crop.size, crop.size):
        ed = ed.resize((crop.size, crop.size), Image.LANCZOS)
    inv = _invert_affine(crop.matrix)  # source continuous coords -> crop continuous coords
    warped = ed.transform(base.size, Image.AFFINE, tuple(inv.ravel()), resample=Image.BILINEAR)
    m = int(round(feather * crop.size))
    mask = Image.new("L", (crop.size, crop.size), 0)
    mask.paste(255, (m, m, crop.size - m, crop.size - m))
    if m > 0:
        mask = mask.filter(ImageFilter.GaussianBlur(m / 2))
    mask = mask.transform(base.size, Image.AFFINE, tuple(inv.ravel()), resample=Image.BILINEAR)
    return Image.composite(warped, base, mask)
