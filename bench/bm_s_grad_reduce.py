"""S-gradient reduction benchmark: ``fe_fast.ops.s_grad_reduce`` (C++/OpenMP) against the
equivalent eager torch code (per-layer slicing, abs, mean, topk; ``s_grad_reduce_eager``).

Layout: 1024-resolution S space (26 layers, 512 x 15, 256 x 3, 128 x 3, 64 x 3, 32 x 2 = 9088
channels, thesis Table 6-2), B = 1000 per-sample gradients (float32), k = 3. Masks: ``all`` (the
region detector, eq. 6-2: every sample counts), ``half`` and ``pos4pct`` (about 40 positives of 1000,
the attribute detector of §6.3.2). Outputs are checked against the reference with the tests' checks
(``tests/ops/test_s_grad_reduce.py``) before timing.

Where CUDA is present the same cases also run on the GPU: ours = the Triton kernel (compiled; needs
TRITON_INTERPRET unset or 0), eager = the same torch code on CUDA tensors, both synchronised.

``make bench`` runs it (quick: 5 rounds per case; full: 20, the protocol of bench/results/editing.md). By hand:
``python -m pytest bench/bm_s_grad_reduce.py -p no:xdist -s [--full]``. The speed-up table (medians from the
same run) is printed at the end and written to ``bench/out/s_grad_reduce.md``.
"""
from __future__ import annotations

import os

import pytest
import torch

import benchutil
from tests.ops.test_s_grad_reduce import SIZES_1024, _check  # the tests' 1024 layout and output checks
from fe_fast.ops.reference.s_grad_reduce import s_grad_reduce_eager, s_grad_reduce_reference
from fe_fast.ops.s_grad_reduce import layer_offsets, s_grad_reduce

SIZES = SIZES_1024  # thesis Table 6-2
B, K = 1000, 3
ROUNDS = benchutil.pick(5, 20)
FRACS = {"all": 1.0, "half": 0.5, "pos4pct": 0.04}
DEVICES = ["cpu"]
if torch.cuda.is_available() and os.environ.get("TRITON_INTERPRET") != "1":
    DEVICES.append("cuda")
RESULTS: dict = {}


def _timed(fn, device):
    if device == "cpu":
        return fn

    def run():
        out = fn()
        torch.cuda.synchronize()
        return out
    return run


@pytest.fixture(scope="module")
def data():
    g = torch.Generator().manual_seed(0)
    grads = torch.randn(B, sum(SIZES), generator=g)
    off = layer_offsets(SIZES)
    masks = {name: torch.rand(B, generator=g) < f for name, f in FRACS.items()}
    report = benchutil.Report("s_grad_reduce", "S-space gradient reduction vs eager torch",
                              benchutil.pytest_command(__file__))
    per_device = {}
    for device in DEVICES:
        gd, md = grads.to(device), {n: m.to(device) for n, m in masks.items()}
        for name, m in md.items():
            ours = s_grad_reduce(gd, off, m, K)
            _check(type(ours)(*(t.cpu() for t in ours)), s_grad_reduce_reference(grads, off, masks[name], K),
                   torch.float32)
        per_device[device] = (gd, off, md)
    yield per_device
    lines = [f"s_grad_reduce, B=1000, 1024 layout (9088 channels), k=3, float32, "
             f"{torch.get_num_threads()} torch threads"
             + (f", GPU: {torch.cuda.get_device_name()}" if "cuda" in DEVICES else ""), "",
             "| device | mask | positives | eager ms | ours ms | speed-up |", "| --- | --- | --- | --- | --- | --- |"]
    for device in DEVICES:
        for name in FRACS:
            r = RESULTS.get((device, name), {})
            if "eager" in r and "ours" in r:
                lines.append(f"| {device} | {name} | {int(masks[name].sum())} | {r['eager'] * 1e3:.3f} | "
                             f"{r['ours'] * 1e3:.3f} | {r['eager'] / r['ours']:.1f}x |")
    print("\n\n" + "\n".join(lines))
    report.add("\n".join(lines))
    report.write()


IMPLS = {"ours": s_grad_reduce, "eager": s_grad_reduce_eager}


@pytest.mark.parametrize("impl", list(IMPLS))
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("mask_name", list(FRACS))
def test_s_grad_reduce(benchmark, data, device, mask_name, impl):
    grads, off, masks = data[device]
    benchmark.group = f"{device}-{mask_name}"
    fn = _timed(lambda: IMPLS[impl](grads, off, masks[mask_name], K), device)
    benchmark.pedantic(fn, rounds=ROUNDS, warmup_rounds=2)
    RESULTS.setdefault((device, mask_name), {})[impl] = benchmark.stats.stats.median
