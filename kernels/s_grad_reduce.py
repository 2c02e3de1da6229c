"""Triton S-space gradient reduction (contract in ``csrc/s_grad_reduce.h``; thesis eq. 6-5 / 6-6).

Used by ``fe_fast.ops.s_grad_reduce`` for CUDA tensors; also runs on CPU tensors under
``TRITON_INTERPRET=1`` (how CI tests it).

Design
------
* ``_channel_kernel``: 1D grid over blocks of BLOCK_C channels. Each program streams all B rows in
  [BLOCK_B, BLOCK_C] tiles (coalesced along channels), zeroes the rows outside the mask and keeps
  running signed and absolute column sums in fp32 registers (fp64 for fp64 input); one pass over
  the buffer, no atomics, deterministic.
* ``_layer_kernel``: one program per layer. It loads the layer's |mean| (BLOCK_L >= largest
  layer), sums mean_abs for the layer response, and extracts the top-k by k rounds of
  max + smallest-index-of-max + knock-out (k is small: 1..10), which gives the same order as the
  C++ partial sort (ties -> smaller channel index).
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

__all__ = ["s_grad_reduce_triton"]


@triton.jit(do_not_specialize=["n_pos"])  # n_pos == 1 must stay a runtime int (it is divided by)
def _channel_kernel(g_ptr, mask_ptr, mean_ptr, abs_ptr, B, C, n_pos,
                    BLOCK_B: tl.constexpr, BLOCK_C: tl.constexpr):
    pid = tl.program_id(0)
    offs_c = pid * BLOCK_C + tl.arange(0, BLOCK_C)
    c_ok = offs_c < C
    acc_s = tl.zeros([BLOCK_C], dtype=g_ptr.dtype.element_ty)
    acc_a = tl.zeros([BLOCK_C], dtype=g_ptr.dtype.element_ty)
    rows0 = tl.arange(0, BLOCK_B)
    for start in range(0, B, BLOCK_B):
        rows = start + rows0
        r_ok = rows < B
        m = tl.load(mask_ptr + rows, mask=r_ok, other=0)
        keep = r_ok & (m != 0)
        ptrs = g_ptr + rows.to(tl.int64)[:, None] * C + offs_c[None, :]
        v = tl.load(ptrs, mask=keep[:, None] & c_ok[None, :], other=0.0)
        acc_s += tl.sum(v, axis=0)
        acc_a += tl.sum(tl.abs(v), axis=0)
    p = n_pos.to(acc_s.dtype)  # exact in fp32/fp64 (a sample count), no fp32 reciprocal for fp64 data
    tl.store(mean_ptr + offs_c, acc_s / p, mask=c_ok)
    tl.store(abs_ptr + offs_c, acc_a / p, mask=c_ok)


@triton.jit
def _layer_kernel(mean_ptr, abs_ptr, off_ptr, layer_ptr, idx_ptr, val_ptr,
                  K: tl.constexpr, BLOCK_L: tl.constexpr):
    l = tl.program_id(0)
    o = tl.load(off_ptr + l)
    n = tl.load(off_ptr + l + 1) - o
    offs = tl.arange(0, BLOCK_L)
    ok = offs < n
    m = tl.load(mean_ptr + o + offs, mask=ok, other=0.0)
    a = tl.load(abs_ptr + o + offs, mask=ok, other=0.0)
    tl.store(layer_ptr + l, tl.sum(a, axis=0) / n.to(a.dtype))
    key = tl.where(ok, tl.abs(m), -1.0)
    big = 2147483647
    for j in tl.static_range(K):
        best = tl.max(key, axis=0)
        arg = tl.min(tl.where(key == best, offs, big), axis=0)
        val = tl.sum(tl.where(offs == arg, m, 0.0), axis=0)
        tl.store(idx_ptr + l * K + j, arg.to(tl.int64))
        tl.store(val_ptr + l * K + j, val)
        key = tl.where(offs == arg, -2.0, key)


def s_grad_reduce_triton(grads: torch.Tensor, offsets: torch.Tensor, mask: torch.Tensor, k: int, n_pos: int,
                         block_b: int = 32, block_c: int = 128):
    """grads [B, C] contiguous float32/64, offsets int64 [L+1] (same device), mask bool [B],
    ``n_pos`` = mask.sum() > 0, every layer >= k channels. Returns (mean, mean_abs, layer, idx, val)."""
    B, C = grads.shape
    L = offsets.numel() - 1
    dev, dt = grads.device, grads.dtype
    mean = torch.empty(C, dtype=dt, device=dev)
    mean_abs = torch.empty(C, dtype=dt, device=dev)
    layer = torch.empty(L, dtype=dt, device=dev)
    idx = torch.empty((L, k), dtype=torch.int64, device=dev)
    val = torch.empty((L, k), dtype=dt, device=dev)
    mask_u8 = mask.to(torch.uint8).contiguous()
    _channel_kernel[(triton.cdiv(C, block_c),)](grads, mask_u8, mean, mean_abs, B, C, int(n_pos),
                                                BLOCK_B=block_b, BLOCK_C=block_c)
    max_layer = int((offsets[1:] - offsets[:-1]).max())
    block_l = max(16, triton.next_power_of_2(max_layer))
    _layer_kernel[(L,)](mean, mean_abs, offsets, layer, idx, val, K=k, BLOCK_L=block_l)
    return mean, mean_abs, layer, idx, val
