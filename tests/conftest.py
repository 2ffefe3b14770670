"""Test-wide settings."""

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """One intra-op thread for the whole suite: its tensors are small, and on a busy two-core machine
    a second OpenMP thread only adds spin-wait stalls (measured here: 14 ms instead of 5 us for one
    tiny conv2d; a resnet8 step 10x slower with two threads under load than with one)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
