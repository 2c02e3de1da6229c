"""Identity clustering sets drawn from the toy face world (:mod:`.toyfaces`).

:func:`identity_set` renders ``n_identities`` identities with ``per_identity`` images each; the
class of an image is its identity. What an identity keeps: skin tone, face shape and width, eye
size and iris, hair colour and length, facial hair, age cues. What changes from image to image:
head pose (yaw +-45, pitch +-20, roll +-20 degrees), lighting direction and strength, expression
(smile, open mouth), glasses, the background colour, and the hair style (the fringe is toggled
with probability ``hair_change`` and the hair volume and hairline are redrawn), so that neither the
pixels of one pose nor the hair alone give the identity away.

Seeds: :data:`VALIDATION_SEEDS` (5000 and up) are reserved for validating clustering defaults; a
default chosen while looking at sets drawn with these seeds is no longer validated by them. Use
seeds below 5000 for development. Used so far: 5000-5002 (40 identities x 10 images, grey: the first
validation of DERC's default), 7200-7202 (10 identities x 150 images, grey) and 7000-7002 (150
identities x 10 images, grey): the validation of its mid-size rule; 7300-7302, 7400-7402 and
7500-7502, 7600-7602, 7700-7702 and 7800-7802 (10 identities x 150, grey, 8x8 averages): the validations of its tiny-image rules
(bench/results/derc.md). **Exception: 8000-8024** (10 identities x 150) are the choosing split of
the tiny-image rules (``tools/derc_choose.py toyfaces-choose``) and validate nothing: 8000-8002
chose the rules; 8003-8024 were rendered for spectral clustering on their pixels to pick hard
choosing sets (8009, 8011, 8017, 8018, 8022, 8023), on which DERC candidates then ran. 7100+ (colour), 10
images per identity, are named in bench/bm_derc.py for a later validation and not rendered yet.
"""
from __future__ import annotations

from typing import Tuple

import numpy as np

__all__ = ["identity_set", "VALIDATION_SEEDS"]

#: seeds reserved for validation (never looked at while choosing a default)
VALIDATION_SEEDS = range(5000, 10000)


def identity_set(n_identities: int = 40, per_identity: int = 10, size: int = 64, seed: int = 0,
                 grayscale: bool = True, hair_change: float = 0.3) -> Tuple[np.ndarray, np.ndarray]:
    """Render ``n_identities * per_identity`` toy faces, ``per_identity`` per identity.

    Returns ``(images, identity)``: uint8 images ``(N, size, size)`` (``grayscale``) or
    ``(N, size, size, 3)``, and int64 identity labels ``0 .. n_identities - 1``, in a seeded random
    order. Deterministic for a given ``seed``. Raises ``ValueError`` for fewer than 2 identities,
    fewer than 1 image per identity or ``hair_change`` outside [0, 1].
    """
    from .toyfaces import _check_size, _render, sample_params

    for name, v, lo in (("n_identities", n_identities, 2), ("per_identity", per_identity, 1)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
            raise ValueError(f"{name} must be an int >= {lo}, got {v!r}")
    if not 0.0 <= float(hair_change) <= 1.0:
        raise ValueError(f"hair_change must be a probability in [0, 1], got {hair_change!r}")
    size = _check_size(size)
    n = int(n_identities) * int(per_identity)
    params, ids = sample_params(n, seed=seed, identities=int(n_identities))
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 42]))
    flip = rng.random(n) < float(hair_change)
    volume = rng.uniform(0.0, 1.0, n)
    hairline = rng.uniform(-0.15, 0.15, n)
    shape = (n, size, size) if grayscale else (n, size, size, 3)
    images = np.empty(shape, np.uint8)
    for i, p in enumerate(params):
        p = dict(p, bangs=bool(p["bangs"]) ^ bool(flip[i]), hair_volume=float(volume[i]),
                 hairline=float(np.clip(p["hairline"] + hairline[i], 0.0, 1.0)))
        rgb = _render(p, size).image
        if grayscale:  # ITU-R 601 luma, as PIL's "L" conversion
            images[i] = np.clip(np.rint(rgb @ np.array([0.299, 0.587, 0.114])), 0, 255).astype(np.uint8)
        else:
            images[i] = rgb
    return images, np.asarray(ids, dtype=np.int64)
