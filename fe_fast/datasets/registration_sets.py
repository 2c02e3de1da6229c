"""The two frozen pair sets of the registration default: one to choose settings on, one to report on.

Protocol (choose on one set, report on another that no choice ever saw):

* :func:`choosing_pairs` (the CHOOSING set, ``CHOOSING_BLOCKS``): virtual range-scan pairs
  (:func:`~fe_fast.datasets.range_scans.make_scan_pair`: neighbouring views 20-60 degrees apart, N = 2048,
  the source moved by a random rigid transform, protocol ``so3``) of the choosing objects of
  :func:`~fe_fast.datasets.range_scans.split_objects` only (``blob``, ``sq``, ``nearsym`` with seeds
  below ``HELD_OUT_SEED``, plus ``partial_pairs.COMPOUNDS``): 48 pairs of overlap 0.3-0.9 (pair seed 0;
  drawn this way most overlap 0.6-0.9) then 16 of overlap 0.3-0.5 (pair seed 1; the hard end, where the
  real ring pairs also lie), pair seeds below ``HELD_OUT_SEED``. Every setting of the default recipe is
  chosen here. :func:`choosing_extra_pairs` adds 32 more pairs of the same objects (pair seed 2, overlap
  0.3-0.6) for choices that concern only the pairs the fast path leaves (about a third of the 64).
* :func:`report_pairs` (the REPORT set): generated pairs drawn the same way from the held-out objects
  (seeds from ``HELD_OUT_SEED`` on, and the whole ``beads`` family, a shape family never chosen on),
  ``REPORT_BLOCKS``: 40 of overlap 0.3-0.9 then 16 of 0.3-0.5, pair seeds from ``REPORT_SEED``
  (>= ``HELD_OUT_SEED``), plus :func:`bunny_report_pairs`: the real
  Stanford bunny ring scans, each scan with its two ring neighbours (``BUNNY_RING_NEIGHBOURS``), both
  directions, each ordered pair moved by ``BUNNY_TRANSFORMS`` random rigid transforms. No bunny scan
  is ever used for choosing, so every real scan is on the report side: the split is by scan (A->B and
  B->A both report), and the bunny mesh is in neither object list (it is the union of these scans).

* :func:`fresh_report_pairs` (the FRESH report set, ``FRESH_SEED``): made when the default changed after
  the REPORT set had been reported once (never re-tune on the set you report): generated pairs of new
  objects (seeds ``FRESH_SEED ..`` of every family, ``beads`` included) with new pair seeds, drawn as the
  REPORT set (``FRESH_BLOCKS``), plus the bunny ring pairs with new subsamples and transforms (seed
  ``FRESH_SEED``; the scans themselves were in the REPORT set, never in the CHOOSING set).

Nothing may be run on the report set while settings are being chosen, except a smoke test of one or two
pairs that checks a harness runs. The pairs depend only on the constants here (and the bunny files).
"""
from __future__ import annotations

from typing import Dict, List, Optional

import numpy as np

from fe_fast.datasets import partial_pairs as _pp
from fe_fast.datasets import range_scans

__all__ = [
    "CHOOSING_SEED",
    "REPORT_SEED",
    "CHOOSING_PAIRS",
    "REPORT_GENERATED",
    "OBJECTS_PER_FAMILY",
    "OVERLAP",
    "BUNNY_RING_NEIGHBOURS",
    "BUNNY_TRANSFORMS",
    "choosing_objects",
    "report_objects",
    "choosing_pairs",
    "choosing_extra_pairs",
    "report_generated_pairs",
    "bunny_report_pairs",
    "report_pairs",
    "FRESH_SEED",
    "fresh_objects",
    "fresh_report_pairs",
]

CHOOSING_SEED = 0
REPORT_SEED = range_scans.HELD_OUT_SEED
OBJECTS_PER_FAMILY = 8
OVERLAP = (0.3, 0.9)
LOW_OVERLAP = (0.3, 0.5)
#: (pair seed, pairs, (min overlap, max overlap)) of each block, in order
CHOOSING_BLOCKS = ((CHOOSING_SEED, 48, OVERLAP), (CHOOSING_SEED + 1, 16, LOW_OVERLAP))
CHOOSING_EXTRA_BLOCKS = ((CHOOSING_SEED + 2, 32, (0.3, 0.6)),)
REPORT_BLOCKS = ((REPORT_SEED, 40, OVERLAP), (REPORT_SEED + 1, 16, LOW_OVERLAP))
#: the fresh report set: object seeds and pair seeds from here on (above every seed used before)
FRESH_SEED = 20000
FRESH_BLOCKS = ((FRESH_SEED, 40, OVERLAP), (FRESH_SEED + 1, 16, LOW_OVERLAP))
CHOOSING_PAIRS = sum(b[1] for b in CHOOSING_BLOCKS)
REPORT_GENERATED = sum(b[1] for b in REPORT_BLOCKS)
N_POINTS = 2048
#: neighbouring scans of the horizontal ring (bun000 .. bun315 in turntable order), each pair taken
#: in both directions
BUNNY_RING_NEIGHBOURS = (("bun000", "bun045"), ("bun045", "bun090"), ("bun090", "bun180"),
                         ("bun180", "bun270"), ("bun270", "bun315"), ("bun315", "bun000"))
BUNNY_TRANSFORMS = 3
#: the random rigid transform of a real pair's source: uniform rotation, translation up to this (metres,
#: about the bunny's radius)
BUNNY_MAX_TRANSLATION = 0.1


def choosing_objects() -> List[str]:
    """The objects settings may be chosen on (``split_objects(OBJECTS_PER_FAMILY)[0]``)."""
    return range_scans.split_objects(OBJECTS_PER_FAMILY)[0]


def report_objects() -> List[str]:
    """The held-out objects of the report set (``split_objects(OBJECTS_PER_FAMILY)[1]``)."""
    return range_scans.split_objects(OBJECTS_PER_FAMILY)[1]


def fresh_objects() -> List[str]:
    """The objects of the fresh report set: seeds ``FRESH_SEED .. FRESH_SEED + OBJECTS_PER_FAMILY - 1`` of
    every family (the choosing families and the held-out ``beads``)."""
    families = range_scans.CHOOSE_FAMILIES + range_scans.HELD_OUT_FAMILIES
    return [f"{fam}:{FRESH_SEED + s}" for fam in families for s in range(OBJECTS_PER_FAMILY)]


def _scan_pairs(count: int, objects, blocks, n_points: int, tag: str) -> List[Dict]:
    if int(count) < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    out = []
    for seed, n, (lo, hi) in blocks:
        want = min(n, int(count) - len(out))
        index, got = 0, 0
        while got < want:  # an index whose object has no view pair in the overlap range is skipped
            if index >= 4 * n + 40:
                raise ValueError(f"{tag}: fewer than {n} pairs in overlap [{lo}, {hi}] among {index} draws")
            try:
                p = range_scans.make_scan_pair(index, objects=objects, seed=seed, n_points=n_points,
                                               min_overlap=lo, max_overlap=hi)
            except ValueError:
                index += 1
                continue
            index += 1
            got += 1
            p["set"] = tag
            p["name"] = f"{tag}#{len(out)} {p['mesh']}"
            out.append(p)
        if len(out) >= int(count):
            break
    return out


def choosing_pairs(count: int = CHOOSING_PAIRS, n_points: int = N_POINTS) -> List[Dict]:
    """The first ``count`` pairs of the choosing set (module docstring); dicts of
    :func:`~fe_fast.datasets.range_scans.make_scan_pair` plus ``set`` (``"choose"``) and ``name``."""
    return _scan_pairs(count, choosing_objects(), CHOOSING_BLOCKS, n_points, "choose")


def choosing_extra_pairs(count: int = 32, n_points: int = N_POINTS) -> List[Dict]:
    """More choosing pairs (module docstring; ``set`` is ``"choose-extra"``): choosing objects only."""
    return _scan_pairs(count, choosing_objects(), CHOOSING_EXTRA_BLOCKS, n_points, "choose-extra")


def report_generated_pairs(count: int = REPORT_GENERATED, n_points: int = N_POINTS) -> List[Dict]:
    """The first ``count`` generated pairs of the report set (held-out objects, ``REPORT_BLOCKS``);
    ``set`` is ``"report-generated"``."""
    return _scan_pairs(count, report_objects(), REPORT_BLOCKS, n_points, "report-generated")


def bunny_report_pairs(root=None, *, transforms: int = BUNNY_TRANSFORMS, n_points: int = N_POINTS,
                       seed: int = REPORT_SEED) -> List[Dict]:
    """The real report pairs: for each ring neighbour pair of ``BUNNY_RING_NEIGHBOURS`` in both
    directions, ``transforms`` copies whose source (each scan subsampled to ``n_points``, seeded per
    copy) is moved by a random rigid transform (uniform rotation, translation up to
    ``BUNNY_MAX_TRANSLATION``). Keys: ``P``, ``Q``, ``T_gt`` (moved P onto Q), ``viewpoints`` (the
    scanner, moved with P), ``src``, ``tgt``, ``overlap`` (share of the full source scan within 1 mm
    of the target at the truth), ``set`` (``"report-bunny"``), ``name``, ``mesh`` (``"bunny-real"``).
    Raises FileNotFoundError when the scans are not found (see :mod:`fe_fast.datasets.bunny`)."""
    from fe_fast.datasets import bunny

    if int(transforms) < 1:
        raise ValueError(f"transforms must be >= 1, got {transforms}")
    scans = bunny.load_scans(root)
    out = []
    for a, b in BUNNY_RING_NEIGHBOURS:
        for src, tgt in ((a, b), (b, a)):
            Pa, Wa = scans[src]
            Qb, Wb = scans[tgt]
            T0 = bunny.relative_pose(Wa, Wb)
            ov = bunny.overlap(Pa, Qb, T0)
            for k in range(int(transforms)):
                rng = np.random.default_rng([int(seed), bunny.RING_SCANS.index(src), bunny.RING_SCANS.index(tgt), k])
                P = Pa[rng.choice(Pa.shape[0], size=min(n_points, Pa.shape[0]), replace=False)]
                Q = Qb[rng.choice(Qb.shape[0], size=min(n_points, Qb.shape[0]), replace=False)]
                T = _pp.random_transform("so3", rng, max_translation=BUNNY_MAX_TRANSLATION)
                Pm = P @ T[:3, :3].T + T[:3, 3]
                vp = bunny.SCANNER_VIEWPOINT
                out.append({"P": Pm.astype(np.float32), "Q": Q.astype(np.float32), "T_gt": T0 @ np.linalg.inv(T),
                            "viewpoints": (T[:3, :3] @ vp + T[:3, 3], vp.copy()), "src": src, "tgt": tgt,
                            "overlap": float(ov), "set": "report-bunny", "mesh": "bunny-real",
                            "name": f"{src}->{tgt} #{k}"})
    return out


def report_pairs(count: int = REPORT_GENERATED, n_points: int = N_POINTS, *, bunny_root=None,
                 real: bool = True) -> List[Dict]:
    """The whole report set: :func:`report_generated_pairs` then (``real``) :func:`bunny_report_pairs`."""
    out = report_generated_pairs(count, n_points)
    if real:
        out += bunny_report_pairs(bunny_root, n_points=n_points)
    return out


def fresh_report_pairs(count: int = REPORT_GENERATED, n_points: int = N_POINTS, *, bunny_root=None,
                       real: bool = True) -> List[Dict]:
    """The fresh report set (module docstring): ``count`` generated pairs of :func:`fresh_objects`
    (``set`` ``"fresh-generated"``) then (``real``) the bunny ring pairs with seed ``FRESH_SEED``
    (``set`` ``"fresh-bunny"``)."""
    out = _scan_pairs(count, fresh_objects(), FRESH_BLOCKS, n_points, "fresh-generated")
    if real:
        for p in bunny_report_pairs(bunny_root, n_points=n_points, seed=FRESH_SEED):
            p["set"] = "fresh-bunny"
            out.append(p)
    return out
