"""StyleGAN2 modulated convolution (thesis ch. 5, eq. 5-1/5-2), with rosinality's semantics so
that rosinality checkpoints load 1:1:

    ModulatedConv2d  ->  NoiseInjection  ->  FusedLeakyReLU (or the ToRGB bias)

Formulation (no per-sample [B, O, I, k, k] weights are ever formed):

    x_s    = x * (g * s)[:, :, None, None]                 modulation moved onto the input
    y      = conv(x_s, weight)                             ONE shared-weight convolution
             (up=2: conv_transpose2d stride 2, then the [1,3,3,1] FIR blur scaled by 4, pads (1,1) for k=3)
    d[b,o] = rsqrt((g*s)^2 @ sum_k(weight^2)^T + 1e-8)     demodulation, a [B,I]x[I,O] product
    out    = act(y * d + noise + bias) * gain              act: leaky ReLU 0.2, gain sqrt(2); or linear

which equals the grouped-conv ("fused_modconv") formulation of
``fe_fast.ops.reference.modulated_conv`` because the demodulation is a per-(b, o) scale and
modulation a per-(b, i) scale, both commuting with the (linear, channel-mixing) convolution.

Backends (``backend=``; automatic: CPU float32/float64 -> "cpu", anything else, CUDA included,
-> "torch"). On an H200 the "torch" formulation was 1.2x-1.6x faster than our Triton kernel at
all six benchmark shapes, forward and forward+backward, so CUDA tensors take
"torch" until the Triton kernel wins a measurement; ``backend="triton"`` selects it explicitly.
This module validates and dispatches; each backend lives in its own module:

- "torch" (``_modconv_torch``): the formulation above in eager torch; differentiable to any order.
- "cpu" (``_modconv_cpu``): C++ input modulation, torch's conv (oneDNN), one C++ call for d and one
  fused pass for demodulation + noise + bias + activation (csrc/modconv_cpu.cpp), with one-pass
  C++ backwards; up=1 at H*W >= 1024 runs the convolution on NHWC. Without a compiled
  ``fe_fast._C`` it runs the "torch" formulation (one FallbackWarning per process).
- "triton" (``_modconv_triton``): ``fe_fast.kernels.modulated_conv``, one fused kernel (forward);
  backward by autograd of the recomputed torch formulation. float64, and up=2 with k != 3, are
  refused (ValueError): use "torch" for them.

When the "cpu" or "triton" backward is itself differentiated (``create_graph=True``: R1,
path-length) it recomputes the torch formulation and differentiates it
(``_modconv_torch.grad_by_recompute``), so double backward is exact.
"""
from __future__ import annotations

import math
import os

import torch

from fe_fast import _ext
from fe_fast.ops import _modconv_cpu, _modconv_torch, _modconv_triton
from fe_fast.ops._blur import blur_pads
from fe_fast.ops._modconv_torch import demodulation_coefficients

__all__ = ["modulated_conv2d", "demodulation_coefficients"]

_FLOATS = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
_BACKENDS = (None, "torch", "cpu", "triton")


def _validate(x, weight, styles, demodulate, up, noise, bias, activation, weight_gain, backend,
              check_finite):
    for name, t in (("x", x), ("weight", weight), ("styles", styles)):
        if not isinstance(t, torch.Tensor):
            raise ValueError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dtype not in _FLOATS:
            raise ValueError(f"{name} must be a floating tensor (float16/bfloat16/float32/float64), "
                             f"got {t.dtype}")
    if x.dim() != 4:
        raise ValueError(f"x must be [B, I, H, W], got shape {tuple(x.shape)}")
    if weight.dim() != 4:
        raise ValueError(f"weight must be [O, I, k, k], got shape {tuple(weight.shape)}")
    B, I, H, W = x.shape
    O, Iw, kh, kw = weight.shape
    if Iw != I:
        raise ValueError(f"weight must be [O, I={I}, k, k] to match x, got shape {tuple(weight.shape)}")
    if kh != kw or kh < 1:
        raise ValueError(f"weight must have a square kernel [O, I, k, k], got shape {tuple(weight.shape)}")
    if styles.shape != (B, I):
        raise ValueError(f"styles must be [B={B}, I={I}], got shape {tuple(styles.shape)}")
    for name, t in (("weight", weight), ("styles", styles)):
        if t.dtype != x.dtype:
            raise ValueError(f"{name} must have the dtype of x ({x.dtype}), got {t.dtype}")
        if t.device != x.device:
            raise ValueError(f"{name} must be on the device of x ({x.device}), got {t.device}")
    if not isinstance(up, int) or isinstance(up, bool) or up not in (1, 2):
        raise ValueError(f"up must be 1 or 2, got {up!r}")
    if activation not in ("lrelu", "linear"):
        raise ValueError(f"activation must be 'lrelu' or 'linear', got {activation!r}")
    if backend not in _BACKENDS:
        raise ValueError(f"backend must be one of {_BACKENDS}, got {backend!r}")
    if not isinstance(weight_gain, (int, float)) or isinstance(weight_gain, bool) \
            or not math.isfinite(weight_gain) or weight_gain <= 0:
        raise ValueError(f"weight_gain must be a positive finite number, got {weight_gain!r}")
    if up == 1:
        Ho = H + 2 * (kh // 2) - kh + 1
        Wo = W + 2 * (kh // 2) - kh + 1
    else:
        p0, p1 = blur_pads(kh, 2)
        Ho = (H - 1) * 2 + kh + p0 + p1 - 3
        Wo = (W - 1) * 2 + kh + p0 + p1 - 3
    if noise is not None:
        if not isinstance(noise, torch.Tensor) or noise.dim() != 4 or noise.shape[0] not in (1, B) \
                or noise.shape[1] != 1 or tuple(noise.shape[2:]) != (Ho, Wo):
            shape = tuple(noise.shape) if isinstance(noise, torch.Tensor) else type(noise).__name__
            raise ValueError(f"noise must be [B={B} or 1, 1, {Ho}, {Wo}], got {shape}")
        if noise.dtype != x.dtype or noise.device != x.device:
            raise ValueError(f"noise must have the dtype and device of x ({x.dtype}, {x.device}), "
                             f"got {noise.dtype}, {noise.device}")
    if bias is not None:
        if not isinstance(bias, torch.Tensor) or bias.shape != (O,):
            shape = tuple(bias.shape) if isinstance(bias, torch.Tensor) else type(bias).__name__
            raise ValueError(f"bias must be [O={O}], got {shape}")
        if bias.dtype != x.dtype or bias.device != x.device:
            raise ValueError(f"bias must have the dtype and device of x ({x.dtype}, {x.device}), "
                             f"got {bias.dtype}, {bias.device}")
    if check_finite:
        for name, t in (("x", x), ("weight", weight), ("styles", styles), ("noise", noise),
                        ("bias", bias)):
            if t is not None and not bool(torch.isfinite(t).all()):
                raise ValueError(f"{name} contains NaN or Inf")
    return Ho, Wo


def modulated_conv2d(x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor,
                     demodulate: bool = True, up: int = 1, noise: torch.Tensor | None = None,
                     bias: torch.Tensor | None = None, activation: str = "lrelu", *,
                     weight_gain: float = 1.0, backend: str | None = None,
                     check_finite: bool = False) -> torch.Tensor:
    """StyleGAN2 modulated convolution + noise + bias + activation (thesis eq. 5-1, 5-2).

    Args:
        x: [B, I, H, W] input features.
        weight: [O, I, k, k] shared convolution weight. The op uses ``weight * weight_gain``, so
            pass either the effective weight (equalised-lr scale already applied, default
            ``weight_gain=1``) or the stored parameter with ``weight_gain=1/sqrt(I*k*k)``. For a
            rosinality ``conv.weight`` of shape [1, O, I, k, k] pass ``weight[0]`` and
            ``weight_gain=conv.scale``. The gain is folded into the styles ([B, I] op), which is
            exactly rosinality's ``scale * weight * style`` product.
        styles: [B, I] per-sample modulation s (the output of the affine/modulation layer).
        demodulate: apply d[b, o] = rsqrt(sum_{i,k} (s_i w_oik)^2 + 1e-8) (False for ToRGB).
        up: 1 (same-size conv, padding k//2) or 2 (transposed conv stride 2, then the
            [1, 3, 3, 1] FIR blur scaled by 4, pads (1, 1) for k=3: output 2H x 2W).
        noise: [B or 1, 1, H', W'] noise ALREADY scaled by the learned strength, added after the
            convolution (rosinality NoiseInjection), or None.
        bias: [O] or None, added before the activation.
        activation: "lrelu" (rosinality FusedLeakyReLU: leaky ReLU slope 0.2 times sqrt(2)) or
            "linear" (bias only; ToRGB).
        backend: None (automatic: CPU float32/float64 -> "cpu", else "torch", CUDA included: the
            measured ranking in the module docstring), "torch" (the formulation above in eager torch), "cpu" (torch
            conv + the fused C++ epilogue of csrc/modconv_cpu.cpp) or "triton" (the fused kernel
            of fe_fast.kernels.modulated_conv; runs on CPU tensors under TRITON_INTERPRET=1).
        check_finite: raise ValueError when an input contains NaN/Inf (a full pass; off by default).

    Returns:
        [B, O, H', W'] in the dtype of x. Differentiable (incl. double backward) w.r.t. x,
        weight, styles, noise and bias.
    """
    Ho, Wo = _validate(x, weight, styles, demodulate, up, noise, bias, activation, weight_gain,
                       backend, check_finite)
    s = styles if weight_gain == 1.0 else styles * weight_gain
    if backend is None:  # measured ranking: module docstring
        if x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64):
            backend = "cpu"
        else:
            backend = "torch"
    if backend == "triton":
        if not _modconv_triton.supported(x, weight, up):
            raise ValueError("backend='triton' needs x in float16/bfloat16/float32 and, for up=2, "
                             f"a 3x3 kernel; got {x.dtype}, up={up}, k={weight.shape[-1]}")
        if x.device.type != "cuda" and os.environ.get("TRITON_INTERPRET") != "1":
            raise ValueError("backend='triton' needs CUDA tensors (or TRITON_INTERPRET=1 to run the "
                             f"kernel on the CPU), got {x.device}")
        return _modconv_triton.forward(x, weight, s, demodulate, up, noise, bias, activation,
                                       Ho, Wo)
    if backend == "cpu":
        if x.device.type != "cpu" or x.dtype not in (torch.float32, torch.float64):
            raise ValueError(f"backend='cpu' needs CPU float32/float64 tensors, got {x.device} "
                             f"{x.dtype}")
        if not _ext.cpu_available():  # fe_fast._C is missing: the torch formulation (warned once)
            return _modconv_torch.forward(x, weight, s, demodulate, up, noise, bias, activation)
        return _modconv_cpu.forward(x, weight, s, demodulate, up, noise, bias, activation)
    return _modconv_torch.forward(x, weight, s, demodulate, up, noise, bias, activation)
