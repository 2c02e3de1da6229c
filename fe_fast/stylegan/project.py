"""Optimisation-based inversion: find the latent code of an aligned image (thesis Figure
1-1 "encode"), in W+ or directly in S (thesis ch. 6's style space).

The procedure follows the StyleGAN2 projector (Karras et al. 2020, appendix D), with the target
image fixed:

* start from the average w (every layer), optimise w+ with Adam. The learning rate ramps up over the
  first 5 % of the steps and follows a cosine ramp-down over the last 25 %. Gaussian noise of
  ``0.05 * std(w) * max(0, 1 - t / 0.75)^2`` is added to w in the early steps to explore;
* optionally optimise the per-layer noise maps too. They are kept at zero mean and unit variance
  after every step and regularised by the multi-scale autocorrelation penalty (sum over
  pyramid levels of the squared mean products of each map with itself shifted by one pixel
  in x and in y), weight ``noise_reg``;
* loss = ``pixel_weight`` * MSE + ``perceptual_weight`` * perceptual distance.

Perceptual distance (``perceptual=``):

* ``"vgg"``: VGG-16 relu1_2..relu5_3 maps, channel-normalised, squared difference averaged over
  positions (``VGG16Features.distance``). If ``lpips_weights`` is given (the ``lpips`` package's
  ``weights/v0.1/vgg.pth``, keys ``lin{0..4}.model.1.weight``), each layer's channels are
  weighted by LPIPS's learned linear layer. That gives LPIPS, except that the inputs use
  torchvision's ImageNet normalisation, not LPIPS's own input scaling. Needs the VGG-16
  weights file (``vgg_weights``, torchvision's ``vgg16-397923af.pth``).
* ``"multiscale"`` (the weight-free stand-in, default when no VGG weights are given): MSE of
  the image pyramid (full, 1/2, 1/4, 1/8 resolution, average pooling). It stresses the coarse
  layout the way a perceptual loss does. It is not perceptual, and it is documented as a stand-in.
* a callable ``f(a, b) -> [B]`` distance of two [-1, 1] image batches.

``space="s"`` optimises the style vectors of every layer (initialised from w+ of the average w)
instead of w+; edits then act on exactly the optimised codes.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Optional, Union

import torch
import torch.nn.functional as F

__all__ = ["Projection", "project", "psnr", "multiscale_distance", "VGGPerceptual"]


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR (dB) of two [-1, 1] images (peak-to-peak 2)."""
    mse = float(F.mse_loss(a.float(), b.float()))
    return float("inf") if mse == 0 else 10 * math.log10(4.0 / mse)


def multiscale_distance(a: torch.Tensor, b: torch.Tensor, levels: int = 4) -> torch.Tensor:
    """Weight-free stand-in for a perceptual distance: mean over pyramid levels of the per-sample MSE."""
    d = 0
    n = 0
    for _ in range(levels):
        d = d + (a - b).square().mean(dim=[1, 2, 3])
        n += 1
        if min(a.shape[-2:]) < 4:
            break
        a, b = F.avg_pool2d(a, 2), F.avg_pool2d(b, 2)
    return d / n


class VGGPerceptual(torch.nn.Module):
    """VGG-16 feature distance, LPIPS-weighted when ``lpips_weights`` is given (module docstring)."""

    def __init__(self, vgg_weights, lpips_weights=None, size: int = 256):
        super().__init__()
        from fe_fast.stylegan.features import VGG16Features, load_state_dict_file

        self.vgg = VGG16Features(vgg_weights)
        self.size = size
        self.lin = None
        if lpips_weights is not None:
            sd = load_state_dict_file(lpips_weights, "LPIPS linear layers (lpips weights/v0.1/vgg.pth)")
            keys = [f"lin{i}.model.1.weight" for i in range(5)]
            missing = [k for k in keys if k not in sd]
            if missing:
                raise ValueError(f"{lpips_weights}: not an LPIPS vgg.pth (missing {missing[:2]})")
            self.lin = [sd[k].reshape(1, -1, 1, 1).float() for k in keys]

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if a.shape[-1] > self.size:
            a = F.interpolate(a, size=(self.size, self.size), mode="area")
            b = F.interpolate(b, size=(self.size, self.size), mode="area")
        return self.vgg.distance(self.vgg(a), self.vgg(b), self.lin)


@dataclass
class Projection:
    """Result of :func:`project`: ``ws`` [1, num_ws, w_dim] (W+; for ``space="s"`` the start point),
    ``s`` (list of [1, C] style vectors: the optimised ones for ``space="s"``, else ``w_to_s(ws)``),
    ``noises`` (per conv layer, [1, 1, r, r]), the reconstruction ``image`` [1, 3, H, W], its
    ``mse`` and ``psnr`` against the target, the loss ``history`` and the wall-clock ``seconds``."""

    ws: torch.Tensor
    s: list
    noises: list
    image: torch.Tensor
    mse: float
    psnr: float
    space: str
    perceptual: str
    history: list = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {"space": self.space, "perceptual": self.perceptual, "mse": self.mse, "psnr": self.psnr,
                "seconds": self.seconds, "steps": len(self.history),
                "seconds_per_step": self.seconds / max(1, len(self.history)),
                "final_loss": self.history[-1] if self.history else None}


def _noise_regularisation(noises) -> torch.Tensor:
    reg = 0.0
    for n in noises:
        x = n[None, None] if n.ndim == 2 else n
        while True:
            reg = reg + (x * torch.roll(x, 1, dims=3)).mean().square() + (x * torch.roll(x, 1, dims=2)).mean().square()
            if x.shape[-1] <= 8:
                break
            x = F.avg_pool2d(x, 2)
    return reg


def _check_target(G, target) -> torch.Tensor:
    t = torch.as_tensor(target)
    if t.ndim == 3:
        t = t.unsqueeze(0)
    if t.ndim != 4 or t.shape[0] != 1 or t.shape[1] != 3:
        raise ValueError(f"target must be one RGB image [3, H, W] or [1, 3, H, W] in [-1, 1], got {list(t.shape)}")
    if not t.is_floating_point():
        raise ValueError(f"target must be a float tensor in [-1, 1], got {t.dtype} (convert uint8 with x / 127.5 - 1)")
    if not torch.isfinite(t).all():
        raise ValueError("target contains NaN or Inf")
    r = G.synthesis.resolution
    if t.shape[-2:] != (r, r):
        t = F.interpolate(t.float(), size=(r, r), mode="area" if t.shape[-1] > r else "bilinear",
                          align_corners=None if t.shape[-1] > r else False)
    return t.float()


def project(G, target, *, space: str = "w+", steps: int = 500, lr: float = 0.1,
            perceptual: Union[str, Callable, None] = None, vgg_weights=None, lpips_weights=None,
            pixel_weight: float = 1.0, perceptual_weight: float = 1.0, optimize_noise: bool = True,
            noise_reg: float = 1e5, w_avg_samples: int = 4096, seed: int = 0, progress: bool = True,
            device=None) -> Projection:
    """Project one aligned image (``target`` [3, H, W] or [1, 3, H, W] in [-1, 1], resized to the
    generator's resolution) into ``space`` ("w+" or "s") of generator ``G``. ``perceptual``: "vgg",
    "multiscale", a callable, or None (= "vgg" when ``vgg_weights`` is given, else "multiscale");
    see the module docstring. Returns a :class:`Projection`."""
    if space not in ("w+", "s"):
        raise ValueError(f"space must be 'w+' or 's', got {space!r}")
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr}")
    if perceptual is None:
        perceptual = "vgg" if vgg_weights is not None else "multiscale"
    if perceptual == "vgg":
        if vgg_weights is None:
            raise ValueError("perceptual='vgg' needs vgg_weights (torchvision's vgg16-397923af.pth); "
                             "use perceptual='multiscale' for the weight-free stand-in")
        dist_fn = VGGPerceptual(vgg_weights, lpips_weights)
        label = "lpips (vgg)" if lpips_weights is not None else "vgg"
    elif perceptual == "multiscale":
        dist_fn, label = multiscale_distance, "multiscale (weight-free stand-in)"
    elif callable(perceptual):
        dist_fn, label = perceptual, getattr(perceptual, "__name__", "custom")
    else:
        raise ValueError(f"perceptual must be 'vgg', 'multiscale', a callable or None, got {perceptual!r}")

    p0 = next(G.parameters())
    device = torch.device(device) if device is not None else p0.device
    G = G.to(device).eval().requires_grad_(False)
    if isinstance(dist_fn, torch.nn.Module):
        dist_fn = dist_fn.to(device)
    target = _check_target(G, target).to(device)
    t0 = time.perf_counter()

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        z = torch.randn(w_avg_samples, G.z_dim, generator=gen).to(device)
        w_samples = G.mapping(z)
        w_avg = w_samples.mean(0, keepdim=True)
        w_std = float(((w_samples - w_avg).square().sum() / w_samples.shape[0]).sqrt())
    ws0 = w_avg.unsqueeze(1).repeat(1, G.synthesis.num_ws, 1)
    if space == "w+":
        params = [ws0.clone().requires_grad_(True)]
    else:
        params = [s.detach().clone().requires_grad_(True) for s in G.synthesis.w_to_s(ws0)]
    noise_layers = [t for t in G.synthesis.s_layers if t.kind == "conv"]
    noises = [torch.randn(1, 1, t.resolution, t.resolution, generator=gen).to(device) for t in noise_layers]
    if optimize_noise:
        for n in noises:
            n.requires_grad_(True)
    opt = torch.optim.Adam(params + (noises if optimize_noise else []), betas=(0.9, 0.999), lr=lr)

    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=steps, desc=f"project ({space})", unit="step")
    history = []
    for step in range(steps):
        t = step / steps
        ramp = min(1.0, (1.0 - t) / 0.25)
        ramp = 0.5 - 0.5 * math.cos(ramp * math.pi)
        ramp = ramp * min(1.0, t / 0.05)
        for g in opt.param_groups:
            g["lr"] = lr * ramp
        explore = w_std * 0.05 * max(0.0, 1.0 - t / 0.75) ** 2
        if space == "w+":
            ws = params[0] + torch.randn_like(params[0]) * explore
            img = G.synthesis(ws=ws, noises=noises)
        else:
            img = G.synthesis(s=params, noises=noises)
        loss = pixel_weight * F.mse_loss(img, target)
        if perceptual_weight:
            loss = loss + perceptual_weight * dist_fn(img, target).mean()
        if optimize_noise and noise_reg:
            loss = loss + noise_reg * _noise_regularisation(noises)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if optimize_noise:
            with torch.no_grad():
                for n in noises:
                    n.sub_(n.mean()).div_(n.square().mean().sqrt().clamp_min(1e-8))
        history.append(float(loss.detach()))
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{history[-1]:.4f}")
    if bar is not None:
        bar.close()
    with torch.no_grad():
        noises = [n.detach() for n in noises]
        if space == "w+":
            ws = params[0].detach()
            s = [x.detach() for x in G.synthesis.w_to_s(ws)]
        else:
            ws = ws0
            s = [x.detach() for x in params]
        img = G.synthesis(s=s, noises=noises)
    return Projection(ws=ws, s=s, noises=noises, image=img, mse=float(F.mse_loss(img, target)),
                      psnr=psnr(img, target), space=space, perceptual=label, history=history,
                      seconds=time.perf_counter() - t0)
