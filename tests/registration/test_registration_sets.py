"""The frozen choosing and report sets of the default registration recipe
(fe_fast.datasets.registration_sets): disjoint objects, seeds on either side of the split, every real
bunny scan on the report side only, and ground truths that hold."""
import numpy as np
import pytest

pytest.importorskip("open3d", reason="the virtual range scans need open3d (pip install 'fe-fast[registration]')")

from scipy.spatial import cKDTree  # noqa: E402

from fe_fast.datasets import bunny, range_scans  # noqa: E402
from fe_fast.datasets import registration_sets as sets  # noqa: E402


def test_object_lists_are_disjoint_and_bunny_free():
    choose, report = sets.choosing_objects(), sets.report_objects()
    assert choose and report
    assert not set(choose) & set(report)
    assert not any(range_scans.is_held_out(o) for o in choose)
    assert all(range_scans.is_held_out(o) for o in report)
    assert all("bunny" not in o for o in choose + report)
    assert any(o.startswith("beads:") for o in report) and not any(o.startswith("beads:") for o in choose)


def test_seeds_and_sizes_follow_the_protocol():
    assert sets.CHOOSING_SEED < range_scans.HELD_OUT_SEED <= sets.REPORT_SEED
    assert all(seed < range_scans.HELD_OUT_SEED for seed, _, _ in sets.CHOOSING_BLOCKS)
    assert all(seed >= range_scans.HELD_OUT_SEED for seed, _, _ in sets.REPORT_BLOCKS)
    assert sets.CHOOSING_PAIRS == sum(n for _, n, _ in sets.CHOOSING_BLOCKS)
    assert sets.CHOOSING_PAIRS >= 40
    assert sets.REPORT_GENERATED + 2 * len(sets.BUNNY_RING_NEIGHBOURS) * sets.BUNNY_TRANSFORMS >= 40


def _aligned_share(p, tol):
    P = np.asarray(p["P"], np.float64)
    Pm = P @ p["T_gt"][:3, :3].T + p["T_gt"][:3, 3]
    d, _ = cKDTree(np.asarray(p["Q"], np.float64)).query(Pm)
    return float(np.mean(d < tol))


def test_generated_pairs_use_their_side_only_and_repeat():
    ch = sets.choosing_pairs(3)
    rp = sets.report_generated_pairs(3)
    assert [p["set"] for p in ch] == ["choose"] * 3 and [p["set"] for p in rp] == ["report-generated"] * 3
    assert all(p["mesh"] in sets.choosing_objects() for p in ch)
    assert all(p["mesh"] in sets.report_objects() for p in rp)
    assert all(sets.OVERLAP[0] <= p["overlap"] <= sets.OVERLAP[1] for p in ch + rp)
    assert all(p["P"].shape == (2048, 3) and p["Q"].shape == (2048, 3) for p in ch + rp)
    again = sets.choosing_pairs(3)
    assert all(np.array_equal(a["P"], b["P"]) and np.array_equal(a["T_gt"], b["T_gt"]) for a, b in zip(ch, again))
    for p in ch[:1] + rp[:1]:  # the ground truth puts the overlap's points on the target
        assert _aligned_share(p, 4e-3) > 0.5 * p["overlap"]
    with pytest.raises(ValueError, match="count"):
        sets.choosing_pairs(0)


def test_bunny_scans_are_only_on_the_report_side():
    try:
        pairs = sets.bunny_report_pairs(transforms=1, n_points=1024)
    except FileNotFoundError as e:
        pytest.skip(f"the real bunny scans are not available here: {e}")
    # every ring scan is in the report set, in both directions with each neighbour
    ordered = {(p["src"], p["tgt"]) for p in pairs}
    assert {s for p in ordered for s in p} == set(bunny.RING_SCANS)
    assert all((b, a) in ordered for a, b in ordered)
    assert len(pairs) == 2 * len(sets.BUNNY_RING_NEIGHBOURS)
    # ... and none of them (nor the bunny mesh) can reach the choosing set
    assert all("bun" not in o for o in sets.choosing_objects())
    with pytest.raises(ValueError, match="bunny"):
        range_scans.make_scan_pair(0, objects=("bunny",))
    for p in pairs[:2]:
        assert p["set"] == "report-bunny"
        # the ground truth survives the random transform (1024 of ~40000 points: spacing about 5 mm)
        share = _aligned_share(p, 6e-3)
        assert share > 0.7 * p["overlap"]
        off = dict(p, T_gt=p["T_gt"] @ np.diag([1.0, -1.0, -1.0, 1.0]))  # a half-turn off the truth
        assert _aligned_share(off, 6e-3) < 0.5 * share


def test_extra_choosing_and_fresh_report_pairs_stay_on_their_sides():
    """The extra choosing pairs use choosing objects only; the fresh report set uses objects and pair
    seeds that neither earlier set holds (seeds from FRESH_SEED, every family incl. beads)."""
    fresh = sets.fresh_objects()
    assert not set(fresh) & (set(sets.choosing_objects()) | set(sets.report_objects()))
    assert all(range_scans.is_held_out(o) for o in fresh) and any(o.startswith("beads:") for o in fresh)
    used = [s for s, _, _ in sets.CHOOSING_BLOCKS + sets.CHOOSING_EXTRA_BLOCKS + sets.REPORT_BLOCKS]
    assert all(s >= sets.FRESH_SEED > max(used) for s, _, _ in sets.FRESH_BLOCKS)
    ex = sets.choosing_extra_pairs(2, n_points=512)
    assert [p["set"] for p in ex] == ["choose-extra"] * 2 and all(p["mesh"] in sets.choosing_objects() for p in ex)
    fr = sets.fresh_report_pairs(2, n_points=512, real=False)
    assert [p["set"] for p in fr] == ["fresh-generated"] * 2 and all(p["mesh"] in fresh for p in fr)
    for p in fr[:1]:
        assert _aligned_share(p, 8e-3) > 0.5 * p["overlap"]
