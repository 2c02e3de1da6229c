"""The CPU nearest-neighbour kernel (csrc/knn_cpu.cpp, contract in csrc/knn.h) against brute force.

Called through the raw binding ``fe_fast._C.knn`` (the op-level tests live in test_knn.py). Checks:
every valid query gets the brute-force minimum squared distance (ties: any index at that distance),
padded queries get idx -1 / dist2 0, padded references (filled with NaN here) are never read, and
the top-k mask selects exactly min(k, len) valid queries, none closer-ranked than an unselected one.
"""
import numpy as np
import pytest
import torch
from hypothesis import given, settings, HealthCheck
from hypothesis import strategies as st

from fe_fast import _ext

if _ext.disabled():
    pytest.skip("FE_FAST_DISABLE_EXT=1 hides fe_fast._C: the raw binding is tested in the other run",
                allow_module_level=True)

RTOL = {torch.float32: 1e-5, torch.float64: 1e-12}


def run_kernel(x, y, x_len, y_len, k=None):
    """Call the raw kernel on torch tensors; returns (dist2, idx, sel or None)."""
    B, N, _ = x.shape
    x, y = x.contiguous(), y.contiguous()
    x_len = torch.as_tensor(x_len, dtype=torch.int64).contiguous()
    y_len = torch.as_tensor(y_len, dtype=torch.int64).contiguous()
    idx = torch.full((B, N), -7, dtype=torch.int64)
    dist2 = torch.full((B, N), -7.0, dtype=x.dtype)
    sel = torch.full((B, N), 7, dtype=torch.uint8) if k is not None else None
    kt = torch.as_tensor(k, dtype=torch.int64).contiguous() if k is not None else None
    _ext.cpu().knn(
        x.numpy(), y.numpy(), x_len.numpy(), y_len.numpy(), None if kt is None else kt.numpy(),
        idx.numpy(), dist2.numpy(), None if sel is None else sel.numpy(),
    )
    return dist2, idx, sel


def brute_force(xb, yb):
    """All squared distances [n, m] by direct differences (no matrix-product shortcut)."""
    return torch.cdist(xb, yb, compute_mode="donot_use_mm_for_euclid_dist").square_()


def check(x, y, x_len, y_len, k=None):
    B, N, D = x.shape
    shared = y.dim() == 2
    dist2, idx, sel = run_kernel(x, y, x_len, y_len, k)
    rtol = RTOL[x.dtype]
    for b in range(B):
        n, m = int(x_len[b]), int(y_len[b])
        yb = (y if shared else y[b])[:m]
        assert torch.all(idx[b, n:] == -1), "padded queries must get idx -1"
        assert torch.all(dist2[b, n:] == 0), "padded queries must get dist2 0"
        if n == 0:
            continue
        xb = x[b, :n]
        ib = idx[b, :n]
        assert torch.all((ib >= 0) & (ib < m)), "indices must point at valid references"
        full = brute_force(xb.double(), yb.double())  # [n, m] reference in float64
        ref = full.min(1).values
        got = full.gather(1, ib[:, None]).squeeze(1)  # exact distance of the returned point
        # The returned point is a nearest one (ties: any point at the minimum distance) ...
        tol = rtol * ref + 1e-30
        assert torch.all(got <= ref + tol), f"batch {b}: a closer point exists"
        # ... and the returned dist2 is that point's squared distance in the query's dtype.
        np.testing.assert_allclose(dist2[b, :n].double().numpy(), got.numpy(), rtol=rtol, atol=1e-30)
        if k is not None:
            kb = min(max(int(k[b]), 0), n)
            sb = sel[b].bool()
            assert not sb[n:].any(), "padded queries must not be selected"
            assert int(sel[b].sum()) == kb, f"batch {b}: expected {kb} selected"
            assert torch.all((sel[b] == 0) | (sel[b] == 1))
            d = dist2[b, :n]
            if 0 < kb < n:
                assert d[sb[:n]].max() <= d[~sb[:n]].min()


def make_cloud(rng, kind, shape, D):
    """Points of a given kind: uniform, clustered, duplicated, on a small integer grid (ties), or a
    noisy 2D surface in 3D (the scan-like workload)."""
    count = int(np.prod(shape))
    if kind == "uniform":
        p = rng.uniform(-1, 1, (count, D))
    elif kind == "clustered":
        centres = rng.uniform(-1, 1, (4, D))
        p = centres[rng.integers(0, 4, count)] + rng.normal(scale=1e-3, size=(count, D))
    elif kind == "duplicates":
        base = rng.uniform(-1, 1, (max(1, count // 10), D))
        p = base[rng.integers(0, len(base), count)]
    elif kind == "grid":
        p = rng.integers(0, 4, (count, D)).astype(np.float64)
    else:  # surface: a wavy sheet with a little noise, scaled and shifted
        uv = rng.uniform(-1, 1, (count, 2))
        h = 0.3 * np.sin(3 * uv[:, 0]) * np.cos(2 * uv[:, 1])
        p = np.stack([uv[:, 0], uv[:, 1], h], 1)[:, :D] + rng.normal(scale=1e-3, size=(count, D))
        p = p * 0.1 + 0.05
    return p.reshape(*shape, D)


KINDS = ["uniform", "clustered", "duplicates", "grid", "surface"]


@st.composite
def problems(draw):
    B = draw(st.integers(1, 8))
    budget = 12_000_000 // B  # keeps the brute force (and the suite) fast: N * M per batch element
    N = draw(st.integers(1, 3000))
    M = draw(st.integers(1, max(1, min(3000, budget // N))))
    D = draw(st.sampled_from([2, 3]))
    dtype = draw(st.sampled_from([torch.float32, torch.float64]))
    shared = draw(st.booleans())
    ragged = draw(st.booleans())
    x_kind = draw(st.sampled_from(KINDS))
    y_kind = draw(st.sampled_from(KINDS + ["same"]))  # "same": y drawn around x (near-zero distances)
    with_k = draw(st.booleans())
    seed = draw(st.integers(0, 2**31 - 1))
    return B, N, M, D, dtype, shared, ragged, x_kind, y_kind, with_k, seed


def build(B, N, M, D, dtype, shared, ragged, x_kind, y_kind, with_k, seed):
    rng = np.random.default_rng(seed)
    x = make_cloud(rng, x_kind, (B, N), D)
    yshape = (M,) if shared else (B, M)
    if y_kind == "same":
        src = x.reshape(-1, D)
        y = src[rng.integers(0, len(src), int(np.prod(yshape)))].reshape(*yshape, D)
        y = y + rng.normal(scale=1e-4, size=y.shape) * rng.integers(0, 2, y.shape[:-1])[..., None]
    else:
        y = make_cloud(rng, y_kind, yshape, D)
    if ragged:
        x_len = rng.integers(0, N + 1, B)
        y_len = np.full(B, M) if shared else rng.integers(1, M + 1, B)
    else:
        x_len, y_len = np.full(B, N), np.full(B, M)
    x = torch.tensor(x, dtype=dtype)
    y = torch.tensor(y, dtype=dtype)
    for b in range(B):  # padding holds NaN: the kernel must never read it
        x[b, x_len[b]:] = float("nan")
        if not shared:
            y[b, y_len[b]:] = float("nan")
    k = rng.integers(0, N + 2, B) if with_k else None
    return x, y, x_len, y_len, k


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problems())
def test_random_against_brute_force(p):
    check(*build(*p))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("D", [2, 3])
def test_houv_shape_shared(dtype, D):
    """The registration shape: rotated copies of one cloud against a shared fixed cloud."""
    rng = np.random.default_rng(1)
    base = make_cloud(rng, "surface", (2048,), 3)
    q, _ = np.linalg.qr(rng.normal(size=(8, 3, 3)))
    x = np.einsum("bij,nj->bni", q, base)[..., :D]
    y = make_cloud(rng, "surface", (2048,), 3)[:, :D]
    x, y = torch.tensor(x, dtype=dtype), torch.tensor(y, dtype=dtype)
    check(x, y, np.full(8, 2048), np.full(8, 2048), k=np.full(8, 1500))


def test_shared_y_with_ragged_lengths():
    """A shared y with different valid lengths per batch element (one index per distinct length)."""
    rng = np.random.default_rng(2)
    x = torch.tensor(make_cloud(rng, "uniform", (4, 500), 3))
    y = torch.tensor(make_cloud(rng, "uniform", (700,), 3))
    check(x, y, np.array([500, 3, 0, 250]), np.array([700, 1, 350, 700]), k=np.array([10, 5, 1, 250]))


def test_degenerate_clouds():
    """All-identical points (zero extent), collinear points, a single reference point."""
    for dtype in (torch.float32, torch.float64):
        same = torch.ones(2, 300, 3, dtype=dtype)
        check(same, same[0].clone(), [300, 300], [300, 300], k=[7, 300])
        line = torch.zeros(1, 1000, 3, dtype=dtype)
        line[0, :, 1] = torch.linspace(0, 1, 1000, dtype=dtype)
        check(line, line[0, ::3].contiguous() + 1e-3, [1000], [334])
        check(line, line[:, :1].contiguous(), [1000], [1])


def test_large_reference_parallel_build():
    """A reference cloud large enough for the task-parallel index build, queries in many blocks."""
    rng = np.random.default_rng(3)
    y = torch.tensor(make_cloud(rng, "surface", (66000,), 3), dtype=torch.float32)
    x = torch.tensor(make_cloud(rng, "uniform", (1, 1100), 3) * 0.1, dtype=torch.float32)
    check(x, y, [1100], [66000], k=[100])
