"""The paged memory pool: segments of pages on a torch device, blocks, stats and snapshots.

This layer imports neither the widget stack nor the compactor at import time.

Threads
-------
One re-entrant lock, ``pool.lock``, guards every piece of the pool's state: the free index, the
block table, the counters, the segments, the event ring and each block's cached view. Every public
method takes it, so each call is atomic: ``alloc``, ``free``, ``pin``, ``configure``, ``compact``
(plan, bookkeeping and byte copies all under one hold), ``tick``, ``stats``, ``snapshot``,
``check_invariants`` and the first ``block.tensor`` after a move. A simulator thread, a compaction
thread and dashboard callbacks can share one pool.

What the lock cannot cover is a tensor you keep: compaction moves blocks, and a view taken before
a move still points at the old pages (which may by then hold another block). To read or write a
block's bytes while another thread may compact, do one of:

- ``with block.hold() as t:`` use ``t``: the block is pinned (compaction skips it) until the
  body ends. Other threads keep running; this is the way to hold a view for long.
- ``with pool.lock:`` read ``block.tensor`` and use it inside the ``with``: no thread can change the
  pool meanwhile (keep it short: it stalls a live dashboard and the simulator).

Outside those, ``block.tensor`` is always the view of the block's current place, but may go stale
as soon as another thread compacts. Freeing a block that another thread is using is the caller's
race to avoid (a pinned block cannot be freed: `PinnedBlockError`). A block's public fields (``id``,
``nbytes``, ``num_pages``, ``shape``, ``dtype``, ``tag``, ``created_s``) are read-only.
"""

from ._block import Block
from ._check import check_fraction, check_int, check_number, is_int, is_number
from ._config import (
    CHOICES,
    COALESCE_MODES,
    COMPACTION_MODES,
    COMPACTION_STRATEGIES,
    FITS,
    LIVE_FIELDS,
    PoolConfig,
    format_bytes,
    format_size,
    parse_size,
)
from ._errors import DeviceAllocationError, InvalidBlockError, PinnedBlockError, PoolError, PoolExhausted
from ._events import COMPACT_REASONS, EVENT_RECORD, EventArrays, EventKind
from ._impl import copy_ranges
from ._labels import OTHER_GROUP, STAT_UNITS, StatTable, check_stat_table, format_stat, group_stats
from ._pool import PagedPool, resolve_device
from ._service import (
    BlockTable,
    CompactionService,
    SegmentStorage,
    default_compaction_service,
    set_default_compaction_service,
)
from ._snapshot import HEAT_METRICS, SNAPSHOT_VERSION, PageState, PoolSnapshot, free_runs
from ._stats import POOL_STATS_LABELS, PoolStats

__all__ = [
    "Block", "BlockTable", "CHOICES", "COALESCE_MODES", "COMPACTION_MODES", "COMPACTION_STRATEGIES",
    "COMPACT_REASONS", "CompactionService", "DeviceAllocationError", "EVENT_RECORD", "EventArrays", "EventKind", "FITS",
    "HEAT_METRICS", "InvalidBlockError", "LIVE_FIELDS", "OTHER_GROUP", "POOL_STATS_LABELS", "PageState",
    "PagedPool", "PinnedBlockError", "PoolConfig", "PoolError", "PoolExhausted", "PoolSnapshot", "PoolStats",
    "SNAPSHOT_VERSION", "STAT_UNITS", "SegmentStorage", "StatTable", "check_fraction", "check_int",
    "check_number", "check_stat_table", "copy_ranges", "default_compaction_service", "format_bytes",
    "format_size", "format_stat", "free_runs", "group_stats", "is_int", "is_number", "parse_size",
    "resolve_device", "set_default_compaction_service",
]
