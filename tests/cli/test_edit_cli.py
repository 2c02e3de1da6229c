"""``fe-fast locate`` / ``fe-fast edit`` smoke runs on a tiny generator with untrained toy teachers,
and their one-line errors (exit status 2)."""
import json

import pytest
import torch

from fe_fast.cli import main


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny networks


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from fe_fast.stylegan import Generator
    from fe_fast.stylegan.io import save_generator
    from fe_fast.teachers.toy import AttributeClassifier, FaceParser, save_teacher

    d = tmp_path_factory.mktemp("cli_edit")
    torch.manual_seed(0)
    G = Generator(16, z_dim=16, w_dim=16, n_mlp=2, channel_base=256, channel_max=16, seed=0)
    save_generator(G, d / "G.safetensors")
    save_teacher(AttributeClassifier(width=4), d / "C.pt")
    parser = FaceParser(width=4)
    save_teacher(parser, d / "P.pt")
    with torch.no_grad():
        lab = parser.eval()(G.sample(4, seed=0)).argmax(1)
    from fe_fast.datasets.toyfaces import MASK_CLASSES

    region = MASK_CLASSES[int(torch.bincount(lab.flatten(), minlength=len(MASK_CLASSES)).argmax())]
    return d, region


def test_locate_json_attribute(files, capsys):
    d, _ = files
    rc = main(["locate", "--generator", str(d / "G.safetensors"), "--classifier", str(d / "C.pt"),
               "--attribute", "smiling", "--channels-per-layer", "2", "--n", "6", "--threshold", "0", "--json"])
    assert rc == 0
    obj = json.loads(capsys.readouterr().out)
    rows = obj["channels"]
    assert [r["rank"] for r in rows] == [1, 2] and obj["seconds"] > 0
    assert set(rows[0]) == {"layer", "channel", "rank", "score"}


def test_locate_region_table(files, capsys):
    d, region = files
    rc = main(["locate", "--generator", str(d / "G.safetensors"), "--parser", str(d / "P.pt"), "--region", region,
               "--n", "3", "--no-progress"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "(layer, channel, rank)" in out and f"region '{region}'" in out


def test_edit_writes_grid(files, tmp_path, capsys):
    d, _ = files
    out = tmp_path / "grid.png"
    rc = main(["edit", "--generator", str(d / "G.safetensors"), "--sample-seeds", "1,2", "--channels", "3:5",
               "--alphas", "-5,0,5", "--out", str(tmp_path)])
    assert rc == 0 and out.exists() and json.loads((tmp_path / "edit.json").read_text())["samples"] == 2
    from PIL import Image

    assert Image.open(out).size == (3 * 18 + 2, 2 * 18 + 2)
    w = torch.randn(16)
    torch.save(w, tmp_path / "w.pt")
    rc = main(["edit", "--generator", str(d / "G.safetensors"), "--latent", str(tmp_path / "w.pt"),
               "--classifier", str(d / "C.pt"), "--attribute", "eyeglasses", "--n", "4", "--threshold", "0",
               "--mode", "multi", "--alphas", "0,1", "--out", str(tmp_path / "g2.png")])
    assert rc == 0 and (tmp_path / "g2.png").exists()


@pytest.mark.parametrize("extra,match", [
    (["locate", "--classifier", "C.pt", "--attribute", "flying", "--n", "2"], "unknown attribute 'flying'"),
    (["locate", "--classifier", "C.pt", "--attribute", "smiling", "--n", "4", "--threshold", "0.999999"],
     "no positive sample"),
    (["edit", "--sample-seeds", "1", "--channels", "3:99", "--out", "x"], "channel 99 out of range"),
    (["edit", "--sample-seeds", "1", "--channels", "3:1", "--alphas", "a,b", "--out", "x"], "--alphas"),
    (["edit", "--channels", "3:1", "--out", "x"], "--sample-seeds SEEDS or --latent"),
    (["locate", "--parser", "P.pt", "--region", "tail", "--n", "2"], "unknown region 'tail'"),
])
def test_bad_input_exits_2(files, capsys, extra, match):
    d, _ = files
    args = [extra[0], "--generator", str(d / "G.safetensors")] + [str(d / a) if a.endswith(".pt") else a
                                                                    for a in extra[1:]]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert match in err and err.count("\n") == 1


def test_old_spellings_still_work_with_a_deprecation_line(files, tmp_path, capsys):
    """edit --seed SEEDS --out GRID.png and locate --k / --sample-seed: one more release."""
    d, _ = files
    rc = main(["edit", "--generator", str(d / "G.safetensors"), "--seed", "1,2", "--channels", "3:5",
               "--alphas", "0,5", "--out", str(tmp_path / "old.png")])
    assert rc == 0 and (tmp_path / "old.png").exists()
    err = capsys.readouterr().err
    assert "edit --seed SEEDS (the samples' seeds) is deprecated" in err and "--out GRID.png is deprecated" in err
    base = ["locate", "--generator", str(d / "G.safetensors"), "--classifier", str(d / "C.pt"), "--attribute",
            "smiling", "--n", "6", "--threshold", "0", "--json"]
    assert main([*base, "--channels-per-layer", "2", "--seed", "3"]) == 0
    new = json.loads(capsys.readouterr().out)["channels"]
    assert main([*base, "--k", "2", "--sample-seed", "3"]) == 0
    out = capsys.readouterr()
    assert json.loads(out.out)["channels"] == new and "--k is deprecated" in out.err and "--sample-seed is deprecated" in out.err
