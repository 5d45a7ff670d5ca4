"""The compiled core against its pure-Python reference: same answers, op for op."""

from __future__ import annotations

import gc
import os
import sys
import weakref

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import autoglm_lab as al
from autoglm_lab.pool import _core, _impl
from autoglm_lab.pool._events import EventArrays, EventRing
from autoglm_lab.pool._freeindex import FreeRunIndex

from .helpers import small_pool

PURE = os.environ.get("AUTOGLM_LAB_PURE_PYTHON", "") not in ("", "0")


def test_pools_run_on_the_compiled_core_unless_told_otherwise() -> None:
    pool = small_pool()
    if PURE:
        assert _impl.IMPL == "python" and pool.core == "python"
    else:
        assert _impl.IMPL == "c", _impl.REASON
        assert pool.core == "c"
        assert _core.SOURCE_HASH == _impl.source_hash(), "the compiled core is stale: run scripts/setup.sh"


def _state(idx: object) -> tuple:
    return (idx.runs(), idx.merged_runs(), idx.largest(), len(idx), idx.free_pages, idx.total_pages,  # type: ignore[attr-defined]
            bool(idx.dirty), sorted(np.frombuffer(idx.lengths(), dtype=np.int64).tolist()))  # type: ignore[attr-defined]


ops = st.lists(st.tuples(st.sampled_from(["take", "release", "carve", "merge", "grow", "fit", "reset"]),
                         st.integers(1, 12), st.integers(0, 10_000), st.booleans()),
               min_size=1, max_size=80)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fit=st.sampled_from(["best", "first"]), first_seg=st.integers(1, 40), ops=ops)
def test_free_index_matches_reference(fit: str, first_seg: int, ops: list[tuple[str, int, int, bool]]) -> None:
    c, py = _core.FreeIndex(fit), FreeRunIndex(fit)
    for idx in (c, py):
        idx.add_segment(0, first_seg)
    taken: list[tuple[int, int]] = []  # ranges handed out, to give back later
    for op, n, pick, flag in ops:
        if op == "take":
            got = c.take(n), py.take(n)
            assert got[0] == got[1]
            if got[0] >= 0:
                taken.append((got[0], n))
        elif op == "release" and taken:
            start, length = taken.pop(pick % len(taken))
            for idx in (c, py):
                idx.release(start, length, merge=flag)
        elif op == "carve":
            runs = c.runs()
            if runs:
                start, length = runs[pick % len(runs)]
                off = pick % length
                size = min(n, length - off)
                for idx in (c, py):
                    idx.carve(start + off, size)
                taken.append((start + off, size))
        elif op == "merge":
            assert c.merge_all() == py.merge_all()
        elif op == "grow":
            for idx in (c, py):
                idx.add_segment(idx.total_pages, n)
        elif op == "fit":
            for idx in (c, py):
                idx.fit = "first" if flag else "best"
        elif op == "reset":  # rebuild from the maximal runs, as release_empty_segments does
            merged = py.merged_runs()
            barriers = {0, py.total_pages} | set(py.barriers)
            for idx in (c, py):
                idx.reset(py.total_pages, barriers, merged)
        assert _state(c) == _state(py)
        # the same run for every request size: the length lists hold runs in the same order
        assert [c.find(k) for k in range(1, 14)] == [py.find(k) for k in range(1, 14)]
        c.check()
        py.check()


def test_free_index_refuses_double_release_and_bad_carve() -> None:
    for idx in (_core.FreeIndex("best"), FreeRunIndex("best")):
        idx.add_segment(0, 8)
        assert idx.take(3) == 0
        with pytest.raises(ValueError, match="already free"):
            idx.release(3, 2, merge=True)  # pages 3..4 are free
        with pytest.raises(ValueError, match="outside the pool"):
            idx.release(6, 4, merge=True)
        with pytest.raises(AssertionError, match="not inside"):
            idx.carve(1, 1)
        idx.check()


@settings(max_examples=100, deadline=None)
@given(cap=st.integers(0, 9), ops=st.lists(st.one_of(st.integers(0, 9).map(lambda c: ("resize", c)),
                                                     st.tuples(st.just("record"), st.integers(0, 7))),
                                           max_size=40))
def test_event_ring_matches_reference(cap: int, ops: list[tuple[str, int]]) -> None:
    c, py = _core.EventRing(cap), EventRing(cap)
    for k, (op, arg) in enumerate(ops):
        if op == "resize":
            c.resize(arg)
            py.resize(arg)
        else:
            ev = (k * 0.5, arg, k - 3, 2 * k, k / 7, -k)
            c.record(ev)
            py.record(ev)
        assert (c.total, c.capacity, len(c)) == (py.total, py.capacity, len(py))
        a, b = EventArrays.from_rows(c.rows()), EventArrays.from_rows(py.rows())
        for name in ("time_s", "kind", "block_id", "pages", "latency_s", "info"):
            assert getattr(a, name).dtype == getattr(b, name).dtype
            assert np.array_equal(getattr(a, name), getattr(b, name)), name


def test_unusual_arguments_take_the_checked_path() -> None:
    pool = small_pool(pages=64)
    a = pool.alloc([2, 3], torch.float32)  # a list, not a tuple
    b = pool.alloc(torch.Size([4, 4]), torch.float16, tag="kv")
    class Count(int):
        pass

    c = pool.alloc(Count(5), torch.uint8)  # an int subclass: the checked path, stored as a plain int
    assert (a.shape, b.shape, c.shape) == ((2, 3), (4, 4), (5,))
    assert type(b.shape) is tuple and type(c.shape[0]) is int
    assert b.tensor.shape == (4, 4) and c.tensor.dtype == torch.uint8
    before = pool.snapshot()
    for bad, err in [(lambda: pool.alloc((2, -1)), ValueError), (lambda: pool.alloc((2, True)), ValueError),
                     (lambda: pool.alloc("3"), TypeError), (lambda: pool.alloc(3, "float32"), TypeError),
                     (lambda: pool.alloc(3, tag=7), TypeError), (lambda: pool.alloc_bytes(3.0), ValueError),
                     (lambda: pool.alloc_bytes(True), ValueError), (lambda: pool.alloc_bytes(-2), ValueError),
                     (lambda: pool.alloc((1 << 40, 1 << 40)), al.PoolExhausted),
                     (lambda: pool.alloc_bytes(1 << 70), al.PoolExhausted), (lambda: pool.free("a"), TypeError)]:
        with pytest.raises(err):
            bad()
    after = pool.snapshot()
    assert np.array_equal(before.page_block, after.page_block)
    assert before.stats.num_blocks == after.stats.num_blocks == 3
    assert after.stats.failed_allocations == 2  # the two exhaustions, nothing else
    pool.check_invariants()


def test_no_reference_leaks_and_pools_are_collected() -> None:
    tag = "leak-check-" + "x" * 8
    pool = small_pool(pages=64)
    shape = (3, 5)

    def cycle(n: int) -> tuple[int, int, int]:
        for _ in range(n):
            blk = pool.alloc(shape, torch.float16, tag=tag)
            blk.tensor.fill_(1)
            pool.free(blk)
        del blk
        gc.collect()
        return sys.getrefcount(tag), sys.getrefcount(shape), sys.getrefcount(torch.float16)

    warm = cycle(10)  # first use caches the tag, the dtype's item size and the shape's strides
    assert cycle(500) == warm  # then an alloc/free cycle neither keeps nor drops a reference
    other = small_pool(pages=8)
    blk = other.alloc_bytes(100)
    ref, blk_ref = weakref.ref(other), weakref.ref(blk)
    del other, blk
    gc.collect()
    assert ref() is None and blk_ref() is None  # the pool <-> block <-> core cycles are collectable


def test_relocate_moves_bookkeeping_and_refuses_a_wrong_move() -> None:
    pool = small_pool(pages=8)
    a, b = pool.alloc_bytes(4096), pool.alloc_bytes(2 * 4096)
    pool.free(a)
    b.tensor.fill_(7)
    seq = pool.seq
    pool.segment_storage()[0].data[0:2 * 4096] = b.tensor.clone()  # the copy the compactor would have made
    pool.apply_moves([(b.id, 1, 0)], lambda: None)
    assert b.first_page == 0 and pool.seq > seq and bool((b.tensor == 7).all())
    assert pool.snapshot().block_first_page.tolist() == [0]
    pool.check_invariants()
    with pytest.raises(AssertionError):
        pool.apply_moves([(b.id, 5, 6)], lambda: None)  # b is not at page 5
    pool.check_invariants()


def test_relocate_is_all_or_nothing() -> None:
    # blocks a at page 0, c at 2-3, d at 4, f at 6; pages 1, 5 and 7 free
    pool = small_pool(pages=8)
    blocks = [pool.alloc_bytes(n * 4096) for n in (1, 1, 2, 1, 1, 1)]
    for i in (1, 4):
        pool.free(blocks[i])
    a, c, d, f = blocks[0], blocks[2], blocks[3], blocks[5]
    assert [a.first_page, c.first_page, d.first_page, f.first_page] == [0, 2, 4, 6]
    before = pool.snapshot()
    for bad in ([(d.id, 4, 5), (a.id, 0, 1), (f.id, 6, 5)],   # f onto d's new place
                [(d.id, 4, 5), (d.id, 5, 7), (c.id, 2, 5)],   # d moved twice, then c onto f
                [(d.id, 4, 5), (a.id, 0, 1), (99, 3, 7)]):    # no such block
        with pytest.raises(AssertionError):
            pool.apply_moves(bad, lambda: None)
        after = pool.snapshot()
        assert after.page_block.tolist() == before.page_block.tolist()  # every block where it was
        assert [a.first_page, c.first_page, d.first_page, f.first_page] == [0, 2, 4, 6]
        assert after.stats.free_runs == before.stats.free_runs
        pool.check_invariants()
    pool.apply_moves([(d.id, 4, 5), (a.id, 0, 1)], lambda: None)  # and what fits still goes through
    assert (a.first_page, d.first_page) == (1, 5)
    pool.check_invariants()


def test_copy_ranges_checks_every_range_before_copying() -> None:
    buf = np.arange(64, dtype=np.uint8)
    before = buf.copy()
    with pytest.raises(ValueError, match="outside"):
        _core.copy_ranges(buf, np.array([[0, 8, 8], [60, 0, 8]], dtype=np.int64), 4)
    assert np.array_equal(buf, before)  # the valid first range was not copied either
    with pytest.raises(ValueError, match="rows"):
        _core.copy_ranges(buf, np.zeros(4, dtype=np.int64), 4)
    with pytest.raises(BufferError, match="not writable"):
        _core.copy_ranges(before.tobytes(), np.zeros((1, 3), dtype=np.int64), 4)
    _core.copy_ranges(buf, np.array([[0, 3, 40]], dtype=np.int64), 16)  # overlapping, in pieces
    before[3:43] = before[0:40].copy()
    assert np.array_equal(buf, before)


def test_apply_moves_puts_the_books_back_when_the_copy_fails() -> None:
    pool = small_pool(pages=8)
    a, b = pool.alloc_bytes(4096), pool.alloc_bytes(2 * 4096)
    pool.free(a)
    before = pool.snapshot()

    def broken_copy() -> None:
        raise RuntimeError("device lost")

    with pytest.raises(RuntimeError, match="device lost"):
        pool.apply_moves([(b.id, 1, 0)], broken_copy)
    assert b.first_page == 1
    assert pool.snapshot().page_block.tolist() == before.page_block.tolist()
    pool.check_invariants()
