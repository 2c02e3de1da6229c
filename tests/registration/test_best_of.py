"""houv_best_of: several HOUV settings, the answer with the lowest selection score."""
import numpy as np
import pytest
import torch

from fe_fast.registration import houv
from fe_fast.registration.best_of import houv_best_of
from fe_fast.registration.config import config_from_kwargs

_SMALL = dict(groups=8, schedule=[(64, 20), (128, 10)], lr=3e-2, lr_schedule="cosine", refine_iters=10,
              refine_groups=2, refine_lr=1e-2, select="inlier")


def small(**changes):
    """A small inlier-selecting config (the thesis's settings with the core keywords of _SMALL and ``changes``)."""
    return config_from_kwargs(**{**_SMALL, **changes})


SMALL = small()


def _pair():
    rng = np.random.default_rng(0)
    Q = rng.normal(size=(150, 3)).astype(np.float32) * np.array([1.0, 0.6, 0.3], dtype=np.float32)
    c, s = np.cos(0.4), np.sin(0.4)
    R = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]], dtype=np.float32)
    P = (Q[:120] - np.array([0.1, 0.0, 0.0], dtype=np.float32)) @ R
    return P, Q


def test_best_of_returns_the_run_with_the_lowest_selection_score(monkeypatch):
    import fe_fast.registration.best_of as best_of_module

    P, Q = _pair()
    settings = [small(alpha=0.5, beta=0.1), small(alpha=0.3, beta=0.0), small(groups=4)]
    alone = [houv(P, Q, s, seed=3) for s in settings]
    scores = [float(r.extra["group_score"][r.group]) for r in alone]
    run_seconds = []

    def recording_houv(*args, **kwargs):
        res = houv(*args, **kwargs)
        run_seconds.append(res.seconds)
        return res

    monkeypatch.setattr(best_of_module, "houv", recording_houv)
    best = houv_best_of(P, Q, settings, seed=3)
    k = int(np.argmin(scores))
    assert best.extra["best_of"] == pytest.approx(scores)
    assert best.extra["best_of_index"] == k
    assert torch.allclose(best.transform, alone[k].transform)
    assert len(run_seconds) == 3 and best.seconds == pytest.approx(sum(run_seconds))  # the runs' total


def test_accept_score_stops_at_the_first_good_enough_run(monkeypatch):
    import fe_fast.registration.best_of as best_of_module

    P, Q = _pair()
    settings = [small(alpha=0.3, beta=0.0), small(alpha=0.5, beta=0.1)]
    first = houv(P, Q, settings[0], seed=3)
    s0 = float(first.extra["group_score"][first.group])
    calls = []

    def counting_houv(P, Q, config, **kwargs):
        calls.append(config.objective.alpha)
        return houv(P, Q, config, **kwargs)

    monkeypatch.setattr(best_of_module, "houv", counting_houv)
    accepted = houv_best_of(P, Q, settings, accept_score=s0, seed=3)  # score <= threshold: stop
    assert calls == [0.3] and accepted.extra["best_of"] == pytest.approx([s0])
    assert accepted.extra["best_of_index"] == 0 and torch.allclose(accepted.transform, first.transform)
    calls.clear()
    both = houv_best_of(P, Q, settings, accept_score=s0 - 1e-3, seed=3)  # just above: the second runs
    assert calls == [0.3, 0.5] and len(both.extra["best_of"]) == 2
    assert both.extra["best_of_index"] == int(np.argmin(both.extra["best_of"]))


def test_best_of_treats_an_explicit_default_as_omitted(monkeypatch):
    import fe_fast.registration.best_of as best_of_module

    calls = []
    monkeypatch.setattr(best_of_module, "houv", lambda *a, **k: calls.append(k) or houv(*a, **k))
    P, Q = _pair()
    res = houv_best_of(P, Q, [SMALL, small(inlier_factor=1.0, visibility_weight=4.0)], seed=3)
    assert len(calls) == 2 and len(res.extra["best_of"]) == 2


def test_best_of_needs_comparable_scores():
    P, Q = _pair()
    with pytest.raises(ValueError, match="select='inlier'"):
        houv_best_of(P, Q, [SMALL, small(select="local_cd")])
    with pytest.raises(ValueError, match="inlier_factor"):
        houv_best_of(P, Q, [SMALL, small(inlier_factor=2.0)])
    with pytest.raises(ValueError, match="visibility_weight"):
        houv_best_of(P, Q, [SMALL, small(visibility_weight=1.0)])
    with pytest.raises(ValueError, match="at least one"):
        houv_best_of(P, Q, [])
    with pytest.raises(ValueError, match="accept_score"):
        houv_best_of(P, Q, [SMALL, SMALL], accept_score=float("nan"))
