"""One call for the whole alignment step: landmarks -> pose (3D landmarks only) -> FFHQ crop."""
from __future__ import annotations

from typing import NamedTuple, Optional

import numpy as np

from fe_fast.align.crop import AlignedCrop, align_crop
from fe_fast.align.landmarks import LandmarkSource, get_landmarks
from fe_fast.align.pose import PoseResult, estimate_pose

__all__ = ["AlignedFace", "align_face"]


class AlignedFace(NamedTuple):
    """``landmarks`` (68, 2|3) in photo pixels, ``pose`` (None for 2D landmarks), ``crop``."""

    landmarks: np.ndarray
    pose: Optional[PoseResult]
    crop: AlignedCrop


def align_face(photo, landmarks: LandmarkSource = None, size: int = 256, pose_method: str = "umeyama",
               device: str = "cpu", seed: int = 0) -> AlignedFace:
    """Align the face in ``photo`` (RGB uint8 array): landmarks from ``landmarks`` (see
    :func:`~fe_fast.align.landmarks.get_landmarks`; None = 3D FAN on ``device``), the head pose by
    ``pose_method`` when they are 3D (``seed``: HOUV's random starts with ``pose_method="houv"``),
    and the FFHQ crop at ``size``."""
    L = get_landmarks(photo, landmarks, device=device)
    pose = estimate_pose(L, pose_method, seed=seed) if L.shape[1] == 3 else None
    return AlignedFace(L, pose, align_crop(photo, L, size=size))
