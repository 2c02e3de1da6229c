"""Choosing the default registration recipe on the CHOOSING set only (never on the report set).

The recipe (:func:`prototype_default` below; the library's ``houv(P, Q)`` default runs the chosen one,
``fe_fast.registration.config``) has four stages,
built from public functions only (``baselines.ransac_icp``, ``houv(..., init_transforms=...)``,
``selection.refine_local`` / ``best_of_flips`` / ``selection_score``):

1. RANSAC+ICP on FPFH correspondences (Open3D) gives a start;
2. fast path: that start, refined (``refine_local``) or expanded by its flips (``best_of_flips``), is
   returned at once when its ``selection_score`` is at most ``accept_score``;
3. otherwise HOUV (a schedule below) with the RANSAC transform as one of its starts;
4. the ``hypotheses`` best HOUV groups (by HOUV's inlier score) are each expanded by their flips and
   refined (``best_of_flips``); the answer is the candidate with the lowest ``selection_score`` among
   those and the fast-path candidate.

``collect`` runs every stage on every choosing pair once (each HOUV schedule of ``SCHEDULES``, the flips
of its 4 best groups one group at a time) and writes one json line per pair; ``choose`` then replays
every recipe (accept threshold x fast-path kind x schedule x hypotheses) from those lines, so a recipe's
answer and seconds are exactly what the stages gave (seconds: the sum of the stages it runs). ``verify``
runs the library default (``houv(P, Q)``; ``--prototype``: :func:`prototype_default`) end to end on the
choosing set against RANSAC+ICP.

    OMP_NUM_THREADS=1 nice -n 5 python tools/houv_default_choose.py collect --out bench/out/houv_choose.jsonl
    python tools/houv_default_choose.py choose --rows bench/out/houv_choose.jsonl
    OMP_NUM_THREADS=1 python tools/houv_default_choose.py verify
    OMP_NUM_THREADS=1 python tools/houv_default_choose.py verify --extra --fast-only --set "starts.correspondence=3"
    OMP_NUM_THREADS=1 python tools/houv_default_choose.py verify --extra --only 6 15 --set "selection.flip_iters=20"

``--extra`` adds the 32 extra choosing pairs (``choosing_extra_pairs``); ``--set`` runs the library default
with config changes; ``--fast-only`` runs only the fast path (what ``Accept`` would decide).

Only :func:`fe_fast.datasets.registration_sets.choosing_pairs` is ever loaded here.
"""
from __future__ import annotations

import fe_fast  # noqa: F401  (before torch: passive OpenMP waits)
import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from fe_fast.datasets.registration_sets import CHOOSING_PAIRS, choosing_extra_pairs, choosing_pairs  # noqa: E402
from fe_fast.registration import houv  # noqa: E402
from fe_fast.registration.baselines import ransac_icp  # noqa: E402
from fe_fast.registration.metrics import evaluate  # noqa: E402
from fe_fast.registration.presets import preset  # noqa: E402
from fe_fast.registration.selection import best_of_flips, refine_local, same_pose, selection_score  # noqa: E402

_HL = preset("halving-local")  # a RegistrationConfig: no correspondence starts, no accept, select "inlier"
#: HOUV schedules tried (each with the RANSAC transform as a start); "HL" is preset halving-local (256 groups,
#: 128:40/256:110/1024:50, prune 32, 8, refinement 200 iterations on 8 groups)
SCHEDULES = {
    "HL": _HL,
    "HL-small": _HL.replace(starts={"groups": 128}, schedule={"stages": ((128, 30), (256, 60), (1024, 30)),
                                                              "prune": (16, 4)}, refinement={"iters": 100, "groups": 4}),
    "HL-tiny": _HL.replace(starts={"groups": 64}, schedule={"stages": ((128, 30), (256, 50)), "prune": (8,)},
                           refinement={"iters": 50, "groups": 4}),
}
MAX_HYPOTHESES = 2  # 4 for pairs 0-13 (the first collection); 2 after, to fit the time


def _ev(T, p):
    e = evaluate(np.asarray(T, dtype=np.float64), p["T_gt"], p["P"], p["Q"])
    return {"rot": e["rot_err"], "trans": e["trans_err"], "ok": e["success"]}


def _top_groups(res, k):
    score = res.extra["group_score"]
    order = [res.group] + [g for g in torch.argsort(score).tolist() if g != res.group and bool(torch.isfinite(score[g]))]
    out = []
    for g in order[:k]:
        T = torch.eye(4, dtype=torch.float64)
        T[:3, :3], T[:3, 3] = res.all_R[g].double(), res.all_t[g].double()
        out.append(T)
    return out


def collect(args):
    pairs = choosing_pairs(args.pairs or CHOOSING_PAIRS)
    done = set()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.exists():
        done = {json.loads(line)["pair"] for line in out.read_text().splitlines() if line.strip()}
    names = args.schedules or list(SCHEDULES)
    import fe_fast.ops  # noqa: F401  (import time is start-up, not a stage's seconds)

    with open(out, "a") as f:
        for i, p in enumerate(pairs):
            if i in done or i < args.start:
                continue
            P, Q = torch.as_tensor(p["P"], dtype=torch.float64), torch.as_tensor(p["Q"], dtype=torch.float64)
            rec = {"pair": i, "mesh": p["mesh"], "overlap": p["overlap"], "angle": p["angle"],
                   "load": os.getloadavg()[0]}
            rr = ransac_icp(P, Q, seed=i)
            rec["ransac"] = {**_ev(rr["transform"], p), "s": rr["seconds"]}
            t0 = time.perf_counter()
            C = refine_local(P, Q, rr["transform"], iters=args.iters)
            sc = float(selection_score(P, Q, C).score[0])
            rec["fast_refine"] = {**_ev(C[0].numpy(), p), "score": sc, "s": time.perf_counter() - t0}
            t0 = time.perf_counter()
            T, info = best_of_flips(P, Q, rr["transform"], iters=args.iters)
            rec["fast_flips"] = {**_ev(T.numpy(), p), "score": info["score"], "label": info["label"],
                                 "s": time.perf_counter() - t0}
            for name in names:
                res = houv(P, Q, SCHEDULES[name], init_transforms=rr["transform"], seed=i)
                hyps, seen = [], []
                for T_h in _top_groups(res, MAX_HYPOTHESES):
                    dup = next((j for j, T_s in enumerate(seen) if same_pose(T_h, T_s, Q)), None)
                    seen.append(T_h)
                    if dup is not None:  # the recipe skips it: its flips were refined already
                        hyps.append({**hyps[dup], "s": 0.0, "dup": dup, "raw": _ev(T_h.numpy(), p)})
                        continue
                    t0 = time.perf_counter()
                    T, info = best_of_flips(P, Q, T_h, iters=args.iters)
                    hyps.append({**_ev(T.numpy(), p), "score": info["score"], "label": info["label"],
                                 "s": time.perf_counter() - t0, "raw": _ev(T_h.numpy(), p)})
                rec[name] = {**_ev(res.transform.numpy(), p), "s": res.seconds, "hyps": hyps}
            f.write(json.dumps(rec) + "\n")
            f.flush()
            print(f"{i:3d} {p['mesh']:>10s} ov {p['overlap']:.2f} load {rec['load']:.1f} | RANSAC {rec['ransac']['rot']:6.1f}"
                  f" | refine {rec['fast_refine']['rot']:6.1f} sc {sc:.3f} | flips {rec['fast_flips']['rot']:6.1f} "
                  f"sc {rec['fast_flips']['score']:.3f} {rec['fast_flips']['s']:.1f}s | "
                  + " | ".join(f"{n} {rec[n]['rot']:6.1f} {rec[n]['s']:.1f}s h " + ",".join(
                      f"{h['rot']:.1f}/{h['score']:.2f}" for h in rec[n]["hyps"]) for n in names), flush=True)


def replay(rec, accept, fast, schedule, hypotheses):
    """(ok, rot, seconds, path) of one recipe on one collected pair. ``fast``: "fast_refine" (the RANSAC
    start refined alone), "fast_flips" (with its flips), or "refine_then_flips" (refined alone for the
    accept test; when it is not accepted its flips join the HOUV candidates)."""
    f = rec["fast_refine" if fast == "refine_then_flips" else fast]
    sec = rec["ransac"]["s"] + f["s"]
    if schedule is None or (accept is not None and f["score"] <= accept):
        return f["ok"], f["rot"], sec, "fast"
    if fast == "refine_then_flips":
        f = rec["fast_flips"]
        sec += f["s"]
    h = rec[schedule]
    sec += h["s"]
    best = f
    for x in h["hyps"][:hypotheses]:
        sec += x["s"]
        if x["score"] < best["score"]:
            best = x
    return best["ok"], best["rot"], sec, "houv"


def choose(args):
    rows = [json.loads(line) for path in args.rows for line in Path(path).read_text().splitlines() if line.strip()]
    rows.sort(key=lambda r: r["pair"])
    n = len(rows)
    loads = [r["load"] for r in rows]
    print(f"{n} choosing pairs; load (1 min) during collection {min(loads):.1f}-{max(loads):.1f}, "
          f"median {np.median(loads):.1f}\n")
    base = [(r["ransac"]["ok"], r["ransac"]["rot"], r["ransac"]["s"]) for r in rows]

    def line(name, res):
        ok = [x[0] for x in res]
        rec = sum(1 for a, b in zip(res, base) if a[0] and not b[0])
        lost = sum(1 for a, b in zip(res, base) if b[0] and not a[0])
        fast = np.mean([x[3] == "fast" for x in res]) if len(res[0]) > 3 else float("nan")
        print(f"| {name} | {np.mean(ok):.3f} | {np.mean([x[1] for x in res]):.2f} | {np.median([x[2] for x in res]):.2f} | "
              f"{fast:.2f} | {rec} | {lost} |")

    if args.show:
        fast, sched, k, acc = args.show[0], args.show[1], int(args.show[2]), float(args.show[3])
        print(f"per pair, {fast} + {sched} + flips of {k} best, accept <= {acc}:\n")
        fast_key = "fast_refine" if fast == "refine_then_flips" else fast
        print("| pair | mesh | overlap | fast score | path | ours rot err | ours s | RANSAC+ICP rot err | HOUV answer rot err |")
        print("|---|---|---|---|---|---|---|---|---|")
        for r in rows:
            ok, rot, sec, path = replay(r, acc, fast, sched, k)
            print(f"| {r['pair']} | {r['mesh']} | {r['overlap']:.2f} | {r[fast_key]['score']:.3f} | {path} | "
                  f"{rot:.2f}{' ok' if ok else ''} | {sec:.2f} | {r['ransac']['rot']:.2f}{' ok' if r['ransac']['ok'] else ''} | "
                  f"{r[sched]['rot']:.2f} |")
        print()
    for fast in ("fast_refine", "fast_flips"):
        good = [r[fast]["score"] for r in rows if r[fast]["ok"]]
        bad = [r[fast]["score"] for r in rows if not r[fast]["ok"]]
        print(f"{fast}: selection score of its right answers {min(good):.3f}-{max(good):.3f} ({len(good)}), "
              f"of its wrong ones {min(bad) if bad else float('nan'):.3f}-{max(bad) if bad else float('nan'):.3f} "
              f"({len(bad)}): an accept threshold below {min(bad) if bad else float('inf'):.3f} accepts no wrong answer")
    print()
    print("| recipe | recall | mean rot err | median s | fast-path share | RANSAC+ICP fails recovered | "
          "RANSAC+ICP successes lost |")
    print("|---|---|---|---|---|---|---|")
    line("RANSAC+ICP (Open3D)", [(*b, "-") for b in base])
    schedules = [s for s in SCHEDULES if s in rows[0]]
    for s in schedules:
        line(f"HOUV {s} alone (RANSAC start)", [(r[s]["ok"], r[s]["rot"], r["ransac"]["s"] + r[s]["s"], "houv") for r in rows])
    for fast in ("fast_refine", "fast_flips", "refine_then_flips"):
        if fast != "refine_then_flips":
            line(f"{fast} only", [replay(r, None, fast, None, 0) for r in rows])
        for s in schedules:
            for k in range(1, MAX_HYPOTHESES + 1):
                for acc in (None, *args.accept):
                    line(f"{fast} + {s} + flips of {k} best, accept <= {acc}",
                         [replay(r, acc, fast, s, k) for r in rows])


#: The first default registration recipe, chosen on the CHOOSING set of fe_fast.datasets.registration_sets
#: (64 pairs) by tools/houv_default_choose.py, never on the report set (bench/results/houv.md, "Default
#: recipe"). The library default has since moved to 3 RANSAC+ICP starts and an accept score of 1.2,
#: chosen with ``verify --extra --fast-only`` on 96 choosing pairs ("A faster default").
#: 1. RANSAC+ICP (Open3D, FPFH) start; 2. refined by selection.refine_local (``refine_iters``)
#: and accepted at once when its selection_score is at most ``accept_score`` (the fast path); 3. otherwise
#: the start's flips (best_of_flips) and HOUV with ``houv`` settings (preset halving-local, the RANSAC
#: transform as one start); 4. the flips of HOUV's ``hypotheses`` best groups (best_of_flips, groups within
#: 3 degrees of an earlier one skipped); the lowest selection score among all these candidates wins.
DEFAULT_RECIPE = {
    "fast": "refine_then_flips",
    "accept_score": 1.0,
    "houv": preset("halving-local"),
    "hypotheses": 2,
    "refine_iters": 30,
}


def prototype_default(P, Q, seed=0, recipe=None):
    """The default recipe (``recipe``, default :data:`DEFAULT_RECIPE`) from public functions only:
    returns (4x4 transform P onto Q as float64 numpy, seconds, info with ``path`` "fast" or "houv" and
    the winning ``score``)."""
    from fe_fast.registration.selection import best_of_flips, refine_local, selection_score

    r = dict(DEFAULT_RECIPE if recipe is None else recipe)
    t0 = time.perf_counter()
    P = torch.as_tensor(np.asarray(P), dtype=torch.float64)
    Q = torch.as_tensor(np.asarray(Q), dtype=torch.float64)
    start = ransac_icp(P, Q, seed=seed)["transform"]
    if r["fast"] == "flips":  # the start and its flips, refined, before the accept test
        T, info = best_of_flips(P, Q, start, iters=r["refine_iters"])
        best, best_score = T, info["score"]
    elif r["fast"] in ("refine", "refine_then_flips"):  # the start refined alone
        C = refine_local(P, Q, start, iters=r["refine_iters"])
        best, best_score = C[0], float(selection_score(P, Q, C).score[0])
    else:
        raise ValueError(f"recipe fast must be flips, refine or refine_then_flips, got {r['fast']!r}")
    if best_score <= r["accept_score"]:
        return best.numpy(), time.perf_counter() - t0, {"path": "fast", "score": best_score}
    if r["fast"] == "refine_then_flips":  # not accepted: the start's flips join the candidates
        T, info = best_of_flips(P, Q, start, iters=r["refine_iters"])
        if info["score"] < best_score:
            best, best_score = T, info["score"]
    res = houv(P, Q, r["houv"], init_transforms=start, seed=seed)
    score = res.extra["group_score"]
    order = [res.group] + [g for g in torch.argsort(score).tolist()
                           if g != res.group and bool(torch.isfinite(score[g]))]
    seen = []
    for g in order[: r["hypotheses"]]:
        T_h = torch.eye(4, dtype=torch.float64)
        T_h[:3, :3], T_h[:3, 3] = res.all_R[g].double(), res.all_t[g].double()
        if any(same_pose(T_h, T_s, Q) for T_s in seen):
            continue  # its flips were refined already
        seen.append(T_h)
        T, info = best_of_flips(P, Q, T_h, iters=r["refine_iters"])
        if info["score"] < best_score:
            best, best_score = T, info["score"]
    return best.numpy(), time.perf_counter() - t0, {"path": "houv", "score": best_score}


def variant_config(settings):
    """The library default with ``STAGE.FIELD=VALUE`` changes (VALUE a Python literal), e.g.
    ``selection.flip_iters=20``."""
    import ast

    from fe_fast.registration.config import DEFAULT_CONFIG

    changes = {}
    for item in settings or []:
        key, _, text = item.partition("=")
        stage, _, name = key.partition(".")
        if not text or not name:
            raise ValueError(f"--set: expected STAGE.FIELD=VALUE, got {item!r}")
        changes.setdefault(stage, {})[name] = ast.literal_eval(text)
    return DEFAULT_CONFIG.replace(**changes)


def fast_path(P, Q, config, seed=0):
    """Only the fast path of ``houv(P, Q, config)`` (its ``Starts.correspondence`` RANSAC+ICP runs with
    seeds seed, seed + 1, ..., each refined by ``refine_local``, the best by ``selection_score``): returns
    (its transform, seconds, info with ``path`` "fast" when ``Accept.score`` accepts it, else "slow":
    the pair would go on to HOUV, not run here)."""
    t0, cpu = time.perf_counter(), time.process_time()
    starts = np.stack([ransac_icp(P, Q, seed=seed + k)["transform"] for k in range(config.starts.correspondence)])
    C = refine_local(P, Q, starts, iters=config.selection.flip_iters)
    scores = selection_score(P, Q, C).score
    i = int(torch.argmin(scores))
    path = "fast" if float(scores[i]) <= config.accept.score else "slow"
    return C[i].numpy(), time.perf_counter() - t0, {"path": path, "score": float(scores[i]),
                                                     "cpu_s": time.process_time() - cpu, "stages": {}}


def verify(args):
    pairs = choosing_pairs(args.pairs or CHOOSING_PAIRS) + (choosing_extra_pairs() if args.extra else [])
    index = list(range(len(pairs))) if args.only is None else list(args.only)  # a pair's index is its seed
    config = variant_config(args.set)
    what = (json.dumps(DEFAULT_RECIPE, default=str) if args.prototype else
            f"the library default houv(P, Q) with {args.set}" if args.set else "the library default houv(P, Q)")
    print(f"recipe: {what}; torch threads {torch.get_num_threads()}")
    ours, base, rows = [], [], []
    for i in index:
        p = pairs[i]
        load = os.getloadavg()[0]
        if args.prototype:
            T, sec, info = prototype_default(p["P"], p["Q"], seed=i)
        elif args.fast_only:
            T, sec, info = fast_path(p["P"], p["Q"], config, seed=i)
        else:
            cpu = time.process_time()
            r = houv(p["P"], p["Q"], config, seed=i)
            T, sec = r.transform.double().numpy(), r.seconds
            info_cpu = time.process_time() - cpu
            info = {"path": "fast" if r.extra.get("accepted") else "houv",
                    "score": r.extra.get("flip", {}).get("score"), "stages": r.extra["stage_seconds"],
                    "cpu_s": info_cpu}
        rr = ransac_icp(p["P"], p["Q"], seed=i)
        a, b = _ev(T, p), _ev(rr["transform"], p)
        ours.append((a["ok"], a["rot"], sec))
        base.append((b["ok"], b["rot"], rr["seconds"]))
        rows.append({"pair": i, "name": p["name"], "mesh": p["mesh"], "overlap": p["overlap"], "load": load, "ours": {**a, "seconds": sec,
                     **info}, "RANSAC+ICP": {**b, "seconds": rr["seconds"]}})
        print(f"{i:3d} {p['mesh']:>10s} ov {p['overlap']:.2f} load {load:.1f} | ours {a['rot']:7.2f} "
              f"{'ok' if a['ok'] else '--'} {sec:5.2f}s {info['path']:4s} | RANSAC+ICP {b['rot']:7.2f} "
              f"{'ok' if b['ok'] else '--'} {rr['seconds']:.2f}s", flush=True)
    for name, r in (("ours", ours), ("RANSAC+ICP", base)):
        print(f"{name}: recall {np.mean([x[0] for x in r]):.3f}, mean rot err {np.mean([x[1] for x in r]):.2f}, "
              f"median s {np.median([x[2] for x in r]):.2f}")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text("".join(json.dumps(r, default=float) + "\n" for r in rows))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("collect")
    c.add_argument("--pairs", type=int, default=None, help="the first K choosing pairs (default: all)")
    c.add_argument("--start", type=int, default=0, help="skip the pairs before this one")
    c.add_argument("--iters", type=int, default=30, help="refine_local iterations")
    c.add_argument("--schedules", nargs="*", choices=sorted(SCHEDULES), default=None)
    c.add_argument("--out", default="bench/out/houv_choose.jsonl")
    h = sub.add_parser("choose")
    h.add_argument("--rows", nargs="+", default=["bench/out/houv_choose.jsonl"])
    h.add_argument("--accept", type=float, nargs="*", default=[0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2])
    h.add_argument("--show", nargs=4, metavar=("FAST", "SCHEDULE", "K", "ACCEPT"), default=None,
                   help="also the per-pair table of one recipe, e.g. fast_flips HL-small 2 0.9")
    v = sub.add_parser("verify")
    v.add_argument("--pairs", type=int, default=None)
    v.add_argument("--prototype", action="store_true", help="the prototype recipe instead of houv(P, Q)")
    v.add_argument("--set", nargs="*", default=None, metavar="STAGE.FIELD=VALUE",
                   help="run the default with these config changes, e.g. selection.flip_prune=(5,8)")
    v.add_argument("--out", default=None, help="json lines, one per pair")
    v.add_argument("--fast-only", action="store_true",
                   help="only the fast path (correspondence starts, refined and scored); the others are 'slow'")
    v.add_argument("--extra", action="store_true", help="also the 32 extra choosing pairs (choosing_extra_pairs)")
    v.add_argument("--only", type=int, nargs="*", default=None, help="only these pair indices")
    args = ap.parse_args(argv)
    {"collect": collect, "choose": choose, "verify": verify}[args.cmd](args)


if __name__ == "__main__":
    main()
