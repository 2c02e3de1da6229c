"""StyleGAN2 residual discriminator with minibatch standard deviation (the critic D of thesis
eq. 5-4/5-5). Layout follows StyleGAN2 config-f: FromRGB 1x1 conv, one residual block per
resolution (two 3x3 convs, the second down-sampling with the [1,3,3,1] FIR blur + stride 2, and a
blurred 1x1 stride-2 skip; the sum is scaled by 1/sqrt(2)), minibatch stddev (group 4, 1 feature),
a 3x3 conv and two equalised-lr linear layers at 4x4.

``MultiScaleDiscriminator`` adds critics of the same layout on 2x, 4x, ... box-downsampled copies of
the image (the multi-scale discriminator of pix2pixHD, Wang et al. 2018): the coarse critics cannot
see pixel-level artefacts, so they judge layout, e.g. how often hair covers the forehead.

``PlainDiscriminator`` is a plain conv critic (no equalised learning rate, no residual blocks, no blur):
it reads the image bicubic-upsampled 2x and halves it with stride-2 3x3 convs, as the toy attribute
classifier does. On the toy faces it learns the 8-pixel bangs fringe that the StyleGAN2 layout never
picks up: trained supervised on the toy labels for the same 1500 steps, the StyleGAN2 critic stays at
the majority rate on bangs while the classifier's conv-BN-ReLU layout reaches 89 %."""
from __future__ import annotations

import contextlib
import math

import torch
import torch.nn.functional as F
from torch import nn

from fe_fast.stylegan.layers import EqualConv2d, EqualLinear, bicubic_upsample2x
from fe_fast.stylegan.networks import _check_resolution, channels_for

__all__ = ["CRITICS", "Discriminator", "MultiScaleDiscriminator", "PlainDiscriminator", "ResBlock",
           "build_discriminator", "minibatch_stddev"]


def minibatch_stddev(x: torch.Tensor, group_size: int = 4, num_features: int = 1) -> torch.Tensor:
    """Append the per-group standard deviation over the minibatch as extra feature maps."""
    b, c, h, w = x.shape
    g = min(group_size, b)
    if b % g:
        g = math.gcd(b, g)
    y = x.reshape(g, -1, num_features, c // num_features, h, w)
    y = (y - y.mean(0)).square().mean(0).add(1e-8).sqrt()
    y = y.mean(dim=[2, 3, 4]).reshape(-1, num_features, 1, 1)
    y = y.repeat(g, 1, h, w)
    return torch.cat([x, y], dim=1)


class ResBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv1 = EqualConv2d(in_channels, in_channels, 3)
        self.conv2 = EqualConv2d(in_channels, out_channels, 3, down=2)
        self.skip = EqualConv2d(in_channels, out_channels, 1, down=2, bias=False, activation="linear")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(self.conv1(x))
        return (out + self.skip(x)) * (1 / math.sqrt(2))


class Discriminator(nn.Module):
    """``Discriminator(resolution, channel_multiplier=2, channel_base=None, channel_max=512,
    mbstd_group=4, n_attributes=0, seed=None)``; ``D(images [B, 3, R, R]) -> scores [B, 1]``.
    ``n_attributes > 0`` adds a linear attribute head on the same features
    (``D.attribute_logits(images) -> [B, n_attributes]``), trained on labelled real images only; the
    generator's loss never sees it (``TrainConfig.D.attr_weight``, flat name ``d_attr_weight``)."""

    def __init__(self, resolution: int, channel_multiplier: float = 2, channel_base: int | None = None,
                 channel_max: int = 512, mbstd_group: int = 4, n_attributes: int = 0, seed: int | None = None):
        super().__init__()
        self.resolution = _check_resolution(resolution)
        self.config = dict(resolution=resolution, channel_multiplier=channel_multiplier,
                           channel_base=channel_base, channel_max=channel_max, mbstd_group=mbstd_group)
        if n_attributes:
            self.config["n_attributes"] = n_attributes
        ch = channels_for(resolution, channel_multiplier, channel_base, channel_max)
        self.mbstd_group = mbstd_group
        ctx = torch.random.fork_rng(devices=[]) if seed is not None else contextlib.nullcontext()
        with ctx:
            if seed is not None:
                torch.manual_seed(seed)
            self._build_layers(ch, n_attributes)

    def _build_layers(self, ch: dict, n_attributes: int):
        self.from_rgb = EqualConv2d(3, ch[self.resolution], 1)
        blocks = []
        r = self.resolution
        while r > 4:
            blocks.append(ResBlock(ch[r], ch[r // 2]))
            r //= 2
        self.blocks = nn.ModuleList(blocks)
        self.final_conv = EqualConv2d(ch[4] + 1, ch[4], 3)
        self.final_fc = EqualLinear(ch[4] * 16, ch[4], activation="lrelu")
        self.out = EqualLinear(ch[4], 1)
        self.attr_head = EqualLinear(ch[4], n_attributes) if n_attributes else None

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        return self.out(self.features(img))

    def attribute_logits(self, img: torch.Tensor) -> torch.Tensor:
        """Logits [B, n_attributes] of the auxiliary attribute head (built with ``n_attributes > 0``)."""
        if self.attr_head is None:
            raise RuntimeError("this discriminator has no attribute head (build it with n_attributes > 0)")
        return self.attr_head(self.features(img))

    def _check_images(self, img: torch.Tensor):
        if img.ndim != 4 or img.shape[1] != 3 or img.shape[2] != self.resolution or img.shape[3] != self.resolution:
            raise ValueError(f"images must be [B, 3, {self.resolution}, {self.resolution}], got {list(img.shape)}")

    def features(self, img: torch.Tensor) -> torch.Tensor:
        """The penultimate activations [B, C4]: ``D(img) = D.out(D.features(img))`` (a linear probe's input)."""
        self._check_images(img)
        x = self.from_rgb(img)
        for block in self.blocks:
            x = block(x)
        x = minibatch_stddev(x, self.mbstd_group)
        x = self.final_conv(x)
        return self.final_fc(x.flatten(1))


class MultiScaleDiscriminator(nn.Module):
    """``MultiScaleDiscriminator(resolution, scales=2, **Discriminator kwargs)``; ``D(images) -> [B, scales]``.

    Column k is a :class:`Discriminator` at ``resolution / 2**k`` scoring the image box-downsampled
    by ``2**k`` (same channel widths per resolution as the full-scale critic). The training losses
    average over the columns, i.e. each scale's critic loss counts equally (pix2pixHD); R1 and the
    WGAN-GP penalties act on the gradient of the per-sample mean score."""

    def __init__(self, resolution: int, scales: int = 2, channel_multiplier: float = 2,
                 channel_base: int | None = None, channel_max: int = 512, mbstd_group: int = 4,
                 seed: int | None = None):
        super().__init__()
        self.resolution = _check_resolution(resolution)
        if not isinstance(scales, int) or scales < 1 or resolution >> (scales - 1) < 8:
            raise ValueError(f"scales must be an int >= 1 with resolution / 2**(scales-1) >= 8, got {scales!r} "
                             f"at resolution {resolution}")
        self.config = dict(resolution=resolution, scales=scales, channel_multiplier=channel_multiplier,
                           channel_base=channel_base, channel_max=channel_max, mbstd_group=mbstd_group)
        self.critics = nn.ModuleList(
            Discriminator(resolution >> k, channel_multiplier, channel_base, channel_max, mbstd_group,
                          seed=None if seed is None else seed + k)
            for k in range(scales))

    def _inputs(self, img: torch.Tensor):
        return ((critic, img if k == 0 else F.avg_pool2d(img, 2 ** k)) for k, critic in enumerate(self.critics))

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        return torch.cat([critic(x) for critic, x in self._inputs(img)], dim=1)

    def features(self, img: torch.Tensor) -> torch.Tensor:
        """Every critic's penultimate activations, concatenated in scale order."""
        return torch.cat([critic.features(x) for critic, x in self._inputs(img)], dim=1)


class PlainDiscriminator(Discriminator):
    """``PlainDiscriminator(resolution, channel_multiplier=2, channel_base=None, channel_max=512,
    mbstd_group=4, n_attributes=0, seed=None)``: same interface and channel widths as
    :class:`Discriminator` (``channels_for``), a different layout: the image bicubic-upsampled to 2R,
    a stride-2 3x3 conv to R, then per resolution r = R, R/2, ..., 8 a 3x3 conv and a stride-2 3x3 conv
    to r/2, every conv followed by leaky ReLU 0.2; minibatch stddev at 4x4 and a linear layer.
    Standard PyTorch parametrisation and initialisation, no normalisation (so no coupling between
    samples besides the minibatch stddev: R1 and the WGAN-GP penalties stay per sample)."""

    def __init__(self, resolution: int, *args, **kwargs):
        super().__init__(resolution, *args, **kwargs)
        self.config = dict(arch="plain", **self.config)

    def _build_layers(self, ch: dict, n_attributes: int):
        convs = [nn.Conv2d(3, ch[self.resolution], 3, 2, 1)]
        r = self.resolution
        while r > 4:
            convs += [nn.Conv2d(ch[r], ch[r], 3, 1, 1), nn.Conv2d(ch[r], ch[r // 2], 3, 2, 1)]
            r //= 2
        self.convs = nn.ModuleList(convs)
        self.out = nn.Linear((ch[4] + 1) * 16, 1)
        self.attr_head = nn.Linear((ch[4] + 1) * 16, n_attributes) if n_attributes else None

    def features(self, img: torch.Tensor) -> torch.Tensor:
        """The flattened 4x4 maps with the minibatch-stddev channel [B, (C4 + 1) * 16]."""
        self._check_images(img)
        x = bicubic_upsample2x(img)
        for conv in self.convs:
            x = F.leaky_relu(conv(x), 0.2)
        return minibatch_stddev(x, self.mbstd_group).flatten(1)


#: Single-scale critic layouts by name (``TrainConfig.D.arch``, ``D.config["arch"]``; absent = "resnet").
CRITICS = {"resnet": Discriminator, "plain": PlainDiscriminator}


def build_discriminator(config: dict) -> nn.Module:
    """The critic described by a stored ``D.config`` (``scales`` present: multi-scale; otherwise the
    layout ``CRITICS[config.get("arch", "resnet")]``)."""
    if "scales" in config:
        return MultiScaleDiscriminator(**config)
    config = dict(config)
    arch = config.pop("arch", "resnet")
    if arch not in CRITICS:
        raise ValueError(f"unknown critic layout {arch!r}; known: {sorted(CRITICS)}")
    return CRITICS[arch](**config)
