"""Glue to the CUDA C++ nearest-neighbour kernel (``csrc/knn_cuda.cu``, module ``fe_fast._C_cuda``).

Called by ``fe_fast.ops.knn`` after validation; the contract is ``csrc/knn.h`` (thesis eq. 3-9 for
the selection). The kernel is launched asynchronously on the current CUDA stream of x's device.
"""
from __future__ import annotations

import torch

from fe_fast import _ext


def knn_cuda(x, y, x_len, y_len, k=None):
    """Nearest neighbour (and optional top-k selection) with the CUDA C++ kernel.

    Args:
        x: contiguous CUDA [B, N, D] float32/float64, D in {2, 3}.
        y: contiguous [B, M, D], or [M, D] shared by the batch; same device and dtype as x.
        x_len, y_len: int64 [B] on x's device (1 <= y_len[b] <= M, 0 <= x_len[b] <= N).
        k: int64 [B] on x's device, or None for no selection.

    Returns:
        (idx int64 [B, N], dist2 x.dtype [B, N], sel torch.bool [B, N] or None).
    """
    mod = _ext.cuda()
    if mod is None:
        raise RuntimeError(
            "fe_fast._C_cuda is not built: reinstall with FE_FAST_CUDA=1 (needs nvcc), "
            "or use backend='triton'"
        )
    B, N, _ = x.shape
    tensors = [x, y, x_len, y_len] + ([] if k is None else [k])
    for t in tensors:
        if t.device != x.device or not t.is_contiguous():
            raise ValueError("knn_cuda: every input must be contiguous and on x's device")
    if x.device.type != "cuda":
        raise ValueError("knn_cuda: x must be a CUDA tensor")
    if y.dtype != x.dtype or x_len.dtype != torch.int64 or y_len.dtype != torch.int64 or (
        k is not None and k.dtype != torch.int64
    ):
        raise ValueError("knn_cuda: y must have x's dtype and x_len, y_len, k must be int64")
    idx = torch.empty((B, N), dtype=torch.int64, device=x.device)
    dist2 = torch.empty((B, N), dtype=x.dtype, device=x.device)
    sel = None if k is None else torch.empty((B, N), dtype=torch.uint8, device=x.device)
    with torch.cuda.device(x.device):
        # The kernel runs on the current stream, where the tensors were produced: no cross-stream
        # synchronisation to ask of __dlpack__ (stream=-1).
        caps = [None if t is None else t.__dlpack__(stream=-1)
                for t in (x, y, x_len, y_len, k, idx, dist2, sel)]
        mod.knn(*caps, torch.cuda.current_stream(x.device).cuda_stream)
    return idx, dist2, None if sel is None else sel.view(torch.bool)
