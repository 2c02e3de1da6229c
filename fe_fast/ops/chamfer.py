"""Chamfer distances of thesis ch. 3, built on the nearest-neighbour kernel (``fe_fast.ops.knn``).

All three return one value per batch element and are differentiable in both clouds.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch

from fe_fast.ops._validation import PLANES, check_alpha, check_planes
from fe_fast.ops.knn import _Clouds, _search, gather_dist2, prepare, select_counts


def _reverse(c: _Clouds) -> _Clouds:
    """Swap roles: y becomes the query cloud (a shared y is expanded), x the reference."""
    B, _, D = c.x.shape
    yq = c.y.unsqueeze(0).expand(B, -1, -1).contiguous() if c.shared else c.y
    return c._replace(x=yq, y=c.x, shared=False, x_len=c.y_len, y_len=c.x_len,
                      names=",".join(reversed(c.names.split(","))))


def _mean_nn(c: _Clouds, alpha: Optional[float], backend) -> torch.Tensor:
    """Mean over (selected) valid query points of the squared NN distance, per batch element."""
    if alpha is None:
        idx, _ = _search(c, None, backend)
        d = gather_dist2(c.x, c.y, idx, c.shared, c.padded)
        return d.sum(1) / c.x_len.to(d.dtype)
    k = select_counts(c.x_len, alpha)
    idx, sel = _search(c, k, backend)
    d = gather_dist2(c.x, c.y, idx, c.shared, c.padded)
    return (d * sel).sum(1) / k.to(d.dtype)


def _chamfer(c: _Clouds, alpha, backend) -> torch.Tensor:
    return _mean_nn(c, alpha, backend) + _mean_nn(_reverse(c), alpha, backend)


def chamfer(x, y, x_lengths=None, y_lengths=None, *, backend: Optional[str] = None) -> torch.Tensor:
    """Symmetric Chamfer distance in full 3D (the form of thesis eq. 3-10 without projection):

        CD(X, Y) = 1/|X| sum_x min_y |x - y|^2 + 1/|Y| sum_y min_x |y - x|^2

    x: [B, N, D]; y: [B, M, D] or [M, D] shared. Returns [B].
    """
    return _chamfer(prepare(x, y, x_lengths, y_lengths), None, backend)


def local_chamfer(x, y, alpha: float, x_lengths=None, y_lengths=None, *, backend: Optional[str] = None) -> torch.Tensor:
    """Local Chamfer distance, thesis eq. 3-9:

        CD_local(X, Y, alpha) = 1/|X_a| sum_{x in X_a} min_y |x - y|^2 + 1/|Y_a| sum_{y in Y_a} min_x |y - x|^2

    where X_a holds the ceil(alpha |X|) points of X with the smallest NN distance (likewise Y_a),
    so points outside the overlap of two partial scans do not pull the registration. 0 < alpha <= 1;
    alpha = 1 gives ``chamfer``. Returns [B].
    """
    alpha = check_alpha(alpha)
    return _chamfer(prepare(x, y, x_lengths, y_lengths), alpha, backend)


def projected_chamfer(x, y, planes: Sequence[str] = ("xy", "yz", "xz"), x_lengths=None, y_lengths=None,
                      *, backend: Optional[str] = None) -> torch.Tensor:
    """Chamfer distance of the clouds' orthographic projections, thesis eq. 3-10, per plane.

    x: [B, N, 3]; y: [B, M, 3] or [M, 3]. Returns [B, len(planes)], columns in ``planes`` order.
    """
    planes = check_planes(planes)
    c = prepare(x, y, x_lengths, y_lengths)
    if c.x.shape[-1] != 3:
        raise ValueError(f"projected_chamfer needs 3D points, got D={c.x.shape[-1]}")
    out = []
    for p in planes:
        cols = list(PLANES[p])
        cp = c._replace(x=c.x[..., cols].contiguous(), y=c.y[..., cols].contiguous())
        out.append(_chamfer(cp, None, backend))
    return torch.stack(out, dim=1)


__all__ = ["chamfer", "local_chamfer", "projected_chamfer"]
