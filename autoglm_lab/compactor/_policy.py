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

from ._api import DEFAULT_STEP_BUDGET_BYTES, compact
from ._report import CompactionReport

if TYPE_CHECKING:
    from ..pool import PagedPool

__all__ = ["on_alloc_failure", "tick", "failure_trigger"]

log = logging.getLogger(__name__)


def failure_trigger(pool: PagedPool, pages: int, consecutive: int) -> str | None:
    """The reason a failed allocation of ``pages`` should compact, or None."""
    cfg = pool.config
    idx = pool._index
    if cfg.compaction == "off" or idx.free_pages < pages:
        return None
    free_ratio = idx.free_pages / idx.total_pages if idx.total_pages else 0.0
    if free_ratio > cfg.free_ratio_trigger and idx.largest() < pages:
        return "free_ratio"
    if consecutive >= cfg.max_consecutive_failures:
        return "consecutive_failures"
    return None


def on_alloc_failure(pool: PagedPool, pages: int) -> int:
    """Called by the pool (lock held) when no run fits: compact if a trigger fires, then retry.
    Returns the start page of the allocation, or -1 (the caller raises `PoolExhausted`)."""
    reason = failure_trigger(pool, pages, pool.consecutive_failures)
    if reason is None:
        return -1
    report = compact(pool, "targeted", num_pages=pages, reason=reason)
    if report.unreachable:
        log.info("compaction (%s) could not make %d free pages: %s", reason, pages, report.unreachable)
        return -1
    start = pool._index.take(pages)
    if start >= 0:
        # the allocation succeeded after all: it is not a failure
        pool.failed_allocations -= 1
        pool.consecutive_failures = 0
    return start


def tick(pool: PagedPool, now: float) -> CompactionReport | None:
    """The periodic check and eager background steps; returns the report of a step that ran."""
    with pool.lock:
        cfg = pool.config
        state = pool._policy_state
        last = state.get("last_check", 0.0)
        if now < last:  # the caller's clock restarted (a simulator reset)
            last = state["last_check"] = now
        if cfg.compaction != "eager":
            state.pop("incremental", None)
            return None
        budget = cfg.compaction_budget_bytes or DEFAULT_STEP_BUDGET_BYTES
        if state.get("incremental"):
            report = compact(pool, cfg.compaction_strategy, budget_bytes=budget, reason="periodic")
            # the cycle ends when its plan has run, even if the pool changed meanwhile: the next
            # periodic check starts another if fragmentation is still above the threshold (chasing
            # a pool that serving keeps changing would plan it again every step or two)
            if report.plan_done:
                state.pop("incremental", None)
            return report
        if now - last < cfg.defrag_interval_s:
            return None
        state["last_check"] = now
        if pool.stats().external_fragmentation <= cfg.fragmentation_threshold_factor:
            return None
        report = compact(pool, cfg.compaction_strategy, budget_bytes=budget, reason="periodic")
        if not report.plan_done:
            state["incremental"] = True
        return report
