"""Consensus of several soft clusterings of the same samples (an option of DERC, not in the thesis).

DERC's first clustering rests on one 2-D map of the stage-1 codes, and maps of the same codes made
with other random seeds merge different pairs of close classes. Combining
the mixtures of several maps keeps the grouping most maps agree on:

1. k-means on the concatenated responsibilities ``[P_1 | ... | P_M]`` (N x M*K): two samples land
   together when most maps put them in the same component (evidence accumulation without the
   N x N co-association matrix);
2. each map's components are matched to the consensus clusters (Hungarian assignment on the
   contingency table) and the matched responsibilities are averaged, so the result is again a
   responsibility matrix that eq. 4-9's triplet sampling can use.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np


def consensus_responsibilities(probas: Sequence[np.ndarray], n_clusters: int, seed: int = 0) -> np.ndarray:
    """Combine M responsibility matrices (each N x K, rows sum to 1) into one N x K matrix.

    Returns the averaged responsibilities after matching every map's components to the
    consensus clusters; ``argmax(1)`` gives the consensus labels. With one matrix it is returned
    unchanged.
    """
    from scipy.optimize import linear_sum_assignment
    from sklearn.cluster import KMeans

    if len(probas) == 0:
        raise ValueError("consensus_responsibilities needs at least one responsibility matrix")
    n = probas[0].shape[0]
    for P in probas:
        if P.ndim != 2 or P.shape != (n, n_clusters):
            raise ValueError(f"every responsibility matrix must be ({n}, {n_clusters}), got {P.shape}")
    if len(probas) == 1:
        return np.asarray(probas[0], dtype=np.float64)
    H = np.concatenate([np.asarray(P, dtype=np.float64) for P in probas], axis=1)
    consensus = KMeans(n_clusters, n_init=10, random_state=seed).fit_predict(H)
    onehot = np.eye(n_clusters)[consensus]  # N x K
    out = np.zeros((n, n_clusters))
    for P in probas:
        overlap = P.T @ onehot  # component j of this map vs consensus cluster c (soft counts)
        comp, clus = linear_sum_assignment(-overlap)
        aligned = np.empty_like(P)
        aligned[:, clus] = P[:, comp]
        out += aligned
    return out / len(probas)
