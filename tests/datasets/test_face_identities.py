"""Toy-face identity clustering sets (fe_fast.datasets.face_identities)."""
import numpy as np
import pytest

from fe_fast.datasets.face_identities import VALIDATION_SEEDS, identity_set


def test_identity_set_shapes_counts_and_determinism():
    X, y = identity_set(4, 3, size=32, seed=7)
    assert X.shape == (12, 32, 32) and X.dtype == np.uint8
    assert y.dtype == np.int64 and np.bincount(y).tolist() == [3, 3, 3, 3]
    X2, y2 = identity_set(4, 3, size=32, seed=7)
    np.testing.assert_array_equal(X, X2)
    np.testing.assert_array_equal(y, y2)
    Xc, yc = identity_set(4, 3, size=32, seed=7, grayscale=False)
    assert Xc.shape == (12, 32, 32, 3)
    np.testing.assert_array_equal(yc, y)
    # the grey image is the luma of the colour one
    luma = np.rint(Xc.astype(float) @ np.array([0.299, 0.587, 0.114]))
    assert np.abs(luma - X).max() <= 1
    assert not np.array_equal(identity_set(4, 3, size=32, seed=8)[0], X)


def test_images_of_one_identity_differ_and_hair_style_changes():
    """Pose, light, expression and background change per image: no two images of an identity are
    the same; with hair_change=1 every image has its fringe toggled, so the images differ from
    hair_change=0's although identity and the other factors are the same draws."""
    X, y = identity_set(3, 4, size=32, seed=3)
    for k in range(3):
        imgs = X[y == k].astype(int)
        assert all(np.abs(imgs[i] - imgs[j]).mean() > 1 for i in range(4) for j in range(i + 1, 4))
    a, _ = identity_set(3, 4, size=32, seed=3, hair_change=0.0)
    b, _ = identity_set(3, 4, size=32, seed=3, hair_change=1.0)
    assert all(not np.array_equal(a[i], b[i]) for i in range(12))


def test_validation_seeds_and_bad_arguments():
    assert 5000 in VALIDATION_SEEDS and 4999 not in VALIDATION_SEEDS
    for bad in (dict(n_identities=1), dict(per_identity=0), dict(hair_change=1.5), dict(size=8),
                dict(n_identities=2.5)):
        with pytest.raises(ValueError):
            identity_set(**dict(dict(n_identities=2, per_identity=2, size=32), **bad))
