"""Cached KV (vLLM's accounting): evictable blocks counted apart from used memory, an evictor that
runs before an allocation counts as failed, evictions counted on their own."""

from __future__ import annotations

import pytest

import autoglm_lab as al
from autoglm_lab.pool import PageState

from .helpers import check_pattern, small_pool, write_pattern


def test_cached_blocks_are_neither_used_nor_free() -> None:
    pool = small_pool(pages=16)
    a, b, c = (pool.alloc_bytes(n * 4096 - 10) for n in (2, 3, 4))
    pool.set_cached(b)
    st = pool.stats()
    assert (st.used_pages, st.cached_pages, st.free_pages) == (6, 3, 7)
    assert st.used_pages + st.cached_pages + st.free_pages == st.capacity_pages
    assert st.requested_bytes == a.nbytes + c.nbytes and st.cached_blocks == 1 and b.cached
    snap = pool.snapshot()
    assert snap.block_cached.tolist() == [False, True, False]
    assert snap.page_state[b.first_page:b.first_page + 3].tolist() == [PageState.CACHED] * 3
    pool.set_cached(b, False)  # referenced again (a prefix hit)
    assert pool.stats().used_pages == 9 and not b.cached
    pool.set_cached(b)
    pool.free(b)
    st = pool.stats()
    assert st.evictions == 1 and st.cached_pages == 0 and st.free_pages == 10
    pool.check_invariants()


def test_the_evictor_runs_before_an_allocation_counts_as_failed() -> None:
    pool = small_pool(pages=8, compaction="off")
    cache = [pool.alloc_bytes(4096, tag=f"c{i}") for i in range(6)]
    live = pool.alloc_bytes(2 * 4096)
    write_pattern(live)
    for blk in cache:
        pool.set_cached(blk)
    calls: list[int] = []

    def evict_oldest(pages: int) -> int:
        calls.append(pages)
        victim = next(b for b in cache if not b.freed)
        pool.free(victim)
        return 1

    pool.set_evictor(evict_oldest)
    got = pool.alloc_bytes(3 * 4096)  # three evictions make a 3-page run
    st = pool.stats()
    assert calls == [3, 3, 3] and st.evictions == 3 and st.failed_allocations == 0
    assert st.cached_blocks == 3 and got.first_page == 0
    check_pattern(live)
    pool.check_invariants()


def test_an_evictor_with_nothing_to_give_lets_the_allocation_fail() -> None:
    pool = small_pool(pages=4, compaction="off")
    blocks = [pool.alloc_bytes(4096) for _ in range(4)]
    pool.set_cached(blocks[0])
    pool.set_evictor(lambda pages: 1)  # says it evicted, frees nothing: must not loop forever
    with pytest.raises(al.PoolExhausted):
        pool.alloc_bytes(4096)
    assert pool.stats().failed_allocations == 1 and pool.stats().evictions == 0
    pool.set_evictor(None)
    pool.check_invariants()


@pytest.mark.parametrize("bad", [1, "yes", None])
def test_set_cached_refuses_non_bools(bad: object) -> None:
    pool = small_pool(pages=4)
    blk = pool.alloc_bytes(10)
    with pytest.raises(TypeError, match="cached="):
        pool.set_cached(blk, bad)  # type: ignore[arg-type]
    assert not blk.cached and pool.stats().cached_pages == 0


def test_set_evictor_refuses_a_non_callable() -> None:
    with pytest.raises(TypeError, match="not callable"):
        small_pool().set_evictor(42)  # type: ignore[arg-type]
