"""Landmark sources (fe_fast.align.landmarks) and the ``fe-fast align`` command."""
import json
import sys
import types

import numpy as np
import pytest
from PIL import Image

from fe_fast.align.landmarks import FAN_WEIGHT_FILES, fan_landmarks, get_landmarks, load_landmarks
from fe_fast.cli import main
from fe_fast.datasets.toyfaces import render_with_labels, sample_params


def test_file_formats_round_trip(tmp_path):
    L = np.random.default_rng(0).normal(size=(68, 3))
    np.save(tmp_path / "l.npy", L)
    (tmp_path / "l.json").write_text(json.dumps({"landmarks": L.tolist()}))
    (tmp_path / "plain.json").write_text(json.dumps(L[:, :2].tolist()))
    np.savetxt(tmp_path / "l.txt", L)
    for name in ("l.npy", "l.json", "l.txt"):
        np.testing.assert_allclose(load_landmarks(tmp_path / name), L)
    assert load_landmarks(tmp_path / "plain.json").shape == (68, 2)
    np.save(tmp_path / "bad.npy", L[:60])
    with pytest.raises(ValueError, match="68 landmarks"):
        load_landmarks(tmp_path / "bad.npy")
    with pytest.raises(FileNotFoundError):
        load_landmarks(tmp_path / "missing.npy")
    assert get_landmarks(None, lambda img: L).shape == (68, 3)  # a user callable


def test_fan_source_names_the_missing_weight_files_and_folder(tmp_path, monkeypatch):
    import torch

    fake = types.ModuleType("face_alignment")
    fake.LandmarksType = types.SimpleNamespace(THREE_D=3)
    fake.FaceAlignment = lambda *a, **k: pytest.fail("must not try to load (and download) missing weights")
    monkeypatch.setitem(sys.modules, "face_alignment", fake)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    (tmp_path / "hub" / "checkpoints" / FAN_WEIGHT_FILES[0]).write_bytes(b"x")
    with pytest.raises(FileNotFoundError) as e:
        fan_landmarks(np.zeros((64, 64, 3), np.uint8))
    msg = str(e.value)
    assert FAN_WEIGHT_FILES[1] in msg and FAN_WEIGHT_FILES[2] in msg and FAN_WEIGHT_FILES[0] not in msg
    assert str(tmp_path / "hub" / "checkpoints") in msg


def test_align_cli_on_a_toy_face(tmp_path, capsys):
    params, _ = sample_params(1, seed=2, attributes={"yaw": 25.0, "pitch": 5.0, "roll": -10.0})
    r = render_with_labels(params[0], 128)
    Image.fromarray(r.image).save(tmp_path / "face.png")
    np.save(tmp_path / "lm.npy", r.landmarks)
    rc = main(["align", str(tmp_path / "face.png"), "--landmarks", str(tmp_path / "lm.npy"), "--size", "64",
               "--out", str(tmp_path / "crop.png"), "--json"])
    assert rc == 0
    info = json.loads(capsys.readouterr().out)
    assert Image.open(tmp_path / "crop.png").size == (64, 64)
    assert abs(info["yaw"] - 25) < 4 and abs(info["pitch"] - 5) < 4 and abs(info["roll"] + 10) < 4
    assert len(info["quad"]) == 4 and len(info["landmarks"]) == 68
    # bad input: a clear error, exit status 2, nothing overwritten
    assert main(["align", str(tmp_path / "nope.png"), "--landmarks", str(tmp_path / "lm.npy")]) == 2
    assert main(["align", str(tmp_path / "face.png"), "--landmarks", str(tmp_path / "lm.npy"),
                 "--out", str(tmp_path / "face.png")]) == 2
    assert np.array_equal(np.asarray(Image.open(tmp_path / "face.png")), r.image)
