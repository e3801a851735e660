"""Data sets for training and analyses: the embedded synthetic set, scikit-learn's digits, CIFAR batches, folders.

`load_data(spec, input_size, seed)` returns a `Dataset` whose splits are float32 tensors already converted
to the model's (C, H, W) and normalised with the training split's per-channel mean and std.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from netprobe.errors import NetprobeError

__all__ = ["Dataset", "SCHEMES", "Split", "load_data"]

SCHEMES = ("synthetic", "digits", "cifar10:PATH", "cifar100:PATH", "folder:PATH")


@dataclass
class Split:
    """One split: images `x` (N, C, H, W) float32, normalised, contiguous, on CPU; labels `y` (N,) int64."""

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return len(self.y)


@dataclass
class Dataset:
    """A data set ready for a model: both splits, the class count and the normalisation applied."""

    spec: str
    train: Split
    test: Split
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]


def load_data(spec: str, input_size: tuple[int, int, int], seed: int = 0, *,
              mean: tuple[float, ...] | None = None, std: tuple[float, ...] | None = None) -> Dataset:
    """Load `spec` converted to `input_size` (C, H, W), normalised with the train split's (or the given) mean/std."""
    from netprobe.data.convert import convert, normalise

    scheme, _, path = (spec or "").partition(":")
    if len(input_size) != 3 or any(int(d) <= 0 for d in input_size):
        raise NetprobeError(f"input size must be (C, H, W) with positive sizes, got {tuple(input_size)}")
    size = tuple(int(d) for d in input_size)
    if scheme == "synthetic" and not path:
        from netprobe.data.synthetic import NUM_CLASSES, generate

        (xtr, ytr), (xte, yte) = generate(size, seed)
        num_classes = NUM_CLASSES
    elif scheme == "digits" and not path:
        from netprobe.data.digits import read_digits

        (xtr, ytr), (xte, yte), num_classes = read_digits(seed)
    elif scheme in ("cifar10", "cifar100") and path:
        from netprobe.data.cifar import read_cifar

        (xtr, ytr), (xte, yte), num_classes = read_cifar(scheme, path)
    elif scheme == "folder" and path:
        from netprobe.data.folder import read_folder

        (xtr, ytr), (xte, yte), num_classes = read_folder(path, seed)
    else:
        if scheme in ("cifar10", "cifar100", "folder"):
            raise NetprobeError(f"data spec {spec!r} needs a path: {scheme}:PATH")
        raise NetprobeError(f"unknown data spec {spec!r} (expected one of: {', '.join(SCHEMES)})")
    xtr, xte = convert(xtr, size), convert(xte, size)
    (xtr, xte), stats = normalise(xtr, xte, mean=mean, std=std)
    return Dataset(spec, Split(xtr, ytr), Split(xte, yte), num_classes, *stats)
