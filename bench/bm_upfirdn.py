"""FIR resampling with a custom gradient and the fused bias / gain of the equalised layers, against
the previous version of both (shifted-slice sums differentiated by autograd; bias and gain as
separate passes), timed where training spends them.

Three steps of the ``--preset toy32`` networks at batch 16 (32x32 toy widths): the discriminator
forward + backward, the same with the R1 penalty (double backward through every down-sampling
blur), and the generator forward + backward (the ToRGB up-sampling). Each step runs with the
current code ("ours") and with ``_fir_2d``, ``EqualConv2d.forward`` and ``EqualLinear.forward``
swapped for the previous version ("previous"), interleaved ``--repeats`` times; prints the median
ms per step and the ratio. ``--train-images N`` also times whole toy32 training runs of N images,
interleaved the same way.

``make bench`` runs it: quick (``QUICK_ARGS``: 5 calls per block, 2 repeats, no training runs) and full
(``FULL_ARGS``: the protocol of bench/results/stylegan.md, with whole training runs). The table goes to
``bench/out/upfirdn.md``. By hand::

    python bench/bm_upfirdn.py --threads 2 --repeats 5 --train-images 4800
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchutil  # noqa: E402

import torch.nn.functional as F  # noqa: E402

import fe_fast.stylegan.layers as layers  # noqa: E402
from fe_fast.stylegan import Discriminator, Generator  # noqa: E402
from fe_fast.stylegan.train import PRESETS, TrainConfig, train  # noqa: E402


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


def equal_conv2d_unfused(self, x):
    """The peer of ``EqualConv2d.forward``: bias added and gain applied as separate passes."""
    w = self.weight * self.scale
    if self.down == 2:
        p = (4 - 2) + (self.kernel_size - 1)
        x = F.conv2d(layers.upfirdn2d(x, self.blur_kernel, pad=((p + 1) // 2, p // 2)), w, stride=2)
    else:
        x = F.conv2d(x, w, padding=self.kernel_size // 2)
    if self.bias is not None:
        x = x + self.bias.reshape(1, -1, 1, 1)
    return F.leaky_relu(x, layers.LRELU_SLOPE) * layers.LRELU_GAIN if self.activation == "lrelu" else x


def equal_linear_unfused(self, x):
    """The peer of ``EqualLinear.forward``: gain applied as a separate pass."""
    out = F.linear(x, self.weight * self.scale, self.bias * self.lr_mul)
    return F.leaky_relu(out, layers.LRELU_SLOPE) * layers.LRELU_GAIN if self.activation == "lrelu" else out


def use(variant, saved):
    """Install "ours" (the saved current code) or the previous version ("previous": slice FIR through
    autograd, unfused bias and gain)."""
    if variant == "ours":
        layers._fir_2d, layers.EqualConv2d.forward, layers.EqualLinear.forward = saved
    else:
        layers._fir_2d, layers.EqualConv2d.forward, layers.EqualLinear.forward = (
            fir_2d_slices, equal_conv2d_unfused, equal_linear_unfused)


def time_training(args, saved, emit=print):
    """Whole ``--preset toy32`` training runs of ``--train-images`` images (1000 pre-rendered faces, no
    FID or samples), the two versions interleaved; img/s as ``train`` reports it."""
    rates = {"ours": [], "previous": []}
    for i in range(args.repeats):
        for variant in ("previous", "ours"):
            use(variant, saved)
            cfg = TrainConfig(out_dir=f"{args.out}/{variant}{i}", total_img=args.train_images, seed=0, fid_every=0,
                              sample_every=0, checkpoint_every=0, progress=False, log_every=50,
                              **{**PRESETS["toy32"], "toy_images": 1000})
            rates[variant].append(train(cfg)["img_per_s"])
    a, b = statistics.median(rates["ours"]), statistics.median(rates["previous"])
    emit(f"| toy32 training, {args.train_images} images | {a:.1f} img/s | {b:.1f} img/s | {a / b:.2f}x |")
    pairs = zip(rates["ours"], rates["previous"])
    emit("\nper repeat (ours / previous): " + ", ".join(f"{x:.1f} / {y:.1f}" for x, y in pairs))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--iters", type=int, default=20, help="steps per timed block")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--train-images", type=int, default=0,
                    help="also time whole toy32 training runs of this many images (e.g. 4800)")
    ap.add_argument("--out", default=None, help="run folders of --train-images (default bench/out/upfirdn_runs)")
    ap.add_argument("--results", default=None, help="markdown table (default bench/out/upfirdn.md)")
    args = ap.parse_args(argv)
    args.out = args.out or str(benchutil.out_path("upfirdn_runs"))
    report = benchutil.Report("upfirdn", "FIR resampling and fused bias/gain vs the previous version",
                              benchutil.script_command(__file__, sys.argv[1:] if argv is None else argv))

    def emit(line=""):
        print(line)
        report.add(line)

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

    saved = (layers._fir_2d, layers.EqualConv2d.forward, layers.EqualLinear.forward)
    emit(f"torch {torch.__version__}, {args.threads} threads, batch {args.batch}, toy32 widths, "
         f"{args.iters} calls per timed block, {args.repeats} interleaved repeats, median ms per step\n")
    emit("| step | ours | previous | speed-up |")
    emit("| --- | --- | --- | --- |")
    try:
        for name, step in [("D forward + backward", d_step), ("D + R1 (double backward)", d_r1_step),
                           ("G forward + backward", g_step)]:
            times = {"ours": [], "previous": []}
            for _ in range(args.repeats):
                for variant in ("previous", "ours"):
                    use(variant, saved)
                    step()  # warm-up
                    t0 = time.perf_counter()
                    for _ in range(args.iters):
                        step()
                    times[variant].append((time.perf_counter() - t0) / args.iters * 1e3)
            a, b = statistics.median(times["ours"]), statistics.median(times["previous"])
            emit(f"| {name} | {a:.1f} ms | {b:.1f} ms | {b / a:.2f}x |")
        if args.train_images:
            time_training(args, saved, emit)
    finally:
        use("ours", saved)

    report.write(args.results)


#: ``make bench`` arguments (full: bench/results/stylegan.md's protocol)
QUICK_ARGS = ["--threads", "2", "--iters", "5", "--repeats", "2"]
FULL_ARGS = ['--threads', '2', '--repeats', '5', '--train-images', '4800']


def test_upfirdn():
    main(benchutil.pick(QUICK_ARGS, FULL_ARGS))


if __name__ == "__main__":
    main()
