"""The Triton executor (issue 17 §1-2): the kernel under TRITON_INTERPRET=1 on CPU tensors, byte for byte
against the existing paths; its schedule (waves and staged groups) as a pure function; the fallbacks;
16-byte accesses in the code compiled for sm_90; and on CUDA where present (tests named *cuda*)."""

from __future__ import annotations

import logging
import os
import random
import sys
from collections.abc import Iterator

import hypothesis.strategies as st
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis.stateful import rule

import autoglm_lab as al
from autoglm_lab.compactor import _api, _execute, _triton, layout_of, plan
from autoglm_lab.compactor._execute import coalesce

from ..pool.helpers import check_pattern, small_pool, write_pattern
from ..pool.test_stateful import PAGE, PoolMachine

if os.environ.get("CI"):
    import triton  # CI installs it (scripts/setup.sh): a missing Triton fails here, loudly
else:
    triton = pytest.importorskip("triton", reason="Triton is not installed: scripts/setup.sh installs it")

HAS_CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not HAS_CUDA, reason="no CUDA device (torch.cuda.is_available() is False)")
# the kernel interpreted on CPU tensors, and compiled on CUDA where present (ids with 'cuda': -k cuda)
DEVICES = ["cpu", pytest.param("cuda", marks=[needs_cuda, pytest.mark.cuda])]
TRITON = {"cpu": "triton-interpret", "cuda": "triton"}  # report.executor of the kernel
EXISTING = {"cpu": "cpu-memmove", "cuda": "torch"}      # ... and of the existing path


def _on(device: str, monkeypatch: pytest.MonkeyPatch) -> str:
    if device == "cuda":
        monkeypatch.setenv("TRITON_INTERPRET", "0")  # compiled
    return device


@pytest.fixture(autouse=True)
def interpreted_triton(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every test here: the kernel interpreted (it is jitted on first use, after this is set), and
    Triton asked for on CPU tensors too; a clean slate of probes and refusals."""
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    monkeypatch.setattr(_triton, "EXECUTOR", "triton")
    _triton.reset()
    yield
    _triton.reset()


def _fragmented(seed: int, *, device: str = "cpu", pages: int = 48, page: int = 4096,
                max_block: int = 5) -> tuple[al.PagedPool, list[al.Block]]:
    rng = random.Random(seed)
    pool = small_pool(device, pages=pages, page=page, fit="first")
    blocks = []
    while True:
        try:
            blocks.append(pool.alloc_bytes(rng.randint(1, max_block) * page - rng.randint(0, 63)))
        except al.PoolExhausted:
            break
    for b in blocks:
        write_pattern(b)
    live = [b for b in blocks if rng.random() < 0.6]
    for b in blocks:
        if b not in live:
            pool.free(b)
    return pool, live


def _compact_all(pool: al.PagedPool, strategy: str, budget: int | None, num_pages: int | None) -> list[str]:
    used = []
    for _ in range(500):
        rep = pool.compact(strategy, budget_bytes=budget, num_pages=num_pages)
        used.append(rep.executor)
        if rep.done or strategy == "targeted":
            return used
    raise AssertionError("compaction did not finish")


def _live_bytes(pool: al.PagedPool, live: list[al.Block]) -> dict[int, tuple[int, bytes]]:
    return {b.id: (b.first_page, bytes(b.tensor.reshape(-1).view(torch.uint8)[: b.nbytes].cpu().numpy()))
            for b in live}


@pytest.mark.parametrize(("strategy", "budget_pages", "num_pages"), [
    ("two_finger", None, None), ("two_finger", 3, None), ("sliding", None, None), ("sliding", 2, None),
    ("targeted", None, 9),
])
@pytest.mark.parametrize("overlap", ["waves", "staged-in-waves", "staged"])
@pytest.mark.parametrize("seed", [3, 4])
@pytest.mark.parametrize("device", DEVICES)
def test_triton_matches_the_existing_path_byte_for_byte(monkeypatch: pytest.MonkeyPatch, device: str, strategy: str,
                                                        budget_pages: int | None, num_pages: int | None,
                                                        overlap: str, seed: int) -> None:
    # overlap: the defaults (these small pools need no staging); every range overlapping its destination
    # staged inside its wave (the first launch copies and reads, the second writes); or no waves at all
    # (a sequential stage all staged), in groups of 2 pages
    _on(device, monkeypatch)
    if overlap != "waves":
        monkeypatch.setattr(_triton, "STAGE_BYTES", 2 * 4096)
        monkeypatch.setattr(_triton, "SPLIT_MAX_CHUNKS" if overlap == "staged-in-waves" else "MAX_WAVES", 0)
    budget = None if budget_pages is None else budget_pages * 4096
    results = {}
    for executor in ("torch", "triton"):
        monkeypatch.setattr(_triton, "EXECUTOR", executor)
        pool, live = _fragmented(seed, device=device)
        used = _compact_all(pool, strategy, budget, num_pages)
        want = EXISTING[device] if executor == "torch" else TRITON[device]
        assert set(used) == {want} | ({"none"} & set(used)) and used[0] != "none"
        for b in live:
            check_pattern(b)
        pool.check_invariants()
        results[executor] = (pool.snapshot().page_block.tolist(), _live_bytes(pool, live))
    assert results["triton"] == results["torch"]


@pytest.mark.parametrize(("device", "page"), [  # 64 KiB pages on CUDA only: the interpreter is slow
    ("cpu", 4096), *(pytest.param("cuda", p, marks=[needs_cuda, pytest.mark.cuda]) for p in (4096, 65536))])
def test_triton_slides_large_overlapping_ranges(monkeypatch: pytest.MonkeyPatch, device: str, page: int) -> None:
    _on(device, monkeypatch)
    monkeypatch.setattr(_triton, "STAGE_BYTES", 8 * page)  # several staged groups
    for shift in (1, 3, 40):  # staged; chunk waves; no overlap
        pool = small_pool(device, pages=300, page=page)
        gap = pool.alloc_bytes(shift * page)
        big = pool.alloc_bytes(200 * page - 3)
        write_pattern(big)
        pool.free(gap)
        rep = pool.compact("sliding")
        assert rep.executor == TRITON[device] and big.first_page == 0
        check_pattern(big)


def test_overlapping_slides_through_waves_and_the_temporary(monkeypatch: pytest.MonkeyPatch) -> None:
    # a 30-page block slides by one page (more than SPLIT_MAX_CHUNKS chunks: staged), a 6-page block
    # by 2 pages (3 chunks, one wave each), a 10-page block by one page in 3 staged groups
    seen: list[tuple[int, int]] = []  # per launch pair: (pages copied directly, pages staged)
    real = _triton.schedule

    def spy(*a: object, **kw: object) -> list[tuple[np.ndarray, np.ndarray]]:
        ops = real(*a, **kw)  # type: ignore[arg-type]
        seen.extend((int(p[~s, 2].sum()), int(p[s, 2].sum())) for p, s in ops)
        return ops

    monkeypatch.setattr(_triton, "schedule", spy)
    pool = small_pool("cpu", pages=40)
    gap = pool.alloc_bytes(4096)
    big = pool.alloc_bytes(30 * 4096)
    write_pattern(big)
    pool.free(gap)
    assert pool.compact("sliding").executor == "triton-interpret"
    assert big.first_page == 0 and seen == [(0, 30)]
    check_pattern(big)

    seen.clear()
    pool = small_pool("cpu", pages=12)
    gap = pool.alloc_bytes(2 * 4096)
    blk = pool.alloc_bytes(6 * 4096)
    write_pattern(blk)
    pool.free(gap)
    pool.compact("sliding")
    assert blk.first_page == 0 and seen == [(2, 0), (2, 0), (2, 0)]
    check_pattern(blk)

    seen.clear()
    monkeypatch.setattr(_triton, "STAGE_BYTES", 4 * 4096)
    pool = small_pool("cpu", pages=12)
    gap = pool.alloc_bytes(4096)
    blk = pool.alloc_bytes(10 * 4096)
    write_pattern(blk)
    pool.free(gap)
    pool.compact("sliding")
    assert blk.first_page == 0 and seen == [(0, 4), (0, 4), (0, 2)]
    check_pattern(blk)


@pytest.mark.parametrize("device", DEVICES)
def test_one_wave_copies_and_stages_together(monkeypatch: pytest.MonkeyPatch, device: str) -> None:
    # a 4-page block A sliding by one page is staged (4 chunks > SPLIT_MAX_CHUNKS); B lands on A's
    # last source page, so it waits for A; C lands on pages no source covers: wave 0 is A and C, one
    # launch of mode-0 and mode-1 rows (C copied, A read into the temporary), one of mode 2 (A written)
    _on(device, monkeypatch)
    monkeypatch.setattr(_triton, "SPLIT_MAX_CHUNKS", 2)
    seen: list[list[bool]] = []
    real = _triton.schedule

    def spy(*a: object, **kw: object) -> list[tuple[np.ndarray, np.ndarray]]:
        ops = real(*a, **kw)  # type: ignore[arg-type]
        seen.extend(staged.tolist() for _p, staged in ops)
        return ops

    monkeypatch.setattr(_triton, "schedule", spy)
    launches: list[list[int]] = []
    real_launch = _triton._launch

    def launch(kern: object, seg: torch.Tensor, tmp: torch.Tensor, table: torch.Tensor, rows: int) -> None:
        launches.append(sorted(set(table[:rows, 3].tolist())))
        real_launch(kern, seg, tmp, table, rows)

    pool = small_pool(device, pages=32)
    _triton.kernel(pool._segments[0].data.device)
    monkeypatch.setattr(_triton, "_launch", launch)
    gap, a, gap2, b, gap3, c = (pool.alloc_bytes(n * 4096) for n in (1, 4, 15, 2, 3, 2))
    for blk in (a, b, c):
        write_pattern(blk)
    for blk in (gap, gap2, gap3):
        pool.free(blk)
    rep = pool.compact("sliding")
    assert rep.executor == TRITON[device] and (a.first_page, b.first_page, c.first_page) == (0, 4, 6)
    assert seen == [[True, False], [False]] and launches == [[0, 1], [2], [0]]
    for blk in (a, b, c):
        check_pattern(blk)


def test_an_independent_stage_is_one_launch(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = _triton._launch

    def count(kern: object, seg: torch.Tensor, tmp: torch.Tensor, table: torch.Tensor, rows: int) -> None:
        calls.append(rows)
        real(kern, seg, tmp, table, rows)

    pool, live = _fragmented(5, pages=64, max_block=1)  # one-page blocks: two-finger fills holes only
    _triton.kernel(pool.device)  # the probe's launches are not counted
    monkeypatch.setattr(_triton, "_launch", count)
    rep = pool.compact("two_finger")
    assert len(rep.moves) > 5 and len(calls) == 1 and rep.executor == "triton-interpret"
    for b in live:
        check_pattern(b)


# ---------------------------------------------------------------------------------- fallbacks
def _one_compaction(caplog: pytest.LogCaptureFixture) -> tuple[al.CompactionReport, list[al.Block], al.PagedPool]:
    pool, live = _fragmented(7)
    with caplog.at_level(logging.WARNING, logger="autoglm_lab.compactor._triton"):
        rep = pool.compact("sliding")
    for b in live:
        check_pattern(b)
    pool.check_invariants()
    return rep, live, pool


def test_without_triton_the_existing_path_runs_and_says_so(monkeypatch: pytest.MonkeyPatch,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setitem(sys.modules, "triton", None)  # import triton raises ImportError
    rep, _, _ = _one_compaction(caplog)
    assert rep.executor == "cpu-memmove" and rep.pages_moved > 0
    assert "Triton is not installed" in caplog.text


def test_on_a_cpu_without_the_interpreter_the_existing_path_runs(monkeypatch: pytest.MonkeyPatch,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    rep, _, _ = _one_compaction(caplog)
    assert rep.executor == "cpu-memmove" and "TRITON_INTERPRET=1" in caplog.text
    monkeypatch.setattr(_triton, "EXECUTOR", "auto")  # the default on a CPU: no Triton, no message
    caplog.clear()
    rep, _, _ = _one_compaction(caplog)
    assert rep.executor == "cpu-memmove" and not caplog.text


def test_a_kernel_that_fails_to_compile_falls_back_with_nothing_copied(monkeypatch: pytest.MonkeyPatch,
                                                                       caplog: pytest.LogCaptureFixture) -> None:
    from autoglm_lab.compactor import _triton_kernel

    def broken(seg, tmp, table, BLOCK: triton.language.constexpr):
        raise RuntimeError("unsupported operation")  # what a compiler error looks like to the caller

    monkeypatch.setattr(_triton_kernel, "copy_chunks", broken)
    monkeypatch.setattr(_execute, "TORCH_PATH_ON_CPU", True)  # the torch path, as on CUDA
    rep, _, _ = _one_compaction(caplog)
    assert rep.executor == "torch" and "the Triton kernel failed on cpu" in caplog.text
    assert "unsupported operation" in caplog.text
    caplog.clear()
    rep, _, _ = _one_compaction(caplog)  # refused once, remembered: no second try, no second message
    assert rep.executor == "torch" and not caplog.text


@pytest.mark.parametrize("device", DEVICES)
def test_a_launch_that_fails_mid_step_leaves_the_rest_to_torch(monkeypatch: pytest.MonkeyPatch, device: str,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    _on(device, monkeypatch)
    pool, live = _fragmented(11, device=device, pages=64)
    _triton.kernel(pool._segments[0].data.device)  # probed before the count starts
    real = _triton._launch
    calls = []

    def flaky(*a: object) -> None:
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("out of resources")
        real(*a)  # type: ignore[arg-type]

    monkeypatch.setattr(_triton, "_launch", flaky)
    monkeypatch.setattr(_triton, "MAX_WAVES", 1)  # a wave, then staged groups: a failure between them
    monkeypatch.setattr(_triton, "STAGE_BYTES", 2 * 4096)
    with caplog.at_level(logging.WARNING, logger="autoglm_lab.compactor._triton"):
        rep = pool.compact("sliding")
    assert rep.executor == "triton+torch" and len(calls) == 3
    assert "out of resources" in caplog.text and "torch copies the rest" in caplog.text
    for b in live:
        check_pattern(b)
    pool.check_invariants()
    pool2, live2 = _fragmented(12, device=device, pages=64)
    assert pool2.compact("sliding").executor == EXISTING[device]  # refused from then on
    for b in live2:
        check_pattern(b)


def test_a_bad_executor_setting_is_refused_with_the_pool_unchanged(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_triton, "EXECUTOR", None)
    monkeypatch.setenv("AUTOGLM_LAB_EXECUTOR", "cuda-graphs")
    pool, live = _fragmented(2)
    before = pool.snapshot().page_block.copy()
    with pytest.raises(ValueError, match=r"AUTOGLM_LAB_EXECUTOR='cuda-graphs' is not allowed: choose one of "
                                         r"'auto', 'triton', 'torch'"):
        pool.compact()
    assert np.array_equal(pool.snapshot().page_block, before)
    for b in live:
        check_pattern(b)
    monkeypatch.setenv("AUTOGLM_LAB_EXECUTOR", "torch")
    assert pool.compact().executor == "cpu-memmove"


def test_no_moves_no_executor() -> None:
    pool = small_pool("cpu", pages=8)
    pool.alloc_bytes(4096)
    assert pool.compact().executor == "none"


# ------------------------------------------------------------------------------- the schedule (pure)
def _run_schedule(data: np.ndarray, ops: list[tuple[np.ndarray, np.ndarray]]) -> None:
    """Run launches as a GPU may: a launch's chunks in any order, so none may write what another
    reads or writes in the same launch (checked); staged pieces are read in the first launch and
    written in the second."""
    for pieces, staged in ops:
        reads = [(s, s + n) for s, _d, n in pieces.tolist()]
        direct = [(d, d + n) for (_s, d, n), st in zip(pieces.tolist(), staged.tolist(), strict=True) if not st]
        later = [(d, d + n) for (_s, d, n), st in zip(pieces.tolist(), staged.tolist(), strict=True) if st]
        for a, b in direct:
            assert not any(a < e and s < b for s, e in reads), f"a write over a read in one launch: {pieces}"
        for group in (direct, later):
            group.sort()
            assert all(group[i][1] <= group[i + 1][0] for i in range(len(group) - 1)), "writes overlap"
        read = [data[s:s + n].copy() for s, _d, n in pieces.tolist()]
        for (_s, d, n), chunk in zip(pieces.tolist(), read, strict=True):
            data[d:d + n] = chunk


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(1, 12), st.booleans()), min_size=1, max_size=60),
       st.sampled_from(["two_finger", "sliding"]), st.sampled_from([0, 1, 2, 16]), st.sampled_from([1, 3, 1 << 40]),
       st.sampled_from([1, 4, 16]))
def test_schedule_copies_like_the_moves_in_order(blocks: list[tuple[int, bool]], strategy: str, max_waves: int,
                                                 stage_pages: int, max_chunks: int) -> None:
    saved = _triton.SPLIT_MAX_CHUNKS
    _triton.SPLIT_MAX_CHUNKS = max_chunks
    try:
        total = sum(n for n, _ in blocks)
        pool = small_pool("cpu", pages=total + 2, page=64, fit="first")
        allocated = [(pool.alloc_bytes(n * 64), keep) for n, keep in blocks]
        for b, keep in allocated:
            if not keep:
                pool.free(b)
        data = np.arange(total + 2, dtype=np.int64) * 1000
        want = data.copy()
        for stage in plan(layout_of(pool), strategy).stages:
            ranges = coalesce(sorted(stage.moves, key=lambda m: m.src_page) if stage.independent else stage.moves)
            assert _triton._coalesce(stage.moves, stage.independent).tolist() == ranges
            for s, d, n in ranges:
                want[d:d + n] = want[s:s + n].copy()  # the moves one after another
            ops = _triton.schedule(ranges, stage.independent, max_waves=max_waves, stage_pages=stage_pages)
            assert sum(int(p[:, 2].sum()) for p, _ in ops) == sum(n for *_, n in ranges)
            assert all(int(p[s, 2].sum()) <= 2 * stage_pages for p, s in ops)  # the temporary's bound
            if stage.independent:
                assert len(ops) == 1 and not ops[0][1].any()
            _run_schedule(data, ops)
            assert np.array_equal(data, want)
    finally:
        _triton.SPLIT_MAX_CHUNKS = saved


@pytest.mark.parametrize(("src", "dst", "n"), [(10, 3, 12), (3, 10, 12), (5, 4, 30), (4, 5, 30), (0, 20, 8)])
def test_schedule_of_one_range_either_way(src: int, dst: int, n: int) -> None:
    # moving up does not come from today's planners; the schedule copes anyway (back to front)
    for max_waves in (0, 4, 64):
        for stage_pages in (5, 1 << 40):
            data = np.arange(64, dtype=np.int64)
            want = data.copy()
            want[dst:dst + n] = want[src:src + n].copy()
            _run_schedule(data, _triton.schedule([[src, dst, n]], False, max_waves=max_waves, stage_pages=stage_pages))
            assert np.array_equal(data, want)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_slide_takes_few_waves(seed: int) -> None:
    # blocks of 1..8 pages, half of them freed at random: the waves grow about as the log of the
    # number of ranges, so a full slide of thousands of ranges is a handful of launches
    rng = random.Random(seed)
    pool = small_pool("cpu", pages=1 << 16, page=64)
    blocks = []
    while True:
        try:
            blocks.append(pool.alloc_bytes(rng.randint(1, 8) * 64))
        except al.PoolExhausted:
            break
    for b in rng.sample(blocks, len(blocks) // 2):
        pool.free(b)
    (stage,) = plan(layout_of(pool), "sliding").stages
    ranges = coalesce(stage.moves)
    ops = _triton.schedule(ranges, False, max_waves=64)
    assert len(ranges) > 3000 and len(ops) <= 20


# ------------------------------------------------------------------ the compiled code (no GPU needed)
def test_the_kernel_compiles_for_sm90_with_16_byte_accesses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    monkeypatch.setenv("TRITON_DEFAULT_FP_FUSION", "1")  # no floats here; quiets Triton 3.9's notice
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from autoglm_lab.compactor import _triton_kernel

    fn = triton.jit(_triton_kernel.copy_chunks)
    aligned = [["tt.divisibility", 16]]
    src = ASTSource(fn=fn, signature={"seg": "*i64", "tmp": "*i64", "table": "*i64", "BLOCK": "constexpr"},
                    constexprs={"BLOCK": _triton.BLOCK_WORDS}, attrs={(0,): aligned, (1,): aligned, (2,): aligned})
    ptx = triton.compile(src, target=GPUTarget("cuda", 90, 32), options={"num_warps": _triton.NUM_WARPS}).asm["ptx"]
    assert "ld.global.v2.b64" in ptx or "ld.global.nc.v2.b64" in ptx
    assert "st.global.v2.b64" in ptx
    assert "st.global.b64" not in ptx  # every store of data is a 16-byte vector


# ------------------------------------------------------------- the stateful machine, through Triton
class TritonPoolMachine(PoolMachine):
    """tests/pool/test_stateful.py's machine (every live byte checked after every step) with every
    compaction's bytes copied by the kernel: interpreted here, compiled in the CUDA variant below."""

    expected = "triton-interpret"

    def __init__(self) -> None:
        super().__init__()
        self.executors: list[str] = []
        real = self._real = _api.execute

        def spy(pool: al.PagedPool, step: object, started: object = None) -> str:
            name = real(pool, step, started)  # type: ignore[arg-type]
            self.executors.append(name)
            return name

        _api.execute = spy

    @rule(n=st.integers(2, 10), strategy=st.sampled_from(["two_finger", "sliding"]),
          budget=st.one_of(st.none(), st.integers(1, 8)))
    def churn_then_compact(self, n: int, strategy: str, budget: int | None) -> None:
        # the inherited rules alone seldom leave holes before a compaction: make some, then compact
        made = []
        for i in range(n):
            try:
                blk = self.pool.alloc_bytes(PAGE * (1 + i % 3) - i)
            except al.PoolExhausted:
                break
            write_pattern(blk)
            made.append(blk)
        for blk in made[::2]:
            self.pool.free(blk)
        self.live.extend(made[1::2])
        self.compact(strategy, budget)

    def teardown(self) -> None:
        _api.execute = self._real
        super().teardown()
        assert set(self.executors) <= {self.expected, "none"}, self.executors


TritonPoolMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=40, deadline=None,
                                               suppress_health_check=[HealthCheck.too_slow])
TestPoolThroughTriton = TritonPoolMachine.TestCase


# ------------------------------------------------------------------------------- CUDA, where present
class CudaTritonPoolMachine(TritonPoolMachine):
    device = "cuda"
    expected = "triton"

    def __init__(self) -> None:
        os.environ["TRITON_INTERPRET"] = "0"  # the autouse fixture puts it back after the test
        _triton.EXECUTOR = "auto"
        super().__init__()


if HAS_CUDA:  # the stateful machine on the GPU, through the compiled kernel (CUDA's default executor)
    CudaTritonPoolMachine.TestCase.settings = settings(max_examples=20, stateful_step_count=30, deadline=None)
    TestPoolTritonCuda = CudaTritonPoolMachine.TestCase
