"""Unit tests of the pool's rules (issue 2 §2), on the CPU and on CUDA where present."""

from __future__ import annotations

import subprocess
import sys
import threading

import numpy as np
import pytest
import torch

import autoglm_lab as al
from autoglm_lab.pool import EventKind, PageState

from .helpers import small_pool


def test_default_pool_and_contract(device: str) -> None:
    pool = al.PagedPool(al.PoolConfig(device=device, memory_pool_initial_size="4MiB", max_size="8MiB"))
    blk = pool.alloc((1024, 64), torch.float16, tag="kv/seq-7")
    assert isinstance(blk, al.Block)
    assert blk.tensor.shape == (1024, 64) and blk.tensor.dtype == torch.float16
    assert blk.tensor.device.type == torch.device(device).type
    assert blk.nbytes == 1024 * 64 * 2 and blk.num_pages == 2 and blk.first_page == 0 and blk.tag == "kv/seq-7"
    pool.free(blk)
    pool.check_invariants()


def test_pool_with_no_arguments_uses_defaults() -> None:
    pool = al.PagedPool()
    assert pool.page_size == 64 << 10 and pool.capacity_bytes == 64 << 20


def test_tensor_is_a_view_of_the_pool_pages(device: str) -> None:
    pool = small_pool(device)
    a = pool.alloc((3, 5), torch.float32)
    b = pool.alloc_bytes(5000)
    seg = pool._segments[0].data
    a.tensor.fill_(1.5)
    b.tensor.fill_(7)
    assert a.tensor.untyped_storage().data_ptr() == seg.untyped_storage().data_ptr()
    page = pool.page_size
    assert torch.equal(seg[b.first_page * page: b.first_page * page + 5000], torch.full((5000,), 7, dtype=torch.uint8,
                                                                                         device=seg.device))
    assert float(seg[: 60].view(torch.float32)[0]) == 1.5


@pytest.mark.parametrize("dtype", [torch.float64, torch.complex128, torch.int16, torch.bool, torch.bfloat16])
def test_every_dtype_is_aligned_and_usable(device: str, dtype: torch.dtype) -> None:
    pool = small_pool(device, page=64, pages=64)
    pool.alloc_bytes(3)  # leaves the next block at an odd-looking but page-aligned place
    blk = pool.alloc((2, 3), dtype)
    assert blk.tensor.data_ptr() % 16 == 0
    blk.tensor.zero_()
    assert blk.tensor.shape == (2, 3) and blk.tensor.dtype == dtype


def test_zero_size_block_takes_one_page() -> None:
    pool = small_pool()
    blk = pool.alloc((0, 4), torch.float32)
    assert blk.num_pages == 1 and blk.nbytes == 0 and blk.tensor.numel() == 0


def test_double_free_and_use_after_free_raise(device: str) -> None:
    pool = small_pool(device)
    blk = pool.alloc_bytes(100)
    pool.free(blk)
    with pytest.raises(al.InvalidBlockError, match="already freed"):
        pool.free(blk)
    with pytest.raises(al.InvalidBlockError, match="was freed"):
        _ = blk.tensor
    with pytest.raises(al.InvalidBlockError, match="was freed"):
        _ = blk.first_page
    other = small_pool(device)
    foreign = other.alloc_bytes(10)
    with pytest.raises(al.InvalidBlockError, match="another pool"):
        pool.free(foreign)
    with pytest.raises(TypeError, match="expects a Block"):
        pool.free("block 3")  # type: ignore[arg-type]
    pool.check_invariants()


def test_block_context_manager_frees() -> None:
    pool = small_pool()
    with pool.alloc_bytes(4096 * 3) as blk:
        assert pool.stats().used_pages == 3
    assert blk.freed and pool.stats().used_pages == 0


@pytest.mark.parametrize(("args", "exc"), [
    (((-1, 2), torch.float32), ValueError),
    (((2.5,), torch.float32), ValueError),
    (("12", torch.float32), TypeError),
    (((2, 2), "float32"), TypeError),
    (((2, 2), torch.float32, 5), TypeError),
])
def test_bad_alloc_arguments_leave_pool_unchanged(args: tuple, exc: type[Exception]) -> None:
    pool = small_pool()
    pool.alloc_bytes(5000)
    before = pool.snapshot()
    with pytest.raises(exc):
        if len(args) == 3:
            pool.alloc(args[0], args[1], tag=args[2])
        else:
            pool.alloc(*args)
    after = pool.snapshot()
    assert before.seq == after.seq
    assert np.array_equal(before.page_block, after.page_block)
    with pytest.raises(ValueError, match="nbytes"):
        pool.alloc_bytes(-5)


def test_first_fit_and_best_fit_choose_different_runs() -> None:
    for fit, expected in (("first", 1), ("best", 8)):
        pool = small_pool(pages=16, fit=fit)
        blocks = [pool.alloc_bytes(4096) for _ in range(16)]
        # holes: [1..3] (3 pages) and [8..9] (2 pages)
        for i in (1, 2, 3, 8, 9):
            pool.free(blocks[i])
        assert pool.alloc_bytes(2 * 4096).first_page == expected, fit
        pool.check_invariants()


def test_lazy_coalescing_merges_only_when_needed() -> None:
    pool = small_pool(pages=8, coalesce="lazy")
    blocks = [pool.alloc_bytes(4096) for _ in range(8)]
    for b in blocks[2:6]:
        pool.free(b)
    assert len(pool._index) == 4  # four one-page runs, not merged yet
    st = pool.stats()
    assert st.free_runs == 1 and st.largest_free_run_pages == 4  # stats report the true, merged state
    big = pool.alloc_bytes(4 * 4096)
    assert big.first_page == 2
    pool.check_invariants()


def test_eager_coalescing_merges_on_free() -> None:
    pool = small_pool(pages=8, coalesce="eager")
    blocks = [pool.alloc_bytes(4096) for _ in range(8)]
    for b in (blocks[3], blocks[5], blocks[4]):
        pool.free(b)
    assert len(pool._index) == 1 and pool._index.largest() == 3
    pool.check_invariants()


def test_grows_by_segments_up_to_max_and_releases(device: str) -> None:
    pool = small_pool(device, pages=4, max_pages=14)
    a = pool.alloc_bytes(4 * 4096)
    b = pool.alloc_bytes(2 * 4096)  # second segment
    c = pool.alloc_bytes(6 * 4096)  # larger than a segment: a segment of its own
    assert pool.num_segments == 3 and pool.capacity_pages == 4 + 4 + 6
    c_data = c.tensor.clone()
    assert b.first_page == 4 and c.first_page == 8 and b.segment == 1
    kinds = pool.snapshot().events.kind
    assert (kinds == EventKind.GROW).sum() == 2
    pool.free(b)
    assert pool.release_empty_segments() == 4 * 4096
    assert pool.num_segments == 2 and c.first_page == 4  # renumbered, same bytes
    assert torch.equal(c.tensor, c_data)
    pool.check_invariants()
    with pytest.raises(al.PoolExhausted):
        pool.alloc_bytes(8 * 4096)  # would need 4 + 6 + 8 > 14 pages
    pool.free(a)
    pool.free(c)
    assert pool.release_empty_segments() > 0 and pool.num_segments == 1  # the first segment stays
    pool.check_invariants()


def test_pool_exhausted_says_what_and_leaves_pool_unchanged() -> None:
    pool = small_pool(pages=8, compaction="off")
    blocks = [pool.alloc_bytes(4096) for _ in range(8)]
    for b in blocks[::2]:
        pool.free(b)
    before = pool.snapshot()
    with pytest.raises(al.PoolExhausted) as err:
        pool.alloc_bytes(2 * 4096)
    assert isinstance(err.value, MemoryError)
    msg = str(err.value)
    assert "2 page(s)" in msg and "4 page(s) free" in msg and "largest free run 1 page(s)" in msg
    assert (err.value.pages_requested, err.value.free_pages, err.value.largest_free_run) == (2, 4, 1)
    after = pool.snapshot()
    assert np.array_equal(before.page_block, after.page_block) and before.seq == after.seq
    st = pool.stats()
    assert st.failed_allocations == 1 and st.consecutive_failures == 1
    pool.alloc_bytes(10)
    assert pool.stats().consecutive_failures == 0
    pool.check_invariants()


def test_stats_accounting() -> None:
    pool = small_pool(pages=10)
    a = pool.alloc_bytes(4096 + 1)   # 2 pages, 4095 bytes waste
    b = pool.alloc_bytes(3 * 4096)
    c = pool.alloc_bytes(100)        # 1 page
    pool.free(b)
    st = pool.stats()
    assert st.capacity_pages == 10 and st.used_pages == 3 and st.free_pages == 7
    assert st.used_bytes + st.free_bytes == st.capacity_bytes
    assert st.requested_bytes == 4097 + 100
    assert st.internal_waste_bytes == 3 * 4096 - 4197
    assert st.free_runs == 2 and st.largest_free_run_pages == 4
    assert st.external_fragmentation == pytest.approx(1 - 4 / 7)
    assert st.num_segments == 1 and st.num_blocks == 2 and st.peak_used_bytes == 6 * 4096
    pool.free(a)
    pool.free(c)
    st = pool.stats()
    assert st.external_fragmentation == 0.0 and st.free_runs == 1
    full = small_pool(pages=2)
    full.alloc_bytes(2 * 4096)
    assert full.stats().external_fragmentation == 0.0  # nothing free


@pytest.mark.parametrize("coalesce", ["eager", "lazy"])
def test_free_run_lengths_match_the_snapshot(coalesce: str) -> None:
    pool = small_pool(pages=16, coalesce=coalesce)
    blocks = [pool.alloc_bytes(4096) for _ in range(12)]
    for i in (1, 2, 3, 7, 9, 10):
        pool.free(blocks[i])
    lengths = pool.free_run_lengths()
    assert sorted(lengths.tolist()) == sorted(pool.snapshot().free_runs()[1].tolist()) == [1, 2, 3, 4]


def test_snapshot_arrays_match_blocks() -> None:
    pool = small_pool(pages=12, max_pages=20)  # room for a second segment of 8 pages
    a = pool.alloc_bytes(2 * 4096, tag="a")
    b = pool.alloc_bytes(100, tag="b")
    c = pool.alloc_bytes(3 * 4096, tag="a")
    pool.free(b)
    d = pool.alloc_bytes(8 * 4096, tag="big")  # a second segment
    with pool.pin(c):
        snap = pool.snapshot()
    assert snap.version == al.pool.SNAPSHOT_VERSION and snap.num_pages == 12 + 8
    assert snap.page_block.tolist()[:6] == [a.id, a.id, -1, c.id, c.id, c.id]
    assert snap.page_state[:6].tolist() == [PageState.USED] * 2 + [PageState.FREE] + [PageState.PINNED] * 3
    assert snap.page_segment.tolist() == [0] * 12 + [1] * 8
    assert snap.tags[snap.page_tag[0]] == "a" and snap.tags[snap.page_tag[12]] == "big"
    assert snap.block_id.tolist() == [a.id, c.id, d.id] and snap.block_first_page.tolist() == [0, 3, 12]
    assert snap.block_pinned.tolist() == [False, True, False]
    starts, lens = snap.free_runs()
    assert starts.tolist() == [2, 6] and lens.tolist() == [1, 6]
    assert snap.stats.used_pages == 2 + 3 + 8
    kinds = snap.events.kind.tolist()
    assert kinds.count(EventKind.ALLOC) == 4 and kinds.count(EventKind.FREE) == 1
    assert (snap.events.latency_s >= 0).all() and np.all(np.diff(snap.events.time_s) >= 0)
    tail = pool.alloc_bytes(10)
    assert pool.snapshot().page_state[tail.first_page] == PageState.TAIL


def test_event_ring_is_bounded() -> None:
    pool = small_pool(pages=4, event_capacity=16)
    for _ in range(100):
        pool.free(pool.alloc_bytes(1))
    snap = pool.snapshot()
    assert len(snap.events) == 16 and snap.events_total == 200


def test_pin_blocks_free_and_counts() -> None:
    pool = small_pool()
    blk = pool.alloc_bytes(10)
    with pool.pin(blk):
        assert blk.pinned and pool.stats().pinned_blocks == 1
        with pytest.raises(al.PinnedBlockError, match="pinned"):
            pool.free(blk)
    assert not blk.pinned and pool.stats().pinned_blocks == 0
    pool.free(blk)


def test_configure_live_fields_validates() -> None:
    pool = small_pool()
    pool.configure(fit="first", free_ratio_trigger=0.4)
    assert pool.config.fit == "first" and pool.config.free_ratio_trigger == 0.4
    before = pool.config
    with pytest.raises(ValueError, match="free_ratio_trigger"):
        pool.configure(fit="best", free_ratio_trigger=2.0)
    assert pool.config is before  # nothing applied
    with pytest.raises(ValueError, match="cannot change on a live pool"):
        pool.configure(page_size="8KiB")
    pool.alloc_bytes(3 * 4096)
    pool.check_invariants()


def test_check_invariants_detects_corruption() -> None:
    pool = small_pool()
    a = pool.alloc_bytes(4096)
    pool.alloc_bytes(4096)
    pool.check_invariants()
    pool._index.release(a._start, 1, merge=False)  # the index now says a used page is free
    with pytest.raises(AssertionError):
        pool.check_invariants()


def test_threads_share_a_pool() -> None:
    pool = small_pool(pages=256)
    errors: list[BaseException] = []

    def worker(seed: int) -> None:
        rng = np.random.default_rng(seed)
        mine: list[al.Block] = []
        try:
            for _ in range(400):
                if mine and rng.random() < 0.5:
                    pool.free(mine.pop(int(rng.integers(len(mine)))))
                else:
                    try:
                        mine.append(pool.alloc_bytes(int(rng.integers(1, 4 * 4096))))
                    except al.PoolExhausted:
                        pass
                if rng.random() < 0.05:
                    pool.snapshot()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    pool.check_invariants()


def test_importing_the_pool_imports_no_widget_stack() -> None:
    code = ("import sys, autoglm_lab.pool, autoglm_lab; "
            "bad = [m for m in ('anywidget', 'ipywidgets', 'traitlets', 'plotly') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_snapshot_of_a_million_pages_is_vectorised() -> None:
    pool = al.PagedPool(al.PoolConfig(page_size=64, memory_pool_initial_size=64 << 20, max_size=64 << 20,
                                      device="cpu"))
    assert pool.capacity_pages == 1 << 20
    for _ in range(2000):
        pool.alloc_bytes(64 * 300)
    snap = pool.snapshot()
    assert snap.page_block.shape == (1 << 20,) and int((snap.page_block >= 0).sum()) == 600_000


def test_copy_bytes_between_blocks(device: str) -> None:
    pool = small_pool(device, pages=16)
    src = pool.alloc_bytes(3 * 4096 - 5)
    dst = pool.alloc_bytes(4 * 4096)
    src.tensor.copy_(torch.arange(src.nbytes, device=src.tensor.device) % 251)
    dst.tensor.fill_(7)
    pool.copy_bytes(dst, src, 5000)
    assert torch.equal(dst.tensor[:5000], src.tensor[:5000]) and int(dst.tensor[5000]) == 7
    pool.copy_bytes(dst, src)  # default: all that fits
    assert torch.equal(dst.tensor[: src.nbytes], src.tensor)
    before = dst.tensor.clone()
    with pytest.raises(ValueError, match="nbytes=99999"):
        pool.copy_bytes(dst, src, 99999)
    pool.free(src)
    with pytest.raises(al.InvalidBlockError):
        pool.copy_bytes(dst, src, 10)
    assert torch.equal(dst.tensor, before)


def test_bucket_fractions_is_the_one_heatmap_bucketing() -> None:
    from autoglm_lab.report import heat_column
    from autoglm_lab.widget._heatmap import bucket_column

    pool = al.PagedPool(al.PoolConfig(page_size=4096, memory_pool_initial_size=12 * 4096, device="cpu"))
    blocks = [pool.alloc_bytes(4096) for _ in range(12)]
    for b in blocks[::3]:
        pool.free(b)
    snap = pool.snapshot()
    free = snap.bucket_fractions(4)
    assert free.tolist() == [1 / 3] * 4
    assert np.allclose(heat_column(snap, 4), free)
    assert bucket_column(snap, 4).tolist() == [85] * 4
    holes = snap.bucket_fractions(5, "holes")  # unequal buckets: the general path
    assert holes.shape == (5,) and ((holes >= 0) & (holes <= 1)).all()
    assert np.isnan(snap.bucket_fractions(16)).sum() == 4  # more buckets than pages: empty ones are NaN
    with pytest.raises(ValueError, match="metric='warmth'"):
        snap.bucket_fractions(4, "warmth")
