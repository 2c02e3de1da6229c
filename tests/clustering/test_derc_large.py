"""DERC's large-collection paths: maps on threads give the sequential maps, the chunked embedding
and the subsampled mixture give the codes and clusters of the direct computations, the progress
lines carry an ETA, and a fit on more than 4096 images (UMAP's approximate-neighbour regime)
allocates no N x N array."""
import io
import tracemalloc

import numpy as np
import pytest
import torch

from fe_fast.clustering import DERC, clustering_accuracy
from fe_fast.clustering import derc as derc_mod
from fe_fast.clustering.derc import _Progress
from fe_fast.datasets.digits import load_digits_8x8

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def digits():
    return load_digits_8x8()


def test_maps_on_threads_equal_the_sequential_maps(digits):
    """n_jobs only changes the speed: the UMAP maps made on two threads (layout compiled without the
    GIL) and their mixtures are the ones the sequential loop makes, bit for bit."""
    X, y = digits[0][:300], digits[1][:300]
    cfg = dict(stage1_epochs=1, stage2_rounds=1, batch_size=64, latent_dim=16, reducer="umap", n_maps=3,
               round_consensus=True, random_state=2)
    seq = DERC(10, n_jobs=1, **cfg).fit(X, y)
    par = DERC(10, n_jobs=2, **cfg).fit(X, y)
    assert par._map_threads() == 2 and seq._map_threads() == 1
    np.testing.assert_array_equal(seq.reduced_, par.reduced_)
    np.testing.assert_array_equal(seq.proba_, par.proba_)
    np.testing.assert_array_equal(seq.labels_, par.labels_)
    assert [r["acc"] for r in seq.history_["rounds"]] == [r["acc"] for r in par.history_["rounds"]]
    # the threaded block's seconds are shared between the two stages, not lost
    assert par.stage_seconds_["reducer"] > 0 and par.stage_seconds_["mixture"] > 0


@pytest.mark.parametrize("n_jobs, threads", [(None, None), (1, 1), (-1, None), (5, 3), (2, 2)])
def test_map_threads_resolution(n_jobs, threads, monkeypatch):
    monkeypatch.setattr(derc_mod.os, "cpu_count", lambda: 4)
    expect = {None: 3, 1: 1, 2: 2, 3: 3}[threads]  # n_maps=3 caps it; None/-1: all 4 cores -> 3
    assert DERC(3, n_maps=3, reducer="umap", n_jobs=n_jobs)._map_threads() == expect


def test_embedding_in_chunks_equals_one_pass(digits, monkeypatch):
    X = digits[0][:200]
    m = DERC(4, stage1_epochs=1, stage2_rounds=0, reducer="none", latent_dim=8, random_state=0).fit(X)
    Xt = torch.from_numpy(derc_mod.prepare_images(X))
    monkeypatch.setattr(derc_mod, "EMBED_CHUNK", 7)  # 200 = 28 chunks of 7 + 4
    Z = m._embed(Xt)
    assert Z.dtype == np.float64 and Z.shape == (200, 8)
    with torch.no_grad():
        direct = m.model_.encode(Xt).double().numpy()
    np.testing.assert_allclose(Z, direct, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(m.transform(X), Z, rtol=1e-5, atol=1e-6)
    assert m.model_.training  # back in training mode after encoding


def _blobs(n, k=4, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    centres = np.array([[0, 0], [10, 0], [0, 10], [10, 10]], dtype=float)[:k]
    return centres[y] + rng.normal(size=(n, 2)), y


def test_mixture_on_a_subset_beyond_gmm_fit_max(monkeypatch):
    """Maps larger than GMM_FIT_MAX: EM runs on a seeded subset, responsibilities for every point;
    maps up to GMM_FIT_MAX are clustered exactly as before."""
    R, y = _blobs(600)
    m = DERC(4, random_state=0, gmm_n_init=1, covariance_type="full")
    full_labels, full_proba = m._cluster_raw(R)
    monkeypatch.setattr(derc_mod, "GMM_FIT_MAX", 600)  # == N: unchanged
    np.testing.assert_array_equal(m._cluster_raw(R)[1], full_proba)
    monkeypatch.setattr(derc_mod, "GMM_FIT_MAX", 150)
    labels, proba = m._cluster_raw(R)
    assert proba.shape == (600, 4)
    np.testing.assert_allclose(proba.sum(1), 1.0, rtol=1e-9)
    assert clustering_accuracy(y, labels) == 1.0 and clustering_accuracy(full_labels, labels) == 1.0
    np.testing.assert_array_equal(m._cluster_raw(R)[1], proba)  # seeded subset: reproducible
    assert not np.array_equal(proba, full_proba)  # the subset path did run


def test_progress_lines_with_eta(digits):
    X, y = digits[0][:150], digits[1][:150]
    m = DERC(5, stage1_epochs=2, stage2_rounds=2, reducer="none", latent_dim=8, batch_size=64,
             patience=10, n_autoencoders=1, random_state=0, verbose=1)
    buf = io.StringIO()
    m._progress_stream = buf  # noqa: not a parameter; read by _plan_progress
    m.fit(X, y)
    lines = [ln for ln in buf.getvalue().splitlines() if ln.startswith("DERC progress:")]
    # 2 epochs, 3 embeds (2 rounds + final), 3 maps, 2 triplet rounds
    assert len(lines) == 2 + 3 + 3 + 2
    assert all("ETA" in ln and "elapsed" in ln for ln in lines)
    assert "epoch 1/2" in lines[0] and "triplets 2/2" in lines[-1] and lines[-1].endswith("ETA 0.0 min")
    assert not hasattr(m, "_progress")  # dropped when fit returns
    quiet = io.StringIO()
    m2 = DERC(5, stage1_epochs=1, stage2_rounds=0, reducer="none", latent_dim=8, random_state=0)
    m2._progress_stream = quiet
    m2.fit(X)
    assert quiet.getvalue() == ""


def test_progress_eta_from_measured_and_prior_units(monkeypatch):
    clock = iter([0.0, 10.0, 30.0, 34.0])  # start, epoch 1 ends, epoch 2 ends, map 1 ends
    monkeypatch.setattr(derc_mod.time, "perf_counter", lambda: next(clock))
    p = _Progress({"epoch": 3, "map": 4, "triplets": 1}, triplet_epochs=1.5, enabled=False)
    assert p.eta() is None  # nothing measured yet
    p.step("epoch")
    # 2 epochs of 10 s, 4 maps priced at half an epoch, 1 triplet round at 1.5 epochs
    assert p.eta() == pytest.approx(2 * 10 + 4 * 5 + 15)
    p.step("epoch")  # mean epoch 15 s
    p.skip("epoch", 1)  # stage 1 stopped early
    assert p.eta() == pytest.approx(4 * 7.5 + 22.5)
    p.step("map")  # a map took 4 s
    assert p.eta() == pytest.approx(3 * 4 + 22.5)


def test_large_n_steps_allocate_no_n_by_n_array(monkeypatch):
    """N = 30,000 samples through the steps of a clustering after the maps: the mixture (EM on a
    GMM_FIT_MAX subset, responsibilities for all), the consensus of three maps' responsibilities
    (k-means on N x 3K, Hungarian on K x K), the changed-share test between clusterings and the
    triplet sampling. numpy's traced peak stays far below one N x N float64 matrix (7.2 GB): a
    few times N x K."""
    from fe_fast.clustering.consensus import consensus_responsibilities
    from fe_fast.clustering.triplets import sample_triplets

    n, k = 30000, 4
    R, y = _blobs(n, k)
    m = DERC(k, random_state=0, gmm_n_init=1, covariance_type="full")
    monkeypatch.setattr(derc_mod, "GMM_FIT_MAX", 5000)
    tracemalloc.start()
    try:
        probas = [m._cluster_raw(R + 0.01 * s)[1] for s in range(3)]
        P = consensus_responsibilities(probas, k, seed=0)
        changed = DERC._changed(probas[0].argmax(1), P.argmax(1))
        trip = sample_triplets(P, n, np.random.default_rng(0))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * n * k * 8, f"peak traced allocation {peak / 2**20:.0f} MiB"
    assert clustering_accuracy(y, P.argmax(1)) == 1.0 and changed == 0.0
    assert trip[0].shape == (n,)
