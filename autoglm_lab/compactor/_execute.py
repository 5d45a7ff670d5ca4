"""Executing a plan step: copy page bytes on the device in a few batched operations.

Moves are first coalesced into ranges (neighbouring blocks that move by the same distance become
one copy). An independent stage of many small ranges runs as one gather (``index_select``) and one
scatter (``index_copy_``) of page rows per segment; otherwise each range is one slice ``copy_``.
A range that overlaps its own destination (sliding by less than its length) is copied in forward
chunks no longer than the distance moved, or through a temporary when that would take many chunks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

from ._plan import Move, Plan

if TYPE_CHECKING:
    from ..pool._pool import PagedPool, _Segment

__all__ = ["execute", "coalesce"]

GATHER_MIN_RANGES = 32             # fewer ranges than this: slice copies are cheaper
GATHER_MAX_RANGE_BYTES = 256 << 10  # mean range size under which gather/scatter wins
MAX_OVERLAP_CHUNKS = 16


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


def _copy_range(seg: _Segment, src: int, dst: int, pages: int) -> None:
    ps = seg.page_size
    data = seg.data
    a = (src - seg.first_page) * ps
    b = (dst - seg.first_page) * ps
    n = pages * ps
    gap = abs(a - b)
    if gap >= n:
        data[b:b + n].copy_(data[a:a + n])
    elif b < a and -(-n // gap) <= MAX_OVERLAP_CHUNKS:
        for off in range(0, n, gap):  # each chunk's source lies past its destination: no overlap
            m = min(gap, n - off)
            data[b + off:b + off + m].copy_(data[a + off:a + off + m])
    else:
        data[b:b + n].copy_(data[a:a + n].clone())


def _gather_scatter(seg: _Segment, ranges: list[list[int]]) -> None:
    src_rows: list[int] = []
    dst_rows: list[int] = []
    base = seg.first_page
    for src, dst, pages in ranges:
        src_rows.extend(range(src - base, src - base + pages))
        dst_rows.extend(range(dst - base, dst - base + pages))
    dev = seg.data.device
    rows = seg.rows()
    src_idx = torch.tensor(src_rows, dtype=torch.long, device=dev)
    dst_idx = torch.tensor(dst_rows, dtype=torch.long, device=dev)
    rows.index_copy_(0, dst_idx, rows.index_select(0, src_idx))


def execute(pool: PagedPool, step: Plan) -> list[tuple[int, int, int]]:
    """Copy the bytes of every move of ``step``; returns (block id, src, dst) in order for bookkeeping."""
    done: list[tuple[int, int, int]] = []
    for stage in step.stages:
        by_seg: dict[int, tuple[_Segment, list[Move]]] = {}
        for m in stage.moves:
            seg = pool._segment_of(m.src_page)
            by_seg.setdefault(seg.sid, (seg, []))[1].append(m)
        for seg, moves in by_seg.values():
            if stage.independent:
                ranges = coalesce(sorted(moves, key=lambda m: m.src_page))
                mean_bytes = sum(r[2] for r in ranges) * seg.page_size / len(ranges)
                if len(ranges) >= GATHER_MIN_RANGES and mean_bytes < GATHER_MAX_RANGE_BYTES:
                    _gather_scatter(seg, ranges)
                    continue
            else:
                ranges = coalesce(moves)
            for src, dst, pages in ranges:
                _copy_range(seg, src, dst, pages)
        done.extend((m.block_id, m.src_page, m.dst_page) for m in stage.moves)
    return done
