"""Shared checks for the knn kernel tests: a brute-force torch reference and the contract of
csrc/knn.h (padding, nearest distance, smallest index among exact ties, exact selection count)."""
import torch

TOL = {torch.float32: dict(rtol=1e-5, atol=1e-6), torch.float64: dict(rtol=1e-12, atol=1e-12)}


def brute(x, y, x_len, y_len):
    """Reference: idx (smallest index among equal minima), dist2, and per batch the full matrix."""
    B, N, _ = x.shape
    idx = torch.full((B, N), -1, dtype=torch.int64)
    dist2 = torch.zeros((B, N), dtype=x.dtype)
    mats = []
    for b in range(B):
        n, m = int(x_len[b]), int(y_len[b])
        yb = (y if y.dim() == 2 else y[b])[:m]
        dd = ((x[b, :n, None, :] - yb[None, :, :]) ** 2).sum(-1)
        mats.append(dd)
        if n == 0:
            continue
        mn = dd.min(1).values
        first = torch.where(dd == mn[:, None], torch.arange(m), m).min(1).values
        idx[b, :n] = first
        dist2[b, :n] = mn
    return idx, dist2, mats


def check_nn(x, y, x_len, y_len, idx, dist2, exact_ties=True):
    """exact_ties: the returned index is the smallest among references at exactly the minimum
    distance (the kernels' documented rule). Only meaningful where the kernel rounds like the
    reference (the interpreter; exactly representable distances on a GPU, where FMA contraction
    may otherwise split near-ties differently)."""
    x, y, x_len, y_len, idx, dist2 = (t.cpu() for t in (x, y, x_len, y_len, idx, dist2))
    ref_idx, ref_d, mats = brute(x, y, x_len, y_len)
    assert idx.dtype == torch.int64 and idx.shape == ref_idx.shape
    assert dist2.dtype == x.dtype and dist2.shape == ref_d.shape
    for b in range(x.shape[0]):
        n, m = int(x_len[b]), int(y_len[b])
        assert (idx[b, n:] == -1).all() and (dist2[b, n:] == 0).all(), "padded queries"
        if n == 0:
            continue
        got = idx[b, :n]
        assert ((got >= 0) & (got < m)).all(), "index outside the valid references"
        torch.testing.assert_close(dist2[b, :n], ref_d[b, :n], **TOL[x.dtype])
        # The distance of the returned point is a minimum (ties: any of the equal points) ...
        torch.testing.assert_close(mats[b].gather(1, got[:, None])[:, 0], ref_d[b, :n], **TOL[x.dtype])
        if exact_ties:  # ... and the kernel documents the smallest index among equal distances.
            assert torch.equal(got, ref_idx[b, :n])


def check_sel(dist2, x_len, k, sel):
    dist2, x_len, k, sel = (t.cpu() for t in (dist2, x_len, k, sel))
    assert sel.dtype == torch.bool and sel.shape == dist2.shape
    for b in range(dist2.shape[0]):
        n = int(x_len[b])
        want = min(max(int(k[b]), 0), n)
        assert not sel[b, n:].any(), "padded query selected"
        assert int(sel[b].sum()) == want, f"batch {b}: {int(sel[b].sum())} selected, expected {want}"
        if 0 < want < n:
            d, s = dist2[b, :n], sel[b, :n]
            thr = d[s].max()
            assert thr <= d[~s].min(), "a selected distance exceeds an unselected one"
            # Ties at the threshold resolved by query index (documented by the kernel).
            at = (d == thr).nonzero()[:, 0]
            taken = s[at]
            assert torch.equal(taken, torch.sort(taken, descending=True).values)


def make(B, N, M, D, dtype, shared, gen, x_len=None, y_len=None, nan_padding=True):
    x = torch.randn(B, N, D, generator=gen, dtype=dtype)
    y = torch.randn(*(() if shared else (B,)), M, D, generator=gen, dtype=dtype)
    if x_len is None:
        x_len = torch.randint(0, N + 1, (B,), generator=gen)
    if y_len is None:
        y_len = torch.full((B,), M) if shared else torch.randint(1, M + 1, (B,), generator=gen)
    x_len, y_len = torch.as_tensor(x_len, dtype=torch.int64), torch.as_tensor(y_len, dtype=torch.int64)
    if nan_padding:  # padding is never read: NaN there must not leak into results
        for b in range(B):
            x[b, int(x_len[b]):] = float("nan")
            if not shared:
                y[b, int(y_len[b]):] = float("nan")
    return x, y, x_len, y_len
