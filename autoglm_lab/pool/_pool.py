"""`PagedPool`: device memory carved into fixed pages, handed out as contiguous runs of pages.

```
 segment 0 (memory_pool_initial_size)          segment 1 (grown on demand, up to max_size)
 | b7 b7 b7 | .. .. | b2 | b9 b9 | .. .. .. |    | b4 b4 b4 b4 | .. .. .. .. .. .. .. |
   page 0                                         page = segment_first_page + offset
```

Each segment is one uint8 torch tensor on the device; a block's tensor is a plain view of its pages.
One re-entrant lock guards all state, so a simulator thread and widget callbacks can share a pool.
The per-allocation bookkeeping (free-run index, block table, counters, events) runs on a core:
the compiled `_core` (about 0.5 us per alloc or free at a million pages), or its pure-Python
reference `_pycore` when the extension is not built; see `_impl`.
Planning and triggering compaction live in `autoglm_lab.compactor`; this module owns the
bookkeeping and the mechanism that applies a plan's moves.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from bisect import bisect_right
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch

from . import _impl
from ._block import Block
from ._config import LIVE_FIELDS, PoolConfig, format_size
from ._errors import DeviceAllocationError, InvalidBlockError, PinnedBlockError, PoolExhausted
from ._events import COMPACT_REASONS, EventKind
from ._pycore import PyCore
from ._service import BlockTable, CompactionService, SegmentStorage, default_compaction_service
from ._snapshot import SNAPSHOT_VERSION, PoolSnapshot
from ._stats import PoolStats

__all__ = ["PagedPool", "resolve_device"]

_MAX_BYTES = (1 << 62) - 1  # the core counts bytes in int64

log = logging.getLogger(__name__)


def resolve_device(device: str) -> torch.device:
    """The torch device for a config's ``device`` ("auto" picks CUDA when present)."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError, TypeError) as exc:
        raise ValueError(f"device={device!r} is not a device torch knows ({exc}); "
                         f"use 'auto', 'cpu', 'cuda' or 'cuda:N'") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device={device!r} is not available: this torch sees no CUDA device; use 'cpu' or 'auto'")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device={device!r} is not available: {torch.cuda.device_count()} CUDA device(s)")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device={device!r} is not available; use 'cpu' or 'auto'")
    return dev


class _Segment:
    """One device tensor carved into pages."""

    __slots__ = ("_host", "_typed", "data", "first_page", "num_pages", "page_size", "sid")

    def __init__(self, sid: int, first_page: int, num_pages: int, page_size: int, device: torch.device) -> None:
        self.sid = sid
        self.first_page = first_page
        self.num_pages = num_pages
        self.page_size = page_size
        try:
            self.data = torch.empty(num_pages * page_size, dtype=torch.uint8, device=device)
        except RuntimeError as exc:  # torch.OutOfMemoryError is one; so is the CPU allocator's refusal
            raise DeviceAllocationError(num_pages * page_size, device, exc) from exc
        self._typed: dict[torch.dtype, torch.Tensor] = {}
        self._host: np.ndarray | None = None

    @property
    def end_page(self) -> int:
        return self.first_page + self.num_pages

    def host(self) -> np.ndarray:
        """The segment's bytes as a numpy array sharing its memory (CPU segments only)."""
        host = self._host
        if host is None:
            host = self._host = self.data.numpy()
        return host

    def rows(self) -> torch.Tensor:
        """The segment as a (num_pages, page_size) matrix of bytes."""
        return self.data.view(self.num_pages, self.page_size)

    def view(self, start: int, nbytes: int, dtype: torch.dtype, shape: tuple[int, ...]) -> torch.Tensor:
        typed = self._typed.get(dtype)
        if typed is None:
            typed = self._typed[dtype] = self.data.view(dtype)
        strides = _STRIDES.get(shape)
        if strides is None:
            strides = _STRIDES[shape] = _contiguous_strides(shape)
        offset = (start - self.first_page) * self.page_size // dtype.itemsize
        return torch.as_strided(typed, shape, strides, offset)  # one op: cheaper than slice + view


_STRIDES: dict[tuple[int, ...], tuple[int, ...]] = {}


def _contiguous_strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    strides = []
    step = 1
    for dim in reversed(shape):
        strides.append(step)
        step *= max(dim, 1)
    if len(_STRIDES) > 4096:
        _STRIDES.clear()
    return tuple(reversed(strides))


def _normalise_shape(shape: Any) -> tuple[int, ...]:
    if isinstance(shape, int) and not isinstance(shape, bool):
        shape = (shape,)
    if not isinstance(shape, tuple | list | torch.Size):
        raise TypeError(f"shape={shape!r} is not a shape: give an int or a tuple of non-negative ints")
    for dim in shape:
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 0:
            raise ValueError(f"shape={tuple(shape)!r} is not a shape: every dimension must be an int >= 0")
    return tuple(shape)


class PagedPool:
    """A paged memory pool on one torch device. See the module docstring for the layout."""

    #: which core new pools use for their bookkeeping: "c" (compiled, the default when built) or
    #: "python" (the reference implementation; tests run both)
    core_kind: str = _impl.IMPL

    def __init__(self, config: PoolConfig | None = None, *, compaction_service: CompactionService | None = None,
                 **overrides: Any) -> None:
        """``compaction_service``: what compacts this pool (`CompactionService`); by default a new one
        from the registered factory (`autoglm_lab.compactor.Compactor` once the package is imported)."""
        cfg = config if config is not None else PoolConfig()
        if not isinstance(cfg, PoolConfig):
            raise TypeError(f"config must be a PoolConfig, not {type(cfg).__name__}")
        if overrides:
            cfg = cfg.replace(**overrides)
        self._config = cfg
        self.device = resolve_device(cfg.device)
        self.page_size = cfg.page_size
        self._lock = threading.RLock()
        self._t0 = time.perf_counter()
        self._segments: list[_Segment] = []
        self._seg_firsts: list[int] = []
        self._next_sid = 0
        FreeIndex, EventRing, Core = _impl.parts(self.core_kind)
        self._index = FreeIndex(cfg.fit)
        self._blocks: dict[int, Block] = {}
        self._tags: dict[str, int] = {}  # live tags -> id; the core counts their blocks
        self._tag_names: list[str | None] = []  # by id; None for an id no live block carries
        self.events = EventRing(cfg.event_capacity)
        # alloc/free bookkeeping: the block table (one slot per live block, flat columns the snapshot
        # reads without a loop), the counters, Block handles and their events (compiled, or _pycore)
        self._core = Core(self, self._lock, self._blocks, self._tags, self._tag_names, self.page_size, self._index,
                          self.events, Block, PinnedBlockError, torch.uint8, self._t0)
        self._core.merge_on_free = cfg.coalesce == "eager"
        self._pinned_blocks = 0
        self._cached: dict[int, tuple[int, int]] = {}  # cached block id -> (pages, requested bytes)
        self._cached_pages = 0
        self._cached_requested = 0
        self.evictions = 0
        self._evictor: Callable[[int], int] | None = None
        self.failed_allocations = 0
        # compaction accounting (written by autoglm_lab.compactor)
        self.compactions = 0
        self.compaction_bytes_moved = 0
        self.compaction_pages_moved = 0
        self.compaction_pause_s = 0.0
        self.compactions_by_reason: dict[str, int] = {}
        self.last_compaction_reason: str | None = None
        self._service = compaction_service if compaction_service is not None else default_compaction_service()
        self._device_error: DeviceAllocationError | None = None  # the last growth the device refused
        self._add_segment(cfg.memory_pool_initial_size // self.page_size)

    # ------------------------------------------------------------------ properties
    @property
    def config(self) -> PoolConfig:
        return self._config

    @property
    def seq(self) -> int:
        """Changes whenever the pool's state does (views compare it to skip unchanged frames)."""
        return self._core.seq

    @seq.setter
    def seq(self, value: int) -> None:
        self._core.seq = value

    @property
    def num_allocs(self) -> int:
        return self._core.num_allocs

    @property
    def num_frees(self) -> int:
        return self._core.num_frees

    @property
    def consecutive_failures(self) -> int:
        return self._core.consecutive_failures

    @consecutive_failures.setter
    def consecutive_failures(self, value: int) -> None:
        self._core.consecutive_failures = value

    @property
    def core(self) -> str:
        """"c" when the compiled core runs the bookkeeping, "python" on the reference implementation."""
        return "python" if isinstance(self._core, PyCore) else "c"

    @property
    def capacity_pages(self) -> int:
        return self._index.total_pages

    @property
    def capacity_bytes(self) -> int:
        return self._index.total_pages * self.page_size

    @property
    def num_segments(self) -> int:
        return len(self._segments)

    @property
    def lock(self) -> threading.RLock:
        return self._lock

    def now(self) -> float:
        """Seconds since the pool was created (the clock of events and ``created_s``)."""
        return time.perf_counter() - self._t0

    def blocks(self) -> list[Block]:
        """The live blocks, in allocation order."""
        with self._lock:
            return list(self._blocks.values())

    def __len__(self) -> int:
        return len(self._blocks)

    def __repr__(self) -> str:
        return (f"PagedPool({format_size(self.capacity_bytes)} on {self.device}, "
                f"{self.capacity_pages} x {format_size(self.page_size)} pages, {len(self._blocks)} blocks, "
                f"{self._index.free_pages} pages free)")

    # ------------------------------------------------------------------ segments
    def _add_segment(self, num_pages: int) -> _Segment:
        first = self._index.total_pages
        seg = _Segment(self._next_sid, first, num_pages, self.page_size, self.device)
        self._next_sid += 1
        self._segments.append(seg)
        self._seg_firsts.append(first)
        self._index.add_segment(first, num_pages)
        self._core.set_segments(self._segments)
        return seg

    def _segment_of(self, page: int) -> _Segment:
        segs = self._segments
        if len(segs) == 1:
            return segs[0]
        return segs[bisect_right(self._seg_firsts, page) - 1]

    def _grow_for(self, pages: int) -> bool:
        self._device_error = None
        room = (self._config.max_size - self.capacity_bytes) // self.page_size
        want = max(self._config.pages_per_segment, pages)
        if want > room:
            want = room
        if want < pages:
            return False
        for size in dict.fromkeys((want, pages)):  # the device may still back just what this request needs
            try:
                seg = self._add_segment(size)
                break
            except DeviceAllocationError as exc:
                self._device_error = exc
        else:
            log.warning("%s", self._device_error)
            return False
        self._device_error = None
        self._record(EventKind.GROW, -1, seg.num_pages, 0.0, seg.sid)
        log.debug("pool grew by %d pages (segment %d)", seg.num_pages, seg.sid)
        return True

    def release_empty_segments(self) -> int:
        """Give back every empty segment but the first (the pool's ``empty_cache``). Returns bytes freed."""
        with self._lock:
            used = self._segment_used_pages()
            empty = [s for s, n in zip(self._segments, used, strict=True) if n == 0 and s is not self._segments[0]]
            if not empty:
                return 0
            freed = sum(s.num_pages for s in empty) * self.page_size
            keep = [s for s in self._segments if s not in empty]
            runs = self._index.merged_runs()
            # renumber pages: every later segment (and its blocks and runs) shifts down
            shift_of: dict[int, int] = {}
            first = 0
            for seg in keep:
                shift_of[seg.sid] = seg.first_page - first
                first += seg.num_pages
            new_runs = []
            for start, length in runs:
                seg = self._segment_of(start)
                if seg.sid in shift_of:
                    new_runs.append((start - shift_of[seg.sid], length))
            for blk in self._blocks.values():
                shift = shift_of[blk._seg.sid]
                if shift:
                    blk._start -= shift
                    self._core.set_start(blk._slot, blk._start)
            first = 0
            for seg in keep:
                seg.first_page = first
                first += seg.num_pages
            self._segments = keep
            self._seg_firsts = [s.first_page for s in keep]
            barriers = set(self._seg_firsts) | {s.end_page for s in keep}
            self._index.reset(first, barriers, new_runs)
            self._index.dirty = False
            self._core.set_segments(self._segments)
            for seg in empty:
                self._record(EventKind.RELEASE, -1, seg.num_pages, 0.0, seg.sid)
            self.seq += 1
            return freed

    # ------------------------------------------------------------------ alloc / free
    def alloc(self, shape: int | Sequence[int] | torch.Size, dtype: torch.dtype = torch.float32, *,
              tag: str | None = None) -> Block:
        """A block whose ``tensor`` is a view of ``shape`` and ``dtype`` on the pool's pages."""
        blk = self._core.alloc(shape, dtype, tag)
        return blk if blk is not None else self._alloc_checked(shape, dtype, tag)

    def alloc_bytes(self, nbytes: int, *, tag: str | None = None) -> Block:
        """A block of ``nbytes`` bytes whose ``tensor`` is a uint8 vector."""
        blk = self._core.alloc_bytes(nbytes, tag)
        return blk if blk is not None else self._alloc_bytes_checked(nbytes, tag)

    # The core allocates directly when the arguments are plain (ints, a tuple of ints, a torch dtype,
    # a str or None) and an indexed run fits; anything else comes here: validated or refused with a
    # clear error, then the slow path (merge, grow, the compaction hook, PoolExhausted).
    def _alloc_checked(self, shape: Any, dtype: Any, tag: Any) -> Block:
        dims = _normalise_shape(shape)
        if not isinstance(dtype, torch.dtype):
            raise TypeError(f"dtype={dtype!r} is not a torch.dtype (e.g. torch.float16)")
        nbytes = math.prod(dims) * dtype.itemsize
        if nbytes <= _MAX_BYTES and math.prod(max(d, 1) for d in dims) * dtype.itemsize > _MAX_BYTES:
            # an empty tensor whose strides would not fit int64: torch could not view it
            raise ValueError(f"shape={dims!r} is not allowed: its strides reach past 2**62 bytes; keep the "
                             f"product of the dimensions (zeros counted as 1) times the itemsize below that")
        return self._alloc_valid(nbytes, dtype, dims, tag)

    def _alloc_bytes_checked(self, nbytes: Any, tag: Any) -> Block:
        if isinstance(nbytes, bool) or not isinstance(nbytes, int) or nbytes < 0:
            raise ValueError(f"nbytes={nbytes!r} is not allowed: give an int >= 0")
        nbytes = int(nbytes)
        return self._alloc_valid(nbytes, torch.uint8, (nbytes,), tag)

    def _alloc_valid(self, nbytes: int, dtype: torch.dtype, dims: tuple[int, ...], tag: Any) -> Block:
        if tag is not None and not isinstance(tag, str):
            raise TypeError(f"tag={tag!r} must be a str or None")
        dims = tuple(int(d) for d in dims)
        tag = None if tag is None else str(tag)
        with self._lock:
            started = self.now()
            # more than any pool can hold: straight to the slow path, which refuses it
            blk = self._core.alloc_shaped(nbytes, dtype, dims, tag) if nbytes <= _MAX_BYTES else None
            if blk is None:
                start = self._alloc_slow(max(1, -(-nbytes // self.page_size)), nbytes)
                blk = self._core.place(start, nbytes, dtype, dims, tag, started)
            return blk

    def _alloc_slow(self, pages: int, nbytes: int) -> int:
        """No indexed run fits: lazy merge, grow, then compaction triggers; else PoolExhausted."""
        idx = self._index
        if idx.merge_all():
            start = idx.take(pages)
            if start >= 0:
                return start
        if self._grow_for(pages):
            start = idx.take(pages)
            if start >= 0:
                return start
        evictor = self._evictor
        while evictor is not None and self._cached:
            before = len(self._cached)
            if evictor(pages) <= 0 or len(self._cached) >= before:  # nothing (more) it will evict
                break
            idx.merge_all()
            start = idx.take(pages)
            if start >= 0:
                return start
        self.consecutive_failures += 1
        service = self._service
        if self._config.compaction != "off" and service is not None and service.on_alloc_failure(self, pages):
            start = idx.take(pages)
            if start >= 0:  # compaction made the run: not a failure
                self.consecutive_failures = 0
                return start
        self.failed_allocations += 1
        largest = idx.largest()
        self._record(EventKind.FAIL, -1, min(pages, _MAX_BYTES), 0.0, 0)  # events hold int64
        device_error = self._device_error
        limit = (f"the device refused a new segment ({device_error})" if device_error is not None else
                 f"pool at max_size {format_size(self._config.max_size)}")
        raise PoolExhausted(
            f"cannot allocate {pages} page(s) ({nbytes} bytes as {format_size(self.page_size)} pages): "
            f"{idx.free_pages} page(s) free of {idx.total_pages}, largest free run {largest} page(s), {limit}"
            + ("" if self._config.compaction != "off" else "; compaction is off"),
            pages_requested=pages, free_pages=idx.free_pages, largest_free_run=largest,
        )

    def _check_own(self, block: Any, what: str) -> Block:
        if not isinstance(block, Block):
            raise TypeError(f"{what} expects a Block from this pool, got {type(block).__name__}")
        if block._pool is not self:
            raise InvalidBlockError(f"block {block.id} belongs to another pool")
        if block._freed:
            raise InvalidBlockError(
                f"block {block.id} (tag={block.tag!r}) was already freed; {what} needs a live block")
        return block

    def free(self, block: Block) -> None:
        """Return a block's pages to the pool. Freeing twice raises `InvalidBlockError`; freeing a
        cached block counts as an eviction."""
        if self._cached:  # cached blocks: the core's books and the cached ones change under one hold
            with self._lock:
                self._free(block)
                self._uncache(block.id)
            return
        self._free(block)
        if self._cached:  # another thread marked blocks cached meanwhile (this one, if it raced itself)
            with self._lock:
                self._uncache(block.id)

    def _free(self, block: Block) -> None:
        if self._core.free(block) is False:  # not a live block of this pool: say which error
            self._check_own(block, "free")
            raise AssertionError(f"the core refused to free {block!r}")

    def _uncache(self, block_id: int) -> None:
        gone = self._cached.pop(block_id, None)
        if gone is not None:
            self._cached_pages -= gone[0]
            self._cached_requested -= gone[1]
            self.evictions += 1

    def set_cached(self, block: Block, cached: bool = True) -> None:
        """Mark a live block as cached KV that no running request references (evictable: stats count
        it apart from used memory, the page map shows it as CACHED), or as referenced again."""
        if not isinstance(cached, bool):
            raise TypeError(f"cached={cached!r} must be True or False")
        with self._lock:
            blk = self._check_own(block, "set_cached")
            if cached == (blk.id in self._cached):
                return
            if cached:
                self._cached[blk.id] = (blk.num_pages, blk.nbytes)
                self._cached_pages += blk.num_pages
                self._cached_requested += blk.nbytes
            else:
                del self._cached[blk.id]
                self._cached_pages -= blk.num_pages
                self._cached_requested -= blk.nbytes
            self.seq += 1

    def set_evictor(self, evictor: Callable[[int], int] | None) -> None:
        """``evictor(pages)`` is called (lock held) when an allocation of ``pages`` finds no free run
        after merging and growing, before it counts as a failure or compacts: it frees cached blocks
        (per its reuse strategy) and returns how many; the pool retries while it frees some."""
        if evictor is not None and not callable(evictor):
            raise TypeError(f"evictor={evictor!r} is not callable: give fn(pages) -> blocks evicted, or None")
        with self._lock:
            self._evictor = evictor

    def copy_bytes(self, dst: Block, src: Block, nbytes: int | None = None) -> None:
        """Copy the first ``nbytes`` bytes of ``src`` to the start of ``dst`` (default: all that fits).

        On a CPU the copy is a memmove in the calling thread: torch's CPU ``copy_`` starts a parallel
        region whose worker threads busy-wait between copies, which on a small machine takes a core
        from the notebook's browser and other cells (measured: a simulator step 2.6x slower while a
        browser drew the dashboard). On a device it is one ``copy_``.
        """
        with self._lock:
            self._check_own(dst, "copy_bytes")
            self._check_own(src, "copy_bytes")
            limit = min(dst.nbytes, src.nbytes)
            n = limit if nbytes is None else nbytes
            if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= limit:
                raise ValueError(f"nbytes={nbytes!r} is not allowed: use an int from 0 to {limit} "
                                 f"(the smaller block's size)")
            if dst is src or n == 0:
                return
            ps = self.page_size
            a = (src._start - src._seg.first_page) * ps
            b = (dst._start - dst._seg.first_page) * ps
            if self.device.type == "cpu":
                dst._seg.host()[b:b + n] = src._seg.host()[a:a + n]  # blocks never overlap
            else:
                dst._seg.data[b:b + n].copy_(src._seg.data[a:a + n])

    @contextlib.contextmanager
    def pin(self, block: Block) -> Iterator[Block]:
        """Keep ``block`` in place (compaction will not move it) while the ``with`` body runs."""
        with self._lock:
            blk = self._check_own(block, "pin")
            if blk._pins == 0:
                self._pinned_blocks += 1
            blk._pins += 1
            self._core.set_pins(blk._slot, blk._pins)
            self.seq += 1
        try:
            yield blk
        finally:
            with self._lock:
                blk._pins -= 1
                if not blk._freed:
                    self._core.set_pins(blk._slot, blk._pins)
                if blk._pins == 0:
                    self._pinned_blocks -= 1
                self.seq += 1

    # ------------------------------------------------------------------ config
    def configure(self, **changes: Any) -> PoolConfig:
        """Change live settings (fit, coalesce, compaction fields, max_size); validated like the
        constructor, applied atomically, effective at the next allocation or tick."""
        fixed = sorted(set(changes) - LIVE_FIELDS)
        if fixed:
            raise ValueError(
                f"{fixed} cannot change on a live pool (they fix its storage); build a new PagedPool. "
                f"Live fields: {sorted(LIVE_FIELDS)}"
            )
        with self._lock:
            new = self._config.replace(**changes)
            if new.max_size < self.capacity_bytes:
                raise ValueError(
                    f"max_size={changes.get('max_size')!r} is below the pool's current capacity "
                    f"({self.capacity_bytes} bytes); release segments first"
                )
            old = self._config
            self._config = new
            if new.fit != old.fit:
                self._index.fit = new.fit
            self._core.merge_on_free = new.coalesce == "eager"
            if new.event_capacity != old.event_capacity:
                self.events.resize(new.event_capacity)
            self.seq += 1
            self._record(EventKind.CONFIG, -1, 0, 0.0, 0)
            return new

    # ------------------------------------------------------------------ compaction, through the service
    @property
    def compaction_service(self) -> CompactionService | None:
        """What compacts this pool (None: nothing; allocations that find no run then fail)."""
        return self._service

    def compact(self, strategy: str = "two_finger", *, budget_bytes: int | str | None = None,
                num_pages: int | None = None) -> Any:
        """Move live blocks to close holes; returns the service's report (with the default service,
        an `autoglm_lab.compactor.CompactionReport`). See `autoglm_lab.compactor.compact`."""
        service = self._service
        if service is None:
            raise RuntimeError("this pool has no compaction service: pass PagedPool(..., compaction_service=...) "
                               "or import autoglm_lab.compactor, which registers the default")
        with self._lock:
            return service.compact(self, strategy, budget_bytes=budget_bytes, num_pages=num_pages)

    def tick(self, now: float | None = None) -> Any:
        """Run the periodic trigger (and eager background steps); ``now`` defaults to ``pool.now()``."""
        if now is not None and (isinstance(now, bool) or not isinstance(now, int | float) or not math.isfinite(now)):
            raise ValueError(f"tick(now={now!r}) is not allowed: give a finite number of seconds (the caller's "
                             f"clock, e.g. pool.now() or the simulator's time) or None for pool.now()")
        service = self._service
        if service is None:
            return None
        with self._lock:
            return service.tick(self, self.now() if now is None else now)

    def block(self, block_id: int) -> Block | None:
        """The live block with this id, or None."""
        return self._blocks.get(block_id)

    # ------------------------------------------------------------------ the interface a compaction service uses
    # (see `_service`): call these with the pool's lock held, as the service's methods are called
    def block_table(self) -> BlockTable:
        """The live blocks sorted by first page (copied: the caller owns the arrays)."""
        with self._lock:
            return BlockTable(*self._table())

    def segment_storage(self) -> list[SegmentStorage]:
        """Each segment's global page range and its bytes (views of the pool's own tensors)."""
        with self._lock:
            return [SegmentStorage(s.first_page, s.num_pages, s.page_size, s.data) for s in self._segments]

    @property
    def free_pages(self) -> int:
        return self._index.free_pages

    @property
    def largest_free_run_pages(self) -> int:
        """The longest free run the index holds (with lazy coalescing, neighbours may be unmerged)."""
        return self._index.largest()

    def merge_free_runs(self) -> bool:
        """Merge neighbouring free runs that lazy coalescing left apart; True if any were."""
        with self._lock:
            return bool(self._index.merge_all())

    def apply_moves(self, moves: Sequence[tuple[int, int, int]], copy: Callable[[], None]) -> None:
        """Move blocks: ``moves`` are (block id, old first page, new first page), in order, and
        ``copy()`` copies their bytes. The books first: every move is checked against the pool as the
        earlier ones leave it, and one that does not fit (block not live there, pinned, destination
        not free) raises `AssertionError` before a byte is copied. If ``copy`` raises, the books are
        put back and the error goes on."""
        with self._lock:
            if moves:
                self._core.relocate(moves)
            try:
                copy()
            except BaseException:
                self._core.relocate([(b, dst, src) for b, src, dst in reversed(moves)])
                raise

    def record_compaction(self, reason: str, pages: int, bytes_moved: int, pause_s: float) -> None:
        """Count one compaction (or one budgeted step) in the pool's stats and event ring."""
        if reason not in COMPACT_REASONS:
            raise ValueError(f"reason={reason!r} is not allowed: choose one of {COMPACT_REASONS}")
        with self._lock:
            self._record_compaction(reason, pages, bytes_moved, pause_s)

    # ------------------------------------------------------------------ mechanism used by the compactor
    def _record(self, kind: EventKind, block_id: int, pages: int, latency_s: float, info: int) -> None:
        self.events.record((self.now(), int(kind), block_id, pages, latency_s, info))

    def _record_compaction(self, reason: str, pages: int, bytes_moved: int, pause_s: float) -> None:
        self.compactions += 1
        self.compaction_pages_moved += pages
        self.compaction_bytes_moved += bytes_moved
        self.compaction_pause_s += pause_s
        self.compactions_by_reason[reason] = self.compactions_by_reason.get(reason, 0) + 1
        self.last_compaction_reason = reason
        self._record(EventKind.COMPACT, -1, pages, pause_s, COMPACT_REASONS.index(reason))

    # ------------------------------------------------------------------ views of the state
    def _table(self) -> tuple[np.ndarray, ...]:
        """Live rows of the block table, sorted by first page: id, start, pages, nbytes, tag, pins, created."""
        raw = self._core.table()  # views of the core's own columns: copied here, under the lock
        pages = np.frombuffer(raw[2], dtype=np.int64)
        live = np.flatnonzero(pages > 0)
        cols: list[np.ndarray] = [np.frombuffer(a, dtype=np.int64)[live] for a in raw[:6]]
        cols.append(np.frombuffer(raw[6], dtype=np.float64)[live])
        del pages, raw
        order = np.argsort(cols[1], kind="stable")
        return tuple(c[order] for c in cols)

    def stats(self) -> PoolStats:
        with self._lock:
            idx = self._index
            if idx.dirty:
                runs = idx.merged_runs()
                free_runs = len(runs)
                largest = max((r[1] for r in runs), default=0)
            else:
                free_runs = len(idx)
                largest = idx.largest()
            free = idx.free_pages
            cap = idx.total_pages
            core = self._core
            cached = self._cached_pages
            used = core.used_pages - cached
            requested = core.requested_bytes - self._cached_requested
            ps = self.page_size
            waste = used * ps - requested
            return PoolStats(
                page_size=ps, capacity_bytes=cap * ps, used_bytes=used * ps, free_bytes=free * ps,
                capacity_pages=cap, used_pages=used, free_pages=free,
                requested_bytes=requested, internal_waste_bytes=waste,
                num_blocks=len(self._blocks), pinned_blocks=self._pinned_blocks,
                free_runs=free_runs, largest_free_run_pages=largest, largest_free_run_bytes=largest * ps,
                external_fragmentation=(1.0 - largest / free) if free else 0.0,
                internal_fragmentation=(waste / (used * ps)) if used else 0.0,
                utilisation=requested / (cap * ps) if cap else 0.0,
                num_segments=len(self._segments), num_allocs=self.num_allocs, num_frees=self.num_frees,
                failed_allocations=self.failed_allocations, consecutive_failures=self.consecutive_failures,
                peak_used_bytes=core.peak_used_pages * ps, compactions=self.compactions,
                compaction_bytes_moved=self.compaction_bytes_moved,
                compaction_pages_moved=self.compaction_pages_moved,
                compaction_pause_s=self.compaction_pause_s,
                last_compaction_reason=self.last_compaction_reason,
                compactions_by_reason=dict(self.compactions_by_reason),
                cached_bytes=cached * ps, cached_pages=cached, cached_blocks=len(self._cached),
                evictions=self.evictions,
            )

    def free_run_lengths(self) -> np.ndarray:
        """Lengths (pages) of the maximal free runs, in no particular order: a histogram source that
        costs O(runs), much less than a snapshot. Neighbours left unmerged by lazy coalescing are merged."""
        with self._lock:
            idx = self._index
            if idx.dirty:
                return np.fromiter((n for _, n in idx.merged_runs()), dtype=np.int64)
            lengths: np.ndarray = np.frombuffer(idx.lengths(), dtype=np.int64).copy()
            return lengths

    def snapshot(self) -> PoolSnapshot:
        """The versioned record every view reads: the block table copied under the lock (O(blocks)
        numpy work); per-page and event columns are derived from the copy on first access."""
        with self._lock:
            bid, start, pages, nbytes, tag, pins, created = self._table()
            return PoolSnapshot(
                version=SNAPSHOT_VERSION, seq=self.seq, time_s=self.now(), page_size=self.page_size,
                device=str(self.device), num_pages=self.capacity_pages,
                segment_first_page=np.asarray(self._seg_firsts, dtype=np.int64),
                segment_num_pages=np.asarray([s.num_pages for s in self._segments], dtype=np.int64),
                block_id=bid, block_first_page=start, block_num_pages=pages, block_nbytes=nbytes,
                block_tag=tag.astype(np.int32), block_pinned=pins > 0, block_created_s=created,
                block_cached=(np.isin(bid, np.fromiter(self._cached, dtype=np.int64, count=len(self._cached)))
                              if self._cached else np.zeros(bid.shape[0], dtype=bool)),
                tags=tuple(self._tag_names), stats=self.stats(), events_total=self.events.total,
                event_rows=self.events.rows(),
            )

    def _segment_used_pages(self) -> list[int]:
        """Pages in use per segment, from the block table (O(blocks) numpy work)."""
        _bid, start, pages, *_ = self._table()
        seg = np.searchsorted(np.asarray(self._seg_firsts, dtype=np.int64), start, side="right") - 1
        counts = np.bincount(seg, weights=pages, minlength=len(self._segments)).astype(np.int64)
        return [int(n) for n in counts]

    def check_invariants(self) -> None:
        """Raise AssertionError if accounting, block placement or the free index is inconsistent."""
        with self._lock:
            cap = self.capacity_pages
            idx = self._index
            core = self._core
            if core.used_pages + idx.free_pages != cap:
                raise AssertionError(f"used {core.used_pages} + free {idx.free_pages} pages != capacity {cap}")
            bid, start, pages, nbytes, _tag, pins, _ = self._table()
            if len(bid) != len(self._blocks):
                raise AssertionError(f"block table has {len(bid)} live rows, pool has {len(self._blocks)} blocks")
            if int(pages.sum()) != core.used_pages:
                raise AssertionError(f"blocks hold {int(pages.sum())} pages, accounting says {core.used_pages}")
            if int(nbytes.sum()) != core.requested_bytes:
                raise AssertionError("requested bytes disagree with the block table")
            live = {int(b): (int(p), int(n)) for b, p, n in zip(bid, pages, nbytes, strict=True)}
            if any(live.get(b) != v for b, v in self._cached.items()):
                raise AssertionError("a cached block is not a live block of the table")
            if sum(p for p, _ in self._cached.values()) != self._cached_pages \
                    or sum(n for _, n in self._cached.values()) != self._cached_requested:
                raise AssertionError("cached pages or bytes disagree with the cached blocks")
            if start.size and (np.any(start[1:] < start[:-1] + pages[:-1]) or start[0] < 0
                               or start[-1] + pages[-1] > cap):
                raise AssertionError("blocks overlap or lie outside the pool")
            for b, s, p in zip(bid.tolist(), start.tolist(), pins.tolist(), strict=True):
                blk = self._blocks.get(b)
                if blk is None or blk._start != s or blk._freed or blk._pins != p:
                    raise AssertionError(f"block {b}: table and handle disagree")
                seg = self._segment_of(s)
                if seg is not blk._seg or s + blk.num_pages > seg.end_page:
                    raise AssertionError(f"block {b} crosses or left its segment")
            diff = np.zeros(cap + 1, dtype=np.int64)
            diff[start] += 1
            diff[start + pages] -= 1
            used = np.cumsum(diff[:-1]) > 0
            idx.check()  # the index's own structures (runs inside the pool, no overlap, no crossing)
            free_mark = np.zeros(cap, dtype=np.int64)
            for s, n in idx.runs():
                free_mark[s:s + n] += 1
            if np.any((free_mark == 1) == used):
                bad = int(np.flatnonzero((free_mark == 1) == used)[0])
                raise AssertionError(f"page {bad}: free index and block table disagree")
            if not idx.dirty and core.merge_on_free and len(idx.merged_runs()) != len(idx):
                raise AssertionError("eager coalescing left neighbouring free runs unmerged")
