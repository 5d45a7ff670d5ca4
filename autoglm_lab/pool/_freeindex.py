"""The free-run index: which runs of pages are free, found by best fit or first fit.

Pages are numbered globally across segments; runs never cross a segment boundary (``barriers``).

```
  starts   {start: length}            one entry per indexed free run
  ends     {start + length: start}    to find the left neighbour on free (eager coalescing)
  by_len   {length: {start: None}}    an ordered set of runs per length
  lens     [l0 < l1 < ...]            the distinct lengths, sorted: best fit is one C bisect
  tree     max-segment tree over run starts, kept only while fit == "first"
```

Best fit costs a bisect over the distinct lengths (few: at most about sqrt(2 * free pages)) and a
handful of dict operations. First fit descends a max tree, O(log pages), with early exit on update.
With lazy coalescing, freed runs are indexed as they are and neighbours are merged only when an
allocation finds no run long enough (``merge_all``).
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, insort
from collections.abc import Iterable

import numpy as np

__all__ = ["FreeRunIndex"]


class FreeRunIndex:
    def __init__(self, fit: str = "best") -> None:
        self.starts: dict[int, int] = {}
        self.ends: dict[int, int] = {}
        self.by_len: dict[int, dict[int, None]] = {}
        self.lens: list[int] = []
        self.barriers: set[int] = set()
        self.free_pages = 0
        self.total_pages = 0
        self.dirty = False  # lazy frees may have left neighbouring runs unmerged
        self._fit = fit
        self._tree: list[int] | None = None
        self._leaves = 0

    # ------------------------------------------------------------------ layout
    def reset(self, total_pages: int, barriers: Iterable[int], runs: Iterable[tuple[int, int]]) -> None:
        """Rebuild from scratch (after segments are released); ``runs`` are taken as merged."""
        self.starts.clear()
        self.ends.clear()
        self.by_len.clear()
        self.lens.clear()
        self.barriers = set(barriers)
        self.total_pages = total_pages
        self.free_pages = 0
        self.dirty = False
        self._tree = None
        for start, length in runs:
            self._insert(start, length)
        self._maybe_build_tree()

    @property
    def fit(self) -> str:
        return self._fit

    @fit.setter
    def fit(self, fit: str) -> None:
        self._fit = fit
        self._tree = None
        self._maybe_build_tree()

    def _maybe_build_tree(self) -> None:
        if self._fit != "first":
            self._tree = None
            return
        leaves = 1
        while leaves < max(1, self.total_pages):
            leaves <<= 1
        tree = np.zeros(2 * leaves, dtype=np.int64)
        if self.starts:
            keys = np.fromiter(self.starts.keys(), dtype=np.int64, count=len(self.starts))
            vals = np.fromiter(self.starts.values(), dtype=np.int64, count=len(self.starts))
            tree[leaves + keys] = vals
        level = leaves
        while level > 1:
            children = tree[level:2 * level].reshape(-1, 2)
            tree[level // 2:level] = children.max(axis=1)
            level //= 2
        self._tree = tree.tolist()
        self._leaves = leaves

    # ------------------------------------------------------------------ primitives
    def _insert(self, start: int, length: int) -> None:
        self.starts[start] = length
        self.ends[start + length] = start
        bucket = self.by_len.get(length)
        if bucket is None:
            self.by_len[length] = {start: None}
            insort(self.lens, length)
        else:
            bucket[start] = None
        self.free_pages += length
        if self._tree is not None:
            self._tree_set(start, length)

    def _delete(self, start: int) -> int:
        length = self.starts.pop(start)
        del self.ends[start + length]
        bucket = self.by_len[length]
        del bucket[start]
        if not bucket:
            del self.by_len[length]
            del self.lens[bisect_left(self.lens, length)]
        self.free_pages -= length
        if self._tree is not None:
            self._tree_set(start, 0)
        return length

    def _tree_set(self, pos: int, value: int) -> None:
        tree = self._tree
        assert tree is not None
        i = pos + self._leaves
        tree[i] = value
        i >>= 1
        while i:
            a = tree[2 * i]
            b = tree[2 * i + 1]
            m = a if a > b else b
            if tree[i] == m:
                break
            tree[i] = m
            i >>= 1

    # ------------------------------------------------------------------ queries
    def find(self, pages: int) -> int:
        """Start of the run an allocation of ``pages`` would take, or -1. Changes nothing."""
        if self._fit == "first":
            tree = self._tree
            assert tree is not None
            if tree[1] < pages:
                return -1
            i = 1
            leaves = self._leaves
            while i < leaves:
                i <<= 1
                if tree[i] < pages:
                    i += 1
            return i - leaves
        lens = self.lens
        i = bisect_left(lens, pages)
        if i == len(lens):
            return -1
        return next(reversed(self.by_len[lens[i]]))  # the run `take` would pick

    def take(self, pages: int) -> int:
        """Remove ``pages`` from the front of the run chosen by the fit policy; -1 if none fits."""
        if self._fit == "first":
            start = self.find(pages)
            if start >= 0:
                length = self._delete(start)
                if length > pages:
                    self._insert(start + pages, length - pages)
            return start
        # best fit, inlined: this is the allocator's hot path
        lens = self.lens
        i = bisect_left(lens, pages)
        if i == len(lens):
            return -1
        length = lens[i]
        bucket = self.by_len[length]
        start = bucket.popitem()[0]  # the most recently freed run of that length
        if not bucket:
            del self.by_len[length]
            del lens[i]
        del self.starts[start]
        del self.ends[start + length]
        self.free_pages -= length
        if length > pages:
            self._insert(start + pages, length - pages)
        return start

    def largest(self) -> int:
        return self.lens[-1] if self.lens else 0

    def __len__(self) -> int:
        return len(self.starts)

    def runs(self) -> list[tuple[int, int]]:
        return sorted(self.starts.items())

    def lengths(self) -> array[int]:
        """The length of every indexed run, in no particular order (int64 buffer)."""
        return array("q", self.starts.values())

    # ------------------------------------------------------------------ updates
    def add_segment(self, first: int, num_pages: int) -> None:
        """Index a new segment of ``num_pages`` free pages after the last one."""
        if first != self.total_pages or num_pages < 1:
            raise ValueError(f"a segment must start at page {self.total_pages} and hold >= 1 page")
        self.total_pages += num_pages
        self.barriers.add(first)
        self.barriers.add(first + num_pages)
        if self._fit == "first":
            self._maybe_build_tree()
        self._insert(first, num_pages)

    def release(self, start: int, length: int, merge: bool) -> None:
        """Index ``length`` pages at ``start`` as free, merging with free neighbours if ``merge``."""
        end = start + length
        if start < 0 or length < 1 or end > self.total_pages or start in self.starts or end in self.ends:
            raise ValueError(f"cannot release pages {start}..{end}: outside the pool or already free")
        if merge:
            if start not in self.barriers:
                left = self.ends.get(start)
                if left is not None:
                    self._delete(left)
                    start = left
            if end not in self.barriers and end in self.starts:
                end += self._delete(end)
        elif not self.dirty and ((start in self.ends and start not in self.barriers)
                                 or (end in self.starts and end not in self.barriers)):
            self.dirty = True
        self._insert(start, end - start)

    def carve(self, start: int, length: int) -> None:
        """Mark ``[start, start + length)`` used; it must lie inside one indexed run."""
        run_start = start
        while run_start not in self.starts:  # the planner places blocks at run starts: rarely loops
            run_start -= 1
            if run_start < 0:
                raise AssertionError(f"pages {start}..{start + length} are not inside a free run")
        run_end = run_start + self.starts[run_start]
        if start + length > run_end:  # also when start lies past the run found on the left
            raise AssertionError(f"pages {start}..{start + length} are not inside free run {run_start}..{run_end}")
        self._delete(run_start)
        if start > run_start:
            self._insert(run_start, start - run_start)
        if run_end > start + length:
            self._insert(start + length, run_end - start - length)

    def merged_runs(self) -> list[tuple[int, int]]:
        """The maximal free runs (neighbours merged, barriers respected), sorted by start."""
        out: list[tuple[int, int]] = []
        for start, length in sorted(self.starts.items()):
            if out and out[-1][0] + out[-1][1] == start and start not in self.barriers:
                out[-1] = (out[-1][0], out[-1][1] + length)
            else:
                out.append((start, length))
        return out

    def check(self) -> None:
        """Raise AssertionError if the index's own structures disagree."""
        prev_end = 0
        for start, length in sorted(self.starts.items()):
            if length <= 0 or start < prev_end or start + length > self.total_pages:
                raise AssertionError(f"free index: run {start}+{length} overlaps or lies outside the pool")
            if any(b in self.barriers for b in range(start + 1, start + length)):
                raise AssertionError(f"free index: run {start}+{length} crosses a segment boundary")
            if self.ends.get(start + length) != start:
                raise AssertionError(f"free index: end of run {start} not recorded")
            prev_end = start + length
        if len(self.ends) != len(self.starts) or sum(self.starts.values()) != self.free_pages:
            raise AssertionError("free index: run count or free pages disagree")
        for length, bucket in self.by_len.items():
            if not bucket or any(self.starts.get(s) != length for s in bucket):
                raise AssertionError("free index: length buckets disagree with the runs")
        if sorted(self.by_len) != self.lens or sum(map(len, self.by_len.values())) != len(self.starts):
            raise AssertionError("free index: sorted length list disagrees with the buckets")
        if self._tree is not None:
            fresh = FreeRunIndex("first")
            fresh.reset(self.total_pages, self.barriers, self.starts.items())
            if fresh._tree != self._tree:
                raise AssertionError("free index: first-fit tree disagrees with the runs")

    def merge_all(self) -> bool:
        """Merge every pair of neighbouring runs (the lazy merge). True if anything merged."""
        if not self.dirty:
            return False
        merged = self.merged_runs()
        changed = len(merged) != len(self.starts)
        self.reset(self.total_pages, self.barriers, merged)
        self.dirty = False
        return changed
