"""Registration metrics (thesis §3.3.1): rotation error (eq. 3-13, degrees), translation error
(L2), MSE (eq. 3-14) and its root, and recall (rotation error < 5 degrees and translation error
< 5 % of the target's bounding-box diagonal).

Transforms map the source P onto the target Q (``Q ~ R P + t``). Every function accepts torch
tensors or numpy arrays, single items or batches, and returns numpy values (float64)."""
from __future__ import annotations

from typing import Dict, Optional

import numpy as np

__all__ = [
    "rotation_error",
    "translation_error",
    "mse",
    "rmse",
    "bbox_diagonal",
    "recall",
    "evaluate",
    "summarize",
]

RECALL_ROT_DEG = 5.0
RECALL_TRANS_FRAC = 0.05


def _np(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def _split(T):
    T = _np(T)
    if T.shape[-2:] != (4, 4):
        raise ValueError(f"transform must be [..., 4, 4], got {T.shape}")
    return T[..., :3, :3], T[..., :3, 3]


def rotation_error(R_pred, R_gt):
    """Eq. 3-13: ``180/pi * arccos((trace(R_pred R_gt^T) - 1) / 2)`` in degrees (argument clipped to
    [-1, 1] against rounding). Accepts [..., 3, 3]."""
    R_pred, R_gt = _np(R_pred), _np(R_gt)
    tr = np.einsum("...ij,...ij->...", R_pred, R_gt)  # trace(A B^T)
    return np.degrees(np.arccos(np.clip((tr - 1.0) / 2.0, -1.0, 1.0)))


def translation_error(t_pred, t_gt):
    """L2 distance ``|t_pred - t_gt|`` ([..., 3])."""
    return np.linalg.norm(_np(t_pred) - _np(t_gt), axis=-1)


def mse(points, T_pred, T_gt):
    """Eq. 3-14: ``1/N sum_i |T_pred(p_i) - T_gt(p_i)|^2`` over the source points p_i [N, 3]
    (T: 4x4, or batches [..., 4, 4] with points [..., N, 3])."""
    p = _np(points)
    Rp, tp = _split(T_pred)
    Rg, tg = _split(T_gt)
    diff = p @ np.swapaxes(Rp - Rg, -1, -2) + (tp - tg)[..., None, :]
    return np.mean(np.sum(diff * diff, axis=-1), axis=-1)


def rmse(points, T_pred, T_gt):
    """Square root of :func:`mse`."""
    return np.sqrt(mse(points, T_pred, T_gt))


def bbox_diagonal(points):
    """Length of the axis-aligned bounding-box diagonal of points [N, 3]."""
    p = _np(points)
    return float(np.linalg.norm(p.max(0) - p.min(0)))


def recall(rot_err, trans_err, diag, rot_thresh: float = RECALL_ROT_DEG, trans_frac: float = RECALL_TRANS_FRAC):
    """Share of pairs with ``rot_err < rot_thresh`` degrees and ``trans_err < trans_frac * diag``
    (``diag``: each pair's target bounding-box diagonal, scalar or per pair)."""
    r = _np(rot_err).reshape(-1)
    t = _np(trans_err).reshape(-1)
    d = np.broadcast_to(_np(diag).reshape(-1) if np.ndim(diag) else _np(diag), r.shape)
    if r.size == 0:
        return float("nan")
    return float(np.mean((r < rot_thresh) & (t < trans_frac * d)))


def evaluate(T_pred, T_gt, P, Q=None) -> Dict[str, float]:
    """All metrics of one pair: ``rot_err`` (deg), ``trans_err``, ``mse``, ``rmse``, ``success``
    (the recall criterion; needs the target Q for its bbox diagonal, else P's)."""
    Rp, tp = _split(T_pred)
    Rg, tg = _split(T_gt)
    re = float(rotation_error(Rp, Rg))
    te = float(translation_error(tp, tg))
    m = float(mse(P, T_pred, T_gt))
    diag = bbox_diagonal(Q if Q is not None else P)
    return {
        "rot_err": re,
        "trans_err": te,
        "mse": m,
        "rmse": float(np.sqrt(m)),
        "diag": diag,
        "success": bool(re < RECALL_ROT_DEG and te < RECALL_TRANS_FRAC * diag),
    }


def summarize(rows, seconds: Optional[list] = None) -> Dict[str, float]:
    """Table 3-1 row from per-pair :func:`evaluate` dicts: means of rot_err / trans_err / mse /
    rmse, recall, and the median of ``seconds`` when given."""
    if not rows:
        return {"pairs": 0}
    out = {k: float(np.mean([r[k] for r in rows])) for k in ("rot_err", "trans_err", "mse", "rmse")}
    out["recall"] = float(np.mean([r["success"] for r in rows]))
    out["pairs"] = len(rows)
    if seconds:
        out["median_s"] = float(np.median(seconds))
    return out
