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
-> "torch"). On an H200 (bench/results/gpu.md) the "torch" formulation was 1.2x-1.6x faster than
our Triton kernel at all six benchmark shapes, forward and forward+backward, so CUDA tensors take
"torch" until the Triton kernel wins a measurement; ``backend="triton"`` selects it explicitly:

- "torch": the formulation above in eager torch; differentiable to any order.
- "cpu": C++ input modulation (one pass; its backward gives grad_x and grad_s in one pass), torch's
  conv (oneDNN) for x_s -> y, then ONE C++ call computing d and ONE fused, vectorised pass for
  demodulation scale + noise + bias + leaky ReLU + gain (csrc/modconv_cpu.cpp; in place on the conv
  output under no_grad). Backward: one C++ pass gives grad_y, grad_d, grad_noise, grad_bias; the
  chain rule of d is two small matrix products. For up=1 at H*W >= 1024 (``_use_nhwc``: measured
  rule) the forward runs the convolution on NHWC, with the layout change fused into the C++
  modulation and epilogue, and the backward stays NCHW. When the backward itself is differentiated
  (``create_graph=True``: R1, path-length) the backward recomputes the torch formulation and
  differentiates it, so double backward is exact.
- "triton": ``fe_fast.kernels.modulated_conv``, one kernel doing modulation, the convolution as an
  implicit GEMM, demodulation, noise, bias and activation (forward). up=2 (k=3) runs in the same
  kernel as four polyphase 3x3 convolutions with the blur folded into the weights. Backward:
  autograd of the torch formulation (recomputed), with create_graph when asked. float32 uses TF32
  on CUDA exactly when ``torch.backends.cudnn.allow_tf32`` lets cuDNN do so. float64 and up=2
  with k != 3 run the "torch" backend on CUDA.
"""
from __future__ import annotations

import math
import os

import torch
import torch.nn.functional as F

from fe_fast import _ext
from fe_fast.ops._blur import blur_kernel, blur_pads, upfirdn_blur

__all__ = ["modulated_conv2d", "demodulation_coefficients"]

_EPS = 1e-8
_SLOPE = 0.2
_GAIN = math.sqrt(2.0)
_FLOATS = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
_BACKENDS = (None, "torch", "cpu", "triton")
_NHWC_MIN_HW = 1024  # see _use_nhwc


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


def demodulation_coefficients(weight: torch.Tensor, styles: torch.Tensor,
                              eps: float = _EPS) -> torch.Tensor:
    """d[b, o] = rsqrt(sum_{i,k} (styles[b,i] * weight[o,i,k])^2 + eps) (thesis eq. 5-2) as
    rsqrt(styles^2 @ sum_k(weight^2)^T + eps): a [B, I] x [I, O] product, differentiable."""
    wsq = weight.square().sum(dim=(2, 3))  # [O, I]
    return torch.rsqrt(styles.square() @ wsq.t() + eps)


def _conv(xs: torch.Tensor, weight: torch.Tensor, up: int) -> torch.Tensor:
    k = weight.shape[-1]
    if up == 1:
        return F.conv2d(xs, weight, padding=k // 2)
    y = F.conv_transpose2d(xs, weight.transpose(0, 1), stride=2, padding=0)
    return upfirdn_blur(y, blur_kernel(2, y.dtype, y.device), blur_pads(k, 2))


def _epilogue_torch(y, d, noise, bias, activation):
    out = y if d is None else y * d[:, :, None, None]
    if noise is not None:
        out = out + noise
    if bias is not None:
        out = out + bias.reshape(1, -1, 1, 1)
    if activation == "lrelu":
        out = F.leaky_relu(out, _SLOPE) * _GAIN
    return out


def _ptr(t):
    return 0 if t is None else t.data_ptr()


def _epilogue_cpu_fwd(y, d, noise, bias, lrelu, out):
    B, O, H, W = y.shape
    _ext.cpu().modconv_epilogue_fwd(
        _ptr(y), _ptr(d), _ptr(noise), 0 if noise is None or noise.shape[0] == 1 else H * W,
        _ptr(bias), _ptr(out), B, O, H * W, lrelu, _SLOPE, _GAIN, y.dtype == torch.float64)
    return out


def _demod_cpu(weight, s):
    """(d [B, O], wsq [O, I]) from the C++ kernel: one call instead of five small torch ops."""
    O, I, k, _ = weight.shape
    B = s.shape[0]
    wsq = weight.new_empty((O, I))
    d = weight.new_empty((B, O))
    _ext.cpu().modconv_demod(_ptr(weight), _ptr(s), _ptr(wsq), _ptr(d), B, O, I, k * k, _EPS,
                             weight.dtype == torch.float64)
    return d, wsq


class _EpilogueCPU(torch.autograd.Function):
    """out = act(y * d(weight, s) + noise + bias) * gain with the C++ kernels (csrc/modconv.h):
    demodulation coefficients and the fused epilogue forward, the one-pass epilogue backward,
    then the [B, O] -> (weight, s) chain rule of d in a few small torch ops.

    Under ``create_graph=True`` (R1, path-length regularisation) the backward instead recomputes
    the torch formulation (``demodulation_coefficients`` + ``_epilogue_torch``) and differentiates
    it with create_graph, so double backward is exact."""

    @staticmethod
    def forward(ctx, y, weight, s, noise, bias, demodulate, lrelu):
        d, wsq = _demod_cpu(weight, s) if demodulate else (None, None)
        out = _epilogue_cpu_fwd(y, d, noise, bias, lrelu, torch.empty_like(y))
        ctx.cfg = (demodulate, lrelu)
        ctx.noise_shared = noise is not None and noise.shape[0] == 1
        ctx.save_for_backward(y, weight, s, noise, bias, d, wsq, out)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        y, weight, s, noise, bias, d, wsq, out = ctx.saved_tensors
        demodulate, lrelu = ctx.cfg
        inputs = (y, weight, s, noise, bias)
        need = [n and t is not None for n, t in zip(ctx.needs_input_grad[:5], inputs)]
        if not demodulate:
            need[1] = need[2] = False  # weight and s only enter through d
        if torch.is_grad_enabled():  # create_graph: differentiate the torch formulation
            with torch.enable_grad():
                # Fresh graph nodes (views) so that the derivative w.r.t. s or weight does not
                # also run through y's own graph (y = conv(x * s, weight)).
                leaves = [None if t is None else t.view_as(t) for t in inputs]
                yy, ww, ss, nn, bb = leaves
                dd = demodulation_coefficients(ww, ss) if demodulate else None
                ref = _epilogue_torch(yy, dd, nn, bb, "lrelu" if lrelu else "linear")
                wanted = [t for t, n in zip(leaves, need) if n]
                gi = iter(torch.autograd.grad(ref, wanted, grad_out, create_graph=True,
                                              allow_unused=True))
            return (*[next(gi) if n else None for n in need], None, None)
        B, O, H, W = y.shape
        grad_out = grad_out.contiguous()
        need_d = need[1] or need[2]
        gy = torch.empty_like(y) if need[0] else None
        gd = y.new_empty((B, O)) if need_d else None
        gn = y.new_empty((B, 1, H, W)) if need[3] else None
        gb = y.new_empty((O,)) if need[4] else None
        _ext.cpu().modconv_epilogue_bwd(
            _ptr(grad_out), _ptr(y), _ptr(out), _ptr(d), _ptr(gy), _ptr(gd), _ptr(gn), _ptr(gb),
            B, O, H * W, lrelu, _SLOPE, _GAIN, y.dtype == torch.float64)
        if gn is not None and ctx.noise_shared:
            gn = gn.sum(dim=0, keepdim=True)
        gw = gs = None
        if need_d:  # d = (s^2 @ wsq^T + eps)^-1/2: dd/ds_i = -d^3 s_i wsq_oi, dd/dw = -d^3 s_i^2 w
            g3 = gd * d * d * d
            if need[2]:
                gs = -s * (g3 @ wsq)
            if need[1]:
                gw = -weight * (g3.t() @ s.square())[:, :, None, None]
        return gy, gw, gs, gn, gb, None, None


def _modulate_cpu_fwd(x, s):
    B, I, H, W = x.shape
    xs = torch.empty_like(x)
    _ext.cpu().modconv_modulate_fwd(_ptr(x), _ptr(s), _ptr(xs), B * I, H * W,
                                    x.dtype == torch.float64)
    return xs


class _ModulateCPU(torch.autograd.Function):
    """x_s = x * s[:, :, None, None] with the C++ kernels: one pass forward, and ONE pass backward
    for grad_x and grad_s together (torch's broadcast MulBackward takes three passes over the
    activations, about 10% of a forward+backward at (8, 128, 64)). Under ``create_graph=True``
    the backward is the same product rule in torch ops, so it is itself differentiable."""

    @staticmethod
    def forward(ctx, x, s):
        ctx.save_for_backward(x, s)
        return _modulate_cpu_fwd(x, s)

    @staticmethod
    def backward(ctx, grad_xs):
        x, s = ctx.saved_tensors
        need_x, need_s = ctx.needs_input_grad[:2]
        if torch.is_grad_enabled():  # create_graph
            gx = grad_xs * s[:, :, None, None] if need_x else None
            gs = (grad_xs * x).sum(dim=(2, 3)) if need_s else None
            return gx, gs
        B, I, H, W = x.shape
        grad_xs = grad_xs.contiguous()
        gx = torch.empty_like(x) if need_x else None
        gs = s.new_empty((B, I)) if need_s else None
        _ext.cpu().modconv_modulate_bwd(_ptr(grad_xs), _ptr(x), _ptr(s), _ptr(gx), _ptr(gs),
                                        B * I, H * W, x.dtype == torch.float64)
        return gx, gs


def _modulate_cpu(x, s):
    x, s = x.contiguous(), s.contiguous()
    if torch.is_grad_enabled() and (x.requires_grad or s.requires_grad):
        return _ModulateCPU.apply(x, s)
    return _modulate_cpu_fwd(x, s)


def _epilogue_cpu(y, weight, s, demodulate, noise, bias, activation):
    lrelu = activation == "lrelu"
    y, weight, s = y.contiguous(), weight.contiguous(), s.contiguous()
    noise = None if noise is None else noise.contiguous()
    bias = None if bias is None else bias.contiguous()
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad
                                       for t in (y, weight, s, noise, bias)):
        return _EpilogueCPU.apply(y, weight, s, noise, bias, bool(demodulate), lrelu)
    d = _demod_cpu(weight, s)[0] if demodulate else None
    return _epilogue_cpu_fwd(y, d, noise, bias, lrelu, y)  # y is our temporary: in place


def _forward_cpu_nhwc(x, weight, s, demodulate, noise, bias, lrelu, keep_y):
    """up=1 on NHWC: the C++ modulation writes x * s straight into NHWC (the layout change costs
    no extra pass), oneDNN runs its NHWC convolution, the C++ epilogue reads the NHWC output and
    writes ``out`` in NCHW (and, with ``keep_y``, the conv output y in NCHW for the backward).
    Returns (out, y or None, d or None, wsq or None)."""
    B, I, H, W = x.shape
    O, _, k, _ = weight.shape
    f64 = x.dtype == torch.float64
    xs = torch.empty_like(x, memory_format=torch.channels_last)
    _ext.cpu().modconv_modulate_nhwc(_ptr(x), _ptr(s), _ptr(xs), B, I, H * W, f64)
    y = F.conv2d(xs, weight.contiguous(memory_format=torch.channels_last), padding=k // 2)
    del xs
    if not y.is_contiguous(memory_format=torch.channels_last):  # a conv that changed layout
        y = y.contiguous(memory_format=torch.channels_last)
    d, wsq = _demod_cpu(weight, s) if demodulate else (None, None)
    Ho, Wo = y.shape[2:]
    out = torch.empty((B, O, Ho, Wo), dtype=x.dtype)
    y_nchw = torch.empty_like(out) if keep_y else None
    _ext.cpu().modconv_epilogue_fwd_nhwc(
        _ptr(y), _ptr(d), _ptr(noise), 0 if noise is None or noise.shape[0] == 1 else Ho * Wo,
        _ptr(bias), _ptr(out), _ptr(y_nchw), B, O, Ho * Wo, lrelu, _SLOPE, _GAIN, f64)
    return out, y_nchw, d, wsq


class _ModConvCPUNHWC(torch.autograd.Function):
    """The whole "cpu" op for up=1 when the NHWC convolution is chosen (``_use_nhwc``).
    Forward: ``_forward_cpu_nhwc``. Backward (NCHW, where oneDNN's backward is the faster one
    here): the C++ epilogue backward gives grad_y, grad_d, grad_noise, grad_bias in one pass;
    ``aten.convolution_backward`` on x * s (recomputed by the C++ modulation, one pass, instead
    of being kept from the forward) gives grad_xs and the weight gradient; the C++ modulation
    backward gives grad_x and grad_s in one pass; the chain rule of d adds two small products.
    Under ``create_graph=True`` (R1, path-length) the backward recomputes the torch formulation
    and differentiates it, so double backward is exact."""

    @staticmethod
    def forward(ctx, x, weight, s, noise, bias, demodulate, lrelu):
        out, y, d, wsq = _forward_cpu_nhwc(x, weight, s, demodulate, noise, bias, lrelu, True)
        ctx.cfg = (demodulate, lrelu)
        ctx.noise_shared = noise is not None and noise.shape[0] == 1
        ctx.save_for_backward(x, weight, s, noise, bias, y, out, d, wsq)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        x, weight, s, noise, bias, y, out, d, wsq = ctx.saved_tensors
        demodulate, lrelu = ctx.cfg
        inputs = (x, weight, s, noise, bias)
        need = [n and t is not None for n, t in zip(ctx.needs_input_grad[:5], inputs)]
        if torch.is_grad_enabled():  # create_graph: differentiate the torch formulation
            with torch.enable_grad():
                leaves = [None if t is None else t.view_as(t) for t in inputs]
                ref = _torch_forward(*leaves[:3], demodulate, 1, leaves[3], leaves[4],
                                     "lrelu" if lrelu else "linear")
                wanted = [t for t, n in zip(leaves, need) if n]
                gi = iter(torch.autograd.grad(ref, wanted, grad_out, create_graph=True,
                                              allow_unused=True))
            return (*[next(gi) if n else None for n in need], None, None)
        B, I, H, W = x.shape
        O, _, k, _ = weight.shape
        Ho, Wo = out.shape[2:]
        f64 = x.dtype == torch.float64
        grad_out = grad_out.contiguous()
        need_xs = need[0] or need[2]  # grad of the conv input x * s
        need_d = demodulate and (need[1] or need[2])
        gy = torch.empty_like(y) if (need_xs or need[1]) else None
        gd = y.new_empty((B, O)) if need_d else None
        gn = y.new_empty((B, 1, Ho, Wo)) if need[3] else None
        gb = y.new_empty((O,)) if need[4] else None
        _ext.cpu().modconv_epilogue_bwd(
            _ptr(grad_out), _ptr(y), _ptr(out), _ptr(d), _ptr(gy), _ptr(gd), _ptr(gn), _ptr(gb),
            B, O, Ho * Wo, lrelu, _SLOPE, _GAIN, f64)
        del y, out
        if gn is not None and ctx.noise_shared:
            gn = gn.sum(dim=0, keepdim=True)
        gx = gw = gs = None
        if gy is not None:
            # convolution_backward reads the input only for the weight gradient
            xs = _modulate_cpu_fwd(x, s) if need[1] else x
            gxs, gw, _ = torch.ops.aten.convolution_backward(
                gy, xs, weight, None, [1, 1], [k // 2, k // 2], [1, 1], False, [0, 0], 1,
                [need_xs, need[1], False])
            del gy, xs
            if need_xs:
                gx = torch.empty_like(x) if need[0] else None
                gs = s.new_empty((B, I)) if need[2] else None
                _ext.cpu().modconv_modulate_bwd(_ptr(gxs.contiguous()), _ptr(x), _ptr(s),
                                                _ptr(gx), _ptr(gs), B * I, H * W, f64)
        if need_d:  # d = (s^2 @ wsq^T + eps)^-1/2: dd/ds_i = -d^3 s_i wsq_oi, dd/dw = -d^3 s_i^2 w
            g3 = gd * d * d * d
            if need[2]:
                gs = gs - s * (g3 @ wsq)
            if need[1]:
                gw = gw - weight * (g3.t() @ s.square())[:, :, None, None]
        return gx, gw, gs, gn, gb, None, None


def _use_nhwc(x, up):
    """Rule for the "cpu" backend: the NHWC path for up=1 once H*W >= _NHWC_MIN_HW. Measured on
    the 2-core dev VM (AVX2, torch 2.13 / oneDNN, float32, 3x3, minimum of 8 interleaved rounds,
    whole op under no_grad, NCHW path -> NHWC path): (8, 128, 64) 83.7 -> 76.6 ms,
    (8, 256, 32) 80.2 -> 77.7 ms, (4, 512, 16) 42.1 -> 44.2 ms (slower: at 16x16 the
    NHWC convolution does not win, so that shape stays NCHW); the convolution alone:
    (8, 128, 64) 89.6 -> 63.6 ms, (8, 256, 32) 79.6 -> 63.7 ms."""
    return up == 1 and x.shape[2] * x.shape[3] >= _NHWC_MIN_HW


def _phase_weights(weight: torch.Tensor) -> torch.Tensor:
    """up=2, k=3: fold the [1,3,3,1] blur (x4, pads (1,1)) into the stride-2 transposed conv and
    split the resulting 6x6 kernel by output parity: [4, O, I, 3, 3], phase py*2+px, such that
    out[2q+py, 2r+px] = sum x[q+j1-1, r+j2-1] * P[py,px][j1, j2] (a padding-1 3x3 conv)."""
    O, I, k, _ = weight.shape
    kern = blur_kernel(2, weight.dtype, weight.device)
    c = F.conv2d(F.pad(weight.reshape(O * I, 1, k, k), (3, 3, 3, 3)), kern[None, None])
    c = c.reshape(O, I, 6, 6)
    phases = [c[:, :, py::2, px::2].flip(-1, -2) for py in (0, 1) for px in (0, 1)]
    return torch.stack(phases)


def _triton_supported(x, weight, up):
    return x.dtype in (torch.float16, torch.bfloat16, torch.float32) and (
        up == 1 or weight.shape[-1] == 3)


def _triton_forward(x, weight, s, demodulate, up, noise, bias, activation, Ho, Wo):
    from fe_fast.kernels import modulated_conv as tk

    O, I, k, _ = weight.shape
    x = x.contiguous()
    s = s.contiguous()
    if up == 1:
        w = weight.reshape(1, O, I * k * k).contiguous()
        d, pad, demod_in_kernel = None, k // 2, demodulate
    else:
        w = _phase_weights(weight).reshape(4, O, I * 9).contiguous()
        d = demodulation_coefficients(weight, s).contiguous() if demodulate else None
        pad, k, demod_in_kernel = 1, 3, False
    out = torch.empty((x.shape[0], O, Ho, Wo), dtype=x.dtype, device=x.device)
    allow_tf32 = x.dtype == torch.float32 and bool(torch.backends.cudnn.allow_tf32) \
        and x.device.type == "cuda"
    tk.modconv_fwd(x, w, s, d, None if noise is None else noise.contiguous(),
                   None if bias is None else bias.contiguous(), out, k, pad, up, demod_in_kernel,
                   activation == "lrelu", allow_tf32)
    return out


def _torch_forward(x, weight, s, demodulate, up, noise, bias, activation):
    d = demodulation_coefficients(weight, s) if demodulate else None
    y = _conv(x * s[:, :, None, None], weight, up)
    return _epilogue_torch(y, d, noise, bias, activation)


class _TritonModConv(torch.autograd.Function):
    """Forward: the fused Triton kernel. Backward: autograd through the torch formulation
    (recomputed), with create_graph when the caller asked for it, so double backward works."""

    @staticmethod
    def forward(ctx, x, weight, s, noise, bias, demodulate, up, activation, Ho, Wo):
        ctx.cfg = (demodulate, up, activation)
        ctx.save_for_backward(x, weight, s, noise, bias)
        return _triton_forward(x, weight, s, demodulate, up, noise, bias, activation, Ho, Wo)

    @staticmethod
    def backward(ctx, grad_out):
        x, weight, s, noise, bias = ctx.saved_tensors
        demodulate, up, activation = ctx.cfg
        inputs = (x, weight, s, noise, bias)
        need = [n and t is not None for n, t in zip(ctx.needs_input_grad[:5], inputs)]
        create_graph = torch.is_grad_enabled()
        with torch.enable_grad():
            # create_graph: fresh graph nodes (views), so that the derivative w.r.t. one input
            # never runs through another input's own graph; else detached leaves.
            leaves = [None if t is None else (t.view_as(t) if create_graph
                                              else t.detach().requires_grad_(n))
                      for t, n in zip(inputs, need)]
            out = _torch_forward(*leaves[:3], demodulate, up, leaves[3], leaves[4], activation)
            wanted = [t for t, n in zip(leaves, need) if n]
            grads = iter(torch.autograd.grad(out, wanted, grad_out, create_graph=create_graph,
                                             allow_unused=True))
        return (*[next(grads) if n else None for n in need], None, None, None, None, None)


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
        if not _triton_supported(x, weight, up):
            raise ValueError("backend='triton' needs x in float16/bfloat16/float32 and, for up=2, "
                             f"a 3x3 kernel; got {x.dtype}, up={up}, k={weight.shape[-1]}")
        if x.device.type != "cuda" and os.environ.get("TRITON_INTERPRET") != "1":
            raise ValueError("backend='triton' needs CUDA tensors (or TRITON_INTERPRET=1 to run the "
                             f"kernel on the CPU), got {x.device}")
        return _TritonModConv.apply(x, weight, s, noise, bias, bool(demodulate), up, activation,
                                    Ho, Wo)
    if backend == "cpu":
        if x.device.type != "cpu" or x.dtype not in (torch.float32, torch.float64):
            raise ValueError(f"backend='cpu' needs CPU float32/float64 tensors, got {x.device} "
                             f"{x.dtype}")
        if _use_nhwc(x, up):
            args = [None if t is None else t.contiguous() for t in (x, weight, s, noise, bias)]
            lrelu = activation == "lrelu"
            if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in args):
                return _ModConvCPUNHWC.apply(*args, bool(demodulate), lrelu)
            xc, wc, sc, nc, bc = args
            return _forward_cpu_nhwc(xc, wc, sc, bool(demodulate), nc, bc, lrelu, False)[0]
        y = _conv(_modulate_cpu(x, s), weight, up)
        return _epilogue_cpu(y, weight, s, demodulate, noise, bias, activation)
    return _torch_forward(x, weight, s, demodulate, up, noise, bias, activation)
