"""The Triton S-gradient reduction (kernels/s_grad_reduce.py) under TRITON_INTERPRET=1 on CPU
tensors, at small sizes (the interpreter is slow), against the plain-torch reference."""
import importlib.util
import os

os.environ["TRITON_INTERPRET"] = "1"  # before anything imports triton

import pytest
import torch

if importlib.util.find_spec("triton") is None:
    pytest.skip("triton is not installed: Triton s_grad_reduce tests not run", allow_module_level=True)

from fe_fast.ops.reference.s_grad_reduce import s_grad_reduce_reference  # noqa: E402
from fe_fast.ops.s_grad_reduce import layer_offsets, s_grad_reduce  # noqa: E402

TOL = {torch.float32: dict(rtol=1e-5, atol=1e-6), torch.float64: dict(rtol=1e-12, atol=1e-12)}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("sizes,B,k", [([40, 24, 130, 8], 70, 3), ([5, 3], 1, 2)])
def test_triton_matches_reference(dtype, sizes, B, k):
    g = torch.Generator().manual_seed(B)
    grads = torch.randn(B, sum(sizes), generator=g, dtype=dtype)
    mask = torch.rand(B, generator=g) < 0.6
    mask[-1] = True
    off = layer_offsets(sizes)
    out = s_grad_reduce(grads, off, mask, k, backend="triton")
    ref = s_grad_reduce_reference(grads, off, mask, k)
    for a, b in zip(out[:3], ref[:3]):
        torch.testing.assert_close(a, b, **TOL[dtype])
    assert torch.equal(out.topk_idx, ref[3])
    torch.testing.assert_close(out.topk_val, ref[4], **TOL[dtype])
    cpu = s_grad_reduce(grads, off, mask, k, backend="cpu")
    assert torch.equal(out.topk_idx, cpu.topk_idx)


def test_triton_ties_follow_the_cpu_order():
    grads = torch.tensor([[1.0, -2.0, 2.0, 0.5, 3.0, -3.0]])
    out = s_grad_reduce(grads, [0, 4, 6], None, 2, backend="triton")
    assert out.topk_idx.tolist() == [[1, 2], [0, 1]]
