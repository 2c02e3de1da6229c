"""Diagnostic (not run by ``make bench``; ``bench/gpu_check.sh`` runs it on a lent GPU): use it when a
GPU training step is slower than expected, to see kernel launches and host synchronisations.

Profile StyleGAN2 training steps with ``torch.profiler``: where the time goes, how many kernels
one step launches and how often the host waits for the device (synchronisations, ``.item()``).

Times ``--steps`` steps of ``fe-fast train-gan --preset toy32`` (the step that
``bench/bm_stylegan_train.py --preset toy32`` times) after a warm-up, then prints the ops with the
most self device time (CPU time where there is no device), the kernel launches per step, and the
host-synchronising calls per step. Writes the table to ``--out`` when given.

    python tools/gpu_train_profile.py --device cuda --steps 16 --out bench/out/gpu_train_profile.md
    python tools/gpu_train_profile.py --device cpu --steps 2 --batch 4     # smoke test
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bm_stylegan_train import build_networks, make_preset_step  # noqa: E402
from fe_fast.stylegan.train import PRESETS, TrainConfig  # noqa: E402

SYNC_OPS = ("cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaMemcpyAsync", "aten::item",
            "aten::_local_scalar_dense", "aten::nonzero")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--preset", default="toy32", choices=sorted(PRESETS))
    ap.add_argument("--batch", type=int, default=None, help="default: the preset's batch")
    ap.add_argument("--steps", type=int, default=16, help="profiled steps (16: one lazy R1 step)")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    p = dict(PRESETS[args.preset])
    if args.batch:
        p["batch"] = args.batch
    torch.manual_seed(0)
    G, D = build_networks(TrainConfig(**p, seed=0), args.device)
    opt_G = torch.optim.Adam(G.parameters(), lr=p.get("lr", 0.002), betas=(0.0, 0.99))
    opt_D = torch.optim.Adam(D.parameters(), lr=p.get("d_lr", p.get("lr", 0.002)), betas=(0.0, 0.99))
    res = p["resolution"]
    real = torch.rand(p["batch"], 3, res, res, device=args.device) * 2 - 1
    step = make_preset_step(G, D, opt_G, opt_D, real, p)
    for _ in range(3):
        step()
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if args.device == "cuda" else [])
    with profile(activities=acts) as prof:
        for _ in range(args.steps):
            step()
    events = prof.key_averages()
    sort = "self_cuda_time_total" if args.device == "cuda" else "self_cpu_time_total"
    table = events.table(sort_by=sort, row_limit=args.top)
    launches = sum(e.count for e in events if e.key in ("cudaLaunchKernel", "cuLaunchKernel",
                                                        "cudaLaunchKernelExC"))
    syncs = {e.key: e.count / args.steps for e in events if e.key in SYNC_OPS}
    lines = [f"# Training-step profile: preset {args.preset}, batch {p['batch']}, {args.steps} steps, "
             f"{args.device} ({torch.cuda.get_device_name() if args.device == 'cuda' else 'CPU'}), "
             f"torch {torch.__version__}", "",
             f"kernel launches per step: {launches / args.steps:.0f}",
             "host-synchronising calls per step: " + (", ".join(f"{k} {v:.1f}" for k, v in syncs.items())
                                                      or "none recorded"), "", "```", table, "```"]
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
