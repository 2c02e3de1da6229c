"""Random augmentations of image batches, additions to DERC (not in the thesis).

Jitter (:func:`random_affine`): DERC's encoder sees a jittered copy of each image (random shift and
rotation) and the decoder must reconstruct the *clean* image, so the codes have to ignore small
displacements of the stroke (a transformation-invariant variant of the reconstruction loss eq. 4-8).
Mirror images (:func:`random_mirror`, DERC's ``mirror``): each training image is replaced by its
left-right mirror image with probability 1/2. Both are off in the thesis preset, which trains on the
images as they are.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["random_affine", "random_mirror"]


def random_affine(x: torch.Tensor, gen: torch.Generator, max_shift: float, max_rotation: float) -> torch.Tensor:
    """Shift each image by up to ``max_shift`` (fraction of its side) and rotate it by up to
    ``max_rotation`` degrees, drawn uniformly and independently per image from ``gen``.

    ``x``: (B, C, H, W). Bilinear resampling, zeros outside the image (the digit backgrounds are 0).
    The rotation acts in coordinates normalised per axis, so on non-square images it also shears a
    little.
    Returns a new tensor; ``x`` is not modified. Zero ranges return ``x`` unchanged.
    """
    if max_shift < 0 or max_rotation < 0:
        raise ValueError(f"augmentation ranges must be >= 0, got shift {max_shift}, rotation {max_rotation}")
    if max_shift == 0 and max_rotation == 0:
        return x
    b = x.shape[0]
    u = torch.rand(b, 3, generator=gen) * 2.0 - 1.0  # U(-1, 1): angle, dx, dy
    ang = u[:, 0] * math.radians(max_rotation)
    cos, sin = torch.cos(ang), torch.sin(ang)
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1] = cos, -sin
    theta[:, 1, 0], theta[:, 1, 1] = sin, cos
    theta[:, :, 2] = u[:, 1:] * (2.0 * max_shift)  # affine_grid coordinates span 2 per side
    theta = theta.to(device=x.device, dtype=x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def random_mirror(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Each image of ``x`` (B, C, H, W) flipped left-right with probability 1/2, drawn independently
    per image from ``gen``. Returns a new tensor; ``x`` is not modified."""
    flip = (torch.rand(x.shape[0], generator=gen) < 0.5).to(x.device)
    return torch.where(flip[:, None, None, None], x.flip(-1), x)
