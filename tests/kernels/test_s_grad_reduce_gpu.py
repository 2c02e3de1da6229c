"""The compiled Triton S-gradient reduction on CUDA tensors at the 1024-resolution layout, against
the plain-torch reference. Needs a CUDA device and TRITON_INTERPRET unset or 0 (bench/gpu_check.sh
runs it that way); the interpreter tests are in test_s_grad_reduce_triton.py."""
import os

import pytest
import torch

from fe_fast.ops.reference.s_grad_reduce import s_grad_reduce_reference
from fe_fast.ops.s_grad_reduce import layer_offsets, s_grad_reduce

if not torch.cuda.is_available():
    pytest.skip("no CUDA device: compiled Triton s_grad_reduce not run", allow_module_level=True)
if os.environ.get("TRITON_INTERPRET") == "1":
    pytest.skip("TRITON_INTERPRET=1: run with TRITON_INTERPRET=0 to test compiled Triton",
                allow_module_level=True)

SIZES_1024 = [512] * 15 + [256] * 3 + [128] * 3 + [64] * 3 + [32] * 2  # thesis Table 6-2
TOL = {torch.float32: dict(rtol=1e-5, atol=1e-6), torch.float64: dict(rtol=1e-12, atol=1e-12)}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("B,frac,k", [(1000, 1.0, 3), (1000, 0.04, 3), (37, 0.5, 10), (1, 1.0, 1)])
def test_compiled_triton_matches_reference(dtype, B, frac, k):
    g = torch.Generator().manual_seed(B + k)
    grads = torch.randn(B, sum(SIZES_1024), generator=g, dtype=dtype)
    mask = torch.rand(B, generator=g) < frac
    mask[0] = True
    off = layer_offsets(SIZES_1024)
    out = s_grad_reduce(grads.cuda(), off, mask.cuda(), k)  # automatic: triton on CUDA
    ref = s_grad_reduce_reference(grads, off, mask, k)
    assert out.mean.is_cuda
    for a, b in zip(out[:3], ref[:3]):
        torch.testing.assert_close(a.cpu(), b, **TOL[dtype])
    assert torch.equal(out.topk_idx.cpu(), ref[3])
    torch.testing.assert_close(out.topk_val.cpu(), ref[4], **TOL[dtype])
