"""When to compact: the source material's three triggers, as configured in `PoolConfig`.

```
on a failed allocation (compaction "lazy" or "eager"):
    free_ratio            free / capacity > free_ratio_trigger and largest free run < request
    consecutive_failures  this is the max_consecutive_failures-th failure in a row
  -> targeted compaction for the request, then the allocation is retried
on pool.tick(now) (compaction "eager"):
    periodic              every defrag_interval_s, if external fragmentation > fragmentation_threshold_factor,
                          start an incremental compaction; each later tick runs one budgeted step until its
                          plan has run (on a pool that changed meanwhile the next check starts a new cycle)
```

Settings are read from ``pool.config`` at every call, so a change made on a live pool (a dashboard
slider) takes effect at the next allocation or tick.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ._api import DEFAULT_STEP_BUDGET_BYTES, CompactorState, run_compaction
from ._report import CompactionReport

if TYPE_CHECKING:
    from ..pool import PagedPool

__all__ = ["Compactor", "compact", "failure_trigger", "tick"]

log = logging.getLogger(__name__)


def failure_trigger(pool: PagedPool, pages: int, consecutive: int) -> str | None:
    """The reason a failed allocation of ``pages`` should compact, or None."""
    cfg = pool.config
    free = pool.free_pages
    if cfg.compaction == "off" or free < pages:
        return None
    free_ratio = free / pool.capacity_pages if pool.capacity_pages else 0.0
    if free_ratio > cfg.free_ratio_trigger and pool.largest_free_run_pages < pages:
        return "free_ratio"
    if consecutive >= cfg.max_consecutive_failures:
        return "consecutive_failures"
    return None


class Compactor:
    """The compaction service a `PagedPool` is handed (`autoglm_lab.pool.CompactionService`): the
    triggers above, manual compactions and budgeted background steps, with its own state. Importing
    `autoglm_lab.compactor` makes it the default service of new pools."""

    def __init__(self) -> None:
        self.state = CompactorState()

    def on_alloc_failure(self, pool: PagedPool, pages: int) -> bool:
        reason = failure_trigger(pool, pages, pool.consecutive_failures)
        if reason is None:
            return False
        report = run_compaction(self.state, pool, "targeted", num_pages=pages, reason=reason)
        if report.unreachable:
            log.info("compaction (%s) could not make %d free pages: %s", reason, pages, report.unreachable)
            return False
        return True

    def compact(self, pool: PagedPool, strategy: str = "two_finger", *, budget_bytes: int | str | None = None,
                num_pages: int | None = None, reason: str = "manual") -> CompactionReport:
        return run_compaction(self.state, pool, strategy, budget_bytes=budget_bytes, num_pages=num_pages,
                              reason=reason)

    def tick(self, pool: PagedPool, now: float) -> CompactionReport | None:
        """The periodic check and eager background steps; returns the report of a step that ran."""
        state = self.state
        cfg = pool.config
        if now < state.last_check_s:  # the caller's clock restarted (a simulator reset)
            state.last_check_s = now
        if cfg.compaction != "eager":
            state.incremental = False
            return None
        budget = cfg.compaction_budget_bytes or DEFAULT_STEP_BUDGET_BYTES
        if state.incremental:
            report = self.compact(pool, cfg.compaction_strategy, budget_bytes=budget, reason="periodic")
            # the cycle ends when its plan has run, even if the pool changed meanwhile: the next
            # periodic check starts another if fragmentation is still above the threshold (chasing
            # a pool that serving keeps changing would plan it again every step or two)
            state.incremental = not report.plan_done
            return report
        if now - state.last_check_s < cfg.defrag_interval_s:
            return None
        state.last_check_s = now
        if pool.stats().external_fragmentation <= cfg.fragmentation_threshold_factor:
            return None
        report = self.compact(pool, cfg.compaction_strategy, budget_bytes=budget, reason="periodic")
        state.incremental = not report.plan_done
        return report

    def reset(self) -> None:
        self.state = CompactorState()


def _service_of(pool: PagedPool) -> Compactor:
    service = pool.compaction_service
    return service if isinstance(service, Compactor) else Compactor()


def compact(pool: PagedPool, strategy: str = "two_finger", *, budget_bytes: int | str | None = None,
            num_pages: int | None = None, reason: str = "manual") -> CompactionReport:
    """Move live blocks to close holes.

    strategy: "two_finger" (fewest moves, order not kept), "sliding" (address order kept) or
        "targeted" (make one free run of ``num_pages``).
    budget_bytes: run one step moving at most this many bytes (``report.done`` says whether the
        compaction is complete; call again to continue from the pool as it is then). None: all of it.
    reason: what the report and the pool's counters say started it (see ``COMPACT_REASONS``).

    Blocks keep their ids and ``block.tensor`` views the new place; pinned blocks never move. A
    budgeted plan in progress lives in the pool's `Compactor` (its compaction service).
    """
    with pool.lock:
        return _service_of(pool).compact(pool, strategy, budget_bytes=budget_bytes, num_pages=num_pages,
                                         reason=reason)


def tick(pool: PagedPool, now: float) -> CompactionReport | None:
    """The periodic check of ``pool``'s compaction service (``pool.tick(now)`` calls this)."""
    with pool.lock:
        return _service_of(pool).tick(pool, now)
