"""ACC (thesis eq. 4-12) and NMI (eq. 4-13) against hand-computed cases."""
import math

import numpy as np
import pytest

from fe_fast.clustering.metrics import clustering_accuracy, contingency, nmi


def test_permuted_labels_are_perfect():
    y = np.array([0, 0, 1, 1, 2, 2, 2])
    pred = np.array([5, 5, 9, 9, 1, 1, 1])  # arbitrary relabelling
    assert clustering_accuracy(y, pred) == 1.0
    assert nmi(y, pred) == pytest.approx(1.0)


def test_string_labels_and_lists():
    y = ["cat", "cat", "dog", "dog"]
    pred = [1, 1, 0, 0]
    assert clustering_accuracy(y, pred) == 1.0
    assert nmi(y, pred) == pytest.approx(1.0)


def test_known_confusion_matrix():
    # classes a (4 samples), b (4 samples); clusters: a -> 3 in X, 1 in Y; b -> 1 in X, 3 in Y
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    pred = np.array([7, 7, 7, 3, 7, 3, 3, 3])
    assert contingency(y, pred).tolist() == [[1, 3], [3, 1]]  # columns sorted: 3, 7
    assert clustering_accuracy(y, pred) == pytest.approx(6 / 8)
    # hand computation: H(Y) = H(C) = ln 2; I = sum p_ij ln(p_ij / (p_i p_j))
    i = 2 * (3 / 8) * math.log((3 / 8) / 0.25) + 2 * (1 / 8) * math.log((1 / 8) / 0.25)
    assert nmi(y, pred) == pytest.approx(2 * i / (2 * math.log(2)))


def test_unequal_cluster_and_class_counts():
    y = np.array([0, 0, 0, 1, 1, 1])
    pred = np.array([0, 0, 1, 2, 2, 2])  # 3 clusters for 2 classes
    # best one-to-one map: 0->0 (2), 2->1 (3): 5/6; cluster 1 stays unmatched
    assert clustering_accuracy(y, pred) == pytest.approx(5 / 6)
    pred2 = np.zeros(6, dtype=int)  # 1 cluster for 2 classes
    assert clustering_accuracy(y, pred2) == pytest.approx(0.5)
    assert nmi(y, pred2) == pytest.approx(0.0)


def test_nmi_matches_sklearn_on_random_labels():
    from sklearn.metrics import normalized_mutual_info_score

    rng = np.random.default_rng(0)
    y = rng.integers(0, 5, 300)
    pred = rng.integers(-1, 7, 300)
    assert nmi(y, pred) == pytest.approx(normalized_mutual_info_score(y, pred), abs=1e-10)


def test_single_group_each_side():
    assert nmi([1, 1, 1], [4, 4, 4]) == 1.0
    assert clustering_accuracy([1, 1, 1], [4, 4, 4]) == 1.0


@pytest.mark.parametrize("fn", [clustering_accuracy, nmi])
def test_bad_input(fn):
    with pytest.raises(ValueError, match="same length"):
        fn([0, 1, 2], [0, 1])
    with pytest.raises(ValueError, match="empty"):
        fn([], [])
