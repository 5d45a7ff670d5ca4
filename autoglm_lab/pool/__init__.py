"""The paged memory pool: segments of pages on a torch device, blocks, stats and snapshots.

This layer imports neither the widget stack nor the compactor at import time.
"""

from ._block import Block
from ._config import LIVE_FIELDS, PoolConfig, format_size, parse_size
from ._errors import InvalidBlockError, PinnedBlockError, PoolError, PoolExhausted
from ._events import COMPACT_REASONS, EventArrays, EventKind
from ._pool import PagedPool, resolve_device
from ._snapshot import SNAPSHOT_VERSION, PageState, PoolSnapshot, free_runs
from ._stats import PoolStats

__all__ = [
    "Block", "COMPACT_REASONS", "EventArrays", "EventKind", "InvalidBlockError", "LIVE_FIELDS",
    "PageState", "PagedPool", "PinnedBlockError", "PoolConfig", "PoolError", "PoolExhausted",
    "PoolSnapshot", "PoolStats", "SNAPSHOT_VERSION", "format_size", "free_runs", "parse_size",
    "resolve_device",
]
