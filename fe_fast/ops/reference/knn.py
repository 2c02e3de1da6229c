"""Reference nearest neighbour and Chamfer distances: dense torch.cdist, then min/argmin."""
from __future__ import annotations

import math

import torch


def _masks(B, N, M, x_len, y_len, device):
    x_len = torch.full((B,), N, device=device) if x_len is None else torch.as_tensor(x_len, device=device)
    y_len = torch.full((B,), M, device=device) if y_len is None else torch.as_tensor(y_len, device=device)
    xm = torch.arange(N, device=device)[None] < x_len[:, None]
    ym = torch.arange(M, device=device)[None] < y_len[:, None]
    return x_len, y_len, xm, ym


def knn_reference(x, y, x_len=None, y_len=None):
    """(dist2 [B,N], idx [B,N]); padded x -> (0, -1). y [M,D] is broadcast over the batch."""
    B, N, _ = x.shape
    if y.dim() == 2:
        y = y.unsqueeze(0).expand(B, -1, -1)
    M = y.shape[1]
    _, _, xm, ym = _masks(B, N, M, x_len, y_len, x.device)
    d = ((x[:, :, None, :] - y[:, None, :, :]) ** 2).sum(-1)
    d = d.masked_fill(~ym[:, None, :], float("inf"))
    dist2, idx = d.min(dim=2)
    return dist2.masked_fill(~xm, 0.0), idx.masked_fill(~xm, -1)


def select_reference(dist2, x_len, alpha):
    """Boolean [B,N]: the ceil(alpha*n_b) smallest valid entries of each row (stable sort)."""
    B, N = dist2.shape
    _, _, xm, _ = _masks(B, N, N, x_len, None, dist2.device)
    lens = xm.sum(1)
    k = [max(1, math.ceil(int(n) * alpha - 1e-9)) for n in lens]
    d = dist2.masked_fill(~xm, float("inf"))
    order = torch.argsort(d, dim=1, stable=True)
    sel = torch.zeros_like(xm)
    for b in range(B):
        sel[b, order[b, : k[b]]] = True
    return sel


def _directional(x, y, x_len, y_len, alpha=None):
    dist2, _ = knn_reference(x, y, x_len, y_len)
    B, N = dist2.shape
    _, _, xm, _ = _masks(B, N, N, x_len, None, x.device)
    sel = xm if alpha is None else select_reference(dist2, x_len, alpha)
    return (dist2 * sel).sum(1) / sel.sum(1).to(dist2.dtype)


def chamfer_reference(x, y, x_len=None, y_len=None, alpha=None):
    """Symmetric (local, when alpha is given) Chamfer distance per batch element (eq. 3-9/3-10)."""
    B = x.shape[0]
    if y.dim() == 2:
        y = y.unsqueeze(0).expand(B, -1, -1)
    return _directional(x, y, x_len, y_len, alpha) + _directional(y, x, y_len, x_len, alpha)


def projected_chamfer_reference(x, y, planes=("xy", "yz", "xz"), x_len=None, y_len=None):
    cols = {"xy": [0, 1], "yz": [1, 2], "xz": [0, 2]}
    return torch.stack(
        [chamfer_reference(x[..., cols[p]], y[..., cols[p]], x_len, y_len) for p in planes], dim=1
    )
