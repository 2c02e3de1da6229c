"""Registration configs (fe_fast.registration.config, presets): validation, the pinned presets,
houv == houv_batch, the default config end to end, the old keyword style."""
import dataclasses
import math

import numpy as np
import pytest
import torch

from fe_fast.registration import (DEFAULT_CONFIG, HOUV, PRESETS, Accept, Objective, Refinement, RegistrationConfig,
                                  Schedule, Selection, Starts, houv, houv_batch)
from fe_fast.registration.config import CORE_KEYWORDS, STAGES, config_from_kwargs, core_kwargs
from fe_fast.registration.metrics import rotation_error, translation_error

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _pair(n_q=200, n_p=150, deg=35.0):
    """A seeded partial pair from the bundled real bunny scan: Q = R P + t, P a 75 % part of Q moved."""
    from fe_fast.datasets.bunny import bundled_pair

    Q = bundled_pair()["Q"].astype(np.float64)
    rng = np.random.default_rng(3)
    Q = Q[rng.choice(len(Q), n_q, replace=False)].astype(np.float32)
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    R = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]], dtype=np.float32)
    t = np.array([0.01, -0.02, 0.005], dtype=np.float32)
    return ((Q - t) @ R)[:n_p], Q, R, t


# ----------------------------------------------------------------------------------------------
# validation: one ValueError naming the field
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("make, field", [
    (lambda: Objective(alpha=0.0), "Objective.alpha"),
    (lambda: Objective(alpha=1.5), "Objective.alpha"),
    (lambda: Objective(beta=-1), "Objective.beta"),
    (lambda: Objective(mapping="tanh"), "Objective.mapping"),
    (lambda: Objective(d_max=0), "Objective.d_max"),
    (lambda: Objective(angle_bounds=((45, 0),)), "Objective.angle_bounds"),
    (lambda: Starts(groups=0), "Starts.groups"),
    (lambda: Starts(rotations="grid"), "Starts.rotations"),
    (lambda: Starts(translation="zero"), "Starts.translation"),
    (lambda: Starts(correspondence=-1), "Starts.correspondence"),
    (lambda: Schedule(lr=0), "Schedule.lr"),
    (lambda: Schedule(stages=((0, 5),)), "Schedule.stages"),
    (lambda: Schedule(lr_schedule="step"), "Schedule.lr_schedule"),
    (lambda: Schedule(prune=(8, 32)), "Schedule.prune"),
    (lambda: Schedule(stages=((64, 5), (128, 5)), prune=(8, 4)), "Schedule.prune"),
    (lambda: Schedule(patience=0), "Schedule.patience"),
    (lambda: Refinement(iters=-1), "Refinement.iters"),
    (lambda: Refinement(objective="l2"), "Refinement.objective"),
    (lambda: Refinement(alpha=2.0), "Refinement.alpha"),
    (lambda: Selection(method="best"), "Selection.method"),
    (lambda: Selection(hypotheses=0), "Selection.hypotheses"),
    (lambda: Selection(inlier_factor=0), "Selection.inlier_factor"),
    (lambda: Accept(score=-1.0), "Accept.score"),
    (lambda: RegistrationConfig(threads=0), "RegistrationConfig.threads"),
    (lambda: RegistrationConfig(objective={"alpha": 0.5}), "RegistrationConfig.objective"),
    (lambda: RegistrationConfig(objective=Objective(angle_bounds=((0, 90),))), "Starts.correspondence"),
    (lambda: RegistrationConfig(starts=Starts(groups=16)), "Schedule.prune"),
    (lambda: DEFAULT_CONFIG.replace(iters=3), "iters"),
    (lambda: DEFAULT_CONFIG.replace(nope=3), "nope"),
])
def test_bad_values_name_the_field(make, field):
    with pytest.raises(ValueError, match=field.replace(".", r"\.")):
        make()


def test_configs_are_frozen_and_replace_makes_copies():
    with pytest.raises(dataclasses.FrozenInstanceError):
        DEFAULT_CONFIG.starts.groups = 3
    cfg = DEFAULT_CONFIG.replace(starts={"groups": 64}, prune=8, threads=None)
    assert cfg.starts.groups == 64 and cfg.schedule.prune == 8 and cfg.threads is None
    assert DEFAULT_CONFIG.starts.groups == 256 and DEFAULT_CONFIG.schedule.prune == (32, 8)
    assert Schedule(stages=[[64, 5], [128, 5]], prune=[4]).stages == ((64, 5), (128, 5))  # lists become tuples


def test_every_core_keyword_is_one_config_field():
    fields = {(s, f.name) for s, cls in STAGES.items() for f in dataclasses.fields(cls)}
    assert set(CORE_KEYWORDS.values()) <= fields
    assert len(set(CORE_KEYWORDS.values())) == len(CORE_KEYWORDS)


# ----------------------------------------------------------------------------------------------
# presets: the thesis's values, and every old preset exactly as before the configs
# ----------------------------------------------------------------------------------------------
def test_thesis_preset_is_algorithm_3_1_with_the_thesis_settings():
    t = PRESETS["thesis"]
    assert (t.starts.groups, t.starts.rotations, t.starts.translation, t.starts.correspondence) == (32, "random",
                                                                                                   "random", 0)
    assert (t.objective.alpha, t.objective.beta, t.objective.mapping) == (0.5, 0.1, "sin")
    assert (t.schedule.stages, t.schedule.iters, t.schedule.lr, t.schedule.lr_schedule) == (None, 500, 1e-3,
                                                                                           "constant")
    assert t.schedule.prune is None and t.schedule.early_stop is None
    assert t.refinement.iters == 0 and t.selection.method == "local_cd" and t.accept.score is None
    assert t.threads is None


# the houv() keyword dicts of the presets before they became configs (houv's old defaults were the thesis's)
_OLD_DEFAULTS = dict(alpha=0.5, beta=0.1, groups=32, iters=500, lr=1e-3, d_max=None, mapping="sin", angle_bounds=None,
                     schedule=None, early_stop=None, patience=25, lr_schedule="constant", refine_iters=0,
                     refine_groups=4, refine_lr=None, prune_groups=None, init="random", select="local_cd",
                     inlier_factor=1.0, refine_objective="local_cd", refine_alpha=None, refine_by=None,
                     init_translation="random", visibility_weight=4.0)
_C2F = dict(schedule=[(256, 150), (1024, 50)], lr=3e-2, lr_schedule="cosine")
_ROBUST = dict(_C2F, refine_iters=200, refine_groups=8, refine_lr=1e-2, select="inlier")
_HALVING = dict(_ROBUST, groups=256, schedule=[(128, 40), (256, 110), (1024, 50)], prune_groups=[32, 8],
                init_translation="search")
_OLD_PRESETS = {
    "thesis": dict(groups=32, iters=500, lr=1e-3),
    "fast": dict(_C2F),
    "refine": dict(_C2F, refine_iters=100, refine_groups=4, refine_lr=3e-3),
    "robust": dict(_ROBUST),
    "robust-pruned": dict(_ROBUST, prune_groups=8),
    "robust-sfib": dict(_ROBUST, init="sfib"),
    "robust-wide": dict(_ROBUST, groups=64, prune_groups=8),
    "robust-search": dict(_ROBUST, groups=64, prune_groups=8, init_translation="search"),
    "robust-halving": dict(_HALVING),
    "halving-local": dict(_HALVING, alpha=0.3, beta=0.0),
}


@pytest.mark.parametrize("name", list(_OLD_PRESETS))
def test_every_old_preset_runs_the_core_loop_with_its_old_settings(name):
    cfg = PRESETS[name]
    assert core_kwargs(cfg) == {**_OLD_DEFAULTS, **_OLD_PRESETS[name]}
    # nothing around the core loop: no correspondence starts, no accept, no flips, torch's threads
    assert cfg.starts.correspondence == 0 and cfg.accept.score is None and cfg.selection.method != "flips"
    assert cfg.threads is None
    assert config_from_kwargs(**_OLD_PRESETS[name]) == cfg


# rotation / translation of houv(P, Q, seed=1, **old_preset_kwargs) on _pair(), computed with the code
# before the configs (commit 3a4ac63, one torch thread)
_PINNED = {
    "thesis": ([[0.757909, 0.002689, 0.652354], [-0.057058, 0.996432, 0.062183], [-0.64986, -0.084351, 0.755359]],
               [0.010031, -0.025477, 0.014599], 17),
    "robust-sfib": ([[0.819162, 1.1e-05, 0.573562], [-2.7e-05, 1.0, 2e-05], [-0.573562, -3.2e-05, 0.819162]],
                    [0.010001, -0.020002, 0.005002], 2),
    "halving-local": ([[0.819064, -0.000138, 0.573702], [0.000341, 1.0, -0.000245], [-0.573702, 0.000396, 0.819064]],
                      [0.009998, -0.019972, 0.004974], 48),
}


@pytest.mark.parametrize("name", list(_PINNED))
def test_preset_result_equals_the_code_before_the_configs(name):
    P, Q, _, _ = _pair()
    R, t, group = _PINNED[name]
    res = houv(P, Q, PRESETS[name], seed=1)
    assert res.group == group
    assert np.allclose(res.R.numpy(), R, atol=1e-4) and np.allclose(res.t.numpy(), t, atol=1e-4)


# ----------------------------------------------------------------------------------------------
# one core loop; the default config end to end; threads; the old keyword style
# ----------------------------------------------------------------------------------------------
def test_houv_equals_houv_batch_for_one_pair():
    P, Q, _, _ = _pair()
    cfg = PRESETS["robust"].replace(starts={"groups": 6}, schedule={"stages": ((80, 10), (150, 5))},
                                    refinement={"iters": 5, "groups": 2})
    a = houv(P, Q, cfg, seed=2)
    (b,) = houv_batch([P], [Q], cfg, seed=2)
    c = HOUV(cfg).register(P, Q, seed=2)
    for r in (b, c):
        assert r.group == a.group and torch.equal(r.R, a.R) and torch.equal(r.t, a.t)
        assert torch.equal(r.group_local_cd, a.group_local_cd)


def test_houv_batch_runs_pairs_together_like_single_calls():
    P, Q, _, _ = _pair()
    P2, Q2, _, _ = _pair(deg=-20.0)
    cfg = PRESETS["thesis"].replace(starts={"groups": 4}, schedule={"iters": 12, "lr": 1e-2})
    rs = houv_batch([P, P2], [Q, Q2], cfg, seed=5)
    for r, (p, q) in zip(rs, ((P, Q), (P2, Q2))):
        one = houv(p, q, cfg, seed=5)
        assert r.group == one.group and torch.allclose(r.R, one.R, atol=1e-5)


def test_default_config_recovers_a_generated_partial_pair():
    """houv(P, Q) with nothing else (DEFAULT_CONFIG: correspondence starts, accept, halving schedule,
    flips) on a virtual range-scan pair of a choosing object."""
    pytest.importorskip("open3d", reason="the default config's correspondence starts are Open3D's RANSAC")
    from fe_fast.datasets import range_scans

    pair = range_scans.make_scan_pair(0, seed=7, n_points=1024, min_overlap=0.6)
    P, Q, T = pair["P"], pair["Q"], pair["T_gt"]
    R, t = T[:3, :3], T[:3, 3]
    res = houv(P, Q)
    assert rotation_error(res.R.numpy(), R) < 2.0
    diag = float(np.linalg.norm(np.ptp(np.asarray(Q), axis=0)))
    assert translation_error(res.t.numpy(), t) < 0.02 * diag
    assert set(res.extra["stage_seconds"]) >= {"correspondence", "accept"}


def test_default_config_without_accept_runs_the_schedule_and_the_flips():
    pytest.importorskip("open3d", reason="the default config's correspondence starts are Open3D's RANSAC")
    P, Q, R, _ = _pair()
    cfg = DEFAULT_CONFIG.replace(accept=Accept(score=None), starts={"groups": 16},
                                 schedule={"stages": ((80, 10), (150, 10)), "prune": (4,)},
                                 refinement={"iters": 10, "groups": 2}, selection={"hypotheses": 2})
    res = houv(P, Q, cfg, seed=0)
    assert not res.extra.get("accepted") and "flip" in res.extra
    assert set(res.extra["stage_seconds"]) == {"correspondence", "houv", "flips"} and "accept_score" not in res.extra
    assert res.extra["correspondence_starts"].shape == (DEFAULT_CONFIG.starts.correspondence, 4, 4)
    assert rotation_error(res.R.numpy(), R) < 2.0


def test_accept_is_skipped_without_correspondence_starts():
    P, Q, R, _ = _pair()
    cfg = DEFAULT_CONFIG.replace(starts={"groups": 8, "correspondence": 0}, schedule={"stages": ((80, 10), (150, 10)),
                                                                                     "prune": (4,)},
                                 refinement={"iters": 5, "groups": 2}, selection={"hypotheses": 1, "extra_axes": 0})
    assert cfg.accept.score is not None
    res = houv(P, Q, cfg, seed=0)
    assert set(res.extra["stage_seconds"]) == {"houv", "flips"} and "accept_score" not in res.extra


def test_threads_field_sets_torch_threads_during_the_call_only(monkeypatch):
    import sys

    H = sys.modules["fe_fast.registration.houv"]  # the module (the package's attribute is the function)

    seen = []
    real = H._houv_core
    monkeypatch.setattr(H, "_houv_core", lambda *a, **k: seen.append(torch.get_num_threads()) or real(*a, **k))
    P, Q, _, _ = _pair()
    before = torch.get_num_threads()
    cfg = PRESETS["thesis"].replace(starts={"groups": 2}, schedule={"iters": 2}, threads=before + 1)
    houv(P, Q, cfg)
    assert seen == [before + 1] and torch.get_num_threads() == before


def test_old_keyword_style_warns_and_means_the_thesis_with_changes():
    P, Q, _, _ = _pair()
    with pytest.warns(FutureWarning, match="deprecated"):
        old = houv(P, Q, groups=3, iters=4, seed=1)
    new = houv(P, Q, PRESETS["thesis"].replace(starts={"groups": 3}, schedule={"iters": 4}), seed=1)
    assert torch.equal(old.R, new.R) and old.group == new.group
    with pytest.warns(FutureWarning):
        assert HOUV(groups=3).config.starts.groups == 3
    with pytest.raises(TypeError, match="either a config or"):
        houv(P, Q, PRESETS["thesis"], groups=3)
    with pytest.raises(TypeError, match="nope"), pytest.warns(FutureWarning):
        houv(P, Q, nope=1)
    with pytest.raises(ValueError, match="config must be a RegistrationConfig"):
        houv(P, Q, {"groups": 3})


def test_public_houv_takes_few_parameters():
    import inspect

    named = [p for p in inspect.signature(houv).parameters.values() if p.kind != inspect.Parameter.VAR_KEYWORD]
    assert len(named) <= 8
    assert math.isfinite(DEFAULT_CONFIG.accept.score)
