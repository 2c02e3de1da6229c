"""The ops are torch.library custom ops (fe_fast::knn_search, fe_fast::knn_topk_search,
fe_fast::nearest_l1, fe_fast::nonnegative, fe_fast::s_grad_reduce, the
fe_fast::modconv_* ops): torch.compile(fullgraph=True) runs the losses built on them without a graph
break, torch.export captures them, and the data-dependent checks still raise under compile.

torch.compile is exercised with the "aot_eager" backend (Dynamo with fullgraph plus AOTAutograd on
fake tensors: what breaks or fails on an unregistered op) and once with Inductor, which compiles
C++ on the CPU and is the slow part, so that one case stays small."""
import importlib

import pytest
import torch

import fe_fast.ops as ops

houv = importlib.import_module("fe_fast.registration.houv")  # the package re-exports a function `houv`


def _clouds(seed=0):
    g = torch.Generator().manual_seed(seed)
    P = torch.randn(2, 60, 3, generator=g)
    Q = torch.randn(2, 50, 3, generator=g)
    return g, P, Q


def houv_loss(P, Q, R, t, P_len, Q_len):
    """HOUV's hybrid loss (local Chamfer eq. 3-9 + beta * projected Chamfer eq. 3-10), exactly as
    fe_fast.registration.houv evaluates it for 2 clouds x 2 hypotheses, ragged."""
    return houv._hybrid_terms(P, Q, R, t, 0.7, 0.5, P_len, Q_len, G=2)[1]


def test_houv_loss_compiles_fullgraph_with_gradients():
    g, P, Q = _clouds()
    R0 = torch.linalg.qr(torch.randn(4, 3, 3, generator=g)).Q
    t0 = 0.1 * torch.randn(4, 3, generator=g)
    P_len, Q_len = torch.tensor([60, 41]), torch.tensor([50, 33])

    def run(fn):
        R, t = R0.clone().requires_grad_(), t0.clone().requires_grad_()
        out = fn(P, Q, R, t, P_len, Q_len)
        out.sum().backward()
        return out.detach(), R.grad, t.grad

    eager = run(houv_loss)
    compiled = run(torch.compile(houv_loss, fullgraph=True, backend="aot_eager"))
    for e, c in zip(eager, compiled):
        torch.testing.assert_close(c, e)


def test_chamfer_loss_compiles_with_inductor():
    _, P, Q = _clouds(1)

    def loss(x, y):
        return ops.chamfer(x, y).mean() + ops.local_chamfer(x, y[0], 0.5).mean()

    x = P.clone().requires_grad_()
    compiled = torch.compile(loss, fullgraph=True)  # Inductor
    out = compiled(x, Q)
    out.backward()
    gc = x.grad.clone()
    x.grad = None
    ref = loss(x, Q)
    ref.backward()
    torch.testing.assert_close(out.detach(), ref.detach())
    torch.testing.assert_close(gc, x.grad)


def test_data_dependent_checks_raise_under_compile():
    _, P, Q = _clouds(2)
    f = torch.compile(lambda x, y, yl: ops.local_chamfer(x, y, 0.5, y_lengths=yl), fullgraph=True,
                      backend="aot_eager")
    ok = f(P, Q, torch.tensor([50, 10]))
    assert torch.isfinite(ok).all()
    bad = Q.clone()
    bad[1, 3, 0] = float("nan")
    with pytest.raises(ValueError, match="y contains NaN"):
        f(P, bad, torch.tensor([50, 10]))
    bad[1, 3, 0] = 0.0
    bad[1, 20, 0] = float("nan")  # padding may hold anything
    assert torch.isfinite(f(P, bad, torch.tensor([50, 10]))).all()
    with pytest.raises(ValueError, match="y_lengths has a length above"):
        f(P, Q, torch.tensor([51, 10]))
    with pytest.raises(ValueError, match="y_lengths has an empty cloud"):
        f(P, Q, torch.tensor([0, 10]))


def test_export_houv_and_chamfer():
    g, P, Q = _clouds(3)
    R = torch.linalg.qr(torch.randn(4, 3, 3, generator=g)).Q
    t = torch.zeros(4, 3)
    lens = (torch.tensor([60, 41]), torch.tensor([50, 33]))

    class Houv(torch.nn.Module):
        def forward(self, P, Q, R, t, P_len, Q_len):
            return houv_loss(P, Q, R, t, P_len, Q_len)

    class Chamfer(torch.nn.Module):
        def forward(self, x, y):
            return ops.chamfer(x, y)

    ep = torch.export.export(Houv(), (P, Q, R, t, *lens))
    targets = {str(n.target) for n in ep.graph.nodes if n.op == "call_function"}
    assert "fe_fast.knn_search.default" in targets
    torch.testing.assert_close(ep.module()(P, Q, R, t, *lens), houv_loss(P, Q, R, t, *lens))
    ep = torch.export.export(Chamfer(), (P, Q))
    torch.testing.assert_close(ep.module()(P, Q), ops.chamfer(P, Q))


def test_s_grad_reduce_compiles_and_exports():
    g = torch.Generator().manual_seed(4)
    grads = torch.randn(16, 20, generator=g)
    mask = torch.arange(16) % 3 == 0
    off = torch.tensor([0, 5, 12, 20])

    def f(grads, mask):
        r = ops.s_grad_reduce(grads, off, mask, k=2)
        return r.layer * 2, r.topk_idx, r.topk_val

    eager = f(grads, mask)
    for e, c in zip(eager, torch.compile(f, fullgraph=True, backend="aot_eager")(grads, mask)):
        torch.testing.assert_close(c, e)

    class M(torch.nn.Module):
        def forward(self, grads, mask):
            return f(grads, mask)

    ep = torch.export.export(M(), (grads, mask))
    for e, c in zip(eager, ep.module()(grads, mask)):
        torch.testing.assert_close(c, e)
    with pytest.raises(ValueError, match="no positive"):
        torch.compile(f, fullgraph=True, backend="aot_eager")(grads, torch.zeros(16, dtype=torch.bool))


def _layer(res, up, seed, kind="conv"):
    from fe_fast.stylegan.networks import ModulatedLayer

    torch.manual_seed(seed)
    layer = ModulatedLayer(4, 5, 8, res, up=up, kind=kind)
    with torch.no_grad():
        layer.noise_strength.fill_(0.3) if layer.noise_strength is not None else None
        layer.bias.normal_()
    return layer


@pytest.mark.parametrize("res,up", [(8, 1), (16, 2), (32, 1)], ids=["nchw", "up2", "nhwc"])
def test_stylegan_layer_compiles_fullgraph_with_gradients(res, up):
    """fe_fast.stylegan's modulated layer (fe_fast::modconv_* ops; at 32x32 the NHWC op) under
    torch.compile(fullgraph=True): same output and gradients as eager."""
    layer = _layer(res, up, seed=res + up)
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(2, 4, res // up, res // up, generator=g)
    w = torch.randn(2, 8, generator=g)

    def f(x, w):
        return layer(x, layer.affine(w), noise_mode="const")

    def run(fn):
        layer.zero_grad()
        x = x0.clone().requires_grad_()
        out = fn(x, w)
        (out * out.detach().sign()).sum().backward()
        return out.detach(), x.grad, layer.weight.grad, layer.bias.grad, layer.affine.weight.grad

    eager = run(f)
    compiled = run(torch.compile(f, fullgraph=True, backend="aot_eager"))
    for e, c in zip(eager, compiled):
        torch.testing.assert_close(c, e, rtol=1e-4, atol=1e-5)


def test_export_stylegan_layer():
    layer = _layer(32, 1, seed=1)
    x = torch.randn(2, 4, 32, 32)
    w = torch.randn(2, 8)

    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = layer

        def forward(self, x, w):
            return self.layer(x, self.layer.affine(w), noise_mode="const")

    ep = torch.export.export(M(), (x, w))
    targets = {str(n.target) for n in ep.graph.nodes if n.op == "call_function"}
    from fe_fast import _ext

    # without fe_fast._C the layer runs the torch formulation (the fallback): no custom op then
    assert ("fe_fast.modconv_nhwc.default" in targets) != _ext.disabled()
    torch.testing.assert_close(ep.module()(x, w), M()(x, w))


@pytest.mark.parametrize("hw,up", [(6, 1), (4, 2), (32, 1)], ids=["nchw", "up2", "nhwc"])
def test_registered_modconv_double_backward(hw, up):
    """gradgradcheck of the "cpu" backend through its registered autograd (R1 and path-length
    regularisation differentiate the backward), on the NCHW ops and the NHWC op."""
    g = torch.Generator().manual_seed(hw)
    x = torch.randn(1, 2, hw, hw, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(3, 2, 3, 3, generator=g, dtype=torch.float64, requires_grad=True)
    s = torch.randn(1, 2, generator=g, dtype=torch.float64, requires_grad=True)
    n = torch.randn(1, 1, hw * up, hw * up, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(3, generator=g, dtype=torch.float64, requires_grad=True)

    def f(x, w, s, n, b):
        return ops.modulated_conv2d(x, w, s, up=up, noise=n, bias=b, backend="cpu")

    assert torch.autograd.gradgradcheck(f, (x, w, s, n, b), fast_mode=True)


def _topk_clouds(D, seed):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(2, 40, D, generator=g, dtype=torch.float64),
            torch.randn(2, 30, D, generator=g, dtype=torch.float64),
            torch.tensor([40, 23]), torch.tensor([30, 6]))  # y_lengths[1] < K: padded slots


def _knn8_loss(x, y, xl, yl):
    out = ops.knn(x, y, xl, yl, K=8, return_nn=True)
    w = torch.linspace(1.0, 2.0, 8, dtype=x.dtype)
    return (out.dists * w).sum() + out.knn.sum(), out.idx


@pytest.mark.parametrize("D", [3, 64], ids=["D3-kdtree", "D64-brute"])
def test_knn_topk_compiles_fullgraph_with_gradients(D):
    """knn(..., K=8) (fe_fast::knn_topk_search) under torch.compile(fullgraph=True): same loss,
    indices and gradients in both clouds as eager, ragged lengths included."""
    x0, y0, xl, yl = _topk_clouds(D, D)

    def run(fn):
        x, y = x0.clone().requires_grad_(), y0.clone().requires_grad_()
        loss, idx = fn(x, y, xl, yl)
        loss.backward()
        return loss.detach(), idx, x.grad, y.grad

    eager = run(_knn8_loss)
    assert (eager[1][1, :, 6:] == -1).all() and (eager[1][1, 23:] == -1).all()  # the padding is exercised
    compiled = run(torch.compile(_knn8_loss, fullgraph=True, backend="aot_eager"))
    for e, c in zip(eager, compiled):
        torch.testing.assert_close(c, e)


def test_knn_topk_checks_raise_under_compile_and_export():
    x, y, xl, yl = _topk_clouds(5, 1)
    f = torch.compile(lambda x, y, xl, yl: ops.knn(x, y, xl, yl, K=8).dists.sum(), fullgraph=True,
                      backend="aot_eager")
    assert torch.isfinite(f(x, y, xl, yl))
    bad = y.clone()
    bad[1, 10, 0] = float("nan")  # padding (y_lengths[1] = 6) may hold anything
    torch.testing.assert_close(f(x, bad, xl, yl), f(x, y, xl, yl))
    bad[1, 2, 0] = float("nan")
    with pytest.raises(ValueError, match="y contains NaN"):
        f(x, bad, xl, yl)
    with pytest.raises(ValueError, match="x_lengths has a length above"):
        f(x, y, torch.tensor([41, 3]), yl)
    with pytest.raises(ValueError, match="y_lengths has an empty cloud"):
        f(x, y, xl, torch.tensor([0, 3]))

    class M(torch.nn.Module):
        def forward(self, x, y, xl, yl):
            out = ops.knn(x, y, xl, yl, K=8)
            return out.dists, out.idx

    ep = torch.export.export(M(), (x, y, xl, yl))
    targets = {str(n.target) for n in ep.graph.nodes if n.op == "call_function"}
    assert "fe_fast.knn_topk_search.default" in targets
    for e, c in zip(M()(x, y, xl, yl), ep.module()(x, y, xl, yl)):
        torch.testing.assert_close(c, e)
    with pytest.raises(ValueError, match="y contains NaN"):
        ep.module()(x, bad, xl, yl)


def _chamfer_inputs(D, seed):
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(3, 50, D, generator=g), torch.randn(3, 40, D, generator=g)
    xn, yn = torch.randn(3, 50, D, generator=g), torch.randn(3, 40, D, generator=g)
    return x, y, xn, yn, torch.tensor([50, 31, 7]), torch.tensor([40, 12, 33]), torch.tensor([1.0, 0.5, 2.0])


def _chamfer_loss(norm):
    def loss(x, y, xn, yn, xl, yl, w):
        d, dn = ops.chamfer_distance(x, y, xl, yl, x_normals=xn, y_normals=yn, weights=w, norm=norm)
        return d + 0.3 * dn
    return loss


@pytest.mark.parametrize("D,norm", [(3, 2), (5, 2), (3, 1)], ids=["D3-knn", "D5-knn_topk", "D3-L1"])
def test_chamfer_distance_compiles_fullgraph_and_exports(D, norm):
    """chamfer_distance with normals, ragged lengths and weights (the K = 1 knn op at D = 3, the
    knn_topk op at D = 5, the L1 op with norm=1): compiled loss and gradients (points and normals)
    equal eager; torch.export captures it."""
    inputs = _chamfer_inputs(D, D + norm)
    loss = _chamfer_loss(norm)

    def run(fn):
        leaves = [t.clone().requires_grad_() for t in inputs[:4]]
        out = fn(*leaves, *inputs[4:])
        out.backward()
        return [out.detach()] + [t.grad for t in leaves]

    eager = run(loss)
    compiled = run(torch.compile(loss, fullgraph=True, backend="aot_eager"))
    for e, c in zip(eager, compiled):
        torch.testing.assert_close(c, e)

    class M(torch.nn.Module):
        def forward(self, *args):
            return loss(*args)

    ep = torch.export.export(M(), inputs)
    op = {1: "fe_fast.nearest_l1.default", 2: "fe_fast.knn_search.default" if D == 3 else
          "fe_fast.knn_topk_search.default"}[norm]
    assert op in {str(n.target) for n in ep.graph.nodes if n.op == "call_function"}
    torch.testing.assert_close(ep.module()(*inputs), loss(*inputs))


def test_chamfer_distance_checks_raise_under_compile():
    x, y, xn, yn, xl, yl, w = _chamfer_inputs(5, 9)
    for norm in (1, 2):
        f = torch.compile(_chamfer_loss(norm), fullgraph=True, backend="aot_eager")
        with pytest.raises(ValueError, match="weights must be non-negative"):
            f(x, y, xn, yn, xl, yl, torch.tensor([1.0, -0.5, 2.0]))
        bad = y.clone()
        bad[2, 5, 1] = float("inf")
        with pytest.raises(ValueError, match="y contains NaN"):
            f(x, bad, xn, yn, xl, yl, w)
        with pytest.raises(ValueError, match="y_lengths has a length above"):
            f(x, y, xn, yn, xl, torch.tensor([40, 41, 3]), w)
