"""Plain-torch reference of :func:`fe_fast.ops.s_grad_reduce` (tests and benchmarks only).

This is the "equivalent eager torch code" the kernel is measured against: select the positives,
then per layer slice, abs, mean and topk (thesis eq. 6-5 / 6-6)."""
from __future__ import annotations

import torch


def s_grad_reduce_reference(grads: torch.Tensor, offsets, mask: torch.Tensor, k: int):
    """Returns (mean [C], mean_abs [C], layer [L], topk_idx [L, k] int64, topk_val [L, k]).

    Ties in the top-k are broken towards the smaller channel index (stable sort), as in the kernels."""
    offsets = [int(o) for o in offsets]
    g = grads[mask]
    mean = g.mean(0)
    mean_abs = g.abs().mean(0)
    L = len(offsets) - 1
    layer = torch.empty(L, dtype=grads.dtype, device=grads.device)
    idx = torch.empty((L, k), dtype=torch.int64, device=grads.device)
    val = torch.empty((L, k), dtype=grads.dtype, device=grads.device)
    for l in range(L):
        m = mean[offsets[l]:offsets[l + 1]]
        layer[l] = mean_abs[offsets[l]:offsets[l + 1]].mean()
        order = torch.sort(m.abs(), descending=True, stable=True).indices[:k]
        idx[l] = order
        val[l] = m[order]
    return mean, mean_abs, layer, idx, val


def s_grad_reduce_eager(grads: torch.Tensor, offsets, mask: torch.Tensor, k: int):
    """The same quantities written the plain eager way (per-layer slicing, abs, mean, topk): the
    peer the fused kernel is timed against. ``torch.topk`` does not promise an order among ties."""
    offsets = [int(o) for o in offsets]
    means, abss, layer, idx, val = [], [], [], [], []
    for l in range(len(offsets) - 1):
        gl = grads[:, offsets[l]:offsets[l + 1]][mask]
        m = gl.mean(0)
        a = gl.abs().mean(0)
        means.append(m)
        abss.append(a)
        layer.append(a.mean())
        v, i = m.abs().topk(k)
        idx.append(i)
        val.append(m[i])
    return torch.cat(means), torch.cat(abss), torch.stack(layer), torch.stack(idx), torch.stack(val)
