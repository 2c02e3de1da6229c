"""Open3D baselines for partial registration (thesis §3.3.2): point-to-point ICP, Fast Global
Registration (FGR) and RANSAC on FPFH features followed by ICP.

Protocol (thesis §3.3.2): ICP and FGR are each run from ``trials=32`` random initial transforms
and the result with the highest Open3D fitness (share of source points with a target point within
the correspondence distance; ties broken by the lower inlier RMSE) is kept. A random initial
transform is a rotation uniform on SO(3) plus the translation that brings P's centroid onto Q's.
For FGR, whose answer does not depend on an initial pose, the source is moved by the random
transform before features are computed and the result is composed back.

Radii (all relative to the target's bounding-box diagonal ``D`` so that they do not depend on
units; ``voxel`` can be given explicitly, in input units):

* voxel size ``v = 0.02 D`` (a 2048-point MVP view has point spacing about 0.03 D);
* normals: radius ``2 v``, at most 30 neighbours; FPFH: radius ``5 v``, at most 100 neighbours
  (Open3D's global-registration tutorial);
* ICP: correspondence distance ``max_correspondence = 0.05 D``, 50 iterations; the ICP after
  RANSAC uses ``1.5 v``;
* RANSAC: correspondence distance ``1.5 v``, 3 points, edge-length (0.9) and distance checkers,
  mutual filter off, ``RANSACConvergenceCriteria(100000, 0.999)``;
* FGR: ``maximum_correspondence_distance = 0.5 v``.

Every function returns a dict with ``transform`` (4x4, P onto Q), ``fitness``, ``inlier_rmse``
and ``seconds``. Seeds: ``seed`` drives the random initial transforms and Open3D's own generator
(``open3d.utility.random.seed``), so results repeat for a seed.
"""
from __future__ import annotations

import time
from typing import Dict, Optional

import numpy as np

from fe_fast._open3d import require_open3d

__all__ = ["icp", "fgr", "ransac_icp", "default_voxel", "BASELINES"]


def _o3d():
    return require_open3d("the Open3D baselines (fe_fast.registration.baselines)")


def _np(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 2 or a.shape[1] != 3 or a.shape[0] == 0:
        raise ValueError(f"point clouds must be non-empty [N, 3], got {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError("point cloud contains NaN or infinite coordinates")
    return a


def _diag(a: np.ndarray) -> float:
    return float(np.linalg.norm(a.max(0) - a.min(0)))


def default_voxel(Q) -> float:
    """Voxel size ``0.02 * bbox diagonal of the target``."""
    return 0.02 * _diag(_np(Q))


def _pcd(a: np.ndarray):
    o3d = _o3d()
    return o3d.geometry.PointCloud(o3d.utility.Vector3dVector(a))


def _uniform_rotation(rng: np.random.Generator) -> np.ndarray:
    x, y, z, w = (lambda q: q / np.linalg.norm(q))(rng.normal(size=4))
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def _random_inits(P: np.ndarray, Q: np.ndarray, trials: int, rng: np.random.Generator):
    cP, cQ = P.mean(0), Q.mean(0)
    for _ in range(trials):
        R = _uniform_rotation(rng)
        T = np.eye(4)
        T[:3, :3] = R
        T[:3, 3] = cQ - R @ cP
        yield T


def _better(res, best) -> bool:
    if best is None:
        return True
    if res.fitness > best.fitness + 1e-12:
        return True
    return abs(res.fitness - best.fitness) <= 1e-12 and res.inlier_rmse < best.inlier_rmse


def _features(pcd, voxel: float):
    o3d = _o3d()
    down = pcd.voxel_down_sample(voxel)
    down.estimate_normals(o3d.geometry.KDTreeSearchParamHybrid(radius=2 * voxel, max_nn=30))
    fpfh = o3d.pipelines.registration.compute_fpfh_feature(
        down, o3d.geometry.KDTreeSearchParamHybrid(radius=5 * voxel, max_nn=100)
    )
    return down, fpfh


def _feature_setup(P, Q, voxel: Optional[float], seed: int):
    """The start shared by the feature-based baselines: (Open3D's registration module, start time,
    P and Q as float64 arrays, voxel size: ``default_voxel(Q)`` when None); seeds Open3D's RNG."""
    o3d = _o3d()
    reg = o3d.pipelines.registration
    t0 = time.perf_counter()
    P, Q = _np(P), _np(Q)
    v = default_voxel(Q) if voxel is None else float(voxel)
    o3d.utility.random.seed(int(seed))
    return reg, t0, P, Q, v


def _result(T: np.ndarray, ev, t0: float) -> Dict:
    """A baseline's result: transform T (copied), the fitness and inlier RMSE of ``ev``, seconds since t0."""
    return {
        "transform": T.copy(),
        "fitness": float(ev.fitness),
        "inlier_rmse": float(ev.inlier_rmse),
        "seconds": time.perf_counter() - t0,
    }


def icp(P, Q, *, trials: int = 32, max_correspondence: Optional[float] = None, max_iteration: int = 50,
        init=None, seed: int = 0) -> Dict:
    """Point-to-point ICP (Open3D ``registration_icp``), best fitness over ``trials`` random initial
    transforms (thesis protocol), or from ``init`` alone when given."""
    o3d = _o3d()
    reg = o3d.pipelines.registration
    t0 = time.perf_counter()
    P, Q = _np(P), _np(Q)
    thr = 0.05 * _diag(Q) if max_correspondence is None else float(max_correspondence)
    src, tgt = _pcd(P), _pcd(Q)
    rng = np.random.default_rng(seed)
    inits = [np.asarray(init, dtype=np.float64)] if init is not None else _random_inits(P, Q, trials, rng)
    best = None
    crit = reg.ICPConvergenceCriteria(max_iteration=max_iteration)
    for T0 in inits:
        r = reg.registration_icp(src, tgt, thr, T0, reg.TransformationEstimationPointToPoint(), crit)
        if _better(r, best):
            best = r
    return _result(np.asarray(best.transformation), best, t0)


def fgr(P, Q, *, trials: int = 32, voxel: Optional[float] = None, seed: int = 0) -> Dict:
    """Fast Global Registration on FPFH features (Open3D), best fitness over ``trials`` random
    initial transforms of the source (thesis protocol; see the module docstring)."""
    reg, t0, P, Q, v = _feature_setup(P, Q, voxel, seed)
    tgt_down, tgt_f = _features(_pcd(Q), v)
    src_full = _pcd(P)
    rng = np.random.default_rng(seed)
    opt = reg.FastGlobalRegistrationOption(maximum_correspondence_distance=0.5 * v)
    thr = 1.5 * v
    best, best_T = None, np.eye(4)
    for T0 in _random_inits(P, Q, max(1, trials), rng):
        moved = _pcd(P @ T0[:3, :3].T + T0[:3, 3])
        sd, sf = _features(moved, v)
        r = reg.registration_fgr_based_on_feature_matching(sd, tgt_down, sf, tgt_f, opt)
        T = np.asarray(r.transformation) @ T0
        ev = reg.evaluate_registration(src_full, _pcd(Q), thr, T)
        if _better(ev, best):
            best, best_T = ev, T
    return _result(best_T, best, t0)


def ransac_icp(P, Q, *, voxel: Optional[float] = None, max_iteration: int = 100000, confidence: float = 0.999,
               seed: int = 0) -> Dict:
    """RANSAC on FPFH correspondences (Open3D ``registration_ransac_based_on_feature_matching``,
    ``RANSACConvergenceCriteria(100000, 0.999)``) refined by point-to-point ICP."""
    reg, t0, P, Q, v = _feature_setup(P, Q, voxel, seed)
    sd, sf = _features(_pcd(P), v)
    td, tf = _features(_pcd(Q), v)
    thr = 1.5 * v
    r = reg.registration_ransac_based_on_feature_matching(
        sd, td, sf, tf, False, thr, reg.TransformationEstimationPointToPoint(False), 3,
        [reg.CorrespondenceCheckerBasedOnEdgeLength(0.9), reg.CorrespondenceCheckerBasedOnDistance(thr)],
        reg.RANSACConvergenceCriteria(max_iteration, confidence),
    )
    r2 = reg.registration_icp(_pcd(P), _pcd(Q), thr, r.transformation, reg.TransformationEstimationPointToPoint(),
                              reg.ICPConvergenceCriteria(max_iteration=50))
    return _result(np.asarray(r2.transformation), r2, t0)


BASELINES = {"ICP": icp, "FGR": fgr, "RANSAC+ICP": ransac_icp}
