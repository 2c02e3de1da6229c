"""StyleGAN2 modulated convolution benchmark: ``fe_fast.ops.modulated_conv2d`` against
the grouped-conv ("fused_modconv") reference of ``fe_fast.ops.reference.modulated_conv``.

Shapes (B, C, H) in {(4, 512, 16), (8, 256, 32), (8, 128, 64)}: C -> C channels, 3x3 kernel,
up=1, demodulation, per-sample noise, bias and fused leaky ReLU (a StyledConv of config-f).
Modes: ``fwd`` (inference, under no_grad) and ``fwdbwd`` (forward + gradients w.r.t. x, weight,
styles and bias). CPU rows: ours = backend "cpu" (one shared conv + C++ fused epilogue) and
"torch" (the same formulation, eager epilogue), float32. GPU rows (when CUDA is present): ours =
backend "triton", the reference on CUDA, and the plain cuDNN ``F.conv2d`` of the same shape (no
modulation) as the floor.

``make bench`` runs it (quick: 2 rounds; full: 10, the protocol of bench/results/modulated_conv.md).
By hand: ``python -m pytest bench/bm_modulated_conv.py -p no:xdist -s [--full]``. Each benchmark round runs the implementations of one (device, mode, shape) back to back, so the
pytest-benchmark rows time a whole round; the ratio table (reference time / our time, each the
minimum over the same run's rounds) is printed when the module finishes and written to
``bench/out/modulated_conv.md``; FE_FAST_BENCH_ROUNDS overrides the rounds.
"""
from __future__ import annotations

import os
import time

import pytest
import torch
import torch.nn.functional as F

import benchutil

from fe_fast.ops import modulated_conv2d
from fe_fast.ops.reference.modulated_conv import modulated_conv2d_reference

SHAPES = [(4, 512, 16), (8, 256, 32), (8, 128, 64)]
ROUNDS = int(os.environ.get("FE_FAST_BENCH_ROUNDS") or benchutil.pick(2, 10))
RESULTS: dict[tuple, float] = {}
CUDA = torch.cuda.is_available()


def _inputs(B, C, H, device, requires_grad):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(B, C, H, H, generator=g)
    w = torch.randn(C, C, 3, 3, generator=g) / (C * 9) ** 0.5
    s = torch.randn(B, C, generator=g) + 1.0
    n = torch.randn(B, 1, H, H, generator=g) * 0.1
    b = torch.randn(C, generator=g) * 0.1
    ts = [t.to(device) for t in (x, w, s, n, b)]
    if requires_grad:
        for i in (0, 1, 2, 4):
            ts[i].requires_grad_(True)
    return ts


def _impl(name):
    if name == "reference":
        return modulated_conv2d_reference
    if name == "cudnn_conv":
        return lambda x, w, s, demodulate, up, n, b: F.conv2d(x, w, padding=1)
    return lambda *a: modulated_conv2d(*a, backend=name)


def _runner(impl, mode, device, B, C, H):
    x, w, s, n, b = _inputs(B, C, H, device, mode == "fwdbwd")
    fn = _impl(impl)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    if mode == "fwd":
        def run():
            with torch.no_grad():
                out = fn(x, w, s, True, 1, n, b)
            sync()
            return out
    else:
        go = torch.randn(B, C, H, H, device=device)
        ins = [x, w, s, b] if impl != "cudnn_conv" else [x, w]

        def run():
            out = fn(x, w, s, True, 1, n, b)
            grads = torch.autograd.grad(out, ins, go)
            sync()
            return grads
    return run


IMPLS = {"cpu": ("reference", "cpu", "torch"), "cuda": ("reference", "triton", "torch", "cudnn_conv")}


def _cases():
    for device in ("cpu", "cuda"):
        marks = [] if device == "cpu" or CUDA else [
            pytest.mark.skip(reason="no CUDA device: GPU rows skipped")]
        for B, C, H in SHAPES:
            for mode in ("fwd", "fwdbwd"):
                yield pytest.param(device, mode, B, C, H, marks=marks,
                                   id=f"{device}-{mode}-{B}x{C}x{H}")


@pytest.mark.parametrize("device,mode,B,C,H", list(_cases()))
def test_modulated_conv(benchmark, device, mode, B, C, H):
    """One benchmark round runs every implementation once, interleaved (reference, ours, other),
    so that the load of a shared machine hits them alike; the table reports each one's minimum
    over the rounds and the ratios of those minima."""
    benchmark.group = f"modconv-{device}-{mode}"
    impls = IMPLS[device]
    runs = {impl: _runner(impl, mode, device, B, C, H) for impl in impls}
    times = {impl: [] for impl in impls}

    def one_round():
        for impl in impls:
            t0 = time.perf_counter()
            runs[impl]()
            times[impl].append(time.perf_counter() - t0)

    benchmark.pedantic(one_round, rounds=ROUNDS, warmup_rounds=1, iterations=1)
    for impl in impls:
        RESULTS[(device, impl, mode, B, C, H)] = min(times[impl][1:])  # [0]: the warm-up round


@pytest.fixture(scope="module", autouse=True)
def _report():
    report = benchutil.Report("modulated_conv", "StyleGAN2 modulated convolution vs the grouped-conv reference",
                              benchutil.pytest_command(__file__))
    if not CUDA:
        print("\n[bench_modulated_conv] GPU rows skipped: torch.cuda.is_available() is False")
    yield
    lines = ["| device | mode | B, C, H | reference ms | ours ms (impl) | ratio ref/ours | other |",
             "|---|---|---|---|---|---|---|"]
    for device, ours, others in (("cpu", "cpu", ("torch",)), ("cuda", "triton", ("torch", "cudnn_conv"))):
        for mode in ("fwd", "fwdbwd"):
            for B, C, H in SHAPES:
                ref = RESULTS.get((device, "reference", mode, B, C, H))
                our = RESULTS.get((device, ours, mode, B, C, H))
                if ref is None or our is None:
                    continue
                nd = 1 if device == "cpu" else 3  # GPU times are fractions of a ms
                extra = []
                for o in others:
                    t = RESULTS.get((device, o, mode, B, C, H))
                    if t is not None:
                        extra.append(f"{o} {t * 1e3:.{nd}f} ms (ref/{o} {ref / t:.2f}x, "
                                     f"ours/{o} {our / t:.2f}x)")
                lines.append(f"| {device} | {mode} | {B}, {C}, {H} | {ref * 1e3:.{nd}f} | "
                             f"{our * 1e3:.{nd}f} ({ours}) | {ref / our:.2f}x | {'; '.join(extra)} |")
    table = "\n".join(lines)
    print("\n" + table)
    report.add(f"float32, StyleGAN2 StyledConv (3x3, demodulation, noise, bias, leaky ReLU); minimum over {ROUNDS} "
               f"rounds, ms; {torch.get_num_threads()} torch threads\n")
    report.add(table)
    report.write()
