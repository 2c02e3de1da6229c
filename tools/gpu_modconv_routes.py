"""Diagnostic (not run by ``make bench``; ``bench/gpu_check.sh`` runs it on a lent GPU): use it when
choosing the CUDA route of ``fe_fast.ops.modulated_conv2d``.

Routes to a modulated convolution at the cost of a plain convolution, timed against that plain
convolution in one run (thesis eq. 5-1/5-2; the GPU goal: within 1.2x of ``F.conv2d`` of the same
shape followed by the same bias + leaky ReLU).

Every row is one (dtype, mode, shape); every column one route, timed interleaved round by round so
that clock and load changes hit all routes alike; the table gives each route's median time and its
ratio to the plain convolution (``plain``), which is the yardstick:

- ``plain``: ``F.conv2d(x, w)`` then ``leaky_relu(y + bias) * sqrt(2)`` (eager): no modulation.
- ``plain_compiled``: the same with the bias + activation compiled into one kernel (the yardstick a
  fused implementation can reach).
- ``reference``: per-sample weights + one grouped convolution (``fused_modconv`` of the reference
  implementations; ``fe_fast.ops.reference.modulated_conv``).
- ``torch``: ``fe_fast.ops.modulated_conv2d(backend="torch")``: input scaling, ONE shared-weight
  convolution, demodulation epilogue (today's CUDA default).
- ``torch_cl``: the same with x and w in channels_last memory format.
- ``compiled``: ``torch.compile`` of the same formulation: the input scaling and the demodulation
  + noise + bias + activation epilogue become one generated kernel each around the cuDNN call.
- ``compiled_cg``: the same with ``mode="reduce-overhead"`` (CUDA graphs: no launch overhead).
- ``triton``: ``fe_fast.ops.modulated_conv2d(backend="triton")``, our implicit-GEMM kernel.

Shapes (B, C, H, C -> C, 3x3, up=1, demodulation, noise, bias, leaky ReLU): the three of
``bench/bm_modulated_conv.py`` and three layers of the 1024 generator at batch 8 (64x64 at 512
channels, 256x256 at 128, 1024x1024 at 32). dtypes float32 (TF32 as cuDNN allows it) and bfloat16
(cuDNN accumulates in float32). Modes ``fwd`` (no_grad) and ``fwdbwd`` (gradients w.r.t. x, w,
styles, bias). Rows are measured in priority order (the large shapes first: the goal is judged
there) until ``--deadline`` seconds have passed; compiled routes cost a compilation per shape and
run last.

Also (``--synthesis``): the whole 1024 synthesis network forward at batch 8, eager against one CUDA
graph of it and against the grouped reference.

    python tools/gpu_modconv_routes.py --device cuda --deadline 200 --out bench/out/gpu_modconv.md
    python tools/gpu_modconv_routes.py --device cpu --quick      # smoke test of every route on CPU
"""
from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fe_fast.ops import modulated_conv2d  # noqa: E402
from fe_fast.ops.modulated_conv import demodulation_coefficients  # noqa: E402
from fe_fast.ops.reference.modulated_conv import modulated_conv2d_reference  # noqa: E402
from bm_modulated_conv import _inputs as benchmark_inputs  # noqa: E402

LARGE = [(8, 512, 64), (8, 128, 256), (8, 32, 1024)]
SMALL = [(4, 512, 16), (8, 256, 32), (8, 128, 64)]
QUICK = [(2, 16, 8), (2, 8, 16)]
ROUTES = ("plain", "plain_compiled", "reference", "torch", "torch_cl", "triton", "compiled", "compiled_cg")
_GAIN = math.sqrt(2.0)


def _epilogue(y, d, noise, bias):
    if d is not None:
        y = y * d[:, :, None, None]
    if noise is not None:
        y = y + noise
    return F.leaky_relu(y + bias.reshape(1, -1, 1, 1), 0.2) * _GAIN


def _modconv_formulation(x, w, s, noise, bias):
    """Input scaling, one shared convolution, demodulation epilogue (eq. 5-1/5-2)."""
    d = demodulation_coefficients(w.float(), s.float())  # float32 whatever the input dtype
    y = F.conv2d(x * s[:, :, None, None], w, padding=w.shape[-1] // 2)
    return _epilogue(y, d.to(y.dtype), noise, bias)


def _plain(x, w, s, noise, bias):
    return _epilogue(F.conv2d(x, w, padding=w.shape[-1] // 2), None, None, bias)


_compiled_epilogue = None


def _plain_compiled(x, w, s, noise, bias):
    global _compiled_epilogue
    if _compiled_epilogue is None:
        _compiled_epilogue = torch.compile(_epilogue)
    return _compiled_epilogue(F.conv2d(x, w, padding=w.shape[-1] // 2), None, None, bias)


def make_route(name, device):
    """A callable (x, w, s, noise, bias) -> out for the route, or None where it does not apply."""
    if name == "plain":
        return _plain
    if name == "plain_compiled":
        return _plain_compiled
    if name == "reference":
        return lambda x, w, s, n, b: modulated_conv2d_reference(x, w, s, True, 1, n, b)
    if name in ("torch", "torch_cl"):
        return lambda x, w, s, n, b: modulated_conv2d(x, w, s, True, 1, n, b, backend="torch")
    if name == "triton":
        if device != "cuda":
            return None  # the interpreter times Python, not the kernel
        return lambda x, w, s, n, b: modulated_conv2d(x, w, s, True, 1, n, b, backend="triton")
    if name == "compiled":
        return torch.compile(_modconv_formulation, dynamic=False)
    if name == "compiled_cg":
        if device != "cuda":
            return None
        return torch.compile(_modconv_formulation, mode="reduce-overhead", dynamic=False)
    raise ValueError(name)


def make_inputs(B, C, H, dtype, device, grad, channels_last=False):
    """The inputs of ``bench/bm_modulated_conv.py`` (same seeds), in ``dtype`` on ``device``."""
    x, w, s, n, b = (t.to(device=device, dtype=dtype) for t in benchmark_inputs(B, C, H, "cpu", False))
    if channels_last:
        x, w = x.contiguous(memory_format=torch.channels_last), w.contiguous(memory_format=torch.channels_last)
    if grad:
        for t in (x, w, s, b):
            t.requires_grad_(True)
    return x, w, s, n, b


def timed_call(fn, inputs, mode):
    x, w, s, n, b = inputs
    if mode == "fwd":
        with torch.no_grad():
            return fn(x, w, s, n, b)
    out = fn(x, w, s, n, b)
    return torch.autograd.grad(out, [x, w, s, b], torch.ones_like(out), allow_unused=True)


def measure_row(dtype, mode, shape, device, routes, reps):
    """Median seconds per route, the routes interleaved within each repetition."""
    B, C, H = shape
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    calls = {}
    for r in routes:
        fn = make_route(r, device)
        if fn is None:
            continue
        inputs = make_inputs(B, C, H, dtype, device, mode == "fwdbwd", channels_last=(r == "torch_cl"))
        try:
            for _ in range(3):  # warm-up: compilation, cuDNN algorithm choice, CUDA graph capture
                timed_call(fn, inputs, mode)
            sync()
        except Exception as exc:  # a route that cannot run this case is reported, not fatal
            print(f"  {r} {dtype} {mode} {shape}: {type(exc).__name__}: {str(exc).splitlines()[0][:120]}")
            continue
        calls[r] = (fn, inputs)
    times = {r: [] for r in calls}
    for _ in range(reps):
        for r, (fn, inputs) in calls.items():
            sync()
            t0 = time.perf_counter()
            timed_call(fn, inputs, mode)
            sync()
            times[r].append(time.perf_counter() - t0)
    return {r: statistics.median(ts) for r, ts in times.items()}


def synthesis_rows(device, resolution, batch, reps):
    """The whole synthesis network forward: eager ours, one CUDA graph of it, grouped reference."""
    from fe_fast.stylegan import Generator
    from fe_fast.stylegan.networks import modconv_impl

    G = Generator(resolution, seed=0).to(device).eval()
    ws = G.mapping(torch.randn(batch, G.z_dim, device=device)).detach()
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    rows = {}

    def bench(fn):
        with torch.no_grad():
            for _ in range(2):
                fn()
            sync()
            ts = []
            for _ in range(reps):
                t0 = time.perf_counter()
                fn()
                sync()
                ts.append(time.perf_counter() - t0)
        return statistics.median(ts)

    rows["ours (eager)"] = bench(lambda: G.synthesis(ws))
    with modconv_impl(modulated_conv2d_reference):
        rows["grouped reference (eager)"] = bench(lambda: G.synthesis(ws))
    if device == "cuda":
        static_ws = ws.clone()
        with torch.no_grad():
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(2):
                    G.synthesis(static_ws)
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                G.synthesis(static_ws)
        rows["ours (one CUDA graph)"] = bench(graph.replay)
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--deadline", type=float, default=240.0, help="seconds; later rows are skipped")
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--quick", action="store_true", help="tiny shapes (a smoke test of every route)")
    ap.add_argument("--synthesis", type=int, default=0, metavar="RES",
                    help="also time the synthesis network forward at this resolution (e.g. 1024)")
    ap.add_argument("--out", default=None, help="write the markdown table here too")
    args = ap.parse_args(argv)
    start = time.perf_counter()
    device = args.device
    shapes = QUICK if args.quick else LARGE + SMALL
    eager = [r for r in ROUTES if not r.startswith("compiled")]
    compiled = [r for r in ROUTES if r.startswith("compiled")]
    plan = [(dt, mode, shape, eager) for dt in (torch.float32, torch.bfloat16)
            for mode in ("fwd", "fwdbwd") for shape in shapes]
    plan += [(dt, mode, shape, compiled) for dt in (torch.float32, torch.bfloat16)
             for mode in ("fwd", "fwdbwd") for shape in shapes]
    results = {}
    for dt, mode, shape, routes in plan:
        if time.perf_counter() - start > args.deadline:
            print(f"(deadline: skipped {dt} {mode} {shape} {routes})")
            continue
        key = (str(dt).replace("torch.", ""), mode, shape)
        results.setdefault(key, {}).update(measure_row(dt, mode, shape, device, routes, args.reps))
        print(key, {r: f"{t * 1e3:.3f}" for r, t in results[key].items()}, flush=True)

    name = torch.cuda.get_device_name() if device == "cuda" else "CPU"
    lines = [f"Device: {name}; torch {torch.__version__}; median ms over {args.reps} interleaved reps; "
             "(x) = time / plain conv + bias + act of the same shape and dtype", "",
             "| dtype | mode | B, C, H | " + " | ".join(ROUTES) + " |",
             "|---|---|---|" + "---|" * len(ROUTES)]
    for (dt, mode, shape), row in results.items():
        plain = row.get("plain")
        cells = []
        for r in ROUTES:
            t = row.get(r)
            cells.append("" if t is None else f"{t * 1e3:.3f}" + (f" ({t / plain:.2f}x)" if plain else ""))
        lines.append(f"| {dt} | {mode} | {', '.join(map(str, shape))} | " + " | ".join(cells) + " |")
    if args.synthesis and time.perf_counter() - start < args.deadline + 60:
        rows = synthesis_rows(device, args.synthesis, 8 if not args.quick else 1, max(3, args.reps // 4))
        lines += ["", f"Synthesis network forward, {args.synthesis}x{args.synthesis}, batch "
                  f"{8 if not args.quick else 1}, float32:", "", "| variant | ms |", "|---|---|"]
        lines += [f"| {k} | {v * 1e3:.1f} |" for k, v in rows.items()]
    table = "\n".join(lines)
    print(table)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(table + "\n")


if __name__ == "__main__":
    main()
