"""The Triton K-nearest launcher (kernels/knn_topk.py) under TRITON_INTERPRET=1 on CPU tensors,
against the dense reference at small sizes (the interpreter is slow). Conventions: csrc/knn_topk.h."""
import importlib.util
import os

os.environ["TRITON_INTERPRET"] = "1"  # before anything imports triton

import pytest
import torch

if importlib.util.find_spec("triton") is None:
    pytest.skip("triton is not installed (pip install triton): Triton knn_topk tests not run",
                allow_module_level=True)

from fe_fast.kernels.knn_topk import knn_topk_triton  # noqa: E402
from fe_fast.ops.reference.knn_topk import knn_topk_reference  # noqa: E402

SMALL = dict(block_n=8, block_m=16)  # several query and reference blocks, partial last ones


def _lens(B, n):
    return torch.tensor(n, dtype=torch.int64) if n is not None else None


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("D,block_d", [(1, None), (3, None), (5, 2), (19, 8)])
@pytest.mark.parametrize("shared", [False, True], ids=["batched_y", "shared_y"])
def test_matches_reference_ragged(dtype, D, block_d, shared):
    g = torch.Generator().manual_seed(10 * D + shared)
    B, N, M, K = 3, 21, 35, 6
    x = torch.randn(B, N, D, generator=g, dtype=dtype)
    y = torch.randn(M, D, generator=g, dtype=dtype) if shared else torch.randn(B, M, D, generator=g, dtype=dtype)
    x_len = torch.tensor([21, 9, 1])
    y_len = torch.full((B,), M) if shared else torch.tensor([35, 4, 17])  # 4 < K: padded slots
    idx, dist2 = knn_topk_triton(x, y, x_len, y_len, K, block_d=block_d, **SMALL)
    rd, ri = knn_topk_reference(x, y, K, x_len, y_len)
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == torch.float32 else dict(rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(dist2, rd, **tol)
    assert torch.equal(idx, ri)  # random data: no ties


def test_ties_and_k_one_and_large_k():
    g = torch.Generator().manual_seed(3)
    x = torch.randint(0, 3, (2, 13, 2), generator=g).float()
    y = torch.randint(0, 3, (2, 20, 2), generator=g).float()
    x_len, y_len = torch.tensor([13, 13]), torch.tensor([20, 20])
    for K in (1, 7, 25):  # 25 > M: slots past M are -1 / 0
        idx, dist2 = knn_topk_triton(x, y, x_len, y_len, K, **SMALL)
        rd, ri = knn_topk_reference(x, y, K)
        assert torch.equal(idx, ri) and torch.equal(dist2, rd)


def test_inputs_untouched():
    g = torch.Generator().manual_seed(4)
    x, y = torch.randn(1, 10, 4, generator=g), torch.randn(12, 4, generator=g)
    lens = (torch.tensor([10]), torch.tensor([12]))
    before = (x.clone(), y.clone())
    knn_topk_triton(x, y, *lens, 3, **SMALL)
    assert torch.equal(x, before[0]) and torch.equal(y, before[1])
