"""Nearest neighbour search with optional top-alpha selection (the kernel under thesis eq. 3-9..3-11).

The compiled kernels only return indices (and a selection mask); distances are recomputed here on
the gathered points in torch, so ``dist2`` is differentiable in both clouds with exact gradients
(the nearest-neighbour assignment itself is piecewise constant).

Backends (chosen by the tensors' device, or explicitly with ``backend=`` for tests/benchmarks):

- ``"cpu"``: C++ in ``csrc/knn_cpu.cpp`` (``fe_fast._C``), multi-threaded with a spatial index.
- ``"triton"``: ``fe_fast.kernels.knn`` (also runs on CPU tensors under ``TRITON_INTERPRET=1``).
- ``"cuda"``: CUDA C++ in ``csrc/knn_cuda.cu`` (``fe_fast._C_cuda``).

On CUDA tensors the default is Triton: no GPU measurement has ranked the two GPU backends yet,
and Triton is the one tested in CI (under the interpreter).
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import torch

from fe_fast.ops._dispatch import pick_backend
from fe_fast.ops._validation import (
    check_alpha,
    check_clouds,
    check_finite,
    check_lengths_range,
    valid_mask,
)

BACKENDS = ("cpu", "triton", "cuda")


class KNN(NamedTuple):
    dist2: torch.Tensor  # [B, N] squared distance to the nearest y (0 for padded x), differentiable
    idx: torch.Tensor  # [B, N] int64 index into y (-1 for padded x)


class KNNSelect(NamedTuple):
    dist2: torch.Tensor
    idx: torch.Tensor
    selected: torch.Tensor  # [B, N] bool: the ceil(alpha * N_b) x points with the smallest dist2


class _Clouds(NamedTuple):
    x: torch.Tensor  # [B, N, D] contiguous
    y: torch.Tensor  # [B, M, D] or [M, D] (shared) contiguous
    shared: bool
    x_len: torch.Tensor  # int64 [B]
    y_len: torch.Tensor  # int64 [B]
    padded: bool = True  # False: no lengths were given, so every point is valid (no masking needed)
    names: str = "x,y"  # the user's names of the query and reference clouds (for error messages)
    checked: bool = False  # the lengths' values and the points' finiteness were checked (eager prepare)


def _check_dim(D: int) -> None:
    if D not in (2, 3):
        raise ValueError(f"points must be 2D or 3D (D in {{2, 3}}), got D={D}")


def prepare(x, y, x_lengths=None, y_lengths=None) -> _Clouds:
    """Validate two clouds (x [B,N,D]; y [B,M,D] or [M,D] shared) and their ragged lengths."""
    shared, x_len, y_len = check_clouds(x, y, x_lengths, y_lengths, _check_dim)
    padded = x_lengths is not None or y_lengths is not None
    c = _Clouds(x.contiguous(), y.contiguous(), shared, x_len, y_len, padded)
    if torch.compiler.is_compiling():  # the values are checked inside the registered op (no graph break)
        return c
    # eager: once here, not in each of the searches of a call (projected_chamfer runs six; each
    # check reads a value back, a host sync on a GPU)
    _check_values(c.x, c.y, x_len, y_len, padded, c.names)
    return c._replace(checked=True)


def _check_values(x, y, x_len, y_len, padded: bool, names: str) -> None:
    """The data-dependent checks: lengths in range (when given), finite valid points."""
    N, M = x.shape[1], y.shape[-2]
    xn, yn = names.split(",")
    if padded:  # lengths built by ``check_lengths`` from None are in range by construction
        check_lengths_range(f"{xn}_lengths", x_len, N)
        check_lengths_range(f"{yn}_lengths", y_len, M)
    check_finite(xn, x, valid_mask(x_len, N) if padded else None)
    check_finite(yn, y, (valid_mask(y_len, M) if padded else None) if y.dim() == 3 else None)


def _search(c: _Clouds, k: Optional[torch.Tensor], backend: Optional[str]):
    """Run a backend through the registered op ``torch.ops.fe_fast.knn_search``: (idx [B,N] int64,
    selected [B,N] bool or None). No autograd (distances are recomputed by ``gather_dist2``)."""
    name = pick_backend(c.x.device, backend, BACKENDS)
    # eager calls skip the dispatcher (same code); torch.compile / torch.export see the op
    if torch.compiler.is_compiling():
        idx, sel = knn_search(c.x.detach(), c.y.detach(), c.x_len, c.y_len, k, name, c.padded, c.names)
    else:
        idx, sel = _knn_search(c.x.detach(), c.y.detach(), c.x_len, c.y_len, k, name, c.padded, c.names,
                               checked=c.checked)
    return idx, (sel if k is not None else None)


def _knn_search(x, y, x_len, y_len, k, backend, padded, names="x,y", checked=False):
    """The implementation of ``knn_search`` (below); ``checked``: :func:`prepare` already ran the
    data-dependent checks on these clouds."""
    if not checked:
        _check_values(x, y, x_len, y_len, padded, names)
    idx, sel = _search_impl(_Clouds(x, y, y.dim() == 2, x_len, y_len, padded, names), k, backend)
    return idx, sel if sel is not None else torch.empty(0, dtype=torch.bool, device=x.device)


@torch.library.custom_op("fe_fast::knn_search", mutates_args=())
def knn_search(x: torch.Tensor, y: torch.Tensor, x_len: torch.Tensor, y_len: torch.Tensor,
               k: Optional[torch.Tensor], backend: str, padded: bool,
               names: str = "x,y") -> tuple[torch.Tensor, torch.Tensor]:
    """The nearest-neighbour kernel as a PyTorch operator (contract in csrc/knn.h), so that
    torch.compile / torch.export see one opaque node. x [B, N, D] and y [B, M, D] / [M, D]
    contiguous; x_len, y_len int64 [B]; k int64 [B] or None; backend "cpu", "triton" or "cuda";
    padded: lengths were given (mask the finiteness check); names: the clouds' names in the
    caller's terms, "x,y" or "y,x" (error messages). Returns (idx [B, N] int64, sel [B, N]
    bool, or an empty [0] tensor when k is None). The data-dependent checks (lengths in range,
    finite valid points) run here, so they also raise under torch.compile."""
    return _knn_search(x, y, x_len, y_len, k, backend, padded, names)


@knn_search.register_fake
def _knn_search_fake(x, y, x_len, y_len, k, backend, padded, names="x,y"):
    B, N, _ = x.shape
    return (x.new_empty((B, N), dtype=torch.int64),
            x.new_empty((B, N) if k is not None else (0,), dtype=torch.bool))


def _search_impl(c: _Clouds, k: Optional[torch.Tensor], name: str):
    """Run backend ``name``: (idx [B,N] int64, selected [B,N] bool or None). No autograd."""
    x, y = c.x, c.y
    B, N, _ = x.shape
    mod = None
    if name == "cpu":
        from fe_fast import _ext

        mod = _ext.cpu_or_none()
    if mod is not None:
        idx = torch.empty((B, N), dtype=torch.int64)
        dist2 = torch.empty((B, N), dtype=x.dtype)
        sel = torch.empty((B, N), dtype=torch.bool) if k is not None else None
        mod.knn(
            x.numpy(), y.numpy(), c.x_len.numpy(), c.y_len.numpy(), None if k is None else k.numpy(),
            idx.numpy(), dist2.numpy(), None if sel is None else sel.numpy(),
        )
        return idx, sel
    if name == "cpu":  # fe_fast._C is missing: pure-torch fallback (one warning per process)
        from fe_fast.ops._fallback import knn_idx

        idx, sel = knn_idx(x, y, c.x_len, c.y_len), None
    elif name == "triton":
        from fe_fast.kernels.knn import knn_triton

        idx, _, sel = knn_triton(x, y, c.x_len, c.y_len, k)
    else:
        from fe_fast.ops._knn_cuda import knn_cuda

        idx, _, sel = knn_cuda(x, y, c.x_len, c.y_len, k)
    if k is not None and sel is None:
        sel = select_smallest(gather_dist2(x, y, idx, c.shared, c.padded), c.x_len, k)
    return idx, sel


def gather_dist2(x: torch.Tensor, y: torch.Tensor, idx: torch.Tensor, shared: bool, padded: bool = True) -> torch.Tensor:
    """|x_i - y_idx(i)|^2 recomputed in torch (differentiable); 0 where idx is -1 (padding).

    ``padded=False`` promises that no point is padding (every idx >= 0) and skips the masking,
    which halves the cost of this gather in HOUV's inner loop."""
    if not padded:
        yg = y[idx] if shared else torch.gather(y, 1, idx.unsqueeze(-1).expand(-1, -1, y.shape[-1]))
        return ((x - yg) ** 2).sum(-1)
    valid = idx >= 0
    safe = idx.clamp_min(0)
    if shared:
        yg = y[safe]
    else:
        yg = torch.gather(y, 1, safe.unsqueeze(-1).expand(-1, -1, y.shape[-1]))
    x = torch.where(valid.unsqueeze(-1), x, torch.zeros((), dtype=x.dtype, device=x.device))
    return ((x - yg) ** 2).sum(-1) * valid  # padding may hold NaN: masked before the product


def select_smallest(dist2: torch.Tensor, lengths: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Boolean [B, N]: per row the k[b] valid entries with the smallest dist2 (torch fallback)."""
    B, N = dist2.shape
    d = dist2.detach().masked_fill(~valid_mask(lengths, N), float("inf"))
    order = torch.argsort(d, dim=1, stable=True)
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(N, device=d.device).expand(B, N).contiguous())
    return ranks < k.unsqueeze(1)


def select_counts(lengths: torch.Tensor, alpha: float) -> torch.Tensor:
    """ceil(alpha * n_b) per batch element, at least 1 (thesis eq. 3-9: |P_alpha|)."""
    return torch.clamp(torch.ceil(lengths.double() * alpha - 1e-9).to(torch.int64), min=1)


def knn(x, y, x_lengths=None, y_lengths=None, *, backend: Optional[str] = None, K: Optional[int] = None,
        return_nn: bool = False):
    """Nearest neighbour of every point of ``x`` in ``y``; with ``K``, the K nearest.

    Args:
        x: [B, N, D] float32/float64, D in {2, 3} (any D >= 1 with ``K``).
        y: [B, M, D], or [M, D] shared by the whole batch (no copy is made).
        x_lengths, y_lengths: optional int [B] for ragged batches padded to N and M; padded x
            points get idx -1 and dist2 0, padded y points never match.
        backend: None (by device), "cpu", "triton" or "cuda" ("cpu" or "triton" with ``K``).
        K: None (one neighbour, [B, N] results) or an integer >= 1: ``fe_fast.ops.knn_topk``
            (sorted [B, N, K] results with PyTorch3D ``knn_points`` conventions).
        return_nn: with ``K``, also return the neighbours' coordinates [B, N, K, D].

    Returns:
        KNN(dist2 [B, N], idx [B, N]); dist2 is differentiable in x and y. With ``K``:
        KNNTopK(dists [B, N, K], idx [B, N, K], knn [B, N, K, D] or None).
    """
    if K is not None:
        from fe_fast.ops.knn_topk import knn_topk

        return knn_topk(x, y, K, x_lengths, y_lengths, return_nn=return_nn, backend=backend)
    if return_nn:
        raise ValueError("return_nn needs K (the K-neighbour form of knn)")
    c = prepare(x, y, x_lengths, y_lengths)
    idx, _ = _search(c, None, backend)
    return KNN(gather_dist2(c.x, c.y, idx, c.shared, c.padded), idx)


def knn_select(x, y, alpha: float, x_lengths=None, y_lengths=None, *, backend: Optional[str] = None) -> KNNSelect:
    """``knn`` plus the top-alpha selection of thesis eq. 3-9.

    ``selected[b]`` marks the ceil(alpha * N_b) points of x[b] with the smallest nearest-neighbour
    distance (the set P_alpha), computed by the kernel in the same pass (selection, not a sort).
    """
    alpha = check_alpha(alpha)
    c = prepare(x, y, x_lengths, y_lengths)
    k = select_counts(c.x_len, alpha)
    idx, sel = _search(c, k, backend)
    return KNNSelect(gather_dist2(c.x, c.y, idx, c.shared, c.padded), idx, sel)



__all__ = ["KNN", "KNNSelect", "knn", "knn_select", "knn_search", "prepare", "gather_dist2", "select_smallest",
           "select_counts", "BACKENDS"]

