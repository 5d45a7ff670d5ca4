"""The bad-input table's shared parts: a pool with live, patterned blocks; a case; the check that a
refusal is typed, names the bad value and what is allowed, and leaves the pool exactly as it was."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

import autoglm_lab as al

from ..pool.helpers import check_pattern, write_pattern

# words that say what is allowed (or what was expected) in our messages
ALLOWED = re.compile(r"allowed|use |give |choose|expect|must|one of|known|only|needs|is not a|not an?\b|"
                     r"belongs to|already freed|was freed|pinned|cannot|up to|too large|between|from \d|"
                     r"read-only|attribute|has no setter|object attribute|is not writable|save the \w+ as|"
                     r"at most", re.I)


@dataclass
class World:
    pool: al.PagedPool
    other: al.PagedPool
    blocks: list[al.Block]
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Case:
    name: str
    call: Callable[[World], object]
    exc: type[BaseException] | tuple[type[BaseException], ...]
    needle: str  # the bad value as the message must show it


def make_world() -> World:
    pool = al.PagedPool(al.PoolConfig(page_size=4096, memory_pool_initial_size=32 * 4096, max_size=64 * 4096,
                                      device="cpu", compaction="lazy"))
    blocks = [pool.alloc_bytes(n * 1000 + 7, tag=f"t{n % 3}") for n in range(1, 9)]
    for b in blocks[::3]:
        pool.free(b)
    blocks = [b for b in blocks if not b.freed]
    for b in blocks:
        write_pattern(b)
    other = al.PagedPool(al.PoolConfig(page_size=4096, memory_pool_initial_size=8 * 4096, device="cpu"))
    return World(pool, other, blocks)


def pool_state(pool: al.PagedPool) -> tuple:
    snap = pool.snapshot()
    arrays = tuple(np.asarray(getattr(snap, name)).tobytes() for name in (
        "segment_first_page", "segment_num_pages", "block_id", "block_first_page", "block_num_pages",
        "block_nbytes", "block_tag", "block_pinned", "block_created_s"))
    return (pool.stats(), pool.config, snap.tags, snap.events_total, arrays)


def assert_refused(case: Case, world: World) -> str:
    """Run the case's call; return the refusal's message for further checks."""
    before = pool_state(world.pool)
    with pytest.raises(case.exc) as info:
        case.call(world)
    msg = str(info.value)
    assert case.needle in msg, f"{case.name}: the message does not name the bad value {case.needle!r}: {msg}"
    assert ALLOWED.search(msg), f"{case.name}: the message does not say what is allowed: {msg}"
    world.pool.check_invariants()
    assert pool_state(world.pool) == before, f"{case.name}: the pool changed"
    for b in world.blocks:
        check_pattern(b)
    return msg
