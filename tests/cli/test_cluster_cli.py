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
    assert {"acc", "nmi", "n_clusters", "seconds", "stage_seconds", "skipped", "image_size"} <= set(res)
    stages = res["stage_seconds"]
    assert {"autoencoder", "embedding", "reducer", "mixture", "triplet_training", "total"} <= set(stages)
    assert all(v >= 0 for v in stages.values()) and stages["total"] <= res["seconds"]
    assert res["image_size"] == [8, 8] and res["skipped"] == [] and res["rounds"] == 1
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
               "--augment-shift", "0.1", "--augment-rotation", "10", "--mirror", "on"])
    assert rc == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["acc"] is None and res["nmi"] is None and res["params_used"]["mirror"] is True
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


def test_cluster_cli_real_folder(tmp_path, capsys):
    """A folder of mixed-size, mixed-mode PNG/JPEG files with one corrupt file: it is named on
    stderr and in the JSON, the rest is clustered at --size, labels come from the sub-folders."""
    from PIL import Image

    rng = np.random.default_rng(1)
    root = tmp_path / "faces"
    for c, (mode, hw) in enumerate([("L", (30, 24)), ("RGB", (36, 28))]):
        (root / f"id{c}").mkdir(parents=True)
        for i in range(6):
            base = np.full(hw + (3,), 60 + 120 * c, np.uint8) + rng.integers(0, 40, hw + (3,), dtype=np.uint8)
            Image.fromarray(base).convert(mode).save(root / f"id{c}" / f"{i}.{'png' if i % 2 else 'jpg'}")
    (root / "id1" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    out = tmp_path / "o"
    assert main(["cluster", str(root), "--k", "2", "--epochs", "1", "--rounds", "1", "--reducer", "none",
                 "--size", "20", "16", "--out", str(out), "--json"]) == 0
    cap = capsys.readouterr()
    res = json.loads(cap.out.strip().splitlines()[-1])
    assert "id1/bad.png" in cap.err and [s.split(":")[0] for s in res["skipped"]] == ["id1/bad.png"]
    assert res["n_samples"] == 12 and res["image_size"] == [20, 16] and res["acc"] is not None
    assert np.load(out / "labels.npy").shape == (12,) and (out / "clusters.png").exists()
    # --labels none: the same images without scores; no --size: the median size (33 x 26)
    assert main(["cluster", str(root), "--k", "2", "--epochs", "1", "--rounds", "0", "--reducer", "none",
                 "--labels", "none", "--out", str(out), "--json"]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["acc"] is None and res["image_size"] == [33, 26] and res["n_samples"] == 12
    assert main(["cluster", "digits", "--k", "3", "--size", "16", "16", "--out", str(out)]) == 2
    assert "folders only" in capsys.readouterr().err


def test_cluster_cli_without_options_runs_the_default(tmp_path, tiny_npz, capsys):
    """No option: DERC's default, its "auto" values resolved for 120 8x8 images and K=3 (--json's
    params_used), the same labels as the library's DERC(3)."""
    from fe_fast.clustering import DERC
    from fe_fast.clustering.auto import resolve
    from fe_fast.datasets.images import load_clustering_data

    out = tmp_path / "default"
    assert main(["cluster", str(tiny_npz), "--k", "3", "--out", str(out), "--json"]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    expected = resolve(DERC(3).get_params(), 120, (1, 8, 8), 3)
    used = res["params_used"]
    for name in ("reducer", "patience", "n_neighbors", "batch_size", "stage1_epochs", "n_maps",
                 "covariance_type", "validation_fraction", "stage2_rounds", "round_consensus"):
        assert used[name] == expected[name], name
    assert used["reducer"] == "umap" and res["rounds"] == expected["stage2_rounds"]
    X, _ = load_clustering_data(str(tiny_npz))
    np.testing.assert_array_equal(np.load(out / "labels.npy"), DERC(3).fit(X).labels_)


def test_cluster_cli_preset_thesis_and_overrides(tmp_path, tiny_npz, capsys):
    """--preset thesis runs the thesis's settings, no preset DERC's defaults; explicit options
    override both."""
    from fe_fast.clustering import DERC
    from fe_fast.clustering.presets import PRESETS
    from fe_fast.datasets.images import load_clustering_data

    outs = []
    for extra in ([], ["--preset", "thesis"]):
        out = tmp_path / f"p{len(extra)}"
        assert main(["cluster", str(tiny_npz), "--k", "3", "--epochs", "1", "--rounds", "0", "--reducer", "none",
                     "--seed", "4", "--out", str(out), "--json", *extra]) == 0
        outs.append(np.load(out / "labels.npy"))
    X, _ = load_clustering_data(str(tiny_npz))
    given = dict(stage1_epochs=1, stage2_rounds=0, reducer="none", random_state=4)
    api = DERC(3, **given).fit(X)
    thesis = DERC(3, **dict(PRESETS["thesis"], **given)).fit(X)
    np.testing.assert_array_equal(outs[0], api.labels_)
    np.testing.assert_array_equal(outs[1], thesis.labels_)
    assert api.params_used_["validation_fraction"] == 0.1 and thesis.params_used_["validation_fraction"] == 0.0
    capsys.readouterr()
    assert main(["cluster", str(tiny_npz), "--k", "3", "--preset", "nope", "--out", str(tmp_path / "n")]) == 2
    err = capsys.readouterr().err
    assert "preset must be one of" in err and "'thesis'" in err and "'nope'" in err


def test_cluster_help_shows_library_defaults_without_importing_torch():
    """Building the parser imports no torch; --help shows DERC's defaults (read from its signature)."""
    import subprocess
    import sys

    code = ("import sys; from fe_fast.cli import build_parser; p = build_parser(); "
            "print('torch' in sys.modules); p.parse_args(['cluster', '--help'])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.splitlines()[0] == "False"
    text = " ".join(out.split())
    assert "stage-1 (autoencoder) epochs (default auto)" in text and "or none (DERC-R) (default auto)" in text
    assert "derived size (default 64)" in text and "the run's random seed (default 0)" in text
