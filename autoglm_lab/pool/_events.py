"""A bounded ring buffer of what happened in the pool (alloc, free, failure, grow, compaction).

Events are tuples appended to a ``deque(maxlen=...)`` on the hot path (about 50 ns) and turned into
numpy arrays only when a snapshot is taken.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from enum import IntEnum

import numpy as np

__all__ = ["EventKind", "EventRing", "EventArrays"]


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
    def from_rows(rows: tuple[tuple[float, int, int, int, float, int], ...]) -> EventArrays:
        if not rows:
            return EventArrays(*(np.zeros(0, dtype=t) for t in _DTYPES))
        cols = list(zip(*rows, strict=True))
        return EventArrays(*(np.asarray(c, dtype=t) for c, t in zip(cols, _DTYPES, strict=True)))


_DTYPES = (np.float64, np.uint8, np.int64, np.int64, np.float64, np.int64)


class EventRing:
    """Fixed-capacity ring of ``(time_s, kind, block_id, pages, latency_s, info)`` tuples.

    ``append`` is the deque's own bound method (no Python frame on the hot path); whoever appends
    also adds 1 to ``total``, the count of events ever recorded, so readers can tell what they missed.
    """

    def __init__(self, capacity: int) -> None:
        self._ring: deque[tuple[float, int, int, int, float, int]] = deque(maxlen=capacity)
        self.append = self._ring.append
        self.total = 0

    @property
    def capacity(self) -> int:
        return self._ring.maxlen or 0

    def record(self, event: tuple[float, int, int, int, float, int]) -> None:
        self._ring.append(event)
        self.total += 1

    def resize(self, capacity: int) -> None:
        self._ring = deque(self._ring, maxlen=capacity)
        self.append = self._ring.append

    def rows(self) -> tuple[tuple[float, int, int, int, float, int], ...]:
        """A copy of the ring, oldest first (about 50 us for 4096 events)."""
        return tuple(self._ring)
