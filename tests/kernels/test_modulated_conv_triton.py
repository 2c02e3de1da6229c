"""The Triton modulated-convolution kernel (fe_fast.kernels.modulated_conv) through
fe_fast.ops.modulated_conv2d(backend="triton") against the grouped-conv reference. Runs on CPU
tensors under TRITON_INTERPRET=1 at small sizes (B<=2, C<=8, H<=8), and on CUDA when present."""
import itertools
import os

import pytest
import torch

from fe_fast.ops import modulated_conv2d
from fe_fast.ops.reference.modulated_conv import modulated_conv2d_reference

DEVICES = []
if os.environ.get("TRITON_INTERPRET") == "1":
    DEVICES.append("cpu")
if torch.cuda.is_available():
    DEVICES.append("cuda")
if not DEVICES:
    pytest.skip("needs TRITON_INTERPRET=1 (CPU interpreter) or a CUDA device", allow_module_level=True)


@pytest.fixture(autouse=True)
def _ieee_fp32():
    """Compare in full fp32 (the kernel uses TF32 on CUDA only when cuDNN may)."""
    old = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32 = old


def make(device, B=2, I=5, O=7, H=6, k=3, up=1, noise="batch", seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, I, H, H, generator=g)
    w = torch.randn(O, I, k, k, generator=g)
    s = torch.randn(B, I, generator=g) + 1.0
    Ho = H * up
    n = None if noise is None else torch.randn(B if noise == "batch" else 1, 1, Ho, Ho, generator=g)
    b = torch.randn(O, generator=g)
    return [None if t is None else t.to(device) for t in (x, w, s, n, b)]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("up,k,demod,act,noise", [
    (up, k, demod, act, noise)
    for up, k in ((1, 3), (1, 1), (2, 3))
    for demod, act in itertools.product([True, False], ["lrelu", "linear"])
    for noise in (["batch", "shared", None] if (demod and act == "lrelu") else ["batch"])])
def test_forward_matches_reference(device, up, k, demod, act, noise):
    x, w, s, n, b = make(device, k=k, up=up, noise=noise)
    kw = dict(demodulate=demod, up=up, noise=n, bias=b, activation=act, weight_gain=0.4)
    out = modulated_conv2d(x, w, s, backend="triton", **kw)
    ref = modulated_conv2d_reference(x, w, s, **kw)
    assert out.shape == ref.shape
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("device", DEVICES)
def test_odd_sizes_and_tiles(device):
    """Sizes that are not multiples of the tiles; more output pixels than one tile."""
    x, w, s, n, b = make(device, B=1, I=3, O=8, H=8, up=2)
    out = modulated_conv2d(x, w, s, True, 2, n, b, backend="triton")
    torch.testing.assert_close(out, modulated_conv2d_reference(x, w, s, True, 2, n, b),
                               rtol=1e-4, atol=1e-4)
    x, w, s, n, b = make(device, B=2, I=8, O=3, H=7, noise=None)
    out = modulated_conv2d(x, w, s, True, 1, None, None, "linear", backend="triton")
    torch.testing.assert_close(out, modulated_conv2d_reference(x, w, s, True, 1, None, None, "linear"),
                               rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("up", [1, 2])
def test_backward_and_double_backward(device, up):
    x, w, s, n, b = make(device, B=2, I=4, O=5, H=5, up=up)
    ins = [x, w, s, n, b]
    for t in ins:
        t.requires_grad_(True)

    def penalty(fn):
        out = fn(x, w, s, True, up, n, b, "lrelu")
        gx, gs = torch.autograd.grad((out * out.detach().cos()).sum(), (x, s), create_graph=True)
        return out, gx.square().sum() + gs.square().sum()

    out, pen = penalty(lambda *a: modulated_conv2d(*a, backend="triton"))
    ref, pen_ref = penalty(modulated_conv2d_reference)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)
    go = torch.randn_like(ref)
    for g1, g2 in zip(torch.autograd.grad(out, ins, go, retain_graph=True),
                      torch.autograd.grad(ref, ins, go, retain_graph=True)):
        torch.testing.assert_close(g1, g2, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(pen, pen_ref, rtol=1e-4, atol=1e-3)
    for g1, g2 in zip(torch.autograd.grad(pen, (w, s, x)), torch.autograd.grad(pen_ref, (w, s, x))):
        torch.testing.assert_close(g1, g2, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("device", DEVICES)
def test_triton_rejects_unsupported(device):
    x, w, s, n, b = make(device, up=2, k=1, noise=None)
    with pytest.raises(ValueError, match="backend='triton'"):
        modulated_conv2d(x, w, s, up=2, backend="triton")
    x, w, s, n, b = make(device, noise=None)
    with pytest.raises(ValueError, match="backend='triton'"):
        modulated_conv2d(x.double(), w.double(), s.double(), backend="triton")


_COMPILE = r'''
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from fe_fast.kernels import modulated_conv as K

CONST = ("KS", "PAD", "UP", "DEMOD_IN_KERNEL", "HAS_D", "HAS_NOISE", "HAS_BIAS", "LRELU",
         "ALLOW_TF32", "BLOCK_O", "BLOCK_P", "BLOCK_K")
for dt, up, tf32, arch in (("fp32", 1, True, 90), ("fp16", 2, False, 80)):
    sig = {n: "*" + dt for n in ("x_ptr", "w_ptr", "noise_ptr", "bias_ptr", "out_ptr")}
    sig.update(s_ptr="*fp32", d_ptr="*fp32")
    sig.update({n: "i32" for n in ("I", "H", "W", "O", "Ho", "Wo", "KTOT", "noise_bstride")})
    sig.update({n: "constexpr" for n in CONST})
    c = dict(KS=3, PAD=1, UP=up, DEMOD_IN_KERNEL=up == 1, HAS_D=up == 2, HAS_NOISE=True,
             HAS_BIAS=True, LRELU=True, ALLOW_TF32=tf32, BLOCK_O=64, BLOCK_P=64, BLOCK_K=32)
    triton.compile(ASTSource(K.modconv_fwd_kernel, sig, constexprs=c),
                   target=GPUTarget("cuda", arch, 32), options={"num_warps": 4, "num_stages": 3})
print("compiled")
'''


def test_kernel_compiles_for_gpu():
    """The interpreter accepts code the GPU compiler rejects: compile the kernel (fp32/TF32 up=1
    for sm_90, fp16 up=2 for sm_80) without a GPU, in a fresh process without the interpreter."""
    import subprocess
    import sys

    env = dict(os.environ, TRITON_INTERPRET="0", TRITON_DEFAULT_FP_FUSION="1")
    r = subprocess.run([sys.executable, "-c", _COMPILE], env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0 and "compiled" in r.stdout, r.stderr[-3000:]


@pytest.mark.parametrize("device", DEVICES)
def test_double_backward_with_coupled_inputs(device):
    """x computed from the styles: the recomputed backward must not count that path twice."""
    x0, w, s, n, b = make(device, B=2, I=4, O=3, H=4)
    s.requires_grad_(True)
    w.requires_grad_(True)

    def penalty(fn):
        x = x0 * s.sum(dim=1).reshape(2, 1, 1, 1)
        out = fn(x, w, s, True, 1, n, b, "lrelu")
        (gs,) = torch.autograd.grad((out * out.detach().cos()).sum(), (s,), create_graph=True)
        return gs.square().sum()

    ours = penalty(lambda *a: modulated_conv2d(*a, backend="triton"))
    ref = penalty(modulated_conv2d_reference)
    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-4)
    for g1, g2 in zip(torch.autograd.grad(ours, (w, s)), torch.autograd.grad(ref, (w, s))):
        torch.testing.assert_close(g1, g2, rtol=1e-3, atol=1e-3)
