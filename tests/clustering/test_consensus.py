"""Consensus of several soft clusterings (fe_fast.clustering.consensus, DERC's n_maps option)."""
import numpy as np
import pytest

from fe_fast.clustering import clustering_accuracy
from fe_fast.clustering.consensus import consensus_responsibilities


def _onehot(labels, k, smooth=0.0):
    P = np.eye(k)[labels] * (1 - smooth) + smooth / k
    return P


def test_permuted_copies_give_the_same_clustering():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 200)
    P = _onehot(y, 4, smooth=0.1)
    perms = [np.arange(4), np.array([2, 0, 3, 1]), np.array([3, 2, 1, 0])]
    out = consensus_responsibilities([P[:, p] for p in perms], 4, seed=0)
    assert out.shape == (200, 4)
    np.testing.assert_allclose(out.sum(1), 1.0)
    assert clustering_accuracy(y, out.argmax(1)) == 1.0
    # all maps agree, so the averaged matched responsibilities equal one map's, relabelled
    assert np.allclose(np.sort(out, 1), np.sort(P, 1))


def test_majority_of_maps_wins_over_a_merge():
    """Three classes; one map merges classes 1 and 2 (and splits class 0), two maps are right:
    the consensus follows the two."""
    y = np.repeat([0, 1, 2], 50)
    good = _onehot(y, 3, 0.05)
    merged_labels = y.copy()
    merged_labels[y == 2] = 1
    merged_labels[:25] = 2  # class 0 split in two
    bad = _onehot(merged_labels, 3, 0.05)
    for order in ([good, bad, good[:, [1, 2, 0]]], [bad, good, good]):
        out = consensus_responsibilities(order, 3, seed=1)
        assert clustering_accuracy(y, out.argmax(1)) == 1.0
    assert clustering_accuracy(y, bad.argmax(1)) < 0.7


def test_single_map_is_returned_and_bad_shapes_raise():
    P = _onehot(np.array([0, 1, 1, 0]), 2)
    assert np.array_equal(consensus_responsibilities([P], 2), P)
    with pytest.raises(ValueError, match="at least one"):
        consensus_responsibilities([], 2)
    with pytest.raises(ValueError, match=r"\(4, 2\)"):
        consensus_responsibilities([P, np.ones((3, 2)) / 2], 2)
