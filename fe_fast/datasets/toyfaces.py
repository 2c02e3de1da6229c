"""A procedural face world: seeded, labelled face images with segmentation masks and 3D landmarks.

The thesis's editing experiments (ch. 5-6) use FFHQ/CelebA faces, a CelebA ResNet-50 attribute
teacher and a BiSeNet region teacher; none of these can be fetched offline. This module draws
simple but face-like images whose ground truth is known exactly, so every claim ("this channel
controls smiling") can be checked against the truth.

Geometry. The 68 landmarks come from a real 3D mean face in the iBUG/300-W order (OpenFace's
68-point PDM mean, ``fe_fast/data/mean_face_68_3d.txt``; millimetres, x to image right, y down,
z away from the camera). Per identity the shape is widened/narrowed (``face_width``), the eyes
enlarged (``eye_size``) and a few hidden shape coefficients (nose length, mouth width, jaw width,
eye spacing, brow height) perturb it; per image the expression moves the mouth (``smiling``
lifts the mouth corners, ``mouth_open`` drops the lower lip and chin). The head is posed by
``R = Rz(roll) @ Rx(pitch) @ Ry(yaw)`` about a pivot inside the head and projected
orthographically. Sign conventions: positive ``yaw`` turns the face towards image right (the
nose tip moves to +x), positive ``pitch`` tilts the chin down (the nose tip moves to +y), positive
``roll`` rotates the face clockwise on screen.

Drawing. The cranium and the hair volume are two ellipsoids ray-cast per pixel (so the hairline,
bangs and long hair respect the pose and occlusion); the lower face, brows, eyes, nose, mouth,
beard, wrinkles and glasses are polygons through the projected 3D points, drawn with Pillow at
twice the resolution and box-downsampled (anti-aliasing). The mask is drawn with the same
primitives into a class map at the same twice resolution and reduced by majority (a pixel gets
the class covering at least two of its four sub-samples), so it matches the drawn pixels up to
the anti-aliased edge. One face costs about 1.3 ms at 64x64 on one core.

Lighting: a directional light in the image plane at azimuth ``light_azimuth`` (degrees, 0 = from
image right, 90 = from below, y down) rendered as a linear brightness ramp of +-25 % across the
head; the background is flat.

Public API: :data:`ATTRIBUTES`, :data:`BINARY_ATTRIBUTES`, :data:`MASK_CLASSES`,
:data:`FACTORS`, :func:`sample_params`, :func:`render`, :func:`render_with_labels`,
:class:`ToyFaces`.
"""
from __future__ import annotations

import colorsys
import csv
import json
import math
import os
import threading
from pathlib import Path
from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch.utils.data import Dataset

__all__ = [
    "ATTRIBUTES",
    "BINARY_ATTRIBUTES",
    "CELEBA_NAMES",
    "FACTORS",
    "HAIR_COLORS",
    "FACIAL_HAIR",
    "MASK_CLASSES",
    "RenderResult",
    "ToyFaces",
    "attribute_vector",
    "mean_face_68",
    "read_labels",
    "render",
    "render_with_labels",
    "sample_params",
]

# ----------------------------------------------------------------------------------------------
# Constants
# ----------------------------------------------------------------------------------------------

#: Segmentation classes, index = value in the mask. ``left_eye`` / ``right_eye`` are the subject's
#: (anatomical) left and right: the subject's left eye is iBUG 42-47 and appears on image right.
MASK_CLASSES = (
    "background",
    "skin",
    "hair",
    "left_eye",
    "right_eye",
    "brows",
    "nose",
    "mouth",
    "glasses",
    "beard",
)
_C = {name: i for i, name in enumerate(MASK_CLASSES)}

HAIR_COLORS = ("black", "blond", "brown", "red", "gray")
FACIAL_HAIR = ("none", "goatee", "beard")

#: Entries of the attribute vector returned by :class:`ToyFaces`, in order. The first 13 are
#: binary (0/1); ``skin_tone``, ``eye_size``, ``face_width`` and ``background_hue`` lie in [0, 1];
#: ``light_azimuth``, ``yaw``, ``pitch`` and ``roll`` are in degrees.
ATTRIBUTES = (
    "smiling",
    "mouth_open",
    "eyeglasses",
    "black_hair",
    "blond_hair",
    "brown_hair",
    "red_hair",
    "gray_hair",
    "long_hair",
    "bangs",
    "goatee",
    "beard",
    "old",
    "skin_tone",
    "eye_size",
    "face_width",
    "background_hue",
    "light_azimuth",
    "yaw",
    "pitch",
    "roll",
)
BINARY_ATTRIBUTES = ATTRIBUTES[:13]

#: The closest CelebA attribute for each binary toy attribute, and whether it is negated
#: (CelebA has ``No_Beard`` and ``Young``). ``red_hair`` and ``long_hair`` have no CelebA label.
CELEBA_NAMES = {
    "smiling": ("Smiling", False),
    "mouth_open": ("Mouth_Slightly_Open", False),
    "eyeglasses": ("Eyeglasses", False),
    "black_hair": ("Black_Hair", False),
    "blond_hair": ("Blond_Hair", False),
    "brown_hair": ("Brown_Hair", False),
    "gray_hair": ("Gray_Hair", False),
    "bangs": ("Bangs", False),
    "goatee": ("Goatee", False),
    "beard": ("No_Beard", True),
    "old": ("Young", True),
}


class _Factor(NamedTuple):
    kind: str  # "bernoulli" | "categorical" | "uniform"
    default: Any  # p | probabilities | (lo, hi)
    level: str  # "identity" (shared by all images of an identity) | "image"
    bounds: Optional[tuple]  # allowed range for uniform factors
    doc: str


#: The sampled factors, their default distributions and whether they belong to the identity or
#: vary per image. All factors are independent by default. Override any of them with
#: ``attributes={name: spec}``: a probability for ``bernoulli`` factors (``True``/``False``
#: fix them), a value name, a ``{name: prob}`` dict or a probability sequence for
#: ``categorical`` factors, a number (fixed) or a ``(lo, hi)`` range for ``uniform`` factors.
FACTORS: Dict[str, _Factor] = {
    "smiling": _Factor("bernoulli", 0.5, "image", None,
                       "mouth corners lifted 7-12 mm and widened, lips parted over the teeth, lower eyelids raised (curvature 0.6-1) vs neutral (-0.1-0.1)"),
    "mouth_open": _Factor("bernoulli", 0.3, "image", None,
                          "lower lip and chin dropped by 8-13 mm, dark mouth interior"),
    "eyeglasses": _Factor("bernoulli", 0.3, "image", None,
                          "frames with tinted lenses in front of the eyes (4 frame colours)"),
    "hair_color": _Factor("categorical", (0.2, 0.2, 0.2, 0.2, 0.2), "identity", None,
                          "one of black, blond, brown, red, gray (also colours brows and beard)"),
    "long_hair": _Factor("bernoulli", 0.4, "identity", None,
                         "hair down to below the chin behind and beside the head vs short"),
    "bangs": _Factor("bernoulli", 0.3, "identity", None,
                     "a fringe covering the forehead down to 9-12 mm above the brows"),
    "facial_hair": _Factor("categorical", (0.6, 0.2, 0.2), "identity", None,
                           "none, goatee (around the mouth and chin) or full beard (cheeks and jaw)"),
    "old": _Factor("bernoulli", 0.3, "identity", None,
                   "age cues: forehead lines, nasolabial folds, lines under the eyes and crow's feet"),
    "skin_tone": _Factor("uniform", (0.0, 1.0), "identity", (0.0, 1.0),
                         "0 = light to 1 = dark skin (linear colour interpolation)"),
    "eye_size": _Factor("uniform", (0.0, 1.0), "identity", (0.0, 1.0),
                        "eye opening scale 1.7-2.6 (0 to 1) around each eye centre"),
    "face_width": _Factor("uniform", (0.0, 1.0), "identity", (0.0, 1.0),
                          "horizontal scale of face and head 0.88-1.12 (0 to 1)"),
    "background_hue": _Factor("uniform", (0.0, 1.0), "image", (0.0, 1.0),
                              "hue of the flat background colour (saturation 0.35, value 0.75)"),
    "light_azimuth": _Factor("uniform", (-180.0, 180.0), "image", (-180.0, 180.0),
                             "direction of the light in the image plane, degrees"),
    "yaw": _Factor("uniform", (-45.0, 45.0), "image", (-60.0, 60.0),
                   "head yaw in degrees, positive turns the face towards image right"),
    "pitch": _Factor("uniform", (-20.0, 20.0), "image", (-30.0, 30.0),
                     "head pitch in degrees, positive tilts the chin down"),
    "roll": _Factor("uniform", (-20.0, 20.0), "image", (-45.0, 45.0),
                    "head roll in degrees, positive rotates the face clockwise on screen"),
}

_N_SHAPE = 6  # hidden identity shape coefficients, each uniform in [-1, 1]
_SKIN_LIGHT = np.array([240.0, 212.0, 188.0])
_SKIN_DARK = np.array([105.0, 68.0, 48.0])
_SKIN_LIGHT_L, _SKIN_DARK_L = _SKIN_LIGHT.tolist(), _SKIN_DARK.tolist()
_HAIR_RGB = {
    "black": (28, 24, 24),
    "blond": (228, 196, 112),
    "brown": (104, 64, 32),
    "red": (178, 58, 26),
    "gray": (176, 176, 184),
}
_IRIS_RGB = ((72, 46, 24), (48, 96, 160), (60, 116, 64), (28, 24, 20))
_FRAME_RGB = ((20, 20, 24), (120, 72, 30), (150, 150, 162), (150, 24, 24))
_SS = 2  # supersampling factor of the image and of the class map


def mean_face_68(symmetric: bool = True) -> np.ndarray:
    """The 68-point 3D mean face (iBUG order, millimetres) shipped in ``fe_fast/data``:
    array (68, 3), x to image right, y down, z away from the camera. ``symmetric=True`` (what the
    toy faces are drawn from) averages each point with its mirrored partner; ``False`` gives the
    file's values (the template of ``fe_fast.align``)."""
    return (_MEAN if symmetric else _RAW_MEAN).copy()


def _read_mean() -> np.ndarray:
    path = Path(__file__).resolve().parent.parent / "data" / "mean_face_68_3d.txt"
    if not path.exists():
        raise FileNotFoundError(f"fe-fast data file missing: {path} (reinstall fe-fast)")
    P = np.loadtxt(path, dtype=np.float64)
    if P.shape != (68, 3):
        raise ValueError(f"{path}: expected 68 rows of x y z, got shape {P.shape}")
    return P


def _symmetrize(P: np.ndarray) -> np.ndarray:
    # Make the mean exactly left/right symmetric (it is to 2.6 mm): average each point with the
    # mirror of its partner so that attributes never depend on which side faces the camera.
    mirror = np.array(
        list(range(16, -1, -1)) + list(range(26, 16, -1)) + [27, 28, 29, 30] + [35, 34, 33, 32, 31]
        + [45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40]
        + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55] + [64, 63, 62, 61, 60, 67, 66, 65]
    )
    Q = P[mirror] * np.array([-1.0, 1.0, 1.0])
    return 0.5 * (P + Q)


_RAW_MEAN = _read_mean()
_MEAN = _symmetrize(_RAW_MEAN)
_BROW_R = np.arange(17, 22)
_BROW_L = np.arange(22, 27)
# Geometry of the head (millimetres, head frame = mean-shape frame).
_PIVOT = np.array([0.0, -20.0, 40.0])
_SKULL_C = np.array([0.0, -45.0, 58.0])
_SKULL_A = np.array([80.0, 105.0, 80.0])
_MM_PER_IMAGE = 290.0  # the image spans this many millimetres
_V_PIVOT = 0.53  # vertical position of the pivot, fraction of the image height


# ----------------------------------------------------------------------------------------------
# Parameter sampling
# ----------------------------------------------------------------------------------------------

def _check_size(size) -> int:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)):
        raise ValueError(f"size must be an int between 16 and 256, got {size!r}")
    if not 16 <= int(size) <= 256:
        raise ValueError(f"size must be between 16 and 256, got {size}")
    return int(size)


def _resolve_factors(attributes: Optional[Mapping[str, Any]]) -> Dict[str, tuple]:
    """Validate ``attributes`` overrides and return {factor: (kind, distribution)}."""
    out = {name: (f.kind, f.default) for name, f in FACTORS.items()}
    if attributes is None:
        return out
    if not isinstance(attributes, Mapping):
        raise ValueError(f"attributes must be a dict of factor -> distribution, got {type(attributes).__name__}")
    for name, spec in attributes.items():
        if name not in FACTORS:
            raise ValueError(f"unknown attribute {name!r}; expected one of {', '.join(FACTORS)}")
        f = FACTORS[name]
        if f.kind == "bernoulli":
            if isinstance(spec, (bool, np.bool_)):
                p = float(spec)
            elif isinstance(spec, (int, float, np.number)) and 0.0 <= float(spec) <= 1.0:
                p = float(spec)
            else:
                raise ValueError(f"attributes[{name!r}] must be a probability in [0, 1] or a bool, got {spec!r}")
            out[name] = ("bernoulli", p)
        elif f.kind == "categorical":
            choices = HAIR_COLORS if name == "hair_color" else FACIAL_HAIR
            if isinstance(spec, str):
                if spec not in choices:
                    raise ValueError(f"attributes[{name!r}] must be one of {choices}, got {spec!r}")
                probs = tuple(1.0 if c == spec else 0.0 for c in choices)
            elif isinstance(spec, Mapping):
                bad = [k for k in spec if k not in choices]
                if bad:
                    raise ValueError(f"attributes[{name!r}]: unknown values {bad}; expected {choices}")
                probs = tuple(float(spec.get(c, 0.0)) for c in choices)
            else:
                try:
                    probs = tuple(float(v) for v in spec)
                except TypeError:
                    raise ValueError(f"attributes[{name!r}] must be a name, a dict or {len(choices)} probabilities") from None
                if len(probs) != len(choices):
                    raise ValueError(f"attributes[{name!r}] needs {len(choices)} probabilities for {choices}, got {len(probs)}")
            if min(probs) < 0 or sum(probs) <= 0:
                raise ValueError(f"attributes[{name!r}]: probabilities must be >= 0 with a positive sum, got {probs}")
            total = sum(probs)
            out[name] = ("categorical", tuple(p / total for p in probs))
        else:
            lo_b, hi_b = f.bounds
            if isinstance(spec, (int, float, np.number)) and not isinstance(spec, bool):
                lo = hi = float(spec)
            else:
                try:
                    lo, hi = (float(v) for v in spec)
                except (TypeError, ValueError):
                    raise ValueError(f"attributes[{name!r}] must be a number or a (lo, hi) range, got {spec!r}") from None
            if not (lo_b <= lo <= hi <= hi_b):
                raise ValueError(f"attributes[{name!r}] must lie within [{lo_b}, {hi_b}] with lo <= hi, got ({lo}, {hi})")
            out[name] = ("uniform", (lo, hi))
    return out


def _draw(rng: np.random.Generator, kind: str, dist, n: int) -> np.ndarray:
    if kind == "bernoulli":
        return rng.random(n) < dist
    if kind == "categorical":
        return rng.choice(len(dist), size=n, p=np.asarray(dist))
    lo, hi = dist
    return rng.uniform(lo, hi, n)


def sample_params(n: int, seed: int = 0, attributes: Optional[Mapping[str, Any]] = None,
                  identities: Optional[int] = None):
    """Sample ``n`` face parameter sets.

    Identity factors (``FACTORS[name].level == "identity"``: hair colour/length, bangs, facial
    hair, age cues, skin tone, eye size, face width, plus hidden shape coefficients, iris colour,
    hairline height and hair volume) are drawn once per identity; image factors (expression,
    glasses, background, lighting, pose) once per image. With ``identities=None`` every image is
    its own identity, so all factors are independent across images; with ``identities=K`` the
    images are split as evenly as possible over K identity parameter sets (in a seeded random
    order).

    Returns ``(params, identity)``: a list of ``n`` dicts accepted by :func:`render`, and an int64
    array of identity ids. Deterministic for a given seed.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be a non-negative int, got {n!r}")
    n = int(n)
    dists = _resolve_factors(attributes)
    if identities is None:
        n_id = n
        ids = np.arange(n, dtype=np.int64)
    else:
        if isinstance(identities, bool) or not isinstance(identities, (int, np.integer)) or identities < 1:
            raise ValueError(f"identities must be a positive int or None, got {identities!r}")
        n_id = int(identities)
    id_rng, img_rng, order_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3))
    if identities is not None:
        ids = order_rng.permutation(np.arange(n, dtype=np.int64) % n_id)
    ident = {}
    for name, f in FACTORS.items():  # fixed order -> stable streams
        if f.level == "identity":
            ident[name] = _draw(id_rng, *dists[name], n_id)
    ident["shape"] = id_rng.uniform(-1.0, 1.0, (n_id, _N_SHAPE))
    ident["iris"] = id_rng.integers(0, len(_IRIS_RGB), n_id)
    ident["hairline"] = id_rng.uniform(0.0, 1.0, n_id)
    ident["hair_volume"] = id_rng.uniform(0.0, 1.0, n_id)
    img = {}
    for name, f in FACTORS.items():
        if f.level == "image":
            img[name] = _draw(img_rng, *dists[name], n)
    img["smile_amount"] = img_rng.uniform(0.0, 1.0, n)
    img["open_amount"] = img_rng.uniform(0.0, 1.0, n)
    img["frame"] = img_rng.integers(0, len(_FRAME_RGB), n)
    img["light_strength"] = img_rng.uniform(0.6, 1.0, n)
    params = []
    for i in range(n):
        k = ids[i]
        p = {
            "hair_color": HAIR_COLORS[int(ident["hair_color"][k])],
            "facial_hair": FACIAL_HAIR[int(ident["facial_hair"][k])],
            "shape": ident["shape"][k].copy(),
            "iris": int(ident["iris"][k]),
            "hairline": float(ident["hairline"][k]),
            "hair_volume": float(ident["hair_volume"][k]),
        }
        for name in ("long_hair", "bangs", "old"):
            p[name] = bool(ident[name][k])
        for name in ("skin_tone", "eye_size", "face_width"):
            p[name] = float(ident[name][k])
        for name in ("smiling", "mouth_open", "eyeglasses"):
            p[name] = bool(img[name][i])
        for name in ("background_hue", "light_azimuth", "yaw", "pitch", "roll",
                     "smile_amount", "open_amount", "light_strength"):
            p[name] = float(img[name][i])
        p["frame"] = int(img["frame"][i])
        params.append(p)
    return params, ids


_DEFAULTS = {
    "smiling": False, "mouth_open": False, "eyeglasses": False, "hair_color": "brown",
    "long_hair": False, "bangs": False, "facial_hair": "none", "old": False, "skin_tone": 0.3,
    "eye_size": 0.5, "face_width": 0.5, "background_hue": 0.6, "light_azimuth": -90.0,
    "yaw": 0.0, "pitch": 0.0, "roll": 0.0, "shape": np.zeros(_N_SHAPE), "iris": 0,
    "hairline": 0.5, "hair_volume": 0.5, "smile_amount": 0.8, "open_amount": 0.8,
    "frame": 0, "light_strength": 0.8,
}


def _complete(params: Mapping[str, Any]) -> Dict[str, Any]:
    """Fill unspecified parameters with neutral defaults and validate the given ones."""
    if not isinstance(params, Mapping):
        raise ValueError(f"params must be a dict (see sample_params), got {type(params).__name__}")
    unknown = [k for k in params if k not in _DEFAULTS]
    if unknown:
        raise ValueError(f"unknown attribute(s) {unknown}; expected keys among {', '.join(_DEFAULTS)}")
    p = dict(_DEFAULTS)
    p.update(params)
    if p["hair_color"] not in HAIR_COLORS:
        raise ValueError(f"hair_color must be one of {HAIR_COLORS}, got {p['hair_color']!r}")
    if p["facial_hair"] not in FACIAL_HAIR:
        raise ValueError(f"facial_hair must be one of {FACIAL_HAIR}, got {p['facial_hair']!r}")
    for name, f in FACTORS.items():
        if f.kind == "uniform":
            lo, hi = f.bounds
            v = float(p[name])
            if not lo <= v <= hi:
                raise ValueError(f"{name} must lie within [{lo}, {hi}], got {v}")
    return p


def attribute_vector(params: Mapping[str, Any]) -> np.ndarray:
    """The float32 vector of :data:`ATTRIBUTES` for one parameter dict."""
    p = _complete(params)
    v = [
        float(p["smiling"]), float(p["mouth_open"]), float(p["eyeglasses"]),
        *[float(p["hair_color"] == c) for c in HAIR_COLORS],
        float(p["long_hair"]), float(p["bangs"]),
        float(p["facial_hair"] == "goatee"), float(p["facial_hair"] == "beard"), float(p["old"]),
        p["skin_tone"], p["eye_size"], p["face_width"], p["background_hue"], p["light_azimuth"],
        p["yaw"], p["pitch"], p["roll"],
    ]
    return np.asarray(v, dtype=np.float32)


# ----------------------------------------------------------------------------------------------
# Geometry
# ----------------------------------------------------------------------------------------------

def _rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """R = Rz(roll) @ Rx(pitch) @ Ry(yaw) with the sign conventions of the module docstring."""
    y, p, r = (math.radians(a) for a in (yaw, pitch, roll))
    cy, sy, cp, sp, cr, sr = math.cos(y), math.sin(y), math.cos(p), math.sin(p), math.cos(r), math.sin(r)
    Ry = np.array([[cy, 0.0, -sy], [0.0, 1.0, 0.0], [sy, 0.0, cy]])  # nose (z<0) -> +x for yaw>0
    Rx = np.array([[1.0, 0.0, 0.0], [0.0, cp, -sp], [0.0, sp, cp]])  # nose -> +y for pitch>0
    Rz = np.array([[cr, -sr, 0.0], [sr, cr, 0.0], [0.0, 0.0, 1.0]])  # clockwise on screen (y down)
    return Rz @ Rx @ Ry


_CHIN_W = np.array([0.5, 0.8, 1.0, 0.8, 0.5])
_EYE_SIGN3 = np.sign(_MEAN[36:48, 0]) * 3.0  # eye spacing direction (the mean's x signs, times 3 mm)
_LIFT_IDX = np.array([48, 54, 60, 64, 49, 53, 59, 55, 61, 63, 65, 67])  # smile lift: corners 1, lips 0.45
_LIFT_W = np.array([1.0] * 4 + [0.45] * 8)
_JAW_W = np.array([0.2, 0.45, 0.7, 0.8, 0.7, 0.45, 0.2])  # open-mouth drop of the chin 5..11


def _face_shape(p: Dict[str, Any]) -> np.ndarray:
    """Identity + expression applied to the mean shape (head frame, mm)."""
    P = _MEAN.copy()
    x, y = P[:, 0], P[:, 1]  # views
    sh = p["shape"]
    fw = 0.88 + 0.24 * p["face_width"]
    # hidden identity shape: nose length, mouth width, jaw width, eye spacing, brow height, chin
    y[27:36] = -42.0 + (y[27:36] + 42.0) * (1.0 + 0.10 * sh[0])
    x[48:68] *= 1.0 + 0.08 * sh[1]
    x[2:15] *= 1.0 + 0.05 * sh[2]
    x[36:48] += _EYE_SIGN3 * sh[3]
    y[17:27] -= 3.0 * sh[4]
    y[6:11] += 4.0 * sh[5] * _CHIN_W
    # eyes: enlarge around each eye centre (mostly vertically), brows follow
    es = p["eye_size"]
    sy, sx = 1.7 + 0.9 * es, 1.05 + 0.2 * es
    for e, s in ((x[36:48].reshape(2, 6), sx), (y[36:48].reshape(2, 6), sy)):  # views; rows: right, left eye
        c = ((e[:, 0] + e[:, 1] + e[:, 2] + e[:, 3] + e[:, 4] + e[:, 5]) / 6)[:, None]  # the eye centres
        e[...] = c + (e - c) * s
    y[17:27] -= 4.0 * (sy - 1.0)
    # expression
    if p["smiling"]:
        a = 0.6 + 0.4 * p["smile_amount"]
    else:
        a = -0.1 + 0.2 * p["smile_amount"]
    y[_LIFT_IDX] -= 12.0 * a * _LIFT_W
    x[[48, 60]] -= 6.0 * a
    x[[54, 64]] += 6.0 * a
    if p["smiling"]:  # lips part over the teeth
        y[65:68] += 3.5 * a
        y[55:60] += 2.0 * a
    if a > 0:  # Duchenne smile: the lower eyelids rise towards the line of the eye corners
        for lo, c1, c2 in ((40, 36, 39), (46, 42, 45)):
            mid = 0.5 * (y[c1] + y[c2])
            y[lo:lo + 2] -= 0.35 * a * (y[lo:lo + 2] - mid)
    if p["mouth_open"]:
        o = 8.0 + 5.0 * p["open_amount"]
        y[65:68] += o
        y[55:60] += o
        y[5:12] += o * _JAW_W
    x *= fw
    return P


class RenderResult(NamedTuple):
    """One rendered face: ``image`` uint8 (H, W, 3); ``mask`` uint8 (H, W) of
    :data:`MASK_CLASSES` indices; ``landmarks`` float32 (68, 3): x, y in pixels (pixel centres at
    integer coordinates) and z the depth in the same pixel scale (smaller = closer)."""

    image: np.ndarray
    mask: np.ndarray
    landmarks: np.ndarray


def _majority_lut() -> np.ndarray:
    """Table of the mask reduction for 4-bit classes: entry ``a | c << 4 | b << 8 | d << 12``
    (sub-samples a b / c d of one output pixel) holds the class covering at least two of them;
    ties go to the first of the tied pair in raster order."""
    k = np.arange(1 << 16)
    a, c, b, d = k & 15, (k >> 4) & 15, (k >> 8) & 15, k >> 12
    return np.where((a == b) | (a == c) | (a == d), a,
                    np.where((b == c) | (b == d), b, np.where(c == d, c, d))).astype(np.uint8)


_MAJORITY = _majority_lut()
assert len(MASK_CLASSES) <= 16
_TLS = threading.local()  # per-thread canvases, one per size


class _Canvas:
    """Paints each primitive into the supersampled RGB image and, with the same coordinates, into
    a supersampled class map; :meth:`finish` reduces both to the output resolution.

    ``pts`` holds every projected point of the face (``uv``, continuous output-pixel units: output
    pixel i spans [i, i+1)) already in supersampled drawing coordinates, as a list of [x, y]
    pairs, so that a polygon through named points is a list slice and costs no numpy call. The
    primitives go straight to Pillow's C drawing objects (``ImageDraw.polygon``/``line`` minus
    their Python layer, same rasterisation). :meth:`get` reuses one canvas per thread and size
    (cleared for each face; :meth:`finish` returns copies)."""

    def __init__(self, size: int):
        self.size = size
        n = size * _SS
        self.box = (0, 0, n, n)
        self.img = Image.new("RGB", (n, n))
        self.msk = Image.new("L", (n, n))
        self.di = ImageDraw.Draw(self.img).draw
        self.dm = ImageDraw.Draw(self.msk).draw
        self.pts: list = []

    @classmethod
    def get(cls, size: int, bg, uv: np.ndarray) -> "_Canvas":
        """The calling thread's canvas for ``size``, filled with ``bg`` (class background), with
        :attr:`pts` set from ``uv``."""
        cache = _TLS.__dict__.setdefault("canvases", {})
        cv = cache.get(size)
        if cv is None:
            cv = cache[size] = cls(size)
        cv.img.paste(bg, cv.box)
        cv.msk.paste(0, cv.box)
        cv.pts = (uv * _SS - 0.5).tolist()
        return cv

    def poly(self, xy: list, color, cls: Optional[int]):
        """Fill a polygon through ``xy`` (drawing coordinates, see :attr:`pts`)."""
        if len(xy) < 3:
            return
        self.di.draw_polygon(xy, self.di.draw_ink(color), 1)
        if cls is not None:
            self.dm.draw_polygon(xy, cls, 1)

    def line(self, xy: list, width_px: float, color, cls: Optional[int] = None):
        """A polyline through ``xy`` (drawing coordinates), ``width_px`` output pixels wide, with
        round joints (as ``ImageDraw.line(joint="curve")``, which only adds them above width 4)."""
        w = max(1, int(round(width_px * _SS)))
        if w > 4:
            ImageDraw.Draw(self.img).line(xy, fill=color, width=w, joint="curve")
            if cls is not None:
                ImageDraw.Draw(self.msk).line(xy, fill=cls, width=w, joint="curve")
            return
        self.di.draw_lines(xy, self.di.draw_ink(color), w)
        if cls is not None:
            self.dm.draw_lines(xy, cls, w)

    def head(self, x0: int, y0: int, any_: np.ndarray, hair: np.ndarray, c_skin, c_hair):
        """Paint the ray-cast head block (bool maps: cranium or hair hit; hair) at (x0, y0):
        skin colour and class where it is hit, hair colour and class where it is hair. The maps
        become 1-bit Pillow masks, whose pastes copy instead of blending."""
        h, w = any_.shape
        box = (x0, y0, x0 + w, y0 + h)
        m_any = Image.frombytes("1", (w, h), any_.tobytes(), "raw", "1;8")
        m_hair = Image.frombytes("1", (w, h), hair.tobytes(), "raw", "1;8")
        self.img.paste(c_skin, box, m_any)
        self.img.paste(c_hair, box, m_hair)
        self.msk.paste(_C["skin"], box, m_any)
        self.msk.paste(_C["hair"], box, m_hair)

    def finish(self):
        """Box-downsample the image (uint8, rounded); the mask takes, per output pixel, the class
        covering at least two of its four sub-samples (ties: the first of the tied pair in raster
        order; see :func:`_majority_lut`)."""
        s = self.size
        img = np.frombuffer(self.img.reduce(_SS).tobytes(), np.uint8).reshape(s, s, 3)
        m = np.frombuffer(self.msk.tobytes(), "<u2").reshape(2 * s, s)  # a | b << 8 per pair
        key = m[1::2] << 4  # c << 4 | d << 12
        key |= m[0::2]
        return img, _MAJORITY[key]


def _rgb(c) -> tuple:
    return tuple(min(255, max(0, int(round(float(v))))) for v in c)


def _head_layer(size, scale, ss, R, d, A_skull, A_hair, p, brow_top):
    """Ray-cast the cranium and hair ellipsoids (common centre ``d``, camera frame, mm) on a grid
    of ``size*ss`` pixel centres; rays are orthographic along +z.

    Returns ``(x0, y0, head, hair)``: boolean blocks (cranium or hair hit; hair) whose top-left
    grid pixel is (x0, y0), or ``(0, 0, None, None)`` when the head lies outside the image. The
    hair region is defined on the front surface of the hair ellipsoid in the head frame: hair
    where y < y_line(phi), phi the azimuth around the vertical head axis (front hairline at
    phi = 0, lowest hair at the sides and back), plus the bangs fringe on the front of the
    forehead; skin wherever the cranium is hit and the hair is not.

    A ray (X, Y, z) hits the ellipsoid e^T M e = 1 (M = R diag(1/a^2) R^T) where the quadratic
    in z has a real root: disc = B^2 - M_zz C >= 0 with B = M_xz X + M_yz Y and
    C = M_xx X^2 + 2 M_xy X Y + M_yy Y^2 - 1, i.e. disc = Q_xx X^2 + 2 Q_xy X Y + Q_yy Y^2 + M_zz
    (Q = outer(M_.z, M_.z) - M_zz M); the near root is z = -(B + sqrt(disc)) / M_zz. All grid
    arithmetic is float32 on broadcast row/column vectors (about 40 passes over the block)."""
    n = size * ss
    # tight bounding box of the projected hair ellipsoid: half-widths sqrt((R diag(a^2) R^T)_ii)
    S = (R * A_hair**2) @ R.T
    hw, hh = math.sqrt(S[0, 0]) + 1.0, math.sqrt(S[1, 1]) + 1.0
    f = scale * ss
    cx, cy = 0.5 * size * ss + f * float(d[0]), _V_PIVOT * size * ss + f * float(d[1])
    x0, x1 = max(0, int(cx - f * hw)), min(n, int(cx + f * hw) + 1)
    y0, y1 = max(0, int(cy - f * hh)), min(n, int(cy + f * hh) + 1)
    if x1 <= x0 or y1 <= y0:
        return 0, 0, None, None
    f32 = np.float32
    X = (np.arange(x0, x1, dtype=f32) + f32(0.5 - cx)) * f32(1.0 / f)  # ex = x - d_x (mm), row vector
    Y = ((np.arange(y0, y1, dtype=f32) + f32(0.5 - cy)) * f32(1.0 / f))[:, None]  # column vector
    XX = X * X

    def disc(A):
        M = (R * (1.0 / A**2)) @ R.T  # R diag(1/a^2) R^T
        Q = np.outer(M[:, 2], M[:, 2]) - M[2, 2] * M
        D = f32(2.0 * Q[0, 1]) * Y * X  # (h, w)
        D += f32(Q[0, 0]) * XX
        D += f32(Q[1, 1]) * (Y * Y) + f32(M[2, 2])
        return M, D

    M, D = disc(A_hair)
    hit_h = D >= 0
    np.maximum(D, 0.0, out=D)
    np.sqrt(D, out=D)
    ez = D
    ez += f32(M[0, 2]) * X
    ez += f32(M[1, 2]) * Y
    ez *= f32(-1.0 / M[2, 2])  # z = -(B + sqrt(disc)) / M_zz
    RT = R.T.astype(f32)  # head frame = R^T camera frame
    hy = RT[1, 2] * ez
    hy += RT[1, 0] * X + RT[1, 1] * Y
    hz = RT[2, 2] * ez
    hz += RT[2, 0] * X + RT[2, 1] * Y
    hx = RT[0, 2] * ez
    hx += RT[0, 0] * X + RT[0, 1] * Y
    yc = float(_SKULL_C[1])
    front = -105.0 + 10.0 * p["hairline"] - yc  # front hairline, relative to the centre
    side = (40.0 if p["long_hair"] else -15.0) - yc  # lowest hair at the sides and back
    # t = 1 - cos(phi) clipped to [0, 1]: 0 at the front, 1 at the sides and behind
    r = hx * hx
    r += hz * hz
    r += f32(1e-6)
    np.sqrt(r, out=r)
    t = np.divide(hz, r, out=r)
    t += f32(1.0)
    np.maximum(t, f32(0.0), out=t)
    np.minimum(t, f32(1.0), out=t)
    np.sqrt(t, out=t)
    t *= f32(side - front)
    t += f32(front)
    hair = hy < t
    hair &= hit_h
    if p["bangs"]:
        edge = np.multiply(hx, f32(0.35))
        np.sin(edge, out=edge)
        np.abs(edge, out=edge)
        edge *= f32(3.0)
        edge += f32(brow_top - 12.0 - yc)
        fringe = hy < edge
        fringe &= hz < f32(-0.55 * A_hair[2])
        fringe &= np.abs(hx) < f32(0.8 * A_hair[0])
        fringe &= hit_h
        hair |= fringe
    _, D = disc(A_skull)
    head = D >= 0
    head |= hair
    return x0, y0, head, hair


def _build_extra_points():
    """Extra 3D points of the drawing as fixed linear combinations of the 68 landmarks plus
    offsets: ``pts = W @ P + C0 + fw * Cfw + bt * Cbt`` (fw = face-width scale, bt = brow
    thickness). Returns (W, C0, Cfw, Cbt, slices)."""
    rows, c0, cfw, cbt, slices = [], [], [], [], {}

    def add(name, items):
        start = len(rows)
        for terms, off, offw, offb in items:
            w = np.zeros(68)
            for i, wt in terms:
                w[i] += wt
            rows.append(w)
            c0.append(off)
            cfw.append(offw)
            cbt.append(offb)
        slices[name] = slice(start, len(rows))

    Z = (0.0, 0.0, 0.0)
    lerp = lambda a, b, t: [(a, 1.0 - t), (b, t)]  # noqa: E731
    add("brow_lo_r", [([(i, 1.0)], Z, Z, (0.0, 1.0, 0.0)) for i in range(17, 22)])
    add("brow_lo_l", [([(i, 1.0)], Z, Z, (0.0, 1.0, 0.0)) for i in range(22, 27)])
    # nose: base outline [27l, wing r, 31..35, wing l, 27r] and ridge/tip [27l, 27r, wing l, 30, wing r]
    add("nose_base", [([(27, 1.0)], (-7.0, 0.0, 0.0), Z, Z), ([(31, 1.0)], (-4.0, -2.0, 2.0), Z, Z)]
        + [([(i, 1.0)], Z, Z, Z) for i in range(31, 36)]
        + [([(35, 1.0)], (4.0, -2.0, 2.0), Z, Z), ([(27, 1.0)], (7.0, 0.0, 0.0), Z, Z)])
    add("nose_ridge", [([(27, 1.0)], (-7.0, 0.0, 0.0), Z, Z), ([(27, 1.0)], (7.0, 0.0, 0.0), Z, Z),
                       ([(35, 1.0)], (4.0, -2.0, 2.0), Z, Z), ([(30, 1.0)], Z, Z, Z),
                       ([(31, 1.0)], (-4.0, -2.0, 2.0), Z, Z)])
    # full beard: the jaw 2..14 pushed 6 % outwards, then back along the cheeks and upper lip
    jaw = [([(i, 1.06), (8, 0.0)], (0.0, -0.6, 0.0), Z, Z) for i in range(2, 15)]
    add("beard", jaw + [(lerp(14, 35, 0.35), Z, Z, Z), (lerp(54, 35, 0.45), (4.0, 0.0, 0.0), Z, Z),
                        (lerp(51, 33, 0.5), Z, Z, Z), (lerp(48, 31, 0.45), (-4.0, 0.0, 0.0), Z, Z),
                        (lerp(2, 31, 0.35), Z, Z, Z)])
    add("goatee", [([(48, 1.0)], (-5.0, 0.0, 0.0), Z, Z), (lerp(48, 31, 0.55), (-2.0, 0.0, 0.0), Z, Z),
                   (lerp(51, 33, 0.55), Z, Z, Z), (lerp(54, 35, 0.55), (2.0, 0.0, 0.0), Z, Z),
                   ([(54, 1.0)], (5.0, 0.0, 0.0), Z, Z), (lerp(54, 10, 0.65), Z, Z, Z),
                   ([(9, 1.06)], (0.0, -0.6, 0.0), Z, Z), ([(8, 1.06)], (0.0, -0.6, 0.0), Z, Z),
                   ([(7, 1.06)], (0.0, -0.6, 0.0), Z, Z), (lerp(48, 6, 0.65), Z, Z, Z)])
    # wrinkles: two forehead lines above the brows, nasolabial folds, crow's feet
    for k, dy in enumerate((4.5, 8.5)):
        add(f"wr_forehead{k}", [([(19, 1.0)], (0.0, -dy, -12.0), Z, Z),
                                ([(21, 0.5), (22, 0.5)], (0.0, -dy - 3.0, -5.0), Z, Z),
                                ([(24, 1.0)], (0.0, -dy, -12.0), Z, Z)])
    for k, (sg, a_, b_) in enumerate(((-1, 31, 48), (1, 35, 54))):
        add(f"wr_fold{k}", [([(a_, 1.0)], (sg * 5.0, -5.0, 4.0), Z, Z), ([(a_, 1.0)], (sg * 9.0, 6.0, 4.0), Z, Z),
                            ([(b_, 1.0)], (sg * 7.0, 2.0, 3.0), Z, Z)])
    for k, (lo, hi) in enumerate(((41, 40), (47, 46))):  # lines under the eyes
        add(f"wr_bag{k}", [([(lo, 1.0)], (-3.0, 6.0, 1.0), Z, Z), ([(lo, 0.5), (hi, 0.5)], (0.0, 7.0, 1.0), Z, Z),
                           ([(hi, 1.0)], (3.0, 6.0, 1.0), Z, Z)])
    for k, (sg, e) in enumerate(((-1, 36), (1, 45))):
        add(f"wr_crow{k}a", [([(e, 1.0)], (sg * 4.0, -4.0, 2.0), Z, Z), ([(e, 1.0)], (sg * 10.0, -2.0, 4.0), Z, Z)])
        add(f"wr_crow{k}b", [([(e, 1.0)], (sg * 4.0, 3.0, 2.0), Z, Z), ([(e, 1.0)], (sg * 10.0, 6.0, 4.0), Z, Z)])
    # glasses: rounded-rectangle lens and outer frame per eye, 20 mm in front of the eye centre
    t = np.linspace(0.0, 2.0 * np.pi, 16, endpoint=False)
    ru = np.stack([np.sign(np.cos(t)) * np.abs(np.cos(t)) ** 0.6, np.sign(np.sin(t)) * np.abs(np.sin(t)) ** 0.6], 1)
    for eye_name, idx in (("r", range(36, 42)), ("l", range(42, 48))):
        centre = [(i, 1.0 / 6.0) for i in idx]
        for part, (w, h) in (("lens", (17.0, 13.0)), ("frame", (20.5, 16.5))):
            add(f"gl_{part}_{eye_name}", [(centre, (0.0, 2.0 + h * v, -20.0), (w * u, 0.0, 0.0), Z) for u, v in ru])
    cr = [(i, 1.0 / 6.0) for i in range(36, 42)]
    cl = [(i, 1.0 / 6.0) for i in range(42, 48)]
    add("gl_bridge", [(cr, (0.0, 2.0, -20.0), (20.5, 0.0, 0.0), Z), (cl, (0.0, 2.0, -20.0), (-20.5, 0.0, 0.0), Z)])
    add("gl_arm_r", [(cr, (0.0, -2.0, -18.0), (-20.5, 0.0, 0.0), Z), ([], (0.0, -40.0, 45.0), (-76.0, 0.0, 0.0), Z)])
    add("gl_arm_l", [(cl, (0.0, -2.0, -18.0), (20.5, 0.0, 0.0), Z), ([], (0.0, -40.0, 45.0), (76.0, 0.0, 0.0), Z)])
    # neck: centres of the top and bottom of a cylinder behind the jaw (drawn as a quad)
    add("neck", [([], (0.0, 40.0, 45.0), Z, Z), ([], (0.0, 220.0, 45.0), Z, Z)])
    # long hair drape behind the head (nearly planar, drawn in this order)
    hx = _SKULL_A[0] + 12.0
    add("drape", [([], (0.0, -45.0, 80.0), (-hx, 0.0, 0.0), Z), ([], (0.0, -45.0, 80.0), (hx, 0.0, 0.0), Z),
                  ([], (0.0, 95.0, 75.0), (hx + 10.0, 0.0, 0.0), Z), ([], (0.0, 110.0, 80.0), (60.0, 0.0, 0.0), Z),
                  ([], (0.0, 110.0, 80.0), (-60.0, 0.0, 0.0), Z), ([], (0.0, 95.0, 75.0), (-hx - 10.0, 0.0, 0.0), Z)])
    return (np.array(rows), np.array(c0), np.array(cfw), np.array(cbt), slices)


_EXTRA_W, _EXTRA_C0, _EXTRA_CFW, _EXTRA_CBT, _SL = _build_extra_points()
_WRINKLES = [k for k in _SL if k.startswith("wr_")]
_SLP = {k: (68 + s.start, 68 + s.stop) for k, s in _SL.items()}  # rows of the named points in uv
_EYE_WHITE = (236, 236, 230)


def _render(params: Mapping[str, Any], size: int) -> RenderResult:
    p = _complete(params)
    size = _check_size(size)
    scale = size / _MM_PER_IMAGE  # px per mm
    R = _rotation(p["yaw"], p["pitch"], p["roll"])
    fw = 0.88 + 0.24 * p["face_width"]
    bt = 6.0 + 1.5 * (float(p["shape"][4]) + 1.0)  # brow thickness (mm)

    P = _face_shape(p)
    extra = _EXTRA_W @ P + _EXTRA_C0 + fw * _EXTRA_CFW + bt * _EXTRA_CBT
    allp = np.concatenate([P, extra])
    cam = (allp - _PIVOT) @ R.T  # pivot-centred camera frame (mm)
    uv = cam[:, :2] * scale
    uv[:, 0] += 0.5 * size
    uv[:, 1] += _V_PIVOT * size
    uvP, uvE = uv[:68], uv[68:]

    # -- colours (rounded to the nearest integer, ties to even, clipped to [0, 255]) ----------
    tone = p["skin_tone"]
    skin = [lo + (hi - lo) * tone for lo, hi in zip(_SKIN_LIGHT_L, _SKIN_DARK_L)]
    hair = _HAIR_RGB[p["hair_color"]]
    bg = [v * 255.0 for v in colorsys.hsv_to_rgb(p["background_hue"] % 1.0, 0.35, 0.75)]
    kb = 0.6 if p["hair_color"] == "blond" else 0.75
    rgb = lambda v: tuple(min(255, max(0, round(x))) for x in v)  # noqa: E731
    c_skin, c_hair, c_bg = rgb(skin), rgb(hair), rgb(bg)
    c_brow, c_beard = rgb([h * kb for h in hair]), rgb([h * 0.8 for h in hair])
    c_nose, c_wr, c_neck, c_nostril, c_lipline = (rgb([s * k for s in skin]) for k in (0.9, 0.5, 0.88, 0.55, 0.35))
    c_lip = rgb([s * k + o for s, k, o in zip(skin, (0.78, 0.52, 0.52), (30.0, 0.0, 0.0))])
    c_lens = rgb([s * 0.55 + g * 0.45 for s, g in zip(skin, (170.0, 200.0, 230.0))])

    cv = _Canvas.get(size, c_bg, uv)
    pts = cv.pts  # drawing coordinates of uv, [x, y] per row

    def E(name):
        i, j = _SLP[name]
        return pts[i:j]

    # -- back layers: long-hair drape, neck ---------------------------------------------------
    if p["long_hair"]:
        cv.poly(E("drape"), c_hair, _C["hair"])
    (tx, ty), (bx, by) = uvE[_SL["neck"]].tolist()
    r = 42.0 * fw * scale
    neck = [[tx - r, ty], [tx + r, ty], [bx + 1.1 * r, by], [bx - 1.1 * r, by]]
    cv.poly([[x * _SS - 0.5, y * _SS - 0.5] for x, y in neck], c_neck, _C["skin"])
    # -- head: cranium + hair ellipsoids, ray-cast per sub-pixel -------------------------------
    hv = 6.0 + 10.0 * p["hair_volume"]
    A_s = _SKULL_A * np.array([fw, 1.0, 1.0])
    A_h = A_s + np.array([hv * fw, hv, hv])
    d_s = R @ (_SKULL_C - _PIVOT)
    brow_top = float(P[17:27, 1].min())
    x0, y0, head, head_hair = _head_layer(size, scale, _SS, R, d_s, A_s, A_h, p, brow_top)
    if head is not None:
        cv.head(x0, y0, head, head_hair, c_skin, c_hair)
    # -- lower face: the jaw outline 0..16 closed across the temples -----------------------
    cv.poly(pts[0:17], c_skin, _C["skin"])
    if p["old"]:  # age cues, drawn on the skin and labelled skin
        for k in _WRINKLES:
            cv.line(E(k), 3.5 * scale, c_wr, None)
    if p["facial_hair"] != "none":
        cv.poly(E(p["facial_hair"]), c_beard, _C["beard"])
    frame = _FRAME_RGB[p["frame"]]
    if p["eyeglasses"]:  # frame + tinted lens areas are glasses; eyes and brows drawn later win
        for side in ("r", "l"):
            cv.poly(E(f"gl_frame_{side}"), frame, _C["glasses"])
            cv.poly(E(f"gl_lens_{side}"), c_lens, _C["glasses"])
    # -- eyes, brows and nose in depth order (far eye first) --------------------------------
    iris = _IRIS_RGB[p["iris"]]
    e = uvP[36:48].reshape(2, 6, 2)  # right eye, left eye
    c = ((e[:, 0] + e[:, 1] + e[:, 2] + e[:, 3] + e[:, 4] + e[:, 5]) * (1.0 / 6.0))[:, None]
    inner = (np.stack([c + 0.62 * (e - c), c + 0.28 * (e - c)]) * _SS - 0.5).tolist()  # iris, pupil

    def eye(k, cls, brow_up, brow_lo):
        cv.poly(pts[36 + 6 * k:42 + 6 * k], _EYE_WHITE, cls)
        cv.poly(inner[0][k], iris, None)
        cv.poly(inner[1][k], (10, 10, 10), None)
        cv.poly(brow_up + brow_lo[::-1], c_brow, _C["brows"])

    eye_r = (0, _C["right_eye"], pts[17:22], E("brow_lo_r"))
    eye_l = (1, _C["left_eye"], pts[22:27], E("brow_lo_l"))
    far, near = (eye_l, eye_r) if p["yaw"] > 0 else (eye_r, eye_l)
    eye(*far)
    cv.poly(E("nose_base"), c_nose, _C["nose"])
    cv.poly(E("nose_ridge"), c_nose, _C["nose"])
    cv.poly(pts[31:34], c_nostril, None)
    cv.poly(pts[33:36], c_nostril, None)
    eye(*near)
    # -- mouth ---------------------------------------------------------------------------------
    cv.poly(pts[48:60], c_lip, _C["mouth"])
    if p["mouth_open"]:
        cv.poly(pts[60:68], (60, 18, 22), _C["mouth"])
        dy = 2.0 * scale * _SS
        cv.poly(pts[60:65] + [[x, y + dy] for x, y in pts[64:59:-1]], (236, 232, 220), None)
    elif p["smiling"]:  # closed-mouth smile: teeth between the parted lips
        cv.poly(pts[60:68], (236, 232, 220), _C["mouth"])
    else:
        cv.line(pts[60:65], 1.5 * scale, c_lipline, None)
    # -- glasses frame on top ------------------------------------------------------------------
    if p["eyeglasses"]:
        for side in ("r", "l"):
            ring = E(f"gl_frame_{side}")
            cv.line(ring + ring[:1], 4.0 * scale, frame, _C["glasses"])
        cv.line(E("gl_bridge"), 4.0 * scale, frame, _C["glasses"])
        if p["yaw"] > 8:  # the near arm: image-left side when the face turns right
            cv.line(E("gl_arm_r"), 2.5 * scale, frame, _C["glasses"])
        elif p["yaw"] < -8:
            cv.line(E("gl_arm_l"), 2.5 * scale, frame, _C["glasses"])

    # -- downsample, lighting ------------------------------------------------------------------
    img, mask = cv.finish()
    th = math.radians(p["light_azimuth"])
    gain = _ramp(size, math.cos(th), math.sin(th))
    gain *= np.float32(0.25 * p["light_strength"])
    gain *= mask > 0
    gain += 1.0
    img = img * gain[:, :, None]  # float32; gain > 0, so only the upper clip can act
    np.minimum(img, 255.0, out=img)
    lm = np.empty((68, 3), dtype=np.float32)
    lm[:, :2] = uvP - 0.5
    lm[:, 2] = scale * cam[:68, 2]
    return RenderResult(img.astype(np.uint8), mask, lm)


_RAMPS: Dict[int, tuple] = {}


def _ramp(size: int, c: float, s: float) -> np.ndarray:
    """Linear brightness ramp in [-1, 1] across the image towards the light direction (c, s)."""
    if size not in _RAMPS:
        g = (np.arange(size, dtype=np.float32) + 0.5) / size * 2.0 - 1.0
        _RAMPS[size] = (g[None, :], g[:, None])
    gx, gy = _RAMPS[size]
    return c * gx + s * gy  # float32


def render(params: Mapping[str, Any], size: int = 64) -> np.ndarray:
    """Render one face: uint8 RGB array (size, size, 3). ``params`` is a dict from
    :func:`sample_params` (missing keys take neutral defaults); ``size`` in [16, 256]."""
    return _render(params, size).image


def render_with_labels(params: Mapping[str, Any], size: int = 64) -> RenderResult:
    """Render one face with its segmentation mask and 3D landmarks (see :class:`RenderResult`)."""
    return _render(params, size)


# ----------------------------------------------------------------------------------------------
# Dataset
# ----------------------------------------------------------------------------------------------

class ToyFaces(Dataset):
    """``n`` procedural faces of ``size`` x ``size`` pixels, deterministic for a given ``seed``.

    Item ``i`` is ``(image, attributes, mask, landmarks, identity)``:

    - ``image``: float32 tensor (3, H, W) in [-1, 1];
    - ``attributes``: float32 tensor (len(ATTRIBUTES),), see :data:`ATTRIBUTES`;
    - ``mask``: int64 tensor (H, W) of :data:`MASK_CLASSES` indices;
    - ``landmarks``: float32 tensor (68, 3), iBUG order, x/y in pixels (pixel centres at
      integers), z depth in the same pixel scale (smaller = closer to the camera);
    - ``identity``: int, the identity parameter set the face was drawn from.

    ``attributes`` overrides factor distributions (see :data:`FACTORS`); ``identities=K`` draws
    the images from K identity parameter sets (``None``: one identity per image). Images are
    rendered on access (about 1-2 ms each at 64x64 on one core); :meth:`arrays` renders all.
    """

    def __init__(self, n: int, size: int = 64, seed: int = 0, attributes: Optional[Mapping[str, Any]] = None,
                 identities: Optional[int] = None):
        self.size = _check_size(size)
        self.seed = int(seed)
        self.attribute_config = dict(attributes) if attributes is not None else {}
        self.params, self.identity = sample_params(n, seed=seed, attributes=attributes, identities=identities)
        self.n_identities = int(identities) if identities is not None else len(self.params)
        self.attributes = np.stack([attribute_vector(p) for p in self.params]) if self.params else \
            np.zeros((0, len(ATTRIBUTES)), np.float32)

    def __len__(self) -> int:
        return len(self.params)

    def render(self, i: int) -> RenderResult:
        """Render item ``i`` as numpy arrays (uint8 image, uint8 mask, float32 landmarks)."""
        if not -len(self) <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} faces")
        return _render(self.params[i], self.size)

    def __getitem__(self, i: int):
        r = self.render(i)
        img = torch.from_numpy(r.image).permute(2, 0, 1).float().div_(127.5).sub_(1.0)
        return (img, torch.from_numpy(self.attributes[i].copy()), torch.from_numpy(r.mask.astype(np.int64)),
                torch.from_numpy(r.landmarks), int(self.identity[i]))

    def arrays(self, progress: bool = False):
        """Render every face: ``(images uint8 (n, H, W, 3), masks uint8 (n, H, W),
        landmarks float32 (n, 68, 3))``."""
        n, s = len(self), self.size
        images = np.empty((n, s, s, 3), np.uint8)
        masks = np.empty((n, s, s), np.uint8)
        lms = np.empty((n, 68, 3), np.float32)
        it = range(n)
        if progress:
            from tqdm import tqdm

            it = tqdm(it, desc=f"rendering {n} toy faces", unit="img")
        for i in it:
            r = _render(self.params[i], s)
            images[i], masks[i], lms[i] = r
        return images, masks, lms

    def save(self, directory, progress: bool = False) -> Path:
        """Write the dataset to ``directory`` (created if needed) and return its path:

        - ``images/{i:06d}.png``: RGB faces; ``masks/{i:06d}.png``: 8-bit class maps
          (values = :data:`MASK_CLASSES` indices);
        - ``labels.csv``: one row per image, columns ``file`` (relative path of the image),
          ``identity``, then every name of :data:`ATTRIBUTES`;
        - ``landmarks.npy``: float32 (n, 68, 3) in pixels;
        - ``toyfaces.json``: size, seed, identities, attribute overrides, class and attribute
          names."""
        root = Path(directory)
        (root / "images").mkdir(parents=True, exist_ok=True)
        (root / "masks").mkdir(parents=True, exist_ok=True)
        lms = np.empty((len(self), 68, 3), np.float32)
        it = range(len(self))
        if progress:
            from tqdm import tqdm

            it = tqdm(it, desc=f"saving {len(self)} toy faces", unit="img")
        with open(root / "labels.csv", "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["file", "identity", *ATTRIBUTES])
            for i in it:
                r = _render(self.params[i], self.size)
                name = f"{i:06d}.png"
                Image.fromarray(r.image).save(root / "images" / name)
                Image.fromarray(r.mask).save(root / "masks" / name)
                lms[i] = r.landmarks
                w.writerow([f"images/{name}", int(self.identity[i]),
                            *[("%d" % v) if j < len(BINARY_ATTRIBUTES) else ("%.6g" % v)
                              for j, v in enumerate(self.attributes[i])]])
        np.save(root / "landmarks.npy", lms)
        meta = {
            "generator": "fe_fast.datasets.toyfaces",
            "n": len(self), "size": self.size, "seed": self.seed, "identities": self.n_identities,
            "attribute_overrides": {k: (list(v) if isinstance(v, (tuple, list)) else v)
                                    for k, v in self.attribute_config.items()},
            "attributes": list(ATTRIBUTES), "binary_attributes": list(BINARY_ATTRIBUTES),
            "mask_classes": list(MASK_CLASSES),
        }
        with open(root / "toyfaces.json", "w") as fh:
            json.dump(meta, fh, indent=2, default=str)
        return root


def read_labels(directory):
    """Read ``labels.csv`` written by :meth:`ToyFaces.save`: ``(files, identity int64 (n,),
    attributes float32 (n, len(ATTRIBUTES)))`` with files relative to ``directory``."""
    path = Path(directory) / "labels.csv"
    if not path.exists():
        raise FileNotFoundError(f"no toy-face labels file at {path} (write one with ToyFaces.save)")
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    header, rows = rows[0], rows[1:]
    if header[:2] != ["file", "identity"] or tuple(header[2:]) != ATTRIBUTES:
        raise ValueError(f"{path}: unexpected header {header[:4]}...")
    files = [r[0] for r in rows]
    ids = np.array([int(r[1]) for r in rows], dtype=np.int64)
    attrs = np.array([[float(v) for v in r[2:]] for r in rows], dtype=np.float32).reshape(len(rows), len(ATTRIBUTES))
    return files, ids, attrs
