from __future__ import annotations

from collections.abc import Callable

import pytest

import autoglm_lab as al


@pytest.fixture
def make_pool() -> Callable[..., al.PagedPool]:
    """A fixed-size CPU pool (no growth), so memory pressure is real."""
    def make(size: str = "8MiB", compaction: str = "off", **kw: object) -> al.PagedPool:
        return al.PagedPool(al.PoolConfig(memory_pool_initial_size=size, max_size=size, compaction=compaction,
                                          device="cpu", **kw))
    return make
