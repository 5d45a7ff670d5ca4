"""Binary frames for the front end (the wire format is drawn in ``js/src/codec.js``).

A page frame is a 32-byte header and one palette index per page (full), or runs of changed pages
(delta). Everything is little-endian numpy written straight into one ``bytes`` buffer: no JSON,
no per-page Python.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from ..pool import PageState, PoolSnapshot
from ._palette import AGE_BASE, AGE_STEPS, COLOR_MODES, TAG_BASE, TAG_COLORS

__all__ = ["FULL", "DELTA", "HEADER_BYTES", "PageFrame", "palette_indices", "encode_full", "encode_delta",
           "decode_page_frame", "page_checksum", "encode_heat", "encode_trace", "RUN_GAP", "TRACE_FULL",
           "TRACE_APPEND", "HEAT_FULL", "HEAT_APPEND", "PAGE_MAGIC", "HEAT_MAGIC", "TRACE_MAGIC"]

PAGE_MAGIC, HEAT_MAGIC, TRACE_MAGIC = b"PGF1", b"HMP1", b"LTR1"
FULL, DELTA = 0, 1              # page frame kinds
HEAT_FULL, HEAT_APPEND = 0, 1   # heatmap frame kinds
TRACE_FULL, TRACE_APPEND = 0, 1  # trace frame kinds
HEADER_BYTES = 32
_HEAT_HEAD = struct.Struct("<4sBBHI4x")  # magic, kind, metric, buckets, n_cols, reserved
RUN_GAP = 8  # unchanged pages bridged inside one run: a run header costs 8 bytes
_HEADER = np.dtype([("magic", "S4"), ("kind", "u1"), ("mode", "u1"), ("reserved", "<u2"),
                    ("num_pages", "<u4"), ("frame_id", "<u4"), ("base_id", "<u4"), ("n_runs", "<u4"),
                    ("seq", "<f8")])
assert _HEADER.itemsize == HEADER_BYTES


@dataclass(frozen=True)
class PageFrame:
    """One encoded frame: its bytes and what they say (for logging, tests and benchmarks)."""

    data: bytes
    kind: int
    frame_id: int
    base_id: int
    num_pages: int
    n_runs: int
    pages_changed: int
    seq: int

    @property
    def nbytes(self) -> int:
        return len(self.data)


def palette_indices(snap: PoolSnapshot, mode: str = "state", now_s: float | None = None) -> np.ndarray:
    """One uint8 palette index per page (see `_palette`): O(pages) numpy, no Python loop."""
    if mode == "state":
        return snap.page_state
    if mode == "tag":
        lut = np.empty(len(snap.tags) + 1, dtype=np.uint8)
        lut[0] = PageState.USED  # untagged pages keep the "used" colour
        lut[1:] = TAG_BASE + np.arange(len(snap.tags)) % TAG_COLORS
        out = lut[snap.page_tag + 1]
        out[snap.page_state == PageState.FREE] = PageState.FREE
        return out
    if mode == "age":
        now = snap.time_s if now_s is None else now_s
        age = np.maximum(now - snap.block_created_s, 0.0)
        oldest = float(age.max()) if age.size else 0.0
        step = (age / oldest * (AGE_STEPS - 1)) if oldest > 0 else np.zeros_like(age)
        block_idx = (AGE_BASE + step.astype(np.int64)).astype(np.uint8)
        out = np.zeros(snap.num_pages, dtype=np.uint8)
        out[np.repeat(snap.block_first_page, snap.block_num_pages)
            + _ramp_within(snap.block_num_pages)] = np.repeat(block_idx, snap.block_num_pages)
        return out
    raise ValueError(f"colour mode {mode!r} is not one of {COLOR_MODES}")


def _ramp_within(lengths: np.ndarray) -> np.ndarray:
    """0..len-1 for each run, concatenated (positions of pages inside their blocks)."""
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    run_first = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    return np.arange(total, dtype=np.int64) - np.repeat(run_first, lengths)


def _header(out: np.ndarray, kind: int, mode: int, num_pages: int, frame_id: int, base_id: int,
            n_runs: int, seq: int) -> None:
    h = out[:HEADER_BYTES].view(_HEADER)
    h[0] = (PAGE_MAGIC, kind, mode, 0, num_pages, frame_id & 0xFFFFFFFF, base_id & 0xFFFFFFFF, n_runs, float(seq))


def encode_full(values: np.ndarray, *, frame_id: int, seq: int, mode: int = 0) -> PageFrame:
    """Header + one byte per page."""
    n = int(values.shape[0])
    out = np.empty(HEADER_BYTES + n, dtype=np.uint8)
    _header(out, FULL, mode, n, frame_id, 0, 0, seq)
    out[HEADER_BYTES:] = values
    return PageFrame(out.tobytes(), FULL, frame_id, 0, n, 0, n, seq)


def encode_delta(prev: np.ndarray, values: np.ndarray, *, frame_id: int, base_id: int, seq: int,
                 mode: int = 0, max_fraction: float = 0.5) -> PageFrame | None:
    """Runs of pages that differ from ``prev`` (gaps up to RUN_GAP bridged), or None when a full
    frame would be smaller than ``max_fraction`` of the pages' worth of delta bytes."""
    n = int(values.shape[0])
    if prev.shape != values.shape:
        return None
    changed = np.flatnonzero(prev != values)
    if changed.size:
        brk = np.flatnonzero(np.diff(changed) > RUN_GAP + 1)
        starts = changed[np.concatenate(([0], brk + 1))]
        ends = changed[np.concatenate((brk, [changed.size - 1]))] + 1
    else:
        starts = ends = np.zeros(0, dtype=np.int64)
    lengths = ends - starts
    n_runs = int(starts.size)
    total = int(lengths.sum())
    if 8 * n_runs + total > max_fraction * n:
        return None
    out = np.empty(HEADER_BYTES + 8 * n_runs + total, dtype=np.uint8)
    _header(out, DELTA, mode, n, frame_id, base_id, n_runs, seq)
    body = out[HEADER_BYTES:HEADER_BYTES + 8 * n_runs].view("<u4")
    body[:n_runs] = starts
    body[n_runs:] = lengths
    out[HEADER_BYTES + 8 * n_runs:] = values[np.repeat(starts, lengths) + _ramp_within(lengths)]
    return PageFrame(out.tobytes(), DELTA, frame_id, base_id, n, n_runs, total, seq)


def decode_page_frame(data: bytes, pages: np.ndarray | None = None) -> tuple[dict[str, int], np.ndarray]:
    """Inverse of the encoders (tests and tools): header fields and the page indices after applying
    the frame to ``pages`` (required for a delta; left untouched)."""
    h = np.frombuffer(data, dtype=_HEADER, count=1)[0]
    if h["magic"] != PAGE_MAGIC:
        raise ValueError("not a PGF1 page frame")
    fields = {k: int(h[k]) for k in ("kind", "mode", "num_pages", "frame_id", "base_id", "n_runs", "seq")}
    n, runs = fields["num_pages"], fields["n_runs"]
    if fields["kind"] == FULL:
        return fields, np.frombuffer(data, dtype=np.uint8, offset=HEADER_BYTES, count=n).copy()
    if pages is None or pages.shape[0] != n:
        raise ValueError("a delta frame needs the frame it applies to")
    cols = np.frombuffer(data, dtype="<u4", offset=HEADER_BYTES, count=2 * runs).astype(np.int64)
    starts, lengths = cols[:runs], cols[runs:]
    out = pages.copy()
    out[np.repeat(starts, lengths) + _ramp_within(lengths)] = np.frombuffer(
        data, dtype=np.uint8, offset=HEADER_BYTES + 8 * runs)
    return fields, out


def page_checksum(values: np.ndarray) -> int:
    """sum(v[i] * (i % 65521 + 1)) mod 2**32; the page map canvas shows the same as data-checksum."""
    weights = np.arange(values.shape[0], dtype=np.int64) % 65521 + 1
    return int((values.astype(np.int64) * weights).sum() % 2**32)


def encode_heat(kind: int, metric: int, time_s: np.ndarray, marks: np.ndarray, columns: np.ndarray) -> bytes:
    """Heatmap frame: ``columns`` is (n_cols, buckets) uint8, sent column-major."""
    n_cols, buckets = columns.shape
    return b"".join((_HEAT_HEAD.pack(HEAT_MAGIC, kind, metric, buckets, n_cols), np.asarray(time_s, "<f8").tobytes(),
                     np.asarray(marks, np.uint8).tobytes(), np.ascontiguousarray(columns, dtype=np.uint8).tobytes()))


def encode_trace(time_s: np.ndarray, step_s: np.ndarray, alloc_s: np.ndarray, pause_s: np.ndarray,
                 event_time_s: np.ndarray, event_kind: np.ndarray, *, append: bool = False, keep_points: int = 0,
                 keep_events: int = 0) -> bytes:
    """Latency-trace frame: columns of one window (NaN where a series has no sample).

    ``append=True``: the columns are new points and events that follow what the front end holds;
    it keeps the last ``keep_points`` points and ``keep_events`` events of the two together."""
    n, m = int(time_s.shape[0]), int(event_time_s.shape[0])
    head = np.zeros(6 if append else 4, dtype="<u4")
    head[1], head[2], head[3] = n, m, TRACE_APPEND if append else TRACE_FULL
    if append:
        head[4], head[5] = keep_points, keep_events
    raw = head.tobytes()
    parts = [TRACE_MAGIC + raw[4:], np.asarray(time_s, "<f8").tobytes()]
    parts += [np.asarray(a, "<f4").tobytes() for a in (step_s, alloc_s, pause_s)]
    size = len(raw) + 20 * n
    parts.append(b"\0" * ((8 - size % 8) % 8))
    parts += [np.asarray(event_time_s, "<f8").tobytes(), np.asarray(event_kind, np.uint8).tobytes()]
    return b"".join(parts)
