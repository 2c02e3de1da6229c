"""fe_fast.ops.modulated_conv2d (thesis eq. 5-1/5-2) against the grouped-conv reference: forward,
backward (gradcheck, float64), double backward, validation, and the C++ path against the torch path."""
import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from fe_fast.ops import modulated_conv2d
from fe_fast.ops.reference.modulated_conv import modulated_conv2d_reference

BACKENDS = ["torch", "cpu"]


@pytest.fixture(autouse=True, params=["nhwc-rule", "nhwc-always"])
def _cpu_layout(request, monkeypatch):
    """Every test twice: with the "cpu" backend's own NCHW/NHWC rule (the small shapes here take
    the NCHW path) and with its NHWC up=1 path forced (csrc modulate_nhwc / epilogue_fwd_nhwc,
    the custom backward)."""
    if request.param == "nhwc-always":
        import fe_fast.ops._modconv_cpu as mc

        monkeypatch.setattr(mc, "_NHWC_MIN_HW", 0)


def make(B=2, I=3, O=4, H=5, k=3, up=1, noise="batch", bias=True, dtype=torch.float64, seed=0,
         requires_grad=False):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, I, H, H, generator=g, dtype=dtype)
    w = torch.randn(O, I, k, k, generator=g, dtype=dtype)
    s = torch.randn(B, I, generator=g, dtype=dtype) + 1.0
    Ho = H * up
    n = None
    if noise == "batch":
        n = torch.randn(B, 1, Ho, Ho, generator=g, dtype=dtype) * 0.3
    elif noise == "shared":
        n = torch.randn(1, 1, Ho, Ho, generator=g, dtype=dtype) * 0.3
    b = torch.randn(O, generator=g, dtype=dtype) if bias else None
    ts = [x, w, s, n, b]
    if requires_grad:
        for t in ts:
            if t is not None:
                t.requires_grad_(True)
    return ts


# every (up, demod, activation, noise) with bias; without bias for a few
CONFIGS = [c + (True,) for c in itertools.product([1, 2], [True, False], ["lrelu", "linear"],
                                                  [None, "batch", "shared"])]
CONFIGS += [(1, True, "lrelu", "batch", False), (2, True, "lrelu", None, False),
            (2, False, "linear", "shared", False)]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("up,demod,act,noise,bias", CONFIGS)
def test_forward_backward_match_reference(backend, up, demod, act, noise, bias):
    x, w, s, n, b = make(up=up, noise=noise, bias=bias, requires_grad=True)
    kw = dict(demodulate=demod, up=up, noise=n, bias=b, activation=act, weight_gain=0.7)
    out = modulated_conv2d(x, w, s, backend=backend, **kw)
    ref = modulated_conv2d_reference(x, w, s, **kw)
    assert out.shape == ref.shape == (2, 4, 5 * up, 5 * up)
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)
    ins = [t for t in (x, w, s, n, b) if t is not None]
    go = torch.randn_like(ref)
    for g1, g2 in zip(torch.autograd.grad(out, ins, go), torch.autograd.grad(ref, ins, go)):
        torch.testing.assert_close(g1, g2, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("k", [1, 3])
def test_kernel_sizes_up1(k):
    x, w, s, n, b = make(k=k, O=6, I=5, H=6)
    for backend in BACKENDS:
        torch.testing.assert_close(modulated_conv2d(x, w, s, True, 1, n, b, backend=backend),
                                   modulated_conv2d_reference(x, w, s, True, 1, n, b))


def test_matches_rosinality_non_fused_formulation():
    """Independent of the reference: rosinality's fused=False path written out from its source
    (scale * weight, dcoefs from the per-sample weight, conv_transpose2d + upfirdn2d blur)."""
    x, w, s, n, b = make(B=2, I=3, O=4, H=4, up=2)
    scale = 1 / math.sqrt(3 * 9)
    weight = scale * w
    dcoefs = ((weight[None] * s.view(2, 1, 3, 1, 1)).square().sum((2, 3, 4)) + 1e-8).rsqrt()
    y = F.conv_transpose2d(x * s.view(2, 3, 1, 1), weight.transpose(0, 1), padding=0, stride=2)
    k1 = torch.tensor([1.0, 3.0, 3.0, 1.0], dtype=y.dtype)
    kern = (k1[None] * k1[:, None]) / 64 * 4
    y = F.conv2d(F.pad(y, (1, 1, 1, 1)).reshape(-1, 1, 11, 11), kern.flip(0, 1)[None, None])
    y = y.reshape(2, 4, 8, 8) * dcoefs.view(2, 4, 1, 1)
    expect = F.leaky_relu(y + n + b.view(1, -1, 1, 1), 0.2) * math.sqrt(2)
    for backend in BACKENDS:
        out = modulated_conv2d(x, w, s, True, 2, n, b, "lrelu", weight_gain=scale, backend=backend)
        torch.testing.assert_close(out, expect)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("up,demod,act", [(1, True, "lrelu"), (1, False, "linear"),
                                          (2, True, "lrelu"), (2, False, "linear")])
def test_gradcheck(backend, up, demod, act):
    x, w, s, n, b = make(B=2, I=2, O=3, H=3, up=up, requires_grad=True, seed=1)
    # fast_mode: random-projection gradcheck (the full Jacobian costs minutes on a shared CPU)

    def f(x, w, s, n, b):
        return modulated_conv2d(x, w, s, demod, up, n, b, act, backend=backend)

    assert torch.autograd.gradcheck(f, (x, w, s, n, b), fast_mode=True)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("up", [1, 2])
def test_gradgradcheck(backend, up):
    x, w, s, n, b = make(B=1, I=2, O=2, H=3, up=up, noise="shared", requires_grad=True, seed=2)

    def f(x, w, s, n, b):
        return modulated_conv2d(x, w, s, True, up, n, b, "lrelu", backend=backend)

    assert torch.autograd.gradgradcheck(f, (x, w, s, n, b), fast_mode=True)


@pytest.mark.parametrize("backend", BACKENDS)
def test_r1_and_path_length_style_double_backward(backend):
    """Penalties as in training: gradient of the output w.r.t. x / styles with create_graph,
    then backward of its norm into weight, bias and styles; equal to the reference's."""
    def penalty(fn, x, w, s, n, b):
        out = fn(x, w, s, True, 1, n, b, "lrelu")
        gx, gs = torch.autograd.grad((out * out.detach().sin()).sum(), (x, s), create_graph=True)
        return gx.square().sum() + gs.square().sum()

    x, w, s, n, b = make(B=2, I=3, O=4, H=5, requires_grad=True, seed=3)
    ours = penalty(lambda *a: modulated_conv2d(*a, backend=backend), x, w, s, n, b)
    ref = penalty(modulated_conv2d_reference, x, w, s, n, b)
    torch.testing.assert_close(ours, ref)
    # b only enters through the (piecewise-constant) leaky-ReLU mask: its gradient is zero.
    g_ours = torch.autograd.grad(ours, (w, b, s), materialize_grads=True)
    for g1, g2 in zip(g_ours, torch.autograd.grad(ref, (w, b, s))):
        torch.testing.assert_close(g1, g2)


@pytest.mark.parametrize("noise", [None, "batch", "shared"])
@pytest.mark.parametrize("demod,act", [(True, "lrelu"), (False, "linear")])
def test_cpp_path_equals_torch_path_float32(noise, demod, act):
    x, w, s, n, b = make(B=3, I=16, O=24, H=33, noise=noise, dtype=torch.float32,
                         requires_grad=True, seed=4)
    kw = dict(demodulate=demod, up=1, noise=n, bias=b, activation=act)
    ours = modulated_conv2d(x, w, s, backend="cpu", **kw)
    ref = modulated_conv2d(x, w, s, backend="torch", **kw)
    # 1e-4 (as for the gradients): at H*W >= 1024 (here 33x33) the "cpu" backend runs oneDNN's
    # NHWC convolution, whose float32 summation order differs from the NCHW one of the torch
    # path (up to 1.5e-5 absolute on outputs of magnitude ~10 without demodulation); exactness
    # of every path is checked in float64 above.
    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-4)
    ins = [t for t in (x, w, s, n, b) if t is not None]
    go = torch.randn_like(ref)
    for g1, g2 in zip(torch.autograd.grad(ours, ins, go), torch.autograd.grad(ref, ins, go)):
        # grad_s sums ~26k float32 products per entry (O*H*W): 2.9e-4 (1.6e-4 relative) was seen
        # on a loaded 2-core CI run, where oneDNN's reduction order differs between the paths
        torch.testing.assert_close(g1, g2, rtol=1e-3, atol=1e-3)
    with torch.no_grad():  # in-place epilogue on the conv temporary
        torch.testing.assert_close(modulated_conv2d(x, w, s, backend="cpu", **kw), ref.detach(),
                                   rtol=1e-4, atol=1e-4)


def test_inputs_not_modified_and_auto_backend():
    x, w, s, n, b = make(dtype=torch.float32)
    copies = [t.clone() for t in (x, w, s, n, b)]
    with torch.no_grad():
        out = modulated_conv2d(x, w, s, noise=n, bias=b)
    for t, c in zip((x, w, s, n, b), copies):
        assert torch.equal(t, c)
    torch.testing.assert_close(out, modulated_conv2d_reference(x, w, s, noise=n, bias=b))


def test_bfloat16_cpu_falls_back_to_torch():
    x, w, s, n, b = make(dtype=torch.float32)
    out = modulated_conv2d(*(t.bfloat16() for t in (x, w, s)), noise=n.bfloat16(), bias=b.bfloat16())
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), modulated_conv2d_reference(x, w, s, noise=n, bias=b),
                               rtol=0.1, atol=0.1)
    with pytest.raises(ValueError, match="backend='cpu'"):
        modulated_conv2d(*(t.bfloat16() for t in (x, w, s)), backend="cpu")


def _bad_cases():
    x, w, s, n, b = make(dtype=torch.float32)
    return [
        (dict(x=x[0]), "x must be"),
        (dict(weight=w[:, :2]), "weight must be"),
        (dict(weight=w[..., :2]), "square kernel"),
        (dict(styles=s[:1]), "styles must be"),
        (dict(styles=s.double()), "styles must have the dtype"),
        (dict(x=x.long()), "x must be a floating"),
        (dict(up=3), "up must be 1 or 2"),
        (dict(up=2.0), "up must be 1 or 2"),
        (dict(activation="relu"), "activation must be"),
        (dict(noise=n[:, :, :4]), "noise must be"),
        (dict(noise=torch.zeros(2, 2, 5, 5)), "noise must be"),
        (dict(bias=b[:2]), "bias must be"),
        (dict(bias=b.double()), "bias must have"),
        (dict(backend="cuda"), "backend must be"),
        (dict(weight_gain=0.0), "weight_gain"),
        (dict(x=x.clone().index_fill_(0, torch.tensor([0]), float("nan")), check_finite=True),
         "x contains NaN"),
    ]


@pytest.mark.parametrize("case", range(len(_bad_cases())))
def test_validation_errors(case):
    over, msg = _bad_cases()[case]
    x, w, s, n, b = make(dtype=torch.float32)
    args = dict(x=x, weight=w, styles=s, noise=n, bias=b)
    args.update(over)
    with pytest.raises(ValueError, match=msg):
        modulated_conv2d(**args)
