"""DERC's data-dependent default: the rules of fe_fast.clustering.auto.resolve (a pure function),
their use by DERC.fit (params_used_, get_params unchanged), the frozen thesis preset."""
import numpy as np
import pytest
from sklearn.base import clone

from fe_fast.clustering import DAE, DERC
from fe_fast.clustering import auto
from fe_fast.clustering.presets import PRESETS
from fe_fast.datasets.digits import load_digits_8x8

FROZEN_THESIS = PRESETS["thesis"]  # (tests/clustering/test_estimator.py compares it with a literal copy)


def _defaults():
    return DERC().get_params()


def test_every_auto_default_is_resolved_and_only_those():
    params = _defaults()
    autos = {k for k, v in params.items() if isinstance(v, str) and v == "auto"}
    assert autos == set(auto.AUTO_PARAMS)
    before = dict(params)
    used = auto.resolve(params, 300, (1, 28, 28), 30)
    assert params == before  # the input is not modified
    assert set(used) == set(params)
    assert not [k for k, v in used.items() if isinstance(v, str) and v == "auto"]
    assert {k: used[k] for k in params if k not in autos} == {k: params[k] for k in params if k not in autos}


def test_small_set_rules():
    """A few hundred images, ten per cluster."""
    used = auto.resolve(_defaults(), 300, (1, 28, 28), 30)
    assert used["batch_size"] == 16
    steps = int(np.ceil(0.9 * 300 / 16))
    assert used["stage1_epochs"] == min(300, int(np.ceil(auto.STAGE1_STEPS / steps)))
    assert used["validation_fraction"] == 0.1
    assert used["patience"] == max(3, used["stage1_epochs"] // 10) == 8  # 89 epochs at most
    assert used["n_neighbors"] == 5  # round(10 / 4) -> at least 5
    assert used["reducer"] == "umap"
    assert used["n_maps"] == 3 and used["n_autoencoders"] == 1 and used["stage2_rounds"] == 2
    assert used["round_consensus"] is True
    assert used["augment_shift"] == 0.1 and used["augment_rotation"] == 10.0
    # 10 images per cluster in a 2-D map: diagonal; full from 100 per cluster
    assert used["covariance_type"] == "diag"
    assert auto.resolve(_defaults(), 1000, (1, 28, 28), 10)["covariance_type"] == "full"
    assert auto.resolve(_defaults(), 990, (1, 28, 28), 10)["covariance_type"] == "diag"
    # the codes themselves (reducer "none", 128-D): 8,256 parameters per full covariance
    assert auto.resolve(dict(_defaults(), reducer="none"), 5000, (1, 28, 28), 10)["covariance_type"] == "diag"
    # an ensemble's fused codes are n_autoencoders times wider: 4-D codes need 10 x 100 per cluster
    # (full), 3 x 4 = 12-D fused codes 78 x 100 (diag at 1,000 per cluster)
    small_codes = dict(_defaults(), reducer="none", latent_dim=4)
    assert auto.resolve(dict(small_codes, n_autoencoders=1), 10000, (1, 28, 28), 10)["covariance_type"] == "full"
    assert auto.resolve(dict(small_codes, n_autoencoders=3), 10000, (1, 28, 28), 10)["covariance_type"] == "diag"
    assert auto.resolve(small_codes, 10000, (1, 28, 28), 10)["covariance_type"] == "diag"  # auto: 3 from 5,000


def test_large_set_rules():
    full = auto.resolve(_defaults(), 10000, (1, 28, 28), 10)  # MNIST-test: the full sets' ensemble
    assert full["stage1_epochs"] == 11 and full["triplets_per_round"] is None
    assert (full["n_maps"], full["n_autoencoders"], full["stage2_rounds"]) == (5, 3, 3)
    used = auto.resolve(_defaults(), 70000, (1, 28, 28), 10)  # from LARGE_N on
    assert used["batch_size"] == 64
    assert used["stage1_epochs"] == 2  # STAGE1_STEPS / 985 steps per epoch, no 10-epoch floor
    assert used["n_neighbors"] == 20
    assert used["n_maps"] == 3 and used["n_autoencoders"] == 1 and used["stage2_rounds"] == 2
    assert used["triplets_per_round"] == auto.LARGE_TRIPLETS
    assert used["covariance_type"] == "full"
    # neighbourhood grows with the cluster size m, within [5, 10] below MID_NN_PER_CLUSTER, [5, 20] from it on
    nn = [auto.resolve(_defaults(), n, (1, 16, 16), 10)["n_neighbors"] for n in (20, 100, 400, 600, 1500, 1999)]
    assert nn == [5, 5, 10, 10, 10, 10]
    big = [auto.resolve(_defaults(), n, (1, 16, 16), 10)["n_neighbors"] for n in (2000, 2500, 4999, 10000)]
    assert big == [20, 20, 20, 20]
    few = [auto.resolve(_defaults(), 5000, (1, 16, 16), k)["n_neighbors"] for k in (1000, 200, 30)]
    assert few == [5, 6, 10]
    # between SMALL_N and ENSEMBLE_N: batches of 64, but one autoencoder, 3 maps, 10 neighbours
    mid = auto.resolve(_defaults(), 1797, (1, 16, 16), 10)
    assert (mid["batch_size"], mid["n_autoencoders"], mid["n_maps"], mid["stage2_rounds"]) == (64, 1, 3, 2)
    assert (mid["n_neighbors"], mid["covariance_type"]) == (10, "full")
    # no hold-out below MIN_HELD_OUT held-out images
    assert auto.resolve(_defaults(), 50, (1, 8, 8), 5)["validation_fraction"] == 0.0


@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 9, 64), (1, 64, 9), (1, 4, 4)])
def test_tiny_images_no_jitter_no_stage_2(shape):
    """Below TINY_SIDE pixels a side, 0.1 of the side is under a pixel: no jitter, no stage 2, a
    patience of a quarter of the epoch bound, 3 autoencoders below LARGE_N images; the other rules
    as for larger images."""
    for n in (300, 1797, 10000, 30000):
        tiny = auto.resolve(_defaults(), n, shape, 10)
        big = auto.resolve(_defaults(), n, (1, 28, 28), 10)
        assert (tiny["augment_shift"], tiny["augment_rotation"], tiny["stage2_rounds"]) == (0.0, 0.0, 0)
        assert (big["augment_shift"], big["augment_rotation"]) == (0.1, 10.0) and big["stage2_rounds"] > 0
        assert tiny["patience"] == max(3, tiny["stage1_epochs"] // 4) and big["patience"] == max(3, big["stage1_epochs"] // 10)
        assert tiny["n_autoencoders"] == (1 if n >= auto.LARGE_N else 3) and big["n_autoencoders"] == (3 if auto.ENSEMBLE_N <= n < auto.LARGE_N else 1)
        own = ("augment_shift", "augment_rotation", "stage2_rounds", "patience", "n_autoencoders")
        assert {k: v for k, v in tiny.items() if k not in own} == {k: v for k, v in big.items() if k not in own}
    assert auto.resolve(_defaults(), 1797, (1, auto.TINY_SIDE, 64), 10)["augment_shift"] == 0.1
    # the measured case: 1,500 images at 8x8 -> 69 epochs at most, patience 17 (a tenth: 6)
    used = auto.resolve(_defaults(), 1500, (1, 8, 8), 10)
    assert (used["stage1_epochs"], used["patience"]) == (69, 17)
    # explicit values still win
    given = auto.resolve(dict(_defaults(), stage2_rounds=2, augment_shift=0.05), 1797, (1, 8, 8), 10)
    assert (given["stage2_rounds"], given["augment_shift"], given["augment_rotation"]) == (2, 0.05, 0.0)


def test_mirror_rule_only_for_tiny_mirror_symmetric_collections():
    for shape, symmetric, want in [((1, 8, 8), True, True), ((1, 8, 8), False, False),
                                   ((1, 28, 28), True, False), ((3, 9, 64), True, True)]:
        assert auto.resolve(_defaults(), 1500, shape, 10, mirror_symmetric=symmetric)["mirror"] is want
    assert auto.resolve(_defaults(), 1500, (1, 8, 8), 10)["mirror"] is False  # not measured: off
    given = dict(_defaults(), mirror=False)
    assert auto.resolve(given, 1500, (1, 8, 8), 10, mirror_symmetric=True)["mirror"] is False
    given = dict(_defaults(), mirror=True)
    assert auto.resolve(given, 1500, (1, 28, 28), 10)["mirror"] is True


def test_mirror_ratio_tells_faces_from_digits():
    """Toy faces (development seed, 8x8 block averages) are mirror-symmetric, digits are not; an
    image set with every mirror image in it is perfectly so."""
    import torch

    from fe_fast.datasets.face_identities import identity_set

    digits, _ = load_digits_8x8()
    digits = digits.reshape(-1, 1, 8, 8)
    faces, _ = identity_set(10, 20, size=64, seed=11)
    faces = torch.nn.functional.adaptive_avg_pool2d(torch.from_numpy(faces[:, None] / 255.0), 8).numpy()
    r_digits, r_faces = auto.mirror_ratio(digits), auto.mirror_ratio(faces)
    print(f"mirror_ratio: digits {r_digits:.3f}, faces {r_faces:.3f}")
    assert r_digits > auto.MIRROR_RATIO >= r_faces
    assert auto.mirror_ratio(np.concatenate([digits[:300], digits[:300, ..., ::-1]])) == 0.0
    # more than MIRROR_SAMPLE images: a fixed subsample, the same value every call
    noisy = np.concatenate([digits, digits + np.random.default_rng(0).normal(0, 0.5, digits.shape)])
    assert auto.mirror_ratio(noisy) == auto.mirror_ratio(noisy) > auto.MIRROR_RATIO
    with pytest.raises(ValueError, match="mirror_ratio"):
        auto.mirror_ratio(digits[:2])


def test_explicit_values_win_and_dae_keys():
    given = dict(_defaults(), reducer="none", batch_size=100, n_neighbors=7)
    used = auto.resolve(given, 300, (3, 64, 64), 30)
    assert used["reducer"] == "none" and used["batch_size"] == 100 and used["n_neighbors"] == 7
    assert used["n_maps"] == 1 and used["covariance_type"] == "diag"  # no map to combine; 128-D codes
    assert used["stage1_epochs"] == 300  # 270 images, batch 100: 3 steps an epoch, the upper bound
    dae = DAE().get_params()
    assert "stage2_rounds" not in auto.resolve(dae, 300, (1, 8, 8), 10)
    assert auto.resolve(FROZEN_THESIS, 300, (1, 8, 8), 10) == FROZEN_THESIS


@pytest.mark.parametrize("args", [(0, (1, 8, 8), 2), (10, (1, 8, 8), 0), (10, (8, 8), 2)])
def test_resolve_rejects_bad_sizes(args):
    with pytest.raises(ValueError):
        auto.resolve(_defaults(), *args)


def test_default_fit_records_params_used_and_keeps_auto_params():
    """A default DERC on 100 tiny images runs; the resolved values are recorded, the parameters are
    still "auto" afterwards, and clone / get_params / set_params round-trip them."""
    X, y = load_digits_8x8()
    X, y = X[:100], y[:100]
    m = DERC(3, stage1_epochs=3, n_maps=1, stage2_rounds=1, random_state=0)
    m.fit(X, y)
    used = m.params_used_
    assert m.get_params()["reducer"] == "auto" and m.get_params()["stage1_epochs"] == 3
    assert used["reducer"] == "umap" and used["stage1_epochs"] == 3 and used["patience"] == 3
    assert used["batch_size"] == 16 and used["validation_fraction"] == 0.1 and used["n_neighbors"] == 8
    assert not [k for k, v in used.items() if isinstance(v, str) and v == "auto"]
    # digits are not mirror-symmetric: measured (tiny images) and off
    assert m.history_["mirror_ratio"] > auto.MIRROR_RATIO and used["mirror"] is False
    assert m.labels_.shape == (100,) and m.reduced_.shape == (100, 2)
    # the held-out early stop watched 10 held-out images, one loss per epoch
    assert len(m.history_["stage1_held_out_loss"]) == m.history_["stage1_epochs"] <= 3
    c = clone(m)
    assert c.get_params() == m.get_params() and not hasattr(c, "params_used_")
    c.set_params(reducer="none", covariance_type="diag")
    assert c.get_params()["reducer"] == "none" and c.get_params()["covariance_type"] == "diag"
    assert c.set_params(reducer="auto").get_params()["reducer"] == "auto"


def test_thesis_preset_fit_uses_no_auto_rule():
    X, _ = load_digits_8x8()
    params = dict(PRESETS["thesis"], stage1_epochs=1, stage2_rounds=0, reducer="none", gmm_n_init=1)
    m = DERC(3, random_state=1, **params).fit(X[:40])
    assert {k: m.params_used_[k] for k in params} == params
    assert m.history_["stage1_held_out_loss"] == []


@pytest.mark.parametrize("bad, match", [
    (dict(covariance_type="tied"), "covariance_type"), (dict(n_neighbors=1), "n_neighbors"),
    (dict(validation_fraction=0.7), "validation_fraction"), (dict(patience=0), "patience"),
    (dict(stage1_epochs="many"), "stage1_epochs"), (dict(mirror="yes"), "mirror"),
])
def test_bad_values_are_named(bad, match):
    X, _ = load_digits_8x8()
    with pytest.raises(ValueError, match=match):
        DERC(3, **bad).fit(X[:30])
