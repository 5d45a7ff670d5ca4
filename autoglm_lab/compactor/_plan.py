"""Compaction planning: pure functions from a `Layout` to a `Plan` of block moves.

A plan is a sequence of stages. Moves inside an *independent* stage touch disjoint pages (every
destination was free when planning started and no source is another move's destination), so they
can run in any order or as one batched gather/scatter. A *sequential* stage (sliding) must run in
order: a move may write pages that an earlier move of the stage vacated, or overlap its own source.

```
two_finger   fill the lowest holes with the highest blocks that fit (independent), then slide what
             is left (sequential): one free run per segment, bar pinned blocks. Which filling block
             lands in which place is free (order is not kept): they are paired in address order, so
             neighbouring blocks land next to each other and copy as one range
sliding      keep address order (Lisp2): every block after the first hole slides down (sequential)
targeted(n)  evacuate the cheapest window of n pages into holes elsewhere (independent)
```
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from ..pool import COMPACTION_STRATEGIES
from ._layout import Layout, SegmentLayout

__all__ = ["Move", "Stage", "Plan", "plan", "plan_two_finger", "plan_sliding", "plan_slide_from", "plan_targeted",
           "STRATEGIES"]

#: every strategy the planner knows: the pool config's whole-pool ones, and "targeted" (one free run
#: of a requested length, what the failure triggers ask for)
STRATEGIES = (*COMPACTION_STRATEGIES, "targeted")


class Move(NamedTuple):
    """One block's move. A named tuple, not a dataclass: plans make one per moved block, and at a
    million pages creating them was a third of the planning time."""

    block_id: int
    src_page: int
    dst_page: int
    pages: int


@dataclass(frozen=True)
class Stage:
    moves: tuple[Move, ...]
    independent: bool


@dataclass(frozen=True)
class Plan:
    strategy: str
    stages: tuple[Stage, ...]
    lower_bound_pages: int          # fewest pages any plan reaching the same goal must move
    unreachable: str | None = None  # why the goal cannot be reached (pins, no room), if so
    target_pages: int | None = None  # targeted: the run length asked for
    notes: tuple[str, ...] = field(default=())

    @property
    def moves(self) -> tuple[Move, ...]:
        return tuple(m for s in self.stages for m in s.moves)

    @property
    def pages_moved(self) -> int:
        return sum(m.pages for s in self.stages for m in s.moves)

    def only(self, keep: list[bool]) -> Plan:
        """This plan with the moves whose flag in ``keep`` (one per move, in order) is false left out."""
        flags = iter(keep)
        stages = tuple(Stage(moves, s.independent) for s in self.stages
                       if (moves := tuple(m for m in s.moves if next(flags))))
        return Plan(self.strategy, stages, self.lower_bound_pages, self.unreachable, self.target_pages, self.notes)

    def cut(self, budget_pages: int | None) -> tuple[Plan, Plan]:
        """(first step, rest): the longest prefix of moves within ``budget_pages``. A block larger
        than the budget moves alone in its own step, since a block's move cannot be split."""
        if budget_pages is None:
            return self, Plan(self.strategy, (), self.lower_bound_pages, self.unreachable, self.target_pages)
        head: list[Stage] = []
        tail: list[Stage] = []
        used = 0
        full = False
        for stage in self.stages:
            if full:
                tail.append(stage)
                continue
            take = 0
            for m in stage.moves:
                if used + m.pages > budget_pages and (used or take):
                    full = True
                    break
                used += m.pages
                take += 1
            if take:
                head.append(Stage(stage.moves[:take], stage.independent))
            if take < len(stage.moves):
                tail.append(Stage(stage.moves[take:], stage.independent))
                full = True
        first = Plan(self.strategy, tuple(head), self.lower_bound_pages, self.unreachable, self.target_pages)
        rest = Plan(self.strategy, tuple(tail), self.lower_bound_pages, self.unreachable, self.target_pages)
        return first, rest


def plan(layout: Layout, strategy: str = "two_finger", *, num_pages: int | None = None) -> Plan:
    whole = WHOLE_POOL_PLANNERS.get(strategy)
    if whole is not None:
        return whole(layout)
    if strategy == "targeted":
        if num_pages is None:
            raise ValueError("strategy='targeted' needs num_pages: the length of the free run to make")
        return plan_targeted(layout, num_pages)
    raise ValueError(f"strategy={strategy!r} is not allowed: choose one of {', '.join(map(repr, STRATEGIES))}")


# ---------------------------------------------------------------------------------------- two finger
class _FirstFitHoles:
    """Holes in address order with a max tree over their lengths: lowest hole of length >= n."""

    def __init__(self, holes: list[tuple[int, int]]) -> None:
        self.start = [h[0] for h in holes]
        self.length = [h[1] for h in holes]
        size = 1
        while size < max(1, len(holes)):
            size <<= 1
        self.size = size
        tree = [0] * (2 * size)
        tree[size:size + len(holes)] = self.length
        for i in range(size - 1, 0, -1):
            a, b = tree[2 * i], tree[2 * i + 1]
            tree[i] = a if a > b else b
        self.tree = tree
        self._first = 0

    def first(self) -> int:
        """The lowest hole not yet filled, or -1: holes only shrink, so this only moves up."""
        length = self.length
        i = self._first
        while i < len(length) and not length[i]:
            i += 1
        self._first = i
        return i if i < len(length) else -1

    def lowest(self, pages: int) -> int:
        tree = self.tree
        if tree[1] < pages:
            return -1
        i = 1
        while i < self.size:
            i <<= 1
            if tree[i] < pages:
                i += 1
        return i - self.size

    def take_front(self, i: int, pages: int) -> int:
        start = self.start[i]
        self.start[i] = start + pages
        self.length[i] -= pages
        tree = self.tree
        j = i + self.size
        tree[j] = self.length[i]
        j >>= 1
        while j:
            a, b = tree[2 * j], tree[2 * j + 1]
            m = a if a > b else b
            if tree[j] == m:
                break
            tree[j] = m
            j >>= 1
        return start


def _fill_phase(seg: SegmentLayout, *,
                only_above_prefix: bool) -> tuple[list[Move], tuple[np.ndarray, np.ndarray] | None]:
    """Fill the lowest holes with the highest blocks that fit. With ``only_above_prefix`` only blocks
    reaching past the prefix that all live pages would fill are moved (the classic two-finger)."""
    holes = _FirstFitHoles(seg.holes())
    moved: list[int] = []  # indices into the segment's blocks, highest first
    places: list[int] = []
    starts, pages, pinned = seg.start.tolist(), seg.pages.tolist(), seg.pinned.tolist()
    limit = seg.first_page + seg.live_pages if only_above_prefix else -1
    for k in range(len(starts) - 1, -1, -1):
        s = starts[k]
        if s + pages[k] <= limit:
            break  # this block and all below it already lie in the prefix
        first = holes.first()
        if first < 0 or holes.start[first] >= s:
            break  # no hole below this block, nor below any lower block
        if pinned[k]:
            continue
        p = pages[k]
        i = first if holes.length[first] >= p else holes.lowest(p)
        if i < 0 or holes.start[i] >= s:
            continue
        moved.append(k)
        places.append(holes.take_front(i, p))
    if not moved:
        return [], None
    idx = np.asarray(moved, dtype=np.int64)
    ids, src, size = seg.block_id[idx], seg.start[idx], seg.pages[idx]
    dst = _pair_in_address_order(src, np.asarray(places, dtype=np.int64), size)
    moves = list(map(Move._make, zip(ids.tolist(), src.tolist(), dst.tolist(), size.tolist(), strict=True)))
    return moves, (idx, dst)  # the moved blocks (indices into the segment's arrays) and their new places


def _pair_in_address_order(src: np.ndarray, dst: np.ndarray, size: np.ndarray) -> np.ndarray:
    """Re-pair the blocks that fill holes with the places they were given, size class by size class:
    the k-th lowest block of a size goes to the k-th lowest place of that size (returns each block's
    new place). The blocks moved and the pages they land on stay the same (so does every count),
    every block still moves down (a matching with every place below its block stays so when both
    sides are sorted), but runs of neighbouring blocks now land in neighbouring places and copy as
    one range. The moves keep their order, highest source first (a budgeted step still empties the
    top first)."""
    by_src = np.lexsort((src, size))  # size class, then address: both sides line up class by class
    by_dst = np.lexsort((dst, size))
    out = np.empty_like(dst)
    out[by_src] = dst[by_dst]
    return out


def _slide_phase(seg: SegmentLayout, moved: tuple[np.ndarray, np.ndarray] | None = None) -> list[Move]:
    """Slide every unpinned block down to the end of what lies below it, in address order (after the
    fill phase's ``moved`` blocks, if given, took their new places). Blocks never overlap, so a
    block's new place is where the last pinned block below it ends (or the segment's first page)
    plus the pages of the unpinned blocks between: one cumulative sum, no loop over blocks."""
    ids, starts, pages, pinned = seg.block_id, seg.start, seg.pages, seg.pinned
    if moved is not None:
        starts = starts.copy()
        starts[moved[0]] = moved[1]
        order = np.argsort(starts, kind="stable")
        ids, starts, pages, pinned = ids[order], starts[order], pages[order], pinned[order]
    if not ids.size:
        return []
    before = np.cumsum(pages) - pages  # pages of all blocks below each one
    pins = np.flatnonzero(pinned)
    group = np.cumsum(pinned) - 1  # the last pinned block at or below each block (-1: none)
    base = np.full(ids.size, seg.first_page, dtype=np.int64)  # where the slide below a block restarts
    skip = np.zeros(ids.size, dtype=np.int64)                  # pages below that restart point
    has_pin = group >= 0
    last = pins[group[has_pin]]
    base[has_pin] = starts[last] + pages[last]
    skip[has_pin] = before[last] + pages[last]
    dst = base + before - skip
    go = np.flatnonzero(~pinned & (starts > dst))
    return list(map(Move._make, zip(ids[go].tolist(), starts[go].tolist(), dst[go].tolist(), pages[go].tolist(),
                                    strict=True)))


def _two_finger_segment(seg: SegmentLayout) -> tuple[list[Move], list[Move]]:
    """The cheapest of three full compactions of one segment: fill with every block that fits, then
    slide; fill with blocks above the prefix only, then slide; or slide alone. Which one moves least
    depends on the layout (measured: each wins somewhere), so two_finger never moves more than
    sliding, and with same-size blocks it moves exactly the lower bound."""
    # without pins every full compaction moves at least the bound: one that moves exactly it wins
    bound = -1 if seg.pinned.any() else seg.lower_bound_pages()
    best: tuple[int, list[Move], list[Move]] | None = None
    for only_above in (False, True):
        fill, moved = _fill_phase(seg, only_above_prefix=only_above)
        slide = _slide_phase(seg, moved)
        cost = sum(m.pages for m in fill) + sum(m.pages for m in slide)
        if best is None or cost < best[0]:
            best = (cost, fill, slide)
        if cost == 0 or cost == bound:
            return fill, slide
    assert best is not None
    slide_only = _slide_phase(seg)
    if sum(m.pages for m in slide_only) < best[0]:
        return [], slide_only
    return best[1], best[2]


def plan_two_finger(layout: Layout) -> Plan:
    fill: list[Move] = []
    slide: list[Move] = []
    for seg in layout.segments:
        f, s = _two_finger_segment(seg)
        fill.extend(f)
        slide.extend(s)
    stages = tuple(s for s in (Stage(tuple(fill), True), Stage(tuple(slide), False)) if s.moves)
    return Plan("two_finger", stages, layout.lower_bound_pages(), notes=_pin_notes(layout))


def plan_sliding(layout: Layout) -> Plan:
    return plan_slide_from(layout, 0)  # every segment, whole


def plan_slide_from(layout: Layout, page: int) -> Plan:
    """The slide of what lies from ``page`` up: in the segment holding it, the blocks that start at or
    after it (and after any block reaching over it), in later segments all of them; nothing below.
    What a slide that lost its front to an allocation continues with, without taking on new work."""
    slide: list[Move] = []
    for seg in layout.segments:
        if seg.end_page <= page:
            continue
        if seg.first_page < page:
            ends = seg.start + seg.pages
            over = ends[seg.start < page]
            at = max(page, int(over.max())) if over.size else page
            keep = seg.start >= at
            seg = SegmentLayout(at, seg.end_page - at, seg.block_id[keep], seg.start[keep], seg.pages[keep],
                                seg.pinned[keep])
        slide.extend(_slide_phase(seg))
    stages = (Stage(tuple(slide), False),) if slide else ()
    return Plan("sliding", stages, layout.lower_bound_pages(), notes=_pin_notes(layout))


def _pin_notes(layout: Layout) -> tuple[str, ...]:
    pinned = sum(int(s.pinned.sum()) for s in layout.segments)
    if not pinned:
        return ()
    return (f"{pinned} pinned block(s) stay in place: free space may remain in front of them",)


# ---------------------------------------------------------------------------------------- targeted
def _window_costs(seg: SegmentLayout, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For every window [w, w + n) of the segment: pages of the blocks it overlaps (what evacuating
    it moves), live pages inside it (the bound), and whether it touches a pinned block."""
    P = seg.num_pages
    local = seg.start - seg.first_page
    owner = np.full(P + 1, -1, dtype=np.int64)
    diff = np.zeros(P + 1, dtype=np.int64)
    idx = np.arange(local.size, dtype=np.int64)
    diff[local] += idx + 1
    diff[local + seg.pages] -= idx + 1
    owner[:P] = np.cumsum(diff[:P]) - 1
    used = owner[:P] >= 0
    starts_at = np.zeros(P + 1, dtype=np.int64)
    starts_at[local] = seg.pages
    cum_a = np.concatenate(([0], np.cumsum(starts_at[:P])))
    cum_used = np.concatenate(([0], np.cumsum(used)))
    pin_page = np.zeros(P, dtype=np.int64)
    if seg.pinned.any():
        pin_page = np.where(used, seg.pinned[np.maximum(owner[:P], 0)], False).astype(np.int64)
    cum_pin = np.concatenate(([0], np.cumsum(pin_page)))
    w = np.arange(P - n + 1)
    ow = owner[w]
    cover = np.where((ow >= 0) & (local[np.maximum(ow, 0)] < w), seg.pages[np.maximum(ow, 0)], 0)
    cost = cum_a[w + n] - cum_a[w] + cover
    live = cum_used[w + n] - cum_used[w]
    blocked = (cum_pin[w + n] - cum_pin[w]) > 0
    return cost, live, blocked


class _Holes:
    """A segment's holes, sorted by start and by (length, start), built once per plan."""

    def __init__(self, seg: SegmentLayout) -> None:
        holes = seg.holes()
        self.start = np.asarray([h[0] for h in holes], dtype=np.int64)
        self.length = np.asarray([h[1] for h in holes], dtype=np.int64)
        self.by_length = sorted(zip(self.length.tolist(), self.start.tolist(), strict=True))

    def largest(self) -> int:
        return int(self.length.max()) if self.length.size else 0

    def outside(self, lo: int, hi: int) -> list[tuple[int, int]]:
        """(length, start) of the free pieces outside [lo, hi), sorted: the holes that touch the
        window are replaced by their parts outside it."""
        ends = self.start + self.length
        first = int(np.searchsorted(ends, lo, side="right"))  # first hole ending after lo
        last = int(np.searchsorted(self.start, hi, side="left"))  # holes starting before hi
        if first >= last:
            return list(self.by_length)
        pieces = list(self.by_length)
        for k in range(first, last):
            hs, hl = int(self.start[k]), int(self.length[k])
            del pieces[bisect_left(pieces, (hl, hs))]
            he = hs + hl
            if hs < lo:
                insort(pieces, (lo - hs, hs))
            if he > hi:
                insort(pieces, (he - hi, hi))
        return pieces


def _evacuate(seg: SegmentLayout, holes: _Holes, w: int, n: int) -> list[Move] | None:
    """Moves that empty [w, w + n) into holes outside it (best fit, largest first), or None."""
    lo, hi = w, w + n
    ends = seg.start + seg.pages
    sel = np.flatnonzero((seg.start < hi) & (ends > lo))
    if sel.size == 0:
        return []
    pieces = holes.outside(lo, hi)
    evac = sorted(((int(seg.pages[i]), int(seg.block_id[i]), int(seg.start[i])) for i in sel), reverse=True)
    moves = []
    for p, bid, s in evac:
        j = bisect_left(pieces, (p, -1))
        if j == len(pieces):
            return None
        length, start = pieces.pop(j)
        moves.append(Move(bid, s, start, p))
        if length > p:
            insort(pieces, (length - p, start + p))
    return moves


def plan_targeted(layout: Layout, num_pages: int, *, candidates: int = 16) -> Plan:
    """Make one free run of at least ``num_pages`` pages, moving as few pages as it can."""
    if isinstance(num_pages, bool) or not isinstance(num_pages, int) or num_pages < 1:
        raise ValueError(f"num_pages={num_pages!r} is not allowed: use an int >= 1")
    n = num_pages
    fits = [seg for seg in layout.segments if seg.num_pages >= n]
    if not fits:
        biggest = max((s.num_pages for s in layout.segments), default=0)
        return Plan("targeted", (), 0, f"no segment has {n} pages (largest has {biggest})", n)
    holes = {id(seg): _Holes(seg) for seg in fits}
    if any(h.largest() >= n for h in holes.values()):
        return Plan("targeted", (), 0, None, n, ("a free run of that length already exists",))
    best: tuple[int, list[Move]] | None = None
    bound = None
    any_window = False
    for seg in fits:
        cost, live, blocked = _window_costs(seg, n)
        ok = ~blocked
        if not ok.any():
            continue
        any_window = True
        seg_bound = int(live[ok].min())
        bound = seg_bound if bound is None else min(bound, seg_bound)
        valid = np.flatnonzero(ok)
        order = valid[np.lexsort((valid, cost[valid]))][:candidates]
        for w in order.tolist():
            if best is not None and cost[w] >= best[0]:
                break
            moves = _evacuate(seg, holes[id(seg)], seg.first_page + w, n)
            if moves is not None:
                best = (int(cost[w]), moves)
                break
    if not any_window:
        return Plan("targeted", (), 0, f"every window of {n} pages holds a pinned block", n)
    if best is None:
        return Plan("targeted", (), bound or 0,
                    f"no window of {n} pages can be emptied: the holes outside it are too small or too few", n)
    return Plan("targeted", (Stage(tuple(best[1]), True),), bound or 0, None, n)


#: the planner of each whole-pool strategy a config may name (a test checks it covers them all)
WHOLE_POOL_PLANNERS: dict[str, Callable[[Layout], Plan]] = {"two_finger": plan_two_finger, "sliding": plan_sliding}
