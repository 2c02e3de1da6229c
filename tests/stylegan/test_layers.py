"""FIR resampling of fe_fast.stylegan.layers: upfirdn2d against a depthwise-convolution reference
written here from its definition, bicubic_upsample2x against torch's bicubic interpolation, and the
custom first and second derivatives of both."""
import pytest
import torch
import torch.nn.functional as F

from fe_fast.stylegan.layers import bicubic_upsample2x, fir_kernel, upfirdn2d


def upfirdn2d_by_conv(x, kernel, up, down, pad):
    """Zero insertion, zero padding, true convolution (flipped kernel, depthwise), decimation."""
    b, c, h, w = x.shape
    if up > 1:
        z = x.new_zeros(b, c, h * up, w * up)
        z[:, :, ::up, ::up] = x
        x = z
    x = F.pad(x, [pad[0], pad[1], pad[0], pad[1]])
    k = kernel.flip(0, 1).to(x.dtype).expand(c, 1, *kernel.shape)
    return F.conv2d(x, k, groups=c)[:, :, ::down, ::down]


# a separable but asymmetric kernel catches a missing flip or swapped axes
ASYM = torch.outer(torch.tensor([1.0, 2.0, 3.0, 4.0]), torch.tensor([1.0, 3.0, 3.0, 1.0]))


@pytest.mark.parametrize("kernel", [fir_kernel(gain=4.0), ASYM], ids=["blur", "asymmetric"])
@pytest.mark.parametrize("up,down,pad",
                         [(1, 1, (2, 1)), (2, 1, (2, 1)), (1, 2, (2, 2)), (1, 2, (1, 1)), (2, 2, (1, 2))])
def test_upfirdn2d_matches_depthwise_convolution(kernel, up, down, pad):
    x = torch.randn(2, 3, 7, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    got = upfirdn2d(x, kernel.double(), up=up, down=down, pad=pad)
    want = upfirdn2d_by_conv(x, kernel.double(), up, down, pad)
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("up,down,pad", [(1, 1, (2, 1)), (2, 1, (2, 1)), (1, 2, (2, 2))])
def test_upfirdn2d_first_and_second_derivatives(up, down, pad):
    x = torch.randn(1, 2, 5, 6, dtype=torch.float64, requires_grad=True)
    k = ASYM.double()

    def f(t):
        return upfirdn2d(t, k, up=up, down=down, pad=pad)

    assert torch.autograd.gradcheck(f, (x,))
    assert torch.autograd.gradgradcheck(f, (x,))


def test_upfirdn2d_gradient_matches_the_convolution_reference_in_float32_channels_last():
    x = torch.randn(2, 4, 9, 9).to(memory_format=torch.channels_last).requires_grad_(True)
    x_ref = x.detach().clone().requires_grad_(True)
    g = torch.randn(2, 4, 9, 9)
    k = fir_kernel()
    upfirdn2d(x, k, pad=(2, 1)).mul(g).sum().backward()
    upfirdn2d_by_conv(x_ref, k, 1, 1, (2, 1)).mul(g).sum().backward()
    torch.testing.assert_close(x.grad, x_ref.grad, rtol=1e-5, atol=1e-5)


def test_upfirdn2d_treats_the_kernel_as_a_constant():
    k = fir_kernel().requires_grad_(True)
    x = torch.randn(1, 1, 6, 6, requires_grad=True)
    upfirdn2d(x, k, pad=(2, 1)).sum().backward()
    assert x.grad is not None and k.grad is None


def _bicubic(x):
    return F.interpolate(x, scale_factor=2, mode="bicubic", align_corners=False)


@pytest.mark.parametrize("h,w", [(1, 1), (2, 3), (7, 6), (32, 32)])
def test_bicubic_upsample2x_equals_torch_bicubic_interpolation(h, w):
    # edges included: sizes below the 4-tap footprint exercise the edge replication
    x = torch.randn(2, 3, h, w, dtype=torch.float64, generator=torch.Generator().manual_seed(h * 31 + w))
    got = bicubic_upsample2x(x)
    assert got.shape == (2, 3, 2 * h, 2 * w)
    torch.testing.assert_close(got, _bicubic(x), rtol=1e-12, atol=1e-12)


def test_bicubic_upsample2x_first_and_second_derivatives():
    x = torch.randn(1, 2, 5, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(bicubic_upsample2x, (x,))
    assert torch.autograd.gradgradcheck(bicubic_upsample2x, (x,))


def test_bicubic_upsample2x_gradient_equals_torch_bicubic_gradient_in_float32():
    x = torch.randn(4, 3, 16, 16, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_(True)
    g = torch.randn(4, 3, 32, 32)
    bicubic_upsample2x(x).mul(g).sum().backward()
    _bicubic(x_ref).mul(g).sum().backward()
    torch.testing.assert_close(bicubic_upsample2x(x.detach()), _bicubic(x.detach()), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(x.grad, x_ref.grad, rtol=1e-5, atol=1e-5)


def test_bicubic_upsample2x_rejects_other_ranks():
    with pytest.raises(ValueError, match="B, C, H, W"):
        bicubic_upsample2x(torch.zeros(3, 8, 8))
