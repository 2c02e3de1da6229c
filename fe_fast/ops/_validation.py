"""Input checks shared by the ops. Every failure is a ValueError that names the argument."""
from __future__ import annotations

from typing import Callable, Optional, Sequence

import torch

FLOAT_DTYPES = (torch.float32, torch.float64)


def check_tensor(name: str, t) -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    return t


def check_float(name: str, t: torch.Tensor) -> None:
    if t.dtype not in FLOAT_DTYPES:
        hint = " (cast with .float())" if t.dtype in (torch.float16, torch.bfloat16) or not t.is_floating_point() else ""
        raise ValueError(f"{name} must be float32 or float64, got {t.dtype}{hint}")


def check_finite(name: str, t: torch.Tensor, mask: Optional[torch.Tensor] = None) -> None:
    """Raise if ``t`` (restricted to ``mask`` over its leading dims when given) has NaN or Inf."""
    finite = torch.isfinite(t)
    if mask is not None:
        finite = finite | ~mask.unsqueeze(-1)
    if not bool(finite.all()):
        raise ValueError(f"{name} contains NaN or Inf coordinates")


def check_lengths(name: str, lengths, batch: int, max_len: int, device) -> torch.Tensor:
    """Validate ragged lengths' type, shape and device (None -> all ``max_len``); returns int64
    [batch] on ``device``. Their values are checked by ``check_lengths_range``."""
    if lengths is None:
        return torch.full((batch,), max_len, dtype=torch.int64, device=device)
    if not isinstance(lengths, torch.Tensor):
        lengths = torch.as_tensor(lengths)
    if lengths.is_floating_point() or lengths.dtype == torch.bool:
        raise ValueError(f"{name} must hold integers, got {lengths.dtype}")
    if lengths.dim() != 1 or lengths.shape[0] != batch:
        raise ValueError(f"{name} must have shape [{batch}], got {list(lengths.shape)}")
    # CPU lengths (as plain lists become) are moved to the points' device; another GPU is an error
    if lengths.device.type != "cpu" and lengths.device != torch.device(device):
        raise ValueError(f"{name} is on {lengths.device}, the points on {device}")
    return lengths.to(device=device, dtype=torch.int64).contiguous()


def check_lengths_range(name: str, lengths: torch.Tensor, max_len: int) -> None:
    """The data-dependent half of ``check_lengths``: 1 <= lengths <= max_len. Called inside the
    registered ops (so it still raises under torch.compile, where a value read would break the graph)."""
    if not lengths.numel():
        return
    lo, hi = (int(v) for v in torch.stack(lengths.aminmax()).tolist())
    if lo < 1:
        raise ValueError(f"{name} has an empty cloud (length < 1): every cloud needs at least one point")
    if hi > max_len:
        raise ValueError(f"{name} has a length above the padded size {max_len}")


def check_nonnegative(name: str, t: torch.Tensor) -> torch.Tensor:
    """Raise unless every entry of ``t`` is >= 0 (NaN fails); returns ``t`` itself in eager mode.
    Under torch.compile / torch.export the check runs inside the registered op
    ``fe_fast::nonnegative`` (a value read in Python would break the graph), which returns a copy
    that the caller must use in place of ``t`` (so the check is not dropped as dead code)."""
    if torch.compiler.is_compiling():
        return nonnegative(t, name)
    _check_nonnegative(name, t)
    return t


def _check_nonnegative(name: str, t: torch.Tensor) -> None:
    if not bool((t >= 0).all()):
        raise ValueError(f"{name} must be non-negative")


@torch.library.custom_op("fe_fast::nonnegative", mutates_args=())
def nonnegative(t: torch.Tensor, name: str) -> torch.Tensor:
    """``t`` (a copy) after checking that every entry is >= 0; ValueError naming ``name`` otherwise."""
    _check_nonnegative(name, t)
    return t.clone()


@nonnegative.register_fake
def _nonnegative_fake(t, name):
    return torch.empty_like(t)


def check_alpha(alpha: float) -> float:
    try:
        a = float(alpha)
    except (TypeError, ValueError):
        raise ValueError(f"alpha must be a number in (0, 1], got {alpha!r}") from None
    if not (0.0 < a <= 1.0):
        raise ValueError(f"alpha must be in (0, 1], got {alpha}")
    return a


def valid_mask(lengths: torch.Tensor, size: int) -> torch.Tensor:
    """Boolean [B, size], True where index < length."""
    return torch.arange(size, device=lengths.device).unsqueeze(0) < lengths.unsqueeze(1)


PLANES = {"xy": (0, 1), "yz": (1, 2), "xz": (0, 2)}


def check_planes(planes: Sequence[str]) -> list:
    if isinstance(planes, str):
        planes = (planes,)
    planes = list(planes)
    if not planes:
        raise ValueError("planes must name at least one of 'xy', 'yz', 'xz'")
    for p in planes:
        if p not in PLANES:
            raise ValueError(f"unknown plane {p!r}: expected 'xy', 'yz' or 'xz'")
    return planes


def check_clouds(x, y, x_lengths, y_lengths, check_dim: Callable[[int], None]):
    """The shape, dtype and device checks shared by the nearest-neighbour ops (``knn.prepare``,
    ``knn_topk.prepare_topk``): x [B, N, D]; y [B, M, D] or [M, D] (shared by the batch), non-empty,
    of x's float dtype and device; ``check_dim(D)`` raises for a D the op does not support. Returns
    (shared, x_len, y_len): the lengths as int64 [B] (full when None); their values are not read."""
    check_tensor("x", x)
    check_tensor("y", y)
    if x.dim() != 3:
        raise ValueError(f"x must have shape [B, N, D], got {list(x.shape)}")
    if y.dim() not in (2, 3):
        raise ValueError(f"y must have shape [B, M, D] or [M, D] (shared by the batch), got {list(y.shape)}")
    B, N, D = x.shape
    check_dim(D)
    if y.shape[-1] != D:
        raise ValueError(f"x has D={D} but y has D={y.shape[-1]}")
    shared = y.dim() == 2
    if not shared and y.shape[0] != B:
        raise ValueError(f"batch mismatch: x has B={B}, y has B={y.shape[0]}")
    check_float("x", x)
    check_float("y", y)
    if x.dtype != y.dtype:
        raise ValueError(f"x and y must share a dtype, got {x.dtype} and {y.dtype}")
    if x.device != y.device:
        raise ValueError(f"x and y must be on the same device, got {x.device} and {y.device}")
    M = y.shape[-2]
    if B == 0:
        raise ValueError("x has an empty batch (B=0)")
    if N == 0:
        raise ValueError("x is an empty cloud (N=0)")
    if M == 0:
        raise ValueError("y is an empty cloud (M=0)")
    if shared and y_lengths is not None:
        raise ValueError("y_lengths must be None when y is shared by the batch ([M, D])")
    x_len = check_lengths("x_lengths", x_lengths, B, N, x.device)
    y_len = check_lengths("y_lengths", y_lengths, B, M, x.device)
    return shared, x_len, y_len
