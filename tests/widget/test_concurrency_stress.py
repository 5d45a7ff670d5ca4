"""Bounded concurrency stress: everything that may touch one pool at once, at once.

Threads: a simulator stepping a `ServingSim` (its KV cache in the pool), a compactor (both
strategies, with and without budgets), the dashboard's live loop, control changes and button clicks
sent as front-end comm messages (the path the UI uses), page-map clicks and hovers, snapshot / stats
readers, and an owner of blocks of its own in the same pool that writes them only under
``pool.pin`` and reads them only under ``pool.lock``. At the end every byte of those blocks is
checked, the pool's invariants hold, no thread died and the live loop is still running and stops.

Bounded: every thread runs at most a fixed number of iterations and stops at a shared deadline;
joins have timeouts and are asserted. Deselect with ``-m "not slow"``.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

import pytest
import torch

import autoglm_lab as al
from autoglm_lab.widget import Dashboard

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]

RUN_S = 6.0          # how long the threads work together
JOIN_S = 20.0        # how long a thread may take to notice the deadline and end
PAGE = 16 * 1024


def comm_msg(data: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"comm_id": "stress", "data": data}, "buffers": []}


def pattern(nbytes: int, key: int, gen: int) -> torch.Tensor:
    return ((torch.arange(nbytes, dtype=torch.int64) * 31 + key * 17 + gen * 7) % 251).to(torch.uint8)


def as_bytes(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(-1).view(torch.uint8)


class Owned:
    """The test's own blocks and what each must hold (touched by the owner thread, then by main)."""

    def __init__(self, pool: al.PagedPool) -> None:
        self.pool = pool
        self.blocks: dict[int, tuple[al.Block, int]] = {}  # key -> (block, generation)
        self.placed: dict[int, int] = {}  # key -> first page when last written
        self.next_key = 0
        self.writes = self.reads = self.allocs = self.frees = self.seen_moved = 0

    def alloc(self, rng: random.Random) -> None:
        pages = rng.randint(1, 4)
        dtype = rng.choice([torch.uint8, torch.int16, torch.float32])
        numel = pages * PAGE // torch.empty(0, dtype=dtype).element_size() - rng.randint(0, 3)
        try:
            blk = self.pool.alloc((numel,), dtype, tag="stress-owned")
        except al.PoolExhausted:
            return  # the simulator holds the pool: a legitimate outcome
        key = self.next_key
        self.next_key += 1
        with self.pool.pin(blk):
            as_bytes(blk.tensor)[:] = pattern(blk.nbytes, key, 0)
            self.placed[key] = blk.first_page
        self.blocks[key] = (blk, 0)
        self.allocs += 1

    def write(self, key: int) -> None:
        blk, gen = self.blocks[key]
        with self.pool.pin(blk):
            as_bytes(blk.tensor)[:] = pattern(blk.nbytes, key, gen + 1)
            self.placed[key] = blk.first_page
        self.blocks[key] = (blk, gen + 1)
        self.writes += 1

    def check(self, key: int) -> None:
        blk, gen = self.blocks[key]
        with self.pool.lock:
            got = as_bytes(blk.tensor).clone()
            self.seen_moved += blk.first_page != self.placed[key]  # compaction moved it since the write
        want = pattern(blk.nbytes, key, gen)
        if not torch.equal(got, want):
            bad = int((got != want).nonzero()[0])
            raise AssertionError(f"owned block {blk!r} (key {key}, gen {gen}): byte {bad} is {int(got[bad])}, "
                                 f"expected {int(want[bad])}")
        self.reads += 1

    def free(self, key: int) -> None:
        blk, _ = self.blocks.pop(key)
        del self.placed[key]
        self.pool.free(blk)
        self.frees += 1


def test_everything_at_once_keeps_every_byte_and_every_thread(caplog: pytest.LogCaptureFixture) -> None:
    from autoglm_lab.workload import demo_setup

    pool, sim = demo_setup(limit=400, page_size="16KiB", memory_pool_initial_size="4MiB", max_size="4MiB")
    dash = Dashboard(pool, sim, fps=10, at_end="loop")  # a finished trace starts over, as the sim thread does
    c = dash.controls
    c["steps_per_frame"]._handle_msg(comm_msg({"method": "update", "state": {"index": 1}, "buffer_paths": []}))
    assert dash.steps_per_frame == 1  # the loop draws; the simulator thread does most of the stepping
    owned = Owned(pool)
    rng0 = random.Random(0)
    for _ in range(6):
        owned.alloc(rng0)
    assert owned.blocks, "the test could not place a block of its own"

    deadline = time.perf_counter() + RUN_S
    stop = threading.Event()
    errors: list[tuple[str, str]] = []
    counts: dict[str, int] = {}

    def worker(name: str, body: Callable[[random.Random, int], None], iterations: int) -> threading.Thread:
        def run() -> None:
            rng = random.Random(name)
            n = 0
            try:
                for i in range(iterations):
                    if stop.is_set() or time.perf_counter() > deadline:
                        break
                    body(rng, i)
                    n += 1
            except BaseException:
                errors.append((name, traceback.format_exc()))
                stop.set()
            finally:
                counts[name] = n
        return threading.Thread(target=run, name=f"stress-{name}", daemon=True)

    def simulate(rng: random.Random, i: int) -> None:
        if sim.done:
            sim.reset()
        sim.step()

    def compact(rng: random.Random, i: int) -> None:
        strategy = ("two_finger", "sliding")[i % 2]
        budget = rng.choice([PAGE, 4 * PAGE, 16 * PAGE, None])
        report = pool.compact(strategy, budget_bytes=budget)
        assert report.pages_moved >= 0
        time.sleep(0.002)  # let the others at the lock

    settings: list[tuple[str, dict[str, Any]]] = [
        ("compaction", {"index": 0}), ("compaction", {"index": 1}), ("compaction", {"index": 2}),
        ("compaction_strategy", {"index": 0}), ("compaction_strategy", {"index": 1}),
        ("fit", {"index": 0}), ("fit", {"index": 1}), ("coalesce", {"index": 0}), ("coalesce", {"index": 1}),
        ("fragmentation_threshold_factor", {"value": 0.1}), ("fragmentation_threshold_factor", {"value": 0.5}),
        ("free_ratio_trigger", {"value": 0.2}), ("free_ratio_trigger", {"value": 0.6}),
        ("max_consecutive_failures", {"value": 2}), ("max_consecutive_failures", {"value": 5}),
        ("compaction_budget_bytes", {"index": 0}), ("compaction_budget_bytes", {"index": 2}),
        ("cache_reuse_strategy", {"index": 0}), ("cache_reuse_strategy", {"index": 1}),
        ("cache_reuse_strategy", {"index": 2}), ("kv_layout", {"index": 0}), ("kv_layout", {"index": 1}),
        ("request_rate_scale", {"value": 0.5}), ("request_rate_scale", {"value": 2.0}),
        ("color_by", {"index": 0}), ("color_by", {"index": 1}), ("color_by", {"index": 2}),
        ("heat_metric", {"index": 0}), ("heat_metric", {"index": 1}),
        ("free_ratio_trigger", {"value": float("nan")}),   # refused: must change nothing and raise nothing
        ("fit", {"index": 99}),
    ]

    def control(rng: random.Random, i: int) -> None:
        if i % 25 == 24:
            button = rng.choice(["compact", "step", "reset"])
            c[button]._handle_msg(comm_msg({"method": "custom", "content": {"event": "click"}}))
        else:
            name, state = rng.choice(settings)
            c[name]._handle_msg(comm_msg({"method": "update", "state": state, "buffer_paths": []}))
        time.sleep(0.005)

    def click(rng: random.Random, i: int) -> None:
        pm = dash.page_map
        page = rng.randrange(max(pm.num_pages, 1))
        action = "select" if i % 3 else "hover"
        pm._handle_msg(comm_msg({"method": "custom", "content": {"action": action, "page": page}}))
        info = pm.selected_block()
        assert info is None or {"block_id", "first_page", "num_pages"} <= set(info)
        time.sleep(0.002)

    def read(rng: random.Random, i: int) -> None:
        snap = pool.snapshot()
        ends = snap.block_first_page + snap.block_num_pages
        assert (snap.block_first_page[1:] >= ends[:-1]).all(), "snapshot blocks overlap"
        # cached (evictable) blocks are counted apart from used ones
        assert int(snap.block_num_pages.sum()) == snap.stats.used_pages + getattr(snap.stats, "cached_pages", 0)
        st = pool.stats()
        assert st.used_bytes <= st.capacity_bytes
        if i % 10 == 0:
            pool.check_invariants()
        assert isinstance(dash.stats.value, str)
        time.sleep(0.002)

    def own(rng: random.Random, i: int) -> None:
        keys = list(owned.blocks)
        roll = rng.random()
        if roll < 0.1 and len(keys) > 2:
            owned.free(rng.choice(keys))
        elif roll < 0.2 and len(keys) < 10:
            owned.alloc(rng)
        elif keys:
            key = rng.choice(keys)
            owned.write(key) if roll < 0.6 else owned.check(key)

    threads = [
        worker("sim", simulate, 200_000),
        worker("compact", compact, 5_000),
        worker("controls", control, 2_000),
        worker("clicks", click, 5_000),
        worker("reader", read, 5_000),
        worker("owner", own, 50_000),
    ]
    with caplog.at_level(logging.WARNING):
        dash.play()
        for t in threads:
            t.start()
        for t in threads:
            t.join(JOIN_S)
        alive = [t.name for t in threads if t.is_alive()]
        stop.set()
        assert not alive, f"threads still running after the deadline: {alive}"
        assert not errors, "\n".join(f"--- {name}\n{tb}" for name, tb in errors)

        # the live loop survived all of it, and still stops
        frames = dash.loop.frames
        assert dash.playing and dash.loop.error is None, dash.loop.error
        assert frames > 0
        dash.stop()
        assert not dash.playing and dash.loop.error is None
        assert not any(t.name == "autoglm-dashboard" for t in threading.enumerate())

    # every byte of the test's own blocks, the pool's books
    for key in list(owned.blocks):
        owned.check(key)
    pool.check_invariants()
    assert dash.pool is pool and dash.sim is sim  # Reset keeps a pool holding blocks of its own
    caught = [r.getMessage()[:300] for r in caplog.records
              if r.levelno >= logging.ERROR or "Exception in widget method" in r.getMessage()]
    assert not caught, caught
    # it was a stress: everyone did real work, and the compactor moved blocks
    assert all(counts[name] > 10 for name in ("sim", "compact", "controls", "clicks", "reader", "owner")), counts
    assert owned.writes > 10 and owned.reads > 10, vars(owned)
    assert owned.seen_moved > 0, "the compactor never moved a block of the test's own between a write and a read"
    assert pool.stats().compaction_pages_moved > 0
    dash.close()
