"""DERC and DAE as scikit-learn estimators: clone, get_params / set_params, Pipeline, the deprecated
aliases, the per-stage timings, the thesis preset, and a chosen subset of sklearn's estimator checks.
Every fit here is tiny (<= 150 8x8 images, 1 epoch, latent_dim <= 8)."""
import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils import estimator_checks as ec

from fe_fast.clustering import DAE, DERC
from fe_fast.clustering.presets import PRESETS, derc_params
from fe_fast.datasets.digits import load_digits_8x8

TINY = dict(stage1_epochs=1, stage2_rounds=1, batch_size=64, latent_dim=8, reducer="none", gmm_n_init=1)
# the thesis preset written out once more: a change to presets.py must change this copy too
FROZEN_THESIS = dict(
    latent_dim=128, alpha=0.1, margin=0.5, stage1_epochs=100, stage2_rounds=5, stage2_tol=0.0,
    round_consensus=False, triplets_per_round=None, reducer="tsne", clusterer="gmm", n_maps=1,
    n_autoencoders=1, batch_size=64, lr=1e-3, betas=(0.9, 0.99), patience=3, tol=1e-3,
    perplexity=30.0, gmm_n_init=3, channels=(2, 16, 32, 128, 256, 32), normalize_codes=True,
    negative_weight="complement", augment_shift=0.0, augment_rotation=0.0, n_neighbors=20,
    covariance_type="full", validation_fraction=0.0, mirror=False,
)


@pytest.fixture(scope="module")
def tiny():
    X, y = load_digits_8x8()
    keep = np.flatnonzero(y < 3)[:120]
    return X[keep], y[keep]


def test_params_stored_unchanged_and_validated_in_fit(tiny):
    X, _ = tiny
    channels = [2, 16, 32, 128, 256, 32]  # a list stays the very same object (no tuple() in __init__)
    m = DERC(3, channels=channels, reducer="pca", stage2_tol=5.0)
    assert m.channels is channels and m.reducer == "pca" and m.stage2_tol == 5.0
    with pytest.raises(ValueError, match="reducer"):
        m.fit(X)
    assert not hasattr(m, "labels_")


@pytest.mark.parametrize("cls", [DERC, DAE])
def test_get_set_params_round_trip_and_clone(cls):
    m = cls(4, **{k: v for k, v in TINY.items() if not (cls is DAE and k == "stage2_rounds")})
    params = m.get_params()
    assert params["n_clusters"] == 4 and params["latent_dim"] == 8
    assert ("stage2_rounds" in params) == (cls is DERC)
    again = cls(**params)
    assert again.get_params() == params
    c = clone(m)
    assert c is not m and type(c) is cls and c.get_params() == params
    assert m.set_params(latent_dim=16, random_state=9) is m
    assert m.get_params()["latent_dim"] == 16 and m.random_state == 9
    assert clone(m).get_params() == m.get_params()
    with pytest.raises(ValueError, match="Invalid parameter"):
        m.set_params(no_such_param=1)
    assert "n_clusters=4" in repr(m)


def test_dae_has_no_stage2_parameter(tiny):
    X, y = tiny
    assert "stage2_rounds" not in DAE().get_params() and DAE().reducer == "none"
    with pytest.raises(ValueError, match="Invalid parameter"):
        DAE(3).set_params(stage2_rounds=2)
    with pytest.warns(UserWarning, match="stage2_rounds is ignored"):
        m = DAE(3, stage2_rounds=4, stage1_epochs=1, latent_dim=4)
    assert m.stage2_rounds == 0


def test_clone_of_a_fitted_model_is_unfitted_and_refits_the_same(tiny):
    X, _ = tiny
    m = DERC(3, random_state=2, **TINY).fit(X)
    c = clone(m)
    assert not hasattr(c, "labels_") and not hasattr(c, "model_")
    np.testing.assert_array_equal(c.fit_predict(X), m.labels_)


def test_pipeline_reshape_then_derc(tiny):
    """A preprocessing step (flat rows of 0..16 pixels -> (N, 8, 8) images in [0, 1]) then DERC."""
    X, y = tiny
    flat = (X.reshape(len(X), -1) / 255.0 * 16.0).astype(np.float64)  # scikit-learn digits' own range
    to_images = FunctionTransformer(lambda A: np.asarray(A).reshape(-1, 8, 8) / 16.0)
    pipe = Pipeline([("images", to_images), ("derc", DERC(3, random_state=1, **TINY))])
    labels = pipe.fit_predict(flat)
    assert labels.shape == (len(X),) and set(np.unique(labels)) <= {0, 1, 2}
    direct = DERC(3, random_state=1, **TINY).fit(flat.reshape(-1, 8, 8) / 16.0)
    np.testing.assert_array_equal(labels, direct.labels_)
    # parameters of the step through the pipeline, and a clone of the whole pipeline
    pipe.set_params(derc__stage2_rounds=0)
    assert pipe.named_steps["derc"].stage2_rounds == 0
    p2 = clone(pipe)
    assert p2.get_params()["derc__stage2_rounds"] == 0 and not hasattr(p2.named_steps["derc"], "labels_")
    assert len(p2.fit(flat).named_steps["derc"].history_["rounds"]) == 0


def test_fit_keeps_params_and_adds_only_trailing_underscore_attributes(tiny):
    """What sklearn's check_dont_overwrite_parameters / check_estimators_overwrite_params test,
    on image data (their own data are 2-3 feature blobs, not images)."""
    X, y = tiny
    m = DERC(3, random_state=4, **TINY)
    before = dict(vars(m))
    params = m.get_params()
    m.fit(X, y)
    assert m.get_params() == params
    added = set(vars(m)) - set(before)
    public = {a for a in added if not a.startswith("_")}
    assert public and all(a.endswith("_") for a in public), public
    for a in ("labels_", "embedding_", "reduced_", "proba_", "model_", "history_", "stage_seconds_",
              "image_shape_", "n_features_in_", "random_state_"):
        assert a in public
    assert m.n_features_in_ == 64 and m.image_shape_ == (1, 8, 8) and m.random_state_ == 4


def test_stage_seconds(tiny):
    X, _ = tiny
    m = DERC(3, random_state=0, **dict(TINY, reducer="tsne", n_maps=2, round_consensus=True)).fit(X)
    st = m.stage_seconds_
    assert {"prepare", "autoencoder", "embedding", "reducer", "mixture", "consensus", "triplet_training",
            "total"} <= set(st)
    assert all(v >= 0 for v in st.values())
    parts = sum(v for k, v in st.items() if k != "total")
    assert parts <= st["total"] + 1e-6  # the stages are disjoint: no time is counted twice
    d = DERC(3, **TINY, round_consensus=False, n_autoencoders=1, random_state=0).fit(X)
    assert "consensus" not in d.stage_seconds_ and "reducer" in d.stage_seconds_


def test_random_state_forms(tiny):
    X, _ = tiny
    a = DERC(3, random_state=np.random.RandomState(0), **TINY).fit(X)
    b = DERC(3, random_state=np.random.RandomState(0), **TINY).fit(X)
    assert a.random_state_ == b.random_state_
    np.testing.assert_array_equal(a.labels_, b.labels_)
    assert isinstance(DERC(3, random_state=None, **TINY).fit(X).random_state_, int)
    for bad in (-1, 1.5, "0"):
        with pytest.raises(ValueError, match="random_state"):
            DERC(3, random_state=bad, **TINY).fit(X)
    with pytest.raises(ValueError, match="verbose"):
        DERC(3, verbose="yes", **TINY).fit(X)


def test_deprecated_seed_and_progress_aliases(tiny):
    X, _ = tiny
    new = DERC(3, random_state=6, **TINY).fit(X)
    with pytest.warns(FutureWarning, match="'seed' is deprecated"):
        old = DERC(3, seed=6, **TINY).fit(X)
    np.testing.assert_array_equal(old.labels_, new.labels_)
    assert old.random_state_ == 6 and old.get_params()["seed"] == 6
    with pytest.warns(FutureWarning, match="'progress' is deprecated"):
        DERC(3, progress=False, **TINY).fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # neither alias set: no warning
        DERC(3, **TINY).fit(X)


def test_thesis_preset_is_frozen():
    """Changing the thesis preset is a decision: it is algorithm 4.1 as published, whatever DERC's
    (data-dependent) defaults are, so it names every parameter a default could change."""
    from fe_fast.clustering.auto import AUTO_PARAMS

    assert PRESETS["thesis"] == FROZEN_THESIS
    assert set(FROZEN_THESIS) >= set(AUTO_PARAMS)
    assert set(FROZEN_THESIS) <= set(DERC().get_params())
    assert derc_params("thesis", stage1_epochs=3, reducer=None)["stage1_epochs"] == 3
    assert derc_params("thesis", reducer=None)["reducer"] == "tsne"
    assert derc_params(None, alpha=0.2) == {"alpha": 0.2}
    with pytest.raises(ValueError, match="preset"):
        derc_params("fast")
    with pytest.raises(ValueError, match="not a DERC parameter"):
        derc_params(None, epochs=3)


# sklearn's own checks that need no fit: the others fit on 2-3 feature blobs (not images, which
# DERC rejects by design) or assume fit costs milliseconds (check_clustering fits ~10 times).
_CHECKS = [
    ec.check_no_attributes_set_in_init,
    ec.check_parameters_default_constructible,
    ec.check_get_params_invariance,
    ec.check_set_params,
    ec.check_estimator_cloneable,
    ec.check_estimator_repr,
    ec.check_do_not_raise_errors_in_init_or_set_params,
]


@pytest.mark.parametrize("cls", [DERC, DAE])
@pytest.mark.parametrize("check", _CHECKS, ids=lambda c: c.__name__)
def test_sklearn_estimator_checks(cls, check):
    est = cls(3, latent_dim=4, stage1_epochs=1)
    check(cls.__name__, est)
