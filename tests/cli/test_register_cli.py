"""``fe-fast register`` and ``fe-fast register-batch`` on tiny pairs, and their input errors."""
import json

import numpy as np
import pytest

from fe_fast.cli import main

# the thesis's algorithm, small (the default config's schedule and starts are too large for tiny pairs)
FAST = ["--preset", "thesis", "--iters", "15", "--groups", "2", "--lr", "0.03"]


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
    rc = main(["register", str(src), str(src), "--preset", "thesis", "--groups", "4", "--lr", "0.03", "--schedule", "60:8,120:4",
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
    rc = main(["register", str(src), str(src), "--preset", "thesis", "--groups", "8", "--lr", "0.03", "--schedule",
               "40:4,60:4,120:2",
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
    from fe_fast.cli.register import houv_settings
    from fe_fast.registration import DEFAULT_CONFIG, PRESETS

    _, src, _, _ = tiny
    args = build_parser().parse_args(["register", str(src), str(src), "--preset", "robust-wide", "--refine-iters", "7"])
    names, (cfg,) = houv_settings(args)
    assert names == ["robust-wide"]
    assert cfg == PRESETS["robust-wide"].replace(refinement={"iters": 7})  # given explicitly: it wins
    assert houv_settings(build_parser().parse_args(["register", str(src), str(src)]))[1] == [DEFAULT_CONFIG]
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
    from fe_fast.cli.register import houv_settings
    from fe_fast.registration.presets import PRESETS

    _, src, _, _ = tiny
    for name in PRESETS:
        names, configs = houv_settings(build_parser().parse_args(["register", str(src), str(src), "--preset", name]))
        assert configs == [PRESETS[name]]


def test_every_config_option_maps_to_a_field_with_the_same_default():
    """Each option of CONFIG_OPTIONS names a field of its stage class, --help shows that field's default
    (DEFAULT_CONFIG's value), and every field of every stage has an option."""
    import dataclasses

    from fe_fast.cli import build_parser
    from fe_fast.cli._common import library_default, library_options
    from fe_fast.cli.register import CONFIG_OPTIONS
    from fe_fast.registration.config import DEFAULT_CONFIG, STAGES

    for cmd in ("register", "register-batch"):
        sub = next(a for a in build_parser()._actions if a.dest == "command" or hasattr(a, "choices")
                   and isinstance(a.choices, dict) and cmd in a.choices).choices[cmd]
        opts = library_options(sub)
        config_opts = {d: v for d, v in opts.items() if v[0].startswith("fe_fast.registration.config:")}
        assert set(config_opts) == set(CONFIG_OPTIONS), cmd
        for dest, (source, field) in config_opts.items():
            stage, name = CONFIG_OPTIONS[dest]
            assert source.endswith(":" + type(getattr(DEFAULT_CONFIG, stage)).__name__) and field == name, dest
            assert library_default(source, field) == getattr(getattr(DEFAULT_CONFIG, stage), name), dest
            assert sub.get_default(dest) is None, dest  # None = not given: the config's value applies
    covered = set(CONFIG_OPTIONS.values())
    for stage, cls in STAGES.items():
        for f in dataclasses.fields(cls):
            assert (stage, f.name) in covered, f"{cls.__name__}.{f.name} has no register option"


def test_register_options_set_config_fields(tiny):
    from fe_fast.cli import build_parser
    from fe_fast.cli.register import houv_settings

    _, src, _, _ = tiny
    args = build_parser().parse_args(["register", str(src), str(src), "--schedule", "64:5,128:5", "--prune-groups",
                                      "4", "--accept-threshold", "none", "--select", "inlier", "--threads", "1",
                                      "--correspondence-starts", "2", "--alpha", "0.4"])
    (cfg,) = houv_settings(args)[1]
    assert cfg.schedule.stages == ((64, 5), (128, 5)) and cfg.schedule.prune == 4
    assert cfg.accept.score is None and cfg.selection.method == "inlier" and cfg.threads == 1
    assert cfg.starts.correspondence == 2 and cfg.objective.alpha == 0.4
    args = build_parser().parse_args(["register", str(src), str(src), "--alpha", "2"])
    with pytest.raises(ValueError, match="Objective.alpha"):
        houv_settings(args)
    assert main(["register", str(src), str(src), "--alpha", "2"]) == 2


def test_register_init_transform(tiny, capsys):
    """--init-transform starts the last group at the given transform: with no iterations the answer is
    that transform (it matches SRC onto itself exactly); bad files exit 2."""
    tmp, src, _, _ = tiny
    T = np.eye(4)
    (tmp / "start.json").write_text(json.dumps({"transform": T.tolist()}))
    (tmp / "plain.json").write_text(json.dumps(T.tolist()))
    rc = main(["register", str(src), str(src), "--preset", "thesis", "--groups", "3", "--iters", "0", "--json",
               "--init-transform", str(tmp / "start.json"), "--init-transform", str(tmp / "plain.json")])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["group"] in (1, 2) and np.allclose(out["transform"], T, atol=1e-5)
    (tmp / "bad.json").write_text(json.dumps({"transform": [[1, 0], [0, 1]]}))
    assert main(["register", str(src), str(src), *FAST, "--init-transform", str(tmp / "bad.json")]) == 2
    assert "4x4" in capsys.readouterr().err
    assert main(["register", str(src), str(src), *FAST, "--init-transform", str(tmp / "none.json")]) == 2


def test_register_correspondence_start(tiny, capsys):
    """--correspondence-starts 1 adds a group started at RANSAC+ICP's answer: SRC onto itself with no
    iterations returns that group's (near-identity) transform, and the RANSAC time is part of 'seconds';
    the old --ransac-start still does the same with a deprecation line."""
    pytest.importorskip("open3d", reason="RANSAC+ICP is Open3D's")
    _, src, _, _ = tiny
    for flag in (["--correspondence-starts", "1"], ["--ransac-start"]):
        rc = main(["register", str(src), str(src), "--preset", "thesis", "--groups", "3", "--iters", "0", "--json",
                   *flag])
        assert rc == 0
        captured = capsys.readouterr()
        out = json.loads(captured.out)
        assert out["group"] == 2 and np.allclose(out["transform"], np.eye(4), atol=1e-3)
        assert 0 < out["ransac_seconds"] <= out["seconds"]
        assert ("deprecated" in captured.err) == (flag == ["--ransac-start"])


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
    assert "Selection.method 'inlier' or 'flips'" in capsys.readouterr().err


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
    from fe_fast.cli.register import houv_settings

    _, src, _, _ = tiny
    args = build_parser().parse_args(["register", str(src), str(src), "--preset", "robust-wide+halving-local"])
    names, configs = houv_settings(args)
    assert names == ["robust-wide", "halving-local"]
    assert [c.objective.alpha for c in configs] == [0.5, 0.3]
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


def test_register_batch_cascade_with_correspondence_start(tiny, capsys):
    """register-batch --preset A+B --accept-score S --correspondence-starts 1: one pair per call; each line names
    the preset kept, its runs' scores and the RANSAC+ICP time (included in 'seconds')."""
    pytest.importorskip("open3d", reason="RANSAC+ICP is Open3D's")
    tmp, _, _, _ = tiny
    (tmp / "pairs.csv").write_text("name,src,tgt\na,src.npy,src.npy\nb,src.npy,src.npy\n")
    out = tmp / "res.jsonl"
    small = ["--schedule", "60:6,120:3", "--groups", "4", "--prune-groups", "2", "--refine-iters", "2"]
    rc = main(["register-batch", str(tmp / "pairs.csv"), "--out", str(out), "--no-progress", "--correspondence-starts", "1",
               "--preset", "robust+halving-local", "--accept-score", "2", *small])  # score <= 2: stop after one
    assert rc == 0
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["preset"] for r in rows] == ["robust", "robust"] and all(len(r["best_of"]) == 1 for r in rows)
    assert all(0 < r["ransac_seconds"] <= r["seconds"] for r in rows)


def test_register_without_options_recovers_a_generated_pair(tmp_path, capsys):
    """``fe-fast register S T`` alone (the default config) on a virtual range-scan pair of a choosing object."""
    pytest.importorskip("open3d", reason="the default config's correspondence starts are Open3D's RANSAC")
    from fe_fast.datasets import range_scans
    from fe_fast.registration.metrics import rotation_error

    p = range_scans.make_scan_pair(0, seed=7, n_points=1024, min_overlap=0.6)
    np.save(tmp_path / "s.npy", p["P"])
    np.save(tmp_path / "t.npy", p["Q"])
    assert main(["register", str(tmp_path / "s.npy"), str(tmp_path / "t.npy"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert rotation_error(np.array(out["rotation"]), p["T_gt"][:3, :3]) < 2.0
    assert "correspondence" in out["stage_seconds"] and out["ransac_seconds"] > 0
