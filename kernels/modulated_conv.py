"""Triton kernel of the StyleGAN2 modulated convolution (thesis eq. 5-1/5-2), forward only.

One program computes a [BLOCK_O, BLOCK_P] tile of the output of one sample b as an implicit GEMM
over K = I*k*k: the weight tile is modulated by the styles on the fly (w * s_i), the input tile is
gathered from x (im2col never materialised), ``tl.dot`` accumulates in fp32. The epilogue applies
the demodulation (computed in the same K loop as sum (w * s)^2 for up=1, or given as d[B, O]),
noise, bias, leaky ReLU and gain, and stores once.

up=2 (transposed conv stride 2 + [1,3,3,1] blur, k=3) runs as four polyphase 3x3 convolutions:
the blur is folded into the weight (a 6x6 kernel, split by output-pixel parity into four 3x3
kernels, see ``fe_fast.ops._modconv_triton.phase_weights``); output pixel (2q+py, 2r+px) of
phase (py, px) is a padding-1 3x3 conv of x at (q, r). This costs 4x the MACs of the transposed
conv but fuses blur, noise, bias and activation into the same kernel.
"""
from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def modconv_fwd_kernel(
    x_ptr, w_ptr, s_ptr, d_ptr, noise_ptr, bias_ptr, out_ptr,
    I, H, W, O, Ho, Wo, KTOT, noise_bstride,
    KS: tl.constexpr, PAD: tl.constexpr, UP: tl.constexpr,
    DEMOD_IN_KERNEL: tl.constexpr, HAS_D: tl.constexpr, HAS_NOISE: tl.constexpr,
    HAS_BIAS: tl.constexpr, LRELU: tl.constexpr, ALLOW_TF32: tl.constexpr,
    BLOCK_O: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_K: tl.constexpr,
):
    pid_p = tl.program_id(0)
    pid_o = tl.program_id(1)
    pid_bz = tl.program_id(2)
    b = pid_bz // (UP * UP)
    phase = pid_bz % (UP * UP)
    py = phase // UP
    px = phase % UP

    # Output pixels of this program on the (per-phase) grid of the input resolution.
    Hq = (Ho - py + UP - 1) // UP
    Wq = (Wo - px + UP - 1) // UP
    offs_p = pid_p * BLOCK_P + tl.arange(0, BLOCK_P)
    mask_p = offs_p < Hq * Wq
    qy = offs_p // Wq
    qx = offs_p % Wq
    offs_o = pid_o * BLOCK_O + tl.arange(0, BLOCK_O)
    mask_o = offs_o < O

    x_b = x_ptr + b.to(tl.int64) * I * H * W
    w_ph = w_ptr + phase.to(tl.int64) * O * KTOT
    acc = tl.zeros((BLOCK_O, BLOCK_P), dtype=tl.float32)
    dacc = tl.zeros((BLOCK_O,), dtype=tl.float32)
    for k0 in range(0, KTOT, BLOCK_K):
        kk = k0 + tl.arange(0, BLOCK_K)
        mask_k = kk < KTOT
        ci = kk // (KS * KS)
        rem = kk % (KS * KS)
        kh = rem // KS
        kw = rem % KS
        s = tl.load(s_ptr + b * I + ci, mask=mask_k, other=0.0).to(tl.float32)
        wt = tl.load(w_ph + offs_o[:, None] * KTOT + kk[None, :],
                     mask=mask_o[:, None] & mask_k[None, :], other=0.0).to(tl.float32)
        a = wt * s[None, :]
        if DEMOD_IN_KERNEL:
            dacc += tl.sum(a * a, axis=1)
        iy = qy[None, :] + kh[:, None] - PAD
        ix = qx[None, :] + kw[:, None] - PAD
        mx = mask_k[:, None] & mask_p[None, :] & (iy >= 0) & (iy < H) & (ix >= 0) & (ix < W)
        xt = tl.load(x_b + ci[:, None] * H * W + iy * W + ix, mask=mx, other=0.0)
        a = a.to(xt.dtype)
        if ALLOW_TF32:
            acc += tl.dot(a, xt, input_precision="tf32")
        else:
            acc += tl.dot(a, xt, input_precision="ieee")

    if DEMOD_IN_KERNEL:
        acc = acc * (1.0 / tl.sqrt(dacc + 1e-8))[:, None]
    if HAS_D:
        dv = tl.load(d_ptr + b * O + offs_o, mask=mask_o, other=0.0).to(tl.float32)
        acc = acc * dv[:, None]
    oy = qy * UP + py
    ox = qx * UP + px
    pix = oy * Wo + ox
    if HAS_NOISE:
        nz = tl.load(noise_ptr + b * noise_bstride + pix, mask=mask_p, other=0.0).to(tl.float32)
        acc = acc + nz[None, :]
    if HAS_BIAS:
        bv = tl.load(bias_ptr + offs_o, mask=mask_o, other=0.0).to(tl.float32)
        acc = acc + bv[:, None]
    if LRELU:
        acc = tl.where(acc > 0, acc, acc * 0.2) * 1.4142135623730951
    out_b = out_ptr + b.to(tl.int64) * O * Ho * Wo
    tl.store(out_b + offs_o[:, None] * Ho * Wo + pix[None, :],
             acc.to(out_ptr.dtype.element_ty), mask=mask_o[:, None] & mask_p[None, :])


def modconv_fwd(x, w_phases, s, d, noise, bias, out, ks, pad, up, demod_in_kernel, lrelu,
                allow_tf32, block_o=64, block_p=64, block_k=32, num_warps=4, num_stages=3):
    """Launch on contiguous tensors: x [B, I, H, W], w_phases [up*up, O, I*ks*ks], s [B, I]
    (weight gain folded in), d [B, O] or None, noise [B or 1, 1, Ho, Wo] or None, bias [O] or None,
    out [B, O, Ho, Wo]. Validation is the caller's (fe_fast.ops.modulated_conv)."""
    B, I, H, W = x.shape
    _, O, Ho, Wo = out.shape
    ktot = I * ks * ks
    hq = (Ho + up - 1) // up
    wq = (Wo + up - 1) // up
    grid = (triton.cdiv(hq * wq, block_p), triton.cdiv(O, block_o), B * up * up)
    nbs = 0 if noise is None or noise.shape[0] == 1 else Ho * Wo
    modconv_fwd_kernel[grid](
        x, w_phases, s, d if d is not None else s, noise if noise is not None else x,
        bias if bias is not None else s, out,
        I, H, W, O, Ho, Wo, ktot, nbs,
        KS=ks, PAD=pad, UP=up, DEMOD_IN_KERNEL=demod_in_kernel, HAS_D=d is not None,
        HAS_NOISE=noise is not None, HAS_BIAS=bias is not None, LRELU=lrelu,
        ALLOW_TF32=allow_tf32, BLOCK_O=block_o, BLOCK_P=block_p, BLOCK_K=block_k,
        num_warps=num_warps, num_stages=num_stages,
    )
    return out
