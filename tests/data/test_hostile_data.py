"""Hostile data: malformed CIFAR labels, unreadable folders and decompression bombs are one-line errors."""

import pickle

import numpy as np
import pytest

from netprobe.data.cifar import read_batch
from netprobe.data.folder import read_folder
from netprobe.errors import NetprobeError


@pytest.mark.parametrize("labels", [["a", "b"], [1.5, 2.0], [[1], [2]], [1], "ab", [2**70, 1], [True, False],
                                    np.array([1.0, 2.0])])
def test_malformed_cifar_labels(tmp_path, labels):
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({"data": np.zeros((2, 3072), np.uint8), "labels": labels}))
    with pytest.raises(NetprobeError, match="one label per image, as integers"):
        read_batch(path, "labels")


def test_good_cifar_labels(tmp_path):
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({"data": np.zeros((2, 3072), np.uint8), "labels": [3, 7]}))
    assert read_batch(path, "labels")[1].tolist() == [3, 7]


def test_unlistable_folder():
    with pytest.raises(NetprobeError):
        read_folder("/proc")


def test_decompression_bomb(tmp_path, monkeypatch):
    from PIL import Image

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # a 300-pixel image is then a "bomb" (> 2x the limit)
    for cls in ("a", "b"):
        (tmp_path / cls).mkdir()
        for i in range(5):
            Image.new("RGB", (20, 15)).save(tmp_path / cls / f"{i}.png")
    with pytest.raises(NetprobeError, match="cannot read image"):
        read_folder(tmp_path)
