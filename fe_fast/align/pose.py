"""Head pose from 68 3D landmarks: register them to the frontal 3D mean face (thesis §3.4, Figure 1-1).

Two solvers:

* ``"umeyama"``: the landmarks are in iBUG order, so the correspondences are known and the
  least-squares similarity ``L ~ s R T + t`` has a closed form (Umeyama 1991: SVD of the
  cross-covariance, with the reflection fix ``diag(1, 1, det(U V^T))``). Missing landmarks are
  simply left out.
* ``"houv"``: the thesis's way. Both clouds are normalised (centroid, RMS radius) and HOUV
  (algorithm 3.1, eq. 3-3..3-11) registers the landmarks onto the template without using the
  correspondences, robust to occluded or dropped points.

Pose angles follow the toy face world's convention ``R = Rz(roll) @ Rx(pitch) @ Ry(yaw)``
(image axes: x right, y down, z away from the camera). Positive yaw turns the face towards image
right, positive pitch tilts the chin down, positive roll rotates the face clockwise on screen.
Here ``R`` maps the template's frame to the landmarks' frame.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np

__all__ = ["PoseResult", "estimate_pose", "frontal_template", "normalize_landmarks", "rotation_from_euler",
           "euler_from_rotation", "umeyama", "METHODS"]

METHODS = ("umeyama", "houv")
N_LANDMARKS = 68


def frontal_template() -> np.ndarray:
    """The 68-point 3D mean face shipped with fe-fast (OpenFace's in-the-wild PDM mean, iBUG order,
    millimetres; x right, y down, z away from the camera), float64 (68, 3)."""
    from fe_fast.datasets.toyfaces import mean_face_68

    return mean_face_68(symmetric=False)


def check_landmarks(landmarks, name: str = "landmarks") -> np.ndarray:
    """float64 (68, 3) array; NaN rows mark missing points (at least 4 must be present)."""
    L = np.asarray(landmarks, dtype=np.float64)
    if L.shape != (N_LANDMARKS, 3):
        raise ValueError(f"{name} must have shape (68, 3) (iBUG order, x y z), got {L.shape}")
    if np.isinf(L).any():
        raise ValueError(f"{name} contains Inf")
    present = ~np.isnan(L).any(axis=1)
    if present.sum() < 4:
        raise ValueError(f"{name}: only {int(present.sum())} of 68 landmarks are present (need >= 4)")
    return L


def normalize_landmarks(points: np.ndarray):
    """Centre on the centroid and scale to unit RMS radius; returns ``(normalised, centroid, scale)``."""
    P = np.asarray(points, dtype=np.float64)
    c = P.mean(axis=0)
    s = float(np.sqrt(((P - c) ** 2).sum(axis=1).mean()))
    if not s > 0:
        raise ValueError("landmarks are all at one point: cannot normalise")
    return (P - c) / s, c, s


def umeyama(src: np.ndarray, dst: np.ndarray, with_scale: bool = True):
    """Least-squares similarity ``dst ~ s R src + t`` for corresponding rows (Umeyama 1991).

    Returns ``(s, R, t)`` with ``R`` a proper rotation (det +1)."""
    X = np.asarray(src, dtype=np.float64)
    Y = np.asarray(dst, dtype=np.float64)
    if X.shape != Y.shape or X.ndim != 2 or X.shape[1] != 3 or X.shape[0] < 3:
        raise ValueError(f"src and dst must both be (n >= 3, 3), got {X.shape} and {Y.shape}")
    mx, my = X.mean(0), Y.mean(0)
    Xc, Yc = X - mx, Y - my
    cov = Yc.T @ Xc / X.shape[0]
    U, S, Vt = np.linalg.svd(cov)
    d = np.ones(3)
    if np.linalg.det(U) * np.linalg.det(Vt) < 0:
        d[-1] = -1.0
    R = U @ np.diag(d) @ Vt
    var_x = (Xc ** 2).sum() / X.shape[0]
    s = float((S * d).sum() / var_x) if with_scale else 1.0
    t = my - s * R @ mx
    return s, R, t


def rotation_from_euler(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """``R = Rz(roll) @ Rx(pitch) @ Ry(yaw)`` (degrees; the module docstring's signs)."""
    y, p, r = (math.radians(a) for a in (yaw, pitch, roll))
    cy, sy, cp, sp, cr, sr = math.cos(y), math.sin(y), math.cos(p), math.sin(p), math.cos(r), math.sin(r)
    Ry = np.array([[cy, 0.0, -sy], [0.0, 1.0, 0.0], [sy, 0.0, cy]])
    Rx = np.array([[1.0, 0.0, 0.0], [0.0, cp, -sp], [0.0, sp, cp]])
    Rz = np.array([[cr, -sr, 0.0], [sr, cr, 0.0], [0.0, 0.0, 1.0]])
    return Rz @ Rx @ Ry


def euler_from_rotation(R: np.ndarray):
    """Inverse of :func:`rotation_from_euler`: ``(yaw, pitch, roll)`` in degrees, pitch in [-90, 90].

    Row 2 of R is ``[cos p sin y, sin p, cos p cos y]``; column 1 is ``[-sin r cos p, cos r cos p, sin p]``."""
    R = np.asarray(R, dtype=np.float64)
    pitch = math.asin(max(-1.0, min(1.0, R[2, 1])))
    yaw = math.atan2(R[2, 0], R[2, 2])
    roll = math.atan2(-R[0, 1], R[1, 1])
    return math.degrees(yaw), math.degrees(pitch), math.degrees(roll)


@dataclass
class PoseResult:
    """``landmarks ~ scale * R @ template + t``; angles in degrees (module docstring);
    ``rms`` = RMS residual of the present landmarks in the template's units (mm)."""

    yaw: float
    pitch: float
    roll: float
    R: np.ndarray
    scale: float
    t: np.ndarray
    rms: float
    method: str
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {"yaw": self.yaw, "pitch": self.pitch, "roll": self.roll, "rotation": self.R.tolist(),
                "scale": self.scale, "translation": self.t.tolist(), "rms_mm": self.rms,
                "method": self.method, "seconds": self.seconds}


def estimate_pose(landmarks, method: str = "umeyama", template: Optional[np.ndarray] = None, *,
                  groups: int = 32, iters: int = 300, lr: float = 1e-2, seed: int = 0) -> PoseResult:
    """Yaw, pitch and roll of a face from its 68 3D landmarks (NaN rows = missing points).

    ``method="umeyama"`` (default; the more accurate of the two on toy landmarks) uses the known
    iBUG correspondences; ``method="houv"`` registers the normalised landmarks onto the normalised
    template with HOUV (correspondence-free, thesis ch. 3) and then fits the scale and translation
    in closed form for the rotation found. ``groups``/``iters``/``lr``/``seed`` go to HOUV."""
    import time

    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    L = check_landmarks(landmarks)
    T = frontal_template() if template is None else check_landmarks(template, "template")
    present = ~np.isnan(L).any(axis=1) & ~np.isnan(T).any(axis=1)
    Lp, Tp = L[present], T[present]
    t0 = time.perf_counter()
    if method == "umeyama":
        s, R, t = umeyama(Tp, Lp)
    else:
        from fe_fast.registration import PRESETS, houv

        Ln, _, _ = normalize_landmarks(Lp)
        Tn, _, _ = normalize_landmarks(T[~np.isnan(T).any(axis=1)])
        cfg = PRESETS["thesis"].replace(starts={"groups": groups}, schedule={"iters": iters, "lr": lr})
        res = houv(Ln.astype(np.float32), Tn.astype(np.float32), cfg, seed=seed)
        R = res.R.double().cpu().numpy().T  # HOUV maps landmarks -> template; the pose is its inverse
        # scale and translation for that rotation (least squares over the present points)
        Rt = Tp @ R.T
        mt, ml = Rt.mean(0), Lp.mean(0)
        s = float(((Lp - ml) * (Rt - mt)).sum() / ((Rt - mt) ** 2).sum())
        t = ml - s * mt
    seconds = time.perf_counter() - t0
    rms = float(np.sqrt(((Lp - (s * Tp @ R.T + t)) ** 2).sum(axis=1).mean()) / s)
    yaw, pitch, roll = euler_from_rotation(R)
    return PoseResult(yaw, pitch, roll, R, float(s), t, rms, method, seconds)
