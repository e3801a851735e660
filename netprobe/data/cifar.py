"""CIFAR-10/100 in the python batch format, read with a restricted unpickler.

CIFAR-10: `data_batch_1`..`data_batch_5` (train) and `test_batch`; CIFAR-100: `train` and `test`. Each file
is a pickled dict with `data` (uint8 array, N x 3072, channel-major 32x32 RGB) and `labels` (CIFAR-10) or
`fine_labels` (CIFAR-100). A pickle can run arbitrary code, so only the globals a numpy array needs are
allowed; anything else is refused before it is called.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import numpy as np
import torch

from netprobe.errors import NetprobeError

LAYOUT = {  # scheme -> (train file pattern, test file, label key, classes)
    "cifar10": (r"data_batch_\d+", "test_batch", "labels", 10),
    "cifar100": (r"train", "test", "fine_labels", 100),
}

# numpy array reconstruction, under numpy 1.x and 2.x module names and both pickle protocols' paths.
_ALLOWED = {
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    # numpy scalars (labels written by numpy code) are rebuilt from a dtype and raw bytes: no code runs.
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
}


def _latin1(text: str, encoding: str) -> bytes:
    # Python 3 writes bytes into protocol-2 pickles as _codecs.encode(text, "latin1"); nothing else is needed.
    if encoding != "latin1":
        raise pickle.UnpicklingError(f"refusing _codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


class _Unpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) == ("_codecs", "encode"):
            return _latin1
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")
        return super().find_class(module, name)


def read_batch(path: Path, label_key: str):
    """(images uint8 (N, 3, 32, 32), labels int64 (N,)) from one batch file; a bad file raises NetprobeError."""
    try:
        with open(path, "rb") as f:
            batch = _Unpickler(f, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError,
            IndexError, KeyError, MemoryError) as exc:
        raise NetprobeError(f"{path} is not a CIFAR batch file ({exc})") from None
    if not isinstance(batch, dict):
        raise NetprobeError(f"{path} is not a CIFAR batch file (a {type(batch).__name__}, not a dict)")
    batch = {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}
    data, labels = batch.get("data"), batch.get(label_key)
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        shape = getattr(data, "shape", None)
        raise NetprobeError(f"{path}: 'data' must be a uint8 array of N x 3072 (32x32 RGB), got {shape}")
    try:  # a list of ints or an integer array; strings, floats, nested or ragged lists are refused
        labels = np.asarray(labels)
    except (ValueError, TypeError):
        labels = None
    if labels is None or labels.dtype.kind not in "iu" or labels.shape != (len(data),):
        raise NetprobeError(f"{path}: '{label_key}' must hold one label per image, as integers")
    return (torch.from_numpy(data.reshape(-1, 3, 32, 32).copy()),
            torch.as_tensor(labels.astype(np.int64)))


def read_cifar(scheme: str, root):
    """(train, test, num_classes) from a CIFAR directory; images float in [0, 1], (N, 3, 32, 32)."""
    pattern, test_name, label_key, classes = LAYOUT[scheme]
    root = Path(root)
    if not root.is_dir():
        raise NetprobeError(f"{scheme}: {root} is not a directory")
    train_files = sorted((p for p in root.iterdir() if re.fullmatch(pattern, p.name)),
                         key=lambda p: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.name)])
    if not train_files or not (root / test_name).is_file():
        names = "data_batch_1..5 and test_batch" if scheme == "cifar10" else "train and test"
        raise NetprobeError(f"{scheme}: {root} lacks the python batch files ({names})")
    splits = []
    for files in (train_files, [root / test_name]):
        parts = [read_batch(p, label_key) for p in files]
        x = torch.cat([p[0] for p in parts])
        y = torch.cat([p[1] for p in parts])
        if len(y) and (int(y.min()) < 0 or int(y.max()) >= classes):
            raise NetprobeError(f"{scheme}: labels in {root} fall outside 0..{classes - 1}")
        splits.append((x.float().div_(255), y))
    return splits[0], splits[1], classes
