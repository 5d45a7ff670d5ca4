"""`CompactionReport`: what one compaction call did, measured."""

from __future__ import annotations

from dataclasses import dataclass, field

from ._plan import Move

__all__ = ["CompactionReport"]


@dataclass(frozen=True)
class CompactionReport:
    strategy: str
    reason: str                  # manual, free_ratio, consecutive_failures, periodic, alloc_failure
    moves: tuple[Move, ...]
    pages_moved: int
    bytes_moved: int             # page bytes copied on the device
    lower_bound_pages: int       # fewest pages any compaction reaching this goal must move
    pause_s: float               # wall time holding the pool (CUDA: synchronised), planning included
    plan_s: float                # of which planning
    done: bool                   # False: a budgeted step; call again to continue
    over_budget: bool            # one block larger than the budget moved alone in this step
    unreachable: str | None      # why the goal cannot be reached (pins, no room), if so
    external_fragmentation_before: float
    external_fragmentation_after: float
    largest_free_run_before: int  # pages
    largest_free_run_after: int
    free_runs_before: int
    free_runs_after: int
    page_size: int
    planned_pages: int = 0       # pages the whole plan moves (all steps), for budgeted runs
    notes: tuple[str, ...] = field(default=())
    # of pause_s, copying the bytes (the data path; CUDA: timed by events), from the first copy queued
    # (the Triton executor's schedule, built on the host before it, is not counted)
    copy_s: float = 0.0
    # the plan this step worked from has no moves left: True when done, and also when the pool changed
    # during a budgeted compaction (a plan made on the pool as it is now may find more to do: the
    # next call makes one and says done when it has run). The eager policy ends its cycle here.
    plan_done: bool = True
    # who copied the bytes: "triton" (compiled kernel), "triton-interpret" (TRITON_INTERPRET=1),
    # "triton+torch" (a launch failed mid-step; torch did the rest), "torch", "cpu-memmove", "none"
    executor: str = "none"

    @property
    def excess_pages(self) -> int:
        """Pages the whole plan moves beyond the lower bound."""
        return max(0, self.planned_pages - self.lower_bound_pages)

    @property
    def bytes_beyond_lower_bound(self) -> int:
        return self.excess_pages * self.page_size

    def summary(self) -> str:
        return (f"{self.strategy} ({self.reason}): moved {len(self.moves)} block(s), {self.pages_moved} page(s) "
                f"[{self.bytes_moved} B] in {self.pause_s * 1e3:.3f} ms; lower bound {self.lower_bound_pages} "
                f"page(s); largest free run {self.largest_free_run_before} -> {self.largest_free_run_after} "
                f"page(s); external fragmentation {self.external_fragmentation_before:.3f} -> "
                f"{self.external_fragmentation_after:.3f}{'' if self.done else ' (more steps to go)'}")
