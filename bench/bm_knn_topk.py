"""K-nearest-neighbour benchmark: ``fe_fast.ops.knn_topk`` against scipy cKDTree, torch.cdist + topk
and faiss-cpu's exact IndexFlatL2. Every path's result is checked against an exact float64
recomputation before it is timed. Rows (full sizes; quick mode shrinks them, see below):

- ``k8_d3``   K=8, D=3: 32 x 2048 queries (32 random rigid copies of a 2048-point bunny surface
  sampling, as bm_chamfer's ``houv3d``) against one shared cloud of 2048 points. Index build
  included everywhere: ours (kd-tree path, float32, validation + C++ kernel + differentiable
  distance gather), ``ckdtree`` = cKDTree(y) + query(k=8, workers=-1) (float64), ``cdist_topk`` =
  torch.cdist on the [32, 2048, 2048] batch + topk(8, largest=False) (float32).
- ``k8_d64``  K=8, D=64: 1 x 20000 Gaussian queries against 20000 Gaussian points (feature-space
  kNN). ours (blocked brute force, float32, fused C++ tiles), ``ours_torch_mm`` (the same with the
  tiles from torch.mm), ``cdist_topk`` = torch.cdist + topk on blocks of 2048
  queries (the whole matrix would be 1.6 GB), ``faiss`` = IndexFlatL2 add + search (float32).
- ``k1_d3``   the K=1 row (``fe_fast.ops.knn``, unchanged path) on the k8_d3 data vs cKDTree
  query(k=1): the K=1 path must not regress (compare with bm_chamfer / bench/results/chamfer.md).
- ``crossover`` (test_crossover): kd-tree vs blocked brute force for D = 2..8, N = M = 20000,
  K = 8, uniform points: how KDTREE_MAX_D in fe_fast/ops/knn_topk.py was chosen.

``make bench`` runs it. Quick: 8 (not 32) bunny copies in the D=3 rows, 4000 x 4000 in the D=64 row,
N = M = 5000 in the crossover, 0.5 s of rounds per path (2 to 5 rounds). Full (``--full``): the sizes
above, 3 s per path (3 to 20 rounds): the protocol of bench/results/ops.md. By hand:
``python -m pytest bench/bm_knn_topk.py -p no:xdist -s [--full]`` (``FE_FAST_BENCH_BUDGET=s``
changes the seconds per path). The ratio table and the crossover table are printed when the module
finishes and written to ``bench/out/knn_topk.md``. faiss is a benchmark-only dependency (pip install
faiss-cpu); without it the faiss path is skipped with a printed reason.
"""
from __future__ import annotations

import fe_fast  # noqa: F401  (first: asks for passive OpenMP waits before torch loads; see RESULTS.md)
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchutil  # noqa: E402

scipy_spatial = pytest.importorskip("scipy.spatial", reason="the cKDTree baseline needs scipy")
from bm_chamfer import BUNNY, _read_ply_mesh, _rigid_copies, _surface_samples  # noqa: E402

import fe_fast.ops as ops  # noqa: E402
from fe_fast.ops.knn_topk import brute_rows, knn_topk  # noqa: E402

K = 8
D3_COPIES = benchutil.pick(8, 32)  # bunny copies (batch) of the D=3 rows
D64_N = benchutil.pick(4000, 20000)  # queries = points of the D=64 row
CROSS_N = benchutil.pick(5000, 20000)  # N = M of the crossover sweep
MIN_ROUNDS, MAX_ROUNDS = benchutil.pick((2, 5), (3, 20))
BUDGET_S = float(os.environ.get("FE_FAST_BENCH_BUDGET") or benchutil.pick(0.5, 3))
TIMES = {}  # (row, path) -> (median s, min s)
SKIPPED = {}
SKIP_REASONS = []
NOTES = []


def make_row(name):
    rng = np.random.default_rng(0)
    if name in ("k8_d3", "k1_d3"):
        if not BUNNY.exists():
            pytest.skip(f"bunny mesh not found at {BUNNY} (set FE_FAST_BUNNY)")
        verts, faces = _read_ply_mesh(BUNNY)
        P = _surface_samples(verts, faces, 2048, rng)
        Q = _surface_samples(verts, faces, 2048, rng)
        x, _ = _rigid_copies(P, Q, D3_COPIES, rng)
        return x, Q
    if name == "k8_d64":
        return rng.standard_normal((1, D64_N, 64)), rng.standard_normal((D64_N, 64))
    raise KeyError(name)


_ROWS = {}


def get_row(name):
    if name not in _ROWS:
        _ROWS[name] = make_row(name)
    return _ROWS[name]


def check_knn(x, y, idx, k, rtol):
    """idx [B, N, k] are k nearest points in order: their exact float64 distances equal the k
    smallest of the row (ties: any index) and are non-decreasing."""
    B, N, D = x.shape
    rows = np.random.default_rng(1).choice(B * N, size=min(B * N, 512), replace=False)
    xf = x.reshape(B * N, D)[rows]
    got = idx.reshape(B * N, k)[rows]
    d_all = ((xf[:, None, :] - y[None]) ** 2).sum(-1)
    ref = np.sort(d_all, axis=1)[:, :k]
    d_got = np.take_along_axis(d_all, got, 1)
    np.testing.assert_allclose(d_got, ref, rtol=rtol, atol=rtol * float(ref.max()))


def _bench(benchmark, row, path, run):
    benchmark.group = row
    benchmark.name = path
    t0 = time.perf_counter()
    run()
    once = time.perf_counter() - t0
    rounds = int(min(MAX_ROUNDS, max(MIN_ROUNDS, BUDGET_S / max(once, 1e-6))))
    benchmark.pedantic(run, rounds=rounds, warmup_rounds=0, iterations=1)
    s = benchmark.stats.stats
    TIMES[(row, path)] = (s.median, s.min)


# ------------------------------------------------------------------------------------------ paths
def path_ours(x, y, k=K, method=None):
    xt, yt = torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32)
    return lambda: knn_topk(xt, yt, k, method=method).idx


def path_ckdtree(x, y, k=K):
    B, N, D = x.shape

    def run():
        _, i = scipy_spatial.cKDTree(y).query(x.reshape(-1, D), k=k, workers=-1)
        return torch.from_numpy(i.reshape(B, N, k) if k > 1 else i.reshape(B, N, 1))

    return run


def path_cdist_topk(x, y, block=None):
    xt, yt = torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32)

    def run():
        if block is None:  # the whole [B, N, M] batch at once
            return torch.cdist(xt, yt.expand(xt.shape[0], -1, -1)).topk(K, dim=2, largest=False).indices
        out = [torch.cdist(xt[0, i:i + block], yt).topk(K, dim=1, largest=False).indices
               for i in range(0, xt.shape[1], block)]
        return torch.cat(out)[None]

    return run


def path_faiss(x, y, faiss):
    xf = np.ascontiguousarray(x[0], dtype=np.float32)
    yf = np.ascontiguousarray(y, dtype=np.float32)

    def run():
        index = faiss.IndexFlatL2(yf.shape[1])
        index.add(yf)
        _, i = index.search(xf, K)
        return torch.from_numpy(i)[None]

    return run


# ------------------------------------------------------------------------------------ benchmarks
@pytest.mark.parametrize("path", ["ours", "ckdtree", "cdist_topk"])
def test_k8_d3(benchmark, path):
    x, y = get_row("k8_d3")
    run = {"ours": lambda: path_ours(x, y), "ckdtree": lambda: path_ckdtree(x, y),
           "cdist_topk": lambda: path_cdist_topk(x, y)}[path]()
    check_knn(x, y, run().numpy(), K, rtol=1e-4 if path == "cdist_topk" else 1e-5)
    _bench(benchmark, "k8_d3", path, run)


@pytest.mark.parametrize("path", ["ours", "ours_torch_mm", "cdist_topk", "faiss"])
def test_k8_d64(benchmark, path):
    x, y = get_row("k8_d64")
    if path == "faiss":
        try:
            import faiss
        except ImportError as exc:
            reason = f"faiss row skipped: faiss-cpu is not importable ({exc}); pip install faiss-cpu"
            SKIPPED[("k8_d64", "faiss")] = "skipped (no faiss)"
            SKIP_REASONS.append(reason)
            print("\n" + reason)
            pytest.skip(reason)
        run = path_faiss(x, y, faiss)
    elif path == "ours":
        run = path_ours(x, y)
    elif path == "ours_torch_mm":  # the tiles from torch.mm instead of the fused C++ loop
        xt, yt = torch.tensor(x[0], dtype=torch.float32), torch.tensor(y, dtype=torch.float32)
        run = lambda: brute_rows(xt, yt, K, gemm="torch")[0][None]  # noqa: E731
    else:
        run = path_cdist_topk(x, y, block=2048)
    check_knn(x, y, run().numpy(), K, rtol=1e-5)
    _bench(benchmark, "k8_d64", path, run)


@pytest.mark.parametrize("path", ["ours", "ckdtree"])
def test_k1_d3(benchmark, path):
    x, y = get_row("k1_d3")
    if path == "ours":
        xt, yt = torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32)
        run = lambda: ops.knn(xt, yt).idx.unsqueeze(-1)  # noqa: E731
    else:
        run = path_ckdtree(x, y, k=1)
    check_knn(x, y, run().numpy(), 1, rtol=1e-5)
    _bench(benchmark, "k1_d3", path, run)


def test_crossover(benchmark):
    """kd-tree vs blocked brute force by dimension (median of 3 wall-clock runs each, same run).
    A benchmark so that it runs under --benchmark-only: its one timed round is the whole sweep."""
    benchmark.group = "crossover"
    benchmark.pedantic(_crossover, rounds=1, warmup_rounds=0, iterations=1)


def _crossover():
    rng = np.random.default_rng(0)
    lines = ["| D | kdtree ms | brute ms | brute / kdtree |", "| --- | --- | --- | --- |"]
    for D in range(2, 9):
        x = torch.tensor(rng.random((1, CROSS_N, D)), dtype=torch.float32)
        y = torch.tensor(rng.random((CROSS_N, D)), dtype=torch.float32)
        t = {}
        for method in ("kdtree", "brute"):
            knn_topk(x, y, K, method=method)
            runs = []
            for _ in range(3):
                t0 = time.perf_counter()
                knn_topk(x, y, K, method=method)
                runs.append(time.perf_counter() - t0)
            t[method] = float(np.median(runs))
        lines.append(f"| {D} | {t['kdtree'] * 1e3:.1f} | {t['brute'] * 1e3:.1f} | {t['brute'] / t['kdtree']:.2f}x |")
    NOTES.append(f"crossover (N = M = {CROSS_N}, K = 8, uniform points, float32):\n" + "\n".join(lines))


@pytest.fixture(scope="module", autouse=True)
def ratio_table():
    report = benchutil.Report("knn_topk", "K nearest neighbours (knn_topk) vs cKDTree, cdist+topk, faiss",
                              benchutil.pytest_command(__file__))
    yield
    table = format_table()
    if table or NOTES:
        load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
        text = "\n\n".join([table, *NOTES, *SKIP_REASONS]).strip() + f"\n\nuptime: {load}"
        print("\n" + text)
        report.add(f"float32, index build included, median (min) ms; {torch.get_num_threads()} torch threads, "
                   f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(unset)')}.\n")
        report.add(text)
        report.write()


def format_table():
    rows = [("k8_d3", f"K=8 D=3 {D3_COPIES}x2048 vs shared 2048 (bunny)", ["ours", "ckdtree", "cdist_topk"]),
            ("k8_d64", f"K=8 D=64 1x{D64_N} vs {D64_N} (Gaussian)", ["ours", "ours_torch_mm", "cdist_topk", "faiss"]),
            ("k1_d3", f"K=1 D=3 {D3_COPIES}x2048 vs shared 2048 (bunny)", ["ours", "ckdtree"])]
    out = ["| row | path: median (min) ms | baseline / ours (medians) |", "| --- | --- | --- |"]
    any_row = False
    for key, label, paths in rows:
        cells, ratios = [], []
        for p in paths:
            t = TIMES.get((key, p))
            cells.append(f"{p} {t[0] * 1e3:.1f} ({t[1] * 1e3:.1f})" if t else f"{p} {SKIPPED.get((key, p), '-')}")
            if t and p != "ours" and (key, "ours") in TIMES:
                ratios.append(f"{p}/ours {t[0] / TIMES[(key, 'ours')][0]:.2f}x")
        if any((key, p) in TIMES for p in paths):
            any_row = True
            out.append(f"| {label} | {'; '.join(cells)} | {'; '.join(ratios) or '-'} |")
    return "\n".join(out) if any_row else ""
