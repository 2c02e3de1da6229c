"""How the teachers with real weights take a generator's images (thesis ch. 6: the attribute and
region teachers read the generator's samples).

A StyleGAN2 generator writes square images at its own resolution (1024 for FFHQ config-f); the
CelebA ResNet-50 reads 224x224 and the face-parsing BiSeNet 512x512. :func:`resize_for_teacher`
is the one resize between the two, used by :class:`~fe_fast.teachers.CelebAResNet50` and
:class:`~fe_fast.teachers.BiSeNetParser` (and for the parser's logits on the way back):

* no crop: the whole frame is resized (FFHQ-aligned faces fill the generator's square frame; a
  non-square image would be stretched to the square);
* antialiased bilinear interpolation, ``F.interpolate(x, size, mode="bilinear",
  align_corners=False, antialias=True)``: an output pixel is the average of the input pixels whose
  centres lie within ``s = max(1, H_in / H_out)`` input pixels of its centre, weighted by the
  triangle ``1 - d / s`` and normalised to sum 1 (separably along each axis). Shrinking 1024 to
  224 thus averages about 9 x 9 input pixels per output pixel, where plain bilinear samples 2 x 2
  of them and aliases the fine texture of hair and skin; enlarging is plain bilinear. This is
  PIL's ``BILINEAR`` resize, the one torchvision's ``Resize`` applies when such classifiers are
  trained, and the resize :mod:`fe_fast.editing` applies before its toy teachers;
* an image already at the target size is returned as is.

Differentiable (the editing methods back-propagate a teacher's output to the generator's S codes).
"""
from __future__ import annotations

import operator

import torch
import torch.nn.functional as F

__all__ = ["resize_for_teacher"]


def resize_for_teacher(x: torch.Tensor, size) -> torch.Tensor:
    """Resize images ``x`` (B, C, H, W) to ``size`` (an int for a square, or (height, width))
    as the module docstring describes: whole frame, antialiased bilinear. Returns ``x`` itself
    when it already has that size; never modifies ``x``."""
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or not x.is_floating_point():
        raise ValueError(f"x must be a floating-point tensor (B, C, H, W), got "
                         f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
    try:
        hw = (operator.index(size),) * 2 if not isinstance(size, (tuple, list, torch.Size)) \
            else tuple(operator.index(s) for s in size)
    except TypeError:
        hw = ()
    if isinstance(size, bool) or len(hw) != 2 or min(hw) < 1:
        raise ValueError(f"size must be a positive int or (height, width), got {size!r}")
    if tuple(x.shape[-2:]) == hw:
        return x
    return F.interpolate(x, size=hw, mode="bilinear", align_corners=False, antialias=True)
