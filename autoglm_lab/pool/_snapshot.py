"""`PoolSnapshot`: the versioned record every view reads (widget, CLI, reports, tests).

Schema (version 1). All arrays are numpy and owned by the snapshot (copies, safe to keep):

```
per page (num_pages,)          page_state uint8   PageState: FREE, USED, TAIL (last page, partly
                                                  used: internal waste), PINNED, CACHED
                               page_block int64   owning block id, -1 when free
                               page_tag   int32   index into `tags`, -1 when free or untagged
                               page_segment int32 position of the page's segment
per segment (num_segments,)    segment_first_page, segment_num_pages  int64
per block (num_blocks,)        block_id, block_first_page, block_num_pages, block_nbytes int64,
  (sorted by first page)       block_tag int32, block_pinned bool, block_created_s float64,
                               block_cached bool (evictable cache no running request references)
events                         EventArrays (time_s, kind, block_id, pages, latency_s, info)
tags                           tuple: the name of each tag id; None for an id no live block carries
                               (ids are reused once their last block is freed)
```

``seq`` counts the pool's mutations: two snapshots with the same ``seq`` show the same state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from functools import cached_property

import numpy as np

from ._events import EventArrays, EventRows
from ._stats import PoolStats

__all__ = ["HEAT_METRICS", "PoolSnapshot", "PageState", "SNAPSHOT_VERSION", "free_runs", "page_index"]

SNAPSHOT_VERSION = 2  # 2: block_cached and PageState.CACHED
HEAT_METRICS = ("free", "holes")  # what `PoolSnapshot.bucket_fractions` measures per address bucket


class PageState(IntEnum):
    FREE = 0
    USED = 1
    TAIL = 2
    PINNED = 3
    CACHED = 4  # a cached block's pages: evictable, no running request references them


@dataclass(frozen=True)
class PoolSnapshot:
    """An immutable record of the pool at one moment. The block table is copied when the snapshot is
    taken; the per-page columns and the event columns are derived from those copies on first access
    (and cached), so a view that only reads ``page_state`` never pays for ``page_block``."""

    version: int
    seq: int
    time_s: float
    page_size: int
    device: str
    num_pages: int
    segment_first_page: np.ndarray
    segment_num_pages: np.ndarray
    block_id: np.ndarray
    block_first_page: np.ndarray
    block_num_pages: np.ndarray
    block_nbytes: np.ndarray
    block_tag: np.ndarray
    block_pinned: np.ndarray
    block_created_s: np.ndarray
    block_cached: np.ndarray
    tags: tuple[str | None, ...]
    stats: PoolStats
    events_total: int
    event_rows: EventRows = field(repr=False)  # read them as `events`

    @property
    def num_blocks(self) -> int:
        return int(self.block_id.shape[0])

    @cached_property
    def _page_index(self) -> np.ndarray:
        """0 for a free page, k + 1 for a page of the k-th block (in first-page order)."""
        return page_index(self.num_pages, self.block_first_page, self.block_num_pages)

    @cached_property
    def page_state(self) -> np.ndarray:
        """uint8 `PageState` per page: FREE, USED, TAIL (last page, partly used), PINNED, CACHED."""
        n = self.num_blocks
        block_state = np.full(n + 1, PageState.USED, dtype=np.uint8)
        block_state[0] = PageState.FREE
        if n:
            block_state[1:][self.block_cached] = PageState.CACHED
            block_state[1:][self.block_pinned] = PageState.PINNED
        # repeat the states straight into pages (uint8): no page index needed for the page map
        values = np.zeros(2 * n + 1, dtype=np.uint8)
        values[1::2] = block_state[1:]
        state = np.repeat(values, _run_lengths(self.num_pages, self.block_first_page, self.block_num_pages))
        if n:
            ends = self.block_first_page + self.block_num_pages
            tail = (self.block_num_pages * self.page_size > self.block_nbytes) & ~self.block_pinned \
                & ~self.block_cached
            state[ends[tail] - 1] = PageState.TAIL
        return state

    @cached_property
    def page_block(self) -> np.ndarray:
        """int64 owning block id per page, -1 when free."""
        out: np.ndarray = np.concatenate(([-1], self.block_id))[self._page_index]  # indexing beats take() here
        return out

    @cached_property
    def page_tag(self) -> np.ndarray:
        """int32 index into ``tags`` per page, -1 when free or untagged."""
        out: np.ndarray = np.concatenate(([-1], self.block_tag)).astype(np.int32)[self._page_index]
        return out

    @cached_property
    def page_segment(self) -> np.ndarray:
        """int32 position of the page's segment."""
        return np.repeat(np.arange(self.segment_first_page.shape[0], dtype=np.int32), self.segment_num_pages)

    @cached_property
    def events(self) -> EventArrays:
        """The recent events (oldest first) as columns."""
        return EventArrays.from_rows(self.event_rows)

    def free_runs(self) -> tuple[np.ndarray, np.ndarray]:
        """(starts, lengths) of the maximal free runs, never crossing a segment boundary."""
        return free_runs(self.page_state == PageState.FREE, self.segment_first_page)

    def bucket_fractions(self, buckets: int, metric: str = "free") -> np.ndarray:
        """One float64 per address bucket (``buckets`` equal ranges of pages), the heatmap's column:
        ``"free"`` the bucket's free fraction, ``"holes"`` the free runs starting in it per half its
        pages, capped at 1 (many small holes: fragmented). NaN for an empty bucket (more buckets
        than pages). The dashboard's heatmap and the HTML report both draw this."""
        if metric not in HEAT_METRICS:
            raise ValueError(f"metric={metric!r} is not allowed: choose one of {HEAT_METRICS}")
        n = self.num_pages
        free = self.page_state == PageState.FREE
        if metric == "free" and n and n % buckets == 0:  # equal buckets (the usual power-of-two pools)
            counts: np.ndarray = np.count_nonzero(free.reshape(buckets, n // buckets), axis=1)
            return counts / (n // buckets)
        edges = np.linspace(0, n, buckets + 1).astype(np.int64)
        sizes = np.diff(edges)
        if metric == "free":
            cum = np.concatenate(([0], np.cumsum(free)))
            value = (cum[edges[1:]] - cum[edges[:-1]]) / np.maximum(sizes, 1)
        else:
            starts, _ = self.free_runs()
            counts = np.bincount(np.searchsorted(edges, starts, side="right") - 1, minlength=buckets)[:buckets]
            value = np.minimum(counts / np.maximum(sizes / 2, 1), 1.0)
        return np.where(sizes > 0, value, np.nan)


def _run_lengths(num_pages: int, starts: np.ndarray, pages: np.ndarray) -> np.ndarray:
    """Lengths of gap, block 0, gap, block 1, ..., gap: the runs that tile the pool."""
    n = starts.shape[0]
    lengths = np.empty(2 * n + 1, dtype=np.int64)
    if n:
        ends = starts + pages
        lengths[0] = starts[0]
        lengths[2:-1:2] = starts[1:] - ends[:-1]
        lengths[-1] = num_pages - ends[-1]
        lengths[1::2] = pages
    else:
        lengths[0] = num_pages
    return lengths


def page_index(num_pages: int, starts: np.ndarray, pages: np.ndarray) -> np.ndarray:
    """Per page: 0 when free, k + 1 for a page of block k (blocks sorted by start, not overlapping).
    One ``np.repeat`` of interleaved gaps and blocks: O(pages + blocks), no Python loop."""
    n = starts.shape[0]
    values = np.zeros(2 * n + 1, dtype=np.int32)
    values[1::2] = np.arange(1, n + 1, dtype=np.int32)
    return np.repeat(values, _run_lengths(num_pages, starts, pages))


def free_runs(free: np.ndarray, segment_first_page: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Maximal runs of True in ``free`` that do not cross a segment start."""
    n = free.shape[0]
    brk = np.zeros(n + 1, dtype=bool)
    brk[segment_first_page] = True
    brk[n] = True
    prev_free = np.concatenate(([False], free[:-1]))
    next_free = np.concatenate((free[1:], [False]))
    starts = np.flatnonzero(free & (~prev_free | brk[:n]))
    ends = np.flatnonzero(free & (~next_free | brk[1:])) + 1
    return starts.astype(np.int64), (ends - starts).astype(np.int64)
