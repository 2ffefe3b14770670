"""Test-wide settings."""

import os

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """One intra-op thread for the whole suite, in this process and in the figkd processes the tests
    start (``OMP_NUM_THREADS``, which they inherit): its tensors are small, and on a busy two-core machine
    a second OpenMP thread only adds spin-wait stalls (measured here: 14 ms instead of 5 us for one
    tiny conv2d; a resnet8 step 10x slower with two threads under load than with one). Under the load
    of three busy loops, subprocesses with two threads ran past their 600 s limits."""
    threads = torch.get_num_threads()
    env = os.environ.get("OMP_NUM_THREADS")
    torch.set_num_threads(1)
    os.environ["OMP_NUM_THREADS"] = "1"
    yield
    torch.set_num_threads(threads)
    if env is None:
        os.environ.pop("OMP_NUM_THREADS", None)
    else:
        os.environ["OMP_NUM_THREADS"] = env
