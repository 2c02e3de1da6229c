"""Editing S codes along located channels (thesis eq. 6-3 and eq. 6-7).

* Single channel, eq. 6-3: ``s* = s + alpha * eps``, eps = sigma_c * sign_c * e_c, where sigma_c is
  the channel's standard deviation over the positives (§6.2.3; for channels given by hand: over
  1000 generated samples, §6.2.2) and sign_c points the way that increases the attribute (or the
  region's intensity), so alpha > 0 adds the attribute.
* Multi channel, eq. 6-7: eps_m = Normalize(average gradient restricted to the top-k channels of
  the layer). The normalisation is done in sigma-normalised S coordinates (x = s / sigma, as
  StyleSpace normalises s): the gradient there is sigma * g, so
  ``delta s = alpha * sigma * u / ||u||`` with u = sigma * direction over the channels. alpha = 1
  then has the same normalised length as a single-channel unit edit, which makes the two
  comparable (thesis Table 6-4).
* ``selection="whole"`` sets (ablation 2 of §6.3.4) always edit with the whole normalised gradient.

``edit`` works on any s (generated samples or the s codes of inverted real images) and never
modifies its inputs; ``sweep``/``sweep_grid`` render continuous edits (``alphas=[...]``) as an image
grid (rows: samples, columns: alphas), written as PNG with Pillow.
"""
from __future__ import annotations

import functools
import math
from typing import List, Optional, Sequence, Union

import numpy as np
import torch

from fe_fast.editing.locate import (ChannelSet, auto_batch_sizes, flatten_s, parse_channels, render, sample_styles,
                                    style_offsets)

__all__ = ["edit", "unit_delta", "style_std", "sweep", "sweep_grid", "save_grid", "to_pil"]


@functools.lru_cache(maxsize=8)
def _style_std_cached(G, n: int, seed: int):
    _, s = sample_styles(G, n, seed)
    return flatten_s(s).std(0).detach().cpu()


def style_std(G, n: int = 1000, seed: int = 0) -> torch.Tensor:
    """[C] std of every S channel over ``n`` generated samples (the unit strengths of §6.2.2)."""
    return _style_std_cached(G, int(n), int(seed))


def unit_delta(G, channels, mode: str = "single", sigma: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Packed [C] unit edit direction eps of eq. 6-3 (``mode="single"``) or eq. 6-7 (``"multi"``).

    ``channels``: a :class:`ChannelSet` (single: its rank-1 channel; multi: all its channels; a
    "whole" set: the whole normalised gradient), or channels by hand ("6:501", [(6, 501)], ...): each
    listed channel moves by +sigma_c (single) or along the sigma-normalised diagonal (multi)."""
    if mode not in ("single", "multi"):
        raise ValueError(f"mode must be 'single' or 'multi', got {mode!r}")
    off = style_offsets(G)
    C = int(off[-1])
    if isinstance(channels, ChannelSet):
        if int(channels.offsets[-1]) != C:
            raise ValueError(f"the channel set was located on a generator with {int(channels.offsets[-1])} S "
                             f"channels, this one has {C}")
        sig = channels.sigma if sigma is None else sigma
        if sig is None:
            sig = style_std(G)
        if not len(channels.channels) and channels.selection != "whole":
            raise ValueError("the channel set is empty")
        delta = torch.zeros(C, dtype=sig.dtype)
        if channels.selection == "whole":
            cols = torch.cat([torch.arange(int(off[l]), int(off[l + 1])) for l in channels.layers])
            u = sig[cols] * channels.direction[cols]
            delta[cols] = sig[cols] * u / u.norm().clamp_min(1e-30)
            return delta
        chosen = channels.channels[:1] if mode == "single" else channels.channels
        cols = torch.tensor([int(off[c.layer]) + c.channel for c in chosen])
        signs = torch.tensor([c.sign for c in chosen], dtype=sig.dtype)
        if mode == "single" or channels.direction is None:
            u = signs
        else:
            u = sig[cols] * channels.direction[cols]
        if mode == "single":
            delta[cols] = sig[cols] * u
        else:
            delta[cols] = sig[cols] * u / u.norm().clamp_min(1e-30)
        return delta
    pairs = parse_channels(channels, G)
    sig = style_std(G) if sigma is None else sigma
    delta = torch.zeros(C, dtype=sig.dtype)
    cols = torch.tensor([int(off[l]) + c for l, c in pairs])
    if mode == "single":
        delta[cols] = sig[cols]
    else:
        delta[cols] = sig[cols] / math.sqrt(len(pairs))
    return delta


def edit(G, s: Sequence[torch.Tensor], channels, alpha: float, *, mode: str = "single",
         sigma: Optional[torch.Tensor] = None) -> List[torch.Tensor]:
    """s* = s + alpha * eps (thesis eq. 6-3; eq. 6-7 with ``mode="multi"``) for every sample of s.

    Args:
        G: the generator (for the S layout and, for channels by hand, the 1000-sample std).
        s: list of [B, C_l] style tensors (``G.synthesis.w_to_s`` output or an inverted image's s).
        channels: a :class:`ChannelSet` from :func:`locate` or a baseline, or "LAYER:CHANNEL,...".
        alpha: edit strength in units of eps (a float).
    Returns a new list; only the layers that hold an edited channel differ from ``s``."""
    try:
        alpha = float(alpha)
    except (TypeError, ValueError):
        raise ValueError(f"alpha must be a number, got {alpha!r}") from None
    s = list(s)
    s_layers = G.synthesis.s_layers
    if len(s) != len(s_layers):
        raise ValueError(f"s must hold {len(s_layers)} style tensors, got {len(s)}")
    delta = unit_delta(G, channels, mode, sigma)
    off = style_offsets(G)
    out = []
    for l, t in enumerate(s):
        d = delta[int(off[l]):int(off[l + 1])]
        if bool((d != 0).any()):
            out.append(t + alpha * d.to(device=t.device, dtype=t.dtype))
        else:
            out.append(t)
    return out


@torch.no_grad()
def sweep(G, s: Sequence[torch.Tensor], channels, alphas: Sequence[float], *, mode: str = "single",
          sigma: Optional[torch.Tensor] = None, noise_mode: str = "const") -> torch.Tensor:
    """Continuous edits: images [len(alphas), B, 3, H, W] for s edited with every alpha (rendered in
    batches that fit the activation budget of :func:`fe_fast.editing.locate.auto_batch_sizes`)."""
    alphas = list(alphas)
    if not alphas:
        raise ValueError("alphas must hold at least one value")
    bs = auto_batch_sizes(G)[0]
    out = []
    for a in alphas:
        e = edit(G, s, channels, a, mode=mode, sigma=sigma)
        n = e[0].shape[0]
        out.append(torch.cat([render(G, [t[i:i + bs] for t in e], noise_mode) for i in range(0, n, bs)]))
    return torch.stack(out)


def to_pil(images: torch.Tensor):
    """[B, 3, H, W] in [-1, 1] -> list of PIL images."""
    from PIL import Image

    x = ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    return [Image.fromarray(np.ascontiguousarray(a)) for a in x]


def save_grid(images: torch.Tensor, path=None, pad: int = 2):
    """Grid of [rows, cols, 3, H, W] images in [-1, 1] -> PIL image (saved as PNG when ``path``)."""
    from PIL import Image

    if images.dim() != 5:
        raise ValueError(f"images must be [rows, cols, 3, H, W], got {list(images.shape)}")
    R, Cn, _, H, W = images.shape
    grid = Image.new("RGB", (Cn * (W + pad) + pad, R * (H + pad) + pad), (255, 255, 255))
    for r in range(R):
        for c, im in enumerate(to_pil(images[r])):
            grid.paste(im, (pad + c * (W + pad), pad + r * (H + pad)))
    if path is not None:
        grid.save(path, format="PNG")
    return grid


def sweep_grid(G, s: Sequence[torch.Tensor], channels, alphas: Sequence[float], path=None, *,
               mode: str = "single", sigma: Optional[torch.Tensor] = None):
    """:func:`sweep` rendered as a PIL grid (rows: samples, columns: alphas), PNG at ``path``."""
    imgs = sweep(G, s, channels, alphas, mode=mode, sigma=sigma)  # [A, B, 3, H, W]
    return save_grid(imgs.transpose(0, 1), path)


def s_for_seeds(G, seeds: Union[int, Sequence[int]], truncation_psi: float = 1.0) -> List[torch.Tensor]:
    """s codes of the samples with the given seeds (one z per seed, as ``fe-fast edit --sample-seeds``)."""
    seeds = [seeds] if isinstance(seeds, int) else list(seeds)
    s_all = [sample_styles(G, 1, sd, truncation_psi)[1] for sd in seeds]
    return [torch.cat([s_i[l] for s_i in s_all]) for l in range(len(s_all[0]))]
