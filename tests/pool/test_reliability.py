"""Issue #12's pool findings, each reproduced: the view-cache race, writable handle fields, device
allocation failures, tag names never released, device strings and shapes torch rejects."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

import autoglm_lab as al
from autoglm_lab.pool import _pool as pool_module

from .helpers import check_pattern, small_pool, write_pattern


def _fragment(pool: al.PagedPool, n: int = 8) -> list[al.Block]:
    """n one-page blocks with every other one freed: holes below live blocks."""
    blocks = [pool.alloc_bytes(pool.page_size, tag="frag") for _ in range(n)]
    for b in blocks[::2]:
        pool.free(b)
    return blocks[1::2]


def test_tensor_view_is_cached_under_the_lock_so_a_move_cannot_leave_it_stale() -> None:
    # Thread A builds block b's view and is paused inside _Segment.view (the named point); thread B
    # compacts, which moves b down. Before the fix B ran at once and A then cached a view of b's old
    # pages (by then another block's): writing b overwrote them.
    pool = small_pool(pages=8)
    hole = pool.alloc_bytes(4096, tag="hole")
    b = pool.alloc_bytes(4096, tag="b")
    pool.free(hole)
    assert b.first_page == 1
    entered, release = threading.Event(), threading.Event()
    real_view = pool_module._Segment.view

    def paused_view(self, *args):
        view = real_view(self, *args)
        entered.set()
        assert release.wait(10), "test did not release the paused reader"
        return view

    seen: list[torch.Tensor] = []
    errors: list[BaseException] = []

    def reader() -> None:
        try:
            seen.append(b.tensor)
        except BaseException as exc:
            errors.append(exc)

    def compactor() -> None:
        try:
            pool.compact()
        except BaseException as exc:
            errors.append(exc)

    pool_module._Segment.view = paused_view  # type: ignore[method-assign]
    try:
        ta = threading.Thread(target=reader)
        ta.start()
        assert entered.wait(10)
        tb = threading.Thread(target=compactor)
        tb.start()
        tb.join(0.5)
        moved_while_paused = not tb.is_alive()  # without the lock the move lands in A's window
        release.set()
        ta.join(10)
        tb.join(10)
    finally:
        pool_module._Segment.view = real_view  # type: ignore[method-assign]
    assert not errors, errors
    assert not ta.is_alive() and not tb.is_alive()
    assert not moved_while_paused, "compaction ran while a reader was building the block's view"
    assert b.first_page == 0
    # the cached view is the block's current place, and writing it touches no other page
    other = pool.alloc_bytes(4096, tag="other")
    write_pattern(other)
    b.tensor.fill_(0xAB)
    check_pattern(other)
    assert b.tensor.data_ptr() == pool_module._Segment.view(b._seg, 0, 1, torch.uint8, (1,)).data_ptr()
    pool.check_invariants()


@pytest.mark.parametrize("field,value", [
    ("id", 99), ("nbytes", 1), ("num_pages", 3), ("tag", "x"), ("dtype", torch.float64),
    ("shape", (1,)), ("created_s", 0.0),
])
def test_public_block_fields_are_read_only(field: str, value: object) -> None:
    pool = small_pool(pages=8)
    a, b, c = (pool.alloc_bytes(4096, tag=t) for t in "abc")
    for blk in (a, b, c):
        write_pattern(blk)
    before = getattr(b, field)
    with pytest.raises(AttributeError):
        setattr(b, field, value)
    assert getattr(b, field) == before
    pool.free(b)  # frees b's page only: its neighbours keep every byte
    check_pattern(a)
    check_pattern(c)
    assert pool.stats().used_pages == 2
    pool.check_invariants()


def test_hold_yields_a_view_that_stays_valid_while_another_thread_compacts() -> None:
    pool = small_pool(pages=8)
    hole = pool.alloc_bytes(4096)
    b = pool.alloc_bytes(4096)
    pool.free(hole)
    with b.hold() as t:
        t.fill_(7)
        pool.compact()  # b is pinned: not moved
        assert b.first_page == 1 and b.tensor.data_ptr() == t.data_ptr()
    pool.compact()
    assert b.first_page == 0 and int(b.tensor[0]) == 7 and not b.pinned


class _RefuseBigSegments:
    """torch.empty that fails like a full device for segment-sized uint8 tensors above a size."""

    def __init__(self, limit: int, exc: type[BaseException]) -> None:
        self.limit, self.exc, self.real = limit, exc, torch.empty
        self.refused = 0

    def __call__(self, *args, **kw):
        size = args[0] if args else kw.get("size")
        if kw.get("dtype") is torch.uint8 and isinstance(size, int) and size > self.limit:
            self.refused += 1
            raise self.exc(f"CUDA out of memory. Tried to allocate {size} bytes")
        return self.real(*args, **kw)


@pytest.mark.parametrize("exc", [torch.OutOfMemoryError, RuntimeError])
def test_a_growth_the_device_refuses_is_a_failed_allocation_with_the_triggers_run(
        monkeypatch: pytest.MonkeyPatch, exc: type[BaseException]) -> None:
    # free pages exist only as one-page holes; the pool may grow to 64 pages but the device refuses
    pool = small_pool(pages=16, max_pages=64, compaction="lazy", max_consecutive_failures=1)
    live = _fragment(pool, 16)
    for blk in live:
        write_pattern(blk)
    refuse = _RefuseBigSegments(0, exc)
    monkeypatch.setattr(pool_module.torch, "empty", refuse)
    got = pool.alloc_bytes(4 * 4096)  # compaction (the failure trigger) makes the run
    assert refuse.refused >= 1
    stats = pool.stats()  # served by compaction: not counted as failed
    assert stats.compactions == 1 and stats.compactions_by_reason == {"consecutive_failures": 1}
    assert stats.failed_allocations == 0
    for blk in live:
        check_pattern(blk)
    # no room even after compaction: PoolExhausted (a MemoryError) naming the device's refusal
    with pytest.raises(al.PoolExhausted, match="device refused") as info:
        pool.alloc_bytes(8 * 4096)
    assert isinstance(info.value, MemoryError)
    assert pool.capacity_pages == 16 and pool.num_segments == 1 and pool.stats().failed_allocations == 1
    pool.free(got)
    pool.check_invariants()


def test_a_first_segment_the_device_cannot_back_is_a_typed_memory_error() -> None:
    # a real refusal: no allocator backs 2**50 bytes here
    with pytest.raises(al.DeviceAllocationError, match="could not allocate a segment") as info:
        al.PagedPool(al.PoolConfig(page_size="64KiB", memory_pool_initial_size=1 << 50, max_size=1 << 50,
                                   device="cpu"))
    assert isinstance(info.value, MemoryError)


def test_a_real_refused_growth_is_pool_exhausted() -> None:
    pool = small_pool(pages=4, max_pages=1 << 38)  # max_size 1 PiB: growth is allowed, the CPU refuses
    a = pool.alloc_bytes(4096)
    write_pattern(a)
    with pytest.raises(al.PoolExhausted, match="device refused"):
        pool.alloc_bytes(1 << 49)
    assert pool.num_segments == 1 and pool.stats().failed_allocations == 1
    check_pattern(a)
    pool.check_invariants()


def test_the_simulator_keeps_serving_when_the_device_refuses_growth(monkeypatch: pytest.MonkeyPatch) -> None:
    from autoglm_lab.workload import ServingConfig, ServingSim, synthetic_requests

    pool = al.PagedPool(al.PoolConfig(page_size="16KiB", memory_pool_initial_size="1MiB", max_size="64MiB",
                                      device="cpu"))
    monkeypatch.setattr(pool_module.torch, "empty", _RefuseBigSegments(0, torch.OutOfMemoryError))
    reqs = synthetic_requests(40, seed=3)
    sim = ServingSim(pool, requests=reqs, config=ServingConfig())
    summary = sim.run(steps=3000, progress=False)
    assert pool.num_segments == 1
    assert summary["requests_done"] >= 1
    assert summary["requests_done"] + summary["requests_rejected"] + summary["requests_waiting"] \
        + summary["requests_running"] >= 1
    pool.check_invariants()


def test_tag_names_are_released_with_their_last_block() -> None:
    pool = small_pool(pages=64)
    keep = pool.alloc_bytes(100, tag="keep")
    for i in range(5000):
        pool.free(pool.alloc_bytes(100, tag=f"req-{i}"))
    snap = pool.snapshot()
    live_names = [t for t in snap.tags if t is not None]
    assert live_names == ["keep"] and len(snap.tags) <= 2
    # ids are reused: every live block still maps to its own name
    blocks = [pool.alloc_bytes(100, tag=f"r{i % 7}") for i in range(30)]
    pool.free(blocks[3])
    snap = pool.snapshot()
    names = {int(b): snap.tags[t] for b, t in zip(snap.block_id, snap.block_tag, strict=True)}
    assert names[keep.id] == "keep"
    for b in blocks:
        if not b.freed:
            assert names[b.id] == b.tag
    assert sorted(t for t in snap.tags if t is not None) == sorted({"keep", *(f"r{i}" for i in range(7))})
    for b in blocks:
        if not b.freed:
            pool.free(b)
    pool.free(keep)
    assert all(t is None for t in pool.snapshot().tags)
    pool.check_invariants()


@pytest.mark.parametrize("device", ["cpu\n", "cuda:99999999999999999999", " cpu", "cpu:0x", "gpu"])
def test_device_strings_torch_would_reject_are_refused_by_the_config(device: str) -> None:
    with pytest.raises(ValueError, match="device=") as info:
        al.PoolConfig(device=device)
    assert "allowed" in str(info.value) or "use" in str(info.value)


def test_resolve_device_turns_torch_errors_into_value_errors() -> None:
    with pytest.raises(ValueError, match="not a device torch knows"):
        pool_module.resolve_device("cuda:99999999999999999999")


@pytest.mark.parametrize("shape,dtype", [((0, 2**70), torch.float32), ((0, 2**61), torch.float32),
                                         ((2**62, 0), torch.float16)])
def test_empty_shapes_whose_strides_overflow_are_refused(shape: tuple, dtype: torch.dtype) -> None:
    pool = small_pool(pages=8)
    a = pool.alloc_bytes(4096)
    before = pool.stats()
    with pytest.raises(ValueError, match="shape="):
        pool.alloc(shape, dtype)
    assert pool.stats() == before
    pool.free(a)
    empty = pool.alloc((0, 2**20), torch.float32)  # big but representable: fine, and its view works
    assert empty.tensor.shape == (0, 2**20)


@pytest.mark.parametrize("now", ["soon", float("nan"), float("inf"), True, [1]])
def test_tick_names_a_bad_clock(now: object) -> None:
    pool = small_pool(pages=8, compaction="eager")
    with pytest.raises(ValueError, match=r"tick\(now=") as info:
        pool.tick(now)  # type: ignore[arg-type]
    assert "finite number of seconds" in str(info.value)
    assert np.isfinite(pool.now())


def test_a_meta_pool_keeps_the_books_of_a_device_larger_than_this_machine() -> None:
    # bookkeeping only (replays of a big device's trace): no bytes exist, compaction still plans
    pool = al.PagedPool(al.PoolConfig(page_size="2MiB", memory_pool_initial_size="80GiB", max_size="80GiB",
                                      device="meta"))
    blocks = [pool.alloc_bytes(3 << 20) for _ in range(200)]
    for b in blocks[::2]:
        pool.free(b)
    assert pool.stats().free_runs > 1
    report = pool.compact()
    assert report.pages_moved == report.lower_bound_pages > 0
    assert pool.stats().free_runs == 1 and blocks[1].tensor.device.type == "meta"
    pool.check_invariants()
