"""Building blocks shared by the StyleGAN2 generator and discriminator (thesis ch. 5, Fig. 5-2):
equalised-learning-rate linear and convolution layers, the scaled leaky ReLU, the [1, 3, 3, 1]
FIR filter used for up- and down-sampling, and the exact 2x bicubic up-sampling the plain critic
reads its input through.

Everything here is plain torch; the modulated convolution itself (thesis eq. 5-3 in its StyleGAN2
weight-demodulation form) lives in ``fe_fast.ops.modulated_conv`` and is called by
``fe_fast.stylegan.networks``.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

LRELU_SLOPE = 0.2
LRELU_GAIN = math.sqrt(2.0)  # leaky ReLU (slope 0.2) times sqrt(2): StyleGAN2's FusedLeakyReLU


def fir_kernel(taps=(1, 3, 3, 1), gain: float = 1.0, device=None, dtype=torch.float32) -> torch.Tensor:
    """Separable FIR kernel outer(k, k), normalised to sum ``gain`` (gain 4 for 2x up-sampling)."""
    k = torch.tensor(taps, dtype=dtype, device=device)
    k = torch.outer(k, k)
    return k * (gain / k.sum())


class _FIR1d(torch.autograd.Function):
    """Valid correlation of ``x`` with constant 1-D ``taps`` along ``dim``, as a sum of shifted
    slices accumulated in place. Its gradient is the full correlation with the reversed taps, i.e.
    this same function on the gradient zero-padded by ``len(taps) - 1``, so derivatives of any order
    (R1 and path-length penalties) cost one padded filter each; autograd through the slices would
    allocate and zero-fill an input-sized tensor per slice."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, taps: torch.Tensor, dim: int) -> torch.Tensor:
        ctx.dim = dim
        ctx.save_for_backward(taps)
        k = taps.shape[0]
        n = x.shape[dim] - k + 1
        out = x.narrow(dim, 0, n) * taps[0]
        for i in range(1, k):
            out.addcmul_(x.narrow(dim, i, n), taps[i])
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (taps,) = ctx.saved_tensors
        k, dim = taps.shape[0], ctx.dim % grad.ndim
        pad = [0, 0] * (grad.ndim - 1 - dim) + [k - 1, k - 1]
        return _FIR1d.apply(F.pad(grad, pad), taps.flip(0), dim), None, None


def _fir_2d(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Valid correlation of each channel of ``x`` [B, C, H, W] with the constant separable 2-D
    ``kernel`` (= outer(a, b)), as two 1-D passes; no gradient w.r.t. ``kernel`` (every StyleGAN2
    FIR filter is a fixed buffer)."""
    kernel = kernel.detach().to(x.dtype)
    col = kernel.sum(1)
    row = kernel.sum(0) / kernel.sum()
    return _FIR1d.apply(_FIR1d.apply(x, col, 2), row, 3)


def upfirdn2d(x: torch.Tensor, kernel: torch.Tensor, up: int = 1, down: int = 1,
              pad: tuple[int, int] = (0, 0)) -> torch.Tensor:
    """Up-sample by zero insertion, pad, filter with ``kernel`` (true convolution), down-sample.

    Same semantics as the reference ``upfirdn2d`` of StyleGAN2 (padding ``pad`` = (before, after) on
    both axes) for separable kernels (``kernel = outer(a, b)``, as every StyleGAN2 FIR filter),
    written with plain torch ops (shifted slices with a custom gradient, no depthwise convolution) so
    that it runs everywhere and its double backward (gradient penalties, path-length regulariser) is
    cheap.
    """
    b, c, h, w = x.shape
    if up > 1:
        x = x.reshape(b, c, h, 1, w, 1)
        x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1])
        x = x.reshape(b, c, h * up, w * up)
    p0, p1 = pad
    if p0 or p1:
        x = F.pad(x, [p0, p1, p0, p1])
    x = _fir_2d(x, kernel.flip(0, 1))  # true convolution = correlation with the flipped kernel
    if down > 1:
        x = x[:, :, ::down, ::down]
    return x


def upsample2d(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """2x FIR up-sampling of the ToRGB skip path (kernel normalised to gain 4, pad (2, 1))."""
    return upfirdn2d(x, kernel, up=2, pad=(2, 1))


#: Keys' cubic (a = -0.75) at the source offsets of the even output pixels of a 2x up-sampling with
#: align_corners=False (source x = k - 1/4, taps x[k-2 .. k+1]); the odd pixels use them reversed.
_BICUBIC_2X_EVEN = (-9 / 256, 67 / 256, 225 / 256, -27 / 256)


def _bicubic_2x_along(xp: torch.Tensor, dim: int) -> torch.Tensor:
    """Double ``dim`` of ``xp`` (already edge-padded by 2 on both sides of ``dim``)."""
    n = xp.shape[dim] - 4
    taps = torch.tensor(_BICUBIC_2X_EVEN, dtype=xp.dtype, device=xp.device)
    even = _FIR1d.apply(xp.narrow(dim, 0, n + 3), taps, dim)
    odd = _FIR1d.apply(xp.narrow(dim, 1, n + 3), taps.flip(0), dim)
    shape = list(even.shape)
    shape[dim] = 2 * n
    return torch.stack([even, odd], dim + 1).reshape(shape)


def bicubic_upsample2x(x: torch.Tensor) -> torch.Tensor:
    """``F.interpolate(x, scale_factor=2, mode="bicubic", align_corners=False)`` for [B, C, H, W],
    computed as two 4-tap FIR passes per axis (one per output phase) on the edge-replicated input,
    with :class:`_FIR1d`'s custom gradient: the same values to rounding, a few times faster than ATen's
    bicubic kernel on the CPU forward and backward, and a cheap double
    backward (R1 through the plain critic)."""
    if x.ndim != 4:
        raise ValueError(f"expected [B, C, H, W], got shape {tuple(x.shape)}")
    xp = F.pad(x, [2, 2, 2, 2], mode="replicate")
    return _bicubic_2x_along(_bicubic_2x_along(xp, 2), 3)


class EqualLinear(nn.Module):
    """Fully connected layer with equalised learning rate: weight ~ N(0, 1/lr_mul^2), applied as
    ``W * lr_mul / sqrt(in)``, bias applied as ``b * lr_mul``; optional scaled leaky ReLU. The
    mapping network uses ``lr_mul=0.01`` (thesis ch. 5, StyleGAN2 config-f)."""

    def __init__(self, in_features: int, out_features: int, bias_init: float = 0.0,
                 lr_mul: float = 1.0, activation: str = "linear"):
        super().__init__()
        if activation not in ("linear", "lrelu"):
            raise ValueError(f"activation must be 'linear' or 'lrelu', got {activation!r}")
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_features,), float(bias_init)))
        self.lr_mul = float(lr_mul)
        self.scale = lr_mul / math.sqrt(in_features)
        self.activation = activation
        self.in_features, self.out_features = in_features, out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # lrelu(z) * g == lrelu(z * g) for g > 0: the gain rides on the weight and bias
        g = LRELU_GAIN if self.activation == "lrelu" else 1.0
        out = F.linear(x, self.weight * (self.scale * g), self.bias * (self.lr_mul * g))
        return F.leaky_relu(out, LRELU_SLOPE) if self.activation == "lrelu" else out

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, lr_mul={self.lr_mul}, act={self.activation}"


class EqualConv2d(nn.Module):
    """Plain (non-modulated) convolution with equalised learning rate, used by the discriminator.
    ``down=2`` blurs with the [1,3,3,1] FIR filter and then convolves with stride 2 (StyleGAN2)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, down: int = 1,
                 bias: bool = True, activation: str = "lrelu"):
        super().__init__()
        if down not in (1, 2):
            raise ValueError(f"down must be 1 or 2, got {down}")
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.scale = 1.0 / math.sqrt(in_channels * kernel_size ** 2)
        self.down = down
        self.kernel_size = kernel_size
        self.activation = activation
        self.register_buffer("blur_kernel", fir_kernel(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # lrelu(z) * g == lrelu(z * g) for g > 0: the gain rides on the weight and the bias is added
        # by the convolution itself (two element-wise passes fewer, forward and backward)
        g = LRELU_GAIN if self.activation == "lrelu" else 1.0
        w = self.weight * (self.scale * g)
        b = self.bias * g if self.bias is not None else None
        if self.down == 2:
            p = (4 - 2) + (self.kernel_size - 1)  # (filter taps - factor) + (k - 1)
            x = upfirdn2d(x, self.blur_kernel, pad=((p + 1) // 2, p // 2))
            x = F.conv2d(x, w, b, stride=2)
        else:
            x = F.conv2d(x, w, b, padding=self.kernel_size // 2)
        return F.leaky_relu(x, LRELU_SLOPE) if self.activation == "lrelu" else x
