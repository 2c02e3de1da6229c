"""fe_fast.ops.knn_topk / knn(..., K=) against the dense reference, on every backend and CPU path,
plus the checks of the raw C++ bindings (bad arguments raise, never crash)."""
import numpy as np
import pytest
import torch

import fe_fast.ops as ops
from fe_fast.ops.knn_topk import KDTREE_MAX_D, brute_rows
from fe_fast.ops.reference.knn import knn_reference
from fe_fast.ops.reference.knn_topk import knn_topk_reference
from knn_backends import available

_AVAILABLE = dict(available())
# (backend, method): both exact CPU paths, and the Triton kernel (under TRITON_INTERPRET=1 on CPU)
PATHS = [pytest.param("cpu", "kdtree", id="cpu-kdtree"), pytest.param("cpu", "brute", id="cpu-brute"),
         pytest.param("triton", None, id="triton",
                      marks=pytest.mark.skipif(_AVAILABLE.get("triton") is not None,
                                               reason=_AVAILABLE.get("triton") or ""))]


def _run(x, y, K, backend, method, **kw):
    if method == "kdtree" and x.shape[-1] > 8:
        method = "brute"
    return ops.knn_topk(x, y, K, backend=backend, method=method, **kw)


def _clouds(B, N, M, D, dtype, shared, seed, scale=1.0, offset=0.0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, N, D, generator=g, dtype=dtype) * scale + offset
    y = (torch.randn(M, D, generator=g, dtype=dtype) if shared
         else torch.randn(B, M, D, generator=g, dtype=dtype)) * scale + offset
    return x, y


def assert_same_topk(x, y, out, K, x_len=None, y_len=None, rtol=1e-5, atol=1e-6):
    """Same K neighbours as the reference in the same order; a different index only at a
    (numerical) tie, where the returned point must be at the reference's distance."""
    rd, ri = knn_topk_reference(x, y, K, x_len, y_len)
    assert out.idx.shape == ri.shape and out.dists.shape == rd.shape
    torch.testing.assert_close(out.dists, rd, rtol=rtol, atol=atol)
    assert torch.equal(out.idx < 0, ri < 0)
    differ = out.idx != ri
    if differ.any():
        B = x.shape[0]
        yb = y.unsqueeze(0).expand(B, -1, -1) if y.dim() == 2 else y
        b, i, k = differ.nonzero(as_tuple=True)
        d_other = ((x[b, i] - yb[b, out.idx[b, i, k]]) ** 2).sum(-1)
        torch.testing.assert_close(d_other, rd[b, i, k], rtol=rtol, atol=atol)
    # each row is sorted by distance (up to rounding) and holds distinct indices
    d = out.dists
    valid = out.idx >= 0
    assert bool(((d[..., 1:] >= d[..., :-1] - atol - rtol * d[..., 1:].abs()) | ~valid[..., 1:]).all())
    srt = torch.sort(torch.where(valid, out.idx, -1 - torch.arange(K)), dim=-1).values
    assert bool((srt[..., 1:] != srt[..., :-1]).all())


@pytest.mark.parametrize("backend,method", PATHS)
@pytest.mark.parametrize("D", [1, 2, 3, 5, 8, 17])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("shared", [False, True], ids=["batched_y", "shared_y"])
def test_matches_reference(backend, method, D, dtype, shared):
    small = backend == "triton"
    B, N, M, K = (2, 23, 37, 5) if small else (3, 300, 517, 8)
    x, y = _clouds(B, N, M, D, dtype, shared, seed=D + 100 * shared)
    out = _run(x, y, K, backend, method)
    assert out.dists.dtype == dtype and out.idx.dtype == torch.int64 and out.knn is None
    assert_same_topk(x, y, out, K)


@pytest.mark.parametrize("backend,method", PATHS)
@pytest.mark.parametrize("D", [3, 6, 40])
def test_ragged_lengths_and_k_above_length(backend, method, D):
    """Padded queries: idx -1 / dist 0 everywhere; y_len < K: the slots past y_len are -1 / 0;
    padded points (NaN here) are never returned."""
    B, N, M, K = 3, 30, 26, 12
    x, y = _clouds(B, N, M, D, torch.float64, False, seed=D)
    x_len, y_len = torch.tensor([30, 11, 4]), torch.tensor([26, 7, 12])
    x[1, 11:] = float("nan")
    y[1, 7:] = float("nan")
    out = _run(x, y, K, backend, method, x_lengths=x_len, y_lengths=y_len)
    assert (out.idx[1, 11:] == -1).all() and (out.dists[1, 11:] == 0).all()
    assert (out.idx[1, :11, 7:] == -1).all() and (out.dists[1, :11, 7:] == 0).all()
    assert (out.idx[1, :11, :7] >= 0).all()
    assert not torch.isnan(out.dists).any()
    x[1, 11:] = 0.0  # the reference computes every row
    y[1, 7:] = 0.0
    assert_same_topk(x, y, out, K, x_len, y_len)


@pytest.mark.parametrize("backend,method", PATHS)
@pytest.mark.parametrize("D", [2, 3, 12])
def test_exact_ties_lower_index_first(backend, method, D):
    """Integer coordinates: many exactly equal distances; the order must be the reference's
    (stable sort: the lower index first) exactly."""
    g = torch.Generator().manual_seed(5)
    x = torch.randint(0, 3, (2, 40, D), generator=g).double()
    y = torch.randint(0, 3, (60, D), generator=g).double()
    out = _run(x, y, 9, backend, method)
    rd, ri = knn_topk_reference(x, y, 9)
    assert torch.equal(out.idx, ri)
    assert torch.equal(out.dists, rd)


@pytest.mark.parametrize("backend,method", PATHS)
def test_return_nn_and_gradients(backend, method):
    x, y = _clouds(2, 9, 14, 4, torch.float64, False, seed=3)
    x.requires_grad_(True)
    y.requires_grad_(True)
    out = _run(x, y, 3, backend, method, return_nn=True, y_lengths=torch.tensor([14, 2]))
    assert out.knn.shape == (2, 9, 3, 4)
    valid = out.idx >= 0
    expect = torch.stack([y[b][out.idx[b].clamp_min(0)] for b in range(2)]) * valid.unsqueeze(-1)
    torch.testing.assert_close(out.knn, expect)
    assert (out.knn[1, :, 2] == 0).all()  # y_len 2 < K 3: padding slot
    # exact gradients: d/dx and d/dy of sum(dists) against the reference's closed form
    w = torch.rand(out.dists.shape, dtype=torch.float64)
    gx, gy = torch.autograd.grad((out.dists * w).sum(), (x, y))
    diff = (x.detach().unsqueeze(2) - out.knn.detach()) * valid.unsqueeze(-1)
    torch.testing.assert_close(gx, (2 * w.unsqueeze(-1) * diff).sum(2))
    ref_gy = torch.zeros_like(y)
    for b in range(2):
        m = valid[b]
        ref_gy[b].index_add_(0, out.idx[b][m], (-2 * w[b].unsqueeze(-1) * diff[b])[m])
    torch.testing.assert_close(gy, ref_gy)


def test_gradcheck_shared_y():
    x, y = _clouds(2, 6, 9, 5, torch.float64, True, seed=11)
    x.requires_grad_(True)
    y.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, b: ops.knn_topk(a, b, 4).dists, (x, y))


def test_knn_hook():
    """knn without K: today's [B, N] results, D in {2, 3} only; with K it is knn_topk."""
    x, y = _clouds(2, 50, 70, 3, torch.float32, True, seed=2)
    old = ops.knn(x, y)
    rd, ri = knn_reference(x, y)
    torch.testing.assert_close(old.dist2, rd)
    assert old.idx.shape == (2, 50)
    new = ops.knn(x, y, K=1)
    assert torch.equal(new.idx[..., 0], old.idx) and new.dists.shape == (2, 50, 1)
    torch.testing.assert_close(new.dists[..., 0], old.dist2)
    three = ops.knn(x, y, K=3, return_nn=True)
    assert three.knn.shape == (2, 50, 3, 3)
    x5, y5 = _clouds(1, 10, 20, 5, torch.float32, False, seed=3)
    with pytest.raises(ValueError, match="D in"):
        ops.knn(x5, y5)
    assert ops.knn(x5, y5, K=2).idx.shape == (1, 10, 2)
    with pytest.raises(ValueError, match="return_nn needs K"):
        ops.knn(x, y, return_nn=True)


def test_inputs_untouched_and_noncontiguous():
    x, y = _clouds(2, 20, 30, 7, torch.float32, False, seed=4)
    xt = x.transpose(0, 1).contiguous().transpose(0, 1)  # non-contiguous view with the same values
    before = (x.clone(), y.clone())
    out = ops.knn_topk(xt, y, 4)
    assert torch.equal(x, before[0]) and torch.equal(y, before[1])
    assert_same_topk(x, y, out, 4)


@pytest.mark.parametrize("bad,match", [
    (dict(K=0), "K must be"), (dict(K=1.5), "K must be"), (dict(K=True), "K must be"),
    (dict(y=torch.zeros(2, 30, 4)), "D=4"), (dict(x=torch.zeros(2, 20)), r"\[B, N, D\]"),
    (dict(x=torch.zeros(2, 20, 7, dtype=torch.float16)), "float32 or float64"),
    (dict(x_lengths=torch.tensor([21, 3])), "x_lengths"), (dict(method="grid"), "method"),
    (dict(y=torch.zeros(30, 7), y_lengths=torch.tensor([3, 3])), "y_lengths must be None"),
    (dict(backend="cuda"), "backend"), (dict(method="kdtree", x=torch.zeros(2, 20, 9), y=torch.zeros(2, 30, 9)), "D <= 8"),
])
def test_bad_input(bad, match):
    args = dict(x=torch.zeros(2, 20, 7), y=torch.zeros(2, 30, 7), K=3)
    args.update(bad)
    with pytest.raises(ValueError, match=match):
        ops.knn_topk(**args)


def test_nan_rejected():
    x, y = _clouds(1, 5, 6, 4, torch.float32, False, seed=1)
    y[0, 2, 1] = float("nan")
    with pytest.raises(ValueError, match="y contains NaN"):
        ops.knn_topk(x, y, 2)


@pytest.mark.parametrize("gemm", ["cpp", "torch"])
def test_brute_cancellation_is_certified(gemm):
    """Points far from the origin: the matrix-product form loses most digits in float32; the
    certificate sends such queries to the exact scan, and the answer is the exact-difference one."""
    _C()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 24, generator=g) * 0.01 + 1000.0
    y = torch.randn(900, 24, generator=g) * 0.01 + 1000.0
    idx, dist2, fallbacks = brute_rows(x, y, 6, block_q=64, block_m=256, gemm=gemm)
    assert fallbacks > 0
    rd, ri = knn_topk_reference(x[None], y, 6)
    assert torch.equal(idx, ri[0])
    torch.testing.assert_close(dist2, rd[0])
    # well-conditioned data needs no fallback
    _, _, none = brute_rows(x - 1000.0, y - 1000.0, 6, block_q=64, block_m=256, gemm=gemm)
    assert none == 0


@pytest.mark.parametrize("gemm", ["cpp", "torch"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("Q,M,D,K", [(37, 300, 1, 8), (100, 45, 33, 8), (9, 1000, 64, 20), (70, 10, 5, 12),
                                     (130, 517, 3, 1)])
def test_brute_rows_both_gemms(gemm, dtype, Q, M, D, K):
    """Both tile sources, partial blocks (Q, M not multiples of the blocks), K > M, K = 1."""
    _C()
    g = torch.Generator().manual_seed(Q + M + D)
    x = torch.randn(Q, D, generator=g, dtype=dtype)
    y = torch.randn(M, D, generator=g, dtype=dtype)
    idx, dist2, _ = brute_rows(x, y, K, block_q=32, block_m=128, gemm=gemm)
    rd, ri = knn_topk_reference(x[None], y, K)
    assert torch.equal(idx, ri[0])
    torch.testing.assert_close(dist2, rd[0])


def test_kdtree_crossover_default():
    assert ops.knn_topk.__module__ == "fe_fast.ops.knn_topk"
    from fe_fast.ops.knn_topk import pick_method
    assert pick_method(KDTREE_MAX_D, None) == "kdtree" and pick_method(KDTREE_MAX_D + 1, None) == "brute"


# ------------------------------------------------------------------------------- raw bindings
def _C():
    from fe_fast import _ext

    mod = _ext.cpu_or_none()
    if mod is None:
        pytest.skip("fe_fast._C is hidden or not built (FE_FAST_DISABLE_EXT=1): raw binding tests not run")
    return mod


def _kd_args(B=2, N=5, M=6, D=3, K=2, dtype=np.float32):
    return dict(x=np.zeros((B, N, D), dtype), y=np.zeros((B, M, D), dtype), x_len=np.full(B, N, np.int64),
                y_len=np.full(B, M, np.int64), K=K, idx=np.zeros((B, N, K), np.int64),
                dist2=np.zeros((B, N, K), dtype))


@pytest.mark.parametrize("change,match", [
    (dict(x=np.zeros((2, 5, 3), np.float16)), "float32 or float64"),
    (dict(y=np.zeros((2, 6, 3), np.float64)), "y must be float32"),
    (dict(x=np.zeros((2, 5), np.float32)), r"x must have shape \[\*, \*, \*\]"),
    (dict(y=np.zeros((3, 6, 3), np.float32)), "y must have shape"),
    (dict(y=np.zeros((2, 6, 4), np.float32)), "y must have shape"),
    (dict(x=np.zeros((2, 3, 5), np.float32).transpose(0, 2, 1)), "C-contiguous"),
    (dict(x_len=np.array([5, 6], np.int64)), r"x_len\[1\] = 6"),
    (dict(y_len=np.array([-1, 6], np.int64)), "y_len"),
    (dict(x_len=np.array([5, 5], np.int32)), "x_len must be int64"),
    (dict(idx=np.zeros((2, 5, 3), np.int64)), "idx must have shape"),
    (dict(dist2=np.zeros((2, 5, 2), np.float64)), "dist2 must be float32"),
    (dict(K=0, idx=np.zeros((2, 5, 0), np.int64), dist2=np.zeros((2, 5, 0), np.float32)), "K must be"),
    (dict(x=np.zeros((2, 5, 9), np.float32), y=np.zeros((2, 6, 9), np.float32)), "D <= 8"),
])
def test_binding_kdtree_rejects(change, match):
    args = _kd_args()
    args.update(change)
    with pytest.raises(ValueError, match=match):
        _C().knn_topk_kdtree(**args)


def test_binding_kdtree_readonly_output_and_ok():
    args = _kd_args()
    args["idx"].setflags(write=False)
    with pytest.raises(ValueError, match="knn_topk_kdtree: idx is an output and must be writable"):
        _C().knn_topk_kdtree(**args)
    args = _kd_args()
    args["y"][:, :, 0] = np.arange(6)
    _C().knn_topk_kdtree(**args)
    assert (args["idx"] == [0, 1]).all()


def test_binding_scan_and_rerank_reject():
    C = _C()
    dot = np.zeros((4, 8), np.float32)
    cd, ci = np.full((4, 3), np.inf, np.float32), np.full((4, 3), -1, np.int64)
    with pytest.raises(ValueError, match="ynorm must have shape"):
        C.knn_topk_scan(dot, np.zeros(7, np.float32), 0, cd, ci)
    with pytest.raises(ValueError, match="cand_i must have shape"):
        C.knn_topk_scan(dot, np.zeros(8, np.float32), 0, cd, np.full((4, 2), -1, np.int64))
    with pytest.raises(ValueError, match="j0"):
        C.knn_topk_scan(dot, np.zeros(8, np.float32), -1, cd, ci)
    C.knn_topk_scan(dot, np.arange(8, dtype=np.float32), 0, cd, ci)
    assert (ci == [0, 1, 2]).all() and (cd == [0, 1, 2]).all()
    xq, y = np.zeros((4, 2), np.float32), np.zeros((8, 2), np.float32)
    idx, d = np.zeros((4, 2), np.int64), np.zeros((4, 2), np.float32)
    bad = ci.copy()
    bad[2, 1] = 8  # out of range: must raise before reading y
    with pytest.raises(ValueError, match="outside"):
        C.knn_topk_rerank(xq, y, bad, cd, 0.0, 2, idx, d)
    with pytest.raises(ValueError, match="y must be float64"):
        C.knn_topk_rerank(xq.astype(np.float64), y, ci, cd, 0.0, 2, idx, d)
    with pytest.raises(ValueError, match="fewer columns"):
        C.knn_topk_rerank(xq, y, ci, cd, 0.0, 5, np.zeros((4, 5), np.int64), np.zeros((4, 5), np.float32))
    assert C.knn_topk_rerank(xq, y, ci, cd, 0.0, 2, idx, d) >= 0


def test_binding_outputs_must_not_overlap_inputs_or_each_other():
    C = _C()
    buf = np.zeros(12, np.float32)
    dot, ynorm = np.zeros((4, 8), np.float32), buf[:8]
    cd, ci = buf.reshape(4, 3), np.full((4, 3), -1, np.int64)  # cand_d's memory holds ynorm
    with pytest.raises(ValueError, match="knn_topk_scan: output cand_d shares memory with input ynorm"):
        C.knn_topk_scan(dot, ynorm, 0, cd, ci)
    args = _kd_args()
    both = np.zeros(2 * 5 * 2, np.int64)
    args["idx"], args["dist2"] = both.reshape(2, 5, 2), both.view(np.float64).reshape(2, 5, 2)
    args["x"], args["y"] = args["x"].astype(np.float64), args["y"].astype(np.float64)
    with pytest.raises(ValueError, match="knn_topk_kdtree: outputs idx and dist2 share memory"):
        C.knn_topk_kdtree(**args)
    xq, y = np.zeros((4, 2), np.float32), np.zeros((8, 2), np.float32)
    out = np.zeros((4, 2), np.float32)
    with pytest.raises(ValueError, match="knn_topk_brute: output dist2 shares memory with input xq"):
        C.knn_topk_brute(out, y, 2, np.zeros((4, 2), np.int64), out)


@pytest.mark.parametrize("backend,method", PATHS)
def test_kernel_and_recomputed_distances_agree(backend, method):
    """Without a gradient the kernel's distances are returned, with one they are recomputed in
    torch: same neighbours, same values up to rounding, padding 0 in both."""
    x, y = _clouds(2, 30, 25, 6, torch.float32, False, seed=8)
    lens = dict(x_lengths=torch.tensor([30, 12]), y_lengths=torch.tensor([25, 5]))
    plain = _run(x, y, 7, backend, method, **lens)
    graded = _run(x.clone().requires_grad_(True), y, 7, backend, method, **lens)
    assert graded.dists.requires_grad and not plain.dists.requires_grad
    assert torch.equal(plain.idx, graded.idx)
    torch.testing.assert_close(plain.dists, graded.dists.detach(), rtol=1e-6, atol=1e-6)
    assert (plain.dists[1, 12:] == 0).all() and (plain.dists[1, :12, 5:] == 0).all()


def test_torch_fallback_matches_reference():
    """The pure-torch path used when fe_fast._C is missing: same conventions (ragged, K > y_len, ties)."""
    from fe_fast.ops.knn_topk import topk_torch

    g = torch.Generator().manual_seed(12)
    x = torch.randint(0, 3, (2, 15, 4), generator=g).double()
    y = torch.randint(0, 3, (2, 20, 4), generator=g).double()
    x_len, y_len = torch.tensor([15, 6]), torch.tensor([20, 3])
    idx, dist2 = topk_torch(x, y, x_len, y_len, 5)
    rd, ri = knn_topk_reference(x, y, 5, x_len, y_len)
    assert torch.equal(idx, ri) and torch.equal(dist2, rd)
