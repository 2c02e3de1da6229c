"""Per-layer reduction of per-sample S-space gradients: the kernel under thesis eq. 6-5 / 6-6.

Given the per-sample gradients of every style layer packed into one flat ``[B, C]`` buffer
(layer ``l`` owns columns ``offsets[l]:offsets[l+1]``; at 1024 resolution 26 layers of 512..32
channels, thesis Table 6-2) and a mask of the samples that count (the positives P), one pass
computes

* ``mean``: the signed per-channel mean over P (eq. 6-5, ``Average(g_s^a)``);
* ``mean_abs``: the per-channel mean of |g| over P;
* ``layer``: each layer's response, the mean of ``mean_abs`` over its channels (the layer
  selection of §6.2.2 / §6.2.3);
* ``topk_idx`` / ``topk_val``: per layer the k channels with the largest |mean| (eq. 6-6, the set
  C_l^k), channel index inside the layer, decreasing, ties to the smaller index; ``topk_val``
  holds the signed mean.

Backends (by device, or explicitly with ``backend=``): ``"cpu"`` (C++/OpenMP in
``csrc/s_grad_reduce.cpp``) and ``"triton"`` (``fe_fast.kernels.s_grad_reduce``; on CPU tensors
only under ``TRITON_INTERPRET=1``). No autograd: the inputs are already gradients.
"""
from __future__ import annotations

from typing import NamedTuple, Optional, Sequence

import torch

from fe_fast.ops._dispatch import pick_backend
from fe_fast.ops._validation import check_float, check_tensor

BACKENDS = ("cpu", "triton")


class SGradReduce(NamedTuple):
    mean: torch.Tensor  # [C] signed mean over the positives (eq. 6-5)
    mean_abs: torch.Tensor  # [C] mean |g| over the positives
    layer: torch.Tensor  # [L] per-layer response: mean of mean_abs over the layer's channels
    topk_idx: torch.Tensor  # [L, k] int64, channel index inside the layer, by decreasing |mean| (eq. 6-6)
    topk_val: torch.Tensor  # [L, k] signed mean of those channels


def layer_offsets(sizes: Sequence[int]) -> torch.Tensor:
    """Channel counts per layer -> int64 offsets [L+1] (0, n0, n0+n1, ...)."""
    sizes = [int(n) for n in sizes]
    if not sizes or min(sizes) < 1:
        raise ValueError(f"layer sizes must be a non-empty list of positive channel counts, got {sizes}")
    out = [0]
    for n in sizes:
        out.append(out[-1] + n)
    return torch.tensor(out, dtype=torch.int64)


def _check_offsets(offsets, C: int, k: int, device) -> torch.Tensor:
    off = offsets.to(device="cpu", dtype=torch.int64)
    if int(off[0]) != 0 or int(off[-1]) != C:
        raise ValueError(f"offsets must start at 0 and end at C={C}, got {off[0].item()}..{off[-1].item()}")
    sizes = off[1:] - off[:-1]
    if bool((sizes < 1).any()):
        raise ValueError("offsets must be strictly increasing (every layer needs >= 1 channel)")
    if int(sizes.min()) < k:
        raise ValueError(f"k={k} is larger than the smallest layer ({int(sizes.min())} channels)")
    return off.to(device).contiguous()


def s_grad_reduce(grads: torch.Tensor, offsets, mask: Optional[torch.Tensor] = None, k: int = 3, *,
                  backend: Optional[str] = None) -> SGradReduce:
    """Masked per-channel mean, per-layer response and per-layer top-k of S-space gradients.

    Args:
        grads: [B, C] float32/float64 per-sample gradients dl/ds of all style layers, packed.
        offsets: int [L+1] layer boundaries (see :func:`layer_offsets`), 0 ... C.
        mask: bool [B], the samples to average (the positives P of thesis eq. 6-5); None = all.
        k: channels per layer to return (eq. 6-6), 1 <= k <= smallest layer.
        backend: None (by device), "cpu" or "triton".

    Raises ValueError for bad shapes/dtypes, non-finite gradients or a mask with no positive."""
    check_tensor("grads", grads)
    if grads.dim() != 2:
        raise ValueError(f"grads must have shape [B, C], got {list(grads.shape)}")
    check_float("grads", grads)
    B, C = grads.shape
    if B == 0 or C == 0:
        raise ValueError(f"grads is empty ({list(grads.shape)})")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")
    if mask is None:
        mask = torch.ones(B, dtype=torch.bool, device=grads.device)
    check_tensor("mask", mask)
    if mask.dtype != torch.bool or mask.shape != (B,):
        raise ValueError(f"mask must be a bool tensor of shape [{B}], got {mask.dtype} {list(mask.shape)}")
    if mask.device != grads.device:
        raise ValueError(f"mask is on {mask.device}, grads on {grads.device}")
    if not isinstance(offsets, torch.Tensor):
        offsets = torch.as_tensor(list(offsets))
    if offsets.is_floating_point() or offsets.dtype == torch.bool or offsets.dim() != 1 or offsets.numel() < 2:
        raise ValueError(f"offsets must be a 1-D integer tensor [L+1], got {offsets.dtype} {list(offsets.shape)}")
    name = pick_backend(grads.device, backend, BACKENDS)
    # the values of mask and offsets and the finiteness of grads are checked inside the op
    # eager calls skip the dispatcher (same code); torch.compile / torch.export see the op
    op = s_grad_reduce_op if torch.compiler.is_compiling() else _s_grad_reduce
    return SGradReduce(*op(grads.detach().contiguous(), offsets, mask.contiguous(), k, name))


@torch.library.custom_op("fe_fast::s_grad_reduce", mutates_args=())
def s_grad_reduce_op(grads: torch.Tensor, offsets: torch.Tensor, mask: torch.Tensor, k: int,
                     backend: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The reduction as a PyTorch operator (contract in csrc/s_grad_reduce.h), one opaque node for
    torch.compile / torch.export. grads [B, C] contiguous, offsets integer [L+1], mask bool [B],
    backend "cpu" or "triton". The data-dependent checks (a positive sample, offsets 0 ... C with
    layers of >= k channels, finite selected gradients) run here, so they also raise under compile."""
    return _s_grad_reduce(grads, offsets, mask, k, backend)


def _s_grad_reduce(grads, offsets, mask, k, backend):
    """The implementation of ``s_grad_reduce_op``."""
    g = grads
    C = g.shape[1]
    n_pos = int(mask.sum())
    if n_pos == 0:
        raise ValueError("mask selects no sample: there is no positive sample to average (eq. 6-5)")
    off = _check_offsets(offsets, C, k, g.device)
    L = off.numel() - 1
    mod = None
    if backend == "cpu":
        from fe_fast import _ext

        mod = _ext.cpu_or_none()
    if mod is not None:
        mean = torch.empty(C, dtype=g.dtype)
        mean_abs = torch.empty(C, dtype=g.dtype)
        layer = torch.empty(L, dtype=g.dtype)
        idx = torch.empty((L, k), dtype=torch.int64)
        val = torch.empty((L, k), dtype=g.dtype)
        mod.s_grad_reduce(g.numpy(), mask.numpy(), off.numpy(), k, mean.numpy(), mean_abs.numpy(),
                          layer.numpy(), idx.numpy(), val.numpy())
        out = (mean, mean_abs, layer, idx, val)
    elif backend == "cpu":  # fe_fast._C is missing: pure-torch fallback (one warning per process)
        from fe_fast.ops._fallback import s_grad_reduce as fallback

        out = fallback(g, off, mask, k)
    else:
        from fe_fast.kernels.s_grad_reduce import s_grad_reduce_triton

        out = s_grad_reduce_triton(g, off, mask, k, n_pos)
    # sum |g| over the positives is finite iff every selected gradient is (checked in O(C), not O(BC))
    if not bool(torch.isfinite(out[1]).all()):
        raise ValueError("grads contains NaN or Inf among the selected samples (or overflows)")
    return tuple(out)


@s_grad_reduce_op.register_fake
def _s_grad_reduce_fake(grads, offsets, mask, k, backend):
    C = grads.shape[1]
    L = offsets.shape[0] - 1
    return (grads.new_empty(C), grads.new_empty(C), grads.new_empty(L),
            grads.new_empty((L, k), dtype=torch.int64), grads.new_empty((L, k)))


__all__ = ["SGradReduce", "s_grad_reduce", "s_grad_reduce_op", "layer_offsets", "BACKENDS"]
