"""fe_fast.ops.s_grad_reduce (thesis eq. 6-5 / 6-6) on the CPU backend against the plain-torch
reference, plus validation errors."""
import pytest
import torch

from fe_fast.ops.reference.s_grad_reduce import s_grad_reduce_eager, s_grad_reduce_reference
from fe_fast.ops.s_grad_reduce import layer_offsets, s_grad_reduce

TOL = {torch.float32: dict(rtol=1e-5, atol=1e-6), torch.float64: dict(rtol=1e-12, atol=1e-12)}
SIZES_1024 = [512] * 15 + [256] * 3 + [128] * 3 + [64] * 3 + [32] * 2  # thesis Table 6-2


def _check(out, ref, dtype):
    for name, a, b in zip(("mean", "mean_abs", "layer"), out[:3], ref[:3]):
        torch.testing.assert_close(a, b, **TOL[dtype], msg=name)
    assert torch.equal(out.topk_idx, ref[3])
    torch.testing.assert_close(out.topk_val, ref[4], **TOL[dtype])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("sizes,B,frac,k", [([7, 5, 9], 13, 0.5, 2), ([16, 3, 1, 8], 1, 1.0, 1),
                                            (SIZES_1024, 40, 0.1, 3)])
def test_matches_reference(dtype, sizes, B, frac, k):
    g = torch.Generator().manual_seed(len(sizes) + B)
    grads = torch.randn(B, sum(sizes), generator=g, dtype=dtype)
    mask = torch.rand(B, generator=g) < frac
    mask[0] = True
    off = layer_offsets(sizes)
    out = s_grad_reduce(grads, off, mask, k, backend="cpu")
    _check(out, s_grad_reduce_reference(grads, off, mask, k), dtype)
    # the eager baseline agrees too (no ties in random data)
    eager = s_grad_reduce_eager(grads, off, mask, k)
    torch.testing.assert_close(out.mean, eager[0], **TOL[dtype])
    assert torch.equal(out.topk_idx, eager[3])


def test_ties_go_to_smaller_index_and_mask_none():
    grads = torch.tensor([[1.0, -2.0, 2.0, 0.5, 3.0, -3.0]])
    out = s_grad_reduce(grads, [0, 4, 6], None, 2)
    assert out.topk_idx.tolist() == [[1, 2], [0, 1]]
    assert out.topk_val.tolist() == [[-2.0, 2.0], [3.0, -3.0]]
    torch.testing.assert_close(out.layer, torch.tensor([5.5 / 4, 3.0]))


def test_masked_rows_are_ignored_even_if_nonfinite():
    grads = torch.randn(4, 6)
    grads[2] = float("nan")
    mask = torch.tensor([True, True, False, True])
    out = s_grad_reduce(grads, [0, 3, 6], mask, 1)
    torch.testing.assert_close(out.mean, grads[mask].mean(0))
    assert not grads[mask].isnan().any()  # input untouched


@pytest.mark.parametrize("kwargs,match", [
    (dict(mask=torch.zeros(3, dtype=torch.bool)), "no positive"),
    (dict(k=5), "larger than the smallest layer"),
    (dict(k=0), "positive int"),
    (dict(offsets=[0, 2, 5]), "end at C=6"),
    (dict(offsets=[0, 3, 3, 6]), "strictly increasing"),
    (dict(mask=torch.ones(2, dtype=torch.bool)), "shape \\[3\\]"),
    (dict(grads=torch.ones(3, 6, dtype=torch.int32)), "float32 or float64"),
    (dict(grads=torch.ones(6)), "\\[B, C\\]"),
    (dict(backend="cuda"), "unknown backend"),
])
def test_bad_input(kwargs, match):
    args = dict(grads=torch.randn(3, 6), offsets=[0, 3, 6], mask=None, k=2)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        s_grad_reduce(args.pop("grads"), args.pop("offsets"), **args)


def test_nonfinite_selected_gradient_is_an_error():
    grads = torch.randn(3, 6)
    grads[1, 4] = float("inf")
    with pytest.raises(ValueError, match="NaN or Inf"):
        s_grad_reduce(grads, [0, 3, 6], None, 1)
