"""torchrun ranks: the process group (nccl on CUDA, gloo on the CPU), who is who, work shared out and gathered
back, and a watchdog.

Outside torchrun (no WORLD_SIZE above 1) every helper is a no-op for one process, so the analyses call them
unconditionally. Work is shared round-robin (`share`) and results are gathered and put back in the
one-process order, then added up (if at all) as one process adds them: an all-reduce would sum in another
order and change the last bits, so a run under torchrun would not write the same CSV as one process. The
watchdog beats through the rendezvous store: a rank that fails, is killed or stops answering for `PATIENCE`
seconds makes every other rank exit with one line (without it, a rank waiting for another one's results or
in a collective waits forever).
"""

from __future__ import annotations

import itertools
import os
import sys
import threading
import time
from contextlib import contextmanager
from datetime import timedelta

import torch

from netprobe.errors import NetprobeError

BEAT = 2.0  # seconds between heartbeats
PATIENCE = 30.0  # a rank silent this long is taken for dead: a minute at most between its death and the others'
GRACE = 1.0  # seconds a rank whose store vanished waits for its own stop (the normal end of the rank hosting it)
# Collectives may wait as long as a rank needs for its share (a depth pair trains for hours): the watchdog, not a
# collective's timeout, ends a run whose rank died.
COLLECTIVE_TIMEOUT = timedelta(days=7)
_GROUPS = itertools.count()  # one key space per process group opened in this process (same count on every rank)


def world() -> tuple[int, int]:
    """(rank, world size) of the initialised default process group, or (0, 1) without one."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main() -> bool:
    """Whether this process is rank 0 (the one that writes), or the only one."""
    return world()[0] == 0


def share_state(model) -> None:
    """Give every rank rank 0's parameters and buffers (nothing without a process group)."""
    import torch.distributed as dist

    if world()[1] > 1:
        state = [model.state_dict() if dist.get_rank() == 0 else None]
        dist.broadcast_object_list(state, src=0)
        model.load_state_dict(state[0])


def share(items: list, what: str) -> list:
    """This rank's round-robin share of `items` (the i-th item goes to rank i mod world); more ranks than items
    is refused (`check_world`)."""
    rank, size = world()
    check_world(size, len(items), what)
    return items[rank::size]


def check_world(size: int, count: int, what: str) -> None:
    """Refuse in one line `size` ranks for `count` work items: a rank with nothing to do would only hold the
    others up."""
    if size > count:
        raise NetprobeError(f"torchrun started {size} ranks for {count} {what}: start at most {count} "
                            "(--nproc-per-node)")


def barrier() -> None:
    """Wait for every rank (nothing without a process group)."""
    import torch.distributed as dist

    if world()[1] > 1:
        dist.barrier()


def gather_objects(obj) -> list:
    """Every rank's `obj`, by rank ([obj] without a process group)."""
    import torch.distributed as dist

    size = world()[1]
    if size == 1:
        return [obj]
    out = [None] * size
    dist.all_gather_object(out, obj)
    return out


def in_order(mine: list, count: int) -> list:
    """The `count` items shared out by `share`, put back in their order from every rank's `mine` (picklable)."""
    parts = gather_objects(mine)
    return [parts[i % len(parts)][i // len(parts)] for i in range(count)]


def gather_tensors(mine: list[torch.Tensor], count: int, like: torch.Tensor) -> list[torch.Tensor]:
    """The `count` tensors (each shaped like `like`) shared out by `share`, from every rank, in their order:
    one all_gather, so the caller can add them up in the one-process order (the same bits)."""
    import torch.distributed as dist

    size = world()[1]
    if size == 1:
        return list(mine)
    slots = -(-count // size)
    block = torch.zeros((slots, *like.shape), dtype=like.dtype, device=like.device)
    for j, t in enumerate(mine):
        block[j] = t
    blocks = [torch.empty_like(block) for _ in range(size)]
    dist.all_gather(blocks, block)
    return [blocks[i % size][i // size] for i in range(count)]


@contextmanager
def process_group(device="cpu"):
    """Under torchrun (WORLD_SIZE > 1), one process group for the block (nccl on CUDA, gloo on the CPU) with its
    watchdog; yields the resolved device (`devices.resolve`). Without torchrun, or with a group already open, it
    only resolves the device."""
    import torch.distributed as dist

    from netprobe.devices import resolve

    dev = resolve(device)
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        yield dev
        return
    # nccl bound to this rank's GPU at once (its collectives then never guess the device)
    dist.init_process_group("nccl" if dev.type == "cuda" else "gloo", timeout=COLLECTIVE_TIMEOUT,
                            device_id=dev if dev.type == "cuda" else None)
    rank, size = world()
    dog = Watchdog(dist.PrefixStore(f"netprobe-{next(_GROUPS)}/", dist.distributed_c10d._get_default_store()),
                   rank, size)
    dog.start()
    try:
        yield dev
        dist.barrier()  # no rank leaves while another still needs the group (rank 0 may host the store)
        dog.stop("done")
    except BaseException as exc:
        if isinstance(exc, RuntimeError):
            # A collective that broke (gloo's "connection reset") most often means a peer died: give the
            # watchdog the time to say which, in one line, before this rank reports an error of its own.
            dog.join(PATIENCE + 2 * BEAT + GRACE)
        dog.stop("failed", _first_line(exc))
        raise
    finally:
        dist.destroy_process_group()


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{lines[0] if lines else type(exc).__name__}"[:200]


class Watchdog(threading.Thread):
    """Beats for this rank through `store` every `BEAT` seconds and watches the other ranks' beats: one that
    failed, or fell silent for `PATIENCE` seconds, ends this process with one line on stderr (exit 1)."""

    def __init__(self, store, rank: int, size: int):
        super().__init__(daemon=True, name="netprobe-watchdog")
        self.store, self.rank, self.size = store, rank, size
        self.stopping = threading.Event()
        self.seen = {r: (None, time.monotonic()) for r in range(size) if r != rank}

    def run(self) -> None:
        beats = 0
        while not self.stopping.wait(BEAT):
            beats += 1
            try:
                self.store.set(f"beat/{self.rank}", str(beats))
                problem = self.check()
            except Exception:  # noqa: BLE001 - the store went with the rank (or agent) that hosted it
                problem = "the rendezvous store is gone (rank 0 or torchrun's agent ended)"
            # A store gone at the very end is the normal exit of the rank hosting it: give this rank's own
            # stop a moment to arrive first.
            if problem and not self.stopping.wait(GRACE):
                sys.stderr.write(f"Error: rank {self.rank}: {problem}; this rank stops too (files already "
                                 "written are kept)\n")
                sys.stderr.flush()
                os._exit(1)

    def check(self) -> str | None:
        """Words for the first other rank that failed or fell silent, or None."""
        now = time.monotonic()
        for r, (last, since) in list(self.seen.items()):
            if self.store.check([f"failed/{r}"]):
                return f"rank {r} failed ({self.store.get(f'failed/{r}').decode(errors='replace')})"
            if self.store.check([f"done/{r}"]):
                del self.seen[r]
                continue
            beat = self.store.get(f"beat/{r}") if self.store.check([f"beat/{r}"]) else None
            if beat != last:
                self.seen[r] = (beat, now)
            elif now - since > PATIENCE:
                return f"rank {r} has not answered for {PATIENCE:.0f} s (killed, or out of memory)"
        return None

    def stop(self, how: str, message: str = "") -> None:
        """Tell the other ranks this one is `how` ('done' or 'failed', with `message`) and stop watching."""
        self.stopping.set()
        try:
            self.store.set(f"{how}/{self.rank}", message or how)
        except Exception:  # noqa: BLE001 - nobody left to tell
            pass
