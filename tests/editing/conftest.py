"""The editing tests run a tiny generator (16x16, 16 channels): one torch thread is faster than
two for such small convolutions, and much faster on a loaded CI machine. Restored after each module."""
import pytest
import torch


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
