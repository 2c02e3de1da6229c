"""Test-wide setup. Triton kernels are tested on the CPU through the interpreter, so switch it on
before anything imports triton (``make test`` sets it too)."""
import os

os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch intra-op thread for a module of tiny-network tests (faster than two, and far faster
    on a loaded 2-core CI machine); the previous count is restored after the module."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
