"""`PoolStats`: the pool's accounting at one moment (conservation: used + cached + free == capacity).

Cached blocks (``pool.set_cached``) are KV that no running request references: evictable, as in
vLLM's block pool, so they count neither as used nor as free but on their own."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

__all__ = ["PoolStats"]


@dataclass(frozen=True)
class PoolStats:
    page_size: int
    capacity_bytes: int
    used_bytes: int             # bytes of pages held by referenced (not cached) blocks, page-rounded
    free_bytes: int
    capacity_pages: int
    used_pages: int
    free_pages: int
    requested_bytes: int        # bytes the referenced blocks asked for
    internal_waste_bytes: int   # used_bytes - requested_bytes (page rounding)
    num_blocks: int
    pinned_blocks: int
    free_runs: int              # maximal runs of free pages
    largest_free_run_pages: int
    largest_free_run_bytes: int
    external_fragmentation: float  # 1 - largest_free_run / free (0 when nothing is free)
    internal_fragmentation: float  # internal_waste / used (0 when nothing is used)
    utilisation: float             # requested / capacity (referenced blocks only)
    num_segments: int
    num_allocs: int
    num_frees: int
    failed_allocations: int
    consecutive_failures: int
    peak_used_bytes: int        # most bytes ever held by blocks, cached ones included
    compactions: int
    compaction_bytes_moved: int
    compaction_pages_moved: int
    compaction_pause_s: float
    last_compaction_reason: str | None
    compactions_by_reason: dict[str, int] = field(default_factory=dict)
    cached_bytes: int = 0       # bytes of pages held by cached (evictable) blocks
    cached_pages: int = 0
    cached_blocks: int = 0
    evictions: int = 0          # cached blocks freed (by the evictor or the caller)

    @property
    def free_ratio(self) -> float:
        return self.free_pages / self.capacity_pages if self.capacity_pages else 0.0

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["free_ratio"] = self.free_ratio
        return out
