"""The "torch" backend of ``fe_fast.ops.modulated_conv2d``: the formulation of thesis eq. 5-1/5-2
in eager torch (differentiable to any order), and the create-graph helper that the "cpu" and
"triton" backends use to differentiate it when their own backward is itself differentiated.

    x_s    = x * s[:, :, None, None]
    y      = conv(x_s, weight)          (up=2: conv_transpose2d stride 2, then the FIR blur)
    d[b,o] = rsqrt(s^2 @ sum_k(weight^2)^T + 1e-8)
    out    = act(y * d + noise + bias) * gain
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from fe_fast.ops._blur import blur_kernel, blur_pads, upfirdn_blur

EPS = 1e-8
SLOPE = 0.2
GAIN = math.sqrt(2.0)


def demodulation_coefficients(weight: torch.Tensor, styles: torch.Tensor,
                              eps: float = EPS) -> torch.Tensor:
    """d[b, o] = rsqrt(sum_{i,k} (styles[b,i] * weight[o,i,k])^2 + eps) (thesis eq. 5-2) as
    rsqrt(styles^2 @ sum_k(weight^2)^T + eps): a [B, I] x [I, O] product, differentiable."""
    wsq = weight.square().sum(dim=(2, 3))  # [O, I]
    return torch.rsqrt(styles.square() @ wsq.t() + eps)


def conv(xs: torch.Tensor, weight: torch.Tensor, up: int) -> torch.Tensor:
    """The shared-weight convolution of the modulated input: padding k//2 (up=1), or the
    stride-2 transposed convolution followed by the [1,3,3,1] blur scaled by 4 (up=2)."""
    k = weight.shape[-1]
    if up == 1:
        return F.conv2d(xs, weight, padding=k // 2)
    y = F.conv_transpose2d(xs, weight.transpose(0, 1), stride=2, padding=0)
    return upfirdn_blur(y, blur_kernel(2, y.dtype, y.device), blur_pads(k, 2))


def epilogue(y, d, noise, bias, activation):
    """act(y * d + noise + bias) * gain; ``d`` None skips the demodulation."""
    out = y if d is None else y * d[:, :, None, None]
    if noise is not None:
        out = out + noise
    if bias is not None:
        out = out + bias.reshape(1, -1, 1, 1)
    if activation == "lrelu":
        out = F.leaky_relu(out, SLOPE) * GAIN
    return out


def forward(x, weight, s, demodulate, up, noise, bias, activation):
    """The whole op in torch ops (``s`` already includes the weight gain)."""
    d = demodulation_coefficients(weight, s) if demodulate else None
    y = conv(x * s[:, :, None, None], weight, up)
    return epilogue(y, d, noise, bias, activation)


def grad_by_recompute(fn, inputs, need, grad_out):
    """Backward of a custom autograd Function by recomputing it in torch ops: ``fn(*inputs)``
    is evaluated again and differentiated w.r.t. the inputs flagged in ``need`` (a list of
    bools, one per input; None inputs must be False). Returns one gradient or None per input.

    When the caller's backward is itself being differentiated (``create_graph=True``, as in R1
    and path-length regularisation; seen here as grad mode on), the inputs enter as fresh graph
    nodes (views), so that the derivative w.r.t. one input never runs through another input's
    own graph (e.g. y = conv(x * s, weight) when differentiating w.r.t. s), and the gradients
    carry a graph: double backward is exact. Otherwise the inputs enter as detached leaves."""
    create_graph = torch.is_grad_enabled()
    with torch.enable_grad():
        leaves = [None if t is None else (t.view_as(t) if create_graph
                                          else t.detach().requires_grad_(n))
                  for t, n in zip(inputs, need)]
        out = fn(*leaves)
        wanted = [t for t, n in zip(leaves, need) if n]
        grads = iter(torch.autograd.grad(out, wanted, grad_out, create_graph=create_graph,
                                         allow_unused=True))
    return [next(grads) if n else None for n in need]
