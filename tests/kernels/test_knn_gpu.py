"""Both GPU knn backends on CUDA tensors at medium sizes (several tiles, split reference ranges,
multi-block selection), against the brute-force reference. Needs a CUDA device; the compiled
Triton path also needs TRITON_INTERPRET unset or 0 (bench/gpu_check.sh runs it that way)."""
import os

import pytest
import torch

from knn_checks import check_nn, check_sel, make


def _backend(name):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device: GPU knn backends not run")
    if name == "triton":
        if os.environ.get("TRITON_INTERPRET") == "1":
            pytest.skip("TRITON_INTERPRET=1: run with TRITON_INTERPRET=0 to test compiled Triton")
        from fe_fast.kernels.knn import knn_triton

        return knn_triton
    from fe_fast import _ext

    if _ext.cuda() is None:
        pytest.skip("fe_fast._C_cuda is not built: reinstall with FE_FAST_CUDA=1")
    from fe_fast.ops._knn_cuda import knn_cuda

    return knn_cuda


CASES = {
    # B, N, M, D, dtype, shared, x_len, y_len, k
    "ragged-3d-f32": (2, 3000, 5000, 3, torch.float32, False, [3000, 1234], [5000, 777], [1500, 2000]),
    "shared-2d-f64": (3, 1000, 2000, 2, torch.float64, True, [1000, 999, 1], None, [10, 998, 1]),
    "one-batch-3d-f32": (1, 6000, 6000, 3, torch.float32, True, [6000], None, [4321]),
    "ragged-2d-f32": (4, 700, 1300, 2, torch.float32, False, [700, 0, 513, 64], [1300, 1, 512, 513],
                      [350, 3, 600, 1]),
}


@pytest.mark.parametrize("backend", ["triton", "cuda"])
@pytest.mark.parametrize("case", list(CASES))
def test_random(backend, case):
    fn = _backend(backend)
    B, N, M, D, dtype, shared, x_len, y_len, k = CASES[case]
    gen = torch.Generator().manual_seed(list(CASES).index(case))
    x, y, xl, yl = make(B, N, M, D, dtype, shared, gen, x_len=x_len, y_len=y_len)
    k = torch.tensor(k)
    idx, dist2, sel = fn(*(t.cuda() for t in (x, y, xl, yl, k)))
    torch.cuda.synchronize()
    check_nn(x, y, xl, yl, idx, dist2, exact_ties=False)  # FMA contraction: near-ties may differ
    check_sel(dist2, xl, k, sel)


@pytest.mark.parametrize("backend", ["triton", "cuda"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
def test_exact_ties(backend, dtype):
    """Small-integer coordinates: distances are exact in any evaluation order, so the smallest
    index among equal distances is checked exactly, and the selection threshold has many ties."""
    fn = _backend(backend)
    gen = torch.Generator().manual_seed(17)
    B, N, M, D = 2, 2500, 1800, 3
    x = torch.randint(0, 5, (B, N, D), generator=gen).to(dtype)
    y = torch.randint(0, 5, (B, M // 2, D), generator=gen).to(dtype).repeat(1, 2, 1)
    xl, yl = torch.tensor([2500, 1999]), torch.tensor([1800, 1001])
    for kk in ([1, 1], [1250, 700], [2499, 1998]):
        k = torch.tensor(kk)
        idx, dist2, sel = fn(*(t.cuda() for t in (x, y, xl, yl, k)))
        torch.cuda.synchronize()
        check_nn(x, y, xl, yl, idx, dist2, exact_ties=True)
        check_sel(dist2, xl, k, sel)


def test_backends_agree():
    tri, cu = _backend("triton"), _backend("cuda")
    gen = torch.Generator().manual_seed(3)
    x, y, xl, yl = make(8, 2048, 2048, 3, torch.float32, False, gen, x_len=[2048] * 8, y_len=[2048] * 8)
    k = torch.full((8,), 1024)
    args = [t.cuda() for t in (x, y, xl, yl, k)]
    i1, d1, s1 = tri(*args)
    i2, d2, s2 = cu(*args)
    torch.testing.assert_close(d1, d2, rtol=1e-5, atol=1e-6)
    assert (i1 == i2).float().mean() > 0.999  # rare near-ties may round apart
    assert torch.equal(s1.sum(1), s2.sum(1))
