"""StyleGAN2 training-step throughput: our modulated-convolution op vs the grouped-conv reference.

One run times the same training step (thesis losses: WGAN-GP critic step with penalties on real and
generated images, eq. 5-4, then the generator step of eq. 5-7 with the path-length stand-in for
eq. 5-6 every ``--path-every`` steps) twice: once with every modulated layer running through
``fe_fast.ops.modulated_conv2d`` (ours) and once through
``fe_fast.ops.reference.modulated_conv.modulated_conv2d_reference`` (per-sample weights + one
grouped convolution, the "fused_modconv" formulation of the reference implementations). Both runs
start from the same weights and seeds; the two variants are interleaved ``--repeats`` times so that
load changes on a shared machine hit both alike. Reports img/s (images shown to D per wall-clock
second) and images per CPU-second of the process (robust to other jobs on a shared machine when
run with one thread).

``--preset toy32`` times the step of ``fe-fast train-gan --preset toy32`` instead (narrow networks,
logistic loss with lazy R1 every 16 steps, one generator forward per step); use ``--steps 16`` so
that one R1 step is in every timed block.

``make bench`` runs ``test_train_step`` (pytest-benchmark: a 16x16, 64-channel step, batch 4, for both
variants) and ``test_train_throughput`` (``main`` with ``QUICK_ARGS`` or, in full mode, ``FULL_ARGS``: the
``toy32`` step of bench/results/stylegan.md); the table goes to ``bench/out/stylegan_train.md``. By hand::

    python bench/bm_stylegan_train.py --preset toy32 --steps 16 --repeats 3 --threads 2
    OMP_NUM_THREADS=2 python bench/bm_stylegan_train.py --resolution 32 --channel-max 128 --batch 4 --steps 4
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
import types
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchutil  # noqa: E402

from fe_fast.ops.reference.modulated_conv import modulated_conv2d_reference  # noqa: E402
from fe_fast.stylegan import Discriminator, Generator  # noqa: E402
from fe_fast.stylegan.networks import modconv_impl  # noqa: E402
from fe_fast.stylegan.train import PRESETS, TrainConfig, _mix_ws, logistic_d_loss, path_length_penalty, wgan_gp_d_loss  # noqa: E402
from fe_fast.stylegan.train import _build as build_networks  # noqa: E402


def make_step(G, D, opt_G, opt_D, real, args):
    pl_mean = torch.zeros((), device=real.device)
    state = {"step": 0, "pl_mean": pl_mean}

    def step():
        b = real.shape[0]
        G.requires_grad_(False)
        D.requires_grad_(True)
        with torch.no_grad():
            fake = G.synthesis(_mix_ws(G, torch.randn(b, G.z_dim, device=real.device), 0.9))
        d_loss, _ = wgan_gp_d_loss(D, real, fake, 10.0)
        opt_D.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_D.step()
        G.requires_grad_(True)
        D.requires_grad_(False)
        gen = G.synthesis(_mix_ws(G, torch.randn(b, G.z_dim, device=real.device), 0.9))
        g_loss = -D(gen).mean()
        if args.path_every and state["step"] % args.path_every == 0:
            lw, state["pl_mean"], _ = path_length_penalty(G, max(1, b // 2), state["pl_mean"])
            g_loss = g_loss + 0.5 * lw * args.path_every
        opt_G.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_G.step()
        state["step"] += 1
        if real.is_cuda:
            torch.cuda.synchronize()

    return step


def make_preset_step(G, D, opt_G, opt_D, real, p):
    """The training step of ``fe_fast.stylegan.train`` under a preset with the logistic loss (e.g.
    ``toy32``): one generator forward shared by the critic step (non-saturating logistic loss, lazy
    R1 every ``r1_every`` steps) and the generator step; no path regulariser, no style mixing."""
    state = {"step": 0}

    def step():
        b = real.shape[0]
        G.requires_grad_(True)
        gen = G.synthesis(_mix_ws(G, torch.randn(b, G.z_dim, device=real.device), p["style_mixing"]))
        D.requires_grad_(True)
        do_r1 = state["step"] % p["r1_every"] == 0
        d_loss, _ = logistic_d_loss(D, real, gen.detach(), p["r1_gamma"] if do_r1 else 0.0, p["r1_every"])
        opt_D.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_D.step()
        D.requires_grad_(False)
        g_loss = torch.nn.functional.softplus(-D(gen)).mean()
        opt_G.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_G.step()
        state["step"] += 1
        if real.is_cuda:
            torch.cuda.synchronize()

    return step


def run_variant(impl, args, device, real):
    torch.manual_seed(args.seed)
    p = PRESETS[args.preset] if args.preset else {}
    if p:  # the networks `fe-fast train-gan --preset` trains
        G, D = build_networks(TrainConfig(**p, seed=args.seed), device)
    else:
        G = Generator(args.resolution, seed=args.seed, channel_max=args.channel_max).to(device)
        D = Discriminator(args.resolution, seed=args.seed + 1, channel_max=args.channel_max).to(device)
    opt_G = torch.optim.Adam(G.parameters(), lr=p.get("lr", 0.002), betas=(0.0, 0.99))
    opt_D = torch.optim.Adam(D.parameters(), lr=p.get("d_lr", p.get("lr", 0.002)), betas=(0.0, 0.99))
    step = make_preset_step(G, D, opt_G, opt_D, real, p) if p else make_step(G, D, opt_G, opt_D, real, args)
    ctx = modconv_impl(impl) if impl is not None else modconv_impl(None)
    with ctx:
        step()  # warm-up (allocations, first-call costs); the path-length step is step 0
        t, c = time.perf_counter(), time.process_time()
        for _ in range(args.steps):
            step()
        el, cpu = time.perf_counter() - t, time.process_time() - c
    n = args.steps * real.shape[0]
    return n / el, n / cpu


def _setup(impl_name, resolution=16, channel_max=64, batch=4):
    args = types.SimpleNamespace(resolution=resolution, channel_max=channel_max, seed=0, path_every=4)
    torch.manual_seed(0)
    G = Generator(resolution, channel_max=channel_max, seed=0)
    D = Discriminator(resolution, channel_max=channel_max, seed=1)
    opt_G = torch.optim.Adam(G.parameters(), lr=0.002, betas=(0.0, 0.99))
    opt_D = torch.optim.Adam(D.parameters(), lr=0.002, betas=(0.0, 0.99))
    real = torch.rand(batch, 3, resolution, resolution, generator=torch.Generator().manual_seed(1)) * 2 - 1
    return make_step(G, D, opt_G, opt_D, real, args)


try:
    import pytest

    @pytest.mark.parametrize("impl", ["ours", "grouped_reference"])
    def test_train_step(benchmark, impl):
        """One training step (4 images; path-length step every 4th) with each modulated-conv variant."""
        fn = None if impl == "ours" else modulated_conv2d_reference
        step = _setup(impl)
        with modconv_impl(fn):
            step()
            benchmark.pedantic(step, rounds=4, iterations=1)
except ImportError:  # pragma: no cover - running as a script without pytest
    pass


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--resolution", type=int, default=32)
    ap.add_argument("--channel-max", type=int, default=512, help="512 = config-f widths")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--steps", type=int, default=4, help="timed steps per variant and repeat")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--path-every", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: leave torch's default)")
    ap.add_argument("--json", default=None,
                    help="append the result as one JSON line to this file (default bench/out/stylegan_train.jsonl)")
    ap.add_argument("--out", default=None, help="markdown table (default bench/out/stylegan_train.md)")
    ap.add_argument("--preset", choices=sorted(PRESETS), default=None,
                    help="time the step of `fe-fast train-gan --preset NAME` instead (its widths, batch and "
                         "loss; --resolution/--channel-max/--batch/--path-every then come from the preset)")
    args = ap.parse_args(argv)
    report = benchutil.Report("stylegan_train", "StyleGAN2 training step: our modulated conv vs the grouped-conv reference",
                              benchutil.script_command(__file__, sys.argv[1:] if argv is None else argv))
    if args.preset:
        p = PRESETS[args.preset]
        args.resolution, args.channel_max, args.batch = p["resolution"], p["channel_max"], p["batch"]
    device = torch.device(args.device)
    real = torch.rand(args.batch, 3, args.resolution, args.resolution, generator=torch.Generator().manual_seed(1))
    real = (real * 2 - 1).to(device)
    if args.threads:
        torch.set_num_threads(args.threads)
    res = {"ours": [], "grouped_reference": []}
    res_cpu = {"ours": [], "grouped_reference": []}
    for r in range(args.repeats):
        for name, impl in (("ours", None), ("grouped_reference", modulated_conv2d_reference)):
            ips, ipc = run_variant(impl, args, device, real)
            res[name].append(ips)
            res_cpu[name].append(ipc)
            print(f"repeat {r}: {name:18s} {ips:8.4f} img/s wall, {ipc:8.4f} img per CPU-second", flush=True)
    med = {k: statistics.median(v) for k, v in res.items()}
    med_cpu = {k: statistics.median(v) for k, v in res_cpu.items()}
    out = {"preset": args.preset, "resolution": args.resolution, "channel_max": args.channel_max, "batch": args.batch,
           "steps": args.steps, "repeats": args.repeats, "path_every": args.path_every, "device": str(device),
           "torch_threads": torch.get_num_threads(), "cpu": platform.processor() or platform.machine(),
           "img_per_s": res, "img_per_cpu_s": res_cpu, "median_img_per_s": med, "median_img_per_cpu_s": med_cpu,
           "speedup_wall": med["ours"] / med["grouped_reference"],
           "speedup_cpu": med_cpu["ours"] / med_cpu["grouped_reference"]}
    print(f"median img/s (wall): ours {med['ours']:.4f}, grouped reference {med['grouped_reference']:.4f}, "
          f"speed-up {out['speedup_wall']:.2f}x; per CPU-second: ours {med_cpu['ours']:.4f}, "
          f"grouped reference {med_cpu['grouped_reference']:.4f}, speed-up {out['speedup_cpu']:.2f}x")
    json_path = Path(args.json) if args.json else benchutil.out_path("stylegan_train.jsonl")
    with open(json_path, "a") as f:
        f.write(json.dumps(out) + "\n")
    desc = (f"preset `{args.preset}`" if args.preset else "config-f style step") + (
        f", {args.resolution}x{args.resolution}, channel_max {args.channel_max}, batch {args.batch}, "
        f"{args.steps} timed steps x {args.repeats} repeats (interleaved), {torch.get_num_threads()} torch threads, "
        f"device {device}")
    report.add(desc + "\n")
    report.add("| variant | median img/s (wall) | median img per CPU-second |")
    report.add("| --- | --- | --- |")
    for k in ("ours", "grouped_reference"):
        report.add(f"| {k} | {med[k]:.3f} | {med_cpu[k]:.3f} |")
    report.add(f"| speed-up (ours / reference) | {out['speedup_wall']:.2f}x | {out['speedup_cpu']:.2f}x |")
    report.write(args.out)
    return out


#: ``make bench`` arguments of ``test_train_throughput`` (full: bench/results/stylegan.md's toy32 rows)
QUICK_ARGS = ["--preset", "toy32", "--steps", "4", "--repeats", "1", "--threads", "2"]
FULL_ARGS = ["--preset", "toy32", "--steps", "16", "--repeats", "3", "--threads", "2"]


def test_train_throughput():
    out = main(benchutil.pick(QUICK_ARGS, FULL_ARGS))
    assert out["speedup_wall"] > 0


if __name__ == "__main__":
    main()
