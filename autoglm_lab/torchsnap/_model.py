"""`CachingAllocatorModel`: the bookkeeping of PyTorch's CUDA caching allocator, without a device.

What it models (c10/cuda/CUDACachingAllocator.cpp, default settings):

- sizes: requests rounded up to 512 B; <= 1 MiB go to the *small* pool, larger to the *large* pool;
  a new small segment is 2 MiB, a large request under 10 MiB gets a 20 MiB segment, a larger one
  its size rounded up to 2 MiB;
- best fit: the smallest cached free block of the request's pool *and stream* that fits (ties: the
  lowest address); the ``max_split_size`` rules (no oversize block for a small request; an oversize
  request takes a cached block only if it wastes less than 20 MiB);
- splitting: the remainder becomes a free block if it is >= 512 B (small pool, or expandable
  segments) or > 1 MiB (large pool); otherwise the whole block is handed out;
- merging: a freed block merges with free neighbours in its segment, never across segments;
  stream-ordered frees (``free_requested`` now, ``free_completed`` later) keep a block unusable in between;
- growth: a ``cudaMalloc`` of the segment size if the device has room (``capacity``); else
  ``release_cached_blocks`` (pending frees complete, every wholly free segment is ``cudaFree``-d) and
  one retry; else an OOM;
- expandable segments: one segment per pool and stream, grown at its end by mapping 2 MiB (small)
  or 20 MiB (large) granules, shrunk by unmapping whole free granules at its end.

Where it differs from torch: no ``roundup_power2_divisions`` rounding, no
``garbage_collection_threshold``, no ``release_available_cached_blocks`` (the oversize-block release
that runs first when ``max_split_size`` is set), no private pools (CUDA graphs, MemPool), no
``set_per_process_memory_fraction``; expandable segments are unmapped only at their end (torch also
unmaps free pages in the middle); addresses of new segments are invented (a replay of a real trace
uses the trace's own addresses).

Two ways to drive it: *free running* (`malloc`, `free`, ...: the model decides addresses and OOMs;
the synthetic generator uses it, recording the trace torch would write) and *synchronised* with a
real trace (`apply_alloc`, `apply_free_completed`, `apply_segment_alloc`, ...: the trace's addresses
are applied, and the model says where it would have put each allocation, and at each OOM whether
its own rules fail too: `check_oom`).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ._schema import (
    KMIN_BLOCK,
    LARGE_BUFFER,
    SMALL_BUFFER,
    SMALL_SIZE,
    Action,
    allocation_size,
    round_size,
)

__all__ = ["CachingAllocatorModel", "OomCheck"]

_BASE = 0x7F00_0000_0000  # invented addresses of free-running segments start here
_EXPANDABLE_SPAN = 1 << 40  # virtual room reserved per expandable segment


class _Blk:
    __slots__ = ("addr", "allocated", "frames", "next", "pending", "prev", "requested", "seg", "size")

    def __init__(self, addr: int, size: int, seg: _Seg) -> None:
        self.addr = addr
        self.size = size
        self.seg = seg
        self.requested = 0
        self.allocated = False
        self.pending = False
        self.prev: _Blk | None = None
        self.next: _Blk | None = None
        self.frames: Any = None

    @property
    def free(self) -> bool:
        return not self.allocated and not self.pending


class _Seg:
    __slots__ = ("addr", "expandable", "frames", "free_list", "head", "large", "size", "stream")

    def __init__(self, addr: int, size: int, stream: int, large: bool, expandable: bool) -> None:
        self.addr = addr
        self.size = size
        self.stream = stream
        self.large = large
        self.expandable = expandable
        self.head: _Blk | None = None
        self.frames: Any = None
        self.free_list: list[tuple[int, int]] = []  # the model's free list of (large, stream), shared

    @property
    def end(self) -> int:
        return self.addr + self.size

    def blocks(self) -> list[_Blk]:
        out = []
        b = self.head
        while b is not None:
            out.append(b)
            b = b.next
        return out

    def tail(self) -> _Blk | None:
        b = self.head
        while b is not None and b.next is not None:
            b = b.next
        return b


@dataclass(frozen=True)
class OomCheck:
    """What the model's rules say about a request of ``rounded`` bytes in the current state."""

    fails: bool                  # True: torch's rules cannot serve it either (the OOM is reproduced)
    reason: str                  # "cached block", "new segment", "new segment after releasing cache", "oom"
    rounded: int
    segment_bytes: int           # what a new segment (or an expandable growth) would need
    largest_free_block: int      # largest cached free block of the request's pool and stream
    largest_free_block_any: int  # ... of any pool or stream
    free_cached_bytes: int       # reserved but not active (all free blocks)
    releasable_bytes: int        # wholly free segments that release_cached_blocks would give back


class CachingAllocatorModel:
    """A model of PyTorch's caching allocator on one device; see the module docstring.

    capacity: bytes the device lets this process reserve (None: unlimited).
    max_split_size: torch's ``max_split_size_mb`` in bytes (None: unlimited, torch's default).
    expandable_segments: model ``expandable_segments:True``.
    recorder: called as ``recorder(action, addr, size, stream, blk_frames)`` for every trace entry
        torch would record in free-running use (the synthetic generator writes the trace this way).
    """

    def __init__(self, capacity: int | None = None, *, max_split_size: int | None = None,
                 expandable_segments: bool = False,
                 recorder: Callable[[Action, int, int, int, Any], None] | None = None) -> None:
        if capacity is not None and (isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 0):
            raise ValueError(f"capacity={capacity!r} is not allowed: give bytes as an int >= 0, or None")
        if max_split_size is not None and (isinstance(max_split_size, bool) or not isinstance(max_split_size, int)
                                           or max_split_size <= SMALL_SIZE):
            raise ValueError(f"max_split_size={max_split_size!r} is not allowed: None, or bytes > 1 MiB")
        self.capacity = capacity
        self.max_split_size = max_split_size
        self.expandable_segments = expandable_segments
        self.recorder = recorder
        self._segs: dict[int, _Seg] = {}
        self._seg_addrs: list[int] = []              # sorted
        self._blocks: dict[int, _Blk] = {}           # every block by address
        self._free: dict[tuple[bool, int], list[tuple[int, int]]] = {}  # (large, stream) -> sorted (size, addr)
        self._expandable: dict[tuple[bool, int], _Seg] = {}
        self._next_addr = _BASE
        self.reserved = 0
        self.allocated = 0          # bytes of allocated blocks
        self.active = 0             # ... plus pending frees
        self.requested = 0          # requested bytes of active blocks
        self.peak_reserved = 0
        self.peak_active = 0
        self.anomalies: list[str] = []   # synchronised replay: the first trace events the model could not apply
        self.num_anomalies = 0

    def anomaly(self, message: str) -> None:
        self.num_anomalies += 1
        if len(self.anomalies) < 20:
            self.anomalies.append(message)

    # ------------------------------------------------------------------ queries
    @property
    def num_segments(self) -> int:
        return len(self._segs)

    def segments(self) -> list[_Seg]:
        return [self._segs[a] for a in self._seg_addrs]

    def largest_free_block(self, large: bool | None = None, stream: int | None = None) -> int:
        best = 0
        for (lg, st), lst in self._free.items():
            if lst and (large is None or lg == large) and (stream is None or st == stream):
                best = max(best, lst[-1][0])
        return best

    @property
    def free_cached_bytes(self) -> int:
        return self.reserved - self.active

    def releasable_bytes(self) -> int:
        """Bytes ``release_cached_blocks`` would give back now (pending frees not counted)."""
        total = 0
        for seg in self._segs.values():
            h = seg.head
            if seg.expandable:
                t = seg.tail()
                if t is not None and t.free:
                    total += self._unmappable(seg, t)
            elif h is not None and h.next is None and h.free:
                total += seg.size
        return total

    def _unmappable(self, seg: _Seg, tail: _Blk) -> int:
        g = LARGE_BUFFER if seg.large else SMALL_BUFFER
        start = -(-(tail.addr - seg.addr) // g) * g + seg.addr
        return max(0, seg.end - start)

    def block_at(self, addr: int) -> tuple[int, int, bool] | None:
        """(size, requested, allocated) of the block starting at ``addr``, or None."""
        b = self._blocks.get(addr)
        return None if b is None else (b.size, b.requested, b.allocated)

    def pending_at(self, addr: int) -> bool:
        """Whether a block at ``addr`` waits for its stream-ordered free to complete."""
        b = self._blocks.get(addr)
        return b is not None and b.pending

    # ------------------------------------------------------------------ free lists
    def _insert_free(self, b: _Blk) -> None:
        insort(b.seg.free_list, (b.size, b.addr))

    def _remove_free(self, b: _Blk) -> None:
        lst = b.seg.free_list
        del lst[bisect_left(lst, (b.size, b.addr))]

    def _best_fit(self, rounded: int, large: bool, stream: int) -> tuple[int, int] | None:
        lst = self._free.get((large, stream))
        if not lst:
            return None
        i = bisect_left(lst, (rounded, -1))
        if i == len(lst):
            return None
        size, addr = lst[i]
        mss = self.max_split_size
        if mss is not None:
            if rounded < mss <= size:
                return None  # an oversize cached block is not split for a smaller request
            if rounded >= mss and size >= rounded + LARGE_BUFFER:
                return None
        return size, addr

    def _should_split(self, b: _Blk, rounded: int) -> bool:
        remaining = b.size - rounded
        if not b.seg.large or b.seg.expandable:
            return remaining >= KMIN_BLOCK
        return (self.max_split_size is None or rounded < self.max_split_size) and remaining > SMALL_SIZE

    # ------------------------------------------------------------------ segments
    def _add_segment(self, addr: int, size: int, stream: int, large: bool, expandable: bool = False) -> _Seg:
        seg = _Seg(addr, size, stream, large, expandable)
        seg.free_list = self._free.setdefault((large, stream), [])
        self._segs[addr] = seg
        insort(self._seg_addrs, addr)
        if size:
            b = _Blk(addr, size, seg)
            seg.head = b
            self._blocks[addr] = b
            self._insert_free(b)
        self._grow_reserved(size)
        return seg

    def _grow_reserved(self, n: int) -> None:
        self.reserved += n
        if self.reserved > self.peak_reserved:
            self.peak_reserved = self.reserved

    def _drop_segment(self, seg: _Seg) -> None:
        for b in seg.blocks():
            if b.free:
                self._remove_free(b)
            else:  # only a desynchronised replay frees a segment with live blocks
                self._forget(b)
            self._blocks.pop(b.addr, None)
        del self._segs[seg.addr]
        del self._seg_addrs[bisect_left(self._seg_addrs, seg.addr)]
        self.reserved -= seg.size
        if seg.expandable:
            for k, v in list(self._expandable.items()):
                if v is seg:
                    del self._expandable[k]

    def segment_of(self, addr: int) -> _Seg | None:
        i = bisect_right(self._seg_addrs, addr) - 1
        if i < 0:
            return None
        seg = self._segs[self._seg_addrs[i]]
        return seg if addr < seg.end or (seg.size == 0 and addr == seg.addr) else None

    # ------------------------------------------------------------------ allocate / free (shared)
    def _take(self, b: _Blk, rounded: int, requested: int) -> _Blk:
        """Hand out free block ``b`` for ``rounded`` bytes, splitting off the remainder if torch would."""
        self._remove_free(b)
        if self._should_split(b, rounded):
            rest = _Blk(b.addr + rounded, b.size - rounded, b.seg)
            rest.prev, rest.next = b, b.next
            if b.next is not None:
                b.next.prev = rest
            b.next = rest
            b.size = rounded
            self._blocks[rest.addr] = rest
            self._insert_free(rest)
        b.allocated = True
        b.requested = requested
        self.allocated += b.size
        self.active += b.size
        self.requested += requested
        if self.active > self.peak_active:
            self.peak_active = self.active
        return b

    def _request_free(self, b: _Blk) -> None:
        b.allocated = False
        b.pending = True
        self.allocated -= b.size

    def _complete_free(self, b: _Blk) -> None:
        b.pending = False
        self.active -= b.size
        self.requested -= b.requested
        for nb in (b.prev, b.next):
            if nb is not None and not nb.allocated and not nb.pending:
                self._remove_free(nb)
                self._blocks.pop(nb.addr)
                if nb is b.prev:  # merge b into its predecessor
                    nb.size += b.size
                    nb.next = b.next
                    if b.next is not None:
                        b.next.prev = nb
                    self._blocks.pop(b.addr)
                    b = nb
                    self._blocks[b.addr] = b
                else:
                    b.size += nb.size
                    b.next = nb.next
                    if nb.next is not None:
                        nb.next.prev = b
        if b.prev is None:
            b.seg.head = b
        self._insert_free(b)

    # ------------------------------------------------------------------ free running
    def _record(self, action: Action, addr: int, size: int, stream: int, frames: Any = None) -> None:
        if self.recorder is not None:
            self.recorder(action, addr, size, stream, frames)

    def _room(self, nbytes: int) -> bool:
        return self.capacity is None or self.reserved + nbytes <= self.capacity

    def _new_address(self, size: int) -> int:
        addr = self._next_addr
        self._next_addr += -(-size // SMALL_BUFFER) * SMALL_BUFFER + SMALL_BUFFER  # a gap: never adjacent
        return addr

    def _expandable_need(self, rounded: int, large: bool, stream: int) -> tuple[_Seg | None, int]:
        seg = self._expandable.get((large, stream))
        g = LARGE_BUFFER if large else SMALL_BUFFER
        tail = seg.tail() if seg is not None else None
        have = tail.size if tail is not None and tail.free else 0
        return seg, -(-(rounded - have) // g) * g

    def _grow(self, rounded: int, large: bool, stream: int, frames: Any) -> bool:
        """One attempt at new memory for the request: a cudaMalloc, or mapping an expandable segment."""
        if self.expandable_segments:
            seg, need = self._expandable_need(rounded, large, stream)
            if not self._room(need):
                return False
            if seg is None:
                base = self._next_addr
                self._next_addr += _EXPANDABLE_SPAN
                seg = self._add_segment(base, 0, stream, large, expandable=True)
                seg.frames = frames
                self._expandable[(large, stream)] = seg
            self._record(Action.SEGMENT_MAP, seg.end, need, stream, frames)
            self._map(seg, need)
            return True
        size = allocation_size(rounded)
        if not self._room(size):
            return False
        addr = self._new_address(size)
        self._record(Action.SEGMENT_ALLOC, addr, size, stream, frames)
        seg = self._add_segment(addr, size, stream, large)
        seg.frames = frames
        return True

    def _map(self, seg: _Seg, size: int) -> None:
        tail = seg.tail()
        if tail is not None and tail.free:
            self._remove_free(tail)
            tail.size += size
            self._insert_free(tail)
        else:
            b = _Blk(seg.end, size, seg)
            if tail is None:
                seg.head = b
            else:
                tail.next, b.prev = b, tail
            self._blocks[b.addr] = b
            self._insert_free(b)
        seg.size += size
        self._grow_reserved(size)

    def release_cached_blocks(self) -> int:
        """torch's ``release_cached_blocks``: pending frees complete, then every wholly free segment is
        freed (expandable ones: their free granules at the end unmapped). Returns bytes released."""
        for b in [b for b in self._blocks.values() if b.pending]:
            self._record(Action.FREE_COMPLETED, b.addr, b.requested, b.seg.stream, b.frames)
            self._complete_free(b)
        before = self.reserved
        for seg in self.segments():
            if seg.expandable:
                tail = seg.tail()
                if tail is not None and tail.free:
                    n = self._unmappable(seg, tail)
                    if n:
                        self._record(Action.SEGMENT_UNMAP, seg.end - n, n, seg.stream, None)
                        self._unmap_tail(seg, n)
                continue
            h = seg.head
            if h is not None and h.next is None and h.free:
                self._record(Action.SEGMENT_FREE, seg.addr, seg.size, seg.stream, seg.frames)
                self._drop_segment(seg)
        return before - self.reserved

    def _unmap_tail(self, seg: _Seg, n: int) -> None:
        tail = seg.tail()
        assert tail is not None and tail.free and tail.size >= n
        self._remove_free(tail)
        tail.size -= n
        if tail.size:
            self._insert_free(tail)
        else:
            self._blocks.pop(tail.addr)
            if tail.prev is None:
                seg.head = None
            else:
                tail.prev.next = None
        seg.size -= n
        self.reserved -= n

    def empty_cache(self) -> int:
        """``torch.cuda.empty_cache()``; returns bytes released."""
        return self.release_cached_blocks()

    def malloc(self, size: int, stream: int = 0, frames: Any = None) -> int | None:
        """Allocate like torch: returns the block's address, or None after recording an OOM."""
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise ValueError(f"size={size!r} is not allowed: give bytes as an int >= 0")
        rounded = round_size(size)
        large = rounded > SMALL_SIZE
        fit = self._best_fit(rounded, large, stream)
        if fit is None:
            if not (self._grow(rounded, large, stream, frames)
                    or (self.release_cached_blocks() >= 0 and self._grow(rounded, large, stream, frames))):
                free = self.capacity - self.reserved if self.capacity is not None else 0
                self._record(Action.OOM, free, rounded, stream, frames)
                return None
            fit = self._best_fit(rounded, large, stream)
            assert fit is not None, "new memory must fit the request"
        b = self._take(self._blocks[fit[1]], rounded, size)
        b.frames = frames
        self._record(Action.ALLOC, b.addr, size, stream, frames)
        return b.addr

    def free_requested(self, addr: int) -> None:
        """The tensor is gone but a stream still uses its memory: the block waits (``active_pending_free``)."""
        b = self._live(addr, "free_requested")
        self._record(Action.FREE_REQUESTED, addr, b.requested, b.seg.stream, b.frames)
        self._request_free(b)

    def free_completed(self, addr: int) -> None:
        b = self._blocks.get(addr)
        if b is None or not b.pending:
            raise ValueError(f"free_completed({addr:#x}): no block waits to be freed there")
        self._record(Action.FREE_COMPLETED, addr, b.requested, b.seg.stream, b.frames)
        self._complete_free(b)

    def free(self, addr: int) -> None:
        """An ordinary free: requested and completed at once."""
        self.free_requested(addr)
        self.free_completed(addr)

    def _live(self, addr: int, what: str) -> _Blk:
        b = self._blocks.get(addr)
        if b is None or not b.allocated:
            raise ValueError(f"{what}({addr:#x}): no allocated block starts there")
        return b

    # ------------------------------------------------------------------ synchronised with a real trace
    def apply_segment_alloc(self, addr: int, size: int, stream: int, large: bool | None = None) -> None:
        if large is None:
            large = size != SMALL_BUFFER
        if self.segment_of(addr) is not None or self._overlaps(addr, size):
            self.anomaly(f"segment_alloc at {addr:#x} overlaps a segment the model holds")
            return
        self._add_segment(addr, size, stream, large)

    def _overlaps(self, addr: int, size: int) -> bool:
        i = bisect_left(self._seg_addrs, addr)
        return i < len(self._seg_addrs) and self._seg_addrs[i] < addr + size

    def apply_segment_free(self, addr: int, size: int) -> None:
        seg = self._segs.get(addr)
        if seg is None:
            self.anomaly(f"segment_free of {addr:#x}: no segment there")
            return
        if any(not b.free for b in seg.blocks()):
            self.anomaly(f"segment_free of {addr:#x}: the model still holds live blocks there")
        self._drop_segment(seg)

    def _forget(self, b: _Blk) -> None:
        if b.allocated:
            self.allocated -= b.size
        self.active -= b.size
        self.requested -= b.requested
        b.allocated = b.pending = False

    def apply_segment_map(self, addr: int, size: int, stream: int, large: bool | None = None) -> None:
        i = bisect_right(self._seg_addrs, addr) - 1
        seg = self._segs[self._seg_addrs[i]] if i >= 0 else None
        if seg is not None and seg.expandable and seg.end == addr:
            self._map(seg, size)
            return
        if self.segment_of(addr) is not None or self._overlaps(addr, size):
            self.anomaly(f"segment_map at {addr:#x} overlaps a mapped range")
            return
        if large is None:
            large = size % LARGE_BUFFER == 0
        seg = self._add_segment(addr, size, stream, large, expandable=True)
        self._expandable.setdefault((large, stream), seg)

    def apply_segment_unmap(self, addr: int, size: int) -> None:
        seg = self.segment_of(addr)
        if seg is None or addr + size > seg.end:
            self.anomaly(f"segment_unmap of {addr:#x}+{size}: not inside one mapped range")
            return
        b = self._containing(seg, addr)
        if b is None or not b.free or addr + size > b.addr + b.size:
            self.anomaly(f"segment_unmap of {addr:#x}+{size}: the range is not free in the model")
            return
        if addr + size == seg.end:
            self._remove_free(b)
            self._blocks.pop(b.addr)
            b.size = addr - b.addr
            if b.size:
                self._blocks[b.addr] = b
                self._insert_free(b)
            elif b.prev is None:
                seg.head = None
            else:
                b.prev.next = None
            seg.size -= size
            self.reserved -= size
            if seg.size == 0:
                self._drop_segment(seg)
            return
        # an unmap at the start or in the middle: the part after it becomes a segment of its own
        self._remove_free(b)
        self._blocks.pop(b.addr)
        tail_start = addr + size
        after = _Blk(tail_start, b.addr + b.size - tail_start, seg)
        after.next = b.next
        b.size = addr - b.addr
        new = _Seg(tail_start, seg.end - tail_start, seg.stream, seg.large, True)
        new.free_list = seg.free_list
        self._segs[tail_start] = new
        insort(self._seg_addrs, tail_start)
        new.head = after
        x: _Blk | None = after
        while x is not None:
            x.seg = new
            x = x.next
        if after.next is not None:
            after.next.prev = after
        self._blocks[after.addr] = after
        self._insert_free(after)
        seg.size = addr - seg.addr
        self.reserved -= size
        if b.size:
            b.next = None
            self._blocks[b.addr] = b
            self._insert_free(b)
        else:
            if b.prev is None:
                seg.head = None
            else:
                b.prev.next = None
        if seg.size == 0:
            self._drop_segment(seg)

    def _containing(self, seg: _Seg, addr: int) -> _Blk | None:
        b = seg.head
        while b is not None and not b.addr <= addr < b.addr + b.size:
            b = b.next
        return b

    def place(self, addr: int, requested: int, *, pending: bool = False, block_size: int | None = None) -> bool:
        """Put an allocation that existed before the trace began at ``addr`` (False if it cannot be).
        ``block_size``: its block's size when known (a block of the snapshot); else torch's rounding
        and split rule decide it."""
        rounded = round_size(requested) if block_size is None else block_size
        b = self._carve(addr, rounded)
        if b is None:
            self.anomaly(f"an allocation from before the trace at {addr:#x} does not fit a free range")
            return False
        if block_size is not None and b.size > block_size:
            self._remove_free(b)
            rest = _Blk(addr + block_size, b.size - block_size, b.seg)
            rest.prev, rest.next = b, b.next
            if b.next is not None:
                b.next.prev = rest
            b.next = rest
            b.size = block_size
            self._blocks[rest.addr] = rest
            self._insert_free(rest)
            self._insert_free(b)
        self._take(b, rounded, requested)
        if pending:
            self._request_free(b)
        return True

    def _carve(self, addr: int, rounded: int) -> _Blk | None:
        seg = self.segment_of(addr)
        if seg is None:
            return None
        b = self._containing(seg, addr)
        if b is None or not b.free or addr + rounded > b.addr + b.size:
            return None
        if b.addr < addr:  # split off the free part in front
            self._remove_free(b)
            front_size = addr - b.addr
            mid = _Blk(addr, b.size - front_size, seg)
            mid.prev, mid.next = b, b.next
            if b.next is not None:
                b.next.prev = mid
            b.next = mid
            b.size = front_size
            self._insert_free(b)
            self._blocks[addr] = mid
            self._insert_free(mid)
            b = mid
        return b

    def predict(self, size: int, stream: int, rounded: int | None = None) -> int | None:
        """Where the model would put a request now: a cached block's address, or None (new memory)."""
        if rounded is None:
            rounded = round_size(size)
        fit = self._best_fit(rounded, rounded > SMALL_SIZE, stream)
        return None if fit is None else fit[1]

    def apply_alloc(self, addr: int, size: int, stream: int, rounded: int | None = None) -> bool:
        """Apply a traced allocation at ``addr``. Returns False if the model cannot place it there
        (the model and the trace disagree; recorded in ``anomalies``)."""
        if rounded is None:
            rounded = round_size(size)
        b = self._blocks.get(addr)
        if b is not None and not b.allocated and not b.pending and b.size >= rounded:
            self._take(b, rounded, size)
            return True
        b = self._carve(addr, rounded)
        if b is None:
            self.anomaly(f"alloc of {size} at {addr:#x}: no free block there in the model")
            return False
        self._take(b, rounded, size)
        return True

    def apply_free_requested(self, addr: int) -> bool:
        b = self._blocks.get(addr)
        if b is None or not b.allocated:
            return False
        self._request_free(b)
        return True

    def apply_free_completed(self, addr: int) -> bool:
        b = self._blocks.get(addr)
        if b is None or b.free:
            return False
        if b.allocated:
            self._request_free(b)
        self._complete_free(b)
        return True

    def check_oom(self, rounded: int, stream: int, device_free: int) -> OomCheck:
        """Would torch's rules serve a request of ``rounded`` bytes now, with ``device_free`` bytes
        left on the device? (Does not change the state.)"""
        large = rounded > SMALL_SIZE
        fit = self._best_fit(rounded, large, stream)
        releasable = self.releasable_bytes()
        if self.expandable_segments:
            need = self._expandable_need(rounded, large, stream)[1]
        else:
            need = allocation_size(rounded)
        if fit is not None:
            reason = "cached block"
        elif need <= device_free:
            reason = "new segment"
        elif need <= device_free + releasable:
            reason = "new segment after releasing cache"
        else:
            reason = "oom"
        return OomCheck(fails=reason == "oom", reason=reason, rounded=rounded, segment_bytes=need,
                        largest_free_block=self.largest_free_block(large, stream),
                        largest_free_block_any=self.largest_free_block(), free_cached_bytes=self.free_cached_bytes,
                        releasable_bytes=releasable)

    # ------------------------------------------------------------------ export
    def segment_dicts(self, device: int = 0, frame_lists: Callable[[Any], list[Any]] | None = None
                      ) -> list[dict[str, Any]]:
        """The state as ``torch.cuda.memory._snapshot()['segments']`` would give it."""
        def fr(x: Any) -> list[Any]:
            return frame_lists(x) if frame_lists is not None else []

        out = []
        for seg in self.segments():
            if seg.size == 0:
                continue
            blocks = []
            alloc = active = req = 0
            for b in seg.blocks():
                state = "active_allocated" if b.allocated else "active_pending_free" if b.pending else "inactive"
                blocks.append({"address": b.addr, "size": b.size, "requested_size": b.requested if not b.free else 0,
                               "state": state, "frames": fr(b.frames) if not b.free else []})
                if b.allocated:
                    alloc += b.size
                if not b.free:
                    active += b.size
                    req += b.requested
            out.append({"device": device, "address": seg.addr, "total_size": seg.size, "allocated_size": alloc,
                        "active_size": active, "requested_size": req, "stream": seg.stream,
                        "segment_type": "large" if seg.large else "small", "segment_pool_id": (0, 0),
                        "is_expandable": seg.expandable, "frames": fr(seg.frames), "blocks": blocks})
        return out
