"""Head pose from 68 3D landmarks (fe_fast.align.pose): closed form and HOUV."""
import numpy as np
import pytest

from fe_fast.align import pose
from fe_fast.datasets.toyfaces import render_with_labels, sample_params


def _posed(yaw, pitch, roll, noise=0.0, drop=0, seed=0, scale=0.3):
    rng = np.random.default_rng(seed)
    T = pose.frontal_template()
    L = scale * T @ pose.rotation_from_euler(yaw, pitch, roll).T + np.array([50.0, 60.0, 7.0])
    L = L + rng.normal(0.0, noise, L.shape)
    if drop:
        L[rng.choice(68, drop, replace=False)] = np.nan
    return L


@pytest.mark.parametrize("angles", [(0, 0, 0), (45, -20, 10), (-45, 15, -30), (89, 0, 0), (10, -80, 170)])
def test_euler_round_trip_and_proper_rotation(angles):
    R = pose.rotation_from_euler(*angles)
    np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(R) == pytest.approx(1.0)
    np.testing.assert_allclose(pose.euler_from_rotation(R), angles, atol=1e-9)


def test_umeyama_recovers_a_similarity_exactly():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(30, 3))
    R = pose.rotation_from_euler(20, -35, 60)
    Y = 2.5 * X @ R.T + [1.0, -2.0, 3.0]
    s, Rh, t = pose.umeyama(X, Y)
    assert s == pytest.approx(2.5)
    np.testing.assert_allclose(Rh, R, atol=1e-12)
    np.testing.assert_allclose(t, [1.0, -2.0, 3.0], atol=1e-12)
    # a reflected target still gets a proper rotation (det +1), never a mirror
    _, Rm, _ = pose.umeyama(X, Y * [-1, 1, 1])
    assert np.linalg.det(Rm) == pytest.approx(1.0)


@pytest.mark.parametrize("yaw", [-45, -20, 0, 30, 45])
def test_closed_form_pose_within_2_degrees_with_noise_and_dropped_points(yaw):
    L = _posed(yaw, 12, -7, noise=0.5, drop=10, seed=yaw + 50)  # noise 0.5 px at ~40 px eye distance
    r = pose.estimate_pose(L)
    assert r.method == "umeyama"
    assert abs(r.yaw - yaw) < 2 and abs(r.pitch - 12) < 2 and abs(r.roll + 7) < 2, r
    assert r.scale == pytest.approx(0.3, rel=0.05)


def test_houv_pose_within_2_degrees_at_45_yaw():
    L = _posed(45, -10, 5, noise=0.3, drop=8, seed=3)
    r = pose.estimate_pose(L, "houv", groups=16, iters=150, lr=3e-2)
    assert abs(r.yaw - 45) < 2 and abs(r.pitch + 10) < 2 and abs(r.roll - 5) < 2, r
    assert r.method == "houv" and r.rms < 5.0


def test_pose_of_toy_faces_matches_their_ground_truth():
    params, _ = sample_params(6, seed=11)
    for p in params:
        L = render_with_labels(p, 128).landmarks
        r = pose.estimate_pose(L)
        # toy faces perturb the mean shape per identity/expression: a few degrees of shape noise
        assert abs(r.yaw - p["yaw"]) < 4 and abs(r.pitch - p["pitch"]) < 4 and abs(r.roll - p["roll"]) < 4, \
            (r.yaw, r.pitch, r.roll, p["yaw"], p["pitch"], p["roll"])


def test_bad_landmarks_get_clear_errors():
    with pytest.raises(ValueError, match=r"shape \(68, 3\)"):
        pose.estimate_pose(np.zeros((67, 3)))
    L = np.full((68, 3), np.nan)
    L[:3] = 1.0
    with pytest.raises(ValueError, match="only 3 of 68"):
        pose.estimate_pose(L)
    with pytest.raises(ValueError, match="method"):
        pose.estimate_pose(_posed(0, 0, 0), "icp")
    L = _posed(0, 0, 0)
    L[5, 1] = np.inf
    with pytest.raises(ValueError, match="Inf"):
        pose.estimate_pose(L)
