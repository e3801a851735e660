"""Image folders: one sub-folder per class; `train/` and `test/` sub-folders are the split when present.

Without them, a seeded 80/20 split is drawn per class (every class keeps at least one training image).
Images are read with Pillow (installed with matplotlib) as RGB and must all have one size; they are
converted to the model's input afterwards, like the other sources.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from netprobe.errors import NetprobeError

EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".ppm", ".pgm", ".tif", ".tiff", ".webp"}
TEST_FRACTION = 0.2


def _classes(root: Path) -> dict[str, list[Path]]:
    """Class name -> sorted image files, for the sub-folders of `root` in sorted order."""
    classes = {}
    try:
        for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            files = sorted(p for p in sub.iterdir() if p.is_file() and p.suffix.lower() in EXTENSIONS)
            if files:
                classes[sub.name] = files
    except OSError as exc:  # unreadable sub-folders (/proc, permissions)
        raise NetprobeError(f"folder: cannot list {exc.filename or root}: {exc.strerror or exc}") from None
    if not classes:
        raise NetprobeError(f"folder: {root} has no class sub-folders with images ({', '.join(sorted(EXTENSIONS))})")
    return classes


def _read(files: list[Path], size: list) -> torch.Tensor:
    """Images as float (N, 3, H, W) in [0, 1]; `size` holds the first image's (path, size) to compare with."""
    from PIL import Image, UnidentifiedImageError

    images = []
    for path in files:
        try:
            with Image.open(path) as img:
                rgb = np.asarray(img.convert("RGB"))
        except (UnidentifiedImageError, OSError, Image.DecompressionBombError, ValueError) as exc:
            raise NetprobeError(f"folder: cannot read image {path} ({exc})") from None
        if not size:
            size.append((path, rgb.shape[:2]))
        elif rgb.shape[:2] != size[0][1]:
            first, (h, w) = size[0]
            raise NetprobeError(f"folder: images of mixed sizes: {path} is {rgb.shape[1]}x{rgb.shape[0]}, "
                                f"{first} is {w}x{h}")
        images.append(rgb)
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float().div_(255)


def read_folder(root, seed: int = 0):
    """(train, test, num_classes) from an image folder; images float in [0, 1], (N, 3, H, W)."""
    root = Path(root)
    if not root.is_dir():
        raise NetprobeError(f"folder: {root} is not a directory")
    size: list = []
    if (root / "train").is_dir() and (root / "test").is_dir():
        train, test = _classes(root / "train"), _classes(root / "test")
        unknown = sorted(set(test) - set(train))
        if unknown:
            raise NetprobeError(f"folder: {root / 'test'} has classes not in train/: {', '.join(unknown)}")
    else:
        train, test = {}, {}
        g = torch.Generator().manual_seed(seed)
        for name, files in _classes(root).items():
            order = torch.randperm(len(files), generator=g).tolist()
            n_test = min(round(TEST_FRACTION * len(files)), len(files) - 1)
            test[name] = sorted(files[i] for i in order[:n_test])
            train[name] = sorted(files[i] for i in order[n_test:])
    if not any(test.values()):
        raise NetprobeError(f"folder: {root} has too few images for a test split (give a class 5 or more, "
                            "or train/ and test/ sub-folders)")
    index = {name: i for i, name in enumerate(train)}
    splits = []
    for split in (train, test):
        files = [f for name in split for f in split[name]]
        labels = torch.tensor([index[name] for name in split for _ in split[name]], dtype=torch.int64)
        splits.append((_read(files, size), labels))
    return splits[0], splits[1], len(index)
