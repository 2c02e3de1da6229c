"""From a photo to an edited face (thesis Figure 1-1): align -> project -> edit in S -> decode ->
paste back. The steps are the library's own: :mod:`fe_fast.align`, :func:`fe_fast.stylegan.project.project`,
:func:`fe_fast.editing.edit.edit` (eq. 6-3 / 6-7)."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch

__all__ = ["EditedPhoto", "edit_photo"]


@dataclass
class EditedPhoto:
    """Every stage as PIL images: ``photo`` (input), ``crop`` (aligned), ``reconstruction`` (the
    generator's image of the projected codes), ``edited`` (after the S edit), ``result`` (the
    edited crop pasted back into the photo); plus the ``projection``, the ``pose`` (or None for 2D
    landmarks) and the aligned-crop geometry ``aligned``; ``timings``: wall seconds of each stage
    (align, project, edit, decode, paste)."""

    photo: object
    crop: object
    reconstruction: object
    edited: object
    result: object
    projection: object
    pose: object
    aligned: object
    timings: dict = field(default_factory=dict)

    def grid(self, height: int = 256, pad: int = 4):
        """Before/after strip: photo | aligned crop | reconstruction | edited | result."""
        from PIL import Image

        ims = [self.photo, self.crop, self.reconstruction, self.edited, self.result]
        ims = [im.resize((max(1, round(im.width * height / im.height)), height), Image.LANCZOS) for im in ims]
        out = Image.new("RGB", (sum(im.width for im in ims) + pad * (len(ims) + 1), height + 2 * pad), "white")
        x = pad
        for im in ims:
            out.paste(im, (x, pad))
            x += im.width + pad
        return out


def _to_image(t: torch.Tensor):
    from fe_fast.editing.edit import to_pil

    return to_pil(t)[0]


def edit_photo(photo, G, channels, strength: float, *, landmarks=None, mode: str = "single",
               crop_size: Optional[int] = None, space: str = "s", steps: int = 300, lr: float = 0.1,
               vgg_weights=None, lpips_weights=None, pose_method: str = "umeyama", seed: int = 0,
               progress: bool = True, device=None) -> EditedPhoto:
    """Edit the face in ``photo`` (RGB uint8 array or PIL image) along S ``channels`` (a
    ``ChannelSet`` or "LAYER:CHANNEL,...") by ``strength`` units (eq. 6-3; eq. 6-7 with
    ``mode="multi"``). ``landmarks``: a landmark source (see
    :func:`fe_fast.align.landmarks.get_landmarks`: None = 3D FAN, a file, an array or a callable).
    The crop is taken at ``crop_size`` (default: the generator's resolution), projected into
    ``space`` with ``steps`` Adam steps, edited, decoded with the projected noise maps and pasted back."""
    from PIL import Image

    from fe_fast.align import align_face
    from fe_fast.editing.edit import edit
    from fe_fast.stylegan.project import project

    timings = {}
    t = time.perf_counter()
    img = photo if isinstance(photo, Image.Image) else Image.fromarray(np.asarray(photo))
    img = img.convert("RGB")
    arr = np.asarray(img)
    size = int(crop_size or G.synthesis.resolution)
    _, pose, aligned = align_face(arr, landmarks, size, pose_method)
    target = torch.from_numpy(np.array(aligned.image)).permute(2, 0, 1).float().div(127.5).sub(1.0)
    timings["align"] = time.perf_counter() - t
    t = time.perf_counter()
    proj = project(G, target, space=space, steps=steps, lr=lr, vgg_weights=vgg_weights,
                   lpips_weights=lpips_weights, seed=seed, progress=progress, device=device)
    timings["project"] = time.perf_counter() - t
    t = time.perf_counter()
    s_edit = edit(G, proj.s, channels, strength, mode=mode)
    timings["edit"] = time.perf_counter() - t
    t = time.perf_counter()
    with torch.no_grad():
        edited = G.synthesis(s=s_edit, noises=proj.noises)
    timings["decode"] = time.perf_counter() - t
    t = time.perf_counter()
    rec_im = _to_image(proj.image).resize((size, size), Image.LANCZOS)
    ed_im = _to_image(edited).resize((size, size), Image.LANCZOS)
    result = aligned.paste(arr, ed_im)
    timings["paste"] = time.perf_counter() - t
    return EditedPhoto(img, aligned.image, rec_im, ed_im, result, proj, pose, aligned, timings)
