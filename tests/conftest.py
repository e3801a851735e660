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


def pytest_collection_modifyitems(config, items):
    """Skip the tests marked `cuda` (pyproject.toml) where torch sees no CUDA device: CI stays CPU-only."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA (run on a GPU machine: benchmarks/device_check.py)")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def one_thread():
    """One intra-op thread for the test: tiny batches gain nothing from a second, and under `pytest -n 2` two
    threads per worker oversubscribe the 2 cores (every OpenMP barrier waits for a descheduled thread)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """A residual and a plain resnet20 of width 2 (seed 0), saved as `netprobe train` saves them, on the sample
    CIFAR batches (fixtures/cifar10_sample)."""
    from netprobe.train import save_checkpoint
    from netprobe.zoo import load

    folder = tmp_path_factory.mktemp("ckpt")
    paths = {}
    for variant in ("residual", "plain"):
        options = {"plain": True} if variant == "plain" else {}
        torch.manual_seed(0)
        meta = {"model": "resnet20", "options": {"width": 2, **options}, "data": "cifar10:fixtures/cifar10_sample",
                "seed": 0}
        paths[variant] = str(save_checkpoint(folder / f"{variant}.pt", load("resnet20", width=2, **options), meta))
    return paths


@pytest.fixture
def images(tmp_path):
    """folder:PATH data of 2 classes x 10 random 8x8 images (16 train, 4 test): far cheaper than synthetic."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for label in ("a", "b"):
        (tmp_path / "img" / label).mkdir(parents=True)
        for i in range(10):
            Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(tmp_path / "img" / label / f"{i}.png")
    return f"folder:{tmp_path / 'img'}"
