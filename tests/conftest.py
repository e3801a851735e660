"""Test-session setup shared by every test module."""

import os

import torch

# Under xdist each worker gets one intra-op thread: two workers with two OpenMP threads each on two cores
# oversubscribe them, and a pool waiting on a descheduled thread stalls a step for seconds.
if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)
