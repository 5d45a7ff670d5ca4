"""`PoolStats`: the pool's accounting at one moment (conservation: used + cached + free == capacity).

Cached blocks (``pool.set_cached``) are KV that no running request references: evictable, as in
vLLM's block pool, so they count neither as used nor as free but on their own."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ._labels import StatTable, check_stat_table

__all__ = ["PoolStats", "POOL_STATS_LABELS"]


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


#: every key of `PoolStats.to_dict` in words (group -> key -> (label, unit)); reports and the command
#: line read this, and a test fails when a new field has no row here
POOL_STATS_LABELS: StatTable = {
    "Pool: memory": {
        "page_size": ("page size", "bytes"),
        "capacity_bytes": ("capacity", "bytes"),
        "capacity_pages": ("capacity in pages", "pages"),
        "used_bytes": ("used (referenced blocks, page-rounded)", "bytes"),
        "used_pages": ("used pages", "pages"),
        "cached_bytes": ("cached (evictable blocks)", "bytes"),
        "cached_pages": ("cached pages", "pages"),
        "free_bytes": ("free", "bytes"),
        "free_pages": ("free pages", "pages"),
        "free_ratio": ("free share of the capacity", "percent"),
        "requested_bytes": ("requested by referenced blocks", "bytes"),
        "internal_waste_bytes": ("lost to page rounding", "bytes"),
        "utilisation": ("utilisation (requested / capacity)", "percent"),
        "peak_used_bytes": ("peak held by blocks (cached included)", "bytes"),
    },
    "Pool: fragmentation": {
        "free_runs": ("runs of free pages", "count"),
        "largest_free_run_pages": ("largest free run", "pages"),
        "largest_free_run_bytes": ("largest free run, in bytes", "bytes"),
        "external_fragmentation": ("external fragmentation (1 - largest free run / free)", "percent"),
        "internal_fragmentation": ("internal fragmentation (rounding waste / used)", "percent"),
    },
    "Pool: blocks and calls": {
        "num_blocks": ("blocks allocated now", "count"),
        "pinned_blocks": ("pinned blocks", "count"),
        "cached_blocks": ("cached blocks", "count"),
        "num_segments": ("storage segments", "count"),
        "num_allocs": ("allocations", "count"),
        "num_frees": ("frees", "count"),
        "failed_allocations": ("failed allocations", "count"),
        "consecutive_failures": ("failed allocations in a row, now", "count"),
        "evictions": ("cached blocks evicted", "count"),
    },
    "Pool: compaction": {
        "compactions": ("compactions run", "count"),
        "compaction_bytes_moved": ("moved by compaction", "bytes"),
        "compaction_pages_moved": ("pages moved by compaction", "pages"),
        "compaction_pause_s": ("compaction pauses, total (wall time)", "ms"),
        "last_compaction_reason": ("last compaction's trigger", "plain"),
        "compactions_by_reason": ("compactions by trigger", "plain"),
    },
}
check_stat_table(POOL_STATS_LABELS)
