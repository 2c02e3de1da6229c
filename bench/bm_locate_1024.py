"""Locating one attribute at 1024x1024 on the CPU (thesis §6.2.3 at full scale), the 1024 forward
against the grouped-conv formulation, and the projector at 1024.

Set-up: a config-f 1024 generator (``Generator(1024)``, 26 style layers, 9088 S channels) with
seeded weights, the toy attribute classifier of ``fe_fast.teachers.toy`` (``--classifier FILE``,
or its architecture with seeded weights when none is given: a pipeline/timing run) fed the
generator's images resized to 256x256 by ``fe_fast.editing.locate`` through the teachers' own
resize ``fe_fast.teachers.resize_for_teacher`` (whole frame, antialiased bilinear; the toy teachers
take 16..256), N = ``--n`` samples, at most ``--max-positives`` positives
(threshold ``--threshold``).

Reported, in one run:

1. ``locate``: wall time, the share of each stage (sample, teacher pass, gradient pass, reduce),
   the batch sizes it picked, and the peak resident memory of the process up to that point
   (``resource.getrusage(RUSAGE_SELF).ru_maxrss``). Goal: N = 200 within 15 minutes and 8 GiB on
   2 idle cores.
2. one 1024 forward (batch 1, no graph, "const" noise), median of ``--repeats``, with
   ``fe_fast.ops.modulated_conv2d`` and with the grouped-conv reference
   (``fe_fast.ops.reference.modulated_conv.modulated_conv2d_reference``), and their largest
   absolute difference.
3. the projector (``fe_fast.stylegan.project``, space S, the weight-free multiscale loss) on an
   image of the same generator (seed 1234): seconds per step and PSNR after ``--steps`` steps.
4. ``fe-fast edit-image`` end to end on the same generator (written to a temporary .safetensors
   file) and a 256x256 toy-face photo with its 68 landmarks, ``--edit-image-steps`` projection
   steps, channel 6:501 by hand: the seconds of each stage from its ``--json``.

``make bench`` runs it: quick (``QUICK_ARGS``: N = 8, 2 projector steps, one forward each, 2 edit-image
steps; a pipeline check) and full (``FULL_ARGS``: the defaults, about half an hour on 2 idle cores).
The table goes to ``bench/out/locate_1024.md``, every number to ``bench/out/locate_1024.json``. By hand:
  python bench/bm_locate_1024.py [--n 200] [--steps 300] [--threads 2] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchutil  # noqa: E402


def _maxrss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20  # KiB on Linux


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=200, help="samples for locate (default 200; 0 skips)")
    ap.add_argument("--max-positives", type=int, default=50)
    ap.add_argument("--threshold", type=float, default=0.5)
    ap.add_argument("--attribute", default="smiling")
    ap.add_argument("--classifier", help="a trained toy attribute classifier (default: seeded weights)")
    ap.add_argument("--steps", type=int, default=300, help="projector steps (default 300; 0 skips)")
    ap.add_argument("--repeats", type=int, default=3, help="1024 forwards per formulation (default 3; 0 skips)")
    ap.add_argument("--edit-image-steps", type=int, default=20,
                    help="projection steps of the edit-image run (default 20; 0 skips)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    ap.add_argument("--cache-dir", help="locate cache directory (default: none)")
    ap.add_argument("--json", help="every number as JSON (default bench/out/locate_1024.json)")
    ap.add_argument("--out", help="markdown table (default bench/out/locate_1024.md)")
    args = ap.parse_args(argv)
    report = benchutil.Report("locate_1024", "Locating one attribute at 1024x1024 on the CPU",
                              benchutil.script_command(__file__, sys.argv[1:] if argv is None else argv))
    if min(args.n, args.steps, args.repeats, args.edit_image_steps) < 0:
        ap.error("--n, --steps, --repeats and --edit-image-steps must be >= 0")

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from fe_fast.editing.locate import auto_batch_sizes, locate
    from fe_fast.ops.reference.modulated_conv import modulated_conv2d_reference
    from fe_fast.stylegan import Generator
    from fe_fast.stylegan.networks import modconv_impl
    from fe_fast.stylegan.project import project
    from fe_fast.teachers.toy import AttributeClassifier, load_teacher

    out = {"machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                       "loadavg_start": os.getloadavg()}, "args": vars(args)}
    t = time.perf_counter()
    G = Generator(1024, seed=0).eval().requires_grad_(False)
    out["build_s"] = time.perf_counter() - t
    if args.classifier:
        clf = load_teacher(args.classifier, kind="attribute_classifier")
        out["classifier"] = args.classifier
    else:
        torch.manual_seed(0)
        clf = AttributeClassifier().eval()
        out["classifier"] = "toy AttributeClassifier, seeded (untrained) weights"
    clf.requires_grad_(False)
    tb, gb = auto_batch_sizes(G)

    # 1. locate -----------------------------------------------------------------------------
    if args.n:
        t = time.perf_counter()
        cs = locate(G, clf, args.attribute, n_samples=args.n, k=3, threshold=args.threshold,
                    max_positives=args.max_positives, cache_dir=args.cache_dir, progress=True)
        wall = time.perf_counter() - t
        out["locate"] = {"n_samples": args.n, "n_positives": cs.n_positives, "wall_s": wall,
                         "stages_s": cs.timings, "share": {k: v / wall for k, v in cs.timings.items()},
                         "teacher_batch": tb, "gradient_batch": gb, "peak_rss_gib": _maxrss_gib(),
                         "channels": cs.to_json()}
        print(f"locate N={args.n}: {cs.n_positives} positives, {wall:.1f} s, peak RSS {_maxrss_gib():.2f} GiB; "
              + ", ".join(f"{k} {v:.1f} s ({100 * v / wall:.0f}%)" for k, v in cs.timings.items()), flush=True)

    # 2. forward: ours vs grouped conv -------------------------------------------------------
    if args.repeats:
        z = torch.randn(1, G.z_dim, generator=torch.Generator().manual_seed(7))
        res = {}
        imgs = {}
        for name, impl in (("fe_fast", None), ("grouped_conv", modulated_conv2d_reference)):
            times = []
            with torch.no_grad(), modconv_impl(impl):
                for _ in range(args.repeats):
                    t = time.perf_counter()
                    imgs[name] = G(z, noise_mode="const")
                    times.append(time.perf_counter() - t)
            res[name] = statistics.median(times)
        out["forward_1024"] = {"median_s": res, "speedup": res["grouped_conv"] / res["fe_fast"],
                               "max_abs_diff": float((imgs["fe_fast"] - imgs["grouped_conv"]).abs().max())}
        print(f"1024 forward (batch 1): fe_fast {res['fe_fast']:.2f} s, grouped conv {res['grouped_conv']:.2f} s "
              f"({res['grouped_conv'] / res['fe_fast']:.2f}x), max |diff| "
              f"{out['forward_1024']['max_abs_diff']:.2e}", flush=True)

    # 3. projector ------------------------------------------------------------------------------
    if args.steps:
        with torch.no_grad():
            target = G.sample(1, seed=1234)[0]
        proj = project(G, target, space="s", steps=args.steps, seed=0, progress=True)
        out["project_1024"] = {"steps": args.steps, "s_per_step": proj.seconds / args.steps, "psnr": proj.psnr,
                               "space": proj.space, "loss": proj.perceptual}
        print(f"projector at 1024 ({proj.space}, {proj.perceptual}): {proj.seconds / args.steps:.2f} s/step, "
              f"PSNR {proj.psnr:.2f} dB after {args.steps} steps", flush=True)

    # 4. fe-fast edit-image at 1024 -----------------------------------------------------------
    if args.edit_image_steps:
        import contextlib
        import io
        import tempfile

        import numpy as np
        from PIL import Image

        from fe_fast.cli import main as cli
        from fe_fast.datasets.toyfaces import render_with_labels, sample_params
        from fe_fast.stylegan.io import save_generator

        with tempfile.TemporaryDirectory() as d:
            save_generator(G, f"{d}/G.safetensors")
            params, _ = sample_params(1, seed=4, attributes={"yaw": 10.0})
            r = render_with_labels(params[0], 256)
            Image.fromarray(r.image).save(f"{d}/photo.png")
            np.save(f"{d}/lm.npy", r.landmarks)
            buf = io.StringIO()
            with contextlib.redirect_stdout(buf):
                rc = cli(["edit-image", f"{d}/photo.png", "--generator", f"{d}/G.safetensors", "--landmarks",
                          f"{d}/lm.npy", "--channels", "6:501", "--steps", str(args.edit_image_steps),
                          "--out", f"{d}/edited.png", "--json"])
            if rc != 0:
                raise SystemExit(f"edit-image failed (exit {rc})")
            info = json.loads(buf.getvalue().strip().splitlines()[-1])
        out["edit_image_1024"] = {"steps": args.edit_image_steps, "seconds": info["seconds"],
                                  "psnr": info["projection"]["psnr"]}
        print(f"fe-fast edit-image at {info['resolution']} ({args.edit_image_steps} projection steps): "
              + ", ".join(f"{k} {v:.1f} s" for k, v in info["seconds"].items()), flush=True)

    out["peak_rss_gib"] = _maxrss_gib()
    out["machine"]["loadavg_end"] = os.getloadavg()
    print(f"peak RSS (whole run) {out['peak_rss_gib']:.2f} GiB; load average start {out['machine']['loadavg_start']}, "
          f"end {out['machine']['loadavg_end']}; torch threads {out['machine']['torch_threads']}")
    with open(args.json or benchutil.out_path("locate_1024.json"), "w") as f:
        json.dump(out, f, indent=1)
    report.add(f"config-f 1024 generator (seeded weights), classifier: {out['classifier']}; "
               f"{out['machine']['torch_threads']} torch threads\n")
    report.add("| measure | value |")
    report.add("| --- | --- |")
    if "locate" in out:
        lo = out["locate"]
        report.add(f"| locate, N = {lo['n_samples']} ({lo['n_positives']} positives) | {lo['wall_s']:.1f} s; "
                   + ", ".join(f"{k} {100 * v:.0f} %" for k, v in lo["share"].items()) + " |")
        report.add(f"| locate batch sizes (teacher, gradient) | {lo['teacher_batch']}, {lo['gradient_batch']} |")
    if "forward_1024" in out:
        fw = out["forward_1024"]
        report.add(f"| 1024 forward, batch 1: fe_fast / grouped conv | {fw['median_s']['fe_fast']:.2f} s / "
                   f"{fw['median_s']['grouped_conv']:.2f} s ({fw['speedup']:.2f}x), max abs diff {fw['max_abs_diff']:.1e} |")
    if "project_1024" in out:
        pr = out["project_1024"]
        report.add(f"| projector ({pr['space']}), {pr['steps']} steps | {pr['s_per_step']:.2f} s/step, "
                   f"PSNR {pr['psnr']:.2f} dB |")
    if "edit_image_1024" in out:
        ei = out["edit_image_1024"]
        report.add(f"| fe-fast edit-image, {ei['steps']} projection steps | "
                   + ", ".join(f"{k} {v:.1f} s" for k, v in ei["seconds"].items()) + " |")
    report.add(f"| peak resident memory | {out['peak_rss_gib']:.2f} GiB |")
    report.write(args.out)
    return 0


#: ``make bench`` arguments (quick: a pipeline check; full: the protocol of the goal)
QUICK_ARGS = ["--n", "8", "--steps", "2", "--repeats", "1", "--edit-image-steps", "2", "--threads", "2"]
FULL_ARGS = ["--threads", "2"]


def test_locate_1024():
    assert main(benchutil.pick(QUICK_ARGS, FULL_ARGS)) == 0


if __name__ == "__main__":
    sys.exit(main())
