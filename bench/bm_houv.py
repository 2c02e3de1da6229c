"""Thesis Table 3-1 on generated MVP-style partial pairs and on the real bunny ring scans:
HOUV (and HOUV_pri, HOUV with a RANSAC+ICP start and the free-space check) against the Open3D
baselines (ICP, FGR, RANSAC+ICP) in one run.

``make bench`` runs the shipped cascade against the baselines (``QUICK_ARGS``: 3 mvp pairs and 2 real
pairs; ``FULL_ARGS``: the 200-pair protocol of bench/results/houv.md, about 1 h on 2 idle cores). By hand::

    OMP_NUM_THREADS=2 python bench/bm_houv.py --pairs 200 --protocols modelnet mvp so3 \\
        --methods HOUV+RANSAC+vis ICP FGR RANSAC+ICP --best-of halving-local robust-halving --accept-score 1.6
    OMP_NUM_THREADS=2 python bench/bm_houv.py --pairs 32 --preset robust-wide --methods HOUV HOUV_pri

Columns: mean rotation error (deg, eq. 3-13), mean translation error (L2), mean MSE (eq. 3-14),
recall (rot < 5 deg and trans < 5 % of the target's bbox diagonal), median seconds per pair.
Generated pairs: ``fe_fast.datasets.partial_pairs`` (seed ``--seed``, N = ``--n-points``).
Real scans: every ordered bunny ring-scan pair with overlap > 0.3, subsampled to N points, the
source moved by a random rigid transform (mvp protocol rotation, translation up to 5 cm).
The table goes to ``bench/out/houv.md`` (``--out``), per-pair rows to ``<out>.jsonl`` next to it.

``--methods HOUV+vis`` (and ``HOUV+RANSAC+vis``) give HOUV each scan's sensor position (the generated
pairs' camera centres, the bunny scanner's position; the source's moved with it) for the free-space check
(``houv(..., viewpoints=...)``); the Open3D baselines do not use them.

GPU: ``--device cuda`` runs HOUV/HOUV_pri on the GPU (the Open3D baselines stay on the CPU);
``--batch-pairs K`` registers K pairs in one :func:`~fe_fast.registration.houv_batch` call (K*32
hypotheses at once, every pair seeded with ``--seed``) and reports the call's time divided by K
as seconds per pair.
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

from fe_fast.cli.register import parse_pairs_spec
from fe_fast.datasets import bunny
from fe_fast.datasets import partial_pairs as pp
from fe_fast.registration import baselines, houv, houv_batch
from fe_fast.registration.best_of import houv_best_of
from fe_fast.registration.metrics import evaluate, summarize
from fe_fast.registration.config import core_kwargs
from fe_fast.registration.presets import PRESETS, preset

PRI_BOUNDS = [[0, 45], [45, 90], [90, 135], [135, 180]]  # thesis §3.3.2: 180 degrees in 4 ranges

def houv_settings(name, groups=None, schedule=None, init_translation=None):
    """The preset's houv() arguments with the command line's --groups / --schedule /
    --init-translation on top."""
    kw = core_kwargs(preset(name))  # the core loop's keywords (houv(P, Q, **kw): the old style, FutureWarning)
    if groups is not None:
        kw["groups"] = groups
    if schedule is not None:
        kw["schedule"] = schedule
    if init_translation is not None:
        kw["init_translation"] = init_translation
    return kw


def _register(P, Q, kw, best_of, **run):
    """houv() with ``kw``, or with ``best_of`` (several settings, plus ``accept_score``; ``kw``'s device
    and HOUV_pri bounds apply to each) houv_best_of()."""
    if best_of:
        extra = {k: kw[k] for k in ("device", "angle_bounds") if k in kw}
        return houv_best_of(P, Q, [dict(b, **extra) for b in best_of["settings"]],
                            accept_score=best_of["accept_score"], **run)
    return houv(P, Q, **kw, **run)


def _best_of_record(r):
    """The jsonl fields of a best-of run: each run's selection score and the chosen run."""
    return {"best_of": r.extra["best_of"], "best_of_index": r.extra["best_of_index"]} if "best_of" in r.extra else {}


def houv_method(settings, pri, device=None, use_viewpoints=False, best_of=None):
    """HOUV (``pri``: HOUV_pri); ``use_viewpoints``: with the pairs' sensor positions (free-space check);
    ``best_of``: several settings, the answer with the lowest selection score (one pair per call)."""
    kw = dict(settings, device=device)
    if pri:
        kw["angle_bounds"] = PRI_BOUNDS

    def f(P, Q, seed, viewpoints=None):
        r = _register(P, Q, kw, best_of, seed=seed, viewpoints=viewpoints if use_viewpoints else None)
        return r.transform.cpu().numpy(), r.seconds, _best_of_record(r)

    if best_of:
        return f

    def batch(Ps, Qs, seed, viewpoints=None):
        rs = houv_batch(Ps, Qs, seed=seed, viewpoints=viewpoints if use_viewpoints else None, **kw)
        return [(r.transform.cpu().numpy(), r.seconds / len(rs), {}) for r in rs]

    f.batch = batch
    return f


def houv_ransac_method(settings, device=None, use_viewpoints=False, best_of=None):
    """HOUV warm-started at RANSAC+ICP's answer (``init_transforms``; one of the groups starts there):
    the time is both together. ``use_viewpoints``: with the free-space check; ``best_of`` as
    :func:`houv_method`."""
    kw = dict(settings, device=device)

    def f(P, Q, seed, viewpoints=None):
        start = baselines.ransac_icp(P, Q, seed=seed)
        r = _register(P, Q, kw, best_of, seed=seed, init_transforms=start["transform"],
                      viewpoints=viewpoints if use_viewpoints else None)
        return r.transform.cpu().numpy(), start["seconds"] + r.seconds, _best_of_record(r)

    return f


def run_default(P, Q, seed=0, threads=None):
    """The library's default registration of P onto Q (``houv(P, Q)``, DEFAULT_CONFIG; ``threads``: its
    ``threads`` field instead): (4x4 transform, seconds, info with ``path`` "fast" (the correspondence
    start accepted) or "houv", and the winning selection ``score``)."""
    from fe_fast.registration.config import DEFAULT_CONFIG

    r = houv(P, Q, None if threads is None else DEFAULT_CONFIG.replace(threads=threads), seed=seed)
    return r.transform.double().numpy(), r.seconds, {
        "path": "fast" if r.extra.get("accepted") else "houv", "score": r.extra.get("flip", {}).get("score")}


def o3d_method(name):
    fn = baselines.BASELINES[name]

    def f(P, Q, seed, viewpoints=None):  # the Open3D baselines do not use sensor positions
        r = fn(P, Q, seed=seed)
        return r["transform"], r["seconds"], {}

    return f


def _device_name(device):
    if device and str(device).startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return "cpu"


def real_pairs(n_points, seed):
    out = []
    rng = np.random.default_rng(seed + 7)
    for p in bunny.ring_pairs(n_points=n_points, seed=seed):
        T = pp.random_transform("mvp", rng, max_translation=0.05)
        P = p["P"].astype(np.float64) @ T[:3, :3].T + T[:3, 3]
        vp_P, vp_Q = p["viewpoints"]
        out.append({**p, "P": P.astype(np.float32), "T_gt": p["T_gt"] @ np.linalg.inv(T),
                    "viewpoints": (T[:3, :3] @ vp_P + T[:3, 3], vp_Q), "name": f"{p['src']}->{p['tgt']}"})
    return out


def _cached_pairs(pairs_dir, set_name, gen, key):
    """The set's pairs, from ``<pairs_dir>/<set_name>.npz`` when it was written with the same seed and
    N and at least ``key["count"]`` pairs (None: the whole set); otherwise generated and written
    there. Arrays only, no pickle."""
    path = Path(pairs_dir) / f"{set_name}.npz" if pairs_dir else None
    if path is not None and path.exists():
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            if (isinstance(meta, dict) and all(meta["key"].get(k) == key[k] for k in ("seed", "n_points"))
                    and "V0" in z.files):
                have, want = meta["key"]["count"], key["count"]
                if have is None or (want is not None and have >= want):
                    return [{"P": z[f"P{i}"], "Q": z[f"Q{i}"], "T_gt": z[f"T{i}"],
                             "viewpoints": tuple(z[f"V{i}"]), **m}
                            for i, m in enumerate(meta["pairs"][:want])]
        print(f"[pairs] {path} holds other pairs than seed/N/count {key} (or no viewpoints); regenerating",
              flush=True)
    pairs = list(gen())
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {}
        for i, p in enumerate(pairs):
            arrays.update({f"P{i}": p["P"], f"Q{i}": p["Q"], f"T{i}": p["T_gt"],
                           f"V{i}": np.stack([np.asarray(v, dtype=np.float64) for v in p["viewpoints"]])})
        meta = [{k: p[k] for k in ("mesh", "name", "overlap") if k in p and np.isscalar(p[k])} for p in pairs]
        key = key if key["count"] is None else {**key, "count": len(pairs)}
        np.savez_compressed(path, meta=json.dumps({"key": key, "pairs": meta}), **arrays)
    return pairs


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=200, help="pairs per protocol")
    ap.add_argument("--protocols", nargs="*", default=list(pp.PROTOCOLS))
    ap.add_argument("--no-real", action="store_true", help="skip the bunny ring scans")
    ap.add_argument("--real-limit", type=int, default=None, help="use only the first K real pairs")
    ap.add_argument("--n-points", type=int, default=2048)
    ap.add_argument("--groups", type=int, default=None, help="hypotheses per pair (default: the preset's, else 32)")
    ap.add_argument("--preset", choices=sorted(PRESETS), default="refine")
    ap.add_argument("--schedule", default=None, help="replaces the preset's schedule, e.g. '256:100,1024:50'")
    ap.add_argument("--init-translation", choices=("random", "search"), default=None,
                    help="replaces the preset's start translations (houv's init_translation)")
    ap.add_argument("--methods", nargs="*", default=["HOUV", "HOUV_pri", "ICP", "FGR", "RANSAC+ICP"],
                    help="also HOUV+RANSAC: HOUV with one group started at RANSAC+ICP's answer; HOUV+vis and "
                         "HOUV+RANSAC+vis: the same with the free-space check (the pairs' sensor positions; the "
                         "preset must select by 'inlier')")
    ap.add_argument("--best-of", nargs="*", choices=sorted(PRESETS), default=None, metavar="PRESET",
                    help="HOUV methods run every named preset and keep the answer with the lowest selection "
                         "score (fe_fast.registration.best_of; each must select by 'inlier'); replaces --preset")
    ap.add_argument("--accept-score", type=float, default=None,
                    help="with --best-of: stop at the first preset whose selection score is at most this")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default=None, help="HOUV's device (cpu, cuda); default: cpu")
    ap.add_argument("--batch-pairs", type=int, default=1,
                    help="HOUV: pairs per houv_batch call (GPU throughput mode)")
    ap.add_argument("--pairs-dir", default=None,
                    help="cache of the pairs: load <dir>/<set>.npz when present, else generate and save it "
                         "(lets a machine without Open3D or the bunny scans run the same pairs)")
    ap.add_argument("--out", default=None,
                    help="markdown file for the table, and <out>.jsonl per pair (default bench/out/houv.md)")
    ap.add_argument("--default", action="store_true",
                    help="the default recipe (run_default) against Open3D RANSAC+ICP, per-pair table, on the "
                         "frozen pairs of fe_fast.datasets.registration_sets (--default-set); ignores the HOUV "
                         "options above")
    ap.add_argument("--default-set", choices=("report", "fresh", "choose"), default="report",
                    help="with --default: the REPORT set (56 held-out generated pairs + 36 real bunny ring "
                         "pairs), the FRESH report set (56 generated pairs of new objects and seeds + the bunny "
                         "pairs with new transforms; made after the default changed) or the CHOOSING set (64 pairs)")
    ap.add_argument("--limit", type=int, default=None, help="with --default: only the first K pairs")
    ap.add_argument("--first", type=int, default=0, help="with --default: start at pair K (its seed is K)")
    ap.add_argument("--busy", action="store_true",
                    help="with --default: speed only; each pair's run_default seconds with the machine as it is "
                         "and with one more process spinning one core, as a ratio in one run")
    ap.add_argument("--threads", type=int, nargs="*", default=None,
                    help="with --busy: RegistrationConfig.threads values to measure (default: torch's current count)")
    args = ap.parse_args(argv)
    if args.default:
        return (main_busy if args.busy else main_default)(args, argv)
    settings = houv_settings(args.preset, args.groups, parse_pairs_spec(args.schedule, "--schedule", int),
                             args.init_translation)

    if args.accept_score is not None and not args.best_of:
        ap.error("--accept-score needs --best-of")
    best_of = ({"settings": [core_kwargs(preset(name)) for name in args.best_of], "accept_score": args.accept_score}
               if args.best_of else None)
    methods = {}
    for m in args.methods:
        if m == "HOUV":
            methods[m] = houv_method(settings, False, args.device, best_of=best_of)
        elif m == "HOUV_pri":
            methods[m] = houv_method(settings, True, args.device, best_of=best_of)
        elif m == "HOUV+vis":
            methods[m] = houv_method(settings, False, args.device, use_viewpoints=True, best_of=best_of)
        elif m in ("HOUV+RANSAC", "HOUV+RANSAC+vis"):
            methods[m] = houv_ransac_method(settings, args.device, use_viewpoints=m.endswith("+vis"),
                                            best_of=best_of)
        else:
            methods[m] = o3d_method(m)

    sets = {}
    for proto in args.protocols:
        sets[proto] = lambda proto=proto: pp.iter_pairs(args.pairs, protocol=proto, n_points=args.n_points,
                                                        seed=args.seed)
    if not args.no_real:
        sets["bunny-real"] = lambda: real_pairs(args.n_points, args.seed)[: args.real_limit]

    out = Path(args.out) if args.out else benchutil.out_path("houv.md")
    out.parent.mkdir(parents=True, exist_ok=True)
    report = benchutil.Report("houv", "HOUV registration vs Open3D baselines (thesis Table 3-1)",
                              "OMP_NUM_THREADS=" + os.environ.get("OMP_NUM_THREADS", "(unset)") + " "
                              + benchutil.script_command(__file__, argv if argv is not None else sys.argv[1:]))
    jsonl = open(out.with_suffix(".jsonl"), "w")
    rows = {}
    t_start = time.time()
    for set_name, gen in sets.items():
        per = {m: ([], []) for m in methods}
        count = args.real_limit if set_name == "bunny-real" else args.pairs
        key = {"seed": args.seed, "n_points": args.n_points, "count": count}
        pairs = _cached_pairs(args.pairs_dir, set_name, gen, key)
        batched = {}
        if args.batch_pairs > 1:
            for m, f in methods.items():
                if hasattr(f, "batch"):
                    batched[m] = []
                    for i in range(0, len(pairs), args.batch_pairs):
                        chunk = pairs[i: i + args.batch_pairs]
                        batched[m] += f.batch([p["P"] for p in chunk], [p["Q"] for p in chunk], args.seed,
                                              [p["viewpoints"] for p in chunk])
        for k, pair in enumerate(pairs):
            for m, f in methods.items():
                T, sec, info = (batched[m][k] if m in batched
                                else f(pair["P"], pair["Q"], args.seed + k, viewpoints=pair["viewpoints"]))
                ev = evaluate(T, pair["T_gt"], pair["P"], pair["Q"])
                per[m][0].append(ev)
                per[m][1].append(sec)
                rec = {"set": set_name, "pair": k, "method": m, "seconds": sec, **ev,
                       "mesh": pair.get("mesh", pair.get("name")), "overlap": pair.get("overlap"), **info}
                if jsonl:
                    jsonl.write(json.dumps(rec) + "\n")
                    jsonl.flush()
                print(f"[{time.time() - t_start:7.0f}s] {set_name} #{k} {m:10s} rot {ev['rot_err']:7.2f} "
                      f"trans {ev['trans_err']:.4f} {sec:6.2f}s", file=sys.stderr, flush=True)
        rows[set_name] = {m: summarize(per[m][0], per[m][1]) for m in methods}

    jsonl.close()
    lines = [
        f"Conditions: N={args.n_points}, "
        + (f"HOUV best of presets {', '.join(f'`{n}`' for n in args.best_of)}"
           + (f" (stop at selection score <= {args.accept_score})" if args.accept_score is not None else "")
           + ", " if best_of else
           f"{settings['groups']} groups, HOUV preset `{args.preset}` -> {settings}, ")
        + f"{args.pairs} generated pairs per protocol (seed {args.seed}); torch {torch.__version__}, "
        f"{platform.processor() or platform.machine()}, total {time.time() - t_start:.0f} s; "
        f"HOUV on {_device_name(args.device)}"
        + (f", {args.batch_pairs} pairs per houv_batch call (s/pair = call time / pairs)"
           if args.batch_pairs > 1 else "") + ".",
        "",
        "| set | method | rot err (deg) | trans err | MSE | RMSE | recall | median s/pair | pairs |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for set_name, by_m in rows.items():
        for m, s in by_m.items():
            if not s.get("pairs"):
                continue
            lines.append(
                f"| {set_name} | {m} | {s['rot_err']:.2f} | {s['trans_err']:.4f} | {s['mse']:.3g} | "
                f"{s['rmse']:.4f} | {s['recall']:.3f} | {s['median_s']:.2f} | {s['pairs']} |"
            )
    text = "\n".join(lines)
    print(text)
    report.add(text)
    report.add(f"\nPer-pair rows: `{out.with_suffix('.jsonl').name}` next to this file (not committed).")
    report.write(out)
    return rows


def _default_pairs(args):
    """The pairs of --default-set from --first on (--limit of them)."""
    from fe_fast.datasets import registration_sets

    stop = None if args.limit is None else args.first + args.limit
    if args.default_set == "choose":
        return registration_sets.choosing_pairs(stop or registration_sets.CHOOSING_PAIRS, args.n_points)[args.first:]
    n_gen = registration_sets.REPORT_GENERATED if stop is None else min(stop, registration_sets.REPORT_GENERATED)
    real = not args.no_real and (stop is None or stop > n_gen)
    if args.default_set == "fresh":
        pairs = registration_sets.fresh_report_pairs(n_gen, args.n_points, real=real)
    else:
        pairs = registration_sets.report_generated_pairs(n_gen, args.n_points)
        if real:
            pairs += registration_sets.bunny_report_pairs(n_points=args.n_points)
    return pairs[args.first:stop]


def main_default(args, argv):
    """``--default``: run_default and RANSAC+ICP on every pair, per-pair table and summary per subset."""
    out = Path(args.out) if args.out else benchutil.out_path(f"houv_default_{args.default_set}.md")
    report = benchutil.Report(out.stem, f"Default registration vs Open3D RANSAC+ICP ({args.default_set} set)",
                              "OMP_NUM_THREADS=" + os.environ.get("OMP_NUM_THREADS", "(unset)") + " "
                              + benchutil.script_command(__file__, argv if argv is not None else sys.argv[1:]))
    if args.default_set != "choose":
        print("REPORT SET: no setting may be chosen on these numbers", file=sys.stderr)
    pairs = _default_pairs(args)
    import fe_fast.ops  # noqa: F401  (its import, about 4 s with torch._dynamo, is start-up, not the algorithm's time)

    rows = []
    for k, p in enumerate(pairs, start=args.first):
        load = os.getloadavg()[0]
        T, sec, info = run_default(p["P"], p["Q"], seed=k)
        rr = baselines.ransac_icp(p["P"], p["Q"], seed=k)
        a = evaluate(T, p["T_gt"], p["P"], p["Q"])
        b = evaluate(rr["transform"], p["T_gt"], p["P"], p["Q"])
        row = {"pair": k, "name": p["name"], "set": p["set"], "overlap": float(p["overlap"]), "load": load,
               "ours": {**a, "seconds": sec, **info}, "RANSAC+ICP": {**b, "seconds": rr["seconds"]}}
        rows.append(row)
        print(f"{k:3d} {p['name']:>22s} ov {p['overlap']:.2f} | ours {a['rot_err']:7.2f} {'ok' if a['success'] else '--'} "
              f"{sec:5.2f}s | RANSAC+ICP {b['rot_err']:7.2f} {'ok' if b['success'] else '--'} {rr['seconds']:.2f}s",
              file=sys.stderr, flush=True)
    lines = [f"N = {args.n_points}; torch {torch.__version__}, {torch.get_num_threads()} torch threads; "
             f"load (1 min) during the run {min(r['load'] for r in rows):.1f}-{max(r['load'] for r in rows):.1f}. "
             "Ok: rotation error < 5 deg and translation < 5 % of the target's bbox diagonal. "
             "Seconds: the algorithm's own (no start-up).", "",
             "| pair | overlap | ours ok | ours rot err | ours s | path | RANSAC+ICP ok | RANSAC+ICP rot err | "
             "RANSAC+ICP s |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        a, b = r["ours"], r["RANSAC+ICP"]
        lines.append(f"| {r['name']} | {r['overlap']:.2f} | {'yes' if a['success'] else 'no'} | {a['rot_err']:.2f} | "
                     f"{a['seconds']:.2f} | {a['path']} | {'yes' if b['success'] else 'no'} | {b['rot_err']:.2f} | "
                     f"{b['seconds']:.2f} |")
    lines += ["", "| subset | method | pairs | recall | mean rot err (deg) | median s/pair | "
              "successes the other method misses |", "|---|---|---|---|---|---|---|"]
    subsets = [("all", rows)] + [(s, [r for r in rows if r["set"] == s]) for s in dict.fromkeys(r["set"] for r in rows)]
    summary = {}
    for name, rs in subsets:
        if not rs or (name != "all" and len(subsets) == 2):
            continue
        for m, other in (("ours", "RANSAC+ICP"), ("RANSAC+ICP", "ours")):
            only = sum(1 for r in rs if r[m]["success"] and not r[other]["success"])
            s = {"pairs": len(rs), "recall": float(np.mean([r[m]["success"] for r in rs])),
                 "rot_err": float(np.mean([r[m]["rot_err"] for r in rs])),
                 "median_s": float(np.median([r[m]["seconds"] for r in rs])), "only": only}
            summary[(name, m)] = s
            lines.append(f"| {name} | {m} | {s['pairs']} | {s['recall']:.3f} | {s['rot_err']:.2f} | "
                         f"{s['median_s']:.2f} | {only} |")
    text = "\n".join(lines)
    print(text)
    report.add(text)
    report.write(out)
    with open(out.with_suffix(".jsonl"), "w") as f:
        for r in rows:
            f.write(json.dumps(r, default=float) + "\n")
    return rows


def _spinner():
    import subprocess

    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def main_busy(args, argv):
    """``--default --busy``: seconds of run_default per pair with the machine as it is ("idle") and with one
    more process spinning a core ("busy"), for each torch thread count, as ratios measured in one run."""
    out = Path(args.out) if args.out else benchutil.out_path("houv_default_busy.md")
    report = benchutil.Report(out.stem, "Default registration: one busy process on the machine",
                              "OMP_NUM_THREADS=" + os.environ.get("OMP_NUM_THREADS", "(unset)") + " "
                              + benchutil.script_command(__file__, argv if argv is not None else sys.argv[1:]))
    pairs = _default_pairs(args)
    threads = args.threads or [torch.get_num_threads()]
    before = torch.get_num_threads()
    lines = ["| torch threads | pair | idle s | busy s | busy / idle | load idle | load busy |", "|---|---|---|---|---|---|---|"]
    summary = {}
    run_default(pairs[0]["P"], pairs[0]["Q"], seed=0)  # warm-up (lazy imports, first allocations)
    try:
        for th in threads:
            torch.set_num_threads(th)
            ratios = []
            for k, p in enumerate(pairs, start=args.first):
                l0 = os.getloadavg()[0]
                idle = run_default(p["P"], p["Q"], seed=k, threads=th)[1]
                spin = _spinner()
                try:
                    time.sleep(0.2)
                    l1 = os.getloadavg()[0]
                    busy = run_default(p["P"], p["Q"], seed=k, threads=th)[1]
                finally:
                    spin.kill()
                    spin.wait()
                ratios.append(busy / idle)
                lines.append(f"| {th} | {p['name']} | {idle:.2f} | {busy:.2f} | {busy / idle:.2f} | {l0:.1f} | {l1:.1f} |")
                print(lines[-1], file=sys.stderr, flush=True)
            summary[th] = float(np.median(ratios))
    finally:
        torch.set_num_threads(before)
    lines += ["", "| torch threads | median busy / idle |", "|---|---|"]
    lines += [f"| {th} | {r:.2f} |" for th, r in summary.items()]
    text = "\n".join(lines)
    print(text)
    report.add(f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(unset)')}; 'idle' is the machine as it is "
               "(load column), 'busy' adds one process spinning one core.\n")
    report.add(text)
    report.write(out)
    return summary


#: ``make bench``: the shipped cascade (RANSAC+ICP start, free-space check, ``halving-local`` then
#: ``robust-halving`` above selection score 1.6) against the Open3D baselines
CASCADE = ["--methods", "HOUV+RANSAC+vis", "ICP", "FGR", "RANSAC+ICP",
           "--best-of", "halving-local", "robust-halving", "--accept-score", "1.6"]
QUICK_ARGS = ["--pairs", "3", "--protocols", "mvp", "--real-limit", "2", *CASCADE]
FULL_ARGS = ["--pairs", "200", "--protocols", "modelnet", "mvp", "so3", *CASCADE]
#: ``make bench``: the default recipe against RANSAC+ICP; quick: one choosing-set pair (checks that it
#: runs); full: the whole report set (40 held-out generated pairs + 36 real bunny pairs)
QUICK_DEFAULT_ARGS = ["--default", "--default-set", "choose", "--limit", "1"]
FULL_DEFAULT_ARGS = ["--default", "--default-set", "report"]


def test_houv():
    import pytest

    pytest.importorskip("open3d", reason="the Open3D baselines need open3d (pip install open3d)")
    argv = list(benchutil.pick(QUICK_ARGS, FULL_ARGS))
    try:
        bunny._scans_dir(None)
    except FileNotFoundError as e:  # the real ring scans are not bundled
        print(f"\n[bm_houv] real bunny scans left out: {e}")
        argv.append("--no-real")
    rows = main(argv)
    assert all(s.get("pairs") for by_m in rows.values() for s in by_m.values())


def test_houv_default():
    import pytest

    pytest.importorskip("open3d", reason="the default recipe and RANSAC+ICP need open3d (pip install open3d)")
    argv = list(benchutil.pick(QUICK_DEFAULT_ARGS, FULL_DEFAULT_ARGS))
    try:
        bunny._scans_dir(None)
    except FileNotFoundError as e:
        print(f"\n[bm_houv] real bunny scans left out: {e}")
        argv.append("--no-real")
    rows = main(argv)
    assert rows and all(r["ours"]["seconds"] > 0 and r["RANSAC+ICP"]["seconds"] > 0 for r in rows)


if __name__ == "__main__":
    main()
