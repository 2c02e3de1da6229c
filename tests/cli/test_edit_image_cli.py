"""End-to-end smoke run of ``fe-fast edit-image`` at tiny sizes (align -> project -> edit -> paste)."""
import json

import numpy as np
import pytest
from PIL import Image

from fe_fast.cli import main
from fe_fast.datasets.toyfaces import render_with_labels, sample_params
from fe_fast.stylegan import Generator
from fe_fast.stylegan.io import save_generator


def test_edit_image_end_to_end(tmp_path, capsys):
    G = Generator(16, z_dim=16, w_dim=16, n_mlp=1, channel_max=16, seed=0)
    save_generator(G, tmp_path / "G.safetensors")
    params, _ = sample_params(1, seed=4, attributes={"yaw": 15.0, "roll": 10.0})
    r = render_with_labels(params[0], 96)
    Image.fromarray(r.image).save(tmp_path / "photo.png")
    np.save(tmp_path / "lm.npy", r.landmarks)
    (tmp_path / "ch.json").write_text(json.dumps([{"layer": 1, "channel": 3, "rank": 1, "score": 1.0}]))
    out = tmp_path / "edited.png"
    args = ["edit-image", str(tmp_path / "photo.png"), "--generator", str(tmp_path / "G.safetensors"),
            "--landmarks", str(tmp_path / "lm.npy"), "--steps", "3", "--strength", "20", "--out", str(out)]
    assert main(args + ["--channels", str(tmp_path / "ch.json"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["channels"] == [[1, 3]] and info["projection"]["steps"] == 3
    sec = info["seconds"]
    stages = ["load_generator", "channels", "align", "project", "edit", "decode", "paste", "write"]
    assert list(sec) == stages + ["total"] and info["resolution"] == 16
    assert info["projection"]["seconds_per_step"] == pytest.approx(info["projection"]["seconds"] / 3)
    assert all(sec[k] >= 0 for k in stages) and sec["total"] >= sum(sec[k] for k in stages) - 1e-6
    assert abs(info["pose"]["yaw"] - 15) < 4
    res = np.asarray(Image.open(out))
    assert res.shape == r.image.shape
    assert np.abs(res.astype(int) - r.image).sum() > 0  # the face region was replaced
    corner = (slice(0, 4), slice(0, 4))
    np.testing.assert_array_equal(res[corner], r.image[corner])  # far from the crop: untouched
    strip = Image.open(tmp_path / "edited_grid.png")
    assert strip.width > 4 * strip.height  # five panels side by side
    # bad input: clear errors (exit 2), input never overwritten
    assert main(args + ["--channels", "99:0"]) == 2
    assert main(args[:-1] + [str(tmp_path / "photo.png"), "--channels", "1:3"]) == 2
    assert main(args) == 2  # neither channels nor a teacher
    assert np.array_equal(np.asarray(Image.open(tmp_path / "photo.png")), r.image)


def test_edit_image_reads_the_object_locate_json_prints(tmp_path, capsys):
    """``fe-fast locate --json > ch.json`` then ``edit-image --channels ch.json``: the object form works."""
    G = Generator(16, z_dim=16, w_dim=16, n_mlp=1, channel_max=16, seed=0)
    save_generator(G, tmp_path / "G.safetensors")
    from fe_fast.cli.edit_image import _channels as channels_of

    (tmp_path / "ch.json").write_text(json.dumps({"channels": [{"layer": 1, "channel": 3, "rank": 1, "score": 1.0}],
                                                  "seconds": 0.5}))
    (tmp_path / "list.json").write_text(json.dumps([{"layer": 1, "channel": 3, "rank": 1, "score": 1.0}]))
    import argparse

    args = argparse.Namespace(channels=str(tmp_path / "ch.json"), classifier=None, parser=None)
    same = argparse.Namespace(channels=str(tmp_path / "list.json"), classifier=None, parser=None)
    assert channels_of(args, G) == channels_of(same, G)
