"""Convolutional autoencoder of DERC (thesis section 4.2.2 and Table 4-2).

Encoder (Table 4-2): six 3x3 convolutions with ReLU, output channels 2, 16, 32, 128, 256, 32 and
strides 1, 2, 1, 2, 2, 1, then a fully connected layer ``288 -> latent_dim`` (``d_z = 128`` by
default). The table prints "pad 0" for every layer, but with no padding a 28x28 image shrinks to
nothing before conv6 (28 -> 26 -> 12 -> 10 -> 4 -> 1 -> invalid), so the listed 288 = 32 x 3 x 3
flattened inputs cannot be reached. We use paddings **1, 1, 1, 1, 0, 1**:
28 -> 28 -> 14 -> 14 -> 7 -> 3 -> 3, i.e. exactly 32 x 3 x 3 = 288 features at 28x28.

Other image sizes: the same paddings are used, except that conv5 gets padding 1 when its input is
smaller than 5 pixels; the fully connected layer takes ``32 * h6 * w6`` inputs whatever the size
(16x16 USPS: 16 -> 16 -> 8 -> 8 -> 4 -> 2 -> 2, i.e. 128 inputs; 32x32: 288 inputs).
:func:`encoder_geometry` reports the sizes.

Tiny images: :func:`encoder_layout` keeps at least ``latent_dim`` values in the last feature map (a
code computed from fewer values spans fewer dimensions than it has): while ``32 * h6 * w6`` is
smaller, the last stride-2 layer becomes a stride-1 layer (while the map stays within
``MAX_CODE_SIDE``). This adapts the architecture to the image size, as for large images, under every
preset, ``--preset thesis`` included. Table 4-2 with ``d_z = 128`` is unchanged for square images
from 9x9 on; 8x8 digits get strides 1, 2, 1, 2, 1, 1 (8 -> 8 -> 4 -> 4 -> 2 -> 2 -> 2, 128
inputs) instead of a 1x1 map of 32 values (chosen on 8x8 block averages of USPS / MNIST-test:
bench/results/derc.md, "Tiny images").

Larger images (Table 4-2 is written for 28x28): :func:`encoder_layout` keeps the last feature map
at most ``MAX_CODE_SIDE`` = 4 pixels on its longer side, as at 28x28 (3x3), so that the fully
connected layer stays small. While the map is too large it first turns the stride-1 layers of the
table into stride-2 layers (conv1, then conv3, then conv6), then prepends further stride-2 3x3
layers with conv1's width. Every square image of 9 to 40 pixels a side (16x16, 28x28, 32x32) keeps
the table's six layers and strides unchanged; 64x64: strides 2, 2, 1, 2, 2, 1
(64 -> 32 -> 16 -> 16 -> 8 -> 3 -> 3); 128x128: strides 2, 2, 2, 2, 2, 1 (-> 3x3).

Decoder: the mirror image, a fully connected layer ``latent_dim -> 32*h6*w6`` then six 3x3
convolutions in reverse channel order, each stride-2 encoder layer mirrored by a nearest
up-sampling to the exact encoder size followed by a convolution ("up-sampling convolutions"), with
ReLU between layers and a linear last layer producing the image. Hidden decoder layers are at least
``DECODER_MIN_WIDTH`` = 16 channels wide, so the mirror of the 2-channel conv1 has 16 channels (see
the constant for why). No skip connections (the thesis
forbids them so that ``z`` alone must represent the image).
"""
from __future__ import annotations

import math
from typing import List, Optional, Sequence, Tuple

import torch
from torch import nn

__all__ = [
    "ConvAutoencoder", "encoder_geometry", "encoder_layout", "ENCODER_CHANNELS", "ENCODER_STRIDES",
    "DECODER_MIN_WIDTH", "MAX_CODE_SIDE",
]

ENCODER_CHANNELS: Tuple[int, ...] = (2, 16, 32, 128, 256, 32)
ENCODER_STRIDES: Tuple[int, ...] = (1, 2, 1, 2, 2, 1)
_BASE_PADDINGS: Tuple[int, ...] = (1, 1, 1, 1, 0, 1)
# Narrowest hidden layer of the decoder. A literal mirror of conv1 puts a 2-channel ReLU layer just
# before the output; on USPS both channels die within ten Adam steps and the decoder emits a constant
# image (loss stuck above the mean-image baseline). The thesis asks only for a "similar" mirror.
DECODER_MIN_WIDTH = 16
# Longest side of the encoder's last feature map (3 at 28x28, Table 4-2); larger inputs get more
# stride-2 layers (:func:`encoder_layout`).
MAX_CODE_SIDE = 4


def _out(size: int, stride: int, pad: int) -> int:
    return (size + 2 * pad - 3) // stride + 1


def encoder_geometry(height: int, width: int, strides: Sequence[int] = ENCODER_STRIDES,
                     paddings: Optional[Sequence[int]] = None):
    """Paddings and spatial sizes of the encoder for an ``height x width`` image.

    ``paddings``: the base padding of each layer (default: Table 4-2's ``1, 1, 1, 1, 0, 1``, then 1
    for any further layer); a padding of 0 becomes 1 when the layer's input is smaller than 5
    pixels. Returns ``(paddings, sizes)`` where ``sizes[0]`` is the input size and ``sizes[i+1]``
    the output of conv ``i+1``. Raises ``ValueError`` when the image is too small (< 4 pixels).
    """
    if height < 4 or width < 4:
        raise ValueError(f"images must be at least 4x4 pixels for the DERC encoder, got {height}x{width}")
    if paddings is None:
        paddings = [_BASE_PADDINGS[i] if i < len(_BASE_PADDINGS) else 1 for i in range(len(strides))]
    sizes: List[Tuple[int, int]] = [(height, width)]
    pads: List[int] = []
    for s, p in zip(strides, paddings):
        h, w = sizes[-1]
        if p == 0 and min(h, w) < 5:
            p = 1
        oh, ow = _out(h, s, p), _out(w, s, p)
        if oh < 1 or ow < 1:  # pragma: no cover - prevented by the checks above
            raise ValueError(f"image {height}x{width} too small for the encoder")
        pads.append(p)
        sizes.append((oh, ow))
    return pads, sizes


def encoder_layout(height: int, width: int, channels: Sequence[int] = ENCODER_CHANNELS,
                   strides: Sequence[int] = ENCODER_STRIDES, max_side: int = MAX_CODE_SIDE,
                   min_values: int = 0):
    """Channels, strides and base paddings of an encoder adapted to ``height x width`` images.

    Starts from Table 4-2 (``channels``, ``strides`` and its paddings) and, while the last feature
    map is longer than ``max_side`` on a side, turns the next stride-1 layer into a stride-2 layer
    (first to last), then prepends stride-2 layers of width ``channels[0]`` (padding 1); while the
    last map holds fewer than ``min_values`` values (:class:`ConvAutoencoder` passes its
    ``latent_dim``), turns the last stride-2 layer into a stride-1 layer, as long as the map stays
    within ``max_side``. Square images of 9x9 to 40x40, 28x28 included, get the table unchanged
    with ``min_values`` 128; a larger ``latent_dim`` may remove a stride-2 layer (16x16 with 256:
    a 4x4 map). Returns ``(channels, strides, paddings)`` as tuples.
    """
    if len(channels) != len(strides):
        raise ValueError("channels and strides must have the same length")
    chans, strd = list(channels), list(strides)
    pads = [_BASE_PADDINGS[i] if i < len(_BASE_PADDINGS) else 1 for i in range(len(strd))]

    def too_big():
        return max(encoder_geometry(height, width, strd, pads)[1][-1]) > max_side

    unit = [i for i, s in enumerate(strd) if s == 1]
    while too_big() and unit:
        strd[unit.pop(0)] = 2
    while too_big():
        chans.insert(0, chans[0])
        strd.insert(0, 2)
        pads.insert(0, 1)
    while 2 in strd and chans[-1] * math.prod(encoder_geometry(height, width, strd, pads)[1][-1]) < min_values:
        fewer = list(strd)
        fewer[len(fewer) - 1 - fewer[::-1].index(2)] = 1
        if max(encoder_geometry(height, width, fewer, pads)[1][-1]) > max_side:
            break  # max_side wins: a larger code is computed from the map that fits
        strd = fewer
    return tuple(chans), tuple(strd), tuple(pads)


class ConvAutoencoder(nn.Module):
    """Encoder ``E_theta`` / decoder ``D_w`` pair of thesis Fig. 4-1 / Table 4-2.

    ``forward(x)`` returns ``(z, x_rec)``; ``encode`` gives ``z = E(x)`` (eq. 4-1), ``decode``
    gives ``x' = D(z)``. Input ``x``: ``(N, C, H, W)`` float tensor.
    """

    def __init__(
        self,
        in_channels: int,
        height: int,
        width: int,
        latent_dim: int = 128,
        channels: Sequence[int] = ENCODER_CHANNELS,
        strides: Optional[Sequence[int]] = None,
    ):
        super().__init__()
        if latent_dim < 1:
            raise ValueError(f"latent_dim must be >= 1, got {latent_dim}")
        if strides is None:  # Table 4-2, adapted to the image size (identical from 9x9 to 40x40)
            channels, strides, base_pads = encoder_layout(height, width, channels, min_values=latent_dim)
        else:
            if len(channels) != len(strides):
                raise ValueError("channels and strides must have the same length")
            base_pads = None
        channels, strides = tuple(channels), tuple(strides)
        self.in_channels, self.height, self.width = int(in_channels), int(height), int(width)
        self.latent_dim = int(latent_dim)
        self.channels, self.strides = channels, strides
        pads, sizes = encoder_geometry(height, width, strides, base_pads)
        self.paddings, self.sizes = pads, sizes
        enc: List[nn.Module] = []
        prev = in_channels
        for c, s, p in zip(channels, strides, pads):
            enc += [nn.Conv2d(prev, c, 3, stride=s, padding=p), nn.ReLU(inplace=True)]
            prev = c
        self.encoder_conv = nn.Sequential(*enc)
        h6, w6 = sizes[-1]
        self.flat_shape = (channels[-1], h6, w6)
        self.flat_dim = channels[-1] * h6 * w6
        self.fc_enc = nn.Linear(self.flat_dim, latent_dim)
        self.fc_dec = nn.Linear(latent_dim, self.flat_dim)
        # Mirror: layer i of the decoder undoes encoder layer (n-1-i): input channels[n-1-i],
        # output channels[n-2-i] (or the image channels for the last one), spatial size sizes[n-1-i].
        dec: List[nn.Module] = []
        n = len(channels)
        for j in range(n):
            i = n - 1 - j
            cin = channels[i] if j == 0 else max(channels[i], DECODER_MIN_WIDTH)
            cout = max(channels[i - 1], DECODER_MIN_WIDTH) if i > 0 else in_channels
            target = sizes[i]
            if strides[i] > 1:
                dec.append(nn.Upsample(size=target, mode="nearest"))
                dec.append(nn.Conv2d(cin, cout, 3, stride=1, padding=1))
            else:
                # stride-1 encoder layer: same-size convolution; if the encoder layer changed the size
                # (padding 0) resize first so the shapes mirror exactly.
                if sizes[i + 1] != target:
                    dec.append(nn.Upsample(size=target, mode="nearest"))
                dec.append(nn.Conv2d(cin, cout, 3, stride=1, padding=1))
            if i > 0:
                dec.append(nn.ReLU(inplace=True))
        self.decoder_conv = nn.Sequential(*dec)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """He (Kaiming) initialisation for the ReLU layers, zero biases.

        PyTorch's default (Kaiming-uniform with a = sqrt(5)) shrinks the signal through the six
        ReLU layers; with the 2-channel conv1 of Table 4-2 the autoencoder then barely moves off the
        mean image for many epochs.
        """
        for mod in self.modules():
            if isinstance(mod, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(mod.weight, nonlinearity="relu")
                nn.init.zeros_(mod.bias)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        h = self.encoder_conv(x)
        return self.fc_enc(h.flatten(1))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.fc_dec(z)).view(z.shape[0], *self.flat_shape)
        return self.decoder_conv(h)

    def forward(self, x: torch.Tensor):
        z = self.encode(x)
        return z, self.decode(z)
