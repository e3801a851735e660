"""scikit-learn's handwritten digits (UCI optdigits test set): 1,797 real 8x8 grey images, 10 classes.

The data ships inside scikit-learn (`sklearn/datasets/data/digits.csv.gz`: 64 pixel values 0..16 and the
label per row), so nothing is downloaded; the file is read directly, without importing scikit-learn.
Install it with `pip install 'netprobe[digits]'`. A seeded 80/20 split is drawn per class, like folders.
"""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import numpy as np
import torch

from netprobe.errors import NetprobeError

NUM_CLASSES = 10
TEST_FRACTION = 0.2


def digits_file() -> Path:
    """The CSV file scikit-learn ships; NetprobeError when scikit-learn is not installed."""
    spec = importlib.util.find_spec("sklearn")
    path = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "digits.csv.gz" if spec else None
    if path is None or not path.is_file():
        raise NetprobeError("data spec 'digits' needs scikit-learn: pip install 'netprobe[digits]' "
                            "(or scikit-learn)")
    return path


def read_digits(seed: int = 0):
    """(train, test, num_classes): images float (N, 1, 8, 8) in [0, 1], labels int64, split per class by `seed`."""
    with gzip.open(digits_file(), "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.float32)
    x = torch.from_numpy(table[:, :64].reshape(-1, 1, 8, 8) / 16)
    y = torch.from_numpy(table[:, 64].astype(np.int64))
    g = torch.Generator().manual_seed(seed)
    train, test = [], []
    for label in range(NUM_CLASSES):
        members = torch.nonzero(y == label).flatten()
        members = members[torch.randperm(len(members), generator=g)]
        n_test = round(TEST_FRACTION * len(members))
        test.append(members[:n_test])
        train.append(members[n_test:])
    train, test = torch.cat(train).sort().values, torch.cat(test).sort().values
    return (x[train], y[train]), (x[test], y[test]), NUM_CLASSES
