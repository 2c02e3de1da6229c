"""The CUDA knn module fe_fast._C_cuda: built where the build enables CUDA, importable, and its
``knn`` binding takes the documented arguments (csrc/knn_cuda.h, python/cuda/bind_knn_cuda.cpp).
Running the kernel needs a CUDA device; without one only the argument checks that fail before any
CUDA call are exercised."""
import os
import re
import shutil
from pathlib import Path

import pytest
import torch

from knn_checks import check_nn, check_sel, make

KNN_ARGS = ["x", "y", "x_len", "y_len", "k", "idx", "dist2", "sel", "stream"]


def _cuda_expected():
    """Mirror of setup.py's rule: FE_FAST_CUDA forces on/off, else on when nvcc is found."""
    flag = os.environ.get("FE_FAST_CUDA")
    if flag is not None:
        return flag not in ("0", "", "off", "OFF", "false")
    return shutil.which("nvcc") is not None or Path("/usr/local/cuda/bin/nvcc").exists()


def _module():
    try:
        from fe_fast import _C_cuda
    except ImportError as exc:
        if _cuda_expected():
            raise AssertionError(f"nvcc is present, so fe_fast._C_cuda should be built: {exc}") from exc
        pytest.skip("fe_fast._C_cuda is not built (no nvcc at install time): CUDA knn checks not run")
    return _C_cuda


def test_module_exposes_knn_with_documented_arguments():
    mod = _module()
    assert callable(mod.knn)
    sig = mod.knn.__doc__.splitlines()[0]
    names = re.findall(r"(\w+):", sig[sig.index("(") + 1: sig.rindex(")")])
    assert names == KNN_ARGS, sig
    assert isinstance(mod.device_count(), int)


def test_argument_errors_before_any_cuda_call():
    """Arguments that are not CUDA DLPack capsules are refused before any CUDA call."""
    mod = _module()
    x = torch.zeros(1, 4, 3)
    with pytest.raises(ValueError, match="DLPack capsule"):
        mod.knn(0, 0, 0, 0, None, 0, 0, None, 0)  # bare addresses are no longer accepted
    caps = [t.__dlpack__() for t in (x, x[0], torch.ones(1, dtype=torch.int64),
                                      torch.ones(1, dtype=torch.int64))]
    with pytest.raises(ValueError, match="x must be a CUDA tensor"):
        mod.knn(*caps, None, torch.zeros(1, 4, dtype=torch.int64).__dlpack__(),
                torch.zeros(1, 4).__dlpack__(), None, 0)


def test_ext_loader_returns_the_module():
    mod = _module()
    from fe_fast import _ext

    assert _ext.cuda() is mod


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("D", [2, 3])
@pytest.mark.parametrize("shared", [False, True], ids=["batched_y", "shared_y"])
def test_run_small(dtype, D, shared):
    _module()
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device: the CUDA knn kernel is compiled here but cannot run")
    from fe_fast.ops._knn_cuda import knn_cuda

    gen = torch.Generator().manual_seed(5 + D + 10 * shared)
    x, y, x_len, y_len = make(3, 41, 37, D, dtype, shared, gen, x_len=[41, 17, 0])
    k = torch.tensor([9, 17, 3])
    dev = [t.cuda() for t in (x, y, x_len, y_len, k)]
    idx, dist2, sel = knn_cuda(*dev[:4], dev[4])
    torch.cuda.synchronize()
    check_nn(x, y, x_len, y_len, idx, dist2, exact_ties=False)  # FMA: near-ties may differ
    check_sel(dist2, x_len, k, sel)
    idx2, dist22, none = knn_cuda(*dev[:4], None)
    assert none is None and torch.equal(idx2, idx) and torch.equal(dist22, dist2)
