"""fe_fast.ops.knn / knn_select against the cdist reference, on every backend that runs here.

The Triton backend runs on CPU tensors under TRITON_INTERPRET=1, so its cases stay small."""
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import fe_fast.ops as ops
from fe_fast.ops.reference.knn import knn_reference, select_reference
from knn_backends import available

BACKENDS = [pytest.param(name, marks=pytest.mark.skipif(reason is not None, reason=reason or ""), id=name)
            for name, reason in available()]


def _device(backend):
    return "cuda" if backend in ("cuda",) or (backend == "triton" and torch.cuda.is_available()) else "cpu"


def assert_same_nn(x, y, dist2, idx, x_len=None, y_len=None):
    """Same neighbours as the reference; a different index is only allowed at an exact tie."""
    rd, ri = knn_reference(x, y, x_len, y_len)
    torch.testing.assert_close(dist2, rd, rtol=1e-5, atol=1e-6)
    differ = idx != ri
    if differ.any():
        # the other index must be a valid point at (numerically) the same distance
        assert (idx[differ] >= 0).all()
        yb = y.unsqueeze(0).expand(x.shape[0], -1, -1) if y.dim() == 2 else y
        b, i = differ.nonzero(as_tuple=True)
        d_other = ((x[b, i] - yb[b, idx[b, i]]) ** 2).sum(-1)
        torch.testing.assert_close(d_other, rd[b, i], rtol=1e-5, atol=1e-6)


def _clouds(B, N, M, D, dtype, shared, seed, device="cpu"):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, N, D, generator=g, dtype=dtype)
    y = torch.randn(M, D, generator=g, dtype=dtype) if shared else torch.randn(B, M, D, generator=g, dtype=dtype)
    return x.to(device), y.to(device)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("D", [2, 3])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shared", [False, True])
def test_knn_matches_reference(backend, D, dtype, shared):
    small = backend == "triton"
    B, N, M = (2, 37, 29) if small else (3, 300, 257)
    x, y = _clouds(B, N, M, D, dtype, shared, seed=D + 7 * shared, device=_device(backend))
    dist2, idx = ops.knn(x, y, backend=backend)
    assert dist2.dtype == dtype and idx.dtype == torch.int64 and dist2.shape == (B, N)
    assert_same_nn(x, y, dist2, idx)


@pytest.mark.parametrize("backend", BACKENDS)
def test_knn_ragged_lengths(backend):
    B, N, M = 3, 40, 33
    x, y = _clouds(B, N, M, 3, torch.float64, False, seed=3, device=_device(backend))
    x_len = torch.tensor([40, 1, 17])
    y_len = torch.tensor([1, 33, 9])
    # garbage in the padding must not matter
    x[1, 1:] = 1e6
    y[2, 9:] = 0.0
    dist2, idx = ops.knn(x, y, x_len, y_len, backend=backend)
    assert_same_nn(x, y, dist2, idx, x_len, y_len)
    assert (idx[1, 1:] == -1).all() and (dist2[1, 1:] == 0).all()
    assert (idx[0] == 0).all()  # a single y point is everybody's neighbour
    assert (idx[2, :17] < 9).all()


@pytest.mark.parametrize("backend", BACKENDS)
def test_knn_ties_and_duplicates(backend):
    # a grid with duplicated reference points: many exact ties
    g = torch.arange(4, dtype=torch.float64)
    y = torch.stack(torch.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)
    y = torch.cat([y, y], 0)
    x = (y[:20] + 0.5).unsqueeze(0)  # equidistant from 8 grid points
    dist2, idx = ops.knn(x, y, backend=backend)
    assert_same_nn(x, y, dist2, idx)
    torch.testing.assert_close(dist2, torch.full_like(dist2, 0.75))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("alpha", [0.05, 0.5, 1.0])
def test_knn_select(backend, alpha):
    B, N, M = 3, 50, 45
    x, y = _clouds(B, N, M, 3, torch.float32, True, seed=11, device=_device(backend))
    x_len = torch.tensor([50, 7, 33])
    dist2, idx, sel = ops.knn_select(x, y, alpha, x_len, backend=backend)
    assert sel.dtype == torch.bool
    for b in range(B):
        n = int(x_len[b])
        k = max(1, math.ceil(alpha * n - 1e-9))
        assert int(sel[b].sum()) == k
        assert not sel[b, n:].any()
        if k < n:
            inside = dist2[b, :n][sel[b, :n]]
            outside = dist2[b, :n][~sel[b, :n]]
            assert inside.max() <= outside.min()
    expected = select_reference(dist2.detach().cpu(), x_len, alpha)
    # identical up to ties: compare the selected distance multisets
    for b in range(B):
        a = torch.sort(dist2[b][sel[b]].detach().cpu()).values
        e = torch.sort(dist2[b].detach().cpu()[expected[b]]).values
        torch.testing.assert_close(a, e)


@settings(max_examples=25, deadline=None)
@given(
    B=st.integers(1, 4), N=st.integers(1, 200), M=st.integers(1, 200), D=st.sampled_from([2, 3]),
    shared=st.booleans(), seed=st.integers(0, 2**16), scale=st.sampled_from([1e-3, 1.0, 1e3]),
)
def test_knn_cpu_random_shapes(B, N, M, D, shared, seed, scale):
    x, y = _clouds(B, N, M, D, torch.float64, shared, seed)
    x, y = x * scale, y * scale
    dist2, idx = ops.knn(x, y)
    assert_same_nn(x, y, dist2, idx)


def test_knn_noncontiguous_input():
    base = torch.randn(2, 3, 60, dtype=torch.float64)
    x = base.transpose(1, 2)  # [2, 60, 3], not contiguous
    y = torch.randn(3, 50, dtype=torch.float64).t()
    dist2, idx = ops.knn(x, y)
    assert_same_nn(x, y, dist2, idx)


def test_knn_does_not_modify_inputs():
    x, y = _clouds(2, 30, 20, 3, torch.float32, False, seed=5)
    x0, y0 = x.clone(), y.clone()
    ops.knn_select(x, y, 0.5)
    assert torch.equal(x, x0) and torch.equal(y, y0)


def test_knn_dist2_gradcheck():
    x, y = _clouds(2, 12, 9, 3, torch.float64, False, seed=1)
    x.requires_grad_(True)
    y.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, b: ops.knn(a, b).dist2, (x, y))


@pytest.mark.parametrize(
    "x, y, kwargs, match",
    [
        (torch.zeros(5, 3), torch.zeros(5, 3), {}, r"x must have shape \[B, N, D\]"),
        (torch.zeros(1, 5, 4), torch.zeros(5, 4), {}, "D in"),
        (torch.zeros(1, 5, 3), torch.zeros(5, 2), {}, "D=3 but y has D=2"),
        (torch.zeros(2, 5, 3), torch.zeros(3, 5, 3), {}, "batch mismatch"),
        (torch.zeros(1, 5, 3, dtype=torch.int64), torch.zeros(5, 3, dtype=torch.int64), {}, "float32 or float64"),
        (torch.zeros(1, 5, 3, dtype=torch.float16), torch.zeros(5, 3, dtype=torch.float16), {}, "float32 or float64"),
        (torch.zeros(1, 5, 3), torch.zeros(5, 3, dtype=torch.float64), {}, "share a dtype"),
        (torch.zeros(1, 0, 3), torch.zeros(5, 3), {}, "empty cloud"),
        (torch.zeros(1, 5, 3), torch.zeros(0, 3), {}, "empty cloud"),
        (torch.zeros(0, 5, 3), torch.zeros(5, 3), {}, "empty batch"),
        (torch.tensor([[[0.0, float("nan"), 0.0]]]), torch.zeros(5, 3), {}, "NaN or Inf"),
        (torch.zeros(1, 5, 3), torch.full((5, 3), float("inf")), {}, "NaN or Inf"),
        (torch.zeros(2, 5, 3), torch.zeros(2, 5, 3), {"x_lengths": torch.tensor([5, 0])}, "empty cloud"),
        (torch.zeros(2, 5, 3), torch.zeros(2, 5, 3), {"y_lengths": torch.tensor([6, 5])}, "above the padded size"),
        (torch.zeros(2, 5, 3), torch.zeros(2, 5, 3), {"x_lengths": torch.tensor([5])}, r"shape \[2\]"),
        (torch.zeros(2, 5, 3), torch.zeros(2, 5, 3), {"x_lengths": torch.tensor([5.0, 5.0])}, "integers"),
        (torch.zeros(2, 5, 3), torch.zeros(5, 3), {"y_lengths": torch.tensor([5, 5])}, "shared"),
        (torch.zeros(1, 5, 3), torch.zeros(5, 3, device="meta"), {}, "same device"),
        ([[[0.0, 0.0, 0.0]]], torch.zeros(5, 3), {}, "torch.Tensor"),
    ],
)
def test_knn_bad_input(x, y, kwargs, match):
    with pytest.raises(ValueError, match=match):
        ops.knn(x, y, **kwargs)


def test_nan_in_padding_is_ignored():
    x = torch.randn(2, 6, 3)
    x[1, 4:] = float("nan")
    dist2, idx = ops.knn(x, torch.randn(6, 3), x_lengths=torch.tensor([6, 4]))
    assert torch.isfinite(dist2).all() and (idx[1, 4:] == -1).all()


@pytest.mark.parametrize("alpha", [0.0, -0.1, 1.5, "a"])
def test_knn_select_bad_alpha(alpha):
    with pytest.raises(ValueError, match="alpha"):
        ops.knn_select(torch.zeros(1, 5, 3), torch.zeros(5, 3), alpha)


def test_unknown_backend():
    with pytest.raises(ValueError, match="unknown backend"):
        ops.knn(torch.zeros(1, 5, 3), torch.zeros(5, 3), backend="opencl")
    with pytest.raises(ValueError, match="needs CUDA tensors"):
        ops.knn(torch.zeros(1, 5, 3), torch.zeros(5, 3), backend="cuda")
