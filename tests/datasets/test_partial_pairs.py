"""MVP-style partial pairs and the bunny real-scan loader (registration benchmark data)."""
import math

import numpy as np
import pytest

pytest.importorskip("open3d", reason="partial_pairs needs open3d (pip install 'fe-fast[registration]')")

from scipy.spatial import cKDTree  # noqa: E402

from fe_fast.datasets import bunny  # noqa: E402
from fe_fast.datasets import partial_pairs as pp  # noqa: E402

SMALL = dict(n_points=200, dense=3000)


def test_camera_positions_26_even():
    c = pp.camera_positions(2.0)
    assert c.shape == (26, 3)
    assert np.allclose(np.linalg.norm(c, axis=1), 2.0)
    assert len({tuple(np.round(x, 6)) for x in c}) == 26
    assert np.allclose(c.mean(0), 0.0, atol=1e-12)


def test_pair_is_seeded_partial_and_consistent():
    a = pp.make_pair(2, protocol="mvp", meshes=("bunny", "compound1"), **SMALL)
    b = pp.make_pair(2, protocol="mvp", meshes=("bunny", "compound1"), **SMALL)
    assert np.array_equal(a["P"], b["P"]) and np.array_equal(a["T_gt"], b["T_gt"])
    assert a["P"].shape == (200, 3) and a["Q"].shape == (200, 3) and a["P"].dtype == np.float32
    assert 0.3 <= a["overlap"] <= 0.95 and a["views"][0] != a["views"][1]
    # T_gt maps P back onto Q's frame: both views come from one dense sampling, so many points coincide
    T = a["T_gt"]
    Pm = a["P"].astype(np.float64) @ T[:3, :3].T + T[:3, 3]
    d, _ = cKDTree(a["Q"]).query(Pm)
    assert np.mean(d < 0.1) > 0.3
    assert np.linalg.norm(Pm, axis=1).max() <= 1.0 + 1e-5  # unit-sphere normalisation
    c = pp.make_pair(3, protocol="mvp", meshes=("bunny", "compound1"), **SMALL)
    assert not np.array_equal(a["P"], c["P"])


@pytest.mark.parametrize("protocol", pp.PROTOCOLS)
def test_protocol_transforms(protocol):
    rng = np.random.default_rng(0)
    angles = []
    for _ in range(200):
        T = pp.random_transform(protocol, rng)
        R = T[:3, :3]
        assert np.allclose(R @ R.T, np.eye(3), atol=1e-9) and np.linalg.det(R) == pytest.approx(1.0)
        assert np.all(np.abs(T[:3, 3]) <= 0.5)
        angles.append(math.degrees(math.acos(np.clip((np.trace(R) - 1) / 2, -1, 1))))
    angles = np.array(angles)
    if protocol == "mvp":
        assert 0.7 < np.mean(angles <= 45.0 + 1e-9) < 0.9  # about four in five within 45 degrees
    elif protocol == "modelnet":
        assert angles.max() <= math.degrees(math.acos((1 + 2 * math.cos(math.radians(45)) ** 3 - 1) / 2)) + 60
        assert np.mean(angles <= 45) > 0.3
    else:
        assert angles.max() > 150  # uniform on SO(3) reaches large angles


def test_noise_and_save_load(tmp_path):
    clean = pp.make_pair(0, protocol="so3", meshes=("box",), **SMALL)
    noisy = pp.make_pair(0, protocol="so3", meshes=("box",), noise_std=0.01, **SMALL)
    diff = np.abs(noisy["Q"] - clean["Q"])
    assert 0 < diff.max() <= 0.05 + 1e-6
    csv = pp.save_pairs([clean, noisy], tmp_path)
    back = pp.load_pairs(csv)
    assert len(back) == 2 and np.array_equal(back[1]["Q"], noisy["Q"]) and np.allclose(back[0]["T_gt"], clean["T_gt"])
    for a, b in zip(back[1]["viewpoints"], noisy["viewpoints"]):
        assert np.allclose(a, b, rtol=1e-8)


def test_viewpoints_are_the_cameras_in_each_clouds_frame():
    """Q's viewpoint is its camera; P's is its camera moved with P, so T_gt takes it back there; every
    point of each view lies in front of its camera (positive depth towards the mesh centre)."""
    p = pp.make_pair(1, protocol="so3", meshes=("compound1",), **SMALL)
    cams = pp.camera_positions(3.0)
    i, j = p["views"]
    vp_P, vp_Q = p["viewpoints"]
    assert np.allclose(vp_Q, cams[j])
    T = p["T_gt"]
    assert np.allclose(T[:3, :3] @ vp_P + T[:3, 3], cams[i], atol=1e-9)
    Pm = p["P"].astype(np.float64) @ T[:3, :3].T + T[:3, 3]
    for pts, cam in ((Pm, cams[i]), (p["Q"], cams[j])):
        assert np.all((pts - cam) @ (-cam / np.linalg.norm(cam)) > 0)


def test_bad_arguments():
    with pytest.raises(ValueError, match="protocol"):
        pp.make_pair(0, protocol="kitti", **SMALL)
    with pytest.raises(ValueError, match="unknown mesh"):
        pp.make_pair(0, meshes=("teapot",), **SMALL)


def test_bundled_bunny_pair_aligns():
    d = bunny.bundled_pair()
    T = d["T_gt"]
    assert d["P"].shape == (2048, 3) and d["src"] == "bun000" and d["tgt"] == "bun045"
    Pm = d["P"].astype(np.float64) @ T[:3, :3].T + T[:3, 3]
    dist, _ = cKDTree(d["Q"]).query(Pm)
    assert np.median(dist) < 0.003  # metres; 2048-point subsamples of scans 45 degrees apart


def test_bun_conf_convention(tmp_path):
    conf = tmp_path / "bun.conf"
    # bun045's line from the original bun.conf; PROVENANCE lists its scan->world matrix
    conf.write_text("bmesh bun045.ply -0.0520211 -0.000383981 -0.0109223 0.00548449 -0.294635 -0.0038555 0.955586\r\n")
    W = bunny.read_conf(conf)["bun045"]
    assert np.allclose(W[0], [0.8263506, -0.0106004, 0.5630562, -0.0520211], atol=1e-6)
    assert np.allclose(W[2, :3], [-0.5631408, -0.0082099, 0.8263202], atol=1e-6)


def test_real_scans_when_available():
    root = bunny.default_root()
    if not (root / "scans" / "bun.conf").is_file():
        pytest.skip(f"Stanford bunny scans not found at {root} (set FE_FAST_BUNNY_DIR)")
    P, W0 = bunny.load_scan("bun000", root)
    Q, W1 = bunny.load_scan("bun045", root)
    assert P.shape == (40256, 3) and np.allclose(W0, np.eye(4))
    rng = np.random.default_rng(0)
    sub = P[rng.choice(len(P), 3000, replace=False)]
    # PROVENANCE: 0.888 of bun000 lies within 1 mm of bun045 after the ground truth
    assert bunny.overlap(sub, Q, bunny.relative_pose(W0, W1)) == pytest.approx(0.888, abs=0.03)
