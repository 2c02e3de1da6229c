"""Virtual range scans of procedural objects: registration pairs that look like real scans.

Unlike :mod:`fe_fast.datasets.partial_pairs` (hidden-point removal on a uniform surface sampling),
each view here is what a range sensor records:

* a pinhole camera at ``eye`` looking at ``target``; one ray per cell of a regular ``W x H`` grid in
  the image plane (so the sampling density falls with depth and with the surface's slant, as in a
  real scan), intersected with the mesh by Open3D's ``RaycastingScene.cast_rays`` (first hit);
* noise along the ray: the range gets a Gaussian error of standard deviation
  ``sigma(z) = noise[0] + noise[1] * z^2`` (z: depth along the optical axis, in the mesh's units;
  the quadratic growth of triangulation sensors), clipped at 5 sigma;
* missing returns: rays meeting the surface at a grazing angle, ``|cos(normal, ray)| < grazing_cos``,
  return nothing; every other return is dropped with probability ``dropout``;
* the returns are subsampled (without replacement) to ``n_points``.

Pairs (:func:`make_scan_pair`): two neighbouring views of one object, their viewing directions
``view_angle`` degrees apart (default 20-60), each at a distance drawn from ``distance``; the
overlap is measured (below) and the views are redrawn until it lies in ``[min_overlap,
max_overlap]``; the source P is then moved by a random rigid transform
(:func:`~fe_fast.datasets.partial_pairs.random_transform`). The dict has the keys of
:func:`~fe_fast.datasets.partial_pairs.make_pair` (``P``, ``Q``, ``T_gt`` with ``Q ~ R P + t``,
``viewpoints``, ``mesh``, ``views``, ``overlap``, ``protocol``, ``index``), so ``save_pairs`` and
the benchmarks take it unchanged, plus ``overlaps`` (both directions), ``angle`` (degrees between the
viewing directions) and ``sigma`` (each view's median noise standard deviation).

Overlap: the share of one view's (noise-free) returns that the other sensor would also record:
inside its field of view, the first hit of the ray from its eye (within 0.5 % of the object radius),
not grazing. ``overlap`` is the smaller of the two shares.

Units: objects are normalised to the unit sphere, then scaled to radius ``scale`` (default 0.125: an
object 0.25 m across, in metres); the default noise (0.1 mm + 0.5 mm/m^2 z^2) is about 0.3 mm at
0.6 m.

Objects (:func:`object_mesh`; names ``family:seed``, each a deterministic function of its name):

* ``blob:<s>``: a star-shaped blob, a sphere whose radius carries 3-7 von Mises bumps and dents,
  stretched along random axes;
* ``sq:<s>``: a chain of 2-4 superquadrics (boxy to pinched), each attached to the previous one;
* ``nearsym:<s>``: one superquadric with three different semi-axes, mildly tapered and bent (without
  these it is symmetric under the half-turns about its axes and under three mirrors), plus one small
  nub off its axes: a half-turn flip of a partial view fits nearly as well as the truth;
* ``beads:<s>``: a bent chain of 4-7 ellipsoids of varying size (held-out family, below);
* ``compound<k>`` and the primitives of :mod:`~fe_fast.datasets.partial_pairs`.

Choosing and held-out objects (:func:`split_objects`), the rule: settings may be chosen only on
``blob``, ``sq`` and ``nearsym`` with seeds below ``HELD_OUT_SEED`` (10000) and on
``partial_pairs.COMPOUNDS`` (already used for earlier choices); reports use the same families
with seeds from ``HELD_OUT_SEED`` on and the whole ``beads`` family, which is never chosen on (a new
shape family as well as new shapes). The bunny mesh is in neither list: it is the union of the real
bunny scans, so it would leak the real report scans into the choosing set (:func:`is_held_out`
refuses it).
"""
from __future__ import annotations

import functools
import math
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from fe_fast._open3d import require_open3d
from fe_fast.datasets import partial_pairs as _pp

__all__ = [
    "FAMILIES",
    "CHOOSE_FAMILIES",
    "HELD_OUT_FAMILIES",
    "HELD_OUT_SEED",
    "object_mesh",
    "split_objects",
    "is_held_out",
    "look_at",
    "range_scan",
    "make_scan_pair",
    "make_scan_pairs",
    "iter_scan_pairs",
]

CHOOSE_FAMILIES = ("blob", "sq", "nearsym")
HELD_OUT_FAMILIES = ("beads",)
FAMILIES = CHOOSE_FAMILIES + HELD_OUT_FAMILIES
HELD_OUT_SEED = 10000


# ----------------------------------------------------------------------------------------------
# Procedural objects
# ----------------------------------------------------------------------------------------------
def _uv_grid(n_lat: int = 48, n_lon: int = 96):
    """Latitude/longitude of a UV sphere's vertices (two poles + n_lat - 1 rings) and its faces."""
    eta = np.linspace(-math.pi / 2, math.pi / 2, n_lat + 1)[1:-1]
    om = np.linspace(-math.pi, math.pi, n_lon, endpoint=False)
    E, O = np.meshgrid(eta, om, indexing="ij")
    eta_v = np.concatenate([[-math.pi / 2], E.ravel(), [math.pi / 2]])
    om_v = np.concatenate([[0.0], O.ravel(), [0.0]])
    rings = n_lat - 1
    idx = 1 + np.arange(rings * n_lon).reshape(rings, n_lon)
    nxt = np.roll(idx, -1, axis=1)
    faces = [np.stack([np.zeros(n_lon, np.int64), nxt[0], idx[0]], 1)]
    for r in range(rings - 1):
        a, b, c, d = idx[r], nxt[r], idx[r + 1], nxt[r + 1]
        faces += [np.stack([a, b, d], 1), np.stack([a, d, c], 1)]
    top = rings * n_lon + 1
    faces.append(np.stack([idx[-1], nxt[-1], np.full(n_lon, top, np.int64)], 1))
    return eta_v, om_v, np.concatenate(faces).astype(np.int64)


def _spow(x, e):
    return np.sign(x) * np.abs(x) ** e


def _superquadric(axes, e1: float, e2: float, n_lat: int = 40, n_lon: int = 80):
    eta, om, f = _uv_grid(n_lat, n_lon)
    ce, se = np.cos(eta), np.sin(eta)
    v = np.stack([axes[0] * _spow(ce, e1) * _spow(np.cos(om), e2),
                  axes[1] * _spow(ce, e1) * _spow(np.sin(om), e2),
                  axes[2] * _spow(se, e1)], 1)
    return v, f


def _directions(eta, om):
    return np.stack([np.cos(eta) * np.cos(om), np.cos(eta) * np.sin(om), np.sin(eta)], 1)


def _unit(rng):
    d = rng.normal(size=3)
    return d / np.linalg.norm(d)


def _merge(parts):
    """Concatenate meshes (the ray caster's first hit makes overlapping parts a union)."""
    vs, fs, n = [], [], 0
    for v, f in parts:
        vs.append(v)
        fs.append(f + n)
        n += v.shape[0]
    return np.concatenate(vs), np.concatenate(fs)


def _placed(v, R, c):
    return v @ R.T + c


def _blob(rng):
    eta, om, f = _uv_grid(56, 112)
    d = _directions(eta, om)
    r = np.ones(d.shape[0])
    for _ in range(int(rng.integers(3, 8))):
        c = _unit(rng)
        amp = rng.uniform(-0.3, 0.6)
        kappa = rng.uniform(4.0, 20.0)
        r += amp * np.exp(kappa * (d @ c - 1.0))
    v = d * r[:, None] * np.array([1.0, rng.uniform(0.55, 1.0), rng.uniform(0.45, 0.9)])
    return _placed(v, _pp._uniform_rotation(rng), np.zeros(3)), f


def _sq_chain(rng):
    parts, c = [], np.zeros(3)
    prev = 0.0
    for k in range(int(rng.integers(2, 5))):
        axes = rng.uniform(0.2, 0.6, 3)
        v, f = _superquadric(axes, rng.uniform(0.25, 1.5), rng.uniform(0.25, 1.5))
        if k > 0:
            c = c + _unit(rng) * 0.6 * (prev + axes.max())
        parts.append((_placed(v, _pp._uniform_rotation(rng), c), f))
        prev = axes.max()
    return _merge(parts)


def _nearsym(rng):
    axes = np.array([1.0, rng.uniform(0.45, 0.75), rng.uniform(0.25, 0.45)])
    e1, e2 = rng.uniform(0.5, 1.2), rng.uniform(0.5, 1.2)
    bv, bf = _superquadric(axes, e1, e2, 48, 96)
    # a mild taper along x and bend in z: without them the body is exactly symmetric under three
    # half-turns and a flipped partial view can fit better than the truth (nothing left to tell them apart)
    taper, bend = rng.uniform(0.08, 0.2), rng.uniform(0.05, 0.15)
    bv = bv * np.stack([np.ones(len(bv)), 1 + taper * bv[:, 0], 1 + taper * bv[:, 0]], 1)
    bv[:, 2] += bend * bv[:, 0] ** 2
    body = (bv, bf)
    # a nub on the surface, off the three symmetry planes (every coordinate of its direction non-zero)
    s = rng.choice([-1.0, 1.0], 3) * rng.uniform(0.35, 0.8, 3)
    s /= np.linalg.norm(s)
    eta, om = math.asin(s[2]), math.atan2(s[1], s[0])
    on = np.array([axes[0] * _spow(math.cos(eta), e1) * _spow(math.cos(om), e2),
                   axes[1] * _spow(math.cos(eta), e1) * _spow(math.sin(om), e2),
                   axes[2] * _spow(math.sin(eta), e1)])
    on = on * np.array([1.0, 1 + taper * on[0], 1 + taper * on[0]])
    on[2] += bend * on[0] ** 2
    rad = rng.uniform(0.1, 0.18)
    nub_v, nub_f = _superquadric(np.full(3, rad), 1.0, 1.0, 16, 32)
    return _merge([body, (nub_v + on, nub_f)])


def _beads(rng):
    parts, c = [], np.zeros(3)
    heading = _unit(rng)
    prev = 0.0
    for k in range(int(rng.integers(4, 8))):
        axes = rng.uniform(0.15, 0.4, 3)
        if k > 0:
            heading = heading + 0.8 * _unit(rng)
            heading /= np.linalg.norm(heading)
            c = c + heading * 0.7 * (prev + axes.max())
        v, f = _superquadric(axes, 1.0, 1.0, 24, 48)
        parts.append((_placed(v, _pp._uniform_rotation(rng), c), f))
        prev = axes.max()
    return _merge(parts)


_BUILDERS = {"blob": _blob, "sq": _sq_chain, "nearsym": _nearsym, "beads": _beads}


def _parse(name: str) -> Tuple[str, Optional[int]]:
    if not isinstance(name, str):
        raise ValueError(f"object name must be a string, got {name!r}")
    fam, sep, seed = name.partition(":")
    if sep:
        if fam not in _BUILDERS or not seed.isdigit():
            raise ValueError(f"unknown object {name!r}; procedural objects are <family>:<seed> with family in "
                             f"{', '.join(FAMILIES)} and seed a non-negative integer")
        return fam, int(seed)
    return name, None


@functools.lru_cache(maxsize=64)
def object_mesh(name: str) -> Tuple[np.ndarray, np.ndarray]:
    """Vertices [V, 3] (float64, centred on the bounding-box centre, farthest vertex at distance 1)
    and triangles [F, 3] (int64) of ``name``: ``family:seed`` (see the module docstring) or a mesh of
    :mod:`~fe_fast.datasets.partial_pairs` (``compound<k>``, the primitives, ``bunny``). Read-only
    arrays (cached)."""
    fam, seed = _parse(name)
    if seed is None:
        v, f = _pp._mesh_vertices_faces(name)
        v, f = v.copy(), f.copy()
    else:
        v, f = _BUILDERS[fam](np.random.default_rng([7919, FAMILIES.index(fam), seed]))
    c = (v.max(0) + v.min(0)) / 2
    v = v - c
    v = v / np.linalg.norm(v, axis=1).max()
    v.setflags(write=False)
    f = np.ascontiguousarray(f, dtype=np.int64)
    f.setflags(write=False)
    return v, f


def is_held_out(name: str) -> bool:
    """Whether ``name`` belongs to the held-out (report) objects of :func:`split_objects`'s rule.
    ``bunny`` raises ValueError: it may be used on neither side (the real scans are its union)."""
    fam, seed = _parse(name)
    if fam == "bunny":
        raise ValueError("the bunny mesh is the union of the real bunny scans: it may be neither a choosing "
                         "nor a held-out object (split the real scans by scan instead)")
    if seed is None:
        return False  # compound<k> and primitives: already used for choosing
    return fam in HELD_OUT_FAMILIES or seed >= HELD_OUT_SEED


def split_objects(n_per_family: int = 8) -> Tuple[List[str], List[str]]:
    """``(choose, held_out)`` object names under the rule of the module docstring: ``choose`` holds
    seeds ``0 .. n-1`` of each of ``CHOOSE_FAMILIES`` and ``partial_pairs.COMPOUNDS``;
    ``held_out`` holds seeds ``HELD_OUT_SEED .. HELD_OUT_SEED + n - 1`` of the same families and seeds
    ``0 .. n-1`` of ``HELD_OUT_FAMILIES``. Neither holds the bunny."""
    n = int(n_per_family)
    if n < 1 or n > HELD_OUT_SEED:
        raise ValueError(f"n_per_family must be in [1, {HELD_OUT_SEED}], got {n_per_family}")
    choose = [f"{fam}:{s}" for fam in CHOOSE_FAMILIES for s in range(n)] + list(_pp.COMPOUNDS)
    held = [f"{fam}:{HELD_OUT_SEED + s}" for fam in CHOOSE_FAMILIES for s in range(n)]
    held += [f"{fam}:{s}" for fam in HELD_OUT_FAMILIES for s in range(n)]
    return choose, held


# ----------------------------------------------------------------------------------------------
# Scanner
# ----------------------------------------------------------------------------------------------
def look_at(eye, target, up=None) -> np.ndarray:
    """Camera frame [3, 3], rows: image x (right), image y (down), optical axis (towards target)."""
    eye, target = np.asarray(eye, np.float64), np.asarray(target, np.float64)
    z = target - eye
    if not np.linalg.norm(z) > 0:
        raise ValueError("eye and target must differ")
    z = z / np.linalg.norm(z)
    up = np.array([0.0, 0.0, 1.0]) if up is None else np.asarray(up, np.float64)
    x = np.cross(z, up)
    if np.linalg.norm(x) < 1e-6:
        x = np.cross(z, [1.0, 0.0, 0.0] if abs(z[0]) < 0.9 else [0.0, 1.0, 0.0])
    x /= np.linalg.norm(x)
    return np.stack([x, np.cross(z, x), z])


@functools.lru_cache(maxsize=8)
def _scene(name: str, scale: float):
    o3d = require_open3d("fe_fast.datasets.range_scans")
    v, f = object_mesh(name)
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.core.Tensor((v * scale).astype(np.float32)), o3d.core.Tensor(f.astype(np.uint32)))
    return scene


def _cast(scene, origins, dirs):
    o3d = require_open3d("fe_fast.datasets.range_scans")
    rays = np.concatenate([np.broadcast_to(origins, dirs.shape), dirs], 1).astype(np.float32)
    ans = scene.cast_rays(o3d.core.Tensor(rays))
    return ans["t_hit"].numpy().astype(np.float64), ans["primitive_normals"].numpy().astype(np.float64)


def _fov_for(eye, target, radius) -> float:
    """Full field of view (degrees) that frames a sphere of ``radius`` around target, 10 % margin."""
    dist = float(np.linalg.norm(np.asarray(target) - np.asarray(eye)))
    if dist <= radius * 1.1:
        raise ValueError(f"the eye ({dist:.4g} from the target) must be farther than the object radius "
                         f"({radius:.4g}) x 1.1")
    return 2 * math.degrees(math.asin(1.1 * radius / dist))


def range_scan(name: str, eye, target=(0.0, 0.0, 0.0), *, up=None, scale: float = 0.125,
               fov_deg: Optional[float] = None, resolution: int = 192, noise=(1e-4, 5e-4),
               grazing_cos: float = 0.2, dropout: float = 0.02,
               rng: Optional[np.random.Generator] = None) -> Dict[str, np.ndarray]:
    """One virtual range scan of object ``name`` (radius ``scale``) from a pinhole camera at ``eye``
    looking at ``target`` (module docstring): ``resolution x resolution`` rays on a regular grid of
    the image plane, field of view ``fov_deg`` (default: frames the object with a 10 % margin).

    Returns ``points`` [n, 3] (noisy returns, object frame), ``clean`` [n, 3] (the same returns
    without noise), ``depth`` [n] (along the optical axis), ``cos`` [n] (``|cos(normal, ray)|``),
    ``sigma`` [n] (the noise standard deviation of each return), ``pixel`` [n, 2] (column, row), and
    ``fov_deg`` and ``frame`` (the camera frame of :func:`look_at`)."""
    if rng is None:
        rng = np.random.default_rng(0)
    if not scale > 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    if int(resolution) < 2:
        raise ValueError(f"resolution must be >= 2, got {resolution}")
    a, b = (float(x) for x in noise)
    if a < 0 or b < 0:
        raise ValueError(f"noise must be two numbers >= 0 (sigma = a + b z^2), got {noise}")
    if not 0 <= grazing_cos < 1:
        raise ValueError(f"grazing_cos must be in [0, 1), got {grazing_cos}")
    if not 0 <= dropout < 1:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    eye = np.asarray(eye, np.float64)
    target = np.asarray(target, np.float64)
    frame = look_at(eye, target, up)
    fov = _fov_for(eye, target, scale) if fov_deg is None else float(fov_deg)
    if not 0 < fov < 180:
        raise ValueError(f"fov_deg must be in (0, 180), got {fov_deg}")
    W = int(resolution)
    half = math.tan(math.radians(fov) / 2)
    g = (np.arange(W) + 0.5) / W * 2 - 1  # cell centres on [-1, 1]
    gy, gx = np.meshgrid(g, g, indexing="ij")
    d = frame[2] + half * (gx.reshape(-1, 1) * frame[0] + gy.reshape(-1, 1) * frame[1])
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    t, n = _cast(_scene(name, float(scale)), eye, d)
    hit = np.isfinite(t)
    cos = np.abs(np.sum(n * d, 1))
    keep = hit & (cos >= grazing_cos) & (rng.random(t.shape[0]) >= dropout)
    t, d, cos = t[keep], d[keep], cos[keep]
    depth = t * (d @ frame[2])
    sigma = a + b * depth ** 2
    err = np.clip(rng.normal(size=t.shape[0]), -5, 5) * sigma
    clean = eye + d * t[:, None]
    idx = np.flatnonzero(keep)
    return {
        "points": eye + d * (t + err)[:, None],
        "clean": clean,
        "depth": depth,
        "cos": cos,
        "sigma": sigma,
        "pixel": np.stack([idx % W, idx // W], 1),
        "fov_deg": fov,
        "frame": frame,
    }


def _seen_share(points, scene, eye, frame, fov_deg, grazing_cos, tol) -> float:
    """Share of ``points`` (on the surface) that a sensor at ``eye`` records (see the module docstring)."""
    rel = (points - eye) @ frame.T
    half = math.tan(math.radians(fov_deg) / 2)
    infov = (rel[:, 2] > 0) & (np.abs(rel[:, 0]) <= half * rel[:, 2]) & (np.abs(rel[:, 1]) <= half * rel[:, 2])
    dist = np.linalg.norm(points - eye, axis=1)
    d = (points - eye) / dist[:, None]
    t, n = _cast(scene, eye, d)
    first = np.abs(t - dist) <= tol
    steep = np.abs(np.sum(n * d, 1)) >= grazing_cos
    return float(np.mean(infov & first & steep))


def _rotate_towards(d, angle, rng):
    """Direction at ``angle`` (radians) from unit vector d, in a random direction."""
    p = _unit(rng)
    p = p - (p @ d) * d
    p /= np.linalg.norm(p)
    return math.cos(angle) * d + math.sin(angle) * p


def make_scan_pair(
    index: int,
    *,
    objects: Optional[Sequence[str]] = None,
    seed: int = 0,
    n_points: int = 2048,
    scale: float = 0.125,
    distance=(0.45, 0.75),
    view_angle=(20.0, 60.0),
    min_overlap: float = 0.3,
    max_overlap: float = 0.95,
    noise=(1e-4, 5e-4),
    grazing_cos: float = 0.2,
    dropout: float = 0.02,
    resolution: int = 192,
    protocol: str = "so3",
    max_translation: Optional[float] = None,
    max_tries: int = 40,
) -> Dict:
    """Pair number ``index`` of the seeded sequence of virtual-scan pairs (module docstring); depends
    only on (seed, index) and the arguments. ``objects`` default: the choosing objects of
    :func:`split_objects` (the bunny is refused). ``max_translation`` of the random transform
    (default: 2 x ``scale``). Raises ValueError when ``max_tries`` view draws miss the overlap range
    or a view has fewer than ``n_points`` returns."""
    if objects is None:
        objects = split_objects()[0]
    objects = list(objects)
    if not objects:
        raise ValueError("objects must name at least one object")
    for o in objects:
        is_held_out(o)  # validates the name, refuses the bunny
    if protocol not in _pp.PROTOCOLS:
        raise ValueError(f"protocol must be one of {_pp.PROTOCOLS}, got {protocol!r}")
    if int(n_points) < 3:
        raise ValueError(f"n_points must be >= 3, got {n_points}")
    if not (0 <= min_overlap <= max_overlap <= 1):
        raise ValueError("need 0 <= min_overlap <= max_overlap <= 1")
    lo_a, hi_a = (float(x) for x in view_angle)
    if not 0 <= lo_a <= hi_a <= 180:
        raise ValueError(f"view_angle must be (low, high) degrees with 0 <= low <= high <= 180, got {view_angle}")
    lo_d, hi_d = (float(x) for x in distance)
    if not 1.1 * scale < lo_d <= hi_d:
        raise ValueError(f"distance must be (low, high) with 1.1 x scale < low <= high, got {distance}")
    rng = np.random.default_rng([int(seed), int(index), 9173])
    name = objects[int(rng.integers(len(objects)))]
    scene = _scene(name, float(scale))
    tol = 5e-3 * scale
    for _ in range(int(max_tries)):
        d1 = _unit(rng)
        ang = math.radians(rng.uniform(lo_a, hi_a))
        d2 = _rotate_towards(d1, ang, rng)
        eyes = [d * rng.uniform(lo_d, hi_d) for d in (d1, d2)]
        targets = [rng.normal(scale=0.05 * scale, size=3) for _ in range(2)]
        ups = [_unit(rng) for _ in range(2)]
        scans = [range_scan(name, e, c, up=u, scale=scale, resolution=resolution, noise=noise,
                            grazing_cos=grazing_cos, dropout=dropout, rng=rng)
                 for e, c, u in zip(eyes, targets, ups)]
        shares = [_seen_share(scans[k]["clean"], scene, eyes[1 - k], scans[1 - k]["frame"], scans[1 - k]["fov_deg"],
                              grazing_cos, tol) for k in (0, 1)]
        ov = min(shares)
        if min_overlap <= ov <= max_overlap:
            break
    else:
        raise ValueError(f"object {name!r}: no two views {view_angle} degrees apart overlapped within "
                         f"[{min_overlap}, {max_overlap}] in {max_tries} tries")
    pts = []
    for s in scans:
        m = s["points"].shape[0]
        if m < n_points:
            raise ValueError(f"object {name!r}: a view has {m} returns, fewer than n_points={n_points}; "
                             "raise resolution")
        pts.append(s["points"][rng.choice(m, size=int(n_points), replace=False)])
    T = _pp.random_transform(protocol, rng, max_translation=2 * scale if max_translation is None else max_translation)
    P = pts[0] @ T[:3, :3].T + T[:3, 3]
    return _pp.pair_record(P, pts[1], np.linalg.inv(T), (T[:3, :3] @ eyes[0] + T[:3, 3], eyes[1].copy()), name,
                           (0, 1), ov, protocol, index, overlaps=(float(shares[0]), float(shares[1])),
                           angle=math.degrees(ang), sigma=tuple(float(np.median(s["sigma"])) for s in scans))


def iter_scan_pairs(count: int, **kwargs) -> Iterator[Dict]:
    """Pairs 0 .. count-1 (keyword arguments as :func:`make_scan_pair`)."""
    return _pp.generate_pairs(make_scan_pair, count, kwargs)


def make_scan_pairs(count: int, **kwargs) -> List[Dict]:
    """List of ``count`` pairs (keyword arguments as :func:`make_scan_pair`)."""
    return list(iter_scan_pairs(count, **kwargs))
