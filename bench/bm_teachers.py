"""Benchmark of the procedural face world and the toy teachers.

Measures, at 64x64:
1. render throughput of :mod:`fe_fast.datasets.toyfaces` on one core (image + mask + landmarks per
   face), as images per wall-clock second and per CPU second of this process (the second is the
   fairer number on a shared machine);
2. the toy attribute classifier: held-out accuracy per binary attribute (goal >= 95 % each);
3. the toy face parser: held-out IoU per class and mean IoU (goal >= 0.85);
with the wall-clock and CPU time of rendering and of each training run (goal: both teachers
trained in under 10 minutes).

``make bench`` runs it: quick (``QUICK_ARGS``: 600 training faces, 2 epochs; a pipeline check, the goals are
not expected to hold) and full (``FULL_ARGS``: the defaults, the protocol of bench/results/teachers.md).
The report goes to ``bench/out/teachers.md`` (``--results``). By hand, from the repository root::

    OMP_NUM_THREADS=2 python bench/bm_teachers.py
    taskset -c 0 python bench/bm_teachers.py --throughput-only   # section 1 alone, pinned to one core
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchutil  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--n", type=int, default=8000, help="training faces")
    ap.add_argument("--n-val", type=int, default=1000, help="held-out faces")
    ap.add_argument("--epochs", type=int, default=8, help="attribute classifier epochs")
    ap.add_argument("--parser-n", type=int, default=3000, help="training faces used by the parser (first N)")
    ap.add_argument("--parser-epochs", type=int, default=8, help="face parser epochs")
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--throughput-n", type=int, default=1000, help="faces rendered for the throughput number")
    ap.add_argument("--throughput-only", action="store_true",
                    help="measure and report the render throughput only (no teacher training)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads for training (default 2)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="also save the trained teachers in this directory")
    ap.add_argument("--results", default=None, help="markdown report (default bench/out/teachers.md)")
    ap.add_argument("--augment", action="store_true", help="train the classifier with resample_augment")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)

    import torch

    from fe_fast.datasets.toyfaces import ToyFaces
    from fe_fast.teachers.toy import (
        ATTRIBUTE_CLASSIFIER_FILE,
        FACE_PARSER_FILE,
        _clock,
        _since,
        save_teacher,
        train_toy_teachers,
    )

    torch.set_num_threads(args.threads)
    progress = not args.no_progress
    load0 = os.getloadavg()
    lines = []
    report = benchutil.Report("teachers", "Toy face world and toy teachers",
                              "OMP_NUM_THREADS=" + os.environ.get("OMP_NUM_THREADS", "(unset)") + " "
                              + benchutil.script_command(__file__, sys.argv[1:] if argv is None else argv))

    def log(s=""):
        print(s, flush=True)
        lines.append(s)

    # 1. render throughput (one process, one core)
    tp = ToyFaces(args.throughput_n + 50, size=args.size, seed=12345)
    for i in range(50):
        tp.render(i)
    t = _clock()
    for i in range(50, len(tp)):
        tp.render(i)
    w, c = _since(t)
    n = args.throughput_n
    render_wall, render_cpu = n / w, n / c

    if args.throughput_only:
        _report_throughput_only(args, argv, render_wall, render_cpu, load0, log)
        report.add("\n".join(lines))
        report.write(args.results)
        return 0

    # 2-4. data, attribute classifier, face parser (the same pipeline as `fe-fast teachers train`)
    r = train_toy_teachers(n=args.n, n_val=args.n_val, size=args.size, epochs=args.epochs, parser_n=args.parser_n,
                           parser_epochs=args.parser_epochs, width=args.width, seed=args.seed, progress=progress,
                           augment=args.augment)
    clf, par, acc, ious, miou, k = r.classifier, r.parser, r.accuracy, r.iou, r.mean_iou, r.parser_n
    half = r.accuracy_half
    (data_w, data_c), (clf_w, clf_c), (par_w, par_c) = r.seconds["render"], r.seconds["classifier"], r.seconds["parser"]
    load1 = os.getloadavg()

    if args.out:
        save_teacher(clf, Path(args.out) / ATTRIBUTE_CLASSIFIER_FILE,
                     metrics={"accuracy": acc, "accuracy_half": half, "augment": args.augment})
        save_teacher(par, Path(args.out) / FACE_PARSER_FILE, metrics={"iou": ious, "mean_iou": miou})

    log(f"Torch threads: {args.threads}. On a shared machine wall-clock times are inflated by the other "
        "processes; CPU seconds of this process are the steadier number.")
    log()
    log(f"## Render throughput ({args.size}x{args.size}, image + mask + 68x3 landmarks, one process)")
    log()
    log("| measure | value |")
    log("| --- | --- |")
    log(f"| images per wall-clock second | {render_wall:.0f} |")
    log(f"| images per CPU second | {render_cpu:.0f} |")
    log()
    log(f"## Training data: {args.n} training + {args.n_val} held-out faces (seeds {args.seed} / "
        f"{args.seed + 1_000_003}), rendered in {data_w:.0f} s wall, {data_c:.0f} s CPU")
    log()
    aug = ", trained with resample_augment" if args.augment else ""
    log(f"## Attribute classifier (width {args.width}, {args.epochs} epochs on {args.n} faces{aug}): "
        f"{clf_w:.0f} s wall, {clf_c:.0f} s CPU")
    log()
    log(f"| attribute | held-out accuracy | through {args.size // 2}x{args.size // 2} |")
    log("| --- | --- | --- |")
    for name, a in acc.items():
        log(f"| {name} | {100 * a:.2f} % | {100 * half[name]:.2f} % |")
    worst, worst_half = min(acc, key=acc.get), min(half, key=half.get)
    log(f"| **min** | **{100 * acc[worst]:.2f} %** ({worst}; goal >= 95 %) | {100 * half[worst_half]:.2f} % "
        f"({worst_half}) |")
    log()
    log(f"## Face parser (width {args.width}, {args.parser_epochs} epochs on {k} faces): "
        f"{par_w:.0f} s wall, {par_c:.0f} s CPU")
    log()
    log("| class | held-out IoU |")
    log("| --- | --- |")
    for name, v in ious.items():
        log(f"| {name} | {v:.3f} |")
    log(f"| **mean** | **{miou:.3f}** (goal >= 0.85) |")
    log()
    total_w, total_c = data_w + clf_w + par_w, data_c + clf_c + par_c
    log(f"Total (render training data + train both teachers): {total_w:.0f} s wall ({total_w / 60:.1f} min), "
        f"{total_c:.0f} s CPU ({total_c / 60:.1f} min); goal < 10 min.")
    report.add("\n".join(lines))
    report.write(args.results)
    return 0


def _report_throughput_only(args, argv, render_wall, render_cpu, load0, log) -> None:
    """Section 1 of the report alone (``--throughput-only``)."""
    log("Render throughput only (`--throughput-only`).\n")
    log(f"## Render throughput ({args.size}x{args.size}, image + mask + 68x3 landmarks, one process, "
        f"{args.throughput_n} faces)\n")
    log("| measure | value |")
    log("| --- | --- |")
    log(f"| images per wall-clock second | {render_wall:.0f} |")
    log(f"| images per CPU second | {render_cpu:.0f} |")


#: ``make bench`` arguments; the full ones are the defaults (bench/results/teachers.md)
QUICK_ARGS = ["--n", "600", "--n-val", "200", "--epochs", "2", "--parser-n", "300", "--parser-epochs", "1",
              "--throughput-n", "200", "--no-progress"]
FULL_ARGS = ["--throughput-n", "200", "--no-progress"]


def test_teachers():
    assert main(benchutil.pick(QUICK_ARGS, FULL_ARGS)) == 0


if __name__ == "__main__":
    sys.exit(main())
