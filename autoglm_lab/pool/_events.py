"""A bounded ring buffer of what happened in the pool (alloc, free, failure, grow, compaction).

The compiled core (`_core.EventRing`) writes events into a C array of packed records; this module's
`EventRing` is its pure-Python twin (tuples in a ``deque(maxlen=...)``). Either way they become numpy
columns only when a snapshot is taken (`EventArrays.from_rows`).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from enum import IntEnum

import numpy as np

__all__ = ["EVENT_RECORD", "EventArrays", "EventKind", "EventRing", "EventRow", "EventRows"]

#: (time_s, kind, block_id, pages, latency_s, info)
EventRow = tuple[float, int, int, int, float, int]
#: what a ring's ``rows()`` gives: packed `EVENT_RECORD` bytes (compiled ring) or tuples (Python ring)
EventRows = bytes | tuple[EventRow, ...]


class EventKind(IntEnum):
    ALLOC = 0
    FREE = 1
    FAIL = 2
    GROW = 3
    RELEASE = 4
    COMPACT = 5
    CONFIG = 6
    STEP = 7  # a serving-step record published by the simulator


# reason codes of COMPACT events (their `info` field)
COMPACT_REASONS = ("manual", "free_ratio", "consecutive_failures", "periodic", "alloc_failure")


@dataclass(frozen=True)
class EventArrays:
    """The event ring as columns. ``latency_s`` is the measured duration (pause for COMPACT)."""

    time_s: np.ndarray      # float64, seconds since the pool was created
    kind: np.ndarray        # uint8, EventKind
    block_id: np.ndarray    # int64, -1 when not about one block
    pages: np.ndarray       # int64, pages allocated/freed/requested/moved
    latency_s: np.ndarray   # float64
    info: np.ndarray        # int64, kind-specific (COMPACT: index in COMPACT_REASONS; STEP: tokens)

    def __len__(self) -> int:
        return int(self.kind.shape[0])

    @staticmethod
    def from_rows(rows: EventRows) -> EventArrays:
        """Columns from ``EventRing.rows()``: packed records (compiled ring) or tuples (Python ring)."""
        if isinstance(rows, bytes | bytearray | memoryview):
            rec = np.frombuffer(rows, dtype=EVENT_RECORD)
            return EventArrays(*(rec[name].astype(t) for name, t in zip(_NAMES, _DTYPES, strict=True)))
        if not rows:
            return EventArrays(*(np.zeros(0, dtype=t) for t in _DTYPES))
        cols = list(zip(*rows, strict=True))
        return EventArrays(*(np.asarray(c, dtype=t) for c, t in zip(cols, _DTYPES, strict=True)))


_NAMES = ("time_s", "kind", "block_id", "pages", "latency_s", "info")
_DTYPES = (np.float64, np.uint8, np.int64, np.int64, np.float64, np.int64)
# one event as the compiled ring packs it (struct Event in _core.c)
EVENT_RECORD = np.dtype(list(zip(_NAMES, ("<f8", "<i8", "<i8", "<i8", "<f8", "<i8"), strict=True)))


class EventRing:
    """Fixed-capacity ring of ``(time_s, kind, block_id, pages, latency_s, info)`` tuples.

    ``total`` counts the events ever recorded, so readers can tell what they missed. The compiled
    twin is `_core.EventRing` (its ``rows()`` are packed records).
    """

    def __init__(self, capacity: int) -> None:
        self._ring: deque[EventRow] = deque(maxlen=capacity)
        self.total = 0

    @property
    def capacity(self) -> int:
        return self._ring.maxlen or 0

    def record(self, event: EventRow) -> None:
        self._ring.append(event)
        self.total += 1

    def resize(self, capacity: int) -> None:
        self._ring = deque(self._ring, maxlen=capacity)

    def __len__(self) -> int:
        return len(self._ring)

    def rows(self) -> tuple[EventRow, ...]:
        """A copy of the ring, oldest first (about 50 us for 4096 events)."""
        return tuple(self._ring)
