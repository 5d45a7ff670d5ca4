"""The planner is a pure function of a layout: tested without a device (issue 3 §1)."""

from __future__ import annotations

import hypothesis.strategies as st
import pytest
from hypothesis import given, settings

from autoglm_lab.compactor import Layout, Move, plan, plan_slide_from, plan_sliding, plan_targeted, plan_two_finger
from autoglm_lab.compactor._execute import coalesce
from autoglm_lab.compactor._plan import _fill_phase, _slide_phase


def apply(layout: Layout, p) -> dict[int, int]:
    """Simulate a plan on a layout, checking each move lands on free pages; returns id -> start."""
    seg_of = {}
    owner: dict[int, int] = {}
    pages_of = {}
    for seg in layout.segments:
        for b, s, n in zip(seg.block_id.tolist(), seg.start.tolist(), seg.pages.tolist(), strict=True):
            pages_of[b] = n
            seg_of[b] = (seg.first_page, seg.end_page)
            for q in range(s, s + n):
                owner[q] = b
    where = {b: s for seg in layout.segments for b, s in zip(seg.block_id.tolist(), seg.start.tolist(), strict=True)}
    for m in p.moves:
        assert where[m.block_id] == m.src_page and pages_of[m.block_id] == m.pages
        lo, hi = seg_of[m.block_id]
        assert lo <= m.dst_page and m.dst_page + m.pages <= hi, "a move left its segment"
        for q in range(m.src_page, m.src_page + m.pages):
            del owner[q]
        for q in range(m.dst_page, m.dst_page + m.pages):
            assert q not in owner, f"move {m} lands on live page {q}"
            owner[q] = m.block_id
        where[m.block_id] = m.dst_page
    return where


def free_runs(layout: Layout, where: dict[int, int]) -> int:
    runs = 0
    for seg in layout.segments:
        used = [False] * seg.num_pages
        for b, n in zip(seg.block_id.tolist(), seg.pages.tolist(), strict=True):
            for q in range(where[b], where[b] + n):
                used[q - seg.first_page] = True
        runs += sum(1 for i, u in enumerate(used) if not u and (i == 0 or used[i - 1]))
    return runs


def layout_from(sizes_and_gaps: list[tuple[int, int]], total: int, pinned: frozenset[int] = frozenset()) -> Layout:
    blocks, pos = [], 0
    for i, (gap, size) in enumerate(sizes_and_gaps):
        pos += gap
        blocks.append((i, pos, size, i in pinned))
        pos += size
    return Layout.from_blocks(64, [(0, max(total, pos))], blocks)


def test_two_finger_fills_lowest_holes_with_highest_blocks() -> None:
    # | A . . B C . D E |  A,B,C,D,E one page each
    lay = Layout.from_blocks(64, [(0, 8)], [(0, 0, 1, False), (1, 3, 1, False), (2, 4, 1, False),
                                           (3, 6, 1, False), (4, 7, 1, False)])
    p = plan_two_finger(lay)
    # D and E fill the hole at 1-2, paired in address order (order not kept, but D stays before E)
    assert [(m.block_id, m.src_page, m.dst_page) for m in p.moves] == [(4, 7, 2), (3, 6, 1)]
    assert p.lower_bound_pages == 2 and p.pages_moved == 2
    assert coalesce(sorted(p.moves, key=lambda m: m.src_page)) == [[6, 1, 2]]  # one copy


def test_two_finger_same_size_run_moves_as_one_range() -> None:
    # | A . . . . . B C D E F G | : 7 live pages fill the prefix 0..6, B already lies in it; C..G
    # fill the holes 1..5 in order -> one copy range of 5 pages
    lay = Layout.from_blocks(64, [(0, 12)], [(0, 0, 1, False)] + [(i, 5 + i, 1, False) for i in range(1, 7)])
    p = plan_two_finger(lay)
    assert p.pages_moved == p.lower_bound_pages == 5
    assert coalesce(sorted(p.moves, key=lambda m: m.src_page)) == [[7, 1, 5]]


def _fill_moves(p) -> tuple:
    return p.stages[0].moves if p.stages and p.stages[0].independent else ()


def _assert_paired_in_address_order(p) -> None:
    fill = _fill_moves(p)
    assert [m.src_page for m in fill] == sorted((m.src_page for m in fill), reverse=True)  # top first
    for size in {m.pages for m in fill}:
        same = sorted((m for m in fill if m.pages == size), key=lambda m: m.src_page)
        assert [m.dst_page for m in same] == sorted(m.dst_page for m in same)
    assert all(m.dst_page + m.pages <= m.src_page for m in fill)  # every filling block moves down


def test_sliding_keeps_order_and_reports_excess() -> None:
    lay = Layout.from_blocks(64, [(0, 8)], [(0, 0, 1, False), (1, 3, 1, False), (2, 4, 1, False),
                                           (3, 6, 1, False), (4, 7, 1, False)])
    p = plan_sliding(lay)
    where = apply(lay, p)
    assert sorted(where, key=where.get) == [0, 1, 2, 3, 4] and free_runs(lay, where) == 1
    assert p.pages_moved == 4 and p.lower_bound_pages == 2  # two pages beyond the bound


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.integers(1, 6)), min_size=0, max_size=30), st.integers(0, 20),
       st.sampled_from(["two_finger", "sliding"]))
def test_full_compaction_leaves_one_free_run_and_respects_the_bound(blocks: list[tuple[int, int]], extra: int,
                                                                    strategy: str) -> None:
    total = sum(g + s for g, s in blocks) + extra
    lay = layout_from(blocks, total)
    p = plan(lay, strategy)
    where = apply(lay, p)
    assert free_runs(lay, where) <= 1
    assert p.pages_moved >= p.lower_bound_pages
    if strategy == "two_finger":
        assert p.pages_moved <= plan_sliding(lay).pages_moved
        _assert_paired_in_address_order(p)


def _slide_reference(seg, new_start: dict[int, int]) -> list[Move]:
    """The slide as a plain loop over the blocks in address order (what the vectorised one replaced)."""
    rows = sorted((new_start.get(b, s), b, n, pin) for b, s, n, pin in zip(
        seg.block_id.tolist(), seg.start.tolist(), seg.pages.tolist(), seg.pinned.tolist(), strict=True))
    moves, ptr = [], seg.first_page
    for s, b, n, pin in rows:
        if not pin and s > ptr:
            moves.append(Move(b, s, ptr, n))
            ptr += n
        else:
            ptr = s + n
    return moves


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.integers(1, 6), st.booleans()), min_size=0, max_size=30),
       st.integers(0, 3), st.booleans())
def test_slide_phase_matches_the_plain_loop(blocks: list[tuple[int, int, bool]], first: int, after_fill: bool) -> None:
    pinned = frozenset(i for i, (_, _, pin) in enumerate(blocks) if pin)
    lay = layout_from([(g, n) for g, n, _ in blocks], 0, pinned)
    seg = lay.segments[0]
    seg = type(seg)(first, seg.num_pages, seg.block_id, seg.start + first, seg.pages, seg.pinned)
    moved = None
    new_start: dict[int, int] = {}
    if after_fill:  # the slide after a fill phase: some blocks already took lower places
        _fill, moved = _fill_phase(seg, only_above_prefix=False)
        if moved is not None:
            new_start = dict(zip(seg.block_id[moved[0]].tolist(), moved[1].tolist(), strict=True))
    assert _slide_phase(seg, moved) == _slide_reference(seg, new_start)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.integers(1, 6), st.booleans()), min_size=0, max_size=30),
       st.integers(0, 60), st.integers(1, 40))
def test_slide_from_a_page_matches_the_plain_loop(blocks: list[tuple[int, int, bool]], page: int, split: int) -> None:
    rows, pos = [], 0
    for i, (gap, n, pin) in enumerate(blocks):
        pos += gap
        rows.append((i, pos, n, pin))
        pos += n
    total = max(pos, split + 1) + 3
    # two segments (a block never crosses one): split at the first block boundary at or after `split`
    cut = next((s for _, s, _, _ in rows if s >= split), total)
    lay = Layout.from_blocks(64, [(0, cut), (cut, total - cut)], rows)
    expect = []
    for seg in lay.segments:
        if seg.end_page <= page:
            continue
        ptr = max(seg.first_page, page)
        for b, s0, n, pin in zip(seg.block_id.tolist(), seg.start.tolist(), seg.pages.tolist(), seg.pinned.tolist(),
                                 strict=True):
            if s0 + n <= page:
                continue  # below the front: stays
            if s0 < ptr or pin or s0 == ptr:
                ptr = max(ptr, s0 + n)
            else:
                expect.append(Move(b, s0, ptr, n))
                ptr += n
    p = plan_slide_from(lay, page)
    assert list(p.moves) == expect
    apply(lay, p)  # every move lands on free pages of its own segment


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 5), st.lists(st.booleans(), min_size=1, max_size=60), st.integers(0, 4))
def test_two_finger_moves_exactly_the_lower_bound_for_same_size_blocks(k: int, occupied: list[bool],
                                                                       tail: int) -> None:
    # same-size blocks in a pool that only ever held k-page blocks sit on multiples of k
    blocks = [(i, slot * k, k, False) for i, slot in enumerate(j for j, o in enumerate(occupied) if o)]
    lay = Layout.from_blocks(64, [(0, len(occupied) * k + tail)], blocks)
    p = plan_two_finger(lay)
    assert p.pages_moved == p.lower_bound_pages
    assert free_runs(lay, apply(lay, p)) <= 1
    _assert_paired_in_address_order(p)
    # same-size blocks paired in address order: a copy range per run where source and place continue
    # each other, never more ranges than either side has runs in total
    fill = sorted(_fill_moves(p), key=lambda m: m.src_page)
    runs = sum(1 for i, m in enumerate(fill) if i == 0 or fill[i - 1].src_page + k != m.src_page)
    places = sorted(m.dst_page for m in fill)
    holes = sum(1 for i, d in enumerate(places) if i == 0 or places[i - 1] + k != d)
    assert len(coalesce(fill)) <= runs + holes - (1 if fill else 0)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(1, 5)), min_size=1, max_size=25), st.integers(0, 10),
       st.integers(1, 12), st.data())
def test_targeted_makes_a_run_or_says_why(blocks: list[tuple[int, int]], extra: int, n: int,
                                          data: st.DataObject) -> None:
    pinned = frozenset(data.draw(st.sets(st.integers(0, len(blocks) - 1), max_size=2)))
    total = sum(g + s for g, s in blocks) + extra
    lay = layout_from(blocks, total, pinned)
    p = plan_targeted(lay, n)
    where = apply(lay, p)
    for b in pinned:
        assert where[b] == lay.segments[0].start[b]
    if p.unreachable is None:
        seg = lay.segments[0]
        used = [False] * seg.num_pages
        for b, s in zip(seg.block_id.tolist(), seg.pages.tolist(), strict=True):
            for q in range(where[b], where[b] + s):
                used[q] = True
        best = run = 0
        for u in used:
            run = 0 if u else run + 1
            best = max(best, run)
        assert best >= n
        assert p.pages_moved >= p.lower_bound_pages
    else:
        assert p.moves == ()


def test_targeted_picks_the_cheapest_window() -> None:
    # | A A A . B . C C . . | want 3 pages: evacuating B (1 page) beats C (2) or A (3)
    lay = Layout.from_blocks(64, [(0, 10)], [(0, 0, 3, False), (1, 4, 1, False), (2, 6, 2, False)])
    p = plan_targeted(lay, 3)
    assert [(m.block_id, m.dst_page) for m in p.moves] == [(1, 8)] and p.lower_bound_pages == 1


def test_targeted_unreachable_because_of_pins() -> None:
    lay = Layout.from_blocks(64, [(0, 6)], [(0, 0, 1, True), (1, 2, 1, True), (2, 4, 1, True)])
    p = plan_targeted(lay, 2)
    assert p.unreachable and "pinned" in p.unreachable and not p.moves


def test_targeted_unreachable_without_room() -> None:
    lay = Layout.from_blocks(64, [(0, 4)], [(0, 1, 1, False), (1, 3, 1, False)])
    assert plan_targeted(lay, 3).unreachable and plan_targeted(lay, 9).unreachable


def test_pins_are_respected_and_noted() -> None:
    lay = Layout.from_blocks(64, [(0, 10)], [(0, 2, 1, True), (1, 5, 2, False), (2, 8, 1, False)])
    p = plan_two_finger(lay)
    assert all(m.block_id != 0 for m in p.moves) and p.notes


def test_budget_cut_keeps_order_and_size() -> None:
    lay = layout_from([(1, 2), (1, 2), (1, 2), (1, 2)], 12)
    p = plan_sliding(lay)
    first, rest = p.cut(3)
    assert first.pages_moved <= 3 and first.moves + rest.moves == p.moves
    big_first, _ = p.cut(1)  # a block larger than the budget moves alone
    assert len(big_first.moves) == 1


def test_bad_strategy_and_num_pages() -> None:
    lay = layout_from([(1, 1)], 4)
    with pytest.raises(ValueError, match="strategy='best' is not allowed"):
        plan(lay, "best")
    with pytest.raises(ValueError, match="needs num_pages"):
        plan(lay, "targeted")
    with pytest.raises(ValueError, match="num_pages=0"):
        plan_targeted(lay, 0)


def test_every_strategy_a_config_may_name_has_a_planner() -> None:
    from autoglm_lab.compactor import STRATEGIES
    from autoglm_lab.compactor._plan import WHOLE_POOL_PLANNERS
    from autoglm_lab.pool import COMPACTION_STRATEGIES

    assert set(WHOLE_POOL_PLANNERS) == set(COMPACTION_STRATEGIES)
    assert STRATEGIES == (*COMPACTION_STRATEGIES, "targeted")
