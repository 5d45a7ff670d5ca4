"""`Layout`: the pure-data view of a pool that the planner reads (no torch, no locks)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from ..pool import PagedPool

__all__ = ["Layout", "SegmentLayout", "layout_of"]


@dataclass(frozen=True)
class SegmentLayout:
    """One segment: global page range and its blocks sorted by first page."""

    first_page: int
    num_pages: int
    block_id: np.ndarray     # int64
    start: np.ndarray        # int64, global first page
    pages: np.ndarray        # int64
    pinned: np.ndarray       # bool

    @property
    def end_page(self) -> int:
        return self.first_page + self.num_pages

    @property
    def live_pages(self) -> int:
        return int(self.pages.sum())

    def holes(self) -> list[tuple[int, int]]:
        """Maximal free runs (start, length) in address order."""
        ends = self.start + self.pages
        gap_starts = np.concatenate(([self.first_page], ends))
        gap_ends = np.concatenate((self.start, [self.end_page]))
        keep = gap_ends > gap_starts
        return list(zip(gap_starts[keep].tolist(), (gap_ends - gap_starts)[keep].tolist(), strict=True))

    def lower_bound_pages(self) -> int:
        """Unpinned live pages above the prefix that all live pages would fill."""
        limit = self.first_page + self.live_pages
        over = np.clip(self.start + self.pages - np.maximum(self.start, limit), 0, None)
        return int(over[~self.pinned].sum())


@dataclass(frozen=True)
class Layout:
    page_size: int
    segments: tuple[SegmentLayout, ...]

    @staticmethod
    def from_blocks(page_size: int, segments: list[tuple[int, int]],
                    blocks: list[tuple[int, int, int, bool]]) -> Layout:
        """Build from plain tuples: segments (first_page, num_pages); blocks (id, start, pages, pinned)."""
        arr = np.asarray(blocks, dtype=np.int64).reshape(-1, 4)
        return Layout.from_arrays(page_size, segments, arr[:, 0], arr[:, 1], arr[:, 2], arr[:, 3] > 0)

    @staticmethod
    def from_arrays(page_size: int, segments: list[tuple[int, int]], ids: np.ndarray, start: np.ndarray,
                    pages: np.ndarray, pinned: np.ndarray) -> Layout:
        """Build from columns (a block table's): block ids, first pages, pages and pinned flags, in any
        order; segments (first_page, num_pages)."""
        order = np.argsort(start, kind="stable")
        ids, start, pages, pinned = ids[order], start[order], pages[order], pinned[order]
        out = []
        for first, num in segments:
            lo, hi = np.searchsorted(start, [first, first + num])
            out.append(SegmentLayout(first, num, ids[lo:hi], start[lo:hi], pages[lo:hi], pinned[lo:hi]))
        return Layout(page_size, tuple(out))

    def lower_bound_pages(self) -> int:
        return sum(s.lower_bound_pages() for s in self.segments)


def layout_of(pool: PagedPool) -> Layout:
    """The pool's current layout (call with the pool's lock held)."""
    bid, start, pages, _nbytes, _tag, pins, _created = pool.block_table()
    segments = [(s.first_page, s.num_pages) for s in pool.segment_storage()]
    return Layout.from_arrays(pool.page_size, segments, bid, start, pages, pins > 0)
