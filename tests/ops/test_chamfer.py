"""chamfer / local_chamfer (eq. 3-9) / projected_chamfer (eq. 3-10) against the reference."""
import pytest
import torch

import fe_fast.ops as ops
from fe_fast.ops.reference.knn import chamfer_reference, projected_chamfer_reference
from knn_backends import available

BACKENDS = [pytest.param(name, marks=pytest.mark.skipif(reason is not None, reason=reason or ""), id=name)
            for name, reason in available()]


def _device(backend):
    return "cuda" if torch.cuda.is_available() and backend != "cpu" else "cpu"


def _pair(B=3, N=40, M=31, D=3, shared=False, dtype=torch.float64, seed=0, device="cpu"):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, N, D, generator=g, dtype=dtype)
    y = torch.randn(*(() if shared else (B,)), M, D, generator=g, dtype=dtype)
    return x.to(device), y.to(device)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shared", [False, True])
@pytest.mark.parametrize("D", [2, 3])
def test_chamfer_matches_reference(backend, shared, D):
    x, y = _pair(D=D, shared=shared, seed=D, device=_device(backend))
    torch.testing.assert_close(ops.chamfer(x, y, backend=backend), chamfer_reference(x, y))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("alpha", [0.1, 0.5, 1.0])
def test_local_chamfer_matches_reference(backend, alpha):
    x, y = _pair(seed=4, device=_device(backend))
    x_len, y_len = torch.tensor([40, 3, 21], device=x.device), torch.tensor([31, 31, 1], device=x.device)
    got = ops.local_chamfer(x, y, alpha, x_len, y_len, backend=backend)
    torch.testing.assert_close(got, chamfer_reference(x, y, x_len, y_len, alpha=alpha))


def test_local_chamfer_alpha_one_is_chamfer():
    x, y = _pair(seed=9)
    torch.testing.assert_close(ops.local_chamfer(x, y, 1.0), ops.chamfer(x, y))


def test_local_chamfer_ignores_outliers():
    # y = x plus far outliers: with alpha at the inlier share the local Chamfer is 0
    x, _ = _pair(B=1, N=50, seed=2)
    y = torch.cat([x[0], x[0, :10] + 100.0], 0)
    assert float(ops.chamfer(x, y)) > 1.0
    assert float(ops.local_chamfer(x, y, 50 / 60)) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_projected_chamfer_matches_reference(backend):
    x, y = _pair(seed=5, device=_device(backend))
    got = ops.projected_chamfer(x, y, backend=backend)
    assert got.shape == (3, 3)
    torch.testing.assert_close(got, projected_chamfer_reference(x, y))
    only_xz = ops.projected_chamfer(x, y, planes=("xz",), backend=backend)
    torch.testing.assert_close(only_xz[:, 0], got[:, 2])


def test_projected_chamfer_is_blind_to_the_dropped_axis():
    x, y = _pair(B=1, seed=6)
    shifted = x.clone()
    shifted[..., 2] += 5.0  # a z shift leaves the xy projection unchanged
    pc = ops.projected_chamfer(shifted, y)
    torch.testing.assert_close(pc[:, 0], ops.projected_chamfer(x, y)[:, 0])
    assert float(pc[0, 1]) > float(ops.projected_chamfer(x, y)[0, 1])


@pytest.mark.parametrize("fn", ["chamfer", "local", "projected"])
@pytest.mark.parametrize("shared", [False, True])
def test_gradcheck(fn, shared):
    x, y = _pair(B=2, N=10, M=8, shared=shared, seed=3)
    x.requires_grad_(True)
    y.requires_grad_(True)
    f = {
        "chamfer": lambda a, b: ops.chamfer(a, b),
        "local": lambda a, b: ops.local_chamfer(a, b, 0.6),
        "projected": lambda a, b: ops.projected_chamfer(a, b),
    }[fn]
    assert torch.autograd.gradcheck(f, (x, y))


def test_gradient_matches_reference_autograd():
    x, y = _pair(B=2, N=30, M=25, seed=8)
    x1, y1 = x.clone().requires_grad_(True), y.clone().requires_grad_(True)
    x2, y2 = x.clone().requires_grad_(True), y.clone().requires_grad_(True)
    (ops.local_chamfer(x1, y1, 0.7).sum() + ops.projected_chamfer(x1, y1).sum()).backward()
    (chamfer_reference(x2, y2, alpha=0.7).sum() + projected_chamfer_reference(x2, y2).sum()).backward()
    torch.testing.assert_close(x1.grad, x2.grad)
    torch.testing.assert_close(y1.grad, y2.grad)


@pytest.mark.parametrize("planes, match", [(("xw",), "unknown plane"), ((), "at least one")])
def test_projected_bad_planes(planes, match):
    with pytest.raises(ValueError, match=match):
        ops.projected_chamfer(torch.zeros(1, 4, 3), torch.zeros(4, 3), planes=planes)


def test_projected_needs_3d():
    with pytest.raises(ValueError, match="3D"):
        ops.projected_chamfer(torch.zeros(1, 4, 2), torch.zeros(4, 2))


def test_values_are_checked_once_per_call(monkeypatch):
    """projected_chamfer runs six searches (three planes, both directions) on the clouds of one
    call: the data-dependent checks (each a value read back, a host sync on a GPU) run once, for
    x and for y, not in every search; a NaN is still refused, under the caller's names."""
    import importlib

    knn_mod = importlib.import_module("fe_fast.ops.knn")
    seen = []
    real = knn_mod.check_finite
    monkeypatch.setattr(knn_mod, "check_finite", lambda name, *a: seen.append(name) or real(name, *a))
    x, y = torch.randn(2, 20, 3), torch.randn(2, 30, 3)
    lengths = torch.tensor([20, 17])
    ops.projected_chamfer(x, y, x_lengths=lengths, y_lengths=torch.tensor([30, 5]))
    assert seen == ["x", "y"]
    seen.clear()
    ops.local_chamfer(x, y, 0.5)
    assert seen == ["x", "y"]
    y[1, 3, 0] = float("nan")
    with pytest.raises(ValueError, match="y contains NaN"):
        ops.projected_chamfer(x, y, x_lengths=lengths)
    ops.projected_chamfer(x, y, y_lengths=torch.tensor([30, 3]))  # the NaN is padding: fine
