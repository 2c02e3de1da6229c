"""Attribute dependency (thesis §6.3.2, following StyleSpace).

For K attribute classifiers with logits l_i, an edit aimed at attribute t changes the logits by
Delta l_i (edited image minus original, per sample). Then

* AD_t = mean over samples of |Delta l_t| (how far the target attribute moved),
* AD_o = mean over samples of (1/(K-1)) sum_{i != t} |Delta l_i| / sigma(l_i), sigma(l_i) the std of
  logit i over the generated samples (how much the other attributes leaked),
* ratio = AD_t / AD_o (higher is better; < 1 means the edit is not disentangled, thesis Table 6-4).
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import torch

__all__ = ["AttributeDependency", "attribute_dependency"]


class AttributeDependency(NamedTuple):
    ad_t: float
    ad_o: float
    ratio: float


def attribute_dependency(before: torch.Tensor, after: torch.Tensor, target: int,
                         logit_std: Optional[torch.Tensor] = None) -> AttributeDependency:
    """AD_t, AD_o and AD_t / AD_o of thesis §6.3.2.

    Args:
        before, after: logits [N, K] of the same N samples before and after the edit (K >= 2).
        target: index of the edited attribute.
        logit_std: [K] std of each logit over the generated samples (default: std of ``before``).
    """
    if not isinstance(before, torch.Tensor) or not isinstance(after, torch.Tensor):
        raise ValueError("before and after must be torch tensors of logits [N, K]")
    if before.dim() != 2 or before.shape != after.shape:
        raise ValueError(f"before and after must both be [N, K], got {list(before.shape)} and {list(after.shape)}")
    N, K = before.shape
    if K < 2 or N < 1:
        raise ValueError(f"need N >= 1 samples and K >= 2 attributes, got N={N}, K={K}")
    if isinstance(target, bool) or not isinstance(target, int) or not 0 <= target < K:
        raise ValueError(f"target must be an attribute index in 0..{K - 1}, got {target!r}")
    before, after = before.double(), after.double()
    if logit_std is None:
        if N < 2:
            raise ValueError("logit_std is needed with a single sample")
        logit_std = before.std(0)
    logit_std = torch.as_tensor(logit_std, dtype=torch.float64)
    if logit_std.shape != (K,):
        raise ValueError(f"logit_std must have shape [{K}], got {list(logit_std.shape)}")
    if bool((logit_std <= 0).any()):
        raise ValueError("logit_std must be positive for every attribute")
    delta = (after - before).abs()
    ad_t = float(delta[:, target].mean())
    others = [i for i in range(K) if i != target]
    ad_o = float((delta[:, others] / logit_std[others]).mean())
    ratio = ad_t / ad_o if ad_o > 0 else float("inf")
    return AttributeDependency(ad_t, ad_o, ratio)
