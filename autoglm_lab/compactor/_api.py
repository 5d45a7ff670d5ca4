"""One compaction (or budgeted step): plan, cut to a budget, execute, book-keep and report, under the
pool's lock, with the state a budgeted plan carries between calls in a `CompactorState`."""

from __future__ import annotations

import time
from bisect import bisect_right
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..pool import COMPACT_REASONS, parse_size
from ._execute import execute
from ._layout import layout_of
from ._plan import STRATEGIES, Move, Plan, plan, plan_slide_from
from ._report import CompactionReport

if TYPE_CHECKING:
    from ..pool import PagedPool

__all__ = ["CompactorState", "run_compaction", "safe_moves", "DEFAULT_STEP_BUDGET_BYTES"]

DEFAULT_STEP_BUDGET_BYTES = 2 << 20  # about a millisecond of copying on a CPU


def _check_args(pool: PagedPool, strategy: str, budget_bytes: int | str | None, num_pages: int | None,
                reason: str) -> int | None:
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy={strategy!r} is not allowed: choose one of {', '.join(map(repr, STRATEGIES))}")
    if reason not in COMPACT_REASONS:
        raise ValueError(f"reason={reason!r} is not allowed: choose one of {COMPACT_REASONS}")
    if strategy == "targeted":
        if isinstance(num_pages, bool) or not isinstance(num_pages, int) or num_pages < 1:
            raise ValueError(f"num_pages={num_pages!r} is not allowed: strategy='targeted' needs an int >= 1")
    elif num_pages is not None:
        raise ValueError(f"num_pages={num_pages!r} is only used by strategy='targeted'")
    if budget_bytes is None:
        return None
    nbytes = parse_size(budget_bytes, name="budget_bytes")
    if nbytes < pool.page_size:
        raise ValueError(f"budget_bytes={budget_bytes!r} is not allowed: use None or at least one page "
                         f"({pool.page_size} bytes)")
    return nbytes // pool.page_size


def _sync(pool: PagedPool) -> None:
    if pool.device.type == "cuda":
        torch.cuda.synchronize(pool.device)


class _CopyTimer:
    """Time spent copying: wall time on a CPU; on CUDA two events on the pool's stream, read after
    the final synchronisation (no extra sync between the copies and the bookkeeping)."""

    def __init__(self, pool: PagedPool) -> None:
        self._cuda = pool.device.type == "cuda"
        if self._cuda:
            self._stream = torch.cuda.current_stream(pool.device)
            self._start = torch.cuda.Event(enable_timing=True)
            self._end = torch.cuda.Event(enable_timing=True)
            self._start.record(self._stream)
        self._t0 = time.perf_counter()
        self._t1 = self._t0

    def restart(self) -> None:
        """The copies start now: what came before (the Triton executor's schedule) is not copying."""
        if self._cuda:
            self._start.record(self._stream)
        self._t0 = time.perf_counter()

    def stop(self) -> None:
        if self._cuda:
            self._end.record(self._stream)
        self._t1 = time.perf_counter()

    def seconds(self) -> float:
        """Call after the stream was synchronised."""
        if self._cuda:
            return float(self._start.elapsed_time(self._end)) / 1e3
        return self._t1 - self._t0


def safe_moves(pool: PagedPool, moves: tuple[Move, ...]) -> list[bool]:
    """Which of ``moves``, run in order on the pool as it is now (the unsafe ones skipped), are safe:
    the block is still live, unpinned, of the same size and where the plan found it, and its
    destination lies in one segment on pages that are free (or its own, or left by an earlier move
    that runs) and not taken by an earlier move that runs."""
    if not moves:
        return []
    ids, start, pages, *_ = pool.block_table()  # sorted by first page; blocks do not overlap
    ends = start + pages
    spans = [(s.first_page, s.first_page + s.num_pages) for s in pool.segment_storage()]
    moved: dict[int, tuple[int, int]] = {}  # block id -> (first page, pages) after the earlier moves
    out = []
    for m in moves:
        out.append(_safe(pool, m, ids, start, ends, spans, moved))
        if out[-1]:
            moved[m.block_id] = (m.dst_page, m.pages)
    return out


def _safe(pool: PagedPool, m: Move, ids: np.ndarray, start: np.ndarray, ends: np.ndarray,
          spans: list[tuple[int, int]], moved: dict[int, tuple[int, int]]) -> bool:
    blk = pool.block(m.block_id)
    if blk is None or blk.pinned or blk.num_pages != m.pages:
        return False
    if (moved[m.block_id][0] if m.block_id in moved else blk.first_page) != m.src_page:
        return False
    lo, hi = m.dst_page, m.dst_page + m.pages
    first, end = spans[max(0, bisect_right([a for a, _ in spans], lo) - 1)]
    if lo < first or hi > end:
        return False
    # blocks of the table on [lo, hi): only this one, or ones an earlier move took away
    for i in range(int(np.searchsorted(ends, lo, side="right")), int(np.searchsorted(start, hi))):
        other = int(ids[i])
        if other != m.block_id and other not in moved:
            return False
    return all(other == m.block_id or s >= hi or lo >= s + n for other, (s, n) in moved.items())


@dataclass
class CompactorState:
    """What a `Compactor` keeps between calls on its pool: a budgeted plan in progress and the periodic
    check's clock (see `_policy`)."""

    plan: Plan | None = None            # the rest of a plan a budgeted step left
    plan_key: tuple[str, int | None] | None = None  # (strategy, num_pages) it was made for
    plan_seq: int = -1                  # pool.seq after the step that left it (another seq: stale)
    plan_stale: bool = False            # made or continued on a pool that changed since
    planned_pages: int = 0              # pages the whole plan moves (for reports)
    last_check_s: float = 0.0           # the periodic trigger's last check, on the caller's clock
    incremental: bool = False           # an eager cycle is under way: each tick runs one step

    def forget_plan(self) -> None:
        self.plan, self.plan_key, self.plan_seq, self.plan_stale = None, None, -1, False


@dataclass
class _Step:
    step: Plan
    rest: Plan
    full: Plan
    planned_pages: int
    stale: bool


def _next_step(state: CompactorState, pool: PagedPool, strategy: str, num_pages: int | None,
               budget_pages: int | None) -> _Step:
    """The moves to run now: the next budget of the cached plan (its moves checked against the pool
    as it is, when the pool changed), or of a new plan."""
    key = (strategy, num_pages)
    prior = state.plan if state.plan_key == key else None
    cached = prior
    # the pool changed since the plan was made (a serving loop allocates between steps): the plan
    # is stale, and each next step runs those of its moves that are safe on the pool as it is
    # now; the pool is planned again only when none is, or when a slide lost its front (then
    # slid again, cheaply), and a stale plan that runs out reports done=False (see plan_done)
    stale = cached is not None and (state.plan_seq != pool.seq or state.plan_stale)
    if budget_pages is None and stale:
        cached = None  # a whole compaction plans the pool as it is (and so ends done)
    if cached is not None:
        step, rest = cached.cut(budget_pages)
        # a stale plan's moves are checked every step, not only after a change: once one was
        # skipped, later ones may count on pages it would have freed
        if stale:
            keep = safe_moves(pool, step.moves)
            if not any(keep) or (not step.stages[0].independent and not keep[0]):
                cached = None  # nothing to run, or a slide whose front is gone: plan again
            elif not all(keep):  # run the moves that are still safe
                step = step.only(keep)
        if cached is not None:
            return _Step(step, rest, cached, state.planned_pages, stale)
    if prior is not None and budget_pages is not None and not any(s.independent for s in prior.stages):
        # only a slide was left, and the pool took its front (an allocation landed in the gap a
        # slide carries up): slide on from that front over the pool as it is, costing a cumulative
        # sum rather than a two-finger plan. Holes below the front are left to the next plan (so the
        # plan stays stale: a whole new slide would chase every new hole)
        cont = plan_slide_from(layout_of(pool), prior.stages[0].moves[0].dst_page)
        full = Plan(strategy, cont.stages, cont.lower_bound_pages, cont.unreachable, notes=cont.notes)
        step, rest = full.cut(budget_pages)
        return _Step(step, rest, full, state.planned_pages, stale)
    full = plan(layout_of(pool), strategy, num_pages=num_pages)
    step, rest = full.cut(budget_pages)
    return _Step(step, rest, full, full.pages_moved, False)  # made on the pool as it is


def _run(pool: PagedPool, step: Plan) -> tuple[str, float]:
    """Move the step's blocks (the books first: a move that does not fit raises before a byte is
    copied; a copy that fails puts the books back). Returns the executor and the copy time."""
    timer = _CopyTimer(pool)
    used: list[str] = []

    def copy() -> None:
        timer.restart()
        used.append(execute(pool, step, started=timer.restart))
        timer.stop()

    pool.apply_moves([(m.block_id, m.src_page, m.dst_page) for m in step.moves], copy)
    _sync(pool)
    return used[0], timer.seconds()


def run_compaction(state: CompactorState, pool: PagedPool, strategy: str = "two_finger", *,
                   budget_bytes: int | str | None = None, num_pages: int | None = None,
                   reason: str = "manual") -> CompactionReport:
    """One compaction (or one budgeted step) of ``pool`` with ``state`` carried between calls."""
    budget_pages = _check_args(pool, strategy, budget_bytes, num_pages, reason)
    with pool.lock:
        _sync(pool)
        t0 = time.perf_counter()
        before = pool.stats()
        pool.merge_free_runs()
        nxt = _next_step(state, pool, strategy, num_pages, budget_pages)
        plan_s = time.perf_counter() - t0
        executor, copy_s = _run(pool, nxt.step)
        pause_s = time.perf_counter() - t0
        if nxt.rest.stages:
            state.plan, state.plan_key, state.plan_seq = nxt.rest, (strategy, num_pages), pool.seq
            state.plan_stale, state.planned_pages = nxt.stale, nxt.planned_pages
        else:
            state.forget_plan()
        pages = nxt.step.pages_moved
        pool.record_compaction(reason, pages, pages * pool.page_size, pause_s)
        after = pool.stats()
        return CompactionReport(
            strategy=strategy, reason=reason, moves=nxt.step.moves, pages_moved=pages,
            bytes_moved=pages * pool.page_size, lower_bound_pages=nxt.full.lower_bound_pages, pause_s=pause_s,
            # a plan finished on a pool that changed under it may have left holes it never saw: the
            # next call plans the pool as it is then (and says done when nothing is left to move)
            plan_s=plan_s, done=not nxt.rest.stages and not nxt.stale,
            over_budget=budget_pages is not None and pages > budget_pages, unreachable=nxt.full.unreachable,
            external_fragmentation_before=before.external_fragmentation,
            external_fragmentation_after=after.external_fragmentation,
            largest_free_run_before=before.largest_free_run_pages,
            largest_free_run_after=after.largest_free_run_pages,
            free_runs_before=before.free_runs, free_runs_after=after.free_runs, page_size=pool.page_size,
            planned_pages=nxt.planned_pages, notes=nxt.full.notes, copy_s=copy_s, plan_done=not nxt.rest.stages,
            executor=executor,
        )
