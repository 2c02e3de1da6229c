"""The plain critic's 2x bicubic input up-sampling: ``fe_fast.stylegan.layers.bicubic_upsample2x``
(4-tap FIR passes per output phase with a custom gradient) against the peer it replaced, torch's
``F.interpolate(..., mode="bicubic", align_corners=False)``, timed where training spends it.

The op alone (forward; forward + backward), the ``--preset toy32`` plain critic (forward + backward;
with the R1 penalty, i.e. double backward), and with ``--train-images N`` whole toy32 training runs
of N images at ``--batch``. Each row runs with ours and with the peer swapped into
``fe_fast.stylegan.discriminator``, interleaved ``--repeats`` times; prints medians and the ratio.

``make bench`` runs it: quick (``QUICK_ARGS``: 5 calls per block, 2 repeats, no training runs) and full
(``FULL_ARGS``: the protocol of bench/results/stylegan.md, with whole training runs). The table goes to
``bench/out/bicubic.md``. By hand::

    python bench/bm_bicubic.py --threads 2 --repeats 5 --train-images 4800 --batch 32
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchutil  # noqa: E402

import fe_fast.stylegan.discriminator as discriminator  # noqa: E402
from fe_fast.stylegan.discriminator import PlainDiscriminator  # noqa: E402
from fe_fast.stylegan.layers import bicubic_upsample2x  # noqa: E402
from fe_fast.stylegan.train import PRESETS, TrainConfig, train  # noqa: E402


def torch_bicubic(x):
    """The peer: ATen's bicubic interpolation, differentiated by its own backward."""
    return F.interpolate(x, scale_factor=2, mode="bicubic", align_corners=False)


VARIANTS = {"ours": bicubic_upsample2x, "torch": torch_bicubic}


def use(variant):
    discriminator.bicubic_upsample2x = VARIANTS[variant]


def interleaved(step, repeats, iters):
    """Median ms per call of ``step(variant)`` for each variant, the variants interleaved."""
    times = {v: [] for v in VARIANTS}
    for _ in range(repeats):
        for variant in ("torch", "ours"):
            use(variant)
            step()  # warm-up
            t0 = time.perf_counter()
            for _ in range(iters):
                step()
            times[variant].append((time.perf_counter() - t0) / iters * 1e3)
    return statistics.median(times["ours"]), statistics.median(times["torch"])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--iters", type=int, default=20, help="calls per timed block")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--train-images", type=int, default=0,
                    help="also time whole toy32 training runs of this many images (e.g. 4800)")
    ap.add_argument("--out", default=None, help="run folders of --train-images (default bench/out/bicubic_runs)")
    ap.add_argument("--results", default=None, help="markdown table (default bench/out/bicubic.md)")
    args = ap.parse_args(argv)
    args.out = args.out or str(benchutil.out_path("bicubic_runs"))
    report = benchutil.Report("bicubic", "plain critic's 2x bicubic up-sampling: FIR passes vs torch bicubic",
                              benchutil.script_command(__file__, sys.argv[1:] if argv is None else argv))

    def emit(line=""):
        print(line)
        report.add(line)

    torch.set_num_threads(args.threads)
    p = PRESETS["toy32"]
    D = PlainDiscriminator(p["resolution"], channel_base=p["channel_base"], channel_max=p["channel_max"], seed=0)
    real = torch.randn(args.batch, 3, p["resolution"], p["resolution"], generator=torch.Generator().manual_seed(0))
    grad_out = torch.randn(args.batch, 3, 2 * p["resolution"], 2 * p["resolution"])
    x = real.clone().requires_grad_(True)

    def op_forward():
        with torch.no_grad():
            discriminator.bicubic_upsample2x(real)

    def op_backward():
        discriminator.bicubic_upsample2x(x).backward(grad_out)

    def d_step():
        D(real).sum().backward()

    def d_r1_step():
        xr = real.clone().requires_grad_(True)
        score = D(xr).sum()
        (grad,) = torch.autograd.grad(score, xr, create_graph=True)
        (grad.square().sum() + score).backward()

    emit(f"torch {torch.__version__}, {args.threads} threads, batch {args.batch}, toy32 plain critic, "
         f"{args.iters} calls per timed block, {args.repeats} interleaved repeats, median ms per call\n")
    emit("| step | ours | torch bicubic | speed-up |")
    emit("| --- | --- | --- | --- |")
    try:
        for name, step in [("up-sampling, forward", op_forward), ("up-sampling, forward + backward", op_backward),
                           ("plain D forward + backward", d_step), ("plain D + R1 (double backward)", d_r1_step)]:
            a, b = interleaved(step, args.repeats, args.iters)
            emit(f"| {name} | {a:.2f} ms | {b:.2f} ms | {b / a:.2f}x |")
        if args.train_images:
            rates = {v: [] for v in VARIANTS}
            for i in range(args.repeats):
                for variant in ("torch", "ours"):
                    use(variant)
                    cfg = TrainConfig(out_dir=f"{args.out}/{variant}{i}", total_img=args.train_images, seed=0,
                                      fid_every=0, sample_every=0, checkpoint_every=0, progress=False, log_every=50,
                                      **{**PRESETS["toy32"], "toy_images": 1000, "batch": args.batch})
                    rates[variant].append(train(cfg)["img_per_s"])
            a, b = statistics.median(rates["ours"]), statistics.median(rates["torch"])
            emit(f"| toy32 training, batch {args.batch}, {args.train_images} images | {a:.1f} img/s | {b:.1f} img/s "
                  f"| {a / b:.2f}x |")
            emit("\nper repeat (ours / torch): " + ", ".join(f"{u:.1f} / {v:.1f}" for u, v in zip(rates["ours"], rates["torch"])))
    finally:
        use("ours")

    report.write(args.results)


#: ``make bench`` arguments (full: bench/results/stylegan.md's protocol)
QUICK_ARGS = ["--threads", "2", "--iters", "5", "--repeats", "2"]
FULL_ARGS = ['--threads', '2', '--repeats', '5', '--train-images', '4800', '--batch', '32']


def test_bicubic():
    main(benchutil.pick(QUICK_ARGS, FULL_ARGS))


if __name__ == "__main__":
    main()
