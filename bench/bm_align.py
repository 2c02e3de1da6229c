"""Head-pose accuracy of the two landmark registrations (issue 8): closed-form Umeyama (known iBUG
correspondences) vs HOUV (thesis ch. 3, correspondence-free), on toy-face 3D landmarks with known
pose, yaw uniform over [-60, 60], pitch and roll over [-15, 15].

Conditions: ``clean`` (the rendered landmarks; toy identities and expressions perturb the mean
shape, so even these do not fit the template exactly), ``noisy`` (Gaussian noise of 2 % of the
inter-ocular distance on x, y and z, plus 10 of 68 landmarks dropped at random).

``make bench`` runs it (quick: 4 faces per condition; full: 24). By hand:
``python bench/bm_align.py --n 24 [--out FILE]``. Prints mean / max absolute error of yaw, pitch, roll
(degrees) and median seconds per face; the table goes to ``bench/out/align.md``.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchutil  # noqa: E402

from fe_fast.align.pose import estimate_pose
from fe_fast.datasets.toyfaces import render_with_labels, sample_params


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=24, help="faces per condition")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--groups", type=int, default=16, help="HOUV hypotheses")
    ap.add_argument("--iters", type=int, default=150, help="HOUV Adam iterations")
    ap.add_argument("--lr", type=float, default=3e-2, help="HOUV learning rate")
    ap.add_argument("--out", help="markdown table (default bench/out/align.md)")
    args = ap.parse_args(argv)

    rng = np.random.default_rng(args.seed)
    poses = {"yaw": rng.uniform(-60, 60, args.n), "pitch": rng.uniform(-15, 15, args.n),
             "roll": rng.uniform(-15, 15, args.n)}
    params = []
    for i in range(args.n):
        p, _ = sample_params(1, seed=args.seed * 1000 + i,
                             attributes={k: float(v[i]) for k, v in poses.items()})
        params.append(p[0])
    rows = []
    report = benchutil.Report("align", "Head pose from 3D landmarks: Umeyama vs HOUV",
                              benchutil.script_command(__file__, sys.argv[1:] if argv is None else argv))
    t_all = time.time()
    for cond in ("clean", "noisy"):
        errs = {"umeyama": [], "houv": []}
        secs = {"umeyama": [], "houv": []}
        for i, p in enumerate(params):
            L = render_with_labels(p, 256).landmarks.astype(np.float64)
            if cond == "noisy":
                iod = np.linalg.norm(L[36:42].mean(0) - L[42:48].mean(0))
                L = L + rng.normal(0.0, 0.02 * iod, L.shape)
                L[rng.choice(68, 10, replace=False)] = np.nan
            truth = np.array([p["yaw"], p["pitch"], p["roll"]])
            for m in errs:
                kw = dict(groups=args.groups, iters=args.iters, lr=args.lr, seed=i) if m == "houv" else {}
                r = estimate_pose(L, m, **kw)
                errs[m].append(np.abs(np.array([r.yaw, r.pitch, r.roll]) - truth))
                secs[m].append(r.seconds)
        for m in errs:
            e = np.array(errs[m])
            rows.append((cond, m, e.mean(0), e.max(0), float(np.median(secs[m]))))
    lines = [f"{args.n} toy faces per condition (seed {args.seed}), yaw U(-60, 60), pitch and roll U(-15, 15); "
             f"HOUV: {args.groups} groups, {args.iters} iterations, lr {args.lr}; total {time.time() - t_all:.0f} s.", "",
             "| condition | method | mean abs err yaw / pitch / roll (deg) | max abs err yaw / pitch / roll | median s/face |",
             "| --- | --- | --- | --- | --- |"]
    for cond, m, mean, mx, s in rows:
        lines.append(f"| {cond} | {m} | {mean[0]:.2f} / {mean[1]:.2f} / {mean[2]:.2f} | "
                     f"{mx[0]:.2f} / {mx[1]:.2f} / {mx[2]:.2f} | {s:.3f} |")
    text = "\n".join(lines)
    print(text)
    report.add(text)
    report.write(args.out)
    return rows


#: ``make bench`` arguments: quick and full protocol (the full one is bench/results/align.md's)
QUICK_ARGS = ["--n", "4"]
FULL_ARGS = ["--n", "24"]


def test_align():
    rows = main(benchutil.pick(QUICK_ARGS, FULL_ARGS))
    assert len(rows) == 4  # (clean, noisy) x (umeyama, houv)


if __name__ == "__main__":
    main()
