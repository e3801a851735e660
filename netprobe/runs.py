"""Run folders, one module for every resumable command (landscape, hessian, depth, train): the settings manifest
and one wording for a changed setting, the point logs of a grid and the state file of an iterative run; rank 0
writes them under torchrun (`netprobe.ranks`).
"""

from __future__ import annotations

import io
import json
import os
import time
from pathlib import Path

import torch

from netprobe.errors import NetprobeError
from netprobe.ranks import barrier, is_main, world


def json_safe(value):
    """`value` as it reads back from JSON (tuples as lists; a value JSON cannot hold, such as a set, as its repr)."""
    return json.loads(json.dumps(value, default=repr))


def changed(before: dict, now: dict) -> str | None:
    """Words for the first setting that differs between a recorded run and this one (one missing counts), or None."""
    def said(settings, k):
        return f"{k}={settings[k]!r}" if k in settings else f"no {k}"

    for k in [*now, *(k for k in before if k not in now)]:
        if (k in before) != (k in now) or before.get(k) != now.get(k):
            return f"it holds a run with {said(before, k)}, this one has {said(now, k)}"
    return None


def make_folder(out: Path) -> Path:
    """Create the run folder `out` (and its parents) or say in one line why it cannot be."""
    if out.exists() and not out.is_dir():
        raise NetprobeError(f"{out} exists and is not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise NetprobeError(f"cannot create {out}: {exc.strerror}") from None
    return out


def check_manifest(path: Path, settings: dict, what: str) -> None:
    """Refuse to resume from `path` (a JSON manifest of `what`) when it records other `settings`."""
    from netprobe.files import read_json_table

    before = read_json_table(path, f"{what} (delete it to start afresh)")
    change = changed(before, settings)
    if change:
        raise NetprobeError(f"cannot resume in {path.parent}: {change} (use another directory, or start afresh)")


def write_manifest(path: Path, settings: dict, indent: int = 1) -> None:
    """Write the settings manifest atomically, on rank 0 only (after every rank has read the old one)."""
    from netprobe.files import write_atomic

    barrier()
    if is_main():
        write_atomic(path, json.dumps(settings, indent=indent, sort_keys=True) + "\n")


# --- point logs of a grid ---

class PointLog:
    """Append-only record of finished grid points, one CSV line each, flushed and fsynced as it is written.

    Floats are written with `repr`, which reads back to the identical float, so a resumed run rebuilds the
    exact values. A line cut short by a kill is dropped when the log is reopened.
    """

    HEADER = "index,x,y,loss,accuracy\n"

    def __init__(self, path):
        self.path = Path(path)
        self._file = None

    def read(self, coords: list[tuple[float, ...]]) -> dict[int, tuple[float, float]]:
        """{index: (loss, accuracy)} of the complete lines; raises if a line belongs to another grid."""
        if not self.path.exists():
            return {}
        done = {}
        try:
            lines = self.path.read_text(encoding="utf-8").split("\n")
            for line in lines[1:-1]:  # header first; the last piece has no newline (empty, or cut short)
                index, a, b, loss, acc = line.split(",")
                i = int(index)
                if not 0 <= i < len(coords) or (tuple(coords[i]) + (0.0,))[:2] != (float(a), float(b)):
                    raise NetprobeError(f"{self.path} holds point {i} at ({a}, {b}), not on this grid: "
                                        "rerun without --resume or in a new directory")
                done[i] = (float(loss), float(acc))
        except NetprobeError:
            raise
        except (ValueError, UnicodeDecodeError):
            raise NetprobeError(f"{self.path} is not a point log of this run (a line is not 'index,x,y,loss,"
                                "accuracy'): rerun without --resume or in a new directory") from None
        return done

    def append(self, index: int, coords: tuple[float, ...], loss: float, accuracy: float) -> None:
        """Record one finished point durably."""
        if self._file is None:
            self._open()
        a, b = (tuple(coords) + (0.0,))[:2]
        self._file.write(f"{index},{a!r},{b!r},{loss!r},{accuracy!r}\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def _open(self) -> None:
        if self.path.exists():
            data = self.path.read_bytes()
            keep = data.rfind(b"\n") + 1
            if keep < len(data):  # a partial last line from a kill
                with open(self.path, "r+b") as f:
                    f.truncate(keep)
        fresh = not self.path.exists() or self.path.stat().st_size == 0
        self._file = open(self.path, "a", encoding="utf-8", newline="")
        if fresh:
            self._file.write(self.HEADER)

    def close(self) -> None:
        """Close the file (it stays on disk until `remove`)."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def remove(self) -> None:
        """Close and delete the log (after the final table is safely written)."""
        self.close()
        self.path.unlink(missing_ok=True)


def log_path(directory, name: str, rank: int) -> Path:
    """Where rank `rank` logs the finished points of the surface `name`."""
    return Path(directory) / f".{name}.partial.{rank}.csv"


def open_log(directory, name: str, coords: list[tuple[float, ...]], *,
             resume: bool) -> tuple[dict[int, tuple[float, float]], PointLog]:
    """(points already finished, this rank's log) for the surface `name` in `directory`.

    With `resume`, the logs of all ranks of earlier runs are read (so the rank count may change between
    runs); without, rank 0 deletes them first.
    """
    rank, size = world()
    if not resume and rank == 0:
        clear_logs(directory, name)
    if size > 1:
        import torch.distributed as dist

        dist.barrier()  # no rank writes before rank 0 has cleared, nor reads while it clears
    done = {}
    if resume:
        for path in sorted(Path(directory).glob(f".{name}.partial.*.csv")):
            done.update(PointLog(path).read(coords))
    return done, PointLog(log_path(directory, name, rank))


def clear_logs(directory, name: str) -> None:
    """Delete every rank's point log of the surface `name` (once the final table is written)."""
    for path in Path(directory).glob(f".{name}.partial.*.csv"):
        path.unlink(missing_ok=True)


# --- the state file of an iterative run ---

class Progress:
    """Finished pieces by key, and the iteration state of the one running; saved atomically to `path`.

    `resume` continues from `path` (refusing one made with other `settings`, or whose pieces `check(finished,
    running, settings)` finds malformed: it returns words for the problem); otherwise a fresh start. The running
    state is written at most every `every` seconds, a finished piece at once. `path` None: kept in memory.
    """

    def __init__(self, path, settings: dict, resume: bool = False, every: float = 10.0,
                 what: str = "a Hessian run's state", check=None):
        self.path = None if path is None else Path(path)
        self.settings, self.every, self._last = dict(settings), every, 0.0
        self.finished, self.running = {}, {}
        if resume and self.path is not None and self.path.exists():
            try:
                saved = torch.load(self.path, map_location="cpu", weights_only=True)
            except Exception as exc:  # noqa: BLE001 - any failure to unpickle foreign bytes means 'not our state'
                raise NetprobeError(f"cannot resume from {self.path}: not {what} "
                                    f"({type(exc).__name__}); delete it to start afresh") from None
            if not (isinstance(saved, dict) and all(isinstance(saved.get(k), dict)
                                                    for k in ("settings", "finished", "running"))):
                raise NetprobeError(f"cannot resume from {self.path}: not {what} (settings, "
                                    "finished and running pieces); delete it to start afresh")
            change = changed(saved["settings"], self.settings)
            if change:
                raise NetprobeError(f"cannot resume in {self.path.parent}: {change}")
            problem = check(saved["finished"], saved["running"], self.settings) if check else None
            if problem:
                raise NetprobeError(f"cannot resume from {self.path}: {problem}; delete it to start afresh")
            self.finished, self.running = saved["finished"], saved["running"]

    def get(self, key: str):
        """The finished piece `key`, or None."""
        return self.finished.get(key)

    def state(self, key: str) -> dict | None:
        """The iteration state saved for the unfinished piece `key`, or None."""
        return self.running.get(key)

    def saver(self, key: str):
        """A callback storing piece `key`'s latest iteration state (written at most every `every` seconds)."""
        def save(state: dict) -> None:
            self.running = {key: state}
            if time.monotonic() - self._last >= self.every:
                self._write()
        return save

    def finish(self, key: str, value=None) -> None:
        """Record piece `key` as finished with `value` (default: its latest iteration state) and write."""
        self.finished[key] = self.running.get(key) if value is None else value
        self.running = {}
        self._write()

    def _write(self) -> None:
        from netprobe.files import write_atomic

        if self.path is None or not is_main():  # under torchrun every rank holds the same state: rank 0 writes it
            return
        buf = io.BytesIO()
        torch.save({"settings": self.settings, "finished": self.finished, "running": self.running}, buf)
        write_atomic(self.path, buf.getvalue())
        self._last = time.monotonic()
