"""A tiny StyleGAN2 generator with a planted channel, and hand-made teachers that look at a known
region. The planted channel (layer PLANT_LAYER, channel PLANT_CHANNEL, a convolution layer) adds
GAIN * (s - mean) to the red channel of the pixels of the top-left 8x8 patch, on top of everything
the real synthesis network does, so every detector should rank it first for that region / for the
"red_patch" attribute."""
from __future__ import annotations

import torch
from torch import nn

from fe_fast.stylegan import Generator

RES = 16
PLANT_LAYER = 3  # b8.conv1
PLANT_CHANNEL = 5
GAIN = 40.0


def patch_mask(res: int = RES) -> torch.Tensor:
    m = torch.zeros(res, res, dtype=torch.bool)
    m[: res // 2, : res // 2] = True
    return m


def tiny_generator(seed: int = 0) -> Generator:
    return Generator(RES, z_dim=16, w_dim=16, n_mlp=2, channel_base=256, channel_max=16, seed=seed)


class PlantedSynthesis(nn.Module):
    def __init__(self, real, layer: int, channel: int, gain: float):
        super().__init__()
        self.real = real
        self.layer, self.channel, self.gain = layer, channel, gain
        self.register_buffer("mask", patch_mask(real.resolution).float())

    @property
    def s_layers(self):
        return self.real.s_layers

    @property
    def resolution(self):
        return self.real.resolution

    def w_to_s(self, ws):
        return self.real.w_to_s(ws)

    def forward(self, ws=None, s=None, noise_mode="random", noises=None):
        if s is None:
            s = self.real.w_to_s(ws)
        img = self.real(s=s, noise_mode=noise_mode, noises=noises)
        v = s[self.layer][:, self.channel] - 1.0  # affine bias init is 1
        red = img[:, :1] + self.gain * v[:, None, None, None] * self.mask
        return torch.cat([red, img[:, 1:]], dim=1)


class PlantedGenerator(nn.Module):
    def __init__(self, G: Generator, layer: int = PLANT_LAYER, channel: int = PLANT_CHANNEL, gain: float = GAIN):
        super().__init__()
        self.G = G
        self.mapping = G.mapping
        self.synthesis = PlantedSynthesis(G.synthesis, layer, channel, gain)
        self.z_dim, self.w_dim, self.num_ws, self.resolution = G.z_dim, G.w_dim, G.num_ws, G.resolution

    @property
    def s_layers(self):
        return self.synthesis.s_layers


class PatchParser(nn.Module):
    """Region teacher: class 1 ("patch") on the top-left patch, class 0 elsewhere."""

    classes = ("background", "patch")
    n_classes = 2

    def forward(self, x):
        m = patch_mask(x.shape[-1]).to(x.dtype)
        return torch.stack([1 - m, m]).unsqueeze(0).expand(x.shape[0], -1, -1, -1) * 5.0


class PatchClassifier(nn.Module):
    """Attribute teacher: "red_patch" = redness of the patch, "bright" = overall brightness,
    "green_right" = green of the right half. Logits are affine in the image, thresholds centred."""

    def __init__(self, centre=(0.0, 0.0, 0.0), scale: float = 4.0):
        super().__init__()
        self.attributes = ("red_patch", "bright", "green_right")
        self.register_buffer("centre", torch.tensor(centre, dtype=torch.float32))
        self.scale = scale

    def features(self, x):
        m = patch_mask(x.shape[-1]).to(x.dtype)
        red = (x[:, 0] * m).flatten(1).sum(1) / m.sum()
        bright = x.mean((1, 2, 3))
        green = x[:, 1, :, x.shape[-1] // 2:].mean((1, 2))
        return torch.stack([red, bright, green], 1)

    def forward(self, x):
        return self.scale * (self.features(x) - self.centre)


def centred_classifier(G, n: int = 200) -> PatchClassifier:
    """A PatchClassifier whose thresholds sit at the median over n generated samples."""
    from fe_fast.editing.locate import render, sample_styles

    clf = PatchClassifier()
    with torch.no_grad():
        _, s = sample_styles(G, n, seed=123)
        f = clf.features(render(G, s))
    clf.centre.copy_(f.median(0).values)
    return clf
