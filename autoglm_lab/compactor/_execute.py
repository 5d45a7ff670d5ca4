"""Executing a plan step: copy page bytes on the device in a few batched operations.

Moves are first coalesced into ranges (neighbouring blocks that move by the same distance become
one copy; the planner pairs two-finger's filling blocks with their places in address order so that
runs of blocks coalesce). An independent stage of many small ranges runs as one gather of page rows
and one scatter per segment (on CUDA, always: there a launch costs more than moving a page);
otherwise each range is one slice copy.
A range that overlaps its own destination (sliding by less than its length) is copied by numpy's
memmove on a CPU (through a flat view, in place), and on CUDA in forward chunks no longer than the
distance moved, or through a temporary when that would take many chunks.

On CUDA, where Triton is installed, `_triton` runs a step instead (one kernel launch per independent
stage); this module's paths are its fallback, and a CPU's default."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..pool import copy_ranges as native_copy_ranges
from ._plan import Move, Plan

if TYPE_CHECKING:
    from ..pool import PagedPool, SegmentStorage

__all__ = ["execute", "coalesce"]

GATHER_MIN_RANGES = 32              # fewer ranges than this: slice copies are cheaper
GATHER_MAX_RANGE_BYTES_CPU = 8 << 10  # on a CPU a numpy slice copy beats a gather unless ranges are tiny
MAX_OVERLAP_CHUNKS = 16
# On a CPU, copies stay in the calling thread (numpy memmove) by default. torch's threaded copy_
# wins for large ranges on idle cores (2 MiB: 17.7 vs 12.4 GB/s), but its OpenMP workers busy-wait
# between copies and take a core from the browser and other cells: in a kernel with the dashboard
# drawn, simulator steps ran 2.6x slower. Set a byte threshold here to opt in for large ranges.
TORCH_COPY_MIN_BYTES_CPU: int | None = None
# Copies of a large stage stay in the calling thread too. Sharing an independent stage's ranges with
# a helper Python thread (numpy drops the GIL while it copies; both threads taking 1 MiB pieces from
# one list) measured slower on the 2 shared cores, order of runs alternated, a pause before each:
# median 10.2 vs 12.2 GB/s (16-page blocks), 5.2 vs 8.8 (4-page), 4.2 vs 9.8 (1-page). An earlier
# reading in its favour came from runs that followed a torch copy_ whose OpenMP workers still spun.

# On a CPU a range longer than this is copied in pieces of this length (in order, so overlapping ranges
# stay right). glibc copies a piece below 1 MiB (its rep_movsb_stop_threshold here: the L2 size) with
# REP MOVSB and a longer one with a vector loop, which measured slower on this machine: median of
# 6 rounds interleaved, whole ranges vs 256 KiB pieces, two-finger 14.1 vs 15.9 GB/s and 17.0 vs
# 18.6, sliding 12.6 vs 14.9 and 12.7 vs 14.6. A piece costs well under a microsecond of Python.
COPY_CHUNK_BYTES_CPU = 256 << 10

# Copies go through 8-byte words: torch copies uint8 slices of one storage element by element
# (measured: 0.13 GB/s against 66 GB/s for the same bytes viewed as int64). Pages are multiples of
# 64 bytes, so every page boundary is a word boundary. On a CPU the copies run in numpy, on the same
# memory: numpy's memmove stays in the calling thread (torch's CPU copy wakes its thread pool, which
# cost 3x on a busy 2-core machine) and handles overlapping ranges itself.


def coalesce(moves: Sequence[Move]) -> list[list[int]]:
    """[src, dst, pages] ranges: consecutive moves that continue each other merge into one."""
    out: list[list[int]] = []
    for m in moves:
        if out:
            last = out[-1]
            if last[0] + last[2] == m.src_page and last[1] + last[2] == m.dst_page:
                last[2] += m.pages
                continue
        out.append([m.src_page, m.dst_page, m.pages])
    return out


# Tests set this to run the device (torch) path on CPU tensors, so CI covers the code CUDA runs.
TORCH_PATH_ON_CPU = False


def _rows(seg: SegmentStorage) -> torch.Tensor | np.ndarray:
    """The segment as (pages, words per page): a numpy view on a CPU, a torch view on a device."""
    words = seg.data.view(torch.int64).view(seg.num_pages, seg.page_size // 8)
    return words.numpy() if seg.data.device.type == "cpu" and not TORCH_PATH_ON_CPU else words


def _copy_range(seg: SegmentStorage, src: int, dst: int, pages: int,
                rows: torch.Tensor | np.ndarray | None = None) -> None:
    """One range on the device (torch) path; see `_copy_ranges_host` for a CPU."""
    if rows is None:
        rows = _rows(seg)
    if isinstance(rows, np.ndarray):
        _copy_ranges_host(seg, [[src, dst, pages]])
        return
    a = src - seg.first_page
    b = dst - seg.first_page
    gap = abs(a - b)
    if gap >= pages:
        rows[b:b + pages].copy_(rows[a:a + pages])
    elif b < a and -(-pages // gap) <= MAX_OVERLAP_CHUNKS:
        for off in range(0, pages, gap):  # each chunk's source lies past its destination: no overlap
            m = min(gap, pages - off)
            rows[b + off:b + off + m].copy_(rows[a + off:a + off + m])
    else:
        rows[b:b + pages].copy_(rows[a:a + pages].clone())


def _copy_ranges_host(seg: SegmentStorage, ranges: list[list[int]]) -> None:
    """Slice copies on a CPU, in order, through one flat int64 numpy view of the segment.

    The view is 1-D on purpose: numpy copies a 1-D slice onto an overlapping one with memmove, in
    place, but gives a 2-D (page rows) assignment that overlaps a temporary copy of its source first
    (a slide by 3 pages of 1000: 4-6 GB/s through rows against 24 GB/s flat). Long ranges go in
    pieces of `COPY_CHUNK_BYTES_CPU`. With the pool's compiled core, all of it is one call."""
    threshold = TORCH_COPY_MIN_BYTES_CPU
    if native_copy_ranges is not None and threshold is None:
        # the compiled core: every range in one call, memmoves in pieces, without the GIL (a live
        # dashboard's thread keeps running) and without a Python step per range
        ps = seg.page_size
        rows = np.asarray(ranges, dtype=np.int64).reshape(-1, 3)
        rows[:, :2] -= seg.first_page
        rows *= ps
        native_copy_ranges(seg.data.numpy(), rows, COPY_CHUNK_BYTES_CPU)
        return
    words = seg.data.view(torch.int64).numpy()
    w = seg.page_size // 8
    base = seg.first_page
    chunk = COPY_CHUNK_BYTES_CPU // 8
    for src, dst, pages in ranges:
        a = (src - base) * w
        b = (dst - base) * w
        n = pages * w
        if threshold is not None and pages * seg.page_size >= threshold and abs(a - b) >= n:
            flat = seg.data.view(torch.int64)  # a large, non-overlapping range: torch's threaded copy
            flat[b:b + n].copy_(flat[a:a + n])
            continue
        if n <= chunk:
            words[b:b + n] = words[a:a + n]
        elif b < a:  # front to back: a chunk never writes where a later chunk still reads
            for off in range(0, n, chunk):
                m = min(chunk, n - off)
                words[b + off:b + off + m] = words[a + off:a + off + m]
        else:  # back to front, for the same reason
            for off in range(n - (n - 1) % chunk - 1, -1, -chunk):
                m = min(chunk, n - off)
                words[b + off:b + off + m] = words[a + off:a + off + m]


def _gather_scatter(seg: SegmentStorage, ranges: list[list[int]],
                    rows: torch.Tensor | np.ndarray | None = None) -> None:
    """One gather of every source page row (in destination order), then the rows written back:
    one ``index_copy_`` on CUDA, or one slice copy per contiguous destination run on a CPU.
    Only for independent stages: all sources are read before any write."""
    ranges = sorted(ranges, key=lambda r: r[1])
    base = seg.first_page
    src_rows: list[int] = []
    for src, _dst, pages in ranges:
        src_rows.extend(range(src - base, src - base + pages))
    if rows is None:
        rows = _rows(seg)
    if not isinstance(rows, np.ndarray):
        dev = rows.device
        dst_rows: list[int] = []
        for _src, dst, pages in ranges:
            dst_rows.extend(range(dst - base, dst - base + pages))
        gathered_t = rows.index_select(0, torch.tensor(src_rows, dtype=torch.long, device=dev))
        rows.index_copy_(0, torch.tensor(dst_rows, dtype=torch.long, device=dev), gathered_t)
        return
    gathered = rows[np.asarray(src_rows, dtype=np.int64)]
    k = 0
    run_dst, run_len = ranges[0][1] - base, 0
    for _src, dst, pages in ranges:
        if dst - base != run_dst + run_len:
            rows[run_dst:run_dst + run_len] = gathered[k - run_len:k]
            run_dst, run_len = dst - base, 0
        run_len += pages
        k += pages
    rows[run_dst:run_dst + run_len] = gathered[k - run_len:k]


def _src_page(m: Move) -> int:
    return m.src_page


def _by_segment(segments: Sequence[SegmentStorage], moves: Sequence[Move]
                ) -> list[tuple[SegmentStorage, Sequence[Move]]]:
    if len(segments) == 1:  # a plan's moves never leave their segment
        return [(segments[0], moves)] if moves else []
    firsts = [s.first_page for s in segments]
    by_seg: dict[int, tuple[SegmentStorage, list[Move]]] = {}
    for m in moves:
        k = bisect_right(firsts, m.src_page) - 1
        by_seg.setdefault(k, (segments[k], []))[1].append(m)
    return list(by_seg.values())


def execute(pool: PagedPool, step: Plan, started: Callable[[], None] | None = None) -> str:
    """Copy the bytes of every move of ``step`` (its bookkeeping is the caller's: ``pool.apply_moves``).
    Returns who copied them: "triton" (or "triton-interpret", "triton+torch"; see `_triton`), "torch",
    "cpu-memmove" (numpy or the compiled core, in the calling thread) or "none" (no moves).
    ``started`` is called when the Triton executor has built its schedule, just before its first launch."""
    if not step.stages:
        return "none"
    from . import _triton  # imports Triton itself only when it is wanted

    segments = pool.segment_storage()
    if _triton.wanted(pool.device):
        name = _triton.execute(pool, segments, step, started)
        if name is not None:
            return name
    used = "none"
    for stage in step.stages:
        for seg, moves in _by_segment(segments, stage.moves):
            host = seg.data.device.type == "cpu" and not TORCH_PATH_ON_CPU
            used = "cpu-memmove" if host else "torch"
            if stage.independent:
                ranges = coalesce(sorted(moves, key=_src_page))
                if len(ranges) >= GATHER_MIN_RANGES:
                    mean_bytes = sum(r[2] for r in ranges) * seg.page_size / len(ranges)
                    if not host or mean_bytes < GATHER_MAX_RANGE_BYTES_CPU:
                        _gather_scatter(seg, ranges)
                        continue
            else:
                ranges = coalesce(moves)
            if host:
                _copy_ranges_host(seg, ranges)
            else:
                rows = _rows(seg)  # built once per segment and stage: a view costs microseconds
                for src, dst, pages in ranges:
                    _copy_range(seg, src, dst, pages, rows)
    return used
