"""The "cpu" backend of ``fe_fast.ops.modulated_conv2d`` (thesis eq. 5-1/5-2), on the C++ kernels
of csrc/modconv_cpu.cpp. Entry point: ``forward``.

- NCHW path (up=2, or up=1 below ``_NHWC_MIN_HW`` pixels): C++ input modulation (one pass; its
  backward gives grad_x and grad_s in one pass), torch's conv (oneDNN) for x_s -> y, then ONE C++
  call computing d and ONE fused, vectorised pass for demodulation scale + noise + bias + leaky
  ReLU + gain (in place on the conv output under no_grad). Backward: one C++ pass gives grad_y,
  grad_d, grad_noise, grad_bias; the chain rule of d is two small matrix products.
- NHWC path (up=1 at H*W >= ``_NHWC_MIN_HW``, see ``_use_nhwc``): the convolution runs on NHWC,
  with the layout change fused into the C++ modulation and epilogue; the backward stays NCHW.

Each piece is a forward function and a backward function (``modulate_fwd``/``modulate_bwd``,
``epilogue_fwd``/``epilogue_bwd``, ``nhwc_fwd``/``nhwc_bwd``), registered as torch.library custom
ops (``fe_fast::modconv_modulate``, ``fe_fast::modconv_epilogue``, ``fe_fast::modconv_nhwc`` and
their ``*_bwd``) with fake implementations and registered autograd, so that torch.compile and
torch.export see them; without a gradient to compute, eager calls go to the kernels directly.
When a backward is itself differentiated (``create_graph=True``: R1, path-length) it recomputes
the torch formulation and differentiates it (``_modconv_torch.grad_by_recompute``), so double
backward is exact.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from fe_fast import _ext
from fe_fast.ops._modconv_torch import (EPS, GAIN, SLOPE, conv, demodulation_coefficients,
                                        epilogue, grad_by_recompute)
from fe_fast.ops._modconv_torch import forward as torch_forward

_NHWC_MIN_HW = 1024  # see _use_nhwc


def _np(t):
    """numpy view of a contiguous CPU tensor (zero-copy) for the checked C++ bindings."""
    return None if t is None else t.detach().numpy()


def _use_nhwc(x, up):
    """Rule for the "cpu" backend: the NHWC path for up=1 once H*W >= _NHWC_MIN_HW. Measured on
    the 2-core dev VM (AVX2, torch 2.13 / oneDNN, float32, 3x3, minimum of 8 interleaved rounds,
    whole op under no_grad, NCHW path -> NHWC path): (8, 128, 64) 83.7 -> 76.6 ms,
    (8, 256, 32) 80.2 -> 77.7 ms, (4, 512, 16) 42.1 -> 44.2 ms (slower: at 16x16 the
    NHWC convolution does not win, so that shape stays NCHW); the convolution alone:
    (8, 128, 64) 89.6 -> 63.6 ms, (8, 256, 32) 79.6 -> 63.7 ms."""
    return up == 1 and x.shape[2] * x.shape[3] >= _NHWC_MIN_HW


# --- demodulation coefficients ---------------------------------------------------------------

def demod_fwd(weight, s):
    """(d [B, O], wsq [O, I]) from the C++ kernel: one call instead of five small torch ops."""
    O, I = weight.shape[:2]
    wsq = weight.new_empty((O, I))
    d = weight.new_empty((s.shape[0], O))
    _ext.cpu().modconv_demod(_np(weight), _np(s), _np(wsq), _np(d), EPS)
    return d, wsq


def demod_bwd(grad_d, d, weight, s, wsq, need_weight, need_s):
    """The chain rule of d = (s^2 @ wsq^T + eps)^-1/2: dd/ds_i = -d^3 s_i wsq_oi and
    dd/dw = -d^3 s_i^2 w. Returns (grad_weight, grad_s), each None where not needed."""
    g3 = grad_d * d * d * d
    gs = -s * (g3 @ wsq) if need_s else None
    gw = -weight * (g3.t() @ s.square())[:, :, None, None] if need_weight else None
    return gw, gs


# --- input modulation x_s = x * s --------------------------------------------------------------

def modulate_fwd(x, s):
    xs = torch.empty_like(x)
    _ext.cpu().modconv_modulate_fwd(_np(x), _np(s), _np(xs))
    return xs


def modulate_bwd(grad_xs, x, s, need_x, need_s):
    """(grad_x, grad_s) in ONE C++ pass (torch's broadcast MulBackward takes three passes over
    the activations, about 10% of a forward+backward at (8, 128, 64))."""
    gx = torch.empty_like(x) if need_x else None
    gs = s.new_empty(x.shape[:2]) if need_s else None
    _ext.cpu().modconv_modulate_bwd(_np(grad_xs.contiguous()), _np(x), _np(s), _np(gx), _np(gs))
    return gx, gs


@torch.library.custom_op("fe_fast::modconv_modulate", mutates_args=())
def modulate_op(x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """``modulate_fwd`` as a PyTorch operator (x [B, I, H, W], s [B, I], contiguous CPU)."""
    return modulate_fwd(x, s)


@modulate_op.register_fake
def _modulate_fake(x, s):
    return torch.empty_like(x)


@torch.library.custom_op("fe_fast::modconv_modulate_bwd", mutates_args=())
def modulate_bwd_op(grad_xs: torch.Tensor, x: torch.Tensor, s: torch.Tensor, need_x: bool,
                    need_s: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """``modulate_bwd`` as an operator; a gradient not needed comes back as an empty tensor."""
    gx, gs = modulate_bwd(grad_xs, x, s, need_x, need_s)
    return _or_empty(gx, x), _or_empty(gs, s)


@modulate_bwd_op.register_fake
def _modulate_bwd_fake(grad_xs, x, s, need_x, need_s):
    return (torch.empty_like(x) if need_x else x.new_empty(0),
            s.new_empty(x.shape[:2]) if need_s else s.new_empty(0))


def _modulate_setup(ctx, inputs, output):
    ctx.save_for_backward(*inputs)


def _modulate_backward(ctx, grad_xs):
    """One C++ pass for grad_x and grad_s. Under ``create_graph=True`` the same product rule in
    torch ops, so that it is itself differentiable."""
    x, s = ctx.saved_tensors
    need_x, need_s = ctx.needs_input_grad[:2]
    if torch.is_grad_enabled():  # create_graph
        gx = grad_xs * s[:, :, None, None] if need_x else None
        gs = (grad_xs * x).sum(dim=(2, 3)) if need_s else None
        return gx, gs
    gx, gs = modulate_bwd_op(grad_xs.contiguous(), x, s, need_x, need_s)
    return (gx if need_x else None), (gs if need_s else None)


modulate_op.register_autograd(_modulate_backward, setup_context=_modulate_setup)


def _or_empty(t, like):
    """Custom ops return tensors, never None: an absent result is an empty tensor."""
    return like.new_empty(0) if t is None else t


def _use_op(*tensors):
    """The registered ops (autograd, fake tensors) when a gradient is wanted or under
    torch.compile / torch.export; the direct kernels (in place where possible) otherwise."""
    return torch.compiler.is_compiling() or (
        torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors))


def _modulate(x, s):
    x, s = x.contiguous(), s.contiguous()
    if _use_op(x, s):
        return modulate_op(x, s)
    return modulate_fwd(x, s)


# --- epilogue out = act(y * d + noise + bias) * gain --------------------------------------------

def epilogue_fwd(y, d, noise, bias, lrelu, out):
    """The fused C++ epilogue written into ``out`` (which may be ``y``: in place)."""
    _ext.cpu().modconv_epilogue_fwd(_np(y), _np(d), _np(noise), _np(bias), _np(out), lrelu, SLOPE,
                                    GAIN)
    return out


def epilogue_bwd(grad_out, y, out, d, lrelu, need_y, need_d, need_noise, need_bias,
                 noise_shared):
    """(grad_y, grad_d, grad_noise, grad_bias) in one C++ pass, each None where not needed;
    ``y`` is the NCHW conv output and ``out`` the epilogue's output."""
    B, O, H, W = y.shape
    gy = torch.empty_like(y) if need_y else None
    gd = y.new_empty((B, O)) if need_d else None
    gn = y.new_empty((B, 1, H, W)) if need_noise else None
    gb = y.new_empty((O,)) if need_bias else None
    _ext.cpu().modconv_epilogue_bwd(_np(grad_out.contiguous()), _np(y), _np(out), _np(d), _np(gy),
                                    _np(gd), _np(gn), _np(gb), lrelu, SLOPE, GAIN)
    if gn is not None and noise_shared:
        gn = gn.sum(dim=0, keepdim=True)
    return gy, gd, gn, gb


def _needs(ctx, inputs):
    return [n and t is not None for n, t in zip(ctx.needs_input_grad[:5], inputs)]


@torch.library.custom_op("fe_fast::modconv_epilogue", mutates_args=())
def epilogue_op(y: torch.Tensor, weight: torch.Tensor, s: torch.Tensor, noise: Optional[torch.Tensor],
                bias: Optional[torch.Tensor], demodulate: bool,
                lrelu: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """out = act(y * d(weight, s) + noise + bias) * gain with the C++ kernels (``demod_fwd``,
    ``epilogue_fwd``) as a PyTorch operator. Returns (out, d, wsq), the last two kept for the
    backward (empty without demodulation)."""
    d, wsq = demod_fwd(weight, s) if demodulate else (None, None)
    out = epilogue_fwd(y, d, noise, bias, lrelu, torch.empty_like(y))
    return out, _or_empty(d, y), _or_empty(wsq, y)


@epilogue_op.register_fake
def _epilogue_fake(y, weight, s, noise, bias, demodulate, lrelu):
    B, O = y.shape[:2]
    if not demodulate:
        return torch.empty_like(y), y.new_empty(0), y.new_empty(0)
    return torch.empty_like(y), y.new_empty((B, O)), y.new_empty((O, weight.shape[1]))


@torch.library.custom_op("fe_fast::modconv_epilogue_bwd", mutates_args=())
def epilogue_bwd_op(grad_out: torch.Tensor, y: torch.Tensor, out: torch.Tensor, d: torch.Tensor,
                    weight: torch.Tensor, s: torch.Tensor, wsq: torch.Tensor, need: list[bool],
                    demodulate: bool, lrelu: bool, noise_shared: bool) -> list[torch.Tensor]:
    """``epilogue_bwd`` then ``demod_bwd``: the gradients of (y, weight, s, noise, bias) where
    ``need`` says so, else empty tensors."""
    if not demodulate:
        d = wsq = None
    gy, gd, gn, gb = epilogue_bwd(grad_out, y, out, d, lrelu, need[0], need[1] or need[2],
                                  need[3], need[4], noise_shared)
    gw, gs = demod_bwd(gd, d, weight, s, wsq, need[1], need[2]) if gd is not None else (None, None)
    return [_or_empty(g, y) for g in (gy, gw, gs, gn, gb)]


@epilogue_bwd_op.register_fake
def _epilogue_bwd_fake(grad_out, y, out, d, weight, s, wsq, need, demodulate, lrelu, noise_shared):
    B, O, H, W = y.shape
    shapes = (y.shape, weight.shape, s.shape, (1 if noise_shared else B, 1, H, W), (O,))
    return [y.new_empty(sh if n else (0,)) for sh, n in zip(shapes, need)]


def _needs(ctx, inputs):
    return [bool(n) and t is not None for n, t in zip(ctx.needs_input_grad[:5], inputs)]


def _epilogue_setup(ctx, inputs, output):
    y, weight, s, noise, bias, demodulate, lrelu = inputs
    out, d, wsq = output
    ctx.cfg = (demodulate, lrelu)
    ctx.noise_shared = noise is not None and noise.shape[0] == 1
    ctx.save_for_backward(y, weight, s, noise, bias, d, wsq, out)


def _epilogue_backward(ctx, grad_out, _grad_d, _grad_wsq):
    """``epilogue_bwd_op`` (one C++ pass, then the chain rule of d); under ``create_graph=True``
    the torch formulation recomputed and differentiated, so double backward is exact."""
    y, weight, s, noise, bias, d, wsq, out = ctx.saved_tensors
    demodulate, lrelu = ctx.cfg
    inputs = (y, weight, s, noise, bias)
    need = _needs(ctx, inputs)
    if not demodulate:
        need[1] = need[2] = False  # weight and s only enter through d
    if torch.is_grad_enabled():  # create_graph: differentiate the torch formulation
        def formulation(y, weight, s, noise, bias):
            d = demodulation_coefficients(weight, s) if demodulate else None
            return epilogue(y, d, noise, bias, "lrelu" if lrelu else "linear")

        return (*grad_by_recompute(formulation, inputs, need, grad_out), None, None)
    grads = epilogue_bwd_op(grad_out.contiguous(), y, out, d, weight, s, wsq, need, demodulate,
                            lrelu, ctx.noise_shared)
    return (*[g if n else None for g, n in zip(grads, need)], None, None)


epilogue_op.register_autograd(_epilogue_backward, setup_context=_epilogue_setup)


def _epilogue(y, weight, s, demodulate, noise, bias, activation):
    lrelu = activation == "lrelu"
    y, weight, s = y.contiguous(), weight.contiguous(), s.contiguous()
    noise = None if noise is None else noise.contiguous()
    bias = None if bias is None else bias.contiguous()
    if _use_op(y, weight, s, noise, bias):
        return epilogue_op(y, weight, s, noise, bias, bool(demodulate), lrelu)[0]
    d = demod_fwd(weight, s)[0] if demodulate else None
    return epilogue_fwd(y, d, noise, bias, lrelu, y)  # y is our temporary: in place


# --- the whole op on NHWC (up=1) -------------------------------------------------------------

def nhwc_fwd(x, weight, s, demodulate, noise, bias, lrelu, keep_y):
    """up=1 on NHWC: the C++ modulation writes x * s straight into NHWC (the layout change costs
    no extra pass), oneDNN runs its NHWC convolution, the C++ epilogue reads the NHWC output and
    writes ``out`` in NCHW (and, with ``keep_y``, the conv output y in NCHW for the backward).
    Returns (out, y or None, d or None, wsq or None)."""
    B = x.shape[0]
    O, _, k, _ = weight.shape
    xs = torch.empty_like(x, memory_format=torch.channels_last)
    _ext.cpu().modconv_modulate_nhwc(_np(x), _np(s), _np(xs.permute(0, 2, 3, 1)))
    y = F.conv2d(xs, weight.contiguous(memory_format=torch.channels_last), padding=k // 2)
    del xs
    if not y.is_contiguous(memory_format=torch.channels_last):  # a conv that changed layout
        y = y.contiguous(memory_format=torch.channels_last)
    d, wsq = demod_fwd(weight, s) if demodulate else (None, None)
    Ho, Wo = y.shape[2:]
    out = torch.empty((B, O, Ho, Wo), dtype=x.dtype)
    y_nchw = torch.empty_like(out) if keep_y else None
    _ext.cpu().modconv_epilogue_fwd_nhwc(_np(y.permute(0, 2, 3, 1)), _np(d), _np(noise), _np(bias),
                                         _np(out), _np(y_nchw), lrelu, SLOPE, GAIN)
    return out, y_nchw, d, wsq


def nhwc_bwd(grad_out, x, weight, s, y, out, d, wsq, need, demodulate, lrelu, noise_shared):
    """Backward of ``nhwc_fwd`` (NCHW, where oneDNN's backward is the faster one here):
    ``epilogue_bwd`` gives grad_y, grad_d, grad_noise, grad_bias in one pass;
    ``aten.convolution_backward`` on x * s (recomputed by the C++ modulation, one pass, instead
    of being kept from the forward) gives grad_xs and the weight gradient; ``modulate_bwd`` gives
    grad_x and grad_s in one pass; ``demod_bwd`` adds the chain rule of d.
    ``need``: [x, weight, s, noise, bias]. Returns their five gradients (None where not needed)."""
    k = weight.shape[-1]
    need_xs = need[0] or need[2]  # grad of the conv input x * s
    need_d = demodulate and (need[1] or need[2])
    gy, gd, gn, gb = epilogue_bwd(grad_out, y, out, d, lrelu, need_xs or need[1], need_d,
                                  need[3], need[4], noise_shared)
    del y, out
    gx = gw = gs = None
    if gy is not None:
        # convolution_backward reads the input only for the weight gradient
        xs = modulate_fwd(x, s) if need[1] else x
        gxs, gw, _ = torch.ops.aten.convolution_backward(
            gy, xs, weight, None, [1, 1], [k // 2, k // 2], [1, 1], False, [0, 0], 1,
            [need_xs, need[1], False])
        del gy, xs
        if need_xs:
            gx, gs = modulate_bwd(gxs, x, s, need[0], need[2])
    if need_d:
        gw_d, gs_d = demod_bwd(gd, d, weight, s, wsq, need[1], need[2])
        if need[2]:
            gs = gs + gs_d
        if need[1]:
            gw = gw + gw_d
    return gx, gw, gs, gn, gb


@torch.library.custom_op("fe_fast::modconv_nhwc", mutates_args=())
def nhwc_op(x: torch.Tensor, weight: torch.Tensor, s: torch.Tensor, noise: Optional[torch.Tensor],
            bias: Optional[torch.Tensor], demodulate: bool,
            lrelu: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The whole "cpu" op for up=1 on NHWC (``nhwc_fwd``) as a PyTorch operator. Returns (out, y,
    d, wsq): the NCHW conv output y and the demodulation terms are kept for the backward (d and
    wsq empty without demodulation)."""
    out, y, d, wsq = nhwc_fwd(x, weight, s, demodulate, noise, bias, lrelu, True)
    return out, y, _or_empty(d, x), _or_empty(wsq, x)


@nhwc_op.register_fake
def _nhwc_fake(x, weight, s, noise, bias, demodulate, lrelu):
    B, _, H, W = x.shape
    O, I, k, _ = weight.shape
    Ho, Wo = H + 2 * (k // 2) - k + 1, W + 2 * (k // 2) - k + 1
    out = x.new_empty((B, O, Ho, Wo))
    if not demodulate:
        return out, torch.empty_like(out), x.new_empty(0), x.new_empty(0)
    return out, torch.empty_like(out), x.new_empty((B, O)), x.new_empty((O, I))


@torch.library.custom_op("fe_fast::modconv_nhwc_bwd", mutates_args=())
def nhwc_bwd_op(grad_out: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, s: torch.Tensor,
                y: torch.Tensor, out: torch.Tensor, d: torch.Tensor, wsq: torch.Tensor,
                need: list[bool], demodulate: bool, lrelu: bool,
                noise_shared: bool) -> list[torch.Tensor]:
    """``nhwc_bwd`` as an operator: gradients of (x, weight, s, noise, bias), empty where not
    needed."""
    grads = nhwc_bwd(grad_out, x, weight, s, y, out, d if demodulate else None,
                     wsq if demodulate else None, need, demodulate, lrelu, noise_shared)
    return [_or_empty(g, x) for g in grads]


@nhwc_bwd_op.register_fake
def _nhwc_bwd_fake(grad_out, x, weight, s, y, out, d, wsq, need, demodulate, lrelu, noise_shared):
    B, O, H, W = out.shape
    shapes = (x.shape, weight.shape, s.shape, (1 if noise_shared else B, 1, H, W), (O,))
    return [x.new_empty(sh if n else (0,)) for sh, n in zip(shapes, need)]


def _nhwc_setup(ctx, inputs, output):
    x, weight, s, noise, bias, demodulate, lrelu = inputs
    out, y, d, wsq = output
    ctx.cfg = (demodulate, lrelu)
    ctx.noise_shared = noise is not None and noise.shape[0] == 1
    ctx.save_for_backward(x, weight, s, noise, bias, y, out, d, wsq)


def _nhwc_backward(ctx, grad_out, _gy, _gd, _gwsq):
    """``nhwc_bwd_op``; under ``create_graph=True`` the torch formulation recomputed and
    differentiated, so double backward is exact."""
    x, weight, s, noise, bias, y, out, d, wsq = ctx.saved_tensors
    demodulate, lrelu = ctx.cfg
    inputs = (x, weight, s, noise, bias)
    need = _needs(ctx, inputs)
    if torch.is_grad_enabled():  # create_graph: differentiate the torch formulation
        def formulation(x, weight, s, noise, bias):
            return torch_forward(x, weight, s, demodulate, 1, noise, bias,
                                 "lrelu" if lrelu else "linear")

        return (*grad_by_recompute(formulation, inputs, need, grad_out), None, None)
    grads = nhwc_bwd_op(grad_out.contiguous(), x, weight, s, y, out, d, wsq, need, demodulate,
                        lrelu, ctx.noise_shared)
    return (*[g if n else None for g, n in zip(grads, need)], None, None)


nhwc_op.register_autograd(_nhwc_backward, setup_context=_nhwc_setup)


def forward(x, weight, s, demodulate, up, noise, bias, activation):
    """The "cpu" backend (CPU float32/float64 tensors; ``s`` already includes the weight gain):
    the NHWC whole-op path where ``_use_nhwc`` says so, else modulation -> torch conv ->
    epilogue."""
    if _use_nhwc(x, up):
        args = [None if t is None else t.contiguous() for t in (x, weight, s, noise, bias)]
        lrelu = activation == "lrelu"
        if _use_op(*args):
            return nhwc_op(*args, bool(demodulate), lrelu)[0]
        xc, wc, sc, nc, bc = args
        return nhwc_fwd(xc, wc, sc, bool(demodulate), nc, bc, lrelu, False)[0]
    y = conv(_modulate(x, s), weight, up)
    return _epilogue(y, weight, s, demodulate, noise, bias, activation)
