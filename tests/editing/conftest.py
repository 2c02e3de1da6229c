"""The editing tests run a tiny generator (16x16, 16 channels): one torch thread is faster than
two for such small convolutions, and much faster on a loaded CI machine. Restored after each module.
Shared fixtures: ``G`` (the planted generator of planted.py) and ``clf`` (its centred classifier),
one of each per test module."""
import pytest
import torch

from planted import PlantedGenerator, centred_classifier, tiny_generator


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread(one_torch_thread):
    yield


@pytest.fixture(scope="module")
def G():
    return PlantedGenerator(tiny_generator())


@pytest.fixture(scope="module")
def clf(G):
    return centred_classifier(G, 48)
