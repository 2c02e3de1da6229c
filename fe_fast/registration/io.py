"""Point-cloud, transform and pair-list files for registration.

:func:`read_cloud` reads ``.ply .pcd .xyz .xyzn .xyzrgb .pts`` (Open3D), ``.npy`` (numpy [N, 3])
and ``.txt`` / ``.csv`` (numpy text, 3 columns) into a float64 array [N, 3]. A file that cannot
be registered is refused with one ``ValueError`` line naming the file: not readable, not N x 3
numbers, empty, fewer than 3 points, NaN / infinite coordinates, or every point on one line (no
rotation about that line could be recovered). A cloud larger than ``max_points`` is not refused:
a random ``max_points`` of its points are kept (seeded) and a :class:`CloudSubsampled` warning
says so (HOUV subsamples to its schedule's point counts anyway, thesis §3.3.2).

:func:`read_pairs` reads the pair list of :func:`fe_fast.datasets.partial_pairs.save_pairs`
(``src,tgt[,name,gt,src_viewpoint,tgt_viewpoint]``); :func:`result_dict` is one registration
result as plain JSON-ready values.
"""
from __future__ import annotations

import csv
import json
import warnings
from pathlib import Path

import numpy as np

__all__ = ["CLOUD_FORMATS", "MAX_POINTS", "CloudSubsampled", "read_cloud", "write_cloud", "read_transform",
           "write_transform", "read_pairs", "write_rows", "result_dict"]

OPEN3D_EXT = (".ply", ".pcd", ".xyz", ".xyzn", ".xyzrgb", ".pts")
NUMPY_TEXT_EXT = (".txt", ".csv")
#: Every suffix :func:`read_cloud` reads.
CLOUD_FORMATS = (".npy", *NUMPY_TEXT_EXT, *OPEN3D_EXT)
#: Larger clouds are subsampled to this many points by :func:`read_cloud`.
MAX_POINTS = 1_000_000


class CloudSubsampled(UserWarning):
    """:func:`read_cloud` kept a random ``max_points`` of a larger cloud."""


class _Refused(ValueError):
    """A file refused with its own message."""


def _load(p: Path, ext: str, name: str):
    if ext == ".npy":
        return np.load(p, allow_pickle=False)
    if ext in NUMPY_TEXT_EXT:
        return np.loadtxt(p, delimiter="," if ext == ".csv" else None, ndmin=2)
    import open3d as o3d

    if ext == ".ply" and p.read_bytes()[:3] != b"ply":
        raise _Refused(f"{name}: not a PLY file (no 'ply' magic line)")
    o3d.utility.set_verbosity_level(o3d.utility.VerbosityLevel.Error)
    return np.asarray(o3d.io.read_point_cloud(str(p), format="auto", print_progress=False).points)


def check_cloud(arr, name: str) -> np.ndarray:
    """``arr`` as float64 [N, 3] if it can be registered, else one ``ValueError`` line naming ``name``."""
    arr = np.asarray(arr)
    if arr.dtype.kind not in "fiu":
        raise ValueError(f"{name}: not numeric point data")
    if arr.size == 0:
        raise ValueError(f"{name}: empty point cloud")
    if arr.ndim != 2 or arr.shape[-1] != 3:
        raise ValueError(f"{name}: expected N x 3 points, got shape {list(arr.shape)}")
    arr = arr.astype(np.float64)
    finite = np.isfinite(arr).all(axis=1)
    if not finite.all():
        raise ValueError(f"{name}: {int((~finite).sum())} point(s) with NaN or infinite coordinates")
    if arr.shape[0] < 3:
        raise ValueError(f"{name}: {arr.shape[0]} point(s); registration needs at least 3")
    c = arr - arr.mean(0)
    ev = np.linalg.eigvalsh(c.T @ c / arr.shape[0])  # ascending: spread along the principal axes
    if ev[2] <= 0:
        raise ValueError(f"{name}: all {arr.shape[0]} points coincide")
    if ev[1] <= 1e-12 * ev[2]:
        raise ValueError(f"{name}: all {arr.shape[0]} points lie on one line (the rotation about it is undefined)")
    return arr


def read_cloud(path, *, max_points: int | None = MAX_POINTS, seed: int = 0) -> np.ndarray:
    """Read a point cloud file into float64 [N, 3] (see the module docstring for formats and checks).
    ``max_points``: keep a random ``max_points`` of a larger cloud (in file order; seeded by ``seed``)
    and warn :class:`CloudSubsampled`; ``None`` keeps every point."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    ext = p.suffix.lower()
    if ext not in CLOUD_FORMATS:
        raise ValueError(f"{path}: unsupported format {ext or '(none)'} (use {' '.join(CLOUD_FORMATS)})")
    if max_points is not None and max_points < 3:
        raise ValueError(f"max_points must be >= 3 or None, got {max_points}")
    try:
        arr = _load(p, ext, str(path))
    except _Refused:
        raise
    except Exception as exc:  # numpy / Open3D parse errors of every kind
        raise ValueError(f"{path}: cannot read point cloud ({type(exc).__name__}: {exc})".splitlines()[0]) from None
    arr = check_cloud(arr, str(path))
    if max_points is not None and arr.shape[0] > max_points:
        keep = np.sort(np.random.default_rng(seed).choice(arr.shape[0], max_points, replace=False))
        warnings.warn(f"{path}: {arr.shape[0]} points, registering a random {max_points} of them",
                      CloudSubsampled, stacklevel=2)
        arr = check_cloud(arr[keep], str(path))
    return arr


def write_cloud(path, points) -> Path:
    """Write points [N, 3] as ``.npy``, ``.txt`` / ``.csv`` (numpy text) or an Open3D format."""
    p = Path(path)
    points = np.asarray(points, dtype=np.float64)
    ext = p.suffix.lower()
    if ext == ".npy":
        np.save(p, points)
    elif ext in NUMPY_TEXT_EXT:
        np.savetxt(p, points, delimiter="," if ext == ".csv" else " ")
    elif ext in OPEN3D_EXT:
        import open3d as o3d

        if not o3d.io.write_point_cloud(str(p), o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points))):
            raise ValueError(f"{path}: could not write point cloud")
    else:
        raise ValueError(f"{path}: unsupported format {ext or '(none)'} (use {' '.join(CLOUD_FORMATS)})")
    return p


def read_transform(path) -> np.ndarray:
    """A 4x4 transform (P onto Q) from ``.npy`` or JSON: ``{"transform": [[...] x 4]}`` (what
    :func:`write_transform` writes) or a plain 4x4 list."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    try:
        if p.suffix == ".npy":
            T = np.load(p, allow_pickle=False)
        else:
            data = json.loads(p.read_text())
            T = data.get("transform") if isinstance(data, dict) else data
        T = np.asarray(T, dtype=np.float64)
    except (OSError, TypeError, ValueError) as e:
        raise ValueError(f"{path}: cannot read a transform ({e})".splitlines()[0]) from None
    if T.shape != (4, 4):
        raise ValueError(f"{path}: expected a 4x4 transform (.npy, or JSON {{\"transform\": [[...], ...]}} or a "
                         f"4x4 list), got shape {T.shape}")
    return T


def write_transform(path, T) -> Path:
    """``{"transform": 4x4 list}`` as JSON (what :func:`read_transform` reads)."""
    p = Path(path)
    p.write_text(json.dumps({"transform": np.asarray(T, dtype=np.float64).tolist()}, indent=2) + "\n")
    return p


def parse_point(text, name):
    """'x y z' -> [x, y, z] (None passes through); ``name`` labels the error."""
    if text is None:
        return None
    try:
        xyz = [float(b) for b in text.split()]
    except ValueError:
        raise ValueError(f"{name}: expected three numbers 'x y z', got {text!r}") from None
    if len(xyz) != 3:
        raise ValueError(f"{name}: expected three numbers 'x y z', got {text!r}")
    return xyz


def read_pairs(path) -> list:
    """The pairs of a CSV with columns ``src,tgt[,name,gt,src_viewpoint,tgt_viewpoint]`` (paths
    relative to the CSV's folder, or absolute): one dict per row with ``row``, ``name``, ``src``,
    ``tgt`` (absolute paths), ``gt`` when given, ``viewpoints`` when either viewpoint is given."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise ValueError(f"{path}: no pairs (need a header with src,tgt and at least one row)")
    for k in ("src", "tgt"):
        if k not in rows[0]:
            raise ValueError(f"{path}: missing column {k!r} (header must include src,tgt)")
    base = path.parent

    def resolve(s):
        return str(Path(s) if Path(s).is_absolute() else base / s)

    out = []
    for i, r in enumerate(rows):
        item = {"row": i, "name": r.get("name") or f"pair_{i}", "src": resolve(r["src"]), "tgt": resolve(r["tgt"])}
        if r.get("gt"):
            item["gt"] = resolve(r["gt"])
        vp = tuple(parse_point(r.get(k) or None, f"{path} row {i + 2} column {k}")
                   for k in ("src_viewpoint", "tgt_viewpoint"))
        if vp != (None, None):
            item["viewpoints"] = vp
        out.append(item)
    return out


def write_rows(path, rows) -> Path:
    """One JSON object per line (the rows of :func:`~fe_fast.registration.register_pairs`); the
    folder is created."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with open(p, "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    return p


def result_dict(res) -> dict:
    """A :class:`~fe_fast.registration.RegistrationResult` as JSON-ready values: ``transform``
    (4x4), ``rotation`` (3x3), ``translation`` (3), ``local_cd``, ``loss``, ``seconds``, ``group``,
    ``iters``, ``stage_seconds`` (the seconds of each stage that ran: correspondence, accept, houv,
    flips), ``accepted`` (true when a correspondence start was accepted early) and, with
    correspondence starts, ``ransac_seconds`` (their share of ``seconds``)."""
    stages = res.extra.get("stage_seconds", {})
    return {
        "transform": res.transform.tolist(),
        "rotation": res.R.tolist(),
        "translation": res.t.tolist(),
        "local_cd": res.local_cd,
        "loss": res.loss,
        "seconds": res.seconds,
        "group": res.group,
        "iters": res.iters,
        "stage_seconds": {k: float(v) for k, v in stages.items()},
        "accepted": bool(res.extra.get("accepted", False)),
        **({"ransac_seconds": float(stages["correspondence"])} if "correspondence" in stages else {}),
    }
