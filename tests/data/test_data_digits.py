"""scikit-learn's digits spec and CIFAR batches with numpy-scalar labels."""

import pickle

import numpy as np
import pytest

from netprobe.data import load_data


@pytest.mark.parametrize("protocol", [2, 5])
def test_cifar_numpy_scalar_labels(tmp_path, protocol):
    for name in ("data_batch_1", "test_batch"):
        batch = {b"data": np.zeros((3, 3072), dtype=np.uint8), b"labels": [np.int64(i) for i in (7, 0, 9)]}
        (tmp_path / name).write_bytes(pickle.dumps(batch, protocol=protocol))
    d = load_data(f"cifar10:{tmp_path}", (3, 32, 32))
    assert d.train.y.tolist() == [7, 0, 9]


def test_digits_split():
    pytest.importorskip("sklearn")
    d = load_data("digits", (1, 32, 32), seed=0)
    # 1,797 images (scikit-learn's load_digits documentation); 20% per class held out, rounded per class.
    assert len(d.train) + len(d.test) == 1797 and d.num_classes == 10
    assert d.train.x.shape[1:] == (1, 32, 32)
    assert sorted(set(d.test.y.tolist())) == list(range(10))
