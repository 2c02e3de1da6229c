"""Flip candidates, local refinement and the flip-aware selection score (fe_fast.registration.selection)."""
import functools
import math

import numpy as np
import pytest
import torch

pytest.importorskip("open3d", reason="the virtual range scans need open3d (pip install 'fe-fast[registration]')")

from fe_fast.datasets import range_scans as rs  # noqa: E402
from fe_fast.registration import selection as sel  # noqa: E402
from fe_fast.registration.houv import RegistrationResult, _inlier_score, _spacing  # noqa: E402


def _angle(Ra, Rb):
    Ra, Rb = np.asarray(Ra, np.float64), np.asarray(Rb, np.float64)
    return math.degrees(math.acos(np.clip((np.trace(Ra @ Rb.T) - 1) / 2, -1, 1)))


@functools.lru_cache(maxsize=None)
def _pair(obj, index=0, seed=11, n=1024):
    p = rs.make_scan_pair(index, objects=(obj,), seed=seed, n_points=n)
    return p, torch.tensor(p["P"], dtype=torch.float64), torch.tensor(p["Q"], dtype=torch.float64)


def test_estimate_normals_plane_and_orientation():
    g = torch.linspace(-1, 1, 20, dtype=torch.float64)
    x, y = torch.meshgrid(g, g, indexing="ij")
    pts = torch.stack([x.reshape(-1), y.reshape(-1), 0.1 * x.reshape(-1)], 1)  # a tilted plane
    n = sel.estimate_normals(pts, k=8)
    true = torch.tensor([-0.1, 0.0, 1.0], dtype=torch.float64) / math.sqrt(1.01)
    assert torch.allclose((n @ true).abs(), torch.ones(400, dtype=torch.float64), atol=1e-9)
    up = sel.estimate_normals(pts, k=8, viewpoint=(0.0, 0.0, 5.0))
    assert bool(((up @ true) > 0).all())
    assert torch.equal(pts[:, 2], 0.1 * x.reshape(-1))  # input untouched
    with pytest.raises(ValueError, match="k must be"):
        sel.estimate_normals(pts, k=2)


def test_flip_candidates_are_rigid_and_include_half_turns():
    p, P, Q = _pair("blob:0")
    T = torch.tensor(p["T_gt"])
    C, labels = sel.flip_candidates(P, Q, T)
    assert labels[0] == "pose" and torch.equal(C[0], T)
    assert C.shape == (len(labels), 4, 4) and len(labels) >= 4
    R = C[:, :3, :3]
    assert torch.allclose(R @ R.transpose(1, 2), torch.eye(3, dtype=torch.float64).expand_as(R), atol=1e-9)
    assert torch.allclose(torch.det(R), torch.ones(len(labels), dtype=torch.float64), atol=1e-9)
    half = [k for k, lab in enumerate(labels) if lab.startswith("half-turn")]
    assert len(half) >= 3
    for k in half:
        assert _angle(C[k, :3, :3], T[:3, :3]) == pytest.approx(180.0, abs=1e-4)
    # no two candidates are near-duplicates (min_angle 10 degrees)
    for i in range(len(labels)):
        for j in range(i):
            close_t = float((C[i, :3, 3] - C[j, :3, 3]).norm()) < 0.01
            assert _angle(C[i, :3, :3], C[j, :3, :3]) >= 10 or not close_t
    Ce, labels_e = sel.flip_candidates(P, Q, T, extra_axes=12)
    extra = [k for k, lab in enumerate(labels_e) if lab.startswith("half-turn axis")]
    assert len(labels_e) > len(labels) and len(extra) >= 6  # some fall within 10 degrees of a principal axis
    for k in extra:
        assert _angle(Ce[k, :3, :3], T[:3, :3]) == pytest.approx(180.0, abs=1e-4)
    with pytest.raises(ValueError, match="extra_axes"):
        sel.flip_candidates(P, Q, T, extra_axes=-1)
    C2, labels2 = sel.flip_candidates(P, Q, T)
    assert torch.equal(C, C2) and labels == labels2
    with pytest.raises(ValueError, match="T must"):
        sel.flip_candidates(P, Q, torch.eye(3))
    with pytest.raises(ValueError, match="at least 3"):
        sel.flip_candidates(P[:2], Q, T)
    with pytest.raises(ValueError, match="NaN"):
        sel.flip_candidates(P, Q * float("nan"), T)


def test_refine_local_converges_from_a_nearby_pose():
    p, P, Q = _pair("sq:1")
    T = torch.tensor(p["T_gt"])
    a = torch.tensor([0.3, -0.5, 0.8], dtype=torch.float64)
    start = sel._rigid(sel._rotvec(a / a.norm() * math.radians(6)), torch.tensor([0.01, -0.005, 0.004])) @ T
    P0 = P.clone()
    out = sel.refine_local(P, Q, start, iters=25)
    assert torch.equal(P, P0)  # inputs untouched
    assert _angle(start[:3, :3], T[:3, :3]) > 5.5
    assert _angle(out[0, :3, :3], T[:3, :3]) < 1.0
    assert float((out[0, :3, 3] - T[:3, 3]).norm()) < 0.004  # 4 mm on an object 0.25 m across


@pytest.mark.parametrize("obj", ["blob:0", "sq:1", "nearsym:3"])
def test_score_ranks_truth_above_refined_flips(obj):
    """Every flip candidate of the true pose, refined to its own local optimum, scores worse than the
    refined truth; with the sensors' positions the free-space share adds to the flips' scores."""
    p, P, Q = _pair(obj)
    T_gt = torch.tensor(p["T_gt"])
    truth = sel.refine_local(P, Q, T_gt, iters=15, radius=0.01)[0]
    assert _angle(truth[:3, :3], T_gt[:3, :3]) < 2
    C, labels = sel.flip_candidates(P, Q, truth)
    Cr = sel.refine_local(P, Q, C, iters=30)
    err = np.array([_angle(c[:3, :3], T_gt[:3, :3]) for c in Cr])
    flips = err > 20
    assert flips.sum() >= 3
    for vp in (None, p["viewpoints"]):
        s = sel.selection_score(P, Q, Cr, viewpoints=vp)
        assert float(s.score[0]) < float(s.score[torch.from_numpy(flips)].min()) - 0.05
    sv = sel.selection_score(P, Q, Cr, viewpoints=p["viewpoints"])
    assert float(sv.violation[0]) < 0.05 and float(sv.violation[torch.from_numpy(flips)].max()) > 0.3


def _truth_and_flips(p, P, Q):
    T_gt = torch.tensor(p["T_gt"])
    truth = sel.refine_local(P, Q, T_gt, iters=15, radius=0.01)[0]
    C, _ = sel.flip_candidates(P, Q, truth)
    Cr = sel.refine_local(P, Q, C, iters=30)
    err = np.array([_angle(c[:3, :3], T_gt[:3, :3]) for c in Cr])
    return Cr, torch.from_numpy(err < 5), torch.from_numpy(err > 20)


@pytest.mark.parametrize("family,index", [("nearsym", 2), ("blob", 4)])
def test_houv_inlier_score_prefers_a_flip_that_the_new_score_rejects(family, index):
    """Low-overlap pairs where HOUV's selection score (truncated point distance at one spacing) ranks a
    refined flip above the refined truth, and the plane-distance score does not (no viewpoints)."""
    p = rs.make_scan_pair(index, objects=[f"{family}:{s}" for s in range(8)], seed=12, n_points=2048,
                          min_overlap=0.3, max_overlap=0.55)
    P, Q = torch.tensor(p["P"], dtype=torch.float64), torch.tensor(p["Q"], dtype=torch.float64)
    Cr, truth, flips = _truth_and_flips(p, P, Q)
    assert bool(truth.any()) and bool(flips.any())
    sp = max(_spacing(P.float()), _spacing(Q.float()))
    old = _inlier_score(P.float()[None], Q.float()[None], Cr[:, :3, :3].float(), Cr[:, :3, 3].float(),
                        torch.full((Cr.shape[0],), sp * sp)).double()
    assert float(old[flips].min()) < float(old[truth].min())  # the old score picks a flip
    new = sel.selection_score(P, Q, Cr).score
    assert float(new[flips].min()) > float(new[truth].min()) + 0.05


def test_score_terms():
    p, P, Q = _pair("blob:0")
    T = torch.tensor(p["T_gt"])
    s = sel.selection_score(P, Q, torch.stack([T, torch.eye(4, dtype=torch.float64)]))
    assert s.score.shape == (2,) and bool((s.cost <= 2).all()) and bool((s.chamfer >= 0).all())
    assert float(s.inliers[0]) > 0.3 > float(s.inliers[1])
    assert bool((s.cost >= 2 * (1 - s.inliers) - 1e-12).all())  # points without a partner cost 1
    assert torch.equal(s.violation, torch.zeros(2, dtype=torch.float64)) and torch.equal(s.score, s.cost)
    # with no plane or normal term, the cost is exactly the share of points without a partner
    bare = sel.selection_score(P, Q, T, plane_factor=1e9, normal_weight=0.0)
    assert float(bare.cost[0]) == pytest.approx(2 * (1 - float(bare.inliers[0])), abs=1e-9)
    assert float(sel.selection_score(P, Q, T, normal_weight=0.0).cost[0]) <= float(s.cost[0])  # normals only add
    # the truncated two-sided distance is HOUV's inlier score at the same tau
    tau = s.tau
    old = _inlier_score(P.float()[None], Q.float()[None], T[None, :3, :3].float(), T[None, :3, 3].float(),
                        torch.tensor([tau * tau]))
    assert float(old[0]) == pytest.approx(float(s.chamfer[0]), abs=1e-4)
    assert tau == pytest.approx(2 * max(_spacing(P.float()), _spacing(Q.float())))
    with pytest.raises(ValueError, match="normal_weight"):
        sel.selection_score(P, Q, T, normal_weight=-1)
    with pytest.raises(ValueError, match="plane_factor"):
        sel.selection_score(P, Q, T, plane_factor=0)
    with pytest.raises(ValueError, match="transforms"):
        sel.selection_score(P, Q, torch.eye(3))
    with pytest.raises(ValueError, match="viewpoints"):
        sel.selection_score(P, Q, T, viewpoints=(None,))


def test_plane_distance_term_by_hand():
    """A flat grid against itself moved along its normal by delta: every point has a partner, the
    normals agree, and each costs (delta / tau_plane)^2 (roughness 0: tau_plane is 0.05 spacings)."""
    g = torch.arange(30, dtype=torch.float64) * 0.01
    x, y = torch.meshgrid(g, g, indexing="ij")
    Q = torch.stack([x.reshape(-1), y.reshape(-1), torch.zeros(900, dtype=torch.float64)], 1)
    s0 = sel.selection_score(Q, Q, torch.eye(4, dtype=torch.float64))
    assert float(s0.score[0]) == pytest.approx(0.0, abs=1e-12)
    assert s0.tau_plane == pytest.approx(0.05 * _spacing(Q.float()), rel=1e-6)
    delta = 0.4 * s0.tau_plane
    T = torch.eye(4, dtype=torch.float64)
    T[2, 3] = delta
    s = sel.selection_score(Q, Q, T)
    assert float(s.inliers[0]) == 1.0
    assert float(s.score[0]) == pytest.approx(2 * 0.4 ** 2, rel=1e-6)


def _result(T):
    T = torch.as_tensor(T, dtype=torch.float64)
    return RegistrationResult(
        R=T[:3, :3].clone(), t=T[:3, 3].clone(), transform=T.clone(), local_cd=0.0, loss=0.0, group=0,
        group_local_cd=torch.zeros(1, dtype=torch.float64), group_loss=torch.zeros(1, dtype=torch.float64),
        all_R=T[None, :3, :3].clone(), all_t=T[None, :3, 3].clone(), history=torch.zeros(0), iters=0, seconds=0.0)


@pytest.mark.parametrize("obj", ["sq:1", "nearsym:3"])
def test_refine_with_flips_corrects_a_planted_half_turn(obj):
    p, P, Q = _pair(obj)
    T_gt = torch.tensor(p["T_gt"])
    C, labels = sel.flip_candidates(P, Q, T_gt, mirror=False)
    k = labels.index("half-turn overlap 0")
    wrong = _result(C[k])
    assert _angle(wrong.R, T_gt[:3, :3]) > 170
    out = sel.refine_with_flips(P, Q, wrong)
    assert _angle(out.R, T_gt[:3, :3]) < 2
    assert torch.allclose(out.transform[:3, :3], out.R) and torch.allclose(out.transform[:3, 3], out.t)
    assert out.extra["flip"]["score"] < out.extra["flip"]["original_score"]
    assert out.extra["flip"]["label"] != "group 0: pose"
    assert torch.equal(wrong.R, C[k, :3, :3])  # the input result is not modified
    with pytest.raises(ValueError, match="RegistrationResult"):
        sel.refine_with_flips(P, Q, C[k])
    T, info = sel.best_of_flips(P, Q, C[k])  # the same for a bare transform
    assert _angle(T[:3, :3], T_gt[:3, :3]) < 2 and info["hypothesis"] == 0 and info["label"] != "pose"
    with pytest.raises(ValueError, match="hypotheses"):
        sel.refine_with_flips(P, Q, wrong, hypotheses=0)


def test_refine_with_flips_skips_an_also_transform_that_is_a_groups_pose():
    """A correspondence start is one of HOUV's groups: passed again as ``also`` (or within 3 degrees
    and 1 % of the diagonal of it), its flips are not refined twice; a distinct one still competes."""
    p, P, Q = _pair("sq:1")
    T_gt = torch.tensor(p["T_gt"])
    C, labels = sel.flip_candidates(P, Q, T_gt, mirror=False)
    wrong = C[labels.index("half-turn overlap 0")]
    alone = sel.refine_with_flips(P, Q, _result(wrong))
    near = wrong.clone()
    near[:3, 3] += 1e-4  # 0.1 mm: within 1 % of the bounding-box diagonal
    same = sel.refine_with_flips(P, Q, _result(wrong), also=torch.stack([wrong, near]))
    assert same.extra["flip"]["candidates"] == alone.extra["flip"]["candidates"]
    assert torch.equal(same.transform, alone.transform)
    other = sel.refine_with_flips(P, Q, _result(wrong), also=torch.stack([wrong, T_gt]))
    assert other.extra["flip"]["candidates"] > alone.extra["flip"]["candidates"]
    assert _angle(other.R, T_gt[:3, :3]) < 2


def test_refine_with_flips_corrects_houvs_flipped_answer():
    """A short HOUV run (8 groups, 80 iterations) on a near-symmetric object's scan pair ends about
    170 degrees off; its half-turn candidates, refined, contain the truth and the score picks it."""
    from fe_fast.registration import houv
    from fe_fast.registration.presets import PRESETS

    objs = [f"{f}:{s}" for f in ("nearsym", "blob", "sq") for s in range(8)]
    p = rs.make_scan_pair(0, objects=objs, seed=21, n_points=1024, min_overlap=0.3, max_overlap=0.7)
    assert p["mesh"] == "nearsym:4"
    cfg = PRESETS["thesis"].replace(starts={"groups": 8}, selection={"method": "inlier"},
                                    schedule={"stages": ((256, 80),), "lr": 3e-2, "lr_schedule": "cosine"})
    r = houv(p["P"], p["Q"], cfg, seed=0)
    T_gt = p["T_gt"][:3, :3]
    assert _angle(r.R, T_gt) > 150
    out = sel.refine_with_flips(p["P"], p["Q"], r, hypotheses=2)
    assert _angle(out.R, T_gt) < 2
    assert "half-turn" in out.extra["flip"]["label"] or "mirror" in out.extra["flip"]["label"]
    assert np.linalg.norm(out.t.numpy() - p["T_gt"][:3, 3]) < 0.005
    assert out.seconds > r.seconds and out.group == r.group


def test_clouds_are_checked_like_houvs():
    """The clouds go through HOUV's input check (one place), with selection's minimum of 3 points."""
    for bad, match in ((np.zeros((2, 3)), "x needs at least 3 points, got 2"), (np.zeros((0, 3)), "x is empty"),
                       (np.zeros((5, 2)), r"x must have shape \[N, 3\]"), ([[0, 0, float("nan")]] * 4, "x contains NaN"),
                       ("abc", "x must be an N x 3")):
        with pytest.raises(ValueError, match=match):
            sel.roughness(bad)
    x = torch.randn(40, 3, dtype=torch.float32)
    assert sel.estimate_normals(x).dtype == torch.float64 and x.dtype == torch.float32  # the user's x is untouched


def test_batched_rodrigues_matches_the_matrix_exponential():
    g = torch.Generator().manual_seed(3)
    w = torch.randn(7, 3, generator=g, dtype=torch.float64) * torch.tensor([0.0, 1e-13, 0.1, 1.0, 2.0, 3.0, 3.1],
                                                                          dtype=torch.float64)[:, None]
    R = sel._rotvec(w)
    x, y, z = w.unbind(-1)
    o = torch.zeros_like(x)
    K = torch.stack([o, -z, y, z, o, -x, -y, x, o], -1).reshape(7, 3, 3)
    assert torch.allclose(R, torch.linalg.matrix_exp(K), atol=1e-12)
    assert torch.equal(R[0], torch.eye(3, dtype=torch.float64))  # the zero vector: the identity, no NaN
    assert torch.allclose(R @ R.transpose(1, 2), torch.eye(3, dtype=torch.float64).expand(7, 3, 3), atol=1e-12)


def test_remembered_normals_are_the_cloud_s_own_and_copies():
    _, P, Q = _pair("blob:1")
    sel._NORMALS_CACHE.clear()
    nP, rP = sel._normals_roughness(P, sel.NORMAL_K)
    ref_n, ref_r = sel._normals_roughness_uncached(P, sel.NORMAL_K)
    assert torch.equal(nP, ref_n) and rP == ref_r
    nP.zero_()  # a caller writing into its normals does not change the remembered ones
    again, _ = sel._normals_roughness(P, sel.NORMAL_K)
    assert torch.equal(again, ref_n)
    moved = P + torch.tensor([1e-3, 0.0, 0.0], dtype=torch.float64)  # another cloud, another entry
    sel._normals_roughness(moved, sel.NORMAL_K)
    oriented, _ = sel._normals_roughness(P, sel.NORMAL_K, viewpoint=(0.0, 0.0, 5.0))
    assert torch.equal(oriented.abs(), ref_n.abs())
    assert len(sel._NORMALS_CACHE) == 3
    for i in range(sel._NORMALS_CACHE_SIZE + 2):  # bounded
        sel._normals_roughness(P + i, sel.NORMAL_K)
    assert len(sel._NORMALS_CACHE) == sel._NORMALS_CACHE_SIZE
