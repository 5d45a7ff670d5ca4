"""The Triton executor: a step's copies as a few launches of one kernel (`_triton_kernel.copy_chunks`).

Each launch takes a table of chunks (src word, dst word, words, mode; int64, at most `CHUNK_BYTES`
each) and runs one program per chunk, copying 8-byte words in tiles whose offsets are multiples of
64 bytes, so loads and stores are 16-byte vectors. The step's whole table is built on the host first
and sent in one transfer. An independent stage is one launch per segment.

Overlap (a sequential stage: a slide) is handled by ordering chunks, and by staging where ordering
would take many launches. A range overlapping its own destination is cut into chunks no longer than
the distance moved (front to back when moving down) when that makes at most `SPLIT_MAX_CHUNKS`;
a longer one is staged whole (its source read into a temporary, then written). Then each piece gets a
wave: one more than the latest wave of a piece whose source its destination overlaps (plan order is a
topological order: a move never reads what an earlier one wrote). A wave is one launch, two when it
stages pieces: the first copies its direct pieces and reads the staged ones into the temporary, the
second writes those. Pieces beyond `MAX_WAVES` waves go last, in plan order, all staged, in groups
of about `STAGE_BYTES` (the temporary's size is at most twice that).

Who runs the copies (`setting()`): "auto" uses Triton on CUDA when it is importable and works, and
the existing paths elsewhere; "triton" also on CPU tensors, which needs TRITON_INTERPRET=1 (CI runs
the kernel so); "torch" never uses Triton. A missing Triton, a CPU without the interpreter, or a
kernel that fails to compile or to copy a probe right is logged once and the step runs on the existing
path with nothing copied yet; a launch that fails mid-step is logged and the rest of the step runs
through torch (each remaining wave as one gather and one scatter).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from itertools import chain
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ._execute import _by_segment
from ._plan import Move, Plan

if TYPE_CHECKING:
    from ..pool import PagedPool, SegmentStorage

__all__ = ["EXECUTORS", "setting", "wanted", "execute", "schedule", "reset"]

log = logging.getLogger(__name__)

EXECUTORS = ("auto", "triton", "torch")
ENV = "AUTOGLM_LAB_EXECUTOR"
# None: read $AUTOGLM_LAB_EXECUTOR at each compaction (default "auto"); tests and benchmarks set it here.
EXECUTOR: str | None = None

CHUNK_BYTES = 64 << 10   # per program: 16k programs for 1 GiB, enough to fill any GPU
BLOCK_WORDS = 1024       # 8 KiB per tile: 64 bytes per thread of 4 warps, four 16-byte accesses
NUM_WARPS = 4
MAX_WAVES = 24           # waves of a sequential stage before the rest goes through the temporary
SPLIT_MAX_CHUNKS = 4     # a range overlapping its destination: chunks (one wave each) up to this, else staged
STAGE_BYTES = 64 << 20   # staged bytes per launch (the temporary is at most twice this)

_KERNELS: dict[bool, Any] = {}           # interpreted? -> the jitted kernel
_READY: dict[tuple[str, bool], Any] = {}  # (device, interpreted) -> the kernel, once a probe copied right
_REFUSED: dict[Any, str] = {}            # ... -> why Triton is not used there ("import": not installed)
_LOGGED: set[str] = set()


def setting() -> str:
    """The executor asked for: `EXECUTOR` if set, else $AUTOGLM_LAB_EXECUTOR, else "auto"."""
    value = EXECUTOR if EXECUTOR is not None else (os.environ.get(ENV) or "auto")
    if value not in EXECUTORS:
        name = ENV if EXECUTOR is None else "autoglm_lab.compactor._triton.EXECUTOR"
        raise ValueError(f"{name}={value!r} is not allowed: choose one of {', '.join(map(repr, EXECUTORS))}")
    return value


def wanted(device: torch.device) -> bool:
    s = setting()
    return s == "triton" or (s == "auto" and device.type == "cuda")


def reset() -> None:
    """Forget probes and refusals (tests; after installing Triton in a running kernel)."""
    _KERNELS.clear()
    _READY.clear()
    _REFUSED.clear()
    _LOGGED.clear()


def _once(msg: str, *args: object) -> None:
    text = msg % args
    if text not in _LOGGED:
        _LOGGED.add(text)
        log.warning("%s", text)


def _interpreting(triton: Any) -> bool:
    knobs = getattr(triton, "knobs", None)  # Triton >= 3.4 reads its settings through knobs
    if knobs is not None:
        return bool(knobs.runtime.interpret)
    return os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "on", "yes")


def _device_ctx(device: torch.device) -> Any:
    return torch.cuda.device(device) if device.type == "cuda" else nullcontext()


def _import_triton() -> Any:
    """The triton module, or None; a failed import is remembered (a search of sys.path per step
    would cost more than a small step's copies)."""
    if "import" in _REFUSED:
        return None
    try:
        import triton
    except ImportError as exc:
        _REFUSED["import"] = str(exc)
        return None
    return triton


def kernel(device: torch.device) -> tuple[Any, bool] | None:
    """(the jitted kernel, interpreted?) for ``device``, probed once; None (reason logged once) where
    Triton cannot run there."""
    triton = _import_triton()
    if triton is None:
        _once("compactor: Triton is not installed (%s); copies run on the existing path. "
              "Install it with: pip install 'autoglm_lab[gpu]'", _REFUSED["import"])
        return None
    interp = _interpreting(triton)
    key = (str(device), interp)
    if key in _READY:
        return _READY[key], interp
    if key not in _REFUSED:
        if device.type == "cpu" and not interp:
            _REFUSED[key] = "Triton runs on CPU tensors only under TRITON_INTERPRET=1"
        elif device.type not in ("cpu", "cuda"):
            _REFUSED[key] = f"no Triton backend is used for {device.type} devices"
        else:
            try:
                if interp not in _KERNELS:
                    from . import _triton_kernel
                    _KERNELS[interp] = triton.jit(_triton_kernel.copy_chunks)
                with _device_ctx(device):
                    _probe(_KERNELS[interp], device)
                _READY[key] = _KERNELS[interp]
                return _READY[key], interp
            except Exception as exc:  # a compiler or driver failure of any kind: fall back, loudly
                _REFUSED[key] = f"the Triton kernel failed on {device} ({type(exc).__name__}: {exc})"
    _once("compactor: %s; copies run on the existing path (torch on CUDA, memmove on a CPU)", _REFUSED[key])
    return None


def _launch(kern: Any, seg: torch.Tensor, tmp: torch.Tensor, table: torch.Tensor, rows: int) -> None:
    kern[(rows,)](seg, tmp, table, BLOCK=BLOCK_WORDS, num_warps=NUM_WARPS)


def _probe(kern: Any, device: torch.device) -> None:
    """Compile the kernel and check one copy of each mode."""
    words = torch.arange(64, dtype=torch.int64, device=device)
    tmp = torch.zeros(16, dtype=torch.int64, device=device)
    table = torch.tensor([[0, 32, 16, 0], [16, 0, 8, 1], [0, 56, 8, 2]], dtype=torch.int64, device=device)
    _launch(kern, words, tmp, table, 2)
    _launch(kern, words, tmp, table[2:], 1)
    want = torch.arange(64)
    want[32:48] = torch.arange(16)
    want[56:64] = torch.arange(16, 24)
    if not torch.equal(words.cpu(), want):
        raise RuntimeError("a probe copy came out wrong")


# -------------------------------------------------------------------------------------- the schedule
def _split(pieces: np.ndarray, size: np.ndarray | int) -> np.ndarray:
    """Cut each (src, dst, n) piece longer than ``size`` (per piece or one for all) into pieces of at
    most that, in an order that copies right one after another: front to back when it moves down,
    back to front when it moves up."""
    size = np.broadcast_to(np.asarray(size, dtype=np.int64), (len(pieces),))
    src, dst, n = pieces[:, 0], pieces[:, 1], pieces[:, 2]
    k = -(-n // size)
    if (k <= 1).all():
        return pieces
    rep = np.repeat(np.arange(len(pieces)), k)
    j = np.arange(int(k.sum())) - np.repeat(np.cumsum(k) - k, k)
    j = np.where(dst[rep] > src[rep], k[rep] - 1 - j, j)
    off = j * size[rep]
    return np.stack([src[rep] + off, dst[rep] + off, np.minimum(size[rep], n[rep] - off)], axis=1)


def _levels(pieces: np.ndarray, cap: int) -> np.ndarray:
    """Each piece's wave, ``cap`` for those that would need ``cap`` waves or more. A piece waits for
    every other piece whose source its destination overlaps (all earlier in plan order; sources are
    disjoint); iterating level = 1 + max(level of those) from 0 leaves min(true level, t) after t
    rounds, each round a pass over the overlapping pairs (at most about twice the pieces)."""
    src, dst, n = pieces[:, 0], pieces[:, 1], pieces[:, 2]
    level = np.zeros(len(pieces), dtype=np.int64)
    order = np.argsort(src, kind="stable")
    starts, ends = src[order], src[order] + n[order]
    lo = np.searchsorted(ends, dst, side="right")      # the first source ending after the write starts
    hi = np.searchsorted(starts, dst + n, side="left")  # the sources starting before it ends
    cnt = np.maximum(hi - lo, 0)
    waiter = np.repeat(np.arange(len(pieces)), cnt)
    waits = order[np.repeat(lo, cnt) + np.arange(int(cnt.sum())) - np.repeat(np.cumsum(cnt) - cnt, cnt)]
    other = waits != waiter  # a staged piece's own source is read before it is written
    waiter, waits = waiter[other], waits[other]
    if not len(waits):
        return level
    has, bounds = np.unique(waiter, return_index=True)
    for _ in range(cap):
        new = np.zeros_like(level)
        new[has] = np.maximum.reduceat(level[waits], bounds) + 1
        if np.array_equal(new, level):
            return level
        level = new
    return np.minimum(level, cap)


def _groups(pieces: np.ndarray, staged: np.ndarray, stage_pages: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Launch pairs of pieces that may run together, with at most about ``stage_pages`` staged each."""
    if not staged.any():
        return [(pieces, staged)]
    group = np.zeros(len(pieces), dtype=np.int64)
    sp = pieces[staged, 2]
    group[staged] = (np.cumsum(sp) - sp) // stage_pages
    return [(pieces[group == g], staged[group == g]) for g in np.unique(group)]


def schedule(ranges: np.ndarray | list[list[int]], independent: bool, *, max_waves: int | None = None,
             stage_pages: int = 1 << 62) -> list[tuple[np.ndarray, np.ndarray]]:
    """The launches for one stage's ranges ([src, dst, pages], plan order) in one segment: a list of
    (pieces, staged), pieces an (n, 3) array of [src, dst, pages] and staged which of them go through
    the temporary. Each entry is one launch, two when any piece is staged. Pure: tested without Triton."""
    pieces = np.asarray(ranges, dtype=np.int64).reshape(-1, 3)
    if not len(pieces):
        return []
    if independent:
        return [(pieces, np.zeros(len(pieces), dtype=bool))]
    cap = MAX_WAVES if max_waves is None else max_waves
    n = pieces[:, 2]
    gap = np.abs(pieces[:, 0] - pieces[:, 1])
    over = gap < n
    cut = over & (-(-n // np.maximum(gap, 1)) <= SPLIT_MAX_CHUNKS)
    pieces = _split(pieces, np.where(cut, gap, np.where(over, stage_pages, n)))
    gap = np.abs(pieces[:, 0] - pieces[:, 1])
    staged = gap < pieces[:, 2]
    level = _levels(pieces, cap)
    ops: list[tuple[np.ndarray, np.ndarray]] = []
    for w in range(min(cap, int(level.max()) + 1)):
        at = level == w
        if at.any():  # pieces of one wave never wait for each other: any grouping of them is right
            ops.extend(_groups(pieces[at], staged[at], stage_pages))
    rest = level >= cap
    if rest.any():  # in plan order, all staged: each group reads all its sources before it writes
        tail = _split(pieces[rest], stage_pages)
        ops.extend(_groups(tail, np.ones(len(tail), dtype=bool), stage_pages))
    return ops


def _chunk_rows(src: np.ndarray, dst: np.ndarray, n: np.ndarray, mode: np.ndarray, chunk: int) -> np.ndarray:
    """The kernel's table rows (src, dst, words, mode) for pieces in words, cut into chunks."""
    k = -(-n // chunk)
    total = int(k.sum())
    rep = np.repeat(np.arange(len(n)), k)
    off = (np.arange(total) - np.repeat(np.cumsum(k) - k, k)) * chunk
    rows = np.empty((total, 4), dtype=np.int64)
    rows[:, 0] = src[rep] + off
    rows[:, 1] = dst[rep] + off
    rows[:, 2] = np.minimum(chunk, n[rep] - off)
    rows[:, 3] = mode[rep]
    return rows


class _Launch:
    """One wave (or group): copies and reads into the temporary, then (if any) writes from it."""

    __slots__ = ("pieces", "rows", "seg", "tmp_words")

    def __init__(self, seg: SegmentStorage, pieces: np.ndarray, staged: np.ndarray) -> None:
        self.seg, self.pieces = seg, pieces
        w = seg.page_size // 8
        chunk = max(8, CHUNK_BYTES // 8 // 8 * 8)
        src, dst, n = pieces[:, 0] * w, pieces[:, 1] * w, pieces[:, 2] * w
        tmp = np.zeros_like(n)
        tmp[staged] = np.cumsum(n[staged]) - n[staged]
        self.tmp_words = int(n[staged].sum())
        first = _chunk_rows(src, np.where(staged, tmp, dst), n, staged.astype(np.int64), chunk)
        self.rows = [first]
        if staged.any():
            s = staged
            self.rows.append(_chunk_rows(tmp[s], dst[s], n[s], np.full(int(s.sum()), 2, dtype=np.int64), chunk))


def _coalesce(moves: Sequence[Move], independent: bool) -> np.ndarray:
    """`coalesce` in numpy, as (n, 3) [src, dst, pages]: a Python loop per move cost more host time
    than a GPU spends copying 64 KiB pages (tested equal to `coalesce`)."""
    a = np.fromiter(chain.from_iterable(moves), dtype=np.int64, count=4 * len(moves)).reshape(-1, 4)[:, 1:]
    if independent:
        a = a[np.argsort(a[:, 0], kind="stable")]
    start = np.ones(len(a), dtype=bool)
    start[1:] = (a[1:, 0] != a[:-1, 0] + a[:-1, 2]) | (a[1:, 1] != a[:-1, 1] + a[:-1, 2])
    first = np.flatnonzero(start)
    out: np.ndarray = a[first].copy()
    out[:, 2] = np.add.reduceat(a[:, 2], first)
    return out


def _plan_launches(segments: Sequence[SegmentStorage], step: Plan) -> list[_Launch]:
    out = []
    for stage in step.stages:
        for seg, moves in _by_segment(segments, stage.moves):
            ranges = _coalesce(moves, stage.independent)
            ranges[:, :2] -= seg.first_page
            stage_pages = max(1, STAGE_BYTES // seg.page_size)
            for pieces, staged in schedule(ranges, stage.independent, stage_pages=stage_pages):
                out.append(_Launch(seg, pieces, staged))
    return out


def _torch_op(op: _Launch) -> None:
    """The same wave through torch: all sources gathered, then written (right for a wave or a group)."""
    seg = op.seg
    rows = seg.data.view(torch.int64).view(seg.num_pages, seg.page_size // 8)
    src, dst, n = op.pieces[:, 0], op.pieces[:, 1], op.pieces[:, 2]
    first = np.cumsum(n) - n
    step = np.arange(int(n.sum())) - np.repeat(first, n)
    dev = rows.device
    src_rows = torch.from_numpy(np.repeat(src, n) + step).to(dev)
    dst_rows = torch.from_numpy(np.repeat(dst, n) + step).to(dev)
    rows.index_copy_(0, dst_rows, rows.index_select(0, src_rows))


def execute(pool: PagedPool, segments: Sequence[SegmentStorage], step: Plan,
            started: Callable[[], None] | None = None) -> str | None:
    """Copy ``step``'s bytes with the kernel: "triton" (or "triton-interpret"), "triton+torch" when a
    launch failed mid-step and torch did the rest, or None (logged) when Triton cannot run here and
    nothing was copied."""
    device = pool.device
    got = kernel(device)
    if got is None:
        return None
    kern, interp = got
    name = "triton-interpret" if interp else "triton"
    try:  # everything that can fail before a byte moves: the schedule, the table, the temporary
        ops = _plan_launches(segments, step)
        if not ops:
            return name
        table = torch.from_numpy(np.concatenate([r for op in ops for r in op.rows])).to(device)
        tmp_words = max(op.tmp_words for op in ops)
        tmp = torch.empty(max(tmp_words, 8), dtype=torch.int64, device=device)
    except Exception as exc:
        _once("compactor: preparing the Triton copies failed (%s: %s); this step runs on the existing path",
              type(exc).__name__, exc)
        return None
    if started is not None:
        started()
    done = 0
    try:
        with _device_ctx(device):
            at = 0
            for op in ops:
                words = op.seg.data.view(torch.int64)
                for rows in op.rows:
                    _launch(kern, words, tmp, table[at:], len(rows))
                    at += len(rows)
                done += 1
    except Exception as exc:
        # a launch raised before it was queued: the waves before it ran, and this one's sources are
        # intact (its first launch writes only where no piece of the wave reads); torch does the rest
        key = (str(device), interp)
        _REFUSED[key] = f"a Triton launch failed on {device} ({type(exc).__name__}: {exc})"
        _READY.pop(key, None)
        _once("compactor: %s after %d of %d waves; torch copies the rest", _REFUSED[key], done, len(ops))
        for op in ops[done:]:
            _torch_op(op)
        return "triton+torch"
    return name
