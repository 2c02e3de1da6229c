"""The "triton" backend of ``fe_fast.ops.modulated_conv2d`` (thesis eq. 5-1/5-2):
``fe_fast.kernels.modulated_conv``, one kernel doing modulation, the convolution as an implicit
GEMM, demodulation, noise, bias and activation. up=2 (k=3) runs in the same kernel as four
polyphase 3x3 convolutions with the blur folded into the weights (``phase_weights``).
Backward: autograd of the torch formulation, recomputed (``_modconv_torch.grad_by_recompute``),
with create_graph when asked. float32 uses TF32 on CUDA exactly when
``torch.backends.cudnn.allow_tf32`` lets cuDNN do so.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from fe_fast.ops._blur import blur_kernel
from fe_fast.ops._modconv_torch import demodulation_coefficients, grad_by_recompute
from fe_fast.ops._modconv_torch import forward as torch_forward


def supported(x, weight, up):
    return x.dtype in (torch.float16, torch.bfloat16, torch.float32) and (
        up == 1 or weight.shape[-1] == 3)


def phase_weights(weight: torch.Tensor) -> torch.Tensor:
    """up=2, k=3: fold the [1,3,3,1] blur (x4, pads (1,1)) into the stride-2 transposed conv and
    split the resulting 6x6 kernel by output parity: [4, O, I, 3, 3], phase py*2+px, such that
    out[2q+py, 2r+px] = sum x[q+j1-1, r+j2-1] * P[py,px][j1, j2] (a padding-1 3x3 conv)."""
    O, I, k, _ = weight.shape
    kern = blur_kernel(2, weight.dtype, weight.device)
    c = F.conv2d(F.pad(weight.reshape(O * I, 1, k, k), (3, 3, 3, 3)), kern[None, None])
    c = c.reshape(O, I, 6, 6)
    phases = [c[:, :, py::2, px::2].flip(-1, -2) for py in (0, 1) for px in (0, 1)]
    return torch.stack(phases)


def triton_fwd(x, weight, s, demodulate, up, noise, bias, activation, Ho, Wo):
    """The fused kernel's output [B, O, Ho, Wo] (no autograd)."""
    from fe_fast.kernels import modulated_conv as tk

    O, I, k, _ = weight.shape
    x = x.contiguous()
    s = s.contiguous()
    if up == 1:
        w = weight.reshape(1, O, I * k * k).contiguous()
        d, pad, demod_in_kernel = None, k // 2, demodulate
    else:
        w = phase_weights(weight).reshape(4, O, I * 9).contiguous()
        d = demodulation_coefficients(weight, s).contiguous() if demodulate else None
        pad, k, demod_in_kernel = 1, 3, False
    out = torch.empty((x.shape[0], O, Ho, Wo), dtype=x.dtype, device=x.device)
    allow_tf32 = x.dtype == torch.float32 and bool(torch.backends.cudnn.allow_tf32) \
        and x.device.type == "cuda"
    tk.modconv_fwd(x, w, s, d, None if noise is None else noise.contiguous(),
                   None if bias is None else bias.contiguous(), out, k, pad, up, demod_in_kernel,
                   activation == "lrelu", allow_tf32)
    return out


def triton_bwd(grad_out, inputs, need, demodulate, up, activation):
    """Gradients of (x, weight, s, noise, bias) by autograd of the recomputed torch formulation."""
    def formulation(x, weight, s, noise, bias):
        return torch_forward(x, weight, s, demodulate, up, noise, bias, activation)

    return grad_by_recompute(formulation, inputs, need, grad_out)


class _TritonModConv(torch.autograd.Function):
    """``triton_fwd`` / ``triton_bwd``."""

    @staticmethod
    def forward(ctx, x, weight, s, noise, bias, demodulate, up, activation, Ho, Wo):
        ctx.cfg = (demodulate, up, activation)
        ctx.save_for_backward(x, weight, s, noise, bias)
        return triton_fwd(x, weight, s, demodulate, up, noise, bias, activation, Ho, Wo)

    @staticmethod
    def backward(ctx, grad_out):
        inputs = ctx.saved_tensors
        need = [n and t is not None for n, t in zip(ctx.needs_input_grad[:5], inputs)]
        grads = triton_bwd(grad_out, inputs, need, *ctx.cfg)
        return (*grads, None, None, None, None, None)


def forward(x, weight, s, demodulate, up, noise, bias, activation, Ho, Wo):
    """The "triton" backend (``s`` already includes the weight gain)."""
    return _TritonModConv.apply(x, weight, s, noise, bias, bool(demodulate), up, activation,
                                Ho, Wo)
