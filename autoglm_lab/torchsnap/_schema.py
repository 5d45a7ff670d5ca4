"""The typed record of a PyTorch memory snapshot (``torch.cuda.memory._snapshot()``).

```
TorchSnapshot
  segments: (TorchSegment, ...)      the allocator's state when the snapshot was taken
    blocks: (TorchBlock, ...)        address order; their sizes tile the segment exactly
  traces:   (Trace, ...)             one per device: columns of the (ring-buffered) history
  allocator_settings, external_annotations, form, source
```

A trace is stored as numpy columns, not one object per entry: a million entries take about 40 bytes
each instead of about a kilobyte of dicts. Frame lists are shared (torch pickles each distinct
traceback once; the loader keeps that sharing).
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "ACTIONS", "Action", "BLOCK_STATES", "KMIN_BLOCK", "SMALL_SIZE", "SMALL_BUFFER", "LARGE_BUFFER",
    "MIN_LARGE_ALLOC", "ROUND_LARGE", "Frame", "TorchBlock", "TorchSegment", "Trace", "TraceEntry",
    "TorchSnapshot", "round_size", "allocation_size", "is_small",
]

# The caching allocator's constants (c10/cuda/CUDACachingAllocator.cpp).
KMIN_BLOCK = 512               # every block is a multiple of this
SMALL_SIZE = 1 << 20           # requests up to 1 MiB go to the small pool
SMALL_BUFFER = 2 << 20         # ... which carves them out of 2 MiB segments
LARGE_BUFFER = 20 << 20        # large requests under MIN_LARGE_ALLOC share 20 MiB segments
MIN_LARGE_ALLOC = 10 << 20
ROUND_LARGE = 2 << 20          # larger requests get a segment of their size rounded up to 2 MiB


def round_size(size: int) -> int:
    """The block size torch gives a request (``round_size`` without ``roundup_power2_divisions``)."""
    if size < KMIN_BLOCK:
        return KMIN_BLOCK
    return -(-size // KMIN_BLOCK) * KMIN_BLOCK


def is_small(rounded: int) -> bool:
    return rounded <= SMALL_SIZE


def allocation_size(rounded: int) -> int:
    """The ``cudaMalloc`` size of a new segment for a block of ``rounded`` bytes."""
    if rounded <= SMALL_SIZE:
        return SMALL_BUFFER
    if rounded < MIN_LARGE_ALLOC:
        return LARGE_BUFFER
    return -(-rounded // ROUND_LARGE) * ROUND_LARGE


ACTIONS = ("alloc", "free_requested", "free_completed", "segment_alloc", "segment_free", "segment_map",
           "segment_unmap", "snapshot", "oom")


class Action(enum.IntEnum):
    """Trace actions; the values are the codes of `Trace.action`."""

    ALLOC = 0
    FREE_REQUESTED = 1
    FREE_COMPLETED = 2
    SEGMENT_ALLOC = 3
    SEGMENT_FREE = 4
    SEGMENT_MAP = 5
    SEGMENT_UNMAP = 6
    SNAPSHOT = 7
    OOM = 8


# "active_awaiting_free" is the name torch's docstring uses for the state its code calls
# "active_pending_free"; the loader reads both and keeps the second.
BLOCK_STATES = ("active_allocated", "active_pending_free", "inactive")


@dataclass(frozen=True, slots=True)
class Frame:
    """One frame of a captured stack (Python or C++)."""

    filename: str
    line: int
    name: str
    extra: tuple[tuple[str, Any], ...] = ()   # other keys (e.g. the fx_* fields), sorted by name

    def label(self) -> str:
        return f"{self.filename.rsplit('/', 1)[-1]}:{self.line}:{self.name}"


@dataclass(frozen=True, slots=True)
class TorchBlock:
    """A block of a segment: allocated, freed but not yet reusable (stream-ordered), or free."""

    address: int
    size: int
    requested_size: int            # what the allocation asked for (meaningful for active blocks)
    state: str                     # one of BLOCK_STATES
    frames: tuple[Frame, ...] = ()  # where it was allocated (if recorded)
    extra: tuple[tuple[str, Any], ...] = ()

    @property
    def allocated(self) -> bool:
        return self.state == "active_allocated"

    @property
    def active(self) -> bool:
        """Not reusable yet: allocated, or freed with work still pending on another stream."""
        return self.state != "inactive"


@dataclass(frozen=True, slots=True)
class TorchSegment:
    """Memory from one ``cudaMalloc`` (or the mapped part of an expandable segment)."""

    device: int
    address: int
    total_size: int
    allocated_size: int            # sum of active_allocated block sizes
    active_size: int               # ... plus active_pending_free
    requested_size: int            # sum of requested_size over active blocks
    stream: int
    segment_type: str              # "small" (2 MiB segments of <= 1 MiB blocks) or "large"
    segment_pool_id: tuple[int, int]
    is_expandable: bool
    blocks: tuple[TorchBlock, ...]
    frames: tuple[Frame, ...] = ()
    extra: tuple[tuple[str, Any], ...] = ()

    @property
    def end(self) -> int:
        return self.address + self.total_size


@dataclass(frozen=True, slots=True)
class TraceEntry:
    """One entry of a trace, as `Trace.entry(i)` returns it (the trace itself is columns)."""

    index: int
    action: str
    addr: int                      # for "oom": 0 (see device_free)
    size: int
    stream: int
    time_us: int                   # -1 when not recorded
    frames: tuple[Frame, ...]
    device_free: int | None        # "oom" only: free bytes CUDA reported
    extra: Mapping[str, Any]


@dataclass(frozen=True, eq=False)
class Trace:
    """A device's history, oldest first, as columns of equal length (read-only arrays).

    action: int8 `Action` codes. addr: int64 (for "oom" entries: ``device_free``). size: int64 bytes
    (alloc/free: the requested size; segment_*: the segment's; oom: the rounded request; snapshot:
    total active bytes). stream, time_us (-1 when absent): int64. frame_id: int32 index into
    ``frames`` (-1: none). extras: per extra key, (distinct values, int32 index column, -1: absent).
    """

    device: int
    action: np.ndarray
    addr: np.ndarray
    size: np.ndarray
    stream: np.ndarray
    time_us: np.ndarray
    frame_id: np.ndarray
    frames: tuple[tuple[Frame, ...], ...] = ()
    extras: Mapping[str, tuple[tuple[Any, ...], np.ndarray]] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.action.shape[0])

    def count(self, action: str | Action) -> int:
        code = Action[action.upper()] if isinstance(action, str) else action
        return int(np.count_nonzero(self.action == code))

    def indices(self, action: str | Action) -> np.ndarray:
        code = Action[action.upper()] if isinstance(action, str) else action
        return np.flatnonzero(self.action == code)

    def frames_of(self, i: int) -> tuple[Frame, ...]:
        f = int(self.frame_id[i])
        return self.frames[f] if f >= 0 else ()

    def entry(self, i: int) -> TraceEntry:
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"trace entry {i} out of range: the trace has {n} entries")
        i %= n
        action = ACTIONS[int(self.action[i])]
        oom = action == "oom"
        extra = {k: vals[int(col[i])] for k, (vals, col) in self.extras.items() if col[i] >= 0}
        return TraceEntry(index=i, action=action, addr=0 if oom else int(self.addr[i]), size=int(self.size[i]),
                          stream=int(self.stream[i]), time_us=int(self.time_us[i]), frames=self.frames_of(i),
                          device_free=int(self.addr[i]) if oom else None, extra=extra)

    def __iter__(self) -> Iterator[TraceEntry]:
        for i in range(len(self)):
            yield self.entry(i)

    @property
    def nbytes(self) -> int:
        """Bytes held by the columns (the frame table and extras not counted)."""
        return sum(a.nbytes for a in (self.action, self.addr, self.size, self.stream, self.time_us, self.frame_id))


@dataclass(frozen=True, eq=False)
class TorchSnapshot:
    """A loaded snapshot. ``form``: "dict" (torch >= 2.1), "list" (a bare list of segments: no trace),
    or "dict-history" (blocks carried the legacy ``history`` instead of frames / requested_size)."""

    segments: tuple[TorchSegment, ...]
    traces: tuple[Trace, ...]
    allocator_settings: Mapping[str, Any]
    external_annotations: tuple[Any, ...] = ()
    form: str = "dict"
    source: str = "<dict>"
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def devices(self) -> tuple[int, ...]:
        """Devices with segments or trace entries, ascending."""
        found = {s.device for s in self.segments} | {t.device for t in self.traces if len(t)}
        return tuple(sorted(found))

    def segments_of(self, device: int) -> tuple[TorchSegment, ...]:
        return tuple(sorted((s for s in self.segments if s.device == device), key=lambda s: s.address))

    def trace_of(self, device: int) -> Trace | None:
        for t in self.traces:
            if t.device == device:
                return t
        return None

    @property
    def num_entries(self) -> int:
        return sum(len(t) for t in self.traces)
