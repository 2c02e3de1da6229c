"""Contention benchmark of the CPU ops: each op's time with the machine otherwise idle against its
time while ONE other busy process runs, as a ratio measured in the same run (issue goal: <= 2.5x).

The busy process is a python process spinning torch matrix products on one thread
(``--busy torch``, the default) or ``yes > /dev/null`` (``--busy yes``). Conditions alternate
(idle, busy, idle, busy, ...) for ``--rounds`` rounds so that drift of the machine's own load hits
both; per condition the median (and the minimum) over all repetitions is reported, the ratio is
busy / idle of the medians.

Run:  python bench/bm_ops_contention.py [--busy torch|yes] [--rounds 3] [--out FILE]
A machine shared with other jobs is never idle: the "idle" column then already carries their load
(report ``uptime`` with the numbers). ``GOMP_SPINCOUNT=300000`` in the environment reproduces
OpenMP's spinning default (fe_fast/__init__.py asks for passive waits otherwise).

``make bench``: quick ``QUICK_ARGS``; full ``FULL_ARGS`` (bench/results/ops.md), then the same in a
fresh process with ``GOMP_SPINCOUNT=300000``. Tables: ``bench/out/ops_contention[_spinning].md``.
"""
from __future__ import annotations

import argparse
import importlib
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import fe_fast  # noqa: F401  (before torch, as the CLI does: it chooses OpenMP's wait policy)
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchutil  # noqa: E402

BUSY = {
    "torch": [sys.executable, "-c",
              "import torch\ntorch.set_num_threads(1)\na = torch.randn(384, 384)\n"
              "while True:\n    a = torch.tanh(a @ a)"],
    "yes": ["sh", "-c", "exec yes > /dev/null"],
}


def _cases():
    """(name, thunk) per op, shapes of their main uses (HOUV step, S-space reduction, a StyleGAN
    layer at 32x32 with 128 channels; knn_topk at the two bm_knn_topk.py shapes: the kd-tree
    at D = 3 and the blocked brute force at D = 64)."""
    import fe_fast.ops as ops

    houv = importlib.import_module("fe_fast.registration.houv")
    g = torch.Generator().manual_seed(0)
    x = torch.randn(32, 2048, 3, generator=g)
    y = torch.randn(2048, 3, generator=g)
    yb = torch.randn(32, 2048, 3, generator=g)
    P = torch.randn(2, 1024, 3, generator=g)
    Q = torch.randn(2, 1024, 3, generator=g)
    R = torch.linalg.qr(torch.randn(32, 3, 3, generator=g)).Q.requires_grad_()
    t = torch.zeros(32, 3, requires_grad=True)
    sizes = [512] * 8 + [256] * 6 + [128] * 4 + [64] * 4 + [32] * 4
    off = [0]
    for n in sizes:
        off.append(off[-1] + n)
    grads = torch.randn(256, off[-1], generator=g)
    mask = torch.rand(256, generator=g) < 0.5
    xm = torch.randn(8, 128, 32, 32, generator=g)
    wm = torch.randn(128, 128, 3, 3, generator=g) / 34
    sm = torch.randn(8, 128, generator=g)
    nm = torch.randn(1, 1, 32, 32, generator=g)
    bm = torch.randn(128, generator=g)
    x64 = torch.randn(1, 20000, 64, generator=g)  # the feature-space kNN row of bm_knn_topk.py
    y64 = torch.randn(20000, 64, generator=g)

    def houv_step():
        R.grad = t.grad = None
        loss = houv._hybrid_terms(P, Q, R, t, 0.7, 0.5, G=16)[1].sum()
        loss.backward()

    def modconv_fwd_bwd():
        xr = xm.clone().requires_grad_()
        ops.modulated_conv2d(xr, wm, sm, noise=nm, bias=bm).sum().backward()

    def modconv_fwd():
        with torch.no_grad():
            ops.modulated_conv2d(xm, wm, sm, noise=nm, bias=bm)

    return [
        ("knn B=32 N=M=2048 shared y", lambda: ops.knn(x, y)),
        ("knn_select a=0.7 B=32 N=M=2048", lambda: ops.knn_select(x, yb, 0.7)),
        ("knn_topk K=8 D=3 B=32 N=M=2048 shared y", lambda: ops.knn(x, y, K=8)),
        ("knn_topk K=8 D=64 B=1 N=M=20000 shared y", lambda: ops.knn(x64, y64, K=8)),
        ("chamfer B=32 N=M=2048", lambda: ops.chamfer(x, yb)),
        ("HOUV loss fwd+bwd 2x16 hyp, 1024 pts", houv_step),
        ("s_grad_reduce B=256 C=%d L=%d" % (off[-1], len(sizes)), lambda: ops.s_grad_reduce(grads, off, mask, k=5)),
        ("modconv fwd 8x128x32x32", modconv_fwd),
        ("modconv fwd+bwd 8x128x32x32", modconv_fwd_bwd),
    ]


def _time(fn, reps):
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--busy", choices=sorted(BUSY), default="torch")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--only", default="", help="run only the ops whose name contains this text")
    ap.add_argument("--out", default=None, help="markdown table (default bench/out/ops_contention.md)")
    args = ap.parse_args(argv)
    spinning = "GOMP_SPINCOUNT" in os.environ
    report = benchutil.Report("ops_contention_spinning" if spinning else "ops_contention",
                              "CPU ops: idle vs one busy process" + (" (GOMP_SPINCOUNT set)" if spinning else ""),
                              ("GOMP_SPINCOUNT=" + os.environ["GOMP_SPINCOUNT"] + " " if spinning else "")
                              + benchutil.script_command(__file__, sys.argv[1:] if argv is None else argv))
    cases = [c for c in _cases() if args.only in c[0]]
    for _, fn in cases:  # warm-up (kd-tree buffers, oneDNN primitives, lazy imports)
        fn()
    times = {(name, c): [] for name, _ in cases for c in ("idle", "busy")}
    for _ in range(args.rounds):
        for cond in ("idle", "busy"):
            proc = None
            if cond == "busy":
                proc = subprocess.Popen(BUSY[args.busy], stdout=subprocess.DEVNULL)
                time.sleep(1.0)
            try:
                for name, fn in cases:
                    times[(name, cond)] += _time(fn, args.reps)
            finally:
                if proc is not None:
                    proc.kill()
                    proc.wait()
    def table(line):  # print a line and keep it for the report
        print(line)
        report.add(line)

    table(f"torch {torch.__version__}, torch threads {torch.get_num_threads()}, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}, "
          f"GOMP_SPINCOUNT={os.environ.get('GOMP_SPINCOUNT')}, busy={args.busy}, "
          f"rounds={args.rounds} x reps={args.reps}, load {os.getloadavg()}\n")
    table("| op | idle ms median (min) | busy ms median (min) | busy / idle |")
    table("|---|---|---|---|")
    worst = 0.0
    ratios = {}
    for name, _ in cases:
        i, b = times[(name, "idle")], times[(name, "busy")]
        r = ratios[name] = statistics.median(b) / statistics.median(i)
        worst = max(worst, r)
        table(f"| {name} | {1e3 * statistics.median(i):.1f} ({1e3 * min(i):.1f}) | "
              f"{1e3 * statistics.median(b):.1f} ({1e3 * min(b):.1f}) | {r:.2f}x |")
    table(f"\nworst ratio {worst:.2f}x (goal <= 2.5x)")
    report.write(args.out)
    return ratios


#: ``make bench``: a check that it runs (quick); the protocol of bench/results/ops.md (full)
QUICK_ARGS = ["--rounds", "1", "--reps", "3"]
FULL_ARGS = ["--rounds", "2", "--reps", "5"]


def test_ops_contention():
    ratios = main(benchutil.pick(QUICK_ARGS, FULL_ARGS))
    assert ratios and all(r > 0 for r in ratios.values())
    if benchutil.full() and "GOMP_SPINCOUNT" not in os.environ:
        # the spinning-default columns of bench/results/ops.md: OpenMP reads its wait policy when
        # torch loads it, so they need a fresh process
        env = {**os.environ, "GOMP_SPINCOUNT": "300000",
               "PYTHONPATH": os.pathsep.join(filter(None, [str(benchutil.ROOT), os.environ.get("PYTHONPATH")]))}
        env.pop("OMP_WAIT_POLICY", None)
        subprocess.run([sys.executable, __file__, *FULL_ARGS], env=env, check=True)


if __name__ == "__main__":
    main()
