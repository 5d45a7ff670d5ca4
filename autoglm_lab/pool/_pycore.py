"""The pool's alloc / free bookkeeping in pure Python: the reference for the compiled `_core`.

`PagedPool` uses `_core.Core` when the C extension is built (the normal case: the package's build
hook compiles it) and this `PyCore` otherwise; both have the same interface, and the test suite runs
the pool's tests on both. What a core owns:

- the block table: one slot per live block (id, first page, pages, requested bytes, tag id, pins,
  created-at) as flat int64/float64 columns a snapshot reads without a Python loop;
- the counters (used, peak and requested bytes, allocs, frees, consecutive failures, ``seq``);
- creating `Block` handles and recording ALLOC / FREE events with their measured latency.

Everything else (validation messages, growing, lazy merging, the compaction hook, PoolExhausted) is
the pool's, and a core calls none of it back: ``alloc`` / ``alloc_bytes`` / ``alloc_shaped`` return
None for unusual arguments or when no indexed run fits (the pool then validates, runs its slow path
and calls ``place`` with the run it took), and ``free`` returns False for anything but a live block
of this pool (the pool raises the right error).
"""

from __future__ import annotations

import time
from array import array
from bisect import bisect_right
from typing import Any, cast

__all__ = ["BlockBase", "PyCore"]

_ALLOC, _FREE = 0, 1


class BlockBase:
    """The fields of a `Block` (the compiled twin is `_core.BlockBase`). The public ones are read-only:
    assigning ``num_pages`` (say) would make ``free`` release another block's pages."""

    __slots__ = ("_created_s", "_dtype", "_freed", "_id", "_nbytes", "_num_pages", "_pins", "_pool", "_seg",
                 "_shape", "_slot", "_start", "_tag", "_tensor")

    id = property(lambda self: self._id, doc="The block's id in its pool (kept when compaction moves it).")
    nbytes = property(lambda self: self._nbytes, doc="Bytes requested.")
    num_pages = property(lambda self: self._num_pages, doc="Pages the block holds.")
    tag = property(lambda self: self._tag, doc="The tag given at allocation, or None.")
    dtype = property(lambda self: self._dtype, doc="The tensor's dtype.")
    shape = property(lambda self: self._shape, doc="The tensor's shape.")
    created_s = property(lambda self: self._created_s, doc="Allocation time, seconds since the pool's start.")

    _id: int
    _nbytes: int
    _num_pages: int
    _tag: str | None
    _dtype: Any
    _shape: tuple[int, ...]
    _created_s: float
    _pool: Any
    _seg: Any
    _start: int
    _slot: int
    _tensor: Any
    _freed: bool
    _pins: int


class PyCore:
    """Everything it works on is handed in; it calls nothing back (see `_core.Core`)."""

    def __init__(self, owner: Any, lock: Any, blocks: dict[int, Any], tags: dict[str, int],
                 tag_names: list[str | None], page_size: int, index: Any, events: Any, block_type: type[BlockBase],
                 pinned_error: type, uint8: Any, t0: float) -> None:
        self._pool = owner
        self._index = index
        self._events = events
        self._block_type = block_type
        self._pinned_error = pinned_error
        self._uint8 = uint8
        self._t0 = t0
        self._lock = lock
        self._blocks = blocks
        self._tags = tags
        self._tag_names = tag_names
        self._page_size = page_size
        self._segments: list[Any] = []
        self._seg_firsts: list[int] = []
        self._slots_free: list[int] = []
        self._tag_refs: list[int] = []  # live blocks per tag id
        self._tag_free: list[int] = []  # tag ids no block carries any more (reused first)
        self._b_id = array("q")
        self._b_start = array("q")
        self._b_pages = array("q")
        self._b_nbytes = array("q")
        self._b_tag = array("q")
        self._b_pins = array("q")
        self._b_created = array("d")
        self.merge_on_free = 1
        self.next_id = 0
        self.used_pages = 0
        self.peak_used_pages = 0
        self.requested_bytes = 0
        self.num_allocs = 0
        self.num_frees = 0
        self.consecutive_failures = 0
        self.seq = 0

    @property
    def nslots(self) -> int:
        return len(self._b_id)

    # ------------------------------------------------------------------ alloc / free
    # alloc / alloc_bytes / alloc_shaped return None when the arguments are unusual or no indexed run
    # fits: the pool validates, runs its slow path and calls place()
    def alloc_bytes(self, nbytes: Any, tag: Any) -> Any:
        if type(nbytes) is int and nbytes >= 0 and (tag is None or type(tag) is str):
            return self._alloc(nbytes, self._uint8, (nbytes,), tag)
        return None

    def alloc(self, shape: Any, dtype: Any, tag: Any) -> Any:
        return None  # the reference core leaves shape validation to the pool

    def alloc_shaped(self, nbytes: int, dtype: Any, shape: tuple[int, ...], tag: str | None) -> Any:
        return self._alloc(nbytes, dtype, shape, tag)

    def _alloc(self, nbytes: int, dtype: Any, shape: tuple[int, ...], tag: str | None) -> Any:
        pages = -(-nbytes // self._page_size) or 1
        with self._lock:
            t0 = time.perf_counter()
            start = self._index.take(pages)
            if start < 0:
                return None
            return self._place(start, pages, nbytes, dtype, shape, tag, t0)

    def place(self, start: int, nbytes: int, dtype: Any, shape: tuple[int, ...], tag: str | None,
              started_s: float) -> Any:
        with self._lock:
            return self._place(start, -(-nbytes // self._page_size) or 1, nbytes, dtype, shape, tag,
                               started_s + self._t0)

    def _place(self, start: int, pages: int, nbytes: int, dtype: Any, shape: tuple[int, ...], tag: str | None,
               t0: float) -> Any:
        """The Block on pages the caller took from the index, the lock held (t0: perf_counter at the start)."""
        segs = self._segments
        blk = self._block_type.__new__(self._block_type)
        bid = self.next_id
        self.next_id = bid + 1
        blk._id = bid
        blk._nbytes = nbytes
        blk._num_pages = pages
        blk._tag = tag
        blk._dtype = dtype
        blk._shape = shape
        blk._pool = self._pool
        blk._seg = segs[0] if len(segs) == 1 else segs[bisect_right(self._seg_firsts, start) - 1]
        blk._start = start
        blk._tensor = None
        blk._freed = False
        blk._pins = 0
        created = blk._created_s = t0 - self._t0
        tag_id = self._tag_acquire(tag)
        if self._slots_free:
            slot = self._slots_free.pop()
            self._b_id[slot] = bid
            self._b_start[slot] = start
            self._b_pages[slot] = pages
            self._b_nbytes[slot] = nbytes
            self._b_tag[slot] = tag_id
            self._b_pins[slot] = 0
            self._b_created[slot] = created
        else:
            slot = len(self._b_id)
            self._b_id.append(bid)
            self._b_start.append(start)
            self._b_pages.append(pages)
            self._b_nbytes.append(nbytes)
            self._b_tag.append(tag_id)
            self._b_pins.append(0)
            self._b_created.append(created)
        blk._slot = slot
        self._blocks[bid] = blk
        used = self.used_pages = self.used_pages + pages
        if used > self.peak_used_pages:
            self.peak_used_pages = used
        self.requested_bytes += nbytes
        self.num_allocs += 1
        self.consecutive_failures = 0
        self.seq += 1
        t1 = time.perf_counter()  # stamped at completion, so the ring stays in time order
        self._events.record((t1 - self._t0, _ALLOC, bid, pages, t1 - t0, 0))
        return blk

    def free(self, block: Any) -> bool | None:
        with self._lock:
            t0 = time.perf_counter()
            if block.__class__ is not self._block_type or block._pool is not self._pool or block._freed:
                return False  # not a live block of this pool: the pool says which error
            if block._pins:
                raise self._pinned_error(f"block {block.id} is pinned; leave its pool.pin(...) before freeing it")
            pages = block.num_pages
            self._index.release(block._start, pages, self.merge_on_free)
            del self._blocks[block.id]
            block._freed = True
            block._tensor = None
            slot = block._slot
            self._b_pages[slot] = 0  # pins are 0 too: a pinned block cannot be freed
            self._slots_free.append(slot)
            self._tag_release(self._b_tag[slot])
            self.used_pages -= pages
            self.requested_bytes -= block.nbytes
            self.num_frees += 1
            self.seq += 1
            t1 = time.perf_counter()
            self._events.record((t1 - self._t0, _FREE, block.id, pages, t1 - t0, 0))
            return None

    # Tag ids are reference-counted by the live blocks that carry them: a pool that sees a new tag
    # per request keeps only the live ones (a released name's entry becomes None, its id is reused).
    def _tag_acquire(self, tag: str | None) -> int:
        if tag is None:
            return -1
        tag_id = self._tags.get(tag)
        if tag_id is None:
            if self._tag_free:
                tag_id = self._tag_free.pop()
                self._tag_names[tag_id] = tag
                self._tag_refs[tag_id] = 0
            else:
                tag_id = len(self._tag_names)
                self._tag_names.append(tag)
                self._tag_refs.append(0)
            self._tags[tag] = tag_id
        self._tag_refs[tag_id] += 1
        return tag_id

    def _tag_release(self, tag_id: int) -> None:
        if tag_id < 0:
            return
        self._tag_refs[tag_id] -= 1
        if self._tag_refs[tag_id] == 0:
            del self._tags[cast(str, self._tag_names[tag_id])]  # a tag id in use has its name
            self._tag_names[tag_id] = None
            self._tag_free.append(tag_id)

    def relocate(self, moves: Any) -> None:
        """Bookkeeping of moves: (block id, old first page, new first page), in order. All or nothing:
        a move that does not fit the pool as the earlier ones left it raises and undoes them."""
        with self._lock:
            idx = self._index
            done: list[tuple[Any, int]] = []
            try:
                for bid, src, dst in moves:
                    blk = self._blocks.get(bid)
                    if blk is None or blk._start != src or blk._pins:
                        raise AssertionError(f"relocate: block {bid} is not a live, unpinned block at page {src}")
                    idx.release(src, blk.num_pages, merge=True)
                    try:
                        idx.carve(dst, blk.num_pages)
                    except AssertionError:
                        idx.carve(src, blk.num_pages)  # its old place, released just now
                        raise
                    blk._start = dst
                    blk._tensor = None
                    self._b_start[blk._slot] = dst
                    done.append((blk, src))
            except BaseException:
                for blk, src in reversed(done):
                    idx.release(blk._start, blk.num_pages, merge=True)
                    idx.carve(src, blk.num_pages)
                    blk._start = src
                    blk._tensor = None
                    self._b_start[blk._slot] = src
                raise
            finally:
                self.seq += 1

    # ------------------------------------------------------------------ table and segments
    def set_segments(self, segments: list[Any]) -> None:
        self._segments = segments
        self._seg_firsts = [s.first_page for s in segments]

    def set_start(self, slot: int, start: int) -> None:
        self._b_start[slot] = start

    def set_pins(self, slot: int, pins: int) -> None:
        self._b_pins[slot] = pins

    def table(self) -> tuple[array[Any], ...]:
        """The block table's columns over every slot (free slots have pages == 0)."""
        return (self._b_id, self._b_start, self._b_pages, self._b_nbytes, self._b_tag, self._b_pins,
                self._b_created)
