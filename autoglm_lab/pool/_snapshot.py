"""`PoolSnapshot`: the versioned record every view reads (widget, CLI, reports, tests).

Schema (version 1). All arrays are numpy and owned by the snapshot (copies, safe to keep):

```
per page (num_pages,)          page_state uint8   PageState: FREE, USED, TAIL (last page, partly
                                                  used: internal waste), PINNED
                               page_block int64   owning block id, -1 when free
                               page_tag   int32   index into `tags`, -1 when free or untagged
                               page_segment int32 position of the page's segment
per segment (num_segments,)    segment_first_page, segment_num_pages  int64
per block (num_blocks,)        block_id, block_first_page, block_num_pages, block_nbytes int64,
  (sorted by first page)       block_tag int32, block_pinned bool, block_created_s float64
events                         EventArrays (time_s, kind, block_id, pages, latency_s, info)
```

``seq`` counts the pool's mutations: two snapshots with the same ``seq`` show the same state.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from ._events import EventArrays
from ._stats import PoolStats

__all__ = ["PoolSnapshot", "PageState", "SNAPSHOT_VERSION", "build_page_arrays", "free_runs"]

SNAPSHOT_VERSION = 1


class PageState(IntEnum):
    FREE = 0
    USED = 1
    TAIL = 2
    PINNED = 3


@dataclass(frozen=True)
class PoolSnapshot:
    version: int
    seq: int
    time_s: float
    page_size: int
    device: str
    page_state: np.ndarray
    page_block: np.ndarray
    page_tag: np.ndarray
    page_segment: np.ndarray
    segment_first_page: np.ndarray
    segment_num_pages: np.ndarray
    block_id: np.ndarray
    block_first_page: np.ndarray
    block_num_pages: np.ndarray
    block_nbytes: np.ndarray
    block_tag: np.ndarray
    block_pinned: np.ndarray
    block_created_s: np.ndarray
    tags: tuple[str, ...]
    stats: PoolStats
    events: EventArrays
    events_total: int

    @property
    def num_pages(self) -> int:
        return int(self.page_state.shape[0])

    @property
    def num_blocks(self) -> int:
        return int(self.block_id.shape[0])

    def free_runs(self) -> tuple[np.ndarray, np.ndarray]:
        """(starts, lengths) of the maximal free runs, never crossing a segment boundary."""
        return free_runs(self.page_state == PageState.FREE, self.segment_first_page)


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


def build_page_arrays(num_pages: int, starts: np.ndarray, pages: np.ndarray, ids: np.ndarray,
                      tags: np.ndarray, pinned: np.ndarray, tail_partial: np.ndarray,
                      seg_first: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-page arrays from the block table in O(pages + blocks) numpy work (no Python loop)."""
    ends = starts + pages
    # Blocks never overlap, so a difference array + cumsum paints each block's pages with a value.
    def paint(values: np.ndarray, fill: int, dtype: type) -> np.ndarray:
        diff = np.zeros(num_pages + 1, dtype=np.int64)
        v = values.astype(np.int64) - fill
        diff[starts] += v  # starts are distinct, and so are ends
        diff[ends] -= v
        return (np.cumsum(diff[:-1]) + fill).astype(dtype)
    page_block = paint(ids, -1, np.int64)
    page_tag = paint(tags, -1, np.int32)
    state = np.where(page_block >= 0, np.uint8(PageState.USED), np.uint8(PageState.FREE)).astype(np.uint8)
    if starts.size:
        last = ends[tail_partial] - 1
        state[last] = PageState.TAIL
        pin_mark = paint(pinned.astype(np.int64), 0, np.int64)
        state[pin_mark > 0] = PageState.PINNED
    seg_mark = np.zeros(num_pages + 1, dtype=np.int32)
    if seg_first.size > 1:
        seg_mark[seg_first[1:]] = 1
    page_segment = np.cumsum(seg_mark[:-1], dtype=np.int32)
    return state, page_block, page_tag, page_segment
