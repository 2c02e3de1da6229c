"""Diagnostic (not run by ``make bench``): when HOUV lands on a wrong pose, tells whether the
selection criterion or the coverage of the starts is at fault; use it when changing the starts,
the schedule or the selection score of ``fe_fast.registration.houv``.

Why HOUV flips on generated mvp pairs, and what the start translations have to do with it
(results in bench/results/houv.md, "Start translations"). Uses the pairs cached by
bm_houv.py in --pairs-dir (mvp.npz) and a per-pair rows file written by bm_houv.py --out.

    # 1. re-run the flips of a rows file with one extra start held at the ground truth: does the truth
    #    win the selection (coverage failure) or lose it (the criterion prefers the wrong pose)?
    OMP_NUM_THREADS=2 python tools/houv_starts.py truth-start --preset robust-wide \\
        --rows bench/out/houv.jsonl
    # 2. basins: starts at the truth turned by 10 / 20 / 30 / 45 degrees (16 random axes each), with the
    #    true translation or the default init's small random one; the share within 10 degrees after
    #    the coarse stage
    OMP_NUM_THREADS=2 python tools/houv_starts.py basin --rows bench/out/houv.jsonl --count 12 \\
        [--translation true|random] [--kw '{"beta": 0.0}']
    # 3. a setting on the flips of the rows file plus pairs 0..39 (houv seed = pair index, as bm_houv)
    OMP_NUM_THREADS=2 python tools/houv_starts.py subset --rows bench/out/houv.jsonl \\
        --kw '{"init_translation": "search"}'

The subset of 3. is chosen by the reference run's failures, so any change of the random starts
"fixes" some of them by chance; compare settings with each other there, and judge a setting on all
200 pairs (bm_houv.py).
"""
import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from bm_houv import _cached_pairs  # noqa: E402
from fe_fast.registration import houv  # noqa: E402
from fe_fast.registration.houv import _radius, _start_variables, rodrigues  # noqa: E402
from fe_fast.registration.metrics import rotation_error  # noqa: E402
from fe_fast.registration.config import config_from_kwargs, core_kwargs  # noqa: E402
from fe_fast.registration.presets import preset  # noqa: E402

ANGLES = (10, 20, 30, 45)


def _reference(rows_path, method="HOUV", set_name="mvp"):
    rows = [json.loads(x) for x in open(rows_path)]
    return {r["pair"]: r for r in rows if r["method"] == method and r["set"] == set_name}


def _settings(a):
    return {**core_kwargs(preset(a.preset)), **json.loads(a.kw)}  # core-loop keywords (config.CORE_KEYWORDS)


def _flips(ref):
    """Pairs the reference run got more than 90 degrees wrong, in pair order."""
    return [i for i, r in sorted(ref.items()) if r["rot_err"] > 90]


def _err(R, T):
    return float(rotation_error(R, torch.as_tensor(T[:3, :3])))


def truth_start(a, pairs, ref):
    flips = _flips(ref)
    won = 0
    for i in flips:
        p = pairs[i]
        r = houv(p["P"], p["Q"], config_from_kwargs(**_settings(a)), seed=i, init_transforms=p["T_gt"])
        score = r.extra["group_score"]
        row = dict(pair=i, overlap=round(ref[i]["overlap"], 3), error=round(_err(r.R, p["T_gt"]), 2),
                   truth_start_error=round(_err(r.all_R[-1], p["T_gt"]), 2),
                   truth_score=round(float(score[-1]), 4), chosen_score=round(float(score[r.group]), 4))
        won += row["error"] < 5
        print(json.dumps(row), flush=True)
    print(f"truth start chosen (within 5 deg) on {won} of {len(flips)} flip pairs")


def basin(a, pairs, ref):
    flips = _flips(ref)[: a.count]
    kw = dict(_settings(a), groups=16 * len(ANGLES), refine_iters=0, prune_groups=None)
    kw["schedule"] = kw.get("schedule", [(256, 150)])[:1]
    total = np.zeros(len(ANGLES))
    for i in flips:
        p = pairs[i]
        T = np.asarray(p["T_gt"], dtype=np.float64)
        P = torch.as_tensor(p["P"], dtype=torch.float64)
        cP = P.mean(0).numpy()
        rng = np.random.default_rng(i)
        starts = []
        for deg in ANGLES:
            for _ in range(16):
                S = np.eye(4)
                angle = torch.tensor(math.radians(deg), dtype=torch.float64)
                turn = rodrigues(torch.as_tensor(rng.normal(size=3)), angle)
                S[:3, :3] = T[:3, :3] @ turn.numpy()
                S[:3, 3] = T[:3, 3] + (T[:3, :3] - S[:3, :3]) @ cP  # P's centroid lands where the truth puts it
                starts.append(S)
        r = _free_starts(p["P"], p["Q"], np.stack(starts), i, kw, a.translation == "true")
        e = np.array([_err(R, T) for R in r.all_R]).reshape(len(ANGLES), 16)
        ok = (e < 10).mean(1)
        total += ok
        print(i, f"overlap {ref[i]['overlap']:.2f}", "within 10 deg:", dict(zip(ANGLES, ok.round(2).tolist())),
              "median:", np.median(e, 1).round(1).tolist(), flush=True)
    print("mean share within 10 deg by start angle:", dict(zip(ANGLES, (total / len(flips)).round(2).tolist())))


def _free_starts(P, Q, starts, seed, kw, with_translation):
    """houv with its groups started at the rotations of ``starts`` (and their translations, else the
    default init's) and optimised freely, not held like ``init_transforms``."""
    import importlib

    H = importlib.import_module("fe_fast.registration.houv")
    original = H._init_groups

    def init(G, seed_, bounds, mapping, init_="random"):
        v, th, u, d = original(G, seed_, bounds, mapping, init_)
        Pt, Qt = torch.as_tensor(P, dtype=torch.float64), torch.as_tensor(Q, dtype=torch.float64)
        cP, cQ = Pt.mean(0), Qt.mean(0)
        s = float(torch.maximum(_radius(Pt), _radius(Qt)))  # houv's normalisation
        sv, sth, su, sd = _start_variables(torch.as_tensor(starts), cP, cQ, s, 1.0, mapping)
        return (sv, sth, su, sd) if with_translation else (sv, sth, u, d)

    H._init_groups = init
    try:
        return houv(P, Q, config_from_kwargs(**kw), seed=seed)
    finally:
        H._init_groups = original


def subset(a, pairs, ref):
    kw = _settings(a)
    chosen = sorted(set(_flips(ref)) | set(range(40)))
    errs, base, secs = [], [], []
    for i in chosen:
        p = pairs[i]
        t0 = time.perf_counter()
        r = houv(p["P"], p["Q"], config_from_kwargs(**kw), seed=i)
        secs.append(time.perf_counter() - t0)
        errs.append(_err(r.R, p["T_gt"]))
        base.append(ref[i]["rot_err"])
    e, b = np.array(errs), np.array(base)
    print(json.dumps(dict(
        kw=a.kw, preset=a.preset, pairs=len(chosen), mean=round(e.mean(), 2), reference_mean=round(b.mean(), 2),
        over_90=int((e > 90).sum()), reference_over_90=int((b > 90).sum()), over_5=int((e > 5).sum()),
        reference_over_5=int((b > 5).sum()), median_s=round(float(np.median(secs)), 2),
        lost=[i for i, x, y in zip(chosen, e, b) if x > 5 and y <= 5])))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", choices=("truth-start", "basin", "subset"))
    ap.add_argument("--rows", required=True, help="per-pair rows of a bm_houv.py run (its --out .jsonl)")
    ap.add_argument("--preset", default="robust-wide")
    ap.add_argument("--kw", default="{}", help="JSON houv() arguments on top of the preset")
    ap.add_argument("--count", type=int, default=12, help="basin: flip pairs to use")
    ap.add_argument("--translation", choices=("true", "random"), default="true")
    ap.add_argument("--pairs-dir", default=".gpudata/pairs")
    a = ap.parse_args()
    torch.set_num_threads(2)
    pairs = _cached_pairs(a.pairs_dir, "mvp", lambda: (_ for _ in ()).throw(RuntimeError("no cached mvp pairs")),
                          {"seed": 0, "n_points": 2048, "count": 200})
    {"truth-start": truth_start, "basin": basin, "subset": subset}[a.mode](a, pairs, _reference(a.rows))


if __name__ == "__main__":
    main()
