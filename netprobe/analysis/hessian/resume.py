"""The checkpoint of a Hessian run: its settings, the pieces finished (per variant: each scope's eigenvalues, the
trace, each Lanczos run) and the running piece's iteration state, in one file loadable with weights_only=True.
"""

from __future__ import annotations

import io
import time
from pathlib import Path

import torch

from netprobe.errors import NetprobeError

STATE = ".hessian-state.pt"


class Progress:
    """Finished pieces by key, and the iteration state of the one running; saved atomically to `path`.

    `resume` continues from `path` (refusing one made with other `settings`); otherwise a fresh start. The
    running state is written at most every `every` seconds, a finished piece at once. `path` None: kept in memory.
    """

    def __init__(self, path, settings: dict, resume: bool = False, every: float = 10.0):
        self.path = None if path is None else Path(path)
        self.settings, self.every, self._last = dict(settings), every, 0.0
        self.finished, self.running = {}, {}
        if resume and self.path is not None and self.path.exists():
            from netprobe.analysis.hessian.state import check_state
            from netprobe.analysis.surfaces.study import changed

            try:
                saved = torch.load(self.path, map_location="cpu", weights_only=True)
            except Exception as exc:  # noqa: BLE001 - any failure to unpickle foreign bytes means 'not our state'
                raise NetprobeError(f"cannot resume from {self.path}: not a Hessian run's state "
                                    f"({type(exc).__name__}); delete it to start afresh") from None
            if not (isinstance(saved, dict) and all(isinstance(saved.get(k), dict)
                                                    for k in ("settings", "finished", "running"))):
                raise NetprobeError(f"cannot resume from {self.path}: not a Hessian run's state (settings, "
                                    "finished and running pieces); delete it to start afresh")
            change = changed(saved["settings"], self.settings)
            if change:
                raise NetprobeError(f"cannot resume in {self.path.parent}: {change}")
            problem = check_state(saved["finished"], saved["running"], self.settings)
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

        if self.path is None:
            return
        buf = io.BytesIO()
        torch.save({"settings": self.settings, "finished": self.finished, "running": self.running}, buf)
        write_atomic(self.path, buf.getvalue())
        self._last = time.monotonic()
