"""Backend choice shared by the ops: by device, or named explicitly (tests, benchmarks)."""
from __future__ import annotations

import os
from typing import Optional, Sequence

import torch


def pick_backend(device: torch.device, backend: Optional[str], backends: Sequence[str]) -> str:
    """CPU tensors -> "cpu"; CUDA tensors -> "triton" (on an H200 the Triton knn beat our CUDA
    kernel 1.3-1.8x at the batched HOUV shapes and lost 1.1-1.3x on one 100k-point cloud).
    A named backend must suit the device; Triton runs on CPU tensors only
    under ``TRITON_INTERPRET=1`` (how CI tests the kernels)."""
    if backend is None:
        return "cpu" if device.type == "cpu" else "triton"
    if backend not in backends:
        raise ValueError(f"unknown backend {backend!r}: expected one of {tuple(backends)}")
    if backend == "cpu" and device.type != "cpu":
        raise ValueError("backend 'cpu' needs CPU tensors")
    if backend == "cuda" and device.type != "cuda":
        raise ValueError("backend 'cuda' needs CUDA tensors")
    if backend == "triton" and device.type == "cpu" and os.environ.get("TRITON_INTERPRET") != "1":
        raise ValueError("backend 'triton' on CPU tensors needs TRITON_INTERPRET=1")
    return backend
