"""Real partial scans with ground-truth poses: the Stanford bunny ring scans (thesis §3.3: real
partial point clouds, in the role 3DMatch plays in Table 3-3).

The six horizontal-ring range scans (bun000, bun045, bun090, bun180, bun270, bun315) and
``bun.conf`` are read from a copy of the Stanford 3D Scanning Repository's bunny data (not shipped:
pass ``root``, or set ``FE_FAST_BUNNY_DIR``; a checkout next to ``../shared/data/stanford_bunny`` is
found automatically). ``bun.conf`` gives each scan's pose as ``tx ty tz qx qy qz qw``; the
scan-to-world matrix is ``[[R(q)^T, t], [0, 1]]`` with R(q) the usual rotation matrix of the unit
quaternion (x, y, z, w) (verified against the zippered reconstruction to about 0.5 mm).

The scans are in the scanner's coordinates (the bunny turned on a turntable), so one sensor position,
:data:`SCANNER_VIEWPOINT`, holds for every scan in its own frame (HOUV's free-space check,
``viewpoints``).

A small pair (bun000 -> bun045, each uniformly subsampled to 2048 points, with its ground truth)
is bundled in ``fe_fast/data/bunny_scan_pair.npz`` for the demo and the tests
(:func:`bundled_pair`). Units: metres.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

__all__ = [
    "RING_SCANS",
    "default_root",
    "read_conf",
    "load_scan",
    "load_scans",
    "relative_pose",
    "overlap",
    "ring_pairs",
    "bundled_pair",
    "BUNDLED_PAIR",
    "SCANNER_VIEWPOINT",
]

RING_SCANS = ("bun000", "bun045", "bun090", "bun180", "bun270", "bun315")
DATA_DIR = Path(__file__).resolve().parent.parent / "data"
BUNDLED_PAIR = DATA_DIR / "bunny_scan_pair.npz"

# The Cyberware scanner's position in each scan's own frame (metres). From bun000's range grid: the
# column index is linear in x (2000 per metre) and the row index in y and z (least squares, rms 0.93
# rows), so the scanner looks along that map's null direction, (0, -0.0226, -1), nearly orthographically.
# The point 1 m from bun000's centroid against that direction stands in for it: with it the true pose of
# every ring pair (overlap > 0.3, 17 pairs) has free-space violation 0 in both directions, with the point
# on the other side 0.06-0.9 (checked when the free-space check was added).
SCANNER_VIEWPOINT = np.array([-0.024, 0.119, 1.036])


def default_root() -> Path:
    """``$FE_FAST_BUNNY_DIR`` or ``<repo>/../shared/data/stanford_bunny``."""
    env = os.environ.get("FE_FAST_BUNNY_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3] / "shared" / "data" / "stanford_bunny"


def _scans_dir(root) -> Path:
    root = Path(root) if root is not None else default_root()
    d = root / "scans" if (root / "scans").is_dir() else root
    if not (d / "bun.conf").is_file():
        raise FileNotFoundError(
            f"no bun.conf under {root}: pass root= (the stanford_bunny folder) or set FE_FAST_BUNNY_DIR"
        )
    return d


def _quat_matrix(qx, qy, qz, qw) -> np.ndarray:
    q = np.array([qx, qy, qz, qw], dtype=np.float64)
    x, y, z, w = q / np.linalg.norm(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def read_conf(path) -> Dict[str, np.ndarray]:
    """``bun.conf`` -> {scan name: 4x4 scan-to-world matrix ``[[R(q)^T, t], [0, 1]]``}."""
    poses = {}
    for line in Path(path).read_text().splitlines():
        tok = line.split()
        if len(tok) == 9 and tok[0] == "bmesh":
            tx, ty, tz, qx, qy, qz, qw = map(float, tok[2:])
            T = np.eye(4)
            T[:3, :3] = _quat_matrix(qx, qy, qz, qw).T
            T[:3, 3] = (tx, ty, tz)
            poses[Path(tok[1]).stem] = T
    return poses


def _read_ply_vertices(path: Path) -> np.ndarray:
    """Vertices of an ASCII PLY (the range-scan format; tolerant of CRLF line endings)."""
    with open(path, "rb") as f:
        n = None
        props = 0
        in_vertex = False
        while True:
            raw = f.readline()
            if not raw:
                raise ValueError(f"{path}: no end_header")
            line = raw.decode("ascii", "replace").strip()
            tok = line.split()
            if tok[:2] == ["element", "vertex"]:
                n = int(tok[2])
                in_vertex = True
            elif tok and tok[0] == "element":
                in_vertex = False
            elif tok and tok[0] == "property" and in_vertex:
                props += 1
            elif line == "end_header":
                break
        if n is None:
            raise ValueError(f"{path}: no vertex element")
        rows = [f.readline().split() for _ in range(n)]
    arr = np.array([r[:3] for r in rows], dtype=np.float64)
    return arr


def load_scan(name: str, root=None) -> Tuple[np.ndarray, np.ndarray]:
    """(points [N, 3] in the scan's own frame, 4x4 scan-to-world pose) of one scan."""
    d = _scans_dir(root)
    poses = read_conf(d / "bun.conf")
    if name not in poses:
        raise ValueError(f"unknown scan {name!r}; bun.conf lists {sorted(poses)}")
    return _read_ply_vertices(d / f"{name}.ply"), poses[name]


def load_scans(root=None, names=RING_SCANS) -> Dict[str, Tuple[np.ndarray, np.ndarray]]:
    """{name: (points, pose)} for the ring scans."""
    return {n: load_scan(n, root) for n in names}


def relative_pose(pose_src: np.ndarray, pose_tgt: np.ndarray) -> np.ndarray:
    """Ground truth mapping source-scan coordinates into the target scan's frame:
    ``T = inv(W_tgt) W_src`` (so ``q ~ R p + t``)."""
    return np.linalg.inv(pose_tgt) @ pose_src


def overlap(P: np.ndarray, Q: np.ndarray, T: np.ndarray, radius: float = 0.001) -> float:
    """Fraction of source points within ``radius`` (metres) of the target after applying T."""
    from scipy.spatial import cKDTree

    Pm = P @ T[:3, :3].T + T[:3, 3]
    d, _ = cKDTree(Q).query(Pm, k=1)
    return float(np.mean(d < radius))


def _subsample(x: np.ndarray, n: Optional[int], rng: np.random.Generator) -> np.ndarray:
    if n is None or n >= x.shape[0]:
        return x
    return x[rng.choice(x.shape[0], size=n, replace=False)]


def ring_pairs(
    root=None,
    *,
    min_overlap: float = 0.3,
    n_points: Optional[int] = 2048,
    seed: int = 0,
    radius: float = 0.001,
) -> List[Dict]:
    """Every ordered pair (src, tgt) of ring scans whose overlap (src points within ``radius`` of
    tgt after the ground-truth alignment, on the full scans) is above ``min_overlap``; each scan
    uniformly subsampled to ``n_points`` (seeded). Items: ``P``, ``Q`` (scan frames), ``T_gt``
    (P -> Q), ``viewpoints`` (:data:`SCANNER_VIEWPOINT` for both), ``src``, ``tgt``, ``overlap``. Move P by a random transform yourself
    to make the problem harder."""
    scans = load_scans(root)
    rng = np.random.default_rng(seed)
    out = []
    names = list(scans)
    for a in names:
        for b in names:
            if a == b:
                continue
            Pa, Wa = scans[a]
            Qb, Wb = scans[b]
            T = relative_pose(Wa, Wb)
            ov = overlap(Pa, Qb, T, radius)
            if ov > min_overlap:
                out.append(
                    {
                        "P": _subsample(Pa, n_points, rng).astype(np.float32),
                        "Q": _subsample(Qb, n_points, rng).astype(np.float32),
                        "T_gt": T,
                        "viewpoints": (SCANNER_VIEWPOINT.copy(), SCANNER_VIEWPOINT.copy()),
                        "src": a,
                        "tgt": b,
                        "overlap": ov,
                    }
                )
    return out


def bundled_pair() -> Dict:
    """The small real pair shipped with the package: ``P`` (bun000, 2048 points), ``Q`` (bun045,
    2048 points), ``T_gt`` (P -> Q), ``viewpoints``, ``src``, ``tgt``, ``overlap``."""
    if not BUNDLED_PAIR.is_file():
        raise FileNotFoundError(f"bundled scan pair missing: {BUNDLED_PAIR}")
    z = np.load(BUNDLED_PAIR)
    return {
        "P": z["P"],
        "Q": z["Q"],
        "T_gt": z["T_gt"],
        "viewpoints": (SCANNER_VIEWPOINT.copy(), SCANNER_VIEWPOINT.copy()),
        "src": str(z["src"]),
        "tgt": str(z["tgt"]),
        "overlap": float(z["overlap"]),
    }
