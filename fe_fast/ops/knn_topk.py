"""K nearest neighbours in any dimension (``knn(x, y, K=...)``), with PyTorch3D ``knn_points``
conventions, so that code written for it ports by changing the import.

Conventions (each one is tested in ``tests/ops/test_knn_topk.py``):

- ``x`` [B, N, D] queries; ``y`` [B, M, D], or [M, D] shared by the whole batch (no copy); any
  D >= 1; float32 or float64 (both clouds the same dtype and device).
- ``dists`` [B, N, K] are *squared* Euclidean distances, ``idx`` [B, N, K] int64 indices into
  ``y[b]``; each row is sorted ascending by distance, and among equal distances the lower index
  comes first (the order of a stable sort of a brute-force distance row).
- Ragged batches (``x_lengths`` / ``y_lengths``, int [B], 1 <= length <= padded size): a padded
  query (i >= x_lengths[b]) gets idx -1 and dist 0 in every slot; padded points of y are never
  returned. When a cloud has fewer valid points than K (y_lengths[b] < K), the slots past
  y_lengths[b] get idx -1 and dist 0 (as PyTorch3D pads them). ``return_nn`` gathers the
  neighbours' coordinates [B, N, K, D], zero where idx is -1 (PyTorch3D's ``knn_gather``).
- ``dists`` (and ``knn``) are differentiable in x and y with exact gradients: when x or y requires
  grad (or ``return_nn`` is set), the distances are recomputed in torch on the gathered points, as
  ``knn`` does (the assignment itself is piecewise constant); otherwise the kernel's own squared
  distances (coordinate differences, possibly fused multiply-adds) are returned and the gather is
  skipped (it costs more than the search at K x N x B = 0.5M). The two can differ by rounding (an
  ulp), so two neighbours within an ulp of each other may appear in either order.
- The distance is the squared L2 norm only (no ``norm=1``).

Backends: ``"cpu"`` (C++, ``csrc/knn_topk.cpp``) with two exact paths chosen by ``method`` --
``"kdtree"`` (D <= ``KDTREE_MAX_D``: the kd-tree of ``csrc/knn_kdtree.h`` with a sorted K-list per
query) and ``"brute"`` (blocked brute force: distance tiles |y|^2 - 2 x.y by ``torch.mm`` on
blocks, a running top-Kc per query in C++, then an exact re-rank of the candidates from coordinate
differences, certified against the rounding error of the matrix-product form, with an exact full
scan for any query the certificate does not cover); ``"triton"`` (``fe_fast.kernels.knn_topk``, the
default on CUDA tensors, tested on CPU under ``TRITON_INTERPRET=1``). The nearest-neighbour search
is the one under every Chamfer distance of thesis eq. 3-9 / 3-10.
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import torch

from fe_fast.ops._dispatch import pick_backend
from fe_fast.ops._validation import check_clouds, valid_mask
from fe_fast.ops.knn import _check_values

BACKENDS = ("cpu", "triton")
METHODS = ("kdtree", "brute")

# The kd-tree path is compiled for D <= 8 (csrc/knn_topk.h). Crossover measured with
# bench/bm_knn_topk.py::test_crossover (uniform points in the unit cube, K = 8, one batch
# element, both methods in the same run; also N = M = 2048): the kd-tree was faster at every
# D from 2 to 8 (brute / kd-tree CPU time 4.1x at D = 2 down to 1.6x at D = 8 for
# N = M = 20000, 1.1-2.0x at N = M = 2048), so it is used up to its compiled limit and the blocked
# brute force above. See bench/results/ops.md.
KDTREE_MAX_D = 8
# Blocked brute force: where the distance tiles come from. "cpp": the fused C++ loop
# (csrc/knn_topk.cpp, knn_topk_brute_cpu); "torch": torch.mm (MKL) on BRUTE_BLOCK_Q x BRUTE_BLOCK_M
# tiles scanned by C++ between the calls. Chosen by bench/bm_knn_topk.py (test_k8_d64, paths
# "ours" and "ours_torch_mm", same run); see bench/results/ops.md.
BRUTE_GEMM = "cpp"
BRUTE_BLOCK_Q = 1024
BRUTE_BLOCK_M = 4096


class KNNTopK(NamedTuple):
    """PyTorch3D's ``_KNN`` fields: dists [B, N, K] (squared), idx [B, N, K], knn [B, N, K, D] or None."""

    dists: torch.Tensor
    idx: torch.Tensor
    knn: Optional[torch.Tensor]


class _TopKClouds(NamedTuple):
    x: torch.Tensor  # [B, N, D] contiguous
    y: torch.Tensor  # [B, M, D] or [M, D] (shared), contiguous
    shared: bool
    x_len: torch.Tensor  # int64 [B]
    y_len: torch.Tensor  # int64 [B]
    padded: bool
    names: str = "x,y"  # the user's names of the query and reference clouds (for error messages)
    checked: bool = False  # the lengths' values and the points' finiteness were checked (eager prepare)


def check_k(K) -> int:
    if isinstance(K, bool) or not isinstance(K, int):
        if not (isinstance(K, torch.Tensor) and K.dim() == 0 and not K.is_floating_point()):
            raise ValueError(f"K must be an integer >= 1, got {K!r}")
        K = int(K)
    if K < 1:
        raise ValueError(f"K must be an integer >= 1, got {K}")
    return K


def _check_dim(D: int) -> None:
    if D < 1:
        raise ValueError("points must have at least one coordinate (D >= 1), got D=0")


def prepare_topk(x, y, x_lengths=None, y_lengths=None) -> _TopKClouds:
    """Validate x [B, N, D], y [B, M, D] or [M, D] (any D >= 1) and ragged lengths; the
    data-dependent checks (lengths' values, finite points) run here in eager mode and inside the
    registered op ``knn_topk_search`` under torch.compile (as ``knn.prepare``)."""
    shared, x_len, y_len = check_clouds(x, y, x_lengths, y_lengths, _check_dim)
    padded = x_lengths is not None or y_lengths is not None
    x, y = x.contiguous(), y.contiguous()
    # eager: the values are checked once here (as knn.prepare); under torch.compile inside the
    # registered op (a value read here would break the graph)
    checked = not torch.compiler.is_compiling()
    if checked:
        _check_values(x, y, x_len, y_len, padded, "x,y")
    return _TopKClouds(x, y, shared, x_len, y_len, padded, "x,y", checked)


def pick_method(D: int, method: Optional[str]) -> str:
    """The CPU path: ``method`` when given (validated), else by dimension (KDTREE_MAX_D)."""
    if method is None:
        return "kdtree" if D <= KDTREE_MAX_D else "brute"
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}: expected one of {METHODS}")
    if method == "kdtree" and D > 8:
        raise ValueError(f"method 'kdtree' supports D <= 8, got D={D}")
    return method


# ----------------------------------------------------------------------------------- CPU paths
def _kdtree_cpu(x, y, x_len, y_len, K: int):
    """The kd-tree path on detached clouds (as ``knn_topk_search`` passes them)."""
    from fe_fast import _ext

    B, N, _ = x.shape
    idx = torch.empty((B, N, K), dtype=torch.int64)
    dist2 = torch.empty((B, N, K), dtype=x.dtype)
    _ext.cpu().knn_topk_kdtree(x.numpy(), y.numpy(), x_len.numpy(), y_len.numpy(), K, idx.numpy(), dist2.numpy())
    return idx, dist2


def brute_rows(xq: torch.Tensor, ref: torch.Tensor, K: int, block_q: int = BRUTE_BLOCK_Q,
               block_m: int = BRUTE_BLOCK_M, gemm: Optional[str] = None):
    """Exact K nearest rows of ``ref`` [M, D] for each row of ``xq`` [Q, D] (contiguous CPU):
    (idx [Q, K], dist2 [Q, K], number of queries that needed the exact fallback scan).

    ``gemm``: where the distance tiles come from, "cpp" (the fused C++ loop, one call) or "torch"
    (torch.mm on block_q x block_m tiles, scanned by C++ between calls); None: BRUTE_GEMM."""
    from fe_fast import _ext

    C = _ext.cpu()
    gemm = BRUTE_GEMM if gemm is None else gemm
    if gemm not in ("cpp", "torch"):
        raise ValueError(f"gemm must be 'cpp' or 'torch', got {gemm!r}")
    Q, D = xq.shape
    if gemm == "cpp":
        idx = torch.empty((Q, K), dtype=torch.int64)
        dist2 = torch.empty((Q, K), dtype=xq.dtype)
        fallbacks = C.knn_topk_brute(xq.numpy(), ref.numpy(), K, idx.numpy(), dist2.numpy())
        return idx, dist2, fallbacks
    M = ref.shape[0]
    dtype = xq.dtype
    Kc = min(M, max(2 * K, K + 8))  # candidates kept per query before the exact re-rank
    cand_d = torch.full((Q, Kc), float("inf"), dtype=dtype)
    if Kc == M:  # every point is a candidate: nothing to scan
        cand_i = torch.arange(M, dtype=torch.int64).expand(Q, M).contiguous()
        ymax = 0.0
    else:
        cand_i = torch.full((Q, Kc), -1, dtype=torch.int64)
        ynorm = (ref * ref).sum(1)
        ymax = float(ynorm.max())
        buf = torch.empty(min(block_q, Q) * min(block_m, M), dtype=dtype)
        cd, ci, yn = cand_d.numpy(), cand_i.numpy(), ynorm.numpy()
        for q0 in range(0, Q, block_q):
            q1 = min(q0 + block_q, Q)
            xb = xq[q0:q1]
            for m0 in range(0, M, block_m):
                m1 = min(m0 + block_m, M)
                tile = buf[: (q1 - q0) * (m1 - m0)].view(q1 - q0, m1 - m0)
                torch.mm(xb, ref[m0:m1].t(), out=tile)
                C.knn_topk_scan(tile.numpy(), yn[m0:m1], m0, cd[q0:q1], ci[q0:q1])
    idx = torch.empty((Q, K), dtype=torch.int64)
    dist2 = torch.empty((Q, K), dtype=dtype)
    fallbacks = C.knn_topk_rerank(xq.numpy(), ref.numpy(), cand_i.numpy(), cand_d.numpy(), ymax, K,
                                  idx.numpy(), dist2.numpy())
    return idx, dist2, fallbacks


def _brute_cpu(x, y, x_len, y_len, K: int):
    """The blocked brute-force path on detached clouds (as ``knn_topk_search`` passes them)."""
    B, N, D = x.shape
    shared = y.dim() == 2
    if shared and bool((x_len == N).all()):  # one reference cloud: the whole batch in one matrix
        qi, qd, _ = brute_rows(x.reshape(B * N, D), y, K)
        return qi.view(B, N, K), qd.view(B, N, K)
    idx = torch.full((B, N, K), -1, dtype=torch.int64)
    dist2 = torch.zeros((B, N, K), dtype=x.dtype)
    if shared:
        mask = valid_mask(x_len, N)
        idx[mask], dist2[mask], _ = brute_rows(x[mask].contiguous(), y, K)
        return idx, dist2
    for b in range(B):
        n, m = int(x_len[b]), int(y_len[b])
        idx[b, :n], dist2[b, :n], _ = brute_rows(x[b, :n], y[b, :m].contiguous(), K)
    return idx, dist2


_CHUNK_ELEMS = 1 << 24  # bound on a [chunk, M, D] difference block of topk_torch (64 MiB in float32)


def topk_torch(x, y, x_len, y_len, K):
    """Pure-torch fallback (no compiled module): same conventions as the kernels. Squared
    distances from coordinate differences in blocks of queries, a stable sort per row (ties: lower
    index), padding -1 / 0. Returns (idx, dist2) [B, N, K]."""
    B, N, D = x.shape
    M = y.shape[-2]
    idx = torch.full((B, N, K), -1, dtype=torch.int64, device=x.device)
    dist2 = torch.zeros((B, N, K), dtype=x.dtype, device=x.device)
    for b in range(B):
        n, m = int(x_len[b]), int(y_len[b])
        yb = (y if y.dim() == 2 else y[b])[:m]
        k = min(K, m)
        step = max(1, _CHUNK_ELEMS // max(1, m * D))
        for i in range(0, n, step):
            j = min(i + step, n)
            d = ((x[b, i:j, None, :] - yb[None]) ** 2).sum(-1)
            sd, si = torch.sort(d, dim=1, stable=True)
            idx[b, i:j, :k] = si[:, :k]
            dist2[b, i:j, :k] = sd[:, :k]
    return idx, dist2


def search_topk(c: _TopKClouds, K: int, backend: Optional[str] = None, method: Optional[str] = None):
    """(idx [B, N, K] of the K nearest valid points of y (-1 for padding), the kernel's squared
    distances [B, N, K] (0 for padding)), through the registered op ``knn_topk_search``. No autograd."""
    name = pick_backend(c.x.device, backend, BACKENDS)
    if name == "cpu":
        method = pick_method(c.x.shape[-1], method)
    elif method is not None:
        raise ValueError(f"method={method!r} selects a CPU path; the {name!r} backend has one")
    # eager calls skip the dispatcher (same code); torch.compile / torch.export see the op
    if not c.checked and torch.compiler.is_compiling():  # (eager prepare_topk sets checked)
        return knn_topk_search(c.x.detach(), c.y.detach(), c.x_len, c.y_len, K, name, method, c.padded, c.names)
    return _knn_topk_search(c.x.detach(), c.y.detach(), c.x_len, c.y_len, K, name, method, c.padded, c.names,
                            c.checked)


def _knn_topk_search(x, y, x_len, y_len, K, backend, method, padded, names="x,y", checked=False):
    """The implementation of ``knn_topk_search`` (below); ``checked``: :func:`prepare_topk` already
    ran the data-dependent checks on these clouds."""
    if not checked:
        _check_values(x, y, x_len, y_len, padded, names)
    if backend == "cpu":
        from fe_fast import _ext

        if _ext.cpu_or_none() is None:  # fe_fast._C missing: pure torch (one warning per process)
            return topk_torch(x, y, x_len, y_len, K)
        return (_kdtree_cpu if method == "kdtree" else _brute_cpu)(x, y, x_len, y_len, K)
    from fe_fast.kernels.knn_topk import knn_topk_triton

    return knn_topk_triton(x, y, x_len, y_len, K)


@torch.library.custom_op("fe_fast::knn_topk_search", mutates_args=())
def knn_topk_search(x: torch.Tensor, y: torch.Tensor, x_len: torch.Tensor, y_len: torch.Tensor, K: int,
                    backend: str, method: Optional[str], padded: bool,
                    names: str = "x,y") -> tuple[torch.Tensor, torch.Tensor]:
    """The K-nearest-neighbour kernels as a PyTorch operator (contract in csrc/knn_topk.h), so that
    torch.compile / torch.export see one opaque node. x [B, N, D] and y [B, M, D] / [M, D]
    contiguous; x_len, y_len int64 [B]; K >= 1; backend "cpu" or "triton"; method "kdtree" or
    "brute" (CPU) or None; padded: lengths were given (mask the finiteness check); names: "x,y" or
    "y,x" (error messages). Returns (idx [B, N, K] int64, dists [B, N, K]: the kernel's squared
    distances, not differentiable). The data-dependent checks (lengths in range, finite valid
    points) run here, so they also raise under torch.compile."""
    return _knn_topk_search(x, y, x_len, y_len, K, backend, method, padded, names)


@knn_topk_search.register_fake
def _knn_topk_search_fake(x, y, x_len, y_len, K, backend, method, padded, names="x,y"):
    B, N, _ = x.shape
    return x.new_empty((B, N, K), dtype=torch.int64), x.new_empty((B, N, K))


def gather_nn(y: torch.Tensor, idx: torch.Tensor, shared: bool, masked: bool = True) -> torch.Tensor:
    """y's points at idx [B, N, K] -> [B, N, K, D], zero where idx is -1 (differentiable in y).
    ``masked=False`` promises that idx holds no -1 and skips the masking."""
    B, N, K = idx.shape
    D = y.shape[-1]
    safe = idx.clamp_min(0) if masked else idx
    if shared:
        yg = y.index_select(0, safe.reshape(-1)).view(B, N, K, D)
    else:
        yg = torch.gather(y, 1, safe.reshape(B, N * K, 1).expand(-1, -1, D)).view(B, N, K, D)
    if not masked:
        return yg
    return torch.where((idx >= 0).unsqueeze(-1), yg, torch.zeros((), dtype=y.dtype, device=y.device))


def topk_dists(x: torch.Tensor, y: torch.Tensor, idx: torch.Tensor, shared: bool, masked: bool = True):
    """(dists [B, N, K] = |x_i - y_idx|^2 recomputed in torch, 0 where idx is -1; neighbours [B, N, K, D]).

    ``masked=False`` promises that idx holds no -1 (no padding, K <= M): three tensor passes
    instead of six, which matters at K x N x B = 0.5M (the gather costs more than the search)."""
    nn = gather_nn(y, idx, shared, masked)
    if not masked:
        return ((x.unsqueeze(2) - nn) ** 2).sum(-1), nn
    valid = idx >= 0
    row = valid.any(-1, keepdim=True)  # padded queries (every slot -1) may hold NaN: masked first
    xm = torch.where(row, x, torch.zeros((), dtype=x.dtype, device=x.device))
    d = ((xm.unsqueeze(2) - nn) ** 2).sum(-1)
    return d * valid, nn


def knn_topk(x, y, K: int, x_lengths=None, y_lengths=None, *, return_nn: bool = False,
             backend: Optional[str] = None, method: Optional[str] = None) -> KNNTopK:
    """The K nearest points of y for every point of x (conventions in the module docstring).

    Args:
        x: [B, N, D] float32/float64, any D >= 1.
        y: [B, M, D], or [M, D] shared by the batch.
        K: number of neighbours, an integer >= 1 (K > M is allowed: the extra slots are padding).
        x_lengths, y_lengths: optional int [B] for ragged batches (y_lengths only with a batched y).
        return_nn: also return the neighbours' coordinates [B, N, K, D].
        backend: None (by device), "cpu" or "triton".
        method: CPU path, None (by dimension), "kdtree" (D <= 8) or "brute".

    Returns:
        KNNTopK(dists [B, N, K], idx [B, N, K], knn [B, N, K, D] or None).
    """
    K = check_k(K)
    c = prepare_topk(x, y, x_lengths, y_lengths)
    idx, kernel_dists = search_topk(c, K, backend, method)
    if not return_nn and not (torch.is_grad_enabled() and (c.x.requires_grad or c.y.requires_grad)):
        return KNNTopK(kernel_dists, idx, None)  # no gradient wanted: the kernel's distances
    dists, nn = topk_dists(c.x, c.y, idx, c.shared, masked=c.padded or K > c.y.shape[-2])
    return KNNTopK(dists, idx, nn if return_nn else None)


__all__ = ["KNNTopK", "knn_topk", "prepare_topk", "search_topk", "brute_rows", "topk_torch", "gather_nn", "topk_dists",
           "KDTREE_MAX_D", "METHODS", "knn_topk_search"]
