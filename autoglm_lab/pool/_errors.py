"""Typed errors of the pool. Each message says what was asked and what is allowed or available."""

from __future__ import annotations

__all__ = ["PoolError", "PoolExhausted", "DeviceAllocationError", "InvalidBlockError", "PinnedBlockError"]


class PoolError(Exception):
    """Base class of the pool's own errors."""


class PoolExhausted(PoolError, MemoryError):
    """No run of free pages fits the request and the pool cannot grow (or compact) to make one.

    The pool is unchanged when this is raised, apart from its failure counters.
    """

    def __init__(self, message: str, *, pages_requested: int, free_pages: int, largest_free_run: int) -> None:
        super().__init__(message)
        self.pages_requested = pages_requested
        self.free_pages = free_pages
        self.largest_free_run = largest_free_run


class DeviceAllocationError(PoolError, MemoryError):
    """The device could not back a segment (torch raised while allocating it: out of device memory,
    or a CPU allocator's refusal). Raised by `PagedPool(...)` for the first segment; a growth the
    device refuses counts as a failed allocation instead (triggers run, then `PoolExhausted`)."""

    def __init__(self, nbytes: int, device: object, cause: BaseException) -> None:
        first = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
        super().__init__(f"the device {device} could not allocate a segment of {nbytes} bytes: {first}")
        self.nbytes = nbytes
        self.device = str(device)


class InvalidBlockError(PoolError, ValueError):
    """A block was freed twice, used after it was freed, or belongs to another pool."""


class PinnedBlockError(PoolError, RuntimeError):
    """A pinned block was freed; unpin it first (leave its ``with pool.pin(block):``)."""
