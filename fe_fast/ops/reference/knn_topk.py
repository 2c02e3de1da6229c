"""Reference K nearest neighbours (``fe_fast.ops.knn_topk`` conventions): the dense distance
matrix from coordinate differences, then a stable sort of each row (ties: lower index first)."""
from __future__ import annotations

import torch


def knn_topk_reference(x, y, K, x_len=None, y_len=None):
    """(dists [B, N, K], idx [B, N, K]); padded queries and slots past y_len[b]: (0, -1).
    y [M, D] is shared by the batch."""
    B, N, _ = x.shape
    if y.dim() == 2:
        y = y.unsqueeze(0).expand(B, -1, -1)
    M = y.shape[1]
    x_len = torch.full((B,), N) if x_len is None else torch.as_tensor(x_len).cpu()
    y_len = torch.full((B,), M) if y_len is None else torch.as_tensor(y_len).cpu()
    dists = torch.zeros((B, N, K), dtype=x.dtype, device=x.device)
    idx = torch.full((B, N, K), -1, dtype=torch.int64, device=x.device)
    for b in range(B):
        n, m = int(x_len[b]), int(y_len[b])
        d = ((x[b, :n, None, :] - y[b, None, :m, :]) ** 2).sum(-1)  # [n, m]
        s, i = torch.sort(d, dim=1, stable=True)
        k = min(K, m)
        dists[b, :n, :k] = s[:, :k]
        idx[b, :n, :k] = i[:, :k]
    return dists, idx
