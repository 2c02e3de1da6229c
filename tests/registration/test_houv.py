"""HOUV (thesis ch. 3, algorithms 3.1 / 3.2): parameter mappings, recovery, batching, bad input."""
import math

import numpy as np
import pytest
import torch

from fe_fast.registration import HOUV, houv, houv_batch
from fe_fast.registration.config import config_from_kwargs
from fe_fast.registration.houv import (
    axis_angle_from_rotation,
    map_bounded_angle,
    map_translation,
    rodrigues,
    unmap_bounded_angle,
    unmap_translation,
)
from fe_fast.registration.metrics import rotation_error, translation_error


def run(P, Q, seed=0, init_transforms=None, viewpoints=None, device=None, **settings):
    """houv() with the core loop's keywords (``groups``, ``iters`` ...: the thesis's settings with these
    changed, :func:`~fe_fast.registration.config.config_from_kwargs`)."""
    return houv(P, Q, config_from_kwargs(**settings), seed=seed, init_transforms=init_transforms,
                viewpoints=viewpoints, device=device)


def run_batch(Ps, Qs, seed=0, init_transforms=None, viewpoints=None, device=None, **settings):
    """houv_batch() as :func:`run`."""
    return houv_batch(Ps, Qs, config_from_kwargs(**settings), seed=seed, init_transforms=init_transforms,
                      viewpoints=viewpoints, device=device)


FAST = dict(lr=3e-2, lr_schedule="cosine")


def _cloud(n=160, seed=0):
    """An asymmetric cloud: points of the bundled real bunny scan, centred, unit radius."""
    from fe_fast.datasets.bunny import bundled_pair

    P = bundled_pair()["Q"].astype(np.float64)
    rng = np.random.default_rng(seed)
    P = P[rng.choice(len(P), n, replace=False)]
    P = P - P.mean(0)
    return P / np.linalg.norm(P, axis=1).max()


def _rot(axis, deg):
    return rodrigues(torch.tensor(axis, dtype=torch.float64), torch.tensor(math.radians(deg), dtype=torch.float64)).numpy()


def test_rodrigues_orthonormal_det_one_and_matches_scipy():
    from scipy.spatial.transform import Rotation

    g = torch.Generator().manual_seed(0)
    v = torch.randn(64, 3, generator=g, dtype=torch.float64) * 3
    th = (torch.rand(64, generator=g, dtype=torch.float64) - 0.5) * 20  # any real angle
    R = rodrigues(v, th)
    eye = torch.eye(3, dtype=torch.float64).expand(64, 3, 3)
    assert torch.allclose(R @ R.transpose(1, 2), eye, atol=1e-12)
    assert torch.allclose(torch.linalg.det(R), torch.ones(64, dtype=torch.float64), atol=1e-12)
    rv = (v / v.norm(dim=1, keepdim=True) * th[:, None]).numpy()
    assert np.allclose(R.numpy(), Rotation.from_rotvec(rv).as_matrix(), atol=1e-12)


def test_rodrigues_round_trip_eq_3_3():
    g = torch.Generator().manual_seed(1)
    v = torch.randn(50, 3, generator=g, dtype=torch.float64)
    v = v / v.norm(dim=1, keepdim=True)
    th = torch.rand(50, generator=g, dtype=torch.float64) * (math.pi - 0.02) + 0.01
    axis, ang = axis_angle_from_rotation(rodrigues(v, th))
    assert torch.allclose(ang, th, atol=1e-9)
    assert torch.allclose(axis, v, atol=1e-7)
    # the angle pi (axis from the symmetric part)
    axis, ang = axis_angle_from_rotation(rodrigues(v[:5], torch.full((5,), math.pi, dtype=torch.float64)))
    assert torch.allclose(ang, torch.full((5,), math.pi, dtype=torch.float64), atol=1e-6)
    assert torch.allclose(rodrigues(axis, ang), rodrigues(v[:5], ang), atol=1e-6)


@pytest.mark.parametrize("mapping", ["sin", "sigmoid"])
def test_translation_mapping_round_trip_eq_3_7_3_8(mapping):
    g = torch.Generator().manual_seed(2)
    d_max = 1.7
    t = torch.randn(40, 3, generator=g, dtype=torch.float64)
    t = t / t.norm(dim=1, keepdim=True) * (torch.rand(40, 1, generator=g, dtype=torch.float64) * 0.9 + 0.05) * d_max
    u, d = unmap_translation(t, d_max, mapping)
    assert torch.allclose(map_translation(u * 3.0, d, d_max, mapping), t, atol=1e-10)  # |u| does not matter
    # the distance never exceeds d_max, whatever the unconstrained variable
    big = torch.linspace(-50, 50, 101, dtype=torch.float64)
    tt = map_translation(torch.ones(101, 3, dtype=torch.float64), big, d_max, mapping)
    assert float(tt.norm(dim=1).max()) <= d_max + 1e-12


def test_sin_mapping_is_eq_3_8():
    d = torch.tensor([0.3], dtype=torch.float64)
    u = torch.tensor([[0.0, 2.0, 0.0]], dtype=torch.float64)
    t = map_translation(u, d, 2.0, "sin")
    assert torch.allclose(t, torch.tensor([[0.0, 0.5 * (2 + 2 * math.sin(0.3)), 0.0]], dtype=torch.float64))


def test_bounded_angle_round_trip_eq_3_12():
    lo, hi = math.radians(45), math.radians(90)
    x = torch.linspace(-20, 20, 401, dtype=torch.float64)
    a = map_bounded_angle(x, lo, hi)
    assert float(a.min()) >= lo - 1e-12 and float(a.max()) <= hi + 1e-12
    th = torch.linspace(lo + 1e-3, hi - 1e-3, 50, dtype=torch.float64)
    assert torch.allclose(map_bounded_angle(unmap_bounded_angle(th, lo, hi), lo, hi), th, atol=1e-10)


def test_exact_recovery_full_overlap():
    P = _cloud(160)
    R = _rot([0.3, -1.0, 0.4], 50)
    t = np.array([0.2, -0.1, 0.15])
    Q = P @ R.T + t
    res = run(P, Q, groups=8, iters=200, seed=0, **FAST)
    assert rotation_error(res.R, R) < 0.2
    assert translation_error(res.t, t) < 2e-3
    assert res.local_cd < 1e-5
    # result consistency
    T = res.transform.numpy()
    assert np.allclose(T[:3, :3], res.R.numpy()) and np.allclose(T[:3, 3], res.t.numpy())
    assert np.allclose(T[3], [0, 0, 0, 1])
    assert res.history.shape == (200,) and res.all_R.shape == (8, 3, 3) and res.group_local_cd.shape == (8,)
    assert res.group == int(torch.argmin(res.group_local_cd))  # algorithm 3.1 line 10
    Rd = torch.linalg.det(res.R)
    assert abs(float(Rd) - 1) < 1e-5
    assert np.allclose(res.apply(P).numpy(), Q, atol=5e-3)


def test_units_and_offsets_do_not_matter():
    """Centring and common scaling (module docstring): the same problem in metres, far from the
    origin, is solved as well."""
    P = _cloud(160)
    R = _rot([0.3, -1.0, 0.4], 50)
    t = np.array([0.2, -0.1, 0.15])
    c = np.array([10.0, -3.0, 2.0])
    Ps, Qs = 0.08 * P + c, 0.08 * (P @ R.T + t) + c
    ts = 0.08 * t + c - R @ c  # Qs = R Ps + ts
    res = run(Ps, Qs, groups=8, iters=200, seed=0, **FAST)
    assert rotation_error(res.R, R) < 0.2
    # the translation carries the rotation error times the 10 m lever arm: compare aligned points
    assert np.abs(res.apply(Ps).numpy() - Qs).max() < 0.08 * 5e-3


def test_partial_pair_within_two_degrees():
    from fe_fast.datasets.partial_pairs import make_pair

    # at 256 points the Chamfer floor of two independent samplings hides a few degrees: finish at 1024
    pair = make_pair(3, protocol="modelnet", n_points=1024, meshes=("bunny",), dense=4000, min_overlap=0.6)
    res = run(pair["P"], pair["Q"], groups=16, schedule=[(256, 150), (1024, 40)], seed=0, **FAST)
    T = pair["T_gt"]
    assert rotation_error(res.R, T[:3, :3]) < 2.0


def test_groups_batched_equal_one_group_alone():
    P = _cloud(128, seed=1)
    Q = P @ _rot([0, 0, 1], 70).T + 0.1
    many = run(P, Q, groups=4, iters=25, seed=5, lr=1e-2)
    one = run(P, Q, groups=1, iters=25, seed=5, lr=1e-2)
    assert torch.allclose(many.all_R[0], one.R, atol=1e-5)
    assert torch.allclose(many.all_t[0], one.t, atol=1e-5)
    assert abs(float(many.group_local_cd[0]) - one.local_cd) < 1e-6


def test_pairs_batched_equal_single_calls():
    P1, P2 = _cloud(100, seed=2), _cloud(120, seed=3)
    Q1 = P1 @ _rot([1, 0, 0], 20).T
    Q2 = P2[:90] @ _rot([0, 1, 0], 35).T + 0.05
    both = run_batch([P1, P2], [Q1, Q2], groups=3, iters=20, seed=1, lr=1e-2)
    for (P, Q), r in zip([(P1, Q1), (P2, Q2)], both):
        s = run(P, Q, groups=3, iters=20, seed=1, lr=1e-2)
        assert torch.allclose(r.all_R, s.all_R, atol=1e-4)
        assert r.group == s.group


def test_angle_bounds_keep_each_group_in_its_range():
    P = _cloud(100)
    Q = P @ _rot([0.2, 1, 0], 100).T
    bounds = [[0, 45], [45, 90], [90, 135], [135, 180]]
    res = run(P, Q, groups=8, iters=40, seed=0, angle_bounds=bounds, lr=1e-2)
    _, ang = axis_angle_from_rotation(res.all_R)
    ang = torch.rad2deg(ang)
    for g in range(8):
        lo, hi = bounds[g % 4]
        assert lo - 1e-3 <= float(ang[g]) <= hi + 1e-3


def test_class_equals_function_and_options():
    P = _cloud(96)
    Q = P @ _rot([1, 1, 0], 25).T
    a = HOUV(config_from_kwargs(groups=2, iters=15, lr=1e-2, mapping="sigmoid")).register(P, Q)
    b = run(P, Q, groups=2, iters=15, lr=1e-2, mapping="sigmoid")
    assert torch.allclose(a.R, b.R) and a.group == b.group
    es = run(P, P, groups=2, iters=400, lr=1e-2, early_stop=1e-3, patience=10)
    assert es.iters < 400
    sc = run(P, Q, groups=2, schedule=[(32, 10), (96, 5)], lr=1e-2)
    assert sc.iters == 15 and sc.history.shape == (15,)


def _partial_pair(n=320, seed=0):
    """Two overlapping slabs of one bunny sample (x < 0.45 and x > -0.45 of the unit-radius cloud),
    the second moved by a known rigid transform: a partial pair whose overlap points coincide
    exactly at the true pose."""
    C = _cloud(n, seed=seed)
    R = _rot([0.3, -1.0, 0.4], 40)
    t = np.array([0.1, -0.05, 0.1])
    return C[C[:, 0] < 0.45], C[C[:, 0] > -0.45] @ R.T + t, R, t


def test_projected_terms_are_biased_on_partial_pairs():
    """Why the refinement drops beta: eq. 3-10 matches *all* points, so at the true pose of a partial
    pair the hybrid loss (eq. 3-11) still has a large gradient, the local Chamfer (eq. 3-9) nearly none."""
    from fe_fast.registration.houv import _hybrid_terms

    P, Q, R, t = _partial_pair()
    P_ = torch.tensor(P, dtype=torch.float64)
    Q_ = torch.tensor(Q, dtype=torch.float64)
    w = torch.zeros(3, dtype=torch.float64, requires_grad=True)  # small rotation about the truth
    dt = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    Rt = torch.tensor(R, dtype=torch.float64)

    def grad(beta):
        w.grad = dt.grad = None
        Rw = rodrigues(w + 1e-12, w.norm() + 1e-12) @ Rt
        local, hyb = _hybrid_terms(P_[None], Q_[None], Rw[None], (torch.tensor(t) + dt)[None], 0.5, beta)
        hyb.sum().backward()
        return float(torch.cat([w.grad, dt.grad]).norm())

    assert grad(0.1) > 5 * grad(0.0)


def test_refinement_removes_projected_bias_on_partial_pair():
    P, Q, R, t = _partial_pair()
    base = dict(groups=8, iters=150, seed=0, **FAST)
    plain = run(P, Q, **base)
    ref = run(P, Q, refine_iters=150, refine_groups=4, refine_lr=1e-2, **base)
    e_plain, e_ref = rotation_error(plain.R, R), rotation_error(ref.R, R)
    assert e_ref < 2.0 and e_ref < e_plain
    assert translation_error(ref.t, t) < 0.05
    # the schedule is the same, so plain's groups are the state before refinement: the answer is one
    # of the 4 groups with the smallest local Chamfer then, the other groups are left as they were
    top = set(torch.topk(plain.group_local_cd, 4, largest=False).indices.tolist())
    assert ref.group in top
    rest = [g for g in range(8) if g not in top]
    assert torch.allclose(ref.all_R[rest], plain.all_R[rest], atol=1e-6)
    assert ref.iters == 300 and ref.history.shape == (300,) and torch.isfinite(ref.history).all()


def test_refine_options():
    P = _cloud(96)
    Q = P @ _rot([1, 1, 0], 25).T
    r = run(P, Q, groups=3, iters=10, lr=1e-2, refine_iters=5, refine_groups=10)  # clamped to 3 groups
    assert r.iters == 15 and r.history.shape == (15,)
    r = run(P, Q, groups=4, iters=10, lr=1e-2, refine_iters=5, refine_groups=1)
    assert r.iters == 15 and torch.isfinite(r.history).all()  # the only refined group is the answer
    for bad, msg in (({"refine_iters": -1}, "refine_iters"), ({"refine_groups": 0}, "refine_groups"),
                     ({"refine_lr": 0.0}, "refine_lr")):
        with pytest.raises(ValueError, match=msg):
            run(P, Q, groups=1, iters=1, **bad)


def _pairwise_deg(R):
    R = torch.as_tensor(R, dtype=torch.float64)
    rel = R[:, None].transpose(-1, -2) @ R[None]
    tr = rel[..., 0, 0] + rel[..., 1, 1] + rel[..., 2, 2]
    d = torch.rad2deg(torch.arccos(((tr - 1) / 2).clamp(-1, 1)))
    return d + torch.eye(len(R), dtype=torch.float64) * 1e3


def test_super_fibonacci_init_covers_so3_evenly():
    """init="sfib" (issue 3, too few good starts): 32 Super-Fibonacci rotations are at least 40 degrees
    apart (32 i.i.d. uniform rotations: about 20); the seeded offset moves the set rigidly."""
    from fe_fast.registration.houv import _init_groups, super_fibonacci

    q = super_fibonacci(32)
    assert torch.allclose(q.norm(dim=1), torch.ones(32, dtype=torch.float64))
    sets = []
    for seed in (0, 1):
        v, th, _, _ = _init_groups(32, seed, None, "sin", init="sfib")
        R = rodrigues(v, th)
        assert float(_pairwise_deg(R).min()) > 40
        sets.append(R)
        v2, th2, _, _ = _init_groups(32, seed, None, "sin", init="sfib")
        assert torch.equal(v, v2) and torch.equal(th, th2)  # deterministic for a seed
    assert not torch.allclose(sets[0], sets[1])
    assert torch.allclose(_pairwise_deg(sets[0]), _pairwise_deg(sets[1]), atol=1e-6)
    v, th, _, _ = _init_groups(32, 0, None, "sin", init="random")
    assert float(_pairwise_deg(rodrigues(v, th)).min()) < 40  # the thesis's random starts cluster


def test_super_fibonacci_init_with_angle_bounds_eq_3_12():
    """HOUV_pri with init="sfib": every group starts inside its eq. 3-12 range, the groups of one range
    spread their axes and angles over the range."""
    from fe_fast.registration.houv import _init_groups, _parse_bounds

    bounds = [[0, 45], [45, 90], [90, 135], [135, 180]]
    b = _parse_bounds(bounds)
    v, th, _, _ = _init_groups(32, 3, b, "sin", init="sfib")
    for k, (lo, hi) in enumerate(bounds):
        idx = list(range(k, 32, 4))
        ang = torch.rad2deg(map_bounded_angle(th[idx], math.radians(lo), math.radians(hi)))
        assert bool(((ang > lo) & (ang < hi)).all())
        assert float(ang.max() - ang.min()) > 0.5 * (hi - lo)  # uniform-rotation density: few near 0
        axes = v[idx] / v[idx].norm(dim=1, keepdim=True)
        cos = (axes @ axes.T - 2 * torch.eye(8, dtype=torch.float64)).max()
        assert float(cos) < math.cos(math.radians(45))  # 8 axes at least 45 degrees apart


@pytest.mark.parametrize("init", ["random", "sfib"])
def test_angle_bounds_hold_for_both_inits(init):
    P = _cloud(100)
    Q = P @ _rot([0.2, 1, 0], 100).T
    bounds = [[0, 45], [45, 90], [90, 135], [135, 180]]
    res = run(P, Q, groups=8, iters=20, seed=0, angle_bounds=bounds, lr=1e-2, init=init)
    _, ang = axis_angle_from_rotation(res.all_R)
    for g in range(8):
        lo, hi = bounds[g % 4]
        assert lo - 1e-3 <= float(torch.rad2deg(ang[g])) <= hi + 1e-3


def test_prune_groups_continues_only_the_best():
    P = _cloud(128, seed=4)
    Q = P @ _rot([0, 1, 1], 60).T
    kw = dict(groups=6, lr=3e-2, seed=2, init="sfib")  # constant rate: the first stage is the same
    first = run(P, Q, schedule=[(64, 20)], **kw)
    pr = run(P, Q, schedule=[(64, 20), (128, 10)], prune_groups=2, **kw)
    assert pr.iters == 30 and pr.history.shape == (30,) and torch.isfinite(pr.history).all()
    top = torch.topk(first.group_local_cd, 2, largest=False).indices.tolist()
    assert pr.group in top
    rest = [g for g in range(6) if g not in top]
    assert torch.allclose(pr.all_R[rest], first.all_R[rest], atol=1e-6)  # left after the first stage
    with pytest.raises(ValueError, match="prune_groups"):
        run(P, Q, groups=2, iters=1, prune_groups=0)


def test_prune_groups_per_stage_counts():
    """prune_groups=[4, 2]: after stage 0 the 4 best groups go on, after stage 1 the 2 best of those;
    an int is the one-count list; groups that stop keep their values from when they stopped."""
    P = _cloud(128, seed=4)
    Q = P @ _rot([0, 1, 1], 60).T
    kw = dict(groups=8, lr=3e-2, seed=2, init="sfib")  # constant rate: shorter runs are prefixes
    sched = [(32, 10), (64, 10), (128, 5)]
    first = run(P, Q, schedule=sched[:1], **kw)
    two = run(P, Q, schedule=sched[:2], prune_groups=[4], **kw)
    three = run(P, Q, schedule=sched, prune_groups=[4, 2], **kw)
    assert torch.equal(run(P, Q, schedule=sched[:2], prune_groups=4, **kw).all_R, two.all_R)

    def moved(a, b):
        return {g for g in range(8) if not torch.allclose(a.all_R[g], b.all_R[g], atol=1e-7)}

    went_on = moved(two, first)
    last = moved(three, two)
    assert len(went_on) == 4 and len(last) == 2 and last <= went_on and three.group in last
    assert three.iters == 25 and three.history.shape == (25,) and torch.isfinite(three.history).all()
    for bad, msg in (([4, 2, 1], "stage boundaries"), ([2, 4], "increase"), ([0], "prune_groups"),
                     (2.5, "prune_groups")):
        with pytest.raises(ValueError, match=msg):
            run(P, Q, groups=8, schedule=sched, prune_groups=bad)


def test_translation_search_starts_near_the_true_offset():
    """init_translation="search": with the right rotation, the chosen start translation is one of
    the candidates and much nearer the true offset than a start near zero (on partial views the
    centred clouds are offset by the distance between the two views' centroids)."""
    from fe_fast.registration.houv import _search_translation, _translation_candidates

    C = torch.tensor(_cloud(600, seed=6), dtype=torch.float32)
    Pp, Qp = C[C[:, 0] < 0.2], C[C[:, 0] > -0.2]
    Pn, Qn = Pp - Pp.mean(0), Qp - Qp.mean(0)
    t_true = Pp.mean(0) - Qp.mean(0)  # Qn = Pn + t_true on the overlap
    assert float(t_true.norm()) > 0.2  # a random start lies within 0.25 of zero, in a random direction
    t = _search_translation([Pn], [Qn], torch.eye(3)[None], torch.ones(1), 0.5, 1, 128, seed=0)[0]
    assert any(torch.allclose(t, c) for c in _translation_candidates())
    assert float((t - t_true).norm()) < 0.7 * float(t_true.norm())


def test_translation_search_registers_partial_pair_and_keeps_warm_starts():
    P, Q, R, t = _partial_pair()
    res = run(P, Q, groups=8, iters=150, seed=0, refine_iters=150, refine_groups=4, refine_lr=1e-2,
               init_translation="search", **FAST)
    assert rotation_error(res.R, R) < 2.0 and translation_error(res.t, t) < 0.05
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = R, t
    held = run(P, Q, groups=4, iters=0, seed=3, init_transforms=T, init_translation="search")
    assert np.allclose(held.all_t[3].numpy(), t, atol=1e-4)  # the warm start's translation is kept
    plain = run(P, Q, groups=4, iters=0, seed=3)
    assert torch.allclose(held.all_R[:3], plain.all_R[:3])  # the search moves translations only
    assert not torch.allclose(held.all_t[:3], plain.all_t[:3])
    with pytest.raises(ValueError, match="init_translation"):
        HOUV(config_from_kwargs(init_translation="grid"))


def _low_overlap_plates(seed=0, n=1200):
    """Schematic of issue 3's failure kind (2): Q is a unit plate (z = 0); P is 30 % of that plate
    (x < 0.3, resampled) plus a wall at x = 0 that Q does not contain. At the truth (identity) only
    30 % of P matches, fewer than alpha = 0.5, so the local Chamfer must count wall points; the wall
    laid flat just above the plate (rotation 90 degrees about y, 3 cm up) matches 70 % loosely."""
    rng = np.random.default_rng(seed)
    Q = np.c_[rng.uniform(0, 1, (n, 2)), np.zeros(n)]
    k = int(0.3 * n)
    plate = np.c_[rng.uniform(0, 0.3, k), rng.uniform(0, 1, k), np.zeros(k)]
    wall = np.c_[np.zeros(n - k), rng.uniform(0, 1, n - k), rng.uniform(0.02, 0.72, n - k)]
    return np.r_[plate, wall], Q, _rot([0, 1, 0], 90), np.array([-0.02, 0.0, 0.03])


@pytest.mark.parametrize("factor", [1.0, 2.0])
def test_inlier_score_prefers_truth_below_alpha_overlap(factor):
    from fe_fast.registration.houv import _hybrid_terms, _inlier_score, _spacing

    P, Q, R_wrong, t_wrong = _low_overlap_plates()
    P_ = torch.tensor(P, dtype=torch.float32)
    Q_ = torch.tensor(Q, dtype=torch.float32)
    tau = factor * max(_spacing(P_), _spacing(Q_))
    assert 0.005 * factor < tau < 0.015 * factor  # spacing of 1200 random points on a unit plate

    def scores(R, t):
        R = torch.tensor(R, dtype=torch.float32)[None]
        t = torch.tensor(t, dtype=torch.float32)[None]
        local, _ = _hybrid_terms(P_[None], Q_[None], R, t, 0.5, 0.0)
        return float(local), float(_inlier_score(P_[None], Q_[None], R, t, torch.tensor([tau * tau])))

    local_true, inl_true = scores(np.eye(3), np.zeros(3))
    local_wrong, inl_wrong = scores(R_wrong, t_wrong)
    assert local_wrong < 0.5 * local_true  # algorithm 3.1's criterion picks the wrong pose
    assert inl_true < inl_wrong - 0.1  # the inlier score does not (factor 1: 1.8 vs 2.0; 2: 1.6 vs 2.0)


@pytest.mark.parametrize("select", ["local_cd", "inlier"])
def test_select_chooses_by_its_criterion(select):
    P = _cloud(128, seed=6)
    Q = P[:100] @ _rot([1, 0, 1], 50).T
    r = run(P, Q, groups=6, iters=20, lr=3e-2, init="sfib", select=select, seed=1)
    crit = r.group_local_cd if select == "local_cd" else r.extra["group_score"]
    assert r.group == int(torch.argmin(crit))
    assert ("tau" in r.extra) == (select == "inlier")
    # without refinement or pruning the groups' optimisation does not depend on the criterion
    other = run(P, Q, groups=6, iters=20, lr=3e-2, init="sfib", seed=1,
                 select="inlier" if select == "local_cd" else "local_cd")
    assert torch.allclose(r.all_R, other.all_R)


def test_inlier_refinement_objective_runs():
    P = _cloud(128, seed=7)
    Q = P @ _rot([0, 0, 1], 10).T
    r = run(P, Q, groups=2, iters=10, lr=1e-2, refine_iters=5, refine_groups=1, select="inlier",
             refine_objective="inlier")
    assert r.iters == 15 and torch.isfinite(r.history).all() and r.extra["tau"] > 0
    with pytest.raises(ValueError, match="refine_objective"):
        run(P, Q, groups=1, iters=1, refine_objective="icp")
    r = run(P, Q, groups=2, iters=10, lr=1e-2, refine_iters=5, refine_groups=1, refine_alpha=0.3)
    assert r.iters == 15
    with pytest.raises(ValueError, match="refine_alpha"):
        run(P, Q, groups=1, iters=1, refine_alpha=1.5)
    # refine_by: which groups are refined (default: the select criterion)
    base = dict(groups=4, iters=10, lr=1e-2, select="inlier", seed=3)
    plain = run(P, Q, **base)
    r = run(P, Q, refine_iters=3, refine_groups=1, refine_by="local_cd", **base)
    assert r.group == int(torch.argmin(plain.group_local_cd))
    with pytest.raises(ValueError, match="refine_by"):
        run(P, Q, groups=1, iters=1, refine_by="loss")


def test_inverse_mappings_give_unit_directions_at_identity_and_zero_translation():
    """axis_angle_from_rotation(I) and unmap_translation(0) still return unit vectors (the warm start
    at the identity needs them: a zero axis or direction has no gradient through v / |v|)."""
    axis, ang = axis_angle_from_rotation(torch.eye(3, dtype=torch.float64)[None])
    assert torch.allclose(axis.norm(dim=-1), torch.ones(1, dtype=torch.float64)) and float(ang) == 0.0
    assert torch.allclose(rodrigues(axis, ang)[0], torch.eye(3, dtype=torch.float64))
    u, d = unmap_translation(torch.zeros(2, 3, dtype=torch.float64), 1.0)
    assert torch.allclose(u.norm(dim=-1), torch.ones(2, dtype=torch.float64))
    assert map_translation(u, d, 1.0).abs().max() < 1e-6


def test_warm_start_is_the_last_group_and_reproduces_its_transform():
    """init_transforms: the start maps back to the given transform exactly (eq. 3-3, 3-8 inverted in
    the normalised frame); the other groups start as without it; the class passes it through."""
    P = _cloud(150, seed=4)
    R = _rot([0.2, 1.0, -0.5], 120)
    t = np.array([0.3, 0.1, -0.2])
    Q = P @ R.T + t
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = R, t
    c = np.array([5.0, 1.0, -2.0])  # off-centre input: the start must survive the normalisation
    Tc = np.eye(4)
    Tc[:3, :3], Tc[:3, 3] = R, t + c - R @ c
    zero = run(P + c, Q + c, groups=4, iters=0, seed=3, init_transforms=Tc)
    assert torch.allclose(zero.all_R[3], torch.tensor(R), atol=1e-5)
    assert np.allclose(zero.all_t[3].numpy(), Tc[:3, 3], atol=1e-4)
    plain = run(P + c, Q + c, groups=4, iters=0, seed=3)
    assert torch.allclose(zero.all_R[:3], plain.all_R[:3])
    assert zero.group == 3 and zero.local_cd < 1e-8
    # two starts, identity among them (no axis): the optimisation keeps the exact one
    both = HOUV(config_from_kwargs(groups=4, iters=20, lr=1e-2)).register(P, Q, init_transforms=np.stack([np.eye(4), T]),
                                                                       seed=3)
    assert both.group == 3 and rotation_error(both.R, R) < 1e-3  # held during the schedule
    assert rotation_error(both.all_R[2], np.eye(3)) < 1e-3
    assert rotation_error(both.all_R[0], plain.all_R[0]) > 0  # the random groups moved
    refined = run(P, Q, groups=4, iters=20, seed=3, lr=1e-2, refine_iters=5, refine_groups=1, refine_lr=1e-2,
                   init_transforms=np.stack([np.eye(4), T]))
    assert refined.group == 3 and rotation_error(refined.R, R) < 1.0  # refined from the held start
    batch = run_batch([P, P], [Q, Q], groups=2, iters=0, seed=3, init_transforms=[None, T])
    assert rotation_error(batch[1].all_R[1], R) < 1e-3 and rotation_error(batch[0].all_R[1], R) > 1.0


@pytest.mark.parametrize("starts, kwargs, msg", [
    (np.eye(3), {}, "4x4"),
    (np.full((4, 4), np.nan), {}, "NaN"),
    (np.diag([1.0, 1.0, -1.0, 1.0]), {}, "rotation"),
    (np.stack([np.eye(4)] * 3), {}, "3 starts for 2 groups"),
    (np.eye(4), {"angle_bounds": [[0, 90]]}, "angle_bounds"),
])
def test_warm_start_bad_input(starts, kwargs, msg):
    P = _cloud(32)
    with pytest.raises(ValueError, match=msg):
        run(P, P, groups=2, iters=1, init_transforms=starts, **kwargs)
    with pytest.raises(ValueError, match="one entry per pair"):
        run_batch([P, P], [P, P], groups=2, iters=1, init_transforms=[np.eye(4)])


@pytest.mark.parametrize(
    "kwargs, P, msg",
    [
        ({}, np.zeros((0, 3)), "empty"),
        ({}, np.array([[0.0, np.nan, 1.0], [1, 2, 3]]), "NaN"),
        ({}, np.zeros((5, 2)), "shape"),
        ({"alpha": 0.0}, None, "alpha"),
        ({"mapping": "tanh"}, None, "mapping"),
        ({"angle_bounds": [[30, 10]]}, None, "angle_bounds"),
        ({"groups": 0}, None, "groups"),
        ({"d_max": -1.0}, None, "d_max"),
        ({"lr_schedule": "step"}, None, "lr_schedule"),
        ({"init": "grid"}, None, "init"),
        ({"select": "fitness"}, None, "select"),
        ({"inlier_factor": 0.0}, None, "inlier_factor"),
    ],
)
def test_bad_input(kwargs, P, msg):
    good = _cloud(32)
    with pytest.raises(ValueError, match=msg):
        run(good if P is None else P, good, **{"iters": 1, "groups": 1, **kwargs})
