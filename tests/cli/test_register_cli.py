"""``fe-fast register`` and ``fe-fast register-batch`` on tiny pairs, and their input errors."""
import json

import numpy as np
import pytest

from fe_fast.cli import main

FAST = ["--iters", "15", "--groups", "2", "--lr", "0.03"]


def effective(kw):
    """houv()'s arguments as a call with ``kw`` sees them (its defaults for the rest)."""
    import inspect

    from fe_fast.registration import houv

    return {**{k: p.default for k, p in inspect.signature(houv).parameters.items()}, **kw}


@pytest.fixture()
def tiny(tmp_path):
    from fe_fast.datasets.bunny import bundled_pair

    d = bundled_pair()
    src, tgt = tmp_path / "src.npy", tmp_path / "tgt.xyz"
    np.save(src, d["P"][:120])
    np.savetxt(tgt, d["Q"][:120])
    return tmp_path, src, tgt, d


def test_register_json_and_outputs(tiny, capsys):
    pytest.importorskip("open3d", reason="reading .xyz and writing .ply need open3d")
    tmp, src, tgt, _ = tiny
    rc = main(["register", str(src), str(tgt), *FAST, "--json", "--out-transform", str(tmp / "T.json"),
               "--out-aligned", str(tmp / "aligned.ply")])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) >= {"transform", "rotation", "translation", "local_cd", "loss", "seconds"}
    T = np.array(out["transform"])
    assert T.shape == (4, 4) and np.allclose(T[:3, :3], out["rotation"]) and np.allclose(T[:3, 3], out["translation"])
    assert np.allclose(json.loads((tmp / "T.json").read_text())["transform"], T)
    import open3d as o3d

    al = np.asarray(o3d.io.read_point_cloud(str(tmp / "aligned.ply")).points)
    P = np.load(src)
    assert np.allclose(al, P @ T[:3, :3].T + T[:3, 3], atol=1e-5)


def test_register_text_output(tiny, capsys):
    _, src, _, _ = tiny
    rc = main(["register", str(src), str(src), *FAST, "--no-progress", "--angle-bounds", "0:45,45:90"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "transform" in text and "local Chamfer" in text


def test_register_refinement_option(tiny, capsys):
    _, src, _, _ = tiny
    rc = main(["register", str(src), str(src), *FAST, "--json", "--refine-iters", "5", "--refine-groups", "1"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["iters"] == 15 + 5  # the refinement ran after the schedule
    assert main(["register", str(src), str(src), *FAST, "--refine-iters", "-1"]) == 2


def test_register_even_init_inlier_selection_and_pruning(tiny, capsys):
    _, src, _, _ = tiny
    rc = main(["register", str(src), str(src), "--groups", "4", "--lr", "0.03", "--schedule", "60:8,120:4",
               "--prune-groups", "2", "--init", "sfib", "--select", "inlier", "--inlier-factor", "3", "--json",
               "--refine-iters", "2", "--refine-alpha", "0.3", "--refine-objective", "inlier",
               "--refine-by", "local_cd"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["iters"] == 12 + 2
    assert main(["register", str(src), str(src), *FAST, "--inlier-factor", "0"]) == 2
    assert main(["register", str(src), str(src), *FAST, "--prune-groups", "0"]) == 2


def test_register_successive_pruning_and_translation_search(tiny, capsys):
    _, src, _, _ = tiny
    rc = main(["register", str(src), str(src), "--groups", "8", "--lr", "0.03", "--schedule", "40:4,60:4,120:2",
               "--prune-groups", "4,2", "--init-translation", "search", "--json"])
    assert rc == 0
    assert json.loads(capsys.readouterr().out)["iters"] == 10
    assert main(["register", str(src), str(src), *FAST, "--prune-groups", "4,x"]) == 2
    with pytest.raises(SystemExit) as exc:  # argparse's choices
        main(["register", str(src), str(src), *FAST, "--init-translation", "grid"])
    assert exc.value.code == 2


@pytest.mark.parametrize(
    "content, msg",
    [
        (np.zeros((0, 3)), "empty"),
        (np.array([[0.0, np.nan, 1.0], [1.0, 2.0, 3.0]]), "NaN"),
        (np.zeros((4, 2)), "N x 3"),
    ],
)
def test_register_bad_clouds_exit_2(tiny, capsys, content, msg):
    tmp, src, _, _ = tiny
    bad = tmp / "bad.npy"
    np.save(bad, content)
    assert main(["register", str(bad), str(src), *FAST]) == 2
    err = capsys.readouterr().err.strip()
    assert msg in err and len(err.splitlines()) == 1


def test_register_bad_files_exit_2(tiny, capsys):
    tmp, src, _, _ = tiny
    (tmp / "junk.ply").write_text("not a ply file\n")
    (tmp / "junk.npy").write_bytes(b"\x00garbage")
    (tmp / "x.obj").write_text("v 0 0 0\n")
    for bad in ("junk.ply", "junk.npy", "x.obj", "missing.npy"):
        assert main(["register", str(tmp / bad), str(src), *FAST]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("fe-fast register: error:") and len(err.splitlines()) == 1
    assert main(["register", str(src), str(src), "--angle-bounds", "0-45"]) == 2


def test_register_batch(tiny, capsys):
    tmp, src, _, d = tiny
    np.save(tmp / "gt.npy", np.eye(4))
    (tmp / "pairs.csv").write_text("name,src,tgt,gt\na,src.npy,src.npy,gt.npy\nb,src.npy,src.npy,\n")
    out = tmp / "res.jsonl"
    rc = main(["register-batch", str(tmp / "pairs.csv"), "--out", str(out), *FAST, "--no-progress",
               "--pairs-per-call", "2"])
    assert rc == 0
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["name"] for r in rows] == ["a", "b"]
    assert "rot_err" in rows[0] and "rot_err" not in rows[1]
    assert np.array(rows[0]["transform"]).shape == (4, 4)
    (tmp / "nocols.csv").write_text("a,b\nx,y\n")
    assert main(["register-batch", str(tmp / "nocols.csv"), "--out", str(out)]) == 2


def test_register_preset_fills_only_options_left_at_default(tiny, capsys):
    from fe_fast.cli import build_parser
    from fe_fast.cli.register import houv_kwargs

    _, src, _, _ = tiny
    args = build_parser().parse_args(["register", str(src), str(src), "--preset", "robust-wide", "--refine-iters", "7"])
    kw = houv_kwargs(args)
    assert kw["groups"] == 64 and kw["prune_groups"] == 8 and kw["select"] == "inlier"
    assert kw["lr_schedule"] == "cosine" and kw["schedule"] == [(256, 150), (1024, 50)]
    assert kw["refine_iters"] == 7  # given explicitly: the preset does not replace it
    thesis = effective(houv_kwargs(build_parser().parse_args(["register", str(src), str(src)])))
    assert thesis["groups"] == 32 and thesis["iters"] == 500 and thesis["lr_schedule"] == "constant"
    rc = main(["register", str(src), str(src), "--preset", "robust", "--schedule", "60:6,120:3", "--groups", "4",
               "--refine-iters", "2", "--json"])
    assert rc == 0
    assert json.loads(capsys.readouterr().out)["iters"] == 9 + 2
    assert main(["register", str(src), str(src), "--preset", "nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert "robust-wide" in err and len(err.splitlines()) == 1


def test_register_help_names_every_preset(capsys):
    from fe_fast.registration.presets import PRESETS

    with pytest.raises(SystemExit):
        main(["register", "--help"])
    text = " ".join(capsys.readouterr().out.split()).replace("- ", "-")  # argparse wraps at hyphens
    assert all(name in text for name in PRESETS)


def test_register_accepts_every_preset(tiny):
    from fe_fast.cli import build_parser
    from fe_fast.cli.register import houv_kwargs
    from fe_fast.registration.presets import PRESETS, preset

    _, src, _, _ = tiny
    for name in PRESETS:  # every preset key must be a register option, or --preset NAME fails
        kw = houv_kwargs(build_parser().parse_args(["register", str(src), str(src), "--preset", name]))
        assert {k: kw[k] for k in preset(name)} == preset(name)


def test_register_init_transform(tiny, capsys):
    """--init-transform starts the last group at the given transform: with no iterations the answer is
    that transform (it matches SRC onto itself exactly); bad files exit 2."""
    tmp, src, _, _ = tiny
    T = np.eye(4)
    (tmp / "start.json").write_text(json.dumps({"transform": T.tolist()}))
    (tmp / "plain.json").write_text(json.dumps(T.tolist()))
    rc = main(["register", str(src), str(src), "--groups", "3", "--iters", "0", "--json",
               "--init-transform", str(tmp / "start.json"), "--init-transform", str(tmp / "plain.json")])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["group"] in (1, 2) and np.allclose(out["transform"], T, atol=1e-5)
    (tmp / "bad.json").write_text(json.dumps({"transform": [[1, 0], [0, 1]]}))
    assert main(["register", str(src), str(src), *FAST, "--init-transform", str(tmp / "bad.json")]) == 2
    assert "4x4" in capsys.readouterr().err
    assert main(["register", str(src), str(src), *FAST, "--init-transform", str(tmp / "none.json")]) == 2


def test_register_ransac_start(tiny, capsys):
    """--ransac-start adds a group started at RANSAC+ICP's answer: SRC onto itself with no iterations
    returns that group's (near-identity) transform, and the RANSAC time is part of 'seconds'."""
    pytest.importorskip("open3d", reason="RANSAC+ICP is Open3D's")
    _, src, _, _ = tiny
    rc = main(["register", str(src), str(src), "--groups", "3", "--iters", "0", "--json", "--ransac-start"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["group"] == 2 and np.allclose(out["transform"], np.eye(4), atol=1e-3)
    assert 0 < out["ransac_seconds"] <= out["seconds"]


def test_register_viewpoints(tiny, capsys):
    """--source-viewpoint / --target-viewpoint X Y Z: the free-space check (with the inlier selection);
    two numbers are a usage error, a viewpoint without --select inlier a one-line error."""
    tmp, src, _, d = tiny
    vp = [str(x) for x in d["viewpoints"][0]]  # starts with a negative number
    rc = main(["register", str(src), str(src), *FAST, "--select", "inlier", "--json",
               "--source-viewpoint", *vp, "--target-viewpoint", *vp])
    assert rc == 0
    assert np.array(json.loads(capsys.readouterr().out)["transform"]).shape == (4, 4)
    with pytest.raises(SystemExit):  # argparse: three numbers
        main(["register", str(src), str(src), *FAST, "--select", "inlier", "--source-viewpoint", "1", "2"])
    err = capsys.readouterr().err.strip()
    assert "expected 3 arguments" in err
    assert main(["register", str(src), str(src), *FAST, "--target-viewpoint", *vp]) == 2
    assert "select='inlier'" in capsys.readouterr().err


def test_register_batch_reads_viewpoint_columns(tiny, capsys):
    from fe_fast.registration.io import read_pairs as read_pairs_csv

    tmp, src, _, d = tiny
    vp = " ".join(str(x) for x in d["viewpoints"][0])
    (tmp / "vp.csv").write_text(f"name,src,tgt,src_viewpoint,tgt_viewpoint\na,src.npy,src.npy,{vp},{vp}\n"
                                "b,src.npy,src.npy,,\n")
    items = read_pairs_csv(tmp / "vp.csv")
    assert np.allclose(items[0]["viewpoints"][0], d["viewpoints"][0]) and "viewpoints" not in items[1]
    out = tmp / "res.jsonl"
    rc = main(["register-batch", str(tmp / "vp.csv"), "--out", str(out), *FAST, "--select", "inlier",
               "--no-progress", "--pairs-per-call", "2"])
    assert rc == 0 and len(out.read_text().splitlines()) == 2
    (tmp / "badvp.csv").write_text("src,tgt,src_viewpoint\nsrc.npy,src.npy,1 2\n")
    assert main(["register-batch", str(tmp / "badvp.csv"), "--out", str(out)]) == 2
    assert "row 2" in capsys.readouterr().err


def test_register_best_of_two_presets(tiny, capsys):
    from fe_fast.cli import build_parser
    from fe_fast.cli.register import houv_kwargs, preset_names

    _, src, _, _ = tiny
    args = build_parser().parse_args(["register", str(src), str(src), "--preset", "robust-wide+halving-local"])
    assert preset_names(args) == ["robust-wide", "halving-local"]
    assert [effective(houv_kwargs(args, n))["alpha"] for n in preset_names(args)] == [0.5, 0.3]
    small = ["--schedule", "60:6,120:3", "--groups", "4", "--prune-groups", "2", "--refine-iters", "2"]
    rc = main(["register", str(src), str(src), "--preset", "robust+halving-local", *small])
    assert rc == 0
    assert "best of presets robust+halving-local" in capsys.readouterr().out
    # without sensor positions the score is at most 2, so the cascade stops after the first preset
    rc = main(["register", str(src), str(src), "--preset", "robust+halving-local", "--accept-score", "2", *small])
    assert rc == 0 and "robust; 1 of 2 run" in capsys.readouterr().out
    assert main(["register", str(src), str(src), "--preset", "robust", "--accept-score", "0.5", *small]) == 2
    assert "--accept-score needs several presets" in capsys.readouterr().err
    assert main(["register", str(src), str(src), "--preset", "robust+nope", *small]) == 2
    assert "unknown HOUV preset 'nope'" in capsys.readouterr().err
    assert main(["register-batch", "pairs.csv", "--out", "x.jsonl", "--preset", "robust+halving-local",
                 "--pairs-per-call", "2"]) == 2
    assert "one pair per call" in capsys.readouterr().err


def test_register_batch_cascade_with_ransac_start(tiny, capsys):
    """register-batch --preset A+B --accept-score S --ransac-start: one pair per call; each line names
    the preset kept, its runs' scores and the RANSAC+ICP time (included in 'seconds')."""
    pytest.importorskip("open3d", reason="RANSAC+ICP is Open3D's")
    tmp, _, _, _ = tiny
    (tmp / "pairs.csv").write_text("name,src,tgt\na,src.npy,src.npy\nb,src.npy,src.npy\n")
    out = tmp / "res.jsonl"
    small = ["--schedule", "60:6,120:3", "--groups", "4", "--prune-groups", "2", "--refine-iters", "2"]
    rc = main(["register-batch", str(tmp / "pairs.csv"), "--out", str(out), "--no-progress", "--ransac-start",
               "--preset", "robust+halving-local", "--accept-score", "2", *small])  # score <= 2: stop after one
    assert rc == 0
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["preset"] for r in rows] == ["robust", "robust"] and all(len(r["best_of"]) == 1 for r in rows)
    assert all(0 < r["ransac_seconds"] <= r["seconds"] for r in rows)
