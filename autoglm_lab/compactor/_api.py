"""`compact(pool, ...)`: plan, cut to a budget, execute, book-keep and report, under the pool's lock."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import torch

from ..pool import parse_size
from ..pool._events import COMPACT_REASONS
from ._execute import execute
from ._layout import layout_of
from ._plan import STRATEGIES, Plan, plan
from ._report import CompactionReport

if TYPE_CHECKING:
    from ..pool import PagedPool

__all__ = ["compact", "DEFAULT_STEP_BUDGET_BYTES"]

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

    def stop(self) -> None:
        if self._cuda:
            self._end.record(self._stream)
        self._t1 = time.perf_counter()

    def seconds(self) -> float:
        """Call after the stream was synchronised."""
        if self._cuda:
            return self._start.elapsed_time(self._end) / 1e3
        return self._t1 - self._t0


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
        cached: Plan | None = state.get("plan") if state.get("plan_key") == (key, pool.seq) else None
        if cached is None:
            full = plan(layout_of(pool), strategy, num_pages=num_pages)
            planned_pages = full.pages_moved
        else:
            full = cached
            planned_pages = state["planned_pages"]
        plan_s = time.perf_counter() - t0
        step, rest = full.cut(budget_pages)
        timer = _CopyTimer(pool)
        done_moves = execute(pool, step)
        timer.stop()
        if done_moves:
            pool._relocate(done_moves)
        _sync(pool)
        pause_s = time.perf_counter() - t0
        if rest.stages:
            state.update(plan=rest, plan_key=(key, pool.seq), planned_pages=planned_pages)
        else:
            state.pop("plan", None)
            state.pop("plan_key", None)
        pages = step.pages_moved
        pool._record_compaction(reason, pages, pages * pool.page_size, pause_s)
        after = pool.stats()
        over = budget_pages is not None and pages > budget_pages
        return CompactionReport(
            strategy=strategy, reason=reason, moves=step.moves, pages_moved=pages,
            bytes_moved=pages * pool.page_size, lower_bound_pages=full.lower_bound_pages, pause_s=pause_s,
            plan_s=plan_s, done=not rest.stages, over_budget=over, unreachable=full.unreachable,
            external_fragmentation_before=before.external_fragmentation,
            external_fragmentation_after=after.external_fragmentation,
            largest_free_run_before=before.largest_free_run_pages,
            largest_free_run_after=after.largest_free_run_pages,
            free_runs_before=before.free_runs, free_runs_after=after.free_runs, page_size=pool.page_size,
            planned_pages=planned_pages, notes=full.notes, copy_s=timer.seconds(),
        )
