"""Triton nearest neighbour with fused top-k selection (contract in ``csrc/knn.h``).

Used by ``fe_fast.ops.knn`` for CUDA tensors; also runs on CPU tensors under
``TRITON_INTERPRET=1`` (how CI tests it). Thesis eq. 3-9 / 3-10: the nearest-neighbour distances
of Chamfer and local Chamfer, and the set P_alpha of the ceil(alpha |X|) queries with the smallest
distance (``sel``).

Design
------
* ``_knn_kernel``: 2D grid (query blocks, batch). Each program holds BLOCK_N queries and streams the
  valid reference points of its batch element in blocks of BLOCK_M. It keeps an element-wise running
  minimum over a [BLOCK_N, BLOCK_M] register tile (lane j of the tile only ever sees reference
  indices congruent to j mod BLOCK_M, in increasing order, and updates on strict ``<``), so the inner
  loop has no cross-lane reduction; one min + index reduction at the end picks the smallest distance
  and, among equal distances, the smallest index (the same answer as a serial scan with ``<``).
* ``_select_kernel``: one program per batch element. The k-th smallest distance is found by a radix
  search on the float bits (non-negative IEEE floats order like their bit patterns read as signed
  integers): RADIX_BITS bits per pass, each pass counting, for every digit value at once, how many
  valid keys fall at or below it (``tl.sum`` over a [BLOCK, 2**RADIX_BITS] comparison). Then a final
  ordered pass selects every key below the threshold plus the first ``k - count_below`` keys equal to
  it in index order (running ``tl.cumsum``), so exactly ``min(k, x_len)`` queries are selected. No sort.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

__all__ = ["knn_triton"]


@triton.jit
def _knn_kernel(
    x_ptr, y_ptr, x_len_ptr, y_len_ptr, idx_ptr, dist_ptr,
    N, M, y_batch_stride,
    D: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_M: tl.constexpr,
):
    pid_n = tl.program_id(0)
    b = tl.program_id(1).to(tl.int64)
    xl = tl.load(x_len_ptr + b)
    yl = tl.load(y_len_ptr + b)

    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    q_valid = offs_n < xl
    in_range = offs_n < N
    x_base = x_ptr + b * N * D + offs_n.to(tl.int64) * D
    qx = tl.load(x_base + 0, mask=q_valid, other=0.0)
    qy = tl.load(x_base + 1, mask=q_valid, other=0.0)
    if D == 3:
        qz = tl.load(x_base + 2, mask=q_valid, other=0.0)

    # Query blocks with no valid query skip the scan (uniform per program: no divergence).
    y_end = tl.where(pid_n * BLOCK_N < xl, yl, 0)
    y_base = y_ptr + b * y_batch_stride

    best = tl.full([BLOCK_N, BLOCK_M], float("inf"), qx.dtype)
    arg = tl.zeros([BLOCK_N, BLOCK_M], tl.int32)
    offs_m0 = tl.arange(0, BLOCK_M)
    for start in range(0, y_end, BLOCK_M):
        offs_m = start + offs_m0
        m_valid = offs_m < y_end
        yp = y_base + offs_m.to(tl.int64) * D
        # Padded references load as +inf: their distance is +inf and never wins (no extra select).
        ry = tl.load(yp + 0, mask=m_valid, other=float("inf"))
        dx = qx[:, None] - ry[None, :]
        d = dx * dx
        ry = tl.load(yp + 1, mask=m_valid, other=float("inf"))
        dy = qy[:, None] - ry[None, :]
        d = d + dy * dy
        if D == 3:
            ry = tl.load(yp + 2, mask=m_valid, other=float("inf"))
            dz = qz[:, None] - ry[None, :]
            d = d + dz * dz
        better = d < best
        best = tl.where(better, d, best)
        arg = tl.where(better, offs_m.to(tl.int32)[None, :], arg)

    dmin = tl.min(best, axis=1)
    big = 2147483647
    amin = tl.min(tl.where(best == dmin[:, None], arg, big), axis=1)
    out_idx = tl.where(q_valid, amin.to(tl.int64), -1)
    out_d = tl.where(q_valid, dmin, 0.0)
    o = b * N + offs_n
    tl.store(idx_ptr + o, out_idx, mask=in_range)
    tl.store(dist_ptr + o, out_d.to(dist_ptr.dtype.element_ty), mask=in_range)


@triton.jit
def _select_kernel(
    dist_ptr, x_len_ptr, k_ptr, sel_ptr, N,
    KEY_BITS: tl.constexpr, RADIX_BITS: tl.constexpr, BLOCK: tl.constexpr,
):
    b = tl.program_id(0).to(tl.int64)
    n = tl.load(x_len_ptr + b)
    kb = tl.load(k_ptr + b)
    kb = tl.minimum(tl.maximum(kb, 0), n)
    if KEY_BITS == 32:
        key_ty = tl.int32
    else:
        key_ty = tl.int64
    row = dist_ptr + b * N
    offs0 = tl.arange(0, BLOCK)
    RADIX: tl.constexpr = 1 << RADIX_BITS
    digits = tl.arange(0, RADIX)

    # Radix search for t = the kb-th smallest key: invariant t >> shift == prefix >> shift after
    # the pass at `shift`. Counting all keys with (key >> shift) <= (prefix >> shift) + digit keeps
    # every intermediate value in range (keys are non-negative, top bit 0).
    prefix = tl.zeros([], key_ty)
    for p in tl.static_range(KEY_BITS // RADIX_BITS):
        shift = KEY_BITS - RADIX_BITS * (p + 1)
        base = prefix >> shift
        counts = tl.zeros([RADIX], tl.int32)
        for start in range(0, n, BLOCK):
            offs = start + offs0
            valid = offs < n
            key = tl.load(row + offs, mask=valid, other=0.0).to(key_ty, bitcast=True)
            hit = ((key >> shift)[:, None] <= (base + digits)[None, :]) & valid[:, None]
            counts += tl.sum(hit.to(tl.int32), axis=0)
        # Smallest digit whose count reaches kb == number of digits whose count stays below kb.
        dsel = tl.sum((counts < kb).to(key_ty), axis=0)
        prefix = prefix + (dsel << shift)
    thresh = prefix

    # Ordered pass: keys below the threshold, then the first (kb - below) keys equal to it.
    below = tl.zeros([], tl.int64)
    for start in range(0, n, BLOCK):
        offs = start + offs0
        valid = offs < n
        key = tl.load(row + offs, mask=valid, other=0.0).to(key_ty, bitcast=True)
        below += tl.sum((valid & (key < thresh)).to(tl.int64), axis=0)
    need = kb - below
    seen = tl.zeros([], tl.int64)
    for start in range(0, N, BLOCK):
        offs = start + offs0
        in_range = offs < N
        valid = offs < n
        key = tl.load(row + offs, mask=valid, other=0.0).to(key_ty, bitcast=True)
        eq = (valid & (key == thresh)).to(tl.int64)
        rank = seen + tl.cumsum(eq, axis=0)  # 1-based rank among equal keys so far
        chosen = valid & ((key < thresh) | ((eq != 0) & (rank <= need))) & (kb > 0)
        tl.store(sel_ptr + b * N + offs, chosen.to(tl.uint8), mask=in_range)
        seen += tl.sum(eq, axis=0)


# Default nearest-neighbour tiles (BLOCK_N, BLOCK_M, num_warps): 16 (float32) / 8 (float64) tile
# elements per thread keep the running min/argmin in registers without spills (checked with
# cuobjdump for sm_90: 110 / 115 registers, no stack). Not yet tuned on a GPU.
_DEFAULT_TILES = {torch.float32: (64, 64, 8), torch.float64: (64, 32, 8)}


def knn_triton(x, y, x_len, y_len, k=None, *, block_n=None, block_m=None, num_warps=None,
               select_block=None, radix_bits=4, select_warps=None):
    """Nearest neighbour of every valid query of ``x`` in ``y`` (contract in ``csrc/knn.h``).

    Args:
        x: contiguous [B, N, D] float32/float64 queries, D in {2, 3}.
        y: contiguous [B, M, D] references, or [M, D] shared by the whole batch (no copy).
        x_len, y_len: int64 [B] valid lengths (``1 <= y_len[b] <= M``; the caller validates).
        k: int64 [B] or None: select the min(k[b], x_len[b]) queries with the smallest distance
            (thesis eq. 3-9; ties broken by query index).
        block_n, block_m, num_warps: nearest-neighbour tile (powers of two; None: per-dtype
            default); select_block, radix_bits, select_warps: selection tile (None: by N;
            radix_bits must divide 32). Tests pass small values.

    Returns:
        (idx int64 [B, N] (-1 for padded queries), dist2 x.dtype [B, N] (0 for padded),
        sel torch.bool [B, N] or None when k is None).
    """
    B, N, D = x.shape
    tile = _DEFAULT_TILES.get(x.dtype, (64, 32, 8))
    block_n = block_n or tile[0]
    block_m = block_m or tile[1]
    num_warps = num_warps or tile[2]
    # Selection: one program per batch element streams its row once per radix pass; wider blocks
    # for long rows (B = 1, N = 1e5 is a single program).
    select_block = select_block or min(1024, max(128, triton.next_power_of_2(max(N, 1))))
    select_warps = select_warps or (8 if select_block >= 1024 else 4)
    shared = y.dim() == 2
    M = y.shape[0] if shared else y.shape[1]
    idx = torch.empty((B, N), dtype=torch.int64, device=x.device)
    dist2 = torch.empty((B, N), dtype=x.dtype, device=x.device)
    sel = None if k is None else torch.empty((B, N), dtype=torch.uint8, device=x.device)
    if B == 0 or N == 0:
        return idx, dist2, (None if sel is None else sel.view(torch.bool))
    if 32 % radix_bits:
        raise ValueError(f"radix_bits must divide 32, got {radix_bits}")
    grid = (triton.cdiv(N, block_n), B)
    _knn_kernel[grid](
        x, y, x_len, y_len, idx, dist2, N, M, 0 if shared else M * D,
        D=D, BLOCK_N=block_n, BLOCK_M=block_m, num_warps=num_warps,
    )
    if sel is None:
        return idx, dist2, None
    _select_kernel[(B,)](
        dist2, x_len, k, sel, N,
        KEY_BITS=64 if x.dtype == torch.float64 else 32, RADIX_BITS=radix_bits,
        BLOCK=select_block, num_warps=select_warps,
    )
    return idx, dist2, sel.view(torch.bool)
