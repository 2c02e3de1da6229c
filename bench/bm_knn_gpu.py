"""GPU nearest-neighbour benchmark (pytest-benchmark, not in CI): Triton vs CUDA C++ vs
torch.cdist + min, at the HOUV shapes (thesis ch. 3), printing a table of times and ratios.

    TRITON_INTERPRET=0 python -m pytest bench/bm_knn_gpu.py -p no:xdist -s [--full]

``make bench`` runs it where CUDA is present (skipped otherwise); quick mode leaves out the
(1, 100000, 100000, 3) shape and times 5 rounds. The table goes to ``bench/out/knn_gpu.md``.

Every backend computes the same thing: for each query its nearest reference point (index and
squared distance); the "select" rows add the top-k selection of thesis eq. 3-9 (k = N/2 per batch
element; torch baseline: torch.topk on the distances). For (1, 100000, 100000, 3) the full
distance matrix would need 40 GB, so the torch baseline runs cdist + min over query chunks.
Times are medians over rounds, synchronised with torch.cuda.synchronize().
"""
import os

import pytest
import torch

import benchutil

if not torch.cuda.is_available():
    pytest.skip("no CUDA device: GPU knn benchmarks not run", allow_module_level=True)

SHAPES = [(32, 2048, 2048, 3), (96, 2048, 2048, 2)] + benchutil.pick([], [(1, 100000, 100000, 3)])
BACKENDS = ["torch", "triton", "cuda"]
CHUNK = 8192  # query rows per cdist call for the torch baseline
_RESULTS = {}


def _triton():
    if os.environ.get("TRITON_INTERPRET") == "1":
        pytest.skip("TRITON_INTERPRET=1 would run Triton in the interpreter: unset it")
    try:
        from fe_fast.kernels.knn import knn_triton
    except ImportError as exc:
        pytest.skip(f"triton is not installed: {exc}")
    return knn_triton


def _cuda():
    from fe_fast import _ext

    if _ext.cuda() is None:
        pytest.skip("fe_fast._C_cuda is not built: reinstall with FE_FAST_CUDA=1")
    from fe_fast.ops._knn_cuda import knn_cuda

    return knn_cuda


def _torch_knn(x, y, x_len, y_len, k=None):
    """cdist + min (no ragged lengths here: every cloud is full), chunked over queries."""
    B, N, _ = x.shape
    yb = y.expand(B, -1, -1) if y.dim() == 2 else y
    dist2 = torch.empty((B, N), dtype=x.dtype, device=x.device)
    idx = torch.empty((B, N), dtype=torch.int64, device=x.device)
    for s in range(0, N, CHUNK):
        d, i = torch.cdist(x[:, s:s + CHUNK], yb).min(-1)
        dist2[:, s:s + CHUNK] = d * d
        idx[:, s:s + CHUNK] = i
    sel = None
    if k is not None:
        kk = int(k[0])
        top = torch.topk(dist2, kk, dim=1, largest=False).indices
        sel = torch.zeros((B, N), dtype=torch.bool, device=x.device).scatter_(1, top, True)
    return idx, dist2, sel


def _inputs(B, N, M, D):
    gen = torch.Generator(device="cuda").manual_seed(0)
    x = torch.randn(B, N, D, device="cuda", generator=gen)
    y = torch.randn(B, M, D, device="cuda", generator=gen)
    x_len = torch.full((B,), N, dtype=torch.int64, device="cuda")
    y_len = torch.full((B,), M, dtype=torch.int64, device="cuda")
    k = torch.full((B,), N // 2, dtype=torch.int64, device="cuda")
    return x, y, x_len, y_len, k


@pytest.fixture(scope="module", autouse=True)
def _table():
    report = benchutil.Report("knn_gpu", "GPU nearest neighbour: Triton vs CUDA C++ vs cdist+min",
                              "TRITON_INTERPRET=0 " + benchutil.pytest_command(__file__))
    yield
    if not _RESULTS:
        return
    dev = torch.cuda.get_device_name()
    lines = [f"GPU knn medians on {dev} (ms); ratios > 1 mean the second backend is faster",
             "| shape (B, N, M, D) | select | torch | triton | cuda | torch/triton | torch/cuda | "
             "triton/cuda |", "|---|---|---|---|---|---|---|---|"]
    for shape in SHAPES:
        for select in (False, True):
            t = {b: _RESULTS.get((shape, select, b)) for b in BACKENDS}
            if not any(t.values()):
                continue
            ms = ["-" if v is None else f"{v * 1e3:.3f}" for v in t.values()]

            def ratio(a, b):
                return "-" if t[a] is None or t[b] is None else f"{t[a] / t[b]:.1f}x"

            lines.append(f"| {shape} | {'k=N/2' if select else 'no'} | " + " | ".join(ms) + " | "
                         f"{ratio('torch', 'triton')} | {ratio('torch', 'cuda')} | "
                         f"{ratio('triton', 'cuda')} |")
    text = "\n".join(lines)
    print("\n" + text)
    report.add(text)
    report.write()


@pytest.mark.parametrize("select", [False, True], ids=["nn", "select"])
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_knn_gpu(benchmark, shape, backend, select):
    fn = {"torch": lambda: _torch_knn, "triton": _triton, "cuda": _cuda}[backend]()
    x, y, x_len, y_len, k = _inputs(*shape)
    kk = k if select else None

    def run():
        out = fn(x, y, x_len, y_len, kk)
        torch.cuda.synchronize()
        return out

    run()  # compile / warm up outside the timing
    big = shape[1] * shape[2] * shape[0] > 5e8
    benchmark.pedantic(run, rounds=5 if big else benchutil.pick(5, 20), iterations=1, warmup_rounds=1)
    _RESULTS[(shape, select, backend)] = benchmark.stats.stats.median
