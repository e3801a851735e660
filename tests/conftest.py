"""Test-session setup shared by every test module."""

import os

import pytest
import torch

# Under xdist each worker gets one intra-op thread: two workers with two OpenMP threads each on two cores
# oversubscribe them, and a pool waiting on a descheduled thread stalls a step for seconds.
if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)
# The commands' --threads default follows OMP_NUM_THREADS: CliRunner runs keep the test process's thread count.
os.environ.setdefault("OMP_NUM_THREADS", str(torch.get_num_threads()))


@pytest.fixture
def one_thread():
    """One intra-op thread for the test: tiny batches gain nothing from a second, and under `pytest -n 2` two
    threads per worker oversubscribe the 2 cores (every OpenMP barrier waits for a descheduled thread)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
