"""Atomic file output: a reader never sees a half-written file, and a failed write keeps the old one."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from netprobe.errors import NetprobeError


def check_writable(path) -> Path:
    """Raise a one-line error unless `path`'s directory exists and is writable."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise NetprobeError(f"cannot write {path}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise NetprobeError(f"cannot write {path}: directory {parent} is not writable")
    return path


def write_atomic(path, data: str | bytes) -> Path:
    """Write `data` to `path` through a temporary file in the same directory and an atomic rename."""
    path = check_writable(path)
    mode = "wb" if isinstance(data, bytes) else "w"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, **({} if mode == "wb" else {"encoding": "utf-8", "newline": ""})) as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
