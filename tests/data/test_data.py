"""Data sets: the synthetic set, the CIFAR batch loader (on the fixture sample), image folders, bad specs."""

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from netprobe.data import Dataset, load_data
from netprobe.data.synthetic import NUM_CLASSES, sizes
from netprobe.errors import NetprobeError
from helpers import FIXTURE_DIR as FIXTURE



def _check_normalised(d: Dataset):
    """Train split: per-channel mean 0 and population std 1 (up to float32 rounding)."""
    x = d.train.x.double()
    assert torch.allclose(x.mean(dim=(0, 2, 3)), torch.zeros(x.shape[1], dtype=torch.float64), atol=1e-5)
    assert torch.allclose(x.std(dim=(0, 2, 3), correction=0), torch.ones(x.shape[1], dtype=torch.float64),
                          atol=1e-4)


@pytest.fixture(scope="module")
def synthetic():
    return load_data("synthetic", (3, 32, 32), seed=0)


def test_synthetic_shapes_and_types(synthetic):
    d = synthetic
    assert d.spec == "synthetic" and d.num_classes == NUM_CLASSES == 10
    assert d.train.x.shape == (5000, 3, 32, 32) and d.test.x.shape == (1000, 3, 32, 32)
    for split in (d.train, d.test):
        assert split.x.dtype == torch.float32 and split.x.is_contiguous() and split.x.device.type == "cpu"
        assert split.y.dtype == torch.int64 and split.y.shape == (len(split.x),)
        assert torch.equal(split.y.bincount(minlength=10), torch.full((10,), len(split.y) // 10))  # balanced
    _check_normalised(d)
    assert len(d.mean) == len(d.std) == 3


def test_synthetic_depends_only_on_seed(synthetic):
    again = load_data("synthetic", (3, 32, 32), seed=0)
    assert torch.equal(again.train.x, synthetic.train.x) and torch.equal(again.test.y, synthetic.test.y)
    other = load_data("synthetic", (3, 32, 32), seed=1)
    assert not torch.equal(other.train.x, synthetic.train.x)
    assert not torch.equal(synthetic.train.x[:1000], synthetic.test.x)  # separate streams for the splits


def test_synthetic_class_is_not_the_mean_colour(synthetic):
    # A nearest-class-mean classifier on the images' mean colours is near chance (10%): the class lives in
    # the motif's pattern and place, which is what makes the set a test of a CNN rather than of a colour.
    d = synthetic
    colour = d.train.x.mean(dim=(2, 3))
    centres = torch.stack([colour[d.train.y == c].mean(0) for c in range(10)])
    predicted = torch.cdist(d.test.x.mean(dim=(2, 3)), centres).argmin(1)
    assert (predicted == d.test.y).double().mean() < 0.3


def test_synthetic_grey_and_large_sizes():
    grey = load_data("synthetic", (1, 32, 32))
    assert grey.train.x.shape == (5000, 1, 32, 32) and len(grey.mean) == 1
    _check_normalised(grey)
    big = load_data("synthetic", (3, 96, 96))
    assert sizes(96, 96) == (500, 100)
    assert big.train.x.shape == (500, 3, 96, 96) and big.test.x.shape == (100, 3, 96, 96)


def _raw(name):
    """Read one fixture batch with plain pickle (our own trusted file) as float64 in [0, 1] and labels."""
    batch = pickle.loads((FIXTURE / name).read_bytes())
    return batch[b"data"].reshape(-1, 3, 32, 32).astype(np.float64) / 255, np.array(batch[b"labels"])


def test_cifar_fixture_loader():
    d = load_data(f"cifar10:{FIXTURE}", (3, 32, 32))
    assert d.num_classes == 10
    assert d.train.x.shape == (40, 3, 32, 32) and d.test.x.shape == (10, 3, 32, 32)
    # The fixture script writes 2 images per class, in class order, in each of the two train batches.
    assert d.train.y.tolist() == [c for c in range(10) for _ in range(2)] * 2
    assert d.test.y.tolist() == list(range(10))
    (x1, _), (x2, _), (xt, _) = _raw("data_batch_1"), _raw("data_batch_2"), _raw("test_batch")
    train = np.concatenate([x1, x2])
    mean, std = train.mean(axis=(0, 2, 3)), train.std(axis=(0, 2, 3))  # statistics of the train split only
    assert np.allclose(d.mean, mean, atol=1e-6) and np.allclose(d.std, std, atol=1e-6)
    expected = (xt - mean[None, :, None, None]) / std[None, :, None, None]
    assert np.allclose(d.test.x.numpy(), expected, atol=1e-5)
    _check_normalised(d)


def test_cifar_fixture_converted_to_model_input():
    d = load_data(f"cifar10:{FIXTURE}", (1, 16, 16))
    assert d.train.x.shape == (40, 1, 16, 16) and d.test.x.shape == (10, 1, 16, 16)
    _check_normalised(d)


def _write(path, obj, protocol=2):
    path.write_bytes(pickle.dumps(obj, protocol=protocol))


def _cifar_dir(tmp_path, scheme="cifar10", n=4, protocol=2, label_key=b"labels", classes=10):
    rng = np.random.default_rng(0)
    names = ("data_batch_1", "test_batch") if scheme == "cifar10" else ("train", "test")
    for name in names:
        _write(tmp_path / name, {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                                 label_key: [i % classes for i in range(n)]}, protocol)
    return tmp_path


@pytest.mark.parametrize("protocol", [2, 5])
def test_cifar_pickle_protocols(tmp_path, protocol):
    d = load_data(f"cifar10:{_cifar_dir(tmp_path, protocol=protocol)}", (3, 32, 32))
    assert d.train.x.shape == (4, 3, 32, 32) and d.train.y.tolist() == [0, 1, 2, 3]


def test_cifar100(tmp_path):
    d = load_data(f"cifar100:{_cifar_dir(tmp_path, 'cifar100', n=6, label_key=b'fine_labels', classes=100)}",
                  (3, 32, 32))
    assert d.num_classes == 100 and d.test.y.tolist() == [0, 1, 2, 3, 4, 5]


class _Evil:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return os.mkdir, (self.target,)


def test_cifar_unpickler_refuses_code(tmp_path):
    target = tmp_path / "pwned"
    _cifar_dir(tmp_path)
    _write(tmp_path / "test_batch", {b"data": _Evil(str(target)), b"labels": []})
    with pytest.raises(NetprobeError, match="refusing to load global"):
        load_data(f"cifar10:{tmp_path}", (3, 32, 32))
    assert not target.exists()


@pytest.mark.parametrize("damage, message", [
    (lambda p: p.write_bytes(p.read_bytes()[:1000]), "not a CIFAR batch file"),
    (lambda p: p.write_bytes(b"not a pickle at all"), "not a CIFAR batch file"),
    (lambda p: _write(p, [1, 2, 3]), "not a dict"),
    (lambda p: _write(p, {b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}), "N x 3072"),
    (lambda p: _write(p, {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}), "one label per image"),
    (lambda p: _write(p, {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]}), "outside 0..9"),
])
def test_cifar_corrupt_batches(tmp_path, damage, message):
    _cifar_dir(tmp_path)
    damage(tmp_path / "data_batch_1")
    with pytest.raises(NetprobeError, match=message):
        load_data(f"cifar10:{tmp_path}", (3, 32, 32))


@pytest.mark.parametrize("spec, message", [
    ("imagenet:/data", "unknown data spec 'imagenet:/data'"),
    ("synthetic:x", "unknown data spec"),
    ("", "unknown data spec"),
    ("cifar10", "needs a path"),
    ("folder:", "needs a path"),
    ("cifar10:/nonexistent/cifar", "is not a directory"),
    ("folder:/nonexistent/images", "is not a directory"),
])
def test_bad_specs(spec, message):
    with pytest.raises(NetprobeError, match=message):
        load_data(spec, (3, 32, 32))


def test_cifar_dir_without_batches(tmp_path):
    with pytest.raises(NetprobeError, match="lacks the python batch files"):
        load_data(f"cifar10:{tmp_path}", (3, 32, 32))


def _images(root: Path, counts: dict, size=(8, 6), mode="RGB"):
    from PIL import Image

    rng = np.random.default_rng(1)
    for name, n in counts.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
            Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(root / name / f"{i}.png")


def test_folder_seeded_split(tmp_path):
    _images(tmp_path, {"cat": 5, "dog": 10})
    d = load_data(f"folder:{tmp_path}", (3, 12, 16), seed=3)
    assert d.num_classes == 2
    # 20% of each class to test: 1 of 5 cats, 2 of 10 dogs.
    assert d.test.y.tolist() == [0, 1, 1] and d.train.y.tolist() == [0] * 4 + [1] * 8
    assert d.train.x.shape == (12, 3, 12, 16)
    _check_normalised(d)
    again = load_data(f"folder:{tmp_path}", (3, 12, 16), seed=3)
    assert torch.equal(again.test.x, d.test.x)
    other = [load_data(f"folder:{tmp_path}", (3, 12, 16), seed=s).test.x for s in range(4, 8)]
    assert any(not torch.equal(x, d.test.x) for x in other)  # the split follows the seed


def test_folder_train_test_subfolders_and_grey(tmp_path):
    _images(tmp_path / "train", {"a": 3, "b": 2}, mode="L")
    _images(tmp_path / "test", {"a": 1, "b": 1}, mode="L")
    d = load_data(f"folder:{tmp_path}", (1, 6, 8))
    assert d.train.y.tolist() == [0, 0, 0, 1, 1] and d.test.y.tolist() == [0, 1]
    assert d.train.x.shape == (5, 1, 6, 8)


def test_folder_bad_inputs(tmp_path):
    _images(tmp_path / "mixed", {"a": 3})
    _images(tmp_path / "mixed", {"b": 3}, size=(9, 9))
    with pytest.raises(NetprobeError, match="mixed sizes"):
        load_data(f"folder:{tmp_path / 'mixed'}", (3, 8, 8))
    (tmp_path / "empty" / "a").mkdir(parents=True)
    with pytest.raises(NetprobeError, match="no class sub-folders with images"):
        load_data(f"folder:{tmp_path / 'empty'}", (3, 8, 8))
    _images(tmp_path / "broken", {"a": 5})
    (tmp_path / "broken" / "a" / "3.png").write_bytes(b"not a png")
    with pytest.raises(NetprobeError, match="cannot read image"):
        load_data(f"folder:{tmp_path / 'broken'}", (3, 8, 8))


def test_normalisation_override():
    d = load_data(f"cifar10:{FIXTURE}", (3, 32, 32), mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    assert d.mean == (0.5, 0.5, 0.5) and d.std == (0.25, 0.25, 0.25)
    raw, _ = _raw("test_batch")
    assert np.allclose(d.test.x.numpy(), (raw - 0.5) / 0.25, atol=1e-5)
    with pytest.raises(NetprobeError, match="positive stds"):
        load_data(f"cifar10:{FIXTURE}", (3, 32, 32), std=(1.0, 0.0, 1.0))
