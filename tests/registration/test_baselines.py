"""Open3D baselines (thesis §3.3.2) on the bundled real bunny scan pair."""
import numpy as np
import pytest

pytest.importorskip("open3d", reason="the Open3D baselines need open3d (pip install 'fe-fast[registration]')")

from fe_fast.datasets.bunny import bundled_pair  # noqa: E402
from fe_fast.registration import baselines  # noqa: E402
from fe_fast.registration.metrics import evaluate  # noqa: E402


@pytest.fixture(scope="module")
def pair():
    d = bundled_pair()
    rng = np.random.default_rng(3)
    P = d["P"][rng.choice(2048, 1024, replace=False)].astype(np.float64)
    Q = d["Q"][rng.choice(2048, 1024, replace=False)].astype(np.float64)
    return P, Q, d["T_gt"]


def _check(out):
    T = out["transform"]
    assert T.shape == (4, 4)
    assert np.allclose(T[:3, :3] @ T[:3, :3].T, np.eye(3), atol=1e-6)
    assert 0.0 <= out["fitness"] <= 1.0 and out["seconds"] >= 0


def test_ransac_icp_recovers_real_pair(pair):
    P, Q, T = pair
    out = baselines.ransac_icp(P, Q, seed=0)
    _check(out)
    assert evaluate(out["transform"], T, P, Q)["rot_err"] < 5.0


def test_icp_from_ground_truth_neighbourhood_and_protocol(pair):
    P, Q, T = pair
    out = baselines.icp(P, Q, init=T)
    _check(out)
    assert evaluate(out["transform"], T, P, Q)["rot_err"] < 3.0
    multi = baselines.icp(P, Q, trials=3, seed=1)  # thesis protocol: random inits, best fitness
    _check(multi)
    again = baselines.icp(P, Q, trials=3, seed=1)
    assert np.allclose(multi["transform"], again["transform"])


def test_fgr_runs(pair):
    P, Q, _ = pair
    _check(baselines.fgr(P, Q, trials=2, seed=0))


def test_baseline_bad_input():
    with pytest.raises(ValueError, match="NaN"):
        baselines.icp(np.array([[np.nan, 0, 0.0]]), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="non-empty"):
        baselines.ransac_icp(np.zeros((0, 3)), np.zeros((3, 3)))
