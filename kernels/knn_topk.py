"""Triton K nearest neighbours for any dimension (contract and conventions in ``csrc/knn_topk.h``).

Used by ``fe_fast.ops.knn_topk`` for CUDA tensors; also runs on CPU tensors under
``TRITON_INTERPRET=1`` (how CI tests it). The search under the Chamfer distances of thesis
eq. 3-9 / 3-10, generalised to K neighbours and any D.

Design
------
* 2D grid (query blocks, batch). Each program holds BLOCK_N queries and streams the valid reference
  points of its batch element in blocks of BLOCK_M. Distances are exact coordinate differences
  summed over D in chunks of BLOCK_D ([BLOCK_N, BLOCK_M, BLOCK_D] broadcast, then a sum): no
  matrix-product form, so no cancellation.
* Per query a *bag* of the K best (distance, index) pairs so far, in a [BLOCK_N, KP] register tile
  (KP = next power of two >= K; columns >= K hold -inf and are never replaced). After each
  reference block, K rounds move the block's smallest remaining entry into the bag in place of the
  bag's worst entry when it is better (order: distance, then index). Every program runs the same
  rounds, so there is no divergence; a block whose entries are all worse changes nothing.
* At the end K rounds extract the bag's entries in increasing (distance, index) order into the
  output row. Slots never filled (fewer than K valid points) get idx -1 and dist 0, as padded
  queries do.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

__all__ = ["knn_topk_triton"]


@triton.jit
def _knn_topk_kernel(
    x_ptr, y_ptr, x_len_ptr, y_len_ptr, idx_ptr, dist_ptr,
    N, M, y_batch_stride,
    D: tl.constexpr, K: tl.constexpr, KP: tl.constexpr,
    BLOCK_N: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_D: tl.constexpr,
):
    pid_n = tl.program_id(0)
    b = tl.program_id(1).to(tl.int64)
    xl = tl.load(x_len_ptr + b)
    yl = tl.load(y_len_ptr + b)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    q_valid = offs_n < xl
    in_range = offs_n < N
    x_rows = x_ptr + b * N * D + offs_n.to(tl.int64) * D
    y_base = y_ptr + b * y_batch_stride
    y_end = tl.where(pid_n * BLOCK_N < xl, yl, 0)  # no valid query: skip the scan

    BIG: tl.constexpr = 2147483647
    cols = tl.arange(0, KP)
    live = (cols < K)[None, :]  # bag columns in use
    inf = float("inf")
    bag_d = tl.where(live, inf, -inf) + tl.zeros([BLOCK_N, KP], tl.float32).to(x_ptr.dtype.element_ty)
    bag_i = tl.where(live, BIG - cols[None, :], -1) + tl.zeros([BLOCK_N, KP], tl.int32)
    offs_m0 = tl.arange(0, BLOCK_M)
    offs_d0 = tl.arange(0, BLOCK_D)
    for start in range(0, y_end, BLOCK_M):
        offs_m = start + offs_m0
        m_valid = offs_m < y_end
        d = tl.zeros([BLOCK_N, BLOCK_M], x_ptr.dtype.element_ty)
        for d0 in tl.static_range(0, D, BLOCK_D):
            offs_d = d0 + offs_d0
            dm = offs_d < D
            xv = tl.load(x_rows[:, None] + offs_d[None, :], mask=q_valid[:, None] & dm[None, :], other=0.0)
            yv = tl.load(y_base + offs_m.to(tl.int64)[:, None] * D + offs_d[None, :],
                         mask=m_valid[:, None] & dm[None, :], other=0.0)
            diff = xv[:, None, :] - yv[None, :, :]
            d += tl.sum(diff * diff, axis=2)
        d = tl.where(m_valid[None, :], d, inf)
        j = offs_m.to(tl.int32)[None, :] + tl.zeros([BLOCK_N, BLOCK_M], tl.int32)
        for _r in tl.static_range(K):
            m_d = tl.min(d, axis=1)
            m_i = tl.min(tl.where(d == m_d[:, None], j, BIG), axis=1)
            w_d = tl.max(bag_d, axis=1)
            w_i = tl.max(tl.where(bag_d == w_d[:, None], bag_i, -1), axis=1)
            take = (m_d < inf) & ((m_d < w_d) | ((m_d == w_d) & (m_i < w_i)))
            at = (bag_d == w_d[:, None]) & (bag_i == w_i[:, None]) & take[:, None]
            bag_d = tl.where(at, m_d[:, None], bag_d)
            bag_i = tl.where(at, m_i[:, None], bag_i)
            d = tl.where(j == m_i[:, None], inf, d)

    out = (b * N + offs_n.to(tl.int64)) * K
    bag_d = tl.where(live, bag_d, inf)
    for r in tl.static_range(K):
        s_d = tl.min(bag_d, axis=1)
        s_i = tl.min(tl.where(bag_d == s_d[:, None], bag_i, BIG), axis=1)
        found = q_valid & (s_d < inf)
        tl.store(idx_ptr + out + r, tl.where(found, s_i.to(tl.int64), -1), mask=in_range)
        tl.store(dist_ptr + out + r, tl.where(found, s_d, 0.0).to(dist_ptr.dtype.element_ty), mask=in_range)
        bag_d = tl.where((bag_d == s_d[:, None]) & (bag_i == s_i[:, None]), inf, bag_d)


def knn_topk_triton(x, y, x_len, y_len, K, *, block_n=None, block_m=None, block_d=None, num_warps=4):
    """K nearest valid points of ``y`` for every valid query of ``x`` (conventions: csrc/knn_topk.h).

    Args:
        x: contiguous [B, N, D] float32/float64, any D >= 1.
        y: contiguous [B, M, D], or [M, D] shared by the whole batch (no copy).
        x_len, y_len: int64 [B] valid lengths (the caller validates them).
        K: neighbours per query (>= 1).
        block_n, block_m, block_d: tile sizes (powers of two; None: defaults by D and K). Tests pass
            small ones so that several blocks and a partial last block are exercised.

    Returns:
        (idx int64 [B, N, K], dist2 x.dtype [B, N, K]); -1 / 0 for padded queries and unfilled slots.
    """
    B, N, D = x.shape
    shared = y.dim() == 2
    M = y.shape[0] if shared else y.shape[1]
    block_d = block_d or min(triton.next_power_of_2(D), 16)
    block_n = block_n or 32
    block_m = block_m or max(16, min(64, 2048 // (block_n * block_d) * 16))
    idx = torch.empty((B, N, K), dtype=torch.int64, device=x.device)
    dist2 = torch.empty((B, N, K), dtype=x.dtype, device=x.device)
    if B == 0 or N == 0:
        return idx, dist2
    grid = (triton.cdiv(N, block_n), B)
    _knn_topk_kernel[grid](
        x, y, x_len, y_len, idx, dist2, N, M, 0 if shared else M * D,
        D=D, K=K, KP=triton.next_power_of_2(K), BLOCK_N=block_n, BLOCK_M=block_m, BLOCK_D=block_d,
        num_warps=num_warps,
    )
    return idx, dist2
