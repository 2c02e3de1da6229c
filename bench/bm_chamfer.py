"""Chamfer nearest-neighbour benchmark: our CPU op against torch.cdist+min and scipy cKDTree.

Every path computes the same thing, both directions of a Chamfer distance (the nearest y of every
x and the nearest x of every y, squared distances and indices), and the results are checked
against each other before timing. Cases:

- ``houv3d``  B=32, N=M=2048, D=3: the HOUV registration step (thesis ch. 3). P and Q are two
  independent 2048-point surface samplings of the Stanford bunny mesh; x = 32 randomly rotated and
  translated copies of P, queried against Q shared by the batch; the reverse direction uses the rigid
  trick (Q moved into each copy's frame, queried against P shared by the batch).
- ``uniform3d`` the same shapes with uniform random points in a cube.
- ``proj2d``  B=96, N=M=2048, D=2: the three plane projections (xy, yz, xz) of the 32 copies and of
  Q; both directions have a per-batch y (projections do not commute with rotations).
- ``large3d`` B=1, N=M=100000, D=3: two 100k-point bunny surface samplings, one rotated.

Paths: ``ours`` = ``fe_fast.ops.knn`` (validation + C++ kernel + distances re-gathered in torch),
float32 and float64; ``kernel`` = the raw ``fe_fast._C.knn`` call, float32; ``cdist`` =
``torch.cdist`` (float32) plus a min over each axis of the one distance matrix (skipped where that
matrix needs more than 8 GB); ``ckdtree`` = ``scipy.spatial.cKDTree`` build + ``query(workers=-1)``
per distinct reference cloud (it computes in float64).

``make bench`` runs it: quick mode times ``houv3d`` and ``uniform3d`` within a budget of 0.5 s per path
and case; full mode all four cases with 2 s (the protocol of bench/results/chamfer.md). By hand:
``python -m pytest bench/bm_chamfer.py -p no:xdist -s [--full]``. The ratio table is printed when the
module finishes and written to ``bench/out/chamfer.md``. The bunny mesh is read from ``$FE_FAST_BUNNY``
(default: the shared data folder); its cases are skipped, with the reason, where it is missing.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import benchutil

scipy_spatial = pytest.importorskip("scipy.spatial", reason="the cKDTree baseline needs scipy")
from scipy.spatial.transform import Rotation  # noqa: E402

BUNNY = Path(os.environ.get("FE_FAST_BUNNY", "/work/shared/data/stanford_bunny/reconstruction/bun_zipper.ply"))
CDIST_LIMIT_BYTES = 8 * 1024**3
PLANES = ((0, 1), (1, 2), (0, 2))  # xy, yz, xz


# --------------------------------------------------------------------------------------- our op
def _op_knn():
    """``fe_fast.ops.knn`` when present, else a minimal wrapper over the raw binding."""
    try:
        from fe_fast.ops import knn

        return lambda x, y: tuple(knn(x, y, backend="cpu"))
    except ImportError:  # pragma: no cover - only before the ops layer existed
        return _kernel_knn


def _kernel_knn(x, y):
    """Raw ``fe_fast._C.knn`` call on contiguous tensors: (dist2, idx)."""
    from fe_fast import _ext

    if not (x.is_contiguous() and y.is_contiguous()):
        raise ValueError("the raw kernel needs contiguous x and y")
    B, N, D = x.shape
    M = y.shape[-2]
    lens = _kernel_knn.lens.get((B, N, M))
    if lens is None:
        lens = _kernel_knn.lens[(B, N, M)] = (torch.full((B,), N, dtype=torch.int64),
                                             torch.full((B,), M, dtype=torch.int64))
    idx = torch.empty((B, N), dtype=torch.int64)
    dist2 = torch.empty((B, N), dtype=x.dtype)
    _ext.cpu().knn(x.numpy(), y.numpy(), lens[0].numpy(), lens[1].numpy(), None, idx.numpy(),
                   dist2.numpy(), None)
    return dist2, idx


_kernel_knn.lens = {}


# ------------------------------------------------------------------------------------------ data
def _read_ply_mesh(path):
    """Vertices [V, 3] and triangles [F, 3] of an ASCII PLY (recipe of PROVENANCE.md)."""
    with open(path, "rb") as f:
        elems = []
        while True:
            t = f.readline().decode("ascii").split()
            if t and t[0] == "element":
                elems.append((t[1], int(t[2])))
            if t and t[0] == "end_header":
                break
        lines = f.read().decode("ascii").splitlines()
    counts = dict(elems)
    nv, nf = counts["vertex"], counts.get("face", 0)
    verts = np.array([ln.split()[:3] for ln in lines[:nv]], dtype=np.float64)
    faces = np.array([ln.split()[1:4] for ln in lines[nv:nv + nf]], dtype=np.int64)
    return verts, faces


def _surface_samples(verts, faces, n, rng):
    """n points uniformly distributed on the mesh surface (area-weighted triangles)."""
    a, b, c = verts[faces[:, 0]], verts[faces[:, 1]], verts[faces[:, 2]]
    area = 0.5 * np.linalg.norm(np.cross(b - a, c - a), axis=1)
    tri = rng.choice(len(faces), n, p=area / area.sum())
    r1, r2 = np.sqrt(rng.random(n)), rng.random(n)
    return (1 - r1)[:, None] * a[tri] + (r1 * (1 - r2))[:, None] * b[tri] + (r1 * r2)[:, None] * c[tri]


def _rigid_copies(P, Q, B, rng):
    """x = B random rigid copies of P (about its centre) and Q moved into each copy's frame."""
    centre = P.mean(0)
    R = Rotation.random(B, random_state=rng.integers(2**31)).as_matrix()
    t = rng.normal(scale=0.05 * np.ptp(P, 0).max(), size=(B, 3))
    x = np.einsum("bij,nj->bni", R, P - centre) + centre + t[:, None]
    q_in_copy = np.einsum("bji,bnj->bni", R, Q[None] - centre - t[:, None]) + centre
    return x, q_in_copy


def make_case(name):
    """Returns dict(fwd=(x, y), rev=(x, y)) as float64 numpy arrays (y shared when 2-D)."""
    rng = np.random.default_rng(0)
    if name in ("houv3d", "proj2d", "large3d"):
        if not BUNNY.exists():
            pytest.skip(f"bunny mesh not found at {BUNNY} (set FE_FAST_BUNNY)")
        verts, faces = _read_ply_mesh(BUNNY)
    if name == "houv3d" or name == "proj2d":
        P = _surface_samples(verts, faces, 2048, rng)
        Q = _surface_samples(verts, faces, 2048, rng)
        x, q_in_copy = _rigid_copies(P, Q, 32, rng)
        if name == "houv3d":
            return dict(fwd=(x, Q), rev=(q_in_copy, P))
        xs = np.concatenate([x[..., list(p)] for p in PLANES])  # [96, 2048, 2]
        ys = np.concatenate([np.broadcast_to(Q[:, list(p)], (32, 2048, 2)) for p in PLANES])
        return dict(fwd=(xs, np.ascontiguousarray(ys)), rev=(np.ascontiguousarray(ys), xs))
    if name == "uniform3d":
        P = rng.random((2048, 3))
        Q = rng.random((2048, 3))
        x, q_in_copy = _rigid_copies(P, Q, 32, rng)
        return dict(fwd=(x, Q), rev=(q_in_copy, P))
    if name == "large3d":
        P = _surface_samples(verts, faces, 100_000, rng)
        Q = _surface_samples(verts, faces, 100_000, rng)
        x, q_in_copy = _rigid_copies(P, Q, 1, rng)
        return dict(fwd=(x, Q[None]), rev=(q_in_copy, P[None]))
    raise KeyError(name)


CASES = benchutil.pick(["houv3d", "uniform3d"], ["houv3d", "uniform3d", "proj2d", "large3d"])
SHAPES = {"houv3d": "B=32 N=M=2048 D=3 (bunny)", "uniform3d": "B=32 N=M=2048 D=3 (uniform)",
          "proj2d": "B=96 N=M=2048 D=2 (bunny xy/yz/xz)", "large3d": "B=1 N=M=100000 D=3 (bunny)"}
# Rounds per measurement: enough for a stable median on a shared machine, within a time budget
# estimated from the checked first call (FE_FAST_BENCH_BUDGET seconds per path and case).
MIN_ROUNDS, MAX_ROUNDS = 3, 30
BUDGET_S = float(os.environ.get("FE_FAST_BENCH_BUDGET") or benchutil.pick(0.5, 2.0))


@pytest.fixture(scope="module")
def cases():
    return {}


def get_case(cases, name):
    if name not in cases:
        cases[name] = make_case(name)
    return cases[name]


def _torch(pair, dtype):
    return tuple(torch.tensor(a, dtype=dtype).contiguous() for a in pair)  # numpy strides kept otherwise


# ----------------------------------------------------------------------------------------- paths
def path_ours(case, dtype, knn):
    fwd, rev = _torch(case["fwd"], dtype), _torch(case["rev"], dtype)

    def run():
        return knn(*fwd), knn(*rev)

    return run


def cdist_bytes(case):
    x, y = case["fwd"]
    B, N, M = x.shape[0], x.shape[1], y.shape[-2]
    return B * N * M * 4


def path_cdist(case):
    """One distance matrix per batch element, min over each axis (both Chamfer directions).
    The reverse direction is the transpose: either literally (proj2d, large3d: rev = (y, x)) or
    through the rigid trick (|R p + t - q| = |p - R^T (q - t)|), so one matrix serves both."""
    x, y = _torch(case["fwd"], torch.float32)
    if y.dim() == 2:
        y = y.expand(x.shape[0], -1, -1)  # a view: cdist broadcasts it

    def run():
        d2 = torch.cdist(x, y).square_()  # [B, N, M]
        return tuple(d2.min(2)), tuple(d2.min(1))

    return run


def path_ckdtree(case):
    """cKDTree per distinct reference cloud: one tree for a shared y, else one per batch element."""
    cKDTree = scipy_spatial.cKDTree

    def one(x, y):
        if y.ndim == 2:
            d, i = cKDTree(y).query(x.reshape(-1, x.shape[-1]), workers=-1)
            return d.reshape(x.shape[:2]) ** 2, i.reshape(x.shape[:2])
        ds, is_ = zip(*(cKDTree(y[b]).query(x[b], workers=-1) for b in range(x.shape[0])))
        return np.stack(ds) ** 2, np.stack(is_)

    def run():
        return one(*case["fwd"]), one(*case["rev"])

    return run


# ---------------------------------------------------------------------------------------- checks
def _nn_dist2_of(x, y, idx):
    """Exact float64 |x - y[idx]|^2 for numpy clouds (y shared when 2-D)."""
    yg = y[idx] if y.ndim == 2 else np.take_along_axis(y, idx[..., None], 1)
    return ((x - yg) ** 2).sum(-1)


_REFERENCE = {}


def check_same(case_name, case, result, rtol, atol=1e-12):
    """Both directions: the returned points are nearest ones and their squared distances agree with
    cKDTree's (float64; float32 paths get an absolute tolerance for the rounding of their inputs).
    Ties: any index."""
    if case_name not in _REFERENCE:
        _REFERENCE[case_name] = path_ckdtree(case)()
    ref = _REFERENCE[case_name]
    for (x, y), (d_ref, _), (d, i) in zip((case["fwd"], case["rev"]), ref, result):
        d = d.detach().double().numpy() if torch.is_tensor(d) else d
        i = i.numpy() if torch.is_tensor(i) else i
        exact = _nn_dist2_of(x, y, i)
        np.testing.assert_allclose(exact, d_ref, rtol=rtol, atol=atol)  # nearest (ties: any index)
        np.testing.assert_allclose(d, d_ref, rtol=rtol, atol=atol)


# ----------------------------------------------------------------------------------- benchmarks
TIMES = {}  # (case, path) -> (median s, min s)


def _record(benchmark, case, path):
    s = benchmark.stats.stats
    TIMES[(case, path)] = (s.median, s.min)


def _bench(benchmark, case_name, path, run):
    benchmark.group = case_name
    benchmark.name = path
    t0 = time.perf_counter()
    run()  # warm-up, and an estimate of one call's time
    once = time.perf_counter() - t0
    rounds = int(min(MAX_ROUNDS, max(MIN_ROUNDS, BUDGET_S / max(once, 1e-6))))
    benchmark.pedantic(run, rounds=rounds, warmup_rounds=0, iterations=1)
    _record(benchmark, case_name, path)


@pytest.fixture(scope="module", autouse=True)
def ratio_table():
    report = benchutil.Report("chamfer", "Chamfer nearest neighbour: fe_fast.ops.knn vs cdist+min and cKDTree",
                              benchutil.pytest_command(__file__))
    yield
    table = format_table()
    if table:
        print("\n" + table)
        report.add(f"Both Chamfer directions per evaluation; median (min) ms over rounds within {BUDGET_S} s per "
                   f"path and case; {torch.get_num_threads()} torch threads.\n")
        report.add(table)
        report.write()


def format_table():
    paths = ["ours", "ours_f64", "kernel", "cdist", "ckdtree"]
    rows = ["| case | " + " | ".join(f"{p} median (min) ms" for p in paths)
            + " | cKDTree / ours | cKDTree / ours_f64 | cKDTree / kernel | cdist / ours | cdist / kernel |",
            "|" + " --- |" * (len(paths) + 6)]
    any_row = False
    for c in CASES:
        if not any((c, p) in TIMES for p in paths):
            continue
        any_row = True
        cells = []
        for p in paths:
            t = TIMES.get((c, p))
            cells.append(f"{t[0] * 1e3:.2f} ({t[1] * 1e3:.2f})" if t else SKIPPED.get((c, p), "-"))

        def ratio(a, b):
            ta, tb = TIMES.get((c, a)), TIMES.get((c, b))
            return f"{ta[0] / tb[0]:.1f}x" if ta and tb else "-"

        rows.append(f"| {SHAPES[c]} | " + " | ".join(cells)
                    + f" | {ratio('ckdtree', 'ours')} | {ratio('ckdtree', 'ours_f64')} | {ratio('ckdtree', 'kernel')}"
                    + f" | {ratio('cdist', 'ours')} | {ratio('cdist', 'kernel')} |")
    return "\n".join(rows) if any_row else ""


SKIPPED = {}


def _f32_atol(case):
    """Absolute tolerance on squared distances for float32 paths: 1e-7 * max |p|^2."""
    return 1e-7 * max(float((a ** 2).sum(-1).max()) for pair in case.values() for a in pair)


@pytest.mark.parametrize("case_name", CASES)
def test_ours_f32(benchmark, cases, case_name):
    case = get_case(cases, case_name)
    run = path_ours(case, torch.float32, _op_knn())
    check_same(case_name, case, run(), rtol=1e-5, atol=_f32_atol(case))
    _bench(benchmark, case_name, "ours", run)


@pytest.mark.parametrize("case_name", CASES)
def test_ours_f64(benchmark, cases, case_name):
    case = get_case(cases, case_name)
    run = path_ours(case, torch.float64, _op_knn())
    check_same(case_name, case, run(), rtol=1e-12)
    _bench(benchmark, case_name, "ours_f64", run)


@pytest.mark.parametrize("case_name", CASES)
def test_kernel_f32(benchmark, cases, case_name):
    case = get_case(cases, case_name)
    run = path_ours(case, torch.float32, _kernel_knn)
    check_same(case_name, case, run(), rtol=1e-5, atol=_f32_atol(case))
    _bench(benchmark, case_name, "kernel", run)


@pytest.mark.parametrize("case_name", CASES)
def test_cdist(benchmark, cases, case_name):
    case = get_case(cases, case_name)
    need = cdist_bytes(case)
    if need > CDIST_LIMIT_BYTES:
        reason = f"cdist skipped: its distance matrix needs {need / 1024**3:.0f} GB (> 8 GB)"
        SKIPPED[(case_name, "cdist")] = f"skipped ({need / 1024**3:.0f} GB matrix)"
        print(f"\n{case_name}: {reason}")
        pytest.skip(reason)
    run = path_cdist(case)
    # cdist's float32 matrix-product form loses about eps * |x|^2 absolutely on small distances.
    check_same(case_name, case, run(), rtol=1e-4, atol=100 * _f32_atol(case))
    _bench(benchmark, case_name, "cdist", run)


@pytest.mark.parametrize("case_name", CASES)
def test_ckdtree(benchmark, cases, case_name):
    case = get_case(cases, case_name)
    run = path_ckdtree(case)
    _bench(benchmark, case_name, "ckdtree", run)
