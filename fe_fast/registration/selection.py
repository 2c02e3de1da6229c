"""Choosing between a pose and its symmetric flips (beyond the thesis).

On partial scans of nearly symmetric objects the wrong answers of HOUV are often half-turn flips:
the source turned by about 180 degrees about an axis of the overlapping region, where many of its
points still lie near the target. Two things go wrong: the truth's basin is never visited (the flip
is HOUV's best group), and at low overlap a truncated point-distance score (HOUV's inlier score)
can rank a flip above the truth even when both are refined. This module makes the choice explicit:

* :func:`flip_candidates`: the hypothesis, its half-turns about the principal axes of the
  overlapping region and of the moved source (optionally about more axes spread evenly over a
  hemisphere), and its mirrored-symmetry candidates ``S_Q o T o S_P``
  (a reflection of the source about one of its own principal planes, then of the result about a
  principal plane of the overlapping region: two reflections make a rotation, which is the pose a
  mirror-symmetric object allows when the scan is itself nearly mirror-symmetric);
* :func:`refine_local`: a short trimmed, symmetric point-to-plane ICP (correspondences both ways
  within a shrinking radius, one Gauss-Newton step each), so that every candidate is compared at its
  own local optimum;
* :func:`selection_score`: the score, lower is better, ``C_PQ + C_QP + w_v (V_P + V_Q)``, where
  ``C_PQ`` averages over the points of P (moved by the pose) the cost

      c = 1                                              if d >= tau (no partner: outside the overlap)
      c = min(1, (e / tau_p)^2 + w_n (1 - |n . n'|))     otherwise

  and ``C_QP`` the same over Q against the moved P:

  - ``d``: the distance to the nearest point of the other cloud (the terms of the two-sided Chamfer
    distance of thesis eq. 3-9), here only an overlap gate at ``tau = tau_factor x`` the larger point
    spacing: instead of the fixed fraction alpha of eq. 3-9, the points counted are those with a
    partner, so the score restricts itself to the overlap whatever its size;
  - ``e``: the distance from the partner's tangent plane (along its normal), truncated at ``tau_p =
    plane_factor x`` the two clouds' combined surface roughness (:func:`roughness`, about the noise
    along the normal). Two independent samples of one surface are about half a point spacing apart
    even at the true pose, so the point distance ``d`` cannot tell the truth from a flip whose points
    land within a spacing of the surface; the plane distance can: at the truth it is noise, at a
    flip of a nearly symmetric object it is the (small) asymmetry. On 10 low-overlap (0.3-0.55) pairs
    of ``nearsym`` choosing objects the truth, refined, beat all of its refined flips on 5 with the
    truncated point distance alone (HOUV's inlier score at its tau of one spacing) and on 8 with this
    cost; on 30 such pairs (10 each of ``nearsym``, ``blob`` and ``sq``): 22, 28, and 30 of 30 with
    the free-space term added;
  - ``1 - |n . n'|``: the disagreement of the matched points' surface normals (from the K nearest
    neighbours' covariance, :func:`estimate_normals`; with both ``viewpoints`` oriented towards the
    sensors, then ``1 - n . n'``, so a surface seen from behind costs 1): a flip that lands points
    near the target's surface but tilted pays here;
  - ``V_P``, ``V_Q`` (only with ``viewpoints``): the share of each cloud that the other scan's
    sensor would have seen in free space, :func:`~fe_fast.registration.visibility.free_space_violation`
    (depth tolerance 3 point spacings, as in HOUV). A flip turns the source's back side towards the
    target's sensor, in front of the surface it recorded.

  The thesis's hybrid loss (eq. 3-11) selects by the local Chamfer (eq. 3-9, algorithm 3.1 line 10);
  this score replaces that choice, not the objective. Defaults (``tau_factor`` 2, ``plane_factor``
  2, ``normal_weight`` 2, ``visibility_weight`` 4 as HOUV's) were set on pairs of the choosing
  objects of :mod:`fe_fast.datasets.range_scans`, never on the held-out ones.
* :func:`refine_with_flips`: takes a :class:`~fe_fast.registration.houv.RegistrationResult`,
  refines the answer and each of its flip candidates locally and returns the best by the score
  (:func:`best_of_flips`: the same for any transforms, e.g. RANSAC's). Not used by any preset yet.

Distances come from :func:`fe_fast.ops.knn` (nearest neighbour); the K-nearest-neighbour search for
the normals is a small chunked ``torch.cdist`` here, because ``fe_fast.ops.knn`` returns one
neighbour; it can move to ``knn`` with K neighbours when that op takes K > 1.
"""
from __future__ import annotations

import dataclasses
import hashlib
import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import List, Optional, Tuple

import numpy as np
import torch

from fe_fast.registration.houv import RegistrationResult, _as_cloud, _spacing
from fe_fast.registration.visibility import depth_maps, free_space_violation

__all__ = [
    "SelectionScore",
    "estimate_normals",
    "roughness",
    "principal_axes",
    "flip_candidates",
    "refine_local",
    "selection_score",
    "best_of_flips",
    "refine_with_flips",
    "same_pose",
]

TAU_FACTOR = 2.0
PLANE_FACTOR = 2.0
NORMAL_WEIGHT = 2.0
VISIBILITY_WEIGHT = 4.0  # as HOUV's visibility_weight
NORMAL_K = 16
DISTINCT_DEG, DISTINCT_FRAC = 3.0, 0.01  # refine_with_flips: groups closer than this are one hypothesis
EXTRA_AXES = 16  # half-turns about 16 more axes in best_of_flips / refine_with_flips (flip_candidates)


def _cloud(x, name: str) -> torch.Tensor:
    return _as_cloud(x, name, None, torch.float64, min_points=3)


def _transforms(T, name: str = "transforms") -> torch.Tensor:
    T = torch.as_tensor(np.asarray(T, dtype=np.float64) if not torch.is_tensor(T) else T).to(torch.float64)
    if T.shape[-2:] != (4, 4):
        raise ValueError(f"{name} must be a 4x4 transform or [K, 4, 4], got {list(T.shape)}")
    if not bool(torch.isfinite(T).all()):
        raise ValueError(f"{name} contains NaN or infinite entries")
    return T.reshape(-1, 4, 4)


def _nn(x: torch.Tensor, y: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Nearest neighbour in y [M, 3] of each point of x [K, N, 3] (K clouds against one y)."""
    from fe_fast import ops

    r = ops.knn(x.to(torch.float32).contiguous(), y.to(torch.float32).contiguous())
    return r.dist2.to(torch.float64), r.idx


_NORMALS_CACHE: "OrderedDict[tuple, Tuple[torch.Tensor, float]]" = OrderedDict()
_NORMALS_CACHE_SIZE = 8


def _normals_roughness(x: torch.Tensor, k: int, viewpoint=None) -> Tuple[torch.Tensor, float]:
    """(normals, roughness) of a float64 cloud, remembered for the last few clouds (keyed by the
    coordinates' bytes): refine_local and selection_score of one pair need the same ones, and the
    neighbour search is a third of a 20-candidate refinement's time."""
    k = int(k)
    if k < 3:
        raise ValueError(f"k must be >= 3, got {k}")
    k = min(k, x.shape[0])
    vp = None if viewpoint is None else tuple(np.asarray(viewpoint, dtype=np.float64).reshape(3).tolist())
    key = (hashlib.sha1(x.detach().cpu().contiguous().numpy().tobytes()).hexdigest(), tuple(x.shape), k, vp)
    hit = _NORMALS_CACHE.get(key)
    if hit is None:
        hit = _normals_roughness_uncached(x, k, viewpoint)
        _NORMALS_CACHE[key] = hit
        while len(_NORMALS_CACHE) > _NORMALS_CACHE_SIZE:
            _NORMALS_CACHE.popitem(last=False)
    else:
        _NORMALS_CACHE.move_to_end(key)
    return hit[0].clone(), hit[1]


def _normals_roughness_uncached(x: torch.Tensor, k: int, viewpoint=None) -> Tuple[torch.Tensor, float]:
    idx = torch.cat([torch.cdist(x[i:i + 2048], x).topk(k, largest=False).indices
                     for i in range(0, x.shape[0], 2048)])
    nb = x[idx]  # [N, k, 3]
    nb = nb - nb.mean(1, keepdim=True)
    w, v = torch.linalg.eigh(nb.transpose(1, 2) @ nb)
    n = v[:, :, 0]
    if viewpoint is not None:
        vp = torch.as_tensor(np.asarray(viewpoint, dtype=np.float64)).reshape(3)
        n = torch.where(((vp - x) * n).sum(1, keepdim=True) < 0, -n, n)
    return n, float((w[:, 0] / k).clamp_min(0).sqrt().median())


def estimate_normals(x, k: int = NORMAL_K, viewpoint=None) -> torch.Tensor:
    """Unit surface normals [N, 3] of a cloud [N, 3]: the smallest-variance direction of each point's
    ``k`` nearest neighbours (itself included). Unoriented (sign arbitrary) unless ``viewpoint`` [3]
    is given, then each points towards it (a scan's surface faces its sensor)."""
    return _normals_roughness(_cloud(x, "x"), k, viewpoint)[0]


def roughness(x, k: int = NORMAL_K) -> float:
    """The cloud's surface roughness: the median over its points of the RMS distance of the ``k``
    nearest neighbours from their least-squares plane (about the noise along the surface normal,
    plus the curvature's share at that neighbourhood size)."""
    return _normals_roughness(_cloud(x, "x"), k)[1]


def principal_axes(x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Centroid [3] and principal axes [3, 3] (rows, largest variance first) of a cloud [N, 3]."""
    c = x.mean(0)
    w, v = torch.linalg.eigh((x - c).T @ (x - c))
    return c, v[:, torch.argsort(w, descending=True)].T


def _rigid(R: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    T = torch.eye(4, dtype=torch.float64)
    T[:3, :3], T[:3, 3] = R, t
    return T


def _about(M: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """The affine map ``x -> M (x - c) + c`` as 4x4."""
    return _rigid(M, c - M @ c)


def _angle_deg(Ra: torch.Tensor, Rb: torch.Tensor) -> float:
    return math.degrees(math.acos(max(-1.0, min(1.0, (float(torch.trace(Ra @ Rb.T)) - 1) / 2))))


def _overlap_region(Pm: torch.Tensor, Q: torch.Tensor, radius: float) -> torch.Tensor:
    d2, _ = _nn(Pm[None], Q)
    near = Pm[d2[0] < radius * radius]
    return near if near.shape[0] >= 10 else Pm


def _hemisphere_axes(n: int) -> torch.Tensor:
    """n unit axes spread evenly over a hemisphere (a spherical Fibonacci lattice on z >= 0; an axis
    and its opposite give the same half-turn)."""
    k = torch.arange(n, dtype=torch.float64) + 0.5
    z = 1 - k / n
    phi = k * math.pi * (3 - math.sqrt(5))
    r = (1 - z * z).clamp_min(0).sqrt()
    return torch.stack([r * torch.cos(phi), r * torch.sin(phi), z], 1)


def flip_candidates(P, Q, T, *, mirror: bool = True, extra_axes: int = 0, radius: Optional[float] = None,
                    min_angle: float = 10.0) -> Tuple[torch.Tensor, List[str]]:
    """Candidates ``[K, 4, 4]`` (float64, P onto Q) and their labels for the hypothesis ``T`` (4x4,
    P onto Q): ``T`` itself first (``"pose"``), then the half-turns ``H o T`` about the three principal
    axes of the overlapping region (``"half-turn overlap k"``: the moved source's points within
    ``radius`` of Q, default 3 ``tau``; the whole moved source when fewer than 10) through its
    centroid and about the three principal axes of the moved source through its centroid
    (``"half-turn source k"``), with ``extra_axes = n`` the half-turns about n more axes spread
    evenly over the hemisphere of the overlap's principal frame, through its centroid (``"half-turn
    axis k"``: a flip about an axis far from every principal axis is out of reach of the local
    refinement otherwise), and with ``mirror`` the nine ``S_Q,i o T o S_P,j`` (``"mirror i j"``;
    module docstring). Candidates whose rotation lies within ``min_angle`` degrees of an earlier
    one's (and whose translation is within ``radius``) are dropped."""
    P, Q = _cloud(P, "P"), _cloud(Q, "Q")
    T = _transforms(T, "T")
    if T.shape[0] != 1:
        raise ValueError(f"T must be one 4x4 transform, got {T.shape[0]}")
    T = T[0]
    if radius is None:
        radius = 3.0 * TAU_FACTOR * max(_spacing(P.float()), _spacing(Q.float()))
    elif not radius > 0:
        raise ValueError(f"radius must be > 0, got {radius}")
    Pm = P @ T[:3, :3].T + T[:3, 3]
    c_ov, ax_ov = principal_axes(_overlap_region(Pm, Q, radius))
    c_src, ax_src = principal_axes(Pm)
    cands, labels = [T], ["pose"]
    eye = torch.eye(3, dtype=torch.float64)
    for name, c, axes in (("overlap", c_ov, ax_ov), ("source", c_src, ax_src)):
        for k in range(3):
            a = axes[k]
            cands.append(_about(2 * torch.outer(a, a) - eye, c) @ T)
            labels.append(f"half-turn {name} {k}")
    if int(extra_axes) < 0:
        raise ValueError(f"extra_axes must be >= 0, got {extra_axes}")
    for k, a in enumerate(_hemisphere_axes(int(extra_axes)) @ ax_ov if int(extra_axes) > 0 else []):
        cands.append(_about(2 * torch.outer(a, a) - eye, c_ov) @ T)
        labels.append(f"half-turn axis {k}")
    if mirror:
        c_p, ax_p = principal_axes(P)
        for i in range(3):
            S_Q = _about(eye - 2 * torch.outer(ax_ov[i], ax_ov[i]), c_ov)
            for j in range(3):
                S_P = _about(eye - 2 * torch.outer(ax_p[j], ax_p[j]), c_p)
                cands.append(S_Q @ T @ S_P)
                labels.append(f"mirror {i} {j}")
    keep_T, keep_l = [], []
    for C, lab in zip(cands, labels):
        if any(_angle_deg(C[:3, :3], K[:3, :3]) < min_angle and float((C[:3, 3] - K[:3, 3]).norm()) < radius
               for K in keep_T):
            continue
        keep_T.append(C)
        keep_l.append(lab)
    return torch.stack(keep_T), keep_l


def _rotvec(w: torch.Tensor) -> torch.Tensor:
    """Rotation matrices [..., 3, 3] of rotation vectors [..., 3] (Rodrigues' formula, thesis eq. 3-3),
    all at once (one op per term, not per vector: see :func:`refine_local` on shared machines)."""
    th = w.norm(dim=-1, keepdim=True)
    a = w / th.clamp_min(1e-12)
    x, y, z = a.unbind(-1)
    o = torch.zeros_like(x)
    K = torch.stack([o, -z, y, z, o, -x, -y, x, o], -1).reshape(w.shape[:-1] + (3, 3))
    s, c = torch.sin(th)[..., None], torch.cos(th)[..., None]
    R = torch.eye(3, dtype=w.dtype) + s * K + (1 - c) * (K @ K)
    return torch.where(th[..., None] < 1e-12, torch.eye(3, dtype=w.dtype).expand_as(R), R)


def _plane_system(X: torch.Tensor, Y: torch.Tensor, N: torch.Tensor, w: torch.Tensor):
    """Normal equations ``A [K, 6, 6]``, ``b [K, 6]`` of the weighted point-to-plane residuals
    ``((I + [u]x) x + v - y) . n`` in the step (u, v) over pairs (x, y, n) [K, n, 3], weights w [K, n]."""
    J = torch.cat([torch.linalg.cross(X, N, dim=-1), N], -1)  # d residual / d (u, v)   [K, n, 6]
    r = ((X - Y) * N).sum(-1, keepdim=True)
    Jw = (J * w[..., None]).transpose(1, 2)
    return Jw @ J, (Jw @ r)[..., 0]


def _plane_steps(A: torch.Tensor, b: torch.Tensor, pairs: torch.Tensor) -> torch.Tensor:
    """Gauss-Newton steps [K, 4, 4] (applied on the left) of the normal equations ``A step = -b``; the
    identity where fewer than 6 pairs (``pairs`` [K]) have weight."""
    A = A + 1e-9 * A.diagonal(dim1=1, dim2=2).sum(-1).clamp_min(1e-30)[:, None, None] * torch.eye(6, dtype=A.dtype)
    step = -torch.linalg.solve(A, b)
    step = torch.where((pairs >= 6)[:, None], step, torch.zeros_like(step))
    out = torch.eye(4, dtype=A.dtype).repeat(A.shape[0], 1, 1)
    out[:, :3, :3] = _rotvec(step[:, :3])
    out[:, :3, 3] = step[:, 3:]
    return out


def refine_local(P, Q, T, *, iters: int = 30, radius: Optional[float] = None,
                 final_radius: Optional[float] = None) -> torch.Tensor:
    """Short local refinement of one or more poses (P onto Q): trimmed symmetric point-to-plane ICP.
    Each iteration pairs every point of P (moved) with its nearest point of Q and every point of Q
    with its nearest point of the moved P, keeps the pairs closer than the current radius (shrinking
    geometrically from ``radius``, default 10 % of Q's radius, to ``final_radius``, default ``tau``)
    and takes one Gauss-Newton step on the distances along the partner's normal
    (:func:`estimate_normals`). Point-to-plane because independent samples of one surface are not
    point-to-point partners: on 1024-point scan pairs, point-to-point ICP started at the truth slid
    several degrees along the surface. Returns [K, 4, 4] (float64)."""
    P, Q = _cloud(P, "P"), _cloud(Q, "Q")
    Ts = _transforms(T, "T").clone()
    if int(iters) < 1:
        raise ValueError(f"iters must be >= 1, got {iters}")
    tau = TAU_FACTOR * max(_spacing(P.float()), _spacing(Q.float()))
    r0 = 0.1 * float((Q - Q.mean(0)).norm(dim=1).max()) if radius is None else float(radius)
    r1 = tau if final_radius is None else float(final_radius)
    if not (r0 > 0 and r1 > 0):
        raise ValueError("radius and final_radius must be > 0")
    r1 = min(r1, r0)
    from fe_fast import ops

    # the iterations in float32, the poses and the 6x6 solves in float64: in one A/B on a choosing pair
    # (48 candidates) 1.5x faster than all float64, the same poses to 2e-8 m on a 0.25 m object
    nP, nQ = estimate_normals(P).float(), estimate_normals(Q).float()
    P, Q = P.float().contiguous(), Q.float().contiguous()
    n = int(iters)
    for it in range(n):
        r = r0 * (r1 / r0) ** (it / max(n - 1, 1))
        R, t = Ts[:, :3, :3].float(), Ts[:, :3, 3].float()
        X = torch.baddbmm(t[:, None], P.expand(R.shape[0], -1, -1), R.transpose(1, 2))  # [K, N, 3] in Q's frame
        pq = ops.knn(X, Q)
        Y = (Q[None] - t[:, None]) @ R  # Q in P's frame
        qp = ops.knn(Y, P)
        # both directions' pairs in Q's frame: (moved P point, its nearest Q point, the Q normal) and
        # (the moved P point nearest a Q point, that Q point, the moved P normal)
        w_pq, w_qp = (pq.dist2 < r * r).float(), (qp.dist2 < r * r).float()
        A1, b1 = _plane_system(X, Q[pq.idx], nQ[pq.idx], w_pq)
        A2, b2 = _plane_system(torch.gather(X, 1, qp.idx[..., None].expand(-1, -1, 3)), Q.expand(X.shape[0], -1, -1),
                               nP[qp.idx] @ R.transpose(1, 2), w_qp)
        Ts = _plane_steps((A1 + A2).double(), (b1 + b2).double(), w_pq.sum(1) + w_qp.sum(1)) @ Ts
    return Ts


@dataclass
class SelectionScore:
    """:func:`selection_score`'s result, one entry per transform: ``score`` (lower is better),
    ``cost`` (``C_PQ + C_QP``), ``violation`` (``V_P + V_Q``; zeros without viewpoints), ``chamfer``
    (for comparison: the plain truncated two-sided distance ``mean min(d^2, tau^2) / tau^2`` over both
    clouds, HOUV's inlier score at this tau), ``inliers`` (share of both clouds' points with a partner
    within tau), ``tau`` and ``tau_plane``."""

    score: torch.Tensor
    cost: torch.Tensor
    chamfer: torch.Tensor
    violation: torch.Tensor
    inliers: torch.Tensor
    tau: float
    tau_plane: float


def selection_score(P, Q, transforms, *, tau: Optional[float] = None, tau_factor: float = TAU_FACTOR,
                    plane_factor: float = PLANE_FACTOR, normal_weight: float = NORMAL_WEIGHT,
                    k: int = NORMAL_K, viewpoints=None,
                    visibility_weight: float = VISIBILITY_WEIGHT) -> SelectionScore:
    """Score of each transform ``[K, 4, 4]`` (or one 4x4) mapping P [N, 3] onto Q [M, 3] (module
    docstring; lower is better). ``tau``: the overlap gate in input units (default ``tau_factor`` x
    the larger point spacing); ``plane_factor``: ``tau_plane`` is this times the two clouds'
    combined :func:`roughness` (at least 0.05 point spacings); ``viewpoints``: ``(source_viewpoint,
    target_viewpoint)`` in each cloud's own frame (either may be None) for the normal orientation and
    the free-space check."""
    P, Q = _cloud(P, "P"), _cloud(Q, "Q")
    Ts = _transforms(transforms)
    if not normal_weight >= 0:
        raise ValueError(f"normal_weight must be >= 0, got {normal_weight}")
    if not visibility_weight >= 0:
        raise ValueError(f"visibility_weight must be >= 0, got {visibility_weight}")
    if not plane_factor > 0:
        raise ValueError(f"plane_factor must be > 0, got {plane_factor}")
    spacing = max(_spacing(P.float()), _spacing(Q.float()))
    if tau is None:
        if not tau_factor > 0:
            raise ValueError(f"tau_factor must be > 0, got {tau_factor}")
        tau = tau_factor * spacing
    elif not tau > 0:
        raise ValueError(f"tau must be > 0, got {tau}")
    vp_P = vp_Q = None
    if viewpoints is not None:
        if len(viewpoints) != 2:
            raise ValueError("viewpoints must be (source_viewpoint, target_viewpoint), either None")
        vp_P, vp_Q = (None if v is None else torch.as_tensor(np.asarray(v, dtype=np.float64)).reshape(3)
                      for v in viewpoints)
    oriented = vp_P is not None and vp_Q is not None
    nP, rP = _normals_roughness(P, k, vp_P if oriented else None)
    nQ, rQ = _normals_roughness(Q, k, vp_Q if oriented else None)
    tau_plane = max(plane_factor * math.hypot(rP, rQ), 0.05 * spacing)
    R, t = Ts[:, :3, :3], Ts[:, :3, 3]
    X = P[None] @ R.transpose(1, 2) + t[:, None]  # P in Q's frame
    Y = (Q[None] - t[:, None]) @ R  # Q in P's frame
    d_pq, i_pq = _nn(X, Q)
    d_qp, i_qp = _nn(Y, P)
    plane_pq = ((X - Q[i_pq]) * nQ[i_pq]).sum(-1)
    plane_qp = ((Y - P[i_qp]) * nP[i_qp]).sum(-1)
    nPm = nP[None] @ R.transpose(1, 2)  # source normals in Q's frame [K, N, 3]
    dot_pq = (nPm * nQ[i_pq]).sum(-1)
    dot_qp = (nQ[None] * torch.gather(nPm, 1, i_qp[..., None].expand(-1, -1, 3))).sum(-1)
    tau2, tp2 = tau * tau, tau_plane * tau_plane

    def side(d2, plane, dot):
        mis = 1 - dot if oriented else 1 - dot.abs()
        c = (plane * plane / tp2 + normal_weight * mis).clamp(max=1)
        return torch.where(d2 < tau2, c, torch.ones_like(c)).mean(1)

    cost = side(d_pq, plane_pq, dot_pq) + side(d_qp, plane_qp, dot_qp)
    chamfer = (d_pq / tau2).clamp(max=1).mean(1) + (d_qp / tau2).clamp(max=1).mean(1)
    inliers = ((d_pq < tau2).to(torch.float64).mean(1) + (d_qp < tau2).to(torch.float64).mean(1)) / 2
    violation = torch.zeros(Ts.shape[0], dtype=torch.float64)
    if vp_P is not None or vp_Q is not None:
        index = torch.zeros(Ts.shape[0], dtype=torch.long)
        vtau = 3.0 * spacing
        if vp_Q is not None:
            violation = violation + free_space_violation(X, depth_maps([Q], [vp_Q]), index, vtau).to(torch.float64)
        if vp_P is not None:
            violation = violation + free_space_violation(Y, depth_maps([P], [vp_P]), index, vtau).to(torch.float64)
    score = cost + visibility_weight * violation
    return SelectionScore(score=score, cost=cost, chamfer=chamfer, violation=violation, inliers=inliers,
                          tau=float(tau), tau_plane=float(tau_plane))


def best_of_flips(P, Q, transforms, *, iters: int = 30, mirror: bool = True, extra_axes: int = EXTRA_AXES,
                  viewpoints=None, **score_kwargs) -> Tuple[torch.Tensor, dict]:
    """The core of :func:`refine_with_flips` for any hypotheses (e.g. a feature matcher's answer):
    the :func:`flip_candidates` of each transform in ``transforms`` (4x4 or [H, 4, 4], P onto Q),
    each refined by :func:`refine_local`, scored by :func:`selection_score`. Returns the best refined
    candidate (4x4, float64) and ``{"label", "hypothesis", "score", "original_score",
    "candidates"}`` (``original_score``: the first hypothesis refined as it is)."""
    P, Q = _cloud(P, "P"), _cloud(Q, "Q")
    Ts = _transforms(transforms)
    cands, labels, origin = [], [], []
    for h in range(Ts.shape[0]):
        C, lab = flip_candidates(P, Q, Ts[h], mirror=mirror, extra_axes=extra_axes)
        cands.append(C)
        labels += lab
        origin += [h] * len(lab)
    C = refine_local(P, Q, torch.cat(cands), iters=iters)
    s = selection_score(P, Q, C, viewpoints=viewpoints, **score_kwargs)
    best = int(torch.argmin(s.score))
    return C[best].clone(), {"label": labels[best], "hypothesis": origin[best], "score": float(s.score[best]),
                             "original_score": float(s.score[0]), "candidates": len(labels)}


def same_pose(A, B, Q) -> bool:
    """Whether 4x4 poses A and B (P onto Q) are within ``DISTINCT_DEG`` degrees and ``DISTINCT_FRAC``
    of Q's bounding-box diagonal: then their refined flips are the same candidates."""
    A, B = torch.as_tensor(A, dtype=torch.float64), torch.as_tensor(B, dtype=torch.float64)
    Q = torch.as_tensor(Q, dtype=torch.float64)
    diag = float((Q.max(0).values - Q.min(0).values).norm())
    return _angle_deg(A[:3, :3], B[:3, :3]) < DISTINCT_DEG and float((A[:3, 3] - B[:3, 3]).norm()) < DISTINCT_FRAC * diag


def refine_with_flips(P, Q, result, *, hypotheses: int = 1, iters: int = 30, mirror: bool = True,
                      extra_axes: int = EXTRA_AXES, viewpoints=None, also=None,
                      **score_kwargs) -> RegistrationResult:
    """Re-choose HOUV's answer among its flips: for the ``hypotheses`` best groups of ``result`` (a
    :class:`~fe_fast.registration.houv.RegistrationResult` of P onto Q; its answer first, then the
    groups in order of ``extra["group_score"]``, else ``group_local_cd``), build the
    :func:`flip_candidates`, refine each with :func:`refine_local` (``iters`` iterations) and return a
    copy of ``result`` whose pose is the candidate with the lowest :func:`selection_score`
    (``score_kwargs`` and ``viewpoints`` go to it). Only ``R``, ``t``, ``transform``, ``seconds``
    (plus this step) and ``extra`` change: ``group``, ``local_cd``, ``all_R`` etc. stay the HOUV
    run's. ``extra["flip"]`` records the chosen candidate's ``label`` (``"group g: ..."``, g the
    group it came from), its ``score``, the ``original_score`` of the refined original answer and
    the number of ``candidates``. ``extra_axes`` (default 16): see :func:`flip_candidates`; on 10
    pairs of choosing objects (overlap 0.3-0.7), HOUV's two answers 178 degrees off had no principal
    axis within 29 degrees of their flip axis and were corrected only with the extra axes. With
    ``hypotheses=1`` (up to 32 candidates) this took 2.5-4 s per 2048-point pair with one torch
    thread on a shared 2-core machine at load about 10 (1.4-2.2 s without the extra axes).
    :func:`best_of_flips` does the same for transforms from anywhere else. Of the ``hypotheses``
    best groups, one within ``DISTINCT_DEG`` degrees and ``DISTINCT_FRAC`` of Q's bounding-box
    diagonal of a group taken before it is skipped (its refined flips would be the same candidates).
    ``also``: more transforms (4x4 or [H, 4, 4], e.g. correspondence starts) whose flips compete in
    the same batch, each skipped as above when it is a group's pose (a correspondence start is one
    of HOUV's groups); the label then reads ``"also j: ..."``."""
    import time

    if not isinstance(result, RegistrationResult):
        raise ValueError(f"result must be a RegistrationResult (from houv), got {type(result).__name__}")
    if int(hypotheses) < 1:
        raise ValueError(f"hypotheses must be >= 1, got {hypotheses}")
    t0 = time.perf_counter()
    P, Q = _cloud(P, "P"), _cloud(Q, "Q")
    ranked = [result.group]
    rank = result.extra.get("group_score", result.group_local_cd)
    rank = torch.as_tensor(rank, dtype=torch.float64)
    for g in torch.argsort(rank).tolist():
        if len(ranked) >= int(hypotheses):
            break
        if g not in ranked and bool(torch.isfinite(rank[g])):
            ranked.append(g)
    order, hyps = [], []
    for g in ranked:
        T_g = _rigid(result.all_R[g].to(torch.float64), result.all_t[g].to(torch.float64))
        if not any(same_pose(T_g, T_h, Q) for T_h in hyps):
            order.append(g)
            hyps.append(T_g)
    also_T = [] if also is None else list(_transforms(also, "also"))
    also_kept = [j for j, T_j in enumerate(also_T) if not any(same_pose(T_j, T_h, Q) for T_h in hyps)]
    T, info = best_of_flips(P, Q, torch.stack(hyps + [also_T[j] for j in also_kept]), iters=iters, mirror=mirror,
                            extra_axes=extra_axes, viewpoints=viewpoints, **score_kwargs)
    out = dataclasses.replace(result, R=T[:3, :3].clone(), t=T[:3, 3].clone(), transform=T.clone(),
                              seconds=result.seconds + time.perf_counter() - t0)
    h = info.pop("hypothesis")
    info["label"] = (f"group {order[h]}" if h < len(order) else f"also {also_kept[h - len(order)]}") + f": {info['label']}"
    out.extra = {**result.extra, "flip": info}
    return out
