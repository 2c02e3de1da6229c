"""GPU K-nearest-neighbour benchmark (pytest-benchmark, not in CI): the Triton knn_topk kernel vs
torch.cdist + topk on CUDA tensors, at the two CPU knn_topk shapes (K = 8: D = 3, 32 x 2048 queries
against one shared cloud of 2048; D = 64, 1 x 20000 vs 20000; quick mode: 1 x 4096 vs 4096 at
D = 64), printing a table of median times and the ratio.

    TRITON_INTERPRET=0 python -m pytest bench/bm_knn_topk_gpu.py -p no:xdist -s [--full]

``make bench`` runs it where CUDA is present (skipped otherwise). The table goes to
``bench/out/knn_topk_gpu.md``.

Both compute, for every query, the K nearest reference points (indices and squared distances,
sorted). The torch baseline runs cdist + topk over query chunks (as bench_knn_gpu.py) and squares
the distances. Times are medians over rounds, synchronised with torch.cuda.synchronize().
"""
import os

import pytest
import torch

import benchutil

if not torch.cuda.is_available():
    pytest.skip("no CUDA device: GPU knn_topk benchmarks not run", allow_module_level=True)

K = 8
SHAPES = [(32, 2048, 2048, 3)] + benchutil.pick([(1, 4096, 4096, 64)], [(1, 20000, 20000, 64)])  # B, N, M (shared), D
BACKENDS = ["torch", "triton"]
CHUNK = 4096  # query rows per cdist call for the torch baseline
_RESULTS = {}


def _triton(x, y, x_len, y_len):
    from fe_fast.kernels.knn_topk import knn_topk_triton

    return knn_topk_triton(x, y, x_len, y_len, K)


def _torch(x, y, x_len, y_len):
    """cdist + topk (every cloud full), chunked over queries."""
    B, N, _ = x.shape
    dist2 = torch.empty((B, N, K), dtype=x.dtype, device=x.device)
    idx = torch.empty((B, N, K), dtype=torch.int64, device=x.device)
    for s in range(0, N, CHUNK):
        d, i = torch.cdist(x[:, s:s + CHUNK], y.expand(B, -1, -1)).topk(K, dim=-1, largest=False)
        dist2[:, s:s + CHUNK] = d * d
        idx[:, s:s + CHUNK] = i
    return idx, dist2


@pytest.fixture(scope="module", autouse=True)
def _table():
    report = benchutil.Report("knn_topk_gpu", "GPU K nearest neighbours: Triton vs cdist+topk",
                              "TRITON_INTERPRET=0 " + benchutil.pytest_command(__file__))
    yield
    if not _RESULTS:
        return
    lines = [f"GPU knn_topk (K = {K}) medians on {torch.cuda.get_device_name()} (ms); torch/triton > 1: "
             "Triton is faster", "| shape (B, N, M shared, D) | torch cdist+topk | triton | torch/triton |",
             "|---|---|---|---|"]
    for shape in SHAPES:
        t = {b: _RESULTS.get((shape, b)) for b in BACKENDS}
        if not any(t.values()):
            continue
        ms = ["-" if v is None else f"{v * 1e3:.3f}" for v in t.values()]
        ratio = "-" if None in t.values() else f"{t['torch'] / t['triton']:.1f}x"
        lines.append(f"| {shape} | {ms[0]} | {ms[1]} | {ratio} |")
    text = "\n".join(lines)
    print("\n" + text)
    report.add(text)
    report.write()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_knn_topk_gpu(benchmark, shape, backend):
    if backend == "triton" and os.environ.get("TRITON_INTERPRET") == "1":
        pytest.skip("TRITON_INTERPRET=1 would run Triton in the interpreter: unset it")
    B, N, M, D = shape
    gen = torch.Generator(device="cuda").manual_seed(0)
    x = torch.randn(B, N, D, device="cuda", generator=gen)
    y = torch.randn(M, D, device="cuda", generator=gen)
    x_len = torch.full((B,), N, dtype=torch.int64, device="cuda")
    y_len = torch.full((B,), M, dtype=torch.int64, device="cuda")
    fn = {"torch": _torch, "triton": _triton}[backend]

    def run():
        out = fn(x, y, x_len, y_len)
        torch.cuda.synchronize()
        return out

    idx, dist2 = run()  # compile / warm up outside the timing
    if backend == "triton":  # same distances as the baseline (indices may differ at near-ties)
        torch.testing.assert_close(dist2, _torch(x, y, x_len, y_len)[1], rtol=1e-3, atol=1e-4)
    benchmark.pedantic(run, rounds=benchutil.pick(5, 10), iterations=1, warmup_rounds=1)
    _RESULTS[(shape, backend)] = benchmark.stats.stats.median
