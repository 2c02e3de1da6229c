"""The Triton K-nearest kernel (kernels/knn_topk.py) compiled for a GPU, on CUDA tensors at medium
sizes (many query and reference blocks, ragged lengths, K above a cloud's length, D = 64), and the
op-level dispatch of ``knn(..., K=...)`` / ``chamfer_distance`` on CUDA tensors (Triton by
default) against the CPU path. Needs a CUDA device and TRITON_INTERPRET unset or 0 (bench/gpu_check.sh
runs it that way); the interpreter tests are in test_knn_topk_triton.py."""
import os

import pytest
import torch

import fe_fast.ops as ops
from fe_fast.ops.reference.knn_topk import knn_topk_reference


@pytest.fixture(autouse=True)
def _gpu():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device: GPU knn_topk tests not run")
    if os.environ.get("TRITON_INTERPRET") == "1":
        pytest.skip("TRITON_INTERPRET=1: run with TRITON_INTERPRET=0 to test compiled Triton")


def _check(x, y, x_len, y_len, K, idx, dist2):
    """The K returned points are K nearest (distances recomputed in float64 on the CPU equal the
    reference's); padding -1 / 0; no index twice in a row. Indices are not compared one to one:
    FMA contraction on the GPU may order near-ties (within an ulp) differently."""
    x, y, x_len, y_len, idx, dist2 = (t.cpu() for t in (x, y, x_len, y_len, idx, dist2))
    rd, ri = knn_topk_reference(x.double(), y.double(), K, x_len, y_len)
    tol = dict(rtol=1e-5, atol=1e-5) if x.dtype == torch.float32 else dict(rtol=1e-10, atol=1e-12)
    assert idx.shape == ri.shape and idx.dtype == torch.int64 and dist2.dtype == x.dtype
    assert torch.equal(idx < 0, ri < 0), "padding slots"
    torch.testing.assert_close(dist2.double(), rd, **tol)
    for b in range(x.shape[0]):
        yb = (y if y.dim() == 2 else y[b]).double()
        n = int(x_len[b])
        got = idx[b, :n]
        valid = got >= 0
        assert (got[valid] < int(y_len[b])).all(), "index outside the valid references"
        d = ((x[b, :n, None].double() - yb[got.clamp_min(0)]) ** 2).sum(-1) * valid
        torch.testing.assert_close(d, rd[b, :n], **tol)
        s = got.sort(1).values
        assert not ((s[:, 1:] == s[:, :-1]) & (s[:, 1:] >= 0)).any(), "an index twice in a row"


CASES = {
    # B, N, M, D, dtype, shared, x_len, y_len, K
    "ragged-3d-f32-k8": (2, 3000, 5000, 3, torch.float32, False, [3000, 1234], [5000, 5], 8),
    "shared-64d-f32-k8": (1, 4096, 4096, 64, torch.float32, True, [4096], None, 8),
    "ragged-7d-f64-k20": (3, 700, 900, 7, torch.float64, False, [700, 1, 333], [900, 19, 64], 20),
    "shared-2d-f32-k1": (2, 2000, 3000, 2, torch.float32, True, [2000, 999], None, 1),
}


@pytest.mark.parametrize("case", list(CASES))
def test_triton_kernel_on_cuda(case):
    from fe_fast.kernels.knn_topk import knn_topk_triton

    B, N, M, D, dtype, shared, x_len, y_len, K = CASES[case]
    g = torch.Generator().manual_seed(list(CASES).index(case))
    x = torch.randn(B, N, D, generator=g, dtype=dtype)
    y = torch.randn(*((M, D) if shared else (B, M, D)), generator=g, dtype=dtype)
    xl = torch.tensor(x_len)
    yl = torch.full((B,), M) if y_len is None else torch.tensor(y_len)
    idx, dist2 = knn_topk_triton(*(t.cuda() for t in (x, y, xl, yl)), K)
    torch.cuda.synchronize()
    assert idx.is_cuda and dist2.is_cuda
    _check(x, y, xl, yl, K, idx, dist2)


def test_cuda_tensors_dispatch_with_gradients_and_compile():
    """knn(..., K=8) on CUDA tensors (default backend: Triton, through fe_fast::knn_topk_search):
    the same neighbours, distances and gradients as the CPU path, also under torch.compile."""
    g = torch.Generator().manual_seed(5)
    x0 = torch.randn(2, 500, 5, generator=g, dtype=torch.float64)
    y0 = torch.randn(2, 400, 5, generator=g, dtype=torch.float64)
    xl, yl = torch.tensor([500, 77]), torch.tensor([400, 6])
    w = torch.linspace(1, 2, 8, dtype=torch.float64)

    def loss(x, y, xl, yl):
        out = ops.knn(x, y, xl, yl, K=8, return_nn=True)
        return (out.dists * w.to(x.device)).sum() + out.knn.sum(), out.idx

    def run(fn, device):
        x, y = (t.to(device).requires_grad_() for t in (x0, y0))
        val, idx = fn(x, y, xl.to(device), yl.to(device))
        val.backward()
        return [t.detach().cpu() for t in (val, idx, x.grad, y.grad)]

    cpu = run(loss, "cpu")
    for got in (run(loss, "cuda"), run(torch.compile(loss, fullgraph=True, backend="aot_eager"), "cuda")):
        for c, e in zip(got, cpu):
            torch.testing.assert_close(c, e)  # float64 random data: no near-ties


@pytest.mark.parametrize("D", [3, 5], ids=["D3-knn", "D5-knn_topk"])
def test_chamfer_distance_on_cuda(D):
    g = torch.Generator().manual_seed(D)
    x, y = torch.randn(3, 600, D, generator=g), torch.randn(3, 500, D, generator=g)
    xn, yn = torch.randn(3, 600, D, generator=g), torch.randn(3, 500, D, generator=g)
    xl, yl, wt = torch.tensor([600, 31, 7]), torch.tensor([500, 12, 333]), torch.tensor([1.0, 0.5, 2.0])
    args = (x, y, xl, yl, xn, yn, wt)
    ref = ops.chamfer_distance(*args)
    got = ops.chamfer_distance(*(t.cuda() for t in args))
    for c, e in zip(got, ref):
        assert c.is_cuda
        torch.testing.assert_close(c.cpu(), e, rtol=1e-5, atol=1e-6)
