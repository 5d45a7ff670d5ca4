"""Property-based stateful tests: random operations on a real pool; after every step every live
byte is checked against its pattern and ``check_invariants()`` runs (issue 2 §3.2, issue 3 §4.1)."""

from __future__ import annotations

import contextlib

import hypothesis.strategies as st
import pytest
import torch
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

import autoglm_lab as al

from .helpers import check_pattern, write_pattern

PAGE = 256


class PoolMachine(RuleBasedStateMachine):
    device = "cpu"

    def __init__(self) -> None:
        super().__init__()
        self.live: list[al.Block] = []
        self.pins: dict[int, contextlib.AbstractContextManager] = {}
        self.pool: al.PagedPool

    @initialize(fit=st.sampled_from(["first", "best"]), coalesce=st.sampled_from(["eager", "lazy"]),
                pages=st.integers(4, 40), grow=st.integers(0, 3),
                compaction=st.sampled_from(["off", "lazy", "eager"]))
    def make_pool(self, fit: str, coalesce: str, pages: int, grow: int, compaction: str) -> None:
        cfg = al.PoolConfig(page_size=PAGE, memory_pool_initial_size=pages * PAGE,
                            max_size=pages * PAGE * (1 + grow), device=self.device, fit=fit,
                            coalesce=coalesce, compaction=compaction, free_ratio_trigger=0.3,
                            max_consecutive_failures=2, defrag_interval_s=1.0,
                            fragmentation_threshold_factor=0.2, compaction_budget_bytes=2 * PAGE)
        self.pool = al.PagedPool(cfg)
        self.clock = 0.0

    @rule(nbytes=st.integers(0, 6 * PAGE), kind=st.sampled_from(["bytes", "f32", "f16"]))
    def alloc(self, nbytes: int, kind: str) -> None:
        before = self.pool.snapshot()
        try:
            if kind == "bytes":
                blk = self.pool.alloc_bytes(nbytes, tag=kind)
            else:
                dtype = torch.float32 if kind == "f32" else torch.float16
                blk = self.pool.alloc((nbytes // dtype.itemsize,), dtype, tag=kind)
        except al.PoolExhausted as exc:
            after = self.pool.snapshot()
            assert (before.page_block == after.page_block).all(), "a failed allocation changed the pool"
            assert exc.free_pages == after.stats.free_pages
            return
        write_pattern(blk)
        self.live.append(blk)

    @precondition(lambda self: self.live)
    @rule(i=st.integers(0, 1000))
    def free(self, i: int) -> None:
        blk = self.live[i % len(self.live)]
        if blk.id in self.pins:
            with pytest.raises(al.PinnedBlockError):
                self.pool.free(blk)
            return
        self.live.remove(blk)
        self.pool.free(blk)
        with pytest.raises(al.InvalidBlockError):
            self.pool.free(blk)

    @precondition(lambda self: self.live)
    @rule(i=st.integers(0, 1000))
    def rewrite(self, i: int) -> None:
        blk = self.live[i % len(self.live)]
        blk.tensor.view(torch.uint8).reshape(-1)[: blk.nbytes].zero_()
        write_pattern(blk)

    @precondition(lambda self: self.live)
    @rule(i=st.integers(0, 1000))
    def pin(self, i: int) -> None:
        blk = self.live[i % len(self.live)]
        if blk.id not in self.pins:
            ctx = self.pool.pin(blk)
            ctx.__enter__()
            self.pins[blk.id] = ctx

    @precondition(lambda self: self.pins)
    @rule(i=st.integers(0, 1000))
    def unpin(self, i: int) -> None:
        key = sorted(self.pins)[i % len(self.pins)]
        self.pins.pop(key).__exit__(None, None, None)

    @rule()
    def release(self) -> None:
        self.pool.release_empty_segments()

    @rule(fit=st.sampled_from(["first", "best"]), coalesce=st.sampled_from(["eager", "lazy"]))
    def configure(self, fit: str, coalesce: str) -> None:
        self.pool.configure(fit=fit, coalesce=coalesce)

    @rule(strategy=st.sampled_from(["two_finger", "sliding"]),
          budget=st.one_of(st.none(), st.integers(1, 8)))
    def compact(self, strategy: str, budget: int | None) -> None:
        pinned = {b.id: b.first_page for b in self.live if b.id in self.pins}
        rep = self.pool.compact(strategy, budget_bytes=None if budget is None else budget * PAGE)
        assert rep.pages_moved == sum(m.pages for m in rep.moves)
        if budget is not None and rep.pages_moved > budget:
            assert rep.over_budget and len(rep.moves) == 1
        assert {b.id: b.first_page for b in self.live if b.id in self.pins} == pinned, "a pinned block moved"
        assert rep.planned_pages >= rep.lower_bound_pages or self.pins
        if budget is None:
            assert rep.done
            snap = self.pool.snapshot()
            starts, _ = snap.free_runs()
            # one free run per segment, bar the gaps that pinned blocks keep
            assert len(starts) <= snap.segment_first_page.size + len(self.pins)

    @rule(strategy=st.sampled_from(["two_finger", "sliding"]), budget=st.integers(1, 4))
    def compact_steps(self, strategy: str, budget: int) -> None:
        # two budgeted steps back to back: after an allocation or free made the plan stale, the
        # second runs the rest of that plan on a pool the first step alone changed
        for _ in range(2):
            self.compact(strategy, budget)

    @rule(dt=st.floats(0.0, 3.0))
    def tick(self, dt: float) -> None:
        self.clock += dt
        pinned = {b.id: b.first_page for b in self.live if b.id in self.pins}
        rep = self.pool.tick(self.clock)
        if rep is not None:
            assert self.pool.config.compaction == "eager" and rep.reason == "periodic"
            assert rep.pages_moved <= 2 or (rep.over_budget and len(rep.moves) == 1)
        assert {b.id: b.first_page for b in self.live if b.id in self.pins} == pinned

    @rule(n=st.integers(1, 12))
    def targeted(self, n: int) -> None:
        rep = self.pool.compact("targeted", num_pages=n)
        if rep.unreachable is None:
            assert self.pool.stats().largest_free_run_pages >= n
            assert rep.pages_moved >= rep.lower_bound_pages

    @invariant()
    def every_byte_and_the_books(self) -> None:
        if not hasattr(self, "pool"):
            return
        for blk in self.live:
            check_pattern(blk)
        self.pool.check_invariants()

    def teardown(self) -> None:
        for ctx in self.pins.values():
            ctx.__exit__(None, None, None)


PoolMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=40, deadline=None,
                                         suppress_health_check=[HealthCheck.too_slow])
TestPool = PoolMachine.TestCase


class CudaPoolMachine(PoolMachine):
    device = "cuda"


if torch.cuda.is_available():  # the same machine on the GPU, where one is present
    CudaPoolMachine.TestCase.settings = settings(max_examples=20, stateful_step_count=30, deadline=None)
    TestPoolCuda = CudaPoolMachine.TestCase
