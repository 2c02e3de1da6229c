"""Clustering metrics of thesis section 4.4.1: accuracy (eq. 4-12) and NMI (eq. 4-13).

Both accept arbitrary label values (ints, strings, negative DBSCAN noise labels, ...) and
unequal numbers of clusters and classes.
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

__all__ = ["clustering_accuracy", "nmi", "contingency"]


def _as_labels(name: str, a) -> np.ndarray:
    arr = np.asarray(a)
    if arr.ndim != 1:
        arr = arr.reshape(-1) if arr.ndim == 2 and 1 in arr.shape else arr
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array of labels, got shape {np.shape(a)}")
    if arr.size == 0:
        raise ValueError(f"{name}: expected at least one label, got an empty array")
    return arr


def contingency(labels_true, labels_pred) -> np.ndarray:
    """Contingency table ``n[c, y]``: how many samples of class ``c`` fall in cluster ``y``.

    Rows follow ``np.unique(labels_true)``, columns ``np.unique(labels_pred)``.
    """
    t = _as_labels("labels_true", labels_true)
    p = _as_labels("labels_pred", labels_pred)
    if t.shape[0] != p.shape[0]:
        raise ValueError(
            f"labels_true and labels_pred must have the same length, got {t.shape[0]} and {p.shape[0]}"
        )
    _, ti = np.unique(t, return_inverse=True)
    _, pi = np.unique(p, return_inverse=True)
    table = np.zeros((ti.max() + 1, pi.max() + 1), dtype=np.int64)
    np.add.at(table, (ti.ravel(), pi.ravel()), 1)
    return table


def clustering_accuracy(labels_true, labels_pred) -> float:
    """Clustering accuracy, thesis eq. 4-12: ``ACC = 1/N sum_i 1[c_i = g(y_i)]``.

    ``g`` is the best one-to-one mapping between clusters and classes, found with the Hungarian
    algorithm (``scipy.optimize.linear_sum_assignment``) on the contingency table. With more
    clusters than classes (or the reverse) the surplus clusters/classes stay unmatched and count
    as errors, so ACC is 1 only for a perfect one-to-one partition.
    """
    table = contingency(labels_true, labels_pred)
    rows, cols = linear_sum_assignment(table, maximize=True)
    return float(table[rows, cols].sum() / table.sum())


def _entropy(counts: np.ndarray) -> float:
    p = counts[counts > 0].astype(np.float64)
    p /= p.sum()
    return float(-(p * np.log(p)).sum())


def nmi(labels_true, labels_pred) -> float:
    """Normalised mutual information, thesis eq. 4-13: ``NMI = 2 I(Y; C) / (H(Y) + H(C))``.

    Natural logarithms (the ratio does not depend on the base). When both partitions have a single
    group (H(Y) = H(C) = 0) they are identical and NMI is 1; when only one of them has a single
    group, I = 0 and NMI is 0. Equals scikit-learn's ``normalized_mutual_info_score`` with the
    default arithmetic normalisation.
    """
    table = contingency(labels_true, labels_pred).astype(np.float64)
    n = table.sum()
    h_c = _entropy(table.sum(axis=1))
    h_y = _entropy(table.sum(axis=0))
    if h_c == 0.0 and h_y == 0.0:
        return 1.0
    pij = table / n
    pi = pij.sum(axis=1, keepdims=True)
    pj = pij.sum(axis=0, keepdims=True)
    nz = pij > 0
    mi = float((pij[nz] * np.log(pij[nz] / (pi @ pj)[nz])).sum())
    mi = max(mi, 0.0)
    return float(min(1.0, 2.0 * mi / (h_c + h_y)))
