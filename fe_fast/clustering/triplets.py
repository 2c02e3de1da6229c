"""Probabilistic triplets of DERC (thesis eq. 4-5 to 4-7, 4-9, 4-10).

Given the mixture responsibilities ``P[i, j] = p_{i,j}`` (eq. 4-5) of every sample, a triplet is
an anchor ``i``, a positive ``p`` and a negative ``n``. ``k = argmax_j p_{i,j}`` is the anchor's
most likely component; the positive is drawn among the samples whose most likely component is also
``k`` (with probability proportional to ``p_{p,k}``, so confident members are preferred) and the
negative among the samples assigned to another component, with probability proportional to
``p_{n,k} + mean(p_{.,k})`` over those samples: half of the mass goes to negatives that the mixture
still gives some probability of belonging to ``k`` (the boundary samples, whose ``p_{n,k} d_{i,n}``
term actually pushes), half is spread uniformly. The triplet carries the weights ``p_{p,k}`` and
``p_{n,k}``.

Loss (eq. 4-7 with a hinge): ``l_c = max(0, p_{p,k} d_{i,p} - p_{n,k} d_{i,n} + margin)`` with the
Euclidean code distance ``d_{i,j} = ||z_i - z_j||_2`` (eq. 4-6). **The thesis prints eq. 4-7
without the ``max(0, .)``**; without it the loss is unbounded below (pushing negatives away forever
lowers it), so we use the usual triplet hinge. ``L_c`` (eq. 4-9) is the mean over the sampled
triplets, and the stage-2 objective is ``L_p + alpha * L_c`` (eq. 4-10).
"""
from __future__ import annotations

import numpy as np
import torch

__all__ = ["sample_triplets", "probabilistic_triplet_loss"]


def sample_triplets(proba: np.ndarray, n_triplets: int, rng: np.random.Generator, valid=None):
    """Draw ``n_triplets`` probabilistic triplets from responsibilities ``proba`` (N, K), eq. 4-5.

    ``valid`` (optional boolean mask, N) excludes samples (e.g. DBSCAN noise) from every role.
    Returns ``(anchor, positive, negative, p_pos, p_neg)``: three int64 index arrays and the float32
    weights ``p_{p,k}`` and ``p_{n,k}`` of eq. 4-7. Components with fewer than two members provide
    no anchors; if fewer than two components are populated no triplet can be formed and empty arrays
    are returned.
    """
    proba = np.asarray(proba, dtype=np.float64)
    if proba.ndim != 2 or proba.shape[0] == 0:
        raise ValueError(f"proba: expected a non-empty (N, K) array, got shape {proba.shape}")
    if n_triplets < 0:
        raise ValueError(f"n_triplets must be >= 0, got {n_triplets}")
    n = proba.shape[0]
    hard = proba.argmax(axis=1)
    ok = np.ones(n, dtype=bool) if valid is None else np.asarray(valid, dtype=bool)
    members = {k: np.flatnonzero((hard == k) & ok) for k in range(proba.shape[1])}
    populated = [k for k, m in members.items() if m.size >= 2]
    empty = (np.zeros(0, np.int64),) * 3 + (np.zeros(0, np.float32),) * 2
    if len(populated) < 2 or n_triplets == 0:
        return empty
    anchor_pool = np.concatenate([members[k] for k in populated])
    anchors = rng.choice(anchor_pool, size=n_triplets, replace=True)
    ks = hard[anchors]
    pos = np.empty(n_triplets, dtype=np.int64)
    neg = np.empty(n_triplets, dtype=np.int64)
    all_valid = np.flatnonzero(ok)
    for k in np.unique(ks):
        sel = np.flatnonzero(ks == k)
        m = members[k]
        w = proba[m, k]
        w = w / w.sum() if w.sum() > 0 else None
        pos[sel] = rng.choice(m, size=sel.size, replace=True, p=w)
        others = all_valid[hard[all_valid] != k]
        wn = proba[others, k]
        wn = wn + (wn.mean() if wn.mean() > 0 else 1.0)
        neg[sel] = rng.choice(others, size=sel.size, replace=True, p=wn / wn.sum())
    # the positive should differ from the anchor when the component allows it
    same = pos == anchors
    if same.any():
        for t in np.flatnonzero(same):
            m = members[ks[t]]
            pos[t] = m[(np.searchsorted(m, anchors[t]) + 1) % m.size]
    p_pos = proba[pos, ks].astype(np.float32)
    p_neg = proba[neg, ks].astype(np.float32)
    return anchors.astype(np.int64), pos, neg, p_pos, p_neg


def probabilistic_triplet_loss(
    z_anchor: torch.Tensor,
    z_pos: torch.Tensor,
    z_neg: torch.Tensor,
    p_pos: torch.Tensor,
    p_neg: torch.Tensor,
    margin: float = 1.0,
    normalize: bool = False,
    negative_weight: str = "printed",
) -> torch.Tensor:
    """Mean probabilistic triplet loss ``L_c`` (eq. 4-9) of eq. 4-7 with the hinge ``max(0, .)``.

    ``l_c = max(0, p_{p,k} ||z_i - z_p|| - p_{n,k} ||z_i - z_n|| + margin)`` (distances eq. 4-6).
    The hinge is our addition: eq. 4-7 as printed has none.

    ``normalize=True`` measures the distances between unit-length codes ``z / ||z||``. Our
    addition too: with raw codes the loss can be lowered by shrinking every code (the decoder
    undoes the scale), and since confident negatives have ``p_{n,k}`` near 0 the printed loss is
    mostly a pull term, so raw codes shrink towards a collapse. DERC uses it by default.

    ``negative_weight``: ``"printed"`` weights ``d_{i,n}`` by ``p_{n,k}`` as eq. 4-7 prints it;
    ``"complement"`` weights it by ``1 - p_{n,k}``, the probability that the negative lies *outside*
    the anchor's component. With the printed weight a confident negative (``p_{n,k}`` ~ 0) pushes
    nothing, the loss is a pure pull, and on our runs the codes collapsed to one point (every
    distance 0, loss stuck at the margin) within one round; the complement keeps the push of a
    standard triplet loss and reduces to it for hard assignments. DERC uses ``"complement"`` by
    default (an interpretation, documented in docs/clustering.md).
    """
    if not (z_anchor.shape == z_pos.shape == z_neg.shape) or z_anchor.dim() != 2:
        raise ValueError(
            "z_anchor, z_pos and z_neg must be (B, D) tensors of the same shape, got "
            f"{tuple(z_anchor.shape)}, {tuple(z_pos.shape)}, {tuple(z_neg.shape)}"
        )
    if p_pos.shape != (z_anchor.shape[0],) or p_neg.shape != (z_anchor.shape[0],):
        raise ValueError("p_pos and p_neg must be (B,) tensors matching the batch of codes")
    if z_anchor.shape[0] == 0:
        return z_anchor.sum() * 0.0
    if normalize:
        z_anchor = torch.nn.functional.normalize(z_anchor, dim=1)
        z_pos = torch.nn.functional.normalize(z_pos, dim=1)
        z_neg = torch.nn.functional.normalize(z_neg, dim=1)
    eps = 1e-12  # keeps the gradient of the norm finite when two codes coincide
    d_pos = torch.sqrt(((z_anchor - z_pos) ** 2).sum(dim=1) + eps)
    d_neg = torch.sqrt(((z_anchor - z_neg) ** 2).sum(dim=1) + eps)
    if negative_weight == "printed":
        w_neg = p_neg
    elif negative_weight == "complement":
        w_neg = 1.0 - p_neg
    else:
        raise ValueError(f"negative_weight must be 'printed' or 'complement', got {negative_weight!r}")
    return torch.clamp(p_pos * d_pos - w_neg * d_neg + margin, min=0.0).mean()
