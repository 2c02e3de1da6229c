"""StyleGAN tests run with one intra-op thread: the networks here are tiny, and on the shared
2-core CI machine OpenMP oversubscription made each small op ~100x slower. Restored afterwards."""
import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(prev)
