"""Named HOUV settings (fe_fast.registration.presets)."""
import inspect

import numpy as np
import pytest

from fe_fast.registration import houv
from fe_fast.registration.metrics import rotation_error
from fe_fast.registration.presets import PRESETS, preset


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_names_only_houv_parameters(name):
    params = set(inspect.signature(houv).parameters)
    assert set(preset(name)) <= params - {"P", "Q", "seed", "device", "progress"}


def test_preset_is_a_copy():
    kw = preset("robust")
    kw["schedule"].append((2048, 10))
    kw["lr"] = 1.0
    assert PRESETS["robust"]["schedule"] == [(256, 150), (1024, 50)] and PRESETS["robust"]["lr"] == 3e-2


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
    kw = preset("robust-wide")
    kw.update(schedule=[(128, 60), (400, 20)], refine_iters=40)  # smaller than the benchmark's
    res = houv(P, Q, seed=0, **kw)
    assert rotation_error(res.R.numpy(), R) < 1.0


def test_halving_local_is_robust_halving_on_the_local_chamfer_alone():
    local, halving = preset("halving-local"), preset("robust-halving")
    assert (local.pop("alpha"), local.pop("beta")) == (0.3, 0.0)
    assert local == halving


def test_halving_local_recovers_a_known_transform_of_a_partial_pair():
    from fe_fast.datasets.bunny import bundled_pair

    Q = bundled_pair()["Q"][:600].astype(np.float32)
    c, s = np.cos(np.radians(40)), np.sin(np.radians(40))
    R = np.array([[1, 0, 0], [0, c, -s], [0, s, c]], dtype=np.float32)
    t = np.array([0.02, 0.0, -0.01], dtype=np.float32)
    P = ((Q - t) @ R)[Q[:, 0] < np.median(Q[:, 0]) + 0.25 * Q[:, 0].std()]  # about 60 % of Q, moved
    kw = preset("halving-local")
    kw.update(groups=64, schedule=[(128, 30), (256, 40), (400, 20)], prune_groups=[16, 4], refine_iters=40)
    res = houv(P, Q, seed=0, **kw)
    assert rotation_error(res.R.numpy(), R) < 1.0
