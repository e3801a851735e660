"""Atomic file output: a reader never sees a half-written file, and a failed write keeps the old one.

A symlink at the output path is followed: its target is replaced and the link stays. Device nodes, FIFOs
and sockets are refused (an atomic rename would replace the node itself with a regular file).
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from netprobe.errors import NetprobeError


def _target(path) -> Path:
    """`path` as a Path, a symlink replaced by what it points at; one line for names no file can have."""
    text = os.fspath(path)
    if not text or "\0" in text:
        raise NetprobeError(f"cannot write {text!r}: {'an empty name' if not text else 'the name contains a NUL byte'}")
    path = Path(text)
    try:
        limit = os.pathconf(path.parent, "PC_NAME_MAX")
    except (OSError, ValueError):
        limit = 255
    if len(os.fsencode(path.name)) > limit:
        raise NetprobeError(f"cannot write {path.name[:40]}...: the file name is longer than {limit} bytes")
    if path.is_symlink():
        path = Path(os.path.realpath(path))
    return path


def check_writable(path) -> Path:
    """Raise a one-line error unless `path` names a regular file that can be created in a writable directory."""
    path = _target(path)
    parent = path.parent if str(path.parent) else Path(".")
    if not path.name or path.is_dir():
        raise NetprobeError(f"cannot write {path}: it is a directory, not a file name")
    if not parent.is_dir():
        raise NetprobeError(f"cannot write {path}: directory {parent} does not exist")
    if path.exists() and not stat.S_ISREG(path.stat().st_mode):
        raise NetprobeError(f"cannot write {path}: it is a device, FIFO or socket, not a regular file")
    if not os.access(parent, os.W_OK):
        raise NetprobeError(f"cannot write {path}: directory {parent} is not writable")
    try:  # a probe catches what access() cannot see (read-only mounts, /proc, /sys)
        fd, probe = tempfile.mkstemp(prefix=".netprobe.", suffix=".tmp", dir=parent)
    except OSError as exc:
        raise NetprobeError(f"cannot write {path}: {exc.strerror or exc}") from None
    os.close(fd)
    os.unlink(probe)
    return path


def _mode_for(path: Path) -> int:
    """The mode a plain open() would give: the existing file's, else 0o666 less the umask."""
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except OSError:
        umask = os.umask(0o022)
        os.umask(umask)
        return 0o666 & ~umask


def write_atomic(path, data: str | bytes) -> Path:
    """Write `data` to `path` through a temporary file in the same directory and an atomic rename."""
    path = check_writable(path)
    mode = "wb" if isinstance(data, bytes) else "w"
    # mkstemp creates 0600 files; short prefix so the temporary name fits whenever the final one does
    fd, tmp = tempfile.mkstemp(prefix=".np.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, _mode_for(path))
        with os.fdopen(fd, mode, **({} if mode == "wb" else {"encoding": "utf-8", "newline": ""})) as f:
            f.write(data)
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise NetprobeError(f"cannot write {path}: {exc.strerror or exc}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_json_table(path, what: str) -> dict:
    """The JSON object in `path` (a settings file or manifest a run wrote); anything else is refused in one line
    naming `what` it should be."""
    import json

    try:
        value = json.loads(Path(path).read_text(encoding="utf-8"))
    except (ValueError, OSError):
        value = None
    if not isinstance(value, dict):
        raise NetprobeError(f"{path} is not {what}")
    return value


def check_outputs(outputs, inputs=()) -> None:
    """Refuse two outputs at one path, and an output at a file the same run reads: `outputs` and `inputs` are
    (flag, path or None) pairs, named in the message."""
    seen: dict[str, str] = {}
    for flag, path in outputs:
        if path is None:
            continue
        real = os.path.realpath(path)
        if real in seen:
            raise NetprobeError(f"{seen[real]} and {flag} both name {path}: give each output its own file")
        seen[real] = flag
    for flag, path in inputs:
        if path is not None and os.path.realpath(path) in seen:
            raise NetprobeError(f"{seen[os.path.realpath(path)]} {path} is this run's input ({flag}): writing it "
                                "would destroy it")
