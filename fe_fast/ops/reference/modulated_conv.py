"""Plain-torch reference of the StyleGAN2 modulated convolution (thesis ch. 5, eq. 5-1/5-2):
the "fused_modconv" formulation of the reference implementations, which builds the per-sample
modulated (and demodulated) weights [B, O, I, k, k] and runs ONE grouped convolution with
groups=B. Noise, bias and the fused leaky ReLU follow rosinality's NoiseInjection and
FusedLeakyReLU. Used by tests and benchmarks only; ``fe_fast.ops.modulated_conv2d`` is the op.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

_FIR = (1.0, 3.0, 3.0, 1.0)


def blur_kernel(up: int, dtype=torch.float32, device=None) -> torch.Tensor:
    """rosinality ``make_kernel([1, 3, 3, 1])`` scaled by ``up**2``: a [4, 4] tensor summing to up^2."""
    f = torch.tensor(_FIR, dtype=dtype, device=device)
    k = f[:, None] * f[None, :]
    return k / k.sum() * (up * up)


def blur_pads(kernel_size: int, up: int = 2) -> tuple[int, int]:
    """rosinality's Blur padding after the stride-2 transposed conv: (1, 1) for k=3."""
    p = (len(_FIR) - up) - (kernel_size - 1)
    return (p + 1) // 2 + up - 1, p // 2 + 1


def upfirdn_blur(x: torch.Tensor, kernel: torch.Tensor, pad: tuple[int, int]) -> torch.Tensor:
    """upfirdn2d(x, kernel, up=1, down=1, pad=pad) for a symmetric kernel, channel-wise (depthwise)."""
    B, C, H, W = x.shape
    p0, p1 = pad
    x = F.pad(x, [max(p0, 0), max(p1, 0), max(p0, 0), max(p1, 0)])
    if p0 < 0 or p1 < 0:
        x = x[:, :, max(-p0, 0): x.shape[2] - max(-p1, 0), max(-p0, 0): x.shape[3] - max(-p1, 0)]
    w = torch.flip(kernel, [0, 1]).to(x.dtype)[None, None].expand(C, 1, *kernel.shape)
    return F.conv2d(x, w, groups=C)


def modulated_conv2d_reference(x, weight, styles, demodulate=True, up=1, noise=None, bias=None,
                               activation="lrelu", weight_gain=1.0):
    """Grouped-conv reference. Same arguments and result as ``fe_fast.ops.modulated_conv2d``.

    x [B, I, H, W]; weight [O, I, k, k] (effective weight, times ``weight_gain``); styles [B, I];
    noise [B or 1, 1, H', W'] (already times the learned strength); bias [O] or None.
    """
    B, I, H, W = x.shape
    O, _, kh, kw = weight.shape
    w = weight[None] * weight_gain * styles.reshape(B, 1, I, 1, 1)  # [B, O, I, k, k]
    if demodulate:
        demod = torch.rsqrt(w.pow(2).sum([2, 3, 4]) + 1e-8)
        w = w * demod.reshape(B, O, 1, 1, 1)
    xg = x.reshape(1, B * I, H, W)
    if up == 1:
        out = F.conv2d(xg, w.reshape(B * O, I, kh, kw), padding=kh // 2, groups=B)
        out = out.reshape(B, O, out.shape[2], out.shape[3])
    elif up == 2:
        wt = w.transpose(1, 2).reshape(B * I, O, kh, kw)
        out = F.conv_transpose2d(xg, wt, padding=0, stride=2, groups=B)
        out = out.reshape(B, O, out.shape[2], out.shape[3])
        out = upfirdn_blur(out, blur_kernel(2, out.dtype, out.device), blur_pads(kh, 2))
    else:
        raise ValueError(f"up must be 1 or 2, got {up}")
    if noise is not None:
        out = out + noise
    if activation == "lrelu":
        if bias is not None:
            out = out + bias.reshape(1, -1, 1, 1)
        out = F.leaky_relu(out, 0.2) * math.sqrt(2.0)
    elif activation == "linear":
        if bias is not None:
            out = out + bias.reshape(1, -1, 1, 1)
    else:
        raise ValueError(f"activation must be 'lrelu' or 'linear', got {activation!r}")
    return out
