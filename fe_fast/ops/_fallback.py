"""Pure-torch fallbacks of the compiled CPU kernels, run when ``fe_fast._C`` is missing (a failed
build, or ``FE_FAST_DISABLE_EXT=1``); ``fe_fast._ext.cpu_or_none`` warns once per process.

Same contracts as the C++ kernels (``csrc/knn.h``, ``csrc/s_grad_reduce.h``), slower and using
more memory; the modulated convolution falls back to its own "torch" backend instead.
"""
from __future__ import annotations

import torch

_CHUNK_ELEMS = 1 << 24  # bound on the [B, chunk, M] distance block of knn_idx (64 MiB in float32)


def knn_idx(x: torch.Tensor, y: torch.Tensor, x_len: torch.Tensor, y_len: torch.Tensor) -> torch.Tensor:
    """Index of the nearest valid y for every valid x (thesis eq. 3-9's min over Y), -1 for padded
    queries; x [B, N, D], y [B, M, D] or [M, D] (shared). Squared distances by direct differences,
    in blocks of queries; among equal distances the smallest index (like the kernels)."""
    B, N, D = x.shape
    M = y.shape[-2]
    yb = y.unsqueeze(0) if y.dim() == 2 else y  # [1 or B, M, D], broadcast
    y_pad = torch.arange(M, device=x.device)[None, None, :] >= y_len[:, None, None]  # [B, 1, M]
    idx = torch.empty((B, N), dtype=torch.int64, device=x.device)
    step = max(1, _CHUNK_ELEMS // max(1, B * M * D))
    for i in range(0, N, step):
        xc = x[:, i:i + step]
        d = ((xc[:, :, None, :] - yb[:, None, :, :]) ** 2).sum(-1)  # [B, c, M]
        idx[:, i:i + step] = d.masked_fill_(y_pad, float("inf")).argmin(-1)
    x_pad = torch.arange(N, device=x.device)[None, :] >= x_len[:, None]
    return idx.masked_fill_(x_pad, -1)


def s_grad_reduce(g: torch.Tensor, offsets: torch.Tensor, mask: torch.Tensor, k: int):
    """(mean [C], mean_abs [C], layer [L], topk_idx [L, k], topk_val [L, k]) of thesis eq. 6-5 /
    6-6 as in csrc/s_grad_reduce.h: sums in float64, top-k by decreasing |mean| with ties to the
    smaller channel index."""
    gp = g[mask].double()
    mean64 = gp.mean(0)
    mean_abs64 = gp.abs().mean(0)
    off = [int(o) for o in offsets.tolist()]
    L = len(off) - 1
    sizes = torch.tensor([off[i + 1] - off[i] for i in range(L)], device=g.device)
    seg = torch.repeat_interleave(torch.arange(L, device=g.device), sizes)
    mean_abs = mean_abs64.to(g.dtype)  # the layer response averages the rounded values, as the kernel does
    layer = torch.zeros(L, dtype=torch.float64, device=g.device).index_add_(0, seg, mean_abs.double()) / sizes
    mean = mean64.to(g.dtype)
    idx = torch.empty((L, k), dtype=torch.int64, device=g.device)
    for l in range(L):
        idx[l] = torch.sort(mean[off[l]:off[l + 1]].abs(), descending=True, stable=True).indices[:k]
    val = mean[idx + torch.tensor(off[:-1], device=g.device)[:, None]]
    return mean, mean_abs, layer.to(g.dtype), idx, val
