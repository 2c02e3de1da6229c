"""Pure-torch fallbacks of the CPU ops (fe_fast/ops/_fallback.py), used when fe_fast._C is missing
and simulated here with FE_FAST_DISABLE_EXT=1: one FallbackWarning per process naming how to
build, and the same results as the compiled kernels."""
import os
import subprocess
import sys
import textwrap
import warnings

import pytest
import torch

import fe_fast.ops as ops
from fe_fast import _ext


def _compiled_available():
    try:
        import fe_fast._C  # noqa: F401  (on disk, even when FE_FAST_DISABLE_EXT hides it)
    except ImportError:
        return False
    return True


needs_compiled = pytest.mark.skipif(not _compiled_available(),
                                    reason="fe_fast._C is not built: nothing to compare the fallback with")


def both(fn, monkeypatch):
    """fn() with the compiled module, then with it hidden: (compiled, fallback)."""
    monkeypatch.delenv(_ext.DISABLE_ENV, raising=False)
    compiled = fn()
    monkeypatch.setenv(_ext.DISABLE_ENV, "1")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", _ext.FallbackWarning)
        fallback = fn()
    return compiled, fallback


def test_one_warning_per_process_naming_the_build():
    code = textwrap.dedent("""
        import warnings, torch
        warnings.simplefilter("always")
        import fe_fast.ops as ops
        with warnings.catch_warnings(record=True) as rec:
            warnings.simplefilter("always")
            x, y = torch.randn(2, 50, 3), torch.randn(2, 40, 3)
            ops.knn(x, y); ops.chamfer(x, y); ops.local_chamfer(x, y, 0.5)
            ops.s_grad_reduce(torch.randn(4, 8), [0, 4, 8], k=2)
            ops.modulated_conv2d(torch.randn(1, 2, 4, 4), torch.randn(3, 2, 3, 3), torch.randn(1, 2))
        from fe_fast._ext import FallbackWarning
        msgs = [str(w.message) for w in rec if issubclass(w.category, FallbackWarning)]
        print(len(msgs)); print(msgs[0] if msgs else "")
    """)
    env = dict(os.environ, FE_FAST_DISABLE_EXT="1")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    count, msg = r.stdout.splitlines()[:2]
    assert count == "1"
    assert "FE_FAST_DISABLE_EXT=1" in msg and "make build" in msg and "pip install ." in msg


def test_disable_hides_both_modules(monkeypatch):
    monkeypatch.setenv(_ext.DISABLE_ENV, "1")
    with pytest.raises(ImportError, match="FE_FAST_DISABLE_EXT"):
        _ext.cpu()
    assert _ext.cuda() is None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", _ext.FallbackWarning)
        assert _ext.cpu_or_none() is None


def _clouds(B, N, M, dtype, shared, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, N, 3, generator=g, dtype=dtype)
    y = torch.randn((M, 3) if shared else (B, M, 3), generator=g, dtype=dtype)
    return x, y


@needs_compiled
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("shared", [False, True], ids=["batched_y", "shared_y"])
def test_knn_and_select_equal_compiled(monkeypatch, dtype, shared):
    x, y = _clouds(3, 300, 257, dtype, shared, 7 + shared)
    x_len = torch.tensor([300, 17, 120])
    y_len = None if shared else torch.tensor([257, 3, 200])
    (kc, sc), (kf, sf) = both(lambda: (ops.knn(x, y, x_len, y_len, backend="cpu"),
                                       ops.knn_select(x, y, 0.3, x_len, y_len, backend="cpu")), monkeypatch)
    assert torch.equal(kc.idx, kf.idx) and torch.equal(kc.dist2, kf.dist2)
    assert torch.equal(sc.selected, sf.selected) and torch.equal(sc.idx, sf.idx)


@needs_compiled
@pytest.mark.parametrize("shared", [False, True], ids=["batched_y", "shared_y"])
def test_chamfer_family_and_gradients_equal_compiled(monkeypatch, shared):
    x0, y0 = _clouds(2, 200, 150, torch.float64, shared, 11 + shared)

    def run():
        x, y = x0.clone().requires_grad_(), y0.clone().requires_grad_()
        loss = (ops.chamfer(x, y).sum() + ops.local_chamfer(x, y, 0.6).sum()
                + ops.projected_chamfer(x, y).sum())
        loss.backward()
        return loss.detach(), x.grad, y.grad

    compiled, fallback = both(run, monkeypatch)
    for c, f in zip(compiled, fallback):
        torch.testing.assert_close(f, c, rtol=1e-12, atol=1e-12)


@needs_compiled
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
def test_s_grad_reduce_equals_compiled(monkeypatch, dtype):
    g = torch.Generator().manual_seed(3)
    grads = torch.randn(40, 30, generator=g, dtype=dtype)
    mask = torch.rand(40, generator=g) < 0.5
    c, f = both(lambda: ops.s_grad_reduce(grads, [0, 8, 20, 30], mask, k=3, backend="cpu"), monkeypatch)
    assert torch.equal(c.topk_idx, f.topk_idx)
    for name in ("mean", "mean_abs", "layer", "topk_val"):
        torch.testing.assert_close(getattr(f, name), getattr(c, name), rtol=1e-6, atol=1e-7)
    if dtype != torch.float32:  # float64 sums in another order differ in the last bit
        return
    # float32: the layer response is the mean of the rounded mean_abs, to the bit (wide layers, 20 draws)
    wide = torch.randn(20, 40, 300, generator=g, dtype=dtype) * torch.rand(20, 1, 300, generator=g, dtype=dtype) * 10
    for gw in wide:
        c, f = both(lambda: ops.s_grad_reduce(gw, [0, 80, 200, 300], k=3, backend="cpu"), monkeypatch)
        assert torch.equal(f.layer, c.layer) and torch.equal(f.mean_abs, c.mean_abs)


@needs_compiled
@pytest.mark.parametrize("up", [1, 2])
def test_modulated_conv_equals_compiled(monkeypatch, up):
    g = torch.Generator().manual_seed(5)
    x0 = torch.randn(2, 4, 8, 8, generator=g, dtype=torch.float64)
    w0 = torch.randn(5, 4, 3, 3, generator=g, dtype=torch.float64)
    s0 = torch.randn(2, 4, generator=g, dtype=torch.float64)
    n0 = torch.randn(1, 1, 8 * up, 8 * up, generator=g, dtype=torch.float64)
    b0 = torch.randn(5, generator=g, dtype=torch.float64)

    def run():
        x, w, s = (t.clone().requires_grad_() for t in (x0, w0, s0))
        out = ops.modulated_conv2d(x, w, s, up=up, noise=n0, bias=b0, backend="cpu")
        out.square().sum().backward()
        return out.detach(), x.grad, w.grad, s.grad

    compiled, fallback = both(run, monkeypatch)
    for c, f in zip(compiled, fallback):
        torch.testing.assert_close(f, c, rtol=1e-10, atol=1e-10)
