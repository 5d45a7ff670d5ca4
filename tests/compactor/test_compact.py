"""Executing compactions on real tensors, and the triggers (issue 3 §2-§4)."""

from __future__ import annotations

from types import SimpleNamespace

import hypothesis.strategies as st
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings

import autoglm_lab as al
from autoglm_lab.compactor import Move, Plan, Stage, _execute, _triton, layout_of, plan, safe_moves
from autoglm_lab.pool import EventKind

from ..pool.helpers import check_pattern, small_pool, write_pattern


def fragmented(device: str = "cpu", *, pages: int = 64, size: int = 1, keep_every: int = 2,
               **kw: object) -> tuple[al.PagedPool, list[al.Block]]:
    pool = small_pool(device, pages=pages, **kw)
    blocks = [pool.alloc_bytes(size * 4096 - 7) for _ in range(pages // size)]
    for b in blocks:
        write_pattern(b)
    live = [b for i, b in enumerate(blocks) if i % keep_every == 0]
    for b in blocks:
        if b not in live:
            pool.free(b)
    return pool, live


@pytest.fixture(params=["host", "device"])
def copy_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test with the CPU's numpy copies and with the torch path that CUDA uses (not Triton,
    CUDA's default where installed: tests/compactor/test_triton.py covers that)."""
    monkeypatch.setattr(_execute, "TORCH_PATH_ON_CPU", request.param == "device")
    monkeypatch.setattr(_triton, "EXECUTOR", "torch")
    return str(request.param)


@pytest.mark.parametrize("strategy", ["two_finger", "sliding"])
def test_full_compaction_keeps_ids_bytes_and_leaves_one_run(device: str, strategy: str, copy_path: str) -> None:
    pool, live = fragmented(device, pages=64, size=2)
    ids = {b.id for b in live}
    rep = pool.compact(strategy)
    assert rep.done and rep.free_runs_after == 1 and rep.largest_free_run_after == 32
    assert rep.external_fragmentation_before > 0.9 and rep.external_fragmentation_after == 0.0
    assert {b.id for b in pool.blocks()} == ids
    for b in live:
        check_pattern(b)
    pool.check_invariants()
    assert rep.bytes_moved == rep.pages_moved * 4096 and rep.pause_s > 0 and rep.plan_s <= rep.pause_s
    assert rep.executor == ("cpu-memmove" if device == "cpu" and copy_path == "host" else "torch")
    if strategy == "two_finger":
        assert rep.pages_moved == rep.lower_bound_pages == 16  # same-size blocks: exactly the bound


def test_stale_view_and_fresh_view() -> None:
    pool, live = fragmented(pages=8)
    last = live[-1]
    old_view = last.tensor
    before = last.tensor.clone()
    pool.compact()
    assert last.first_page < 6
    assert torch.equal(last.tensor, before)  # the block's tensor views its new place
    assert old_view.data_ptr() != last.tensor.data_ptr()  # a view taken before the move is stale


def test_pinned_blocks_never_move(device: str) -> None:
    pool, live = fragmented(device, pages=32)
    target = live[-1]
    with pool.pin(target) as blk:
        where = blk.first_page
        rep = pool.compact()
        assert blk.first_page == where and rep.notes
    for b in live:
        check_pattern(b)
    pool.check_invariants()


def test_budgeted_steps_stay_within_budget_and_finish(device: str, copy_path: str) -> None:
    pool, live = fragmented(device, pages=64)
    steps = []
    while True:
        rep = pool.compact(budget_bytes=3 * 4096)
        steps.append(rep)
        assert rep.pages_moved <= 3
        for b in live:
            check_pattern(b)
        pool.check_invariants()
        if rep.done:
            break
        assert len(steps) < 100
    assert len(steps) > 1 and pool.stats().free_runs == 1
    assert sum(r.pages_moved for r in steps) == steps[0].planned_pages == steps[0].lower_bound_pages


def test_budgeted_compaction_continues_after_the_pool_changes() -> None:
    pool, live = fragmented(pages=64)
    pool.compact(budget_bytes=4 * 4096)
    live.append(pool.alloc_bytes(4096))  # the plan is stale now: the next step re-plans
    write_pattern(live[-1])
    while not pool.compact(budget_bytes=4 * 4096).done:
        pass
    for b in live:
        check_pattern(b)
    assert pool.stats().free_runs == 1


def _plan_steps(pool: al.PagedPool, budget_pages: int, strategy: str = "two_finger") -> list[tuple[Move, ...]]:
    """The steps a budget cuts the pool's plan into, as the planner makes them now."""
    rest = plan(layout_of(pool), strategy)
    steps = []
    while rest.stages:
        step, rest = rest.cut(budget_pages)
        steps.append(step.moves)
    return steps


@pytest.mark.parametrize("strategy", ["two_finger", "sliding"])
def test_budgeted_steps_keep_their_plan_when_the_pool_changes_elsewhere(strategy: str) -> None:
    # a serving loop allocates and frees between steps: a plan whose next moves are still safe goes
    # on (no planning of the whole pool per step), and when it runs out on a pool that changed, the
    # next call plans again and only then says done
    pool, live = fragmented(pages=64, size=2)
    steps = _plan_steps(pool, 4, strategy)
    assert len(steps) > 3
    first = pool.compact(strategy, budget_bytes=4 * 4096)
    assert first.moves == steps[0]
    # free a block the plan does not move and allocate a page no planned move lands on
    planned = {m.block_id for step in steps for m in step}
    spare = next(b for b in live if b.id not in planned)
    pool.free(spare)
    live.remove(spare)
    dests = {p for step in steps for m in step for p in range(m.dst_page, m.dst_page + m.pages)}
    blk = pool.alloc_bytes(4096)
    assert blk.first_page not in dests
    write_pattern(blk)
    live.append(blk)
    second = pool.compact(strategy, budget_bytes=4 * 4096)
    assert second.moves == steps[1]  # the old plan's next step, checked against the pool as it is
    reports = [second]
    while not reports[-1].done:
        reports.append(pool.compact(strategy, budget_bytes=4 * 4096))
        assert len(reports) < 100
    assert [r.moves for r in reports[:len(steps) - 1]] == steps[1:]  # all of the old plan ran
    assert len(reports) > len(steps) - 1  # then a fresh plan for the holes the changes made
    for b in live:
        check_pattern(b)
    pool.check_invariants()
    assert pool.stats().free_runs == 1


def test_a_whole_compaction_after_stale_steps_plans_the_pool_as_it_is() -> None:
    pool, live = fragmented(pages=64, size=2)
    pool.compact(budget_bytes=4 * 4096)
    blk = pool.alloc_bytes(4096)  # the pool changes: the plan goes stale
    write_pattern(blk)
    pool.compact(budget_bytes=4 * 4096)  # a step of the stale plan (the pool unchanged since)
    rep = pool.compact()
    assert rep.done and pool.stats().free_runs == 1
    for b in [*live, blk]:
        check_pattern(b)


def test_a_step_skips_the_moves_the_pool_no_longer_allows() -> None:
    pool, live = fragmented(pages=64, size=2)
    steps = _plan_steps(pool, 4)
    pool.compact(budget_bytes=4 * 4096)
    nxt = steps[1][0]
    # pin the block the next move would take: it must stay where it is
    target = next(b for b in live if b.id == nxt.block_id)
    with pool.pin(target):
        rep = pool.compact(budget_bytes=4 * 4096)
        assert all(m.block_id != target.id for m in rep.moves)
        assert target.first_page == nxt.src_page
    # take the next move's destination with a new allocation: the plan is made again
    pool2, live2 = fragmented(pages=64, size=2)
    steps2 = _plan_steps(pool2, 4)
    pool2.compact(budget_bytes=4 * 4096)
    dst = steps2[1][0].dst_page
    grabbed = []
    while True:  # allocate single pages until one lands on that destination
        b = pool2.alloc_bytes(4096)
        write_pattern(b)
        grabbed.append(b)
        if b.first_page == dst or len(grabbed) > 64:
            break
    assert grabbed[-1].first_page == dst
    rep = pool2.compact(budget_bytes=4 * 4096)
    assert rep.moves != steps2[1]
    assert all(not (m.dst_page <= dst < m.dst_page + m.pages) for m in rep.moves)
    while not pool2.compact(budget_bytes=4 * 4096).done:
        pass
    for b in live2 + grabbed:
        check_pattern(b)
    pool2.check_invariants()


@pytest.mark.parametrize("strategy", ["sliding", "two_finger"])
def test_a_slide_whose_front_was_taken_slides_again_from_the_pool_as_it_is(strategy: str) -> None:
    # blocks of mixed sizes: two-finger cannot fill every hole, so its plan ends with a slide
    pool = small_pool("cpu", pages=96, fit="first")
    blocks = [pool.alloc_bytes((1 + i % 3) * 4096) for i in range(48)]
    for b in blocks:
        write_pattern(b)
    live = [b for i, b in enumerate(blocks) if i % 3 != 1]
    for b in blocks:
        if b not in live:
            pool.free(b)
    budget = 4 * 4096
    first = pool.compact(strategy, budget_bytes=budget)
    # step until only the slide is left, then take the gap at its front with a new page
    while any(s.independent for s in pool.compaction_service.state.plan.stages):
        pool.compact(strategy, budget_bytes=budget)
    front = pool.compaction_service.state.plan.stages[0].moves[0].dst_page
    grabbed = pool.alloc_bytes(4096)
    assert grabbed.first_page == front  # the lowest free page is the slide's front
    write_pattern(grabbed)
    live.append(grabbed)
    rep = pool.compact(strategy, budget_bytes=budget)
    assert rep.pages_moved > 0 and rep.planned_pages == first.planned_pages  # the slide went on, same cycle
    assert all(m.dst_page != front for m in rep.moves)
    while not rep.done:
        rep = pool.compact(strategy, budget_bytes=budget)
    assert pool.stats().free_runs == 1
    for b in live:
        check_pattern(b)
    pool.check_invariants()


@pytest.mark.parametrize("independent", [True, False])
def test_a_wrong_plan_is_refused_before_a_byte_moves(monkeypatch: pytest.MonkeyPatch, independent: bool) -> None:
    # a planner bug (here: a plan whose last move lands on a live block) must not corrupt anything:
    # the pool's books check every move of the step before the copies, and nothing changes
    from autoglm_lab.compactor import _api
    pool, live = fragmented(pages=16, size=2)  # blocks at pages 0, 4, 8, 12
    a, b, c = live[0], live[1], live[2]
    bad = Plan("two_finger", (Stage((Move(b.id, 4, 2, 2), Move(c.id, 8, 0, 2)), independent),), 0)
    monkeypatch.setattr(_api, "plan", lambda *args, **kw: bad)
    before = pool.snapshot()
    with pytest.raises(AssertionError):
        pool.compact()
    assert pool.snapshot().page_block.tolist() == before.page_block.tolist()
    for blk in live:
        check_pattern(blk)
    pool.check_invariants()
    assert (a.first_page, b.first_page, c.first_page) == (0, 4, 8)


def test_safe_moves() -> None:
    pool, live = fragmented(pages=16, size=2)  # blocks at pages 0, 4, 8, 12 (2 pages each), holes between
    a, b, c = live[0], live[1], live[2]
    assert (a.first_page, b.first_page, c.first_page) == (0, 4, 8)
    ok = Move(b.id, 4, 2, 2)
    assert safe_moves(pool, (ok,)) == [True]
    assert safe_moves(pool, ()) == []
    assert safe_moves(pool, (Move(b.id, 5, 2, 2),)) == [False]        # not where the plan found it
    assert safe_moves(pool, (Move(b.id, 4, 2, 1),)) == [False]        # not the same size
    assert safe_moves(pool, (Move(b.id, 4, 1, 2),)) == [False]        # lands on block a
    assert safe_moves(pool, (Move(b.id, 4, 15, 2),)) == [False]       # runs past the segment
    assert safe_moves(pool, (Move(b.id, 4, 3, 2),)) == [True]         # overlapping its own pages is fine
    # a later move may use pages an earlier one left, not pages an earlier one took
    assert safe_moves(pool, (Move(b.id, 4, 2, 2), Move(c.id, 8, 4, 2))) == [True, True]
    assert safe_moves(pool, (Move(b.id, 4, 6, 2), Move(c.id, 8, 6, 2))) == [True, False]
    # ... and a skipped move leaves nothing: its block is still in the way
    assert safe_moves(pool, (Move(b.id, 4, 1, 2), Move(c.id, 8, 4, 2))) == [False, False]
    with pool.pin(b):
        assert safe_moves(pool, (ok,)) == [False]
    pool.free(b)
    assert safe_moves(pool, (ok,)) == [False]


def test_events_and_stats_record_compactions() -> None:
    pool, _ = fragmented(pages=16)
    rep = pool.compact()
    st = pool.stats()
    assert st.compactions == 1 and st.compaction_pages_moved == rep.pages_moved
    assert st.compactions_by_reason == {"manual": 1} and st.last_compaction_reason == "manual"
    ev = pool.snapshot().events
    k = np.flatnonzero(ev.kind == EventKind.COMPACT)
    assert k.size == 1 and ev.pages[k[0]] == rep.pages_moved and ev.latency_s[k[0]] == pytest.approx(rep.pause_s)


def test_overlapping_slides_copy_the_right_bytes(device: str, copy_path: str) -> None:
    # one big block slides down by one page: source and destination overlap
    pool = small_pool(device, pages=40)
    small = pool.alloc_bytes(4096)
    big = pool.alloc_bytes(30 * 4096)
    write_pattern(big)
    pool.free(small)
    rep = pool.compact("sliding")
    assert big.first_page == 0 and rep.pages_moved == 30
    check_pattern(big)
    pool.check_invariants()


def test_overlap_through_a_temporary(device: str, monkeypatch: pytest.MonkeyPatch, copy_path: str) -> None:
    monkeypatch.setattr(_execute, "MAX_OVERLAP_CHUNKS", 1)
    pool = small_pool(device, pages=12)
    gap = pool.alloc_bytes(4096)
    big = pool.alloc_bytes(10 * 4096)
    write_pattern(big)
    pool.free(gap)
    pool.compact("sliding")
    check_pattern(big)


def test_many_small_moves_use_one_gather_scatter(device: str, monkeypatch: pytest.MonkeyPatch,
                                                 copy_path: str) -> None:
    calls = {"gather": 0, "slice": 0}
    real_gather, real_copy = _execute._gather_scatter, _execute._copy_range

    def gather(*a: object) -> None:
        calls["gather"] += 1
        real_gather(*a)  # type: ignore[arg-type]

    def copy(*a: object) -> None:
        calls["slice"] += 1
        real_copy(*a)  # type: ignore[arg-type]

    def copies(seg: object, ranges: list[list[int]]) -> None:
        calls["slice"] += len(ranges)
        real_copies(seg, ranges)  # type: ignore[arg-type]

    real_copies = _execute._copy_ranges_host
    monkeypatch.setattr(_execute, "_gather_scatter", gather)
    monkeypatch.setattr(_execute, "_copy_range", copy)
    monkeypatch.setattr(_execute, "_copy_ranges_host", copies)
    pool, live = fragmented(device, pages=256, keep_every=2)
    rep = pool.compact("two_finger")
    assert len(rep.moves) == 64 and calls == {"gather": 1, "slice": 0}
    for b in live:
        check_pattern(b)


def test_bad_arguments_leave_the_pool_unchanged() -> None:
    pool, _ = fragmented(pages=16)
    before = pool.snapshot()
    for kwargs, match in (({"strategy": "quick"}, "strategy='quick'"), ({"budget_bytes": 10}, "budget_bytes=10"),
                          ({"budget_bytes": "lots"}, "budget_bytes"),
                          ({"strategy": "targeted"}, "num_pages"), ({"num_pages": 3}, "only used by")):
        with pytest.raises(ValueError, match=match):
            pool.compact(**kwargs)  # type: ignore[arg-type]
    after = pool.snapshot()
    assert np.array_equal(before.page_block, after.page_block) and after.stats.compactions == 0


# ------------------------------------------------------------------------------------------ triggers
def test_lazy_free_ratio_trigger_turns_exhaustion_into_success(device: str) -> None:
    pool, live = fragmented(device, pages=16, compaction="lazy", free_ratio_trigger=0.4)
    blk = pool.alloc_bytes(4 * 4096)  # 8 of 16 pages free (0.5 > 0.4), largest run 1 page
    assert blk.num_pages == 4
    st = pool.stats()
    assert st.compactions_by_reason == {"free_ratio": 1} and st.failed_allocations == 0
    for b in live:
        check_pattern(b)
    pool.check_invariants()


def test_consecutive_failures_trigger() -> None:
    pool, live = fragmented(pages=16, compaction="lazy", free_ratio_trigger=0.9, max_consecutive_failures=3)
    for _ in range(2):
        with pytest.raises(al.PoolExhausted):
            pool.alloc_bytes(3 * 4096)
    assert pool.stats().consecutive_failures == 2 and pool.stats().compactions == 0
    blk = pool.alloc_bytes(3 * 4096)  # the third failure in a row compacts, and succeeds
    st = pool.stats()
    assert blk.num_pages == 3 and st.compactions_by_reason == {"consecutive_failures": 1}
    assert st.consecutive_failures == 0 and st.failed_allocations == 2
    for b in live:
        check_pattern(b)


def test_compaction_off_never_compacts() -> None:
    pool, _ = fragmented(pages=16, compaction="off", free_ratio_trigger=0.1, max_consecutive_failures=1)
    with pytest.raises(al.PoolExhausted, match="compaction is off"):
        pool.alloc_bytes(3 * 4096)
    assert pool.stats().compactions == 0


def test_compaction_that_cannot_help_still_raises_and_changes_nothing() -> None:
    pool, live = fragmented(pages=16, compaction="lazy", free_ratio_trigger=0.1)
    with pool.pin(live[2]), pool.pin(live[5]):  # pins at pages 4 and 10 split every 6-page window
        before = pool.snapshot()
        with pytest.raises(al.PoolExhausted):
            pool.alloc_bytes(7 * 4096)
        after = pool.snapshot()
    assert np.array_equal(before.page_block, after.page_block)
    for b in live:
        check_pattern(b)
    with pytest.raises(al.PoolExhausted):
        pool.alloc_bytes(9 * 4096)  # more than is free: no compaction is tried at all
    pool.check_invariants()


def test_periodic_trigger_runs_budgeted_steps_in_eager_mode() -> None:
    pool, live = fragmented(pages=64, compaction="eager", defrag_interval_s=30.0,
                            fragmentation_threshold_factor=0.3, compaction_budget_bytes=4 * 4096)
    assert pool.tick(10.0) is None  # not yet time
    rep = pool.tick(30.0)
    assert rep is not None and rep.reason == "periodic" and rep.pages_moved <= 4 and not rep.done
    n = 1
    while True:
        rep = pool.tick(30.0 + n)  # each tick continues the compaction by one budgeted step
        n += 1
        assert rep is not None and rep.pages_moved <= 4
        if rep.done:
            break
    assert pool.stats().free_runs == 1 and pool.stats().compactions_by_reason["periodic"] == n
    assert pool.tick(100.0) is None  # fragmentation is 0 now
    for b in live:
        check_pattern(b)


def test_eager_cycle_under_churn_ends_with_its_plan() -> None:
    # serving frees and allocates between ticks: the cycle runs its plan out (no planning of the whole
    # pool per tick), ends, and the next periodic check starts a new one on the pool as it is then
    pool, live = fragmented(pages=64, size=2, compaction="eager", defrag_interval_s=30.0,
                            fragmentation_threshold_factor=0.1, compaction_budget_bytes=4 * 4096)
    planned = {m.block_id for step in _plan_steps(pool, 4) for m in step}
    victims = [b for b in live if b.id not in planned]  # blocks the plan leaves where they are
    rep = pool.tick(30.0)
    assert rep is not None and not rep.plan_done
    reports = [rep]
    t = 30.0
    while not reports[-1].plan_done:
        if victims:  # a new hole the plan never saw
            victim = victims.pop(0)
            live.remove(victim)
            pool.free(victim)
        t += 0.1
        rep = pool.tick(t)
        assert rep is not None and rep.reason == "periodic" and rep.pages_moved <= 4
        reports.append(rep)
        assert len(reports) < 100
    last = reports[-1]
    assert len(reports) > 2 and {r.planned_pages for r in reports} == {reports[0].planned_pages}  # one plan
    assert not last.done  # the pool changed under the plan: a new plan would find more to do
    assert pool.tick(t + 1.0) is None  # the cycle is over; the next check is defrag_interval_s later
    for b in live:
        check_pattern(b)
    assert pool.stats().external_fragmentation > 0.1
    rep = pool.tick(t + 31.0)  # the next periodic check: a new cycle on the pool as it is
    assert rep is not None and rep.pages_moved > 0
    while not rep.plan_done:
        rep = pool.tick(t + 31.0)
    assert rep.done and pool.stats().free_runs == 1
    for b in live:
        check_pattern(b)


def test_periodic_check_respects_threshold_and_mode() -> None:
    pool, _ = fragmented(pages=16, compaction="lazy")
    assert pool.tick(1000.0) is None  # lazy mode: no background compaction
    pool.configure(compaction="eager", fragmentation_threshold_factor=1.0)
    assert pool.tick(2000.0) is None  # fragmentation never exceeds 1.0
    pool.configure(fragmentation_threshold_factor=0.3)  # a live change takes effect at the next tick
    assert pool.tick(2040.0) is not None


def test_live_config_change_takes_effect_at_next_allocation() -> None:
    pool, _ = fragmented(pages=16, compaction="off")
    with pytest.raises(al.PoolExhausted):
        pool.alloc_bytes(2 * 4096)
    pool.configure(compaction="lazy", free_ratio_trigger=0.2)
    assert pool.alloc_bytes(2 * 4096).num_pages == 2


def test_large_ranges_take_the_threaded_copy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_execute, "TORCH_COPY_MIN_BYTES_CPU", 2 * 4096)  # every range of 2+ pages
    pool, live = fragmented(pages=64, size=4)
    pool.compact("sliding")
    for b in live:
        check_pattern(b)
    pool.check_invariants()


def test_a_run_of_same_size_blocks_fills_a_hole_in_one_copy(device: str, monkeypatch: pytest.MonkeyPatch,
                                                            copy_path: str) -> None:
    # 16 one-page blocks, 2..5 freed: the 4 blocks at the top (12..15) fill 2..5 in address order,
    # so the fill is one range of 4 pages, not 4 one-page copies (nor a gather/scatter)
    seen: list[list[int]] = []
    real_copies, real_copy = _execute._copy_ranges_host, _execute._copy_range

    def copies(seg: object, ranges: list[list[int]]) -> None:
        seen.extend(ranges)
        real_copies(seg, ranges)  # type: ignore[arg-type]

    def copy(seg: object, src: int, dst: int, pages: int, rows: object = None) -> None:
        seen.append([src, dst, pages])
        real_copy(seg, src, dst, pages, rows)  # type: ignore[arg-type]

    monkeypatch.setattr(_execute, "_copy_ranges_host", copies)
    monkeypatch.setattr(_execute, "_copy_range", copy)
    pool = small_pool(device, pages=16)
    blocks = [pool.alloc_bytes(4096) for _ in range(16)]
    for b in blocks:
        write_pattern(b)
    for b in blocks[2:6]:
        pool.free(b)
    rep = pool.compact("two_finger")
    assert rep.pages_moved == rep.lower_bound_pages == 4 and len(rep.moves) == 4
    assert seen == [[12, 2, 4]]
    assert [b.first_page for b in blocks[12:]] == [2, 3, 4, 5]  # address order kept among them
    for b in blocks[:2] + blocks[6:]:
        check_pattern(b)
    pool.check_invariants()
    assert rep.copy_s > 0 and rep.copy_s <= rep.pause_s - rep.plan_s


def test_overlapping_host_copy_is_in_place(monkeypatch: pytest.MonkeyPatch) -> None:
    # a 2 MiB run sliding down by one page overlaps itself: numpy must memmove it in place, not copy
    # its source to a temporary first (what a 2-D page-row assignment does)
    import tracemalloc

    pool = small_pool("cpu", pages=40, page=65536)
    gap = pool.alloc_bytes(65536)
    big = [pool.alloc_bytes(65536) for _ in range(32)]
    for b in big:
        write_pattern(b)
    pool.free(gap)
    tracemalloc.start()
    try:
        rep = pool.compact("sliding")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert rep.pages_moved == 32 and [b.first_page for b in big] == list(range(32))
    assert peak < (1 << 20), f"{peak} bytes allocated while sliding 2 MiB"
    for b in big:
        check_pattern(b)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(1, 5), st.booleans()), min_size=1, max_size=40),
       st.sampled_from(["two_finger", "sliding"]), st.sampled_from(["host", "device"]),
       st.sampled_from([4096, 16384]), st.sampled_from([None, 3]), st.sampled_from([16, 1]),
       st.sampled_from([256 << 10, 4096, 24]))
def test_every_live_byte_survives_any_compaction(blocks: list[tuple[int, bool]], strategy: str, path: str,
                                                 page: int, budget: int | None, max_chunks: int,
                                                 piece: int) -> None:
    """Random layouts of mixed sizes: coalesced ranges that overlap their destination (slides), long
    fills, gathers (4 KiB pages) and slice copies (16 KiB), on the CPU's numpy path (ranges whole or in
    pieces shorter than a page or than the distance moved) and the torch path CUDA runs (with overlap
    in forward chunks, or through a temporary when max_chunks is 1)."""
    saved = _execute.TORCH_PATH_ON_CPU, _execute.MAX_OVERLAP_CHUNKS, _execute.COPY_CHUNK_BYTES_CPU
    _execute.TORCH_PATH_ON_CPU, _execute.MAX_OVERLAP_CHUNKS = path == "device", max_chunks
    _execute.COPY_CHUNK_BYTES_CPU = piece
    try:
        total = sum(n for n, _ in blocks)
        pool = small_pool("cpu", pages=total + 3, page=page)
        allocated = [(pool.alloc_bytes(n * page - 5), keep) for n, keep in blocks]
        live = [b for b, keep in allocated if keep]
        for b in live:
            write_pattern(b)
        for b, keep in allocated:
            if not keep:
                pool.free(b)
        for _ in range(1000):
            rep = pool.compact(strategy, budget_bytes=None if budget is None else budget * page)
            for b in live:
                check_pattern(b)
            if rep.done:
                break
        assert pool.stats().free_runs == 1
        pool.check_invariants()
    finally:
        _execute.TORCH_PATH_ON_CPU, _execute.MAX_OVERLAP_CHUNKS, _execute.COPY_CHUNK_BYTES_CPU = saved


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled-core", "numpy-loop"])
@pytest.mark.parametrize("piece_words", [1, 3, 5, 7, 64, 1000])
@pytest.mark.parametrize(("src", "dst"), [(2, 0), (0, 2), (5, 1), (1, 5), (0, 9), (9, 0)])
def test_host_ranges_in_pieces_copy_the_right_bytes_both_ways(monkeypatch: pytest.MonkeyPatch, src: int, dst: int,
                                                             piece_words: int, compiled: bool) -> None:
    if not compiled:
        monkeypatch.setattr(_execute, "native_copy_ranges", None)
    elif _execute.native_copy_ranges is None:
        assert al.pool.PagedPool.core_kind == "python"  # the pure-Python run: nothing compiled to test
        return
    # 8-page ranges of 64-byte pages moved down or up, overlapping or not, in pieces shorter than a
    # page, than the distance, or longer than the range
    monkeypatch.setattr(_execute, "COPY_CHUNK_BYTES_CPU", piece_words * 8)
    data = torch.arange(20 * 8, dtype=torch.int64).view(torch.uint8)
    seg = SimpleNamespace(data=data, page_size=64, first_page=100)
    want = data.view(torch.int64).clone().view(20, 8)
    want[dst:dst + 8] = want[src:src + 8].clone()
    _execute._copy_ranges_host(seg, [[100 + src, 100 + dst, 8]])  # type: ignore[arg-type]
    assert torch.equal(data.view(torch.int64).view(20, 8), want)
