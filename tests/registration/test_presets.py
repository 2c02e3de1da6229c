"""Named registration configs (fe_fast.registration.presets); their pinned values and results are in
test_config.py."""
import numpy as np
import pytest

from fe_fast.registration import RegistrationConfig, houv
from fe_fast.registration.metrics import rotation_error
from fe_fast.registration.presets import PRESETS, preset

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_is_a_config(name):
    assert isinstance(PRESETS[name], RegistrationConfig) and preset(name) is PRESETS[name]


def test_unknown_preset_lists_the_names():
    with pytest.raises(ValueError, match="robust-wide"):
        preset("robustest")


def test_robust_wide_recovers_a_known_transform():
    from fe_fast.datasets.bunny import bundled_pair

    Q = bundled_pair()["Q"][:400].astype(np.float32)
    c, s = np.cos(np.radians(30)), np.sin(np.radians(30))
    R = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]], dtype=np.float32)
    t = np.array([0.01, -0.02, 0.005], dtype=np.float32)
    P = (Q - t) @ R  # Q = R P + t
    cfg = preset("robust-wide").replace(schedule={"stages": ((128, 60), (400, 20))},  # smaller than the benchmark's
                                        refinement={"iters": 40})
    res = houv(P, Q, cfg, seed=0)
    assert rotation_error(res.R.numpy(), R) < 1.0


def test_halving_local_is_robust_halving_on_the_local_chamfer_alone():
    local, halving = preset("halving-local"), preset("robust-halving")
    assert (local.objective.alpha, local.objective.beta) == (0.3, 0.0)
    assert local.replace(objective={"alpha": 0.5, "beta": 0.1}) == halving


def test_default_preset_is_the_default_config():
    from fe_fast.registration import DEFAULT_CONFIG

    assert preset("default") == DEFAULT_CONFIG == RegistrationConfig()


def test_halving_local_recovers_a_known_transform_of_a_partial_pair():
    from fe_fast.datasets.bunny import bundled_pair

    Q = bundled_pair()["Q"][:600].astype(np.float32)
    c, s = np.cos(np.radians(40)), np.sin(np.radians(40))
    R = np.array([[1, 0, 0], [0, c, -s], [0, s, c]], dtype=np.float32)
    t = np.array([0.02, 0.0, -0.01], dtype=np.float32)
    P = ((Q - t) @ R)[Q[:, 0] < np.median(Q[:, 0]) + 0.25 * Q[:, 0].std()]  # about 60 % of Q, moved
    cfg = preset("halving-local").replace(starts={"groups": 64}, schedule={"stages": ((128, 30), (256, 40), (400, 20)),
                                                                           "prune": (16, 4)}, refinement={"iters": 40})
    res = houv(P, Q, cfg, seed=0)
    assert rotation_error(res.R.numpy(), R) < 1.0
