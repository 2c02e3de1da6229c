"""fe_fast.ops.chamfer_distance against a naive brute-force reference written here (PyTorch3D's
chamfer_distance conventions), for every option combination, ragged lengths and weights."""
import itertools

import pytest
import torch
import torch.nn.functional as F

import fe_fast.ops as ops


def naive_chamfer(x, y, x_len, y_len, xn, yn, weights, batch_reduction, point_reduction, norm,
                  single_directional, abs_cosine):
    """Point by point: the nearest valid point (lowest index among ties) of every valid point."""
    B = x.shape[0]

    def one_direction(a, b, a_len, b_len, an, bn):
        d_rows, n_rows = [], []
        for k in range(B):
            d_row = [torch.zeros((), dtype=a.dtype)] * a.shape[1]
            n_row = [torch.zeros((), dtype=a.dtype)] * a.shape[1]
            for i in range(int(a_len[k])):
                diff = a[k, i] - b[k, : int(b_len[k])]
                dist = diff.abs().sum(-1) if norm == 1 else (diff * diff).sum(-1)
                j = int(torch.argmin(dist.detach()))  # the first minimum
                w = 1.0 if weights is None else weights[k]
                d_row[i] = dist[j] * w
                if an is not None:
                    cos = F.cosine_similarity(an[k, i][None], bn[k, j][None], dim=1, eps=1e-6)[0]
                    n_row[i] = (1 - (cos.abs() if abs_cosine else cos)) * w
            d_rows.append(torch.stack(d_row))
            n_rows.append(torch.stack(n_row))
        d, n = torch.stack(d_rows), torch.stack(n_rows)
        if point_reduction is None:
            return d, (n if an is not None else None)
        if point_reduction == "max":
            return d.max(1).values, None
        d, n = d.sum(1), n.sum(1)
        if point_reduction == "mean":
            d, n = d / a_len.to(d.dtype), n / a_len.to(d.dtype)
        return d, (n if an is not None else None)

    cx, nx = one_direction(x, y, x_len, y_len, xn, yn)
    if single_directional:
        loss, loss_n = cx, nx
    else:
        cy, ny = one_direction(y, x, y_len, x_len, yn, xn)
        if point_reduction is None:
            return (cx, cy), ((nx, ny) if xn is not None else None)
        loss = torch.maximum(cx, cy) if point_reduction == "max" else cx + cy
        loss_n = nx + ny if nx is not None else None
    if batch_reduction is None:
        return loss, loss_n
    loss, loss_n = loss.sum(), (None if loss_n is None else loss_n.sum())
    if batch_reduction == "mean":
        div = B if weights is None else (weights.sum() if float(weights.sum()) > 0 else 1.0)
        loss, loss_n = loss / div, (None if loss_n is None else loss_n / div)
    return loss, loss_n


def _data(D, ragged, seed, B=3, N=11, M=9):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, N, D, generator=g, dtype=torch.float64)
    y = torch.randn(B, M, D, generator=g, dtype=torch.float64)
    xn = torch.randn(B, N, D, generator=g, dtype=torch.float64)
    yn = torch.randn(B, M, D, generator=g, dtype=torch.float64)
    x_len = torch.tensor([11, 4, 7]) if ragged else torch.full((B,), N)
    y_len = torch.tensor([9, 9, 2]) if ragged else torch.full((B,), M)
    return x, y, x_len, y_len, xn, yn


def _close(a, b):
    if isinstance(a, tuple) or isinstance(b, tuple):
        assert isinstance(a, tuple) and isinstance(b, tuple) and len(a) == len(b)
        for u, v in zip(a, b):
            _close(u, v)
    elif a is None or b is None:
        assert a is None and b is None
    else:
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


# every valid (point_reduction, batch_reduction) pair; a batch reduction without a point
# reduction is rejected (test_bad_options)
REDUCTIONS = [(p, b) for p in ["mean", "sum", "max", None] for b in ["mean", "sum", None]
              if not (p is None and b is not None)]


@pytest.mark.parametrize("point_reduction,batch_reduction", REDUCTIONS)
@pytest.mark.parametrize("D", [3, 5])
def test_every_option_combination(point_reduction, batch_reduction, D):
    for ragged, normals, weighted, norm, single, abs_cos in itertools.product(
            [False, True], [False, True], [False, True], [1, 2], [False, True], [True, False]):
        if normals and point_reduction == "max":
            continue  # rejected (test_bad_options)
        if not normals and not abs_cos:
            continue  # abs_cosine only changes the normal term
        x, y, x_len, y_len, xn, yn = _data(D, ragged, seed=D + 2 * ragged)
        w = torch.tensor([0.5, 2.0, 0.0], dtype=torch.float64) if weighted else None
        kw = dict(x_lengths=x_len if ragged else None, y_lengths=y_len if ragged else None,
                  x_normals=xn if normals else None, y_normals=yn if normals else None, weights=w,
                  batch_reduction=batch_reduction, point_reduction=point_reduction, norm=norm,
                  single_directional=single, abs_cosine=abs_cos)
        got = ops.chamfer_distance(x, y, **kw)
        ref = naive_chamfer(x, y, x_len, y_len, kw["x_normals"], kw["y_normals"], w, batch_reduction,
                            point_reduction, norm, single, abs_cos)
        _close(got, ref)


@pytest.mark.parametrize("D,norm", [(3, 2), (4, 2), (3, 1)])
def test_gradients_match_reference(D, norm):
    x, y, x_len, y_len, xn, yn = _data(D, True, seed=9)
    w = torch.tensor([1.0, 0.3, 2.0], dtype=torch.float64)
    leaves = [t.clone().requires_grad_(True) for t in (x, y, xn, yn)]
    got, got_n = ops.chamfer_distance(leaves[0], leaves[1], x_len, y_len, leaves[2], leaves[3], w, norm=norm)
    g1 = torch.autograd.grad(got + got_n, leaves)
    leaves2 = [t.clone().requires_grad_(True) for t in (x, y, xn, yn)]
    ref, ref_n = naive_chamfer(leaves2[0], leaves2[1], x_len, y_len, leaves2[2], leaves2[3], w, "mean", "mean",
                               norm, False, True)
    g2 = torch.autograd.grad(ref + ref_n, leaves2)
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b)


def test_defaults_and_shared_y_and_float32():
    x, y, *_ = _data(3, False, seed=1)
    loss, loss_n = ops.chamfer_distance(x, y)
    assert loss.dim() == 0 and loss_n is None
    ref, _ = naive_chamfer(x, y, torch.full((3,), 11), torch.full((3,), 9), None, None, None, "mean", "mean", 2,
                           False, True)
    torch.testing.assert_close(loss, ref)
    # a y shared by the batch is the same as that y repeated
    shared, _ = ops.chamfer_distance(x, y[0], batch_reduction=None)
    rep, _ = ops.chamfer_distance(x, y[0].expand(3, -1, -1), batch_reduction=None)
    torch.testing.assert_close(shared, rep)
    # the existing chamfer (mean over each direction, [B]) is point_reduction="mean", no batch reduction
    torch.testing.assert_close(ops.chamfer(x, y), ops.chamfer_distance(x, y, batch_reduction=None)[0])
    f32, _ = ops.chamfer_distance(x.float(), y.float())
    assert f32.dtype == torch.float32
    torch.testing.assert_close(f32.double(), loss, rtol=1e-5, atol=1e-6)


def test_all_zero_weights_give_zero():
    x, y, *_ = _data(3, False, seed=2)
    w = torch.zeros(3, dtype=torch.float64)
    loss, _ = ops.chamfer_distance(x, y, weights=w)
    assert loss.dim() == 0 and float(loss) == 0.0


def test_inputs_untouched():
    x, y, x_len, y_len, xn, yn = _data(3, True, seed=3)
    before = [t.clone() for t in (x, y, x_len, y_len, xn, yn)]
    ops.chamfer_distance(x, y, x_len, y_len, xn, yn)
    for a, b in zip(before, (x, y, x_len, y_len, xn, yn)):
        assert torch.equal(a, b)


@pytest.mark.parametrize("kw,match", [
    (dict(batch_reduction="max"), "batch_reduction"),
    (dict(point_reduction="median"), "point_reduction"),
    (dict(point_reduction=None), "batch_reduction must be None"),
    (dict(norm=3), "norm"),
    (dict(point_reduction="max", normals=True), "max"),
    (dict(x_normals_only=True), "together"),
    (dict(weights=torch.tensor([1.0, -1.0, 1.0], dtype=torch.float64)), "non-negative"),
    (dict(weights=torch.ones(2, dtype=torch.float64)), "weights must have shape"),
    (dict(bad_normals=True), "x_normals must have the shape"),
    (dict(x_lengths=torch.tensor([12, 1, 1])), "x_lengths"),
])
def test_bad_options(kw, match):
    x, y, _, _, xn, yn = _data(3, False, seed=4)
    kw = dict(kw)
    if kw.pop("normals", False):
        kw.update(x_normals=xn, y_normals=yn)
    if kw.pop("x_normals_only", False):
        kw.update(x_normals=xn)
    if kw.pop("bad_normals", False):
        kw.update(x_normals=xn[:, :5], y_normals=yn)
    with pytest.raises(ValueError, match=match):
        ops.chamfer_distance(x, y, **kw)
