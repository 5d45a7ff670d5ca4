"""What the pool offers the layer above it, and what it expects from a compaction service.

The pool knows nothing of `autoglm_lab.compactor`: it defines the `CompactionService` protocol, calls
the service it was handed (or the registered default) on a failed allocation, on ``tick`` and on
``compact``, and exposes a small typed interface for the service to read and change it under its
lock (`BlockTable`, `SegmentStorage`, ``apply_moves``, ``record_compaction``). The compactor
implements the protocol and registers itself as the default when it is imported.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

import numpy as np
import torch

if TYPE_CHECKING:
    from ._pool import PagedPool

__all__ = ["BlockTable", "CompactionService", "SegmentStorage", "default_compaction_service",
           "set_default_compaction_service"]


class BlockTable(NamedTuple):
    """The live blocks, sorted by first page: one row per block, columns owned by the caller."""

    block_id: np.ndarray    # int64
    first_page: np.ndarray  # int64, global page index
    num_pages: np.ndarray   # int64
    nbytes: np.ndarray      # int64, requested bytes
    tag: np.ndarray         # int64, index into the snapshot's tags, -1 untagged
    pins: np.ndarray        # int64, > 0 while pinned (pinned blocks never move)
    created_s: np.ndarray   # float64, seconds since the pool's start


class SegmentStorage(NamedTuple):
    """One segment's pages: global pages [first_page, first_page + num_pages) are ``data``'s bytes."""

    first_page: int
    num_pages: int
    page_size: int
    data: torch.Tensor  # uint8, num_pages * page_size bytes on the pool's device


class CompactionService(Protocol):
    """Compaction as a service a pool is handed. Every method is called with the pool's lock held."""

    def on_alloc_failure(self, pool: PagedPool, pages: int) -> bool:
        """No free run of ``pages`` pages exists after merging and growing (this is the pool's
        ``consecutive_failures``-th such allocation in a row). Return True if the service made one
        (the pool then takes it; the allocation is not a failure), False to let it fail."""
        ...

    def tick(self, pool: PagedPool, now: float) -> Any | None:
        """The periodic trigger and background steps; a report of the step that ran, or None."""
        ...

    def compact(self, pool: PagedPool, strategy: str, *, budget_bytes: int | str | None,
                num_pages: int | None) -> Any:
        """A manual compaction; returns its report."""
        ...

    def reset(self) -> None:
        """Forget any state kept between calls (a plan in progress, the periodic clock)."""
        ...


_default: Callable[[], CompactionService] | None = None


def set_default_compaction_service(factory: Callable[[], CompactionService] | None) -> None:
    """Make ``factory()`` the service of every pool built without one (the compactor does this)."""
    global _default
    _default = factory


def default_compaction_service() -> CompactionService | None:
    """A new service from the registered default factory, or None when none is registered."""
    return _default() if _default is not None else None
