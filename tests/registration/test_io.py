"""Point-cloud, transform and pair-list files (fe_fast.registration.io): formats, one-line errors,
subsampling of very large clouds."""
import json
import warnings

import numpy as np
import pytest

from fe_fast.registration.io import (CloudSubsampled, read_cloud, read_pairs, read_transform, result_dict, write_cloud,
                                     write_transform)


@pytest.fixture()
def cloud():
    return np.random.default_rng(0).normal(size=(50, 3))


@pytest.mark.parametrize("suffix", [".npy", ".txt", ".csv"])
def test_numpy_formats_round_trip(tmp_path, cloud, suffix):
    path = write_cloud(tmp_path / f"c{suffix}", cloud)
    got = read_cloud(path)
    assert got.dtype == np.float64 and got.shape == (50, 3)
    np.testing.assert_allclose(got, cloud, rtol=1e-12 if suffix == ".npy" else 1e-6)


def test_open3d_format_round_trip(tmp_path, cloud):
    pytest.importorskip("open3d", reason="PLY files are read with Open3D")
    write_cloud(tmp_path / "c.ply", cloud)
    np.testing.assert_allclose(read_cloud(tmp_path / "c.ply"), cloud, rtol=1e-6)


@pytest.mark.parametrize(
    "content, msg",
    [
        (np.zeros((0, 3)), "empty point cloud"),
        (np.array([[0.0, np.nan, 1.0], [1.0, 2.0, 3.0], [0.0, 0.0, 0.0]]), "1 point(s) with NaN"),
        (np.array([[0.0, np.inf, 1.0], [1.0, 2.0, 3.0], [0.0, 0.0, 0.0]]), "infinite"),
        (np.zeros((4, 2)), "expected N x 3 points, got shape [4, 2]"),
        (np.array([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]]), "2 point(s); registration needs at least 3"),
        (np.outer(np.arange(10.0), [1.0, 2.0, -1.0]) + 5.0, "lie on one line"),
        (np.ones((5, 3)), "all 5 points coincide"),
        (np.array([["a", "b", "c"]]), "not numeric"),
    ],
)
def test_clouds_that_cannot_be_registered_are_one_line_errors(tmp_path, content, msg):
    np.save(tmp_path / "bad.npy", content)
    with pytest.raises(ValueError) as e:
        read_cloud(tmp_path / "bad.npy")
    assert msg in str(e.value) and str(tmp_path / "bad.npy") in str(e.value) and "\n" not in str(e.value)


def test_a_plane_is_accepted(tmp_path):
    """Points on a plane are a valid (if ambiguous) cloud; only a line is refused."""
    g = np.random.default_rng(1).normal(size=(30, 2))
    np.save(tmp_path / "plane.npy", np.c_[g, np.zeros(30)])
    assert read_cloud(tmp_path / "plane.npy").shape == (30, 3)


def test_bad_files(tmp_path):
    (tmp_path / "junk.ply").write_text("not a ply file\n")
    (tmp_path / "junk.npy").write_bytes(b"\x00garbage")
    (tmp_path / "x.obj").write_text("v 0 0 0\n")
    for name, msg in (("junk.ply", "not a PLY file"), ("junk.npy", "cannot read point cloud"),
                      ("x.obj", "unsupported format .obj")):
        with pytest.raises(ValueError, match=msg):
            read_cloud(tmp_path / name)
    with pytest.raises(FileNotFoundError, match="no such file"):
        read_cloud(tmp_path / "missing.npy")


def test_large_clouds_are_subsampled_with_a_warning_not_refused(tmp_path, cloud):
    np.save(tmp_path / "big.npy", cloud)
    with pytest.warns(CloudSubsampled, match="50 points, registering a random 20"):
        a = read_cloud(tmp_path / "big.npy", max_points=20, seed=3)
    with pytest.warns(CloudSubsampled):
        b = read_cloud(tmp_path / "big.npy", max_points=20, seed=3)
    assert a.shape == (20, 3) and np.array_equal(a, b)  # seeded
    rows = {tuple(r) for r in cloud}
    assert all(tuple(r) in rows for r in a)  # points of the file, not new ones
    order = [next(i for i, r in enumerate(cloud) if np.array_equal(r, p)) for p in a]
    assert order == sorted(order)  # file order kept
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_cloud(tmp_path / "big.npy", max_points=None).shape == (50, 3)
        assert read_cloud(tmp_path / "big.npy", max_points=50).shape == (50, 3)
    with pytest.raises(ValueError, match="max_points"):
        read_cloud(tmp_path / "big.npy", max_points=2)


def test_transforms(tmp_path):
    T = np.eye(4)
    T[:3, 3] = [1, 2, 3]
    write_transform(tmp_path / "t.json", T)
    assert np.array_equal(read_transform(tmp_path / "t.json"), T)
    (tmp_path / "plain.json").write_text(json.dumps(T.tolist()))
    assert np.array_equal(read_transform(tmp_path / "plain.json"), T)
    np.save(tmp_path / "t.npy", T)
    assert np.array_equal(read_transform(tmp_path / "t.npy"), T)
    (tmp_path / "bad.json").write_text(json.dumps({"transform": [[1, 0], [0, 1]]}))
    with pytest.raises(ValueError, match="4x4"):
        read_transform(tmp_path / "bad.json")
    (tmp_path / "junk.json").write_text("{")
    with pytest.raises(ValueError, match="cannot read a transform"):
        read_transform(tmp_path / "junk.json")


def test_read_pairs(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "p.csv").write_text(
        f"name,src,tgt,gt,src_viewpoint,tgt_viewpoint\na,s.npy,{tmp_path}/t.npy,g.npy,0 0 1,\n,s.npy,t.npy,,,\n")
    a, b = read_pairs(tmp_path / "sub" / "p.csv")
    assert a["row"] == 0 and a["name"] == "a" and a["src"] == str(tmp_path / "sub" / "s.npy")
    assert a["tgt"] == str(tmp_path / "t.npy") and a["gt"] == str(tmp_path / "sub" / "g.npy")
    assert a["viewpoints"] == ([0.0, 0.0, 1.0], None)
    assert b["name"] == "pair_1" and "gt" not in b and "viewpoints" not in b
    (tmp_path / "nocols.csv").write_text("a,b\nx,y\n")
    with pytest.raises(ValueError, match="missing column 'src'"):
        read_pairs(tmp_path / "nocols.csv")
    (tmp_path / "empty.csv").write_text("src,tgt\n")
    with pytest.raises(ValueError, match="no pairs"):
        read_pairs(tmp_path / "empty.csv")
    (tmp_path / "vp.csv").write_text("src,tgt,src_viewpoint\ns.npy,t.npy,1 2\n")
    with pytest.raises(ValueError, match="row 2 column src_viewpoint"):
        read_pairs(tmp_path / "vp.csv")


def test_result_dict_is_json_ready():
    from fe_fast.registration import PRESETS, houv

    P = np.random.default_rng(0).normal(size=(40, 3))
    d = result_dict(houv(P, P, PRESETS["thesis"].replace(starts={"groups": 2}, schedule={"iters": 3})))
    back = json.loads(json.dumps(d))
    assert np.allclose(np.array(back["transform"])[:3, :3], back["rotation"])
    assert set(back) == {"transform", "rotation", "translation", "local_cd", "loss", "seconds", "group", "iters",
                         "stage_seconds", "accepted"}
