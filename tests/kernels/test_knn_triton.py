"""The Triton knn launcher (kernels/knn.py) under TRITON_INTERPRET=1 on CPU tensors, against a
brute-force torch reference at small sizes (the interpreter is slow). Contract: csrc/knn.h."""
import importlib.util
import os

os.environ["TRITON_INTERPRET"] = "1"  # before anything imports triton

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

if importlib.util.find_spec("triton") is None:
    pytest.skip(
        "triton is not installed (pip install 'fe-fast[gpu]' or triton): Triton knn tests not run",
        allow_module_level=True,
    )

from fe_fast.kernels.knn import knn_triton  # noqa: E402
from knn_checks import check_nn, check_sel, make  # noqa: E402

SMALL = dict(block_n=16, block_m=16, select_block=16)  # several blocks at N, M <= 64
FAST = dict(SMALL, radix_bits=8)  # fewer selection passes: the interpreter pays per pass


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("D", [2, 3])
@pytest.mark.parametrize("shared", [False, True], ids=["batched_y", "shared_y"])
def test_nn_and_selection_ragged(dtype, D, shared):
    gen = torch.Generator().manual_seed(1000 * D + 10 * shared + (dtype == torch.float64))
    B, N, M = 3, 41, 37  # partial last tiles
    x, y, x_len, y_len = make(B, N, M, D, dtype, shared, gen, x_len=[41, 17, 0])
    k = torch.tensor([9, 17, 3])  # k == x_len and k > x_len (0) included
    idx, dist2, sel = knn_triton(x, y, x_len, y_len, k, **FAST)
    check_nn(x, y, x_len, y_len, idx, dist2)
    check_sel(dist2, x_len, k, sel)


def test_no_selection_and_inputs_untouched():
    gen = torch.Generator().manual_seed(7)
    x, y, x_len, y_len = make(2, 20, 30, 3, torch.float32, False, gen, nan_padding=False)
    before = (x.clone(), y.clone(), x_len.clone(), y_len.clone())
    idx, dist2, sel = knn_triton(x, y, x_len, y_len, None, **SMALL)
    assert sel is None
    check_nn(x, y, x_len, y_len, idx, dist2)
    for a, b in zip(before, (x, y, x_len, y_len)):
        assert torch.equal(a, b)


def test_default_tiles():
    gen = torch.Generator().manual_seed(3)
    x, y, x_len, y_len = make(2, 64, 64, 3, torch.float32, False, gen, x_len=[64, 50], y_len=[64, 33])
    k = torch.tensor([32, 5])
    idx, dist2, sel = knn_triton(x, y, x_len, y_len, k)
    check_nn(x, y, x_len, y_len, idx, dist2)
    check_sel(dist2, x_len, k, sel)


@pytest.mark.parametrize(
    "dtype, radix_bits", [(torch.float32, 4), (torch.float64, 8)], ids=["f32-radix4", "f64-radix8"]
)
def test_ties_duplicate_points(dtype, radix_bits):
    """Integer grids: many equal nearest-neighbour distances and many equal dist2 at the selection
    threshold; duplicate reference points make exactly equal candidates."""
    gen = torch.Generator().manual_seed(11 + radix_bits)
    B, N, M, D = 2, 48, 40, 3
    x = torch.randint(0, 3, (B, N, D), generator=gen).to(dtype)
    y = torch.randint(0, 3, (B, M // 2, D), generator=gen).to(dtype).repeat(1, 2, 1)  # duplicates
    x[:, N // 2:] = x[:, : N // 2]  # duplicate queries: equal dist2
    x_len = torch.tensor([48, 31])
    y_len = torch.tensor([40, 25])
    for kk in ([1, 7], [24, 2], [47, 0]):
        k = torch.tensor(kk)
        idx, dist2, sel = knn_triton(x, y, x_len, y_len, k, radix_bits=radix_bits, **SMALL)
        check_nn(x, y, x_len, y_len, idx, dist2)
        check_sel(dist2, x_len, k, sel)


def test_all_equal_distances():
    x = torch.zeros(1, 20, 2)
    y = torch.ones(5, 2)  # shared, all identical points
    x_len, y_len, k = torch.tensor([20]), torch.tensor([5]), torch.tensor([7])
    idx, dist2, sel = knn_triton(x, y, x_len, y_len, k, **FAST)
    assert (idx == 0).all() and (dist2 == 2).all()
    assert sel[0, :7].all() and not sel[0, 7:].any()


@settings(max_examples=6, deadline=None)
@given(
    B=st.integers(1, 3), N=st.integers(1, 40), M=st.integers(1, 40), D=st.sampled_from([2, 3]),
    f64=st.booleans(), shared=st.booleans(), seed=st.integers(0, 2**31 - 1),
)
def test_random_shapes(B, N, M, D, f64, shared, seed):
    dtype = torch.float64 if f64 else torch.float32
    gen = torch.Generator().manual_seed(seed)
    x, y, x_len, y_len = make(B, N, M, D, dtype, shared, gen)
    k = torch.randint(-1, N + 2, (B,), generator=gen)
    idx, dist2, sel = knn_triton(x, y, x_len, y_len, k, **FAST)
    check_nn(x, y, x_len, y_len, idx, dist2)
    check_sel(dist2, x_len, k, sel)


_COMPILE = r'''
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from fe_fast.kernels import knn as K

# One variant of each kernel (the compile-only failure modes do not depend on dtype or D).
sig = {"x_ptr": "*fp32", "y_ptr": "*fp32", "x_len_ptr": "*i64", "y_len_ptr": "*i64",
       "idx_ptr": "*i64", "dist_ptr": "*fp32", "N": "i32", "M": "i32", "y_batch_stride": "i32",
       "D": "constexpr", "BLOCK_N": "constexpr", "BLOCK_M": "constexpr"}
src = ASTSource(K._knn_kernel, sig, constexprs={"D": 3, "BLOCK_N": 64, "BLOCK_M": 64})
triton.compile(src, target=GPUTarget("cuda", 90, 32), options={"num_warps": 8})
sig = {"dist_ptr": "*fp64", "x_len_ptr": "*i64", "k_ptr": "*i64", "sel_ptr": "*u8", "N": "i32",
       "KEY_BITS": "constexpr", "RADIX_BITS": "constexpr", "BLOCK": "constexpr"}
src = ASTSource(K._select_kernel, sig, constexprs={"KEY_BITS": 64, "RADIX_BITS": 4, "BLOCK": 1024})
triton.compile(src, target=GPUTarget("cuda", 80, 32), options={"num_warps": 8})
print("compiled")
'''


def test_kernels_compile_for_gpu():
    """The interpreter accepts code the compiler rejects (loop-carried type changes, constexpr
    re-assignment): compile both kernels for sm_90 / sm_80 without a GPU, in a fresh process
    (the interpreter patches triton.language in this one)."""
    import subprocess
    import sys

    env = dict(os.environ, TRITON_INTERPRET="0", TRITON_DEFAULT_FP_FUSION="1")
    r = subprocess.run([sys.executable, "-c", _COMPILE], env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0 and "compiled" in r.stdout, r.stderr[-3000:]
