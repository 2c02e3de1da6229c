"""Per-pair table on virtual range-scan pairs: HOUV (a preset), HOUV + flip re-selection
(``refine_with_flips``), RANSAC+ICP (Open3D, FPFH) and RANSAC+ICP + flip re-selection
(``best_of_flips``), all in one run.

``make bench`` runs it (quick, ``QUICK_ARGS``: one choosing-set pair of 1024 points, which checks that
it runs and says nothing about the methods; full, ``FULL_RUNS``: the two 40-pair runs below, 2048
points). By hand::

    OMP_NUM_THREADS=1 python bench/bm_flips.py --split choose --pairs 40 --seed 0     # choosing set
    OMP_NUM_THREADS=1 python bench/bm_flips.py --split held --pairs 40 --seed 10000   # report set

Each run writes its tables to ``bench/out/flips_<split>.md`` (``--out FILE`` moves it) and the
per-pair rows to ``flips_<split>.jsonl`` next to it (not committed). No summary is committed in
``bench/results/`` yet. Under ``make bench`` the torch thread count is pytest's, not
``OMP_NUM_THREADS=1``: the header line of each table says which.

Protocol (see ``fe_fast.datasets.range_scans.split_objects``): settings may be chosen only on
``--split choose`` (seeds below 10000 of the pair generator, too); ``--split held`` is the report set
(held-out objects, a held-out family, pair seeds from 10000 on) and its numbers must not feed back into
any choice. Columns per method: rotation error (deg, eq. 3-13) and success (the recall criterion of
``fe_fast.registration.metrics``); the summary gives recall, mean rotation error and median seconds.
``--viewpoints`` gives the flip score each scan's sensor position (free-space check).
"""
from __future__ import annotations

import fe_fast  # noqa: F401  (before torch: passive OpenMP waits, see fe_fast/__init__.py)
import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchutil  # noqa: E402

from fe_fast.datasets import range_scans
from fe_fast.registration import houv
from fe_fast.registration.baselines import ransac_icp
from fe_fast.registration.metrics import evaluate
from fe_fast.registration.presets import preset
from fe_fast.registration.selection import best_of_flips, refine_with_flips

METHODS = ("HOUV", "HOUV+flips", "RANSAC+ICP", "RANSAC+ICP+flips")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--split", choices=("choose", "held"), required=True)
    ap.add_argument("--pairs", type=int, default=8)
    ap.add_argument("--seed", type=int, default=None, help="pair seed (default 0 for choose, 10000 for held)")
    ap.add_argument("--n-points", type=int, default=2048)
    ap.add_argument("--per-family", type=int, default=8, help="objects per family (split_objects)")
    ap.add_argument("--min-overlap", type=float, default=0.3)
    ap.add_argument("--max-overlap", type=float, default=0.95)
    ap.add_argument("--preset", default="halving-local")
    ap.add_argument("--hypotheses", type=int, default=1)
    ap.add_argument("--viewpoints", action="store_true")
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    ap.add_argument("--out", type=Path, default=None,
                    help="markdown table, and <out>.jsonl per pair (default bench/out/flips_<split>.md)")
    args = ap.parse_args(argv)
    seed = args.seed if args.seed is not None else (0 if args.split == "choose" else range_scans.HELD_OUT_SEED)
    if args.split == "choose" and seed >= range_scans.HELD_OUT_SEED:
        ap.error(f"--split choose needs --seed below {range_scans.HELD_OUT_SEED}")
    if args.split == "held" and seed < range_scans.HELD_OUT_SEED:
        ap.error(f"--split held needs --seed >= {range_scans.HELD_OUT_SEED}")
    choose, held = range_scans.split_objects(args.per_family)
    objects = choose if args.split == "choose" else held
    if args.split == "held":
        print("REPORT SET: do not choose any setting on these numbers")
    out = args.out if args.out is not None else benchutil.out_path(f"flips_{args.split}.md")
    report = benchutil.Report(f"flips_{args.split}", f"Flip re-selection on range-scan pairs ({args.split} split)",
                              ("OMP_NUM_THREADS=" + os.environ.get("OMP_NUM_THREADS", "(unset)") + " "
                               + benchutil.script_command(__file__, sys.argv[1:] if argv is None else argv)))
    rows = []
    for i in range(args.pairs):
        p = range_scans.make_scan_pair(i, objects=objects, seed=seed, n_points=args.n_points,
                                       min_overlap=args.min_overlap, max_overlap=args.max_overlap)
        vp = p["viewpoints"] if args.viewpoints else None
        row = {"pair": i, "mesh": p["mesh"], "overlap": p["overlap"], "angle": p["angle"]}
        res = None
        if "HOUV" in args.methods or "HOUV+flips" in args.methods:
            res = houv(p["P"], p["Q"], preset(args.preset))
            row["HOUV"] = {**evaluate(res.transform, p["T_gt"], p["P"], p["Q"]), "seconds": res.seconds}
        if "HOUV+flips" in args.methods:
            r2 = refine_with_flips(p["P"], p["Q"], res, hypotheses=args.hypotheses, viewpoints=vp)
            row["HOUV+flips"] = {**evaluate(r2.transform, p["T_gt"], p["P"], p["Q"]), "seconds": r2.seconds,
                                 "label": r2.extra["flip"]["label"]}
        if "RANSAC+ICP" in args.methods or "RANSAC+ICP+flips" in args.methods:
            rr = ransac_icp(p["P"], p["Q"], seed=i)
            row["RANSAC+ICP"] = {**evaluate(rr["transform"], p["T_gt"], p["P"], p["Q"]), "seconds": rr["seconds"]}
            if "RANSAC+ICP+flips" in args.methods:
                t0 = time.perf_counter()
                T, info = best_of_flips(p["P"], p["Q"], rr["transform"], viewpoints=vp)
                row["RANSAC+ICP+flips"] = {**evaluate(T.numpy(), p["T_gt"], p["P"], p["Q"]),
                                           "seconds": rr["seconds"] + time.perf_counter() - t0, "label": info["label"]}
        rows.append(row)
        print(" | ".join([f"{i:3d} {p['mesh']:>12s} ov {p['overlap']:.2f}"]
                         + [f"{m} {row[m]['rot_err']:6.1f}{'*' if row[m]['success'] else ' '}"
                            for m in args.methods if m in row]), flush=True)
    lines = [f"split {args.split}, seed {seed}, {len(rows)} pairs, N = {args.n_points}, preset {args.preset}, "
             f"hypotheses {args.hypotheses}, viewpoints {args.viewpoints}; {platform.node()}, "
             f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, torch threads {torch.get_num_threads()}, "
             f"load {os.getloadavg()[0]:.1f}", "",
             "| pair | mesh | overlap | " + " | ".join(f"{m} rot. err." for m in args.methods) + " |",
             "|---|---|---|" + "---|" * len(args.methods)]
    for r in rows:
        lines.append(f"| {r['pair']} | {r['mesh']} | {r['overlap']:.2f} | " + " | ".join(
            f"{r[m]['rot_err']:.2f}{' (ok)' if r[m]['success'] else ''}" for m in args.methods) + " |")
    lines += ["", "| method | recall | mean rot. err. | median s/pair |", "|---|---|---|---|"]
    for m in args.methods:
        recall = np.mean([r[m]["success"] for r in rows])
        mean_err = np.mean([r[m]["rot_err"] for r in rows])
        lines.append(f"| {m} | {recall:.2f} | {mean_err:.2f} | {np.median([r[m]['seconds'] for r in rows]):.2f} |")
    text = "\n".join(lines)
    print(text)
    if args.split == "held":
        report.add("REPORT SET: do not choose any setting on these numbers.\n")
    report.add(text)
    report.add(f"\nPer-pair rows: `{out.with_suffix('.jsonl').name}` next to this file (not committed).")
    report.write(out)
    with open(out.with_suffix(".jsonl"), "w") as f:
        for r in rows:
            f.write(json.dumps(r, default=float) + "\n")
    return rows


#: ``make bench``: one small choosing-set pair (quick); the choosing and the report set of the
#: docstring, 40 pairs each (full)
QUICK_ARGS = ["--split", "choose", "--pairs", "1", "--n-points", "1024"]
FULL_RUNS = [["--split", "choose", "--pairs", "40", "--seed", "0"],
             ["--split", "held", "--pairs", "40", "--seed", "10000"]]


def test_flips():
    import pytest

    pytest.importorskip("open3d", reason="the RANSAC+ICP rows need open3d (pip install open3d)")
    for argv in benchutil.pick([QUICK_ARGS], FULL_RUNS):
        rows = main(argv)
        assert len(rows) == int(argv[argv.index("--pairs") + 1])
        assert all(m in r for r in rows for m in METHODS)


if __name__ == "__main__":
    main()
