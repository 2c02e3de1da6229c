"""StyleGAN2 config-f generator with S space as a first-class API (thesis ch. 5 and Table 6-2).

Structure (thesis Fig. 5-1 / 5-2, StyleGAN2 config-f):

* mapping network M (thesis eq. 5-1/5-2 context): z is normalised to unit second moment, then
  ``n_mlp`` equalised-learning-rate fully connected layers with learning-rate multiplier 0.01 and
  scaled leaky ReLU give the style code w; the running average of w is tracked for truncation;
* synthesis network S: a learned constant 4x4 input, then per resolution a modulated 3x3
  convolution with 2x up-sampling (transposed convolution + [1,3,3,1] FIR blur), a second modulated
  3x3 convolution, noise inputs with learned strength, bias + scaled leaky ReLU, and skip-connected
  ToRGB layers (modulated 1x1 convolution without demodulation) whose running RGB image is
  up-sampled with the FIR filter.

Each modulated layer owns an affine map A (w -> s, bias initialised to 1). The outputs of these maps
form the S space of thesis §6.2.1: ``G.synthesis.w_to_s(w_plus)`` returns one tensor per style layer
in the order of thesis Table 6-2 (at 1024: 26 layers, 17 convolutions with 6048 channels and 9 ToRGB
layers with 3040 channels), ``G.synthesis(s=...)`` generates from S, ``G.synthesis.s_layers`` describes
the layers. Every modulated convolution runs through ``fe_fast.ops.modulated_conv.modulated_conv2d``.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from fe_fast.ops.modulated_conv import modulated_conv2d
from fe_fast.stylegan.layers import EqualLinear, fir_kernel, upsample2d

__all__ = ["SLayer", "MappingNetwork", "ModulatedLayer", "SynthesisNetwork", "Generator",
           "channels_for", "num_ws_for", "modconv_impl"]


_MODCONV_OVERRIDE = None


def _modconv():
    """The modulated-convolution op used by every modulated layer: ``fe_fast.ops.modulated_conv2d``
    (the only layer that talks to a backend, CONTRIBUTING), unless a benchmark or test swapped in
    another function with :func:`modconv_impl`."""
    if _MODCONV_OVERRIDE is not None:
        return _MODCONV_OVERRIDE
    return modulated_conv2d


@contextlib.contextmanager
def modconv_impl(fn):
    """Temporarily run every modulated layer with ``fn`` (same signature as
    ``fe_fast.ops.modulated_conv2d``), e.g. the grouped-conv reference in benchmarks."""
    global _MODCONV_OVERRIDE
    prev, _MODCONV_OVERRIDE = _MODCONV_OVERRIDE, fn
    try:
        yield
    finally:
        _MODCONV_OVERRIDE = prev


def _check_resolution(resolution) -> int:
    if not isinstance(resolution, int) or resolution < 8 or resolution > 4096 or resolution & (resolution - 1):
        raise ValueError(f"resolution must be a power of two between 8 and 4096, got {resolution!r}")
    return resolution


def channels_for(resolution: int, channel_multiplier: float = 2, channel_base: int | None = None,
                 channel_max: int = 512) -> dict[int, int]:
    """Feature channels per resolution: ``min(channel_base // res, channel_max)`` with
    ``channel_base = 16384 * channel_multiplier``. For ``channel_multiplier=2`` this is config-f:
    512 up to 64x64, then 256, 128, 64, 32 at 1024 (thesis Table 6-2)."""
    base = int(16384 * channel_multiplier) if channel_base is None else int(channel_base)
    out = {}
    r = 4
    while r <= resolution:
        out[r] = max(1, min(base // r, channel_max))
        r *= 2
    return out


def num_ws_for(resolution: int) -> int:
    """Number of w+ entries: 2 log2(resolution) - 2 (18 at 1024, thesis Table 6-1)."""
    return 2 * int(math.log2(resolution)) - 2


@dataclass(frozen=True)
class SLayer:
    """One style layer of S space (a row of thesis Table 6-2)."""

    index: int          # position in S (s^index)
    kind: str           # "conv" or "torgb"
    resolution: int     # output resolution of the layer
    channels: int       # dimension of s^index (= input channels of the modulated convolution)
    out_channels: int
    w_index: int        # which w+ entry feeds this layer
    name: str           # module path inside the synthesis network, e.g. "b8.conv0"

    def as_dict(self) -> dict:
        return asdict(self)


class MappingNetwork(nn.Module):
    """z -> w: normalisation to unit second moment, then ``num_layers`` equalised-lr FC layers
    (lr multiplier 0.01) with scaled leaky ReLU. Keeps ``w_avg``, the moving average of w used for
    truncation (w' = w_avg + psi (w - w_avg))."""

    def __init__(self, z_dim: int = 512, w_dim: int = 512, num_layers: int = 8,
                 lr_multiplier: float = 0.01, w_avg_beta: float = 0.995):
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"n_mlp must be >= 1, got {num_layers}")
        self.z_dim, self.w_dim, self.num_layers = z_dim, w_dim, num_layers
        self.w_avg_beta = w_avg_beta
        self.fcs = nn.ModuleList(
            EqualLinear(z_dim if i == 0 else w_dim, w_dim, lr_mul=lr_multiplier, activation="lrelu")
            for i in range(num_layers)
        )
        self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(self, z: torch.Tensor, truncation_psi: float = 1.0, update_w_avg: bool = False) -> torch.Tensor:
        if z.ndim != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"z must have shape [B, {self.z_dim}], got {list(z.shape)}")
        x = z * torch.rsqrt(z.square().mean(dim=1, keepdim=True) + 1e-8)
        for fc in self.fcs:
            x = fc(x)
        if update_w_avg:
            with torch.no_grad():
                self.w_avg.copy_(x.detach().mean(0).lerp(self.w_avg, self.w_avg_beta))
        if truncation_psi != 1:
            x = self.w_avg.lerp(x, truncation_psi)
        return x


class ModulatedLayer(nn.Module):
    """A modulated convolution with its affine style map (StyleGAN2's weight (de)modulation form of
    the AdaIN of thesis eq. 5-3): s = A(w); y = conv(x, W * s) / sigma (sigma only when
    ``demodulate``), then noise * strength, bias, activation. ``kind="torgb"`` is the 1x1 ToRGB layer:
    no demodulation, no noise, linear."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int,
                 kernel_size: int = 3, up: int = 1, kind: str = "conv", conv_clamp: float | None = None):
        super().__init__()
        if kind not in ("conv", "torgb"):
            raise ValueError(f"kind must be 'conv' or 'torgb', got {kind!r}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.resolution, self.kernel_size, self.up, self.kind = resolution, kernel_size, up, kind
        self.demodulate = kind == "conv"
        self.activation = "lrelu" if kind == "conv" else "linear"
        self.conv_clamp = conv_clamp
        self.affine = EqualLinear(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.weight_gain = 1.0 / math.sqrt(in_channels * kernel_size ** 2)
        self.bias = nn.Parameter(torch.zeros(out_channels))
        if kind == "conv":
            self.noise_strength = nn.Parameter(torch.zeros([]))
            self.register_buffer("noise_const", torch.randn(resolution, resolution))
        else:
            self.noise_strength = None

    def forward(self, x: torch.Tensor, s: torch.Tensor, noise_mode: str = "random",
                noise: torch.Tensor | None = None) -> torch.Tensor:
        scaled_noise = None
        if self.kind == "conv" and noise_mode != "none":
            b = x.shape[0]
            if noise is None:
                if noise_mode == "random":
                    noise = torch.randn(b, 1, self.resolution, self.resolution, device=x.device, dtype=x.dtype)
                else:  # "const"
                    noise = self.noise_const.to(x.dtype).reshape(1, 1, self.resolution, self.resolution)
            scaled_noise = (noise * self.noise_strength).expand(b, 1, self.resolution, self.resolution)
        out = _modconv()(x, self.weight, s, demodulate=self.demodulate, up=self.up, noise=scaled_noise,
                         bias=self.bias, activation=self.activation, weight_gain=self.weight_gain)
        if self.conv_clamp is not None:
            out = out.clamp(-self.conv_clamp, self.conv_clamp)
        return out

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, k={self.kernel_size}, up={self.up}, "
                f"kind={self.kind}, res={self.resolution}")


class SynthesisBlock(nn.Module):
    """One resolution of the synthesis network: [conv0 (2x up)], conv1, torgb (skip architecture)."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int,
                 conv_clamp: float | None = None):
        super().__init__()
        self.resolution = resolution
        self.conv0 = None
        if resolution > 4:
            self.conv0 = ModulatedLayer(in_channels, out_channels, w_dim, resolution, up=2, conv_clamp=conv_clamp)
        self.conv1 = ModulatedLayer(out_channels if resolution > 4 else in_channels, out_channels, w_dim,
                                    resolution, conv_clamp=conv_clamp)
        self.torgb = ModulatedLayer(out_channels, 3, w_dim, resolution, kernel_size=1, kind="torgb",
                                    conv_clamp=conv_clamp)

    def layers(self):
        return [m for m in (self.conv0, self.conv1, self.torgb) if m is not None]


class SynthesisNetwork(nn.Module):
    """w+ or S -> image. ``forward(ws=None, s=None, noise_mode="random", noises=None)``:

    * ``ws``: [B, num_ws, w_dim] (w+) or [B, w_dim] (broadcast to every layer);
    * ``s``: a list of ``len(self.s_layers)`` tensors [B, channels] (thesis Table 6-2 order);
    * ``noise_mode``: "random" (fresh N(0,1) noise), "const" (the stored per-layer noise) or "none";
    * ``noises``: optional explicit noise per conv layer ([B or 1, 1, res, res]), overriding noise_mode.

    Returns images [B, 3, resolution, resolution] (roughly in [-1, 1])."""

    def __init__(self, resolution: int, w_dim: int = 512, channel_multiplier: float = 2,
                 channel_base: int | None = None, channel_max: int = 512, conv_clamp: float | None = None):
        super().__init__()
        self.resolution = _check_resolution(resolution)
        self.w_dim = w_dim
        self.channels = channels_for(resolution, channel_multiplier, channel_base, channel_max)
        self.num_ws = num_ws_for(resolution)
        res_list = sorted(self.channels)
        self.const = nn.Parameter(torch.randn(self.channels[4], 4, 4))
        blocks = []
        for i, r in enumerate(res_list):
            cin = self.channels[res_list[i - 1]] if i > 0 else self.channels[4]
            blocks.append(SynthesisBlock(cin, self.channels[r], w_dim, r, conv_clamp=conv_clamp))
        self.blocks = nn.ModuleList(blocks)
        self.register_buffer("resample_filter", fir_kernel(gain=4.0), persistent=False)

        # S-layer table (thesis Table 6-2): b4.conv1 <- w0, b4.torgb <- w1; block k >= 1:
        # conv0 <- w(2k-1), conv1 <- w(2k), torgb <- w(2k+1).
        table, modules = [], []
        for k, block in enumerate(self.blocks):
            names = ["conv1", "torgb"] if k == 0 else ["conv0", "conv1", "torgb"]
            w_idx = [0, 1] if k == 0 else [2 * k - 1, 2 * k, 2 * k + 1]
            for name, wi in zip(names, w_idx):
                layer = getattr(block, name)
                table.append(SLayer(len(table), "torgb" if name == "torgb" else "conv", block.resolution,
                                    layer.in_channels, layer.out_channels, wi, f"b{block.resolution}.{name}"))
                modules.append(layer)
        self.s_layers: tuple[SLayer, ...] = tuple(table)
        self._s_modules = modules  # plain list: not registered twice
        self.num_conv_layers = sum(1 for t in table if t.kind == "conv")

    # --- S space -----------------------------------------------------------------------------
    def _as_wplus(self, ws: torch.Tensor) -> torch.Tensor:
        if ws.ndim == 2:
            if ws.shape[1] != self.w_dim:
                raise ValueError(f"ws must be [B, {self.w_dim}] or [B, {self.num_ws}, {self.w_dim}], got {list(ws.shape)}")
            return ws.unsqueeze(1).expand(-1, self.num_ws, -1)
        if ws.ndim != 3 or ws.shape[1] != self.num_ws or ws.shape[2] != self.w_dim:
            raise ValueError(f"ws must be [B, {self.w_dim}] or [B, {self.num_ws}, {self.w_dim}], got {list(ws.shape)}")
        return ws

    def w_to_s(self, ws: torch.Tensor) -> list[torch.Tensor]:
        """w+ ([B, num_ws, w_dim]) or w ([B, w_dim]) -> list of style vectors s^i = A_i(w^{j(i)}),
        one per style layer in thesis Table 6-2 order."""
        ws = self._as_wplus(ws)
        return [m.affine(ws[:, t.w_index]) for t, m in zip(self.s_layers, self._s_modules)]

    def _check_s(self, s) -> list[torch.Tensor]:
        s = list(s)
        if len(s) != len(self.s_layers):
            raise ValueError(f"s must be a list of {len(self.s_layers)} tensors (one per style layer), got {len(s)}")
        b = s[0].shape[0]
        for t, si in zip(self.s_layers, s):
            if si.ndim != 2 or si.shape != (b, t.channels):
                raise ValueError(f"s[{t.index}] ({t.name}) must have shape [{b}, {t.channels}], got {list(si.shape)}")
        return s

    def forward(self, ws: torch.Tensor | None = None, s=None, noise_mode: str = "random", noises=None) -> torch.Tensor:
        if (ws is None) == (s is None):
            raise ValueError("give exactly one of ws (w or w+) and s (list of style vectors)")
        if noise_mode not in ("random", "const", "none"):
            raise ValueError(f"noise_mode must be 'random', 'const' or 'none', got {noise_mode!r}")
        s = self.w_to_s(ws) if s is None else self._check_s(s)
        if noises is not None and len(noises) != self.num_conv_layers:
            raise ValueError(f"noises must hold {self.num_conv_layers} tensors (one per conv layer), got {len(noises)}")
        b = s[0].shape[0]
        x = self.const.unsqueeze(0).expand(b, -1, -1, -1).to(s[0].dtype)
        img = None
        si, ni = 0, 0
        for block in self.blocks:
            if block.conv0 is not None:
                x = block.conv0(x, s[si], noise_mode, None if noises is None else noises[ni])
                si, ni = si + 1, ni + 1
            x = block.conv1(x, s[si], noise_mode, None if noises is None else noises[ni])
            si, ni = si + 1, ni + 1
            y = block.torgb(x, s[si])
            si += 1
            img = y if img is None else upsample2d(img, self.resample_filter) + y
        return img


class Generator(nn.Module):
    """StyleGAN2 config-f generator G = S o M (thesis ch. 5).

    ``Generator(resolution, z_dim=512, w_dim=512, n_mlp=8, channel_multiplier=2, lr_mlp=0.01,
    channel_base=None, channel_max=512, conv_clamp=None, seed=None)``; ``seed`` makes the
    initialisation deterministic. ``G(z, truncation_psi=1.0, truncation_cutoff=None,
    noise_mode="random")`` -> images; ``G.mapping(z) -> w``; ``G.synthesis(ws=... | s=...)``."""

    def __init__(self, resolution: int, z_dim: int = 512, w_dim: int = 512, n_mlp: int = 8,
                 channel_multiplier: float = 2, lr_mlp: float = 0.01, channel_base: int | None = None,
                 channel_max: int = 512, conv_clamp: float | None = None, seed: int | None = None):
        super().__init__()
        _check_resolution(resolution)
        self.config = dict(resolution=resolution, z_dim=z_dim, w_dim=w_dim, n_mlp=n_mlp,
                           channel_multiplier=channel_multiplier, lr_mlp=lr_mlp, channel_base=channel_base,
                           channel_max=channel_max, conv_clamp=conv_clamp)
        ctx = torch.random.fork_rng(devices=[]) if seed is not None else contextlib.nullcontext()
        with ctx:
            if seed is not None:
                torch.manual_seed(seed)
            self.mapping = MappingNetwork(z_dim, w_dim, n_mlp, lr_multiplier=lr_mlp)
            self.synthesis = SynthesisNetwork(resolution, w_dim, channel_multiplier, channel_base,
                                              channel_max, conv_clamp)
        self.resolution, self.z_dim, self.w_dim = resolution, z_dim, w_dim
        self.num_ws = self.synthesis.num_ws

    @property
    def s_layers(self):
        return self.synthesis.s_layers

    def truncate(self, w: torch.Tensor, psi: float = 1.0, cutoff: int | None = None) -> torch.Tensor:
        """w -> w+ with truncation w' = w_avg + psi (w - w_avg) on the first ``cutoff`` entries."""
        ws = w.unsqueeze(1).expand(-1, self.num_ws, -1) if w.ndim == 2 else w
        if psi == 1:
            return ws
        wt = self.mapping.w_avg.lerp(ws, psi)
        if cutoff is None:
            return wt
        keep = torch.arange(self.num_ws, device=ws.device).reshape(1, -1, 1) < cutoff
        return torch.where(keep, wt, ws)

    def forward(self, z: torch.Tensor, truncation_psi: float = 1.0, truncation_cutoff: int | None = None,
                noise_mode: str = "random", noises=None) -> torch.Tensor:
        w = self.mapping(z)
        return self.synthesis(self.truncate(w, truncation_psi, truncation_cutoff), noise_mode=noise_mode,
                              noises=noises)

    @torch.no_grad()
    def mean_w(self, n: int = 4096, seed: int = 0) -> torch.Tensor:
        """Average of ``n`` mapped samples (used when a checkpoint carries no average w)."""
        g = torch.Generator().manual_seed(seed)
        p = next(self.parameters())
        z = torch.randn(n, self.z_dim, generator=g).to(device=p.device, dtype=p.dtype)
        return self.mapping(z).mean(0)

    @torch.no_grad()
    def sample(self, n: int, seed: int = 0, truncation_psi: float = 1.0, noise_mode: str = "const") -> torch.Tensor:
        """``n`` images from seeded z (deterministic for a seed with noise_mode "const" or "none")."""
        g = torch.Generator().manual_seed(seed)
        p = next(self.parameters())
        z = torch.randn(n, self.z_dim, generator=g).to(device=p.device, dtype=p.dtype)
        return self(z, truncation_psi=truncation_psi, noise_mode=noise_mode)
