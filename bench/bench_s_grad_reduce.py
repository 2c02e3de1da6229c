"""S-gradient reduction benchmark (issue 7): ``fe_fast.ops.s_grad_reduce`` (C++/OpenMP) against the
equivalent eager torch code (per-layer slicing, abs, mean, topk; ``s_grad_reduce_eager``).

Layout: 1024-resolution S space (26 layers, 512 x 15, 256 x 3, 128 x 3, 64 x 3, 32 x 2 = 9088
channels, thesis Table 6-2), B = 1000 per-sample gradients (float32), k = 3. Masks: ``all`` (the
region detector, eq. 6-2: every sample counts), ``half`` and ``pos4pct`` (about 40 positives of 1000,
the attribute detector of §6.3.2). Outputs are checked against the reference before timing.

Run (not in CI):  .venv/bin/python -m pytest bench/bench_s_grad_reduce.py -p no:xdist --benchmark-only -s
The speed-up table (medians from the same run) is printed at the end.
"""
from __future__ import annotations

import pytest
import torch

from fe_fast.ops.reference.s_grad_reduce import s_grad_reduce_eager, s_grad_reduce_reference
from fe_fast.ops.s_grad_reduce import layer_offsets, s_grad_reduce

SIZES = [512] * 15 + [256] * 3 + [128] * 3 + [64] * 3 + [32] * 2
B, K = 1000, 3
FRACS = {"all": 1.0, "half": 0.5, "pos4pct": 0.04}
RESULTS: dict = {}


@pytest.fixture(scope="module")
def data():
    g = torch.Generator().manual_seed(0)
    grads = torch.randn(B, sum(SIZES), generator=g)
    off = layer_offsets(SIZES)
    masks = {name: torch.rand(B, generator=g) < f for name, f in FRACS.items()}
    for m in masks.values():
        ours = s_grad_reduce(grads, off, m, K)
        ref = s_grad_reduce_reference(grads, off, m, K)
        torch.testing.assert_close(ours.mean, ref[0], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(ours.layer, ref[2], rtol=1e-5, atol=1e-6)
        assert torch.equal(ours.topk_idx, ref[3])
    yield grads, off, masks
    print("\n\ns_grad_reduce, B=1000, 1024 layout (9088 channels), k=3, float32, "
          f"{torch.get_num_threads()} torch threads")
    print(f"{'mask':<9} {'positives':>9} {'eager ms':>9} {'ours ms':>9} {'speed-up':>9}")
    for name in FRACS:
        r = RESULTS.get(name, {})
        if "eager" in r and "ours" in r:
            print(f"{name:<9} {int(masks[name].sum()):>9} {r['eager'] * 1e3:>9.2f} {r['ours'] * 1e3:>9.2f} "
                  f"{r['eager'] / r['ours']:>8.1f}x")


@pytest.mark.parametrize("mask_name", list(FRACS))
def test_ours(benchmark, data, mask_name):
    grads, off, masks = data
    benchmark.group = mask_name
    benchmark.pedantic(lambda: s_grad_reduce(grads, off, masks[mask_name], K), rounds=20, warmup_rounds=2)
    RESULTS.setdefault(mask_name, {})["ours"] = benchmark.stats.stats.median


@pytest.mark.parametrize("mask_name", list(FRACS))
def test_eager(benchmark, data, mask_name):
    grads, off, masks = data
    benchmark.group = mask_name
    benchmark.pedantic(lambda: s_grad_reduce_eager(grads, off, masks[mask_name], K), rounds=20, warmup_rounds=2)
    RESULTS.setdefault(mask_name, {})["eager"] = benchmark.stats.stats.median
