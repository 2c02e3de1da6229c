"""``fe-fast cluster`` smoke run on a tiny .npz written by the test."""
import json

import numpy as np
import pytest

from fe_fast.cli import main


@pytest.fixture()
def tiny_npz(tmp_path):
    from fe_fast.datasets.digits import load_digits_8x8

    X, y = load_digits_8x8()
    keep = np.flatnonzero(y < 3)[:120]
    path = tmp_path / "tiny.npz"
    np.savez(path, X=X[keep], y=y[keep])
    return path


def test_cluster_cli_writes_outputs(tmp_path, tiny_npz, capsys):
    out = tmp_path / "out"
    rc = main(["cluster", str(tiny_npz), "--k", "3", "--epochs", "1", "--rounds", "1",
               "--batch-size", "64", "--out", str(out), "--json"])
    assert rc == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(res) == {"acc", "nmi", "n_clusters", "seconds"}
    assert 0.0 <= res["acc"] <= 1.0 and 0.0 <= res["nmi"] <= 1.0 and res["n_clusters"] >= 1
    labels = np.load(out / "labels.npy")
    emb = np.load(out / "embedding.npy")
    assert labels.shape == (120,) and emb.shape == (120, 128)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["acc"] == pytest.approx(res["acc"])
    assert (out / "clusters.png").stat().st_size > 1000


def test_cluster_cli_autoencoder_ensemble(tmp_path, tiny_npz, capsys):
    """--n-autoencoders 2 reaches DERC: the labels equal the API's with the same settings."""
    from fe_fast.clustering import DERC
    from fe_fast.datasets.images import load_clustering_data

    out = tmp_path / "ens"
    assert main(["cluster", str(tiny_npz), "--k", "3", "--epochs", "1", "--rounds", "0", "--reducer", "none",
                 "--n-autoencoders", "2", "--out", str(out), "--json"]) == 0
    X, _ = load_clustering_data(str(tiny_npz))
    api = DERC(3, stage1_epochs=1, stage2_rounds=0, reducer="none", n_autoencoders=2).fit(X)
    assert np.array_equal(np.load(out / "labels.npy"), api.labels_)


def test_cluster_cli_stage2_tol(tmp_path, tiny_npz, capsys):
    """--stage2-tol reaches DERC: a tolerance every round meets stops stage 2 after one round."""
    from fe_fast.clustering import DERC
    from fe_fast.datasets.images import load_clustering_data

    out = tmp_path / "tol"
    assert main(["cluster", str(tiny_npz), "--k", "3", "--epochs", "1", "--rounds", "3", "--stage2-tol", "0.99",
                 "--reducer", "none", "--out", str(out), "--json"]) == 0
    X, _ = load_clustering_data(str(tiny_npz))
    api = DERC(3, stage1_epochs=1, stage2_rounds=1, reducer="none").fit(X)
    assert np.array_equal(np.load(out / "labels.npy"), api.labels_)


def test_cluster_cli_unlabelled_folder_and_errors(tmp_path, capsys):
    from PIL import Image

    rng = np.random.default_rng(0)
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(12):
        Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(folder / f"{i:02d}.png")
    out = tmp_path / "o"
    rc = main(["cluster", str(folder), "--k", "2", "--epochs", "1", "--rounds", "0", "--out", str(out), "--json",
               "--augment-shift", "0.1", "--augment-rotation", "10"])
    assert rc == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["acc"] is None and res["nmi"] is None
    assert not (out / "metrics.json").exists() and (out / "labels.npy").exists()
    assert main(["cluster", str(folder), "--k", "1", "--out", str(out)]) == 2
    assert "--k must be >= 2" in capsys.readouterr().err
    assert main(["cluster", str(folder), "--k", "2", "--epochs", "1", "--augment-shift", "0.9", "--out", str(out)]) == 2
    assert "augment_shift" in capsys.readouterr().err
    assert main(["cluster", str(folder), "--k", "2", "--epochs", "1", "--reducer", "none", "--n-maps", "3",
                 "--out", str(out)]) == 2
    assert "n_maps > 1" in capsys.readouterr().err
    assert main(["cluster", str(folder), "--k", "2", "--epochs", "1", "--n-autoencoders", "2", "--clusterer", "dbscan",
                 "--out", str(out)]) == 2
    assert "n_autoencoders > 1" in capsys.readouterr().err
    assert main(["cluster", str(tmp_path / "nope"), "--k", "2"]) == 2
    assert main(["cluster", "usps", "--k", "2", "--data-dir", str(tmp_path)]) == 2
    assert "FE_FAST_DATA" in capsys.readouterr().err
