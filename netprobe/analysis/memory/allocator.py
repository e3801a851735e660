"""A model of PyTorch's CUDA caching allocator, replayed over the allocations of a traced step.

The rules are those of `c10/cuda/CUDACachingAllocator.cpp` (pytorch/pytorch, `round_size`,
`get_allocation_size`, `get_free_block`, `should_split`, `free_block`/`try_merge_blocks`), default settings:
- every request is rounded up to a multiple of 512 bytes (kMinBlockSize), at least 512;
- requests up to 1 MiB (kSmallSize) come from the small pool, packed into 2 MiB segments (kSmallBuffer);
  larger ones from the large pool: under 10 MiB (kMinLargeAlloc) a 20 MiB segment (kLargeBuffer), from
  10 MiB the request rounded up to 2 MiB (kRoundLarge);
- a free block is found best-fit (smallest size, then lowest address) in the request's pool, and split when
  the rest is at least 512 bytes (small pool) or more than 1 MiB (large pool); an unsplit block counts whole;
- a freed block merges with its free neighbours in the same segment; segments are never returned
  (no empty_cache), so reserved memory only grows.
Not modelled: cuDNN/cuBLAS workspaces (they go through this allocator on a GPU: the expected difference),
several streams, expandable segments, max_split_size, garbage collection thresholds.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

K_MIN_BLOCK = 512
K_SMALL_SIZE = 1 << 20
K_SMALL_BUFFER = 2 << 20
K_LARGE_BUFFER = 20 << 20
K_MIN_LARGE_ALLOC = 10 << 20
K_ROUND_LARGE = 2 << 20


def round_size(n: int) -> int:
    """The block size a request of `n` bytes takes: a multiple of 512, at least 512."""
    return K_MIN_BLOCK * max(1, -(-n // K_MIN_BLOCK))


def allocation_size(size: int) -> int:
    """The segment cudaMalloc'ed for a rounded request that no cached block fits."""
    if size <= K_SMALL_SIZE:
        return K_SMALL_BUFFER
    if size < K_MIN_LARGE_ALLOC:
        return K_LARGE_BUFFER
    return K_ROUND_LARGE * -(-size // K_ROUND_LARGE)


@dataclass(frozen=True)
class Peaks:
    """Peak bytes the allocator hands out (max_memory_allocated) and holds (max_memory_reserved)."""

    allocated: int
    reserved: int
    allocated_at: int  # event index where allocated peaked (an operator index of the timeline)


class CachingAllocator:
    """Two pools of free blocks over segments; blocks are (address, size), addresses never reused across
    segments, so neighbours in one segment are the only ones that merge."""

    def __init__(self):
        self.free = {True: [], False: []}  # small pool? -> sorted [(size, address)]
        self.blocks: dict[int, list] = {}  # address -> [size, segment, is_free, small]
        self.ends: dict[int, int] = {}  # end address -> start address, for the left neighbour
        self.segments: dict[int, tuple[int, int]] = {}  # segment -> (start, end)
        self.top = 0
        self.allocated = self.reserved = 0

    def malloc(self, n: int) -> int:
        """Hand out a block for `n` bytes; returns its address."""
        size = round_size(n)
        small = size <= K_SMALL_SIZE
        pool = self.free[small]
        i = bisect.bisect_left(pool, (size, -1))
        if i < len(pool):
            block_size, address = pool.pop(i)
            self.blocks[address][2] = False
        else:
            block_size, address = allocation_size(size), self.top
            segment = len(self.segments)
            self.segments[segment] = (address, address + block_size)
            self.top += block_size + K_SMALL_BUFFER  # a gap: blocks of two segments are never neighbours
            self.reserved += block_size
            self._add(address, block_size, segment, False, small)
        rest = block_size - size
        if rest >= K_MIN_BLOCK if small else rest > K_SMALL_SIZE:
            segment = self.blocks[address][1]
            self._add(address, size, segment, False, small)
            self._add(address + size, rest, segment, True, small)
            block_size = size
        self.allocated += block_size
        return address

    def release(self, address: int) -> None:
        """Return a block to its pool, merged with free neighbours of its segment."""
        size, segment, _, small = self.blocks[address]
        self.allocated -= size
        start, end = address, address + size
        right = self.blocks.get(end)
        if right and right[2] and right[1] == segment:
            self._take(end)
            end += right[0]
        left = self.ends.get(start)
        if left is not None and self.blocks[left][2] and self.blocks[left][1] == segment:
            self._take(left)
            start = left
        self.blocks.pop(address, None)
        self.ends.pop(address + size, None)
        self._add(start, end - start, segment, True, small)

    def _add(self, address, size, segment, free, small):
        self.blocks[address] = [size, segment, free, small]
        self.ends[address + size] = address
        if free:
            bisect.insort(self.free[small], (size, address))

    def _take(self, address):
        size, _, _, small = self.blocks.pop(address)
        self.ends.pop(address + size, None)
        self.free[small].remove((size, address))


def simulate(sizes, events) -> Peaks:
    """Replay (operator index, key) events (key >= 0 allocates sizes[key], -key - 1 releases it)."""
    allocator = CachingAllocator()
    where: dict[int, int] = {}
    peak = reserved = 0
    at = -1
    for index, key in events:
        if key >= 0:
            where[key] = allocator.malloc(int(sizes[key]))
            if allocator.allocated > peak:
                peak, at = allocator.allocated, index
            reserved = max(reserved, allocator.reserved)
        else:
            allocator.release(where.pop(-key - 1))
    return Peaks(peak, reserved, at)
