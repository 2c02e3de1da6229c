"""FIR resampling (``fe_fast.stylegan.layers.upfirdn2d``): shifted-slice sums with a custom gradient
against the same sums differentiated by autograd, timed where training spends it.

Three steps of the ``--preset toy32`` networks at batch 16 (32x32 toy widths): the discriminator
forward + backward, the same with the R1 penalty (double backward through every down-sampling
blur), and the generator forward + backward (the ToRGB up-sampling). Each step runs with the
custom gradient ("ours") and with ``_fir_2d`` swapped for the same two passes of shifted-slice
sums whose gradient autograd derives ("slices", this function's previous version), interleaved
``--repeats`` times; prints the median ms per step and the ratio.

Not in CI. Example (bench/results/stylegan.md)::

    python bench/bench_upfirdn.py --threads 2 --repeats 5
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import fe_fast.stylegan.layers as layers  # noqa: E402
from fe_fast.stylegan import Discriminator, Generator  # noqa: E402
from fe_fast.stylegan.train import PRESETS  # noqa: E402


def fir_2d_slices(x, kernel):
    """The peer: the separable kernel as two passes of shifted-slice sums (valid correlation),
    differentiated by autograd."""
    col = kernel.sum(1)
    row = kernel.sum(0) / kernel.sum()
    for taps, dim in ((col, 2), (row, 3)):
        k = taps.shape[0]
        n = x.shape[dim] - k + 1
        out = x.narrow(dim, 0, n) * taps[0]
        for i in range(1, k):
            out = out + x.narrow(dim, i, n) * taps[i]
        x = out
    return x


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--iters", type=int, default=20, help="steps per timed block")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    p = PRESETS["toy32"]
    widths = dict(channel_base=p["channel_base"], channel_max=p["channel_max"])
    D = Discriminator(p["resolution"], seed=0, **widths)
    G = Generator(p["resolution"], z_dim=p["z_dim"], w_dim=p["w_dim"], n_mlp=p["n_mlp"], seed=0, **widths)
    gen = torch.Generator().manual_seed(0)
    real = torch.randn(args.batch, 3, p["resolution"], p["resolution"], generator=gen)
    z = torch.randn(args.batch, p["z_dim"], generator=gen)

    def d_step():
        D(real).sum().backward()

    def d_r1_step():
        x = real.clone().requires_grad_(True)
        score = D(x).sum()
        (grad,) = torch.autograd.grad(score, x, create_graph=True)
        (grad.square().sum() + score).backward()

    def g_step():
        G(z).square().mean().backward()

    ours = layers._fir_2d
    print(f"torch {torch.__version__}, {args.threads} threads, batch {args.batch}, toy32 widths")
    print("| step | ours (ms) | slices (ms) | speed-up |")
    print("| --- | --- | --- | --- |")
    try:
        for name, step in [("D forward + backward", d_step), ("D + R1 (double backward)", d_r1_step),
                           ("G forward + backward", g_step)]:
            times = {"ours": [], "slices": []}
            for _ in range(args.repeats):
                for variant, fn in (("slices", fir_2d_slices), ("ours", ours)):
                    layers._fir_2d = fn
                    step()  # warm-up
                    t0 = time.perf_counter()
                    for _ in range(args.iters):
                        step()
                    times[variant].append((time.perf_counter() - t0) / args.iters * 1e3)
            a, b = statistics.median(times["ours"]), statistics.median(times["slices"])
            print(f"| {name} | {a:.1f} | {b:.1f} | {b / a:.2f}x |")
    finally:
        layers._fir_2d = ours


if __name__ == "__main__":
    main()
