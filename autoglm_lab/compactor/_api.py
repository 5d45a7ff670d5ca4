"""`compact(pool, ...)`: plan, cut to a budget, execute, book-keep and report, under the pool's lock."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..pool import parse_size
from ..pool._events import COMPACT_REASONS
from ._execute import execute
from ._layout import layout_of
from ._plan import STRATEGIES, Move, Plan, plan, plan_slide_from
from ._report import CompactionReport

if TYPE_CHECKING:
    from ..pool import PagedPool

__all__ = ["compact", "safe_moves", "DEFAULT_STEP_BUDGET_BYTES"]

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
            return self._start.elapsed_time(self._end) / 1e3
        return self._t1 - self._t0


def safe_moves(pool: PagedPool, moves: tuple[Move, ...]) -> list[bool]:
    """Which of ``moves``, run in order on the pool as it is now (the unsafe ones skipped), are safe:
    the block is still live, unpinned, of the same size and where the plan found it, and its
    destination lies in one segment on pages that are free (or its own, or left by an earlier move
    that runs) and not taken by an earlier move that runs."""
    if not moves:
        return []
    ids, start, pages, *_ = pool._table()  # sorted by first page; blocks do not overlap
    ends = start + pages
    moved: dict[int, tuple[int, int]] = {}  # block id -> (first page, pages) after the earlier moves
    out = []
    for m in moves:
        out.append(_safe(pool, m, ids, start, ends, moved))
        if out[-1]:
            moved[m.block_id] = (m.dst_page, m.pages)
    return out


def _safe(pool: PagedPool, m: Move, ids: np.ndarray, start: np.ndarray, ends: np.ndarray,
          moved: dict[int, tuple[int, int]]) -> bool:
    blk = pool._blocks.get(m.block_id)
    if blk is None or blk.pinned or blk.num_pages != m.pages:
        return False
    if (moved[m.block_id][0] if m.block_id in moved else blk.first_page) != m.src_page:
        return False
    lo, hi = m.dst_page, m.dst_page + m.pages
    seg = pool._segment_of(lo)
    if lo < seg.first_page or hi > seg.first_page + seg.num_pages:
        return False
    # blocks of the table on [lo, hi): only this one, or ones an earlier move took away
    for i in range(int(np.searchsorted(ends, lo, side="right")), int(np.searchsorted(start, hi))):
        other = int(ids[i])
        if other != m.block_id and other not in moved:
            return False
    return all(other == m.block_id or s >= hi or lo >= s + n for other, (s, n) in moved.items())


def compact(pool: PagedPool, strategy: str = "two_finger", *, budget_bytes: int | str | None = None,
            num_pages: int | None = None, reason: str = "manual") -> CompactionReport:
    """Move live blocks to close holes.

    strategy: "two_finger" (fewest moves, order not kept), "sliding" (address order kept) or
        "targeted" (make one free run of ``num_pages``).
    budget_bytes: run one step moving at most this many bytes (``report.done`` says whether the
        compaction is complete; call again to continue from the pool as it is then). None: all of it.

    Blocks keep their ids and ``block.tensor`` views the new place; pinned blocks never move.
    """
    budget_pages = _check_args(pool, strategy, budget_bytes, num_pages, reason)
    with pool.lock:
        _sync(pool)
        t0 = time.perf_counter()
        before = pool.stats()
        pool._index.merge_all()
        state = pool._policy_state
        key = (strategy, num_pages)
        prior: Plan | None = state.get("plan") if state.get("plan_key") == key else None
        cached = prior
        # the pool changed since the plan was made (a serving loop allocates between steps): the plan
        # is stale, and each next step runs those of its moves that are safe on the pool as it is
        # now; the pool is planned again only when none is, or when a slide lost its front (then
        # slid again, cheaply), and a stale plan that runs out reports done=False (see plan_done)
        changed = cached is not None and state.get("plan_seq") != pool.seq
        stale = changed or (cached is not None and state.get("plan_stale", False))
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
        if cached is None:
            if prior is not None and budget_pages is not None and not any(s.independent for s in prior.stages):
                # only a slide was left, and the pool took its front (an allocation landed in the gap
                # a slide carries up): slide on from that front over the pool as it is, costing a
                # cumulative sum rather than a two-finger plan. Holes below the front are left to the
                # next plan (so the plan stays stale: a whole new slide would chase every new hole)
                cont = plan_slide_from(layout_of(pool), prior.stages[0].moves[0].dst_page)
                full = Plan(strategy, cont.stages, cont.lower_bound_pages, cont.unreachable, notes=cont.notes)
                planned_pages = state["planned_pages"]
            else:
                full = plan(layout_of(pool), strategy, num_pages=num_pages)
                planned_pages = full.pages_moved
                stale = False  # made on the pool as it is
            step, rest = full.cut(budget_pages)
        else:
            full = cached
            planned_pages = state["planned_pages"]
        plan_s = time.perf_counter() - t0
        # the books first: relocate checks every move against the pool as the earlier ones leave it
        # and, if one does not fit, raises with nothing changed, before a byte is copied
        moves = [(m.block_id, m.src_page, m.dst_page) for m in step.moves]
        if moves:
            pool._relocate(moves)
        timer = _CopyTimer(pool)
        try:
            executor = execute(pool, step, started=timer.restart)
        except BaseException:
            pool._relocate([(b, dst, src) for b, src, dst in reversed(moves)])  # the blocks are not there
            raise
        timer.stop()
        _sync(pool)
        pause_s = time.perf_counter() - t0
        if rest.stages:
            state.update(plan=rest, plan_key=key, plan_seq=pool.seq, plan_stale=stale, planned_pages=planned_pages)
        else:
            for name in ("plan", "plan_key", "plan_seq", "plan_stale"):
                state.pop(name, None)
        pages = step.pages_moved
        pool._record_compaction(reason, pages, pages * pool.page_size, pause_s)
        after = pool.stats()
        over = budget_pages is not None and pages > budget_pages
        return CompactionReport(
            strategy=strategy, reason=reason, moves=step.moves, pages_moved=pages,
            bytes_moved=pages * pool.page_size, lower_bound_pages=full.lower_bound_pages, pause_s=pause_s,
            # a plan finished on a pool that changed under it may have left holes it never saw: the
            # next call plans the pool as it is then (and says done when nothing is left to move)
            plan_s=plan_s, done=not rest.stages and not stale, over_budget=over, unreachable=full.unreachable,
            external_fragmentation_before=before.external_fragmentation,
            external_fragmentation_after=after.external_fragmentation,
            largest_free_run_before=before.largest_free_run_pages,
            largest_free_run_after=after.largest_free_run_pages,
            free_runs_before=before.free_runs, free_runs_after=after.free_runs, page_size=pool.page_size,
            planned_pages=planned_pages, notes=full.notes, copy_s=timer.seconds(), plan_done=not rest.stages,
            executor=executor,
        )
