"""The [1, 3, 3, 1] FIR blur of StyleGAN2's 2x up-sampling modulated convolution (thesis ch. 5):
the kernel, the padding after the stride-2 transposed convolution, and the blur itself as one
depthwise convolution. Shared by ``fe_fast.ops.modulated_conv`` and its grouped-conv reference."""
from __future__ import annotations

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
