"""The caching-allocator model follows torch's rules: rounding, pools, best fit, splitting, merging,
streams, stream-ordered frees, growth, cache release and retry, OOM, max_split_size, expandable segments."""

from __future__ import annotations

from typing import Any

import pytest

from autoglm_lab.torchsnap import Action, CachingAllocatorModel, allocation_size, round_size

K, M = 1 << 10, 1 << 20


def _recorder() -> tuple[list[tuple[str, int, int]], Any]:
    log: list[tuple[str, int, int]] = []

    def rec(action: Action, addr: int, size: int, stream: int, frames: Any) -> None:
        log.append((action.name.lower(), addr, size))
    return log, rec


def test_sizes() -> None:
    assert [round_size(n) for n in (0, 1, 512, 513, 1000)] == [512, 512, 512, 1024, 1024]
    assert allocation_size(512) == 2 * M and allocation_size(M) == 2 * M        # small pool: 2 MiB segments
    assert allocation_size(M + 512) == 20 * M and allocation_size(10 * M - 512) == 20 * M
    assert allocation_size(10 * M) == 10 * M and allocation_size(11 * M + 1) == 12 * M  # rounded to 2 MiB


def test_small_blocks_split_and_merge_within_their_segment() -> None:
    m = CachingAllocatorModel()
    a = m.malloc(1000)
    b = m.malloc(100)
    assert a is not None and b == a + 1024 and m.reserved == 2 * M and m.num_segments == 1
    assert m.block_at(a) == (1024, 1000, True) and m.allocated == 1536 and m.requested == 1100
    m.free(a)
    assert m.largest_free_block(large=False) == 2 * M - 1536
    m.free(b)  # merges with both neighbours: one free block again
    assert m.largest_free_block(large=False) == 2 * M and m.active == 0 and m.reserved == 2 * M


def test_large_remainders_under_1mib_are_not_split() -> None:
    m = CachingAllocatorModel()
    a = m.malloc(19 * M + 512)  # a 20 MiB segment; the 0.5 MiB left is too small to split off
    assert a is not None and m.block_at(a) == (20 * M, 19 * M + 512, True)
    m.free(a)
    b = m.malloc(3 * M)  # a cached 20 MiB block: split, the 17 MiB rest stays free
    assert b == a and m.block_at(b)[0] == 3 * M and m.largest_free_block(large=True) == 17 * M  # type: ignore[index]


def test_best_fit_picks_the_smallest_block_that_fits_then_the_lowest_address() -> None:
    m = CachingAllocatorModel()
    big = m.malloc(12 * M)                              # its own 12 MiB segment
    x = m.malloc(4 * M)                                 # 20 MiB segment: 4 used, 16 free
    assert big is not None and x is not None
    m.free(big)                                         # free blocks: 12 MiB and 16 MiB
    assert m.malloc(11 * M) == big                      # 12 fits best
    assert m.predict(5 * M, 0) == x + 4 * M              # the 16 MiB rest next


def test_pools_and_streams_do_not_share_blocks() -> None:
    m = CachingAllocatorModel()
    a = m.malloc(2 * M, stream=0)
    assert a is not None
    m.free(a)
    b = m.malloc(2 * M, stream=7)  # the cached block belongs to stream 0
    assert b is not None and b != a and m.num_segments == 2
    c = m.malloc(4 * K)             # a small request never takes a large-pool block
    assert c is not None and m.num_segments == 3


def test_no_merging_across_segments() -> None:
    m = CachingAllocatorModel()
    a = m.malloc(12 * M)
    b = m.malloc(12 * M)
    assert a is not None and b is not None
    m.free(a)
    m.free(b)
    assert m.largest_free_block() == 12 * M and m.num_segments == 2


def test_a_stream_ordered_free_keeps_the_block_until_completed() -> None:
    m = CachingAllocatorModel()
    a = m.malloc(4 * M)
    assert a is not None
    m.free_requested(a)
    assert m.pending_at(a) and m.allocated == 0 and m.active == 4 * M
    assert m.malloc(4 * M) != a          # not reusable yet
    m.free_completed(a)
    assert not m.pending_at(a) and m.predict(4 * M, 0) == a
    with pytest.raises(ValueError, match="no block waits"):
        m.free_completed(a)
    with pytest.raises(ValueError, match="no allocated block"):
        m.free(a)


def test_growth_release_retry_and_oom_are_recorded_as_torch_does() -> None:
    log, rec = _recorder()
    m = CachingAllocatorModel(44 * M, recorder=rec)
    a = m.malloc(12 * M)
    b = m.malloc(12 * M)
    assert a is not None and b is not None
    m.free(a)                                   # segment a is cached, wholly free
    log.clear()
    c = m.malloc(30 * M)                         # 24 reserved + 30 > 44: release a's segment, retry: fits
    assert c is not None
    assert [e[0] for e in log] == ["segment_free", "segment_alloc", "alloc"]
    assert log[0][1:] == (a, 12 * M) and log[1][2] == 30 * M and log[2] == ("alloc", c, 30 * M)
    log.clear()
    assert m.malloc(4 * M) is None               # 42 reserved, a 20 MiB segment does not fit: OOM
    assert log == [("oom", 2 * M, 4 * M)]       # device_free, and the rounded request
    assert m.peak_reserved == 42 * M


def test_release_completes_pending_frees_first() -> None:
    log, rec = _recorder()
    m = CachingAllocatorModel(30 * M, recorder=rec)
    a = m.malloc(20 * M)
    assert a is not None
    m.free_requested(a)
    log.clear()
    assert m.malloc(20 * M) is not None
    assert [e[0] for e in log] == ["free_completed", "segment_free", "segment_alloc", "alloc"]


def test_check_oom_says_what_torch_would_do() -> None:
    m = CachingAllocatorModel()
    a = m.malloc(4 * M)
    b = m.malloc(4 * M)
    assert a is not None and b is not None
    m.free(a)                                            # free: 4 MiB at a, 12 MiB after b
    assert m.check_oom(12 * M, 0, 0).reason == "cached block"
    c = m.check_oom(13 * M, 0, 0)
    assert c.fails and c.reason == "oom" and c.largest_free_block == 12 * M
    assert c.free_cached_bytes == 16 * M and c.segment_bytes == 14 * M and c.releasable_bytes == 0
    assert m.check_oom(13 * M, 0, 14 * M).reason == "new segment"
    m.free(b)                                            # the whole 20 MiB segment is free: releasable
    c = m.check_oom(30 * M, 0, 10 * M)
    assert c.reason == "new segment after releasing cache" and c.releasable_bytes == 20 * M
    assert m.check_oom(30 * M, 0, 10 * M - 512).fails


def test_max_split_size_rules() -> None:
    m = CachingAllocatorModel(max_split_size=16 * M)
    big = m.malloc(40 * M)
    assert big is not None
    m.free(big)
    assert m.predict(15 * M, 0) is None          # an oversize block is not split for a smaller request
    assert m.predict(16 * M, 0) is None          # oversize request: 40 >= 16 + 20 wastes too much
    assert m.predict(18 * M, 0) is None
    assert m.predict(21 * M, 0) == big           # 40 < 21 + 20: close enough


def test_expandable_segments_map_and_unmap_at_the_end() -> None:
    log, rec = _recorder()
    m = CachingAllocatorModel(200 * M, expandable_segments=True, recorder=rec)
    a = m.malloc(10 * M)                         # maps one 20 MiB granule
    b = m.malloc(25 * M)                         # 10 MiB free at the end: one more granule
    assert a is not None and b == a + 10 * M and m.num_segments == 1 and m.reserved == 40 * M
    maps = [e for e in log if e[0] == "segment_map"]
    assert maps == [("segment_map", a, 20 * M), ("segment_map", a + 20 * M, 20 * M)]
    log.clear()
    m.free(b)                                    # free from 10 MiB to the end: the last whole granule goes
    m.empty_cache()
    assert log[-1] == ("segment_unmap", a + 20 * M, 20 * M) and m.reserved == 20 * M
    assert m.malloc(15 * M) == b                 # the 10 MiB left plus a new granule
    assert log[-2] == ("segment_map", a + 20 * M, 20 * M)


def test_synchronised_replay_reports_disagreement() -> None:
    m = CachingAllocatorModel()
    m.apply_segment_alloc(1 << 30, 20 * M, 0)
    assert m.apply_alloc((1 << 30) + 2 * M, 3 * M, 0)     # not where torch's rules would put it, but free
    assert not m.apply_alloc((1 << 30) + 3 * M, 3 * M, 0)  # overlaps the block just placed
    assert m.num_anomalies == 1 and "no free block" in m.anomalies[0]
    assert not m.apply_free_completed(123)
    m.apply_segment_free(1 << 30, 20 * M)                  # still holds a block: dropped, noted
    assert m.num_anomalies == 2 and m.reserved == 0 and m.active == 0


@pytest.mark.parametrize(("kwargs", "match"), [({"capacity": -1}, "capacity"), ({"capacity": 1.5}, "capacity"),
                                               ({"max_split_size": M}, "max_split_size")])
def test_bad_arguments(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        CachingAllocatorModel(**kwargs)
    with pytest.raises(ValueError, match="size"):
        CachingAllocatorModel().malloc(-1)


def test_an_unmap_in_the_middle_splits_the_range() -> None:
    m = CachingAllocatorModel(expandable_segments=True)
    m.apply_segment_map(1 << 40, 60 * M, 0, large=True)
    assert m.apply_alloc(1 << 40, 10 * M, 0)
    m.apply_segment_unmap((1 << 40) + 20 * M, 20 * M)
    assert m.num_anomalies == 0 and m.num_segments == 2 and m.reserved == 40 * M
    assert m.largest_free_block() == 20 * M  # [40, 60) MiB; [10, 20) MiB is 10 MiB
    m.apply_segment_map((1 << 40) + 20 * M, 20 * M, 0)  # mapped back at the first range's end
    assert m.reserved == 60 * M and m.num_segments == 2
    m.apply_segment_unmap((1 << 40) + 5 * M, M)           # not free: noted, nothing changes
    assert m.num_anomalies == 1 and m.reserved == 60 * M


def test_the_snapshot_settings_reach_the_model() -> None:
    from autoglm_lab.torchsnap import load_torch_snapshot, run_program
    from autoglm_lab.torchsnap._replay import model_for

    d = run_program([("alloc", "a", 3 * M)])
    d["allocator_settings"]["max_split_size"] = 64 * M
    model = model_for(load_torch_snapshot(d), 0)
    assert model.max_split_size == 64 * M and not model.expandable_segments
    d["allocator_settings"]["max_split_size"] = -1  # SIZE_MAX as int64: unlimited
    assert model_for(load_torch_snapshot(d), 0).max_split_size is None
    e = run_program([("alloc", "a", 3 * M)], expandable_segments=True)
    assert model_for(load_torch_snapshot(e), 0).expandable_segments
