"""DERC (thesis algorithm 4.1): accuracy on scikit-learn's digits, determinism, bad input,
autoencoder geometry (Table 4-2) and the hinged probabilistic triplet loss (eq. 4-7)."""
import numpy as np
import pytest
import torch

from fe_fast.clustering import DAE, DERC, clustering_accuracy, nmi
from fe_fast.clustering.autoencoder import ConvAutoencoder, encoder_geometry
from fe_fast.clustering.derc import fuse_codes
from fe_fast.clustering.presets import PRESETS
from fe_fast.clustering.triplets import probabilistic_triplet_loss, sample_triplets
from fe_fast.datasets.digits import load_digits_8x8


@pytest.fixture(scope="module")
def digits():
    return load_digits_8x8()


def test_encoder_geometry_matches_table_4_2():
    pads, sizes = encoder_geometry(28, 28)
    assert pads == [1, 1, 1, 1, 0, 1]
    assert sizes[-1] == (3, 3)
    m = ConvAutoencoder(1, 28, 28)
    assert m.flat_dim == 288 and m.fc_enc.in_features == 288 and m.fc_enc.out_features == 128
    convs = [l for l in m.encoder_conv if isinstance(l, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [2, 16, 32, 128, 256, 32]
    assert [c.stride[0] for c in convs] == [1, 2, 1, 2, 2, 1]
    assert all(c.kernel_size == (3, 3) for c in convs)
    for hw in [(8, 8), (16, 16), (32, 32), (20, 13)]:
        ae = ConvAutoencoder(3, *hw, latent_dim=16)
        z, rec = ae(torch.rand(2, 3, *hw))
        assert z.shape == (2, 16) and rec.shape == (2, 3, *hw)
    with pytest.raises(ValueError):
        encoder_geometry(3, 10)


def _upsampled_digits_16(digits):
    X, _ = digits
    x = torch.from_numpy(np.asarray(X, dtype=np.float32).reshape(-1, 1, 8, 8) / 16.0)
    return torch.nn.functional.interpolate(x[:256], size=(16, 16), mode="bilinear", align_corners=False)


def test_decoder_learns_below_mean_image(digits):
    """A literal mirror of the 2-channel conv1 put a 2-channel ReLU layer before the output; on USPS
    it died within ten Adam steps and the decoder emitted a constant image. The decoder's hidden
    layers are now >= 16 channels, and a short training must beat the mean image by far."""
    from fe_fast.clustering import autoencoder

    x = _upsampled_digits_16(digits)
    baseline = float(((x - x.mean(0)) ** 2).flatten(1).sum(1).mean())
    torch.manual_seed(0)
    ae = autoencoder.ConvAutoencoder(1, 16, 16, latent_dim=32)
    widths = [l.out_channels for l in ae.decoder_conv if isinstance(l, torch.nn.Conv2d)]
    assert widths[-2] == 16 and min(widths[:-1]) >= 16 and widths[-1] == 1
    opt = torch.optim.Adam(ae.parameters(), lr=1e-3, betas=(0.9, 0.99))
    g = torch.Generator().manual_seed(0)
    for _ in range(8):
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), 32):
            xb = x[perm[i : i + 32]]
            loss = ((ae(xb)[1] - xb) ** 2).flatten(1).sum(1).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        final = float(((ae(x)[1] - x) ** 2).flatten(1).sum(1).mean())
    assert final < 0.6 * baseline, (final, baseline)


def test_triplet_loss_hinge_and_weights():
    za = torch.tensor([[0.0, 0.0], [0.0, 0.0]])
    zp = torch.tensor([[1.0, 0.0], [3.0, 0.0]])
    zn = torch.tensor([[0.0, 4.0], [0.0, 1.0]])
    pp = torch.tensor([1.0, 0.5])
    pn = torch.tensor([0.5, 1.0])
    # triplet 1: 1*1 - 0.5*4 + 0.5 = -0.5 -> hinge 0 ; triplet 2: 0.5*3 - 1*1 + 0.5 = 1.0
    loss = probabilistic_triplet_loss(za, zp, zn, pp, pn, margin=0.5)
    assert float(loss) == pytest.approx(0.5)


def test_sample_triplets_roles():
    rng = np.random.default_rng(0)
    proba = np.array([[0.9, 0.1], [0.8, 0.2], [0.7, 0.3], [0.2, 0.8], [0.1, 0.9], [0.4, 0.6]])
    a, p, n, pp, pn = sample_triplets(proba, 200, rng)
    hard = proba.argmax(1)
    assert (hard[a] == hard[p]).all() and (hard[a] != hard[n]).all() and (a != p).all()
    assert np.allclose(pp, proba[p, hard[a]]) and np.allclose(pn, proba[n, hard[a]])
    empty = sample_triplets(np.array([[1.0, 0.0]] * 4), 10, rng)
    assert empty[0].size == 0


def test_derc_beats_kmeans_on_digits(digits):
    """Short DERC run on the 1,797 8x8 digits: ACC well above k-means on the pixels (same seed)."""
    from sklearn.cluster import KMeans

    X, y = digits
    km = KMeans(10, n_init=10, random_state=0).fit_predict(X.reshape(len(X), -1).astype(float))
    acc_km = clustering_accuracy(y, km)
    model = DERC(10, **SHORT_CONFIG, random_state=0)
    labels = model.fit_predict(X)
    acc = clustering_accuracy(y, labels)
    print(f"k-means ACC {acc_km:.4f} NMI {nmi(y, km):.4f}; DERC ACC {acc:.4f} NMI {nmi(y, labels):.4f}")
    assert acc >= acc_km + 0.05
    assert labels.shape == (1797,) and model.embedding_.shape == (1797, 128)
    assert model.history_["stage1_epochs"] >= 1 and len(model.history_["rounds"]) == SHORT_CONFIG["stage2_rounds"]
    z = model.transform(X[:5])
    assert z.shape == (5, 128) and np.allclose(z, model.embedding_[:5], atol=1e-5)


# a small configuration that finishes in about a minute on one core (see docs/clustering.md)
# (the thesis's algorithm: these tests check its mechanisms, not the data-dependent default)
THESIS = PRESETS["thesis"]
SHORT_CONFIG = dict(THESIS, stage1_epochs=8, stage2_rounds=1, batch_size=32, gmm_n_init=2)


def _tiny(digits, n=150):
    X, y = digits
    return X[:n], y[:n]


@pytest.mark.parametrize("kwargs", [
    dict(reducer="tsne"), dict(reducer="none", clusterer="dbscan"), dict(reducer="umap", n_maps=2),
    dict(reducer="none", augment_shift=0.1, augment_rotation=10.0), dict(reducer="none", n_autoencoders=2),
])
def test_deterministic_with_seed(digits, kwargs):
    X, y = _tiny(digits)
    cfg = dict(THESIS, **dict(dict(stage1_epochs=1, stage2_rounds=1, batch_size=64, latent_dim=16), **kwargs))
    a = DERC(3, random_state=5, **cfg).fit(X)
    b = DERC(3, random_state=5, **cfg).fit(X)
    assert np.array_equal(a.labels_, b.labels_)
    assert np.array_equal(a.embedding_, b.embedding_)
    assert a.history_["stage1_loss"] == b.history_["stage1_loss"]


def test_mirror_codes_do_not_see_which_way_an_image_faces(digits):
    """``mirror=True``: the codes are the mean of an image's and its mirror image's codes, so an
    image and its mirror image get the same code; training draws the flips from the run's seed."""
    X, y = _tiny(digits)
    cfg = dict(THESIS, stage1_epochs=2, stage2_rounds=1, batch_size=64, latent_dim=16, reducer="none")
    m = DERC(3, random_state=2, **dict(cfg, mirror=True)).fit(X)
    Z, Zm = m.transform(X), m.transform(X[..., ::-1].copy())
    assert np.allclose(Z, Zm, atol=1e-5) and np.allclose(m.embedding_, Z, atol=1e-5)
    plain = DERC(3, random_state=2, **cfg).fit(X)  # the thesis: mirror=False
    assert not np.allclose(plain.transform(X), plain.transform(X[..., ::-1].copy()), atol=1e-3)
    assert m.history_["stage1_loss"] != plain.history_["stage1_loss"]  # trained on mirror images too
    again = DERC(3, random_state=2, **dict(cfg, mirror=True)).fit(X)
    assert np.array_equal(again.labels_, m.labels_) and "mirror_ratio" not in m.history_
    # "auto" on a tiny mirror-symmetric collection (every mirror image in it): on, and still on for
    # transform after fit, when the parameter reads "auto" again
    sym = np.concatenate([X[:60], X[:60, :, ::-1]])
    auto_on = DERC(3, random_state=2, **dict(cfg, mirror="auto")).fit(sym)
    assert auto_on.params_used_["mirror"] is True and auto_on.history_["mirror_ratio"] < 1e-3
    assert auto_on.get_params()["mirror"] == "auto"
    assert np.allclose(auto_on.transform(sym[:60]), auto_on.transform(sym[60:]), atol=1e-5)


def test_fuse_codes_scales_each_block_to_unit_mean_std():
    """fuse_codes: each block divided by its mean feature std, then concatenated in order."""
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(50, 3)) * 10.0, rng.normal(size=(50, 2)) * 0.01
    fused = fuse_codes([a, b])
    assert fused.shape == (50, 5)
    assert fused[:, :3].std(0).mean() == pytest.approx(1.0) and fused[:, 3:].std(0).mean() == pytest.approx(1.0)
    assert np.allclose(fused[:, :3] * a.std(0).mean(), a)


def test_autoencoder_ensemble_fuses_codes_in_the_first_clustering(digits):
    """n_autoencoders=3: autoencoder m is seeded with seed + 1000 m, and the first clustering is
    fitted on the three autoencoders' fused codes (fuse_codes; reducer "none" here); training it
    here or passing the three stage-1 models as init_from gives the same labels."""
    X, y = _tiny(digits, 200)
    cfg = dict(THESIS, stage1_epochs=2, batch_size=64, latent_dim=8, reducer="none", gmm_n_init=1)
    del cfg["stage2_rounds"], cfg["n_autoencoders"]
    daes = [DAE(4, random_state=7 + 1000 * m, n_autoencoders=1, **cfg).fit(X) for m in range(3)]
    ref = DERC(4, random_state=7, **cfg)  # the mixture settings the ensemble clusters the fused codes with
    fused = fuse_codes([d.transform(X) for d in daes])
    expected = ref._cluster(fused)[0]
    trained = DERC(4, random_state=7, stage2_rounds=0, n_autoencoders=3, **cfg).fit(X, y)
    loaded = DERC(4, random_state=7, stage2_rounds=0, n_autoencoders=3, **cfg).fit(X, y, init_from=daes)
    assert np.array_equal(trained.labels_, expected)
    assert np.array_equal(loaded.labels_, expected)
    # autoencoder 0 is the one kept, trained exactly as without the ensemble
    assert np.allclose(trained.embedding_, daes[0].embedding_)
    assert np.allclose(trained.reduced_, fused)  # no stage 2: the fused codes' clustering is the final one
    assert loaded.history_["stage1_init_seconds"] == pytest.approx(sum(d.history_["stage1_seconds"] for d in daes))
    # on these 200 images the fused clustering differs from model 0's own mixture, so the test sees it
    assert clustering_accuracy(expected, ref._cluster(daes[0].transform(X))[0]) < 0.9
    with pytest.raises(ValueError, match="2 fitted models given for n_autoencoders=3"):
        DERC(4, random_state=7, n_autoencoders=3, **cfg).fit(X, init_from=daes[:2])


def test_ensemble_still_reports_a_collapsed_first_autoencoder():
    """Fusing would hide autoencoder 0's constant codes behind the other blocks: they are checked first."""
    from fe_fast.clustering.derc import _FitState

    m = DERC(2, random_state=0, reducer="none", n_maps=1, covariance_type="diag")
    state = _FitState(Xt=None, y=None, inits=[], rng=None, hist={},
                      extra_codes=[np.random.default_rng(0).normal(size=(20, 4))])
    with pytest.raises(RuntimeError, match="constant or non-finite"):
        m._first_or_next_clustering(state, np.zeros((20, 4)))


def test_progress_plan_counts_the_ensemble(digits, monkeypatch):
    """n_autoencoders=3: the extra autoencoders are embedded once each and not mapped; the plan's
    embeddings and maps are exactly those the fit runs."""
    from fe_fast.clustering import derc as derc_module

    seen = []
    plan_progress = derc_module.DERC._plan_progress

    def spy(self, n):
        plan_progress(self, n)
        seen.append((self._progress, dict(self._progress.left)))

    monkeypatch.setattr(derc_module.DERC, "_plan_progress", spy)
    X, _ = _tiny(digits, 100)
    DERC(3, stage1_epochs=1, stage2_rounds=1, n_autoencoders=3, n_maps=2, reducer="umap", batch_size=64,
         latent_dim=8, n_jobs=1, random_state=0).fit(X)
    prog, plan = seen[0]
    assert (plan["embed"], plan["map"]) == (2 + 2, 2 * 2)  # 2 extra + round 0 + final; 2 clusterings x 2 maps
    assert (prog.done["embed"], prog.done["map"]) == (plan["embed"], plan["map"])


def test_stage2_tol_stops_at_the_first_settled_round(digits):
    """stage2_tol: from round 1 on, when fewer than that share of samples changed (matched) cluster
    since the previous round, stage 2 stops and that clustering is final. With a tolerance every
    round meets, 3 rounds stop after one round of training, so the labels equal a 1-round run's."""
    X, y = _tiny(digits, 200)
    cfg = dict(THESIS, stage1_epochs=2, batch_size=64, latent_dim=8, reducer="none", gmm_n_init=1, random_state=3)
    del cfg["stage2_rounds"], cfg["stage2_tol"]
    one = DERC(4, stage2_rounds=1, **cfg).fit(X, y)
    stopped = DERC(4, stage2_rounds=3, stage2_tol=0.99, **cfg).fit(X, y)
    assert np.array_equal(stopped.labels_, one.labels_)
    assert np.allclose(stopped.embedding_, one.embedding_)
    rounds = stopped.history_["rounds"]
    assert [r["round"] for r in rounds] == [0, 1] and "loss_triplet" not in rounds[1]
    final = stopped.history_["final"]
    assert final["converged_at_round"] == 1 and final["acc"] == pytest.approx(one.history_["final"]["acc"])
    # the recorded share is 1 - ACC of the new labels against the previous round's
    prev = DERC(4, stage2_rounds=0, **cfg).fit(X).labels_
    assert rounds[1]["changed"] == pytest.approx(1 - clustering_accuracy(prev, stopped.labels_))
    assert 0 < rounds[1]["changed"] < 0.99
    # tolerance 0 (default, the thesis) runs every round and still records the changes
    full = DERC(4, stage2_rounds=2, **cfg).fit(X, y)
    assert len(full.history_["rounds"]) == 2 and "converged_at_round" not in full.history_["final"]
    assert "changed" not in full.history_["rounds"][0] and 0 <= full.history_["final"]["changed"] <= 1


def test_round_consensus_combines_every_round(digits):
    """round_consensus: the final labels are the consensus of the clusterings of rounds 0..R-1 and
    the final one; round r's clustering equals the final one of an r-round run (same seeds)."""
    from fe_fast.clustering.consensus import consensus_responsibilities

    X, y = _tiny(digits, 200)
    cfg = dict(THESIS, stage1_epochs=2, batch_size=64, latent_dim=8, reducer="none", gmm_n_init=1, random_state=3)
    del cfg["stage2_rounds"], cfg["round_consensus"]
    runs = [DERC(4, stage2_rounds=r, round_consensus=False, **cfg).fit(X, y) for r in range(3)]
    expected = consensus_responsibilities([m.proba_ for m in runs], 4, seed=3)
    m = DERC(4, stage2_rounds=2, round_consensus=True, **cfg).fit(X, y)
    assert np.allclose(m.proba_, expected) and np.array_equal(m.labels_, expected.argmax(1))
    final = m.history_["final"]
    assert final["acc_last"] == pytest.approx(runs[2].history_["final"]["acc"])
    assert final["acc"] == pytest.approx(clustering_accuracy(y, m.labels_))
    # the rounds disagree here, so the consensus is not just the last clustering (up to label ids)
    assert clustering_accuracy(runs[2].labels_, m.labels_) < 1.0
    with pytest.raises(ValueError, match="round_consensus"):
        DERC(4, round_consensus=True, clusterer="dbscan").fit(X)


def test_dae_is_stage_one_only(digits):
    X, y = _tiny(digits, 100)
    m = DAE(3, stage1_epochs=1, batch_size=64, latent_dim=8, stage2_rounds=7).fit(X, y)
    assert m.stage2_rounds == 0 and m.reducer == "none" and m.history_["rounds"] == []
    # 8x8 images: the tiny rule's 3 autoencoders, whose fused codes the mixture is fitted on
    assert m.params_used_["n_autoencoders"] == 3
    assert "acc" in m.history_["final"] and m.reduced_.shape == (100, 3 * 8) and m.embedding_.shape == (100, 8)


def test_bad_input(digits):
    X, y = _tiny(digits, 30)
    with pytest.raises(ValueError, match="empty"):
        DERC(2).fit(np.zeros((0, 8, 8)))
    with pytest.raises(ValueError, match=">= 2"):
        DERC(1).fit(X)
    with pytest.raises(ValueError, match="exceed"):
        DERC(31).fit(X)
    bad = X.astype(np.float32)
    bad[3, 2, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        DERC(2).fit(bad)
    with pytest.raises(ValueError, match="labels"):
        DERC(2).fit(X, y[:10])
    with pytest.raises(ValueError, match="not square"):
        DERC(2).fit(np.zeros((10, 7)))
    with pytest.raises(ValueError, match="reducer"):
        DERC(2, reducer="pca").fit(X)
    for bad_maps in (0, 1.5, True):
        with pytest.raises(ValueError, match="n_maps"):
            DERC(2, n_maps=bad_maps).fit(X)
    with pytest.raises(ValueError, match="n_maps > 1"):
        DERC(2, n_maps=2, clusterer="dbscan").fit(X)
    for bad_n in (0, 2.0, False):
        with pytest.raises(ValueError, match="n_autoencoders"):
            DERC(2, n_autoencoders=bad_n).fit(X)
    with pytest.raises(ValueError, match="n_autoencoders > 1"):
        DERC(2, n_autoencoders=3, clusterer="dbscan").fit(X)
    for bad_tol in (-0.1, 1.0, "0.1", True):
        with pytest.raises(ValueError, match="stage2_tol"):
            DERC(2, stage2_tol=bad_tol).fit(X)
    with pytest.raises(ValueError, match="augment_shift"):
        DERC(2, augment_shift=0.7).fit(X)
    with pytest.raises(ValueError, match="not fitted"):
        DERC(2).transform(X)
    m = DERC(2, stage1_epochs=1, stage2_rounds=0, latent_dim=4, reducer="none").fit(X)
    with pytest.raises(ValueError, match="do not match"):
        m.transform(np.zeros((3, 16, 16)))
    Xc = X.copy()
    DERC(2, stage1_epochs=1, stage2_rounds=0, latent_dim=4, reducer="none").fit(X)
    assert np.array_equal(X, Xc)  # never modified in place


def test_umap_map_keeps_torch_thread_count():
    """numba's OpenMP layer resets the process's thread count; reduce_umap restores torch's, so a
    later fit computes the same codes (same-seed determinism)."""
    from fe_fast.clustering.derc import reduce_umap

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        R = reduce_umap(np.random.default_rng(0).normal(size=(60, 5)), seed=3)
        assert torch.get_num_threads() == 1
        assert R.shape == (60, 2) and np.isfinite(R).all()
        np.testing.assert_array_equal(R, reduce_umap(np.random.default_rng(0).normal(size=(60, 5)), seed=3))
    finally:
        torch.set_num_threads(before)
