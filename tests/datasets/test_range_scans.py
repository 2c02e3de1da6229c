"""Virtual range scanner and its procedural objects (fe_fast.datasets.range_scans)."""
import math

import numpy as np
import pytest

pytest.importorskip("open3d", reason="range_scans needs open3d (pip install 'fe-fast[registration]')")

from scipy.spatial import cKDTree  # noqa: E402

from fe_fast.datasets import range_scans as rs  # noqa: E402

OBJECTS = ("blob:0", "sq:1", "nearsym:2", "beads:3")


@pytest.mark.parametrize("name", OBJECTS + ("compound1",))
def test_object_mesh_normalised_and_seeded(name):
    v, f = rs.object_mesh(name)
    assert v.ndim == 2 and v.shape[1] == 3 and f.shape[1] == 3 and f.min() >= 0 and f.max() < v.shape[0]
    assert np.linalg.norm(v, axis=1).max() == pytest.approx(1.0)
    assert np.allclose((v.max(0) + v.min(0)) / 2, 0, atol=1e-9)
    assert not v.flags.writeable  # cached: callers cannot change it for others
    rs.object_mesh.cache_clear()
    v2, _ = rs.object_mesh(name)
    assert np.array_equal(v, v2)


def test_seeds_give_different_objects():
    a, _ = rs.object_mesh("blob:0")
    b, _ = rs.object_mesh("blob:1")
    assert a.shape != b.shape or not np.allclose(a, b)


def test_split_rule_no_bunny_disjoint():
    choose, held = rs.split_objects(4)
    assert "bunny" not in choose and "bunny" not in held
    assert not set(choose) & set(held)
    assert not any(rs.is_held_out(n) for n in choose)
    assert all(rs.is_held_out(n) for n in held)
    assert {n.split(":")[0] for n in held if ":" in n} == set(rs.FAMILIES)  # every family reported on
    assert not any(n.startswith(rs.HELD_OUT_FAMILIES) for n in choose)  # a whole family never chosen on
    with pytest.raises(ValueError, match="bunny"):
        rs.is_held_out("bunny")
    with pytest.raises(ValueError, match="bunny"):
        rs.make_scan_pair(0, objects=("blob:0", "bunny"))
    with pytest.raises(ValueError, match="unknown object"):
        rs.object_mesh("teapot:3")


def _scan(**kw):
    args = dict(eye=(0.0, -0.55, 0.2), up=(0, 0, 1), resolution=96, rng=np.random.default_rng(1))
    args.update(kw)
    return rs.range_scan("blob:0", **args)


def test_scan_is_a_regular_image_grid():
    s = _scan(dropout=0.0)
    px = s["pixel"]
    assert px.min() >= 0 and px.max() < 96
    assert len({tuple(p) for p in px}) == px.shape[0]  # at most one return per ray
    # every return lies on its pixel's ray: project with the camera frame
    rel = (s["clean"] - np.array([0.0, -0.55, 0.2])) @ s["frame"].T
    half = math.tan(math.radians(s["fov_deg"]) / 2)
    u = (rel[:, 0] / rel[:, 2] / half + 1) / 2 * 96 - 0.5
    v = (rel[:, 1] / rel[:, 2] / half + 1) / 2 * 96 - 0.5
    assert np.allclose(u, px[:, 0], atol=1e-3) and np.allclose(v, px[:, 1], atol=1e-3)


def test_grazing_returns_are_missing():
    full = _scan(grazing_cos=0.0, dropout=0.0)
    cut = _scan(grazing_cos=0.3, dropout=0.0)
    assert (full["cos"] < 0.3).sum() > 20  # the blob's rim is seen at grazing angles
    assert cut["cos"].min() >= 0.3
    keep = {tuple(p) for p, c in zip(full["pixel"], full["cos"]) if c >= 0.3}
    assert {tuple(p) for p in cut["pixel"]} == keep


def test_dropout_removes_a_share():
    n0 = _scan(dropout=0.0)["points"].shape[0]
    n1 = _scan(dropout=0.25)["points"].shape[0]
    assert 0.7 * n0 < n1 < 0.8 * n0


def test_noise_is_along_the_ray_and_grows_with_depth():
    eye = np.array([0.0, -0.3, 0.0])
    near = _scan(eye=eye, noise=(0.0, 4e-3))
    far = _scan(eye=3 * eye, noise=(0.0, 4e-3))
    for s, e in ((near, eye), (far, 3 * eye)):
        err = s["points"] - s["clean"]
        ray = (s["clean"] - e) / np.linalg.norm(s["clean"] - e, axis=1, keepdims=True)
        assert np.allclose(np.cross(err, ray), 0, atol=1e-9)  # only along the ray
        r = np.linalg.norm(err, axis=1)
        assert np.allclose(s["sigma"], 4e-3 * s["depth"] ** 2)
        assert np.mean(r / s["sigma"]) == pytest.approx(math.sqrt(2 / math.pi), rel=0.08)  # |N(0, sigma)|
    ratio = np.median(np.linalg.norm(far["points"] - far["clean"], axis=1)) / np.median(
        np.linalg.norm(near["points"] - near["clean"], axis=1))
    depth_ratio = np.median(far["depth"]) / np.median(near["depth"])
    assert depth_ratio > 2.5
    assert ratio == pytest.approx(depth_ratio ** 2, rel=0.25)


def test_pair_shapes_determinism_overlap_and_truth():
    kw = dict(objects=OBJECTS, seed=3, n_points=512)
    a = rs.make_scan_pair(4, **kw)
    b = rs.make_scan_pair(4, **kw)
    c = rs.make_scan_pair(5, **kw)
    assert a["P"].shape == (512, 3) and a["Q"].shape == (512, 3) and a["P"].dtype == np.float32
    assert np.array_equal(a["P"], b["P"]) and np.array_equal(a["Q"], b["Q"]) and np.array_equal(a["T_gt"], b["T_gt"])
    assert not np.array_equal(a["P"], c["P"])
    for p in (a, c):
        assert 0.3 <= p["overlap"] <= 0.95 and p["overlap"] == pytest.approx(min(p["overlaps"]))
        assert 20 <= p["angle"] <= 60
        T = p["T_gt"]
        Pm = p["P"].astype(np.float64) @ T[:3, :3].T + T[:3, 3]
        assert np.linalg.norm(Pm, axis=1).max() <= 0.125 * 1.01  # back in the object frame
        spacing = np.median(cKDTree(p["Q"]).query(p["Q"], k=2)[0][:, 1])
        d, _ = cKDTree(p["Q"]).query(Pm)
        assert np.mean(d < 2 * spacing) > 0.5 * p["overlap"]
        # a wrong pose (P left where the random transform put it) matches far less
        d_wrong, _ = cKDTree(p["Q"]).query(p["P"])
        assert np.mean(d_wrong < 2 * spacing) < 0.5 * np.mean(d < 2 * spacing)
        # viewpoints: the cameras in each cloud's frame, every point in front of its camera
        vp_P, vp_Q = p["viewpoints"]
        for pts, vp in ((Pm, T[:3, :3] @ vp_P + T[:3, 3]), (p["Q"], vp_Q)):
            assert np.all((pts - vp) @ (-vp / np.linalg.norm(vp)) > 0)


def test_overlap_range_is_honoured():
    p = rs.make_scan_pair(0, objects=("sq:1",), min_overlap=0.85, max_overlap=0.95, view_angle=(20, 30), n_points=256)
    assert 0.85 <= p["overlap"] <= 0.95
    with pytest.raises(ValueError, match="overlapped"):
        rs.make_scan_pair(0, objects=("sq:1",), min_overlap=0.99, max_overlap=1.0, view_angle=(55, 60),
                          n_points=256, max_tries=3)


def test_bad_arguments():
    with pytest.raises(ValueError, match="noise"):
        _scan(noise=(-1, 0))
    with pytest.raises(ValueError, match="grazing_cos"):
        _scan(grazing_cos=1.0)
    with pytest.raises(ValueError, match="farther"):
        _scan(eye=(0, 0.1, 0))
    with pytest.raises(ValueError, match="n_points"):
        rs.make_scan_pair(0, objects=("blob:0",), n_points=10 ** 6)
    with pytest.raises(ValueError, match="view_angle"):
        rs.make_scan_pair(0, objects=("blob:0",), view_angle=(60, 20))
