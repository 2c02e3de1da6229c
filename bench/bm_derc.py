"""Thesis Table 4-3 rows on real data: k-means on pixels, DAE, DERC-R and DERC (ACC, NMI, minutes).

``make bench`` runs it: quick (``QUICK_ARGS``: the bundled 8x8 digits, one seed, a few epochs, a pipeline
check whose numbers say little) and full (``FULL_RUNS``: the setting of bench/results/derc.md that meets
the thesis's ACC and NMI on USPS and MNIST-test, three seeds; about 70 min on 2 idle cores, needs the data
sets, see ``fe_fast.datasets``). By hand, for example::

    OMP_NUM_THREADS=2 python bench/bm_derc.py --datasets usps --seeds 0 1 2 --epochs 10 --rounds 4 \\
        --methods k-means DAE DERC --augment-shift 0.1 --augment-rotation 10 --reducer umap --n-maps 5 \\
        --n-autoencoders 3 --round-consensus

``--default`` compares DERC with no option (its ``"auto"`` rules, fe_fast.clustering.auto) against
k-means and spectral clustering (10-NN graph) on the pixels, on subsamples of USPS and MNIST-test
(the sets the rules were chosen on), scikit-learn's digits and toy-face identities (validation),
three seeds each (``FULL_DEFAULT_ARGS``; ``--full-sets`` adds the whole USPS and MNIST-test; about 90 min
on 2 idle cores)::

    OMP_NUM_THREADS=2 python bench/bm_derc.py --default --seeds 0 1 2 --full-sets

The Table 4-3 rows below run on the thesis preset with the options given. For each dataset and
seed, one stage-1 autoencoder training is shared by DAE, DERC-R and DERC
(they differ only after stage 1, thesis section 4.4.2); each row's minutes include that shared
stage-1 time. The mean and spread (min..max, std) over seeds go to ``bench/out/derc.md``, every run's
record to ``bench/out/derc.json`` (``--out``).

With ``--n-autoencoders A`` the DERC row also trains (or loads from ``--stage1-cache``) the extra
stage-1 autoencoders (seeds seed + 1000 j), and its minutes include all A stage-1 trainings.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchutil  # noqa: E402

from fe_fast.clustering import DAE, DERC, clustering_accuracy, nmi  # noqa: E402
from fe_fast.clustering.derc import prepare_images  # noqa: E402
from fe_fast.clustering.presets import PRESETS  # noqa: E402
from fe_fast.datasets.images import load_clustering_data  # noqa: E402

THESIS = {  # Table 4-3 (ACC, NMI)
    "mnist-test": {"k-means": (0.547, 0.501), "DAE": (0.805, 0.775), "DERC-R": (0.949, 0.907), "DERC": (0.972, 0.923)},
    "usps": {"k-means": (0.460, 0.450), "DAE": (0.724, 0.758), "DERC-R": (0.962, 0.923), "DERC": (0.977, 0.942)},
}


def stage1(name, X, y, k, seed, common, args):
    """The stage-1 model (a fitted DAE) of one seed, trained or loaded from ``--stage1-cache``."""
    import torch

    cache = Path(args.stage1_cache) / (
        f"dae_{name}_seed{seed}_e{args.epochs}_b{args.batch_size}_aug{args.augment_shift}-{args.augment_rotation}.pt"
    ) if args.stage1_cache else None
    if cache is not None and cache.is_file():
        print(f"[{name} seed {seed}] stage 1 loaded from {cache}", flush=True)
        return torch.load(cache, weights_only=False)  # our own file, written below
    dae = DAE(k, **dict(common, random_state=seed, n_autoencoders=1)).fit(X, y)  # the thesis's DAE: one
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        torch.save(dae, cache)
    return dae


def run_one(name, X, y, seed, args, log):
    k = int(np.unique(y).size)
    rows = {}
    # Table 4-3 rows: the thesis preset (not DERC's data-dependent default), the options below on top
    fixed = ("stage2_rounds", "stage2_tol", "round_consensus", "reducer", "n_maps", "n_autoencoders")
    common = dict(
        {p: v for p, v in PRESETS["thesis"].items() if p not in fixed},
        stage1_epochs=args.epochs, batch_size=args.batch_size, alpha=args.alpha, margin=args.margin,
        triplets_per_round=args.triplets, random_state=seed, verbose=args.progress, tsne_n_jobs=args.tsne_jobs,
        patience=args.patience, augment_shift=args.augment_shift, augment_rotation=args.augment_rotation,
    )
    Xf = prepare_images(X).reshape(len(X), -1)
    t = time.perf_counter()
    if "k-means" in args.methods:
        from sklearn.cluster import KMeans

        pred = KMeans(k, n_init=10, random_state=seed).fit_predict(Xf)
        rows["k-means"] = (clustering_accuracy(y, pred), nmi(y, pred), (time.perf_counter() - t) / 60)
        log(name, seed, "k-means", rows["k-means"])
    t = time.perf_counter()
    dae = stage1(name, X, y, k, seed, common, args)
    s1 = dae.history_["stage1_seconds"]
    # a model loaded from --stage1-cache counts with the seconds its fit took
    fit_seconds = max(time.perf_counter() - t, dae.history_["seconds"])
    rows["DAE"] = (clustering_accuracy(y, dae.labels_), nmi(y, dae.labels_), fit_seconds / 60)
    log(name, seed, "DAE", rows["DAE"], f"stage 1: {dae.history_['stage1_epochs']} epochs, {s1 / 60:.1f} min")
    for label, reducer in (("DERC-R", "none"), ("DERC", args.reducer)):
        if label not in args.methods:
            continue
        t = time.perf_counter()
        n_maps = args.n_maps if label == "DERC" else 1
        # DERC's n_autoencoders option: the extra stage-1 models (seeds seed + 1000 m, as DERC.fit
        # seeds them) are trained here like the first, and their stage-1 time counts in the minutes
        daes = [dae] + [stage1(name, X, y, k, seed + 1000 * j, common, args) for j in range(1, args.n_autoencoders)]
        s1_all = sum(d.history_["stage1_seconds"] for d in daes)
        t = time.perf_counter()
        m = DERC(
            k, stage2_rounds=args.rounds, stage2_tol=args.stage2_tol, round_consensus=args.round_consensus,
            reducer=reducer, n_maps=n_maps, n_autoencoders=len(daes), **common
        ).fit(X, y, init_from=daes if len(daes) > 1 else dae)
        per_round = [(round(r["acc"], 4), round(r["nmi"], 4), round(r.get("changed", float("nan")), 4))
                     for r in m.history_["rounds"]]
        fin = m.history_["final"]
        ending = (f"; converged at round {fin['converged_at_round']}" if "converged_at_round" in fin
                else f"; final changed {fin.get('changed', float('nan')):.4f}")
        if "acc_last" in fin:
            ending += f"; last clustering alone ACC {fin['acc_last']:.4f} NMI {fin['nmi_last']:.4f}"
        rows[label] = (clustering_accuracy(y, m.labels_), nmi(y, m.labels_), (time.perf_counter() - t + s1_all) / 60)
        log(name, seed, label, rows[label], f"per-round (acc, nmi, changed) before training: {per_round}{ending}")
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", nargs="+", default=["usps", "mnist-test"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--methods", nargs="+", default=["k-means", "DAE", "DERC-R", "DERC"])
    ap.add_argument("--epochs", type=int, default=100, help="max stage-1 epochs (early stop on plateau)")
    ap.add_argument("--patience", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--stage2-tol", type=float, default=0.0,
                    help="DERC rows: stop stage 2 when fewer than this share of samples changed cluster (DERC stage2_tol)")
    ap.add_argument("--round-consensus", action="store_true",
                    help="DERC rows: final labels from the consensus of every round's clustering (DERC round_consensus)")
    ap.add_argument("--triplets", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--alpha", type=float, default=0.1)
    ap.add_argument("--margin", type=float, default=0.5)
    ap.add_argument("--tsne-jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--out", default=None, help="JSON records of every run (default bench/out/derc.json); "
                                                "the summary table goes next to it as .md")
    ap.add_argument("--progress", action="store_true")
    ap.add_argument("--augment-shift", type=float, default=0.0, help="opt-in jitter (DERC augment_shift)")
    ap.add_argument("--augment-rotation", type=float, default=0.0, help="opt-in jitter (DERC augment_rotation)")
    ap.add_argument("--reducer", choices=("tsne", "umap"), default="tsne", help="DERC row's map (DERC reducer)")
    ap.add_argument("--n-maps", type=int, default=1, help="DERC row: maps combined per clustering (DERC n_maps)")
    ap.add_argument("--n-autoencoders", type=int, default=1,
                    help="DERC row: stage-1 autoencoders whose fused codes make the first clustering (DERC n_autoencoders)")
    ap.add_argument("--stage1-cache", default=None, help="folder to save/reuse the stage-1 (DAE) model per dataset/seed")
    ap.add_argument("--default", action="store_true",
                    help="DERC's default (no options: the 'auto' rules) against k-means and spectral clustering on "
                         "pixels on --sets; the other method options are ignored")
    ap.add_argument("--sets", nargs="+", default=None,
                    help="--default: data sets, NAME (whole set) or NAME-N (N images, N/K per class, drawn with the "
                         "seed); NAME: usps, mnist-test, digits, toyfaces, toyfaces7k, toyfaces7k-rgb "
                         "(identities, 10 images each, seeds 5000+, 7000+, 7100+ (colour)), toyfaces7k-k10 (10 "
                         "identities, N/10 images each, seeds 7200+), toyfaces8-k10, toyfaces8b-k10, "
                         "toyfaces8c-k10, toyfaces8d-k10, toyfaces8e-k10, toyfaces8f-k10 (the same at 8x8, seeds 7300+ to 7800+); NAME-N only. "
                         "Default: "
                         + " ".join(DEFAULT_SETS))
    ap.add_argument("--full-sets", action="store_true", help="--default: add the whole usps and mnist-test sets")
    args = ap.parse_args(argv)
    if args.default:
        return main_default(args, argv)

    import torch

    out_json = Path(args.out) if args.out else benchutil.out_path("derc.json")
    report = benchutil.Report("derc", "DERC clustering: thesis Table 4-3 rows",
                              "OMP_NUM_THREADS=" + os.environ.get("OMP_NUM_THREADS", "(unset)") + " "
                              + benchutil.script_command(__file__, sys.argv[1:] if argv is None else argv))
    cond = {
        "python": platform.python_version(), "torch": torch.__version__, "threads": torch.get_num_threads(),
        "cpus": os.cpu_count(), "loadavg_start": os.getloadavg(), "argv": sys.argv,
    }
    print("conditions:", json.dumps(cond), flush=True)
    records = []

    def log(name, seed, method, row, extra=""):
        acc, score, minutes = row
        print(f"[{name} seed {seed}] {method:7s} ACC {acc:.4f}  NMI {score:.4f}  {minutes:6.1f} min  {extra}", flush=True)
        records.append({"dataset": name, "seed": seed, "method": method, "acc": acc, "nmi": score,
                        "minutes": minutes, "loadavg": os.getloadavg(), "extra": extra})
        out_json.parent.mkdir(parents=True, exist_ok=True)
        out_json.write_text(json.dumps({"conditions": cond, "args": vars(args), "runs": records}, indent=1))

    summary = {}
    for name in args.datasets:
        X, y = load_clustering_data(name, data_dir=args.data_dir)
        results = summary[name] = {}
        for seed in args.seeds:
            for method, row in run_one(name, X, y, seed, args, log).items():
                results.setdefault(method, []).append(row)
        print(f"\n{name}: {len(X)} images, seeds {args.seeds}")
        print(f"{'method':8s} {'ACC mean (min..max, std)':>30s} {'NMI mean (min..max, std)':>30s} {'minutes':>8s}  thesis ACC/NMI")
        for method, rs in results.items():
            a = np.array([r[0] for r in rs])
            b = np.array([r[1] for r in rs])
            mins = np.mean([r[2] for r in rs])
            th = THESIS.get(name, {}).get(method)
            ths = f"{th[0]:.3f}/{th[1]:.3f}" if th else "-"
            print(
                f"{method:8s} {a.mean():.4f} ({a.min():.4f}..{a.max():.4f}, {a.std():.4f}) "
                f"{b.mean():.4f} ({b.min():.4f}..{b.max():.4f}, {b.std():.4f}) {mins:8.1f}  {ths}",
                flush=True,
            )
    print("loadavg at end:", os.getloadavg())
    report.add("Mean over seeds (min..max, std); minutes per run include stage 1. "
               f"Every run's record: `{out_json.name}` next to this file (not committed).")
    for name, results in summary.items():
        report.add(f"\n{name}, seeds {args.seeds}:\n")
        report.add("| method | ACC mean (min..max, std) | NMI mean (min..max, std) | minutes | thesis ACC / NMI |")
        report.add("| --- | --- | --- | --- | --- |")
        for method, rs in results.items():
            a, b = np.array([r[0] for r in rs]), np.array([r[1] for r in rs])
            th = THESIS.get(name, {}).get(method)
            report.add(f"| {method} | {a.mean():.4f} ({a.min():.4f}..{a.max():.4f}, {a.std():.4f}) | "
                       f"{b.mean():.4f} ({b.min():.4f}..{b.max():.4f}, {b.std():.4f}) | "
                       f"{np.mean([r[2] for r in rs]):.1f} | {f'{th[0]:.3f} / {th[1]:.3f}' if th else '-'} |")
    report.write(out_json.with_suffix(".md"))
    return summary


#: --default: the choosing sets (subsamples of MNIST-test and USPS) then the validation sets (toyfaces7k*:
#: the mid-size rule's fresh validation; toyfaces8*-k10: the tiny-image rules')
DEFAULT_SETS = ["usps-100", "usps-400", "mnist-test-100", "mnist-test-400", "digits", "toyfaces-400",
                "toyfaces7k-k10-1500", "toyfaces7k-1500", "toyfaces8-k10-1500", "toyfaces8b-k10-1500",
                "toyfaces8c-k10-1500", "toyfaces8d-k10-1500", "toyfaces8e-k10-1500", "toyfaces8f-k10-1500"]
#: toy-face identity sets use seeds TOYFACE_SEED0 + seed (fe_fast.datasets.face_identities.VALIDATION_SEEDS)
TOYFACE_SEED0 = 5000
#: toy-face identity sets by name: (first seed, grey, identities (None: 10 images per identity), side
#: (None: the 64x64 renders; else their SIDE x SIDE block averages, as the 8x8 digits are block counts)).
#: ``toyfaces``: the first validation (seeds 5000+); ``toyfaces7k-k10`` (grey, 10 identities of N/10
#: images, seeds 7200+) and ``toyfaces7k`` (grey, 10 per identity, seeds 7000+; 7000 rendered): the
#: mid-size rule's validation; ``toyfaces8-k10`` (grey, 10 identities of N/10 images at 8x8, seeds
#: 7300+): the tiny-image layout's validation (failed on NMI), ``toyfaces8b-k10`` (the same, seeds 7400+):
#: the validation of no jitter / no stage 2 (failed on NMI), ``toyfaces8c-k10`` (seeds 7500+): the fresh
#: validation of the tiny-image rules with their patience, ``toyfaces8d-k10`` (seeds 7600+): the fresh
#: validation of the tiny-image ensemble of 3 autoencoders, ``toyfaces8e-k10`` (seeds 7700+): the fresh
#: validation of its fused codes, ``toyfaces8f-k10`` (seeds 7800+): the fresh validation of mirror
#: invariance; ``toyfaces7k-rgb`` (colour, seeds 7100+): fresh,
#: not rendered yet
TOYFACE_SETS = {"toyfaces": (TOYFACE_SEED0, True, None, None), "toyfaces7k": (7000, True, None, None),
                "toyfaces7k-k10": (7200, True, 10, None), "toyfaces8-k10": (7300, True, 10, 8),
                "toyfaces8b-k10": (7400, True, 10, 8), "toyfaces8c-k10": (7500, True, 10, 8),
                "toyfaces8d-k10": (7600, True, 10, 8), "toyfaces8e-k10": (7700, True, 10, 8), "toyfaces8f-k10": (7800, True, 10, 8),
                "toyfaces7k-rgb": (7100, False, None, None)}


def load_set(spec: str, seed: int, data_dir=None):
    """Images and labels of one --default set (see --sets) for one seed."""
    name, _, count = spec.rpartition("-") if spec.rsplit("-", 1)[-1].isdigit() else (spec, "", "")
    if name in TOYFACE_SETS:
        from fe_fast.datasets.face_identities import identity_set

        if not count:
            raise ValueError(f"--sets: {name} needs a size, e.g. {name}-400 (40 identities x 10 images)")
        seed0, grey, ids, side = TOYFACE_SETS[name]
        ids, per = (int(count) // 10, 10) if ids is None else (ids, int(count) // ids)
        X, y = identity_set(ids, per, size=64, seed=seed0 + seed, grayscale=grey)
        if side is not None:
            import torch

            X = torch.nn.functional.adaptive_avg_pool2d(torch.from_numpy(prepare_images(X)), side).numpy()
        return X, y
    X, y = load_clustering_data(name, data_dir=data_dir)
    if not count:
        return X, y
    classes = np.unique(y)
    per = int(count) // classes.size
    rng = np.random.default_rng(seed)
    idx = np.concatenate([rng.choice(np.flatnonzero(y == c), per, replace=False) for c in classes])
    return X[idx], y[idx]


def main_default(args, argv=None):
    """``--default``: DERC with no options against k-means and spectral clustering (10-NN graph) on
    the pixels, every set of ``--sets`` and every seed; prints and writes the table (``--out``)."""
    import torch
    from sklearn.cluster import KMeans, SpectralClustering

    sets = list(args.sets or DEFAULT_SETS) + (["usps", "mnist-test"] if args.full_sets else [])
    out_json = Path(args.out) if args.out else benchutil.out_path("derc_default.json")
    report = benchutil.Report("derc_default", "DERC's default against k-means and spectral clustering on pixels",
                              "OMP_NUM_THREADS=" + os.environ.get("OMP_NUM_THREADS", "(unset)") + " "
                              + benchutil.script_command(__file__, sys.argv[1:] if argv is None else argv))
    cond = {"python": platform.python_version(), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "cpus": os.cpu_count(), "loadavg_start": os.getloadavg(), "argv": sys.argv}
    print("conditions:", json.dumps(cond), flush=True)
    records, summary = [], {}
    for spec in sets:
        for seed in args.seeds:
            X, y = load_set(spec, seed, args.data_dir)
            k = int(np.unique(y).size)
            Xf = prepare_images(X).reshape(len(X), -1)
            runs = {
                "k-means": lambda: KMeans(k, n_init=10, random_state=seed).fit_predict(Xf),
                "spectral": lambda: SpectralClustering(k, affinity="nearest_neighbors", n_neighbors=10,
                                                       random_state=seed).fit_predict(Xf),
            }
            for method, fn in runs.items():
                t = time.perf_counter()
                pred = fn()
                rec = {"set": spec, "n": len(X), "seed": seed, "method": method, "acc": clustering_accuracy(y, pred),
                       "nmi": nmi(y, pred), "minutes": (time.perf_counter() - t) / 60}
                records.append(rec)
            t = time.perf_counter()
            m = DERC(k, random_state=seed, verbose=args.progress).fit(X, y)
            rec = {"set": spec, "n": len(X), "seed": seed, "method": "DERC default", "acc": clustering_accuracy(y, m.labels_),
                   "nmi": nmi(y, m.labels_), "minutes": (time.perf_counter() - t) / 60,
                   "stage_seconds": {s: round(v, 2) for s, v in m.stage_seconds_.items()},
                   "params_used": {p: (list(v) if isinstance(v, tuple) else v) for p, v in m.params_used_.items()},
                   "stage1_epochs_run": m.history_["stage1_epochs"], "loadavg": os.getloadavg()}
            records.append(rec)
            for r in records[-3:]:
                summary.setdefault(spec, {}).setdefault(r["method"], []).append(r)
                print(f"[{spec} seed {seed}, {len(X)} images, K={k}] {r['method']:12s} ACC {r['acc']:.4f}  "
                      f"NMI {r['nmi']:.4f}  {r['minutes']:6.2f} min", flush=True)
            print(f"    stage seconds {rec['stage_seconds']}  load {os.getloadavg()[0]:.2f}", flush=True)
            out_json.parent.mkdir(parents=True, exist_ok=True)
            out_json.write_text(json.dumps({"conditions": cond, "args": vars(args), "runs": records}, indent=1))
    print("loadavg at end:", os.getloadavg())
    report.add(f"Mean over seeds {args.seeds} (min..max); minutes per run. Spectral: scikit-learn "
               "SpectralClustering(affinity='nearest_neighbors', n_neighbors=10) on pixels. `beats both`: the "
               f"default's mean ACC and NMI above both baselines'. Every run's record: `{out_json.name}`.\n")
    report.add("| set | images | method | ACC mean (min..max) | NMI mean (min..max) | minutes | beats both |")
    report.add("| --- | --- | --- | --- | --- | --- | --- |")
    table = {}
    for spec, methods in summary.items():
        means = {m: (np.mean([r["acc"] for r in rs]), np.mean([r["nmi"] for r in rs])) for m, rs in methods.items()}
        ours = means.get("DERC default")
        wins = ours is not None and all(ours[0] > v[0] and ours[1] > v[1] for m, v in means.items() if m != "DERC default")
        table[spec] = {"means": means, "beats_both": wins}
        for method, rs in methods.items():
            a, b = np.array([r["acc"] for r in rs]), np.array([r["nmi"] for r in rs])
            line = (f"| {spec} | {rs[0]['n']} | {method} | "
                    f"{a.mean():.4f} ({a.min():.4f}..{a.max():.4f}) | {b.mean():.4f} ({b.min():.4f}..{b.max():.4f}) | "
                    f"{np.mean([r['minutes'] for r in rs]):.2f} | {('yes' if wins else 'NO') if method == 'DERC default' else ''} |")
            report.add(line)
            print(line, flush=True)
    report.write(out_json.with_suffix(".md"))
    return table


#: ``make bench`` quick: a pipeline run on the bundled digits (seconds per stage, numbers not comparable)
QUICK_ARGS = ["--datasets", "digits", "--seeds", "0", "--epochs", "3", "--rounds", "1",
              "--methods", "k-means", "DAE", "DERC", "--tsne-jobs", "2"]
#: full: the setting that meets the thesis's goals on both data sets (bench/results/derc.md)
_BEST = ["--seeds", "0", "1", "2", "--epochs", "10", "--methods", "k-means", "DAE", "DERC",
         "--augment-shift", "0.1", "--augment-rotation", "10", "--reducer", "umap", "--n-maps", "5",
         "--n-autoencoders", "3", "--round-consensus"]
FULL_RUNS = [["--datasets", "usps", "--rounds", "4", *_BEST, "--out", "derc_usps.json"],
             ["--datasets", "mnist-test", "--rounds", "3", *_BEST, "--out", "derc_mnist.json"]]


#: quick --default run: one small set, one seed (a pipeline check)
QUICK_DEFAULT_ARGS = ["--default", "--sets", "digits-150", "--seeds", "0"]
#: full --default run: every set of DEFAULT_SETS and the whole USPS and MNIST-test, three seeds (about 90 min)
FULL_DEFAULT_ARGS = ["--default", "--seeds", "0", "1", "2", "--full-sets"]


def test_derc():
    if not benchutil.full():
        summary = main(QUICK_ARGS)
        assert set(summary["digits"]) == {"k-means", "DAE", "DERC"}
        table = main(QUICK_DEFAULT_ARGS + ["--out", str(benchutil.out_path("derc_default.json"))])
        assert set(table["digits-150"]["means"]) == {"k-means", "spectral", "DERC default"}
        return
    main(FULL_DEFAULT_ARGS + ["--out", str(benchutil.out_path("derc_default.json"))])
    for argv in FULL_RUNS:
        argv = argv[:-1] + [str(benchutil.out_path(argv[-1]))]
        main(argv)


if __name__ == "__main__":
    main()
