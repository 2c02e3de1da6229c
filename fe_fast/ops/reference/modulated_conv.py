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

from fe_fast.ops._blur import blur_kernel, blur_pads, upfirdn_blur


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
