"""Worker processes that die with their parent, and folder locks a killed run's leftovers cannot dodge.

Kept free of torch so a spawned worker reaches `die_with` within its interpreter's start-up.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from pathlib import Path

from netprobe.errors import NetprobeError


def die_with(parent: int) -> None:
    """End this process when process `parent` dies, so a killed run leaves no workers behind: the kernel's
    parent-death signal on Linux, else a thread that watches the parent id."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    else:
        import threading

        def watch():
            while os.getppid() == parent:
                time.sleep(1)
            os._exit(1)

        threading.Thread(target=watch, daemon=True).start()
    if os.getppid() != parent:  # it died before the request took hold
        os._exit(1)


def share(folder) -> int:
    """A descriptor of `folder` holding a shared flock: no `claim(alone=True)` succeeds while it is open."""
    import fcntl

    fd = os.open(folder, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_SH)
    return fd


@contextlib.contextmanager
def claim(folder, alone: bool, what: str = "working"):
    """Hold a share of `folder`'s lock while this run works in it; `alone` first takes it exclusively, refusing a
    folder where another process is `what` (a second run, or the surviving workers of a killed one)."""
    import fcntl

    fd = os.open(folder, os.O_RDONLY)
    try:
        if alone:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                raise NetprobeError(f"another process is {what} in {folder} (a run still going, or what is left "
                                    "of a killed one): wait for it to end or stop it, then rerun") from None
        fcntl.flock(fd, fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)


def held(path: Path) -> bool:
    """Whether a live process holds a flock on `path` (False when there is no such file)."""
    import fcntl

    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except OSError:
        return True
    finally:
        os.close(fd)


_HELD: list[int] = []  # a worker's shares of its folders' locks, open until the worker ends


def worker_init(parent: int, folder: str, threads: int) -> None:
    """A spawned worker's start: die with `parent`, share the lock of `folder`, use `threads` torch threads."""
    die_with(parent)
    _HELD.append(share(folder))
    import torch

    torch.set_num_threads(threads)
