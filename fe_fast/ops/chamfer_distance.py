"""Chamfer distance with PyTorch3D's ``chamfer_distance`` signature and return value.

Code written for ``pytorch3d.loss.chamfer_distance`` runs by changing the import. The distance is
the one of thesis eq. 3-10 (without projection) with PyTorch3D's options; the thesis' own forms,
``chamfer`` / ``local_chamfer`` (eq. 3-9) / ``projected_chamfer``, stay in ``fe_fast.ops.chamfer``.

Conventions followed (each one tested against a brute-force reference in
``tests/ops/test_chamfer_distance.py``):

- For every valid x_i its nearest valid y_j: ``norm=2`` squared Euclidean distance
  |x_i - y_j|^2, ``norm=1`` the L1 distance sum_c |x_ic - y_jc| (not squared); among equal
  distances the lower index j (the neighbour only matters for the normal term).
- Normal term (only when both ``x_normals`` and ``y_normals`` are given): 1 - cos(n_x_i, n_y_j)
  at that neighbour, with ``abs_cosine=True`` 1 - |cos| (orientation-free); cosine with
  ``torch.nn.functional.cosine_similarity(..., eps=1e-6)`` as PyTorch3D.
- Padded points (i >= x_lengths[b]) contribute 0; ``weights`` [B] (>= 0) multiply each batch
  element's per-point terms.
- ``point_reduction``: "sum" over points, "mean" = sum / x_lengths[b], "max" = max over points
  (not allowed with normals), None = per-point [B, N] terms. Both directions (x->y and y->x)
  are summed ("max": their maximum), or, with ``point_reduction=None``, returned as a tuple
  ``(x->y, y->x)``; ``single_directional=True`` returns x->y only.
- ``batch_reduction``: None ([B]), "sum", "mean" = sum / B, or sum / weights.sum() when weights are
  given (all-zero weights: divided by 1). ``batch_reduction`` must be None when
  ``point_reduction`` is None.
- Returns ``(loss, loss_normals)``; ``loss_normals`` is None without normals.

Differences from PyTorch3D, all deliberate: ``Pointclouds`` objects are not accepted (tensors
only); y may also be a single [M, D] cloud shared by the batch; passing only one of the two normal
tensors raises instead of silently skipping the normal term; all-zero weights give zero losses with
the normal shapes (PyTorch3D returns a [B, B] zero tensor there); lengths must be >= 1.

Nearest neighbours come from ``fe_fast.ops.knn`` (D in {2, 3}: the K = 1 kd-tree / Triton path) or
``fe_fast.ops.knn_topk`` with K = 1 (any other D); distances are recomputed in torch, so the loss
is differentiable in both clouds (and the normals) with exact gradients.
"""
from __future__ import annotations

from typing import Optional, Union

import torch
import torch.nn.functional as F

from fe_fast.ops._validation import check_float, check_nonnegative, check_tensor, valid_mask

POINT_REDUCTIONS = ("mean", "sum", "max", None)
BATCH_REDUCTIONS = ("mean", "sum", None)


def _check_options(batch_reduction, point_reduction, norm, has_normals):
    if batch_reduction not in BATCH_REDUCTIONS:
        raise ValueError(f"batch_reduction must be 'mean', 'sum' or None, got {batch_reduction!r}")
    if point_reduction not in POINT_REDUCTIONS:
        raise ValueError(f"point_reduction must be 'mean', 'sum', 'max' or None, got {point_reduction!r}")
    if point_reduction is None and batch_reduction is not None:
        raise ValueError("batch_reduction must be None when point_reduction is None")
    if point_reduction == "max" and has_normals:
        raise ValueError("point_reduction='max' does not support normals (x_normals / y_normals)")
    if isinstance(norm, bool) or norm not in (1, 2):
        raise ValueError(f"norm must be 1 or 2, got {norm!r}")


def _check_like(name, t, points):
    check_tensor(name, t)
    if t.shape != points.shape:
        raise ValueError(f"{name} must have the shape of its points {list(points.shape)}, got {list(t.shape)}")
    check_float(name, t)
    if t.dtype != points.dtype or t.device != points.device:
        raise ValueError(f"{name} must have the dtype and device of its points")


def _nearest_l1_impl(x, y, x_len, y_len, padded, names, block=1024, checked=False):
    """The implementation of ``nearest_l1`` (below); ``checked``: the data-dependent checks ran."""
    from fe_fast.ops.knn import _check_values

    B, N, _ = x.shape
    M = y.shape[1]
    if not checked:
        _check_values(x, y, x_len, y_len, padded, names)
    idx = torch.full((B, N), -1, dtype=torch.int64, device=x.device)
    ym = valid_mask(y_len, M)
    for b in range(B):
        n = int(x_len[b])
        for i0 in range(0, n, block):
            i1 = min(i0 + block, n)
            d = torch.cdist(x[b, i0:i1], y[b], p=1).masked_fill(~ym[b], float("inf"))
            idx[b, i0:i1] = d.argmin(1)  # the first minimum: the lowest index
    return idx


@torch.library.custom_op("fe_fast::nearest_l1", mutates_args=())
def nearest_l1(x: torch.Tensor, y: torch.Tensor, x_len: torch.Tensor, y_len: torch.Tensor, padded: bool,
               names: str = "x,y") -> torch.Tensor:
    """idx [B, N] of the L1-nearest valid y[b] (lowest index among ties) for each valid x[b], -1
    for padded x, as a PyTorch operator (x [B, N, D], y [B, M, D], lengths int64 [B]). The
    data-dependent checks (lengths in range, finite valid points) run here, as in ``knn_search``."""
    return _nearest_l1_impl(x, y, x_len, y_len, padded, names)


@nearest_l1.register_fake
def _nearest_l1_fake(x, y, x_len, y_len, padded, names="x,y"):
    return x.new_empty(x.shape[:2], dtype=torch.int64)


def _nearest(x, y, x_len, y_len, padded, names, checked, norm, backend):
    """Index [B, N] of each valid x's nearest valid y (-1 for padding), through a registered op;
    no autograd. ``checked``: ``prepare_topk`` ran the data-dependent checks (eager); under
    torch.compile the op runs them."""
    if norm == 1:
        if torch.compiler.is_compiling():
            return nearest_l1(x.detach(), y.detach(), x_len, y_len, padded, names)
        return _nearest_l1_impl(x.detach(), y.detach(), x_len, y_len, padded, names, checked=checked)
    D = x.shape[-1]
    if D in (2, 3):
        from fe_fast.ops.knn import _Clouds, _search

        idx, _ = _search(_Clouds(x, y, False, x_len, y_len, padded, names, checked), None, backend)
        return idx
    from fe_fast.ops.knn_topk import _TopKClouds, search_topk

    return search_topk(_TopKClouds(x, y, False, x_len, y_len, padded, names, checked), 1, backend)[0][..., 0]


def _gather(t, idx):
    """t [B, M, C] at idx [B, N] (-1 -> row 0, masked by the caller) -> [B, N, C]."""
    return torch.gather(t, 1, idx.clamp_min(0).unsqueeze(-1).expand(-1, -1, t.shape[-1]))


def _direction(x, y, x_len, y_len, padded, names, checked, xn, yn, weights, point_reduction, norm, abs_cosine, backend):
    """One direction x -> y: (distance term, normal term or None), reduced over points."""
    B, N, _ = x.shape
    idx = _nearest(x, y, x_len, y_len, padded, names, checked, norm, backend)
    valid = idx >= 0
    zero = torch.zeros((), dtype=x.dtype, device=x.device)
    xs = torch.where(valid.unsqueeze(-1), x, zero)  # padding may hold NaN
    diff = xs - _gather(y, idx)
    d = (diff.abs().sum(-1) if norm == 1 else (diff * diff).sum(-1)) * valid
    dn = None
    if xn is not None:
        cos = F.cosine_similarity(torch.where(valid.unsqueeze(-1), xn, zero), _gather(yn, idx), dim=2, eps=1e-6)
        dn = (1 - (cos.abs() if abs_cosine else cos)) * valid
    if weights is not None:
        w = weights.view(B, 1)
        d = d * w
        dn = None if dn is None else dn * w
    if point_reduction is None:
        return d, dn
    if point_reduction == "max":
        return d.max(1).values, None
    d = d.sum(1)
    dn = None if dn is None else dn.sum(1)
    if point_reduction == "mean":
        n = x_len.clamp_min(1).to(d.dtype)
        d = d / n
        dn = None if dn is None else dn / n
    return d, dn


def chamfer_distance(
    x: torch.Tensor,
    y: torch.Tensor,
    x_lengths: Optional[torch.Tensor] = None,
    y_lengths: Optional[torch.Tensor] = None,
    x_normals: Optional[torch.Tensor] = None,
    y_normals: Optional[torch.Tensor] = None,
    weights: Optional[torch.Tensor] = None,
    batch_reduction: Optional[str] = "mean",
    point_reduction: Optional[str] = "mean",
    norm: int = 2,
    single_directional: bool = False,
    abs_cosine: bool = True,
    *,
    backend: Optional[str] = None,
):
    """Chamfer distance between two batches of point clouds, as ``pytorch3d.loss.chamfer_distance``
    (conventions in the module docstring; thesis eq. 3-10 without projection).

    Args:
        x: [B, N, D] float32/float64 (any D >= 1).
        y: [B, M, D], or [M, D] shared by the batch.
        x_lengths, y_lengths: optional int [B] valid lengths of ragged batches.
        x_normals, y_normals: optional normals with the shapes of x and y (both or neither).
        weights: optional [B] non-negative weights of the batch elements.
        batch_reduction: "mean" (default), "sum" or None.
        point_reduction: "mean" (default), "sum", "max" or None.
        norm: 2 (squared L2, default) or 1 (L1).
        single_directional: only the x -> y term.
        abs_cosine: normal term 1 - |cos| (default) or 1 - cos.
        backend: None (by device), "cpu" or "triton" (the nearest-neighbour backend).

    Returns:
        (loss, loss_normals): tensors (a 0-d tensor with a batch reduction, [B] without, [B, N]
        per point), or with ``point_reduction=None`` and both directions, tuples (x->y, y->x);
        ``loss_normals`` is None without normals.
    """
    from fe_fast.ops.knn_topk import prepare_topk

    has_normals = x_normals is not None or y_normals is not None
    _check_options(batch_reduction, point_reduction, norm, has_normals)
    if (x_normals is None) != (y_normals is None):
        raise ValueError("x_normals and y_normals must be given together (or neither)")
    c = prepare_topk(x, y, x_lengths, y_lengths)
    xc, yc = c.x, c.y
    B, N, D = xc.shape
    if c.shared:
        yc = yc.unsqueeze(0).expand(B, -1, -1).contiguous()
    if has_normals:
        _check_like("x_normals", x_normals, x)
        ynp = y_normals
        _check_like("y_normals", y_normals, y)
        if c.shared:
            ynp = y_normals.unsqueeze(0).expand(B, -1, -1)
        x_normals, y_normals = x_normals.contiguous(), ynp.contiguous()
    if weights is not None:
        check_tensor("weights", weights)
        if weights.dim() != 1 or weights.shape[0] != B:
            raise ValueError(f"weights must have shape [{B}], got {list(weights.shape)}")
        check_float("weights", weights)
        if weights.device != xc.device:
            raise ValueError(f"weights is on {weights.device}, the points on {xc.device}")
        weights = check_nonnegative("weights", weights).to(xc.dtype)  # under compile: in an op

    args = (point_reduction, norm, abs_cosine, backend)
    cx, nx = _direction(xc, yc, c.x_len, c.y_len, c.padded, "x,y", c.checked, x_normals, y_normals, weights, *args)
    if single_directional:
        loss, loss_n = cx, nx
    else:
        cy, ny = _direction(yc, xc, c.y_len, c.x_len, c.padded, "y,x", c.checked, y_normals, x_normals, weights, *args)
        if point_reduction is None:
            return (cx, cy), ((nx, ny) if has_normals else None)
        if point_reduction == "max":
            loss, loss_n = torch.maximum(cx, cy), None
        else:
            loss = cx + cy
            loss_n = nx + ny if has_normals else None
    if batch_reduction is None:
        return loss, loss_n
    loss = loss.sum()
    loss_n = None if loss_n is None else loss_n.sum()
    if batch_reduction == "mean":
        if weights is None:
            div: Union[int, torch.Tensor] = B
        else:
            ws = weights.sum()
            div = torch.where(ws == 0, torch.ones_like(ws), ws)
        loss = loss / div
        loss_n = None if loss_n is None else loss_n / div
    return loss, loss_n


__all__ = ["chamfer_distance"]
