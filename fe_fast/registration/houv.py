"""HOUV: Hybrid Optimization with Unconstrained Variables for partial point-cloud registration
(thesis ch. 3, algorithms 3.1 and 3.2).

The rigid transform that maps the source P onto the target Q (``Q ~ R P + t``) is built from
unconstrained variables and optimised by Adam on a hybrid Chamfer loss:

* rotation: axis ``v = v_pq / |v_pq|`` (eq. 3-5) and angle ``theta`` through Rodrigues' formula
  ``R = cos(theta) I + (1 - cos(theta)) v v^T + sin(theta) [v]_x`` (eq. 3-3, 3-4);
* translation: ``t = d(d_pq) u_pq / |u_pq|`` with ``d = d_max (1 + sin(d_pq)) / 2`` (eq. 3-8, the default
  ``mapping="sin"``) or ``d = d_max sigmoid(d_pq)`` (eq. 3-7, ``mapping="sigmoid"``);
* loss: local Chamfer (eq. 3-9, fraction ``alpha`` of best-matched points in each direction) plus
  ``beta`` times the projected Chamfer on the xy, yz and xz planes (eq. 3-10). Eq. 3-11 as printed
  reads ``L_local + beta (L_xy + L_yz) + L_xz``; the text says beta balances the local and the global
  (projected) terms, so beta multiplies all three planes here: ``L_local + beta (L_xy + L_yz + L_xz)``.
* ``groups`` random initialisations are one batched tensor optimised together by one Adam (the
  groups do not interact: the summed loss gives each group exactly its own gradient and Adam is
  element-wise); the answer is the group with the smallest local Chamfer (algorithm 3.1, line 10).
* HOUV_pri (algorithm 3.2, eq. 3-12): ``angle_bounds=[[l, r], ...]`` (degrees) gives group ``g`` the
  sub-range ``angle_bounds[g % len(angle_bounds)]`` and maps its angle variable with
  ``theta = l + (r - l) (1 + sin(theta_pq)) / 2``. The printed ``l + (r - l) sin(theta_pq)`` spans
  ``[2l - r, r]``, not ``[l, r]``; the ``(1 + sin) / 2`` form is the same construction as eq. 3-8 and
  stays inside ``[l, r]``.

Coordinates: both clouds are centred on their centroids and divided by one common scale
``s = max(radius(P), radius(Q))`` (radius = largest distance of a point from its cloud's centroid)
before optimising; the result is mapped back to the input frame (``t = c_Q - R c_P + s t'``). This
makes the method independent of units and of where the clouds sit (the thesis's MVP clouds are
already centred in the unit sphere, where this is nearly the identity), and gives the default
``d_max`` rule: after centring, the remaining translation is the distance between the centroids
of the two aligned partial views, and both centroids lie inside the object, so ``d_max`` defaults
to one cloud radius, ``max(radius(P), radius(Q))`` (1.0 in normalised units). A user-given
``d_max`` is in input units.

Options beyond the thesis (keywords of the core loop :func:`_houv_core`; :func:`houv` and
:func:`houv_batch` set them from a :class:`~fe_fast.registration.config.RegistrationConfig`, whose
field names they map to in :data:`~fe_fast.registration.config.CORE_KEYWORDS`): ``early_stop`` (stop when no
group's loss improved by more than a relative ``early_stop`` over ``patience`` iterations),
``schedule`` (coarse-to-fine point counts: ``[(n_points, iters), ...]`` replaces ``iters``; each
stage uses a fixed seeded random subset of both clouds), ``lr_schedule="cosine"`` (Adam's rate
annealed from ``lr`` to ``lr / 100`` over all iterations, so a large ``lr`` still ends precise), and
:func:`houv_batch` (B pairs x G groups in one optimisation), ``refine_iters`` (after the schedule, the
``refine_groups`` best groups by local Chamfer continue at full resolution on the local Chamfer alone,
``beta = 0``: the projected terms of eq. 3-10 match all points, so on partial pairs their optimum is
biased away from the true pose; see :func:`houv_batch`), ``prune_groups`` (after the schedule's first
stage, or after each of the first stages, only the best groups continue), ``init_translation="search"``
(each group's start translation is the best of a set of candidate offsets for its start rotation),
``init="sfib"`` (initial rotations that cover SO(3) evenly, a Super-Fibonacci spiral with a seeded
random offset, instead of the thesis's i.i.d. random ones) and
``select="inlier"`` (the final choice, and the choice of the groups to refine or keep, by a truncated
Chamfer with a threshold from the clouds' point spacing instead of the local Chamfer at the fixed
``alpha`` of algorithm 3.1, line 10, which prefers wrong poses when the overlap is below ``alpha``);
``refine_objective="inlier"`` refines on that truncated Chamfer; ``init_transforms`` (warm starts:
given transforms, e.g. RANSAC's, held during the schedule, then refined and selected like every
group). See :func:`_houv_core`; the stages around the loop (correspondence starts, early accept,
flip-aware selection) are :mod:`fe_fast.registration.config`'s.

Distances come only from :mod:`fe_fast.ops` (``knn_select`` for eq. 3-9, ``projected_chamfer`` for
eq. 3-10), so the method runs on CPU or GPU by the tensors' device.
"""
from __future__ import annotations

import contextlib
import math
import time
import warnings
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch

from fe_fast.registration.config import core_kwargs
from fe_fast.registration.visibility import depth_maps, free_space_violation

__all__ = [
    "HOUV",
    "RegistrationResult",
    "houv",
    "houv_batch",
    "rodrigues",
    "axis_angle_from_rotation",
    "map_translation",
    "unmap_translation",
    "map_bounded_angle",
    "unmap_bounded_angle",
    "PLANES",
]

PLANES = ("xy", "yz", "xz")


# ----------------------------------------------------------------------------------------------
# Parameter mappings (eq. 3-3 .. 3-8, 3-12)
# ----------------------------------------------------------------------------------------------
def _skew(v: torch.Tensor) -> torch.Tensor:
    """``[v]_x`` of eq. 3-4 for v of shape [..., 3]."""
    x, y, z = v.unbind(-1)
    o = torch.zeros_like(x)
    return torch.stack(
        [torch.stack([o, -z, y], -1), torch.stack([z, o, -x], -1), torch.stack([-y, x, o], -1)], -2
    )


def rodrigues(v_pq: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Rotation matrices from unconstrained axes ``v_pq`` [..., 3] and angles ``theta`` [...]
    (radians): ``v = v_pq / |v_pq|`` (eq. 3-5), ``R = cos I + (1 - cos) v v^T + sin [v]_x``
    (eq. 3-3, 3-4). Returns [..., 3, 3]."""
    v = v_pq / v_pq.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    c = torch.cos(theta)[..., None, None]
    s = torch.sin(theta)[..., None, None]
    eye = torch.eye(3, dtype=v.dtype, device=v.device).expand(v.shape[:-1] + (3, 3))
    return c * eye + (1 - c) * (v[..., :, None] * v[..., None, :]) + s * _skew(v)


def axis_angle_from_rotation(R: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Inverse of eq. 3-3: unit axis [..., 3] and angle in [0, pi] [...] of rotation matrices."""
    R = torch.as_tensor(R)
    tr = R[..., 0, 0] + R[..., 1, 1] + R[..., 2, 2]
    theta = torch.arccos(((tr - 1) / 2).clamp(-1.0, 1.0))
    w = torch.stack([R[..., 2, 1] - R[..., 1, 2], R[..., 0, 2] - R[..., 2, 0], R[..., 1, 0] - R[..., 0, 1]], -1)
    axis = w / w.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    # the identity has no axis; any unit axis gives it at angle 0
    axis = torch.where(axis.norm(dim=-1, keepdim=True) > 0.5, axis, axis.new_tensor([0.0, 0.0, 1.0]))
    # near theta = pi the antisymmetric part vanishes: read the axis from (R + I) / 2 = v v^T
    near_pi = theta > math.pi - 1e-3
    if near_pi.any():
        S = (R + torch.eye(3, dtype=R.dtype, device=R.device)) / 2
        diag = torch.diagonal(S, dim1=-2, dim2=-1).clamp_min(0)
        k = diag.argmax(-1)
        col = torch.gather(S, -1, k[..., None, None].expand(S.shape[:-1] + (1,))).squeeze(-1)
        alt = col / col.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        axis = torch.where(near_pi[..., None], alt, axis)
    return axis, theta


def map_translation(u_pq: torch.Tensor, d_pq: torch.Tensor, d_max, mapping: str = "sin") -> torch.Tensor:
    """Translation from unconstrained direction ``u_pq`` [..., 3] and distance variable ``d_pq``:
    ``t = d_max (1 + sin d_pq) / 2 * u/|u|`` (eq. 3-8, ``"sin"``) or
    ``t = d_max sigmoid(d_pq) * u/|u|`` (eq. 3-7, ``"sigmoid"``)."""
    u = u_pq / u_pq.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    if mapping == "sin":
        d = 0.5 * (d_max + d_max * torch.sin(d_pq))
    elif mapping == "sigmoid":
        d = d_max * torch.sigmoid(d_pq)
    else:
        raise ValueError(f"mapping must be 'sin' or 'sigmoid', got {mapping!r}")
    return d[..., None] * u


def unmap_translation(t: torch.Tensor, d_max, mapping: str = "sin") -> Tuple[torch.Tensor, torch.Tensor]:
    """Inverse of eq. 3-7 / 3-8: ``(u_pq, d_pq)`` with unit ``u_pq`` that reproduce ``t``
    (``|t|`` is clipped into ``(0, d_max)``; ``t = 0`` gets the direction x)."""
    t = torch.as_tensor(t)
    n = t.norm(dim=-1)
    u = t / n[..., None].clamp_min(1e-12)
    u = torch.where(n[..., None] > 0, u, u.new_tensor([1.0, 0.0, 0.0]))  # t = 0: any direction
    ratio = (n / d_max).clamp(1e-7, 1 - 1e-7)
    if mapping == "sin":
        d = torch.asin(2 * ratio - 1)
    elif mapping == "sigmoid":
        d = torch.log(ratio) - torch.log1p(-ratio)
    else:
        raise ValueError(f"mapping must be 'sin' or 'sigmoid', got {mapping!r}")
    return u, d


def map_bounded_angle(theta_pq: torch.Tensor, low, high) -> torch.Tensor:
    """HOUV_pri angle (eq. 3-12 with the ``(1 + sin) / 2`` form): ``l + (r - l)(1 + sin theta_pq)/2``,
    always inside ``[l, r]`` (radians)."""
    return low + (high - low) * 0.5 * (1 + torch.sin(theta_pq))


def unmap_bounded_angle(theta: torch.Tensor, low, high) -> torch.Tensor:
    """Inverse of :func:`map_bounded_angle` on ``[l, r]`` (principal branch)."""
    r = (2 * (theta - low) / (high - low) - 1).clamp(-1.0, 1.0)
    return torch.asin(r)


# ----------------------------------------------------------------------------------------------
# Result
# ----------------------------------------------------------------------------------------------
@dataclass
class RegistrationResult:
    """Outcome of one HOUV registration (P mapped onto Q: ``Q ~ R P + t``).

    ``local_cd`` / ``loss``: the chosen group's final local Chamfer (eq. 3-9) and hybrid loss
    (eq. 3-11), in squared input units; ``group_local_cd`` / ``group_loss``: the same for every
    group [G]; ``all_R`` [G, 3, 3] / ``all_t`` [G, 3]: every group's final transform;
    ``history``: the chosen group's hybrid loss at each iteration (on the points used at that
    iteration, squared input units); ``group``: index of the chosen group."""

    R: torch.Tensor
    t: torch.Tensor
    transform: torch.Tensor
    local_cd: float
    loss: float
    group: int
    group_local_cd: torch.Tensor
    group_loss: torch.Tensor
    all_R: torch.Tensor
    all_t: torch.Tensor
    history: torch.Tensor
    iters: int
    seconds: float
    scale: float = 1.0
    extra: dict = field(default_factory=dict)

    def apply(self, points) -> torch.Tensor:
        """``R p + t`` for points [N, 3] (tensor or array)."""
        p = torch.as_tensor(np.asarray(points) if not torch.is_tensor(points) else points)
        p = p.to(self.R.dtype)
        return p @ self.R.T + self.t


# ----------------------------------------------------------------------------------------------
# Input handling
# ----------------------------------------------------------------------------------------------
def _as_cloud(x, name: str, device, dtype=torch.float32, min_points: int = 1) -> torch.Tensor:
    """An [N, 3] cloud (tensor or array-like) of at least ``min_points`` finite points, detached,
    as ``dtype`` on ``device`` (None: where it is); ValueError naming the argument otherwise."""
    if not torch.is_tensor(x):
        try:
            x = torch.as_tensor(np.asarray(x, dtype=np.float64))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{name} must be an N x 3 tensor or array of numbers") from exc
    if x.dim() != 2 or x.shape[1] != 3:
        raise ValueError(f"{name} must have shape [N, 3], got {list(x.shape)}")
    if x.shape[0] == 0:
        raise ValueError(f"{name} is empty (0 points)")
    if x.shape[0] < min_points:
        raise ValueError(f"{name} needs at least {min_points} points, got {x.shape[0]}")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or infinite coordinates")
    return x.detach().to(device=device, dtype=dtype)


def _radius(x: torch.Tensor) -> torch.Tensor:
    return (x - x.mean(0)).norm(dim=1).max()


def _subsample(x: torch.Tensor, n: int, gen: torch.Generator) -> torch.Tensor:
    if n >= x.shape[0]:
        return x
    idx = torch.randperm(x.shape[0], generator=gen)[:n].to(x.device)
    return x[idx]


# ----------------------------------------------------------------------------------------------
# Core: B pairs x G groups
# ----------------------------------------------------------------------------------------------
def _hybrid_terms(P, Q, R, t, alpha, beta, P_len=None, Q_len=None, G=1, with_proj=True):
    """Local Chamfer (eq. 3-9) and hybrid loss (eq. 3-11) for K = B*G hypotheses.

    P [B, N, 3], Q [B, M, 3] (normalised); R [K, 3, 3], t [K, 3]. With B == 1 both directions of
    the local term query a cloud shared by the whole batch: P -> Q as ``R P + t`` against Q, and
    Q -> P as ``R^T (Q - t)`` against P (same distances, exact gradients). Returns (local [K],
    hybrid [K])."""
    from fe_fast import ops

    B, N, _ = P.shape
    K = R.shape[0]
    if B == 1:
        Py, Qy = P[0], Q[0]
        Xq = P[0].unsqueeze(0)
        Qx = Q[0].unsqueeze(0)
        xl = yl = None
    else:
        Py = P.repeat_interleave(G, 0)
        Qy = Q.repeat_interleave(G, 0)
        Xq, Qx = Py, Qy
        xl = None if P_len is None else P_len.repeat_interleave(G)
        yl = None if Q_len is None else Q_len.repeat_interleave(G)
    X = Xq @ R.transpose(1, 2) + t[:, None, :]  # R p + t            [K, N, 3]
    Y = (Qx - t[:, None, :]) @ R  # R^T (q - t)                     [K, M, 3]
    d_pq, _, s_pq = ops.knn_select(X, Qy, alpha, x_lengths=xl, y_lengths=yl)
    d_qp, _, s_qp = ops.knn_select(Y, Py, alpha, x_lengths=yl, y_lengths=xl)
    s_pq = s_pq.to(d_pq.dtype)
    s_qp = s_qp.to(d_qp.dtype)
    local = (d_pq * s_pq).sum(1) / s_pq.sum(1).clamp_min(1) + (d_qp * s_qp).sum(1) / s_qp.sum(1).clamp_min(1)
    if not with_proj or beta == 0:
        return local, local
    proj = ops.projected_chamfer(X, Qy, planes=PLANES, x_lengths=xl, y_lengths=yl)  # [K, 3]
    return local, local + beta * proj.sum(1)


def _spacing(x: torch.Tensor) -> float:
    """Point spacing of a cloud [N, 3]: median nearest-neighbour distance from its odd-indexed to
    its even-indexed points, divided by sqrt(2) (each half has half the density of a surface sample,
    so spacings grow by sqrt(2))."""
    from fe_fast import ops

    if x.shape[0] < 4:
        return float(_radius(x)) + 1e-12
    d2 = ops.knn(x[1::2][None].contiguous(), x[0::2][None].contiguous()).dist2[0]
    return float(d2.clamp_min(0).sqrt().median()) / math.sqrt(2)


def _inlier_score(P, Q, R, t, tau2, P_len=None, Q_len=None, G=1):
    """Selection score of ``select="inlier"`` for K = B*G hypotheses (lower is better): the
    truncated Chamfer ``mean_p min(d(Rp + t, Q)^2, tau^2) / tau^2`` plus the same from Q to P, over
    *all* points, i.e. 2 minus a soft count of the inlier fractions within ``tau`` in both directions.
    ``tau2`` [K] (squared, normalised units). Unlike the local Chamfer at a fixed alpha it does not
    require a share alpha of the points to match, so a low-overlap pair's true pose is not out-scored
    by a wrong pose that matches alpha of the points loosely."""
    from fe_fast import ops

    B, N, _ = P.shape
    M = Q.shape[1]
    if B == 1:
        Py, Qy, Xq, Qx = P[0], Q[0], P[0].unsqueeze(0), Q[0].unsqueeze(0)
        xl = yl = None
    else:
        Py, Qy = P.repeat_interleave(G, 0), Q.repeat_interleave(G, 0)
        Xq, Qx = Py, Qy
        xl = None if P_len is None else P_len.repeat_interleave(G)
        yl = None if Q_len is None else Q_len.repeat_interleave(G)
    X = Xq @ R.transpose(1, 2) + t[:, None, :]
    Y = (Qx - t[:, None, :]) @ R
    d_pq = ops.knn(X, Qy, x_lengths=xl, y_lengths=yl).dist2
    d_qp = ops.knn(Y, Py, x_lengths=yl, y_lengths=xl).dist2

    def mean_trunc(d, n, lengths):
        c = torch.minimum(d, tau2[:, None]) / tau2[:, None]
        if lengths is None:
            return c.mean(1)
        m = (torch.arange(n, device=d.device)[None] < lengths[:, None]).to(c.dtype)
        return (c * m).sum(1) / m.sum(1).clamp_min(1)

    return mean_trunc(d_pq, N, xl) + mean_trunc(d_qp, M, yl)


def _pad(clouds: List[torch.Tensor]):
    n = [c.shape[0] for c in clouds]
    if len(set(n)) == 1:
        return torch.stack(clouds), None
    out = clouds[0].new_zeros((len(clouds), max(n), 3))
    for i, c in enumerate(clouds):
        out[i, : c.shape[0]] = c
        out[i, c.shape[0]:] = c[0]  # padding rows repeat a real point; masked by lengths anyway
    return out, torch.tensor(n, device=clouds[0].device)


_PSI = 1.533751168755204288118041  # Super-Fibonacci: the real root of psi^4 = psi + 4 (Alexa 2022)


def super_fibonacci(n: int) -> torch.Tensor:
    """``n`` unit quaternions [n, 4] (x, y, z, w) spread evenly over SO(3): the Super-Fibonacci
    spiral (M. Alexa, "Super-Fibonacci Spirals: Fast, Low-Discrepancy Sampling of SO(3)", CVPR 2022),
    ``s = i + 1/2, r = sqrt(s/n), R = sqrt(1 - s/n), a = 2 pi s / sqrt 2, b = 2 pi s / psi``,
    ``q = (r sin a, r cos a, R sin b, R cos b)``."""
    s = torch.arange(int(n), dtype=torch.float64) + 0.5
    r = torch.sqrt(s / n)
    R = torch.sqrt(1 - s / n)
    a = 2 * math.pi * s / math.sqrt(2)
    b = 2 * math.pi * s / _PSI
    return torch.stack([r * torch.sin(a), r * torch.cos(a), R * torch.sin(b), R * torch.cos(b)], -1)


def _quat_mul(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Hamilton product of (x, y, z, w) quaternions, broadcast over leading dimensions."""
    px, py, pz, pw = p.unbind(-1)
    qx, qy, qz, qw = q.unbind(-1)
    return torch.stack([
        pw * qx + px * qw + py * qz - pz * qy,
        pw * qy - px * qz + py * qw + pz * qx,
        pw * qz + px * qy - py * qx + pz * qw,
        pw * qw - px * qx - py * qy - pz * qz,
    ], -1)


def _quat_axis_angle(q: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Unit axis [n, 3] and angle in [0, pi] [n] of unit quaternions (x, y, z, w)."""
    q = torch.where(q[..., 3:] < 0, -q, q)
    xyz = q[..., :3]
    n = xyz.norm(dim=-1)
    ang = 2 * torch.atan2(n, q[..., 3])
    axis = torch.where(n[..., None] > 1e-12, xyz / n.clamp_min(1e-12)[..., None],
                       torch.tensor([0.0, 0.0, 1.0], dtype=q.dtype))
    return axis, ang


def _fibonacci_sphere(n: int) -> torch.Tensor:
    """``n`` unit vectors on the spherical Fibonacci lattice (even cover of S^2)."""
    i = torch.arange(int(n), dtype=torch.float64)
    z = 1 - (2 * i + 1) / n
    phi = 2 * math.pi * i * (2 - (1 + math.sqrt(5)) / 2)  # golden angle
    rho = torch.sqrt((1 - z * z).clamp_min(0))
    return torch.stack([rho * torch.cos(phi), rho * torch.sin(phi), z], -1)


def _angle_quantile(u: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """Angles in [low, high] with the density of the rotation angle of a uniform rotation,
    ``(1 - cos theta) / pi`` (CDF ``(theta - sin theta) / pi``), at quantiles ``u`` in [0, 1]
    (bisection; the CDF is monotone)."""
    F = lambda x: x - math.sin(x)  # noqa: E731
    out = torch.empty_like(u)
    for i, ui in enumerate(u.tolist()):
        target = F(low) + ui * (F(high) - F(low))
        a, b = low, high
        for _ in range(60):
            m = 0.5 * (a + b)
            if F(m) < target:
                a = m
            else:
                b = m
        out[i] = 0.5 * (a + b)
    return out


def _random_quat(gen: torch.Generator) -> torch.Tensor:
    q = torch.randn(4, generator=gen, dtype=torch.float64)
    return q / q.norm()


def _even_rotations(G: int, seed: int, angle_bounds):
    """Axes [G, 3] and angles [G] of G rotations that cover SO(3) evenly (``init="sfib"``).

    Without bounds: the Super-Fibonacci set of G rotations, left-multiplied by one random rotation
    drawn from ``seed`` (a random offset keeps the set even and makes runs with different seeds
    differ). With HOUV_pri bounds (group g in range ``g mod K``): the m groups of range [l, r] get the
    spherical Fibonacci axes (turned by one random rotation; conjugation keeps the angle) and angles
    at the quantiles ``(j + 1/2) / m`` of the uniform-rotation angle density restricted to [l, r],
    paired with the axes by a golden-ratio permutation so that near and far angles spread over all
    axis directions; angles stay 2 % of the range inside its ends (where eq. 3-12's sine is flat)."""
    gen = torch.Generator().manual_seed(int(seed) * 1_000_003 + 999_983)
    q0 = _random_quat(gen)
    if angle_bounds is None:
        return _quat_axis_angle(_quat_mul(q0[None], super_fibonacci(G)))
    K = angle_bounds.shape[0]
    axis = torch.empty(G, 3, dtype=torch.float64)
    ang = torch.empty(G, dtype=torch.float64)
    R0 = _quat_to_matrix(q0)
    golden = (math.sqrt(5) - 1) / 2
    for k in range(K):
        idx = list(range(k, G, K))
        m = len(idx)
        if m == 0:
            continue
        l, r = float(angle_bounds[k, 0]), float(angle_bounds[k, 1])
        l, r = l + 0.02 * (r - l), r - 0.02 * (r - l)
        ax = _fibonacci_sphere(m) @ R0.T
        frac = torch.tensor([((j * golden) % 1.0) for j in range(m)], dtype=torch.float64)
        u = (torch.argsort(torch.argsort(frac)).to(torch.float64) + 0.5) / m  # strata (j + 1/2) / m, permuted
        axis[idx] = ax
        ang[idx] = _angle_quantile(u, l, r)
    return axis, ang


def _quat_to_matrix(q: torch.Tensor) -> torch.Tensor:
    axis, ang = _quat_axis_angle(q[None])
    return rodrigues(axis, ang)[0]


def _init_groups(G: int, seed: int, angle_bounds, mapping: str, init: str = "random"):
    """Per-group initial variables.

    ``init="random"`` (thesis: random initial hypotheses): group g draws from its own generator
    seeded with (seed, g), so group g starts the same whatever the number of groups (a run with
    groups=1 reproduces group 0). Axis v_pq and direction u_pq: standard normal (uniform
    directions); angle theta_pq: uniform on [0, pi], or with bounds the unconstrained value whose
    mapped angle is uniform in the group's sub-range. ``init="sfib"``: the G rotations of
    :func:`_even_rotations` (an even cover of SO(3), or of each HOUV_pri angle range), mapped to
    ``v_pq`` = the axis and ``theta_pq`` = the angle (unbounded) or its inverse of eq. 3-12.
    Both: distance d_pq is the value that maps to a fraction of d_max uniform in [0.01, 0.25] and
    u_pq is random, from the (seed, g) generator. After centring the true translation is a small
    share of d_max; starting groups at d_max/2 (a uniform d_pq) measurably hurt convergence."""
    v = torch.empty(G, 3, dtype=torch.float64)
    th = torch.empty(G, dtype=torch.float64)
    u = torch.empty(G, 3, dtype=torch.float64)
    d = torch.empty(G, dtype=torch.float64)
    for g in range(G):
        gen = torch.Generator().manual_seed(int(seed) * 1_000_003 + g)
        v[g] = torch.randn(3, generator=gen, dtype=torch.float64)
        a = torch.rand((), generator=gen, dtype=torch.float64)
        u[g] = torch.randn(3, generator=gen, dtype=torch.float64)
        f = 0.01 + 0.24 * torch.rand((), generator=gen, dtype=torch.float64)
        th[g] = math.asin(float(2 * (0.02 + 0.96 * a) - 1)) if angle_bounds is not None else float(a) * math.pi
        if mapping == "sin":
            d[g] = math.asin(float(2 * f - 1))
        else:
            d[g] = math.log(float(f) / (1 - float(f)))
    if init == "sfib":
        axis, ang = _even_rotations(G, seed, angle_bounds)
        v = axis.clone()
        if angle_bounds is None:
            th = ang.clone()
        else:
            gi = np.arange(G) % angle_bounds.shape[0]
            lo = torch.tensor(angle_bounds[gi, 0], dtype=torch.float64)
            hi = torch.tensor(angle_bounds[gi, 1], dtype=torch.float64)
            th = unmap_bounded_angle(ang, lo, hi)
    return v, th, u, d


def _parse_init_transforms(init_transforms, B: int, G: int, bounds) -> List[Optional[torch.Tensor]]:
    """Validate ``init_transforms`` (one entry per pair: None, [4, 4] or [k, 4, 4]); returns one
    float64 [k, 4, 4] tensor or None per pair."""
    if init_transforms is None:
        return [None] * B
    if bounds is not None:
        raise ValueError("init_transforms cannot be combined with angle_bounds (HOUV_pri): a starting "
                         "rotation need not lie in its group's angle range")
    if len(init_transforms) != B:
        raise ValueError(f"init_transforms must have one entry per pair ({B}), got {len(init_transforms)}")
    out = []
    for b, T in enumerate(init_transforms):
        if T is None:
            out.append(None)
            continue
        T = torch.as_tensor(np.asarray(T, dtype=np.float64))
        T = T[None] if T.ndim == 2 else T
        if T.ndim != 3 or T.shape[1:] != (4, 4) or T.shape[0] == 0:
            raise ValueError(f"init_transforms[{b}] must be a 4x4 transform or k x 4 x 4, got shape {tuple(T.shape)}")
        if T.shape[0] > G:
            raise ValueError(f"init_transforms[{b}] holds {T.shape[0]} starts for {G} groups")
        if not torch.isfinite(T).all():
            raise ValueError(f"init_transforms[{b}] contains NaN or infinite values")
        R = T[:, :3, :3]
        eye = torch.eye(3, dtype=R.dtype)
        if (R @ R.transpose(1, 2) - eye).abs().max() > 1e-3 or (torch.linalg.det(R) - 1).abs().max() > 1e-3:
            raise ValueError(f"init_transforms[{b}]: the upper-left 3x3 block is not a rotation (orthonormal, det 1)")
        out.append(T)
    return out


def _start_variables(T: torch.Tensor, cP: torch.Tensor, cQ: torch.Tensor, s: float, dmax: float, mapping: str):
    """Unconstrained variables (v, theta, u, d) of warm starts T [k, 4, 4] (input units) in the
    normalised frame: ``t' = (R c_P + t - c_Q) / s``, inverted through eq. 3-3 and 3-7/3-8 (a
    translation beyond ``d_max`` is clipped to it)."""
    R, t = T[:, :3, :3], T[:, :3, 3]
    axis, angle = axis_angle_from_rotation(R)
    u, d = unmap_translation((R @ cP + t - cQ) / s, dmax, mapping)
    return axis, angle, u, d


def _translation_candidates() -> torch.Tensor:
    """Translations tried by ``init_translation="search"``, in units of d_max: 0.02 along x (a zero
    translation sits where eq. 3-8's gradient vanishes) and the 26 directions of the 3x3x3 grid at
    0.15, 0.3 and 0.45 (on the generated MVP-style pairs the true centred translation has median 0.25
    and 90th percentile 0.39)."""
    grid = [(i, j, k) for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1) if (i, j, k) != (0, 0, 0)]
    dirs = torch.tensor(grid, dtype=torch.float32)
    dirs = dirs / dirs.norm(dim=1, keepdim=True)
    return torch.cat([torch.tensor([[0.02, 0.0, 0.0]]), *(r * dirs for r in (0.15, 0.3, 0.45))])


def _search_translation(Pn, Qn, R, dmax, alpha, G: int, n_points: int, seed: int, chunk: int = 9):
    """Start translation of each of the K = B*G rotation starts ``R`` [K, 3, 3]: the candidate of
    :func:`_translation_candidates` (scaled by the group's ``dmax``) with the smallest local Chamfer
    (eq. 3-9) on ``n_points`` seeded points per cloud. Returns [K, 3] (normalised units)."""
    gen = torch.Generator().manual_seed(int(seed) * 1_000_003 + 777_767)
    P, P_len = _pad([_subsample(p, n_points, gen) for p in Pn])
    Q, Q_len = _pad([_subsample(q, n_points, gen) for q in Qn])
    cands = _translation_candidates().to(R.device)
    K = R.shape[0]
    scores = []
    for c in cands.split(chunk):
        C = c.shape[0]
        tk = (c[None] * dmax[:, None, None]).reshape(-1, 3)
        Rk = R.repeat_interleave(C, 0)
        local, _ = _hybrid_terms(P, Q, Rk, tk, alpha, 0.0, P_len, Q_len, G * C, with_proj=False)
        scores.append(local.view(K, C))
    best = torch.cat(scores, 1).argmin(1)
    return cands[best] * dmax[:, None]


def _parse_prune(prune_groups, G: int, n_stages: int) -> List[Optional[int]]:
    """``prune_groups`` as one entry per stage boundary: after stage k each pair keeps ``keeps[k]``
    groups, or all (None). An int prunes once, after the first stage (ignored with one stage); a
    sequence gives the counts after stages 0, 1, ... (non-increasing, at most one per boundary)."""
    if prune_groups is None:
        return []
    single = isinstance(prune_groups, (int, np.integer))
    bad = f"prune_groups must be None, an int >= 1 or a sequence of them, got {prune_groups!r}"
    try:
        ks = [prune_groups] if single else list(prune_groups)
    except TypeError:
        raise ValueError(bad) from None
    if not single and len(ks) > n_stages - 1:
        raise ValueError(f"prune_groups has {len(ks)} counts but the schedule has only {n_stages - 1} "
                         "stage boundaries (one count per boundary)")
    out, cur = [], G
    for k in ks:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(bad)
        if k > cur and not single:
            raise ValueError(f"prune_groups must not increase from stage to stage, got {prune_groups!r}")
        out.append(int(k) if k < cur else None)
        cur = min(cur, int(k))
    return out[: max(n_stages - 1, 0)]


def _parse_bounds(angle_bounds):
    if angle_bounds is None:
        return None
    b = np.asarray(angle_bounds, dtype=np.float64)
    if b.ndim == 1 and b.shape[0] == 2:
        b = b[None]
    if b.ndim != 2 or b.shape[1] != 2 or b.shape[0] == 0:
        raise ValueError("angle_bounds must be a list of [low, high] pairs in degrees")
    if not np.all(b[:, 1] > b[:, 0]):
        raise ValueError("angle_bounds: each range needs high > low")
    return np.deg2rad(b)


def _validate(alpha, beta, groups, iters, lr, mapping, schedule, early_stop, patience, lr_schedule="constant"):
    if lr_schedule not in ("constant", "cosine"):
        raise ValueError(f"lr_schedule must be 'constant' or 'cosine', got {lr_schedule!r}")
    if not (0 < alpha <= 1):
        raise ValueError(f"alpha must be in (0, 1], got {alpha}")
    if beta < 0:
        raise ValueError(f"beta must be >= 0, got {beta}")
    if int(groups) < 1:
        raise ValueError(f"groups must be >= 1, got {groups}")
    if schedule is None and int(iters) < 0:
        raise ValueError(f"iters must be >= 0, got {iters}")
    if lr <= 0:
        raise ValueError(f"lr must be > 0, got {lr}")
    if mapping not in ("sin", "sigmoid"):
        raise ValueError(f"mapping must be 'sin' or 'sigmoid', got {mapping!r}")
    if early_stop is not None and early_stop < 0:
        raise ValueError("early_stop must be None or >= 0")
    if patience < 1:
        raise ValueError("patience must be >= 1")
    if schedule is not None:
        for st in schedule:
            if len(st) != 2 or int(st[0]) < 1 or int(st[1]) < 0:
                raise ValueError("schedule must be a list of (n_points >= 1, iters >= 0) pairs")


def _validate_choice(init, select, inlier_factor, refine_objective="local_cd", init_translation="random"):
    if init_translation not in ("random", "search"):
        raise ValueError(f"init_translation must be 'random' or 'search', got {init_translation!r}")
    if refine_objective not in ("local_cd", "inlier"):
        raise ValueError(f"refine_objective must be 'local_cd' or 'inlier', got {refine_objective!r}")
    if init not in ("random", "sfib"):
        raise ValueError(f"init must be 'random' or 'sfib', got {init!r}")
    if select not in ("local_cd", "inlier"):
        raise ValueError(f"select must be 'local_cd' or 'inlier', got {select!r}")
    if not inlier_factor > 0:
        raise ValueError(f"inlier_factor must be > 0, got {inlier_factor}")


def _visibility_maps(viewpoints, Pn, Qn, cP, cQ, scale):
    """Depth maps of the normalised clouds from their scans' viewpoints (input frame -> normalised
    like the clouds); validates the viewpoints."""
    B = len(Pn)
    device = Pn[0].device
    if len(viewpoints) != B:
        raise ValueError(f"viewpoints: need one entry per pair ({B}), got {len(viewpoints)}")
    vp_P, vp_Q = [], []
    for b, entry in enumerate(viewpoints):
        if entry is None:
            entry = (None, None)
        if len(entry) != 2:
            raise ValueError(f"viewpoints[{b}] must be (source_viewpoint, target_viewpoint), either None")
        for v, c, out, name in ((entry[0], cP[b], vp_P, "source"), (entry[1], cQ[b], vp_Q, "target")):
            if v is None:
                out.append(None)
                continue
            v = torch.as_tensor(np.asarray(v, dtype=np.float64) if not torch.is_tensor(v) else v)
            if v.shape != (3,) or not bool(torch.isfinite(v).all()):
                raise ValueError(f"viewpoints[{b}]: the {name} viewpoint must be 3 finite numbers, got {v.tolist()}")
            out.append((v.to(device=device, dtype=torch.float32) - c) / scale[b])
    return depth_maps(Pn, vp_P), depth_maps(Qn, vp_Q)


def _cosine(lr: float, step: int, total: int) -> float:
    """Cosine annealing from ``lr`` to ``lr / 100`` over ``total`` steps (closed form of
    ``torch.optim.lr_scheduler.CosineAnnealingLR(T_max=total, eta_min=lr / 100)``)."""
    lo = 0.01 * lr
    return lo + (lr - lo) * 0.5 * (1 + math.cos(math.pi * min(step, total) / max(total, 1)))


def _houv_core(
    Ps: Sequence,
    Qs: Sequence,
    *,
    alpha: float = 0.5,
    beta: float = 0.1,
    groups: int = 32,
    iters: int = 500,
    lr: float = 1e-3,
    d_max: Optional[float] = None,
    mapping: str = "sin",
    angle_bounds=None,
    seed: int = 0,
    device=None,
    schedule: Optional[Sequence[Tuple[int, int]]] = None,
    early_stop: Optional[float] = None,
    patience: int = 25,
    lr_schedule: str = "constant",
    refine_iters: int = 0,
    refine_groups: int = 4,
    refine_lr: Optional[float] = None,
    prune_groups=None,
    init: str = "random",
    select: str = "local_cd",
    inlier_factor: float = 1.0,
    refine_objective: str = "local_cd",
    refine_alpha: Optional[float] = None,
    refine_by: Optional[str] = None,
    init_transforms=None,
    init_translation: str = "random",
    viewpoints=None,
    visibility_weight: float = 4.0,
    progress: bool = False,
) -> List[RegistrationResult]:
    """The core loop that :func:`houv` and :func:`houv_batch` share: register B pairs (``Ps[b]`` onto
    ``Qs[b]``) with G groups each, all B*G hypotheses in one batched optimisation. Its keywords are
    the fields of the stages of :mod:`fe_fast.registration.config` under their core names
    (:data:`~fe_fast.registration.config.CORE_KEYWORDS`: ``groups`` is ``Starts.groups``, ``select``
    is ``Selection.method`` ...); its defaults here are the thesis's and are never used by the public
    functions, which always pass every keyword from a config.

    The rest describes the loop (algorithm 3.1 / 3.2; see the module docstring). Clouds may have different
    sizes (padded, with lengths). Pair b uses groups seeded exactly like a single :func:`houv` call
    with the same seed, so results match per-pair calls. Returns one :class:`RegistrationResult`
    per pair; ``seconds`` is the whole call's time.

    ``refine_iters > 0`` adds a local refinement after the schedule (beyond the thesis): each pair's
    ``refine_groups`` groups with the smallest local Chamfer (eq. 3-9, full resolution) continue for
    ``refine_iters`` Adam iterations at full resolution on the local Chamfer alone (``beta = 0``) at
    rate ``refine_lr`` (default ``lr``; cosine-annealed when ``lr_schedule="cosine"``). The projected
    terms of eq. 3-10 compare *all* points, so on a partial pair their minimum is not the true pose
    (started at the ground truth, the hybrid loss drifts 2..9 degrees away on generated MVP-style
    pairs, the local Chamfer alone < 1.5): they help find the basin, the refinement removes their
    bias. ``group_local_cd`` / ``group_loss`` / ``all_R`` / ``all_t`` then hold the refined groups'
    values (other groups: their values before refinement) and ``history`` has NaN after the
    schedule for groups that were not refined.

    ``prune_groups=K`` (with a schedule of two or more stages): after the first (coarse) stage each
    pair's K best groups (by the selection criterion, full resolution) run the remaining stages; the
    others keep their first-stage values and do not compete. Many cheap coarse starts, few expensive
    fine ones. The Adam state restarts for the kept groups; the cosine rate continues. A sequence
    ``prune_groups=[K0, K1, ...]`` prunes after each of the first stages in turn (successive halving:
    ``groups=256, schedule=[(128, 40), (256, 110), (1024, 50)], prune_groups=[32, 8]``); an int K is ``[K]``.

    ``init_translation``: ``"random"`` (default) starts each group's translation at a small random
    offset (see :func:`_init_groups`); ``"search"`` starts it at the best of 79 candidate offsets
    (:func:`_translation_candidates`, up to 0.45 d_max) for the group's start rotation, by the local
    Chamfer (eq. 3-9) on 128 points per cloud (about 0.2 s for 64 groups on 2 CPU cores). On partial
    views the centred clouds are offset by the distance between the two views' centroids (median
    0.25 of the radius on the generated MVP-style pairs), and starts with the right rotation but the
    wrong translation often end in a wrong basin. Warm starts keep their own.

    ``init``: ``"random"`` (thesis) draws each group's axis and angle i.i.d. from the (seed, g)
    generator; ``"sfib"`` starts the G groups on a Super-Fibonacci set of rotations (Alexa, CVPR 2022)
    turned by one random rotation from ``seed`` (32 such rotations are >= 43 degrees apart, 32 random
    ones about 20); with ``angle_bounds`` each range's groups get spherical-Fibonacci axes and angles
    at stratified quantiles of the uniform-rotation angle density inside the range (eq. 3-12 holds).

    ``select``: ``"local_cd"`` (thesis, algorithm 3.1 line 10) or ``"inlier"``: the truncated Chamfer
    ``sum over both directions of mean min(d^2, tau^2) / tau^2`` over all points (2 minus the soft
    inlier fractions), ``tau = inlier_factor x`` the larger point spacing of the two clouds (median
    nearest-neighbour distance, see :func:`_spacing`). At the true pose of a pair with overlap below
    ``alpha`` the local Chamfer must count non-overlapping points, and a wrong pose that matches
    ``alpha`` of the points loosely can score lower; the inlier score only rewards points matched
    within ``tau``. It also picks the groups to refine and to keep when pruning.
    ``result.extra["group_score"]`` holds every group's criterion, ``extra["tau"]`` the threshold
    (input units). ``refine_objective="inlier"`` minimises the truncated Chamfer (squared units: the
    score times tau^2) in the refinement instead of the local Chamfer: only points within tau pull,
    so the result does not depend on alpha versus the overlap. ``refine_alpha`` (default ``alpha``):
    the local Chamfer's fraction during the refinement (below the overlap, the trimmed set holds
    only overlapping points at the true pose). ``refine_by`` (default: the ``select`` criterion):
    ``"local_cd"`` or ``"inlier"`` picks the groups to refine.

    ``init_transforms`` (warm starts, beyond the thesis): one entry per pair, each ``None``, a 4x4
    transform or ``[k, 4, 4]`` transforms (P onto Q, input units, e.g. a feature matcher's answer or
    the previous frame's pose); pair b's last k groups start there instead of at random starts
    (groups ``0 .. G-k-1`` start as without them). They are held still during the schedule (on real
    bunny scans the hybrid loss's coarse stages carried a 1-3 degree start 50-75 degrees away)
    and then compete like every group for the selection, pruning and refinement.
    Not with ``angle_bounds`` (a start need not lie in its group's angle range).

    ``viewpoints`` (free-space check, beyond the thesis; needs ``select="inlier"``): one entry per
    pair, each None or ``(source_viewpoint, target_viewpoint)``, the sensor position of each scan in
    that scan's own frame (input units; either may be None), e.g. ``(0, 0, 0)`` for data in sensor
    coordinates. The selection criterion (and so the pruning and the choice of groups to refine) gains
    ``visibility_weight x`` the shares of points that each sensor would have seen in free space
    (:func:`~fe_fast.registration.visibility.free_space_violation`, tolerance 3 point spacings):
    the truth scores about 0 there, a pose that matches many points but puts others in front of a scanned
    surface does not. ``extra["violation"]`` holds every group's summed share."""
    _validate(alpha, beta, groups, iters, lr, mapping, schedule, early_stop, patience, lr_schedule)
    if viewpoints is not None and select != "inlier":
        raise ValueError("viewpoints (the free-space check) need Selection.method 'inlier' or 'flips': the "
                         "violation share is added to the inlier score, which is a share too")
    if not visibility_weight >= 0:
        raise ValueError(f"visibility_weight must be >= 0, got {visibility_weight}")
    if int(refine_iters) < 0:
        raise ValueError(f"refine_iters must be >= 0, got {refine_iters}")
    if int(refine_groups) < 1:
        raise ValueError(f"refine_groups must be >= 1, got {refine_groups}")
    if refine_lr is not None and not refine_lr > 0:
        raise ValueError(f"refine_lr must be None or > 0, got {refine_lr}")
    _validate_choice(init, select, inlier_factor, refine_objective, init_translation)
    if refine_by not in (None, "local_cd", "inlier"):
        raise ValueError(f"refine_by must be None, 'local_cd' or 'inlier', got {refine_by!r}")
    if refine_alpha is not None and not (0 < refine_alpha <= 1):
        raise ValueError(f"refine_alpha must be None or in (0, 1], got {refine_alpha}")
    keeps = _parse_prune(prune_groups, int(groups), 1 if schedule is None else len(schedule))
    if len(Ps) != len(Qs) or len(Ps) == 0:
        raise ValueError("Ps and Qs must be non-empty sequences of the same length")
    t0 = time.perf_counter()
    if device is None:
        first = Ps[0]
        device = first.device if torch.is_tensor(first) else torch.device("cpu")
    device = torch.device(device)
    bounds = _parse_bounds(angle_bounds)
    G = int(groups)
    B = len(Ps)
    Pin = [_as_cloud(p, f"P[{i}]" if B > 1 else "P", device) for i, p in enumerate(Ps)]
    Qin = [_as_cloud(q, f"Q[{i}]" if B > 1 else "Q", device) for i, q in enumerate(Qs)]

    # normalise each pair: centre on centroids, common scale s (module docstring)
    cP = [p.mean(0) for p in Pin]
    cQ = [q.mean(0) for q in Qin]
    scale = [float(torch.maximum(_radius(p), _radius(q)).clamp_min(1e-12)) for p, q in zip(Pin, Qin)]
    Pn = [(p - c) / s for p, c, s in zip(Pin, cP, scale)]
    Qn = [(q - c) / s for q, c, s in zip(Qin, cQ, scale)]
    if d_max is not None and not d_max > 0:
        raise ValueError(f"d_max must be > 0, got {d_max}")
    vis = None if viewpoints is None else _visibility_maps(viewpoints, Pn, Qn, cP, cQ, scale)
    dmax = torch.tensor(
        [1.0 if d_max is None else float(d_max) / s for s in scale], dtype=torch.float32, device=device
    ).repeat_interleave(G)

    # variables [K = B*G]
    v0, th0, u0, d0 = _init_groups(G, seed, bounds, mapping, init)
    v0, th0, u0, d0 = v0.repeat(B, 1), th0.repeat(B), u0.repeat(B, 1), d0.repeat(B)
    held = torch.zeros(B * G, dtype=torch.bool, device=device)  # warm starts: held during the schedule
    for b, T in enumerate(_parse_init_transforms(init_transforms, B, G, bounds)):
        if T is not None:  # warm starts: pair b's last groups, in the normalised frame
            sl = slice(b * G + G - T.shape[0], (b + 1) * G)
            held[sl] = True
            v0[sl], th0[sl], u0[sl], d0[sl] = _start_variables(
                T, cP[b].cpu().double(), cQ[b].cpu().double(), scale[b], float(dmax[b * G]), mapping)
    v = v0.to(device=device, dtype=torch.float32).requires_grad_(True)
    th = th0.to(device=device, dtype=torch.float32).requires_grad_(True)
    u = u0.to(device=device, dtype=torch.float32).requires_grad_(True)
    d = d0.to(device=device, dtype=torch.float32).requires_grad_(True)
    lo = hi = None
    if bounds is not None:
        gi = torch.arange(G) % bounds.shape[0]
        lo = torch.tensor(bounds[gi.numpy(), 0], dtype=torch.float32, device=device).repeat(B)
        hi = torch.tensor(bounds[gi.numpy(), 1], dtype=torch.float32, device=device).repeat(B)

    if init_translation == "search":
        with torch.no_grad():
            R0 = rodrigues(v, map_bounded_angle(th, lo, hi) if bounds is not None else th)
            t0_ = _search_translation(Pn, Qn, R0, dmax, alpha, G, 128, seed)
            u_new, d_new = unmap_translation(t0_, dmax, mapping)
            free = ~held
            u[free] = u_new[free].to(u.dtype)
            d[free] = d_new[free].to(d.dtype)

    def transform(v, th, u, d, dmax, lo, hi):
        ang = map_bounded_angle(th, lo, hi) if bounds is not None else th
        return rodrigues(v, ang), map_translation(u, d, dmax, mapping)

    stages = [(None, int(iters))] if schedule is None else [(int(n), int(k)) for n, k in schedule]
    total = sum(k for _, k in stages)
    n_refine = int(refine_iters)
    gen = torch.Generator().manual_seed(int(seed))
    history = []  # [B, G] per iteration, NaN for groups not optimised at that iteration
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total + n_refine, desc="HOUV", unit="it", leave=False)

    def optimise(params, tf, stage_list, rate, n_total, beta_, Gc, keep_idx, step0=0, tau2_=None, alpha_=alpha,
                 frozen=None):
        """Adam on ``params`` over ``stage_list`` (the cosine rate continues from ``step0``); returns
        the number of iterations run. ``tau2_`` given: minimise the truncated Chamfer of
        :func:`_inlier_score` instead of the hybrid loss."""
        opt = torch.optim.Adam(params, lr=rate)
        if frozen is not None and not bool(frozen.any()):
            frozen = None  # decided once, not per step (a device sync on GPU)
        step = 0
        stopped = False
        for n_pts, k_iters in stage_list:
            if n_pts is None:
                Ps_, Qs_ = Pn, Qn
            else:
                Ps_ = [_subsample(p, n_pts, gen) for p in Pn]
                Qs_ = [_subsample(q, n_pts, gen) for q in Qn]
            P, P_len = _pad(Ps_)
            Q, Q_len = _pad(Qs_)
            best = None
            since = 0
            for _ in range(k_iters):
                if lr_schedule == "cosine":
                    for pg in opt.param_groups:
                        pg["lr"] = _cosine(rate, step0 + step, n_total)
                R, t = tf()
                if tau2_ is None:
                    _, hyb = _hybrid_terms(P, Q, R, t, alpha_, beta_, P_len, Q_len, Gc)
                else:
                    # truncated Chamfer in squared units (Adam does not depend on the scale)
                    hyb = _inlier_score(P, Q, R, t, tau2_, P_len, Q_len, Gc) * tau2_
                opt.zero_grad(set_to_none=True)
                hyb.sum().backward()
                if frozen is not None:
                    for x in params:  # zero gradient from the start: Adam never moves these groups
                        x.grad[frozen] = 0
                opt.step()
                step += 1
                h = hyb.detach()
                row = torch.full((B, G), float("nan"), dtype=h.dtype, device=h.device)
                row.scatter_(1, keep_idx, h.view(B, Gc))
                history.append(row)
                if bar is not None:
                    bar.update(1)
                if early_stop is not None:
                    if best is None:
                        best = h.clone()
                    else:
                        improved = h < best * (1 - early_stop)
                        best = torch.minimum(best, h)
                        since = 0 if bool(improved.any()) else since + 1
                        if since >= patience:
                            stopped = True
                            break
            if stopped and n_pts is None:
                break
        return step

    all_idx = torch.arange(G, device=device).expand(B, G)
    Pf, Pf_len = _pad(Pn)
    Qf, Qf_len = _pad(Qn)
    tau = tau2 = None
    if select == "inlier" or refine_objective == "inlier" or refine_by == "inlier":
        # threshold from the clouds' point spacing (normalised units), one per pair
        tau = torch.tensor([inlier_factor * max(_spacing(p), _spacing(q)) for p, q in zip(Pn, Qn)],
                           dtype=torch.float32, device=device)
        tau2 = (tau * tau).repeat_interleave(G)
    sel2 = tau2 if select == "inlier" else None  # the selection score's threshold
    # free-space check: depth tolerance 3 point spacings (tau is inlier_factor spacings; select is "inlier")
    vis_tau = None if vis is None else 3.0 * tau / inlier_factor

    def violation(R_, t_, Gc):
        """Summed free-space violation shares of Gc groups per pair (both scans' sensors)."""
        maps_P, maps_Q = vis
        index = torch.arange(B, device=device).repeat_interleave(Gc)
        X = Pf[index] @ R_.transpose(1, 2) + t_[:, None, :]  # P in Q's frame
        Y = (Qf[index] - t_[:, None, :]) @ R_  # Q in P's frame
        P_len = None if Pf_len is None else Pf_len[index]
        Q_len = None if Qf_len is None else Qf_len[index]
        return (free_space_violation(X, maps_Q, index, vis_tau[index], P_len)
                + free_space_violation(Y, maps_P, index, vis_tau[index], Q_len))

    def evaluate(R_, t_, Gc, tau2_):
        """Full-resolution local Chamfer, hybrid loss and selection score of Gc groups per pair."""
        with torch.no_grad():
            loc, hy = _hybrid_terms(Pf, Qf, R_, t_, alpha, beta, Pf_len, Qf_len, Gc)
            sc = _inlier_score(Pf, Qf, R_, t_, tau2_, Pf_len, Qf_len, Gc) if tau2_ is not None else loc
            if vis is not None:  # select is "inlier": sc is the inlier score
                sc = sc + visibility_weight * violation(R_, t_, Gc)
        return loc, hy, sc

    def subset(flat):
        return [x.detach()[flat].clone().requires_grad_(True) for x in (v, th, u, d)]

    # successive pruning: the stages between two prunes form one Adam run; after stage k (k < len(keeps))
    # each pair keeps its keeps[k] best groups by the selection criterion, the others stop there
    bounds_at = [0] + [i + 1 for i, k in enumerate(keeps) if k is not None] + [len(stages)]
    segments = [stages[a:b] for a, b in zip(bounds_at[:-1], bounds_at[1:])]
    keep_idx = all_idx  # [B, Gc]: the groups still running, per pair
    flat = torch.arange(B * G, device=device)
    cur = [v, th, u, d]
    done = 0
    for si, seg in enumerate(segments):
        Gc = keep_idx.shape[1]
        c_dmax, c_lo, c_hi = dmax[flat], (lo[flat] if lo is not None else None), (hi[flat] if hi is not None else None)
        done += optimise(cur, lambda: transform(*cur, c_dmax, c_lo, c_hi), seg, lr, total, beta, Gc, keep_idx,
                         step0=done, frozen=held[flat])
        if si == 0:
            v, th, u, d = (x.detach().clone() for x in (v, th, u, d))
        else:
            for x, y in zip((v, th, u, d), cur):
                x[flat] = y.detach()
        if si + 1 < len(segments):
            Gn = keeps[bounds_at[si + 1] - 1]
            with torch.no_grad():
                R, t = transform(*(x.detach() for x in cur), c_dmax, c_lo, c_hi)
            _, _, sc = evaluate(R, t, Gc, sel2[flat] if sel2 is not None else None)
            top = torch.topk(sc.view(B, Gc), Gn, dim=1, largest=False).indices
            keep_idx = keep_idx.gather(1, top)
            flat = (keep_idx + torch.arange(B, device=device)[:, None] * G).reshape(-1)
            cur = subset(flat)
    alive = torch.zeros(B * G, dtype=torch.bool, device=device)  # groups that ran every stage
    alive[flat] = True
    Gp = keep_idx.shape[1]

    # final evaluation at full resolution; choose by local Chamfer (algorithm 3.1, line 10) or, with
    # select="inlier", by the truncated (inlier) score
    with torch.no_grad():
        R, t = transform(v, th, u, d, dmax, lo, hi)
    local, hyb, score = evaluate(R, t, G, sel2)
    R, t, local, hyb, score = R.detach().clone(), t.detach().clone(), local.clone(), hyb.clone(), score.clone()
    dead = torch.where(alive, 0.0, float("inf")).to(score.dtype)

    if n_refine > 0:
        Gr = min(int(refine_groups), G)
        Gr = min(Gr, Gp)
        pick = local if refine_by == "local_cd" else score if refine_by is None else evaluate(R, t, G, tau2)[2]
        keep = torch.topk((pick + dead).view(B, G), Gr, dim=1, largest=False).indices  # [B, Gr]
        flat = (keep + torch.arange(B, device=device)[:, None] * G).reshape(-1)
        rv, rth, ru, rd = subset(flat)
        rdmax = dmax[flat]
        rlo = lo[flat] if lo is not None else None
        rhi = hi[flat] if hi is not None else None
        done += optimise(
            [rv, rth, ru, rd],
            lambda: transform(rv, rth, ru, rd, rdmax, rlo, rhi),
            [(None, n_refine)],
            lr if refine_lr is None else float(refine_lr),
            n_refine,
            0.0,
            Gr,
            keep,
            tau2_=tau2[flat] if refine_objective == "inlier" else None,
            alpha_=alpha if refine_alpha is None else float(refine_alpha),
        )
        with torch.no_grad():
            Rr, tr = transform(rv, rth, ru, rd, rdmax, rlo, rhi)
        lr_, hr_, sr_ = evaluate(Rr, tr, Gr, sel2[flat] if sel2 is not None else None)
        R[flat], t[flat], local[flat], hyb[flat], score[flat] = Rr, tr, lr_, hr_, sr_
        # only refined groups compete (the others kept the projected terms' bias)
        mask = torch.full((B * G,), float("inf"), dtype=local.dtype, device=local.device)
        mask[flat] = 0
        choose = (score + mask).view(B, G)
    else:
        choose = (score + dead).view(B, G)
    if bar is not None:
        bar.close()

    if vis is not None:
        with torch.no_grad():
            group_violation = violation(R, t, G)
    hist = torch.stack(history).cpu() if history else torch.zeros(0, B, G)
    seconds = time.perf_counter() - t0
    results = []
    for b in range(B):
        sl = slice(b * G, (b + 1) * G)
        s = scale[b]
        lb = local[sl].cpu()
        g = int(torch.argmin(choose[b].cpu()))
        Rb = R[sl].cpu().to(torch.float64)
        # back to the input frame: Q = R P + (c_Q - R c_P + s t')
        tb = cQ[b].cpu().double()[None] - (Rb @ cP[b].cpu().double()) + s * t[sl].cpu().double()
        T = torch.eye(4, dtype=torch.float64)
        T[:3, :3] = Rb[g]
        T[:3, 3] = tb[g]
        results.append(
            RegistrationResult(
                R=Rb[g].clone(),
                t=tb[g].clone(),
                transform=T,
                local_cd=float(lb[g]) * s * s,
                loss=float(hyb[sl][g]) * s * s,
                group=g,
                group_local_cd=lb.double() * s * s,
                group_loss=hyb[sl].cpu().double() * s * s,
                all_R=Rb,
                all_t=tb,
                history=hist[:, b, g].double() * s * s,
                iters=done,
                seconds=seconds,
                scale=s,
                extra={"select": select, "group_score": score[sl].cpu().double(),  # the choice's criterion
                       **({"tau": float(tau[b]) * s} if tau is not None else {}),
                       **({"violation": group_violation[sl].cpu().double()} if vis is not None else {})},
            )
        )
    return results


# ----------------------------------------------------------------------------------------------
# Public API: a config (fe_fast.registration.config) runs its stages around the one core loop
# ----------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _torch_threads(n: Optional[int]):
    """``RegistrationConfig.threads``: the one place a registration sets torch's intra-op threads
    (restored on exit; None leaves them)."""
    old = torch.get_num_threads()
    if n is None or n == old:
        yield
        return
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _resolve(config, legacy: dict, where: str):
    """The config of a call: ``config`` (None: DEFAULT_CONFIG), or the old keyword style translated
    (FutureWarning)."""
    from fe_fast.registration.config import DEFAULT_CONFIG, RegistrationConfig, config_from_kwargs

    if legacy:
        if config is not None:
            raise TypeError(f"{where}: pass either a config or the old keyword arguments "
                            f"({', '.join(sorted(legacy))}), not both")
        warnings.warn(f"{where}(..., {', '.join(sorted(legacy))}=...) is deprecated and will be removed in the next "
                      "release; pass a RegistrationConfig (fe_fast.registration.config, e.g. "
                      "PRESETS['thesis'].replace(...)); the keywords are applied to the 'thesis' preset, as before",
                      FutureWarning, stacklevel=3)
        return config_from_kwargs(**legacy)
    if config is None:
        return DEFAULT_CONFIG
    if not isinstance(config, RegistrationConfig):
        raise ValueError(f"config must be a RegistrationConfig (or None for the default), got {type(config).__name__}")
    return config


def _user_starts(init_transforms, B: int) -> List[Optional[np.ndarray]]:
    """Per pair: None or [k, 4, 4] (validated by the core loop)."""
    if init_transforms is None:
        return [None] * B
    if len(init_transforms) != B:
        raise ValueError(f"init_transforms must have one entry per pair ({B}), got {len(init_transforms)}")
    out = []
    for T in init_transforms:
        if T is None:
            out.append(None)
            continue
        T = np.asarray(T.detach().cpu() if torch.is_tensor(T) else T, dtype=np.float64)
        out.append(T[None] if T.ndim == 2 else T)
    return out


def _pose_result(P, Q, T: torch.Tensor, alpha: float, beta: float, extra: dict) -> RegistrationResult:
    """A RegistrationResult for a single pose T (4x4, P onto Q, input units) that did not come from
    the core loop (an accepted correspondence start): its local Chamfer (eq. 3-9) and hybrid loss
    (eq. 3-11) in the core loop's normalised frame, in squared input units."""
    Pt, Qt = torch.as_tensor(P, dtype=torch.float32).cpu(), torch.as_tensor(Q, dtype=torch.float32).cpu()
    cP, cQ = Pt.mean(0), Qt.mean(0)
    s = float(torch.maximum(_radius(Pt), _radius(Qt)).clamp_min(1e-12))
    T = T.to(torch.float64)
    R32 = T[:3, :3].to(torch.float32)
    tn = (R32 @ cP + T[:3, 3].to(torch.float32) - cQ) / s
    with torch.no_grad():
        loc, hyb = _hybrid_terms(((Pt - cP) / s)[None], ((Qt - cQ) / s)[None], R32[None], tn[None], alpha, beta)
    lc, hl = float(loc[0]) * s * s, float(hyb[0]) * s * s
    return RegistrationResult(
        R=T[:3, :3].clone(), t=T[:3, 3].clone(), transform=T.clone(), local_cd=lc, loss=hl, group=0,
        group_local_cd=torch.tensor([lc], dtype=torch.float64), group_loss=torch.tensor([hl], dtype=torch.float64),
        all_R=T[:3, :3][None].clone(), all_t=T[:3, 3][None].clone(), history=torch.zeros(0, dtype=torch.float64),
        iters=0, seconds=0.0, scale=s, extra=extra)


def _run(Ps, Qs, config, init_transforms, viewpoints, seed: int, device, progress: bool) -> List[RegistrationResult]:
    """The stages of ``config`` (module docstring of :mod:`fe_fast.registration.config`) for B pairs:
    correspondence starts, early accept, the core loop on the pairs not accepted (one batched call),
    flip-aware selection."""
    from fe_fast.registration import selection as sel

    if len(Ps) != len(Qs) or len(Ps) == 0:
        raise ValueError("Ps and Qs must be non-empty sequences of the same length")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")
    B = len(Ps)
    if viewpoints is not None and len(viewpoints) != B:
        raise ValueError(f"viewpoints: need one entry per pair ({B}), got {len(viewpoints)}")
    vps = [None] * B if viewpoints is None else list(viewpoints)
    st, sl, acc = config.starts, config.selection, config.accept
    t0 = time.perf_counter()
    with _torch_threads(config.threads):
        starts = _user_starts(init_transforms, B)
        stage_s = [dict() for _ in range(B)]
        corr = [None] * B
        if st.correspondence:
            from fe_fast.registration import baselines

            for b in range(B):
                P = _as_cloud(Ps[b], f"P[{b}]" if B > 1 else "P", "cpu", min_points=3).numpy()
                Q = _as_cloud(Qs[b], f"Q[{b}]" if B > 1 else "Q", "cpu", min_points=3).numpy()
                runs = [baselines.ransac_icp(P, Q, seed=int(seed) + i) for i in range(st.correspondence)]
                corr[b] = np.stack([r["transform"] for r in runs])
                stage_s[b]["correspondence"] = sum(r["seconds"] for r in runs)
        results: List[Optional[RegistrationResult]] = [None] * B
        accept_scores = [None] * B
        flip_starts = list(corr)  # the correspondence starts whose flips join the selection's candidates
        if acc.score is not None and st.correspondence:
            for b in range(B):  # the correspondence starts refined as they are (no flips): the fast path
                ta = time.perf_counter()
                C = sel.refine_local(Ps[b], Qs[b], torch.as_tensor(corr[b]), iters=sl.flip_iters)
                scores = sel.selection_score(Ps[b], Qs[b], C, viewpoints=vps[b]).score
                i = int(torch.argmin(scores))
                stage_s[b]["accept"] = time.perf_counter() - ta
                accept_scores[b] = float(scores[i])
                flip_starts[b] = corr[b][i]  # only the best start's flips: each costs about 30 candidates
                if accept_scores[b] <= acc.score:
                    info = {"label": f"correspondence start {i}", "score": accept_scores[b]}
                    results[b] = _pose_result(Ps[b], Qs[b], C[i], config.objective.alpha, config.objective.beta,
                                              {"select": "flips", "accepted": True, "flip": info})
        todo = [b for b in range(B) if results[b] is None]
        if todo:
            both = []
            for b in todo:
                parts = [x for x in (starts[b], corr[b]) if x is not None]
                both.append(np.concatenate(parts) if parts else None)
            any_vp = any(vps[b] is not None for b in todo)
            th = time.perf_counter()
            core = _houv_core([Ps[b] for b in todo], [Qs[b] for b in todo],
                              init_transforms=both if any(x is not None for x in both) else None,
                              viewpoints=[vps[b] for b in todo] if any_vp else None,
                              seed=seed, device=device, progress=progress, **core_kwargs(config))
            for b, r in zip(todo, core):
                stage_s[b]["houv"] = time.perf_counter() - th
                if sl.method == "flips":
                    tf = time.perf_counter()
                    # the correspondence starts' own flips compete with those of HOUV's best groups
                    r = sel.refine_with_flips(Ps[b], Qs[b], r, hypotheses=sl.hypotheses, iters=sl.flip_iters,
                                              extra_axes=sl.extra_axes, viewpoints=vps[b], also=flip_starts[b])
                    stage_s[b]["flips"] = time.perf_counter() - tf
                results[b] = r
    seconds = time.perf_counter() - t0
    for b, r in enumerate(results):
        r.seconds = seconds
        r.extra = {**r.extra, "stage_seconds": stage_s[b],
                   **({"correspondence_starts": torch.as_tensor(corr[b])} if corr[b] is not None else {}),
                   **({"accept_score": accept_scores[b]} if accept_scores[b] is not None else {})}
    return results


def houv_batch(Ps: Sequence, Qs: Sequence, config=None, *, init_transforms=None, viewpoints=None, seed: int = 0,
               device=None, progress: bool = False, **legacy) -> List[RegistrationResult]:
    """Register B pairs (``Ps[b]`` onto ``Qs[b]``) with the stages of ``config`` (a
    :class:`~fe_fast.registration.config.RegistrationConfig`; None:
    :data:`~fe_fast.registration.config.DEFAULT_CONFIG`), the HOUV optimisation of all pairs not
    accepted early in one batched core loop (B pairs x G groups; clouds may differ in size). Pair b's
    groups are seeded exactly like a single :func:`houv` call with the same seed, so the results
    equal per-pair calls. ``init_transforms``: one entry per pair, None, a 4x4 or [k, 4, 4] starting
    transforms (P onto Q, input units); ``viewpoints``: one entry per pair, None or ``(source,
    target)`` sensor positions, each in its scan's own frame (the free-space check; needs
    ``Selection.method`` ``"inlier"`` or ``"flips"``). ``seconds`` of each result is the whole call's
    time; ``extra["stage_seconds"]`` splits it per pair (correspondence, accept, houv, flips);
    ``extra["accept_score"]`` is the score the accept rule saw, ``extra["accepted"]`` is true when it
    returned the correspondence start, ``extra["correspondence_starts"]`` [k, 4, 4] RANSAC's answers.
    The old keyword style (``houv_batch(Ps, Qs, groups=64, ...)``: the thesis's settings with these
    changed) still works for this release with a FutureWarning."""
    config = _resolve(config, legacy, "houv_batch")
    return _run(Ps, Qs, config, init_transforms, viewpoints, seed, device, progress)


def houv(P, Q, config=None, *, init_transforms=None, viewpoints=None, seed: int = 0, device=None,
         progress: bool = False, **legacy) -> RegistrationResult:
    """Register the partial cloud P [N, 3] onto Q [M, 3]: a :class:`RegistrationResult` with
    ``Q ~ R P + t``. ``config``: a :class:`~fe_fast.registration.config.RegistrationConfig` (None:
    :data:`~fe_fast.registration.config.DEFAULT_CONFIG`, the general recipe; ``PRESETS["thesis"]``
    from :mod:`fe_fast.registration.presets` is algorithm 3.1 exactly). ``init_transforms``: None, a
    4x4 or [k, 4, 4] starting transforms (P onto Q, input units, e.g. a feature matcher's answer),
    started in the last groups; ``viewpoints``: ``(source_viewpoint, target_viewpoint)``, each scan's
    sensor position in its own frame, for the free-space check; ``seed``: the random starts and
    subsets; ``device``: where the optimisation runs (None: P's); ``progress``: a progress bar.
    The same as ``houv_batch([P], [Q], ...)[0]``. The old keyword style (``houv(P, Q, groups=64,
    ...)``, the thesis's settings with these changed) still works for this release with a
    FutureWarning."""
    config = _resolve(config, legacy, "houv")
    return _run([P], [Q], config, None if init_transforms is None else [init_transforms],
                None if viewpoints is None else [viewpoints], seed, device, progress)[0]


class HOUV:
    """A registration method holding one config: ``HOUV(config).register(P, Q)`` equals
    ``houv(P, Q, config)`` and ``register_batch(Ps, Qs)`` equals :func:`houv_batch`
    (``HOUV(**old_kwargs)`` still works for this release with a FutureWarning)."""

    def __init__(self, config=None, **legacy):
        from fe_fast.registration.config import split_run_kwargs

        legacy, run = split_run_kwargs(legacy)
        self._run = {k: run[k] for k in ("seed", "device", "progress") if k in run}  # the old style's
        self.config = _resolve(config, legacy, "HOUV")

    def register(self, P, Q, init_transforms=None, viewpoints=None, **run) -> RegistrationResult:
        """``houv(P, Q, self.config, ...)``; ``run``: ``seed``, ``device``, ``progress``."""
        return houv(P, Q, self.config, init_transforms=init_transforms, viewpoints=viewpoints,
                    **{**self._run, **run})

    def register_batch(self, Ps, Qs, init_transforms=None, viewpoints=None, **run) -> List[RegistrationResult]:
        """``houv_batch(Ps, Qs, self.config, ...)``; ``run``: ``seed``, ``device``, ``progress``."""
        return houv_batch(Ps, Qs, self.config, init_transforms=init_transforms, viewpoints=viewpoints,
                          **{**self._run, **run})

    def __repr__(self) -> str:
        return f"HOUV({self.config!r})"
