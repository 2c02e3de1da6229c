"""MVP-style partial point-cloud pairs for registration benchmarks (thesis §3.3.1, MVP dataset).

Recipe (after the MVP dataset): a mesh normalised to the unit sphere (centred on its bounding-box
centre, farthest vertex at distance 1); 26 camera positions evenly spread on a sphere of radius
``camera_distance`` (the directions of the 3x3x3 grid around the centre, normalised: 6 faces,
12 edges, 8 corners); for each camera, Open3D hidden-point removal on a dense uniform surface
sampling keeps the visible points; two views whose visible sets overlap by at least
``min_overlap`` (intersection over the smaller set) and at most ``max_overlap`` form a pair; each
view is resampled to ``n_points`` (default 2048); a random rigid transform is applied to the
source P; optional Gaussian noise (clipped at 5 sigma) on both clouds.

Protocols for the random transform applied to P:

* ``mvp``: as the MVP challenge: four in five rotations have an angle uniform in [0, 45] degrees
  about a uniformly random axis, one in five is uniform on SO(3); translation uniform in
  [-0.5, 0.5]^3;
* ``so3``: rotation uniform on SO(3), translation uniform in [-0.5, 0.5]^3;
* ``modelnet``: Euler angles each uniform in [-45, 45] degrees, translation uniform in
  [-0.5, 0.5]^3.

Meshes (default ``MESHES``): the Stanford bunny (real scan, zippered reconstruction
``bun_zipper_res3.ply`` bundled in ``fe_fast/data``; see its PROVENANCE note) and eight asymmetric
``compound<k>`` objects, each a seeded union of Open3D primitives (box, cylinder, cone, torus). The
single primitives (``SYMMETRIC_PRIMITIVES``: box, cylinder, cone, torus, arrow, Moebius strip,
platonic solids, capsule) can be requested by name but are not in the default list: their symmetries
make the ground truth ambiguous (a correct alignment of a tetrahedron can be 120 degrees from the
stored transform), which the rotation-error metric would count as failures.

Each pair is a dict: ``P`` (source, float32 [N, 3], already moved), ``Q`` (target), ``T_gt``
(float64 4x4 with ``Q ~ R P + t``), ``viewpoints`` (the two cameras' centres, each in its own cloud's
frame: the source's moved with P), ``mesh``, ``views`` (i, j), ``overlap``, ``protocol``.
Everything is seeded: pair ``i`` of ``make_pairs(k, seed=s)`` depends only on (s, i).
"""
from __future__ import annotations

import csv
import functools
import math
from pathlib import Path
from typing import Dict, Iterator, List, Sequence

import numpy as np

from fe_fast._open3d import require_open3d

__all__ = [
    "PROTOCOLS",
    "MESHES",
    "camera_positions",
    "load_mesh",
    "random_transform",
    "make_pair",
    "make_pairs",
    "iter_pairs",
    "save_pairs",
    "load_pairs",
]

PROTOCOLS = ("mvp", "so3", "modelnet")
SYMMETRIC_PRIMITIVES = (
    "box",
    "cylinder",
    "cone",
    "torus",
    "arrow",
    "moebius",
    "icosahedron",
    "octahedron",
    "tetrahedron",
    "capsule",
)
COMPOUNDS = tuple(f"compound{k}" for k in range(8))
MESHES = ("bunny",) + COMPOUNDS
ALL_MESHES = MESHES + SYMMETRIC_PRIMITIVES
DATA_DIR = Path(__file__).resolve().parent.parent / "data"
BUNNY_MESH = DATA_DIR / "bun_zipper_res3.ply"


def _o3d():
    return require_open3d("fe_fast.datasets.partial_pairs")


def camera_positions(distance: float = 3.0) -> np.ndarray:
    """26 camera centres evenly spread on a sphere of radius ``distance``: the normalised
    directions from the centre of a 3x3x3 grid to its 26 other cells (as MVP's 26 poses)."""
    d = np.array(
        [(x, y, z) for x in (-1, 0, 1) for y in (-1, 0, 1) for z in (-1, 0, 1) if (x, y, z) != (0, 0, 0)],
        dtype=np.float64,
    )
    return distance * d / np.linalg.norm(d, axis=1, keepdims=True)


@functools.lru_cache(maxsize=None)
def _mesh_vertices_faces(name: str):
    o3d = _o3d()
    g = o3d.geometry.TriangleMesh
    if name == "bunny":
        m = o3d.io.read_triangle_mesh(str(BUNNY_MESH))
        if len(m.vertices) == 0:
            raise FileNotFoundError(f"bundled bunny mesh missing or unreadable: {BUNNY_MESH}")
    elif name.startswith("compound") and name[8:].isdigit():
        m = _compound(int(name[8:]))
    elif name == "box":
        m = g.create_box(1.0, 0.6, 0.35)
    elif name == "cylinder":
        m = g.create_cylinder(radius=0.4, height=1.5, resolution=40, split=8)
    elif name == "cone":
        m = g.create_cone(radius=0.6, height=1.4, resolution=40, split=8)
    elif name == "torus":
        m = g.create_torus(torus_radius=1.0, tube_radius=0.3, radial_resolution=40, tubular_resolution=24)
    elif name == "arrow":
        m = g.create_arrow(cylinder_radius=0.15, cone_radius=0.3, cylinder_height=1.2, cone_height=0.6)
    elif name == "moebius":
        m = g.create_mobius(length_split=80, width_split=10, twists=1, raidus=1, flatness=1, width=0.6, scale=1)
    elif name == "icosahedron":
        m = g.create_icosahedron()
    elif name == "octahedron":
        m = g.create_octahedron()
    elif name == "tetrahedron":
        m = g.create_tetrahedron()
    elif name == "capsule":
        # a cylinder with a sphere at one end only (a symmetric capsule is too symmetric)
        a = g.create_cylinder(radius=0.3, height=1.2, resolution=40, split=6)
        b = g.create_sphere(radius=0.45, resolution=20)
        b.translate((0.0, 0.0, 0.6))
        m = a + b
    else:
        raise ValueError(f"unknown mesh {name!r}; choose from {', '.join(ALL_MESHES)} or compound<k>")
    v = np.asarray(m.vertices, dtype=np.float64)
    f = np.asarray(m.triangles, dtype=np.int64)
    c = (v.max(0) + v.min(0)) / 2
    v = v - c
    v = v / np.linalg.norm(v, axis=1).max()
    return v, f


def _compound(k: int):
    """Asymmetric object ``compound<k>``: a box, a cylinder, a cone and a torus with sizes, rotations
    and offsets drawn from ``default_rng(k)`` (each primitive alone is symmetric; the union is not)."""
    o3d = _o3d()
    g = o3d.geometry.TriangleMesh
    rng = np.random.default_rng([1234, k])
    parts = [
        g.create_box(*rng.uniform(0.3, 1.0, 3)),
        g.create_cylinder(radius=rng.uniform(0.1, 0.3), height=rng.uniform(0.5, 1.2), resolution=24, split=4),
        g.create_cone(radius=rng.uniform(0.15, 0.35), height=rng.uniform(0.4, 0.9), resolution=24, split=4),
        g.create_torus(torus_radius=rng.uniform(0.2, 0.4), tube_radius=0.08, radial_resolution=24,
                       tubular_resolution=12),
    ]
    m = g()
    for part in parts:
        part.rotate(_uniform_rotation(rng), center=(0, 0, 0))
        part.translate(rng.uniform(-0.5, 0.5, 3))
        m += part
    return m


def load_mesh(name: str):
    """The named mesh as an Open3D TriangleMesh normalised to the unit sphere."""
    o3d = _o3d()
    v, f = _mesh_vertices_faces(name)
    return o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(v), o3d.utility.Vector3iVector(f))


def _uniform_rotation(rng: np.random.Generator) -> np.ndarray:
    q = rng.normal(size=4)
    q /= np.linalg.norm(q)
    return _quat_to_matrix(q)


def _quat_to_matrix(q) -> np.ndarray:
    x, y, z, w = q
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def _axis_angle(axis, angle) -> np.ndarray:
    a = np.asarray(axis, dtype=np.float64)
    a = a / np.linalg.norm(a)
    K = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return np.eye(3) + math.sin(angle) * K + (1 - math.cos(angle)) * K @ K


def random_transform(protocol: str, rng: np.random.Generator, max_translation: float = 0.5) -> np.ndarray:
    """A random 4x4 rigid transform under ``protocol`` (``mvp``, ``so3`` or ``modelnet``; see the
    module docstring)."""
    if protocol == "mvp":
        if rng.random() < 0.8:
            R = _axis_angle(rng.normal(size=3), rng.uniform(0, math.radians(45)))
        else:
            R = _uniform_rotation(rng)
    elif protocol == "so3":
        R = _uniform_rotation(rng)
    elif protocol == "modelnet":
        ax, ay, az = rng.uniform(-math.radians(45), math.radians(45), size=3)
        R = _axis_angle([0, 0, 1], az) @ _axis_angle([0, 1, 0], ay) @ _axis_angle([1, 0, 0], ax)
    else:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    T = np.eye(4)
    T[:3, :3] = R
    T[:3, 3] = rng.uniform(-max_translation, max_translation, size=3)
    return T


@functools.lru_cache(maxsize=64)
def _views(name: str, dense: int, camera_distance: float, sample_seed: int):
    """Dense surface sampling of the mesh and the visible index set from each of the 26 cameras."""
    o3d = _o3d()
    mesh = load_mesh(name)
    o3d.utility.random.seed(int(sample_seed))
    pcd = mesh.sample_points_uniformly(number_of_points=dense)
    pts = np.asarray(pcd.points).copy()
    cams = camera_positions(camera_distance)
    radius = camera_distance * 100.0
    vis = []
    for c in cams:
        _, idx = pcd.hidden_point_removal(c.tolist(), radius)
        vis.append(np.unique(np.asarray(idx, dtype=np.int64)))
    return pts, vis


def _overlap(a: np.ndarray, b: np.ndarray) -> float:
    inter = np.intersect1d(a, b, assume_unique=True).size
    return inter / max(1, min(a.size, b.size))


def _resample(pts: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    replace = pts.shape[0] < n
    return pts[rng.choice(pts.shape[0], size=n, replace=replace)]


def make_pair(
    index: int,
    *,
    protocol: str = "mvp",
    n_points: int = 2048,
    seed: int = 0,
    meshes: Sequence[str] = MESHES,
    noise_std: float = 0.0,
    min_overlap: float = 0.3,
    max_overlap: float = 0.95,
    dense: int = 10000,
    camera_distance: float = 3.0,
) -> Dict:
    """Pair number ``index`` of the seeded sequence (see the module docstring)."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    if n_points < 1:
        raise ValueError(f"n_points must be >= 1, got {n_points}")
    if not (0 <= min_overlap <= max_overlap <= 1):
        raise ValueError("need 0 <= min_overlap <= max_overlap <= 1")
    if noise_std < 0:
        raise ValueError("noise_std must be >= 0")
    rng = np.random.default_rng([int(seed), int(index), PROTOCOLS.index(protocol)])
    name = meshes[int(rng.integers(len(meshes)))]
    pts, vis = _views(name, int(dense), float(camera_distance), int(seed))
    cands = [
        (i, j, _overlap(vis[i], vis[j]))
        for i in range(len(vis))
        for j in range(len(vis))
        if i != j and vis[i].size > 0 and vis[j].size > 0
    ]
    cands = [c for c in cands if min_overlap <= c[2] <= max_overlap]
    if not cands:
        raise ValueError(f"mesh {name!r}: no two views overlap within [{min_overlap}, {max_overlap}]")
    i, j, ov = cands[int(rng.integers(len(cands)))]
    P = _resample(pts[vis[i]], n_points, rng)
    Q = _resample(pts[vis[j]], n_points, rng)
    if noise_std > 0:
        P = P + np.clip(rng.normal(0, noise_std, P.shape), -5 * noise_std, 5 * noise_std)
        Q = Q + np.clip(rng.normal(0, noise_std, Q.shape), -5 * noise_std, 5 * noise_std)
    T = random_transform(protocol, rng)
    P = P @ T[:3, :3].T + T[:3, 3]
    T_gt = np.linalg.inv(T)  # maps the moved P back onto Q's frame
    cams = camera_positions(camera_distance)
    return pair_record(P, Q, T_gt, (T[:3, :3] @ cams[i] + T[:3, 3], cams[j]), name, (int(i), int(j)), ov,
                       protocol, index)


def pair_record(P, Q, T_gt, viewpoints, mesh: str, views, overlap, protocol: str, index: int, **extra) -> Dict:
    """The dict of one pair (this module's and :mod:`fe_fast.datasets.range_scans`'): P and Q as
    float32, ``extra`` fields (in their order) after ``overlap``."""
    return {
        "P": P.astype(np.float32),
        "Q": Q.astype(np.float32),
        "T_gt": T_gt,
        "viewpoints": viewpoints,
        "mesh": mesh,
        "views": views,
        "overlap": float(overlap),
        **extra,
        "protocol": protocol,
        "index": int(index),
    }


def generate_pairs(make, count: int, kwargs: Dict) -> Iterator[Dict]:
    """``make(i, **kwargs)`` for i = 0 .. count-1, one at a time."""
    for i in range(int(count)):
        yield make(i, **kwargs)


def iter_pairs(count: int, **kwargs) -> Iterator[Dict]:
    """Pairs 0 .. count-1 (keyword arguments as :func:`make_pair`)."""
    return generate_pairs(make_pair, count, kwargs)


def make_pairs(count: int, **kwargs) -> List[Dict]:
    """List of ``count`` pairs (keyword arguments as :func:`make_pair`)."""
    return list(iter_pairs(count, **kwargs))


def save_pairs(pairs: Sequence[Dict], out_dir) -> Path:
    """Write pairs under ``out_dir`` (pair k is named ``<k>_<protocol>``): ``<name>_src.npy``, ``<name>_tgt.npy``, ``<name>_gt.npy`` per
    pair and ``pairs.csv`` (columns name, src, tgt, gt, mesh, overlap, protocol, src_viewpoint,
    tgt_viewpoint; paths relative to the CSV), the input format of ``fe-fast register-batch``. Returns the CSV path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for k, p in enumerate(pairs):
        name = f"{k:05d}_{p.get('protocol') or 'pair'}"
        for suffix, arr in (("src", p["P"]), ("tgt", p["Q"]), ("gt", p["T_gt"])):
            np.save(out / f"{name}_{suffix}.npy", np.asarray(arr))
        rows.append(
            {
                "name": name,
                "src": f"{name}_src.npy",
                "tgt": f"{name}_tgt.npy",
                "gt": f"{name}_gt.npy",
                "mesh": p.get("mesh", ""),
                "overlap": f"{p.get('overlap', float('nan')):.4f}",
                "protocol": p.get("protocol", ""),
                **{k: " ".join(f"{float(x):.9g}" for x in v) if v is not None else ""
                   for k, v in zip(("src_viewpoint", "tgt_viewpoint"), p.get("viewpoints") or (None, None))},
            }
        )
    csv_path = out / "pairs.csv"
    with open(csv_path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0].keys()) if rows else ["name", "src", "tgt", "gt"])
        w.writeheader()
        w.writerows(rows)
    return csv_path


def load_pairs(csv_path) -> List[Dict]:
    """Read pairs written by :func:`save_pairs`."""
    csv_path = Path(csv_path)
    base = csv_path.parent
    out = []
    with open(csv_path, newline="") as f:
        for row in csv.DictReader(f):
            d = {
                "name": row["name"],
                "P": np.load(base / row["src"]),
                "Q": np.load(base / row["tgt"]),
                "mesh": row.get("mesh", ""),
                "protocol": row.get("protocol", ""),
            }
            if row.get("gt"):
                d["T_gt"] = np.load(base / row["gt"])
            if row.get("overlap"):
                d["overlap"] = float(row["overlap"])
            if row.get("src_viewpoint") or row.get("tgt_viewpoint"):
                d["viewpoints"] = tuple(np.array(row[k].split(), dtype=np.float64) if row.get(k) else None
                                        for k in ("src_viewpoint", "tgt_viewpoint"))
            out.append(d)
    return out
